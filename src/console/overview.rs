//! The overview: queue depths (work, retry tiers, dead), the outbox backlog, jobs per minute
//! over the last hour, the oldest PENDING operation, and the workers seen with what each is
//! running. Fleet-wide figures (queues, outbox) are shown to the admin scope only; a read-only
//! session sees its organisation's jobs, oldest PENDING and running work.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use chrono::{DateTime, Utc};
use maud::{Markup, html};

use super::broker::QueueDepth;
use super::layout::{self, Area};
use super::{ConsoleError, ConsoleState, html, live_page_session, scope_of, session};
use crate::db::console::{self, MinuteCounts, WorkerSeen};
use crate::lifecycle::OperationId;

/// Workers whose last heartbeat is older than this are not listed.
const WORKER_WINDOW_MINUTES: i64 = 10;

pub async fn page(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ConsoleError> {
    let (session, fragment) = live_page_session(&state, &headers, &query).await?;
    let live = figures(&state, &session).await?;
    if fragment {
        return Ok(html(StatusCode::OK, live));
    }
    let body = html! {
        p.stamp { span data-live-stamp { "refresh the page for new figures" } }
        div #overview data-live="/console/?fragment=1" { (live) }
    };
    Ok(html(
        StatusCode::OK,
        layout::page(&session, Area::Overview, "Overview", state.refresh_ms, body),
    ))
}

/// The live part of the page.
async fn figures(state: &ConsoleState, session: &session::Session) -> Result<Markup, ConsoleError> {
    let scope = scope_of(session);
    let mut conn = state.app.pool.get().await?;
    let oldest = console::oldest_pending(&mut conn, scope).await?;
    let minutes = console::throughput(&mut conn, scope).await?;
    let workers = console::workers_seen(
        &mut conn,
        scope,
        chrono::Duration::minutes(WORKER_WINDOW_MINUTES),
    )
    .await?;
    let backlog = if session.admin {
        Some(console::outbox_backlog(&mut conn).await?)
    } else {
        None
    };
    drop(conn);
    let depths = if session.admin {
        Some(state.broker.depths().await.map_err(|error| {
            tracing::warn!(error = %format!("{error:#}"), "console: reading queue depths");
            error
        }))
    } else {
        None
    };
    Ok(html! {
        @if let Some(depths) = &depths {
            h2 { "Queues" }
            (queue_cards(depths))
        }
        h2 { "Jobs" }
        (job_cards(backlog, oldest, &minutes))
        h2 { "Jobs per minute, last hour" }
        (per_minute(&minutes))
        h2 { "Workers seen (last " (WORKER_WINDOW_MINUTES) " minutes)" }
        (workers_table(&workers))
    })
}

/// A card per queue with its depth and consumers, or why there is none.
fn queue_cards(depths: &anyhow::Result<Vec<QueueDepth>>) -> Markup {
    html! {
        @match depths {
            Ok(depths) => {
                div.cards {
                    @for depth in depths {
                        div.card data-queue=(depth.role) data-queue-name=(depth.name) {
                            div.label { (depth.role) " · " code { (depth.name) } }
                            @match depth.messages() {
                                Some(n) => {
                                    div.value.bad[depth.role == "dead" && n > 0] data-depth=(n) { (n) }
                                    div.label { (depth.consumers().unwrap_or(0)) " consumer(s)" }
                                }
                                None => { div.value.muted { "-" } div.label { "not declared yet" } }
                            }
                        }
                    }
                }
            }
            Err(_) => { p.warning { "RabbitMQ is unreachable: queue depths are unknown (the intake's log says why)." } }
        }
    }
}

/// The outbox backlog (admin only), the oldest PENDING operation, and the last hour's totals.
fn job_cards(
    backlog: Option<(i64, i64)>,
    oldest: Option<(OperationId, DateTime<Utc>)>,
    minutes: &[MinuteCounts],
) -> Markup {
    let totals = minutes.iter().fold((0, 0, 0), |(s, f, r), m| {
        (s + m.succeeded, f + m.failed, r + m.retried)
    });
    html! {
        div.cards {
            @if let Some((unpublished, quarantined)) = backlog {
                div.card data-figure="outbox" {
                    div.label { "outbox backlog" }
                    div.value data-count=(unpublished) { (unpublished) }
                    div.label { (quarantined) " quarantined" }
                }
            }
            div.card data-figure="oldest-pending" {
                div.label { "oldest PENDING" }
                @match oldest {
                    Some((id, at)) => {
                        div.value { (layout::age(at)) }
                        div.label { a href=(format!("/console/operations/{id}")) title=(id) { code { (layout::short_id(id)) } } }
                    }
                    None => { div.value.muted { "none" } }
                }
            }
            div.card data-figure="succeeded" { div.label { "succeeded, last hour" } div.value { (totals.0) } }
            div.card data-figure="failed" { div.label { "failed, last hour" } div.value.bad[totals.1 > 0] { (totals.1) } }
            div.card data-figure="retried" { div.label { "retried, last hour" } div.value { (totals.2) } }
        }
    }
}

/// The workers seen with a recent heartbeat, and the jobs each runs now.
fn workers_table(workers: &[WorkerSeen]) -> Markup {
    html! {
        @if workers.is_empty() {
            p.muted { "No worker has sent a heartbeat for an operation in that time." }
        } @else {
            table #workers {
                thead { tr { th { "worker" } th { "last heartbeat" } th { "running" } } }
                tbody {
                    @for worker in workers {
                        tr data-worker=(worker.name) {
                            td { code { (worker.name) } }
                            td { (layout::age(worker.last_heartbeat)) " ago" }
                            td {
                                @if worker.running.is_empty() { span.muted { "idle" } }
                                @for job in &worker.running {
                                    div {
                                        a href=(format!("/console/operations/{}", job.id)) title=(job.id) { code { (layout::short_id(job.id)) } }
                                        " " (job.project_name) " " (layout::step_progress(job.step))
                                        @if let Some(started) = job.started_at { " · " (layout::age(started)) }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// A small table of the minutes that had jobs, with bars (no chart library).
fn per_minute(minutes: &[MinuteCounts]) -> Markup {
    if minutes.is_empty() {
        return html! { p.muted { "No job ended in the last hour." } };
    }
    let most = minutes
        .iter()
        .map(|m| m.succeeded + m.failed + m.retried)
        .max()
        .unwrap_or(1)
        .max(1);
    let width = |n: i64| {
        format!(
            "bar-w{}",
            (n * 20 / most).clamp(if n > 0 { 1 } else { 0 }, 20)
        )
    };
    html! {
        table #per-minute {
            thead { tr { th { "minute (UTC)" } th.num { "succeeded" } th.num { "failed" } th.num { "retried" } th { "" } } }
            tbody {
                @for m in minutes.iter().rev() {
                    tr {
                        td { (m.minute.format("%H:%M")) " " span.muted { "(" (layout::duration(Utc::now() - m.minute)) " ago)" } }
                        td.num { (m.succeeded) }
                        td.num { (m.failed) }
                        td.num { (m.retried) }
                        td {
                            span class=(format!("bar ok {}", width(m.succeeded))) {}
                            span class=(format!("bar bad {}", width(m.failed))) {}
                            span class=(format!("bar warn {}", width(m.retried))) {}
                        }
                    }
                }
            }
        }
    }
}
