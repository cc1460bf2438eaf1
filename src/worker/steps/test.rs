//! Step `test`: runs the project's own tests in the sandbox on the fixed tree and on the
//! default branch's tree (the baseline, kept per repository and commit), and compares them
//! (`crate::verify`). Both trees are written from `HEAD` into directories of their own beside
//! the clone, the branch's with the files the fix changed as the lock step left them: what
//! the install and the tests write (node_modules, a virtualenv, anything hostile test code
//! leaves) never reaches the clone the commit is made from.
//!
//! A test that passed on main and fails here makes the pull request a draft that names it and
//! quotes its output, or fails the job (`verify.on_regression`). No test command is said
//! plainly and blocks nothing. With an LLM configured, regressions first go to the repair
//! rounds (`crate::worker::repair`), for a package job and a grouped one alike: the pull
//! request is ready when they leave none, and the commit then carries the repair.

use std::path::{Path, PathBuf};
use std::time::Instant;

use super::GitLoad;
use super::clone::Checkout;
use crate::db::models::RemediationTarget;
use crate::lifecycle::Step;
use crate::llm::{
    ContextFile, RepairBrief, UpgradedPackage, VulnerabilityFacts, repair_conversation,
};
use crate::lockfile::{self, LockError};
use crate::patch::FileEdit;
use crate::verify::discover::{self, Discovery, TestPlan};
use crate::verify::report::{RunSummary, TestsReport};
use crate::verify::{CommandOverride, OnRegression, baseline, compare, repair_context, run};
use crate::worker::context::Pipeline;
use crate::worker::failure::StepFailure;
use crate::worker::proposed_patch::ProposedPatch;
use crate::worker::repair::{self, RepairJob};

/// Files that use the packages shown to the model, at most, and their characters in all.
const MAX_IMPORTERS: usize = 8;
const MAX_IMPORTER_CHARS: usize = 24_000;
/// Characters of the fixed releases' notes (shared by the packages of a grouped fix), and of
/// the change so far, shown to the model.
const MAX_NOTES_CHARS: usize = 6_000;
const MAX_CHANGE_CHARS: usize = 8_000;

const STEP: Step = Step::Test;

/// What the test step adds to the pull request and the output.
#[derive(Debug, Clone, Default)]
pub struct Tested {
    /// `None` when the step is turned off (`verify.enabled = false`).
    pub report: Option<TestsReport>,
    /// Why the pull request must be a draft: the regressed tests, or tests that could not run.
    pub draft_reason: Option<String>,
    /// Files the LLM's repair changed in the clone (only when it left no regression): the
    /// commit carries them beside the fix.
    pub repaired_files: Vec<String>,
}

/// What the repair rounds need to know about one package the fix moved; a test run is given
/// one per package (a grouped job's several, none: a regression drafts at once).
#[derive(Debug, Clone, Copy)]
pub struct FixFacts<'a> {
    pub facts: &'a VulnerabilityFacts,
    /// The version the fix moved the package to.
    pub fixed_version: &'a str,
    /// The patch's own edits (the lock files the tool wrote are named, not shown).
    pub edits: &'a [FileEdit],
}

/// What a repair round states about one package the fix moved: its advisory's facts, and the
/// version the patch moved it to (the plan's when the patch names none).
pub fn package_facts(
    target: &RemediationTarget,
    patch: &ProposedPatch,
) -> (VulnerabilityFacts, String) {
    let facts = crate::worker::patcher::facts(target, target.target_version());
    (facts, patch.version_for(target).unwrap_or_default())
}

/// Tests the fix: `changed` are the repository-relative files the patch and the lock step
/// changed, read from the clone's work tree; `catalog` is the project's test commands from
/// the import catalog (`RemediationTarget::test_commands`), the first choice of commands.
pub async fn run(
    pipeline: &Pipeline,
    checkout: &Checkout,
    catalog: Option<&CommandOverride>,
    changed: &[String],
    fix: &[FixFacts<'_>],
) -> Result<Tested, StepFailure> {
    if !pipeline.verify.enabled {
        return Ok(Tested::default());
    }
    let started = Instant::now();
    let scratch = checkout.git.scratch.path().to_path_buf();
    let (main_tree, branch_tree) = (scratch.join("test-main"), scratch.join("test-branch"));
    let trees = Trees {
        clone: checkout.work_tree.clone(),
        main: main_tree.clone(),
        branch: branch_tree.clone(),
        changed: changed.to_vec(),
    };
    let commit = checkout
        .git
        .run(STEP, GitLoad::FewObjects, move || trees.write())
        .await?;
    let found = find_plan(pipeline, catalog, &main_tree, project_dir(changed)).await;
    let tested = match found {
        Discovery::NotFound(reason) => {
            tracing::info!(%reason, "no test command");
            Ok(Tested {
                report: Some(TestsReport::no_tests(reason, elapsed_ms(started))),
                ..Tested::default()
            })
        }
        Discovery::Found(plan) => {
            let at = Where {
                repository: &checkout.git.repository,
                commit: &commit,
                main: &main_tree,
                branch: &branch_tree,
                clone: &checkout.work_tree,
                changed,
                fix,
            };
            test(pipeline, &plan, at, started).await
        }
    };
    // What the runs wrote can be large (node_modules): gone now, not with the scratch.
    let _ = tokio::task::spawn_blocking(move || {
        let _ = std::fs::remove_dir_all(&main_tree);
        let _ = std::fs::remove_dir_all(&branch_tree);
    })
    .await;
    tested
}

/// How the project in `dir` is tested, read from the default branch's tree at `main_tree`,
/// run by the package manager release the project asks for when the worker can have it.
async fn find_plan(
    pipeline: &Pipeline,
    catalog: Option<&CommandOverride>,
    main_tree: &Path,
    dir: &str,
) -> Discovery {
    // Off the async runtime: the files are read, and a convention may look its toolchain up
    // (rustup, once per worker).
    let (tree, project, catalog, verify, lockfiles) = (
        main_tree.to_path_buf(),
        dir.to_owned(),
        catalog.cloned(),
        pipeline.verify.clone(),
        pipeline.lockfiles.clone(),
    );
    let found = tokio::task::spawn_blocking(move || {
        discover::discover(&tree, &project, catalog.as_ref(), &verify, &lockfiles)
    })
    .await
    .unwrap_or_else(|e| Discovery::NotFound(format!("finding the test command failed: {e}")));
    let Discovery::Found(plan) = found else {
        return found;
    };
    // The pnpm the project asks for, as the lock step ran it; when it cannot be had, the
    // worker's own runs and its install says what went wrong.
    let release = crate::verify::conventions::js::with_requested_release(
        &pipeline.sandbox,
        &pipeline.lockfiles,
        plan.clone(),
        main_tree,
    );
    match release.await {
        Ok(plan) => Discovery::Found(plan),
        Err(error) => {
            tracing::warn!(%error, "the package manager the project asks for is not available for its tests");
            Discovery::Found(plan)
        }
    }
}

struct Where<'a> {
    repository: &'a str,
    commit: &'a str,
    main: &'a Path,
    branch: &'a Path,
    clone: &'a Path,
    changed: &'a [String],
    fix: &'a [FixFacts<'a>],
}

/// The default branch's run (from the baseline cache when this commit's is known) and the
/// fixed tree's run, and whether the first came from the cache.
struct Runs {
    main: run::TestRun,
    cached: bool,
    branch: run::TestRun,
}

async fn test(
    pipeline: &Pipeline,
    plan: &TestPlan,
    at: Where<'_>,
    started: Instant,
) -> Result<Tested, StepFailure> {
    let Runs {
        main,
        cached,
        branch,
    } = match run_both(pipeline, plan, &at).await {
        Ok(runs) => runs,
        Err(error) if error.is_transient() => {
            return Err(StepFailure::transient(STEP, error.to_string()));
        }
        // A tool missing on the worker, a sandbox that cannot run: nothing is known about the
        // tests, so the pull request does not claim they pass.
        Err(error) => {
            let reason = format!("the tests could not run: {error}");
            let report = TestsReport::not_run(plan, reason.clone(), elapsed_ms(started));
            return Ok(Tested {
                report: Some(report),
                draft_reason: Some(reason),
                ..Tested::default()
            });
        }
    };
    let command = plan.test.to_string();
    let comparison = compare::compare(&main, &branch, &command);
    let main_summary = RunSummary::of(&main, Some(at.commit.to_owned()), cached);
    let mut report = TestsReport::compared(
        plan,
        main_summary.clone(),
        RunSummary::of(&branch, None, false),
        comparison,
        elapsed_ms(started),
    );
    let mut repaired_files = Vec::new();
    if let Some(llm) = &pipeline.patcher.llm
        && !at.fix.is_empty()
        && report.regressed()
        && pipeline.verify.max_repair_rounds > 0
    {
        let conversation = brief(plan, &at, &report).await?;
        let job = RepairJob {
            llm,
            policy: &pipeline.patcher.policy,
            sandbox: &pipeline.sandbox,
            verify: &pipeline.verify,
            plan,
            clone: at.clone,
            branch_tree: at.branch,
            main: &main,
            conversation,
        };
        let outcome = repair::repair(job, &report.regressions).await?;
        apply_repair(&mut report, plan, main_summary, &outcome, started);
        repaired_files = outcome.repaired_files;
    }
    tracing::info!(
        outcome = ?report.outcome,
        regressions = report.regressions.len(),
        pre_existing = report.pre_existing_failures.len(),
        baseline_cached = cached,
        duration_ms = report.duration_ms,
        "tests compared"
    );
    verdict(pipeline, report, repaired_files)
}

/// Runs the tests on both trees; the default branch's run is remembered per repository and
/// commit, so the next fix in the same repository runs only its own tree.
async fn run_both<'a>(
    pipeline: &'a Pipeline,
    plan: &'a TestPlan,
    at: &Where<'a>,
) -> Result<Runs, LockError> {
    let on = |tree: &'a Path| {
        run::run(
            &pipeline.sandbox,
            &pipeline.lockfiles,
            &pipeline.verify,
            plan,
            tree,
        )
    };
    let (main, cached) = match baseline::cached(at.repository, at.commit, plan) {
        Some(main) => (main, true),
        None => {
            let main = on(at.main).await?;
            baseline::remember(at.repository, at.commit, plan, &main);
            (main, false)
        }
    };
    let branch = on(at.branch).await?;
    Ok(Runs {
        main,
        cached,
        branch,
    })
}

/// The report after the repair rounds: their last run replaces the first comparison, and a
/// repair that stopped early says why.
fn apply_repair(
    report: &mut TestsReport,
    plan: &TestPlan,
    main_summary: RunSummary,
    outcome: &repair::RepairOutcome,
    started: Instant,
) {
    if let Some((rerun, comparison)) = outcome.last.clone() {
        *report = TestsReport::compared(
            plan,
            main_summary,
            RunSummary::of(&rerun, None, false),
            comparison,
            elapsed_ms(started),
        );
    }
    if let Some(stopped) = &outcome.stopped {
        let note = report
            .note
            .take()
            .map(|n| format!("{n}; "))
            .unwrap_or_default();
        report.note = Some(format!("{note}the repair stopped: {stopped}"));
    }
    report.repaired = outcome.repaired();
    report.repair_rounds = outcome.rounds.clone();
    report.duration_ms = elapsed_ms(started);
}

/// What a comparison means for the pull request: ready when nothing regressed; otherwise a
/// draft naming the regressions, or a failed job (`verify.on_regression = "fail"`).
fn verdict(
    pipeline: &Pipeline,
    report: TestsReport,
    repaired_files: Vec<String>,
) -> Result<Tested, StepFailure> {
    if !report.regressed() {
        return Ok(Tested {
            report: Some(report),
            draft_reason: None,
            repaired_files,
        });
    }
    let rounds = match report.repair_rounds.len() {
        0 => String::new(),
        n => format!(" (still, after {n} LLM repair round(s))"),
    };
    let what = format!(
        "tests that pass on the default branch fail with this change: {}{rounds}",
        report.regressed_names()
    );
    if pipeline.verify.on_regression == OnRegression::Fail {
        let quoted: Vec<String> = report
            .regressions
            .iter()
            .map(|r| format!("{}: {}", r.name, first_lines(&r.output)))
            .collect();
        return Err(StepFailure::permanent(
            STEP,
            format!(
                "{what} ({}); verify.on_regression = \"draft\" opens a draft instead",
                quoted.join("; ")
            ),
        ));
    }
    Ok(Tested {
        report: Some(report),
        draft_reason: Some(what),
        repaired_files: Vec::new(),
    })
}

/// The first repair round's conversation: the failures, the files of the tested tree that
/// name any of the packages, the change so far and each fixed release's notes when it ships
/// them.
async fn brief(
    plan: &TestPlan,
    at: &Where<'_>,
    report: &TestsReport,
) -> Result<crate::llm::Conversation, StepFailure> {
    let (tree, dir) = (at.branch.to_path_buf(), plan.dir.clone());
    let crossed: Vec<(String, String, String)> = at
        .fix
        .iter()
        .map(|f| {
            let from = f.facts.installed_version.clone();
            (f.facts.package.clone(), from, f.fixed_version.to_owned())
        })
        .collect();
    // The notes' budget is shared: a grouped fix's prompt is no longer than a package's.
    let notes_chars = MAX_NOTES_CHARS / crossed.len().max(1);
    let (files, notes) = tokio::task::spawn_blocking(move || {
        let names: Vec<&str> = crossed.iter().map(|(p, _, _)| p.as_str()).collect();
        let files: Vec<ContextFile> =
            repair_context::importers(&tree, &dir, &names, MAX_IMPORTERS, MAX_IMPORTER_CHARS);
        let notes: Vec<Option<(String, String)>> = crossed
            .iter()
            .map(|(package, from, to)| {
                repair_context::release_notes(&tree, &dir, package, from, to, notes_chars)
            })
            .collect();
        (files, notes)
    })
    .await
    .map_err(|e| StepFailure::transient(STEP, format!("reading the tested tree: {e}")))?;
    let packages: Vec<UpgradedPackage<'_>> = at
        .fix
        .iter()
        .zip(&notes)
        .map(|(fix, notes)| UpgradedPackage {
            facts: fix.facts,
            fixed_version: fix.fixed_version,
            release_notes: notes.as_ref().map(|(p, n)| (p.as_str(), n.as_str())),
        })
        .collect();
    let edits: Vec<&FileEdit> = at.fix.iter().flat_map(|f| f.edits).collect();
    let change = change_so_far(&edits, at.changed);
    let failures = repair::failures(&report.regressions);
    Ok(repair_conversation(&RepairBrief {
        packages: &packages,
        failures: &failures,
        files: &files,
        change: &change,
    }))
}

/// The patches' edits as a diff, one per file from its content on the default branch to the
/// last package's (the packages of a grouped fix may edit one manifest in turn), and the
/// other files the fix changed (lock files) by name.
fn change_so_far(edits: &[&FileEdit], changed: &[String]) -> String {
    let mut out = String::new();
    let mut shown: Vec<&str> = Vec::new();
    for first in edits {
        if shown.contains(&first.path.as_str()) {
            continue;
        }
        shown.push(&first.path);
        let last = edits
            .iter()
            .rev()
            .find(|e| e.path == first.path)
            .unwrap_or(first);
        let before = first.original.as_deref().unwrap_or("");
        let room = MAX_CHANGE_CHARS.saturating_sub(out.len());
        out.push_str(&repair_context::diff(
            &first.path,
            before,
            &last.updated,
            room,
        ));
    }
    let others: Vec<&str> = changed
        .iter()
        .filter(|p| !shown.contains(&p.as_str()))
        .map(String::as_str)
        .collect();
    if !others.is_empty() {
        out.push_str(&format!(
            "(also updated by the ecosystem's tool: {})\n",
            others.join(", ")
        ));
    }
    out
}

/// The first lines of a failure's output, for an error message.
fn first_lines(output: &str) -> String {
    let lines: Vec<&str> = output.lines().take(3).collect();
    lines.join(" / ")
}

/// Where the project the fix changed lives: the directory of the first lock file or manifest
/// among `changed` (the root when none).
fn project_dir(changed: &[String]) -> &str {
    let tool_file = |path: &&String| {
        let name = path.rsplit('/').next().unwrap_or(path);
        lockfile::on_disk::is_tool_file(name)
    };
    changed
        .iter()
        .find(tool_file)
        .map_or("", |path| lockfile::parent_dir(path))
}

/// The two trees the tests run in, written from the clone.
struct Trees {
    clone: PathBuf,
    main: PathBuf,
    branch: PathBuf,
    changed: Vec<String>,
}

impl Trees {
    /// Writes main's tree twice and the changed files over the branch's; returns `HEAD`'s
    /// commit id.
    fn write(self) -> Result<String, crate::git::GitError> {
        let repo = crate::git::open_clone(&self.clone)?;
        for dir in [&self.main, &self.branch] {
            if dir.exists() {
                std::fs::remove_dir_all(dir).map_err(|e| {
                    crate::git::GitError::Transient(format!("removing {dir:?}: {e}"))
                })?;
            }
        }
        let commit = crate::git::write_head_tree_to(&repo, &self.main)?;
        crate::git::write_head_tree_to(&repo, &self.branch)?;
        for path in &self.changed {
            let text = lockfile::repo_file::read(&self.clone, path).map_err(|e| {
                crate::git::GitError::Transient(format!("reading the changed {path}: {e}"))
            })?;
            let dest = self.branch.join(path);
            let io = |e: std::io::Error| {
                crate::git::GitError::Transient(format!("writing {path} for the tests: {e}"))
            };
            if let Some(parent) = dest.parent() {
                std::fs::create_dir_all(parent).map_err(io)?;
            }
            std::fs::write(&dest, text).map_err(io)?;
        }
        Ok(commit.to_string())
    }
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}
