//! Where package managers run. They run code from the repository and from registries (npm
//! lifecycle scripts, a repository's cargo config naming a `rustc`, sdist builds), so every run
//! goes through here: with bubblewrap, a read-only view of the system's `/usr` and a few
//! files of `/etc`, the job's work tree as the only writable place besides a fresh `/tmp`
//! (which holds HOME and the tool's cache), new user, PID, IPC, UTS, cgroup and network
//! namespaces, an environment made only of what the caller passes (nothing of the worker's: no
//! forge token, LLM key, database or broker URL), and limits on CPU time, address space,
//! wall-clock time and output. A run that needs a registry reaches the network only through
//! the worker's egress proxy (`egress_proxy`), under the sandbox's own rules (`reach`). Mode
//! `none` runs the
//! tool without isolation and is only for an operator who asked for it.

pub mod egress_proxy;
pub mod output;
pub mod reach;
pub mod registry_auth;
pub mod registry_ca;
pub mod tools;
pub mod trust;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde::Deserialize;
use tokio::io::AsyncReadExt;

use self::egress_proxy::EgressProxy;
use self::reach::{Endpoint, Reach};
use self::registry_auth::RegistryAuth;
use self::registry_ca::RegistryCa;
pub use self::tools::{Tool, locate};
use self::trust::TrustStore;
use std::sync::Arc;

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
    /// More endpoints a tool may reach through the egress proxy besides the configured
    /// registries (`host:port`, or a host for ports 443 and 80); once set, nothing else is
    /// reachable. Empty: the registries, and public addresses on ports 443 and 80 ([`reach`]).
    #[serde(default)]
    pub allowed_hosts: Vec<String>,
    /// A PEM file of private CAs the tools trust besides the system store (a company CA the
    /// worker's store lacks); none: the system store alone.
    #[serde(default, deserialize_with = "crate::config::empty_path_is_none")]
    pub ca_bundle: Option<PathBuf>,
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

/// Where a tool is (found as [`locate`] finds it), and what installs it, for the error a job
/// reports.
pub fn find_tool(program: &str, hint: &str) -> Result<PathBuf, SandboxError> {
    locate(program, hint).map(|tool| tool.path)
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
    "/etc/pki",
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
    /// Where tools may connect: the sandbox's own rules, never the worker's egress policy.
    reach: Reach,
    /// What the tools trust and how credentials reach registries, or why the sandbox cannot
    /// have them (`check` and every run say so).
    trust: Result<Trust, String>,
}

/// The bundle the tools trust (the system's, `sandbox.ca_bundle`, the worker's registry CA),
/// that CA, and the client that carries credentialed requests on.
#[derive(Debug, Clone)]
struct Trust {
    store: TrustStore,
    ca: Arc<RegistryCa>,
    upstream: reqwest::Client,
}

impl Trust {
    fn new(ca_bundle: Option<&Path>) -> Result<Self, String> {
        let ca = Arc::new(RegistryCa::generate()?);
        let extra = ca_bundle.map(trust::read_pem).transpose()?;
        let store = TrustStore::new(ca_bundle, Some(&ca.certificate_pem()))?;
        let upstream = registry_auth::upstream_client(extra.as_deref())?;
        Ok(Trust {
            store,
            ca,
            upstream,
        })
    }
}

impl Sandbox {
    /// A sandbox whose tools may reach `registries` (the worker's configured registries, by
    /// host and port) and what `settings.allowed_hosts` adds.
    pub fn new(settings: SandboxSettings, registries: Vec<Endpoint>) -> Self {
        let trust = Trust::new(settings.ca_bundle.as_deref());
        let reach = Reach::new(&settings.allowed_hosts, registries);
        Sandbox {
            settings,
            reach,
            trust,
        }
    }

    /// The same sandbox (rules, trust, credentials) whose runs stop after `timeout_secs` of
    /// wall-clock and CPU time and keep up to `max_output_bytes` of output (a test run, which
    /// takes longer than a lock tool and whose every line names a test).
    pub fn with_limits(&self, timeout_secs: u64, max_output_bytes: usize) -> Sandbox {
        let mut limited = self.clone();
        limited.settings.timeout_secs = timeout_secs;
        limited.settings.cpu_secs = limited.settings.cpu_secs.max(timeout_secs);
        limited.settings.max_output_bytes = max_output_bytes;
        limited
    }

    /// The most output a run keeps (`sandbox.max_output_bytes`).
    pub fn max_output_bytes(&self) -> usize {
        self.settings.max_output_bytes
    }

    /// The endpoints named as reachable (registries and `sandbox.allowed_hosts`).
    pub fn reach(&self) -> &Reach {
        &self.reach
    }

    fn trust(&self) -> Result<&Trust, SandboxError> {
        self.trust
            .as_ref()
            .map_err(|why| SandboxError::Unavailable(why.clone()))
    }

    /// Checks, once at worker start, that runs can be isolated as configured.
    pub fn check(&self) -> Result<(), SandboxError> {
        self.trust()?;
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
        self.run_with_credentials(run, hint, &[]).await
    }

    /// A run whose requests to the registries of `auths` get their credentials on the way
    /// out, in the egress proxy: nothing inside the sandbox holds a token.
    pub async fn run_with_credentials(
        &self,
        run: &ToolRun,
        hint: &str,
        auths: &[RegistryAuth],
    ) -> Result<ToolOutput, SandboxError> {
        let tool = tools::find(&run.program, hint).await?;
        let trust = self.trust()?;
        let mut secrets = run.secrets.clone();
        secrets.extend(auths.iter().flat_map(RegistryAuth::secrets));
        let credentials = egress_proxy::Credentials {
            ca: trust.ca.clone(),
            upstream: trust.upstream.clone(),
            auths: auths.to_vec(),
        };
        let trust = &trust.store;
        let proxy = match (self.settings.mode, run.network) {
            (SandboxMode::Bubblewrap, true) => Some(
                EgressProxy::start(self.reach.clone(), credentials).map_err(|e| {
                    SandboxError::Io {
                        tool: run.program.clone(),
                        message: format!("starting the egress proxy: {e}"),
                    }
                })?,
            ),
            _ => None,
        };
        let mut command = match self.settings.mode {
            SandboxMode::Bubblewrap => self.bubblewrap(run, &tool, trust, proxy.as_ref())?,
            SandboxMode::None => self.unconfined(run, &tool, trust),
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
        let limit = self.settings.max_output_bytes;
        // Both pipes at once, read to their end: a tool that fills one while we wait on the
        // other would hang. Each keeps its beginning and (larger) end: the cause is usually last.
        let readers = [
            child.stdout.take().map(|pipe| capture(pipe, limit)),
            child.stderr.take().map(|pipe| capture(pipe, limit)),
        ];
        let timeout = Duration::from_secs(self.settings.timeout_secs);
        let status = match tokio::time::timeout(timeout, child.wait()).await {
            Ok(status) => status
                .map_err(io)?
                .code()
                .map_or(ToolStatus::KilledBySignal, ToolStatus::Exited),
            Err(_) => {
                // The sandbox dies with bubblewrap (--die-with-parent); what the tool printed
                // until now says where it hung.
                let _ = child.kill().await;
                ToolStatus::TimedOut {
                    secs: timeout.as_secs(),
                }
            }
        };
        let mut text = String::new();
        for reader in readers.into_iter().flatten() {
            // A process the tool left behind may hold a pipe open: wait a little, not forever.
            if let Ok(Ok(captured)) = tokio::time::timeout(Duration::from_secs(5), reader).await {
                text.push_str(&captured.text());
            }
        }
        Ok(ToolOutput {
            status,
            output: output::decisive(&text, &secrets, limit),
            refused: proxy.map(|p| p.refused()).unwrap_or_default(),
        })
    }

    fn bubblewrap(
        &self,
        run: &ToolRun,
        tool: &Tool,
        trust: &TrustStore,
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
        bind_tool(&mut command, tool, &run.read_only)?;
        if let Some(proxy) = proxy {
            bind_proxy(&mut command, proxy);
        }
        command
            .arg("--ro-bind")
            .arg(trust.bundle())
            .arg(trust::INSIDE);
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
            .chain(trust_env(run, trust::INSIDE))
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
        // Under its own name, found first on PATH: a multi-call binary acts by that name.
        command.arg(&tool.name).args(&run.args);
        Ok(command)
    }

    fn unconfined(
        &self,
        run: &ToolRun,
        tool: &Tool,
        trust: &TrustStore,
    ) -> tokio::process::Command {
        let home = run.work_tree.join(".remediator-home");
        let mut command = tokio::process::Command::new("prlimit");
        command
            .env_clear()
            .envs(base_env(&home.to_string_lossy(), tool))
            .envs(trust_env(run, &trust.bundle().to_string_lossy()))
            .envs(run.env.iter().cloned())
            .current_dir(run.work_tree.join(&run.dir))
            .args(self.limits().into_iter().skip(1))
            .arg(&tool.name)
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

/// Reads a pipe to its end in a task of its own, keeping its first `limit` and last `4 *
/// limit` bytes.
fn capture(
    mut pipe: impl tokio::io::AsyncRead + Unpin + Send + 'static,
    limit: usize,
) -> tokio::task::JoinHandle<output::Capture> {
    tokio::spawn(async move {
        let mut kept = output::Capture::new(limit, limit.saturating_mul(4));
        let mut buffer = vec![0u8; 16 * 1024];
        while let Ok(read) = pipe.read(&mut buffer).await {
            if read == 0 {
                break;
            }
            kept.push(&buffer[..read]);
        }
        kept
    })
}

/// Binds the tool read-only where it is installed, and the run's read-only paths; refuses a
/// path under the clone's mount point, which would hide it.
fn bind_tool(
    command: &mut tokio::process::Command,
    tool: &Tool,
    read_only: &[PathBuf],
) -> Result<(), SandboxError> {
    // A tool installed outside /usr is bound read-only where it is: its own directory
    // (rustup's toolchain bin), or the whole install it belongs to (a virtualenv and the
    // Python it was made from, an `npm install -g --prefix` tree), and nothing else.
    let roots = install_roots(&tool.path);
    if let Some(hidden) = roots
        .iter()
        .chain(read_only)
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
    for path in read_only {
        command.arg("--ro-bind").arg(path).arg(path);
    }
    Ok(())
}

/// The egress proxy's socket (read-write) and its forwarder (read-only), at the paths the
/// forwarder is given inside.
fn bind_proxy(command: &mut tokio::process::Command, proxy: &EgressProxy) {
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
/// The trust store's settings, for a run that reaches the network. A run without network (the
/// project's tests) has no TLS peer to trust, and the settings cost it: each node process
/// parses the whole bundle named by `NODE_EXTRA_CA_CERTS` as it starts, which doubled the time
/// of a test runner that starts one process per test file (`bench/verify`).
fn trust_env(run: &ToolRun, path: &str) -> Vec<(String, String)> {
    match run.network {
        true => TrustStore::env(path),
        false => Vec::new(),
    }
}

fn base_env(home: &str, tool: &Tool) -> Vec<(String, String)> {
    let mut path = String::new();
    if let Some(dir) = tool.dir() {
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

#[cfg(test)]
mod tests {
    use super::*;

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
