//! The Cargo upgrade path: for each `Cargo.lock` holding a vulnerable copy, the parents to move
//! ([`crate::lockfile::cargo_upgrade`], read from the registry index cargo reads), a member's
//! manifest bumped where its requirement excludes the new release, then `cargo update
//! --precise` for each parent top-down and for the package. Cargo has no override.

use super::{UpgradePath, Walk, WalkStep, walk_locks};
use crate::lockfile::cargo_upgrade::{self, Step};

/// Moves the parents that hold the package in `lock`, each step's chain added to the walk's.
async fn move_parents(walk: &mut Walk<'_>, lock: &str) -> WalkStep {
    let (context, target) = (walk.context, walk.target);
    let text = walk.keep(lock)?;
    let fetched = crate::lockfile::cargo::fetched_index(context, lock).await?;
    let index = |name: &str| match cargo_upgrade::local_index(context.settings, name) {
        local if !local.is_empty() => local,
        _ => fetched
            .get(&name.to_ascii_lowercase())
            .map(|bytes| cargo_upgrade::parse_cache(bytes))
            .unwrap_or_default(),
    };
    let parsed = cargo_upgrade::parse_lock(&text);
    let steps = match cargo_upgrade::plan(&parsed, &index, target.package, target.fixes) {
        Ok(steps) => steps,
        Err(why) => return Ok(Err(why)),
    };
    let dir = crate::lockfile::parent_dir(lock);
    let root = context.work_tree;
    let members = crate::lockfile::transitive::manifests_under(root, dir, "Cargo.toml");
    for step in steps.iter().filter(|s| s.direct) {
        let (parent, to) = (step.upgrade.parent.as_str(), step.upgrade.to.as_str());
        for manifest in &members {
            let admits = crate::patch::bump::cargo_range_admits;
            if let Err(why) = walk.bump_declared(manifest, (parent, to), admits) {
                return Ok(Err(format!("{parent} {to} would admit the fix, but {why}")));
            }
        }
    }
    let moved: Vec<String> = steps.iter().map(Step::chain).collect();
    if let Err(error) = cargo_upgrade::apply(context, lock, &steps).await {
        return Ok(Err(format!(
            "{} would admit it, but cargo could not move there: {error}",
            moved.join("; ")
        )));
    }
    walk.chains.extend(moved);
    Ok(Ok(()))
}

/// Cargo: the parent walk over every lock that still resolves a vulnerable copy; no override.
pub const PATH: UpgradePath = UpgradePath {
    parents: |context, target| {
        Box::pin(walk_locks(context, target, |walk, lock| {
            Box::pin(move_parents(walk, &lock.lock))
        }))
    },
    force: None,
};
