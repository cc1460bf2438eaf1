//! Operation rows and their event history: creation (with the outbox row, in the caller's
//! transaction), the organisation-scoped reads of the polling API, and the worker's state
//! changes. Every status or step change writes an event, so the history explains the row.

use crate::lifecycle::OrganizationId;
use chrono::{DateTime, Utc};
use diesel::prelude::*;
// The function and, for `auto_type`, the type of its statement.
use diesel::dsl::update;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use futures_util::future::{BoxFuture, FutureExt};

use super::models::{ASSESSMENT_RESOURCE, Operation, REMEDIATION_KIND, RemediationTarget};
use super::schema::{operation_events, operations};
use crate::lifecycle::{AssessmentId, EventKind, OperationId, OperationStatus, Step};

/// The predicate of the `operations_one_live_per_resource` index, verbatim: `OperationStatus::LIVE`
/// spelled as SQL (a unit test keeps the two in step). A macro, so that hand-written statements
/// can `concat!` it into their text.
macro_rules! live_predicate {
    () => {
        "status IN ('ASYNC_OPERATION_STATUS_PENDING', 'ASYNC_OPERATION_STATUS_RUNNING')"
    };
}
pub(crate) use live_predicate;
const LIVE_PREDICATE: &str = live_predicate!();

/// Inserts a PENDING operation for the assessment unless one is already live. Returns the id
/// and whether it was created. The partial unique index makes this safe across intake replicas:
/// a concurrent insert waits for the other transaction and then finds its row.
pub async fn create_or_get_live(
    conn: &mut AsyncPgConnection,
    target: &RemediationTarget,
) -> QueryResult<(OperationId, bool)> {
    let id = OperationId::new_random();
    let insert = diesel::insert_into(operations::table)
        .values((
            operations::id.eq(id),
            operations::organization_id.eq(target.organization_id),
            operations::kind.eq(REMEDIATION_KIND),
            operations::status.eq(OperationStatus::Pending),
            operations::resource_type.eq(ASSESSMENT_RESOURCE),
            operations::resource_id.eq(target.assessment_id),
            operations::project_id.eq(target.project_id),
            operations::project_version_id.eq(target.facts.project_version_id),
        ))
        .on_conflict((operations::resource_type, operations::resource_id))
        // The predicate must be literal SQL: with a bind parameter Postgres cannot match it to
        // the partial index once it switches the prepared statement to a generic plan.
        .filter_target(diesel::dsl::sql::<diesel::sql_types::Bool>(LIVE_PREDICATE))
        .do_nothing()
        .returning(operations::id);
    let pending = NewEvent::status(id, OperationStatus::Pending, None);
    let created: Option<OperationId> = write_and_record(conn, insert, pending).await?;
    if let Some(id) = created {
        return Ok((id, true));
    }
    let existing = operations::table
        .filter(operations::resource_type.eq(ASSESSMENT_RESOURCE))
        .filter(operations::resource_id.eq(target.assessment_id))
        .filter(operations::status.eq_any(OperationStatus::LIVE))
        .select(operations::id)
        .first(conn)
        .await?;
    Ok((existing, false))
}

/// One operation, visible only to its organisation (`None`: no scoping, for workers and ops).
pub async fn get(
    conn: &mut AsyncPgConnection,
    id: OperationId,
    organization: Option<OrganizationId>,
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
    pub resource: Option<(String, AssessmentId)>,
    pub status: Option<OperationStatus>,
}

/// A page of an organisation's operations, newest first, and the total count.
pub async fn list(
    conn: &mut AsyncPgConnection,
    organization: OrganizationId,
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
            query = query.filter(operations::status.eq(status));
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
    /// PENDING (or RUNNING with a dead heartbeat) is now RUNNING for this worker: its
    /// `attempt`-th attempt and its `starts`-th claim since the last settled attempt.
    Claimed { attempt: i32, starts: i32 },
    /// Another worker holds it (RUNNING), or it already ended.
    Skip { status: OperationStatus },
    /// No such operation: a poison message.
    Missing,
}

/// PENDING -> RUNNING atomically, for the worker `claimed_by`. A RUNNING operation whose
/// heartbeat is older than `stale_after` had its worker die; it is taken over so the job
/// resumes.
pub async fn claim(
    conn: &mut AsyncPgConnection,
    id: OperationId,
    stale_after: chrono::Duration,
    claimed_by: &str,
) -> QueryResult<Claim> {
    let stale_before: DateTime<Utc> = Utc::now() - stale_after;
    let claim = diesel::update(operations::table.find(id))
        .filter(
            operations::status
                .eq(OperationStatus::Pending)
                .or(operations::status
                    .eq(OperationStatus::Running)
                    .and(operations::heartbeat_at.lt(stale_before))),
        )
        .set((
            operations::status.eq(OperationStatus::Running),
            operations::step.eq(Step::Claim),
            operations::attempts.eq(operations::attempts + 1),
            operations::unsettled_starts.eq(operations::unsettled_starts + 1),
            operations::claimed_by.eq(claimed_by),
            operations::started_at.eq(diesel::dsl::now),
            operations::heartbeat_at.eq(diesel::dsl::now),
            operations::error_message.eq(None::<String>),
            operations::updated_at.eq(diesel::dsl::now),
        ))
        .returning((operations::attempts, operations::unsettled_starts));
    let running = NewEvent::status(id, OperationStatus::Running, None);
    let claimed: Option<(i32, i32)> = write_and_record(conn, claim, running).await?;
    if let Some((attempt, starts)) = claimed {
        return Ok(Claim::Claimed { attempt, starts });
    }
    Ok(match current_status(conn, id).await? {
        Some(status) => Claim::Skip { status },
        None => Claim::Missing,
    })
}

/// The operation's status now (`None`: no such operation): what a refused state change found.
async fn current_status(
    conn: &mut AsyncPgConnection,
    id: OperationId,
) -> QueryResult<Option<OperationStatus>> {
    operations::table
        .find(id)
        .select(operations::status)
        .first(conn)
        .await
        .optional()
}

/// Whether a running job may start its next step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StepGate {
    Go,
    /// A cancel was accepted: the job must stop here.
    CancelRequested,
    /// The operation is not RUNNING any more (ended, or taken over after a stale heartbeat).
    NotRunning,
}

/// An UPDATE of the operation that matches only while it is RUNNING: a worker's changes to a
/// job it no longer holds (ended, or taken over after a stale heartbeat) change nothing.
#[diesel::dsl::auto_type(no_type_alias)]
fn while_running(id: OperationId) -> _ {
    let running: OperationStatus = OperationStatus::Running;
    update(operations::table.find(id)).filter(operations::status.eq(running))
}

/// Records the step a running operation is starting, and refreshes its heartbeat; refused
/// when a cancel was requested. The same row lock orders this against `cancel`, so a step
/// never starts after a cancel was accepted.
pub async fn start_step(
    conn: &mut AsyncPgConnection,
    id: OperationId,
    step: Step,
) -> QueryResult<StepGate> {
    let start = while_running(id)
        .filter(operations::cancel_requested_at.is_null())
        .set((
            operations::step.eq(step),
            operations::heartbeat_at.eq(diesel::dsl::now),
            operations::updated_at.eq(diesel::dsl::now),
        ))
        .returning(operations::id);
    let started: Option<OperationId> =
        write_and_record(conn, start, NewEvent::step(id, step)).await?;
    if started.is_some() {
        return Ok(StepGate::Go);
    }
    let row: Option<(OperationStatus, Option<DateTime<Utc>>)> = operations::table
        .find(id)
        .select((operations::status, operations::cancel_requested_at))
        .first(conn)
        .await
        .optional()?;
    Ok(match row {
        Some((OperationStatus::Running, Some(_))) => StepGate::CancelRequested,
        _ => StepGate::NotRunning,
    })
}

#[derive(Debug)]
pub enum CancelOutcome {
    /// Was PENDING: now CANCELLED.
    Cancelled(Operation),
    /// Was RUNNING: the worker stops at its next step boundary.
    Requested(Operation),
    /// RUNNING at or past the push: cannot be undone.
    TooLate {
        step: Step,
    },
    AlreadyEnded {
        status: OperationStatus,
    },
    NotFound,
}

pub async fn cancel(
    conn: &mut AsyncPgConnection,
    id: OperationId,
    organization: OrganizationId,
    by: &str,
) -> QueryResult<CancelOutcome> {
    let scoped = operations::table
        .filter(operations::id.eq(id))
        .filter(operations::organization_id.eq(organization));
    let cancel_pending = diesel::update(scoped)
        .filter(operations::status.eq(OperationStatus::Pending))
        .set((
            operations::status.eq(OperationStatus::Cancelled),
            operations::finished_at.eq(diesel::dsl::now),
            operations::cancel_requested_at.eq(diesel::dsl::now),
            operations::updated_at.eq(diesel::dsl::now),
        ))
        .returning(Operation::as_returning());
    let note = format!("cancelled by {by} while pending");
    let cancelled = NewEvent::status(id, OperationStatus::Cancelled, Some(&note));
    if let Some(op) = write_and_record(conn, cancel_pending, cancelled).await? {
        return Ok(CancelOutcome::Cancelled(op));
    }
    let request_cancel = diesel::update(scoped)
        .filter(operations::status.eq(OperationStatus::Running))
        .filter(
            operations::step
                .is_null()
                .or(operations::step.ne_all(Step::POINT_OF_NO_RETURN)),
        )
        .set((
            operations::cancel_requested_at.eq(diesel::dsl::now),
            operations::updated_at.eq(diesel::dsl::now),
        ))
        .returning(Operation::as_returning());
    let note = format!("cancel requested by {by}");
    if let Some(op) = write_and_record(conn, request_cancel, NewEvent::note(id, &note)).await? {
        return Ok(CancelOutcome::Requested(op));
    }
    let current: Option<(OperationStatus, Option<Step>)> = scoped
        .select((operations::status, operations::step))
        .first(conn)
        .await
        .optional()?;
    Ok(match current {
        None => CancelOutcome::NotFound,
        // Refused only past the point of no return, which a RUNNING row without a step
        // has not reached; the update above matched it, unless it changed meanwhile.
        Some((OperationStatus::Running, step)) => CancelOutcome::TooLate {
            step: step.unwrap_or(Step::Claim),
        },
        Some((status, _)) => CancelOutcome::AlreadyEnded { status },
    })
}

/// Returns RUNNING operations whose worker stopped sending heartbeats to PENDING, with a new
/// outbox row so the job is published again. Safe to run in many processes at once: rows are
/// claimed with SKIP LOCKED. Returns the rescued ids.
pub async fn rescue_stale(
    conn: &mut AsyncPgConnection,
    stale_before: DateTime<Utc>,
    limit: i64,
) -> anyhow::Result<Vec<OperationId>> {
    let stale: Vec<OperationId> = operations::table
        .filter(operations::status.eq(OperationStatus::Running))
        .filter(operations::heartbeat_at.lt(stale_before))
        .select(operations::id)
        .limit(limit)
        .for_update()
        .skip_locked()
        .load(conn)
        .await?;
    for id in &stale {
        diesel::update(operations::table.find(*id))
            .set((
                operations::status.eq(OperationStatus::Pending),
                operations::updated_at.eq(diesel::dsl::now),
            ))
            .execute(conn)
            .await?;
        let why = "rescued: its worker stopped sending heartbeats";
        insert_event(
            conn,
            NewEvent::status(*id, OperationStatus::Pending, Some(why)),
        )
        .await?;
        super::outbox::enqueue(conn, &crate::queue::message::JobMessage::remediation(*id)).await?;
    }
    Ok(stale)
}

#[derive(Debug, PartialEq, Eq)]
pub enum ReplayOutcome {
    Replayed,
    /// Not FAILED (already replayed, or never failed): nothing to do.
    NotFailed {
        status: OperationStatus,
    },
    /// A newer operation for the same assessment is live; replaying would make two.
    Superseded,
    NotFound,
}

/// FAILED -> PENDING with a fresh attempt count, recording who replayed it and when.
pub async fn replay(
    conn: &mut AsyncPgConnection,
    id: OperationId,
    by: &str,
) -> QueryResult<ReplayOutcome> {
    let result = diesel::update(operations::table.find(id))
        .filter(operations::status.eq(OperationStatus::Failed))
        .set((
            operations::status.eq(OperationStatus::Pending),
            operations::attempts.eq(0),
            operations::unsettled_starts.eq(0),
            operations::error_message.eq(None::<String>),
            operations::finished_at.eq(None::<DateTime<Utc>>),
            operations::started_at.eq(None::<DateTime<Utc>>),
            operations::step.eq(None::<Step>),
            operations::updated_at.eq(diesel::dsl::now),
        ))
        .execute(conn)
        .await;
    match result {
        Ok(1) => {
            let note = format!("replayed from the dead-letter queue by {by}");
            insert_event(
                conn,
                NewEvent::status(id, OperationStatus::Pending, Some(&note)),
            )
            .await?;
            Ok(ReplayOutcome::Replayed)
        }
        Ok(_) => Ok(current_status(conn, id)
            .await?
            .map_or(ReplayOutcome::NotFound, |status| ReplayOutcome::NotFailed {
                status,
            })),
        Err(diesel::result::Error::DatabaseError(
            diesel::result::DatabaseErrorKind::UniqueViolation,
            _,
        )) => Ok(ReplayOutcome::Superseded),
        Err(e) => Err(e),
    }
}

/// The last step a job started before its latest claim (what it was doing when its worker
/// died), from the history.
pub async fn last_step_before_claim(
    conn: &mut AsyncPgConnection,
    id: OperationId,
) -> QueryResult<Option<Step>> {
    events_of(id)
        .filter(operation_events::kind.eq(EventKind::Step))
        .filter(operation_events::step.ne(Step::Claim))
        .order(operation_events::id.desc())
        .select(operation_events::step)
        .first::<Option<Step>>(conn)
        .await
        .optional()
        .map(Option::flatten)
}

pub async fn record_note(
    conn: &mut AsyncPgConnection,
    id: OperationId,
    message: &str,
) -> QueryResult<usize> {
    insert_event(conn, NewEvent::note(id, message)).await
}

/// The project of each of these operations (missing ones are left out).
pub async fn project_ids(
    conn: &mut AsyncPgConnection,
    ids: &[OperationId],
) -> QueryResult<std::collections::HashMap<OperationId, crate::lifecycle::ProjectId>> {
    let rows: Vec<(OperationId, crate::lifecycle::ProjectId)> = operations::table
        .filter(operations::id.eq_any(ids))
        .select((operations::id, operations::project_id))
        .load(conn)
        .await?;
    Ok(rows.into_iter().collect())
}

/// Age of the oldest PENDING operation, for the metrics.
pub async fn oldest_pending_age_secs(conn: &mut AsyncPgConnection) -> QueryResult<f64> {
    let oldest: Option<DateTime<Utc>> = operations::table
        .filter(operations::status.eq(OperationStatus::Pending))
        .select(diesel::dsl::min(operations::created_at))
        .first(conn)
        .await?;
    Ok(oldest.map_or(0.0, |t| (Utc::now() - t).num_milliseconds() as f64 / 1000.0))
}

pub async fn heartbeat(conn: &mut AsyncPgConnection, id: OperationId) -> QueryResult<usize> {
    while_running(id)
        .set(operations::heartbeat_at.eq(diesel::dsl::now))
        .execute(conn)
        .await
}

/// Ends a RUNNING operation (its attempt settled). Returns false if it was not RUNNING any more.
pub async fn finish(
    conn: &mut AsyncPgConnection,
    id: OperationId,
    status: OperationStatus,
    output: Option<&serde_json::Value>,
    error_message: Option<&str>,
) -> QueryResult<bool> {
    let settle = while_running(id)
        .set((
            operations::status.eq(status),
            operations::unsettled_starts.eq(0),
            operations::output.eq(output),
            operations::error_message.eq(error_message),
            operations::finished_at.eq(diesel::dsl::now),
            operations::updated_at.eq(diesel::dsl::now),
        ))
        .returning(operations::id);
    let ended = NewEvent::status(id, status, error_message);
    let settled: Option<OperationId> = write_and_record(conn, settle, ended).await?;
    Ok(settled.is_some())
}

/// Puts a RUNNING operation back to PENDING for a later attempt (this one settled), keeping
/// the error.
pub async fn release_for_retry(
    conn: &mut AsyncPgConnection,
    id: OperationId,
    attempt: i32,
    error_message: &str,
) -> QueryResult<bool> {
    let release = while_running(id)
        .set((
            operations::status.eq(OperationStatus::Pending),
            operations::unsettled_starts.eq(0),
            operations::error_message.eq(error_message),
            operations::updated_at.eq(diesel::dsl::now),
        ))
        .returning(operations::id);
    // The error first, then the status change it caused: the history reads in that order.
    let failed = NewEvent::attempt_error(id, attempt, error_message);
    let released: Option<OperationId> = write_and_record(conn, release, failed).await?;
    if released.is_some() {
        insert_event(conn, NewEvent::status(id, OperationStatus::Pending, None)).await?;
    }
    Ok(released.is_some())
}

pub async fn record_attempt_error(
    conn: &mut AsyncPgConnection,
    id: OperationId,
    attempt: i32,
    message: &str,
) -> QueryResult<usize> {
    insert_event(conn, NewEvent::attempt_error(id, attempt, message)).await
}

/// One `operation_events` row to write; the columns left `None` keep their default (null).
#[derive(Insertable)]
#[diesel(table_name = operation_events)]
struct NewEvent<'a> {
    operation_id: OperationId,
    kind: EventKind,
    status: Option<OperationStatus>,
    step: Option<Step>,
    attempt: Option<i32>,
    message: Option<&'a str>,
}

impl<'a> NewEvent<'a> {
    fn new(operation_id: OperationId, kind: EventKind) -> Self {
        NewEvent {
            operation_id,
            kind,
            status: None,
            step: None,
            attempt: None,
            message: None,
        }
    }

    /// A status change, and what caused it when that is worth saying.
    fn status(
        operation_id: OperationId,
        status: OperationStatus,
        message: Option<&'a str>,
    ) -> Self {
        NewEvent {
            status: Some(status),
            message,
            ..NewEvent::new(operation_id, EventKind::Status)
        }
    }

    /// The step a running job starts.
    fn step(operation_id: OperationId, step: Step) -> Self {
        NewEvent {
            step: Some(step),
            ..NewEvent::new(operation_id, EventKind::Step)
        }
    }

    fn note(operation_id: OperationId, message: &'a str) -> Self {
        NewEvent {
            message: Some(message),
            ..NewEvent::new(operation_id, EventKind::Note)
        }
    }

    fn attempt_error(operation_id: OperationId, attempt: i32, message: &'a str) -> Self {
        NewEvent {
            attempt: Some(attempt),
            message: Some(message),
            ..NewEvent::new(operation_id, EventKind::AttemptError)
        }
    }
}

async fn insert_event(conn: &mut AsyncPgConnection, event: NewEvent<'_>) -> QueryResult<usize> {
    diesel::insert_into(operation_events::table)
        .values(event)
        .execute(conn)
        .await
}

/// Runs `statement`, an insert or update of one operation with RETURNING, and when it wrote
/// the row records `event` in the operation's history. Returns what the statement returned
/// (`None`: it matched no row, and nothing was recorded). The two writes are atomic only
/// inside the caller's transaction.
///
/// The future is boxed, and so `Send` whatever the statement's lifetimes: a generic `async fn`
/// over a diesel statement is not provably `Send` inside the workers' spawned tasks.
fn write_and_record<'a, S, R>(
    conn: &'a mut AsyncPgConnection,
    statement: S,
    event: NewEvent<'a>,
) -> BoxFuture<'a, QueryResult<Option<R>>>
where
    S: diesel_async::methods::LoadQuery<'a, AsyncPgConnection, R> + Send + 'a,
    R: Send + 'static,
{
    async move {
        let written = statement.get_result(conn).await.optional()?;
        if written.is_some() {
            insert_event(conn, event).await?;
        }
        Ok(written)
    }
    .boxed()
}

/// The history of one operation, in no particular order.
#[diesel::dsl::auto_type(no_type_alias)]
fn events_of(id: OperationId) -> _ {
    operation_events::table.filter(operation_events::operation_id.eq(id))
}

/// One line of an operation's history.
#[derive(Debug, Clone, Queryable, serde::Serialize)]
pub struct OperationEvent {
    pub at: DateTime<Utc>,
    pub kind: EventKind,
    pub status: Option<OperationStatus>,
    pub step: Option<Step>,
    pub attempt: Option<i32>,
    pub message: Option<String>,
}

pub async fn history(
    conn: &mut AsyncPgConnection,
    id: OperationId,
) -> QueryResult<Vec<OperationEvent>> {
    events_of(id)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_live_predicate_spells_the_live_statuses() {
        let spelled: Vec<String> = OperationStatus::LIVE
            .iter()
            .map(|s| format!("'{s}'"))
            .collect();
        assert_eq!(
            LIVE_PREDICATE,
            format!("status IN ({})", spelled.join(", "))
        );
    }
}
