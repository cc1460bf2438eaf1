//! Liveness (`/healthz`: the process answers) and readiness (`/readyz`: it can accept work,
//! which means Postgres is reachable), for orchestrators and load balancers. RabbitMQ being
//! down does not make an intake unready: accepted requests wait in the outbox, which is what
//! it is for. The body says how the broker looks, from what the relay last saw, so a probe
//! never opens a connection of its own.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use diesel_async::RunQueryDsl;
use serde_json::{Value, json};

use super::AppState;
use crate::queue::health::BrokerState;

const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

pub async fn healthz() -> Json<Value> {
    Json(json!({"status": "ok"}))
}

pub async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    let database = tokio::time::timeout(PROBE_TIMEOUT, async {
        let mut conn = state.pool.get().await.map_err(|e| e.to_string())?;
        diesel::sql_query("SELECT 1")
            .execute(&mut conn)
            .await
            .map_err(|e| e.to_string())
    })
    .await
    .map_err(|_| "timed out".to_string())
    .and_then(|r| r.map(|_| ()));
    let broker = match state.broker.state() {
        BrokerState::Connected => json!("ok"),
        BrokerState::Unknown => json!("unknown (no relay in this process has connected yet)"),
        BrokerState::Down { error, since } => json!(format!(
            "down since {} ({error}); accepted requests wait in the outbox",
            since.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        )),
    };
    let (status, ready, database) = match database {
        Ok(()) => (StatusCode::OK, "ready", json!("ok")),
        Err(error) => (StatusCode::SERVICE_UNAVAILABLE, "not ready", json!(error)),
    };
    (
        status,
        Json(json!({"status": ready, "database": database, "broker": broker})),
    )
}
