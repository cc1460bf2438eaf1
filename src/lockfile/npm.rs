//! npm: `package-lock.json` / `npm-shrinkwrap.json` (lockfile v1, v2 and v3), updated by
//! `npm install --package-lock-only --ignore-scripts` in the directory that holds the lock (the
//! workspace root for a workspace member), and read back for every copy of the package.

use serde_json::Value;

use super::tool::{LockContext, LockFile, LockTool, Updated};
use super::{FixedVersions, LockError, LockTarget, Resolved, parent_dir, update_each_lock};
use crate::sandbox::ToolRun;

const LOCK_FILES: [&str; 2] = ["npm-shrinkwrap.json", "package-lock.json"];
pub(super) const INSTALL_HINT: &str = "install Node.js and npm (apt-get install nodejs npm)";

/// npm's environment in the sandbox: its cache in the sandbox's `/tmp`, no scripts.
pub(super) const ENV: [(&str, &str); 3] = [
    ("npm_config_cache", "/tmp/npm-cache"),
    ("npm_config_update_notifier", "false"),
    // Belt and braces with --ignore-scripts: git dependencies' `prepare` too.
    ("npm_config_ignore_scripts", "true"),
];

pub async fn update(context: LockContext<'_>, target: &LockTarget<'_>) -> Updated {
    let (settings, work_tree) = (context.settings, context.work_tree);
    // A transitive package: `npm update NAME` moves it, wherever it is in the tree, to the
    // newest version its dependents' ranges admit, and touches nothing else.
    let mut args: Vec<String> = match target.lock_only {
        true => vec!["update".to_owned(), target.package.to_owned()],
        false => vec!["install".to_owned()],
    };
    args.extend(
        [
            "--package-lock-only",
            "--ignore-scripts",
            "--no-audit",
            "--no-fund",
        ]
        .map(str::to_owned),
    );
    if !settings.npm_registry.is_empty() {
        args.push(format!("--registry={}", settings.npm_registry));
    }
    let run_for = |lock: &str| {
        ToolRun::networked(
            &settings.npm,
            args.clone(),
            work_tree,
            parent_dir(lock),
            &ENV,
        )
    };
    let copies = |text: &str, lock: &str| copies(text, lock, target.package, target.fixes);
    let outcome = update_each_lock(
        context,
        target,
        ("", &LOCK_FILES),
        INSTALL_HINT,
        run_for,
        copies,
    )
    .await?;
    Ok(outcome.finish(match target.lock_only {
        true => "npm update --package-lock-only",
        false => "npm install --package-lock-only",
    }))
}

/// Every copy of `package` the lock resolves.
pub fn copies(
    text: &str,
    lock: &str,
    package: &str,
    fixes: &FixedVersions,
) -> Result<Vec<Resolved>, LockError> {
    let json: Value = serde_json::from_str(text).map_err(|e| LockError::Read {
        path: lock.to_owned(),
        message: format!("not JSON: {e}"),
    })?;
    let mut found = Vec::new();
    let suffix = format!("node_modules/{package}");
    if let Some(packages) = json.get("packages").and_then(Value::as_object) {
        // v2 and v3: a flat map from install path to entry.
        for (path, entry) in packages {
            if (path == &suffix || path.ends_with(&format!("/{suffix}")))
                && let Some(version) = entry.get("version").and_then(Value::as_str)
            {
                found.push((path.clone(), version.to_owned()));
            }
        }
    } else if let Some(dependencies) = json.get("dependencies").and_then(Value::as_object) {
        // v1: nested `dependencies`.
        walk_v1(dependencies, "", package, &mut found);
    }
    found.sort();
    Ok(found
        .into_iter()
        .map(|(path, version)| Resolved {
            vulnerable: fixes.is_vulnerable(&version),
            path,
            version,
        })
        .collect())
}

/// The `packages` map of a v2 or v3 lock, install path to entry; empty when the lock is not
/// JSON or has none (v1).
pub(super) fn lock_entries(lock: &str) -> serde_json::Map<String, Value> {
    match serde_json::from_str::<Value>(lock) {
        Ok(Value::Object(mut json)) => match json.remove("packages") {
            Some(Value::Object(packages)) => packages,
            _ => serde_json::Map::new(),
        },
        _ => serde_json::Map::new(),
    }
}

fn walk_v1(
    dependencies: &serde_json::Map<String, Value>,
    prefix: &str,
    package: &str,
    found: &mut Vec<(String, String)>,
) {
    for (name, entry) in dependencies {
        let path = format!("{prefix}node_modules/{name}");
        if name == package
            && let Some(version) = entry.get("version").and_then(Value::as_str)
        {
            found.push((path.clone(), version.to_owned()));
        }
        if let Some(nested) = entry.get("dependencies").and_then(Value::as_object) {
            walk_v1(nested, &format!("{path}/"), package, found);
        }
    }
}

/// npm: `package-lock.json` and `npm-shrinkwrap.json`.
pub const TOOL: LockTool = LockTool {
    name: "npm",
    lock_files: &[
        LockFile::beside("package-lock.json", "package.json", copies_or_none),
        LockFile::beside("npm-shrinkwrap.json", "package.json", copies_or_none),
    ],
    update: |context, target| Box::pin(update(context, target)),
};

/// [`copies`] for the transitive search: a lock it cannot read resolves nothing there.
fn copies_or_none(text: &str, lock: &str, package: &str, fixes: &FixedVersions) -> Vec<Resolved> {
    copies(text, lock, package, fixes).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lockfile::covering_lock;

    #[test]
    fn every_copy_is_found_in_v3_and_v1_locks() {
        let v3 = r#"{"lockfileVersion": 3, "packages": {
            "": {"name": "app"},
            "node_modules/lodash": {"version": "4.17.21"},
            "node_modules/a/node_modules/lodash": {"version": "4.17.15"},
            "node_modules/lodash-es": {"version": "4.17.0"}}}"#;
        let v1 = r#"{"lockfileVersion": 1, "dependencies": {
            "lodash": {"version": "4.17.20"},
            "a": {"version": "1.0.0", "dependencies": {"lodash": {"version": "4.17.21"}}}}}"#;
        // Each copy as (path, version, vulnerable), sorted by path.
        let cases = [
            (
                v3,
                [
                    ("node_modules/a/node_modules/lodash", "4.17.15", true),
                    ("node_modules/lodash", "4.17.21", false),
                ],
            ),
            (
                v1,
                [
                    ("node_modules/a/node_modules/lodash", "4.17.21", false),
                    ("node_modules/lodash", "4.17.20", true),
                ],
            ),
        ];
        for (lock, expected) in cases {
            let fix = FixedVersions::single("4.17.21");
            let found = copies(lock, "package-lock.json", "lodash", &fix).unwrap();
            let expected = expected.map(|(path, version, vulnerable)| Resolved {
                path: path.into(),
                version: version.into(),
                vulnerable,
            });
            assert_eq!(found, expected, "{lock}");
        }
    }

    #[test]
    fn the_covering_lock_is_beside_the_manifest_or_at_the_workspace_root() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("packages/web")).unwrap();
        std::fs::write(dir.path().join("package-lock.json"), "{}").unwrap();
        assert_eq!(
            covering_lock(dir.path(), "packages/web", &LOCK_FILES).as_deref(),
            Some("package-lock.json")
        );
        std::fs::write(dir.path().join("packages/web/npm-shrinkwrap.json"), "{}").unwrap();
        assert_eq!(
            covering_lock(dir.path(), "packages/web", &LOCK_FILES).as_deref(),
            Some("packages/web/npm-shrinkwrap.json")
        );
        assert_eq!(
            covering_lock(tempfile::tempdir().unwrap().path(), "", &LOCK_FILES),
            None
        );
    }
}
