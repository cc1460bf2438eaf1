//! What the test step reports: `output.tests` of the operation, and what the pull request's
//! "Tests" section is written from (`pr_text`).

use serde::Serialize;

use super::compare::{ComparedBy, Comparison, Regression};
use super::discover::TestPlan;
use super::download_cache::CacheUse;
use super::run::{Ended, TestRun};

/// How the test step ended, as `output.tests.outcome` spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TestOutcome {
    /// Nothing that passed on main fails on the branch.
    Passed,
    /// A test that passed on main fails on the branch.
    Regressed,
    /// No test command was found.
    NoTests,
    /// The tests could not run; `reason` says why.
    NotRun,
}

/// The test step's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TestsReport {
    pub outcome: TestOutcome,
    /// Why no test ran, for `no_tests` and `not_run`.
    pub reason: Option<String>,
    /// The test command, as run.
    pub command: Option<String>,
    /// The install before it, as run.
    pub install: Option<String>,
    /// Where the commands come from (`package.json scripts.test`, `.remediator.toml`,
    /// `import catalog`).
    pub source: Option<String>,
    /// Where they ran, relative to the repository's root.
    pub dir: Option<String>,
    pub main: Option<RunSummary>,
    pub branch: Option<RunSummary>,
    /// How the runs were compared.
    pub compared_by: Option<ComparedBy>,
    pub regressions: Vec<Regression>,
    pub pre_existing_failures: Vec<String>,
    pub note: Option<String>,
    /// The LLM's repair rounds after a regression, in order (none: no repair was tried).
    pub repair_rounds: Vec<RepairRound>,
    /// The LLM's repair left no regression: the commit carries its edits.
    pub repaired: bool,
    /// The whole step, baseline included.
    pub duration_ms: u64,
}

/// One repair round: what failed before it, what the model edited (or what the patch policy
/// refused), and what still failed after the tests ran again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RepairRound {
    pub round: u32,
    pub failing_before: Vec<String>,
    /// Files the round's accepted edits changed.
    pub edited: Vec<String>,
    /// Why the round's answer was refused (the patch policy, an unusable answer).
    pub refused: Vec<String>,
    pub failing_after: Vec<String>,
}

impl RepairRound {
    /// A round that changed nothing: the same tests fail after it as before.
    pub fn unchanged(round: u32, failing: Vec<String>) -> Self {
        Self {
            round,
            failing_before: failing.clone(),
            edited: Vec::new(),
            refused: Vec::new(),
            failing_after: failing,
        }
    }
}

/// One side of the comparison.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RunSummary {
    /// The commit tested (main's; the branch's tree is main's plus the fix).
    pub commit: Option<String>,
    /// `passed`, `failed (exit status 1)`, `install failed (exit status 1)`, `failed (timed
    /// out after 600 s)`.
    pub status: String,
    pub passed: usize,
    pub failed: usize,
    pub duration_ms: u64,
    /// Main's run came from an earlier job on the same commit.
    pub cached: bool,
    /// Tarballs the install took from the worker's download cache, and gave to it.
    pub downloads: Option<CacheUse>,
}

impl RunSummary {
    pub fn of(run: &TestRun, commit: Option<String>, cached: bool) -> Self {
        let status = match run.ended {
            Ended::Tests(_) if run.passed() => "passed".to_owned(),
            Ended::Tests(status) => format!("failed ({status})"),
            Ended::InstallFailed(status) => format!("install failed ({status})"),
        };
        RunSummary {
            commit,
            status,
            passed: run.count(true),
            failed: run.count(false),
            duration_ms: run.duration_ms,
            cached,
            downloads: run.downloads,
        }
    }
}

impl TestsReport {
    fn empty(outcome: TestOutcome, reason: String, duration_ms: u64) -> Self {
        TestsReport {
            outcome,
            reason: Some(reason),
            command: None,
            install: None,
            source: None,
            dir: None,
            main: None,
            branch: None,
            compared_by: None,
            regressions: Vec::new(),
            pre_existing_failures: Vec::new(),
            note: None,
            repair_rounds: Vec::new(),
            repaired: false,
            duration_ms,
        }
    }

    /// No test command was found: said plainly, not a failure.
    pub fn no_tests(reason: String, duration_ms: u64) -> Self {
        Self::empty(TestOutcome::NoTests, reason, duration_ms)
    }

    /// The tests could not run at all (a tool missing on the worker).
    pub fn not_run(plan: &TestPlan, reason: String, duration_ms: u64) -> Self {
        let mut report = Self::empty(TestOutcome::NotRun, reason, duration_ms);
        report.describe(plan);
        report
    }

    /// Both runs, compared.
    pub fn compared(
        plan: &TestPlan,
        main: RunSummary,
        branch: RunSummary,
        comparison: Comparison,
        duration_ms: u64,
    ) -> Self {
        let mut report = Self::empty(
            match comparison.regressed() {
                true => TestOutcome::Regressed,
                false => TestOutcome::Passed,
            },
            String::new(),
            duration_ms,
        );
        report.reason = None;
        report.describe(plan);
        report.main = Some(main);
        report.branch = Some(branch);
        report.compared_by = Some(comparison.by);
        report.regressions = comparison.regressions;
        report.pre_existing_failures = comparison.pre_existing_failures;
        report.note = comparison.note;
        report
    }

    fn describe(&mut self, plan: &TestPlan) {
        self.command = Some(plan.test.to_string());
        self.install = plan.install_text();
        self.source = Some(plan.source.clone());
        self.dir = Some(plan.dir.clone());
    }

    pub fn regressed(&self) -> bool {
        !self.regressions.is_empty()
    }

    /// The regressed tests' names, for a draft reason or an error.
    pub fn regressed_names(&self) -> String {
        let names: Vec<&str> = self.regressions.iter().map(|r| r.name.as_str()).collect();
        names.join(", ")
    }
}
