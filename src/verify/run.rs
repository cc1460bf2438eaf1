//! One test run of a tree: the install (the network reaches the registries only, through the
//! sandbox's egress proxy, with the worker's registry credentials added there) and then the
//! tests, with no network at all. Both in the sandbox: only the tree is writable, nothing of
//! the worker's environment is passed, install scripts may run (native modules need them).

use std::path::Path;
use std::time::Instant;

use super::VerifySettings;
use super::discover::{Command, TestPlan};
use super::download_cache::{self, CacheUse, DownloadCache, Layout};
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
    let cache = Downloads::prepare(sandbox, verify, plan, tree).await;
    let installed = install(sandbox, lockfiles, verify, plan, tree, cache.as_ref()).await;
    let downloads = match cache {
        Some(cache) => cache.finish().await,
        None => None,
    };
    if let Some(failed) = installed? {
        return Ok(TestRun {
            ended: Ended::InstallFailed(failed.status),
            cases: Vec::new(),
            output: failed.output,
            duration_ms: elapsed_ms(started),
            downloads,
        });
    }
    let mut tested = run_tests_since(sandbox, verify, plan, tree, started).await?;
    tested.downloads = downloads;
    Ok(tested)
}

/// Runs the plan's install commands in order: the run of the first that fails, if one does.
async fn install(
    sandbox: &Sandbox,
    lockfiles: &LockfileSettings,
    verify: &VerifySettings,
    plan: &TestPlan,
    tree: &Path,
    cache: Option<&Downloads>,
) -> Result<Option<crate::sandbox::ToolOutput>, LockError> {
    let quoted = sandbox.max_output_bytes();
    for install in &plan.install {
        let mut run = tool_run(sandbox, install, tree, plan, true);
        if let Some(cache) = cache {
            let variable = cache.layout.variable.0;
            run.env.retain(|(key, _)| key != variable);
            run.env.push((variable.to_owned(), cache.inside.clone()));
        }
        let limited = sandbox.with_limits(verify.install_timeout_secs, quoted);
        let ran = lockfile::run_with_credentials(&limited, lockfiles, &run, HINT).await?;
        if !ran.success() {
            return Ok(Some(ran));
        }
    }
    Ok(None)
}

/// The install's use of the worker's download cache: seeded before the install, taken back
/// after it (and before any test runs, so test code never sees the run's cache).
struct Downloads {
    cache: DownloadCache,
    layout: &'static Layout,
    lock_text: String,
    run_cache: std::path::PathBuf,
    /// Where the layout's variable points, as the install sees it.
    inside: String,
    used: CacheUse,
}

impl Downloads {
    /// Seeds the run's cache when the worker keeps one; `None` for a tool whose downloads are
    /// not cached, a lock that records no digest the cache can check, or when the cache cannot
    /// be read (the install then downloads, as without one). The copies are file work: off
    /// the async runtime.
    async fn prepare(
        sandbox: &Sandbox,
        verify: &VerifySettings,
        plan: &TestPlan,
        tree: &Path,
    ) -> Option<Downloads> {
        if plan.install.is_empty() {
            return None;
        }
        let cache = verify.download_cache()?;
        let (layout, lock_text) =
            download_cache::layouts_of(plan.convention).find_map(|layout| {
                let text = layout
                    .lock_files
                    .iter()
                    .find_map(|name| repo_file::read(tree, lockfile::join(&plan.dir, name)).ok())?;
                (!(layout.named)(&text).is_empty()).then_some((layout, text))
            })?;
        let run_cache = tree.join(download_cache::RUN_DIR);
        let (seeding, lock, into) = (cache.clone(), lock_text.clone(), run_cache.clone());
        let used = tokio::task::spawn_blocking(move || seeding.seed(layout, &lock, &into))
            .await
            .map_err(std::io::Error::other)
            .and_then(|seeded| seeded)
            .map_err(|e| tracing::warn!(error = %e, "the download cache could not be read"))
            .ok()?;
        let inside = match layout.variable.1 {
            "" => download_cache::RUN_DIR.to_owned(),
            dir => format!("{}/{dir}", download_cache::RUN_DIR),
        };
        Some(Downloads {
            cache,
            layout,
            lock_text,
            inside: sandbox.clone_path(tree, &inside),
            run_cache,
            used,
        })
    }

    /// Takes back what the install downloaded and removes the run's cache (hashing every
    /// download: off the async runtime).
    async fn finish(self) -> Option<CacheUse> {
        let Downloads {
            cache,
            layout,
            lock_text,
            run_cache,
            used,
            ..
        } = self;
        tokio::task::spawn_blocking(move || cache.harvest(layout, &lock_text, &run_cache, used))
            .await
            .map_err(std::io::Error::other)
            .and_then(|harvested| harvested)
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
    let run = tool_run(sandbox, &plan.test, tree, plan, false);
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

/// One command of `plan` in `tree`: the convention's environment and what its runs need of the
/// worker's, with the network (registries only) for an install.
fn tool_run(
    sandbox: &Sandbox,
    command: &Command,
    tree: &Path,
    plan: &TestPlan,
    network: bool,
) -> ToolRun {
    let sandboxing = &plan.sandboxing;
    let env = plan.convention.environment;
    let mut run = ToolRun::networked(&command.program, command.args.clone(), tree, &plan.dir, env);
    // Every runner's own word for "no terminal, no prompts".
    run.env.insert(0, ("CI".to_owned(), "true".to_owned()));
    run.network = network;
    run.env.extend(sandboxing.env.iter().cloned());
    run.read_only.extend(command.read_only.iter().cloned());
    run.read_only.extend(sandboxing.read_only.iter().cloned());
    run.files_at.extend(sandboxing.files_at.iter().cloned());
    for (key, dir) in plan.convention.kept {
        let inside = sandbox.clone_path(tree, &lockfile::join(&plan.dir, dir));
        run.env.push(((*key).to_owned(), inside));
    }
    run
}

fn elapsed_ms(started: Instant) -> u64 {
    u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX)
}
