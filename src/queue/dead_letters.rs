//! The dead-letter queue, as ops see it: read every message without losing any (messages are
//! taken unacknowledged and returned unless acted on), filter, replay and purge.
//!
//! Replay never loses a message: the operation goes back to PENDING (fresh attempt count, who
//! and when recorded), the job is republished to the work queue and confirmed, and only then is
//! the dead message acknowledged.

mod decode;
mod filter;
mod reason;

use std::time::Duration;

use anyhow::Context;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicNackOptions, QueueDeclareOptions};
use lapin::types::FieldTable;
use serde::Serialize;

use crate::db::{DbPool, operations};
use crate::lifecycle::OperationId;
use crate::queue::message::JobMessage;
use crate::queue::publisher::Publisher;
use crate::queue::topology::Topology;
pub use decode::DeadLetter;
use decode::decode;
pub use filter::Filter;
pub use reason::DeadLetterReason;

/// Messages one command holds at once; a larger queue is worked through by running it again.
const MAX_TAKEN: usize = 100_000;

/// The dead-letter queue, opened for one command.
pub struct DeadLetterQueue {
    connection: lapin::Connection,
    channel: lapin::Channel,
    publisher: Publisher,
    topology: Topology,
    pool: DbPool,
}

/// Messages taken off the queue, unacknowledged, with their decoded form.
pub struct Taken {
    pub items: Vec<(Delivery, DeadLetter)>,
}

impl Taken {
    /// How many of the messages match.
    pub fn count(&self, filter: &Filter) -> usize {
        self.items
            .iter()
            .filter(|(_, dead)| filter.matches(dead))
            .count()
    }

    /// The deliveries alone, to give back.
    pub fn into_deliveries(self) -> impl Iterator<Item = Delivery> {
        self.items.into_iter().map(|(delivery, _)| delivery)
    }
}

#[derive(Debug, Default, Serialize)]
pub struct ReplaySummary {
    pub replayed: Vec<OperationId>,
    /// Messages left in the queue, with why.
    pub skipped: Vec<(Option<OperationId>, String)>,
}

impl DeadLetterQueue {
    pub async fn open(
        amqp_url: &secrecy::SecretString,
        topology: Topology,
        pool: DbPool,
    ) -> anyhow::Result<Self> {
        let connection = crate::queue::connect(amqp_url, "remediator-dlq").await?;
        let publisher = Publisher::open(&connection, topology.clone()).await?;
        let channel = connection.create_channel().await?;
        Ok(DeadLetterQueue {
            connection,
            channel,
            publisher,
            topology,
            pool,
        })
    }

    pub async fn depth(&self) -> anyhow::Result<u32> {
        let passive = QueueDeclareOptions {
            passive: true,
            ..Default::default()
        };
        let queue = self
            .channel
            .queue_declare(
                self.topology.dead_queue.as_str().into(),
                passive,
                FieldTable::default(),
            )
            .await
            .context("reading the dead-letter queue")?;
        Ok(queue.message_count())
    }

    /// Takes every message currently in the queue, unacknowledged: no other consumer sees them
    /// until they are acked (acted on) or returned.
    pub async fn take_all(&self) -> anyhow::Result<Taken> {
        let mut items = Vec::new();
        while items.len() < MAX_TAKEN {
            let Some(got) = self
                .channel
                .basic_get(
                    self.topology.dead_queue.as_str().into(),
                    BasicGetOptions { no_ack: false },
                )
                .await?
            else {
                break;
            };
            let delivery = got.delivery;
            let dead = decode(&delivery);
            items.push((delivery, dead));
        }
        // One query for the projects of the whole batch, not one per message.
        let ids: Vec<OperationId> = items.iter().filter_map(|(_, d)| d.operation_id).collect();
        if !ids.is_empty() {
            let mut conn = self.pool.get().await.context("connecting to Postgres")?;
            let projects = operations::project_ids(&mut conn, &ids).await?;
            for (_, dead) in &mut items {
                dead.project_id = dead.operation_id.and_then(|id| projects.get(&id).copied());
            }
        }
        Ok(Taken { items })
    }

    /// The messages that match, copied: every message is taken and given back, nothing changes.
    pub async fn list(&self, filter: &Filter) -> anyhow::Result<Vec<DeadLetter>> {
        let taken = self.take_all().await?;
        let listed = taken
            .items
            .iter()
            .filter(|(_, dead)| filter.matches(dead))
            .map(|(_, dead)| dead.clone())
            .collect();
        self.give_back(taken.into_deliveries()).await;
        Ok(listed)
    }

    /// Returns messages to the queue.
    pub async fn give_back(&self, deliveries: impl IntoIterator<Item = Delivery>) {
        for delivery in deliveries {
            let options = BasicNackOptions {
                requeue: true,
                ..Default::default()
            };
            if let Err(error) = delivery.nack(options).await {
                // Closing the channel returns it anyway.
                tracing::warn!(%error, "returning a dead letter failed");
            }
        }
    }

    /// Replays the messages that match, at most `rate` per second.
    pub async fn replay(
        &self,
        taken: Taken,
        filter: &Filter,
        by: &str,
        rate: Option<f64>,
    ) -> anyhow::Result<ReplaySummary> {
        let mut summary = ReplaySummary::default();
        let pause = rate
            .filter(|r| *r > 0.0)
            .map(|r| Duration::from_secs_f64(1.0 / r));
        let mut keep = Vec::new();
        let mut conn = self.pool.get().await.context("connecting to Postgres")?;
        for (delivery, dead) in taken.items {
            if !filter.matches(&dead) {
                keep.push(delivery);
                continue;
            }
            let Some(operation_id) = dead.operation_id else {
                summary.skipped.push((
                    None,
                    format!("not a job message ({}); purge it instead", dead.reason),
                ));
                keep.push(delivery);
                continue;
            };
            match operations::replay(&mut conn, operation_id, by).await? {
                operations::ReplayOutcome::Replayed => {}
                other => {
                    summary.skipped.push((Some(operation_id), describe(&other)));
                    keep.push(delivery);
                    continue;
                }
            }
            let job = JobMessage::remediation(operation_id);
            self.publisher
                .send_work(&job)
                .await?
                .confirmed()
                .await
                .with_context(|| format!("republishing operation {operation_id}"))?;
            delivery
                .ack(BasicAckOptions::default())
                .await
                .context("acknowledging the replayed dead letter")?;
            summary.replayed.push(operation_id);
            if let Some(pause) = pause {
                tokio::time::sleep(pause).await;
            }
        }
        self.give_back(keep).await;
        Ok(summary)
    }

    /// Discards the messages that match, recording it on their operations.
    pub async fn purge(&self, taken: Taken, filter: &Filter, by: &str) -> anyhow::Result<usize> {
        let mut keep = Vec::new();
        let mut purged = 0;
        let mut conn = self.pool.get().await.context("connecting to Postgres")?;
        for (delivery, dead) in taken.items {
            if !filter.matches(&dead) {
                keep.push(delivery);
                continue;
            }
            // A message may name an operation that never existed (that is why it is here).
            if let Some(id) = dead.operation_id
                && operations::get(&mut conn, id, None).await?.is_some()
            {
                operations::record_note(
                    &mut conn,
                    id,
                    &format!("discarded from the dead-letter queue by {by}"),
                )
                .await?;
            }
            delivery.ack(BasicAckOptions::default()).await?;
            purged += 1;
        }
        self.give_back(keep).await;
        Ok(purged)
    }

    pub async fn close(self) {
        let _ = self.channel.close(200, "dlq done".into()).await;
        let _ = self.connection.close(200, "dlq done".into()).await;
    }
}

fn describe(outcome: &operations::ReplayOutcome) -> String {
    match outcome {
        operations::ReplayOutcome::Replayed => "replayed".to_owned(),
        operations::ReplayOutcome::NotFailed { status } => {
            format!("the operation is {status}, not FAILED; left in the queue")
        }
        operations::ReplayOutcome::Superseded => {
            "a newer operation for the same assessment is live; left in the queue".to_owned()
        }
        operations::ReplayOutcome::NotFound => "the operation no longer exists".to_owned(),
    }
}
