//! One job run under guard: a heartbeat that keeps the operation's claim alive while the job
//! runs and stops when the run ends on any path (the guard aborts it on drop), a deadline
//! (`worker.job_timeout_secs`), and `catch_unwind`, so a panic becomes a failed attempt with
//! the panic message and the step it happened in, instead of a zombie operation whose
//! heartbeat never stops and whose delivery is never settled.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures_util::FutureExt;

use super::context::Pipeline;
use super::failure::StepFailure;
use super::steps::Progress;
use super::steps::write_back::JobSuccess;
use crate::db::{DbPool, operations};
use crate::lifecycle::OperationId;

/// Refreshes the operation's heartbeat every `every` until dropped.
struct HeartbeatGuard(tokio::task::JoinHandle<()>);

impl HeartbeatGuard {
    fn start(pool: DbPool, operation_id: OperationId, every: Duration) -> Self {
        HeartbeatGuard(tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                // A missed beat is harmless: only several in a row let another worker take over.
                if let Ok(mut conn) = pool.get().await {
                    let _ = operations::heartbeat(&mut conn, operation_id).await;
                }
            }
        }))
    }
}

impl Drop for HeartbeatGuard {
    fn drop(&mut self) {
        self.0.abort();
    }
}

pub struct JobGuard {
    pub pool: DbPool,
    pub heartbeat_every: Duration,
    pub timeout: Duration,
}

impl JobGuard {
    pub async fn run(
        &self,
        pipeline: &Pipeline,
        operation_id: OperationId,
    ) -> Result<JobSuccess, StepFailure> {
        let _heartbeat =
            HeartbeatGuard::start(self.pool.clone(), operation_id, self.heartbeat_every);
        let progress = Progress::default();
        let job = tokio::time::timeout(self.timeout, pipeline.run(operation_id, &progress));
        match AssertUnwindSafe(job).catch_unwind().await {
            Ok(Ok(result)) => result,
            Ok(Err(_elapsed)) => Err(StepFailure::transient(
                progress.current(),
                format!(
                    "the job exceeded its deadline of {}s (worker.job_timeout_secs)",
                    self.timeout.as_secs()
                ),
            )),
            Err(panic) => Err(StepFailure::transient(
                progress.current(),
                format!("the job panicked: {}", panic_message(panic.as_ref())),
            )),
        }
    }
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = panic.downcast_ref::<&str>() {
        (*text).to_owned()
    } else if let Some(text) = panic.downcast_ref::<String>() {
        text.clone()
    } else {
        "(a panic without a message)".to_owned()
    }
}
