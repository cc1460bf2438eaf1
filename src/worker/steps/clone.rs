//! Step `clone`: resolves which forge serves the repository (and its credentials), checks the
//! remote against the egress policy, and shallow-clones the default branch into a fresh
//! scratch directory, retrying transient failures in place.

use std::path::PathBuf;
use std::sync::Arc;

use backon::Retryable;

use super::GitWork;
use crate::db::models::RemediationTarget;
use crate::forge::ResolvedRepository;
use crate::git::{GitAuth, ScratchDir};
use crate::lifecycle::Step;
use crate::worker::failure::StepFailure;
use crate::worker::pipeline::Pipeline;

/// A clone of the default branch, and what later steps need to push to it.
pub struct Checkout {
    pub repository: ResolvedRepository,
    pub auth: GitAuth,
    pub work_tree: PathBuf,
    pub git: GitWork,
}

pub async fn run(pipeline: &Pipeline, target: &RemediationTarget) -> Result<Checkout, StepFailure> {
    let step = Step::Clone;
    let repository = pipeline
        .forges
        .resolve(&target.repository_url)
        .map_err(|e| StepFailure::from_forge(step, e))?;
    let auth = GitAuth {
        username: repository.credentials.username.clone(),
        token: repository.credentials.token.clone(),
        ssh_key_file: repository.credentials.ssh_key_file.clone(),
    };
    // Before libgit2 connects anywhere: the remote must not be a private address.
    crate::git::check_remote(pipeline.forges.egress(), &repository.url)
        .await
        .map_err(|e| StepFailure::from_git(step, e))?;
    let scratch =
        ScratchDir::new_in(&pipeline.scratch_root).map_err(|e| StepFailure::from_git(step, e))?;
    let work_tree = scratch.path().join("repo");
    let git = GitWork {
        slots: pipeline.git_slots.clone(),
        scratch: Arc::new(scratch),
    };
    let clone = || {
        let (url, branch, dest, auth) = (
            repository.url.as_str().to_owned(),
            target.default_branch.clone(),
            work_tree.clone(),
            auth.clone(),
        );
        git.run(step, true, move || {
            // A failed try may leave a partial clone behind.
            if dest.exists() {
                let _ = std::fs::remove_dir_all(&dest);
            }
            crate::git::clone_default_branch(&url, &branch, &dest, &auth).map(|_| ())
        })
    };
    clone
        .retry(crate::worker::retry::in_place())
        .when(StepFailure::is_transient)
        .notify(|e, delay| tracing::warn!(error = %e, ?delay, "clone failed; retrying"))
        .await?;
    Ok(Checkout {
        repository,
        auth,
        work_tree,
        git,
    })
}
