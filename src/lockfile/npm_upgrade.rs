//! The upgrade path of npm, pnpm and yarn projects for a transitive package its dependents pin
//! below the fix: the packages whose entry in the lock asks for a vulnerable range, and for
//! each the lowest later release of it (in its current major) whose own range for the package
//! admits the fix, read from the registry by `npm view` in the sandbox (npm knows the
//! project's `.npmrc`, and `lockfiles.npm_registry` names the registry for all three). The
//! lock step walks a holder the project does not declare up to one it does.

use serde_json::Value;

use super::LockError;
use super::overrides::{self, Manager};
use super::tool::LockContext;
use crate::patch::bump::{Version, npm_range_admits};
use crate::sandbox::ToolRun;

/// Later releases of a parent looked at, at most: each is one registry query.
const MAX_CANDIDATES: usize = 20;

/// A package of the lock that pins the package below the fix, as the lock shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Blocker {
    pub name: String,
    pub version: String,
    /// What it asks for the package.
    pub range: String,
    /// The root manifest declares it (else it sits further down the tree).
    pub direct: bool,
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

/// The packages of the `manager`'s lock whose entry asks for a range of `package` (pnpm: a
/// resolved version) that admits none of `targets` (the fixes of every release line), each
/// marked `direct` when the root
/// `manifest` (a `package.json`) declares it at that entry. One per name and version.
pub fn blockers(
    manager: Manager,
    lock: &str,
    manifest: &str,
    package: &str,
    targets: &[&str],
) -> Vec<Blocker> {
    let Ok(manifest) = serde_json::from_str::<Value>(manifest) else {
        return Vec::new();
    };
    let declared = |name: &str| {
        ["dependencies", "devDependencies", "optionalDependencies"]
            .iter()
            .find_map(|kind| manifest.get(kind)?.get(name)?.as_str())
            .map(str::to_owned)
    };
    let mut found = match manager {
        Manager::Npm => npm_holders(lock, &|name| declared(name).is_some(), package),
        Manager::Pnpm => pnpm_holders(lock, &|name| declared(name).is_some(), package),
        Manager::Yarn => yarn_holders(lock, &declared, package),
    };
    // A range that admits a fix of some release line lets the tool move its copy there.
    found.retain(|blocker| {
        !targets
            .iter()
            .any(|target| npm_range_admits(&blocker.range, target) == Some(true))
    });
    // Direct first, so that a name held both ways keeps its direct entry.
    found.sort_by(|a, b| (&a.name, &a.version, !a.direct).cmp(&(&b.name, &b.version, !b.direct)));
    found.dedup_by(|a, b| a.name == b.name && a.version == b.version);
    found
}

/// npm: every entry that depends on the package (`node_modules/a/node_modules/b` is `b`);
/// direct when hoisted (`node_modules/NAME`) and declared.
fn npm_holders(lock: &str, declared: &dyn Fn(&str) -> bool, package: &str) -> Vec<Blocker> {
    let mut found = Vec::new();
    for (path, entry) in &super::npm::lock_entries(lock) {
        let Some((_, name)) = path.rsplit_once("node_modules/") else {
            continue;
        };
        let range = entry
            .get("dependencies")
            .and_then(|d| d.get(package))
            .and_then(Value::as_str);
        if let Some(range) = range {
            found.push(Blocker {
                name: name.to_owned(),
                version: entry
                    .get("version")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned(),
                range: range.to_owned(),
                direct: path == &format!("node_modules/{name}") && declared(name),
            });
        }
    }
    found
}

/// pnpm: every `name@version` entry that depends on the package; direct when declared at
/// the version the root importer resolves (a lock can hold two releases of one parent).
fn pnpm_holders(lock: &str, declared: &dyn Fn(&str) -> bool, package: &str) -> Vec<Blocker> {
    let mut found = Vec::new();
    // The root importer's version of each name, read once: the importer scan is a pass over
    // the whole lock.
    let mut root_versions: std::collections::HashMap<String, Option<String>> = Default::default();
    for holder in overrides::block_holders(Manager::Pnpm, lock, package) {
        let Some(spec) = holder.specs.first() else {
            continue;
        };
        let spec = spec.trim_start_matches('/');
        let name = super::yarn::spec_name(spec);
        let Some(version) = spec.get(name.len() + 1..) else {
            continue;
        };
        let version = without_peers(version);
        let root_version = root_versions
            .entry(name.to_owned())
            .or_insert_with(|| pnpm_direct_version(lock, name));
        found.push(Blocker {
            name: name.to_owned(),
            version: version.to_owned(),
            range: without_peers(&holder.asked).to_owned(),
            direct: declared(name) && root_version.as_deref().is_none_or(|v| v == version),
        });
    }
    found
}

/// `1.0.0` of pnpm's `1.0.0(react@18.2.0)`.
fn without_peers(version: &str) -> &str {
    version.split('(').next().unwrap_or(version)
}

/// The version of `name` the root project resolves, from `importers: .:` (lockfile v6 and
/// later with workspaces, always in v9) or the top-level dependency maps (v6 single project).
fn pnpm_direct_version(lock: &str, name: &str) -> Option<String> {
    let (mut root_importer, mut kind_indent, mut in_name) = (false, None::<usize>, false);
    for line in lock.lines().filter(|line| !line.trim().is_empty()) {
        let (indent, content) = (line.len() - line.trim_start().len(), line.trim());
        if indent == 0 {
            root_importer = false;
        } else if indent == 2 && kind_indent.is_none_or(|k| k != 0) {
            root_importer = matches!(content, ".:" | "'.':");
        }
        let kind = matches!(
            content,
            "dependencies:" | "devDependencies:" | "optionalDependencies:"
        );
        if kind && (indent == 0 || (indent == 4 && root_importer)) {
            (kind_indent, in_name) = (Some(indent), false);
            continue;
        }
        match kind_indent {
            Some(k) if indent <= k => (kind_indent, in_name) = (None, false),
            Some(k) if indent == k + 2 => {
                in_name = content.strip_suffix(':').map(|n| n.trim_matches('\'')) == Some(name)
            }
            Some(k) if indent == k + 4 && in_name => {
                if let Some(version) = content.strip_prefix("version: ") {
                    return Some(without_peers(version.trim_matches('\'')).to_owned());
                }
            }
            _ => {}
        }
    }
    None
}

/// yarn 1 and Berry: every entry that depends on the package; direct when one of its
/// specifiers is a declared name at its declared range (`parent@^1.0.0`, Berry's
/// `parent@npm:^1.0.0`).
fn yarn_holders(
    lock: &str,
    declared: &dyn Fn(&str) -> Option<String>,
    package: &str,
) -> Vec<Blocker> {
    let mut found = Vec::new();
    for holder in overrides::block_holders(Manager::Yarn, lock, package) {
        let (Some(first), Some(version)) = (holder.specs.first(), &holder.version) else {
            continue;
        };
        let direct = holder.specs.iter().any(|spec| {
            let name = super::yarn::spec_name(spec);
            let range = spec.get(name.len() + 1..).unwrap_or_default();
            let range = range.strip_prefix("npm:").unwrap_or(range);
            declared(name).is_some_and(|declared| declared == range)
        });
        found.push(Blocker {
            name: super::yarn::spec_name(first).to_owned(),
            version: version.clone(),
            range: holder.asked.clone(),
            direct,
        });
    }
    found
}

/// The lowest later release of `blocker` in its major whose range for `package` admits
/// `target`, asking the registry through npm in the sandbox; `None` when there is none.
pub async fn find(
    context: LockContext<'_>,
    dir: &str,
    blocker: &Blocker,
    package: &str,
    target: &str,
) -> Result<Option<ParentUpgrade>, LockError> {
    let versions: Vec<String> =
        serde_json::from_str(&view(context, dir, &blocker.name, "versions").await?)
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
        let text = view(context, dir, &spec, "dependencies").await?;
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
    context: LockContext<'_>,
    dir: &str,
    spec: &str,
    field: &str,
) -> Result<String, LockError> {
    let settings = context.settings;
    let mut args: Vec<String> = ["view", spec, field, "--json", "--loglevel=silent"]
        .map(str::to_owned)
        .to_vec();
    if !settings.npm_registry.is_empty() {
        args.push(format!("--registry={}", settings.npm_registry));
    }
    let run = ToolRun {
        program: settings.npm.clone(),
        args,
        work_tree: context.work_tree.to_path_buf(),
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
    let ran = super::run_with_credentials(context.sandbox, settings, &run, "install npm").await?;
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

    fn blocker(name: &str, version: &str, range: &str, direct: bool) -> Blocker {
        Blocker {
            name: name.into(),
            version: version.into(),
            range: range.into(),
            direct,
        }
    }

    #[test]
    fn blockers_are_the_entries_whose_range_excludes_the_fix() {
        let npm = r#"{"packages": {"": {},
            "node_modules/parent": {"version": "1.0.0", "dependencies": {"lodash": "4.17.20"}},
            "node_modules/easy": {"version": "2.0.0", "dependencies": {"lodash": "^4.17.0"}},
            "node_modules/deep/node_modules/x": {"version": "1.0.0", "dependencies": {"lodash": "4.17.20"}},
            "node_modules/lodash": {"version": "4.17.20"}}}"#;
        let pnpm = "lockfileVersion: '9.0'\n\nimporters:\n\n  .:\n    dependencies:\n      parent:\n        specifier: ^1.0.0\n        version: 1.0.0\n      easy:\n        specifier: ^2.0.0\n        version: 2.0.0\n\npackages:\n\n  lodash@4.17.20:\n    resolution: {integrity: sha512-x}\n\nsnapshots:\n\n  easy@2.0.0:\n    dependencies:\n      lodash: 4.17.21\n\n  lodash@4.17.20: {}\n\n  parent@1.0.0:\n    dependencies:\n      lodash: 4.17.20\n\n  parent@1.1.0:\n    dependencies:\n      lodash: 4.17.19\n";
        let classic = "# yarn lockfile v1\n\n\nlodash@4.17.20:\n  version \"4.17.20\"\n\n\"parent@^1.0.0\":\n  version \"1.0.0\"\n  dependencies:\n    lodash \"4.17.20\"\n\nparent@^0.9.0:\n  version \"0.9.0\"\n  dependencies:\n    lodash \"4.17.19\"\n";
        let berry = "__metadata:\n  version: 8\n\n\"parent@npm:^1.0.0\":\n  version: 1.0.0\n  dependencies:\n    lodash: \"npm:4.17.20\"\n";
        let manifest = r#"{"dependencies": {"parent": "^1.0.0", "easy": "^2.0.0"}}"#;
        let yarn_manifest = r#"{"devDependencies": {"parent": "^1.0.0"}}"#;
        let parent = blocker("parent", "1.0.0", "4.17.20", true);
        let cases = [
            // npm: direct dependencies, and a holder further down.
            (
                Manager::Npm,
                npm,
                manifest,
                vec![parent.clone(), blocker("x", "1.0.0", "4.17.20", false)],
            ),
            // pnpm: easy already has the fix; parent 1.1.0 is not the root's.
            (
                Manager::Pnpm,
                pnpm,
                manifest,
                vec![parent.clone(), blocker("parent", "1.1.0", "4.17.19", false)],
            ),
            // yarn: entries at the declared range; the 0.9 line is another package's,
            // further down.
            (Manager::Yarn, berry, yarn_manifest, vec![parent.clone()]),
            (
                Manager::Yarn,
                classic,
                yarn_manifest,
                vec![blocker("parent", "0.9.0", "4.17.19", false), parent],
            ),
        ];
        for (manager, lock, manifest, expected) in cases {
            let found = blockers(manager, lock, manifest, "lodash", &["4.17.21"]);
            assert_eq!(found, expected, "{manager:?}: {lock}");
        }
    }

    #[test]
    fn a_parent_upgrade_names_what_it_pulls() {
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
