//! The outbox relay: moves committed outbox rows to the work queue. It runs inside every
//! intake; `FOR UPDATE SKIP LOCKED` lets any number of replicas drain one outbox without
//! publishing a row twice. While RabbitMQ is down it keeps retrying with backoff; rows wait
//! safely in Postgres and go out once the broker is back. A row it cannot publish (a payload
//! it cannot decode, say an older relay meeting a newer message version during a rolling
//! deploy, or one the broker refuses) is quarantined with its error and retried later with
//! backoff; it never holds back the rows behind it.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use diesel_async::AsyncConnection;
use secrecy::SecretString;
use tokio::sync::Notify;

use super::health::BrokerHealth;
use super::message::JobMessage;
use super::publisher::Publisher;
use super::topology::Topology;
use crate::db::{DbPool, outbox};
use crate::shutdown::Shutdown;

pub struct Relay {
    pub pool: DbPool,
    pub amqp_url: SecretString,
    pub topology: Topology,
    pub batch_size: i64,
    pub poll_interval: Duration,
    /// Poked by the intake after each commit, so a job goes out at once instead of at the
    /// next poll.
    pub wake: Arc<Notify>,
    /// What `/readyz` and the metrics say about the broker.
    pub broker: BrokerHealth,
}

const MAX_BACKOFF: Duration = Duration::from_secs(10);

impl Relay {
    pub async fn run(self, shutdown: Shutdown) {
        let mut publisher: Option<(lapin::Connection, Publisher)> = None;
        let mut backoff = Duration::from_millis(100);
        while !shutdown.is_triggered() {
            if publisher.as_ref().is_none_or(|(_, p)| !p.is_usable()) {
                match self.open_publisher().await {
                    Ok(opened) => {
                        tracing::info!("relay connected to RabbitMQ");
                        self.broker.connected();
                        publisher = Some(opened);
                        backoff = Duration::from_millis(100);
                    }
                    Err(error) => {
                        self.broker.down(format!("{error:#}"));
                        tracing::warn!(error = %format!("{error:#}"), retry_in = ?backoff, "relay cannot reach RabbitMQ; outbox rows wait in Postgres");
                        self.sleep_or_shutdown(backoff, &shutdown).await;
                        backoff = (backoff * 2).min(MAX_BACKOFF);
                        continue;
                    }
                }
            }
            let Some((_, active)) = publisher.as_ref() else {
                continue;
            };
            match self.drain_once(active).await {
                Ok(sent) if sent as i64 == self.batch_size => continue,
                Ok(_) => {
                    backoff = Duration::from_millis(100);
                    tokio::select! {
                        _ = self.wake.notified() => {}
                        _ = tokio::time::sleep(self.poll_interval) => {}
                        _ = shutdown.triggered() => {}
                    }
                }
                Err(error) => {
                    tracing::warn!(error = %format!("{error:#}"), retry_in = ?backoff, "relay batch failed; it will be retried");
                    if !active.is_usable() {
                        self.broker.down(format!("{error:#}"));
                        publisher = None;
                    }
                    self.sleep_or_shutdown(backoff, &shutdown).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        if let Some((connection, _)) = publisher {
            let _ = connection.close(200, "relay shutting down".into()).await;
        }
    }

    async fn sleep_or_shutdown(&self, delay: Duration, shutdown: &Shutdown) {
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = shutdown.triggered() => {}
        }
    }

    async fn open_publisher(&self) -> anyhow::Result<(lapin::Connection, Publisher)> {
        let connection = super::connect(&self.amqp_url, "remediator-relay").await?;
        let publisher = Publisher::open(&connection, self.topology.clone()).await?;
        Ok((connection, publisher))
    }

    /// Publishes one batch inside one transaction: rows are marked sent only after their
    /// confirm arrived. A row that cannot be decoded, or whose publish the broker refuses
    /// while the connection stays up, is quarantined and the others go on; when the
    /// connection itself fails the transaction rolls back and every row stays pending.
    /// Returns the rows handled (published or quarantined).
    pub async fn drain_once(&self, publisher: &Publisher) -> anyhow::Result<usize> {
        let mut conn = self.pool.get().await.context("connecting to Postgres")?;
        let batch_size = self.batch_size;
        conn.transaction(async |conn| -> anyhow::Result<usize> {
            let rows = outbox::lock_unpublished(conn, batch_size).await?;
            let handled = rows.len();
            let mut pending = Vec::with_capacity(rows.len());
            let mut refused = Vec::new();
            for (id, payload) in rows {
                match serde_json::from_value::<JobMessage>(payload) {
                    Ok(message) => pending.push((id, publisher.send_work(&message).await?)),
                    Err(error) => refused.push((id, format!("cannot decode the message: {error}"))),
                }
            }
            let mut published = Vec::with_capacity(pending.len());
            for (id, confirm) in pending {
                match confirm.confirmed().await {
                    Ok(()) => published.push(id),
                    Err(error) if publisher.is_usable() => refused.push((id, format!("{error:#}"))),
                    Err(error) => return Err(error),
                }
            }
            outbox::mark_published(conn, &published).await?;
            for (id, error) in &refused {
                tracing::error!(outbox_row = id, %error, "cannot publish an outbox row; quarantined, the others go on");
                outbox::quarantine(conn, *id, error).await?;
            }
            tracing::debug!(published = published.len(), quarantined = refused.len(), "relay drained a batch");
            Ok(handled)
        })
        .await
    }
}
