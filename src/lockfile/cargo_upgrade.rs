//! The Cargo upgrade path for a transitive crate its dependents hold below the fix: which
//! crates of `Cargo.lock` hold it (walking up, parent by parent, to a dependency of a
//! workspace member), and for each the lowest later release whose own requirement admits
//! the fix, read from the registry index cargo resolves from. Then cargo itself moves each
//! parent (`cargo update -p PARENT@OLD --precise NEW`, in the sandbox), top-down.
//!
//! The index is what cargo itself reads: the local registries the worker's cargo config names
//! (`lockfiles.cargo_registry_dirs`: `DIR/index/...`, the operator's own files), and for a
//! registry served over the network (sparse or git), the entries a `cargo update --dry-run` in
//! the sandbox fetched and cached ([`super::cargo::fetched_index`]). No registry client here.

use std::path::PathBuf;

use serde::Deserialize;
use toml_edit::{DocumentMut, Item};

use super::npm_upgrade::ParentUpgrade;
use super::tool::LockContext;
use super::{FixedVersions, LockError, LockfileSettings};
use crate::patch::bump::{Version, cargo_range_admits};

/// Parent levels walked up from the vulnerable crate at most.
const MAX_DEPTH: usize = 4;

/// One `[[package]]` of `Cargo.lock`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedCrate {
    pub name: String,
    pub version: String,
    /// No `source`: a workspace member (or a path dependency), whose manifest is in the tree.
    pub member: bool,
    /// `(name, version)` of each dependency; the version only where the lock has several.
    pub dependencies: Vec<(String, Option<String>)>,
}

impl LockedCrate {
    fn depends_on(&self, name: &str, version: &str) -> bool {
        self.dependencies
            .iter()
            .any(|(n, v)| n == name && v.as_deref().is_none_or(|v| v == version))
    }
}

/// Every `[[package]]` of a `Cargo.lock`; empty when it does not parse.
pub fn parse_lock(text: &str) -> Vec<LockedCrate> {
    let Ok(document) = text.parse::<DocumentMut>() else {
        return Vec::new();
    };
    let Some(packages) = document.get("package").and_then(Item::as_array_of_tables) else {
        return Vec::new();
    };
    packages
        .iter()
        .filter_map(|table| {
            let name = table.get("name")?.as_str()?.to_owned();
            let version = table.get("version")?.as_str()?.to_owned();
            // `"name"`, `"name version"` or `"name version (source)"`.
            let dependencies = table
                .get("dependencies")
                .and_then(Item::as_array)
                .map(|list| {
                    list.iter()
                        .filter_map(|entry| entry.as_str())
                        .filter_map(|spec| {
                            let mut words = spec.split_whitespace();
                            let name = words.next()?.to_owned();
                            Some((name, words.next().map(str::to_owned)))
                        })
                        .collect()
                })
                .unwrap_or_default();
            Some(LockedCrate {
                member: table.get("source").is_none(),
                name,
                version,
                dependencies,
            })
        })
        .collect()
}

/// One release of a crate as the registry index lists it (one JSON line).
#[derive(Debug, Clone, Deserialize)]
pub struct IndexEntry {
    pub vers: String,
    #[serde(default)]
    pub deps: Vec<IndexDependency>,
    #[serde(default)]
    pub yanked: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct IndexDependency {
    pub name: String,
    pub req: String,
    /// The real crate when the dependency is renamed.
    #[serde(default)]
    pub package: Option<String>,
    #[serde(default)]
    pub kind: Option<String>,
}

impl IndexEntry {
    /// What this release requires of `package` (dev-dependencies aside); `None`: nothing.
    fn requirement(&self, package: &str) -> Option<&str> {
        self.deps
            .iter()
            .filter(|dep| dep.kind.as_deref() != Some("dev"))
            .find(|dep| dep.package.as_deref().unwrap_or(&dep.name) == package)
            .map(|dep| dep.req.as_str())
    }

    fn admits(&self, package: &str, target: &str) -> bool {
        self.requirement(package)
            .is_none_or(|req| cargo_range_admits(req, target) == Some(true))
    }
}

/// The releases of an index file (JSON lines; a line that does not parse is skipped).
pub fn parse_index(text: &str) -> Vec<IndexEntry> {
    text.lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

/// The releases of a crate's file in cargo's index cache (`registry/index/*/.cache/`): a
/// format byte (3), the index format (u32), the index version (an ETag or Last-Modified)
/// ending in NUL, then each release's version and JSON line, each ending in NUL. Another
/// format reads as no release.
pub fn parse_cache(bytes: &[u8]) -> Vec<IndexEntry> {
    let (Some(3), Some(rest)) = (bytes.first(), bytes.get(5..)) else {
        return Vec::new();
    };
    let mut parts = rest.split(|b| *b == 0).skip(1);
    let mut found = Vec::new();
    while let (Some(_version), Some(json)) = (parts.next(), parts.next()) {
        if let Ok(entry) = serde_json::from_slice(json) {
            found.push(entry);
        }
    }
    found
}

/// Where the index keeps a crate's file: `1/a`, `2/ab`, `3/a/abc`, `se/rd/serde`.
pub fn index_path(name: &str) -> String {
    let name = name.to_ascii_lowercase();
    match name.len() {
        1 => format!("1/{name}"),
        2 => format!("2/{name}"),
        3 => format!("3/{}/{name}", &name[..1]),
        _ => format!("{}/{}/{name}", &name[..2], &name[2..4]),
    }
}

/// A crate's releases from the local registries of the worker's config (first that has it).
pub fn local_index(settings: &LockfileSettings, name: &str) -> Vec<IndexEntry> {
    settings
        .cargo_registry_dirs
        .iter()
        .map(|dir| PathBuf::from(dir).join("index").join(index_path(name)))
        .find_map(|file| std::fs::read_to_string(file).ok())
        .map(|text| parse_index(&text))
        .unwrap_or_default()
}

/// The lowest release of a crate after `current` whose requirement on `package` admits
/// `target` (or that no longer depends on it): within `current`'s semver-compatible line
/// first, as `cargo update` may move it, else the lowest later one. Yanked releases and
/// pre-releases are never chosen.
pub fn lowest_admitting<'a>(
    releases: &'a [IndexEntry],
    current: &str,
    package: &str,
    target: &str,
) -> Option<&'a IndexEntry> {
    let floor = Version::parse(current)?;
    let mut later: Vec<(Version, &IndexEntry)> = releases
        .iter()
        .filter(|entry| !entry.yanked)
        .filter_map(|entry| Version::parse(&entry.vers).map(|v| (v, entry)))
        .filter(|(v, _)| *v > floor && !v.is_prerelease())
        .filter(|(_, entry)| entry.admits(package, target))
        .collect();
    later.sort_by(|a, b| a.0.cmp(&b.0));
    let compatible = format!("^{current}");
    later
        .iter()
        .find(|(_, entry)| cargo_range_admits(&compatible, &entry.vers) == Some(true))
        .or_else(|| later.first())
        .map(|(_, entry)| *entry)
}

/// One parent to move, and whether a workspace member declares it (its manifest may need the
/// bump).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    pub upgrade: ParentUpgrade,
    /// The crate it holds (the vulnerable one, or the parent one level down).
    pub holds: String,
    pub direct: bool,
}

impl Step {
    /// `parentcrate 1.0.0 -> 1.1.0 pulls vulncrate ^1.0.1`
    pub fn chain(&self) -> String {
        self.upgrade.chain(&self.holds)
    }
}

/// The parents to move, top-down (a member's dependency first), so that each `cargo update`
/// finds its dependents already admitting it; or why there is no upgrade path, naming the
/// parent and what would unblock it.
pub fn plan(
    lock: &[LockedCrate],
    index: &dyn Fn(&str) -> Vec<IndexEntry>,
    package: &str,
    fixes: &FixedVersions,
) -> Result<Vec<Step>, String> {
    let mut steps = Vec::new();
    unblock(lock, index, package, fixes, 0, &mut steps)?;
    steps.reverse();
    // A parent two holders share is moved once, where it first comes.
    let mut seen = Vec::new();
    steps.retain(|step| {
        let key = (step.upgrade.parent.clone(), step.upgrade.from.clone());
        let first = !seen.contains(&key);
        seen.push(key);
        first
    });
    Ok(steps)
}

/// Finds, for every vulnerable copy of `package`, each registry crate that holds it and its
/// release that admits the fix of that copy's line, then does the same for that release's own
/// dependents.
fn unblock(
    lock: &[LockedCrate],
    index: &dyn Fn(&str) -> Vec<IndexEntry>,
    package: &str,
    fixes: &FixedVersions,
    depth: usize,
    steps: &mut Vec<Step>,
) -> Result<(), String> {
    let copies = lock.iter().filter(|c| c.name == package).filter_map(|c| {
        let target = fixes.for_copy(&c.version)?;
        Some((c, target))
    });
    for (copy, target) in copies {
        let holders = lock
            .iter()
            .filter(|c| !c.member && c.depends_on(package, &copy.version));
        for parent in holders {
            let releases = index(&parent.name);
            let Some(locked) = releases.iter().find(|e| e.vers == parent.version) else {
                return Err(format!(
                    "{} {} holds {package} {}, and its requirements could not be read from the \
                     registry index cargo fetched; upgrade {} to a release whose requirement \
                     admits {package} {target}",
                    parent.name, parent.version, copy.version, parent.name
                ));
            };
            let asked = locked.requirement(package).unwrap_or("*");
            if locked.admits(package, target) {
                continue;
            }
            let Some(release) = lowest_admitting(&releases, &parent.version, package, target)
            else {
                return Err(format!(
                    "{} {} requires {package} {asked}, and no later release of {} admits \
                     {package} {target}; replace it, or patch it by hand (a `[patch]` section)",
                    parent.name, parent.version, parent.name
                ));
            };
            if depth + 1 >= MAX_DEPTH {
                return Err(format!(
                    "{} {} requires {package} {asked} ({} {} admits {package} {target}), more \
                     than {MAX_DEPTH} levels below the project's own dependencies",
                    parent.name, parent.version, parent.name, release.vers
                ));
            }
            let direct = lock
                .iter()
                .any(|c| c.member && c.depends_on(&parent.name, &parent.version));
            steps.push(Step {
                upgrade: ParentUpgrade {
                    parent: parent.name.clone(),
                    from: parent.version.clone(),
                    to: release.vers.clone(),
                    range: release.requirement(package).map(str::to_owned),
                },
                holds: package.to_owned(),
                direct,
            });
            let parent_fix = FixedVersions::single(&release.vers);
            unblock(lock, index, &parent.name, &parent_fix, depth + 1, steps)?;
        }
    }
    Ok(())
}

/// Moves each parent of `steps` (top-down) with `cargo update -p PARENT@FROM --precise TO`
/// in the sandbox; a parent an earlier step already moved is left to it.
pub async fn apply(context: LockContext<'_>, lock: &str, steps: &[Step]) -> Result<(), LockError> {
    for step in steps {
        let text = super::read(context.work_tree, lock)?;
        let upgrade = &step.upgrade;
        let still_there = parse_lock(&text)
            .iter()
            .any(|c| c.name == upgrade.parent && c.version == upgrade.from);
        if still_there {
            let spec = format!("{}@{}", upgrade.parent, upgrade.from);
            super::cargo::precise(context, lock, &spec, &upgrade.to).await?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(vers: &str, deps: &[(&str, &str)]) -> IndexEntry {
        IndexEntry {
            vers: vers.to_owned(),
            deps: deps
                .iter()
                .map(|(name, req)| IndexDependency {
                    name: (*name).to_owned(),
                    req: (*req).to_owned(),
                    package: None,
                    kind: None,
                })
                .collect(),
            yanked: false,
        }
    }

    const LOCK: &str = "version = 4\n\n[[package]]\nname = \"app\"\nversion = \"0.1.0\"\ndependencies = [\n \"grand\",\n \"other\",\n]\n\n[[package]]\nname = \"grand\"\nversion = \"1.0.0\"\nsource = \"local-registry+file:///srv/reg\"\ndependencies = [\n \"parent\",\n]\n\n[[package]]\nname = \"other\"\nversion = \"2.0.0\"\nsource = \"local-registry+file:///srv/reg\"\ndependencies = [\n \"vuln\",\n]\n\n[[package]]\nname = \"parent\"\nversion = \"1.0.0\"\nsource = \"local-registry+file:///srv/reg\"\ndependencies = [\n \"vuln\",\n]\n\n[[package]]\nname = \"vuln\"\nversion = \"1.0.0\"\nsource = \"local-registry+file:///srv/reg\"\n";

    fn index(name: &str) -> Vec<IndexEntry> {
        match name {
            "grand" => vec![
                entry("1.0.0", &[("parent", "=1.0.0")]),
                entry("1.0.1", &[("parent", "^1.1")]),
                entry("1.0.2", &[("parent", "^1.1")]),
            ],
            "parent" => vec![
                entry("1.0.0", &[("vuln", "=1.0.0")]),
                entry("1.1.0", &[("vuln", "^1.0.1")]),
                entry("1.2.0", &[]),
            ],
            "other" => vec![entry("2.0.0", &[("vuln", "1")])],
            _ => Vec::new(),
        }
    }

    #[test]
    fn index_cache_files_are_read_as_cargo_writes_them() {
        let mut bytes = vec![3, 2, 0, 0, 0];
        bytes.extend_from_slice(b"etag: \"x\"\0");
        for (version, json) in [
            (
                "1.0.0",
                r#"{"name":"p","vers":"1.0.0","deps":[{"name":"v","req":"=1.0.0"}]}"#,
            ),
            (
                "1.1.0",
                r#"{"name":"p","vers":"1.1.0","deps":[],"yanked":true}"#,
            ),
        ] {
            bytes.extend_from_slice(version.as_bytes());
            bytes.push(0);
            bytes.extend_from_slice(json.as_bytes());
            bytes.push(0);
        }
        let releases = parse_cache(&bytes);
        assert_eq!(releases.len(), 2);
        assert_eq!(releases[0].requirement("v"), Some("=1.0.0"));
        assert!(releases[1].yanked);
        bytes[0] = 4;
        assert!(
            parse_cache(&bytes).is_empty(),
            "another format reads as nothing"
        );
    }

    #[test]
    fn the_lock_is_read_with_members_and_versioned_dependencies() {
        let lock = parse_lock(
            "[[package]]\nname = \"app\"\nversion = \"0.1.0\"\ndependencies = [\"vuln 1.0.0\", \"vuln 2.0.0 (registry+x)\"]\n",
        );
        assert!(lock[0].member);
        assert!(lock[0].depends_on("vuln", "1.0.0") && lock[0].depends_on("vuln", "2.0.0"));
        assert!(!lock[0].depends_on("vuln", "3.0.0"));
        assert_eq!(index_path("serde"), "se/rd/serde");
        assert_eq!(index_path("syn"), "3/s/syn");
        assert_eq!(index_path("Ab"), "2/ab");
    }

    #[test]
    fn the_lowest_admitting_release_is_taken_in_the_compatible_line_first() {
        let releases = [
            entry("1.0.0", &[("vuln", "=1.0.0")]),
            entry("1.0.1", &[("vuln", "=1.0.0")]),
            entry("2.0.0", &[("vuln", "^1.0.1")]),
            entry("1.3.0", &[("vuln", "^1.0.1")]),
            entry("1.2.0-rc.1", &[("vuln", "^1.0.1")]),
            IndexEntry {
                yanked: true,
                ..entry("1.2.0", &[("vuln", "^1.0.1")])
            },
        ];
        let found = lowest_admitting(&releases, "1.0.0", "vuln", "1.0.1").unwrap();
        assert_eq!(found.vers, "1.3.0");
        // Nothing later in 2.x admits it: the lowest later release of any line.
        let found = lowest_admitting(&releases[..3], "1.0.0", "vuln", "1.0.1").unwrap();
        assert_eq!(found.vers, "2.0.0");
        assert!(lowest_admitting(&releases[..2], "1.0.0", "vuln", "1.0.1").is_none());
        // A release that no longer depends on it admits it.
        let gone = [entry("1.0.0", &[("vuln", "=1.0.0")]), entry("1.1.0", &[])];
        assert_eq!(
            lowest_admitting(&gone, "1.0.0", "vuln", "1.0.1")
                .unwrap()
                .vers,
            "1.1.0"
        );
    }

    #[test]
    fn the_plan_walks_up_to_the_members_dependency_and_runs_top_down() {
        let lock = parse_lock(LOCK);
        let steps = plan(&lock, &index, "vuln", &FixedVersions::single("1.0.1")).unwrap();
        // `other` admits the fix: it holds nothing. `parent` needs 1.1.0, which `grand` 1.0.0
        // does not admit, so `grand` moves first.
        let chains: Vec<String> = steps
            .iter()
            .map(|s| format!("{} {}", s.chain(), s.direct))
            .collect();
        assert_eq!(
            chains,
            [
                "grand 1.0.0 -> 1.0.1 pulls parent ^1.1 true",
                "parent 1.0.0 -> 1.1.0 pulls vuln ^1.0.1 false"
            ]
        );
    }

    #[test]
    fn no_admitting_release_names_the_parent_that_blocks() {
        let lock = parse_lock(LOCK);
        let stuck = |name: &str| match name {
            "parent" => vec![entry("1.0.0", &[("vuln", "=1.0.0")])],
            other => index(other),
        };
        assert_eq!(
            plan(&lock, &stuck, "vuln", &FixedVersions::single("1.0.1")),
            Err(
                "parent 1.0.0 requires vuln =1.0.0, and no later release of parent admits \
                 vuln 1.0.1; replace it, or patch it by hand (a `[patch]` section)"
                    .to_owned()
            )
        );
        let unknown = |_: &str| Vec::new();
        let error = plan(&lock, &unknown, "vuln", &FixedVersions::single("1.0.1")).unwrap_err();
        assert!(error.starts_with("other 2.0.0 holds vuln 1.0.0"), "{error}");
    }
}
