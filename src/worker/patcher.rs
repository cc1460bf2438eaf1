//! Who writes the patch. `auto` bumps the version deterministically where the manifest
//! declares the package directly and asks the LLM otherwise; `bump` and `llm` force one way.
//! Either way the result is a list of file edits that passed the patch policy.

use crate::ecosystem::Ecosystem;
use std::path::{Path, PathBuf};

use super::failure::StepFailure;
use super::git_work::GitWork;
use super::llm_fix;
use super::manifests;
pub use super::proposed_patch::{FixStrategy, PatchAuthor, ProposedPatch, existing_entry};
use crate::config::PatcherChoice;
use crate::db::models::{RemediationTarget, Step};
use crate::llm::{LlmClient, VulnerabilityFacts};
use crate::patch::bump::{BumpOutcome, bump_manifest};
use crate::patch::{FileEdit, PatchPolicy};

pub struct Patcher {
    pub choice: PatcherChoice,
    pub llm: Option<LlmClient>,
    pub policy: PatchPolicy,
}

impl Patcher {
    /// Writes a fix for the checked-out repository at `root`; `git` runs its reads of the
    /// object database under the worker's memory budget.
    pub async fn write_fix(
        &self,
        root: &Path,
        git: &GitWork,
        target: &RemediationTarget,
    ) -> Result<ProposedPatch, StepFailure> {
        let target_version = target.target_version();
        let use_bump = matches!(self.choice, PatcherChoice::Bump | PatcherChoice::Auto);
        let mut bump_note = None;
        if use_bump {
            match &target_version {
                Some(version) => match bump(root, target, version).await? {
                    BumpResult::Patched(patch) => {
                        // A lock-only fix edits nothing: the tool writes the lock, in the lock
                        // step, and the policy's lock-file rule is about patches, not tools.
                        if !patch.is_lock_only() {
                            self.check(&patch.edits)?;
                        }
                        return Ok(patch);
                    }
                    BumpResult::CannotBump(reason) => bump_note = Some(reason),
                },
                None => {
                    bump_note = Some(format!(
                        "no fixed version above the installed {} is known (fixed versions: {})",
                        target.facts.installed_version,
                        list_or_none(&target.facts.fixed_versions)
                    ))
                }
            }
        }
        let llm = match (&self.llm, self.choice) {
            (Some(llm), PatcherChoice::Auto | PatcherChoice::Llm) => llm,
            (None, PatcherChoice::Llm) => {
                return Err(StepFailure::permanent(
                    Step::Generate,
                    "patcher is `llm` but no LLM is configured; set llm.base_url",
                ));
            }
            _ => {
                let reason = bump_note.unwrap_or_default();
                return Err(StepFailure::permanent(
                    Step::Generate,
                    format!(
                        "the deterministic bump cannot fix this: {reason}; configure an LLM \
                         (llm.base_url) to handle it"
                    ),
                ));
            }
        };
        let facts = facts(target, target_version.clone());
        llm_fix::generate(llm, &self.policy, root, git, &facts, target_version).await
    }

    /// The patch policy, enforced on every patch whoever wrote it.
    pub fn check(&self, edits: &[FileEdit]) -> Result<(), StepFailure> {
        self.policy
            .check(edits)
            .map_err(|violation| StepFailure::permanent(Step::Generate, violation.to_string()))
    }
}

pub fn facts(target: &RemediationTarget, target_version: Option<String>) -> VulnerabilityFacts {
    VulnerabilityFacts {
        id: target.facts.vulnerability_id.clone(),
        aliases: target.facts.aliases.clone(),
        severity: target.facts.severity.clone(),
        summary: target.facts.summary.clone(),
        package: target.facts.package_name.clone(),
        ecosystem: target.facts.ecosystem.clone(),
        installed_version: target.facts.installed_version.clone(),
        fixed_versions: target.facts.fixed_versions.clone(),
        target_version,
    }
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

enum BumpResult {
    Patched(ProposedPatch),
    /// Why the bump does not apply (the package is not a direct dependency, a range style we
    /// do not rewrite...), so `auto` can hand over to the LLM with the reason.
    CannotBump(String),
}

async fn bump(
    root: &Path,
    target: &RemediationTarget,
    version: &str,
) -> Result<BumpResult, StepFailure> {
    let root: PathBuf = root.to_path_buf();
    let package = target.facts.package_name.clone();
    let ecosystem = target.facts.ecosystem.clone();
    let fixes = crate::lockfile::FixedVersions::new(version, &target.facts.fixed_versions);
    tokio::task::spawn_blocking(move || bump_blocking(&root, &ecosystem, &package, &fixes))
        .await
        .map_err(|e| StepFailure::transient(Step::Generate, format!("bump task failed: {e}")))?
}

/// A manifest's content from the work tree. One committed as a symbolic link is never read
/// through it: no retry helps, so that failure is permanent.
fn read_manifest(root: &Path, path: &str) -> Result<String, StepFailure> {
    crate::lockfile::repo_file::read(root, path).map_err(|e| {
        let message = format!("reading {path}: {e}");
        match e.kind() {
            std::io::ErrorKind::InvalidInput => StepFailure::permanent(Step::Generate, message),
            _ => StepFailure::transient(Step::Generate, message),
        }
    })
}

fn bump_blocking(
    root: &Path,
    ecosystem: &Ecosystem,
    package: &str,
    fixes: &crate::lockfile::FixedVersions,
) -> Result<BumpResult, StepFailure> {
    let version = fixes.chosen();
    let found = manifests::find(root, ecosystem).map_err(|e| {
        StepFailure::transient(Step::Generate, format!("reading the work tree: {e}"))
    })?;
    if found.is_empty() {
        return Ok(BumpResult::CannotBump(format!(
            "no manifest of ecosystem {ecosystem} that the bump understands was found"
        )));
    }
    let repo =
        crate::git::open_clone(root).map_err(|e| StepFailure::from_git(Step::Generate, e))?;
    let mut edits = Vec::new();
    let mut notes = Vec::new();
    let mut from_versions = Vec::new();
    for (path, kind) in found {
        let content = read_manifest(root, &path)?;
        match bump_manifest(kind, &content, package, version) {
            Ok(BumpOutcome::Bumped {
                updated,
                from,
                to,
                widened,
            }) => {
                let existing = existing_entry(&repo, &path)?;
                from_versions.push(change_note(&path, &from, &to, widened, version));
                edits.push(FileEdit {
                    path,
                    existing,
                    original: Some(content),
                    updated,
                });
            }
            Ok(BumpOutcome::AlreadySatisfied { current }) => {
                notes.push(format!("{path} already requires {current}"));
            }
            Ok(BumpOutcome::NotDeclared) => {}
            Err(error) => notes.push(format!("{path}: {error}")),
        }
    }
    if edits.is_empty() && notes.is_empty() {
        let locked = crate::lockfile::transitive::find(root, ecosystem, package, fixes);
        if locked.iter().flat_map(|l| &l.copies).any(|c| c.vulnerable) {
            return Ok(BumpResult::Patched(lock_only_patch(
                package, fixes, &locked,
            )));
        }
    }
    if edits.is_empty() {
        let reason = if notes.is_empty() {
            format!("{package} is not a direct dependency in any {ecosystem} manifest")
        } else {
            notes.join("; ")
        };
        return Ok(BumpResult::CannotBump(reason));
    }
    Ok(BumpResult::Patched(ProposedPatch {
        edits,
        author: PatchAuthor::Bump,
        target_version: Some(version.to_owned()),
        explanation: format!(
            "Raises the declared version of {package} to {version}, the lowest release that \
             fixes the vulnerability ({}).",
            from_versions.join("; ")
        ),
    }))
}

/// The fix of a transitive package: nothing to edit, the lock step moves it.
fn lock_only_patch(
    package: &str,
    fixes: &crate::lockfile::FixedVersions,
    locked: &[crate::lockfile::transitive::LockedCopies],
) -> ProposedPatch {
    let copies: Vec<String> = locked
        .iter()
        .flat_map(|l| {
            l.copies
                .iter()
                .map(move |c| match fixes.for_copy(&c.version) {
                    Some(fix) => format!("{} in {} (needs {fix})", c.version, l.lock),
                    None => format!("{} in {} (not vulnerable)", c.version, l.lock),
                })
        })
        .collect();
    ProposedPatch {
        edits: Vec::new(),
        author: PatchAuthor::LockOnly,
        target_version: Some(fixes.chosen().to_owned()),
        explanation: format!(
            "{package} is declared by no manifest: it comes in through other packages \
             (resolved {}). Strategy: a lock-only update, which moves each vulnerable copy to \
             the fix of its own release line or the newest release its dependents' ranges \
             admit, and changes nothing else.",
            copies.join(", ")
        ),
    }
}

/// One manifest's part of a bump's explanation. A widened range is said so, because the
/// reviewer is accepting a new upper bound, not only a higher floor.
fn change_note(path: &str, from: &str, to: &str, widened: bool, version: &str) -> String {
    if widened {
        format!("{path}: widened the range {from} to {to} to admit {version}")
    } else {
        format!("{path}: {from} -> {to}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_widened_range_is_named_in_the_explanation() {
        assert_eq!(
            change_note("requirements.txt", ">=5.3,<5.4", ">=5.4,<5.5", true, "5.4"),
            "requirements.txt: widened the range >=5.3,<5.4 to >=5.4,<5.5 to admit 5.4"
        );
        assert_eq!(
            change_note("package.json", "^4.17.20", "^4.17.21", false, "4.17.21"),
            "package.json: ^4.17.20 -> ^4.17.21"
        );
    }
}
