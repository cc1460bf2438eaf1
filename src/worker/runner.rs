//! The queue side of the worker: consume with manual acks and prefetch = concurrency, claim
//! the operation, run the pipeline, commit the outcome, and only then ack (invariant 5).
//!
//! Outcomes: success and permanent failures end the operation; a transient failure puts it back
//! to PENDING and republishes the job to a retry-delay queue, until `max_attempts`, after which
//! the job goes to the dead-letter queue with its reason. A message that cannot be parsed or
//! names no operation is dead-lettered at once, so it never blocks the queue.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use diesel_async::AsyncConnection;
use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicQosOptions};
use lapin::types::FieldTable;
use secrecy::SecretString;
use tracing::Instrument;
use uuid::Uuid;

use super::failure::{Retry, StepFailure};
use super::pipeline::{JobSuccess, Pipeline};
use crate::db::models::{OperationStatus, Step};
use crate::db::operations::{self, Claim};
use crate::db::{DbPool, catalog};
use crate::queue::message::{JobMessage, mark_dead};
use crate::queue::publisher::Publisher;
use crate::queue::topology::Topology;
use crate::shutdown::Shutdown;

pub struct Runner {
    pub pipeline: Arc<Pipeline>,
    pub pool: DbPool,
    pub amqp_url: SecretString,
    pub topology: Topology,
    pub concurrency: u16,
    pub max_attempts: u32,
    pub job_timeout: Duration,
    pub heartbeat_every: Duration,
    pub shutdown_grace: Duration,
}

const MAX_BACKOFF: Duration = Duration::from_secs(15);

impl Runner {
    /// Consumes until shutdown, reconnecting with backoff when the broker goes away.
    pub async fn run(self, shutdown: Shutdown) -> anyhow::Result<()> {
        let this = Arc::new(self);
        let mut backoff = Duration::from_millis(200);
        while !shutdown.is_triggered() {
            match this.clone().consume(&shutdown).await {
                Ok(()) => backoff = Duration::from_millis(200),
                Err(error) => {
                    tracing::warn!(error = %format!("{error:#}"), retry_in = ?backoff, "worker lost RabbitMQ; reconnecting");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = shutdown.triggered() => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        tracing::info!("worker stopped");
        Ok(())
    }

    async fn consume(self: Arc<Self>, shutdown: &Shutdown) -> anyhow::Result<()> {
        // Separate connections, so a flood of publishes never stalls deliveries and acks.
        let consuming = crate::queue::connect(&self.amqp_url, "remediator-worker").await?;
        let publishing = crate::queue::connect(&self.amqp_url, "remediator-worker-publish").await?;
        let publisher = Arc::new(Publisher::open(&publishing, self.topology.clone()).await?);
        let channel = consuming.create_channel().await?;
        // Prefetch = concurrency: the broker never hands us more jobs than we run at once.
        channel
            .basic_qos(self.concurrency.max(1), BasicQosOptions::default())
            .await?;
        let mut consumer = channel
            .basic_consume(
                self.topology.work_queue.as_str().into(),
                format!("remediator-worker-{}", Uuid::new_v4().simple())
                    .as_str()
                    .into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await
            .context("consuming the work queue")?;
        tracing::info!(queue = %self.topology.work_queue, concurrency = self.concurrency, "worker consuming");
        let mut jobs = tokio::task::JoinSet::new();
        let result = loop {
            tokio::select! {
                _ = shutdown.triggered() => break Ok(()),
                Some(_) = jobs.join_next(), if !jobs.is_empty() => {}
                delivery = consumer.next() => match delivery {
                    Some(Ok(delivery)) => {
                        let this = self.clone();
                        let publisher = publisher.clone();
                        jobs.spawn(async move { this.handle(delivery, &publisher).await });
                    }
                    Some(Err(error)) => break Err(anyhow::Error::new(error).context("consumer failed")),
                    None => break Err(anyhow::anyhow!("the broker cancelled the consumer")),
                },
            }
        };
        // Let jobs in flight finish within the grace period; the rest return to the queue
        // when the channel closes, unacknowledged.
        let drained = tokio::time::timeout(self.shutdown_grace, async {
            while jobs.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                left = jobs.len(),
                "jobs still running after the grace period; they return to the queue"
            );
            jobs.abort_all();
        }
        let _ = channel.close(200, "worker stopping".into()).await;
        let _ = consuming.close(200, "worker stopping".into()).await;
        let _ = publishing.close(200, "worker stopping".into()).await;
        result
    }

    async fn handle(&self, delivery: Delivery, publisher: &Publisher) {
        let message: JobMessage = match serde_json::from_slice(&delivery.data) {
            Ok(message) => message,
            Err(error) => {
                let reason = format!("unparseable message: {error}");
                self.dead_letter_raw(&delivery, publisher, "unparseable", &reason)
                    .await;
                return;
            }
        };
        let span = tracing::info_span!("job", operation_id = %message.operation_id(), trace_id = %message.trace_id());
        self.process(&delivery, message, publisher)
            .instrument(span)
            .await;
    }

    async fn process(&self, delivery: &Delivery, message: JobMessage, publisher: &Publisher) {
        let operation_id = message.operation_id();
        let claim = self.claim_patiently(operation_id).await;
        match claim {
            Claim::Missing => {
                crate::metrics::job_outcome("unknown_operation");
                let reason = format!("operation {operation_id} does not exist");
                self.dead_letter_raw(delivery, publisher, "unknown_operation", &reason)
                    .await;
            }
            Claim::Skip { status } if status == OperationStatus::Running.as_str() => {
                // Another worker holds it, or held it and died moments ago (its heartbeat is
                // not stale yet). Park the job in the first retry tier: it comes back later and
                // is either skipped (finished) or taken over (heartbeat stale). Acking it here
                // would strand the operation if that worker is dead.
                tracing::info!(%operation_id, "operation is running elsewhere; checking again later");
                crate::metrics::job_outcome("parked");
                match self.park(&message, publisher).await {
                    Ok(()) => ack(delivery).await,
                    Err(error) => {
                        tracing::warn!(%operation_id, error = %format!("{error:#}"), "cannot park the job; requeueing");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        nack_requeue(delivery).await;
                    }
                }
            }
            Claim::Skip { status } => {
                crate::metrics::job_outcome("skipped");
                tracing::info!(%operation_id, %status, "operation already finished; skipping duplicate delivery");
                ack(delivery).await;
            }
            Claim::Claimed { attempt } => {
                tracing::info!(%operation_id, attempt, "job claimed");
                crate::metrics::job_attempt(attempt);
                let outcome = self.run_with_heartbeat(operation_id).await;
                if self
                    .settle_patiently(operation_id, attempt, &message, outcome, publisher)
                    .await
                {
                    ack(delivery).await;
                }
            }
        }
    }

    /// Claims the operation, waiting out a database outage instead of requeueing: a requeue
    /// would count towards the delivery limit and dead-letter healthy jobs during the outage.
    /// The message stays unacknowledged meanwhile, so nothing is lost if this process dies.
    async fn claim_patiently(&self, operation_id: Uuid) -> Claim {
        let mut wait = Duration::from_millis(500);
        loop {
            let claimed = match self.pool.get().await {
                Ok(mut conn) => operations::claim(&mut conn, operation_id, self.stale_after())
                    .await
                    .map_err(anyhow::Error::from),
                Err(e) => Err(anyhow::Error::from(e)),
            };
            match claimed {
                Ok(claim) => return claim,
                Err(error) => {
                    tracing::warn!(%operation_id, error = %format!("{error:#}"), retry_in = ?wait, "cannot claim (database unavailable?); waiting");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// Commits the outcome, retrying while the database is away. Returns whether the message
    /// may be acknowledged; false when the broker connection is gone (the broker then
    /// redelivers the job, and the claim makes the rerun a no-op or a resume).
    async fn settle_patiently(
        &self,
        operation_id: Uuid,
        attempt: i32,
        message: &JobMessage,
        outcome: Result<JobSuccess, StepFailure>,
        publisher: &Publisher,
    ) -> bool {
        let mut wait = Duration::from_millis(500);
        loop {
            match self
                .settle(operation_id, attempt, message, outcome.clone(), publisher)
                .await
            {
                Ok(()) => return true,
                Err(error) if !publisher.is_usable() => {
                    tracing::warn!(%operation_id, error = %format!("{error:#}"), "lost the broker while recording the outcome; the job will be redelivered");
                    return false;
                }
                Err(error) => {
                    tracing::warn!(%operation_id, error = %format!("{error:#}"), retry_in = ?wait, "cannot record the job's outcome; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    async fn park(&self, message: &JobMessage, publisher: &Publisher) -> anyhow::Result<()> {
        let routing_key = self
            .topology
            .retry_routing_key(1)
            .context("no retry delays configured")?;
        let retry_exchange = self.topology.retry_exchange.clone();
        publisher
            .send(
                &retry_exchange,
                &routing_key,
                message,
                FieldTable::default(),
            )
            .await?
            .confirmed()
            .await
    }

    fn stale_after(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.heartbeat_every * 4).unwrap_or(chrono::Duration::minutes(1))
    }

    async fn run_with_heartbeat(&self, operation_id: Uuid) -> Result<JobSuccess, StepFailure> {
        let pool = self.pool.clone();
        let every = self.heartbeat_every;
        let heartbeat = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                if let Ok(mut conn) = pool.get().await {
                    let _ = operations::heartbeat(&mut conn, operation_id).await;
                }
            }
        });
        let result =
            match tokio::time::timeout(self.job_timeout, self.pipeline.run(operation_id)).await {
                Ok(result) => result,
                Err(_) => Err(StepFailure::transient(
                    Step::Claim,
                    format!(
                        "the job exceeded its deadline of {}s",
                        self.job_timeout.as_secs()
                    ),
                )),
            };
        heartbeat.abort();
        result
    }

    /// Commits what the job's outcome means for the operation; the caller acks afterwards.
    async fn settle(
        &self,
        operation_id: Uuid,
        attempt: i32,
        message: &JobMessage,
        outcome: Result<JobSuccess, StepFailure>,
        publisher: &Publisher,
    ) -> anyhow::Result<()> {
        let mut conn = self.pool.get().await?;
        match outcome {
            Ok(success) => {
                let assessment = assessment_of(&mut conn, operation_id).await?;
                conn.transaction(async |conn| -> anyhow::Result<()> {
                    catalog::write_back(conn, assessment, &success.write_back).await?;
                    operations::finish(
                        conn,
                        operation_id,
                        OperationStatus::Succeeded,
                        Some(&success.output),
                        None,
                    )
                    .await?;
                    Ok(())
                })
                .await?;
                crate::metrics::job_outcome("succeeded");
                tracing::info!(%operation_id, "job succeeded");
            }
            Err(failure) if failure.retry == Retry::Cancelled => {
                let text = format!("cancelled before step {}", failure.step);
                operations::finish(
                    &mut conn,
                    operation_id,
                    OperationStatus::Cancelled,
                    None,
                    Some(&text),
                )
                .await?;
                crate::metrics::job_outcome("cancelled");
                tracing::info!(%operation_id, "job cancelled");
            }
            Err(failure) if failure.retry == Retry::Permanent => {
                let text = format!("{}; permanent error, not retried", failure.describe());
                self.fail(&mut conn, operation_id, attempt, &text).await?;
                crate::metrics::job_outcome("failed");
                tracing::warn!(%operation_id, error = %text, "job failed");
            }
            Err(failure) if (attempt as u32) < self.max_attempts => {
                let routing_key = self
                    .topology
                    .retry_routing_key(attempt as u32)
                    .context("no retry delays configured")?;
                let text = format!(
                    "{}; transient error, will retry (attempt {attempt} of {}) after {routing_key}",
                    failure.describe(),
                    self.max_attempts
                );
                // PENDING first: if the republish then fails, the nack redelivers the job and
                // the PENDING operation is claimed again, so nothing is lost.
                operations::release_for_retry(&mut conn, operation_id, attempt, &text).await?;
                let retry_exchange = self.topology.retry_exchange.clone();
                publisher
                    .send(
                        &retry_exchange,
                        &routing_key,
                        &message.next_attempt(),
                        FieldTable::default(),
                    )
                    .await?
                    .confirmed()
                    .await?;
                crate::metrics::job_outcome("retried");
                tracing::warn!(%operation_id, error = %text, "job will be retried");
            }
            Err(failure) => {
                let text = format!(
                    "{}; gave up after {attempt} attempts; the job is in the dead-letter queue {} and can be replayed",
                    failure.describe(),
                    self.topology.dead_queue
                );
                let mut headers = FieldTable::default();
                mark_dead(&mut headers, "max_attempts", &failure.describe());
                let dead_exchange = self.topology.dead_exchange.clone();
                publisher
                    .send(&dead_exchange, "", message, headers)
                    .await?
                    .confirmed()
                    .await?;
                self.fail(&mut conn, operation_id, attempt, &text).await?;
                crate::metrics::job_outcome("dead_lettered");
                crate::metrics::dead_letter("max_attempts");
                tracing::error!(%operation_id, error = %text, "job dead-lettered");
            }
        }
        Ok(())
    }

    async fn fail(
        &self,
        conn: &mut crate::db::DbConn,
        operation_id: Uuid,
        attempt: i32,
        text: &str,
    ) -> anyhow::Result<()> {
        let assessment = assessment_of(conn, operation_id).await?;
        conn.transaction(async |conn| -> anyhow::Result<()> {
            operations::record_attempt_error(conn, operation_id, attempt, text).await?;
            // Only the worker that still holds the operation writes the failure back; one whose
            // job was taken over (or cancelled) leaves the assessment alone.
            if operations::finish(
                conn,
                operation_id,
                OperationStatus::Failed,
                None,
                Some(text),
            )
            .await?
            {
                catalog::write_back(
                    conn,
                    assessment,
                    &catalog::RemediationWriteBack {
                        remediation_status: Some("FAILED".to_owned()),
                        ..Default::default()
                    },
                )
                .await?;
            }
            Ok(())
        })
        .await
    }

    /// Moves a message that can never succeed to the dead-letter queue with its reason.
    async fn dead_letter_raw(
        &self,
        delivery: &Delivery,
        publisher: &Publisher,
        reason: &str,
        detail: &str,
    ) {
        tracing::error!(reason, detail, "dead-lettering a message");
        let mut headers = delivery.properties.headers().clone().unwrap_or_default();
        mark_dead(&mut headers, reason, detail);
        let properties = delivery.properties.clone().with_headers(headers);
        let published = publisher
            .send_raw(&self.topology.dead_exchange, "", &delivery.data, properties)
            .await;
        match published {
            Ok(()) => ack(delivery).await,
            Err(error) => {
                tracing::error!(error = %format!("{error:#}"), "cannot dead-letter; requeueing");
                nack_requeue(delivery).await;
            }
        }
    }
}

async fn assessment_of(conn: &mut crate::db::DbConn, operation_id: Uuid) -> anyhow::Result<Uuid> {
    Ok(operations::get(conn, operation_id, None)
        .await?
        .with_context(|| format!("operation {operation_id} vanished"))?
        .resource_id)
}

async fn ack(delivery: &Delivery) {
    if let Err(error) = delivery.ack(BasicAckOptions::default()).await {
        // The channel is gone: the broker redelivers, and the claim makes the rerun a no-op.
        tracing::warn!(%error, "ack failed");
    }
}

async fn nack_requeue(delivery: &Delivery) {
    let options = BasicNackOptions {
        requeue: true,
        ..Default::default()
    };
    if let Err(error) = delivery.nack(options).await {
        tracing::warn!(%error, "nack failed");
    }
}
