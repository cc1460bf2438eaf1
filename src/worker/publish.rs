//! The job's tail, the same for a package job and a grouped one: push the commit under the
//! fix lock, open (or update) the pull request within the repository's cap, record it, and
//! hand back what the write-back reports. The fix lock is released on every path that does
//! not record a pull request (invariant 2).

use super::context::Pipeline;
use super::failure::StepFailure;
use super::fix_lock::FixKey;
use super::steps::clone::Checkout;
use super::steps::commit::Committed;
use super::steps::pull_request::Opened;
use super::steps::{self, StepDriver};
use crate::db::models::{FindingFacts, RemediationTarget};
use crate::forge::ResolvedRepository;
use crate::git::PushOutcome;
use crate::lifecycle::fix_plan::FixPlan;
use crate::lifecycle::{FixScope, Step};

/// What a job hands to its tail.
pub(super) struct Publication<'a> {
    pub checkout: Checkout,
    /// The advisory the pull request is made for.
    pub target: &'a RemediationTarget,
    /// The package or the group whose fix lock the push and the pull request are made under
    /// (in the target's project and ecosystem); the cap counts a group as one package.
    pub scope: FixScope<'a>,
    pub branch: &'a str,
    pub committed: Committed,
    pub plan: &'a FixPlan,
    /// The model was unsure, the fix is not verified, or a test regressed.
    pub draft: bool,
}

/// What the tail did, for the write-back.
pub struct Published {
    pub repository: ResolvedRepository,
    pub committed: Committed,
    pub pushed: PushOutcome,
    pub opened: Opened,
}

/// Runs the push, pull request and write-back steps; see the module documentation.
pub(super) async fn publish(
    pipeline: &Pipeline,
    driver: &mut StepDriver<'_>,
    publication: Publication<'_>,
) -> Result<Published, StepFailure> {
    let Publication {
        checkout,
        target,
        scope,
        branch,
        committed,
        plan,
        draft,
    } = publication;
    let key = FixKey {
        project: target.project_id,
        ecosystem: &target.facts.ecosystem,
        scope,
        branch,
    };
    // Whose open pull requests count against the cap: the package's, or the group's row.
    let cap_target = RemediationTarget {
        facts: FindingFacts {
            package_name: scope.key().to_owned(),
            ..target.facts.clone()
        },
        ..target.clone()
    };
    let push_step = steps::push::run(pipeline, &checkout, &key, plan, committed.commit);
    let (pushed, fix_lock) = driver.step(Step::Push, push_step).await?;
    let repository = checkout.repository;
    // The clone is no longer needed: its directory goes once no git task holds it.
    drop(checkout.git);

    let begun = steps::pull_request::begin(pipeline, driver, &cap_target, &repository).await;
    let (running, at_cap) = match begun {
        Ok(gate) => gate,
        Err(failure) => {
            fix_lock.release().await;
            return Err(failure);
        }
    };
    let spec =
        steps::pull_request::spec(pipeline, &repository, target, key.branch, &committed, draft);
    let opened = steps::pull_request::run(&repository, &spec, at_cap, fix_lock, plan).await?;
    driver.end(running);

    let running = driver.begin(Step::WriteBack).await?;
    driver.end(running);
    Ok(Published {
        repository,
        committed,
        pushed,
        opened,
    })
}
