//! The steps of one job, one file each, in the order `Pipeline::run` lists them, and the
//! driver every step goes through ([`StepDriver`]): the cancel gate, the step record (a poller
//! sees progress; the heartbeat is refreshed), the step's timing, and the job's current step
//! (so a timeout or a panic is reported with the step it happened in). Blocking git work runs
//! through [`GitWork`], which moves the git slot and the scratch directory into the blocking
//! task, so both are released only when that work has really ended, even when the job was
//! abandoned (timeout) while it ran.

pub mod clone;
pub mod commit;
pub mod generate;
pub mod lock;
pub mod pull_request;
pub mod push;
pub mod test;
pub mod write_back;

use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use serde_json::json;

use super::failure::{Retry, StepFailure};
use crate::db::DbPool;
use crate::db::operations::{self, StepGate};
use crate::lifecycle::{OperationId, Step};
use crate::worker::context::StepHook;
pub use crate::worker::git_work::{GitLoad, GitWork};

/// The step a job is in, shared with the runner, which outlives the job's future.
#[derive(Debug)]
pub struct Progress(Mutex<Step>);

impl Default for Progress {
    fn default() -> Self {
        Progress(Mutex::new(Step::Claim))
    }
}

impl Progress {
    pub fn current(&self) -> Step {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set(&self, step: Step) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = step;
    }
}

/// Runs the steps of one job: gate, record, time.
pub struct StepDriver<'a> {
    pool: &'a DbPool,
    operation_id: OperationId,
    progress: &'a Progress,
    timings: Vec<(Step, u128)>,
    before_step: Option<StepHook>,
}

/// A step that passed its gate and is running; [`StepDriver::end`] records its duration.
#[must_use]
pub struct Running {
    step: Step,
    started: Instant,
}

impl<'a> StepDriver<'a> {
    pub fn new(
        pool: &'a DbPool,
        operation_id: OperationId,
        progress: &'a Progress,
        before_step: Option<StepHook>,
    ) -> Self {
        StepDriver {
            pool,
            operation_id,
            progress,
            timings: Vec::new(),
            before_step,
        }
    }

    pub fn operation_id(&self) -> OperationId {
        self.operation_id
    }

    /// Runs `work` as `step`: records the step (refused after a cancel or a takeover), then
    /// runs it and keeps its duration.
    pub async fn step<T>(
        &mut self,
        step: Step,
        work: impl Future<Output = Result<T, StepFailure>>,
    ) -> Result<T, StepFailure> {
        let running = self.begin(step).await?;
        let value = work.await?;
        self.end(running);
        Ok(value)
    }

    /// Records that `step` starts, through the plain gate.
    pub async fn begin(&self, step: Step) -> Result<Running, StepFailure> {
        self.progress.set(step);
        let mut conn = self
            .pool
            .get()
            .await
            .map_err(|e| StepFailure::from_database(step, e))?;
        let gate = operations::start_step(&mut conn, self.operation_id, step)
            .await
            .map_err(|e| StepFailure::from_database(step, e))?;
        self.enter(step, gate)
    }

    /// Passes the answer of a gate a step evaluated itself (inside a transaction of its own).
    pub fn enter(&self, step: Step, gate: StepGate) -> Result<Running, StepFailure> {
        self.progress.set(step);
        match gate {
            StepGate::Go => {
                tracing::info!(step = %step, "step started");
                if let Some(hook) = &self.before_step {
                    hook(self.operation_id, step);
                }
                Ok(Running {
                    step,
                    started: Instant::now(),
                })
            }
            StepGate::CancelRequested => Err(StepFailure {
                step,
                retry: Retry::Cancelled,
                message: "cancelled on request before this step started".to_owned(),
            }),
            StepGate::NotRunning => Err(StepFailure::permanent(
                step,
                "the operation is no longer running here (ended, or taken over by another \
                 worker); stopping",
            )),
        }
    }

    pub fn end(&mut self, running: Running) {
        let elapsed = running.started.elapsed();
        crate::metrics::step_duration(running.step.as_str(), elapsed);
        self.timings.push((running.step, elapsed.as_millis()));
    }

    /// Step durations for the operation output, so slow steps are visible per job.
    pub fn timings_json(&self) -> serde_json::Value {
        let map: serde_json::Map<String, serde_json::Value> = self
            .timings
            .iter()
            .map(|(step, ms)| (step.as_str().to_owned(), json!(ms)))
            .collect();
        serde_json::Value::Object(map)
    }
}
