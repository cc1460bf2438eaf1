//! Blocking git work for one job, off the async runtime: [`GitWork`] moves the git slot
//! and the scratch directory into the blocking task, so both are released only when that work
//! has really ended, even when the job was abandoned (timeout) while it ran.

use std::sync::Arc;

use super::failure::StepFailure;
use super::memory_budget::GitBudget;
use crate::git::{GitError, ScratchDir};
use crate::lifecycle::Step;

/// Blocking git work for one job, off the async runtime.
#[derive(Clone)]
pub struct GitWork {
    /// The worker's git slots (`worker.memory_budget_mib`): libgit2 holds memory in
    /// proportion to the pack it works on, so this, not the job concurrency, bounds memory.
    pub budget: Arc<GitBudget>,
    /// The repository's URL, which sets what a task on it takes from the budget.
    pub repository: String,
    pub scratch: Arc<ScratchDir>,
}

/// How much memory a git task may make libgit2 hold, which decides whether it waits for a
/// git slot of the worker's memory budget.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GitLoad {
    /// Works through a whole pack (clone, push, reading the tree for the model): takes a slot.
    WholePack,
    /// Writes or reads a few objects (a commit, a tree, a symlink check): no slot.
    FewObjects,
}

impl GitWork {
    /// Runs `work` on a blocking thread. A [`GitLoad::WholePack`] task first takes a git slot. The slot
    /// and a handle on the scratch directory move into the blocking task: if the job is
    /// dropped meanwhile (timeout), they are released when the work ends, not before, so the
    /// slots keep bounding memory and the directory is not deleted under a running clone.
    pub async fn run<T: Send + 'static>(
        &self,
        step: Step,
        load: GitLoad,
        work: impl FnOnce() -> Result<T, GitError> + Send + 'static,
    ) -> Result<T, StepFailure> {
        let permit = if load == GitLoad::WholePack {
            Some(
                self.budget
                    .acquire(&self.repository)
                    .await
                    .map_err(|_| StepFailure::transient(step, "the worker is shutting down"))?,
            )
        } else {
            None
        };
        let scratch = self.scratch.clone();
        let task = tokio::task::spawn_blocking(move || {
            let result = work();
            crate::git::release_freed_memory();
            drop(scratch);
            drop(permit);
            result
        });
        match task.await {
            Ok(result) => result.map_err(|e| StepFailure::from_git(step, e)),
            Err(e) => Err(StepFailure::transient(
                step,
                format!("git task failed: {e}"),
            )),
        }
    }
}
