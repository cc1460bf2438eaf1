//! Wakes the relay when another process commits an outbox row: a rescued job (any intake or
//! worker), a replay (the CLI or the console), a conflict refresh (the reconciler). Those write
//! through `db::outbox::enqueue`, which sends `NOTIFY` on [`CHANNEL`]; Postgres delivers it at
//! commit to every listening relay, so the job goes out at once instead of at the next poll.
//!
//! The intake's own requests do not NOTIFY: each NOTIFY takes a database-wide lock at commit,
//! which serialises every committing request (pgbench with one NOTIFY per transaction went
//! from about 9.5k to 3.1k transactions per second here), and the intake wakes its own relay
//! in process instead. Polling (`relay.poll_interval_ms`) stays as the safety net for a
//! notification lost while the listening connection was down.

use std::sync::Arc;
use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use futures_util::StreamExt;
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::Notify;

use crate::shutdown::Shutdown;

/// The notification channel of committed outbox rows.
pub const CHANNEL: &str = "remediator_outbox";

const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// Listens until shutdown, reconnecting with backoff when the connection is lost, and pokes
/// `wake` on each notification.
pub async fn listen(database_url: SecretString, wake: Arc<Notify>, shutdown: Shutdown) {
    let mut backoff = Duration::from_millis(200);
    while !shutdown.is_triggered() {
        let error = tokio::select! {
            error = listen_once(&database_url, &wake) => error,
            _ = shutdown.triggered() => return,
        };
        tracing::warn!(error = %format!("{error:#}"), retry_in = ?backoff, "the relay's outbox listener lost Postgres; the relay polls meanwhile");
        tokio::select! {
            _ = tokio::time::sleep(backoff) => {}
            _ = shutdown.triggered() => return,
        }
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// One connection's life; returns why it ended.
async fn listen_once(database_url: &SecretString, wake: &Notify) -> anyhow::Error {
    let mut conn = match AsyncPgConnection::establish(database_url.expose_secret()).await {
        Ok(conn) => conn,
        Err(error) => return anyhow::Error::new(error).context("connecting to Postgres"),
    };
    if let Err(error) = diesel::sql_query(format!("LISTEN {CHANNEL}"))
        .execute(&mut conn)
        .await
    {
        return anyhow::Error::new(error).context("LISTEN");
    }
    tracing::debug!(
        channel = CHANNEL,
        "relay listening for committed outbox rows"
    );
    // Rows committed while no one listened are picked up now rather than at the next poll.
    wake.notify_one();
    let mut notifications = std::pin::pin!(conn.notifications_stream());
    loop {
        match notifications.next().await {
            Some(Ok(_)) => wake.notify_one(),
            Some(Err(error)) => {
                return anyhow::Error::new(error).context("receiving notifications");
            }
            None => return anyhow::anyhow!("the notification stream ended"),
        }
    }
}
