//! The npm, pnpm and yarn upgrade path: each package whose lock entry pins the package below
//! the fix moves to its lowest later release, in its major, whose own range admits the fix
//! ([`crate::lockfile::npm_upgrade`]); one the project does not declare is walked up the same
//! way (its holders must admit its new release) to a direct dependency of a root project,
//! which is raised (range style kept). Then the project's manager updates its lock as for a
//! direct change, resolving the levels between. The override is [`super::npm_override`].

use super::{UpgradePath, Walk, WalkStep, walk_each};
use crate::lockfile::LockError;
use crate::lockfile::npm_upgrade::{self, Blocker, ParentUpgrade};
use crate::lockfile::overrides::Manager;
use crate::lockfile::tool::LockContext;

/// Levels walked up from an npm-ecosystem package to the project's own dependencies, at most.
const MAX_LEVELS: usize = 4;

/// One package of the walk: the blocker, what it holds, the release of that it must admit,
/// and its level below the project's own dependencies.
struct Holder {
    blocker: Blocker,
    holds: String,
    wanted: String,
    level: usize,
}

/// The walk for the root project of `manifest`: its own dependencies raised in `manifest`,
/// each chain added to the walk's.
async fn project(walk: &mut Walk<'_>, manifest: &str) -> WalkStep {
    let (context, target) = (walk.context, walk.target);
    let package = target.package;
    // A workspace member's lock is its root's; the root's own manifest is the one raised.
    let Some((manager, lock)) = Manager::beside(context.work_tree, manifest) else {
        return Ok(Ok(()));
    };
    let text = walk.keep(manifest)?;
    let lock_text = walk.keep(&lock)?;
    let holders = |name: &str, admitting: &[&str]| {
        npm_upgrade::blockers(manager, &lock_text, &text, name, admitting)
    };
    // The package's holders block when their range admits no fix of any release line.
    let fixes: Vec<&str> = target.fixes.versions().collect();
    let mut work: Vec<Holder> = holders(package, &fixes)
        .into_iter()
        .map(|blocker| Holder::new(blocker, package, target.fixes.chosen(), 1))
        .collect();
    let mut seen = Vec::new();
    while let Some(next) = work.pop() {
        let Holder { blocker, holds, .. } = &next;
        if seen.contains(&(blocker.name.clone(), blocker.version.clone())) {
            continue;
        }
        seen.push((blocker.name.clone(), blocker.version.clone()));
        let Some(upgrade) = next.upgrade(context, manifest).await? else {
            return Ok(Err(next.no_later_release()));
        };
        walk.chains.push(upgrade.chain(holds));
        if blocker.direct {
            let always = |_: &str, _: &str| None;
            let parent_to = (upgrade.parent.as_str(), upgrade.to.as_str());
            if let Err(why) = walk.bump_declared(manifest, parent_to, always) {
                let chain = upgrade.chain(holds);
                return Ok(Err(format!("{chain} would admit it, but {why}")));
            }
            continue;
        }
        let name = &blocker.name;
        let above = holders(name, &[upgrade.to.as_str()]);
        if !above.is_empty() && next.level < MAX_LEVELS {
            let level = next.level + 1;
            work.extend((above.into_iter()).map(|b| Holder::new(b, name, &upgrade.to, level)));
            continue;
        }
        let top = above.is_empty();
        return Ok(Err(stranded(&upgrade, holds, name, top, &walk.chains)));
    }
    Ok(Ok(()))
}

/// Why the walk stops at a package the project does not declare: nothing above it holds it
/// back (the worker raises only the project's own dependencies), or the walk went more than
/// [`MAX_LEVELS`] levels up.
fn stranded(
    upgrade: &ParentUpgrade,
    holds: &str,
    name: &str,
    top: bool,
    chains: &[String],
) -> String {
    match top {
        true => format!(
            "{} would admit it, and what depends on {name} admits {}: the worker raises \
             the project's own dependencies, not a package further down",
            upgrade.chain(holds),
            upgrade.to
        ),
        false => format!(
            "{} would admit it, more than {MAX_LEVELS} levels below the project's own \
             dependencies",
            chains.join("; ")
        ),
    }
}

impl Holder {
    fn new(blocker: Blocker, holds: &str, wanted: &str, level: usize) -> Self {
        let (holds, wanted) = (holds.to_owned(), wanted.to_owned());
        Holder {
            blocker,
            holds,
            wanted,
            level,
        }
    }

    /// The lowest later release of the blocker, in its major, that admits what it must
    /// (`npm view` in the sandbox, from `manifest`'s directory).
    async fn upgrade(
        &self,
        context: LockContext<'_>,
        manifest: &str,
    ) -> Result<Option<ParentUpgrade>, LockError> {
        let dir = crate::lockfile::parent_dir(manifest);
        let (blocker, holds, wanted) = (&self.blocker, &self.holds, &self.wanted);
        npm_upgrade::find(context, dir, blocker, holds, wanted).await
    }

    /// Why the blocker stops the walk: no later release of it, in its major, admits what it
    /// must.
    fn no_later_release(&self) -> String {
        let (name, version) = (&self.blocker.name, &self.blocker.version);
        let major = version.split('.').next().unwrap_or("0");
        format!(
            "{name} {version} asks for {} {}, and no later release of {name} in {major}.x \
             admits {}",
            self.holds, self.blocker.range, self.wanted
        )
    }
}

/// npm, pnpm and yarn: the parent walk, then their override.
pub const PATH: UpgradePath = UpgradePath {
    // The walk over every root project of the target's manifests.
    parents: |context, target| {
        Box::pin(walk_each(
            context,
            target,
            target.manifests,
            |walk, manifest| Box::pin(project(walk, manifest)),
        ))
    },
    force: Some(|context, target| Box::pin(super::npm_override::force(context, target))),
};
