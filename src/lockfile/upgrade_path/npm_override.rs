//! The last resort for a transitive npm-ecosystem package that its dependents pin below the
//! fix: the override of the project's own package manager (npm or pnpm `overrides`, yarn
//! `resolutions`; [`crate::lockfile::overrides`] says where each goes) forces the fixed
//! version, and the lock is updated by that manager as for a direct change. The lock step
//! makes the pull request a draft naming who asked for what; `lockfiles.overrides = false`
//! turns it off.

use super::{Forced, relock};
use crate::lockfile::overrides::{self, Manager};
use crate::lockfile::tool::LockContext;
use crate::lockfile::{LockError, LockTarget, Writing};

/// Forces the chosen fix with an override in each root project of the target's manifests (one
/// version for every copy: an override cannot tell release lines apart), then has the package
/// manager update its lock.
pub async fn force(context: LockContext<'_>, target: &LockTarget<'_>) -> Result<Forced, LockError> {
    let mut forced = write_overrides(context, target)?;
    let outcome = relock(context, target).await?;
    forced.changed.extend(outcome.changed);
    forced.verification = outcome.verification;
    Ok(forced)
}

/// Writes the override into each root project's file, naming each entry and who asked for the
/// package (no lock read back yet).
fn write_overrides(context: LockContext<'_>, target: &LockTarget<'_>) -> Result<Forced, LockError> {
    let (root, package, version) = (context.work_tree, target.package, target.fixes.chosen());
    let cannot = |why: String| LockError::CannotOverride {
        package: package.to_owned(),
        version: version.to_owned(),
        why,
    };
    let mut forced = Forced {
        changed: Vec::new(),
        verification: Default::default(),
        entries: Vec::new(),
        dependents: Vec::new(),
    };
    for manifest in target.manifests {
        let (manager, lock) = Manager::beside(root, manifest)
            .ok_or_else(|| cannot(format!("no lock file beside {manifest}")))?;
        let (path, updated) =
            overrides::edit(root, manifest, manager, package, version).map_err(cannot)?;
        std::fs::write(root.join(&path), &updated)
            .map_err(|e| LockError::write(Writing::Editing, &path, &e))?;
        forced
            .entries
            .push(format!("{} in {path}", manager.entry_name()));
        forced.changed.push((path, updated));
        if let Ok(text) = crate::lockfile::repo_file::read(root, &lock) {
            forced
                .dependents
                .extend(overrides::dependents(manager, &text, package));
        }
    }
    Ok(forced)
}
