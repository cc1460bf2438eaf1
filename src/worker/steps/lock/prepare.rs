//! Before the tool runs: the patch is written into the work tree, and the lock step works out
//! what it updates (the manifests whose locks it refreshes, the fix for each release line)
//! and what a lock-only update starts from, to tell afterwards what moved.

use std::path::Path;

use super::{GitLoad, STEP};
use crate::db::models::RemediationTarget;
use crate::lockfile::{self, FixedVersions, LockTarget};
use crate::patch::bump::ManifestKind;
use crate::worker::failure::StepFailure;
use crate::worker::patcher::ProposedPatch;
use crate::worker::steps::clone::Checkout;

/// What the lock step updates and what it compares against.
pub(super) struct Prepared {
    /// The version the fix moves to (the patch's, else the plan's, else the installed one).
    pub target_version: String,
    /// Copies in other release lines than the project's own need their line's fix.
    pub fixes: FixedVersions,
    /// The manifests whose locks are updated: the ones the patch edited or, for a lock-only
    /// update, the ones beside the locks that resolve the package.
    pub manifests: Vec<String>,
    /// No manifest declares the package: it moves in the locks alone.
    pub lock_only: bool,
    /// For a lock-only update: the locks resolving the package, and how many vulnerable
    /// copies they held before the tool ran.
    pub lock_paths: Vec<String>,
    pub vulnerable_before: usize,
    /// Those locks and manifests as they were, to tell what else the tool moved.
    pub before: Vec<(String, String)>,
}

impl Prepared {
    /// The facts the lock tools need.
    pub fn lock_target<'a>(&'a self, target: &'a RemediationTarget) -> LockTarget<'a> {
        LockTarget {
            ecosystem: &target.facts.ecosystem,
            package: &target.facts.package_name,
            fixes: &self.fixes,
            manifests: &self.manifests,
            lock_only: self.lock_only,
        }
    }
}

/// Writes the patch into the work tree, once: the tool reads the edited manifest, and the
/// commit step commits the work tree as the patch and the tool left it.
pub(super) async fn write_patch(
    checkout: &Checkout,
    patch: &ProposedPatch,
) -> Result<(), StepFailure> {
    let files: Vec<(String, String)> = patch
        .edits
        .iter()
        .map(|e| (e.path.clone(), e.updated.clone()))
        .collect();
    let root = checkout.work_tree.clone();
    checkout
        .git
        .run(STEP, GitLoad::FewObjects, move || {
            let repo = crate::git::open_clone(&root)?;
            crate::git::write_files(&repo, &files)
        })
        .await
}

/// What the lock step works on; `None` when the patch touched no manifest (nothing to lock).
pub(super) fn prepare(
    work_tree: &Path,
    target: &RemediationTarget,
    patch: &ProposedPatch,
) -> Option<Prepared> {
    let target_version = patch
        .version_for(target)
        .unwrap_or_else(|| target.facts.installed_version.clone());
    let fixes = FixedVersions::new(&target_version, &target.facts.fixed_versions);
    let lock_only = patch.is_lock_only();
    let locked = match lock_only {
        true => lockfile::transitive::find(
            work_tree,
            &target.facts.ecosystem,
            &target.facts.package_name,
            &fixes,
        ),
        false => Vec::new(),
    };
    let vulnerable_before = locked
        .iter()
        .flat_map(|l| &l.copies)
        .filter(|copy| copy.vulnerable)
        .count();
    let lock_paths: Vec<String> = locked.iter().map(|l| l.lock.clone()).collect();
    let manifests: Vec<String> = if lock_only {
        let mut beside: Vec<String> = locked.into_iter().map(|l| l.manifest).collect();
        beside.dedup();
        beside
    } else {
        patch
            .edits
            .iter()
            .filter(|edit| ManifestKind::detect(&edit.path).is_some())
            .map(|edit| edit.path.clone())
            .collect()
    };
    if manifests.is_empty() {
        return None;
    }
    let before = read_before(work_tree, &lock_paths, lock_only.then_some(&manifests));
    Some(Prepared {
        target_version,
        fixes,
        manifests,
        lock_only,
        lock_paths,
        vulnerable_before,
        before,
    })
}

/// The locks (and, for a lock-only update, the manifests) as they are before the tool runs.
fn read_before(
    work_tree: &Path,
    lock_paths: &[String],
    manifests: Option<&Vec<String>>,
) -> Vec<(String, String)> {
    lock_paths
        .iter()
        .chain(manifests.into_iter().flatten())
        .filter_map(|path| {
            let text = lockfile::repo_file::read(work_tree, path).ok()?;
            Some((path.clone(), text))
        })
        .collect()
}
