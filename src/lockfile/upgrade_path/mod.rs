//! What moves a transitive copy its dependents hold below the fix, when a lock-only update
//! moved nothing: each ecosystem's [`UpgradePath`], registered beside its lock tools
//! ([`super::tool::upgrade_path`]).
//!
//! - The parent walk moves the packages that hold the copy: [`npm`] (npm, pnpm and yarn: the
//!   project's own dependency, in its major, walked up through the lock), [`cargo`] (several
//!   levels, from the registry index) and [`python`] (uv and Poetry: the project's own
//!   dependency). A parent the project declares is bumped (range style kept), the ecosystem's
//!   tool moves the parents and the package, and the locks are read back. What the project's
//!   files were is put back ([`originals`]) when the path does not work out, and the walk then
//!   says which parent blocks the fix and what would unblock it.
//! - The override, where the ecosystem's package managers have one ([`npm_override`]), forces
//!   the fixed version on every dependent.
//!
//! Adding an ecosystem's upgrade path is one file ending with its [`UpgradePath`] constant and
//! one line in [`super::tool::upgrade_path`].

pub mod cargo;
pub mod npm;
pub mod npm_override;
pub mod originals;
pub mod python;

use std::future::Future;
use std::pin::Pin;

use self::originals::Originals;
use super::tool::LockContext;
use super::transitive::LockedCopies;
use super::{LockError, LockTarget, Verification};
use crate::ecosystem::Ecosystem;

/// What the parent walk gives; see [`Upgraded`].
pub type Walked<'a> = Pin<Box<dyn Future<Output = Result<Upgraded, LockError>> + Send + 'a>>;

/// What the override gives; see [`Forced`].
pub type Forcing<'a> = Pin<Box<dyn Future<Output = Result<Forced, LockError>> + Send + 'a>>;

/// Moves the parents that hold the target's vulnerable copies (`target`: the lock-only one).
pub type WalkParents = for<'a> fn(LockContext<'a>, &'a LockTarget<'a>) -> Walked<'a>;

/// Forces the target's chosen fix with an override in each of its root projects.
pub type ForceOverride = for<'a> fn(LockContext<'a>, &'a LockTarget<'a>) -> Forcing<'a>;

/// One ecosystem's upgrade path; see the module documentation.
pub struct UpgradePath {
    pub parents: WalkParents,
    /// The override of the ecosystem's package managers; `None`: it has none.
    pub force: Option<ForceOverride>,
}

/// The result of a parent walk.
#[derive(Debug)]
pub enum Upgraded {
    /// The parents moved and no vulnerable copy is left.
    Moved(Moved),
    /// No parent upgrade fixes it: why, naming the parent and what would unblock it (the
    /// project's files are as they were).
    Blocked(String),
}

/// What a parent walk changed.
#[derive(Debug)]
pub struct Moved {
    /// The files changed (manifests first, as a direct change lists them): (path, content).
    pub changed: Vec<(String, String)>,
    /// The locks read back.
    pub verification: Verification,
    /// Each parent moved: `express 4.19.2 -> 4.20.0 pulls path-to-regexp 0.1.10`.
    pub chains: Vec<String>,
}

/// What an override changed, and what the draft says about it.
#[derive(Debug)]
pub struct Forced {
    /// The files the override edited, then the locks the tool changed: (path, content).
    pub changed: Vec<(String, String)>,
    /// The locks read back (a vulnerable copy may be left: even an override did not move it).
    pub verification: Verification,
    /// Each entry written: `an npm `overrides` entry in package.json`.
    pub entries: Vec<String>,
    /// Who asked for the package, per the locks: `node_modules/parent (1.0.0) asks for 1.0.0`.
    pub dependents: Vec<String>,
}

/// A parent walk as it goes: where the tools run, what it fixes, the project's files as they
/// were before it, and each parent it moved.
pub struct Walk<'a> {
    pub context: LockContext<'a>,
    pub target: &'a LockTarget<'a>,
    pub originals: Originals,
    /// Each parent moved: `express 4.19.2 -> 4.20.0 pulls path-to-regexp 0.1.10`.
    pub chains: Vec<String>,
}

impl Walk<'_> {
    /// A file of the clone as it is now, kept as it was the first time ([`Originals::keep`]).
    pub fn keep(&mut self, path: &str) -> Result<String, LockError> {
        self.originals.keep(self.context.work_tree, path)
    }

    /// [`Originals::bump_declared`] in the clone.
    pub fn bump_declared(
        &mut self,
        manifest: &str,
        parent_to: (&str, &str),
        admits: fn(&str, &str) -> Option<bool>,
    ) -> Result<bool, String> {
        let root = self.context.work_tree;
        self.originals
            .bump_declared(root, manifest, parent_to, admits)
    }
}

/// What moving the parents of one item of a walk gives: (inner `Err`) why there is no way,
/// the walk putting the files back.
pub type WalkStep = Result<Result<(), String>, LockError>;

/// Moves the parents of one item of a walk (a lock, a root manifest), adding each one's chain.
type MoveParents<T> =
    for<'w, 'a> fn(&'w mut Walk<'a>, &'w T) -> Pin<Box<dyn Future<Output = WalkStep> + Send + 'w>>;

/// Every parent walk: `move_parents` for each of `items` in turn; the first that finds no way
/// puts every file back and says why; then [`finish`].
async fn walk_each<T: Sync + 'static>(
    context: LockContext<'_>,
    target: &LockTarget<'_>,
    items: &[T],
    move_parents: MoveParents<T>,
) -> Result<Upgraded, LockError> {
    let mut walk = Walk {
        context,
        target,
        originals: Originals::default(),
        chains: Vec::new(),
    };
    for item in items {
        if let Err(why) = move_parents(&mut walk, item).await? {
            walk.originals.restore(context.work_tree)?;
            return Ok(Upgraded::Blocked(why));
        }
    }
    finish(walk).await
}

/// The walk over every lock that still resolves a vulnerable copy (Cargo, uv and Poetry).
async fn walk_locks(
    context: LockContext<'_>,
    target: &LockTarget<'_>,
    move_parents: MoveParents<LockedCopies>,
) -> Result<Upgraded, LockError> {
    let locks = vulnerable_locks(context, target);
    walk_each(context, target, &locks, move_parents).await
}

/// Why a blocked job of an ecosystem without an upgrade path found no parent release itself.
pub fn none_found(ecosystem: &Ecosystem) -> String {
    format!(
        "the worker looks for one itself in npm, pnpm, yarn, Cargo, uv and Poetry projects, not \
         in {ecosystem} ones"
    )
}

/// The locks that still resolve a vulnerable copy of the target's package.
fn vulnerable_locks(context: LockContext<'_>, target: &LockTarget<'_>) -> Vec<LockedCopies> {
    let mut locks = super::transitive::find(
        context.work_tree,
        target.ecosystem,
        target.package,
        target.fixes,
    );
    locks.retain(|lock| lock.copies.iter().any(|copy| copy.vulnerable));
    locks
}

/// Has the tools update the target's locks as for a direct change, after the upgrade path
/// itself edited the project's files.
async fn relock(
    context: LockContext<'_>,
    target: &LockTarget<'_>,
) -> Result<super::LockOutcome, LockError> {
    let direct = LockTarget {
        lock_only: false,
        ..*target
    };
    super::update(
        context.sandbox,
        context.settings,
        context.work_tree,
        &direct,
    )
    .await
}

/// The end of every parent walk: the tool moves the package itself as for a direct change,
/// no vulnerable copy may be left (else everything is put back), and what changed is recorded.
async fn finish(walk: Walk<'_>) -> Result<Upgraded, LockError> {
    let Walk {
        context,
        target,
        originals,
        chains,
    } = walk;
    let root = context.work_tree;
    if chains.is_empty() {
        originals.restore(root)?;
        let why = "no dependency the project declares holds it in the lock (the worker \
                   upgrades those, not packages further down)";
        return Ok(Upgraded::Blocked(why.to_owned()));
    }
    let outcome = match relock(context, target).await {
        Ok(outcome) => outcome,
        Err(error) => {
            originals.restore(root)?;
            return Err(error);
        }
    };
    if outcome.verification.vulnerable_left > 0 {
        originals.restore(root)?;
        let why = format!(
            "after {}, a vulnerable copy is still held by another dependent",
            chains.join("; ")
        );
        return Ok(Upgraded::Blocked(why));
    }
    let mut changed = originals.changed(root);
    for (path, text) in outcome.changed {
        if !changed.iter().any(|(p, _)| *p == path) {
            changed.push((path, text));
        }
    }
    Ok(Upgraded::Moved(Moved {
        changed,
        verification: outcome.verification,
        chains,
    }))
}
