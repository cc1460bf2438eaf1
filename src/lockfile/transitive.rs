//! Where a package no manifest declares comes from: every lock file of the ecosystem in the
//! work tree that resolves it (a scanner's finding names the package and its installed version,
//! not the path to it). The patcher uses this to choose a lock-only update, and the lock step to
//! know which manifests' locks to update.

use std::path::Path;

use super::tool::ReadCopies;
use super::{FixedVersions, Resolved};
use crate::ecosystem::Ecosystem;

/// A lock file that resolves the package, and the manifest beside it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockedCopies {
    pub lock: String,
    pub manifest: String,
    pub copies: Vec<Resolved>,
}

/// Directories never searched: installed trees, build output, VCS metadata.
const SKIPPED: &[&str] = &[
    ".git",
    "node_modules",
    "target",
    "vendor",
    ".venv",
    "venv",
    "dist",
];
const MAX_DEPTH: usize = 8;

/// Every lock of `ecosystem` under `root` that resolves `package`, sorted by path.
pub fn find(
    root: &Path,
    ecosystem: &Ecosystem,
    package: &str,
    fixes: &FixedVersions,
) -> Vec<LockedCopies> {
    let mut found = Vec::new();
    walk(root, "", 0, &mut |path, name| {
        let Some((manifest, parse)) = parser(ecosystem, name) else {
            return;
        };
        let Ok(text) = crate::lockfile::repo_file::read(root, path) else {
            return;
        };
        let copies = parse(&text, path, package, fixes);
        if !copies.is_empty() {
            found.push(LockedCopies {
                lock: path.to_owned(),
                manifest: super::join(super::parent_dir(path), manifest),
                copies,
            });
        }
    });
    found.sort_by(|a, b| a.lock.cmp(&b.lock));
    found
}

/// The manifest beside a lock file named `name` of `ecosystem`, and how to read the lock.
fn parser(ecosystem: &Ecosystem, name: &str) -> Option<(&'static str, ReadCopies)> {
    let file = super::tool::lock_file(ecosystem, name)?;
    Some((file.manifest, file.copies))
}

/// Every file named `name` under `dir` of the work tree (a workspace's member manifests),
/// skipping what the lock search skips, sorted.
pub fn manifests_under(root: &Path, dir: &str, name: &str) -> Vec<String> {
    let mut found = Vec::new();
    walk(root, dir, 0, &mut |path, file| {
        if file == name {
            found.push(path.to_owned());
        }
    });
    found
}

/// Visits every regular file (never following links), depth-limited.
fn walk(root: &Path, dir: &str, depth: usize, visit: &mut dyn FnMut(&str, &str)) {
    if depth > MAX_DEPTH {
        return;
    }
    let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let path = super::join(dir, &name);
        if kind.is_dir() && !SKIPPED.contains(&name.as_str()) {
            walk(root, &path, depth + 1, visit);
        } else if kind.is_file() {
            visit(&path, &name);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_that_resolve_the_package_are_found_with_their_manifest() {
        let root = tempfile::tempdir().unwrap();
        let write = |path: &str, text: &str| {
            let path = root.path().join(path);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        };
        let lock = |version: &str| {
            format!(
                "{{\"lockfileVersion\": 3, \"packages\": {{\"\": {{}}, \"node_modules/parent/node_modules/lodash\": {{\"version\": \"{version}\"}}}}}}"
            )
        };
        write("web/package-lock.json", &lock("4.17.20"));
        write("node_modules/x/package-lock.json", &lock("4.17.15"));
        write(
            "api/package-lock.json",
            "{\"lockfileVersion\": 3, \"packages\": {\"\": {}}}",
        );
        write(
            "Cargo.lock",
            "[[package]]\nname = \"lodash\"\nversion = \"1.0.0\"\n",
        );
        let find_in = |ecosystem: Ecosystem, package: &str, fix: &str| {
            find(
                root.path(),
                &ecosystem,
                package,
                &FixedVersions::single(fix),
            )
        };
        let found = find_in(Ecosystem::Npm, "lodash", "4.17.21");
        assert_eq!(
            found,
            vec![LockedCopies {
                lock: "web/package-lock.json".to_owned(),
                manifest: "web/package.json".to_owned(),
                copies: vec![Resolved {
                    path: "node_modules/parent/node_modules/lodash".to_owned(),
                    version: "4.17.20".to_owned(),
                    vulnerable: true,
                }],
            }]
        );
        write(
            "svc/go.mod",
            "module x\n\ngo 1.21\n\nrequire (\n\tgithub.com/a/b v1.4.0 // indirect\n)\n",
        );
        let go = find_in(Ecosystem::Go, "github.com/a/b", "1.4.1");
        assert_eq!(go[0].manifest, "svc/go.mod");
        assert!(go[0].copies[0].vulnerable);
    }
}
