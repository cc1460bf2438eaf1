//! The console's RabbitMQ side: queue depths for the overview (a passive declare reads a
//! queue's message and consumer counts without changing it) and the dead-letter queue, opened
//! once and shared ([`crate::queue::dead_letters::DeadLetterQueue`], the CLI's own code).
//!
//! Each uses its own connection, opened on first use and again after a failure. Dead-letter
//! work is serialised within the process (one lock): listing takes every dead message
//! unacknowledged and gives it back, so two requests doing it at once on one channel would
//! each see part of the queue.

use std::time::Duration;

use anyhow::Context;
use lapin::options::QueueDeclareOptions;
use lapin::types::FieldTable;
use secrecy::SecretString;
use tokio::sync::Mutex;

use crate::db::DbPool;
use crate::queue::dead_letters::DeadLetterQueue;
use crate::queue::topology::Topology;

/// How long a console request waits for the broker before saying it is unavailable.
const BROKER_TIMEOUT: Duration = Duration::from_secs(5);

/// One queue's counts; `None` when the queue does not exist (nothing declared it yet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueDepth {
    pub name: String,
    pub role: &'static str,
    pub counts: Option<(u32, u32)>,
}

impl QueueDepth {
    pub fn messages(&self) -> Option<u32> {
        self.counts.map(|(messages, _)| messages)
    }

    pub fn consumers(&self) -> Option<u32> {
        self.counts.map(|(_, consumers)| consumers)
    }
}

pub struct Broker {
    amqp_url: SecretString,
    pub topology: Topology,
    pool: DbPool,
    depths: Mutex<Option<(lapin::Connection, lapin::Channel)>>,
    dlq: Mutex<Option<DeadLetterQueue>>,
}

impl Broker {
    pub fn new(amqp_url: SecretString, topology: Topology, pool: DbPool) -> Self {
        Broker {
            amqp_url,
            topology,
            pool,
            depths: Mutex::new(None),
            dlq: Mutex::new(None),
        }
    }

    /// Work, retry and dead queue depths (ready messages; ones a consumer holds unacked are
    /// not counted by the broker) and their consumers.
    pub async fn depths(&self) -> anyhow::Result<Vec<QueueDepth>> {
        tokio::time::timeout(BROKER_TIMEOUT, self.read_depths())
            .await
            .context("RabbitMQ did not answer in time")?
    }

    async fn read_depths(&self) -> anyhow::Result<Vec<QueueDepth>> {
        let mut held = self.depths.lock().await;
        let mut queues = vec![(self.topology.work_queue.clone(), "work")];
        queues.extend(
            self.topology
                .retry_delays_secs
                .iter()
                .map(|delay| (self.topology.retry_queue(*delay), "retry")),
        );
        queues.push((self.topology.dead_queue.clone(), "dead"));
        let mut depths = Vec::with_capacity(queues.len());
        for (name, role) in queues {
            if held
                .as_ref()
                .is_none_or(|(c, ch)| !c.status().connected() || !ch.status().connected())
            {
                let connection =
                    crate::queue::connect(&self.amqp_url, "remediator-console").await?;
                let channel = connection.create_channel().await?;
                *held = Some((connection, channel));
            }
            let Some((connection, channel)) = held.as_ref() else {
                continue;
            };
            let passive = QueueDeclareOptions {
                passive: true,
                ..Default::default()
            };
            let counts = match channel
                .queue_declare(name.as_str().into(), passive, FieldTable::default())
                .await
            {
                Ok(queue) => Some((queue.message_count(), queue.consumer_count())),
                Err(error) => {
                    // A missing queue closes the channel (404); the next queue gets a new one.
                    tracing::debug!(%error, queue = %name, "passive declare failed");
                    if connection.status().connected() {
                        let channel = connection.create_channel().await?;
                        if let Some(held) = held.as_mut() {
                            held.1 = channel;
                        }
                    }
                    None
                }
            };
            depths.push(QueueDepth { name, role, counts });
        }
        Ok(depths)
    }

    /// Runs `work` with the dead-letter queue, holding it alone; a failure drops the
    /// connection so the next use opens a fresh one.
    pub async fn with_dlq<R>(
        &self,
        work: impl AsyncFnOnce(&DeadLetterQueue) -> anyhow::Result<R>,
    ) -> anyhow::Result<R> {
        let mut held = self.dlq.lock().await;
        if held.is_none() {
            let opened = tokio::time::timeout(
                BROKER_TIMEOUT,
                DeadLetterQueue::open(&self.amqp_url, self.topology.clone(), self.pool.clone()),
            )
            .await
            .context("RabbitMQ did not answer in time")??;
            *held = Some(opened);
        }
        let Some(dlq) = held.as_ref() else {
            anyhow::bail!("the dead-letter queue is not open");
        };
        let result = work(dlq).await;
        if result.is_err()
            && let Some(dlq) = held.take()
        {
            dlq.close().await;
        }
        result
    }
}
