//! Operation rows and their event history: creation (with the outbox row, in the caller's
//! transaction), the organisation-scoped reads of the polling API, and the worker's state
//! changes. Every status or step change writes an event, so the history explains the row.

use chrono::{DateTime, Utc};
use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::models::{
    ASSESSMENT_RESOURCE, Operation, OperationStatus, REMEDIATION_KIND, RemediationTarget, Step,
};
use super::schema::{operation_events, operations};

const LIVE: [&str; 2] = [
    "ASYNC_OPERATION_STATUS_PENDING",
    "ASYNC_OPERATION_STATUS_RUNNING",
];
/// The predicate of the `operations_one_live_per_resource` index, verbatim.
const LIVE_PREDICATE: &str =
    "status IN ('ASYNC_OPERATION_STATUS_PENDING', 'ASYNC_OPERATION_STATUS_RUNNING')";

/// Inserts a PENDING operation for the assessment unless one is already live. Returns the id
/// and whether it was created. The partial unique index makes this safe across intake replicas:
/// a concurrent insert waits for the other transaction and then finds its row.
pub async fn create_or_get_live(
    conn: &mut AsyncPgConnection,
    target: &RemediationTarget,
) -> QueryResult<(Uuid, bool)> {
    let id = Uuid::new_v4();
    let inserted: Option<Uuid> = diesel::insert_into(operations::table)
        .values((
            operations::id.eq(id),
            operations::organization_id.eq(target.organization_id),
            operations::kind.eq(REMEDIATION_KIND),
            operations::status.eq(OperationStatus::Pending.as_str()),
            operations::resource_type.eq(ASSESSMENT_RESOURCE),
            operations::resource_id.eq(target.assessment_id),
            operations::project_id.eq(target.project_id),
            operations::project_version_id.eq(target.project_version_id),
        ))
        .on_conflict((operations::resource_type, operations::resource_id))
        // The predicate must be literal SQL: with a bind parameter Postgres cannot match it to
        // the partial index once it switches the prepared statement to a generic plan.
        .filter_target(diesel::dsl::sql::<diesel::sql_types::Bool>(LIVE_PREDICATE))
        .do_nothing()
        .returning(operations::id)
        .get_result(conn)
        .await
        .optional()?;
    if let Some(id) = inserted {
        record_event(conn, id, EventKind::Status(OperationStatus::Pending), None).await?;
        return Ok((id, true));
    }
    let existing = operations::table
        .filter(operations::resource_type.eq(ASSESSMENT_RESOURCE))
        .filter(operations::resource_id.eq(target.assessment_id))
        .filter(operations::status.eq_any(LIVE))
        .select(operations::id)
        .first(conn)
        .await?;
    Ok((existing, false))
}

/// One operation, visible only to its organisation (`None`: no scoping, for workers and ops).
pub async fn get(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    organization: Option<Uuid>,
) -> QueryResult<Option<Operation>> {
    let mut query = operations::table
        .filter(operations::id.eq(id))
        .select(Operation::as_select())
        .into_boxed();
    if let Some(org) = organization {
        query = query.filter(operations::organization_id.eq(org));
    }
    query.first(conn).await.optional()
}

#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    pub resource: Option<(String, Uuid)>,
    pub status: Option<OperationStatus>,
}

/// A page of an organisation's operations, newest first, and the total count.
pub async fn list(
    conn: &mut AsyncPgConnection,
    organization: Uuid,
    filter: &ListFilter,
    page: i64,
    page_size: i64,
) -> QueryResult<(Vec<Operation>, i64)> {
    let scoped = || {
        let mut query = operations::table
            .filter(operations::organization_id.eq(organization))
            .into_boxed();
        if let Some((resource_type, resource_id)) = &filter.resource {
            query = query
                .filter(operations::resource_type.eq(resource_type.clone()))
                .filter(operations::resource_id.eq(*resource_id));
        }
        if let Some(status) = filter.status {
            query = query.filter(operations::status.eq(status.as_str()));
        }
        query
    };
    let total = scoped().count().get_result(conn).await?;
    let rows = scoped()
        .select(Operation::as_select())
        .order((operations::created_at.desc(), operations::id.desc()))
        .limit(page_size)
        .offset(page.saturating_mul(page_size))
        .load(conn)
        .await?;
    Ok((rows, total))
}

/// What a worker found when it tried to claim an operation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// PENDING (or RUNNING with a dead heartbeat) is now RUNNING for this worker.
    Claimed { attempt: i32 },
    /// Another worker holds it, or it already ended: acknowledge the message and move on.
    Skip { status: String },
    /// No such operation: a poison message.
    Missing,
}

/// PENDING -> RUNNING atomically. A RUNNING operation whose heartbeat is older than
/// `stale_after` had its worker die; it is taken over so the job resumes.
pub async fn claim(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    stale_after: chrono::Duration,
) -> QueryResult<Claim> {
    let stale_before: DateTime<Utc> = Utc::now() - stale_after;
    let claimed: Option<i32> = diesel::update(operations::table.find(id))
        .filter(
            operations::status
                .eq(OperationStatus::Pending.as_str())
                .or(operations::status
                    .eq(OperationStatus::Running.as_str())
                    .and(operations::heartbeat_at.lt(stale_before))),
        )
        .set((
            operations::status.eq(OperationStatus::Running.as_str()),
            operations::step.eq(Step::Claim.as_str()),
            operations::attempts.eq(operations::attempts + 1),
            operations::started_at.eq(diesel::dsl::now),
            operations::heartbeat_at.eq(diesel::dsl::now),
            operations::error_message.eq(None::<String>),
            operations::updated_at.eq(diesel::dsl::now),
        ))
        .returning(operations::attempts)
        .get_result(conn)
        .await
        .optional()?;
    if let Some(attempt) = claimed {
        record_event(conn, id, EventKind::Status(OperationStatus::Running), None).await?;
        return Ok(Claim::Claimed { attempt });
    }
    let status: Option<String> = operations::table
        .find(id)
        .select(operations::status)
        .first(conn)
        .await
        .optional()?;
    Ok(match status {
        Some(status) => Claim::Skip { status },
        None => Claim::Missing,
    })
}

/// Records the step a running operation is starting, and refreshes its heartbeat.
/// Returns false when the operation is no longer RUNNING (it was cancelled or taken over).
pub async fn start_step(conn: &mut AsyncPgConnection, id: Uuid, step: Step) -> QueryResult<bool> {
    let updated = diesel::update(operations::table.find(id))
        .filter(operations::status.eq(OperationStatus::Running.as_str()))
        .set((
            operations::step.eq(step.as_str()),
            operations::heartbeat_at.eq(diesel::dsl::now),
            operations::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    if updated == 1 {
        record_event(conn, id, EventKind::Step(step), None).await?;
    }
    Ok(updated == 1)
}

pub async fn heartbeat(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<usize> {
    diesel::update(operations::table.find(id))
        .filter(operations::status.eq(OperationStatus::Running.as_str()))
        .set(operations::heartbeat_at.eq(diesel::dsl::now))
        .execute(conn)
        .await
}

/// Ends a RUNNING operation. Returns false if it was not RUNNING any more.
pub async fn finish(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    status: OperationStatus,
    output: Option<&serde_json::Value>,
    error_message: Option<&str>,
) -> QueryResult<bool> {
    let updated = diesel::update(operations::table.find(id))
        .filter(operations::status.eq(OperationStatus::Running.as_str()))
        .set((
            operations::status.eq(status.as_str()),
            operations::output.eq(output),
            operations::error_message.eq(error_message),
            operations::finished_at.eq(diesel::dsl::now),
            operations::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    if updated == 1 {
        record_event(conn, id, EventKind::Status(status), error_message).await?;
    }
    Ok(updated == 1)
}

/// Puts a RUNNING operation back to PENDING for a later attempt, keeping the error.
pub async fn release_for_retry(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    attempt: i32,
    error_message: &str,
) -> QueryResult<bool> {
    let updated = diesel::update(operations::table.find(id))
        .filter(operations::status.eq(OperationStatus::Running.as_str()))
        .set((
            operations::status.eq(OperationStatus::Pending.as_str()),
            operations::error_message.eq(error_message),
            operations::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await?;
    if updated == 1 {
        record_attempt_error(conn, id, attempt, error_message).await?;
        record_event(conn, id, EventKind::Status(OperationStatus::Pending), None).await?;
    }
    Ok(updated == 1)
}

pub async fn record_attempt_error(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    attempt: i32,
    message: &str,
) -> QueryResult<usize> {
    diesel::insert_into(operation_events::table)
        .values((
            operation_events::operation_id.eq(id),
            operation_events::kind.eq("attempt_error"),
            operation_events::attempt.eq(attempt),
            operation_events::message.eq(message),
        ))
        .execute(conn)
        .await
}

pub enum EventKind {
    Status(OperationStatus),
    Step(Step),
}

async fn record_event(
    conn: &mut AsyncPgConnection,
    id: Uuid,
    kind: EventKind,
    message: Option<&str>,
) -> QueryResult<usize> {
    let (kind, status, step) = match kind {
        EventKind::Status(s) => ("status", Some(s.as_str()), None),
        EventKind::Step(s) => ("step", None, Some(s.as_str())),
    };
    diesel::insert_into(operation_events::table)
        .values((
            operation_events::operation_id.eq(id),
            operation_events::kind.eq(kind),
            operation_events::status.eq(status),
            operation_events::step.eq(step),
            operation_events::message.eq(message),
        ))
        .execute(conn)
        .await
}

/// One line of an operation's history.
#[derive(Debug, Clone, Queryable, serde::Serialize)]
pub struct OperationEvent {
    pub at: DateTime<Utc>,
    pub kind: String,
    pub status: Option<String>,
    pub step: Option<String>,
    pub attempt: Option<i32>,
    pub message: Option<String>,
}

pub async fn history(conn: &mut AsyncPgConnection, id: Uuid) -> QueryResult<Vec<OperationEvent>> {
    operation_events::table
        .filter(operation_events::operation_id.eq(id))
        .order(operation_events::id.asc())
        .select((
            operation_events::at,
            operation_events::kind,
            operation_events::status,
            operation_events::step,
            operation_events::attempt,
            operation_events::message,
        ))
        .load(conn)
        .await
}
