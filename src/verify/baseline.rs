//! The default branch's test run, kept per repository URL, commit and test plan: a second job
//! on the same commit (another advisory, another package, a retry) does not run it again.
//!
//! The cache is process-wide and in memory: each worker process runs a commit's baseline once,
//! and a restart runs it again. Two jobs that start on the same commit at the same moment may
//! both run it; the later result replaces the earlier. A run cut short by a limit (a slow
//! registry) is not kept.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex, PoisonError};

use super::discover::TestPlan;
use super::run::TestRun;

/// Baselines kept before the oldest are forgotten (all at once: the cache is a convenience).
const MAX_KEPT: usize = 1024;

static KEPT: LazyLock<Mutex<HashMap<String, TestRun>>> = LazyLock::new(Default::default);

fn key(repository: &str, commit: &str, plan: &TestPlan) -> String {
    let install = plan.install_text().unwrap_or_default();
    format!(
        "{repository}\0{commit}\0{}\0{install}\0{}",
        plan.dir, plan.test
    )
}

/// The baseline of `commit` of `repository` under `plan`, if this process ran it.
pub fn cached(repository: &str, commit: &str, plan: &TestPlan) -> Option<TestRun> {
    let kept = KEPT.lock().unwrap_or_else(PoisonError::into_inner);
    kept.get(&key(repository, commit, plan)).cloned()
}

/// Keeps `run` as the baseline of `commit` of `repository` under `plan`.
pub fn remember(repository: &str, commit: &str, plan: &TestPlan, run: &TestRun) {
    if !run.is_settled() {
        return;
    }
    let mut kept = KEPT.lock().unwrap_or_else(PoisonError::into_inner);
    if kept.len() >= MAX_KEPT {
        kept.clear();
    }
    kept.insert(key(repository, commit, plan), run.clone());
}
