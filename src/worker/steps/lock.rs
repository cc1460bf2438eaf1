//! Step `lock`: writes the patch into the clone, has the ecosystem's own tool update
//! the lock files that cover them (in the sandbox), and reads the result back to prove the
//! vulnerable version is gone. It reads as prepare ([`prepare`]) -> update -> escalate when
//! a lock-only update moved nothing ([`escalate`]) -> describe ([`describe`]). A vulnerable
//! copy left, or a lock file that could not be updated under `lockfiles.update = "best_effort"`, makes the pull request a draft that says
//! so (or fails the job, per `worker.require_verified_fix`).

use super::GitLoad;
use super::clone::Checkout;
use crate::db::models::RemediationTarget;
use crate::lifecycle::Step;
use crate::lockfile::{self, Verification};
use crate::pr_text::LabelledLine;
use crate::worker::context::Pipeline;
use crate::worker::failure::StepFailure;
use crate::worker::patcher::{FixStrategy, ProposedPatch};

mod describe;
mod escalate;
mod linked;
mod prepare;

use prepare::Prepared;

const STEP: Step = Step::Lock;

/// What the lock step adds to the commit and the pull request.
#[derive(Debug, Default)]
pub struct Locked {
    /// Lock files the tool changed: (repository-relative path, new content).
    pub changed: Vec<(String, String)>,
    /// `None` when the patch changed no manifest.
    pub verification: Option<Verification>,
    /// Why the pull request must be a draft.
    pub draft_reason: Option<String>,
    /// Set when the lock step changed how the fix works (an override), over the patch's own.
    pub strategy: Option<FixStrategy>,
    /// What the pull request says about that strategy (the chain of a parent upgrade), in
    /// place of the patch's explanation; empty when the patch's strategy stands.
    pub strategy_lines: Vec<LabelledLine>,
}

pub async fn run(
    pipeline: &Pipeline,
    checkout: &Checkout,
    target: &RemediationTarget,
    patch: &ProposedPatch,
) -> Result<Locked, StepFailure> {
    prepare::write_patch(checkout, patch).await?;
    // A lock committed as a symbolic link is never read through: fail, or a draft naming it.
    let edited: Vec<String> = patch.edits.iter().map(|e| e.path.clone()).collect();
    let scope = (!patch.is_lock_only()).then(|| linked::covering_dirs(&edited));
    if let Some(reason) = linked::check(pipeline, checkout, scope).await? {
        return Ok(Locked {
            draft_reason: Some(reason),
            ..Locked::default()
        });
    }
    let Some(prepared) = prepare::prepare(&checkout.work_tree, target, patch) else {
        return Ok(Locked::default());
    };
    let outcome = update(pipeline, checkout, target, &prepared).await?;
    if prepared.lock_only && outcome.verification.vulnerable_left >= prepared.vulnerable_before {
        return escalate::escalate(pipeline, checkout, target, &prepared, &outcome.verification)
            .await;
    }
    describe::describe(pipeline.require_verified_fix, target, &prepared, outcome)
}

/// Has the ecosystem's tools update the locks. A tool that refused to move a lock-only copy
/// (cargo: no version matching a parent's requirement) is answered naming who holds it.
async fn update(
    pipeline: &Pipeline,
    checkout: &Checkout,
    target: &RemediationTarget,
    prepared: &Prepared,
) -> Result<lockfile::LockOutcome, StepFailure> {
    let lock_target = prepared.lock_target(target);
    let result = lockfile::update(
        &pipeline.sandbox,
        &pipeline.lockfiles,
        &checkout.work_tree,
        &lock_target,
    )
    .await;
    result.map_err(|error| {
        if error.is_transient() || !prepared.lock_only {
            return failed(error);
        }
        let held = describe::holders(
            &checkout.work_tree,
            &prepared.lock_paths,
            &target.facts.package_name,
        );
        match held.is_empty() {
            true => StepFailure::permanent(STEP, error.to_string()),
            false => StepFailure::permanent(
                STEP,
                format!(
                    "{error}; {} {} is held by {}: upgrade it to a release whose requirement \
                     admits {} first",
                    target.facts.package_name,
                    target.facts.installed_version,
                    held.join("; "),
                    prepared.target_version,
                ),
            ),
        }
    })
}

/// `a/b/c.json` -> `a/b`, `a`, `` (the file's directory and every one above it).
fn parent_dir_chain(path: &str) -> Vec<String> {
    let mut dirs = Vec::new();
    let mut dir = lockfile::parent_dir(path);
    loop {
        dirs.push(dir.to_owned());
        if dir.is_empty() {
            return dirs;
        }
        dir = lockfile::parent_dir(dir);
    }
}

impl Locked {
    /// What the pull request says about the lock step.
    pub fn pr_facts(&self) -> crate::pr_text::LockFacts<'_> {
        crate::pr_text::LockFacts {
            verification: self.verification.as_ref(),
            strategy: &self.strategy_lines,
            draft_reason: self.draft_reason.as_deref(),
        }
    }
}

/// A lock error as the step's failure, retried when a later attempt may succeed.
fn failed(error: lockfile::LockError) -> StepFailure {
    match error.is_transient() {
        true => StepFailure::transient(STEP, error.to_string()),
        false => StepFailure::permanent(STEP, error.to_string()),
    }
}
