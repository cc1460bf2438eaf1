//! Dead letters: the list (reason, last error, attempts, age, project; filtered like
//! `remediator dlq list`), one message's page (headers, body, the operation's history), and
//! the admin's actions ([`actions`]): replay one, the selection or all that match at a chosen
//! rate, and purge, which makes the operator type the count. Every read and action goes
//! through [`crate::queue::dead_letters`], the CLI's own code, and every action is audited.
//!
//! Actions run in a task of their own, so an operator closing the tab mid-replay cannot leave
//! messages taken and neither replayed nor given back.

mod actions;
mod headers;
mod selection;

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::{Markup, html};

use super::layout::{self, Area};
use super::session::Session;
use super::{ConsoleError, ConsoleState, html, session};
use crate::db::console as console_db;
use crate::db::operations as ops_db;
use crate::lifecycle::OperationId;
use crate::queue::dead_letters::{DeadLetter, DeadLetterReason, Filter};
pub use actions::{purge, replay};
use selection::DlqFilter;

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
        (filter_form(&filter))
        p.muted { (letters.len()) " dead letter(s) match. Listing takes the messages and gives them back; nothing is changed." }
        @if session.admin && !letters.is_empty() {
            (all_matching_form(&session, &filter, letters.len()))
        }
        @if letters.is_empty() {
            p { "The dead-letter queue has nothing that matches." }
        } @else {
            (selection_form(&session, &letters))
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

fn filter_form(filter: &DlqFilter) -> Markup {
    html! {
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
    }
}

/// The replay and purge buttons for every message the filter matches.
fn all_matching_form(session: &Session, filter: &DlqFilter, count: usize) -> Markup {
    html! {
        form.actions method="post" action="/console/dead-letters/replay" data-form="replay-all" {
            input type="hidden" name="csrf" value=(session.csrf);
            input type="hidden" name="mode" value="all";
            (filter.hidden_fields())
            fieldset {
                legend { "Every matching message (" (filter.describe()) ")" }
                (rate_field())
                " "
                button.primary type="submit" data-action="replay-all" { "Replay all " (count) }
                " "
                button.danger type="submit" formaction="/console/dead-letters/purge" data-action="purge-all" { "Purge all " (count) "…" }
            }
        }
    }
}

fn rate_field() -> Markup {
    html! {
        label { "rate per second " input type="number" name="rate" min="0.1" max="1000" step="0.1" placeholder="no limit" size="6"; }
    }
}

/// The table of dead letters; for the admin, with a box to tick on each and the actions on
/// the ticked ones.
fn selection_form(session: &Session, letters: &[DeadLetter]) -> Markup {
    html! {
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
                    @for letter in letters { (letter_row(letter, session.admin)) }
                }
            }
            @if session.admin {
                div.actions {
                    (rate_field())
                    button.primary type="submit" data-action="replay-selected" { "Replay selected" }
                    button.danger type="submit" formaction="/console/dead-letters/purge" data-action="purge-selected" { "Purge selected…" }
                }
            }
        }
    }
}

fn letter_row(letter: &DeadLetter, admin: bool) -> Markup {
    html! {
        tr data-dead-letter=[letter.operation_id] {
            @if admin {
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

fn non_empty(value: Option<&String>) -> Option<String> {
    value.map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

pub async fn show(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ConsoleError> {
    let session = session::require(&state, &headers, false).await?;
    let id: OperationId = id
        .parse()
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
        (facts(id, &letter))
        @if session.admin { (one_letter_actions(&session, id)) }
        h2 { "Headers" }
        (headers::table(&letter.headers))
        h2 { "Body" }
        pre #body { (letter.body) }
        h2 { "The operation's history" }
        (layout::history_table(&history, layout::time, false))
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

fn facts(id: OperationId, letter: &DeadLetter) -> Markup {
    html! {
        dl.facts {
            dt { "operation" } dd { code { (id) } }
            dt { "reason" } dd { code data-reason { (letter.reason) } }
            dt { "last error" } dd.error { (letter.last_error.as_deref().unwrap_or("-")) }
            dt { "attempts" } dd { @if let Some(a) = letter.attempt { (a) } }
            dt { "dead-lettered" } dd { @if let Some(at) = letter.dead_at { (layout::time(at)) " (" (layout::age(at)) " ago)" } }
            dt { "project" } dd { @if let Some(p) = letter.project_id { code { (p) } } }
        }
    }
}

/// Replay and Purge for the one dead letter of the page.
fn one_letter_actions(session: &Session, id: OperationId) -> Markup {
    let action = |verb: &str, class: &str, data_action: &str, label: &str| {
        html! {
            form method="post" action=(format!("/console/dead-letters/{verb}")) {
                input type="hidden" name="csrf" value=(session.csrf);
                input type="hidden" name="mode" value="selected";
                input type="hidden" name="id" value=(id);
                button class=(class) type="submit" data-action=(data_action) { (label) }
            }
        }
    };
    html! {
        div.actions {
            (action("replay", "primary", "replay-one", "Replay"))
            (action("purge", "danger", "purge-one", "Purge…"))
        }
    }
}
