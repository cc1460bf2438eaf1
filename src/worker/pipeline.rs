//! The steps of one remediation job, in order. Each step lives in its own file under
//! `steps/`, runs through the step driver (cancel gate, step record, timing) and is safe to
//! run again: a redelivered or retried job finds its branch and pull request and reuses them.
//! The final write-back and status change are committed by the runner, together, before the ack.

use std::path::PathBuf;
use std::sync::Arc;

use super::failure::StepFailure;
use super::fix_lock::FixKey;
use super::memory_budget::GitBudget;
use super::patcher::Patcher;
use super::steps::write_back::{self, Finished, JobSuccess};
use super::steps::{self, Progress, StepDriver};
use crate::config::{Grouping, VerifiedFix};
use crate::db::models::{AssessmentStatus, RemediationTarget};
use crate::db::{DbPool, catalog, fixes, operations};
use crate::forge::ForgeRegistry;
use crate::lifecycle::fix_plan::{self, FixPlan};
use crate::lifecycle::{OperationId, Step};
use crate::lockfile::LockfileSettings;
use crate::pr_text;
use crate::sandbox::Sandbox;

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

impl Pipeline {
    /// Runs the job of `operation_id`, keeping `progress` on the step it is in.
    pub async fn run(
        &self,
        operation_id: OperationId,
        progress: &Progress,
    ) -> Result<JobSuccess, StepFailure> {
        let mut driver =
            StepDriver::new(&self.pool, operation_id, progress, self.before_step.clone());
        let target = self.load_target(operation_id).await?;
        // Grouping carries version bumps; a code change keeps a pull request of its own.
        if self.group == Grouping::Repository
            && super::grouped::trigger_of(&target).own_target().is_some()
        {
            return self.run_grouped(&mut driver, operation_id, target).await;
        }
        let plan = self.plan_fix(&target).await?;
        // The patcher, the lock step and the verification aim at the plan's version, the
        // one that fixes every advisory the pull request lists (and, for copies in other
        // release lines, at their line's version that does).
        let fix_target = RemediationTarget {
            fixed_versions: plan.fixed_versions(&target.fixed_versions),
            planned_version: plan.target_version.clone(),
            ..target.clone()
        };
        let branch = pr_text::branch_name(target.ecosystem.as_str(), &target.package_name);

        let checkout = driver
            .step(Step::Clone, steps::clone::run(self, &fix_target))
            .await?;
        let patch = driver
            .step(
                Step::Generate,
                steps::generate::run(self, &checkout, &fix_target),
            )
            .await?;
        let locked = driver
            .step(
                Step::Lock,
                steps::lock::run(self, &checkout, &fix_target, &patch),
            )
            .await?;
        let changed: Vec<String> = patch
            .edits
            .iter()
            .map(|e| e.path.clone())
            .chain(locked.changed.iter().map(|(path, _)| path.clone()))
            .collect();
        let facts = super::patcher::facts(&fix_target, fix_target.target_version());
        let fixed_version = patch
            .target_version
            .clone()
            .or_else(|| facts.target_version.clone())
            .unwrap_or_default();
        let fix = steps::test::FixFacts {
            facts: &facts,
            fixed_version: &fixed_version,
            edits: &patch.edits,
        };
        let tested = driver
            .step(
                Step::Test,
                steps::test::run(self, &checkout, &changed, Some(fix)),
            )
            .await?;
        let commit_step = steps::commit::run(
            self,
            operation_id,
            &checkout,
            steps::commit::What {
                target: &fix_target,
                plan: &plan,
                patch: &patch,
                locked: &locked,
                tested: &tested,
                branch: &branch,
            },
        );
        let committed = driver.step(Step::Commit, commit_step).await?;
        let key = FixKey {
            project: target.project_id,
            ecosystem: &target.ecosystem,
            package: &target.package_name,
            branch: &branch,
        };
        let push_step = steps::push::run(self, &checkout, &key, &plan, committed.commit);
        let (pushed, fix_lock) = driver.step(Step::Push, push_step).await?;
        let repository = checkout.repository;
        // The clone is no longer needed: its directory goes once no git task holds it.
        drop(checkout.git);

        let (running, at_cap) =
            match steps::pull_request::begin(self, &driver, &target, &repository).await {
                Ok(gate) => gate,
                Err(failure) => {
                    fix_lock.release().await;
                    return Err(failure);
                }
            };
        // A draft when the model was unsure, the fix is not verified, or a test regressed.
        let draft = locked.draft_reason.is_some()
            || tested.draft_reason.is_some()
            || patch
                .confidence()
                .is_some_and(|c| c < self.draft_below_confidence);
        let spec =
            steps::pull_request::spec(self, &repository, &target, &branch, &committed, draft);
        let opened = steps::pull_request::run(&repository, &spec, at_cap, fix_lock, &plan).await?;
        driver.end(running);

        let running = driver.begin(Step::WriteBack).await?;
        driver.end(running);
        Ok(write_back::success(Finished {
            repository: &repository,
            branch,
            committed,
            pushed,
            patch,
            locked,
            tested,
            opened,
            plan: &plan,
            timings: driver.timings_json(),
        }))
    }

    /// Gathers every AFFECTED advisory of the package in the project and plans one fix for
    /// them; refuses at once a fix whose pull request a person closed.
    async fn plan_fix(&self, target: &RemediationTarget) -> Result<FixPlan, StepFailure> {
        let db = |e: diesel::result::Error| StepFailure::from_database(Step::Claim, e);
        let mut conn = self
            .pool
            .get()
            .await
            .map_err(|e| StepFailure::from_database(Step::Claim, e))?;
        let advisories = fixes::package_advisories(
            &mut conn,
            target.project_id,
            &target.ecosystem,
            &target.package_name,
        )
        .await
        .map_err(db)?;
        let trigger = super::grouped::trigger_of(target);
        let plan = fix_plan::plan(&trigger, &advisories);
        let fix = fixes::find(
            &mut conn,
            target.project_id,
            &target.ecosystem,
            &target.package_name,
        )
        .await
        .map_err(db)?;
        if let Some(fix) = fix
            && let Some(refusal) = fix_plan::closed_refusal(
                &target.package_name,
                &fix.record(),
                plan.target_version.as_deref(),
            )
        {
            return Err(StepFailure::permanent(Step::Claim, refusal));
        }
        tracing::info!(
            target_version = plan.target_version.as_deref().unwrap_or("-"),
            covered = plan.covered.len(),
            remaining = plan.remaining.len(),
            "planned the package fix"
        );
        Ok(plan)
    }

    async fn load_target(
        &self,
        operation_id: OperationId,
    ) -> Result<RemediationTarget, StepFailure> {
        let mut conn = self
            .pool
            .get()
            .await
            .map_err(|e| StepFailure::from_database(Step::Claim, e))?;
        let operation = operations::get(&mut conn, operation_id, None)
            .await
            .map_err(|e| StepFailure::from_database(Step::Claim, e))?
            .ok_or_else(|| {
                StepFailure::permanent(Step::Claim, format!("operation {operation_id} is gone"))
            })?;
        let target = catalog::remediation_target(&mut conn, operation.resource_id, None)
            .await
            .map_err(|e| StepFailure::from_database(Step::Claim, e))?
            .ok_or_else(|| {
                StepFailure::permanent(
                    Step::Claim,
                    format!("assessment {} no longer exists", operation.resource_id),
                )
            })?;
        if target.assessment_status != AssessmentStatus::Affected {
            return Err(StepFailure::permanent(
                Step::Claim,
                format!(
                    "assessment {} is now {}; only AFFECTED assessments are remediated",
                    target.assessment_id, target.assessment_status
                ),
            ));
        }
        Ok(target)
    }
}
