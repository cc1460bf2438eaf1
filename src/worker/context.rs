//! What every job of this worker runs with: the database pool, the forges, the patcher, the
//! sandbox and the settings the steps read. Steps take it by reference; the job's order of
//! steps is in [`super::pipeline`], which the steps never import.

use std::path::PathBuf;
use std::sync::Arc;

use super::memory_budget::GitBudget;
use super::patcher::Patcher;
use crate::config::{Grouping, VerifiedFix};
use crate::db::DbPool;
use crate::forge::ForgeRegistry;
use crate::lifecycle::{OperationId, Step};
use crate::lockfile::LockfileSettings;
use crate::sandbox::Sandbox;

/// The worker's job context (named for the job pipeline it drives); see the module
/// documentation.
pub struct Pipeline {
    pub pool: DbPool,
    pub forges: ForgeRegistry,
    pub patcher: Patcher,
    pub scratch_root: PathBuf,
    pub author_name: String,
    pub author_email: String,
    pub pr_labels: Vec<String>,
    pub draft_below_confidence: f64,
    /// Open remediation pull requests per project before new ones are refused; 0: no cap.
    pub max_open_prs_per_repository: u32,
    /// Clones and pushes running at once in this process, sized by memory: libgit2 holds
    /// memory in proportion to the pack it works on, so this, not the job concurrency, bounds
    /// a worker's memory; jobs waiting on the LLM or the forge hold none of it.
    pub git_budget: Arc<GitBudget>,
    /// Called as each step starts; `None` in production. Tests inject faults with it (a
    /// panic at a given step).
    pub before_step: Option<StepHook>,
    /// Where package managers run.
    pub sandbox: Sandbox,
    pub lockfiles: LockfileSettings,
    pub require_verified_fix: VerifiedFix,
    /// The test step (`[verify]`).
    pub verify: crate::verify::VerifySettings,
    /// `worker.group`: one pull request per package fix, or per repository and ecosystem.
    pub group: Grouping,
}

pub type StepHook = Arc<dyn Fn(OperationId, Step) + Send + Sync>;
