//! One test run of a tree: the install (the network reaches the registries only, through the
//! sandbox's egress proxy, with the worker's registry credentials added there) and then the
//! tests, with no network at all. Both in the sandbox: only the tree is writable, nothing of
//! the worker's environment is passed, install scripts may run (native modules need them).

use std::path::Path;
use std::time::Instant;

use super::VerifySettings;
use super::discover::{Command, Kind, TestPlan};
use super::download_cache::{self, CacheUse, DownloadCache};
use super::results::{self, TestCase};
use crate::lockfile::{self, LockError, LockfileSettings, repo_file};
use crate::sandbox::{Sandbox, ToolRun, ToolStatus, output};

const HINT: &str = "install the project's tools on the worker (see the README)";

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    /// The install failed: no test ran.
    InstallFailed(ToolStatus),
    /// The tests ran and ended so.
    Tests(ToolStatus),
}

/// What one run of a tree gave.
#[derive(Debug, Clone)]
pub struct TestRun {
    pub ended: Ended,
    /// The tests the runner named (none: compare by exit status).
    pub cases: Vec<TestCase>,
    /// The decisive part of the output of the stage that ended the run.
    pub output: String,
    pub duration_ms: u64,
    /// What the install took from and gave to the worker's download cache (`None`: not used).
    pub downloads: Option<CacheUse>,
}

impl TestRun {
    /// The tests ran and the command succeeded.
    pub fn passed(&self) -> bool {
        self.ended == Ended::Tests(ToolStatus::Exited(0))
    }

    pub fn count(&self, passed: bool) -> usize {
        self.cases.iter().filter(|c| c.passed == passed).count()
    }

    /// A run that may be kept as a baseline: not cut short by a limit (a slow registry).
    pub fn is_settled(&self) -> bool {
        !matches!(
            self.ended,
            Ended::InstallFailed(ToolStatus::TimedOut { .. })
                | Ended::InstallFailed(ToolStatus::KilledBySignal)
        )
    }
}

/// Installs and tests the project of `plan` in `tree` (a copy the run may change at will).
pub async fn run(
    sandbox: &Sandbox,
    lockfiles: &LockfileSettings,
    verify: &VerifySettings,
    plan: &TestPlan,
    tree: &Path,
) -> Result<TestRun, LockError> {
    let started = Instant::now();
    let quoted = sandbox.max_output_bytes();
    let env = environment(plan.kind);
    let mut downloads = None;
    if let Some(install) = &plan.install {
        let mut run = tool_run(install, tree, &plan.dir, &env, true);
        // uv resolving from a directory of distributions (an offline mirror) reads it.
        if plan.kind == Kind::Uv && !lockfiles.python_find_links.is_empty() {
            run.read_only
                .push(std::path::PathBuf::from(&lockfiles.python_find_links));
        }
        let cache = Downloads::prepare(sandbox, verify, plan, tree, &mut run);
        let limited = sandbox.with_limits(verify.install_timeout_secs, quoted);
        let ran = lockfile::run_with_credentials(&limited, lockfiles, &run, HINT).await;
        downloads = cache.and_then(Downloads::finish);
        let ran = ran?;
        if !ran.success() {
            return Ok(TestRun {
                ended: Ended::InstallFailed(ran.status),
                cases: Vec::new(),
                output: ran.output,
                duration_ms: elapsed_ms(started),
                downloads,
            });
        }
    }
    let mut tested = run_tests_since(sandbox, verify, plan, tree, started).await?;
    tested.downloads = downloads;
    Ok(tested)
}

/// The npm install's use of the worker's download cache: seeded before the install, taken
/// back after it (and before any test runs, so test code never sees the run's cache).
struct Downloads {
    cache: DownloadCache,
    lock_text: String,
    run_cache: std::path::PathBuf,
    used: CacheUse,
}

impl Downloads {
    /// Seeds the run's cache for an npm install when the worker keeps one, and points npm at
    /// it; `None` for other tools, or when the cache cannot be read (the install then
    /// downloads, as without a cache).
    fn prepare(
        sandbox: &Sandbox,
        verify: &VerifySettings,
        plan: &TestPlan,
        tree: &Path,
        run: &mut ToolRun,
    ) -> Option<Downloads> {
        if plan.kind != Kind::Npm {
            return None;
        }
        let cache = verify.download_cache()?;
        let lock_text = ["package-lock.json", "npm-shrinkwrap.json"]
            .iter()
            .find_map(|name| repo_file::read(tree, lockfile::join(&plan.dir, name)).ok())?;
        let run_cache = tree.join(download_cache::RUN_DIR);
        let used = cache
            .seed(&lock_text, &run_cache)
            .map_err(|e| tracing::warn!(error = %e, "the download cache could not be read"))
            .ok()?;
        let inside = sandbox.clone_path(tree, download_cache::RUN_DIR);
        run.env.retain(|(key, _)| key != "npm_config_cache");
        run.env.push(("npm_config_cache".to_owned(), inside));
        Some(Downloads {
            cache,
            lock_text,
            run_cache,
            used,
        })
    }

    /// Takes back what the install downloaded and removes the run's cache.
    fn finish(self) -> Option<CacheUse> {
        self.cache
            .harvest(&self.lock_text, &self.run_cache, self.used)
            .map_err(|e| tracing::warn!(error = %e, "the download cache could not be written"))
            .ok()
    }
}

/// Runs the tests again in a `tree` already installed by [`run`] (a repair changed source
/// files only: manifests and lock files are never edited by a patch).
pub async fn run_tests(
    sandbox: &Sandbox,
    verify: &VerifySettings,
    plan: &TestPlan,
    tree: &Path,
) -> Result<TestRun, LockError> {
    run_tests_since(sandbox, verify, plan, tree, Instant::now()).await
}

async fn run_tests_since(
    sandbox: &Sandbox,
    verify: &VerifySettings,
    plan: &TestPlan,
    tree: &Path,
    started: Instant,
) -> Result<TestRun, LockError> {
    let quoted = sandbox.max_output_bytes();
    let env = environment(plan.kind);
    let run = tool_run(&plan.test, tree, &plan.dir, &env, false);
    let limited = sandbox.with_limits(verify.test_timeout_secs, verify.max_output_bytes);
    let ran = limited.run(&run, HINT).await?;
    Ok(TestRun {
        ended: Ended::Tests(ran.status),
        cases: results::parse(&ran.output),
        output: output::decisive(&ran.output, &[], quoted),
        duration_ms: elapsed_ms(started),
        downloads: None,
    })
}

fn tool_run(
    command: &Command,
    tree: &Path,
    dir: &str,
    env: &[(&str, &str)],
    network: bool,
) -> ToolRun {
    let mut run = ToolRun::networked(&command.program, command.args.clone(), tree, dir, env);
    run.network = network;
    run.read_only.extend(command.read_only.iter().cloned());
    run
}

/// `plan` with its pnpm commands run by the pnpm the project asks for (its `packageManager`,
/// else the major its lock's `lockfileVersion` needs), as the lock step ran it, when the
/// worker's own pnpm is not that one.
pub async fn with_requested_release(
    sandbox: &Sandbox,
    lockfiles: &LockfileSettings,
    plan: TestPlan,
    tree: &Path,
) -> Result<TestPlan, LockError> {
    use crate::lockfile::package_manager;
    if plan.kind != Kind::Pnpm || plan.install.is_none() {
        return Ok(plan);
    }
    let lock = lockfile::join(&plan.dir, "pnpm-lock.yaml");
    let lock_text = crate::lockfile::repo_file::read(tree, &lock).unwrap_or_default();
    let wanted = package_manager::from_manifest(tree, &plan.dir, "pnpm")
        .or_else(|| package_manager::pnpm_major_for_lock(&lock_text, &lock));
    let Some(wanted) = wanted else {
        return Ok(plan);
    };
    let own = package_manager::worker_version(sandbox, &lockfiles.pnpm).await;
    if package_manager::satisfied_by(&wanted, own.as_deref()) {
        return Ok(plan);
    }
    let release = package_manager::provide(sandbox, lockfiles, &wanted).await?;
    Ok(TestPlan {
        install: plan.install.as_ref().map(|c| c.run_by(&release)),
        test: plan.test.run_by(&release),
        ..plan
    })
}

/// What every run of a kind gets: caches in the sandbox's fresh `/tmp`, no update checks, no
/// interactive prompts, no Python download.
fn environment(kind: Kind) -> Vec<(&'static str, &'static str)> {
    let mut env = vec![("CI", "true")];
    match kind {
        Kind::Npm | Kind::Pnpm | Kind::Yarn => env.extend([
            ("npm_config_cache", "/tmp/npm-cache"),
            ("npm_config_update_notifier", "false"),
            ("npm_config_fund", "false"),
            ("npm_config_audit", "false"),
            ("YARN_CACHE_FOLDER", "/tmp/yarn-cache"),
        ]),
        Kind::Uv => env.extend([
            ("UV_CACHE_DIR", "/tmp/uv-cache"),
            ("UV_PYTHON_DOWNLOADS", "never"),
            ("UV_NO_PROGRESS", "1"),
            // The cache lives in the run's /tmp and goes with it: copy, never link.
            ("UV_LINK_MODE", "copy"),
        ]),
        Kind::Poetry | Kind::Other => {}
    }
    env
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}
