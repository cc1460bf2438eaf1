//! The native catalog format (README "Import format"): organisations, projects, findings and
//! assessments by id. It is also what every scanner format converts into, so these rows are the
//! single input of the write path.

use anyhow::bail;
use serde::Deserialize;
use uuid::Uuid;

use crate::db::models::AssessmentStatus;

#[derive(Debug, Default, Deserialize)]
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

#[derive(Debug, Clone, PartialEq, Deserialize)]
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

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AssessmentIn {
    pub id: Uuid,
    pub finding_id: Uuid,
    pub status: String,
    #[serde(default)]
    pub justification: Option<String>,
    /// Insert only, never overwrite: set for scanner matches that carry no VEX statement, so a
    /// re-scan does not undo a status someone already triaged. Not part of the file format.
    #[serde(skip)]
    pub keep_existing: bool,
}

/// Parses and checks a native document.
pub fn parse(text: &str) -> anyhow::Result<ImportFile> {
    let file: ImportFile = super::deserialize(text, "import file")?;
    validate(&file)?;
    Ok(file)
}

/// Checks what the types cannot say. Also run on converted scanner output as a safety net.
pub(super) fn validate(file: &ImportFile) -> anyhow::Result<()> {
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
