//! Lock files, through each ecosystem's own tool, run in the sandbox, and the proof that the
//! vulnerable version is gone: after the manifest edit, the lock file that covers each changed
//! manifest is updated by the tool (changing only what the fix needs), read back, and every
//! resolved version of the package listed.
//!
//! One module per tool: npm (`package-lock.json`, `npm-shrinkwrap.json`, lockfile v1-v3,
//! workspaces), pnpm (`pnpm-lock.yaml`), yarn (`yarn.lock`, classic and Berry), Cargo
//! (`Cargo.lock`, workspaces), Go (`go.mod` and `go.sum`, per module), uv (`uv.lock`), Poetry
//! (`poetry.lock`) and pip-tools (requirements files pip-compile wrote). A lock that cannot be
//! updated (a tool missing, a form not supported) fails the job, or with `lockfiles.update =
//! "best_effort"` makes a draft PR that says so: never a silently stale lock.

pub mod blockers;
pub mod cargo;
pub mod cargo_upgrade;
pub mod credentials;
pub mod fixed_versions;
pub mod go;
pub mod inventory;
pub mod moved;
pub mod npm;
pub mod npm_upgrade;
pub mod on_disk;
pub mod overrides;
pub mod package_manager;
pub mod pip_compile;
pub mod pnpm;
pub mod poetry;
pub mod python_upgrade;
pub mod redirects;
pub mod registries;
pub mod repo_file;
pub mod tool;
pub mod transitive;
pub mod upgrade_path;
pub mod uv;
pub mod yarn;

use std::path::Path;

use serde::{Deserialize, Serialize};

pub use fixed_versions::FixedVersions;

use crate::ecosystem::Ecosystem;
use crate::sandbox::{Sandbox, SandboxError};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LockUpdateMode {
    /// A lock file that cannot be updated fails the job.
    Required,
    /// A lock file that cannot be updated is left, and the pull request is a draft saying so.
    BestEffort,
}

#[derive(Debug, Clone, Deserialize)]
pub struct LockfileSettings {
    pub update: LockUpdateMode,
    /// The npm client (name on PATH or a path).
    pub npm: String,
    /// The npm registry; empty: the client's default.
    pub npm_registry: String,
    /// The go command (name on PATH or a path; its GOROOT is the directory above its `bin`).
    pub go: String,
    /// GOPROXY for `go get`; empty: Go's default.
    pub go_proxy: String,
    /// GOSUMDB; empty: Go's default.
    pub go_sumdb: String,
    /// The toolchain's cargo (`rustup which cargo`; rustup's proxy needs more than the sandbox
    /// gives it).
    pub cargo: String,
    /// A cargo config.toml placed in the run's fresh CARGO_HOME (registry mirrors, source
    /// replacement); none: crates.io.
    #[serde(default, deserialize_with = "crate::config::empty_path_is_none")]
    pub cargo_config: Option<std::path::PathBuf>,
    /// Local registry or vendor directories that config names, readable in the sandbox.
    #[serde(default)]
    pub cargo_registry_dirs: Vec<String>,
    /// The pnpm command (name on PATH or a path).
    pub pnpm: String,
    /// The yarn 1 (classic) command; a Berry project (yarn 2+) runs the release it commits.
    pub yarn: String,
    /// The uv command (name on PATH or a path).
    pub uv: String,
    /// The poetry command (name on PATH or a path).
    pub poetry: String,
    /// The pip-compile command (pip-tools).
    pub pip_compile: String,
    /// The package index uv and pip-compile resolve from; empty: their default. Poetry
    /// resolves from the sources the project declares.
    #[serde(alias = "uv_index")]
    pub python_index: String,
    /// A directory of distributions uv and pip-compile resolve from instead of any index (an
    /// offline mirror); empty: none.
    #[serde(alias = "uv_find_links")]
    pub python_find_links: String,
    /// Whether a transitive npm-ecosystem package its dependents pin below the fix may be forced
    /// to it with an npm or pnpm `overrides` or a yarn `resolutions` entry (a draft pull request
    /// that says so).
    #[serde(default = "enabled")]
    pub overrides: bool,
    /// Where releases of the package managers repositories ask for are kept (written by the
    /// worker only); none: a folder of the system's temporary directory.
    #[serde(default, deserialize_with = "crate::config::empty_path_is_none")]
    pub tool_cache: Option<std::path::PathBuf>,
    /// Tokens of private registries, given only to the tool runs (`credentials`).
    #[serde(default)]
    pub registry_credentials: Vec<credentials::RegistryCredential>,
}

fn enabled() -> bool {
    true
}

/// One resolved copy of the package in a lock file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Resolved {
    /// Where in the tree (`node_modules/a/node_modules/lodash`).
    pub path: String,
    pub version: String,
    pub vulnerable: bool,
}

/// What the lock step found after the change: the `verification` of the operation output.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Verification {
    /// The lock files read (none: the manifests were read instead).
    pub lock_files: Vec<String>,
    pub tool: Option<String>,
    pub resolved: Vec<Resolved>,
    pub vulnerable_left: usize,
    /// Lock files that are there but were not updated, and why.
    pub not_updated: Vec<String>,
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum LockError {
    #[error(transparent)]
    Sandbox(#[from] SandboxError),
    /// The tool ran and failed (its output trimmed, secrets cut).
    #[error("`{command}` failed ({status}) updating {lock_file}: {output}")]
    Tool {
        command: String,
        lock_file: String,
        status: crate::sandbox::ToolStatus,
        output: String,
    },
    #[error("{0}")]
    Unsupported(String),
    #[error("reading {path}: {message}")]
    Read { path: String, message: String },
    /// A registry credential cannot be read (what and where, never the value).
    #[error("{0}")]
    Credentials(String),
    /// The repository's own settings would send a tool somewhere the worker does not allow
    /// (`redirects`): no tool ran.
    #[error("{0}")]
    Refused(String),
    /// A file of the clone could not be written: an upgrade path's edit, or a file it put back.
    #[error("{writing} {path}: {message}")]
    Write {
        writing: Writing,
        path: String,
        message: String,
    },
    /// The override that would force the fix cannot be written (no lock beside the manifest,
    /// a section the maintainers keep).
    #[error("cannot force {package} {version} with an override: {why}")]
    CannotOverride {
        package: String,
        version: String,
        why: String,
    },
}

/// What a [`LockError::Write`] was doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Writing {
    /// Writing an edit (an override entry, a raised parent).
    Editing,
    /// Putting a file back as it was, when an upgrade path did not work out.
    Restoring,
}

impl std::fmt::Display for Writing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Writing::Editing => "writing",
            Writing::Restoring => "restoring",
        })
    }
}

impl LockError {
    /// The error of writing `path` (repository-relative).
    pub fn write(writing: Writing, path: &str, error: &std::io::Error) -> Self {
        LockError::Write {
            writing,
            path: path.to_owned(),
            message: error.to_string(),
        }
    }

    /// A tool that is not installed, or a lock file this worker cannot update: no retry helps,
    /// and `lockfiles.update = "best_effort"` turns it into a draft.
    fn needs_operator(&self) -> bool {
        matches!(
            self,
            LockError::Unsupported(_)
                | LockError::Refused(_)
                | LockError::Sandbox(SandboxError::ToolMissing { .. })
        )
    }

    /// Whether a later attempt may succeed (a registry blip, a tool timeout) or an operator
    /// must act first (tool or sandbox missing, unsupported lock file).
    pub fn is_transient(&self) -> bool {
        match self {
            LockError::Tool { status, .. } => {
                matches!(status, crate::sandbox::ToolStatus::TimedOut { .. })
            }
            LockError::Read { .. } | LockError::Write { .. } => true,
            LockError::Sandbox(SandboxError::Io { .. }) => true,
            LockError::Sandbox(_)
            | LockError::Unsupported(_)
            | LockError::Credentials(_)
            | LockError::Refused(_)
            | LockError::CannotOverride { .. } => false,
        }
    }
}

/// What one lock update produced.
#[derive(Debug, Clone, Default)]
pub struct LockOutcome {
    /// Lock files the tool changed: (repository-relative path, new content).
    pub changed: Vec<(String, String)>,
    pub verification: Verification,
}

/// The facts of the fix the lock step needs.
pub struct LockTarget<'a> {
    pub ecosystem: &'a Ecosystem,
    pub package: &'a str,
    /// The fixed versions: the one chosen for the bump, and the fix each resolved copy needs
    /// in its own release line.
    pub fixes: &'a FixedVersions,
    /// The manifests the patch changed (repository-relative); for a lock-only update, the
    /// manifests beside the locks that resolve the package.
    pub manifests: &'a [String],
    /// No manifest declares the package: move it in the lock alone, within the ranges its
    /// dependents declare.
    pub lock_only: bool,
}

/// Updates the lock files covering the changed manifests of the (already edited) work tree:
/// every tool of the ecosystem whose lock file covers one of them.
pub async fn update(
    sandbox: &Sandbox,
    settings: &LockfileSettings,
    work_tree: &Path,
    target: &LockTarget<'_>,
) -> Result<LockOutcome, LockError> {
    // Before any tool runs: the repository's own registry and proxy settings must name a
    // registry the worker allows.
    let mut allowed = sandbox.reach().named().to_vec();
    allowed.extend(redirects::client_defaults(sandbox, settings).await);
    let tree = work_tree.to_path_buf();
    let checked = tokio::task::spawn_blocking(move || redirects::check(&tree, &allowed))
        .await
        .map_err(|e| LockError::Read {
            path: ".".to_owned(),
            message: format!("checking the repository's tool settings: {e}"),
        })?;
    if let Err(error) = checked {
        return match settings.update {
            LockUpdateMode::BestEffort => Ok(LockOutcome {
                verification: Verification {
                    not_updated: vec![error.to_string()],
                    ..Verification::default()
                },
                ..LockOutcome::default()
            }),
            LockUpdateMode::Required => Err(error),
        };
    }
    let context = tool::LockContext {
        sandbox,
        settings,
        work_tree,
    };
    let mut parts = Vec::new();
    for tool in tool::tools(target.ecosystem) {
        parts.push((tool.update)(context, target).await);
    }
    let mut outcome = LockOutcome::default();
    for part in parts {
        match part {
            Ok(part) => outcome.absorb(part),
            // What an operator must fix (a tool not installed, a lock we cannot update)
            // becomes a draft that says so, when they asked for best effort.
            Err(error)
                if settings.update == LockUpdateMode::BestEffort && error.needs_operator() =>
            {
                outcome.verification.not_updated.push(error.to_string());
            }
            Err(error) => return Err(error),
        }
    }
    Ok(outcome)
}

/// Every `[[package]]` of a TOML lock (`Cargo.lock`, `uv.lock`) whose name `matches`.
pub fn toml_lock_copies(
    text: &str,
    lock: &str,
    fixes: &FixedVersions,
    matches: impl Fn(&str) -> bool,
) -> Vec<Resolved> {
    let mut found = Vec::new();
    let mut name: Option<String> = None;
    for line in text.lines().map(str::trim) {
        if line == "[[package]]" {
            name = None;
        } else if let Some(value) = line.strip_prefix("name = ") {
            name = Some(value.trim_matches('"').to_owned());
        } else if let Some(value) = line.strip_prefix("version = ")
            && name.as_deref().is_some_and(&matches)
        {
            let version = value.trim_matches('"').to_owned();
            found.push(Resolved {
                path: lock.to_owned(),
                vulnerable: fixes.is_vulnerable(&version),
                version,
            });
            name = None;
        }
    }
    found
}

/// The shape most tools share: for each lock file (one of `names`) covering the target's
/// `manifest`s, one tool run (`run_for(lock)`) in the lock's directory, then the lock read back
/// for every copy of the package (`copies(text, lock)`).
async fn update_each_lock(
    context: tool::LockContext<'_>,
    target: &LockTarget<'_>,
    (manifest, names): (&str, &[&str]),
    hint: &str,
    run_for: impl Fn(&str) -> crate::sandbox::ToolRun,
    copies: impl Fn(&str, &str) -> Result<Vec<Resolved>, LockError>,
) -> Result<LockOutcome, LockError> {
    let tool::LockContext {
        sandbox,
        settings,
        work_tree,
    } = context;
    let mut outcome = LockOutcome::default();
    for lock in covering_locks(work_tree, target, manifest, names) {
        let before = read(work_tree, &lock)?;
        run_tool(sandbox, settings, &run_for(&lock), hint, &lock).await?;
        record(
            work_tree,
            &lock,
            &before,
            |text| copies(text, &lock),
            &mut outcome,
        )?;
    }
    Ok(outcome)
}

/// The locks (one of `names`) covering the target's `manifest`s read back as they are, for a
/// tool run that could not move the package.
fn read_back(
    work_tree: &Path,
    target: &LockTarget<'_>,
    (manifest, names): (&str, &[&str]),
    copies: impl Fn(&str, &str) -> Result<Vec<Resolved>, LockError>,
) -> Result<LockOutcome, LockError> {
    let mut outcome = LockOutcome::default();
    for lock in covering_locks(work_tree, target, manifest, names) {
        let text = read(work_tree, &lock)?;
        record(work_tree, &lock, &text, |t| copies(t, &lock), &mut outcome)?;
    }
    Ok(outcome)
}

/// Runs one tool invocation in the sandbox, with the registry credentials when it reaches the
/// network; a failure is the job's error, naming the lock.
async fn run_tool(
    sandbox: &Sandbox,
    settings: &LockfileSettings,
    run: &crate::sandbox::ToolRun,
    hint: &str,
    lock_file: &str,
) -> Result<(), LockError> {
    let ran = run_with_credentials(sandbox, settings, run, hint).await?;
    if ran.success() {
        return Ok(());
    }
    let name = run.program.rsplit('/').next().unwrap_or(&run.program);
    Err(tool_failed(
        format!("{name} {}", run.args.join(" ")),
        lock_file,
        ran,
    ))
}

/// The run, whose requests to the configured private registries get their credentials in the
/// egress proxy when it reaches the network (the tool never sees a token).
pub async fn run_with_credentials(
    sandbox: &Sandbox,
    settings: &LockfileSettings,
    run: &crate::sandbox::ToolRun,
    hint: &str,
) -> Result<crate::sandbox::ToolOutput, LockError> {
    let auths = match run.network {
        true => credentials::read_all(&settings.registry_credentials)?,
        false => Vec::new(),
    };
    Ok(sandbox.run_with_credentials(run, hint, &auths).await?)
}

/// Reads a lock back after its tool ran: what it resolves, and its new content if it changed.
fn record(
    work_tree: &Path,
    lock: &str,
    before: &str,
    copies: impl Fn(&str) -> Result<Vec<Resolved>, LockError>,
    outcome: &mut LockOutcome,
) -> Result<(), LockError> {
    let after = read(work_tree, lock)?;
    outcome.verification.resolved.extend(copies(&after)?);
    outcome.verification.lock_files.push(lock.to_owned());
    if after != before {
        outcome.changed.push((lock.to_owned(), after));
    }
    Ok(())
}

impl LockOutcome {
    /// Adds what another tool of the ecosystem did (a repository with an npm and a pnpm lock).
    fn absorb(&mut self, other: LockOutcome) {
        let (mine, theirs) = (&mut self.verification, other.verification);
        self.changed.extend(other.changed);
        mine.lock_files.extend(theirs.lock_files);
        mine.resolved.extend(theirs.resolved);
        mine.vulnerable_left += theirs.vulnerable_left;
        mine.not_updated.extend(theirs.not_updated);
        mine.tool = match (mine.tool.take(), theirs.tool) {
            (Some(a), Some(b)) => Some(format!("{a}; {b}")),
            (a, b) => a.or(b),
        };
    }

    /// Names the tool (when any lock was read) and counts the vulnerable copies.
    fn finish(mut self, tool: &str) -> Self {
        let verification = &mut self.verification;
        if !verification.lock_files.is_empty() {
            verification.tool = Some(tool.to_owned());
        }
        verification.vulnerable_left = verification
            .resolved
            .iter()
            .filter(|r| r.vulnerable)
            .count();
        self
    }
}

/// The error of a tool run that failed, with what the egress proxy refused it (often why).
fn tool_failed(command: String, lock_file: &str, ran: crate::sandbox::ToolOutput) -> LockError {
    let mut output = ran.output;
    if !ran.refused.is_empty() {
        output.push_str(&format!(
            " [the sandbox's egress rules refused: {}]",
            ran.refused.join(", ")
        ));
    }
    LockError::Tool {
        command,
        lock_file: lock_file.to_owned(),
        status: ran.status,
        output,
    }
}

/// The distinct lock files (one of `names`) covering the target's manifests named `manifest`
/// (`Cargo.toml`; empty: any), sorted.
fn covering_locks(
    work_tree: &Path,
    target: &LockTarget<'_>,
    manifest: &str,
    names: &[&str],
) -> Vec<String> {
    let mut locks: Vec<String> = target
        .manifests
        .iter()
        .filter(|m| manifest.is_empty() || m.ends_with(manifest))
        .filter_map(|m| covering_lock(work_tree, parent_dir(m), names))
        .collect();
    locks.sort();
    locks.dedup();
    locks
}

/// The lock file (one of `names`) covering a manifest in `dir`: beside it, or in the nearest
/// directory above (a workspace root).
fn covering_lock(work_tree: &Path, dir: &str, names: &[&str]) -> Option<String> {
    let mut dir = dir.to_owned();
    loop {
        for name in names {
            let path = join(&dir, name);
            if repo_file::is_file(work_tree, &path) {
                return Some(path);
            }
        }
        if dir.is_empty() {
            return None;
        }
        dir = parent_dir(&dir).to_owned();
    }
}

fn read(work_tree: &Path, path: &str) -> Result<String, LockError> {
    repo_file::read(work_tree, path).map_err(|e| LockError::Read {
        path: path.to_owned(),
        message: e.to_string(),
    })
}

/// The directory of a repository-relative path ("" for the root).
pub fn parent_dir(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

/// `dir/file` (repository-relative; `file` alone for the root).
pub fn join(dir: &str, file: &str) -> String {
    if dir.is_empty() {
        file.to_owned()
    } else {
        format!("{dir}/{file}")
    }
}

/// The lock readers' tests, table-driven: one check for every reader.
#[cfg(test)]
pub(crate) mod reader_cases {
    use super::FixedVersions;
    use super::tool::ReadCopies;

    /// A lock's text, the package asked about, its one fixed version, and each copy the reader
    /// must find there, in order: (version, vulnerable).
    pub type Case = (
        &'static str,
        &'static str,
        &'static str,
        &'static [(&'static str, bool)],
    );

    /// Reads each case's text as the lock `lock` with `read`, and checks the copies found.
    pub fn check(read: ReadCopies, lock: &str, cases: &[Case]) {
        for (text, package, fix, expected) in cases {
            let found = read(text, lock, package, &FixedVersions::single(fix));
            let seen: Vec<(&str, bool)> = found
                .iter()
                .map(|copy| (copy.version.as_str(), copy.vulnerable))
                .collect();
            assert_eq!(seen, *expected, "{package} in {text}");
        }
    }
}
