//! Finds the manifests of an ecosystem in a checked-out work tree, for the deterministic bump.

use crate::ecosystem::Ecosystem;
use std::path::Path;

use crate::git::tree_files::NOT_PROJECT_DIRS;
use crate::patch::bump::{ManifestKind, ecosystem_manifests};

const MAX_DEPTH: usize = 8;
const MAX_ENTRIES: usize = 50_000;

/// Repository-relative paths (with `/`) of the manifests `ecosystem` uses, sorted so the
/// result, and so the patch, is the same on every run.
pub fn find(root: &Path, ecosystem: &Ecosystem) -> std::io::Result<Vec<(String, ManifestKind)>> {
    let wanted = ecosystem_manifests(ecosystem);
    let mut found = Vec::new();
    if wanted.is_empty() {
        return Ok(found);
    }
    let mut stack = vec![(root.to_path_buf(), String::new(), 0usize)];
    let mut seen = 0usize;
    while let Some((dir, prefix, depth)) = stack.pop() {
        for entry in std::fs::read_dir(&dir)? {
            let entry = entry?;
            seen += 1;
            if seen > MAX_ENTRIES {
                return Ok(sorted(found));
            }
            let name = entry.file_name().to_string_lossy().into_owned();
            let rel = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}/{name}")
            };
            // Symlinks are never followed: the patch policy refuses them anyway.
            let kind = entry.file_type()?;
            if kind.is_dir() {
                if depth < MAX_DEPTH && !NOT_PROJECT_DIRS.contains(&name.as_str()) {
                    stack.push((entry.path(), rel, depth + 1));
                }
            } else if kind.is_file()
                && let Some(manifest) = ManifestKind::detect(&rel)
                && wanted.contains(&manifest)
            {
                found.push((rel, manifest));
            }
        }
    }
    Ok(sorted(found))
}

fn sorted(mut found: Vec<(String, ManifestKind)>) -> Vec<(String, ManifestKind)> {
    found.sort_by(|a, b| a.0.cmp(&b.0));
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_ecosystems_manifests_and_skips_vendored_trees() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for path in [
            "package.json",
            "web/package.json",
            "node_modules/lodash/package.json",
            "Cargo.toml",
            "requirements-dev.txt",
        ] {
            let full = root.join(path);
            std::fs::create_dir_all(full.parent().unwrap()).unwrap();
            std::fs::write(full, "{}").unwrap();
        }
        let npm: Vec<_> = find(root, &Ecosystem::Npm)
            .unwrap()
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(npm, vec!["package.json", "web/package.json"]);
        let pypi: Vec<_> = find(root, &Ecosystem::PyPi)
            .unwrap()
            .into_iter()
            .map(|(p, _)| p)
            .collect();
        assert_eq!(pypi, vec!["requirements-dev.txt"]);
        assert!(
            find(root, &Ecosystem::parse("unknown-ecosystem"))
                .unwrap()
                .is_empty()
        );
    }
}
