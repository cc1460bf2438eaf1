//! Carrying out a settlement (`lifecycle::Settlement`): the database writes, the publish to a
//! retry tier or the dead-letter queue, and then the ack. Nothing here decides what happens to
//! a job; `lifecycle::decide` did. Each settlement is logged once, here, where it becomes the
//! job's outcome.

use std::time::Duration;

use anyhow::Context;
use diesel_async::AsyncConnection;
use lapin::message::Delivery;
use lapin::options::{BasicAckOptions, BasicNackOptions};
use lapin::types::FieldTable;

use super::failure::StepFailure;
use super::runner::{MAX_BACKOFF, Runner};
use super::steps::write_back::JobSuccess;
use crate::db::catalog::{self, RemediationWriteBack};
use crate::db::fixes;
use crate::db::{DbConn, operations};
use crate::lifecycle::{DeadReason, OperationId, OperationStatus, RemediationStatus, Settlement};
use crate::queue::message::{JobMessage, mark_dead};
use crate::queue::publisher::Publisher;
use crate::queue::topology::Topology;

/// A delivery, and how its job ran (`None`: no job ran, the claim decided).
pub struct JobResult<'a> {
    pub delivery: &'a Delivery,
    pub message: &'a JobMessage,
    pub attempt: u32,
    pub result: Option<Result<JobSuccess, StepFailure>>,
}

impl Runner {
    pub(super) async fn settle(
        &self,
        job: JobResult<'_>,
        settlement: Settlement,
        publisher: &Publisher,
    ) {
        let delivery = job.delivery;
        let operation_id = job.message.operation_id();
        match (settlement, &job.result) {
            (Settlement::Skip, _) => {
                crate::metrics::job_outcome("skipped");
                tracing::info!("operation already ended; skipping a duplicate delivery");
                self.note_skipped(operation_id).await;
                ack(delivery).await;
            }
            (Settlement::Park { delay_secs }, _) => {
                // Acking it here instead would strand the operation if its worker is dead.
                crate::metrics::job_outcome("parked");
                tracing::info!(
                    delay_secs,
                    "operation is running elsewhere; checking again later"
                );
                match self
                    .publish(
                        publisher,
                        Tier::Retry(delay_secs),
                        job.message,
                        FieldTable::default(),
                    )
                    .await
                {
                    Ok(()) => ack(delivery).await,
                    Err(error) => {
                        tracing::warn!(error = %format!("{error:#}"), "cannot park the job; requeueing");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                        nack_requeue(delivery).await;
                    }
                }
            }
            (Settlement::DeadLetter(reason), None) => {
                let detail = format!("operation {operation_id} does not exist");
                self.dead_letter_raw(delivery, publisher, reason, &detail)
                    .await;
            }
            (settlement, Some(_)) => {
                if self.settle_patiently(&job, settlement, publisher).await {
                    ack(delivery).await;
                }
            }
            (settlement, None) => {
                // `decide` gives these only for a job that ran; requeue rather than lose it.
                tracing::error!(?settlement, "a settlement without a job result; requeueing");
                nack_requeue(delivery).await;
            }
        }
    }

    /// Commits the settlement, retrying while the database is away. Returns whether the
    /// message may be acknowledged; false when the broker connection is gone (the broker then
    /// redelivers the job, and the claim makes the rerun a no-op or a resume).
    async fn settle_patiently(
        &self,
        job: &JobResult<'_>,
        settlement: Settlement,
        publisher: &Publisher,
    ) -> bool {
        let mut wait = Duration::from_millis(500);
        loop {
            match self.commit_settlement(job, settlement, publisher).await {
                Ok(()) => return true,
                Err(error) if !publisher.is_usable() => {
                    tracing::warn!(error = %format!("{error:#}"), "lost the broker while recording the outcome; the job will be redelivered");
                    return false;
                }
                Err(error) => {
                    tracing::warn!(error = %format!("{error:#}"), retry_in = ?wait, "cannot record the job's outcome; retrying");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// One settlement of a job that ran (or was refused at its claim).
    async fn commit_settlement(
        &self,
        job: &JobResult<'_>,
        settlement: Settlement,
        publisher: &Publisher,
    ) -> anyhow::Result<()> {
        let operation_id = job.message.operation_id();
        let failure = match &job.result {
            Some(Ok(success)) if settlement == Settlement::Succeed => {
                return self.succeed(operation_id, success).await;
            }
            Some(Err(failure)) => failure,
            _ => anyhow::bail!("{settlement:?} does not fit the job's result"),
        };
        let mut conn = self.pool.get().await?;
        match settlement {
            Settlement::Cancel => {
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
                tracing::info!("job cancelled");
            }
            Settlement::Fail => {
                let text = format!("{}; permanent error, not retried", failure.describe());
                self.fail(&mut conn, operation_id, job.attempt, &text)
                    .await?;
                crate::metrics::job_outcome("failed");
                tracing::warn!(error = %text, "job failed");
            }
            Settlement::Retry {
                attempt,
                delay_secs,
            } => {
                self.retry_later(&mut conn, job, failure, (attempt, delay_secs), publisher)
                    .await?
            }
            Settlement::DeadLetter(reason) => {
                self.dead_letter_failed(&mut conn, job, failure, reason, publisher)
                    .await?
            }
            Settlement::Succeed | Settlement::Park { .. } | Settlement::Skip => {
                anyhow::bail!("{settlement:?} does not fit a failed job")
            }
        }
        Ok(())
    }

    /// Puts the operation back to PENDING with its attempt's error and republishes the job
    /// to the retry tier of `delay_secs`.
    async fn retry_later(
        &self,
        conn: &mut DbConn,
        job: &JobResult<'_>,
        failure: &StepFailure,
        (attempt, delay_secs): (u32, u64),
        publisher: &Publisher,
    ) -> anyhow::Result<()> {
        let operation_id = job.message.operation_id();
        let text = format!(
            "{}; transient error, will retry (attempt {attempt} of {}) in {delay_secs}s",
            failure.describe(),
            self.limits.max_attempts
        );
        // PENDING first: if the republish then fails, the nack redelivers the job and
        // the PENDING operation is claimed again, so nothing is lost.
        operations::release_for_retry(conn, operation_id, attempt as i32, &text).await?;
        let next = job.message.next_attempt();
        self.publish(
            publisher,
            Tier::Retry(delay_secs),
            &next,
            FieldTable::default(),
        )
        .await?;
        crate::metrics::job_outcome("retried");
        tracing::warn!(error = %text, "job will be retried");
        Ok(())
    }

    /// Moves the job to the dead-letter queue with its reason, and ends the operation FAILED
    /// saying where the job is and how to replay it.
    async fn dead_letter_failed(
        &self,
        conn: &mut DbConn,
        job: &JobResult<'_>,
        failure: &StepFailure,
        reason: DeadReason,
        publisher: &Publisher,
    ) -> anyhow::Result<()> {
        let operation_id = job.message.operation_id();
        let why = match reason {
            DeadReason::Crashed => "not started again (fix the cause first)".to_owned(),
            _ => format!("gave up after {} attempts", job.attempt),
        };
        let text = format!(
            "{}; {why}; dead-lettered with reason {}: the job is in the dead-letter queue {} and can be replayed",
            failure.describe(),
            reason.as_str(),
            self.topology.dead_queue
        );
        let mut headers = FieldTable::default();
        mark_dead(&mut headers, reason, &failure.describe());
        self.publish(publisher, Tier::Dead, job.message, headers)
            .await?;
        self.fail(conn, operation_id, job.attempt, &text).await?;
        crate::metrics::job_outcome("dead_lettered");
        crate::metrics::dead_letter(reason.as_str());
        tracing::error!(error = %text, "job dead-lettered");
        Ok(())
    }

    /// Ends the operation SUCCEEDED and writes the fix back on every assessment its pull
    /// request covers, in one transaction.
    async fn succeed(&self, operation_id: OperationId, success: &JobSuccess) -> anyhow::Result<()> {
        let mut conn = self.pool.get().await?;
        conn.transaction(async |conn| -> anyhow::Result<()> {
            fixes::write_back_covered(conn, &success.write_back).await?;
            let output = Some(&success.output);
            operations::finish(conn, operation_id, OperationStatus::Succeeded, output, None)
                .await?;
            Ok(())
        })
        .await?;
        crate::metrics::job_outcome("succeeded");
        tracing::info!("job succeeded");
        Ok(())
    }

    /// Ends the operation FAILED with its attempt's error, and says so on the assessment.
    async fn fail(
        &self,
        conn: &mut DbConn,
        operation_id: OperationId,
        attempt: u32,
        text: &str,
    ) -> anyhow::Result<()> {
        let assessment = assessment_of(conn, operation_id).await?;
        conn.transaction(async |conn| -> anyhow::Result<()> {
            operations::record_attempt_error(conn, operation_id, attempt as i32, text).await?;
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
                let failed = RemediationWriteBack {
                    remediation_status: Some(RemediationStatus::Failed),
                    ..Default::default()
                };
                catalog::write_back(conn, assessment, &failed).await?;
            }
            Ok(())
        })
        .await
    }

    /// A duplicate delivery leaves a trace in the operation's history.
    async fn note_skipped(&self, operation_id: OperationId) {
        if let Ok(mut conn) = self.pool.get().await {
            let _ = operations::record_note(
                &mut conn,
                operation_id,
                "skipped a delivery of the job: the operation had already ended (a duplicate delivery)",
            )
            .await;
        }
    }

    async fn publish(
        &self,
        publisher: &Publisher,
        tier: Tier,
        message: &JobMessage,
        headers: FieldTable,
    ) -> anyhow::Result<()> {
        let (exchange, key) = match tier {
            Tier::Retry(delay) => (
                self.topology.retry_exchange.as_str(),
                Topology::retry_routing_key(delay),
            ),
            Tier::Dead => (self.topology.dead_exchange.as_str(), String::new()),
        };
        publisher
            .send(exchange, &key, message, headers)
            .await?
            .confirmed()
            .await
            .with_context(|| format!("publishing to {exchange} ({key})"))
    }

    /// Moves a message that can never succeed to the dead-letter queue with its reason,
    /// keeping its body and headers as they came.
    pub(super) async fn dead_letter_raw(
        &self,
        delivery: &Delivery,
        publisher: &Publisher,
        reason: DeadReason,
        detail: &str,
    ) {
        crate::metrics::job_outcome("dead_lettered");
        crate::metrics::dead_letter(reason.as_str());
        tracing::error!(reason = reason.as_str(), detail, "dead-lettering a message");
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

enum Tier {
    /// The retry-delay queue of this many seconds.
    Retry(u64),
    Dead,
}

async fn assessment_of(
    conn: &mut DbConn,
    operation_id: OperationId,
) -> anyhow::Result<crate::lifecycle::AssessmentId> {
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
