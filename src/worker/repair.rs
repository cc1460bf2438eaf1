//! The repair rounds: after the fix broke tests that pass on the default branch, the LLM is
//! shown the failures, the files that use the package, the change so far and the fixed
//! release's notes, and asked for edits. Each answer becomes file edits that go through the
//! patch policy (which refuses tests, test configuration, manifests and lock files); a refused
//! answer is sent back with the reason. Accepted edits are applied to the tested tree and the
//! tests run again, up to `verify.max_repair_rounds`. Nothing reaches the clone (and so the
//! commit) unless no regression is left.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::failure::StepFailure;
use super::patcher::existing_entry;
use crate::lifecycle::Step;
use crate::llm::{Conversation, LlmClient, TestFailure, materialize, parse_answer, still_failing};
use crate::patch::{FileEdit, PatchPolicy};
use crate::sandbox::Sandbox;
use crate::verify::VerifySettings;
use crate::verify::compare::{self, Comparison, Regression};
use crate::verify::discover::TestPlan;
use crate::verify::report::RepairRound;
use crate::verify::run::{self, TestRun};

const STEP: Step = Step::Test;

/// Directories of installed packages: never a repair's to write.
const INSTALLED: &[&str] = &["node_modules", ".venv", "site-packages"];

/// What the rounds work with.
pub struct RepairJob<'a> {
    pub llm: &'a LlmClient,
    pub policy: &'a PatchPolicy,
    pub sandbox: &'a Sandbox,
    pub verify: &'a VerifySettings,
    pub plan: &'a TestPlan,
    /// The clone's work tree: originals are read from it (then `HEAD`), and a successful
    /// repair is written to it for the commit.
    pub clone: &'a Path,
    /// The tested tree, installed: edits are applied here and the tests rerun.
    pub branch_tree: &'a Path,
    pub main: &'a TestRun,
    /// The first round's conversation (`crate::llm::repair_conversation`).
    pub conversation: Conversation,
}

/// How the rounds ended.
#[derive(Debug, Default)]
pub struct RepairOutcome {
    pub rounds: Vec<RepairRound>,
    /// The last branch run after accepted edits, compared with main's.
    pub last: Option<(TestRun, Comparison)>,
    /// No regression is left: the repaired files (written to the clone).
    pub repaired_files: Vec<String>,
    /// Why the rounds stopped before their number (the model or the tests could not run).
    pub stopped: Option<String>,
}

impl RepairOutcome {
    pub fn repaired(&self) -> bool {
        !self.repaired_files.is_empty()
    }
}

/// Runs up to `verify.max_repair_rounds` rounds on `regressions`.
pub async fn repair(
    job: RepairJob<'_>,
    regressions: &[Regression],
) -> Result<RepairOutcome, StepFailure> {
    let RepairJob {
        llm,
        policy,
        sandbox,
        verify,
        plan,
        clone,
        branch_tree,
        main,
        mut conversation,
    } = job;
    let command = plan.test.to_string();
    let budget = llm.job_budget();
    let mut failing: Vec<Regression> = regressions.to_vec();
    // The repaired content of each file edited so far.
    let mut current: BTreeMap<String, String> = BTreeMap::new();
    let mut outcome = RepairOutcome::default();
    for round in 1..=verify.max_repair_rounds {
        let before = names(&failing);
        let completion = match super::retry::ask_model(llm, &conversation, &budget).await {
            Ok(completion) => completion,
            Err(error) => {
                tracing::warn!(round, error = %error, "repair call failed; no more rounds");
                outcome.stopped = Some(format!("the model could not be asked: {error}"));
                break;
            }
        };
        let built = build(clone, policy, &current, &completion.content).await?;
        let edits = match built {
            Ok(edits) => edits,
            Err(problem) => {
                tracing::info!(round, %problem, "repair answer refused; sent back");
                outcome.rounds.push(RepairRound {
                    refused: vec![problem.clone()],
                    ..RepairRound::unchanged(round, before)
                });
                conversation.add_repair(&completion.content, &problem);
                continue;
            }
        };
        let edited: Vec<String> = edits.iter().map(|e| e.path.clone()).collect();
        apply(branch_tree, &edits).await?;
        for edit in edits {
            current.insert(edit.path, edit.updated);
        }
        let rerun = match rerun(sandbox, verify, plan, branch_tree).await? {
            Ok(rerun) => rerun,
            Err(stopped) => {
                outcome.stopped = Some(stopped);
                break;
            }
        };
        let comparison = compare::compare(main, &rerun, &command);
        failing = comparison.regressions.clone();
        tracing::info!(
            round,
            edited = edited.len(),
            still_failing = failing.len(),
            "repair round ran the tests again"
        );
        outcome.rounds.push(RepairRound {
            round,
            failing_before: before,
            edited,
            refused: Vec::new(),
            failing_after: names(&failing),
        });
        outcome.last = Some((rerun, comparison));
        if failing.is_empty() {
            outcome.repaired_files = write_clone(clone, &current).await?;
            break;
        }
        conversation.add_turn(&completion.content, still_failing(&failures(&failing)));
    }
    Ok(outcome)
}

/// The tests again on the edited tree. The inner error says why the rounds stop (the tests
/// could not run); a transient failure fails the step, to be retried.
async fn rerun(
    sandbox: &Sandbox,
    verify: &VerifySettings,
    plan: &TestPlan,
    branch_tree: &Path,
) -> Result<Result<TestRun, String>, StepFailure> {
    match run::run_tests(sandbox, verify, plan, branch_tree).await {
        Ok(rerun) => Ok(Ok(rerun)),
        Err(error) if error.is_transient() => Err(StepFailure::transient(STEP, error.to_string())),
        Err(error) => Ok(Err(format!("the tests could not run again: {error}"))),
    }
}

/// The regressions as the prompt shows them.
pub fn failures(regressions: &[Regression]) -> Vec<TestFailure> {
    regressions
        .iter()
        .map(|r| TestFailure {
            name: r.name.clone(),
            output: r.output.clone(),
        })
        .collect()
}

fn names(regressions: &[Regression]) -> Vec<String> {
    regressions.iter().map(|r| r.name.clone()).collect()
}

/// Parses an answer into edits checked by the policy, against the files as the earlier rounds
/// left them. The inner error is sent back to the model; the outer one is ours.
async fn build(
    clone: &Path,
    policy: &PatchPolicy,
    current: &BTreeMap<String, String>,
    raw: &str,
) -> Result<Result<Vec<FileEdit>, String>, StepFailure> {
    let answer = match parse_answer(raw) {
        Ok(answer) => answer,
        Err(problem) => return Ok(Err(problem)),
    };
    let (clone, policy, current) = (clone.to_path_buf(), policy.clone(), current.clone());
    tokio::task::spawn_blocking(move || {
        let repo = crate::git::open_clone(&clone).map_err(|e| StepFailure::from_git(STEP, e))?;
        let read = |path: &str| {
            current
                .get(path)
                .cloned()
                .or_else(|| crate::git::read_file(&repo, path).ok().flatten())
        };
        let changed = match materialize(&answer.edits, read) {
            Ok(changed) => changed,
            Err(problem) => return Ok(Err(problem)),
        };
        let mut edits = Vec::with_capacity(changed.len());
        for (path, original, updated) in changed {
            if let Some(refusal) = repair_refusal(&path) {
                return Ok(Err(refusal));
            }
            let existing =
                existing_entry(&repo, &path).map_err(|f| StepFailure { step: STEP, ..f })?;
            edits.push(FileEdit {
                path,
                existing,
                original,
                updated,
            });
        }
        Ok(match policy.check(&edits) {
            Ok(()) => Ok(edits),
            Err(violation) => Err(violation.to_string()),
        })
    })
    .await
    .map_err(|e| StepFailure::transient(STEP, format!("repair task failed: {e}")))?
}

/// What a repair may not edit beyond the patch policy: installed packages, and the files the
/// install reads (manifests, lock files, package-manager settings), since the tests are run
/// again without installing.
fn repair_refusal(path: &str) -> Option<String> {
    if let Some(dir) = path.split('/').find(|c| INSTALLED.contains(c)) {
        return Some(format!(
            "patch policy violation (installed_package) in {}: files under {dir}/ are installed \
             packages, not the project's code",
            path.escape_debug()
        ));
    }
    let name = path.rsplit('/').next().unwrap_or(path);
    crate::lockfile::on_disk::is_tool_file(name).then(|| {
        format!(
            "patch policy violation (manifest) in {}: a repair changes the project's code, \
             never its manifests, lock files or package-manager settings (the fix already \
             chose the version)",
            path.escape_debug()
        )
    })
}

/// Writes accepted edits into the tested tree, never through a link.
async fn apply(tree: &Path, edits: &[FileEdit]) -> Result<(), StepFailure> {
    let tree = tree.to_path_buf();
    let files: Vec<(String, String)> = edits
        .iter()
        .map(|e| (e.path.clone(), e.updated.clone()))
        .collect();
    tokio::task::spawn_blocking(move || {
        for (path, text) in files {
            write_no_links(&tree, &path, &text).map_err(|e| {
                StepFailure::transient(STEP, format!("writing {path} for the tests: {e}"))
            })?;
        }
        Ok(())
    })
    .await
    .map_err(|e| StepFailure::transient(STEP, format!("repair task failed: {e}")))?
}

fn write_no_links(tree: &Path, path: &str, text: &str) -> std::io::Result<()> {
    let mut at = PathBuf::from(tree);
    for part in path.split('/') {
        at.push(part);
        if std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "the path passes through a symbolic link",
            ));
        }
    }
    if let Some(parent) = at.parent() {
        std::fs::create_dir_all(parent)?;
    }
    std::fs::write(&at, text)
}

/// Writes the repaired files into the clone's work tree, for the commit.
async fn write_clone(
    clone: &Path,
    current: &BTreeMap<String, String>,
) -> Result<Vec<String>, StepFailure> {
    let clone = clone.to_path_buf();
    let files: Vec<(String, String)> = current
        .iter()
        .map(|(p, t)| (p.clone(), t.clone()))
        .collect();
    tokio::task::spawn_blocking(move || {
        let repo = crate::git::open_clone(&clone).map_err(|e| StepFailure::from_git(STEP, e))?;
        crate::git::write_files(&repo, &files).map_err(|e| StepFailure::from_git(STEP, e))?;
        Ok(files.into_iter().map(|(p, _)| p).collect())
    })
    .await
    .map_err(|e| StepFailure::transient(STEP, format!("repair task failed: {e}")))?
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repair_never_edits_installed_packages_manifests_or_locks() {
        for path in [
            "node_modules/textfmt/index.js",
            ".venv/lib/python3.12/site-packages/pyfmt/__init__.py",
            "package.json",
            "web/package-lock.json",
            "pyproject.toml",
            "uv.lock",
            ".npmrc",
        ] {
            assert!(repair_refusal(path).is_some(), "{path}");
        }
        assert_eq!(repair_refusal("src/invoice.js"), None);
        assert!(
            repair_refusal("package.json")
                .unwrap()
                .contains("(manifest) in package.json")
        );
    }
}
