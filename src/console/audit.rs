//! The audit trail: [`record`], which every console action (and login and logout) writes
//! through, and the page that lists the entries (who, when, what, and what came of it),
//! newest first. The page is for the admin scope only: entries name operations and operators
//! of every organisation.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::html;

use super::layout::{self, Area};
use super::session::Session;
use super::{ConsoleError, ConsoleState, html, session};
use crate::db::audit::{self, AuditAction, NewAuditEntry};

const PAGE_SIZE: i64 = 100;

pub async fn page(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ConsoleError> {
    let session = session::require(&state, &headers, false).await?;
    session.require_admin(&state.admin_scope)?;
    let before = match query.get("before").filter(|v| !v.is_empty()) {
        None => None,
        Some(v) => Some(v.parse::<i64>().map_err(|_| {
            ConsoleError::BadRequest(format!("before must be an entry number, got {v:?}"))
        })?),
    };
    let mut conn = state.app.pool.get().await?;
    let entries = audit::list(&mut conn, before, PAGE_SIZE).await?;
    drop(conn);
    let older = (entries.len() as i64 == PAGE_SIZE)
        .then(|| entries.last().map(|e| e.id))
        .flatten();
    let body = html! {
        @if entries.is_empty() {
            p { "Nothing recorded yet." }
        } @else {
            table #audit {
                thead { tr { th { "at" } th { "who" } th { "organisation" } th { "action" } th { "on" } th { "outcome" } } }
                tbody {
                    @for entry in &entries {
                        tr data-action=(entry.action) {
                            td { (layout::time(entry.at)) }
                            td { (entry.actor) }
                            td { code title=(entry.actor_organization) { (layout::short_id(entry.actor_organization)) } }
                            td { code { (entry.action) } }
                            td { (entry.target) }
                            td { (entry.outcome) }
                        }
                    }
                }
            }
        }
        div.pager {
            @if before.is_some() { a href="/console/audit" { "« newest" } }
            @if let Some(id) = older { a rel="next" href=(format!("/console/audit?before={id}")) { "older »" } }
        }
    };
    Ok(html(
        StatusCode::OK,
        layout::page(&session, Area::Audit, "Audit", state.refresh_ms, body),
    ))
}

/// Writes one audit entry: `session`'s caller did `action` on `target`, with `outcome`.
pub async fn record(
    state: &ConsoleState,
    session: &Session,
    action: AuditAction,
    target: &str,
    outcome: &str,
    details: Option<serde_json::Value>,
) -> Result<(), ConsoleError> {
    let mut conn = state.app.pool.get().await?;
    audit::record(
        &mut conn,
        &NewAuditEntry {
            actor: &session.caller.subject,
            actor_organization: session.caller.organization,
            action,
            target,
            outcome,
            details,
        },
    )
    .await?;
    Ok(())
}
