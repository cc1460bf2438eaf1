//! After the tool ran: what the lock step tells the job and the pull request. A vulnerable
//! copy left fails the job or makes a draft (`worker.require_verified_fix`), a lock not
//! updated makes a draft, and a tool that moved the package's dependents too is said to have
//! upgraded parents, naming them.

use std::path::Path;

use super::prepare::Prepared;
use super::{Locked, STEP};
use crate::config::VerifiedFix;
use crate::db::models::RemediationTarget;
use crate::lockfile::upgrade_path::{Forced, Moved};
use crate::lockfile::{self, FixedVersions, LockOutcome, Verification};
use crate::pr_text::{Label, LabelledLine};
use crate::worker::failure::StepFailure;
use crate::worker::patcher::FixStrategy;

/// The lock step's result for an update that ran; see the module documentation.
pub(super) fn describe(
    require_verified_fix: VerifiedFix,
    target: &RemediationTarget,
    prepared: &Prepared,
    outcome: LockOutcome,
) -> Result<Locked, StepFailure> {
    let verification = outcome.verification;
    let draft_reason = draft_reason(require_verified_fix, target, &prepared.fixes, &verification)?;
    let moved = others_moved(prepared, &outcome.changed, &target.facts.package_name);
    let (strategy, strategy_lines) = match moved.is_empty() {
        true => (None, Vec::new()),
        false => (
            Some(FixStrategy::ParentUpgrade),
            parent_upgrade_lines(&verification, &target.facts.package_name, &moved),
        ),
    };
    Ok(Locked {
        changed: outcome.changed,
        verification: Some(verification),
        draft_reason,
        strategy,
        strategy_lines,
    })
}

/// The lock step's result for a parent upgrade that moved the copy: what changed, the locks
/// read back, and the PR's two lines (why a parent moved, and the chain).
pub(super) fn parent_upgrade(moved: Moved, package: &str) -> Locked {
    Locked {
        changed: moved.changed,
        verification: Some(moved.verification),
        draft_reason: None,
        strategy: Some(FixStrategy::ParentUpgrade),
        strategy_lines: vec![
            LabelledLine::new(
                Label::Strategy,
                format!(
                    "parent upgrade: no release of {package} that its dependents admit fixes \
                     it, so the dependency that holds it moves to its lowest release that \
                     admits the fix."
                ),
            ),
            LabelledLine::new(Label::Chain, format!("{}.", moved.chains.join("; "))),
        ],
    }
}

/// The lock step's result for an override that moved every copy: a draft naming who asked for
/// what, since the dependents were not tested with the fixed version.
pub(super) fn forced(forced: Forced, package: &str, target_version: &str) -> Locked {
    let entries = forced.entries.join(" and ");
    let strategy_lines = vec![LabelledLine::new(
        Label::Strategy,
        format!(
            "override: no release of the packages that depend on {package} admits a fixed \
             version, so {entries} pins {package} {target_version} for all of them."
        ),
    )];
    let reason = format!(
        "{entries} forces {package} {target_version} on every package that depends on it, \
         because their own ranges admit no fixed version ({}); they were not tested with it, \
         so review before merging (lockfiles.overrides = false turns overrides off)",
        if forced.dependents.is_empty() {
            "none named in the lock".to_owned()
        } else {
            forced.dependents.join("; ")
        }
    );
    Locked {
        changed: forced.changed,
        verification: Some(forced.verification),
        draft_reason: Some(reason),
        strategy: Some(FixStrategy::Override),
        strategy_lines,
    }
}

/// Why the pull request must be a draft, if it must; a vulnerable copy left fails the job
/// instead when the operator requires a verified fix.
fn draft_reason(
    require_verified_fix: VerifiedFix,
    target: &RemediationTarget,
    fixes: &FixedVersions,
    verification: &Verification,
) -> Result<Option<String>, StepFailure> {
    let left: Vec<String> = vulnerable_copies(verification, fixes)
        .into_iter()
        .map(|copy| format!("{} {copy}", target.facts.package_name))
        .collect();
    if !left.is_empty() {
        let what = format!(
            "the lock file still resolves a vulnerable copy: {} (fixed in {}; probably \
             required by another package)",
            left.join(", "),
            fixes.chosen()
        );
        if require_verified_fix == VerifiedFix::Fail {
            return Err(StepFailure::permanent(
                STEP,
                format!("{what}; worker.require_verified_fix = \"draft\" opens a draft instead"),
            ));
        }
        return Ok(Some(what));
    }
    Ok((!verification.not_updated.is_empty()).then(|| {
        format!(
            "lock files not updated: {}",
            verification.not_updated.join(", ")
        )
    }))
}

/// The other packages the tool moved in each changed lock, compared with the lock before.
fn others_moved(prepared: &Prepared, changed: &[(String, String)], package: &str) -> Vec<String> {
    changed
        .iter()
        .flat_map(|(path, after)| {
            let before = prepared
                .before
                .iter()
                .find(|(p, _)| p == path)
                .map(|(_, t)| t.as_str());
            let name = path.rsplit('/').next().unwrap_or(path);
            let moved = before.map(|b| lockfile::moved::others_moved(name, b, after, package));
            moved.unwrap_or_default()
        })
        .collect()
}

/// A tool that moved the package's dependents too (within the project's declared ranges)
/// upgraded parents: the job says which, not "the package and nothing else".
fn parent_upgrade_lines(
    verification: &Verification,
    package: &str,
    moved: &[String],
) -> Vec<LabelledLine> {
    let mut now_at: Vec<&str> = verification
        .resolved
        .iter()
        .map(|r| r.version.as_str())
        .collect();
    now_at.sort_by_key(|v| crate::patch::bump::Version::parse(v));
    now_at.dedup();
    vec![
        LabelledLine::new(
            Label::Strategy,
            format!(
                "parent upgrade: {tool} moved {package} to {} and, to admit it, packages that \
                 depend on it too, within the ranges the project declares.",
                now_at.join(" and "),
                tool = verification.tool.as_deref().unwrap_or("the lock tool"),
            ),
        ),
        LabelledLine::new(Label::Moved, format!("{}.", moved.join("; "))),
    ]
}

/// Each vulnerable copy the verification found, `4.17.20 at node_modules/lodash`; a copy in
/// another release line than the chosen fix's says which fix it needs (`(needs 0.9.5)`).
pub(super) fn vulnerable_copies(verification: &Verification, fixes: &FixedVersions) -> Vec<String> {
    verification
        .resolved
        .iter()
        .filter(|copy| copy.vulnerable)
        .map(|copy| match fixes.for_copy(&copy.version) {
            Some(fix) if fix != fixes.chosen() => {
                format!("{} at {} (needs {fix})", copy.version, copy.path)
            }
            _ => format!("{} at {}", copy.version, copy.path),
        })
        .collect()
}

/// The packages of each lock in `locks` that depend on `package`, per lock:
/// `parent 1.0.0 asks for ^1.0 (in Cargo.lock)`.
pub(super) fn holders(root: &Path, locks: &[String], package: &str) -> Vec<String> {
    let mut held = Vec::new();
    for lock in locks {
        let name = lock.rsplit('/').next().unwrap_or(lock);
        if let Ok(text) = lockfile::repo_file::read(root, lock) {
            let found = lockfile::blockers::dependents(name, &text, package);
            if !found.is_empty() {
                held.push(format!("{} (in {lock})", found.join(", ")));
            }
        }
    }
    held
}
