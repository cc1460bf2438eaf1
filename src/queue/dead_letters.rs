//! The dead-letter queue, as ops see it: read every message without losing any (messages are
//! taken unacknowledged and returned unless acted on), filter, replay and purge.
//!
//! Replay never loses a message: the operation goes back to PENDING (fresh attempt count, who
//! and when recorded), the job is republished to the work queue and confirmed, and only then is
//! the dead message acknowledged.

mod reason;

use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicGetOptions, BasicNackOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable};
use serde::Serialize;

use crate::db::{DbPool, operations};
use crate::lifecycle::{OperationId, ProjectId};
use crate::queue::message::{
    ATTEMPT_HEADER, DEAD_AT_HEADER, DEAD_REASON_HEADER, JobMessage, LAST_ERROR_HEADER,
};
use crate::queue::publisher::Publisher;
use crate::queue::topology::Topology;
pub use reason::DeadLetterReason;

/// Messages one command holds at once; a larger queue is worked through by running it again.
const MAX_TAKEN: usize = 100_000;

/// One dead message, decoded for display and filtering.
#[derive(Debug, Clone, Serialize)]
pub struct DeadLetter {
    pub operation_id: Option<OperationId>,
    pub project_id: Option<ProjectId>,
    pub reason: DeadLetterReason,
    pub last_error: Option<String>,
    pub dead_at: Option<DateTime<Utc>>,
    pub attempt: Option<i64>,
    pub body: String,
    pub headers: serde_json::Value,
    #[serde(skip)]
    pub message: Option<JobMessage>,
}

#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub operation_ids: Vec<OperationId>,
    pub reason: Option<DeadLetterReason>,
    pub project: Option<ProjectId>,
    pub older_than: Option<Duration>,
}

impl Filter {
    pub fn matches(&self, dead: &DeadLetter) -> bool {
        if !self.operation_ids.is_empty()
            && !dead
                .operation_id
                .is_some_and(|id| self.operation_ids.contains(&id))
        {
            return false;
        }
        if self.reason.as_ref().is_some_and(|r| *r != dead.reason) {
            return false;
        }
        if self.project.is_some() && self.project != dead.project_id {
            return false;
        }
        if let Some(age) = self.older_than {
            let limit = Utc::now() - chrono::Duration::from_std(age).unwrap_or_default();
            if dead.dead_at.is_none_or(|at| at > limit) {
                return false;
            }
        }
        true
    }
}

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

/// Decodes a dead message; its project is filled in by the caller, for the whole batch.
fn decode(delivery: &Delivery) -> DeadLetter {
    let headers = delivery.properties.headers().clone().unwrap_or_default();
    let message: Option<JobMessage> = serde_json::from_slice(&delivery.data).ok();
    let operation_id = message.as_ref().map(JobMessage::operation_id);
    let reason = header_text(&headers, DEAD_REASON_HEADER)
        .or_else(|| header_text(&headers, "x-first-death-reason"))
        .map_or_else(DeadLetterReason::unrecorded, |text| {
            DeadLetterReason::parse(&text)
        });
    let dead_at = header_int(&headers, DEAD_AT_HEADER)
        .or_else(|| first_death_time(&headers))
        .and_then(|secs| DateTime::from_timestamp(secs, 0));
    DeadLetter {
        operation_id,
        project_id: None,
        reason,
        last_error: header_text(&headers, LAST_ERROR_HEADER),
        dead_at,
        attempt: header_int(&headers, ATTEMPT_HEADER),
        body: String::from_utf8_lossy(&delivery.data).into_owned(),
        headers: headers_json(&headers),
        message,
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

fn header_text(headers: &FieldTable, key: &str) -> Option<String> {
    match headers.inner().get(key)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        AMQPValue::ShortString(s) => Some(s.as_str().to_owned()),
        _ => None,
    }
}

fn header_int(headers: &FieldTable, key: &str) -> Option<i64> {
    match headers.inner().get(key)? {
        AMQPValue::LongLongInt(n) => Some(*n),
        AMQPValue::LongInt(n) => Some(i64::from(*n)),
        AMQPValue::ShortInt(n) => Some(i64::from(*n)),
        AMQPValue::Timestamp(t) => i64::try_from(*t).ok(),
        _ => None,
    }
}

/// The broker's own dead-lettering (delivery limit) records the time in `x-death`.
fn first_death_time(headers: &FieldTable) -> Option<i64> {
    let AMQPValue::FieldArray(deaths) = headers.inner().get("x-death")? else {
        return None;
    };
    deaths.as_slice().iter().find_map(|death| match death {
        AMQPValue::FieldTable(table) => match table.inner().get("time")? {
            AMQPValue::Timestamp(t) => i64::try_from(*t).ok(),
            _ => None,
        },
        _ => None,
    })
}

fn headers_json(headers: &FieldTable) -> serde_json::Value {
    serde_json::to_value(headers).unwrap_or(serde_json::Value::Null)
}
