//! A lock-only update that left every vulnerable copy where it was fixed nothing. The lock
//! step then asks the ecosystem's upgrade path ([`lockfile::tool::upgrade_path`]) to move the
//! parents that hold the copy, then to force it with an override where the ecosystem has one
//! and the operator allows it, and otherwise fails the job naming what holds the copy and what
//! would unblock it, rather than open a pull request that fixes nothing.

use std::path::Path;

use super::describe::{self, holders, vulnerable_copies};
use super::prepare::Prepared;
use super::{Locked, STEP, failed};
use crate::db::models::RemediationTarget;
use crate::lockfile::upgrade_path::{self, Upgraded};
use crate::lockfile::{self, FixedVersions, Verification};
use crate::worker::context::Pipeline;
use crate::worker::failure::StepFailure;
use crate::worker::steps::clone::Checkout;

/// What was tried before a job gives up on a transitive copy, for its error's advice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Blocked {
    /// No upgrade path was found (or none is looked for in this ecosystem yet).
    NoUpgradePath,
    /// The override that would force it is turned off; why no parent upgrade fixes it, when
    /// the upgrade path looked.
    OverridesOff(Option<String>),
    /// Even an override left a vulnerable copy.
    OverrideFailed,
    /// The upgrade path looked and found no parent release to move to (or could not move to
    /// it): why, naming the parent.
    NoParentRelease(String),
}

/// Moves the copy another way, or fails saying what blocks it; see the module documentation.
pub(super) async fn escalate(
    pipeline: &Pipeline,
    checkout: &Checkout,
    target: &RemediationTarget,
    prepared: &Prepared,
    verification: &Verification,
) -> Result<Locked, StepFailure> {
    let root = &checkout.work_tree;
    let context = lockfile::tool::LockContext {
        sandbox: &pipeline.sandbox,
        settings: &pipeline.lockfiles,
        work_tree: root,
    };
    let lock_target = prepared.lock_target(target);
    let path = lockfile::tool::upgrade_path(&target.facts.ecosystem);
    let no_parent_release = match path {
        Some(path) => match (path.parents)(context, &lock_target)
            .await
            .map_err(failed)?
        {
            Upgraded::Moved(moved) => {
                return Ok(describe::parent_upgrade(moved, &target.facts.package_name));
            }
            Upgraded::Blocked(why) => Some(why),
        },
        None => None,
    };
    let force = path.and_then(|path| path.force);
    if let Some(force) = force
        && pipeline.lockfiles.overrides
    {
        let forced = force(context, &lock_target).await.map_err(failed)?;
        if forced.verification.vulnerable_left > 0 {
            let left = &forced.verification;
            return Err(blocked(
                root,
                target,
                &prepared.fixes,
                left,
                Blocked::OverrideFailed,
            ));
        }
        return Ok(describe::forced(
            forced,
            &target.facts.package_name,
            prepared.fixes.chosen(),
        ));
    }
    let next = match (force.is_some(), no_parent_release) {
        (true, why) => Blocked::OverridesOff(why),
        (false, Some(why)) => Blocked::NoParentRelease(why),
        (false, None) => Blocked::NoUpgradePath,
    };
    Err(blocked(root, target, &prepared.fixes, verification, next))
}

/// The job's error when no copy could be moved: which copies stay, which packages hold them
/// (read from the locks), and what would unblock the fix.
pub(super) fn blocked(
    root: &Path,
    target: &RemediationTarget,
    fixes: &FixedVersions,
    verification: &Verification,
    next: Blocked,
) -> StepFailure {
    let package = &target.facts.package_name;
    let target_version = fixes.chosen();
    let stays = vulnerable_copies(verification, fixes);
    let holders = holders(root, &verification.lock_files, package);
    let held = match holders.is_empty() {
        true => "the packages that depend on it do not admit it".to_owned(),
        false => format!("it is held by {}", holders.join("; ")),
    };
    let next = match next {
        Blocked::OverrideFailed => "even an override did not move it".to_owned(),
        Blocked::NoUpgradePath => format!(
            "upgrade the package that holds it to a release whose requirement admits \
             {package} {target_version} ({})",
            upgrade_path::none_found(&target.facts.ecosystem)
        ),
        Blocked::NoParentRelease(why) => format!("no parent upgrade fixes it: {why}"),
        Blocked::OverridesOff(why) => format!(
            "{}upgrade the package that holds it to a release whose requirement admits \
             {package} {target_version}, or set lockfiles.overrides = true to force it with an \
             override (opened as a draft)",
            why.map(|why| format!("no parent upgrade fixes it ({why}); "))
                .unwrap_or_default()
        ),
    };
    StepFailure::permanent(
        STEP,
        format!(
            "the lock-only update could not move {package} ({}) to {target_version}: {held}; \
             {next}",
            stays.join(", ")
        ),
    )
}
