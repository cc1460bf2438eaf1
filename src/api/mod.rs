//! The HTTP API (`remediator intake`): the auto-remediation endpoint of the contract, the
//! operation polling endpoints, health probes and the OpenAPI document.

pub mod auth;
pub mod error;
pub mod guard;
pub mod health;
pub mod operations;
pub mod rate_limit;
pub mod remediation;
pub mod serve;
pub mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::header::CONTENT_TYPE;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use tokio::sync::Notify;

use crate::db::DbPool;
use auth::Authenticator;

/// The OpenAPI document of everything the service exposes.
pub const OPENAPI_JSON: &str = include_str!("openapi.json");

#[derive(Clone)]
pub struct AppState {
    pub pool: DbPool,
    pub auth: Arc<Authenticator>,
    /// The broker as this process's relay last saw it (`/readyz` reports it).
    pub broker: crate::queue::health::BrokerHealth,
    /// Body and header limits, checked before a body is read.
    pub limits: guard::RequestLimits,
    pub relay_wake: Arc<Notify>,
    /// Per-organisation limit on remediation writes (trigger and cancel).
    pub rate_limit: rate_limit::RateLimit,
    /// The worker's rules for repository URLs and branches: a trigger for a project the worker
    /// would refuse is refused at once (400 code 9) instead of queueing a job bound to fail.
    pub repository_rules: crate::repository_admission::RepositoryRules,
    /// Each forge's webhook secret (`[webhooks]`).
    pub webhooks: Arc<crate::webhooks::secrets::WebhookSecrets>,
    /// `worker.mark_fixed_on_merge`: a merge seen by a webhook also makes assessments FIXED.
    pub mark_fixed_on_merge: bool,
    /// `worker.group`: which fix a trigger's closed-pull-request check looks at.
    pub group: crate::config::Grouping,
}

/// The intake's routes: the API, and the operations console when `console` is given (its own
/// routes, error pages and headers, outside the API's JSON error layer).
pub fn router(state: AppState, console: Option<crate::console::ConsoleState>) -> Router {
    let body_limit = state.limits.max_body_bytes;
    let api = Router::new()
        .route("/v1/findings/auto-remediation", post(remediation::trigger))
        .route("/v1/operations", get(operations::list))
        .route("/v1/operations/{operation_id}", get(operations::get))
        .route(
            "/v1/operations/{operation_id}/cancel",
            post(operations::cancel),
        )
        .route("/v1/webhooks/{forge}", post(webhooks::receive))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/openapi.json", get(openapi))
        .route("/metrics", get(crate::metrics::render))
        .fallback(not_found)
        // Innermost first: limits are checked before any handler reads a byte of the body,
        // every error leaves with the contract's body, and the metrics count what left.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            guard::check_limits,
        ))
        .layer(axum::middleware::from_fn(guard::contract_errors))
        .with_state(state.clone());
    let app = match console {
        // The console's routes are all under /console; the API's fallback answers the rest.
        Some(console) => api.merge(crate::console::router(console).layer(
            axum::middleware::from_fn_with_state(state, guard::check_limits),
        )),
        None => api,
    };
    app.layer(axum::middleware::from_fn(crate::metrics::track_http))
        // The handlers read bodies with their own limit and error; this caps everything else.
        .layer(DefaultBodyLimit::max(body_limit))
}

async fn openapi() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], OPENAPI_JSON)
}

async fn not_found() -> error::ApiError {
    error::ApiError::not_found("no such endpoint")
}
