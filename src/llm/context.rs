//! Chooses which repository text the model sees: manifests and lock files that mention the
//! vulnerable package, then source files that import it, within a character budget and in a
//! deterministic order. Big lock files are cut down to windows of lines around the package.
//!
//! The files come from a [`RepoFiles`]: the worker's is `HEAD`'s tree in the clone's object
//! database (a clone writes only the files the lock tools need to disk), a directory's serves
//! tests and tools. This is blocking IO; async callers run it under `spawn_blocking`.

use std::fs;
use std::io;
use std::path::Path;

use super::{ContextFile, VulnerabilityFacts};
use crate::git::tree_files::NOT_PROJECT_DIRS;

const MAX_FILE_BYTES: u64 = 1024 * 1024;
/// Stops the walk in pathological trees; what was seen so far is still used.
const MAX_WALKED_ENTRIES: usize = 200_000;
/// Source files looked at for imports of the package, the first in the tree's order: reading a
/// blob out of a pack costs a delta chain, and past this many the context is full long before.
const MAX_SOURCES_READ: usize = 5_000;
/// Sources read as one batch, in storage order, at most: files, and bytes of text. Measured on
/// a 30,000-file repository (`examples/context_bench`), 256 beat both 64 doubling to 1,024 and
/// a fixed 1,024: a context that fills early stops sooner, and a longer run of the pack saved
/// little, since libgit2 caches only the base at the bottom of each delta chain.
const BATCH_FILES: usize = 256;
const BATCH_BYTES: u64 = 4 * 1024 * 1024;
/// Budget charged per file for the fence lines and label around it in the prompt.
const FENCE_OVERHEAD: usize = 100;
/// Budget kept for each omitted-lines marker in an excerpt.
const MARKER_CHARS: usize = 48;
/// Lines shown before and after a mention in an excerpt: enough for a lock file entry.
const LINES_BEFORE: usize = 3;
const LINES_AFTER: usize = 12;
/// Below this remaining budget no file is worth starting.
const MIN_USEFUL_CHARS: usize = 200;

const MANIFEST_NAMES: &[&str] = &[
    "Cargo.toml",
    "package.json",
    "pyproject.toml",
    "setup.py",
    "setup.cfg",
    "Pipfile",
    "go.mod",
    "pom.xml",
    "build.gradle",
    "build.gradle.kts",
    "libs.versions.toml",
    "Gemfile",
    "composer.json",
    "mix.exs",
    "pubspec.yaml",
    "Package.swift",
    "build.sbt",
    "Directory.Packages.props",
    "packages.config",
];
const LOCK_NAMES: &[&str] = &[
    "Cargo.lock",
    "package-lock.json",
    "npm-shrinkwrap.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "bun.lock",
    "poetry.lock",
    "Pipfile.lock",
    "uv.lock",
    "pdm.lock",
    "go.sum",
    "Gemfile.lock",
    "composer.lock",
    "gradle.lockfile",
    "packages.lock.json",
    "mix.lock",
    "pubspec.lock",
    "Package.resolved",
];
const SOURCE_EXTENSIONS: &[&str] = &[
    "rs", "js", "mjs", "cjs", "jsx", "ts", "tsx", "mts", "cts", "vue", "svelte", "py", "go",
    "java", "kt", "kts", "scala", "groovy", "rb", "php", "cs", "fs", "ex", "exs", "dart", "swift",
];
/// Words that mark a line as an import in the languages above.
const IMPORT_WORDS: &[&str] = &[
    "import",
    "require",
    "use ",
    "from ",
    "extern crate",
    "include",
    "using ",
    "alias ",
];

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    Manifest,
    Lock,
    Source,
}

/// Where the context's files come from.
pub trait RepoFiles {
    /// The repository's regular files (no symlinks, no submodules), as repository-relative
    /// paths with `/`, in a fixed order.
    fn files(&self) -> io::Result<Vec<String>>;
    /// The bytes of `path`; `None` when it is gone or bigger than `max_bytes`.
    fn read(&self, path: &str, max_bytes: u64) -> io::Result<Option<Vec<u8>>>;
    /// The size of `path` in bytes, without reading it where that is cheaper; `None` when it
    /// is gone.
    fn size(&self, path: &str) -> io::Result<Option<u64>>;
    /// Where `path` is stored, for reading many files in storage order (a pack's); `None`
    /// where the order does not matter.
    fn storage_key(&self, _path: &str) -> Option<(usize, u64)> {
        None
    }
}

/// Repository files to show the model for `facts`, within `max_chars` characters of prompt:
/// the manifests and lock files that mention the package (nearest the root first, a big one
/// cut to excerpts), then the smallest sources that import it, as many as fit.
pub fn select_context(
    source: &impl RepoFiles,
    facts: &VulnerabilityFacts,
    max_chars: usize,
) -> io::Result<Vec<ContextFile>> {
    let needles = Needles::new(&facts.package);
    if needles.is_empty() {
        return Ok(Vec::new());
    }
    let (declaring, sources): (Vec<_>, Vec<_>) = of_interest(source.files()?)
        .into_iter()
        .partition(|(_, kind)| *kind != Kind::Source);

    let mut candidates = Vec::new();
    for (path, kind) in declaring {
        let Some(content) = source.read(&path, MAX_FILE_BYTES)?.and_then(text) else {
            continue;
        };
        if !mention_lines(&content, &needles.manifest).is_empty() {
            let depth = path.matches('/').count();
            candidates.push((kind, depth, path, content));
        }
    }
    candidates.sort();
    let mut remaining = max_chars;
    let mut selected = Vec::new();
    for (kind, _, path, content) in candidates {
        if remaining < MIN_USEFUL_CHARS {
            return Ok(selected);
        }
        let whole_cost = cost(&path, &content);
        let lock_is_big = kind == Kind::Lock && content.chars().count() > max_chars / 4;
        let file = if whole_cost <= remaining && !lock_is_big {
            Some(ContextFile {
                path,
                content,
                truncated: false,
            })
        } else {
            let budget = remaining.saturating_sub(cost(&path, ""));
            excerpt(&content, &needles.manifest, budget).map(|content| ContextFile {
                path,
                content,
                truncated: true,
            })
        };
        if let Some(file) = file {
            remaining = remaining.saturating_sub(cost(&file.path, &file.content));
            selected.push(file);
        }
    }
    let sources = sources
        .into_iter()
        .take(MAX_SOURCES_READ)
        .map(|(path, _)| path);
    selected.extend(importing_sources(source, sources, &needles, remaining)?);
    Ok(selected)
}

/// The sources that import the package, smallest first (then by path), whole, while they fit
/// in `budget`. Their sizes come first (cheap: an object header), so they are read smallest
/// first and the reading stops at the first importing one that does not fit, as the choice
/// would; each batch is read in storage order, where a pack's delta bases are still cached.
fn importing_sources(
    source: &impl RepoFiles,
    paths: impl Iterator<Item = String>,
    needles: &Needles,
    mut budget: usize,
) -> io::Result<Vec<ContextFile>> {
    let mut sized = Vec::new();
    for path in paths {
        if let Some(size) = source.size(&path)?.filter(|size| *size <= MAX_FILE_BYTES) {
            sized.push((size, path));
        }
    }
    sized.sort();
    let mut selected = Vec::new();
    let mut rest = sized.as_slice();
    while !rest.is_empty() && budget >= MIN_USEFUL_CHARS {
        let (batch, after) = rest.split_at(batch_len(rest));
        rest = after;
        let mut order: Vec<usize> = (0..batch.len()).collect();
        order.sort_by_cached_key(|&i| source.storage_key(&batch[i].1).unwrap_or((usize::MAX, 0)));
        let mut contents = vec![None; batch.len()];
        for i in order {
            let read = source.read(&batch[i].1, MAX_FILE_BYTES)?.and_then(text);
            contents[i] = read.filter(|content| source_mentions(content, needles));
        }
        for ((_, path), content) in batch.iter().zip(contents) {
            let Some(content) = content else { continue };
            if budget < MIN_USEFUL_CHARS {
                break;
            }
            let whole_cost = cost(path, &content);
            if whole_cost > budget {
                // Smallest first: if this one does not fit, none after it will.
                return Ok(selected);
            }
            budget -= whole_cost;
            selected.push(ContextFile {
                path: path.clone(),
                content,
                truncated: false,
            });
        }
    }
    Ok(selected)
}

/// How many of the next sources (smallest first) to read as one batch: at most `BATCH_FILES`
/// of them and `BATCH_BYTES` of text, at least one.
fn batch_len(next: &[(u64, String)]) -> usize {
    let mut bytes = 0;
    next.iter()
        .take(BATCH_FILES)
        .take_while(|(size, _)| {
            bytes += size;
            bytes <= BATCH_BYTES
        })
        .count()
        .max(1)
}

fn cost(path: &str, content: &str) -> usize {
    path.chars().count() + content.chars().count() + FENCE_OVERHEAD
}

/// The spellings under which a package shows up in files.
struct Needles {
    /// For manifests and lock files.
    manifest: Vec<String>,
    /// For sources, which may also name a Maven group (`import org.apache.logging.log4j...`).
    source: Vec<String>,
    /// A package named by a path (Go modules) is specific enough to count anywhere in a source.
    path_like: bool,
}

impl Needles {
    fn new(package: &str) -> Self {
        let package = package.trim().to_lowercase();
        let mut manifest = Vec::new();
        let push = |list: &mut Vec<String>, name: &str| {
            for variant in [
                name.to_owned(),
                name.replace('-', "_"),
                name.replace('_', "-"),
            ] {
                if !variant.is_empty() && !list.contains(&variant) {
                    list.push(variant);
                }
            }
        };
        push(&mut manifest, &package);
        let mut group = None;
        if let Some((_, artifact)) = package.rsplit_once(':') {
            push(&mut manifest, artifact);
            group = package.split(':').next().map(str::to_owned);
        }
        let mut source = manifest.clone();
        if let Some(group) = group {
            push(&mut source, &group);
        }
        Self {
            path_like: package.contains('/'),
            manifest,
            source,
        }
    }

    fn is_empty(&self) -> bool {
        self.manifest.is_empty()
    }
}

/// Whether `needle` occurs in `line` (lowercased) as a whole name, not inside a longer one:
/// `serde` must not match `serde_json`, nor `lodash` match `lodash.merge`.
fn find_name(line: &str, needle: &str) -> Option<usize> {
    let is_name_char = |c: char| c.is_alphanumeric() || c == '_' || c == '-';
    let mut from = 0;
    while let Some(found) = line[from..].find(needle) {
        let start = from + found;
        let end = start + needle.len();
        let before_ok = line[..start]
            .chars()
            .next_back()
            .is_none_or(|c| !is_name_char(c) && c != '.');
        // A dotted name (a Java package) may continue with `.Class`; a plain one may not.
        let after_ok = line[end..]
            .chars()
            .next()
            .is_none_or(|c| !is_name_char(c) && (c != '.' || needle.contains('.')));
        if before_ok && after_ok {
            return Some(start);
        }
        from = start + line[start..].chars().next().map_or(1, char::len_utf8);
    }
    None
}

/// Indices of the lines mentioning one of the needles, each with whether the line looks like
/// the package's own entry (`name = "x"`, `x@^1:`, `"node_modules/x": {`) rather than a
/// reference from another package.
fn mention_lines(content: &str, needles: &[String]) -> Vec<(usize, bool)> {
    content
        .lines()
        .enumerate()
        .filter_map(|(index, line)| {
            let lower = line.to_lowercase();
            let primary = needles
                .iter()
                .filter_map(|n| find_name(&lower, n))
                .any(|at| {
                    let before = lower[..at]
                        .trim()
                        .trim_start_matches("- ")
                        .trim_start_matches(['"', '\'', '/'])
                        .trim_start_matches("node_modules/");
                    before.is_empty()
                        || before.ends_with("name = \"")
                        || before.ends_with("\"name\": \"")
                });
            let any = needles.iter().any(|n| find_name(&lower, n).is_some());
            any.then_some((index, primary))
        })
        .collect()
}

fn source_mentions(content: &str, needles: &Needles) -> bool {
    content.lines().any(|line| {
        let lower = line.to_lowercase();
        needles.source.iter().any(|needle| {
            let Some(at) = find_name(&lower, needle) else {
                return false;
            };
            needles.path_like
                || lower[at + needle.len()..].starts_with("::")
                || IMPORT_WORDS.iter().any(|w| lower.contains(w))
        })
    })
}

/// Windows of lines around the mentions, the package's own entries first, within `budget`
/// characters; omitted stretches are marked. `None` when not even one window fits.
fn excerpt(content: &str, needles: &[String], budget: usize) -> Option<String> {
    let lines: Vec<&str> = content.split_inclusive('\n').collect();
    let mut mentions = mention_lines(content, needles);
    // Stable: within each group the file order stays.
    mentions.sort_by_key(|&(_, primary)| !primary);

    let mut included = vec![false; lines.len()];
    let mut used = 0;
    for (index, _) in mentions {
        let start = index.saturating_sub(LINES_BEFORE);
        let end = (index + LINES_AFTER + 1).min(lines.len());
        let added: usize = (start..end)
            .filter(|&i| !included[i])
            .map(|i| lines[i].chars().count())
            .sum();
        if added == 0 {
            continue;
        }
        // Each window can split one omitted stretch into two: one more marker at most.
        if used + added + MARKER_CHARS * 2 > budget {
            break;
        }
        used += added + MARKER_CHARS;
        included[start..end].iter_mut().for_each(|i| *i = true);
    }
    if !included.contains(&true) {
        return None;
    }

    let mut out = String::new();
    let mut gap_start = None;
    for (index, line) in lines.iter().enumerate() {
        if included[index] {
            if let Some(first) = gap_start.take() {
                out.push_str(&omitted(first, index - 1));
            }
            out.push_str(line);
            if !line.ends_with('\n') {
                out.push('\n');
            }
        } else if gap_start.is_none() {
            gap_start = Some(index);
        }
    }
    if let Some(first) = gap_start {
        out.push_str(&omitted(first, lines.len() - 1));
    }
    Some(out)
}

fn omitted(first: usize, last: usize) -> String {
    format!("... (lines {}-{} omitted) ...\n", first + 1, last + 1)
}

fn classify(name: &str) -> Option<Kind> {
    if MANIFEST_NAMES.contains(&name)
        || (name.starts_with("requirements") && name.ends_with(".txt"))
        || [".csproj", ".fsproj", ".vbproj"]
            .iter()
            .any(|ext| name.ends_with(ext))
    {
        return Some(Kind::Manifest);
    }
    if LOCK_NAMES.contains(&name) {
        return Some(Kind::Lock);
    }
    let extension = name.rsplit_once('.')?.1;
    SOURCE_EXTENSIONS
        .contains(&extension)
        .then_some(Kind::Source)
}

/// The paths worth reading, with their kind: not under a dependency or build directory, with
/// a name that can be shown safely (no control characters), at most `MAX_WALKED_ENTRIES`.
fn of_interest(paths: Vec<String>) -> Vec<(String, Kind)> {
    paths
        .into_iter()
        .take(MAX_WALKED_ENTRIES)
        .filter(|path| !path.chars().any(char::is_control))
        .filter_map(|path| {
            let mut components = path.rsplit('/');
            let kind = classify(components.next()?)?;
            if components.any(|dir| NOT_PROJECT_DIRS.contains(&dir)) {
                return None;
            }
            Some((path, kind))
        })
        .collect()
}

/// The bytes as text, or `None` when they are binary or not UTF-8.
fn text(bytes: Vec<u8>) -> Option<String> {
    if bytes.contains(&0) {
        return None;
    }
    String::from_utf8(bytes).ok()
}

/// The files of a directory on disk.
pub struct DirFiles<'a>(pub &'a Path);

impl RepoFiles for DirFiles<'_> {
    /// Depth-first over sorted entries, so the result never depends on directory order;
    /// symlinks are skipped, and so are the directories no context comes from.
    fn files(&self) -> io::Result<Vec<String>> {
        let mut found = Vec::new();
        let mut visited = 0;
        let mut stack = vec![(self.0.to_path_buf(), String::new())];
        while let Some((dir, prefix)) = stack.pop() {
            let mut entries = match fs::read_dir(&dir) {
                Ok(entries) => entries
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| with_path(e, &dir))?,
                Err(e) if e.kind() == io::ErrorKind::NotFound && !prefix.is_empty() => continue,
                Err(e) => return Err(with_path(e, &dir)),
            };
            entries.sort_by_key(|e| e.file_name());
            let mut subdirs = Vec::new();
            for entry in entries {
                visited += 1;
                if visited > MAX_WALKED_ENTRIES {
                    return Ok(found);
                }
                let Ok(name) = entry.file_name().into_string() else {
                    continue;
                };
                // DirEntry::file_type does not follow symlinks, so links are skipped here.
                let file_type = entry.file_type().map_err(|e| with_path(e, &entry.path()))?;
                let rel = format!("{prefix}{name}");
                if file_type.is_dir() {
                    if !NOT_PROJECT_DIRS.contains(&name.as_str()) {
                        subdirs.push((entry.path(), format!("{rel}/")));
                    }
                } else if file_type.is_file() {
                    found.push(rel);
                }
            }
            stack.extend(subdirs.into_iter().rev());
        }
        Ok(found)
    }

    fn size(&self, rel: &str) -> io::Result<Option<u64>> {
        match fs::symlink_metadata(self.0.join(rel)) {
            Ok(m) if m.is_file() => Ok(Some(m.len())),
            Ok(_) => Ok(None),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(with_rel(e, rel)),
        }
    }

    fn read(&self, rel: &str, max_bytes: u64) -> io::Result<Option<Vec<u8>>> {
        let abs = self.0.join(rel);
        let metadata = match fs::symlink_metadata(&abs) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(with_rel(e, rel)),
        };
        if !metadata.is_file() || metadata.len() > max_bytes {
            return Ok(None);
        }
        match fs::read(&abs) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(with_rel(e, rel)),
        }
    }
}

/// The files of `HEAD`'s tree, from the object database.
pub struct HeadFiles<'a> {
    repo: &'a git2::Repository,
    tree: git2::Tree<'a>,
    /// Each file's blob, from the listing: looking a path up in the tree again would inflate
    /// every directory on it once per file (libgit2 caches no tree over 4 KiB), which made a
    /// 30,000-file repository cost 45 s of CPU.
    blobs: std::cell::OnceCell<std::collections::HashMap<String, git2::Oid>>,
    /// Each packed object's place, read once when the first file's is asked for.
    positions: std::cell::OnceCell<std::collections::HashMap<git2::Oid, (usize, u64)>>,
    /// Opened once for the object headers that size the sources.
    odb: git2::Odb<'a>,
}

impl<'a> HeadFiles<'a> {
    pub fn open(repo: &'a git2::Repository) -> io::Result<Self> {
        let tree = crate::git::head_tree(repo, "LLM context")
            .map_err(|e| io::Error::other(e.to_string()))?;
        Ok(HeadFiles {
            repo,
            tree,
            blobs: std::cell::OnceCell::new(),
            positions: std::cell::OnceCell::new(),
            odb: repo.odb().map_err(|e| {
                io::Error::other(format!("opening the object database for LLM context: {e}"))
            })?,
        })
    }
}

impl RepoFiles for HeadFiles<'_> {
    fn files(&self) -> io::Result<Vec<String>> {
        let files = crate::git::tree_files(&self.tree).map_err(|e| {
            io::Error::other(format!("listing the repository for LLM context: {e}"))
        })?;
        let paths = files.iter().map(|f| f.path.clone()).collect();
        let _ = self
            .blobs
            .set(files.into_iter().map(|f| (f.path, f.id)).collect());
        Ok(paths)
    }

    fn size(&self, rel: &str) -> io::Result<Option<u64>> {
        let Some(id) = self.blobs.get().and_then(|blobs| blobs.get(rel)) else {
            let bytes = self.read(rel, u64::MAX)?;
            return Ok(bytes.map(|b| b.len() as u64));
        };
        let failed = |e: crate::git::GitError| {
            io::Error::other(format!("reading {rel} for LLM context: {e}"))
        };
        crate::git::blob_size(&self.odb, *id)
            .map(Some)
            .map_err(failed)
    }

    fn storage_key(&self, rel: &str) -> Option<(usize, u64)> {
        let id = self.blobs.get()?.get(rel)?;
        let positions = self
            .positions
            .get_or_init(|| crate::git::pack_order::pack_positions(self.repo));
        positions.get(id).copied()
    }

    fn read(&self, rel: &str, max_bytes: u64) -> io::Result<Option<Vec<u8>>> {
        let failed = |e: crate::git::GitError| {
            io::Error::other(format!("reading {rel} for LLM context: {e}"))
        };
        match self.blobs.get().and_then(|blobs| blobs.get(rel)) {
            Some(id) => crate::git::read_blob(self.repo, *id, max_bytes).map_err(failed),
            None => {
                crate::git::read_tree_file(self.repo, &self.tree, rel, max_bytes).map_err(failed)
            }
        }
    }
}

fn with_path(error: io::Error, path: &Path) -> io::Error {
    io::Error::new(
        error.kind(),
        format!("reading {} for LLM context: {error}", path.display()),
    )
}

fn with_rel(error: io::Error, rel: &str) -> io::Error {
    io::Error::new(
        error.kind(),
        format!("reading {rel} for LLM context: {error}"),
    )
}

#[cfg(test)]
mod tests;
