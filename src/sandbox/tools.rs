//! Finding a tool the way the user's shell does, so the worker runs what the user would run.
//!
//! A name is looked up on the worker's PATH (the first executable file of that name); a
//! setting holding a path is taken as it is. The tool then runs under its own name (argv[0]
//! `cargo`, `npm`), its directory first on the sandbox's PATH, never under the name of the file
//! a link points to: several tools are one binary that acts by the name it is run under.
//!
//! rustup's proxies are the common case. On a rustup install (and in the official Rust
//! images) `cargo` on PATH is rustup itself, which needs the worker's `RUSTUP_HOME` and would
//! read a repository's `rust-toolchain.toml` and download the toolchain it names. A proxy is
//! replaced by the real binary of the worker's default toolchain (`rustup which cargo`, asked
//! from `/`, so no repository's toolchain file is consulted): the sandbox then runs that
//! toolchain, read-only, and never downloads one.

use std::collections::HashMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock, PoisonError};

use super::SandboxError;

/// A tool found on this worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tool {
    /// The name it runs under (argv[0]): the file name of `path`.
    pub name: String,
    /// The executable that runs (a link is kept as it is, so an install's layout still works).
    pub path: PathBuf,
    /// How it was found, for the startup log and `remediator doctor`.
    pub found: Found,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Found {
    /// The first match on the worker's PATH.
    OnPath,
    /// The path the configuration names.
    Configured,
    /// rustup's proxy on PATH, replaced by the default toolchain's own binary.
    RustupToolchain { proxy: PathBuf },
}

impl std::fmt::Display for Found {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Found::OnPath => f.write_str("on PATH"),
            Found::Configured => f.write_str("configured path"),
            Found::RustupToolchain { proxy } => write!(
                f,
                "rustup's default toolchain (the proxy {} resolved)",
                proxy.display()
            ),
        }
    }
}

impl Tool {
    /// The directory that goes first on the tool's PATH, so that its name finds it.
    pub fn dir(&self) -> Option<&Path> {
        self.path.parent()
    }
}

/// Finds `program` (a name looked up on PATH, or a path) and what installs it, for the error a
/// job reports. Found tools are remembered for the life of the worker.
pub fn locate(program: &str, hint: &str) -> Result<Tool, SandboxError> {
    static FOUND: OnceLock<Mutex<HashMap<String, Tool>>> = OnceLock::new();
    let cache = FOUND.get_or_init(Default::default);
    if let Some(tool) = cache
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(program)
    {
        return Ok(tool.clone());
    }
    let tool = locate_uncached(program, hint)?;
    cache
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .insert(program.to_owned(), tool.clone());
    Ok(tool)
}

/// [`locate`] off the async runtime: a first look-up scans PATH and may ask rustup, a process
/// of its own.
pub async fn find(program: &str, hint: &str) -> Result<Tool, SandboxError> {
    let (program, hint) = (program.to_owned(), hint.to_owned());
    let tool = program.clone();
    tokio::task::spawn_blocking(move || locate(&program, &hint))
        .await
        .map_err(|e| SandboxError::Io {
            tool,
            message: format!("looking the tool up: {e}"),
        })?
}

fn locate_uncached(program: &str, hint: &str) -> Result<Tool, SandboxError> {
    let missing = || SandboxError::ToolMissing {
        tool: program.to_owned(),
        hint: hint.to_owned(),
    };
    let (path, found) = if program.contains('/') {
        let path = PathBuf::from(program);
        (is_executable(&path).then_some(path), Found::Configured)
    } else {
        (on_path(program), Found::OnPath)
    };
    let path = path.ok_or_else(missing)?;
    if let Some(rustup) = rustup_behind(&path) {
        let name = file_name(&path);
        let real = rustup_which(&rustup, &name).map_err(|why| SandboxError::ToolMissing {
            tool: program.to_owned(),
            hint: format!(
                "{} is rustup's proxy and `rustup which {name}` failed: {why}; install a \
                 default toolchain (`rustup default stable`) or set the tool's path",
                path.display()
            ),
        })?;
        return Ok(Tool {
            name: file_name(&real),
            path: real,
            found: Found::RustupToolchain { proxy: path },
        });
    }
    Ok(Tool {
        name: file_name(&path),
        path,
        found,
    })
}

/// The first executable `name` in the worker's PATH, as a shell finds it.
fn on_path(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .filter(|dir| !dir.as_os_str().is_empty())
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

fn is_executable(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The rustup binary when `path` is one of its proxies: a link to it, or a hard link beside
/// it (rustup installs either).
fn rustup_behind(path: &Path) -> Option<PathBuf> {
    if file_name(path).starts_with("rustup") {
        return None;
    }
    let real = std::fs::canonicalize(path).ok()?;
    if file_name(&real).starts_with("rustup") {
        return Some(real);
    }
    let sibling = path.parent()?.join("rustup");
    let (a, b) = (
        std::fs::metadata(&real).ok()?,
        std::fs::metadata(&sibling).ok()?,
    );
    (a.dev() == b.dev() && a.ino() == b.ino()).then_some(sibling)
}

/// `rustup which NAME`, asked from `/` so that no repository's toolchain file is read.
fn rustup_which(rustup: &Path, name: &str) -> Result<PathBuf, String> {
    let output = std::process::Command::new(rustup)
        .args(["which", name])
        .current_dir("/")
        .output()
        .map_err(|e| e.to_string())?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let path = PathBuf::from(stdout.trim());
    if output.status.success() && is_executable(&path) {
        return Ok(path);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    Err(stderr
        .trim()
        .lines()
        .last()
        .unwrap_or("no output")
        .to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn executable(path: &Path) {
        std::fs::write(path, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[test]
    fn a_configured_path_is_taken_as_it_is_and_runs_under_its_own_name() {
        let dir = tempfile::tempdir().unwrap();
        let tool = dir.path().join("pnpm");
        executable(&tool);
        let found = locate_uncached(tool.to_str().unwrap(), "npm i -g pnpm").unwrap();
        assert_eq!(found.name, "pnpm");
        assert_eq!(found.path, tool);
        assert_eq!(found.found, Found::Configured);
        assert_eq!(found.dir(), Some(dir.path()));
    }

    #[test]
    fn a_link_is_run_under_its_own_name_not_its_target() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("npm-cli.js");
        executable(&target);
        let link = dir.path().join("npm");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let found = locate_uncached(link.to_str().unwrap(), "").unwrap();
        assert_eq!(found.name, "npm");
        assert_eq!(found.path, link);
    }

    #[test]
    fn a_file_that_cannot_run_is_not_a_tool() {
        let dir = tempfile::tempdir().unwrap();
        let plain = dir.path().join("uv");
        std::fs::write(&plain, "").unwrap();
        let error = locate_uncached(plain.to_str().unwrap(), "pip install uv").unwrap_err();
        assert!(error.to_string().contains("pip install uv"), "{error}");
    }

    #[test]
    fn a_rustup_proxy_is_recognised_by_link_and_by_hard_link() {
        let dir = tempfile::tempdir().unwrap();
        let rustup = dir.path().join("rustup");
        executable(&rustup);
        let linked = dir.path().join("cargo");
        std::os::unix::fs::symlink(&rustup, &linked).unwrap();
        let hard = dir.path().join("rustc");
        std::fs::hard_link(&rustup, &hard).unwrap();
        let other = dir.path().join("npm");
        executable(&other);
        assert_eq!(
            rustup_behind(&linked),
            Some(std::fs::canonicalize(&rustup).unwrap())
        );
        assert_eq!(rustup_behind(&hard), Some(rustup.clone()));
        assert_eq!(rustup_behind(&other), None);
        assert_eq!(rustup_behind(&rustup), None);
    }

    /// On a machine with rustup (this one builds with it), `cargo` on PATH is the default
    /// toolchain's own binary, which answers `cargo --version` as cargo, not as rustup.
    #[test]
    fn cargo_on_path_is_the_toolchain_binary_when_rustup_is_installed() {
        let Some(proxy) = on_path("cargo") else {
            return;
        };
        let cargo = locate_uncached("cargo", "").unwrap();
        if rustup_behind(&proxy).is_some() {
            assert!(
                matches!(cargo.found, Found::RustupToolchain { .. }),
                "{cargo:?}"
            );
            assert!(
                cargo
                    .path
                    .components()
                    .any(|c| c.as_os_str() == "toolchains")
            );
        }
        let version = std::process::Command::new(&cargo.path)
            .arg("--version")
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&version.stdout).starts_with("cargo "),
            "{version:?}"
        );
    }
}
