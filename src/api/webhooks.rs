//! `POST /v1/webhooks/{github,gitlab,gitea}`: the forges tell us a remediation pull request was
//! merged, closed or reopened. A delivery is verified against the forge's secret before
//! anything else is read (401, nothing changed, when it is unsigned or mis-signed), then
//! applied at most once per delivery id: the delivery row and the state change commit in one
//! transaction, so a replay (or the forge's retry of a delivery we answered slowly) finds
//! the row and changes nothing. The request does no forge or git work, only that one small
//! transaction, so it answers at once (forges time deliveries out after about 10 s).

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use diesel_async::{AsyncConnection, AsyncPgConnection};
use serde::Serialize;

use super::AppState;
use super::error::{ApiError, Code};
use crate::db::{fixes, webhooks as deliveries};
use crate::webhooks::WebhookForge;
use crate::webhooks::events::{self, Event, PullRequestEvent};
use crate::webhooks::verify::{self, header};

/// Longest delivery id we store (GitHub's and Gitea's are UUIDs, GitLab's too).
const MAX_DELIVERY_ID: usize = 200;

#[derive(Debug, Serialize)]
pub struct DeliveryResponse {
    pub delivery_id: String,
    /// `applied` (the pull request's state changed), `unchanged` (it was known),
    /// `unknown_pull_request` (not one of ours), `ignored` (an event we do not follow) or
    /// `duplicate` (this delivery was applied before).
    pub outcome: &'static str,
}

#[tracing::instrument(skip_all, fields(forge = %forge, delivery_id))]
pub async fn receive(
    State(state): State<AppState>,
    Path(forge): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Result<Json<DeliveryResponse>, ApiError> {
    let forge = WebhookForge::parse(&forge)
        .ok_or_else(|| ApiError::not_found(format!("no webhook endpoint for forge {forge:?}")))?;
    let limits = state.limits.for_path(super::guard::WEBHOOK_PATH_PREFIX);
    let body = super::guard::read_body(body, limits).await?;
    if let Err(refusal) = verify::verify(forge, state.webhooks.get(forge), &headers, &body) {
        // Logged without the headers: they hold the signature (or, for GitLab, the secret).
        tracing::warn!(%refusal, "refused a webhook delivery");
        crate::metrics::webhook_delivery(forge.as_str(), "refused");
        return Err(ApiError::new(Code::Unauthenticated, refusal.to_string()));
    }
    let delivery_id = delivery_id(forge, &headers)?;
    tracing::Span::current().record("delivery_id", delivery_id.as_str());
    let event_name = event_name(forge, &headers)?;
    let event = events::parse(forge, &event_name, &body)
        .map_err(|e| ApiError::invalid_argument(e.to_string()))?;
    let outcome = apply_once(&state, forge, &delivery_id, &event_name, &event).await?;
    crate::metrics::webhook_delivery(forge.as_str(), outcome);
    match &event {
        Event::PullRequest(pull) => tracing::info!(
            outcome,
            number = pull.number,
            observed = %pull.observed.status(),
            "webhook delivery"
        ),
        Event::Ignored(what) => tracing::debug!(outcome, what, "webhook delivery"),
    }
    Ok(Json(DeliveryResponse {
        delivery_id,
        outcome,
    }))
}

/// The delivery's id: present, short and printable, since it is stored and logged.
fn delivery_id(forge: WebhookForge, headers: &HeaderMap) -> Result<String, ApiError> {
    let id = header(headers, forge.delivery_headers())
        .filter(|id| {
            !id.is_empty()
                && id.len() <= MAX_DELIVERY_ID
                && id.chars().all(|c| c.is_ascii_graphic())
        })
        .ok_or_else(|| {
            ApiError::invalid_argument(format!(
                "the delivery needs a {} header (at most {MAX_DELIVERY_ID} printable characters)",
                forge.delivery_headers()[0]
            ))
        })?;
    Ok(id.to_owned())
}

/// The forge's name for the event (`pull_request`, `Merge Request Hook`, ...).
fn event_name(forge: WebhookForge, headers: &HeaderMap) -> Result<String, ApiError> {
    let name = header(headers, forge.event_headers()).ok_or_else(|| {
        ApiError::invalid_argument(format!(
            "the delivery needs a {} header",
            forge.event_headers()[0]
        ))
    })?;
    super::guard::check_text(forge.event_headers()[0], name)?;
    Ok(name.to_owned())
}

/// Records the delivery and applies its event in one transaction; `duplicate` (and nothing
/// changed) when the delivery id was recorded before.
async fn apply_once(
    state: &AppState,
    forge: WebhookForge,
    delivery_id: &str,
    event_name: &str,
    event: &Event,
) -> Result<&'static str, ApiError> {
    let mark_fixed = state.mark_fixed_on_merge;
    let mut conn = state.pool.get().await?;
    conn.transaction(async |conn| -> Result<&'static str, ApiError> {
        let name = forge.as_str();
        let event_text: String = event_name.chars().take(100).collect();
        if !deliveries::record_delivery(conn, name, delivery_id, &event_text, "received").await? {
            return Ok("duplicate");
        }
        let outcome = match event {
            Event::Ignored(_) => "ignored",
            Event::PullRequest(pull) => apply_pull_request(conn, name, pull, mark_fixed).await?,
        };
        deliveries::set_outcome(conn, name, delivery_id, outcome).await?;
        Ok(outcome)
    })
    .await
}

/// Moves the fix behind a pull request of ours to the state the forge reports.
async fn apply_pull_request(
    conn: &mut AsyncPgConnection,
    forge: &str,
    pull: &PullRequestEvent,
    mark_fixed: bool,
) -> Result<&'static str, ApiError> {
    let number = i32::try_from(pull.number).unwrap_or(-1);
    Ok(
        match fixes::find_by_pull_request(conn, forge, &pull.pr_url, number).await? {
            // Same URL and number, but another branch: not a pull request of ours.
            Some(fix) if fix.branch_name == pull.head_branch => {
                if fixes::apply_observed(conn, fix.id, pull.observed, mark_fixed).await? {
                    "applied"
                } else {
                    "unchanged"
                }
            }
            _ => "unknown_pull_request",
        },
    )
}
