//! The Python upgrade path (uv, Poetry): the project's own dependency that holds the package
//! moves to its lowest release that admits the fix, found by uv's resolver in the sandbox
//! ([`crate::lockfile::python_upgrade`]), and the project's tool moves it. Python has no
//! override.

use super::{UpgradePath, Walk, WalkStep, walk_locks};
use crate::lockfile::npm_upgrade::ParentUpgrade;
use crate::lockfile::python_upgrade::{self, Found, Holder};
use crate::lockfile::transitive::LockedCopies;

/// Moves the project's dependencies that hold the package in `lock`, each chain added to the
/// walk's.
async fn move_parents(walk: &mut Walk<'_>, lock: &LockedCopies) -> WalkStep {
    let (context, target) = (walk.context, walk.target);
    let (package, target_version) = (target.package, target.fixes.chosen());
    let text = walk.keep(&lock.lock)?;
    let pyproject = walk.keep(&lock.manifest)?;
    let holders = match python_upgrade::holders(&text, &pyproject, package, target_version) {
        Ok(holders) => holders,
        Err(why) => return Ok(Err(why)),
    };
    let mut moved = Vec::new();
    for holder in &holders {
        let found = python_upgrade::find(
            context,
            &lock.lock,
            &pyproject,
            holder,
            package,
            target_version,
        );
        let upgrade = match found.await? {
            Found::NotBlocking => continue,
            Found::Upgrade(upgrade) => upgrade,
            Found::NoRelease => return Ok(Err(no_release(holder, package, target_version))),
        };
        bump_if_declared(walk, &lock.manifest, &upgrade);
        walk.chains.push(upgrade.chain(package));
        moved.push(upgrade);
    }
    if moved.is_empty() {
        return Ok(Ok(()));
    }
    if let Err(error) = python_upgrade::apply(context, &lock.lock, &moved).await {
        let dir = crate::lockfile::parent_dir(&lock.lock);
        return Ok(Err(format!(
            "{} would admit it, but the lock could not be moved there ({dir}): {error}",
            walk.chains.join("; ")
        )));
    }
    Ok(Ok(()))
}

/// Raises the parent in the project's `pyproject.toml` where it declares a version; one
/// declared without a bumpable version is left to the tool, which moves it.
fn bump_if_declared(walk: &mut Walk<'_>, manifest: &str, upgrade: &ParentUpgrade) {
    let parent_to = (upgrade.parent.as_str(), upgrade.to.as_str());
    if let Err(why) = walk.bump_declared(manifest, parent_to, |_, _| None) {
        tracing::info!(%why, parent = %upgrade.parent, "parent declared without a bumpable version; the tool moves it");
    }
}

/// Why a holder blocks the fix for good: no later release of it admits the fix.
fn no_release(holder: &Holder, package: &str, target_version: &str) -> String {
    format!(
        "{} {} does not admit {package} {target_version}, and no later release of {} does; \
         replace it, or ask its maintainers for a release that does",
        holder.name, holder.version, holder.name
    )
}

/// uv and Poetry: the parent walk over every lock that still resolves a vulnerable copy; no
/// override.
pub const PATH: UpgradePath = UpgradePath {
    parents: |context, target| {
        Box::pin(walk_locks(context, target, |walk, lock| {
            Box::pin(move_parents(walk, lock))
        }))
    },
    force: None,
};
