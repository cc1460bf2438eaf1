//! An upsert by id must never move a record to another organisation: every query of the
//! intake is scoped by the organisation of the project, so moving a project (or a finding or
//! assessment into another organisation's project) would hand one tenant's live operations
//! and history to another. Such a file is refused whole, naming the record, before anything
//! is written. Records new to the database, and updates within one organisation, pass.

use std::collections::{HashMap, HashSet};
use std::fmt::Display;
use std::hash::Hash;

use anyhow::bail;
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::ImportFile;
use super::record::Record;
use crate::db::schema::{assessments, findings, projects};
use crate::lifecycle::{AssessmentId, FindingId, OrganizationId, ProjectId};

/// The stored projects and findings the file names or refers to, as the check read them:
/// the write path's references may point at these without reading them again.
pub(super) struct StoredIds {
    pub projects: HashSet<ProjectId>,
    pub findings: HashSet<FindingId>,
}

/// Refuses the file if it would move a stored project, finding or assessment to another
/// organisation; see the module documentation. Returns the stored projects and findings it
/// read.
pub(super) async fn refuse_organisation_moves(
    conn: &mut AsyncPgConnection,
    file: &ImportFile,
) -> anyhow::Result<StoredIds> {
    let stored = stored_projects(conn, file).await?;
    let stored_project_ids: HashSet<ProjectId> = stored.keys().copied().collect();
    refuse_moves(
        Record::PROJECT,
        &stored,
        file.projects
            .iter()
            .map(|p| (p.id, Some(p.organization_id))),
    )?;
    // After the check above a project's organisation is the same in the file and the database.
    let project_org: HashMap<ProjectId, OrganizationId> = stored
        .into_iter()
        .chain(file.projects.iter().map(|p| (p.id, p.organization_id)))
        .collect();

    let stored = stored_findings(conn, file).await?;
    let stored_finding_ids: HashSet<FindingId> = stored.keys().copied().collect();
    // A project in neither place is reported as dangling while writing.
    refuse_moves(
        Record::FINDING,
        &stored,
        file.findings
            .iter()
            .map(|f| (f.id, project_org.get(&f.project_id).copied())),
    )?;
    let finding_org: HashMap<FindingId, OrganizationId> = stored
        .into_iter()
        .chain(file.findings.iter().filter_map(|f| {
            let organization = project_org.get(&f.project_id)?;
            Some((f.id, *organization))
        }))
        .collect();

    let stored = stored_assessments(conn, file).await?;
    // Insert-only rows (scanner matches without a VEX statement) never change a stored one.
    refuse_moves(
        Record::ASSESSMENT,
        &stored,
        file.assessments.iter().map(|a| {
            let to = (!a.keep_existing)
                .then(|| finding_org.get(&a.finding_id).copied())
                .flatten();
            (a.id, to)
        }),
    )?;
    Ok(StoredIds {
        projects: stored_project_ids,
        findings: stored_finding_ids,
    })
}

/// Fails on the first of `records` (file order; the organisation the file places it in, or
/// `None` when that is not known) stored under another organisation.
fn refuse_moves<Id: Copy + Eq + Hash + Display>(
    record: Record,
    stored: &HashMap<Id, OrganizationId>,
    records: impl Iterator<Item = (Id, Option<OrganizationId>)>,
) -> anyhow::Result<()> {
    for (i, (id, to)) in records.enumerate() {
        if let (Some(&from), Some(to)) = (stored.get(&id), to)
            && from != to
        {
            let Record {
                what, list, field, ..
            } = record;
            bail!(
                "invalid import file at `{list}[{i}].{field}`: {what} {id} belongs to \
                 organisation {from}; this file would move it to organisation {to}, and an \
                 import never changes the organisation of an existing record (give the new \
                 record a new id)"
            );
        }
    }
    Ok(())
}

/// The stored organisation of every project the file names or refers to.
async fn stored_projects(
    conn: &mut AsyncPgConnection,
    file: &ImportFile,
) -> QueryResult<HashMap<ProjectId, OrganizationId>> {
    let ids: Vec<ProjectId> = file
        .projects
        .iter()
        .map(|p| p.id)
        .chain(file.findings.iter().map(|f| f.project_id))
        .collect();
    let rows = projects::table
        .filter(projects::id.eq_any(&ids))
        .select((projects::id, projects::organization_id))
        .load::<(ProjectId, OrganizationId)>(conn)
        .await?;
    Ok(rows.into_iter().collect())
}

/// The stored organisation of every finding the file names or refers to.
async fn stored_findings(
    conn: &mut AsyncPgConnection,
    file: &ImportFile,
) -> QueryResult<HashMap<FindingId, OrganizationId>> {
    let ids: Vec<FindingId> = file
        .findings
        .iter()
        .map(|f| f.id)
        .chain(file.assessments.iter().map(|a| a.finding_id))
        .collect();
    let rows = findings::table
        .inner_join(projects::table)
        .filter(findings::id.eq_any(&ids))
        .select((findings::id, projects::organization_id))
        .load::<(FindingId, OrganizationId)>(conn)
        .await?;
    Ok(rows.into_iter().collect())
}

/// The stored organisation of every assessment the file names.
async fn stored_assessments(
    conn: &mut AsyncPgConnection,
    file: &ImportFile,
) -> QueryResult<HashMap<AssessmentId, OrganizationId>> {
    let ids: Vec<AssessmentId> = file.assessments.iter().map(|a| a.id).collect();
    let rows = assessments::table
        .inner_join(findings::table.inner_join(projects::table))
        .filter(assessments::id.eq_any(&ids))
        .select((assessments::id, projects::organization_id))
        .load::<(AssessmentId, OrganizationId)>(conn)
        .await?;
    Ok(rows.into_iter().collect())
}
