//! Lock and manifest files committed as symbolic links. The worker never reads or writes a
//! repository file through a link (`lockfile::repo_file`), so such a lock cannot be updated:
//! rather than a ready pull request over a stale lock (or a lock "not found"), the job fails
//! naming the file, or opens a draft that names it with `lockfiles.update = "best_effort"`.

use super::{STEP, parent_dir_chain};
use crate::lockfile::LockUpdateMode;
use crate::lockfile::on_disk::is_tool_file;
use crate::worker::context::Pipeline;
use crate::worker::failure::StepFailure;
use crate::worker::git_work::GitLoad;
use crate::worker::steps::clone::Checkout;

/// `None` when no tool file the lock step would use is a link; the draft reason when the
/// operator asked for best effort; else the job's error. `dirs`: the directories whose tool
/// files matter (a changed manifest's and those above it); `None`: every directory (a lock-only
/// update, which looks for the package in every lock).
pub(super) async fn check(
    pipeline: &Pipeline,
    checkout: &Checkout,
    dirs: Option<Vec<String>>,
) -> Result<Option<String>, StepFailure> {
    let root = checkout.work_tree.clone();
    let links = checkout
        .git
        .run(STEP, GitLoad::FewObjects, move || {
            crate::git::head_links(&crate::git::open_clone(&root)?)
        })
        .await?;
    let mut linked: Vec<String> = links
        .into_iter()
        .filter(|path| {
            let (dir, name) = path.rsplit_once('/').unwrap_or(("", path));
            is_tool_file(name)
                && dirs
                    .as_ref()
                    .is_none_or(|dirs| dirs.iter().any(|d| d == dir))
        })
        .collect();
    if linked.is_empty() {
        return Ok(None);
    }
    linked.sort();
    let what = format!(
        "{} {} committed as a symbolic link, which the worker never reads or writes through, \
         so the lock could not be updated; commit the file itself",
        linked.join(", "),
        if linked.len() == 1 { "is" } else { "are" },
    );
    match pipeline.lockfiles.update {
        LockUpdateMode::BestEffort => Ok(Some(what)),
        LockUpdateMode::Required => Err(StepFailure::permanent(
            STEP,
            format!("{what} (lockfiles.update = \"best_effort\" opens a draft instead)"),
        )),
    }
}

/// The directories whose tool files cover `manifests`: each one's own and those above it.
pub(super) fn covering_dirs(manifests: &[String]) -> Vec<String> {
    let mut dirs: Vec<String> = manifests
        .iter()
        .flat_map(|manifest| parent_dir_chain(manifest))
        .collect();
    dirs.sort();
    dirs.dedup();
    dirs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_is_covered_by_its_directory_and_those_above() {
        assert_eq!(
            covering_dirs(&["apps/web/package.json".to_owned(), "Cargo.toml".to_owned()]),
            ["", "apps", "apps/web"]
        );
    }
}
