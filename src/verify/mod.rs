//! Does the project still work with the fix? The project's own tests, run in the sandbox on the
//! fixed tree and on the default branch's tree (the baseline), compared test by test where the
//! runner names its tests, otherwise by exit status.
//!
//! - [`discover`]: which commands install the project and run its tests: the project's `test`
//!   in the import catalog, else a repository's `.remediator.toml`, else the fleet's
//!   `[verify.commands]`, else the convention of its ecosystem.
//! - [`conventions`]: the convention of each kind of project (npm, pnpm, yarn 1, uv, Poetry,
//!   Cargo, Go, requirements files), one file each, and the list of them.
//! - [`run`]: one install (registries only, through the egress proxy) and one test run (no
//!   network at all), in the sandbox, on a copy of a tree.
//! - [`results`]: the tests a run names and how each ended (node's test runner, pytest `-rA`,
//!   `cargo test`, `go test -v`), with each failure's decisive output.
//! - [`compare`]: main against the branch: regressions (passed on main, fail on the branch) and
//!   pre-existing failures (fail on both, and do not block).
//! - [`baseline`]: the default branch's run, kept per repository and commit.
//! - [`report`]: what the operation output (`output.tests`) and the pull request say.
//! - [`repair_context`]: what a repair round shows the model besides the failures (the files
//!   that use the package, the change so far, the fixed release's notes).
//!
//! What a regression does (a draft, or a failed job) is the worker's decision
//! (`worker::steps::test`); with an LLM configured, the repair rounds (`worker::repair`) run
//! between a [`compare::Comparison`] that names regressions and the next branch run.

pub mod baseline;
pub mod compare;
pub mod conventions;
pub mod discover;
pub mod download_cache;
pub mod repair_context;
pub mod report;
pub mod results;
pub mod run;

use std::collections::BTreeMap;

use serde::Deserialize;

/// `[verify]`: the test step.
#[derive(Debug, Clone, Deserialize)]
pub struct VerifySettings {
    /// Whether the test step runs at all.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// What a test that passed on main and fails on the branch does to the job.
    #[serde(default)]
    pub on_regression: OnRegression,
    /// Wall-clock limit of the install (`npm ci`, `uv sync`), in seconds.
    #[serde(default = "ten_minutes")]
    pub install_timeout_secs: u64,
    /// Wall-clock limit of the test run, in seconds.
    #[serde(default = "ten_minutes")]
    pub test_timeout_secs: u64,
    /// Output of a test run kept to name its tests (bytes; the report quotes far less).
    #[serde(default = "quarter_mib")]
    pub max_output_bytes: usize,
    /// Commands for every repository of a kind (`npm`, `pnpm`, `yarn`, `uv`, `poetry`, `cargo`,
    /// `go`, `pip`: a convention's name), over the convention; a repository's
    /// `.remediator.toml` and the project's `test` in the import catalog still win.
    #[serde(default)]
    pub commands: BTreeMap<String, CommandOverride>,
    /// Rounds in which the LLM (when one is configured) may repair what the fix broke.
    #[serde(default = "three")]
    pub max_repair_rounds: u32,
    /// Whether a patch (a repair above all) may edit test files and test configuration.
    #[serde(default)]
    pub allow_test_edits: bool,
    /// Whether npm, yarn and Poetry test installs reuse the files earlier installs
    /// downloaded ([`download_cache`]: kept by their hash, never shared with the sandbox).
    #[serde(default = "yes")]
    pub cache_downloads: bool,
    /// Where those files are kept; unset: `download-cache` in the worker's scratch
    /// directory.
    #[serde(default)]
    pub download_cache_dir: Option<std::path::PathBuf>,
}

impl VerifySettings {
    /// The shared download cache, when turned on.
    pub fn download_cache(&self) -> Option<download_cache::DownloadCache> {
        let root = self.download_cache_dir.clone()?;
        self.cache_downloads
            .then(|| download_cache::DownloadCache::new(root))
    }

    /// These settings with the download cache in `scratch_root` when no directory is set.
    pub fn with_default_cache_dir(mut self, scratch_root: &std::path::Path) -> Self {
        let unset = self
            .download_cache_dir
            .as_ref()
            .is_none_or(|dir| dir.as_os_str().is_empty());
        if unset {
            self.download_cache_dir = Some(scratch_root.join("download-cache"));
        }
        self
    }
}

impl Default for VerifySettings {
    fn default() -> Self {
        VerifySettings {
            enabled: true,
            on_regression: OnRegression::default(),
            install_timeout_secs: ten_minutes(),
            test_timeout_secs: ten_minutes(),
            max_output_bytes: quarter_mib(),
            commands: BTreeMap::new(),
            max_repair_rounds: three(),
            allow_test_edits: false,
            cache_downloads: true,
            download_cache_dir: None,
        }
    }
}

/// A test command given in configuration, in a repository's `.remediator.toml` or in the import
/// catalog: `install` (may be empty: nothing to install) and `command`, each split into words
/// as a shell would (quotes, backslashes; no expansion) by [`CommandOverride::commands`].
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
pub struct CommandOverride {
    #[serde(default)]
    pub install: String,
    pub command: String,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnRegression {
    /// A draft pull request that names the failing tests and quotes their output.
    #[default]
    Draft,
    /// The job fails, naming them; nothing is pushed.
    Fail,
}

fn yes() -> bool {
    true
}

fn three() -> u32 {
    3
}

fn ten_minutes() -> u64 {
    600
}

fn quarter_mib() -> usize {
    256 * 1024
}
