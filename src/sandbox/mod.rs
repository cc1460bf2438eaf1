//! Where package managers run. They run code from the repository and from registries (npm
//! lifecycle scripts, a repository's cargo config naming a `rustc`, sdist builds), so every run
//! goes through here: with bubblewrap, a read-only view of the system's `/usr` and a few
//! files of `/etc`, the job's work tree as the only writable place besides a fresh `/tmp`
//! (which holds HOME and the tool's cache), new user, PID, IPC, UTS, cgroup and network
//! namespaces, an environment made only of what the caller passes (nothing of the worker's: no
//! forge token, LLM key, database or broker URL), and limits on CPU time, address space,
//! wall-clock time and output. A run that needs a registry reaches the network only through
//! the worker's egress proxy (`egress_proxy`), under the egress policy. Mode `none` runs the
//! tool without isolation and is only for an operator who asked for it.

pub mod egress_proxy;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::AsyncReadExt;

use self::egress_proxy::EgressProxy;
use crate::egress::EgressPolicy;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SandboxMode {
    Bubblewrap,
    /// No isolation: the tool sees the worker's filesystem (not its environment).
    None,
}

#[derive(Debug, Clone, Deserialize)]
pub struct SandboxSettings {
    pub mode: SandboxMode,
    /// The bubblewrap executable (Debian package `bubblewrap`).
    pub bwrap: String,
    pub timeout_secs: u64,
    pub cpu_secs: u64,
    pub memory_mb: u64,
    pub max_output_bytes: usize,
    /// Hosts a tool may reach through the egress proxy; empty: any host the egress policy
    /// allows.
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
}

/// The tool's HOME inside the sandbox (in its fresh `/tmp`).
pub const HOME: &str = "/tmp/home";

/// Where the clone is mounted inside the sandbox. A host directory bound into the sandbox
/// (a tool's install) must not lie under it, or the clone would hide it: such a run is
/// refused with what to do (`Sandbox::bubblewrap`). Not `/work`, where checkouts and
/// tool installs often live.
pub const CLONE: &str = "/sandbox/clone";

/// One tool run.
#[derive(Debug, Clone)]
pub struct ToolRun {
    /// The tool's name on PATH, or a path.
    pub program: String,
    pub args: Vec<String>,
    /// The job's clone: the one writable directory, seen as [`CLONE`] inside the sandbox.
    pub work_tree: PathBuf,
    /// Where the tool runs, relative to the work tree ("" for its root).
    pub dir: String,
    /// The whole environment of the tool besides HOME, PATH and TMPDIR.
    pub env: Vec<(String, String)>,
    /// Whether the tool may reach the network (a registry).
    pub network: bool,
    /// Values cut from the output (registry tokens the run was given).
    pub secrets: Vec<String>,
    /// More paths the tool may read (a toolchain's root, a local module proxy), bound
    /// read-only where they are.
    pub read_only: Vec<PathBuf>,
    /// Files of the worker's the tool reads at a path of its own under `/tmp` (a registry
    /// configuration placed in a fresh CARGO_HOME), bound read-only: (host file, path inside).
    pub files_at: Vec<(PathBuf, String)>,
}

impl ToolRun {
    /// A run in `dir` of the clone that reaches the registries (through the egress proxy), with
    /// `env` and nothing else of the worker's.
    pub fn networked(
        program: impl Into<String>,
        args: Vec<String>,
        work_tree: &Path,
        dir: &str,
        env: &[(&str, &str)],
    ) -> Self {
        ToolRun {
            program: program.into(),
            args,
            work_tree: work_tree.to_path_buf(),
            dir: dir.to_owned(),
            env: env
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
            network: true,
            secrets: Vec::new(),
            read_only: Vec::new(),
            files_at: Vec::new(),
        }
    }
}

/// How a tool run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ToolStatus {
    Exited(i32),
    KilledBySignal,
    /// Stopped at `sandbox.timeout_secs`.
    TimedOut {
        secs: u64,
    },
}

impl std::fmt::Display for ToolStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ToolStatus::Exited(code) => write!(f, "exit status {code}"),
            ToolStatus::KilledBySignal => f.write_str("killed by a signal"),
            ToolStatus::TimedOut { secs } => write!(f, "timed out after {secs} s"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ToolOutput {
    pub status: ToolStatus,
    /// stdout then stderr, trimmed to `max_output_bytes`, secrets cut.
    pub output: String,
    /// Connections the egress proxy refused: `host:port (why)`.
    pub refused: Vec<String>,
}

impl ToolOutput {
    pub fn success(&self) -> bool {
        self.status == ToolStatus::Exited(0)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SandboxError {
    /// The sandbox cannot run here (bubblewrap missing or refused): an operator must act.
    #[error("the sandbox is not available: {0}")]
    Unavailable(String),
    #[error("{tool} is not installed on this worker ({hint})")]
    ToolMissing { tool: String, hint: String },
    #[error("running {tool} failed: {message}")]
    Io { tool: String, message: String },
}

/// Where a tool is, and what installs it, for the error a job reports.
pub fn find_tool(program: &str, hint: &str) -> Result<PathBuf, SandboxError> {
    let missing = || SandboxError::ToolMissing {
        tool: program.to_owned(),
        hint: hint.to_owned(),
    };
    if program.contains('/') {
        let path = PathBuf::from(program);
        return path.is_file().then_some(path).ok_or_else(missing);
    }
    let path = std::env::var_os("PATH").ok_or_else(missing)?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .ok_or_else(missing)
}

/// Read-only system paths the tools need; each is bound only if it exists.
const SYSTEM_PATHS: &[&str] = &[
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib64",
    "/etc/alternatives",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/resolv.conf",
    "/etc/hosts",
    "/etc/nsswitch.conf",
    "/etc/localtime",
    "/etc/passwd",
    "/etc/group",
];

#[derive(Debug, Clone)]
pub struct Sandbox {
    settings: SandboxSettings,
    egress: EgressPolicy,
}

impl Sandbox {
    pub fn new(settings: SandboxSettings, egress: EgressPolicy) -> Self {
        Sandbox { settings, egress }
    }

    /// Checks, once at worker start, that runs can be isolated as configured.
    pub fn check(&self) -> Result<(), SandboxError> {
        if self.settings.mode == SandboxMode::None {
            return Ok(());
        }
        find_tool(&self.settings.bwrap, "apt-get install bubblewrap").map_err(|_| {
            SandboxError::Unavailable(format!(
                "{} (bubblewrap) is not installed; install it (apt-get install bubblewrap), \
                 or set [sandbox] mode = \"none\" to run package managers without isolation",
                self.settings.bwrap
            ))
        })?;
        if !Path::new(egress_proxy::PYTHON).is_file() {
            return Err(SandboxError::Unavailable(format!(
                "{} is missing: it runs the sandbox's network forwarder (apt-get install \
                 python3-minimal)",
                egress_proxy::PYTHON
            )));
        }
        Ok(())
    }

    /// Where a tool sees `relative` of the clone `work_tree` (for a setting that names a path,
    /// such as a cache the worker reads once the run has ended).
    pub fn clone_path(&self, work_tree: &Path, relative: &str) -> String {
        match self.settings.mode {
            SandboxMode::Bubblewrap => format!("{CLONE}/{relative}"),
            SandboxMode::None => work_tree.join(relative).to_string_lossy().into_owned(),
        }
    }

    pub async fn run(&self, run: &ToolRun, hint: &str) -> Result<ToolOutput, SandboxError> {
        let tool = find_tool(&run.program, hint)?;
        let proxy = match (self.settings.mode, run.network) {
            (SandboxMode::Bubblewrap, true) => Some(
                EgressProxy::start(self.egress, self.settings.allowed_hosts.clone()).map_err(
                    |e| SandboxError::Io {
                        tool: run.program.clone(),
                        message: format!("starting the egress proxy: {e}"),
                    },
                )?,
            ),
            _ => None,
        };
        let mut command = match self.settings.mode {
            SandboxMode::Bubblewrap => self.bubblewrap(run, &tool, proxy.as_ref())?,
            SandboxMode::None => self.unconfined(run, &tool),
        };
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        let io = |e: std::io::Error| SandboxError::Io {
            tool: run.program.clone(),
            message: e.to_string(),
        };
        let mut child = command.spawn().map_err(io)?;
        let (mut stdout, mut stderr) = (child.stdout.take(), child.stderr.take());
        let limit = self.settings.max_output_bytes;
        // Both pipes at once: a tool that fills one while we wait on the other would hang.
        // Past 4x the kept size the rest is drained unread, so the tool never blocks on a pipe.
        let cap = limit as u64 * 4;
        let read =
            async move { tokio::join!(drain(stdout.as_mut(), cap), drain(stderr.as_mut(), cap)) };
        let timeout = Duration::from_secs(self.settings.timeout_secs);
        let waited = tokio::time::timeout(timeout, async {
            let (out, err) = read.await;
            let status = child.wait().await;
            (out, err, status)
        })
        .await;
        let (out, err, status) = match waited {
            Ok((out, err, status)) => (out, err, status.map_err(io)?),
            Err(_) => {
                return Ok(ToolOutput {
                    status: ToolStatus::TimedOut {
                        secs: timeout.as_secs(),
                    },
                    output: String::new(),
                    refused: proxy.map(|p| p.refused()).unwrap_or_default(),
                });
            }
        };
        let mut text = String::from_utf8_lossy(&out).into_owned();
        text.push_str(&String::from_utf8_lossy(&err));
        Ok(ToolOutput {
            status: status
                .code()
                .map_or(ToolStatus::KilledBySignal, ToolStatus::Exited),
            output: clean_output(&text, &run.secrets, limit),
            refused: proxy.map(|p| p.refused()).unwrap_or_default(),
        })
    }

    fn bubblewrap(
        &self,
        run: &ToolRun,
        tool: &Path,
        proxy: Option<&EgressProxy>,
    ) -> Result<tokio::process::Command, SandboxError> {
        let bwrap =
            find_tool(&self.settings.bwrap, "apt-get install bubblewrap").map_err(|_| {
                SandboxError::Unavailable(format!("{} is not installed", self.settings.bwrap))
            })?;
        let mut command = tokio::process::Command::new(bwrap);
        command.env_clear().args([
            "--die-with-parent",
            "--new-session",
            "--unshare-all",
            "--cap-drop",
            "ALL",
        ]);
        // The fresh /tmp first: binds below may lie under /tmp (a tool in a virtualenv there).
        command.args(["--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp"]);
        for path in SYSTEM_PATHS {
            command.args(["--ro-bind-try", path, path]);
        }
        // A tool installed outside /usr is bound read-only where it is: its own directory
        // (rustup's toolchain bin), or the whole install it belongs to (a virtualenv and the
        // Python it was made from, an `npm install -g --prefix` tree), and nothing else.
        let roots = install_roots(tool);
        if let Some(hidden) = roots
            .iter()
            .chain(&run.read_only)
            .find(|path| path.starts_with(CLONE))
        {
            return Err(SandboxError::Unavailable(format!(
                "{} is under {CLONE}, where the sandbox mounts the clone, so the tool could not \
                 see it; install the tool elsewhere",
                hidden.display()
            )));
        }
        for dir in roots {
            command.arg("--ro-bind").arg(&dir).arg(&dir);
        }
        for path in &run.read_only {
            command.arg("--ro-bind").arg(path).arg(path);
        }
        if let Some(proxy) = proxy {
            command
                .arg("--dir")
                .arg("/tmp/egress")
                .arg("--bind")
                .arg(proxy.socket())
                .arg(egress_proxy::inside(&proxy.socket()))
                .arg("--ro-bind")
                .arg(proxy.forwarder())
                .arg(egress_proxy::inside(&proxy.forwarder()));
        }
        for (file, inside) in &run.files_at {
            if let Some(dir) = Path::new(inside).parent() {
                command.arg("--dir").arg(dir);
            }
            command.arg("--ro-bind").arg(file).arg(inside);
        }
        let cwd = Path::new(CLONE).join(&run.dir);
        command
            .arg("--bind")
            .arg(&run.work_tree)
            .arg(CLONE)
            .arg("--chdir")
            .arg(&cwd)
            .arg("--clearenv");
        let proxy_env = proxy.map(|_| egress_proxy::proxy_env()).unwrap_or_default();
        for (key, value) in base_env(HOME, tool)
            .into_iter()
            .chain(proxy_env)
            .chain(run.env.iter().cloned())
        {
            command.args(["--setenv", &key, &value]);
        }
        command.arg("--").args(self.limits());
        if let Some(proxy) = proxy {
            // The forwarder turns 127.0.0.1:3128 into the proxy's socket, then runs the tool.
            command
                .arg(egress_proxy::PYTHON)
                .arg(egress_proxy::inside(&proxy.forwarder()))
                .arg(egress_proxy::INSIDE_PORT.to_string())
                .arg(egress_proxy::inside(&proxy.socket()));
        }
        command.arg(tool).args(&run.args);
        Ok(command)
    }

    fn unconfined(&self, run: &ToolRun, tool: &Path) -> tokio::process::Command {
        let home = run.work_tree.join(".remediator-home");
        let mut command = tokio::process::Command::new("prlimit");
        command
            .env_clear()
            .envs(base_env(&home.to_string_lossy(), tool))
            .envs(run.env.iter().cloned())
            .current_dir(run.work_tree.join(&run.dir))
            .args(self.limits().into_iter().skip(1))
            .arg(tool)
            .args(&run.args);
        command
    }

    /// `prlimit` with CPU-time and address-space limits, then `--`.
    fn limits(&self) -> Vec<String> {
        vec![
            "prlimit".to_owned(),
            format!("--cpu={}", self.settings.cpu_secs),
            format!(
                "--as={}",
                self.settings.memory_mb.saturating_mul(1024 * 1024)
            ),
            "--".to_owned(),
        ]
    }
}

async fn drain(pipe: Option<&mut (impl tokio::io::AsyncRead + Unpin)>, cap: u64) -> Vec<u8> {
    let mut kept = Vec::new();
    if let Some(pipe) = pipe {
        let _ = pipe.take(cap).read_to_end(&mut kept).await;
        let _ = tokio::io::copy(pipe, &mut tokio::io::sink()).await;
    }
    kept
}

/// What of the host a tool outside `/usr` needs to run: for `PREFIX/bin/TOOL` of a virtualenv
/// (`PREFIX/pyvenv.cfg`) the virtualenv and its base interpreter's prefix; of an npm global
/// prefix (`PREFIX/lib/node_modules`) the prefix, where the launcher's script lives; otherwise
/// the tool's directory alone. Never a home directory as such: a prefix is bound only when
/// it is recognisably an install.
fn install_roots(tool: &Path) -> Vec<PathBuf> {
    let outside_usr = |p: &Path| !p.starts_with("/usr");
    let Some(bin) = tool.parent() else {
        return Vec::new();
    };
    let prefix = bin
        .file_name()
        .filter(|name| *name == "bin")
        .and(bin.parent());
    let mut roots = Vec::new();
    match prefix {
        Some(prefix) if prefix.join("pyvenv.cfg").is_file() => {
            roots.push(prefix.to_path_buf());
            if let Some(home) = venv_base_prefix(&prefix.join("pyvenv.cfg")) {
                roots.push(home);
            }
        }
        Some(prefix) if prefix.join("lib/node_modules").is_dir() => {
            roots.push(prefix.to_path_buf())
        }
        _ => roots.push(bin.to_path_buf()),
    }
    roots.retain(|root| outside_usr(root));
    roots
}

/// The prefix of the interpreter a virtualenv was made from (`home = PREFIX/bin`).
fn venv_base_prefix(cfg: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(cfg).ok()?;
    let home = text.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        (key.trim() == "home").then(|| PathBuf::from(value.trim()))
    })?;
    home.parent().map(Path::to_path_buf)
}

/// HOME, TMPDIR and a PATH that finds the tool's own directory first.
fn base_env(home: &str, tool: &Path) -> Vec<(String, String)> {
    let mut path = String::new();
    if let Some(dir) = tool.parent() {
        path.push_str(&dir.to_string_lossy());
        path.push(':');
    }
    path.push_str("/usr/local/bin:/usr/bin:/bin");
    vec![
        ("HOME".to_owned(), home.to_owned()),
        ("TMPDIR".to_owned(), "/tmp".to_owned()),
        ("PATH".to_owned(), path),
    ]
}

/// Cuts secrets out, keeps the last `limit` bytes (the error is usually at the end).
fn clean_output(text: &str, secrets: &[String], limit: usize) -> String {
    let mut text = text.to_owned();
    for secret in secrets.iter().filter(|s| !s.is_empty()) {
        text = text.replace(secret.as_str(), "[redacted]");
    }
    if text.len() <= limit {
        return text.trim().to_owned();
    }
    let mut start = text.len() - limit;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    format!("[...]{}", text[start..].trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_loses_its_secrets_and_keeps_its_end() {
        let text = "token abc123 in a long line\nthe error is here";
        assert_eq!(
            clean_output(text, &["abc123".to_owned()], 1000),
            "token [redacted] in a long line\nthe error is here"
        );
        assert_eq!(clean_output(text, &[], 17), "[...]the error is here");
    }

    #[test]
    fn an_install_is_bound_whole_and_a_bare_directory_alone() {
        let root = tempfile::tempdir().unwrap();
        let venv = root.path().join("venv");
        std::fs::create_dir_all(venv.join("bin")).unwrap();
        let base = root.path().join("python/3.11");
        std::fs::write(
            venv.join("pyvenv.cfg"),
            format!("home = {}/bin\nversion = 3.11\n", base.display()),
        )
        .unwrap();
        assert_eq!(
            install_roots(&venv.join("bin/poetry")),
            vec![venv.clone(), base]
        );
        let npm = root.path().join("npm");
        std::fs::create_dir_all(npm.join("lib/node_modules/pnpm")).unwrap();
        std::fs::create_dir_all(npm.join("bin")).unwrap();
        assert_eq!(install_roots(&npm.join("bin/pnpm")), vec![npm.clone()]);
        // A bin directory that is no recognisable install (a home's ~/.local/bin): itself only.
        let home_bin = root.path().join("home/.local/bin");
        std::fs::create_dir_all(&home_bin).unwrap();
        assert_eq!(install_roots(&home_bin.join("tool")), vec![home_bin]);
        assert!(install_roots(Path::new("/usr/bin/npm")).is_empty());
    }

    #[test]
    fn a_missing_tool_names_what_installs_it() {
        let error = find_tool("no-such-tool-xyz", "apt-get install xyz").unwrap_err();
        assert_eq!(
            error.to_string(),
            "no-such-tool-xyz is not installed on this worker (apt-get install xyz)"
        );
    }
}
