//! `remediator import FILE`: loads organisations, projects, findings and assessments from one
//! JSON document (format in the README). All or nothing: a malformed file is rejected with the
//! path of the bad field and nothing is written; rows are upserted by id, so importing the same
//! file twice changes nothing.

use std::collections::HashSet;

use anyhow::{Context, bail};
use diesel::prelude::*;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use serde::Deserialize;
use uuid::Uuid;

use crate::db::models::{AssessmentRow, AssessmentStatus, FindingRow, OrganizationRow, ProjectRow};
use crate::db::schema::{findings, organizations, projects};
use crate::db::{DbPool, catalog};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportFile {
    #[serde(default)]
    pub organizations: Vec<OrganizationIn>,
    #[serde(default)]
    pub projects: Vec<ProjectIn>,
    #[serde(default)]
    pub findings: Vec<FindingIn>,
    #[serde(default)]
    pub assessments: Vec<AssessmentIn>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OrganizationIn {
    pub id: Uuid,
    pub name: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectIn {
    pub id: Uuid,
    pub organization_id: Uuid,
    pub name: String,
    pub repository_url: String,
    #[serde(default = "default_branch")]
    pub default_branch: String,
}

fn default_branch() -> String {
    "main".to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindingIn {
    pub id: Uuid,
    pub project_id: Uuid,
    #[serde(default)]
    pub project_version_id: Option<Uuid>,
    pub vulnerability_id: String,
    #[serde(default)]
    pub aliases: Vec<String>,
    #[serde(default = "unknown_severity")]
    pub severity: String,
    #[serde(default)]
    pub summary: String,
    pub package_name: String,
    pub ecosystem: String,
    #[serde(default)]
    pub purl: Option<String>,
    pub installed_version: String,
    #[serde(default)]
    pub fixed_versions: Vec<String>,
}

fn unknown_severity() -> String {
    "UNKNOWN".to_owned()
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssessmentIn {
    pub id: Uuid,
    pub finding_id: Uuid,
    pub status: String,
    #[serde(default)]
    pub justification: Option<String>,
}

/// What an import did, for the command's output.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ImportSummary {
    pub read: usize,
    pub written: usize,
}

/// Parses and checks a document without touching the database.
pub fn parse(text: &str) -> anyhow::Result<ImportFile> {
    let deserializer = &mut serde_json::Deserializer::from_str(text);
    let file: ImportFile = serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let path = e.path().to_string();
        anyhow::anyhow!("invalid import file at `{path}`: {}", e.into_inner())
    })?;
    validate(&file)?;
    Ok(file)
}

fn validate(file: &ImportFile) -> anyhow::Result<()> {
    for (i, p) in file.projects.iter().enumerate() {
        if p.repository_url.trim().is_empty() {
            bail!("invalid import file at `projects[{i}].repository_url`: must not be empty");
        }
        if p.default_branch.trim().is_empty() {
            bail!("invalid import file at `projects[{i}].default_branch`: must not be empty");
        }
    }
    for (i, f) in file.findings.iter().enumerate() {
        for (field, value) in [
            ("vulnerability_id", &f.vulnerability_id),
            ("package_name", &f.package_name),
            ("ecosystem", &f.ecosystem),
            ("installed_version", &f.installed_version),
        ] {
            if value.trim().is_empty() {
                bail!("invalid import file at `findings[{i}].{field}`: must not be empty");
            }
        }
    }
    for (i, a) in file.assessments.iter().enumerate() {
        if AssessmentStatus::parse(&a.status).is_none() {
            let allowed: Vec<_> = AssessmentStatus::ALL.iter().map(|s| s.as_str()).collect();
            bail!(
                "invalid import file at `assessments[{i}].status`: unknown status {:?}; expected one of {}",
                a.status,
                allowed.join(", ")
            );
        }
    }
    Ok(())
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
    let mut summary = ImportSummary::default();
    let mut known_orgs: HashSet<Uuid> = file.organizations.iter().map(|o| o.id).collect();
    let mut known_projects: HashSet<Uuid> = file.projects.iter().map(|p| p.id).collect();
    let mut known_findings: HashSet<Uuid> = file.findings.iter().map(|f| f.id).collect();
    // References to rows imported earlier are looked up, only those, in the database.
    let wanted: Vec<Uuid> = file
        .projects
        .iter()
        .map(|p| p.organization_id)
        .filter(|id| !known_orgs.contains(id))
        .collect();
    known_orgs.extend(
        organizations::table
            .filter(organizations::id.eq_any(wanted))
            .select(organizations::id)
            .load::<Uuid>(conn)
            .await?,
    );
    let wanted: Vec<Uuid> = file
        .findings
        .iter()
        .map(|f| f.project_id)
        .filter(|id| !known_projects.contains(id))
        .collect();
    known_projects.extend(
        projects::table
            .filter(projects::id.eq_any(wanted))
            .select(projects::id)
            .load::<Uuid>(conn)
            .await?,
    );
    let wanted: Vec<Uuid> = file
        .assessments
        .iter()
        .map(|a| a.finding_id)
        .filter(|id| !known_findings.contains(id))
        .collect();
    known_findings.extend(
        findings::table
            .filter(findings::id.eq_any(wanted))
            .select(findings::id)
            .load::<Uuid>(conn)
            .await?,
    );

    for o in &file.organizations {
        summary.read += 1;
        summary.written += catalog::upsert_organization(
            conn,
            &OrganizationRow {
                id: o.id,
                name: o.name.clone(),
            },
        )
        .await?;
    }
    for (i, p) in file.projects.iter().enumerate() {
        if !known_orgs.contains(&p.organization_id) {
            bail!(
                "invalid import file at `projects[{i}].organization_id`: organisation {} is neither in the file nor in the database",
                p.organization_id
            );
        }
        summary.read += 1;
        summary.written += catalog::upsert_project(
            conn,
            &ProjectRow {
                id: p.id,
                organization_id: p.organization_id,
                name: p.name.clone(),
                repository_url: p.repository_url.clone(),
                default_branch: p.default_branch.clone(),
            },
        )
        .await?;
    }
    for (i, f) in file.findings.iter().enumerate() {
        if !known_projects.contains(&f.project_id) {
            bail!(
                "invalid import file at `findings[{i}].project_id`: project {} is neither in the file nor in the database",
                f.project_id
            );
        }
        summary.read += 1;
        summary.written += catalog::upsert_finding(
            conn,
            &FindingRow {
                id: f.id,
                project_id: f.project_id,
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
        )
        .await?;
    }
    for (i, a) in file.assessments.iter().enumerate() {
        if !known_findings.contains(&a.finding_id) {
            bail!(
                "invalid import file at `assessments[{i}].finding_id`: finding {} is neither in the file nor in the database",
                a.finding_id
            );
        }
        summary.read += 1;
        summary.written += catalog::upsert_assessment(
            conn,
            &AssessmentRow {
                id: a.id,
                finding_id: a.finding_id,
                status: a.status.clone(),
                justification: a.justification.clone(),
            },
        )
        .await?;
    }
    Ok(summary)
}
