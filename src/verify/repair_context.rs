//! What a repair round shows the model besides the failures: the project's files that import
//! or require the package, or any of the packages a grouped fix moved (a search of the tested tree's text files for its name), the change
//! so far as a diff, and the fixed release's own notes when the installed package ships them
//! (a CHANGELOG, HISTORY or RELEASES file in `node_modules/<package>/`, or a wheel's METADATA
//! description in a virtualenv's site-packages), excerpted around the versions crossed. Every
//! part is capped; all of it is untrusted text the prompt fences.

use std::path::Path;

use crate::git::tree_files::NOT_PROJECT_DIRS;
use crate::llm::ContextFile;

/// Files searched for the package's name, at most.
const MAX_SCANNED: usize = 5_000;
/// Largest file read in the search.
const MAX_FILE_BYTES: u64 = 128 * 1024;

/// The files under `tree/dir` whose text names any of `packages`, source files before test
/// files, at most `max_files` of them and `max_chars` in all (a file beyond that is cut and
/// marked).
pub fn importers(
    tree: &Path,
    dir: &str,
    packages: &[&str],
    max_files: usize,
    max_chars: usize,
) -> Vec<ContextFile> {
    let root = tree.join(dir);
    let mut found: Vec<(String, String)> = Vec::new();
    let mut scanned = 0usize;
    let mut stack = vec![root.clone()];
    while let Some(current) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&current) else {
            continue;
        };
        let mut entries: Vec<_> = entries.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for entry in entries {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            let name = entry.file_name().to_string_lossy().into_owned();
            if kind.is_dir() {
                if !NOT_PROJECT_DIRS.contains(&name.as_str()) && !name.starts_with('.') {
                    stack.push(entry.path());
                }
                continue;
            }
            // Links are never followed: a hostile tree could point anywhere.
            if !kind.is_file() || scanned >= MAX_SCANNED {
                continue;
            }
            scanned += 1;
            if entry.metadata().map_or(true, |m| m.len() > MAX_FILE_BYTES) {
                continue;
            }
            let Ok(text) = std::fs::read_to_string(entry.path()) else {
                continue;
            };
            if !packages.iter().any(|p| text.contains(p)) || text.contains('\0') {
                continue;
            }
            let Ok(relative) = entry.path().strip_prefix(tree).map(Path::to_path_buf) else {
                continue;
            };
            found.push((relative.to_string_lossy().replace('\\', "/"), text));
        }
    }
    // Manifests and lock files are the change's, not callers: left out.
    found.retain(|(path, _)| {
        let name = path.rsplit('/').next().unwrap_or(path);
        !crate::lockfile::on_disk::is_tool_file(name)
    });
    found.sort_by_key(|(path, _)| {
        (
            crate::patch::test_files::test_file_reason(path).is_some(),
            path.clone(),
        )
    });
    let mut left = max_chars;
    let mut files = Vec::new();
    for (path, text) in found.into_iter().take(max_files) {
        if left == 0 {
            break;
        }
        let (content, truncated) = cut(&text, left);
        left -= content.len();
        files.push(ContextFile {
            path,
            content,
            truncated,
        });
    }
    files
}

/// The installed `package`'s release notes in `tree/dir`, excerpted from the newest version
/// crossed (`to`) down to the one installed before (`from`), at most `max_chars`: the notes'
/// path (relative to the tree) and the excerpt.
pub fn release_notes(
    tree: &Path,
    dir: &str,
    package: &str,
    from: &str,
    to: &str,
    max_chars: usize,
) -> Option<(String, String)> {
    let root = tree.join(dir);
    let (path, text) = npm_notes(&root, package).or_else(|| wheel_notes(&root, package))?;
    let relative = path
        .strip_prefix(tree)
        .map(|p| p.to_string_lossy().replace('\\', "/"))
        .unwrap_or_default();
    Some((relative, excerpt(&text, from, to, max_chars)))
}

fn npm_notes(root: &Path, package: &str) -> Option<(std::path::PathBuf, String)> {
    if package.contains("..") {
        return None;
    }
    let dir = root.join("node_modules").join(package);
    let mut names: Vec<_> = std::fs::read_dir(&dir).ok()?.flatten().collect();
    names.sort_by_key(|e| e.file_name());
    names.into_iter().find_map(|entry| {
        let name = entry.file_name().to_string_lossy().to_ascii_uppercase();
        let notes = ["CHANGELOG", "HISTORY", "RELEASES", "CHANGES"]
            .iter()
            .any(|n| name.starts_with(n));
        let regular = entry.file_type().is_ok_and(|t| t.is_file());
        if !notes || !regular {
            return None;
        }
        read_capped(&entry.path()).map(|text| (entry.path(), text))
    })
}

/// A wheel's METADATA in `.venv/lib/python*/site-packages/<name>-<version>.dist-info/`: the
/// description after the headers.
fn wheel_notes(root: &Path, package: &str) -> Option<(std::path::PathBuf, String)> {
    let wanted = package.to_ascii_lowercase().replace(['-', '.'], "_");
    let lib = root.join(".venv").join("lib");
    for python in std::fs::read_dir(lib).ok()?.flatten() {
        let site = python.path().join("site-packages");
        let Ok(entries) = std::fs::read_dir(&site) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().to_ascii_lowercase();
            let Some(stem) = name.strip_suffix(".dist-info") else {
                continue;
            };
            let dist = stem.rsplit_once('-').map_or(stem, |(n, _)| n);
            if dist.replace(['-', '.'], "_") != wanted {
                continue;
            }
            let metadata = entry.path().join("METADATA");
            let text = read_capped(&metadata)?;
            // The description is what follows the first blank line, or a Description header.
            let description = text
                .split_once("\n\n")
                .map(|(_, body)| body.to_owned())
                .unwrap_or_default();
            if description.trim().is_empty() {
                return None;
            }
            return Some((metadata, description));
        }
    }
    None
}

fn read_capped(path: &Path) -> Option<String> {
    let is_file = std::fs::symlink_metadata(path).is_ok_and(|m| m.is_file() && m.len() < 4 << 20);
    is_file
        .then(|| std::fs::read_to_string(path).ok())
        .flatten()
}

/// The lines of `text` from the first that names `to` down to the first after it that names
/// `from` (release notes list the newest first), or from the top when `to` is not named; at
/// most `max_chars`.
pub fn excerpt(text: &str, from: &str, to: &str, max_chars: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    let start = lines.iter().position(|l| l.contains(to)).unwrap_or(0);
    let end = lines
        .iter()
        .skip(start + 1)
        .position(|l| l.contains(from))
        .map_or(lines.len(), |i| start + 1 + i);
    let joined = lines
        .get(start..end)
        .map(|ls| ls.join("\n"))
        .unwrap_or_default();
    cut(&joined, max_chars).0
}

/// The change so far as a diff of each file's changed region (`-` its lines before, `+` after).
pub fn diff(path: &str, before: &str, after: &str, max_chars: usize) -> String {
    let old: Vec<&str> = before.lines().collect();
    let new: Vec<&str> = after.lines().collect();
    let (prefix, suffix) = crate::patch::size::shared_ends(&old, &new);
    let mut out = format!("--- a/{path}\n+++ b/{path}\n@@ line {} @@\n", prefix + 1);
    for line in &old[prefix..old.len() - suffix] {
        out.push_str(&format!("-{line}\n"));
    }
    for line in &new[prefix..new.len() - suffix] {
        out.push_str(&format!("+{line}\n"));
    }
    cut(&out, max_chars).0
}

/// `text` cut to at most `max` bytes on a character boundary, and whether it was cut.
fn cut(text: &str, max: usize) -> (String, bool) {
    if text.len() <= max {
        return (text.to_owned(), false);
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    (format!("{}\n[… cut]", &text[..end]), true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_excerpt_runs_from_the_fixed_version_to_the_installed_one() {
        let notes = "# Changes\n\n## 2.0.0\n- removed format(); use pad\n\n## 1.0.1\n- a fix\n\n## 1.0.0\n- first\n";
        let got = excerpt(notes, "1.0.1", "2.0.0", 1000);
        assert_eq!(got, "## 2.0.0\n- removed format(); use pad\n");
        assert!(excerpt(notes, "1.0.0", "9.9.9", 10).starts_with("# Changes"));
    }

    #[test]
    fn the_diff_shows_the_changed_region_only() {
        let got = diff("p.json", "a\nb\nc\n", "a\nB\nc\n", 1000);
        assert_eq!(got, "--- a/p.json\n+++ b/p.json\n@@ line 2 @@\n-b\n+B\n");
    }

    #[test]
    fn importers_skip_installed_packages_and_put_sources_first() {
        let tree = tempfile::tempdir().unwrap();
        let write = |p: &str, t: &str| {
            let path = tree.path().join(p);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, t).unwrap();
        };
        write("test/a.test.js", "require('textfmt')");
        write("src/invoice.js", "const t = require('textfmt');");
        write("src/other.js", "nothing here");
        write("src/total.js", "const n = require('numfmt');");
        write("node_modules/textfmt/index.js", "textfmt");
        write("package.json", "{\"dependencies\": {\"textfmt\": \"1\"}}");
        let files = importers(tree.path(), "", &["textfmt"], 10, 10_000);
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["src/invoice.js", "test/a.test.js"]);
        // A grouped fix's repair is shown the files that name any of its packages.
        let files = importers(tree.path(), "", &["textfmt", "numfmt"], 10, 10_000);
        let paths: Vec<&str> = files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["src/invoice.js", "src/total.js", "test/a.test.js"]);
    }

    #[test]
    fn npm_notes_are_found_in_the_installed_package() {
        let tree = tempfile::tempdir().unwrap();
        let dir = tree.path().join("node_modules/textfmt");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("CHANGELOG.md"),
            "## 1.0.1\n- removed format\n## 1.0.0\n- x\n",
        )
        .unwrap();
        let (path, text) =
            release_notes(tree.path(), "", "textfmt", "1.0.0", "1.0.1", 100).unwrap();
        assert_eq!(path, "node_modules/textfmt/CHANGELOG.md");
        assert_eq!(text, "## 1.0.1\n- removed format");
    }
}
