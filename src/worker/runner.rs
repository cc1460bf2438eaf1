//! The queue side of the worker: consume with manual acks and prefetch = concurrency; for each
//! delivery, claim the operation, let `lifecycle::admit` say whether it may start, run it
//! under guard, let `lifecycle::decide` say what the outcome means, and carry that out
//! (`settle`), acking only after its database writes are committed (invariant 5).

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use futures_util::StreamExt;
use lapin::message::Delivery;
use lapin::options::{BasicConsumeOptions, BasicQosOptions};
use lapin::types::FieldTable;
use secrecy::SecretString;
use tracing::Instrument;
use uuid::Uuid;

use super::context::Pipeline;
use super::failure::StepFailure;
use super::job::JobGuard;
use super::settle::JobResult;
use crate::db::DbPool;
use crate::db::operations::{self, Claim};
use crate::lifecycle::{
    Admission, DeadReason, Limits, OperationId, OperationStatus, Outcome, Step, admit, decide,
};
use crate::queue::message::JobMessage;
use crate::queue::publisher::Publisher;
use crate::queue::topology::Topology;
use crate::shutdown::Shutdown;

pub struct Runner {
    pub pipeline: Arc<Pipeline>,
    pub pool: DbPool,
    pub amqp_url: SecretString,
    pub topology: Topology,
    pub limits: Limits,
    pub concurrency: u16,
    pub guard: JobGuard,
    pub shutdown_grace: Duration,
    /// This process, as recorded on the operations it claims (`host/pid`).
    pub worker_id: String,
    /// Follows open pull requests beside the consumer (`[reconciler]`); `None` when disabled.
    pub reconciler: Option<super::reconciler::Reconciler>,
}

pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(15);

impl Runner {
    /// Consumes until shutdown, reconnecting with backoff when the broker goes away.
    pub async fn run(mut self, shutdown: Shutdown) -> anyhow::Result<()> {
        let reconciler = self
            .reconciler
            .take()
            .map(|reconciler| tokio::spawn(reconciler.run(shutdown.clone())));
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
        if let Some(reconciler) = reconciler {
            let _ = tokio::time::timeout(Duration::from_secs(5), reconciler).await;
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
                Some(joined) = jobs.join_next(), if !jobs.is_empty() => report_join(joined),
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
            while let Some(joined) = jobs.join_next().await {
                report_join(joined);
            }
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
                self.dead_letter_raw(&delivery, publisher, DeadReason::Unparseable, &reason)
                    .await;
                return;
            }
        };
        let span = tracing::info_span!("job", operation_id = %message.operation_id(), trace_id = %message.trace_id());
        self.process(&delivery, message, publisher)
            .instrument(span)
            .await;
    }

    /// Claim, admit, run, decide, settle.
    async fn process(&self, delivery: &Delivery, message: JobMessage, publisher: &Publisher) {
        let operation_id = message.operation_id();
        let (outcome, attempt, result) = match self.claim_patiently(operation_id).await {
            Claim::Missing => (Outcome::Missing, 0, None),
            Claim::Skip {
                status: OperationStatus::Running,
            } => (Outcome::HeldElsewhere, 0, None),
            Claim::Skip { .. } => (Outcome::AlreadyEnded, 0, None),
            Claim::Claimed { attempt, starts } => {
                let attempt = u32::try_from(attempt).unwrap_or(1).max(1);
                let starts = u32::try_from(starts).unwrap_or(u32::MAX);
                crate::metrics::job_attempt(attempt as i32);
                match admit(starts, &self.limits) {
                    Admission::DeadLetter(reason) => {
                        let failure = self.crash_loop_failure(operation_id, starts).await;
                        (Outcome::Refused(reason), attempt, Some(Err(failure)))
                    }
                    Admission::Run => {
                        tracing::info!(attempt, starts, "job claimed");
                        let result = self.guard.run(&self.pipeline, operation_id).await;
                        (outcome_of(&result), attempt, Some(result))
                    }
                }
            }
        };
        let settlement = decide(outcome, attempt, &self.limits);
        let job = JobResult {
            delivery,
            message: &message,
            attempt,
            result,
        };
        self.settle(job, settlement, publisher).await;
    }

    /// Claims the operation, waiting out a database outage instead of requeueing: a requeue
    /// would count towards the delivery limit and dead-letter healthy jobs during the outage.
    /// The message stays unacknowledged meanwhile, so nothing is lost if this process dies.
    async fn claim_patiently(&self, operation_id: OperationId) -> Claim {
        let mut wait = Duration::from_millis(500);
        loop {
            let claimed = match self.pool.get().await {
                Ok(mut conn) => {
                    operations::claim(&mut conn, operation_id, self.stale_after(), &self.worker_id)
                        .await
                        .map_err(anyhow::Error::from)
                }
                Err(e) => Err(anyhow::Error::from(e)),
            };
            match claimed {
                Ok(claim) => return claim,
                Err(error) => {
                    tracing::warn!(error = %format!("{error:#}"), retry_in = ?wait, "cannot claim (database unavailable?); waiting");
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    /// What a crash-looping job's operation says: how often it died, and at which step.
    async fn crash_loop_failure(&self, operation_id: OperationId, starts: u32) -> StepFailure {
        let died = starts.saturating_sub(1);
        let last_step = match self.pool.get().await {
            Ok(mut conn) => operations::last_step_before_claim(&mut conn, operation_id)
                .await
                .ok()
                .flatten(),
            Err(_) => None,
        };
        let at = last_step.map_or_else(String::new, |step| {
            format!(", the last time at step {step}")
        });
        StepFailure::permanent(
            last_step.unwrap_or(Step::Claim),
            format!(
                "its worker died {died} times in a row while running it{at} (killed, out of \
                 memory or crashed; amqp.delivery_limit is {})",
                self.limits.delivery_limit
            ),
        )
    }

    fn stale_after(&self) -> chrono::Duration {
        chrono::Duration::from_std(self.guard.heartbeat_every * 4)
            .unwrap_or(chrono::Duration::minutes(1))
    }
}

/// `host/pid` of this process.
pub fn worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "unknown-host".to_owned());
    format!("{}/{}", host.trim(), std::process::id())
}

/// The lifecycle's view of how a job ran.
fn outcome_of(result: &Result<super::steps::write_back::JobSuccess, StepFailure>) -> Outcome {
    use super::failure::Retry;
    match result {
        Ok(_) => Outcome::Succeeded,
        Err(failure) => match failure.retry {
            Retry::Cancelled => Outcome::Cancelled,
            Retry::Permanent => Outcome::Failed { transient: false },
            Retry::Transient { .. } => Outcome::Failed { transient: true },
        },
    }
}

/// A job task that ended abnormally: `handle` catches panics of the job itself, so this is a
/// panic in the settling code, or an abort at shutdown. Either way the delivery was not acked
/// and returns to the queue when the channel closes.
fn report_join(joined: Result<(), tokio::task::JoinError>) {
    if let Err(error) = joined
        && error.is_panic()
    {
        tracing::error!(%error, "a job task panicked outside the job; its delivery is redelivered");
    }
}
