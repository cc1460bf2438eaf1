//! The intake's two statements. `POST /v1/findings/auto-remediation` used to pay nine round
//! trips (pool check, rate-limit take, BEGIN, assessment, fix record, operation, event, outbox,
//! COMMIT); it now pays two, each prepared once per connection:
//!
//! - [`look_up`]: the rate-limit take, the assessment joined to its finding and project, and
//!   the package's (and the repository group's) pull-request record, in one statement.
//! - [`create_live_with_job`]: the operation, its first event and its outbox row in one
//!   statement (so in one transaction: invariant 1), or the live operation already there.
//!
//! The guarantees are the same as with the explicit transaction: the partial unique index
//! keeps one live operation per assessment, the outbox row commits with its operation, and the
//! bucket update is one atomic upsert. Under READ COMMITTED the checks between the two
//! statements were never atomic with the insert anyway (each statement had its own snapshot).

use crate::lifecycle::OrganizationId;
use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::{Bool, Double, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::fixes::FixRecord;
use super::models::{ASSESSMENT_RESOURCE, REMEDIATION_KIND, RemediationTarget, TargetRow};
use super::operations::live_predicate;
use super::rate_limit::{Bucket, Take, take_columns, take_cte};
use super::sql::{Bind, Prepared};
use crate::lifecycle::{AssessmentId, EventKind, OperationId, OperationStatus, RemediationStatus};
use crate::queue::message::JobMessage;

/// What the intake needs to decide on a request.
#[derive(Debug)]
pub struct Lookup {
    /// `None` when the organisation has no rate limit.
    pub take: Option<Take>,
    /// `None` when the assessment does not exist or belongs to another organisation.
    pub target: Option<RemediationTarget>,
    /// The pull-request record of the package's fix, and of the repository group's.
    pub package_fix: Option<FixRecord>,
    pub group_fix: Option<FixRecord>,
}

/// `take` runs only when `$4` (a limit is set).
const LOOK_UP: &str = concat!(
    "WITH ",
    take_cte!(),
    "
SELECT ",
    take_columns!(),
    ",
    t.assessment_id, t.assessment_status, t.finding_id, t.project_version_id,
    t.vulnerability_id, t.aliases, t.severity, t.summary, t.package_name, t.ecosystem, t.purl,
    t.installed_version, t.fixed_versions, t.project_id, t.organization_id, t.repository_url,
    t.default_branch, t.test_install, t.test_command,
    pf.state AS package_fix_state, pf.target_version AS package_fix_target_version,
    pf.pr_url AS package_fix_pr_url, pf.closed_at AS package_fix_closed_at,
    (pf.id IS NOT NULL) AS has_package_fix,
    gf.state AS group_fix_state, gf.target_version AS group_fix_target_version,
    gf.pr_url AS group_fix_pr_url, gf.closed_at AS group_fix_closed_at,
    (gf.id IS NOT NULL) AS has_group_fix
FROM (SELECT 1) AS request
LEFT JOIN (
    SELECT a.id AS assessment_id, a.status AS assessment_status, f.id AS finding_id,
           f.project_version_id, f.vulnerability_id, f.aliases, f.severity, f.summary,
           f.package_name, f.ecosystem, f.purl, f.installed_version, f.fixed_versions,
           p.id AS project_id, p.organization_id, p.repository_url, p.default_branch,
           p.test_install, p.test_command
    FROM assessments a
    JOIN findings f ON f.id = a.finding_id
    JOIN projects p ON p.id = f.project_id
    WHERE a.id = $5 AND p.organization_id = $1
) AS t ON true
LEFT JOIN remediation_fixes pf
    ON pf.project_id = t.project_id AND pf.ecosystem = t.ecosystem
   AND pf.package_name = t.package_name
LEFT JOIN remediation_fixes gf
    ON gf.project_id = t.project_id AND gf.ecosystem = t.ecosystem AND gf.package_name = $6"
);

#[derive(QueryableByName)]
struct LookupRow {
    #[diesel(sql_type = Bool)]
    granted: bool,
    #[diesel(sql_type = Nullable<Double>)]
    available: Option<f64>,
    /// `None` when the assessment does not exist or belongs to another organisation (the
    /// inner join matched nothing, so its columns are null).
    #[diesel(embed)]
    target: Option<TargetRow>,
    #[diesel(sql_type = Bool)]
    has_package_fix: bool,
    #[diesel(sql_type = Nullable<Text>)]
    package_fix_state: Option<RemediationStatus>,
    #[diesel(sql_type = Nullable<Text>)]
    package_fix_target_version: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    package_fix_pr_url: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    package_fix_closed_at: Option<DateTime<Utc>>,
    #[diesel(sql_type = Bool)]
    has_group_fix: bool,
    #[diesel(sql_type = Nullable<Text>)]
    group_fix_state: Option<RemediationStatus>,
    #[diesel(sql_type = Nullable<Text>)]
    group_fix_target_version: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    group_fix_pr_url: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    group_fix_closed_at: Option<DateTime<Utc>>,
}

/// One statement: takes a token from `organization`'s bucket (when `bucket` is set) and reads
/// the assessment, scoped to the organisation, with the pull-request records of its package
/// and of `group_key` (the repository group's fix).
pub async fn look_up(
    conn: &mut AsyncPgConnection,
    organization: OrganizationId,
    bucket: Option<Bucket>,
    assessment: AssessmentId,
    group_key: &str,
) -> diesel::QueryResult<Lookup> {
    let limit = bucket.unwrap_or(Bucket {
        capacity: 0.0,
        per_second: 0.0,
    });
    let mut row: LookupRow = Prepared::new(LOOK_UP)
        .bind(Bind::Uuid(organization.0))
        .bind(Bind::Float(limit.capacity))
        .bind(Bind::Float(limit.per_second))
        .bind(Bind::Bool(bucket.is_some()))
        .bind(Bind::Uuid(assessment.0))
        .bind(Bind::Text(group_key.to_owned()))
        .get_result(conn)
        .await?;
    let take = bucket.map(|bucket| match row.granted {
        true => Take::Granted,
        false => bucket.denied(row.available.unwrap_or(0.0)),
    });
    let package_fix = row.has_package_fix.then(|| FixRecord {
        state: row.package_fix_state,
        target_version: row.package_fix_target_version.take(),
        pr_url: row.package_fix_pr_url.take(),
        closed_at: row.package_fix_closed_at,
    });
    let group_fix = row.has_group_fix.then(|| FixRecord {
        state: row.group_fix_state,
        target_version: row.group_fix_target_version.take(),
        pr_url: row.group_fix_pr_url.take(),
        closed_at: row.group_fix_closed_at,
    });
    Ok(Lookup {
        take,
        target: row.target.map(RemediationTarget::from),
        package_fix,
        group_fix,
    })
}

/// The event and the outbox row are inserted only for an operation this statement created;
/// the second branch returns the live one a committed request made before this statement.
const CREATE_LIVE_WITH_JOB: &str = concat!(
    "
WITH created AS (
    INSERT INTO operations
        (id, organization_id, kind, status, resource_type, resource_id, project_id,
         project_version_id)
    VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
    ON CONFLICT (resource_type, resource_id) WHERE ",
    live_predicate!(),
    " DO NOTHING
    RETURNING id
), event AS (
    INSERT INTO operation_events (operation_id, kind, status)
    SELECT id, $10, $4 FROM created
), job AS (
    INSERT INTO outbox (operation_id, payload)
    SELECT id, $9 FROM created
)
SELECT id, true AS created FROM created
UNION ALL
SELECT id, false FROM operations
WHERE resource_type = $5 AND resource_id = $6 AND ",
    live_predicate!(),
    " AND NOT EXISTS (SELECT 1 FROM created)"
);

#[derive(QueryableByName)]
struct Created {
    #[diesel(sql_type = SqlUuid)]
    id: OperationId,
    #[diesel(sql_type = Bool)]
    created: bool,
}

/// Rounds of the race below before giving up (each needs another request to win it).
const MAX_ROUNDS: usize = 3;

/// Creates the PENDING operation for `target` with its first event and its outbox row
/// (the job message), or returns the live operation already there. Returns the id and whether
/// it was created.
pub async fn create_live_with_job(
    conn: &mut AsyncPgConnection,
    target: &RemediationTarget,
) -> anyhow::Result<(OperationId, bool)> {
    for _ in 0..MAX_ROUNDS {
        let id = OperationId::new_random();
        let job = serde_json::to_value(JobMessage::remediation(id))?;
        let rows: Vec<Created> = Prepared::new(CREATE_LIVE_WITH_JOB)
            .bind(Bind::Uuid(id.0))
            .bind(Bind::Uuid(target.organization_id.0))
            .bind(Bind::Text(REMEDIATION_KIND.to_owned()))
            .bind(Bind::Text(OperationStatus::Pending.as_str().to_owned()))
            .bind(Bind::Text(ASSESSMENT_RESOURCE.to_owned()))
            .bind(Bind::Uuid(target.assessment_id.0))
            .bind(Bind::Uuid(target.project_id.0))
            .bind(Bind::OptionalUuid(
                target.facts.project_version_id.map(Uuid::from),
            ))
            .bind(Bind::Json(job))
            .bind(Bind::Text(EventKind::Status.as_str().to_owned()))
            .load(conn)
            .await?;
        if let Some(row) = <[Created]>::first(&rows) {
            return Ok((row.id, row.created));
        }
        // A concurrent request inserted the live operation after this statement's snapshot
        // was taken (the insert waited for it, then did nothing): a new statement sees it,
        // unless it has ended meanwhile, and then the next round creates one.
        if let Some(live) = live_operation(conn, target.assessment_id).await? {
            return Ok((live, false));
        }
    }
    anyhow::bail!(
        "could not create or find a live operation for assessment {} in {MAX_ROUNDS} rounds \
         (operations for it are being created and ended concurrently)",
        target.assessment_id
    )
}

async fn live_operation(
    conn: &mut AsyncPgConnection,
    assessment: AssessmentId,
) -> diesel::QueryResult<Option<OperationId>> {
    use super::schema::operations;
    use diesel::{ExpressionMethods, OptionalExtension, QueryDsl};
    operations::table
        .filter(operations::resource_type.eq(ASSESSMENT_RESOURCE))
        .filter(operations::resource_id.eq(assessment))
        .filter(operations::status.eq_any(OperationStatus::LIVE))
        .select(operations::id)
        .first(conn)
        .await
        .optional()
}
