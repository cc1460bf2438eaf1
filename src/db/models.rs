//! Row types and the status vocabularies, spelled as Chainloop's API spells them.

use chrono::{DateTime, Utc};
use diesel::prelude::*;

use super::schema::{assessments, findings, operations, organizations, projects};

/// The kind and resource type of every operation this service creates.
pub const REMEDIATION_KIND: &str = "auto_remediation";
pub const ASSESSMENT_RESOURCE: &str = "assessment";

use crate::ecosystem::Ecosystem;
use crate::lifecycle::status::sql_text_enum;
use crate::lifecycle::{
    AssessmentId, FindingId, OperationId, OrganizationId, ProjectId, ProjectVersionId,
};
pub use crate::lifecycle::{OperationStatus, Step};
use crate::verify::CommandOverride;

sql_text_enum!(
    /// VEX-style assessment status.
    AssessmentStatus {
        Affected => "ASSESSMENT_STATUS_AFFECTED",
        NotAffected => "ASSESSMENT_STATUS_NOT_AFFECTED",
        UnderInvestigation => "ASSESSMENT_STATUS_UNDER_INVESTIGATION",
        Fixed => "ASSESSMENT_STATUS_FIXED",
    }
);

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = operations, check_for_backend(diesel::pg::Pg))]
pub struct Operation {
    pub id: OperationId,
    pub organization_id: OrganizationId,
    pub kind: String,
    pub status: OperationStatus,
    pub resource_type: String,
    pub resource_id: AssessmentId,
    pub project_id: ProjectId,
    pub project_version_id: Option<ProjectVersionId>,
    pub step: Option<Step>,
    pub attempts: i32,
    pub output: Option<serde_json::Value>,
    pub error_message: Option<String>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub heartbeat_at: Option<DateTime<Utc>>,
    pub updated_at: DateTime<Utc>,
    pub cancel_requested_at: Option<DateTime<Utc>>,
    /// Claims since the last settled attempt (see `lifecycle::admit`).
    pub unsettled_starts: i32,
    /// The worker process (`host/pid`) that holds, or last held, the operation.
    pub claimed_by: Option<String>,
}

/// Everything a remediation job needs to know, joined from assessment, finding and project.
#[derive(Debug, Clone)]
pub struct RemediationTarget {
    pub organization_id: OrganizationId,
    pub project_id: ProjectId,
    pub repository_url: String,
    pub default_branch: String,
    pub assessment_id: AssessmentId,
    pub assessment_status: AssessmentStatus,
    pub finding_id: FindingId,
    /// What the scanner reported: the advisory, the package, its ecosystem and versions.
    pub facts: FindingFacts,
    /// The version the job's fix plan chose (the one that fixes every advisory its pull request
    /// lists); `None` before planning.
    pub planned_version: Option<String>,
    /// The project's test commands from the import catalog (the test step's first choice).
    pub test_commands: Option<CommandOverride>,
}

/// The row [`RemediationTarget`] is read from: an assessment joined to its finding and project.
/// Both reads use it: the catalog's diesel query selects it (`TargetRow::as_select()`), the
/// intake's hand-written statement names its columns like these fields (`QueryableByName`),
/// so the target is built from a row in one place (`From<TargetRow>`).
#[derive(Debug, Clone, Queryable, Selectable, QueryableByName)]
#[diesel(table_name = findings, check_for_backend(diesel::pg::Pg))]
pub struct TargetRow {
    #[diesel(select_expression = assessments::id, sql_type = diesel::sql_types::Uuid)]
    pub assessment_id: AssessmentId,
    #[diesel(select_expression = assessments::status, sql_type = diesel::sql_types::Text)]
    pub assessment_status: AssessmentStatus,
    #[diesel(select_expression = findings::id, sql_type = diesel::sql_types::Uuid)]
    pub finding_id: FindingId,
    #[diesel(embed)]
    pub facts: FindingFacts,
    #[diesel(select_expression = projects::id, sql_type = diesel::sql_types::Uuid)]
    pub project_id: ProjectId,
    #[diesel(
        select_expression = projects::organization_id,
        sql_type = diesel::sql_types::Uuid
    )]
    pub organization_id: OrganizationId,
    #[diesel(select_expression = projects::repository_url, sql_type = diesel::sql_types::Text)]
    pub repository_url: String,
    #[diesel(select_expression = projects::default_branch, sql_type = diesel::sql_types::Text)]
    pub default_branch: String,
    #[diesel(select_expression = projects::test_install, sql_type = NullableText)]
    pub test_install: Option<String>,
    #[diesel(select_expression = projects::test_command, sql_type = NullableText)]
    pub test_command: Option<String>,
}

type NullableText = diesel::sql_types::Nullable<diesel::sql_types::Text>;

impl From<TargetRow> for RemediationTarget {
    fn from(row: TargetRow) -> Self {
        RemediationTarget {
            organization_id: row.organization_id,
            project_id: row.project_id,
            repository_url: row.repository_url,
            default_branch: row.default_branch,
            assessment_id: row.assessment_id,
            assessment_status: row.assessment_status,
            finding_id: row.finding_id,
            facts: row.facts,
            // Planning happens in the job, after the read.
            planned_version: None,
            test_commands: row.test_command.map(|command| CommandOverride {
                install: row.test_install.unwrap_or_default(),
                command,
            }),
        }
    }
}

impl RemediationTarget {
    /// The version the fix moves the package to: the plan's, else the finding's own lowest
    /// fixed version above the installed one.
    pub fn target_version(&self) -> Option<String> {
        self.planned_version.clone().or_else(|| {
            crate::patch::bump::choose_target_version(
                &self.facts.installed_version,
                &self.facts.fixed_versions,
            )
        })
    }
}

/// Catalog rows as `remediator import` writes them (upserted by id).
#[derive(Debug, Clone, Insertable, AsChangeset)]
#[diesel(table_name = organizations)]
pub struct OrganizationRow {
    pub id: OrganizationId,
    pub name: String,
}

#[derive(Debug, Clone, Insertable, AsChangeset)]
#[diesel(table_name = projects, treat_none_as_null = true)]
pub struct ProjectRow {
    pub id: ProjectId,
    pub organization_id: OrganizationId,
    pub name: String,
    pub repository_url: String,
    pub default_branch: String,
    /// `None` when blank or when the project has no `test` (then `test_command` is `None`).
    pub test_install: Option<String>,
    pub test_command: Option<String>,
}

#[derive(Debug, Clone, Insertable, AsChangeset)]
#[diesel(table_name = findings, treat_none_as_null = true)]
pub struct FindingRow {
    pub id: FindingId,
    pub project_id: ProjectId,
    #[diesel(embed)]
    pub facts: FindingFacts,
}

/// What a scanner reports about a finding: the columns of `findings` besides its ids, read
/// by the job's target (`TargetRow`) and written by the import (`FindingRow`).
#[derive(Debug, Clone, Queryable, Selectable, QueryableByName, Insertable, AsChangeset)]
#[diesel(
    table_name = findings,
    treat_none_as_null = true,
    check_for_backend(diesel::pg::Pg)
)]
pub struct FindingFacts {
    pub project_version_id: Option<ProjectVersionId>,
    pub vulnerability_id: String,
    pub aliases: Vec<String>,
    pub severity: String,
    pub summary: String,
    pub package_name: String,
    pub ecosystem: Ecosystem,
    pub purl: Option<String>,
    pub installed_version: String,
    pub fixed_versions: Vec<String>,
}

/// The importable part of an assessment; the `remediation_*` fields belong to the worker.
#[derive(Debug, Clone, Insertable, AsChangeset)]
#[diesel(table_name = assessments, treat_none_as_null = true)]
pub struct AssessmentRow {
    pub id: AssessmentId,
    pub finding_id: FindingId,
    pub status: String,
    pub justification: Option<String>,
}
