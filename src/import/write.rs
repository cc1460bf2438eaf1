//! Writes parsed rows in one transaction: organisations, projects, findings, assessments,
//! each upserted by id, after the tenancy check ([`super::tenancy`]). A reference to a record
//! that is neither in the file nor in the database fails the whole import, naming the field.

use std::collections::HashSet;
use std::fmt::Display;
use std::hash::Hash;

use anyhow::{Context, bail};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};

use super::native::{AssessmentIn, FindingIn, OrganizationIn, ProjectIn};
use super::record::Record;
use super::tenancy::{StoredIds, refuse_organisation_moves};
use super::{Document, ImportFile};
use crate::db::models::{AssessmentRow, FindingFacts, FindingRow, OrganizationRow, ProjectRow};
use crate::db::schema::{organizations, projects};
use crate::db::{DbPool, catalog};
use crate::lifecycle::{FindingId, OrganizationId, ProjectId};

/// What an import did, for the command's output.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ImportSummary {
    pub read: usize,
    pub written: usize,
}

impl ImportSummary {
    /// Counts a record read from the file, and the rows writing it changed.
    fn add(&mut self, written: usize) {
        self.read += 1;
        self.written += written;
    }
}

/// Writes a parsed document in one transaction; a scanner report's project must exist.
pub async fn import_document(pool: &DbPool, document: Document) -> anyhow::Result<ImportSummary> {
    let mut conn = pool.get().await.context("connecting to Postgres")?;
    conn.transaction(async |conn| -> anyhow::Result<_> {
        if let Some(project) = document.project {
            let found = projects::table
                .find(project)
                .select(projects::id)
                .first::<ProjectId>(conn)
                .await
                .optional()?;
            if found.is_none() {
                bail!(
                    "project {project} does not exist: import it first with a native catalog \
                     file (see examples/catalog.json), then import the {} with --project {project}",
                    document.format.name()
                );
            }
        }
        write_all(conn, &document.file).await
    })
    .await
}

/// Writes a parsed document in one transaction.
pub async fn import(pool: &DbPool, file: ImportFile) -> anyhow::Result<ImportSummary> {
    let mut conn = pool.get().await.context("connecting to Postgres")?;
    conn.transaction(async |conn| -> anyhow::Result<_> { write_all(conn, &file).await })
        .await
}

async fn write_all(
    conn: &mut AsyncPgConnection,
    file: &ImportFile,
) -> anyhow::Result<ImportSummary> {
    let stored = refuse_organisation_moves(conn, file).await?;
    let known = Known::load(conn, file, stored).await?;
    let mut summary = ImportSummary::default();
    for o in &file.organizations {
        summary.add(catalog::upsert_organization(conn, &organization_row(o)).await?);
    }
    for (i, p) in file.projects.iter().enumerate() {
        require_known(Record::PROJECT, &known.organizations, &p.organization_id, i)?;
        summary.add(catalog::upsert_project(conn, &project_row(p)).await?);
    }
    for (i, f) in file.findings.iter().enumerate() {
        require_known(Record::FINDING, &known.projects, &f.project_id, i)?;
        summary.add(catalog::upsert_finding(conn, &finding_row(f)).await?);
    }
    for (i, a) in file.assessments.iter().enumerate() {
        require_known(Record::ASSESSMENT, &known.findings, &a.finding_id, i)?;
        let row = assessment_row(a);
        summary.add(if a.keep_existing {
            catalog::insert_assessment_if_absent(conn, &row).await?
        } else {
            catalog::upsert_assessment(conn, &row).await?
        });
    }
    Ok(summary)
}

/// The records rows may refer to: those in the file, and of the others only the ones the
/// file refers to, as stored in the database.
struct Known {
    organizations: HashSet<OrganizationId>,
    projects: HashSet<ProjectId>,
    findings: HashSet<FindingId>,
}

impl Known {
    /// `stored` holds the projects and findings the file names or refers to (the tenancy check
    /// read them); only the organisations are read here.
    async fn load(
        conn: &mut AsyncPgConnection,
        file: &ImportFile,
        stored: StoredIds,
    ) -> QueryResult<Self> {
        let mut organizations: HashSet<_> = file.organizations.iter().map(|o| o.id).collect();
        let wanted = missing(
            &organizations,
            file.projects.iter().map(|p| p.organization_id),
        );
        organizations.extend(
            organizations::table
                .filter(organizations::id.eq_any(wanted))
                .select(organizations::id)
                .load::<OrganizationId>(conn)
                .await?,
        );
        let mut projects = stored.projects;
        projects.extend(file.projects.iter().map(|p| p.id));
        let mut findings = stored.findings;
        findings.extend(file.findings.iter().map(|f| f.id));
        Ok(Known {
            organizations,
            projects,
            findings,
        })
    }
}

/// The referenced ids not in `known`.
fn missing<Id: Copy + Eq + Hash>(
    known: &HashSet<Id>,
    referenced: impl Iterator<Item = Id>,
) -> Vec<Id> {
    referenced.filter(|id| !known.contains(id)).collect()
}

/// Fails the import, naming the field of row `i` of `record`'s list, when the id that field
/// refers to is not a known record.
fn require_known<Id: Eq + Hash + Display>(
    record: Record,
    known: &HashSet<Id>,
    id: &Id,
    i: usize,
) -> anyhow::Result<()> {
    if !known.contains(id) {
        let Record {
            list,
            field,
            refers_to,
            ..
        } = record;
        bail!(
            "invalid import file at `{list}[{i}].{field}`: {refers_to} {id} is neither in the file nor in the database"
        );
    }
    Ok(())
}

// The catalog row each record of the file is written as.

fn organization_row(o: &OrganizationIn) -> OrganizationRow {
    OrganizationRow {
        id: o.id,
        name: o.name.clone(),
    }
}

fn project_row(p: &ProjectIn) -> ProjectRow {
    ProjectRow {
        id: p.id,
        organization_id: p.organization_id,
        name: p.name.clone(),
        repository_url: p.repository_url.clone(),
        default_branch: p.default_branch.clone(),
        test_install: p
            .test
            .as_ref()
            .filter(|t| !t.install.trim().is_empty())
            .map(|t| t.install.clone()),
        test_command: p.test.as_ref().map(|t| t.command.clone()),
    }
}

fn finding_row(f: &FindingIn) -> FindingRow {
    FindingRow {
        id: f.id,
        project_id: f.project_id,
        facts: FindingFacts {
            project_version_id: f.project_version_id,
            vulnerability_id: f.vulnerability_id.clone(),
            aliases: f.aliases.clone(),
            severity: f.severity.clone(),
            summary: f.summary.clone(),
            package_name: f.package_name.clone(),
            ecosystem: f.ecosystem.clone(),
            purl: f.purl.clone(),
            installed_version: f.installed_version.clone(),
            fixed_versions: f.fixed_versions.clone(),
        },
    }
}

fn assessment_row(a: &AssessmentIn) -> AssessmentRow {
    AssessmentRow {
        id: a.id,
        finding_id: a.finding_id,
        status: a.status.clone(),
        justification: a.justification.clone(),
    }
}
