//! The operations console's reads: the operations table (keyset-paginated, filtered), one
//! operation with its project and finding, the overview's figures (outbox backlog, jobs per
//! minute, oldest PENDING, workers seen) and the repositories page. Each takes the caller's
//! [`Scope`], so a read-only session never reads another organisation's rows.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel::sql_types::{BigInt, Nullable, Text, Timestamptz, Uuid as SqlUuid};
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::models::Operation;
use super::schema::{assessments, findings, operations, outbox, projects};
use crate::lifecycle::{EventKind, OperationId, OperationStatus, OrganizationId, ProjectId, Step};

/// Whose rows a session may read: one organisation, or every one (the admin scope).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    Organization(OrganizationId),
    All,
}

impl Scope {
    pub fn organization(self) -> Option<OrganizationId> {
        match self {
            Scope::Organization(org) => Some(org),
            Scope::All => None,
        }
    }
}

/// The operations table's filters; every one optional.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OperationFilter {
    pub id: Option<OperationId>,
    pub status: Option<OperationStatus>,
    pub project: Option<ProjectId>,
    pub step: Option<Step>,
    /// Created at or after.
    pub from: Option<DateTime<Utc>>,
    /// Created before.
    pub to: Option<DateTime<Utc>>,
}

/// Where a page starts: the row after this one, in `(created_at, id)` descending order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cursor {
    pub created_at: DateTime<Utc>,
    pub id: OperationId,
}

impl Cursor {
    /// `<microseconds since the epoch>_<uuid>`: exact (Postgres keeps microseconds) and safe in
    /// a URL.
    pub fn encode(&self) -> String {
        format!("{}_{}", self.created_at.timestamp_micros(), self.id)
    }

    pub fn decode(text: &str) -> Option<Cursor> {
        let (micros, id) = text.split_once('_')?;
        Some(Cursor {
            created_at: DateTime::from_timestamp_micros(micros.parse().ok()?)?,
            id: id.parse().ok()?,
        })
    }
}

/// One row of the operations table.
#[derive(Debug, Clone)]
pub struct OperationRow {
    pub operation: Operation,
    pub project_name: String,
}

/// `query` with `predicate(value)` added to its WHERE when a filter field is set, unchanged
/// when it is not.
fn narrowed<Query, Value, Predicate>(
    query: Query,
    value: Option<Value>,
    predicate: impl FnOnce(Value) -> Predicate,
) -> Query
where
    Query: diesel::query_dsl::methods::FilterDsl<Predicate, Output = Query>,
{
    match value {
        Some(value) => diesel::query_dsl::methods::FilterDsl::filter(query, predicate(value)),
        None => query,
    }
}

/// A page of operations, newest first, after `cursor`; `limit + 1` rows are read so the caller
/// knows whether another page follows.
pub async fn list_operations(
    conn: &mut AsyncPgConnection,
    scope: Scope,
    filter: &OperationFilter,
    cursor: Option<Cursor>,
    limit: i64,
) -> QueryResult<Vec<OperationRow>> {
    let query = operations::table
        .inner_join(projects::table)
        .select((Operation::as_select(), projects::name))
        .into_boxed();
    let query = narrowed(query, scope.organization(), |org| {
        operations::organization_id.eq(org)
    });
    let query = narrowed(query, filter.id, |id| operations::id.eq(id));
    let query = narrowed(query, filter.status, |status| operations::status.eq(status));
    let query = narrowed(query, filter.project, |project| {
        operations::project_id.eq(project)
    });
    let query = narrowed(query, filter.step, |step| operations::step.eq(step));
    let query = narrowed(query, filter.from, |from| operations::created_at.ge(from));
    let mut query = narrowed(query, filter.to, |to| operations::created_at.lt(to));
    if let Some(cursor) = cursor {
        // A row comparison, which Postgres reads as a range over the (created_at, id) indexes.
        query = query.filter(
            diesel::dsl::sql::<diesel::sql_types::Bool>(
                "(operations.created_at, operations.id) < (",
            )
            .bind::<Timestamptz, _>(cursor.created_at)
            .sql(", ")
            .bind::<SqlUuid, _>(cursor.id)
            .sql(")"),
        );
    }
    let rows: Vec<(Operation, String)> = query
        .order((operations::created_at.desc(), operations::id.desc()))
        .limit(limit + 1)
        .load(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|(operation, project_name)| OperationRow {
            operation,
            project_name,
        })
        .collect())
}

/// One operation with what its page shows beside it.
#[derive(Debug, Clone)]
pub struct OperationDetail {
    pub operation: Operation,
    pub project_name: String,
    pub repository_url: String,
    pub vulnerability_id: Option<String>,
    pub package_name: Option<String>,
    pub ecosystem: Option<String>,
    pub pr_url: Option<String>,
}

pub async fn operation_detail(
    conn: &mut AsyncPgConnection,
    id: OperationId,
    scope: Scope,
) -> QueryResult<Option<OperationDetail>> {
    let mut query = operations::table
        .inner_join(projects::table)
        .filter(operations::id.eq(id))
        .select((
            Operation::as_select(),
            projects::name,
            projects::repository_url,
        ))
        .into_boxed();
    if let Some(org) = scope.organization() {
        query = query.filter(operations::organization_id.eq(org));
    }
    let Some((operation, project_name, repository_url)) = query
        .first::<(Operation, String, String)>(conn)
        .await
        .optional()?
    else {
        return Ok(None);
    };
    let finding: Option<(String, String, String, Option<String>)> = assessments::table
        .inner_join(findings::table)
        .filter(assessments::id.eq(operation.resource_id))
        .select((
            findings::vulnerability_id,
            findings::package_name,
            findings::ecosystem,
            assessments::remediation_pr_url,
        ))
        .first(conn)
        .await
        .optional()?;
    let (vulnerability_id, package_name, ecosystem, assessment_pr) = match finding {
        Some((v, p, e, pr)) => (Some(v), Some(p), Some(e), pr),
        None => (None, None, None, None),
    };
    // The operation's own output names its PR; the assessment's write-back is the fallback.
    let pr_url = operation
        .output
        .as_ref()
        .and_then(|o| o.get("pr_url"))
        .and_then(|v| v.as_str())
        .map(str::to_owned)
        .or(assessment_pr);
    Ok(Some(OperationDetail {
        operation,
        project_name,
        repository_url,
        vulnerability_id,
        package_name,
        ecosystem,
        pr_url,
    }))
}

/// The organisation of each operation (missing ones are left out): the console shows a
/// read-only session only the dead letters of its own organisation.
pub async fn organizations_of(
    conn: &mut AsyncPgConnection,
    ids: &[OperationId],
) -> QueryResult<HashMap<OperationId, OrganizationId>> {
    let rows: Vec<(OperationId, OrganizationId)> = operations::table
        .filter(operations::id.eq_any(ids))
        .select((operations::id, operations::organization_id))
        .load(conn)
        .await?;
    Ok(rows.into_iter().collect())
}

/// Outbox rows not yet published, and of those the ones quarantined after a failed publish.
pub async fn outbox_backlog(conn: &mut AsyncPgConnection) -> QueryResult<(i64, i64)> {
    let unpublished = outbox::table
        .filter(outbox::published_at.is_null())
        .count()
        .get_result(conn)
        .await?;
    let quarantined = outbox::table
        .filter(outbox::published_at.is_null())
        .filter(outbox::last_error.is_not_null())
        .count()
        .get_result(conn)
        .await?;
    Ok((unpublished, quarantined))
}

/// The oldest PENDING operation: its id and when it was created.
pub async fn oldest_pending(
    conn: &mut AsyncPgConnection,
    scope: Scope,
) -> QueryResult<Option<(OperationId, DateTime<Utc>)>> {
    let mut query = operations::table
        .filter(operations::status.eq(OperationStatus::Pending))
        .select((operations::id, operations::created_at))
        .order(operations::created_at.asc())
        .into_boxed();
    if let Some(org) = scope.organization() {
        query = query.filter(operations::organization_id.eq(org));
    }
    query.first(conn).await.optional()
}

/// Jobs that ended in one minute.
#[derive(Debug, Clone, QueryableByName, PartialEq, Eq)]
pub struct MinuteCounts {
    #[diesel(sql_type = Timestamptz)]
    pub minute: DateTime<Utc>,
    #[diesel(sql_type = BigInt)]
    pub succeeded: i64,
    #[diesel(sql_type = BigInt)]
    pub failed: i64,
    /// Failed attempts that went back to the queue for another try.
    #[diesel(sql_type = BigInt)]
    pub retried: i64,
}

/// Per minute over the last hour, from the operations' history: SUCCEEDED and FAILED status
/// events, and retries. Every failed attempt writes an `attempt_error` event, the last one of
/// a failed job too (in the same transaction, so at the same instant as its FAILED event), so
/// retries are the attempt errors less the failures. Minutes with nothing are left out.
pub async fn throughput(
    conn: &mut AsyncPgConnection,
    scope: Scope,
) -> QueryResult<Vec<MinuteCounts>> {
    diesel::sql_query(
        "SELECT date_trunc('minute', e.at) AS minute,
                count(*) FILTER (WHERE e.kind = $4 AND e.status = $1) AS succeeded,
                count(*) FILTER (WHERE e.kind = $4 AND e.status = $2) AS failed,
                greatest(count(*) FILTER (WHERE e.kind = $5)
                         - count(*) FILTER (WHERE e.kind = $4 AND e.status = $2), 0)
                    AS retried
         FROM operation_events e
         WHERE e.at > now() - interval '1 hour'
           AND (e.kind = $5 OR (e.kind = $4 AND e.status IN ($1, $2)))
           AND ($3::uuid IS NULL OR EXISTS (
                SELECT 1 FROM operations o WHERE o.id = e.operation_id AND o.organization_id = $3))
         GROUP BY 1 ORDER BY 1",
    )
    .bind::<Text, _>(OperationStatus::Succeeded)
    .bind::<Text, _>(OperationStatus::Failed)
    .bind::<Nullable<SqlUuid>, _>(scope.organization())
    .bind::<Text, _>(EventKind::Status)
    .bind::<Text, _>(EventKind::AttemptError)
    .load(conn)
    .await
}

/// A worker process seen through the heartbeats of the operations it ran.
#[derive(Debug, Clone)]
pub struct WorkerSeen {
    /// `host/pid`, as the worker names itself when it claims.
    pub name: String,
    pub last_heartbeat: DateTime<Utc>,
    /// What it is running now.
    pub running: Vec<RunningJob>,
}

#[derive(Debug, Clone)]
pub struct RunningJob {
    pub id: OperationId,
    pub step: Option<Step>,
    pub started_at: Option<DateTime<Utc>>,
    pub project_name: String,
}

/// Workers whose last heartbeat is within `window`, freshest first, with the RUNNING
/// operations each holds. A worker that ran nothing in the window is not seen: heartbeats
/// live on operations, not on the workers.
pub async fn workers_seen(
    conn: &mut AsyncPgConnection,
    scope: Scope,
    window: chrono::Duration,
) -> QueryResult<Vec<WorkerSeen>> {
    let since = Utc::now() - window;
    let mut seen = operations::table
        .filter(operations::heartbeat_at.gt(since))
        .filter(operations::claimed_by.is_not_null())
        .group_by(operations::claimed_by)
        .select((
            operations::claimed_by.assume_not_null(),
            diesel::dsl::max(operations::heartbeat_at).assume_not_null(),
        ))
        .into_boxed();
    if let Some(org) = scope.organization() {
        seen = seen.filter(operations::organization_id.eq(org));
    }
    let seen: Vec<(String, DateTime<Utc>)> = seen.load(conn).await?;
    let mut running = operations::table
        .inner_join(projects::table)
        .filter(operations::status.eq(OperationStatus::Running))
        .filter(operations::claimed_by.is_not_null())
        // A RUNNING row with an older heartbeat belongs to a worker that is not listed.
        .filter(operations::heartbeat_at.gt(since))
        .select((
            operations::claimed_by.assume_not_null(),
            operations::id,
            operations::step,
            operations::started_at,
            projects::name,
        ))
        .order(operations::started_at.asc())
        .into_boxed();
    if let Some(org) = scope.organization() {
        running = running.filter(operations::organization_id.eq(org));
    }
    type Running = (
        String,
        OperationId,
        Option<Step>,
        Option<DateTime<Utc>>,
        String,
    );
    let running: Vec<Running> = running.load(conn).await?;
    let mut workers: Vec<WorkerSeen> = seen
        .into_iter()
        .map(|(name, last_heartbeat)| WorkerSeen {
            name,
            last_heartbeat,
            running: Vec::new(),
        })
        .collect();
    workers.sort_by_key(|w| std::cmp::Reverse(w.last_heartbeat));
    for (worker, id, step, started_at, project_name) in running {
        if let Some(seen) = workers.iter_mut().find(|w| w.name == worker) {
            seen.running.push(RunningJob {
                id,
                step,
                started_at,
                project_name,
            });
        }
    }
    Ok(workers)
}

/// One repository (project) on the repositories page.
#[derive(Debug, Clone, QueryableByName)]
pub struct RepositoryRow {
    #[diesel(sql_type = SqlUuid)]
    pub project_id: ProjectId,
    #[diesel(sql_type = Text)]
    pub name: String,
    #[diesel(sql_type = Text)]
    pub repository_url: String,
    /// Assessments still AFFECTED whose remediation PR is open (what the worker's cap counts).
    #[diesel(sql_type = BigInt)]
    pub open_prs: i64,
    /// Operations that FAILED in the last 24 hours.
    #[diesel(sql_type = BigInt)]
    pub recent_failures: i64,
    #[diesel(sql_type = Nullable<Text>)]
    pub last_error: Option<String>,
    #[diesel(sql_type = Nullable<Timestamptz>)]
    pub last_failure_at: Option<DateTime<Utc>>,
}

/// Repositories, most open PRs first, then most recent failures; at most `limit`.
pub async fn repositories(
    conn: &mut AsyncPgConnection,
    scope: Scope,
    limit: i64,
) -> QueryResult<Vec<RepositoryRow>> {
    diesel::sql_query(
        // Open PRs are counted once for all projects, not once per project: one per package
        // fix open on the forge (several assessments share it), plus assessments written back
        // PR_OPEN before package fixes existed (through the partial index of PR_OPEN
        // assessments, so the statuses are literals, as the indexes' predicates are); the
        // latest failure is read in the order of the
        // partial index of FAILED operations (its `DESC NULLS LAST` is the ORDER BY's, so
        // Postgres reads one index entry instead of sorting every failure).
        "WITH open AS (
             SELECT project_id, count(*) AS n FROM (
                 SELECT r.project_id FROM remediation_fixes r WHERE r.state = 'PR_OPEN'
                 UNION ALL
                 SELECT f.project_id
                 FROM assessments a JOIN findings f ON f.id = a.finding_id
                 WHERE a.remediation_status = 'PR_OPEN'
                   AND a.status = 'ASSESSMENT_STATUS_AFFECTED'
                   AND a.remediation_fix_id IS NULL) AS prs
             GROUP BY project_id)
         SELECT p.id AS project_id, p.name, p.repository_url,
                coalesce(open.n, 0) AS open_prs,
                (SELECT count(*) FROM operations o
                 WHERE o.project_id = p.id AND o.status = 'ASYNC_OPERATION_STATUS_FAILED'
                   AND o.finished_at > now() - interval '24 hours') AS recent_failures,
                last.error_message AS last_error, last.finished_at AS last_failure_at
         FROM projects p
         LEFT JOIN open ON open.project_id = p.id
         LEFT JOIN LATERAL (
             SELECT o.error_message, o.finished_at FROM operations o
             WHERE o.project_id = p.id AND o.status = 'ASYNC_OPERATION_STATUS_FAILED'
             ORDER BY o.finished_at DESC NULLS LAST LIMIT 1) AS last ON true
         WHERE $1::uuid IS NULL OR p.organization_id = $1
         ORDER BY open_prs DESC, recent_failures DESC, p.name
         LIMIT $2",
    )
    .bind::<Nullable<SqlUuid>, _>(scope.organization())
    .bind::<BigInt, _>(limit)
    .load(conn)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_literal_statuses_are_the_enums_spellings() {
        use crate::lifecycle::status::RemediationStatus;
        assert_eq!(RemediationStatus::PrOpen.as_str(), "PR_OPEN");
        assert_eq!(
            super::super::models::AssessmentStatus::Affected.as_str(),
            "ASSESSMENT_STATUS_AFFECTED"
        );
        assert_eq!(
            OperationStatus::Failed.as_str(),
            "ASYNC_OPERATION_STATUS_FAILED"
        );
    }

    #[test]
    fn a_cursor_reads_back_exactly() {
        let cursor = Cursor {
            created_at: DateTime::from_timestamp_micros(1_764_650_000_123_456).unwrap(),
            id: OperationId::new_random(),
        };
        assert_eq!(Cursor::decode(&cursor.encode()), Some(cursor));
        assert_eq!(Cursor::decode("x_y"), None);
        assert_eq!(Cursor::decode("12"), None);
    }
}
