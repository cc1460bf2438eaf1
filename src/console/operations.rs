//! Operations: the table (filtered by id, status, project, step and creation time; newest
//! first; keyset pages on `(created_at, id)`), one operation's page (facts, PR, patcher,
//! timings per step, the whole timeline), and its Cancel button, which runs the API's own
//! cancel ([`crate::api::operations::cancel_operation`]).

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{DateTime, NaiveDateTime, Utc};
use maud::{Markup, html};
use serde_json::Value;
use uuid::Uuid;

use super::form;
use super::layout::{self, Area};
use super::{
    ConsoleError, ConsoleState, audit, html, live_page_session, scope_of, see_other, session,
};
use crate::db::audit::AuditAction;
use crate::db::console::{self, Cursor, OperationDetail, OperationFilter, OperationRow};
use crate::db::operations::{self as ops_db, OperationEvent};
use crate::lifecycle::{EventKind, OperationId, OperationStatus, Step};

/// Rows per page.
pub const PAGE_SIZE: i64 = 50;

/// The filters as the form sends them, kept as text to fill the form again.
#[derive(Debug, Default)]
struct Filters {
    raw: Vec<(&'static str, String)>,
    parsed: OperationFilter,
    cursor: Option<Cursor>,
}

fn parse_filters(query: &HashMap<String, String>) -> Result<Filters, ConsoleError> {
    let mut filters = Filters::default();
    let value = |key: &str| query.get(key).map(|v| v.trim()).filter(|v| !v.is_empty());
    for key in ["id", "status", "project", "step", "from", "to"] {
        if let Some(v) = value(key) {
            crate::api::guard::check_text(key, v).map_err(ConsoleError::from)?;
            filters.raw.push((key_name(key), v.to_owned()));
        }
    }
    let bad = |what: &str, got: &str| ConsoleError::BadRequest(format!("{what}, got {got:?}"));
    if let Some(v) = value("id") {
        filters.parsed.id = Some(v.parse().map_err(|_| bad("id must be a UUID", v))?);
    }
    if let Some(v) = value("status") {
        filters.parsed.status = Some(parse_status(v).ok_or_else(|| {
            bad(
                "status must be one of PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED",
                v,
            )
        })?);
    }
    if let Some(v) = value("project") {
        filters.parsed.project = Some(
            v.parse()
                .map_err(|_| bad("project must be a project id (UUID)", v))?,
        );
    }
    if let Some(v) = value("step") {
        filters.parsed.step = Some(Step::parse(v).ok_or_else(|| bad("unknown step", v))?);
    }
    if let Some(v) = value("from") {
        filters.parsed.from = Some(parse_time(v).ok_or_else(|| bad("from must be a time", v))?);
    }
    if let Some(v) = value("to") {
        filters.parsed.to = Some(parse_time(v).ok_or_else(|| bad("to must be a time", v))?);
    }
    if let Some(v) = value("after") {
        filters.cursor = Some(Cursor::decode(v).ok_or_else(|| bad("bad page cursor", v))?);
    }
    Ok(filters)
}

/// The query keys, as `'static` names (so a filter list never holds a client's key).
fn key_name(key: &str) -> &'static str {
    match key {
        "id" => "id",
        "status" => "status",
        "project" => "project",
        "step" => "step",
        "from" => "from",
        _ => "to",
    }
}

/// `RUNNING` or the API's full spelling.
fn parse_status(text: &str) -> Option<OperationStatus> {
    OperationStatus::parse(text).or_else(|| {
        OperationStatus::parse(&format!("ASYNC_OPERATION_STATUS_{}", text.to_uppercase()))
    })
}

/// RFC 3339, or what a `datetime-local` input sends (`2026-12-02T10:30`, read as UTC).
fn parse_time(text: &str) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]
                .iter()
                .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
                .map(|t| t.and_utc())
        })
}

fn query_string(pairs: &[(&str, String)]) -> String {
    let mut serializer = form_urlencoded::Serializer::new(String::new());
    for (key, value) in pairs {
        serializer.append_pair(key, value);
    }
    serializer.finish()
}

pub async fn list(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ConsoleError> {
    let (session, fragment) = live_page_session(&state, &headers, &query).await?;
    let filters = parse_filters(&query)?;
    let (rows, next) = one_page(&state, &session, &filters).await?;
    let table = operations_table(&rows, &filters, next, session.admin);
    if fragment {
        return Ok(html(StatusCode::OK, table));
    }
    // Only the first page follows new rows; later pages stay where the operator is.
    let mut live_query = filters.raw.clone();
    live_query.push(("fragment", "1".to_owned()));
    let live = filters
        .cursor
        .is_none()
        .then(|| format!("/console/operations?{}", query_string(&live_query)));
    let body = html! {
        (filter_form(&filters))
        p.stamp {
            @if live.is_some() { span data-live-stamp { "refresh the page for new rows" } }
            @else { "an older page: not refreshed" }
        }
        div #operations data-live=[live] { (table) }
    };
    Ok(html(
        StatusCode::OK,
        layout::page(
            &session,
            Area::Operations,
            "Operations",
            state.refresh_ms,
            body,
        ),
    ))
}

/// The rows of the page the filters ask for, and the cursor of the next page if there is one.
async fn one_page(
    state: &ConsoleState,
    session: &session::Session,
    filters: &Filters,
) -> Result<(Vec<OperationRow>, Option<Cursor>), ConsoleError> {
    let mut conn = state.app.pool.get().await?;
    // One row more than a page says whether there is a next one.
    let mut rows = console::list_operations(
        &mut conn,
        scope_of(session),
        &filters.parsed,
        filters.cursor,
        PAGE_SIZE,
    )
    .await?;
    drop(conn);
    let more = rows.len() as i64 > PAGE_SIZE;
    rows.truncate(PAGE_SIZE as usize);
    let next = more.then(|| rows.last()).flatten().map(|row| Cursor {
        created_at: row.operation.created_at,
        id: row.operation.id,
    });
    Ok((rows, next))
}

fn filter_form(filters: &Filters) -> Markup {
    let value = |key: &str| {
        filters
            .raw
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    html! {
        form.filters method="get" action="/console/operations" {
            label { "id" input type="text" name="id" size="36" value=(value("id")); }
            label { "status"
                select name="status" {
                    option value="" { "any" }
                    @for status in OperationStatus::ALL {
                        @let short = layout::short_status(*status);
                        option value=(short) selected[filters.parsed.status == Some(*status)] { (short) }
                    }
                }
            }
            label { "project id" input type="text" name="project" size="36" value=(value("project")); }
            label { "step"
                select name="step" {
                    option value="" { "any" }
                    @for step in Step::ALL {
                        option value=(step.as_str()) selected[filters.parsed.step == Some(*step)] { (step.as_str()) }
                    }
                }
            }
            label { "created from (UTC)" input type="datetime-local" name="from" value=(value("from")); }
            label { "created before (UTC)" input type="datetime-local" name="to" value=(value("to")); }
            button type="submit" { "Filter" }
            a href="/console/operations" { "clear" }
        }
    }
}

fn operations_table(
    rows: &[OperationRow],
    filters: &Filters,
    next: Option<Cursor>,
    admin: bool,
) -> Markup {
    let mut next_query = filters.raw.clone();
    if let Some(next) = next {
        next_query.push(("after", next.encode()));
    }
    html! {
        @if rows.is_empty() {
            p.muted { "No operation matches." }
        } @else {
            table {
                thead {
                    tr {
                        th { "operation" }
                        @if admin { th { "organisation" } }
                        th { "project" } th { "status" } th { "step" } th.num { "attempts" }
                        th { "created" } th { "took" } th { "error" }
                    }
                }
                tbody {
                    @for row in rows {
                        @let op = &row.operation;
                        tr data-operation-id=(op.id) data-status=(layout::short_status(op.status)) {
                            td { a href=(format!("/console/operations/{}", op.id)) title=(op.id) { code { (layout::short_id(op.id)) } } }
                            @if admin { td { code title=(op.organization_id) { (layout::short_id(op.organization_id)) } } }
                            td { (row.project_name) }
                            td { (layout::status_badge(op.status)) }
                            td {
                                @if op.status == OperationStatus::Running { (layout::step_progress(op.step)) }
                                @else if let Some(step) = op.step { span.muted { (step.as_str()) } }
                            }
                            td.num { (op.attempts) }
                            td { span title=(op.created_at.to_rfc3339()) { (layout::age(op.created_at)) " ago" } }
                            td { (took(op.started_at, op.finished_at)) }
                            td.error { @if let Some(e) = &op.error_message { span title=(e) { (layout::clip(e, 80)) } } }
                        }
                    }
                }
            }
        }
        div.pager {
            @if filters.cursor.is_some() {
                a href=(format!("/console/operations?{}", query_string(&filters.raw))) { "« newest" }
            }
            @if next.is_some() {
                a rel="next" href=(format!("/console/operations?{}", query_string(&next_query))) { "older »" }
            }
        }
    }
}

fn took(started: Option<DateTime<Utc>>, finished: Option<DateTime<Utc>>) -> String {
    match (started, finished) {
        (Some(s), Some(f)) => layout::duration(f - s),
        (Some(s), None) => format!("{} so far", layout::duration(Utc::now() - s)),
        _ => String::new(),
    }
}

fn parse_id(id: &str) -> Result<OperationId, ConsoleError> {
    Uuid::parse_str(id)
        .map(OperationId::from)
        .map_err(|_| ConsoleError::NotFound(format!("no operation {id:?}")))
}

pub async fn show(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ConsoleError> {
    let (session, fragment) = live_page_session(&state, &headers, &query).await?;
    let id = parse_id(&id)?;
    let mut conn = state.app.pool.get().await?;
    let Some(detail) = console::operation_detail(&mut conn, id, scope_of(&session)).await? else {
        return Err(ConsoleError::NotFound(format!("operation {id} not found")));
    };
    let history = ops_db::history(&mut conn, id).await?;
    drop(conn);
    let body = detail_body(&detail, &history, &session);
    if fragment {
        return Ok(html(StatusCode::OK, body));
    }
    let live = detail
        .operation
        .status
        .is_live()
        .then(|| format!("/console/operations/{id}?fragment=1"));
    let notice = query.get("done").and_then(|d| notice_text(d));
    let page = html! {
        @if let Some(text) = notice { (layout::notice(text)) }
        p.stamp {
            @if live.is_some() { span data-live-stamp { "refresh the page to follow it" } }
            a href="/console/operations" { "all operations" }
        }
        div #operation data-live=[live] { (body) }
    };
    Ok(html(
        StatusCode::OK,
        layout::page(
            &session,
            Area::Operations,
            &format!("Operation {}", layout::short_id(id)),
            state.refresh_ms,
            page,
        ),
    ))
}

/// Notices after an action, by a fixed code (a URL can never put its own text on the page).
fn notice_text(code: &str) -> Option<&'static str> {
    match code {
        "cancelled" => Some("Cancelled."),
        "cancel-requested" => Some("Cancel requested: the job stops at its next step boundary."),
        _ => None,
    }
}

/// Whether the Cancel button is offered: a live operation not yet past the push and not
/// already asked to stop (the API decides again when it is pressed).
fn cancellable(detail: &OperationDetail) -> bool {
    let op = &detail.operation;
    match op.status {
        OperationStatus::Pending => true,
        OperationStatus::Running => {
            op.cancel_requested_at.is_none()
                && !op.step.is_some_and(Step::is_past_point_of_no_return)
        }
        _ => false,
    }
}

fn detail_body(
    detail: &OperationDetail,
    history: &[OperationEvent],
    session: &session::Session,
) -> Markup {
    let op = &detail.operation;
    html! {
        dl.facts {
            (run_facts(detail))
            (result_facts(detail))
        }
        @if session.admin && cancellable(detail) {
            form.actions method="post" action=(format!("/console/operations/{}/cancel", op.id)) {
                input type="hidden" name="csrf" value=(session.csrf);
                button.danger type="submit" data-action="cancel" { "Cancel this operation" }
            }
        }
        h2 { "Timings per step" }
        (timings(history, op.finished_at))
        h2 { "Timeline" }
        (layout::history_table(history, time_of_day, true))
        @if let Some(output) = &op.output {
            h2 { "Output" }
            pre { (serde_json::to_string_pretty(output).unwrap_or_default()) }
        }
    }
}

/// A text field of the operation's output.
fn output_text<'a>(detail: &'a OperationDetail, key: &str) -> Option<&'a str> {
    detail
        .operation
        .output
        .as_ref()
        .and_then(|o| o.get(key))
        .and_then(Value::as_str)
}

/// What the operation is and how it ran: status, whose, what it fixes, when, and where.
fn run_facts(detail: &OperationDetail) -> Markup {
    let op = &detail.operation;
    html! {
        dt { "id" } dd { code { (op.id) } }
        dt { "status" } dd data-status=(layout::short_status(op.status)) {
            (layout::status_badge(op.status))
            @if op.status == OperationStatus::Running { " " (layout::step_progress(op.step)) }
            @if op.cancel_requested_at.is_some() && op.status == OperationStatus::Running { " " span.muted { "cancel requested" } }
        }
        dt { "organisation" } dd { code { (op.organization_id) } }
        dt { "project" } dd { (detail.project_name) " " span.muted { (detail.repository_url) } }
        @if let (Some(vuln), Some(package)) = (&detail.vulnerability_id, &detail.package_name) {
            dt { "fix" } dd { (vuln) " in " code { (package) } " (" (detail.ecosystem.as_deref().unwrap_or("?")) ")"
                @if let Some(target) = output_text(detail, "target_version") { " → " code { (target) } } }
        }
        dt { "assessment" } dd { code { (op.resource_id) } }
        dt { "attempts" } dd { (op.attempts) }
        dt { "created" } dd { (layout::time(op.created_at)) }
        @if let Some(at) = op.started_at { dt { "started" } dd { (layout::time(at)) } }
        @if let Some(at) = op.finished_at { dt { "finished" } dd { (layout::time(at)) " (" (took(op.started_at, op.finished_at)) ")" } }
        @if let Some(worker) = &op.claimed_by { dt { "worker" } dd { code { (worker) } } }
    }
}

/// What came of it: the pull request, the patcher, the change, its verification, the error.
fn result_facts(detail: &OperationDetail) -> Markup {
    let op = &detail.operation;
    let output = op.output.as_ref();
    let text = |key: &str| output_text(detail, key);
    let model = output
        .and_then(|o| o.pointer("/llm/model"))
        .and_then(Value::as_str);
    let changed: Vec<&str> = output
        .and_then(|o| o.get("changed_files"))
        .and_then(Value::as_array)
        .map(|files| files.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    html! {
        dt { "pull request" } dd { (pull_request(detail.pr_url.as_deref())) }
        dt { "patcher" } dd {
            @match text("patcher") { Some(p) => { (p) } None => { span.muted { "-" } } }
            @if let Some(model) = model { " (" code { (model) } ")" }
        }
        @if !changed.is_empty() {
            dt { "changed files" } dd { @for f in &changed { code { (f) } " " } }
        }
        @if let Some(branch) = text("branch") {
            dt { "branch" } dd { code { (branch) } @if let Some(commit) = text("commit") { " at " code { (layout::short_id(commit)) } } }
        }
        @if let Some(explanation) = text("explanation") { dt { "change" } dd { (explanation) } }
        @if let Some(left) = vulnerable_left(output) {
            dt { "verified" } dd.error[left > 0] { (left) " vulnerable cop" @if left == 1 { "y" } @else { "ies" } " left in the lock files" }
        }
        @if let Some(reason) = text("draft_reason") { dt { "draft because" } dd { (reason) } }
        @if let Some(error) = &op.error_message { dt { "error" } dd.error { (error) } }
    }
}

/// The pull request's link; only an http(s) URL is made a link.
fn pull_request(url: Option<&str>) -> Markup {
    html! {
        @match url {
            Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
                a href=(url) rel="noreferrer noopener" data-pr-link { (url) }
            }
            Some(url) => { code { (url) } }
            None => { span.muted { "none yet" } }
        }
    }
}

/// Vulnerable copies the verification found left, when it read any lock file.
fn vulnerable_left(output: Option<&Value>) -> Option<u64> {
    output
        .filter(|o| {
            o.pointer("/verification/lock_files")
                .and_then(Value::as_array)
                .is_some_and(|l| !l.is_empty())
        })
        .and_then(|o| o.pointer("/verification/vulnerable_left"))
        .and_then(Value::as_u64)
}

/// A time of day to the millisecond: the steps of one operation are seconds apart.
fn time_of_day(at: DateTime<Utc>) -> Markup {
    html! { (at.format("%H:%M:%S%.3f")) }
}

/// Each step's time, from the history: a step lasts until the next event of the operation
/// (the next step, or the status its attempt ended with).
fn timings(history: &[OperationEvent], finished: Option<DateTime<Utc>>) -> Markup {
    let mut rows = Vec::new();
    for (i, event) in history.iter().enumerate() {
        let Some(step) = event.step else { continue };
        let end = history
            .get(i + 1..)
            .and_then(|rest| rest.iter().find(|e| e.kind != EventKind::Note))
            .map(|e| e.at)
            .or(finished);
        rows.push((step, event.at, end));
    }
    html! {
        @if rows.is_empty() { p.muted { "No step has started yet." } }
        @else {
            table #timings {
                thead { tr { th { "step" } th { "started" } th.num { "took" } } }
                tbody {
                    @for (step, start, end) in &rows {
                        tr {
                            td { code { (step.as_str()) } }
                            td { (start.format("%H:%M:%S%.3f")) }
                            td.num { @match end { Some(end) => { (layout::duration(*end - *start)) } None => { span.muted { "running" } } } }
                        }
                    }
                }
            }
        }
    }
}

pub async fn cancel(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Body,
) -> Result<Response, ConsoleError> {
    let (session, _) = form::admin_action(&state, &headers, body).await?;
    let id = parse_id(&id)?;
    let mut conn = state.app.pool.get().await?;
    let Some(operation) = ops_db::get(&mut conn, id, None).await? else {
        return Err(ConsoleError::NotFound(format!("operation {id} not found")));
    };
    drop(conn);
    let by = format!("{} (console)", session.caller.subject);
    let result =
        crate::api::operations::cancel_operation(&state.app, id, operation.organization_id, &by)
            .await;
    let outcome = match &result {
        Ok(op) if op.status == OperationStatus::Cancelled => "cancelled".to_owned(),
        Ok(_) => "cancel requested".to_owned(),
        Err(error) => format!("refused: {}", error.message),
    };
    audit::record(
        &state,
        &session,
        AuditAction::Cancel,
        &id.to_string(),
        &outcome,
        None,
    )
    .await?;
    match result {
        Ok(op) => {
            let done = if op.status == OperationStatus::Cancelled {
                "cancelled"
            } else {
                "cancel-requested"
            };
            Ok(see_other(&format!("/console/operations/{id}?done={done}")))
        }
        Err(error) if error.code == crate::api::error::Code::FailedPrecondition => {
            Err(ConsoleError::Conflict(error.message))
        }
        Err(error) => Err(error.into()),
    }
}
