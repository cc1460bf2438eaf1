//! A lock-only update that left every vulnerable copy where it was fixed nothing. The lock
//! step then tries, in order: the ecosystem's upgrade path (move the parents that hold the
//! copy, [`super::parent_upgrade`]), an override where the ecosystem has one and the operator
//! allows it ([`super::js_override`]), and otherwise fails the job naming what holds the copy
//! and what would unblock it, rather than open a pull request that fixes nothing.

use std::path::Path;

use super::describe::{holders, vulnerable_copies};
use super::prepare::Prepared;
use super::{Locked, STEP, js_override, parent_upgrade};
use crate::db::models::RemediationTarget;
use crate::ecosystem::Ecosystem;
use crate::lockfile::{FixedVersions, Verification};
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
    let context = parent_upgrade::Context {
        pipeline,
        root: &checkout.work_tree,
        target,
        fixes: &prepared.fixes,
        manifests: &prepared.manifests,
    };
    let no_parent_release = match parent_upgrade::find(&context).await {
        Some(found) => match found? {
            Ok(locked) => return Ok(locked),
            Err(why) => Some(why),
        },
        None => None,
    };
    let js = target.ecosystem == Ecosystem::Npm;
    if js && pipeline.lockfiles.overrides {
        return js_override::force(
            pipeline,
            checkout,
            target,
            &prepared.fixes,
            &prepared.manifests,
        )
        .await;
    }
    let next = match (js, no_parent_release) {
        (true, why) => Blocked::OverridesOff(why),
        (false, Some(why)) => Blocked::NoParentRelease(why),
        (false, None) => Blocked::NoUpgradePath,
    };
    Err(blocked(
        &checkout.work_tree,
        target,
        &prepared.fixes,
        verification,
        next,
    ))
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
    let package = &target.package_name;
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
            parent_upgrade::none_found(&target.ecosystem)
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
