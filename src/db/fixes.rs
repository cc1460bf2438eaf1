//! Package fixes (`remediation_fixes`): one row per package of a project, holding its branch and
//! the pull request it has or had. A job takes the row `FOR UPDATE` before it pushes, so two
//! jobs for the same package serialise here and never open two pull requests; webhooks and
//! the reconciler move the row (and every assessment written back from it) to merged or
//! closed.

use crate::ecosystem::Ecosystem;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::models::{ASSESSMENT_RESOURCE, AssessmentStatus};
use super::schema::{assessments, findings, projects, remediation_fixes};
use crate::lifecycle::fix_plan::{Advisory, ObservedState, PullRequestRecord};
use crate::lifecycle::{AssessmentId, FixId, OperationStatus, ProjectId, RemediationStatus, Step};

#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = remediation_fixes, check_for_backend(diesel::pg::Pg))]
pub struct FixRow {
    pub id: FixId,
    pub project_id: ProjectId,
    pub ecosystem: Ecosystem,
    pub package_name: String,
    pub branch_name: String,
    pub forge: Option<String>,
    #[diesel(embed)]
    pub pull_request: FixRecord,
    pub advisories: Vec<String>,
    pub pr_number: Option<i32>,
    pub merged_at: Option<DateTime<Utc>>,
    pub left_alone_at: Option<DateTime<Utc>>,
}

/// The columns of a `remediation_fixes` row that decide whether a person closed its pull
/// request: part of every [`FixRow`], and all the intake reads of a fix.
#[derive(Debug, Clone, Queryable, Selectable)]
#[diesel(table_name = remediation_fixes, check_for_backend(diesel::pg::Pg))]
pub struct FixRecord {
    pub state: Option<RemediationStatus>,
    pub target_version: Option<String>,
    pub pr_url: Option<String>,
    pub closed_at: Option<DateTime<Utc>>,
}

impl FixRecord {
    pub fn record(&self) -> PullRequestRecord<'_> {
        PullRequestRecord {
            state: self.state,
            target_version: self.target_version.as_deref(),
            pr_url: self.pr_url.as_deref(),
            closed_at: self.closed_at,
        }
    }
}

/// An advisory as [`package_advisories`] and [`ecosystem_advisories`] read it: the assessment
/// and its finding.
#[derive(Queryable, Selectable)]
#[diesel(table_name = findings, check_for_backend(diesel::pg::Pg))]
struct AdvisoryRow {
    #[diesel(select_expression = assessments::id)]
    assessment_id: AssessmentId,
    vulnerability_id: String,
    aliases: Vec<String>,
    severity: String,
    summary: String,
    installed_version: String,
    fixed_versions: Vec<String>,
}

impl From<AdvisoryRow> for Advisory {
    fn from(row: AdvisoryRow) -> Self {
        Advisory {
            assessment_id: row.assessment_id,
            vulnerability_id: row.vulnerability_id,
            aliases: row.aliases,
            severity: row.severity,
            summary: row.summary,
            installed_version: row.installed_version,
            fixed_versions: row.fixed_versions,
        }
    }
}

/// The AFFECTED assessments of an ecosystem in the project joined to their findings, oldest
/// assessment first.
#[diesel::dsl::auto_type(no_type_alias)]
fn affected_in<'a>(project: ProjectId, ecosystem: &'a Ecosystem) -> _ {
    let affected: AssessmentStatus = AssessmentStatus::Affected;
    assessments::table
        .inner_join(findings::table)
        .filter(findings::project_id.eq(project))
        .filter(findings::ecosystem.eq(ecosystem))
        .filter(assessments::status.eq(affected))
        .order((assessments::created_at.asc(), assessments::id.asc()))
}

/// Every AFFECTED advisory on `package` in the project, oldest assessment first.
pub async fn package_advisories(
    conn: &mut AsyncPgConnection,
    project: ProjectId,
    ecosystem: &Ecosystem,
    package: &str,
) -> QueryResult<Vec<Advisory>> {
    let rows: Vec<AdvisoryRow> = affected_in(project, ecosystem)
        .filter(findings::package_name.eq(package))
        .select(AdvisoryRow::as_select())
        .load(conn)
        .await?;
    Ok(rows.into_iter().map(Advisory::from).collect())
}

/// Every AFFECTED advisory of an ecosystem in the project, with its package, oldest first
/// (`worker.group = "repository"`).
pub async fn ecosystem_advisories(
    conn: &mut AsyncPgConnection,
    project: ProjectId,
    ecosystem: &Ecosystem,
) -> QueryResult<Vec<(String, Advisory)>> {
    let rows: Vec<(String, AdvisoryRow)> = affected_in(project, ecosystem)
        .select((findings::package_name, AdvisoryRow::as_select()))
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(package, row)| (package, Advisory::from(row)))
        .collect())
}

/// The package's fix row: its project, ecosystem and package name (the table's unique key).
#[diesel::dsl::auto_type(no_type_alias)]
fn of_package<'a>(project: ProjectId, ecosystem: &'a Ecosystem, package: &'a str) -> _ {
    remediation_fixes::table
        .filter(remediation_fixes::project_id.eq(project))
        .filter(remediation_fixes::ecosystem.eq(ecosystem))
        .filter(remediation_fixes::package_name.eq(package))
}

/// The package's fix row, if it has one.
pub async fn find(
    conn: &mut AsyncPgConnection,
    project: ProjectId,
    ecosystem: &Ecosystem,
    package: &str,
) -> QueryResult<Option<FixRow>> {
    of_package(project, ecosystem, package)
        .select(FixRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Creates the package's row if it has none and locks it until the caller's transaction ends.
/// A second job for the package waits here until the first one has recorded its pull request.
pub async fn lock(
    conn: &mut AsyncPgConnection,
    project: ProjectId,
    ecosystem: &Ecosystem,
    package: &str,
    branch: &str,
) -> QueryResult<FixRow> {
    diesel::insert_into(remediation_fixes::table)
        .values((
            remediation_fixes::id.eq(FixId::new_random()),
            remediation_fixes::project_id.eq(project),
            remediation_fixes::ecosystem.eq(ecosystem),
            remediation_fixes::package_name.eq(package),
            remediation_fixes::branch_name.eq(branch),
        ))
        .on_conflict((
            remediation_fixes::project_id,
            remediation_fixes::ecosystem,
            remediation_fixes::package_name,
        ))
        .do_nothing()
        .execute(conn)
        .await?;
    of_package(project, ecosystem, package)
        .select(FixRow::as_select())
        .for_update()
        .first(conn)
        .await
}

/// What a job recorded about the pull request it opened or updated.
#[derive(Debug, Clone)]
pub struct RecordedPull<'a> {
    pub forge: &'a str,
    pub branch: &'a str,
    pub state: RemediationStatus,
    pub target_version: Option<&'a str>,
    pub advisories: &'a [String],
    pub pr_number: Option<i32>,
    pub pr_url: Option<&'a str>,
}

pub async fn record_pull_request(
    conn: &mut AsyncPgConnection,
    fix: FixId,
    pull: &RecordedPull<'_>,
) -> QueryResult<usize> {
    diesel::update(remediation_fixes::table.find(fix))
        .set((
            remediation_fixes::forge.eq(pull.forge),
            remediation_fixes::branch_name.eq(pull.branch),
            remediation_fixes::state.eq(pull.state),
            remediation_fixes::target_version.eq(pull.target_version),
            remediation_fixes::advisories.eq(pull.advisories),
            remediation_fixes::pr_number.eq(pull.pr_number),
            remediation_fixes::pr_url.eq(pull.pr_url),
            remediation_fixes::merged_at.eq(None::<DateTime<Utc>>),
            remediation_fixes::closed_at.eq(None::<DateTime<Utc>>),
            remediation_fixes::checked_at.eq(diesel::dsl::now),
            remediation_fixes::left_alone_at.eq(None::<DateTime<Utc>>),
            remediation_fixes::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await
}

/// Notes that a refresh left the branch alone (someone pushed to it) and said so on the pull
/// request; false when that was noted before (so the comment is made once).
pub async fn note_left_alone(conn: &mut AsyncPgConnection, fix: FixId) -> QueryResult<bool> {
    let noted = diesel::update(remediation_fixes::table.find(fix))
        .filter(remediation_fixes::left_alone_at.is_null())
        .set(remediation_fixes::left_alone_at.eq(diesel::dsl::now))
        .execute(conn)
        .await?;
    Ok(noted == 1)
}

/// An AFFECTED assessment the fix covers, to run the job that refreshes it.
pub async fn refresh_candidate(
    conn: &mut AsyncPgConnection,
    fix: FixId,
) -> QueryResult<Option<AssessmentId>> {
    assessments::table
        .filter(assessments::remediation_fix_id.eq(fix))
        .filter(assessments::status.eq(AssessmentStatus::Affected))
        .order((assessments::created_at.asc(), assessments::id.asc()))
        .select(assessments::id)
        .first(conn)
        .await
        .optional()
}

/// The write-back of a finished job on every assessment its pull request covers. The status
/// is the fix's own when a webhook already saw the pull request merged or closed (it may
/// arrive between the pull request step and this write-back).
#[derive(Debug, Clone)]
pub struct CoveredWriteBack {
    pub fix_id: FixId,
    pub assessments: Vec<AssessmentId>,
    pub branch: String,
    pub pr_url: Option<String>,
    pub pr_number: Option<i32>,
    pub status: RemediationStatus,
    pub confidence: f64,
}

pub async fn write_back_covered(
    conn: &mut AsyncPgConnection,
    fields: &CoveredWriteBack,
) -> QueryResult<usize> {
    use diesel::sql_types::{Array, Double, Integer, Nullable, Text, Uuid as SqlUuid};
    diesel::sql_query(
        "UPDATE assessments SET
             remediation_fix_id = $1,
             remediation_branch_name = $2,
             remediation_pr_url = $3,
             remediation_pr_number = $4,
             remediation_confidence = $5,
             remediation_status = COALESCE(
                 (SELECT state FROM remediation_fixes
                   WHERE id = $1 AND state IN ($7, $8)),
                 $6),
             updated_at = now()
         WHERE id = ANY($9)",
    )
    .bind::<SqlUuid, _>(fields.fix_id)
    .bind::<Text, _>(&fields.branch)
    .bind::<Nullable<Text>, _>(fields.pr_url.as_deref())
    .bind::<Nullable<Integer>, _>(fields.pr_number)
    .bind::<Double, _>(fields.confidence)
    .bind::<Text, _>(fields.status)
    .bind::<Text, _>(RemediationStatus::PrMerged)
    .bind::<Text, _>(RemediationStatus::PrClosed)
    .bind::<Array<SqlUuid>, _>(&fields.assessments)
    .execute(conn)
    .await
}

#[derive(diesel::QueryableByName)]
struct Count {
    #[diesel(sql_type = diesel::sql_types::BigInt)]
    open: i64,
}

/// The project's remediation pull requests that are open on the forge, or being opened by a
/// job right now, other than the one of this package: one per package fix, however many
/// advisories it lists, and one per assessment written back PR_OPEN before package fixes
/// existed (those are not followed, so they count until their assessment changes). Merged and
/// closed ones do not count.
pub async fn open_pull_requests_elsewhere(
    conn: &mut AsyncPgConnection,
    project: ProjectId,
    ecosystem: &Ecosystem,
    package: &str,
) -> QueryResult<i64> {
    use diesel::sql_types::{Text, Uuid as SqlUuid};
    let rows: Vec<Count> = diesel::sql_query(
        "SELECT count(*) AS open FROM (
             SELECT ecosystem, package_name FROM remediation_fixes
             WHERE project_id = $1 AND state = $4
             UNION
             -- Written back PR_OPEN before package fixes existed (one pull request each).
             SELECT f.ecosystem, f.package_name || '#' || a.id::text
             FROM assessments a JOIN findings f ON f.id = a.finding_id
             WHERE f.project_id = $1 AND a.remediation_status = $4
               AND a.remediation_fix_id IS NULL AND a.status = $9
             UNION
             SELECT f.ecosystem, f.package_name FROM operations o
               JOIN assessments a ON a.id = o.resource_id
               JOIN findings f ON f.id = a.finding_id
             WHERE o.project_id = $1 AND o.resource_type = $5 AND o.status = $6
               AND o.step IN ($7, $8)
         ) AS open_or_opening
         WHERE NOT (ecosystem = $2 AND package_name = $3)",
    )
    .bind::<SqlUuid, _>(project)
    .bind::<Text, _>(ecosystem)
    .bind::<Text, _>(package)
    .bind::<Text, _>(RemediationStatus::PrOpen)
    .bind::<Text, _>(ASSESSMENT_RESOURCE)
    .bind::<Text, _>(OperationStatus::Running)
    .bind::<Text, _>(Step::PullRequest)
    .bind::<Text, _>(Step::WriteBack)
    .bind::<Text, _>(AssessmentStatus::Affected)
    .load(conn)
    .await?;
    Ok(rows.iter().map(|row| row.open).sum())
}

/// The fix whose pull request has this web URL on this forge (how webhooks name it).
pub async fn find_by_pull_request(
    conn: &mut AsyncPgConnection,
    forge: &str,
    pr_url: &str,
    pr_number: i32,
) -> QueryResult<Option<FixRow>> {
    remediation_fixes::table
        .filter(remediation_fixes::forge.eq(forge))
        .filter(remediation_fixes::pr_url.eq(pr_url))
        .filter(remediation_fixes::pr_number.eq(pr_number))
        .select(FixRow::as_select())
        .first(conn)
        .await
        .optional()
}

/// Moves the fix and every assessment written back from it to `observed`; with
/// `mark_fixed`, a merge also makes its AFFECTED assessments FIXED. Returns whether the fix
/// changed (an event that repeats the known state changes nothing). Run it in a transaction.
pub async fn apply_observed(
    conn: &mut AsyncPgConnection,
    fix: FixId,
    observed: ObservedState,
    mark_fixed: bool,
) -> QueryResult<bool> {
    let status = observed.status();
    let (merged_at, closed_at) = match observed {
        ObservedState::Open | ObservedState::Conflicting => (None, None),
        ObservedState::Merged(at) => (Some(at.unwrap_or_else(Utc::now)), None),
        ObservedState::Closed(at) => (None, Some(at.unwrap_or_else(Utc::now))),
    };
    let changed = diesel::update(remediation_fixes::table.find(fix))
        .filter(remediation_fixes::state.is_distinct_from(status))
        // Only a pull request that exists moves; a fix still being opened has none.
        .filter(remediation_fixes::pr_number.is_not_null())
        .set((
            remediation_fixes::state.eq(status),
            remediation_fixes::merged_at.eq(merged_at),
            remediation_fixes::closed_at.eq(closed_at),
            remediation_fixes::checked_at.eq(diesel::dsl::now),
            remediation_fixes::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    if changed == 0 {
        return Ok(false);
    }
    let pull_request_statuses = [
        RemediationStatus::PrOpen,
        RemediationStatus::PrMerged,
        RemediationStatus::PrClosed,
    ];
    diesel::update(assessments::table)
        .filter(assessments::remediation_fix_id.eq(fix))
        .filter(assessments::remediation_status.eq_any(pull_request_statuses))
        .set((
            assessments::remediation_status.eq(status),
            assessments::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    if mark_fixed && matches!(observed, ObservedState::Merged(_)) {
        diesel::update(assessments::table)
            .filter(assessments::remediation_fix_id.eq(fix))
            .filter(assessments::remediation_status.eq(status))
            .filter(assessments::status.eq(AssessmentStatus::Affected))
            .set((
                assessments::status.eq(AssessmentStatus::Fixed),
                assessments::updated_at.eq(diesel::dsl::now),
            ))
            .execute(conn)
            .await?;
    }
    Ok(true)
}

/// An open pull request the reconciler is to look at.
#[derive(Debug, Clone, QueryableByName)]
pub struct DueFix {
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub id: FixId,
    #[diesel(sql_type = diesel::sql_types::Integer)]
    pub pr_number: i32,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub package_name: String,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub repository_url: String,
    /// A refresh already found the branch pushed to by someone else (and said so).
    #[diesel(sql_type = diesel::sql_types::Bool)]
    pub left_alone: bool,
    #[diesel(sql_type = diesel::sql_types::Uuid)]
    pub project_id: ProjectId,
    #[diesel(sql_type = diesel::sql_types::Text)]
    pub ecosystem: Ecosystem,
    /// What the pull request proposes and lists now.
    #[diesel(sql_type = diesel::sql_types::Nullable<diesel::sql_types::Text>)]
    pub target_version: Option<String>,
    #[diesel(sql_type = diesel::sql_types::Array<diesel::sql_types::Text>)]
    pub advisories: Vec<String>,
}

/// Claims up to `limit` open pull requests not checked for `min_age_secs`, least recently
/// checked first, and marks them checked now, so several reconcilers (one per worker) share
/// the work and a forge is asked about each pull request at most once per interval. Rows a
/// job holds (it is updating the pull request) are skipped.
pub async fn claim_due(
    conn: &mut AsyncPgConnection,
    limit: i64,
    min_age_secs: i64,
) -> QueryResult<Vec<DueFix>> {
    use diesel::sql_types::{BigInt, Text};
    diesel::sql_query(
        "UPDATE remediation_fixes AS r SET checked_at = now()
         FROM projects p
         WHERE p.id = r.project_id AND r.id IN (
             SELECT id FROM remediation_fixes
             WHERE state = $1 AND pr_number IS NOT NULL
               AND (checked_at IS NULL OR checked_at < now() - make_interval(secs => $2))
             ORDER BY checked_at NULLS FIRST
             LIMIT $3
             FOR UPDATE SKIP LOCKED)
         RETURNING r.id, r.pr_number, r.package_name, p.repository_url,
                   r.left_alone_at IS NOT NULL AS left_alone, r.project_id, r.ecosystem,
                   r.target_version, r.advisories",
    )
    .bind::<Text, _>(RemediationStatus::PrOpen)
    .bind::<BigInt, _>(min_age_secs)
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await
}

/// The repository URL of a project (the reconciler resolves its forge from it).
pub async fn repository_url(
    conn: &mut AsyncPgConnection,
    project: ProjectId,
) -> QueryResult<Option<String>> {
    projects::table
        .find(project)
        .select(projects::repository_url)
        .first(conn)
        .await
        .optional()
}
