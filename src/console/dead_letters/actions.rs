//! The admin's actions on dead letters: replay (one, the selection, or all that match, at a
//! chosen rate, capped per request) and purge (only once the operator typed the count that
//! matches at that moment). Each runs in a task of its own (see the parent module) and is
//! audited, refusals included.

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{Markup, html};
use tokio::task::JoinError;

use super::broker_error;
use super::selection::Target;
use crate::console::audit::record;
use crate::console::form::{self, Form};
use crate::console::layout::{self, Area};
use crate::console::session::Session;
use crate::console::{ConsoleError, ConsoleState, html};
use crate::db::audit::AuditAction;
use crate::lifecycle::OperationId;
use crate::queue::dead_letters::{DeadLetterQueue, Filter, ReplaySummary};

/// Highest replay rate accepted (per second); the CLI has none, the console keeps a request
/// from hammering the broker by mistake.
const MAX_RATE: f64 = 1000.0;

pub async fn replay(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ConsoleError> {
    let (session, form, target) = read_action(&state, &headers, body).await?;
    let rate = parse_rate(form.get("rate"))?;
    let filter = target.filter();
    let cap = state.max_replay_per_request;
    let by = actor(&session);
    let broker = state.broker.clone();
    // Its own task: see the module documentation.
    let task = tokio::spawn(async move {
        broker
            .with_dlq(async move |dlq| replay_capped(dlq, filter, &by, rate, cap).await)
            .await
    });
    let (summary, capped) = finished(task.await, "replay task")?;
    let outcome = replay_outcome(&summary, capped);
    record(
        &state,
        &session,
        AuditAction::Replay,
        &target.describe(),
        &outcome,
        Some(summary_json(&summary, rate)),
    )
    .await?;
    let body = replay_report(&outcome, &summary, capped.then_some(cap));
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

/// The admin session behind an action, its form, and what the form selects.
async fn read_action(
    state: &ConsoleState,
    headers: &HeaderMap,
    body: Body,
) -> Result<(Session, Form, Target), ConsoleError> {
    let (session, form) = form::admin_action(state, headers, body).await?;
    let target = Target::from_form(&form)?;
    Ok((session, form, target))
}

/// The rate field: absent, or replays per second above 0 and at most [`MAX_RATE`].
fn parse_rate(text: Option<&str>) -> Result<Option<f64>, ConsoleError> {
    let Some(text) = text else {
        return Ok(None);
    };
    match text.parse::<f64>() {
        Ok(r) if r > 0.0 && r <= MAX_RATE => Ok(Some(r)),
        _ => Err(ConsoleError::BadRequest(format!(
            "rate must be a number of replays per second above 0 and at most {MAX_RATE}, got {text:?}"
        ))),
    }
}

/// Who acts, as the operation's history records it.
fn actor(session: &Session) -> String {
    format!("{} (console)", session.caller.subject)
}

/// The outcome of a task that used the dead-letter queue.
fn finished<R>(
    joined: Result<anyhow::Result<R>, JoinError>,
    task: &str,
) -> Result<R, ConsoleError> {
    joined
        .map_err(|e| ConsoleError::internal(task, e))?
        .map_err(broker_error)
}

/// Replays what matches, at most `cap` messages; true when more matched than that.
async fn replay_capped(
    dlq: &DeadLetterQueue,
    mut filter: Filter,
    by: &str,
    rate: Option<f64>,
    cap: usize,
) -> anyhow::Result<(ReplaySummary, bool)> {
    let taken = dlq.take_all().await?;
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
    let summary = dlq.replay(taken, &filter, by, rate).await?;
    Ok((summary, capped))
}

fn replay_outcome(summary: &ReplaySummary, capped: bool) -> String {
    format!(
        "replayed {}, skipped {}{}",
        summary.replayed.len(),
        summary.skipped.len(),
        if capped {
            " (capped by console.max_replay_per_request)"
        } else {
            ""
        }
    )
}

/// The page after a replay; `capped_at`: the cap, when more messages matched than it.
fn replay_report(outcome: &str, summary: &ReplaySummary, capped_at: Option<usize>) -> Markup {
    html! {
        (layout::notice(outcome))
        @if let Some(cap) = capped_at {
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
        (back_links())
    }
}

fn back_links() -> Markup {
    html! {
        p { a href="/console/dead-letters" { "Back to the dead letters" } " · " a href="/console/audit" { "audit" } }
    }
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
    let (session, form, target) = read_action(&state, &headers, body).await?;
    let typed = form.get("confirm").map(str::to_owned);
    let filter = target.filter();
    let by = actor(&session);
    let broker = state.broker.clone();
    let task = tokio::spawn(async move {
        broker
            .with_dlq(async move |dlq| purge_if_confirmed(dlq, &filter, &by, typed).await)
            .await
    });
    match finished(task.await, "purge task")? {
        Purge::Done(purged) => purged_page(&state, &session, &target, purged).await,
        Purge::Confirm { matching, typed } => {
            confirm_page(&state, &session, &target, matching, typed).await
        }
    }
}

/// Purges what matches when `typed` is the count that matches now, else gives it all back.
async fn purge_if_confirmed(
    dlq: &DeadLetterQueue,
    filter: &Filter,
    by: &str,
    typed: Option<String>,
) -> anyhow::Result<Purge> {
    let taken = dlq.take_all().await?;
    let matching = taken.count(filter);
    // The count is checked against what matches now, under the queue's lock, so a message
    // that arrived since the page was shown is never purged unseen.
    if matching > 0 && typed.as_deref() == Some(matching.to_string().as_str()) {
        Ok(Purge::Done(dlq.purge(taken, filter, by).await?))
    } else {
        dlq.give_back(taken.into_deliveries()).await;
        Ok(Purge::Confirm { matching, typed })
    }
}

async fn record_purge(
    state: &ConsoleState,
    session: &Session,
    target: &Target,
    outcome: &str,
) -> Result<(), ConsoleError> {
    let on = target.describe();
    record(state, session, AuditAction::Purge, &on, outcome, None).await
}

async fn purged_page(
    state: &ConsoleState,
    session: &Session,
    target: &Target,
    purged: usize,
) -> Result<Response, ConsoleError> {
    record_purge(state, session, target, &format!("purged {purged}")).await?;
    let body = html! {
        (layout::notice(&format!("Purged {purged} dead letter(s); each operation's history records it.")))
        (back_links())
    };
    Ok(html(
        StatusCode::OK,
        layout::page(session, Area::DeadLetters, "Purge", state.refresh_ms, body),
    ))
}

/// Asks for the count (again, 409, when the one typed was not the count that matches now).
async fn confirm_page(
    state: &ConsoleState,
    session: &Session,
    target: &Target,
    matching: usize,
    typed: Option<String>,
) -> Result<Response, ConsoleError> {
    let wrong = typed.is_some();
    if let Some(typed) = &typed {
        let text = format!("refused: typed {typed:?}, {matching} matched");
        record_purge(state, session, target, &text).await?;
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
            (confirm_form(session, target, matching))
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
            session,
            Area::DeadLetters,
            "Confirm the purge",
            state.refresh_ms,
            body,
        ),
    ))
}

fn confirm_form(session: &Session, target: &Target, matching: usize) -> Markup {
    html! {
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
}
