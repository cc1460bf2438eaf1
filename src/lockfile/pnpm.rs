//! pnpm: `pnpm-lock.yaml` (the workspace root's for a member, lockfile v5 to v9), updated by
//! `pnpm install --lockfile-only --ignore-scripts`, which reads registry metadata only (no
//! tarball, no script), and read back for every copy of the package. The pnpm that runs is the
//! one the project asks for (`package_manager`): its `packageManager`, else the major that
//! writes its lock's `lockfileVersion`, when the worker's own is not it.

use super::tool::{LockContext, LockFile, LockTool, Updated};
use super::{
    FixedVersions, LockError, LockTarget, LockfileSettings, Resolved, covering_locks,
    package_manager, parent_dir, update_each_lock,
};
use crate::sandbox::ToolRun;

pub const LOCK_FILE: &str = "pnpm-lock.yaml";
const INSTALL_HINT: &str = "install pnpm (npm install -g pnpm) and set lockfiles.pnpm";

/// pnpm's environment in the sandbox: its store and caches in the sandbox's `/tmp`, no scripts.
const ENV: [(&str, &str); 8] = [
    ("npm_config_store_dir", "/tmp/pnpm-store"),
    ("npm_config_cache_dir", "/tmp/pnpm-cache"),
    ("npm_config_update_notifier", "false"),
    ("npm_config_ignore_scripts", "true"),
    // A `packageManager` field must not make pnpm download another pnpm.
    ("npm_config_manage_package_manager_versions", "false"),
    ("XDG_CACHE_HOME", "/tmp/cache"),
    ("XDG_DATA_HOME", "/tmp/data"),
    ("CI", "true"),
];

pub async fn update(context: LockContext<'_>, target: &LockTarget<'_>) -> Updated {
    let (settings, work_tree) = (context.settings, context.work_tree);
    let args = args(settings, target);
    // The pnpm each lock asks for (`packageManager`, else the major its lockfileVersion
    // needs), when the worker's own is not it.
    let mut releases = std::collections::HashMap::new();
    for lock in covering_locks(work_tree, target, "package.json", &[LOCK_FILE]) {
        if let Some(provided) = release_for(context, &lock).await? {
            releases.insert(lock, provided);
        }
    }
    let run_for = |lock: &str| match releases.get(lock) {
        Some(provided) => provided.run(args.clone(), work_tree, parent_dir(lock), &ENV),
        None => ToolRun::networked(
            &settings.pnpm,
            args.clone(),
            work_tree,
            parent_dir(lock),
            &ENV,
        ),
    };
    let copies = |text: &str, lock: &str| Ok(copies(text, lock, target.package, target.fixes));
    let outcome = update_each_lock(
        context,
        target,
        ("package.json", &[LOCK_FILE]),
        INSTALL_HINT,
        run_for,
        copies,
    )
    .await?;
    let command = match target.lock_only {
        true => "pnpm update --lockfile-only",
        false => "pnpm install --lockfile-only",
    };
    let mut versions: Vec<&str> = releases.values().map(|p| p.version.as_str()).collect();
    versions.dedup();
    Ok(match versions.as_slice() {
        [] => outcome.finish(command),
        _ => outcome.finish(&format!(
            "{command} (pnpm {}, as the project asks)",
            versions.join(", ")
        )),
    })
}

/// pnpm's arguments: the lock alone, no script.
fn args(settings: &LockfileSettings, target: &LockTarget<'_>) -> Vec<String> {
    // A transitive package: `pnpm update NAME` at every depth moves it within its dependents'
    // ranges, in the lock alone.
    let mut args: Vec<String> = match target.lock_only {
        true => vec![
            "update".to_owned(),
            target.package.to_owned(),
            "--depth=Infinity".to_owned(),
        ],
        false => vec!["install".to_owned()],
    };
    args.extend(["--lockfile-only", "--ignore-scripts"].map(str::to_owned));
    if !settings.npm_registry.is_empty() {
        args.push(format!("--registry={}", settings.npm_registry));
    }
    args
}

/// The release of pnpm `lock` asks for, when the worker's own is not it.
async fn release_for(
    context: LockContext<'_>,
    lock: &str,
) -> Result<Option<package_manager::Provided>, LockError> {
    let (sandbox, settings) = (context.sandbox, context.settings);
    let text = super::read(context.work_tree, lock)?;
    let wanted = package_manager::from_manifest(context.work_tree, parent_dir(lock), "pnpm")
        .or_else(|| package_manager::pnpm_major_for_lock(&text, lock));
    let Some(wanted) = wanted else {
        return Ok(None);
    };
    let own = package_manager::worker_version(sandbox, &settings.pnpm).await;
    if package_manager::satisfied_by(&wanted, own.as_deref()) {
        return Ok(None);
    }
    package_manager::provide(sandbox, settings, &wanted)
        .await
        .map(Some)
}

/// Every version of `package` under the lock's `packages:` map, whose keys are
/// `name@version` (v9), `/name@version(peers)` (v6) or `/name/version` (v5).
pub fn copies(text: &str, lock: &str, package: &str, fixes: &FixedVersions) -> Vec<Resolved> {
    let mut found = Vec::new();
    let mut in_packages = false;
    for line in text.lines() {
        if !line.starts_with(' ') && !line.is_empty() {
            in_packages = line.trim_end() == "packages:";
            continue;
        }
        let Some(key) = line
            .strip_prefix("  ")
            .filter(|rest| !rest.starts_with(' '))
            .and_then(|rest| rest.trim_end().strip_suffix(':'))
        else {
            continue;
        };
        if !in_packages {
            continue;
        }
        let key = key.trim_matches(|c| c == '\'' || c == '"');
        if let Some(version) = version_of(key, package) {
            found.push(Resolved {
                path: format!("{lock}: {key}"),
                vulnerable: fixes.is_vulnerable(&version),
                version,
            });
        }
    }
    found
}

/// The version in a `packages:` key, when the key is one of `package`'s.
fn version_of(key: &str, package: &str) -> Option<String> {
    let key = key.strip_prefix('/').unwrap_or(key);
    let rest = key.strip_prefix(package)?;
    let version = rest.strip_prefix('@').or_else(|| rest.strip_prefix('/'))?;
    // Peer suffixes: `1.0.0(react@18.0.0)` (v6+) or `1.0.0_react@18.0.0` (v5).
    let version = version.split(['(', '_']).next().unwrap_or(version);
    (!version.is_empty() && version.chars().next().is_some_and(|c| c.is_ascii_digit()))
        .then(|| version.to_owned())
}

/// pnpm: `pnpm-lock.yaml`.
pub const TOOL: LockTool = LockTool {
    name: "pnpm",
    lock_files: &[LockFile::beside(LOCK_FILE, "package.json", copies)],
    update: |context, target| Box::pin(update(context, target)),
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lockfile::reader_cases::{Case, check};

    const V9: &str = "lockfileVersion: '9.0'\n\nimporters:\n\n  .:\n    dependencies:\n      lodash:\n        specifier: ^4.17.21\n        version: 4.17.21\n\npackages:\n\n  lodash@4.17.21:\n    resolution: {integrity: sha512-x}\n\n  lodash.merge@4.6.2:\n    resolution: {integrity: sha512-y}\n\n  '@scope/lodash@1.0.0':\n    resolution: {integrity: sha512-z}\n\nsnapshots:\n\n  lodash@4.17.21: {}\n";
    const V6: &str = "lockfileVersion: '6.0'\n\npackages:\n\n  /lodash@4.17.20:\n    resolution: {integrity: sha512-x}\n  /react-dom@18.2.0(react@18.2.0):\n    dev: false\n";
    const V5: &str = "lockfileVersion: 5.4\n\npackages:\n\n  /lodash/4.17.15:\n    resolution: {integrity: sha512-x}\n";
    const SCOPED: &str = "packages:\n\n  '@scope/pkg@2.0.1':\n    resolution: {}\n";

    #[test]
    fn every_lockfile_version_names_its_copies() {
        const CASES: &[Case] = &[
            (V9, "lodash", "4.17.21", &[("4.17.21", false)]),
            (V6, "lodash", "4.17.21", &[("4.17.20", true)]),
            (V6, "react-dom", "18.0.0", &[("18.2.0", false)]),
            (V5, "lodash", "4.17.21", &[("4.17.15", true)]),
            (SCOPED, "@scope/pkg", "2.0.1", &[("2.0.1", false)]),
        ];
        check(copies, LOCK_FILE, CASES);
    }
}
