//! Step `clone`: resolves which forge serves the repository (and its credentials), checks the
//! remote against the egress policy, and shallow-clones the default branch into a fresh
//! scratch directory, retrying transient failures in place. Only the files the lock tools read
//! are written to disk ([`crate::lockfile::on_disk`]); the rest of the tree is read from the
//! object database, unless a tool may read any file (then the whole tree is written).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use backon::Retryable;

use super::{GitLoad, GitWork};
use crate::db::models::RemediationTarget;
use crate::forge::ResolvedRepository;
use crate::git::{GitAuth, GitError, Materialize, ScratchDir};
use crate::lifecycle::Step;
use crate::lockfile::on_disk;
use crate::worker::context::Pipeline;
use crate::worker::failure::StepFailure;

/// A clone of the default branch, and what later steps need to push to it and test it.
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
    let auth = repository.credentials.clone();
    // Before libgit2 connects anywhere: the remote must not be a private address.
    crate::git::check_remote(pipeline.forges.egress(), &repository.url)
        .await
        .map_err(|e| StepFailure::from_git(step, e))?;
    let scratch =
        ScratchDir::new_in(&pipeline.scratch_root).map_err(|e| StepFailure::from_git(step, e))?;
    let work_tree = scratch.path().join("repo");
    let git = GitWork {
        budget: pipeline.git_budget.clone(),
        repository: repository.url.as_str().to_owned(),
        scratch: Arc::new(scratch),
    };
    let clone = || {
        let (url, branch, dest, auth) = (
            repository.url.as_str().to_owned(),
            target.default_branch.clone(),
            work_tree.clone(),
            auth.clone(),
        );
        git.run(step, GitLoad::WholePack, move || {
            // A failed try may leave a partial clone behind.
            if dest.exists() {
                let _ = std::fs::remove_dir_all(&dest);
            }
            clone_for_the_tools(&url, &branch, &dest, &auth)
        })
    };
    let pack_bytes = clone
        .retry(crate::worker::retry::in_place())
        .when(StepFailure::is_transient)
        .notify(|e, delay| tracing::warn!(error = %e, ?delay, "clone failed; retrying"))
        .await?;
    // The next git task on this repository takes from the budget what this pack needs.
    pipeline.git_budget.learn(&git.repository, pack_bytes);
    Ok(Checkout {
        repository,
        auth,
        work_tree,
        git,
    })
}

/// Clones with the files the lock tools need on disk, or all of them when a tool may read any.
/// Returns the size of the pack files received.
fn clone_for_the_tools(
    url: &str,
    branch: &str,
    dest: &Path,
    auth: &GitAuth,
) -> Result<u64, GitError> {
    let needed = Materialize::Only(&on_disk::needed_on_disk);
    let repo = crate::git::clone_branch(url, branch, dest, auth, needed)?;
    let files = crate::git::head_files(&repo)?;
    let read = |path: &str| crate::git::read_file(&repo, path).ok().flatten();
    if let Some(reason) = on_disk::whole_tree_reason(files.iter().map(|f| f.path.as_str()), read) {
        tracing::info!(%reason, "writing the whole tree to disk for the lock tools");
        crate::git::write_whole_tree(&repo)?;
    }
    Ok(pack_bytes(&dest.join(".git/objects/pack")))
}

/// The total size of the `.pack` files in `dir` (0 when unreadable: the budget then keeps
/// its default for the repository).
fn pack_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|ext| ext == "pack"))
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .sum()
}
