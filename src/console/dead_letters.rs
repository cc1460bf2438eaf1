//! Dead letters: the list (reason, last error, attempts, age, project; filtered like
//! `remediator dlq list`), one message's page (headers, body, the operation's history), and
//! the admin's actions: replay one, the selection or all that match at a chosen rate, and
//! purge, which makes the operator type the count. Every read and action goes through
//! [`crate::queue::dead_letters`], the CLI's own code, and every action is audited.
//!
//! Actions run in a task of their own, so an operator closing the tab mid-replay cannot leave
//! messages taken and neither replayed nor given back.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{Markup, html};
use uuid::Uuid;

use super::audit::record;
use super::form::{self, Form};
use super::layout::{self, Area};
use super::session::Session;
use super::{ConsoleError, ConsoleState, html, session};
use crate::db::audit::AuditAction;
use crate::db::console as console_db;
use crate::db::operations as ops_db;
use crate::lifecycle::{OperationId, ProjectId};
use crate::queue::dead_letters::{DeadLetter, DeadLetterReason, Filter, ReplaySummary};

/// Highest replay rate accepted (per second); the CLI has none, the console keeps a request
/// from hammering the broker by mistake.
const MAX_RATE: f64 = 1000.0;

/// The filter fields, as typed (to fill forms again) and parsed.
struct DlqFilter {
    raw: Vec<(&'static str, String)>,
    filter: Filter,
}

impl DlqFilter {
    fn parse(get: impl Fn(&str) -> Option<String>) -> Result<DlqFilter, ConsoleError> {
        let mut raw = Vec::new();
        let mut filter = Filter::default();
        if let Some(reason) = get("reason") {
            crate::api::guard::check_text("reason", &reason).map_err(ConsoleError::from)?;
            filter.reason = Some(DeadLetterReason::parse(&reason));
            raw.push(("reason", reason));
        }
        if let Some(project) = get("project") {
            let id = Uuid::parse_str(&project).map_err(|_| {
                ConsoleError::BadRequest(format!(
                    "project must be a project id (UUID), got {project:?}"
                ))
            })?;
            filter.project = Some(ProjectId::from(id));
            raw.push(("project", project));
        }
        if let Some(age) = get("older_than") {
            filter.older_than =
                Some(crate::commands::dlq::parse_age(&age).map_err(ConsoleError::BadRequest)?);
            raw.push(("older_than", age));
        }
        Ok(DlqFilter { raw, filter })
    }

    fn describe(&self) -> String {
        if self.raw.is_empty() {
            "all".to_owned()
        } else {
            let parts: Vec<String> = self.raw.iter().map(|(k, v)| format!("{k}={v}")).collect();
            format!("all matching {}", parts.join(" "))
        }
    }

    fn value(&self, key: &str) -> String {
        self.raw
            .iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }

    fn hidden_fields(&self) -> Markup {
        html! { @for (key, value) in &self.raw { input type="hidden" name=(key) value=(value); } }
    }
}

/// The dead letters the session may see: every one for the admin scope; for a read-only
/// session, only those whose operation belongs to its organisation.
async fn visible(
    state: &ConsoleState,
    session: &Session,
    filter: &Filter,
) -> Result<Vec<DeadLetter>, ConsoleError> {
    let listed = state
        .broker
        .with_dlq(async |dlq| dlq.list(filter).await)
        .await
        .map_err(broker_error)?;
    if session.admin {
        return Ok(listed);
    }
    let ids: Vec<OperationId> = listed.iter().filter_map(|d| d.operation_id).collect();
    let mut conn = state.app.pool.get().await?;
    let owners = console_db::organizations_of(&mut conn, &ids).await?;
    Ok(listed
        .into_iter()
        .filter(|d| {
            d.operation_id
                .and_then(|id| owners.get(&id))
                .is_some_and(|org| *org == session.caller.organization)
        })
        .collect())
}

fn broker_error(error: anyhow::Error) -> ConsoleError {
    tracing::warn!(error = %format!("{error:#}"), "console: dead-letter queue");
    ConsoleError::Unavailable(
        "RabbitMQ is unreachable: the dead-letter queue cannot be read now".into(),
    )
}

pub async fn list(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ConsoleError> {
    let session = session::require(&state, &headers, false).await?;
    let filter = DlqFilter::parse(|k| non_empty(query.get(k)))?;
    let letters = visible(&state, &session, &filter.filter).await?;
    let body = html! {
        form.filters method="get" action="/console/dead-letters" {
            label { "reason"
                select name="reason" {
                    option value="" { "any" }
                    @for reason in DeadLetterReason::NAMED {
                        option value=(reason) selected[filter.filter.reason.as_ref() == Some(&reason)] { (reason) }
                    }
                }
            }
            label { "project id" input type="text" name="project" size="36" value=(filter.value("project")); }
            label { "older than" input type="text" name="older_than" size="6" placeholder="1h" value=(filter.value("older_than")); }
            button type="submit" { "Filter" }
            a href="/console/dead-letters" { "clear" }
        }
        p.muted { (letters.len()) " dead letter(s) match. Listing takes the messages and gives them back; nothing is changed." }
        @if session.admin && !letters.is_empty() {
            form.actions method="post" action="/console/dead-letters/replay" data-form="replay-all" {
                input type="hidden" name="csrf" value=(session.csrf);
                input type="hidden" name="mode" value="all";
                (filter.hidden_fields())
                fieldset {
                    legend { "Every matching message (" (filter.describe()) ")" }
                    label { "rate per second " input type="number" name="rate" min="0.1" max="1000" step="0.1" placeholder="no limit" size="6"; }
                    " "
                    button.primary type="submit" data-action="replay-all" { "Replay all " (letters.len()) }
                    " "
                    button.danger type="submit" formaction="/console/dead-letters/purge" data-action="purge-all" { "Purge all " (letters.len()) "…" }
                }
            }
        }
        @if letters.is_empty() {
            p { "The dead-letter queue has nothing that matches." }
        } @else {
            form method="post" action="/console/dead-letters/replay" #selection {
                @if session.admin {
                    input type="hidden" name="csrf" value=(session.csrf);
                    input type="hidden" name="mode" value="selected";
                }
                table #dead-letters {
                    thead {
                        tr {
                            @if session.admin { th { input type="checkbox" data-select-all title="select all"; } }
                            th { "operation" } th { "reason" } th { "last error" } th.num { "attempts" } th { "dead for" } th { "project" }
                        }
                    }
                    tbody {
                        @for letter in &letters {
                            tr data-dead-letter=[letter.operation_id] {
                                @if session.admin {
                                    td { @if let Some(id) = letter.operation_id { input type="checkbox" name="id" value=(id); } }
                                }
                                td {
                                    @match letter.operation_id {
                                        Some(id) => { a href=(format!("/console/dead-letters/{id}")) title=(id) { code { (layout::short_id(id)) } } }
                                        None => { span.muted { "not a job message" } }
                                    }
                                }
                                td { code { (letter.reason) } }
                                td.error { @if let Some(e) = &letter.last_error { span title=(e) { (layout::clip(e, 100)) } } }
                                td.num { @if let Some(a) = letter.attempt { (a) } }
                                td { @if let Some(at) = letter.dead_at { (layout::age(at)) } }
                                td { @if let Some(p) = letter.project_id { code title=(p) { (layout::short_id(p)) } } }
                            }
                        }
                    }
                }
                @if session.admin {
                    div.actions {
                        label { "rate per second " input type="number" name="rate" min="0.1" max="1000" step="0.1" placeholder="no limit" size="6"; }
                        button.primary type="submit" data-action="replay-selected" { "Replay selected" }
                        button.danger type="submit" formaction="/console/dead-letters/purge" data-action="purge-selected" { "Purge selected…" }
                    }
                }
            }
        }
    };
    Ok(html(
        StatusCode::OK,
        layout::page(
            &session,
            Area::DeadLetters,
            "Dead letters",
            state.refresh_ms,
            body,
        ),
    ))
}

/// A header value as a person reads it. The decoded headers are AMQP's typed values as serde
/// writes them (`{"LongString": [bytes]}`, `{"LongLongInt": 3}`, nested tables and arrays);
/// strings are shown as text, numbers as numbers, tables and arrays as JSON of those.
fn readable(value: &serde_json::Value) -> String {
    const AMQP_TYPES: &[&str] = &[
        "Boolean",
        "ShortShortInt",
        "ShortShortUInt",
        "ShortInt",
        "ShortUInt",
        "LongInt",
        "LongUInt",
        "LongLongInt",
        "Float",
        "Double",
        "DecimalValue",
        "ShortString",
        "LongString",
        "FieldArray",
        "Timestamp",
        "FieldTable",
        "ByteArray",
        "Void",
    ];
    fn simplify(value: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match value {
            Value::Object(map)
                if map.len() == 1 && map.keys().all(|k| AMQP_TYPES.contains(&k.as_str())) =>
            {
                match map.values().next() {
                    Some(Value::Array(items))
                        if !items.is_empty()
                            && items.iter().all(|i| i.as_u64().is_some_and(|n| n < 256)) =>
                    {
                        let bytes: Vec<u8> = items
                            .iter()
                            .filter_map(|i| i.as_u64())
                            .map(|n| n as u8)
                            .collect();
                        Value::String(String::from_utf8_lossy(&bytes).into_owned())
                    }
                    Some(other) => simplify(other),
                    None => Value::Null,
                }
            }
            Value::Object(map) => {
                Value::Object(map.iter().map(|(k, v)| (k.clone(), simplify(v))).collect())
            }
            Value::Array(items) => Value::Array(items.iter().map(simplify).collect()),
            other => other.clone(),
        }
    }
    match simplify(value) {
        serde_json::Value::String(text) => text,
        other => other.to_string(),
    }
}

fn non_empty(value: Option<&String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

pub async fn show(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ConsoleError> {
    let session = session::require(&state, &headers, false).await?;
    let id = Uuid::parse_str(&id)
        .map(OperationId::from)
        .map_err(|_| ConsoleError::NotFound(format!("no dead letter {id:?}")))?;
    let filter = Filter {
        operation_ids: vec![id],
        ..Default::default()
    };
    let Some(letter) = visible(&state, &session, &filter).await?.into_iter().next() else {
        return Err(ConsoleError::NotFound(format!(
            "operation {id} is not in the dead-letter queue"
        )));
    };
    let mut conn = state.app.pool.get().await?;
    let history = ops_db::history(&mut conn, id).await?;
    drop(conn);
    let body = html! {
        p { a href="/console/dead-letters" { "all dead letters" } " · " a href=(format!("/console/operations/{id}")) { "the operation's page" } }
        dl.facts {
            dt { "operation" } dd { code { (id) } }
            dt { "reason" } dd { code data-reason { (letter.reason) } }
            dt { "last error" } dd.error { (letter.last_error.as_deref().unwrap_or("-")) }
            dt { "attempts" } dd { @if let Some(a) = letter.attempt { (a) } }
            dt { "dead-lettered" } dd { @if let Some(at) = letter.dead_at { (layout::time(at)) " (" (layout::age(at)) " ago)" } }
            dt { "project" } dd { @if let Some(p) = letter.project_id { code { (p) } } }
        }
        @if session.admin {
            div.actions {
                form method="post" action="/console/dead-letters/replay" {
                    input type="hidden" name="csrf" value=(session.csrf);
                    input type="hidden" name="mode" value="selected";
                    input type="hidden" name="id" value=(id);
                    button.primary type="submit" data-action="replay-one" { "Replay" }
                }
                form method="post" action="/console/dead-letters/purge" {
                    input type="hidden" name="csrf" value=(session.csrf);
                    input type="hidden" name="mode" value="selected";
                    input type="hidden" name="id" value=(id);
                    button.danger type="submit" data-action="purge-one" { "Purge…" }
                }
            }
        }
        h2 { "Headers" }
        table #headers {
            thead { tr { th { "header" } th { "value" } } }
            tbody {
                @if let Some(headers) = letter.headers.as_object() {
                    @for (name, value) in headers {
                        tr { td { code { (name) } } td { code { (readable(value)) } } }
                    }
                }
            }
        }
        h2 { "Body" }
        pre #body { (letter.body) }
        h2 { "The operation's history" }
        table #timeline {
            thead { tr { th { "at (UTC)" } th { "event" } th { "attempt" } th { "message" } } }
            tbody {
                @for event in &history {
                    tr {
                        td { (layout::time(event.at)) }
                        (layout::event_cells(event))
                    }
                }
            }
        }
    };
    Ok(html(
        StatusCode::OK,
        layout::page(
            &session,
            Area::DeadLetters,
            &format!("Dead letter {}", layout::short_id(id)),
            state.refresh_ms,
            body,
        ),
    ))
}

/// What an action applies to: the ticked ids, or every message matching a filter.
struct Target {
    filter: DlqFilter,
    ids: Vec<OperationId>,
    all: bool,
}

impl Target {
    fn from_form(form: &Form) -> Result<Target, ConsoleError> {
        let all = form.get("mode") == Some("all");
        let filter = DlqFilter::parse(|k| {
            if all {
                form.get(k).map(str::to_owned)
            } else {
                None
            }
        })?;
        let ids = form
            .all("id")
            .into_iter()
            .map(|id| {
                Uuid::parse_str(id).map(OperationId::from).map_err(|_| {
                    ConsoleError::BadRequest(format!("id must be an operation id, got {id:?}"))
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        if !all && ids.is_empty() {
            return Err(ConsoleError::BadRequest(
                "select at least one dead letter (or use the \"all matching\" buttons)".into(),
            ));
        }
        Ok(Target { filter, ids, all })
    }

    fn filter(&self) -> Filter {
        let mut filter = self.filter.filter.clone();
        if !self.all {
            filter.operation_ids = self.ids.clone();
        }
        filter
    }

    fn describe(&self) -> String {
        if self.all {
            self.filter.describe()
        } else if let [one] = self.ids.as_slice() {
            one.to_string()
        } else {
            format!("{} selected", self.ids.len())
        }
    }

    fn hidden_fields(&self) -> Markup {
        html! {
            input type="hidden" name="mode" value=(if self.all { "all" } else { "selected" });
            @if self.all { (self.filter.hidden_fields()) }
            @for id in &self.ids { input type="hidden" name="id" value=(id); }
        }
    }
}

pub async fn replay(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ConsoleError> {
    let (session, form) = form::admin_action(&state, &headers, body).await?;
    let target = Target::from_form(&form)?;
    let rate = match form.get("rate") {
        None => None,
        Some(text) => match text.parse::<f64>() {
            Ok(r) if r > 0.0 && r <= MAX_RATE => Some(r),
            _ => {
                return Err(ConsoleError::BadRequest(format!(
                    "rate must be a number of replays per second above 0 and at most {MAX_RATE}, got {text:?}"
                )));
            }
        },
    };
    let filter = target.filter();
    let cap = state.max_replay_per_request;
    let by = format!("{} (console)", session.caller.subject);
    let broker = state.broker.clone();
    // Its own task: see the module documentation.
    let task = tokio::spawn(async move {
        broker
            .with_dlq(async move |dlq| {
                let taken = dlq.take_all().await?;
                let mut filter = filter;
                let matching: Vec<OperationId> = taken
                    .items
                    .iter()
                    .filter(|(_, d)| filter.matches(d))
                    .filter_map(|(_, d)| d.operation_id)
                    .collect();
                let capped = matching.len() > cap;
                if capped {
                    filter.operation_ids = matching.into_iter().take(cap).collect();
                }
                let summary = dlq.replay(taken, &filter, &by, rate).await?;
                Ok((summary, capped))
            })
            .await
    });
    let (summary, capped) = task
        .await
        .map_err(|e| ConsoleError::internal("replay task", e))?
        .map_err(broker_error)?;
    let outcome = format!(
        "replayed {}, skipped {}{}",
        summary.replayed.len(),
        summary.skipped.len(),
        if capped {
            " (capped by console.max_replay_per_request)"
        } else {
            ""
        }
    );
    record(
        &state,
        &session,
        AuditAction::Replay,
        &target.describe(),
        &outcome,
        Some(summary_json(&summary, rate)),
    )
    .await?;
    let body = html! {
        (layout::notice(&outcome))
        @if capped {
            p.warning { "More messages matched than one request replays (" (cap) "); run it again for the rest." }
        }
        @if !summary.replayed.is_empty() {
            h2 { "Replayed (back to PENDING, on the work queue)" }
            ul #replayed { @for id in &summary.replayed { li { a href=(format!("/console/operations/{id}")) { code { (id) } } } } }
        }
        @if !summary.skipped.is_empty() {
            h2 { "Left in the queue" }
            ul #skipped { @for (id, why) in &summary.skipped {
                li { @if let Some(id) = id { code { (id) } ": " } (why) }
            } }
        }
        p { a href="/console/dead-letters" { "Back to the dead letters" } " · " a href="/console/audit" { "audit" } }
    };
    Ok(html(
        StatusCode::OK,
        layout::page(
            &session,
            Area::DeadLetters,
            "Replay",
            state.refresh_ms,
            body,
        ),
    ))
}

fn summary_json(summary: &ReplaySummary, rate: Option<f64>) -> serde_json::Value {
    serde_json::json!({
        "replayed": summary.replayed,
        "skipped": summary.skipped.iter().map(|(id, why)| serde_json::json!({"operation_id": id, "why": why})).collect::<Vec<_>>(),
        "rate": rate,
    })
}

/// What a purge request came to.
enum Purge {
    /// The typed count matched: this many were discarded.
    Done(usize),
    /// Not confirmed (or the count typed was not the count that matches now): nothing done.
    Confirm {
        matching: usize,
        typed: Option<String>,
    },
}

pub async fn purge(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ConsoleError> {
    let (session, form) = form::admin_action(&state, &headers, body).await?;
    let target = Target::from_form(&form)?;
    let typed = form.get("confirm").map(str::to_owned);
    let filter = target.filter();
    let by = format!("{} (console)", session.caller.subject);
    let broker = state.broker.clone();
    let confirm = typed.clone();
    let task = tokio::spawn(async move {
        broker
            .with_dlq(async move |dlq| {
                let taken = dlq.take_all().await?;
                let matching = taken.count(&filter);
                // The count is checked against what matches now, under the queue's lock, so a
                // message that arrived since the page was shown is never purged unseen.
                if matching > 0 && confirm.as_deref() == Some(matching.to_string().as_str()) {
                    Ok(Purge::Done(dlq.purge(taken, &filter, &by).await?))
                } else {
                    dlq.give_back(taken.into_deliveries()).await;
                    Ok(Purge::Confirm {
                        matching,
                        typed: confirm,
                    })
                }
            })
            .await
    });
    let outcome = task
        .await
        .map_err(|e| ConsoleError::internal("purge task", e))?
        .map_err(broker_error)?;
    match outcome {
        Purge::Done(purged) => {
            let text = format!("purged {purged}");
            record(
                &state,
                &session,
                AuditAction::Purge,
                &target.describe(),
                &text,
                None,
            )
            .await?;
            let body = html! {
                (layout::notice(&format!("Purged {purged} dead letter(s); each operation's history records it.")))
                p { a href="/console/dead-letters" { "Back to the dead letters" } " · " a href="/console/audit" { "audit" } }
            };
            Ok(html(
                StatusCode::OK,
                layout::page(&session, Area::DeadLetters, "Purge", state.refresh_ms, body),
            ))
        }
        Purge::Confirm { matching, typed } => {
            let wrong = typed.is_some();
            if let Some(typed) = &typed {
                let text = format!("refused: typed {typed:?}, {matching} matched");
                record(
                    &state,
                    &session,
                    AuditAction::Purge,
                    &target.describe(),
                    &text,
                    None,
                )
                .await?;
            }
            let body = html! {
                @if wrong {
                    p.error role="alert" data-purge-refused {
                        "The count you typed is not the number of messages that match now (" (matching) "). Nothing was purged."
                    }
                }
                @if matching == 0 {
                    p { "No dead letter matches any more; nothing to purge." }
                } @else {
                    p.warning {
                        "Purging discards " strong data-purge-count=(matching) { (matching) } " dead letter(s) for good: "
                        "their operations stay FAILED and cannot be replayed afterwards."
                    }
                    form method="post" action="/console/dead-letters/purge" {
                        input type="hidden" name="csrf" value=(session.csrf);
                        (target.hidden_fields())
                        p {
                            label for="confirm" { "Type " strong { (matching) } " to confirm" }
                            " "
                            input #confirm type="text" name="confirm" inputmode="numeric" autocomplete="off" required;
                        }
                        button.danger type="submit" data-action="purge-confirm" { "Purge" }
                        " " a href="/console/dead-letters" { "cancel" }
                    }
                }
            };
            let status = if wrong {
                StatusCode::CONFLICT
            } else {
                StatusCode::OK
            };
            Ok(html(
                status,
                layout::page(
                    &session,
                    Area::DeadLetters,
                    "Confirm the purge",
                    state.refresh_ms,
                    body,
                ),
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amqp_header_values_read_as_text_and_numbers() {
        let value = serde_json::json!({"LongString": [109, 97, 120]});
        assert_eq!(readable(&value), "max");
        assert_eq!(readable(&serde_json::json!({"LongLongInt": 3})), "3");
        let deaths =
            serde_json::json!({"FieldArray": [{"FieldTable": {"reason": {"LongString": [114]}}}]});
        assert_eq!(readable(&deaths), r#"[{"reason":"r"}]"#);
    }
}
