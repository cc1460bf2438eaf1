//! Liveness (`/healthz`: the process answers) and readiness (`/readyz`: Postgres and RabbitMQ
//! are reachable), for orchestrators and load balancers.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use diesel_async::RunQueryDsl;
use serde_json::{Value, json};

use super::AppState;

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
    let broker = tokio::time::timeout(PROBE_TIMEOUT, async {
        let conn = crate::queue::connect(&state.amqp_url, "remediator-readyz")
            .await
            .map_err(|e| format!("{e:#}"))?;
        let _ = conn.close(200, "probe done".into()).await;
        Ok::<_, String>(())
    })
    .await
    .map_err(|_| "timed out".to_string())
    .and_then(|r| r);
    let ready = database.is_ok() && broker.is_ok();
    let describe = |r: &Result<(), String>| match r {
        Ok(()) => json!("ok"),
        Err(e) => json!(e),
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(
            json!({"status": if ready {"ready"} else {"not ready"}, "database": describe(&database), "broker": describe(&broker)}),
        ),
    )
}
