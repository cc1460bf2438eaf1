//! The steps of one remediation job, in order. Each step lives in its own file under
//! `steps/`, runs through the step driver (cancel gate, step record, timing) and is safe to
//! run again: a redelivered or retried job finds its branch and pull request and reuses them.
//! The final write-back and status change are committed by the runner, together, before the ack.

use super::context::Pipeline;
use super::failure::StepFailure;
use super::proposed_patch::ProposedPatch;
use super::publish::{Publication, publish};
use super::steps::lock::Locked;
use super::steps::test::Tested;
use super::steps::write_back::{self, Finished, JobSuccess};
use super::steps::{self, Progress, StepDriver};
use crate::config::Grouping;
use crate::db::models::{AssessmentStatus, FindingFacts, RemediationTarget};
use crate::db::{catalog, fixes, operations};
use crate::lifecycle::fix_plan::{self, FixPlan};
use crate::lifecycle::{FixScope, OperationId, Step};
use crate::pr_text;
use diesel_async::AsyncPgConnection;

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
        self.run_package(&mut driver, operation_id, target).await
    }

    /// One package's fix: plan, clone, generate, lock, test and commit, then the shared tail.
    async fn run_package(
        &self,
        driver: &mut StepDriver<'_>,
        operation_id: OperationId,
        target: RemediationTarget,
    ) -> Result<JobSuccess, StepFailure> {
        let plan = self.plan_fix(&target).await?;
        // The patcher, the lock step and the verification aim at the plan's version, the
        // one that fixes every advisory the pull request lists (and, for copies in other
        // release lines, at their line's version that does).
        let fix_target = RemediationTarget {
            facts: FindingFacts {
                fixed_versions: plan.fixed_versions(&target.facts.fixed_versions),
                ..target.facts.clone()
            },
            planned_version: plan.target_version.clone(),
            ..target.clone()
        };
        let branch =
            pr_text::branch_name(target.facts.ecosystem.as_str(), &target.facts.package_name);

        let checkout = driver
            .step(Step::Clone, steps::clone::run(self, &fix_target))
            .await?;
        let generate = steps::generate::run(self, &checkout, &fix_target);
        let patch = driver.step(Step::Generate, generate).await?;
        let lock = steps::lock::run(self, &checkout, &fix_target, &patch);
        let locked = driver.step(Step::Lock, lock).await?;
        let tested = self
            .test_package(driver, &checkout, &fix_target, &patch, &locked)
            .await?;
        let what = steps::commit::What {
            target: &fix_target,
            plan: &plan,
            patch: &patch,
            locked: &locked,
            tested: &tested,
            branch: &branch,
        };
        let commit_step = steps::commit::run(self, operation_id, &checkout, what);
        let committed = driver.step(Step::Commit, commit_step).await?;
        let draft = tested.draft_reason.is_some() || self.unsure(&patch, &locked);
        let publication = Publication {
            checkout,
            target: &target,
            scope: FixScope::Package(&target.facts.package_name),
            branch: &branch,
            committed,
            plan: &plan,
            draft,
        };
        let published = publish(self, driver, publication).await?;
        Ok(write_back::success(Finished {
            published,
            branch,
            patch,
            locked,
            tested,
            plan: &plan,
            timings: driver.timings_json(),
        }))
    }

    /// Whether one package's fix alone makes the pull request a draft: the lock step could
    /// not verify it, or the model that wrote it was unsure.
    pub(super) fn unsure(&self, patch: &ProposedPatch, locked: &Locked) -> bool {
        locked.draft_reason.is_some()
            || patch
                .confidence()
                .is_some_and(|c| c < self.draft_below_confidence)
    }

    /// The test step for one package's fix: the files the patch and the lock step changed,
    /// and the facts a repair round gives the model.
    async fn test_package(
        &self,
        driver: &mut StepDriver<'_>,
        checkout: &steps::clone::Checkout,
        fix_target: &RemediationTarget,
        patch: &ProposedPatch,
        locked: &Locked,
    ) -> Result<Tested, StepFailure> {
        let changed = steps::commit::fix_files(patch, locked);
        let (facts, fixed_version) = steps::test::package_facts(fix_target, patch);
        let fix = steps::test::FixFacts {
            facts: &facts,
            fixed_version: &fixed_version,
            edits: &patch.edits,
        };
        let fixes = [fix];
        let catalog = fix_target.test_commands.as_ref();
        let test = steps::test::run(self, checkout, catalog, &changed, &fixes);
        driver.step(Step::Test, test).await
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
            &target.facts.ecosystem,
            &target.facts.package_name,
        )
        .await
        .map_err(db)?;
        let trigger = super::grouped::trigger_of(target);
        let plan = fix_plan::plan(&trigger, &advisories);
        refuse_if_closed(
            &mut conn,
            target,
            FixScope::Package(&target.facts.package_name),
            plan.target_version.as_deref(),
        )
        .await?;
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

/// Refuses at once a fix whose pull request a person closed: the fix row of `scope` in the
/// target's project and ecosystem, for a plan aiming at `target_version`.
pub(super) async fn refuse_if_closed(
    conn: &mut AsyncPgConnection,
    target: &RemediationTarget,
    scope: FixScope<'_>,
    target_version: Option<&str>,
) -> Result<(), StepFailure> {
    let fix = fixes::find(
        conn,
        target.project_id,
        &target.facts.ecosystem,
        scope.key(),
    )
    .await
    .map_err(|e| StepFailure::from_database(Step::Claim, e))?;
    let what = match scope {
        FixScope::Package(package) => package.to_owned(),
        FixScope::Group => format!("the {} packages", target.facts.ecosystem),
    };
    let refusal = fix.and_then(|fix| {
        fix_plan::closed_refusal(&what, &fix.pull_request.record(), target_version)
    });
    match refusal {
        Some(refusal) => Err(StepFailure::permanent(Step::Claim, refusal)),
        None => Ok(()),
    }
}
