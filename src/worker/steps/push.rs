//! Step `push`: checks the remote again (a name may resolve differently now than at clone
//! time) and pushes the branch, retrying transient failures in place. Resume-safe: a branch
//! already at the commit is `AlreadyUpToDate`.

use backon::Retryable;

use super::clone::Checkout;
use crate::git::PushOutcome;
use crate::lifecycle::Step;
use crate::worker::failure::StepFailure;
use crate::worker::pipeline::Pipeline;

pub async fn run(
    pipeline: &Pipeline,
    checkout: &Checkout,
    branch: &str,
    commit: git2::Oid,
) -> Result<PushOutcome, StepFailure> {
    let step = Step::Push;
    crate::git::check_remote(pipeline.forges.egress(), &checkout.repository.url)
        .await
        .map_err(|e| StepFailure::from_git(step, e))?;
    let push = || {
        let (root, branch, auth) = (
            checkout.work_tree.clone(),
            branch.to_owned(),
            checkout.auth.clone(),
        );
        checkout.git.run(step, true, move || {
            let repo = crate::git::open_clone(&root)?;
            crate::git::push_branch(&repo, &branch, commit, &auth)
        })
    };
    push.retry(crate::worker::retry::in_place())
        .when(StepFailure::is_transient)
        .notify(|e, delay| tracing::warn!(error = %e, ?delay, "push failed; retrying"))
        .await
}
