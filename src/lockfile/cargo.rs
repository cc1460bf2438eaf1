//! Cargo: `Cargo.lock` (the workspace root's for a member) updated by `cargo update -p
//! NAME@OLD --precise NEW` for each vulnerable copy, NEW the fix of that copy's own release
//! line, read back for every copy. The
//! repository's `.cargo/config.toml` is not trusted for executables: `rustc`, its wrappers and
//! credential providers are set by environment, which wins over any config file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::record;
use super::tool::{LockContext, LockFile, LockTool, Updated};
use super::{
    FixedVersions, LockError, LockOutcome, LockTarget, Resolved, covering_locks, parent_dir, read,
};
use crate::sandbox::ToolRun;

/// What to do when cargo is not found (the test step's Cargo convention says the same).
pub const INSTALL_HINT: &str = "install Rust with rustup (cargo on the worker's PATH), or set \
                                lockfiles.cargo to a toolchain's cargo";
const CARGO_HOME: &str = "/tmp/cargo-home";

pub async fn update(context: LockContext<'_>, target: &LockTarget<'_>) -> Updated {
    let work_tree = context.work_tree;
    let locks = covering_locks(work_tree, target, "Cargo.toml", &["Cargo.lock"]);
    let mut outcome = LockOutcome::default();
    for lock in &locks {
        let before = read(work_tree, lock)?;
        // Each vulnerable copy to the lowest fix of its own line: a lock can hold 0.9.x under
        // one parent and 1.0.x under another, each fixed in its line.
        let moves: Vec<(String, String)> = copies(&before, lock, target.package, target.fixes)
            .into_iter()
            .filter_map(|copy| {
                let fix = target.fixes.for_copy(&copy.version)?.to_owned();
                Some((copy.version, fix))
            })
            .collect();
        for (version, fix) in moves {
            let spec = format!("{}@{version}", target.package);
            match precise(context, lock, &spec, &fix).await {
                // A dependent's requirement excludes the fix: the copy stays, and the lock
                // step looks for an upgrade path.
                Err(LockError::Tool { output, .. })
                    if target.lock_only && output.contains("failed to select a version") => {}
                moved => moved?,
            }
        }
        let resolved = |text: &str| Ok(copies(text, lock, target.package, target.fixes));
        record(work_tree, lock, &before, resolved, &mut outcome)?;
    }
    // rustup is never asked for the repository's toolchain (the worker's own cargo runs): say so
    // where the repository names one.
    let pinned = locks.iter().find_map(|lock| {
        ["rust-toolchain.toml", "rust-toolchain"]
            .into_iter()
            .map(|name| super::join(parent_dir(lock), name))
            .find(|file| super::repo_file::is_file(work_tree, file))
    });
    Ok(match pinned {
        Some(file) => outcome.finish(&format!(
            "cargo update --precise (the worker's toolchain: {file} is not installed)"
        )),
        None => outcome.finish("cargo update --precise"),
    })
}

/// `cargo update -p SPEC --precise VERSION` for `lock`, in the sandbox.
pub async fn precise(
    context: LockContext<'_>,
    lock: &str,
    spec: &str,
    version: &str,
) -> Result<(), LockError> {
    let args = ["update", "-p", spec, "--precise", version];
    let ran = run(context, lock, &args, None).await?;
    if !ran.success() {
        return Err(super::tool_failed(
            format!("cargo {}", args.join(" ")),
            lock,
            ran,
        ));
    }
    Ok(())
}

/// The registry index files cargo reads to resolve `lock`'s graph, by crate name, as cargo
/// caches them: `cargo update --dry-run` in the sandbox with its CARGO_HOME in a fresh
/// directory of the clone, whose `registry/index/*/.cache/` is read once the run has ended and
/// then removed (the resolution may fail: what it fetched is what counts). A local registry is
/// not cached; [`super::cargo_upgrade::local_index`] reads it.
pub async fn fetched_index(
    context: LockContext<'_>,
    lock: &str,
) -> Result<HashMap<String, Vec<u8>>, LockError> {
    let (settings, work_tree) = (context.settings, context.work_tree);
    let name = format!(".remediator-cargo-home-{}", uuid::Uuid::new_v4());
    let home = work_tree.join(&name);
    let io = |e: std::io::Error| LockError::Read {
        path: name.clone(),
        message: e.to_string(),
    };
    std::fs::create_dir(&home).map_err(io)?;
    if let Some(config) = &settings.cargo_config
        && let Err(error) = std::fs::copy(config, home.join("config.toml"))
    {
        let _ = std::fs::remove_dir_all(&home);
        return Err(io(error));
    }
    let inside = context.sandbox.clone_path(work_tree, &name);
    let ran = run(context, lock, &["update", "--dry-run"], Some(&inside)).await;
    let mut found = HashMap::new();
    cached_files(&home.join("registry").join("index"), 0, &mut found);
    let _ = std::fs::remove_dir_all(&home);
    let ran = ran?;
    if !ran.success() {
        tracing::info!(output = %ran.output, "cargo update --dry-run failed; reading what it fetched");
    }
    Ok(found)
}

/// An index file larger than this is not read (a crate's has a line per release: a few MiB at
/// most).
const MAX_INDEX_FILE: u64 = 16 * 1024 * 1024;

/// Every regular file under `dir`'s `.cache` directories (never following a link), by name.
fn cached_files(dir: &Path, depth: usize, found: &mut HashMap<String, Vec<u8>>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let (Ok(kind), name) = (entry.file_type(), entry.file_name()) else {
            continue;
        };
        let name = name.to_string_lossy().into_owned();
        if kind.is_dir() && depth < 5 {
            cached_files(&entry.path(), depth + 1, found);
        } else if kind.is_file()
            && entry.path().components().any(|c| c.as_os_str() == ".cache")
            && entry.metadata().is_ok_and(|m| m.len() <= MAX_INDEX_FILE)
            && let Ok(bytes) = std::fs::read(entry.path())
        {
            found.entry(name).or_insert(bytes);
        }
    }
}

/// One cargo run for `lock` in the sandbox: the toolchain's cargo, a fresh CARGO_HOME (`home`,
/// else one in the sandbox's `/tmp`) with the worker's registry config, and nothing of the
/// repository's config that names an executable.
async fn run(
    context: LockContext<'_>,
    lock: &str,
    args: &[&str],
    home: Option<&str>,
) -> Result<crate::sandbox::ToolOutput, LockError> {
    let settings = context.settings;
    // A rustup proxy is already the default toolchain's own cargo here (`sandbox::tools`).
    let tool = crate::sandbox::tools::find(&settings.cargo, INSTALL_HINT)
        .await?
        .path;
    // The toolchain (cargo's `bin` and its siblings), read-only; its rustc is the only one used.
    let toolchain = toolchain_root(&tool);
    let mut env = env(toolchain.as_deref());
    let files_at = match home {
        Some(home) => {
            env.retain(|(key, _)| key != "CARGO_HOME");
            env.push(("CARGO_HOME".to_owned(), home.to_owned()));
            Vec::new()
        }
        None => settings
            .cargo_config
            .iter()
            .map(|file| (file.clone(), format!("{CARGO_HOME}/config.toml")))
            .collect(),
    };
    let run = ToolRun {
        program: tool.to_string_lossy().into_owned(),
        args: args.iter().map(|a| (*a).to_owned()).collect(),
        work_tree: context.work_tree.to_path_buf(),
        dir: parent_dir(lock).to_owned(),
        env,
        network: true,
        secrets: Vec::new(),
        read_only: toolchain
            .iter()
            .cloned()
            .chain(settings.cargo_registry_dirs.iter().map(PathBuf::from))
            .collect(),
        files_at,
    };
    super::run_with_credentials(context.sandbox, settings, &run, INSTALL_HINT).await
}

/// The toolchain `cargo` belongs to: the directory above its `bin`. The link's target tells
/// where that is (a run keeps the link and its name); `None` for a cargo at the file system's
/// root.
pub fn toolchain_root(cargo: &Path) -> Option<PathBuf> {
    let real = cargo.canonicalize().unwrap_or_else(|_| cargo.to_path_buf());
    real.parent().and_then(Path::parent).map(Path::to_path_buf)
}

/// A fresh CARGO_HOME, and every executable cargo could take from a repository's config
/// pinned to the toolchain's own (environment beats config files). The test step's Cargo
/// convention runs with the same pins.
pub fn env(toolchain: Option<&Path>) -> Vec<(String, String)> {
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
pub fn copies(text: &str, lock: &str, package: &str, fixes: &FixedVersions) -> Vec<Resolved> {
    super::toml_lock_copies(text, lock, fixes, |name| name == package)
}

/// Cargo: `Cargo.lock`.
pub const TOOL: LockTool = LockTool {
    name: "cargo",
    lock_files: &[LockFile::beside("Cargo.lock", "Cargo.toml", copies)],
    update: |context, target| Box::pin(update(context, target)),
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lockfile::reader_cases::check;

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
        let expected = &[("0.9.0", true), ("1.0.1", false)];
        check(
            copies,
            "Cargo.lock",
            &[(lock, "vulncrate", "1.0.1", expected)],
        );
    }
}
