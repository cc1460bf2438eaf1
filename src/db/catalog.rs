//! Organisations, projects, findings and assessments: upserts for `remediator import`, the
//! organisation-scoped look-up the intake does, and the assessment write-back.

use crate::lifecycle::OrganizationId;
use diesel::prelude::*;
use diesel::upsert::excluded;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::models::{
    AssessmentRow, FindingRow, OrganizationRow, ProjectRow, RemediationTarget, TargetRow,
};
use super::schema::{assessments, findings, organizations, projects};
use crate::lifecycle::{AssessmentId, ProjectId, RemediationStatus};

/// Joins an assessment to its finding and project. With `organization` set, an assessment of
/// another organisation is not found, exactly like a missing one (tenancy wall).
pub async fn remediation_target(
    conn: &mut AsyncPgConnection,
    assessment_id: AssessmentId,
    organization: Option<OrganizationId>,
) -> QueryResult<Option<RemediationTarget>> {
    let mut query = assessments::table
        .inner_join(findings::table.inner_join(projects::table))
        .filter(assessments::id.eq(assessment_id))
        .into_boxed();
    if let Some(org) = organization {
        query = query.filter(projects::organization_id.eq(org));
    }
    let row = query
        .select(TargetRow::as_select())
        .first(conn)
        .await
        .optional()?;
    Ok(row.map(RemediationTarget::from))
}

/// Inserts `$row` into `$table`, or, when a row with its id exists and `$changed` (a predicate
/// over the stored row and `excluded(...)`) holds, overwrites it and stamps `updated_at`. An
/// identical row is left untouched, so a second import really changes nothing.
macro_rules! upsert_if_changed {
    ($conn:expr, $table:ident, $row:expr, $changed:expr) => {{
        // `filter` on an upsert is the WHERE of its DO UPDATE, from this trait.
        use diesel::query_dsl::methods::FilterDsl;
        diesel::insert_into($table::table)
            .values($row)
            .on_conflict($table::id)
            .do_update()
            .set(($row, $table::updated_at.eq(diesel::dsl::now)))
            .filter($changed)
            .execute($conn)
            .await
    }};
}

pub async fn upsert_organization(
    conn: &mut AsyncPgConnection,
    row: &OrganizationRow,
) -> QueryResult<usize> {
    upsert_if_changed!(
        conn,
        organizations,
        row,
        organizations::name.ne(excluded(organizations::name))
    )
}

pub async fn upsert_project(conn: &mut AsyncPgConnection, row: &ProjectRow) -> QueryResult<usize> {
    upsert_if_changed!(
        conn,
        projects,
        row,
        projects::organization_id
            .ne(excluded(projects::organization_id))
            .or(projects::name.ne(excluded(projects::name)))
            .or(projects::repository_url.ne(excluded(projects::repository_url)))
            .or(projects::default_branch.ne(excluded(projects::default_branch)))
            .or(projects::test_install.is_distinct_from(excluded(projects::test_install)))
            .or(projects::test_command.is_distinct_from(excluded(projects::test_command)))
    )
}

pub async fn upsert_finding(conn: &mut AsyncPgConnection, row: &FindingRow) -> QueryResult<usize> {
    upsert_if_changed!(
        conn,
        findings,
        row,
        findings::project_id
            .ne(excluded(findings::project_id))
            .or(findings::project_version_id
                .is_distinct_from(excluded(findings::project_version_id)))
            .or(findings::vulnerability_id.ne(excluded(findings::vulnerability_id)))
            .or(findings::aliases.ne(excluded(findings::aliases)))
            .or(findings::severity.ne(excluded(findings::severity)))
            .or(findings::summary.ne(excluded(findings::summary)))
            .or(findings::package_name.ne(excluded(findings::package_name)))
            .or(findings::ecosystem.ne(excluded(findings::ecosystem)))
            .or(findings::purl.is_distinct_from(excluded(findings::purl)))
            .or(findings::installed_version.ne(excluded(findings::installed_version)))
            .or(findings::fixed_versions.ne(excluded(findings::fixed_versions)))
    )
}

pub async fn upsert_assessment(
    conn: &mut AsyncPgConnection,
    row: &AssessmentRow,
) -> QueryResult<usize> {
    upsert_if_changed!(
        conn,
        assessments,
        row,
        assessments::finding_id
            .ne(excluded(assessments::finding_id))
            .or(assessments::status.ne(excluded(assessments::status)))
            .or(assessments::justification.is_distinct_from(excluded(assessments::justification)))
    )
}

/// Inserts an assessment unless one with its id exists: a scanner match without a VEX statement
/// must not overwrite a status someone has triaged since the previous scan.
pub async fn insert_assessment_if_absent(
    conn: &mut AsyncPgConnection,
    row: &AssessmentRow,
) -> QueryResult<usize> {
    diesel::insert_into(assessments::table)
        .values(row)
        .on_conflict(assessments::id)
        .do_nothing()
        .execute(conn)
        .await
}

/// What the worker writes back on the assessment when a remediation ends.
#[derive(Debug, Clone, Default, AsChangeset)]
#[diesel(table_name = assessments)]
pub struct RemediationWriteBack {
    pub remediation_branch_name: Option<String>,
    pub remediation_pr_url: Option<String>,
    pub remediation_pr_number: Option<i32>,
    pub remediation_status: Option<RemediationStatus>,
    pub remediation_confidence: Option<f64>,
}

pub async fn write_back(
    conn: &mut AsyncPgConnection,
    assessment_id: AssessmentId,
    fields: &RemediationWriteBack,
) -> QueryResult<usize> {
    diesel::update(assessments::table.find(assessment_id))
        .set((fields, assessments::updated_at.eq(diesel::dsl::now)))
        .execute(conn)
        .await
}

/// Serialises the open-pull-request count of one project with the step marking that follows
/// it (until the transaction ends), so two jobs of the same project cannot both see room for
/// the last pull request under the cap.
pub async fn lock_project_pull_requests(
    conn: &mut AsyncPgConnection,
    project_id: ProjectId,
) -> QueryResult<()> {
    diesel::sql_query(
        "SELECT pg_advisory_xact_lock(hashtextextended('remediator.open_prs:' || $1::text, 0))",
    )
    .bind::<diesel::sql_types::Uuid, _>(project_id)
    .execute(conn)
    .await
    .map(|_| ())
}
