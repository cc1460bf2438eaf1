//! Step `push`: takes the package's fix lock (so jobs of one package push and open their pull
//! request one after the other), refuses to undo a person's close or a newer fix of the
//! package, checks the remote again (a name may resolve differently now than at clone time)
//! and pushes the branch, retrying transient failures in place. Resume-safe: a branch already
//! at the commit, or holding the same files, is `AlreadyUpToDate`. The branch is replaced only
//! while it is ours: a branch whose tip someone else committed (a person pushed to it) is left
//! alone and the job fails saying so.

use backon::Retryable;

use super::GitLoad;
use super::clone::Checkout;
use crate::forge::{Forge, PullRequestRef};
use crate::git::PushOutcome;
use crate::lifecycle::fix_plan::{self, FixPlan};
use crate::lifecycle::{RemediationStatus, Step};
use crate::patch::bump::Version;
use crate::worker::context::Pipeline;
use crate::worker::failure::StepFailure;
use crate::worker::fix_lock::{FixKey, FixLock};

const STEP: Step = Step::Push;

/// Pushes the branch; the lock is held on return, for the pull request step to release.
pub async fn run(
    pipeline: &Pipeline,
    checkout: &Checkout,
    key: &FixKey<'_>,
    plan: &FixPlan,
    commit: git2::Oid,
) -> Result<(PushOutcome, FixLock), StepFailure> {
    let lock = FixLock::acquire(&pipeline.pool, key, STEP).await?;
    match push_under_lock(pipeline, checkout, key, plan, commit, &lock).await {
        Ok(pushed) => Ok((pushed, lock)),
        Err(Refused::LeftAlone { failure, commented }) => {
            if commented {
                lock.note_left_alone().await;
            } else {
                lock.release().await;
            }
            Err(failure)
        }
        Err(Refused::Failed(failure)) => {
            lock.release().await;
            Err(failure)
        }
    }
}

/// Why nothing was pushed.
enum Refused {
    /// Someone else's commit is on the branch; `commented`: the pull request says so now.
    LeftAlone {
        failure: StepFailure,
        commented: bool,
    },
    Failed(StepFailure),
}

impl From<StepFailure> for Refused {
    fn from(failure: StepFailure) -> Self {
        Refused::Failed(failure)
    }
}

async fn push_under_lock(
    pipeline: &Pipeline,
    checkout: &Checkout,
    key: &FixKey<'_>,
    plan: &FixPlan,
    commit: git2::Oid,
    lock: &FixLock,
) -> Result<PushOutcome, Refused> {
    still_wanted(key, plan, lock)?;
    crate::git::check_remote(pipeline.forges.egress(), &checkout.repository.url)
        .await
        .map_err(|e| StepFailure::from_git(STEP, e))?;
    let foreign = foreign_tip(pipeline, checkout, key, commit).await?;
    if let Some(tip) = foreign {
        let commented = leave_alone_once(checkout, lock, key, tip).await;
        let failure = StepFailure::permanent(
            STEP,
            format!(
                "branch {} on the server ends with commit {} that Remediator did not write \
                 (someone pushed to it); it is left alone: merge or close its pull request, or \
                 delete the branch, then trigger again",
                key.branch,
                short(tip)
            ),
        );
        return Err(Refused::LeftAlone { failure, commented });
    }
    let push = || {
        let (root, branch, auth) = (
            checkout.work_tree.clone(),
            key.branch.to_owned(),
            checkout.auth.clone(),
        );
        checkout.git.run(STEP, GitLoad::WholePack, move || {
            let repo = crate::git::open_clone(&root)?;
            crate::git::push_branch(&repo, &branch, commit, &auth)
        })
    };
    Ok(push
        .retry(crate::worker::retry::in_place())
        .when(StepFailure::is_transient)
        .notify(|e, delay| tracing::warn!(error = %e, ?delay, "push failed; retrying"))
        .await?)
}

/// Whether the fix this job made is still the one to push, now that it holds the fix lock:
/// the pull request may have been closed, raised by another job, or fix more than this plan.
fn still_wanted(key: &FixKey<'_>, plan: &FixPlan, lock: &FixLock) -> Result<(), StepFailure> {
    let wanted = plan.target_version.as_deref();
    // A person may have closed the pull request while this job was generating the fix.
    if let Some(refusal) = fix_plan::closed_refusal(
        &key.scope.to_string(),
        &lock.row.pull_request.record(),
        wanted,
    ) {
        return Err(StepFailure::permanent(STEP, refusal));
    }
    // Another job of the package raised its open pull request above our version meanwhile
    // (an advisory imported after we planned): pushing ours would lower the fix. Planning
    // again sees that job's advisories and aims at least as high.
    if lock.row.pull_request.state == Some(RemediationStatus::PrOpen)
        && let (Some(open), Some(ours)) = (
            lock.row
                .pull_request
                .target_version
                .as_deref()
                .and_then(Version::parse),
            wanted.and_then(Version::parse),
        )
        && open > ours
    {
        return Err(StepFailure::transient(
            STEP,
            format!(
                "the open pull request of {} now proposes {}, above this job's {}; planning again",
                key.scope,
                lock.row
                    .pull_request
                    .target_version
                    .as_deref()
                    .unwrap_or_default(),
                wanted.unwrap_or_default()
            ),
        ));
    }
    // Rebuilding the branch from this plan must not undo a fix its open pull request makes.
    let dropped = fix_plan::would_drop(&lock.row.advisories, plan);
    if lock.row.pull_request.state == Some(RemediationStatus::PrOpen) && !dropped.is_empty() {
        return Err(StepFailure::permanent(
            STEP,
            format!(
                "the open pull request of {} ({}) also fixes {}, which this change would drop \
                 (one is a version bump, the other a code change); merge or close it, then \
                 trigger again",
                key.scope,
                lock.row
                    .pull_request
                    .pr_url
                    .as_deref()
                    .unwrap_or(key.branch),
                dropped.join(", ")
            ),
        ));
    }
    Ok(())
}

/// The branch's tip on the server when someone other than Remediator wrote it (then it is
/// left alone), read with the clone's credentials.
async fn foreign_tip(
    pipeline: &Pipeline,
    checkout: &Checkout,
    key: &FixKey<'_>,
    commit: git2::Oid,
) -> Result<Option<git2::Oid>, StepFailure> {
    let (root, branch, auth, ours) = (
        checkout.work_tree.clone(),
        key.branch.to_owned(),
        checkout.auth.clone(),
        pipeline.author_email.clone(),
    );
    checkout
        .git
        .run(STEP, GitLoad::WholePack, move || {
            let repo = crate::git::open_clone(&root)?;
            crate::git::foreign_tip(&repo, &branch, commit, &auth, &ours)
        })
        .await
}

fn short(oid: git2::Oid) -> String {
    oid.to_string().chars().take(12).collect()
}

/// Says once on the open pull request why its branch was not refreshed; true when it did
/// now (the caller notes it on the fix). Best effort: the job fails with the reason either
/// way, and a comment that could not be made is tried again by the next job.
async fn leave_alone_once(
    checkout: &Checkout,
    lock: &FixLock,
    key: &FixKey<'_>,
    tip: git2::Oid,
) -> bool {
    let (Some(number), Some(RemediationStatus::PrOpen)) = (
        lock.row.pr_number.and_then(|n| u64::try_from(n).ok()),
        lock.row.pull_request.state,
    ) else {
        return false;
    };
    if lock.row.left_alone_at.is_some() {
        return false;
    }
    let target = PullRequestRef::of(&checkout.repository, number);
    let body = format!(
        "Remediator did not refresh this pull request: the branch `{}` ends with commit {} \
         that Remediator did not write, and rebuilding the fix on the new base would replace \
         it. Update the branch yourself, or close this pull request or delete the branch and \
         trigger the remediation again.",
        key.branch,
        short(tip)
    );
    match checkout
        .repository
        .forge
        .comment_on_pull_request(&target, &body)
        .await
    {
        Ok(()) => true,
        Err(error) => {
            tracing::warn!(%error, number, "could not comment on the pull request");
            false
        }
    }
}
