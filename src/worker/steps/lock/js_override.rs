//! The lock step's last resort for a transitive npm-ecosystem package that its dependents pin
//! below the fix: the override of the project's own package manager (npm or pnpm `overrides`,
//! yarn `resolutions`; [`lockfile::overrides`] says where each goes) forces the fixed version,
//! the lock is updated by that manager as for a direct change, and the pull request is a draft
//! naming who asked for what. `lockfiles.overrides = false` turns it off.

use super::escalate::{Blocked, blocked};
use super::{Locked, STEP, relock};
use crate::db::models::RemediationTarget;
use crate::lockfile::FixedVersions;
use crate::lockfile::overrides::{self, Manager};
use crate::pr_text::{Label, LabelledLine};
use crate::worker::context::Pipeline;
use crate::worker::failure::StepFailure;
use crate::worker::patcher::FixStrategy;
use crate::worker::steps::clone::Checkout;

/// Forces the chosen fix with an override in each root project of `manifests` (one version
/// for every copy: an override cannot tell release lines apart), then has the package manager
/// update its lock.
pub(super) async fn force(
    pipeline: &Pipeline,
    checkout: &Checkout,
    target: &RemediationTarget,
    fixes: &FixedVersions,
    manifests: &[String],
) -> Result<Locked, StepFailure> {
    let target_version = fixes.chosen();
    let root = &checkout.work_tree;
    let package = &target.package_name;
    let cannot = |why: String| {
        StepFailure::permanent(
            STEP,
            format!("cannot force {package} {target_version} with an override: {why}"),
        )
    };
    let mut dependents = Vec::new();
    let mut entries = Vec::new();
    let mut changed = Vec::new();
    for manifest in manifests {
        let (manager, lock) = Manager::beside(root, manifest)
            .ok_or_else(|| cannot(format!("no lock file beside {manifest}")))?;
        let (path, updated) =
            overrides::edit(root, manifest, manager, package, target_version).map_err(cannot)?;
        std::fs::write(root.join(&path), &updated)
            .map_err(|e| StepFailure::transient(STEP, format!("writing {path}: {e}")))?;
        entries.push(format!("{} in {path}", manager.entry_name()));
        changed.push((path, updated));
        if let Ok(text) = crate::lockfile::repo_file::read(root, &lock) {
            dependents.extend(overrides::dependents(manager, &text, package));
        }
    }
    let outcome = relock(pipeline, root, target, fixes, manifests).await?;
    if outcome.verification.vulnerable_left > 0 {
        return Err(blocked(
            root,
            target,
            fixes,
            &outcome.verification,
            Blocked::OverrideFailed,
        ));
    }
    changed.extend(outcome.changed);
    let strategy_lines = vec![LabelledLine::new(
        Label::Strategy,
        format!(
            "override: no release of the packages that depend on {package} admits a fixed \
             version, so {} pins {package} {target_version} for all of them.",
            entries.join(" and ")
        ),
    )];
    let reason = format!(
        "{} forces {package} {target_version} on every package that depends on it, because \
         their own ranges admit no fixed version ({}); they were not tested with it, so review \
         before merging (lockfiles.overrides = false turns overrides off)",
        entries.join(" and "),
        if dependents.is_empty() {
            "none named in the lock".to_owned()
        } else {
            dependents.join("; ")
        }
    );
    Ok(Locked {
        changed,
        verification: Some(outcome.verification),
        draft_reason: Some(reason),
        strategy: Some(FixStrategy::Override),
        strategy_lines,
    })
}
