//! The HTTP API (`remediator intake`): the auto-remediation endpoint of the contract, the
//! operation polling endpoints, health probes and the OpenAPI document.

pub mod auth;
pub mod error;
pub mod health;
pub mod operations;
pub mod rate_limit;
pub mod remediation;

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
    pub max_body_bytes: usize,
    pub relay_wake: Arc<Notify>,
    /// Per-organisation limit on remediation writes (trigger and cancel).
    pub rate_limit: rate_limit::RateLimit,
}

pub fn router(state: AppState) -> Router {
    let body_limit = state.max_body_bytes;
    Router::new()
        .route("/v1/findings/auto-remediation", post(remediation::trigger))
        .route("/v1/operations", get(operations::list))
        .route("/v1/operations/{operation_id}", get(operations::get))
        .route(
            "/v1/operations/{operation_id}/cancel",
            post(operations::cancel),
        )
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/openapi.json", get(openapi))
        .route("/metrics", get(crate::metrics::render))
        .fallback(not_found)
        .layer(axum::middleware::from_fn(crate::metrics::track_http))
        // The handlers read bodies with their own limit and error; this caps everything else.
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(state)
}

async fn openapi() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], OPENAPI_JSON)
}

async fn not_found() -> error::ApiError {
    error::ApiError::not_found("no such endpoint")
}
