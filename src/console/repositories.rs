//! Repositories: each project's open remediation pull requests against the worker's cap
//! (`worker.max_open_prs_per_repository`), and its failures of the last 24 hours with the
//! latest error.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use maud::html;

use super::layout::{self, Area};
use super::{ConsoleError, ConsoleState, html, scope_of, session};
use crate::db::console;

/// Repositories listed at most (busiest first).
const MAX_ROWS: i64 = 500;

pub async fn page(
    State(state): State<ConsoleState>,
    headers: HeaderMap,
) -> Result<Response, ConsoleError> {
    let session = session::require(&state, &headers, false).await?;
    let mut conn = state.app.pool.get().await?;
    let rows = console::repositories(&mut conn, scope_of(&session), MAX_ROWS).await?;
    drop(conn);
    let cap = state.pr_cap;
    let body = html! {
        p.muted {
            @if cap == 0 { "No cap on open pull requests per repository (worker.max_open_prs_per_repository = 0)." }
            @else { "A repository at " (cap) " open remediation pull requests gets no new one until some are merged or closed (worker.max_open_prs_per_repository)." }
        }
        @if rows.is_empty() {
            p { "No project imported yet." }
        } @else {
            table #repositories {
                thead { tr { th { "project" } th { "repository" } th.num { "open PRs" } th.num { "failures, 24 h" } th { "latest failure" } } }
                tbody {
                    @for row in &rows {
                        tr data-project=(row.project_id) {
                            td { a href=(format!("/console/operations?project={}", row.project_id)) { (row.name) } }
                            td { code { (row.repository_url) } }
                            td.num.error[cap > 0 && row.open_prs >= i64::from(cap)] data-open-prs=(row.open_prs) {
                                (row.open_prs) @if cap > 0 { " / " (cap) }
                            }
                            td.num data-failures=(row.recent_failures) {
                                @if row.recent_failures > 0 {
                                    a href=(format!("/console/operations?project={}&status=FAILED", row.project_id)) { (row.recent_failures) }
                                } @else { "0" }
                            }
                            td.error {
                                @if let Some(error) = &row.last_error {
                                    span title=(error) { (layout::clip(error, 100)) }
                                    @if let Some(at) = row.last_failure_at { " " span.muted { "(" (layout::age(at)) " ago)" } }
                                }
                            }
                        }
                    }
                }
            }
        }
    };
    Ok(html(
        StatusCode::OK,
        layout::page(
            &session,
            Area::Repositories,
            "Repositories",
            state.refresh_ms,
            body,
        ),
    ))
}
