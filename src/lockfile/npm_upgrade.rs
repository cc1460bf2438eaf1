//! The npm upgrade path for a transitive package its dependents pin below the fix: for each
//! direct dependency that asks for a vulnerable range, the lowest later release of it (in its
//! current major) whose own range for the package admits the fix, read from the registry by
//! `npm view` in the sandbox (npm knows the project's registry and credentials).

use std::path::Path;

use serde_json::Value;

use super::{LockError, LockfileSettings};
use crate::patch::bump::{Version, npm_range_admits};
use crate::sandbox::{Sandbox, ToolRun};

/// Later releases of a parent looked at, at most: each is one registry query.
const MAX_CANDIDATES: usize = 20;

/// A direct dependency that pins the package, as the lock shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocker {
    pub name: String,
    pub version: String,
    /// What it asks for the package.
    pub range: String,
}

/// The chosen upgrade of a parent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParentUpgrade {
    pub parent: String,
    pub from: String,
    pub to: String,
    /// What the new release asks for the package (`None`: it no longer depends on it).
    pub range: Option<String>,
}

impl ParentUpgrade {
    /// `express 4.19.2 -> 4.20.0 pulls path-to-regexp 0.1.10`
    pub fn chain(&self, package: &str) -> String {
        match &self.range {
            Some(range) => format!(
                "{} {} -> {} pulls {package} {range}",
                self.parent, self.from, self.to
            ),
            None => format!(
                "{} {} -> {} no longer depends on {package}",
                self.parent, self.from, self.to
            ),
        }
    }
}

/// The hoisted direct dependencies (`node_modules/NAME`, declared by the root manifest) whose
/// range for `package` does not admit `target`.
pub fn blockers(lock: &str, manifest: &str, package: &str, target: &str) -> Vec<Blocker> {
    let (Ok(lock), Ok(manifest)) = (
        serde_json::from_str::<Value>(lock),
        serde_json::from_str::<Value>(manifest),
    ) else {
        return Vec::new();
    };
    let declared = |name: &str| {
        ["dependencies", "devDependencies", "optionalDependencies"]
            .iter()
            .any(|kind| manifest.get(kind).and_then(|d| d.get(name)).is_some())
    };
    let Some(packages) = lock.get("packages").and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut found = Vec::new();
    for (path, entry) in packages {
        let Some(name) = path.strip_prefix("node_modules/") else {
            continue;
        };
        if name.contains("/node_modules/") || !declared(name) {
            continue;
        }
        let range = entry
            .get("dependencies")
            .and_then(|d| d.get(package))
            .and_then(Value::as_str);
        if let Some(range) = range
            && npm_range_admits(range, target) != Some(true)
        {
            found.push(Blocker {
                name: name.to_owned(),
                version: entry
                    .get("version")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                range: range.to_owned(),
            });
        }
    }
    found
}

/// The lowest later release of `blocker` in its major whose range for `package` admits
/// `target`, asking the registry through npm in the sandbox; `None` when there is none.
pub async fn find(
    sandbox: &Sandbox,
    settings: &LockfileSettings,
    work_tree: &Path,
    dir: &str,
    blocker: &Blocker,
    package: &str,
    target: &str,
) -> Result<Option<ParentUpgrade>, LockError> {
    let versions: Vec<String> = serde_json::from_str(
        &view(sandbox, settings, work_tree, dir, &blocker.name, "versions").await?,
    )
    .unwrap_or_default();
    let Some(current) = Version::parse(&blocker.version) else {
        return Ok(None);
    };
    let mut candidates: Vec<(Version, String)> = versions
        .into_iter()
        .filter_map(|v| Version::parse(&v).map(|parsed| (parsed, v)))
        .filter(|(parsed, _)| *parsed > current && parsed.major() == current.major())
        .filter(|(parsed, _)| !parsed.is_prerelease())
        .collect();
    candidates.sort();
    for (_, version) in candidates.into_iter().take(MAX_CANDIDATES) {
        let spec = format!("{}@{version}", blocker.name);
        let text = view(sandbox, settings, work_tree, dir, &spec, "dependencies").await?;
        let dependencies: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        let range = dependencies.get(package).and_then(Value::as_str);
        let admitted = match range {
            None => true,
            Some(range) => npm_range_admits(range, target) == Some(true),
        };
        if admitted {
            return Ok(Some(ParentUpgrade {
                parent: blocker.name.clone(),
                from: blocker.version.clone(),
                to: version,
                range: range.map(str::to_owned),
            }));
        }
    }
    Ok(None)
}

/// `npm view SPEC FIELD --json`, in the sandbox, in the project's directory (its `.npmrc`).
async fn view(
    sandbox: &Sandbox,
    settings: &LockfileSettings,
    work_tree: &Path,
    dir: &str,
    spec: &str,
    field: &str,
) -> Result<String, LockError> {
    let mut args: Vec<String> = ["view", spec, field, "--json", "--loglevel=silent"]
        .map(str::to_owned)
        .to_vec();
    if !settings.npm_registry.is_empty() {
        args.push(format!("--registry={}", settings.npm_registry));
    }
    let run = ToolRun {
        program: settings.npm.clone(),
        args,
        work_tree: work_tree.to_path_buf(),
        dir: dir.to_owned(),
        env: vec![
            ("npm_config_cache".to_owned(), "/tmp/npm-cache".to_owned()),
            ("npm_config_update_notifier".to_owned(), "false".to_owned()),
        ],
        network: true,
        secrets: Vec::new(),
        read_only: Vec::new(),
        files_at: Vec::new(),
    };
    let ran = super::run_with_credentials(sandbox, settings, &run, "install npm").await?;
    if !ran.success() {
        return Err(super::tool_failed(
            format!("npm view {spec} {field}"),
            "package.json",
            ran,
        ));
    }
    Ok(ran.output)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blockers_are_direct_dependencies_whose_range_excludes_the_fix() {
        let lock = r#"{"packages": {"": {},
            "node_modules/parent": {"version": "1.0.0", "dependencies": {"lodash": "4.17.20"}},
            "node_modules/easy": {"version": "2.0.0", "dependencies": {"lodash": "^4.17.0"}},
            "node_modules/deep/node_modules/x": {"version": "1.0.0", "dependencies": {"lodash": "4.17.20"}},
            "node_modules/lodash": {"version": "4.17.20"}}}"#;
        let manifest = r#"{"dependencies": {"parent": "^1.0.0", "easy": "^2.0.0"}}"#;
        assert_eq!(
            blockers(lock, manifest, "lodash", "4.17.21"),
            vec![Blocker {
                name: "parent".into(),
                version: "1.0.0".into(),
                range: "4.17.20".into()
            }]
        );
        let upgrade = ParentUpgrade {
            parent: "parent".into(),
            from: "1.0.0".into(),
            to: "1.0.1".into(),
            range: Some("^4.17.21".into()),
        };
        assert_eq!(
            upgrade.chain("lodash"),
            "parent 1.0.0 -> 1.0.1 pulls lodash ^4.17.21"
        );
    }
}
