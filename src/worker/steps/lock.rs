//! Step `lock`: writes the patch into the clone, has the ecosystem's own tool update
//! the lock files that cover them (in the sandbox), and reads the result back to prove the
//! vulnerable version is gone. A vulnerable copy left, or a lock file that could not be
//! updated under `lockfiles.update = "best_effort"`, makes the pull request a draft that says
//! so (or fails the job, per `worker.require_verified_fix`).

use super::GitLoad;
use super::clone::Checkout;
use crate::config::VerifiedFix;
use crate::db::models::RemediationTarget;
use crate::ecosystem::Ecosystem;
use crate::lifecycle::Step;
use crate::lockfile::{self, Fixes, LockTarget, Verification};
use crate::patch::bump::ManifestKind;
use crate::pr_text::{Label, LabelledLine};
use crate::worker::failure::StepFailure;
use crate::worker::patcher::{FixStrategy, ProposedPatch};
use crate::worker::pipeline::Pipeline;

mod js_override;
mod linked;
mod parent_upgrade;

const STEP: Step = Step::Lock;

/// What the lock step adds to the commit and the pull request.
#[derive(Debug, Default)]
pub struct Locked {
    /// Lock files the tool changed: (repository-relative path, new content).
    pub changed: Vec<(String, String)>,
    /// `None` when the patch changed no manifest.
    pub verification: Option<Verification>,
    /// Why the pull request must be a draft.
    pub draft_reason: Option<String>,
    /// Set when the lock step changed how the fix works (an override), over the patch's own.
    pub strategy: Option<FixStrategy>,
    /// What the pull request says about that strategy (the chain of a parent upgrade), in
    /// place of the patch's explanation; empty when the patch's strategy stands.
    pub strategy_lines: Vec<LabelledLine>,
}

pub async fn run(
    pipeline: &Pipeline,
    checkout: &Checkout,
    target: &RemediationTarget,
    patch: &ProposedPatch,
) -> Result<Locked, StepFailure> {
    // The patch goes into the work tree here, once: the tool reads the edited manifest, and
    // the commit step commits the work tree as the patch and the tool left it.
    let files: Vec<(String, String)> = patch
        .edits
        .iter()
        .map(|e| (e.path.clone(), e.updated.clone()))
        .collect();
    let root = checkout.work_tree.clone();
    checkout
        .git
        .run(STEP, GitLoad::FewObjects, move || {
            let repo = crate::git::open_clone(&root)?;
            crate::git::write_files(&repo, &files)
        })
        .await?;
    // A lock committed as a symbolic link is never read through: fail, or a draft naming it.
    let edited: Vec<String> = patch.edits.iter().map(|e| e.path.clone()).collect();
    let scope = (!patch.is_lock_only()).then(|| linked::covering_dirs(&edited));
    if let Some(reason) = linked::check(pipeline, checkout, scope).await? {
        return Ok(Locked {
            draft_reason: Some(reason),
            ..Locked::default()
        });
    }
    let target_version = patch
        .target_version
        .clone()
        .or_else(|| target.target_version())
        .unwrap_or_else(|| target.installed_version.clone());
    // Copies in other release lines than the project's own need their line's fix.
    let fixes = Fixes::new(&target_version, &target.fixed_versions);
    // For a lock-only update: the locks that resolve the package, and how many vulnerable
    // copies they hold before the tool runs.
    let locked = match patch.is_lock_only() {
        true => lockfile::transitive::find(
            &checkout.work_tree,
            &target.ecosystem,
            &target.package_name,
            &fixes,
        ),
        false => Vec::new(),
    };
    let vulnerable_before = locked
        .iter()
        .flat_map(|l| &l.copies)
        .filter(|copy| copy.vulnerable)
        .count();
    let lock_paths: Vec<String> = locked.iter().map(|l| l.lock.clone()).collect();
    let manifests: Vec<String> = if patch.is_lock_only() {
        let mut beside: Vec<String> = locked.into_iter().map(|l| l.manifest).collect();
        beside.dedup();
        beside
    } else {
        patch
            .edits
            .iter()
            .filter(|edit| ManifestKind::detect(&edit.path).is_some())
            .map(|edit| edit.path.clone())
            .collect()
    };
    if manifests.is_empty() {
        return Ok(Locked::default());
    }
    // What a lock-only update starts from, to tell what else the tool moved.
    let before: Vec<(String, String)> = lock_paths
        .iter()
        .chain(
            patch
                .is_lock_only()
                .then_some(&manifests)
                .into_iter()
                .flatten(),
        )
        .filter_map(|path| {
            let text = crate::lockfile::repo_file::read(&checkout.work_tree, path).ok()?;
            Some((path.clone(), text))
        })
        .collect();
    let lock_target = LockTarget {
        ecosystem: &target.ecosystem,
        package: &target.package_name,
        fixes: &fixes,
        manifests: &manifests,
        lock_only: patch.is_lock_only(),
    };
    let outcome = lockfile::update(
        &pipeline.sandbox,
        &pipeline.lockfiles,
        &checkout.work_tree,
        &lock_target,
    )
    .await
    .map_err(|error| {
        if error.is_transient() {
            StepFailure::transient(STEP, error.to_string())
        } else if patch.is_lock_only() {
            // The tool refused to move the copy (cargo: no version matching a parent's
            // requirement): say who holds it.
            let held = holders(&checkout.work_tree, &lock_paths, &target.package_name);
            match held.is_empty() {
                true => StepFailure::permanent(STEP, error.to_string()),
                false => StepFailure::permanent(
                    STEP,
                    format!(
                        "{error}; {} {} is held by {}: upgrade it to a release whose \
                         requirement admits {target_version} first",
                        target.package_name,
                        target.installed_version,
                        held.join("; ")
                    ),
                ),
            }
        } else {
            StepFailure::permanent(STEP, error.to_string())
        }
    })?;
    // A lock-only update that left every vulnerable copy where it was fixed nothing: force the
    // fix with an override where the ecosystem has one and the operator allows it, else say
    // what blocks it rather than open a pull request.
    if patch.is_lock_only() && outcome.verification.vulnerable_left >= vulnerable_before {
        let context = parent_upgrade::Context {
            pipeline,
            root: &checkout.work_tree,
            target,
            fixes: &fixes,
            manifests: &manifests,
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
            return js_override::force(pipeline, checkout, target, &fixes, &manifests).await;
        }
        let next = match (js, no_parent_release) {
            (true, why) => Blocked::OverridesOff(why),
            (false, Some(why)) => Blocked::NoParentRelease(why),
            (false, None) => Blocked::NoUpgradePath,
        };
        return Err(blocked(
            &checkout.work_tree,
            target,
            &fixes,
            &outcome.verification,
            next,
        ));
    }
    let verification = outcome.verification;
    let left: Vec<String> = vulnerable_copies(&verification, &fixes)
        .into_iter()
        .map(|copy| format!("{} {copy}", target.package_name))
        .collect();
    let draft_reason = if !left.is_empty() {
        let what = format!(
            "the lock file still resolves a vulnerable copy: {} (fixed in {}; probably \
             required by another package)",
            left.join(", "),
            fixes.chosen()
        );
        if pipeline.require_verified_fix == VerifiedFix::Fail {
            return Err(StepFailure::permanent(
                STEP,
                format!("{what}; worker.require_verified_fix = \"draft\" opens a draft instead"),
            ));
        }
        Some(what)
    } else if !verification.not_updated.is_empty() {
        Some(format!(
            "lock files not updated: {}",
            verification.not_updated.join(", ")
        ))
    } else {
        None
    };
    let moved: Vec<String> = outcome
        .changed
        .iter()
        .flat_map(|(path, after)| {
            let before = before
                .iter()
                .find(|(p, _)| p == path)
                .map(|(_, t)| t.as_str());
            let name = path.rsplit('/').next().unwrap_or(path);
            let moved =
                before.map(|b| lockfile::moved::others_moved(name, b, after, &target.package_name));
            moved.unwrap_or_default()
        })
        .collect();
    // A tool that moved the package's dependents too (within the project's declared ranges)
    // upgraded parents: the job says which, not "the package and nothing else".
    let mut now_at: Vec<&str> = verification
        .resolved
        .iter()
        .map(|r| r.version.as_str())
        .collect();
    now_at.sort_by_key(|v| crate::patch::bump::Version::parse(v));
    now_at.dedup();
    let (strategy, strategy_lines) = match moved.is_empty() {
        true => (None, Vec::new()),
        false => (
            Some(FixStrategy::ParentUpgrade),
            vec![
                LabelledLine::new(
                    Label::Strategy,
                    format!(
                        "parent upgrade: {tool} moved {package} to {} and, to admit it, \
                         packages that depend on it too, within the ranges the project \
                         declares.",
                        now_at.join(" and "),
                        tool = verification.tool.as_deref().unwrap_or("the lock tool"),
                        package = target.package_name,
                    ),
                ),
                LabelledLine::new(Label::Moved, format!("{}.", moved.join("; "))),
            ],
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

/// `a/b/c.json` -> `a/b`, `a`, `` (the file's directory and every one above it).
fn parent_dir_chain(path: &str) -> Vec<String> {
    let mut dirs = Vec::new();
    let mut dir = lockfile::parent_dir(path);
    loop {
        dirs.push(dir.to_owned());
        if dir.is_empty() {
            return dirs;
        }
        dir = lockfile::parent_dir(dir);
    }
}

impl Locked {
    /// What the pull request says about the lock step.
    pub fn pr_facts(&self) -> crate::pr_text::LockFacts<'_> {
        crate::pr_text::LockFacts {
            verification: self.verification.as_ref(),
            strategy: &self.strategy_lines,
            draft_reason: self.draft_reason.as_deref(),
        }
    }
}

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

/// The job's error when no copy could be moved: which copies stay, which packages hold them
/// (read from the locks), and what would unblock the fix.
pub(super) fn blocked(
    root: &std::path::Path,
    target: &RemediationTarget,
    fixes: &Fixes,
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

/// Each vulnerable copy the verification found, `4.17.20 at node_modules/lodash`; a copy in
/// another release line than the chosen fix's says which fix it needs (`(needs 0.9.5)`).
fn vulnerable_copies(verification: &Verification, fixes: &Fixes) -> Vec<String> {
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
fn holders(root: &std::path::Path, locks: &[String], package: &str) -> Vec<String> {
    let mut held = Vec::new();
    for lock in locks {
        let name = lock.rsplit('/').next().unwrap_or(lock);
        if let Ok(text) = crate::lockfile::repo_file::read(root, lock) {
            let found = lockfile::blockers::dependents(name, &text, package);
            if !found.is_empty() {
                held.push(format!("{} (in {lock})", found.join(", ")));
            }
        }
    }
    held
}

/// Has the tools update the locks of `manifests` as for a direct change, after the lock step
/// itself edited them (a parent upgrade, an override).
async fn relock(
    pipeline: &Pipeline,
    root: &std::path::Path,
    target: &RemediationTarget,
    fixes: &Fixes,
    manifests: &[String],
) -> Result<lockfile::LockOutcome, StepFailure> {
    let lock_target = LockTarget {
        ecosystem: &target.ecosystem,
        package: &target.package_name,
        fixes,
        manifests,
        lock_only: false,
    };
    lockfile::update(&pipeline.sandbox, &pipeline.lockfiles, root, &lock_target)
        .await
        .map_err(failed)
}

/// A lock error as the step's failure, retried when a later attempt may succeed.
fn failed(error: lockfile::LockError) -> StepFailure {
    match error.is_transient() {
        true => StepFailure::transient(STEP, error.to_string()),
        false => StepFailure::permanent(STEP, error.to_string()),
    }
}
