//! Cargo: `Cargo.lock` (the workspace root's for a member) updated by `cargo update -p
//! NAME@OLD --precise NEW` for each copy below the fix, read back for every copy. The
//! repository's `.cargo/config.toml` is not trusted for executables: `rustc`, its wrappers and
//! credential providers are set by environment, which wins over any config file.

use std::path::{Path, PathBuf};

use super::{
    LockError, LockOutcome, LockTarget, LockfileSettings, Resolved, covering_locks, parent_dir,
    read,
};
use super::{record, run_tool};
use crate::sandbox::{Sandbox, ToolRun, find_tool};

const INSTALL_HINT: &str = "install Rust (rustup) and set lockfiles.cargo to the toolchain's \
                            cargo (`rustup which cargo`), not rustup's proxy";
const CARGO_HOME: &str = "/tmp/cargo-home";

pub async fn update(
    sandbox: &Sandbox,
    settings: &LockfileSettings,
    work_tree: &Path,
    target: &LockTarget<'_>,
) -> Result<LockOutcome, LockError> {
    let locks = covering_locks(work_tree, target, "Cargo.toml", &["Cargo.lock"]);
    let mut outcome = LockOutcome::default();
    for lock in &locks {
        let before = read(work_tree, lock)?;
        let old: Vec<String> = copies(&before, lock, target.package, target.target_version)
            .into_iter()
            .filter(|copy| copy.vulnerable)
            .map(|copy| copy.version)
            .collect();
        for version in old {
            let spec = format!("{}@{version}", target.package);
            let moved = precise(
                sandbox,
                settings,
                work_tree,
                lock,
                &spec,
                target.target_version,
            );
            match moved.await {
                // A dependent's requirement excludes the fix: the copy stays, and the lock
                // step looks for an upgrade path.
                Err(LockError::Tool { output, .. })
                    if target.lock_only && output.contains("failed to select a version") => {}
                moved => moved?,
            }
        }
        let resolved = |text: &str| Ok(copies(text, lock, target.package, target.target_version));
        record(work_tree, lock, &before, resolved, &mut outcome)?;
    }
    Ok(outcome.finish("cargo update --precise"))
}

/// `cargo update -p SPEC --precise VERSION` for `lock`, in the sandbox: the toolchain's cargo,
/// a fresh CARGO_HOME with the worker's registry config, and nothing of the repository's
/// config that names an executable.
pub async fn precise(
    sandbox: &Sandbox,
    settings: &LockfileSettings,
    work_tree: &Path,
    lock: &str,
    spec: &str,
    version: &str,
) -> Result<(), LockError> {
    let tool = find_tool(&settings.cargo, INSTALL_HINT)?;
    let tool = tool.canonicalize().unwrap_or(tool);
    // The toolchain (cargo's `bin` and its siblings), read-only; its rustc is the only one used.
    let toolchain = tool.parent().and_then(Path::parent).map(Path::to_path_buf);
    let args = ["update", "-p", spec, "--precise", version]
        .map(str::to_owned)
        .to_vec();
    let run = ToolRun {
        program: tool.to_string_lossy().into_owned(),
        args,
        work_tree: work_tree.to_path_buf(),
        dir: parent_dir(lock).to_owned(),
        env: env(toolchain.as_deref()),
        network: true,
        secrets: Vec::new(),
        read_only: toolchain
            .iter()
            .cloned()
            .chain(settings.cargo_registry_dirs.iter().map(PathBuf::from))
            .collect(),
        files_at: settings
            .cargo_config
            .iter()
            .map(|file| (file.clone(), format!("{CARGO_HOME}/config.toml")))
            .collect(),
    };
    run_tool(sandbox, settings, &run, INSTALL_HINT, lock).await
}

/// A fresh CARGO_HOME, and every executable cargo could take from a repository's config
/// pinned to the toolchain's own (environment beats config files).
fn env(toolchain: Option<&Path>) -> Vec<(String, String)> {
    let mut env = vec![
        ("CARGO_HOME".to_owned(), CARGO_HOME.to_owned()),
        ("CARGO_TERM_COLOR".to_owned(), "never".to_owned()),
        ("CARGO_BUILD_RUSTC_WRAPPER".to_owned(), String::new()),
        (
            "CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER".to_owned(),
            String::new(),
        ),
        (
            "CARGO_NET_GIT_FETCH_WITH_CLI".to_owned(),
            "false".to_owned(),
        ),
        (
            "CARGO_REGISTRY_GLOBAL_CREDENTIAL_PROVIDERS".to_owned(),
            "cargo:token".to_owned(),
        ),
    ];
    if let Some(root) = toolchain {
        let rustc = root.join("bin").join("rustc");
        env.push((
            "CARGO_BUILD_RUSTC".to_owned(),
            rustc.to_string_lossy().into_owned(),
        ));
        env.push(("RUSTC".to_owned(), rustc.to_string_lossy().into_owned()));
    }
    env
}

/// Every `[[package]]` of `Cargo.lock` named `package`.
pub fn copies(text: &str, lock: &str, package: &str, target_version: &str) -> Vec<Resolved> {
    super::toml_lock_copies(text, lock, target_version, |name| name == package)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn executables_are_pinned_by_environment() {
        // Environment beats every config file, the repository's `.cargo/config.toml` included.
        let env = env(Some(Path::new("/opt/toolchain")));
        let get = |key: &str| env.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        assert_eq!(get("CARGO_BUILD_RUSTC"), Some("/opt/toolchain/bin/rustc"));
        assert_eq!(get("RUSTC"), Some("/opt/toolchain/bin/rustc"));
        assert_eq!(get("CARGO_BUILD_RUSTC_WRAPPER"), Some(""));
        assert_eq!(get("CARGO_BUILD_RUSTC_WORKSPACE_WRAPPER"), Some(""));
        assert_eq!(
            get("CARGO_REGISTRY_GLOBAL_CREDENTIAL_PROVIDERS"),
            Some("cargo:token")
        );
        assert_eq!(get("CARGO_HOME"), Some(CARGO_HOME));
    }

    #[test]
    fn every_copy_of_the_package_is_read_from_the_lock() {
        let lock = "version = 4\n\n[[package]]\nname = \"app\"\nversion = \"0.1.0\"\n\n[[package]]\nname = \"vulncrate\"\nversion = \"0.9.0\"\n\n[[package]]\nname = \"vulncrate\"\nversion = \"1.0.1\"\nsource = \"local-registry+file:///srv/test-registry\"\n";
        let found = copies(lock, "Cargo.lock", "vulncrate", "1.0.1");
        let seen: Vec<_> = found
            .iter()
            .map(|c| (c.version.as_str(), c.vulnerable))
            .collect();
        assert_eq!(seen, [("0.9.0", true), ("1.0.1", false)]);
    }
}
