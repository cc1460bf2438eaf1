//! The rescuer: operations left RUNNING by a worker that died (no heartbeat for
//! `stale_after`) go back to PENDING with a new outbox row, so some relay publishes the job
//! again and a live worker resumes it. Every intake and worker runs one; many at once are safe
//! because stale rows are claimed with SKIP LOCKED.

use std::time::Duration;

use diesel_async::AsyncConnection;

use crate::db::{DbPool, operations};
use crate::shutdown::Shutdown;

pub struct Rescuer {
    pub pool: DbPool,
    pub interval: Duration,
    pub stale_after: Duration,
}

const BATCH: i64 = 100;

impl Rescuer {
    pub async fn run(self, shutdown: Shutdown) {
        loop {
            match self.rescue_once().await {
                Ok(rescued) if !rescued.is_empty() => {
                    tracing::warn!(count = rescued.len(), ids = ?rescued, "rescued operations whose worker stopped sending heartbeats");
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(error = %format!("{error:#}"), "rescuer round failed; will try again")
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = shutdown.triggered() => break,
            }
        }
    }

    pub async fn rescue_once(&self) -> anyhow::Result<Vec<crate::lifecycle::OperationId>> {
        let stale_before = chrono::Utc::now()
            - chrono::Duration::from_std(self.stale_after).unwrap_or(chrono::Duration::minutes(2));
        let mut conn = self.pool.get().await?;
        let rescued = conn
            .transaction(async |conn| -> anyhow::Result<_> {
                operations::rescue_stale(conn, stale_before, BATCH).await
            })
            .await?;
        Ok(rescued)
    }
}
