//! The clone's files: inspecting and reading paths (in the work tree, else in `HEAD`'s tree,
//! since a clone may write only the files the lock tools need), writing a patch's new file
//! contents, committing named files onto the remediation branch, and listing what a commit
//! changed.
//!
//! The patch policy checks paths before we get here; the checks below are defence in depth, so
//! that a policy bug still cannot write outside the clone, into `.git/`, or through a symlink.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use git2::{IndexEntry, IndexTime, Oid, Reference, Repository, Signature, Tree};

use super::GitError;
use super::error::local;
use crate::patch::ExistingEntry;

/// Which of two answers wins when `HEAD` and the work tree disagree about a path: the one a
/// policy must be most careful about. (A symlink or a submodule anywhere on the path is the
/// answer for the whole path, so callers can refuse both.)
fn rank(kind: ExistingEntry) -> u8 {
    match kind {
        ExistingEntry::Missing => 0,
        ExistingEntry::Regular => 1,
        ExistingEntry::Executable => 2,
        ExistingEntry::Directory => 3,
        ExistingEntry::Submodule => 4,
        ExistingEntry::Symlink => 5,
    }
}

const MODE_TREE: i32 = 0o040000;
const MODE_REGULAR: i32 = 0o100644;
const MODE_EXECUTABLE: i32 = 0o100755;
const MODE_SYMLINK: i32 = 0o120000;
const MODE_GITLINK: i32 = 0o160000;

/// Reports what `rel_path` is, looking at both the `HEAD` tree and the work tree.
/// Opens a clone made by `clone_default_branch` (a transient error: the clone is made again).
pub fn open_clone(root: &Path) -> Result<Repository, GitError> {
    Repository::open(root)
        .map_err(|e| GitError::Transient(format!("opening the clone: {}", e.message())))
}

pub fn inspect_entry(repo: &Repository, rel_path: &str) -> Result<ExistingEntry, GitError> {
    let components = checked_components(rel_path)?;
    let in_head = head_kind(repo, &components)?;
    let in_work_tree = work_tree_kind(workdir(repo)?, &components)?;
    Ok(if rank(in_work_tree) > rank(in_head) {
        in_work_tree
    } else {
        in_head
    })
}

/// Reads `rel_path` as UTF-8 text: from the work tree when the file is there (it may have
/// been edited), else from `HEAD`'s tree (a clone writes only some files to disk); `None` when
/// it exists in neither. Refuses a path that leaves the repository (on disk, also through a
/// symlink) and, in `HEAD`, a path through a symlink, which the tree cannot resolve safely.
pub fn read_file(repo: &Repository, rel_path: &str) -> Result<Option<String>, GitError> {
    let components = checked_components(rel_path)?;
    if let Some(text) = read_work_tree_file(repo, rel_path)? {
        return Ok(Some(text));
    }
    match head_kind(repo, &components)? {
        ExistingEntry::Regular | ExistingEntry::Executable => {}
        ExistingEntry::Symlink => {
            return Err(GitError::Permanent(format!(
                "refusing to read {rel_path:?}: it is, or passes through, a symlink"
            )));
        }
        ExistingEntry::Directory => {
            return Err(GitError::Permanent(format!(
                "{rel_path:?} is a directory, not a file"
            )));
        }
        ExistingEntry::Missing | ExistingEntry::Submodule => return Ok(None),
    }
    let Some(bytes) = super::read_head_file(repo, rel_path, u64::MAX)? else {
        return Ok(None);
    };
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| GitError::Permanent(format!("{rel_path:?} is not UTF-8 text")))
}

/// `rel_path` from the work tree, `None` when it is not on disk.
fn read_work_tree_file(repo: &Repository, rel_path: &str) -> Result<Option<String>, GitError> {
    let root = workdir(repo)?;
    let path = root.join(rel_path);
    let real = match fs::canonicalize(&path) {
        Ok(real) => real,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_error("resolve", rel_path, &e)),
    };
    let real_root = fs::canonicalize(root).map_err(|e| io_error("resolve", ".", &e))?;
    if !real.starts_with(&real_root) || real.starts_with(real_root.join(".git")) {
        return Err(GitError::Permanent(format!(
            "refusing to read {rel_path:?}: it resolves outside the repository's files"
        )));
    }
    if real.is_dir() {
        return Err(GitError::Permanent(format!(
            "{rel_path:?} is a directory, not a file"
        )));
    }
    let bytes = fs::read(&real).map_err(|e| io_error("read", rel_path, &e))?;
    String::from_utf8(bytes)
        .map(Some)
        .map_err(|_| GitError::Permanent(format!("{rel_path:?} is not UTF-8 text")))
}

/// Writes each `(rel_path, content)` into the work tree, creating parent directories. Every
/// path is checked before anything is written: no absolute paths, no `..`, nothing under
/// `.git/`, no existing symlink anywhere on the path, no directory replaced by a file.
pub fn write_files(repo: &Repository, files: &[(String, String)]) -> Result<(), GitError> {
    let root = workdir(repo)?;
    let mut targets = Vec::with_capacity(files.len());
    for (rel_path, content) in files {
        let components = checked_components(rel_path)?;
        if components.iter().any(|c| c.eq_ignore_ascii_case(".git")) {
            return Err(GitError::Permanent(format!(
                "refusing to write {rel_path:?}: paths under .git are not part of the work tree"
            )));
        }
        check_writable(root, rel_path, &components)?;
        targets.push((rel_path, root.join(rel_path), content));
    }
    for (rel_path, path, content) in targets {
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .map_err(|e| io_error("create the directory of", rel_path, &e))?;
        }
        fs::write(&path, content).map_err(|e| io_error("write", rel_path, &e))?;
    }
    Ok(())
}

/// The commit to make: on which local branch, with what message and author (also the
/// committer).
#[derive(Debug, Clone, Copy)]
pub struct CommitSpec<'a> {
    pub branch: &'a str,
    pub message: &'a str,
    pub author_name: &'a str,
    pub author_email: &'a str,
}

/// Commits the work tree's current content of each of `paths` on top of `HEAD` (every other
/// path keeps its `HEAD` content, whether or not it is on disk), and points the local branch
/// `spec.branch` at the new commit (creating it, or resetting it when it exists), which also
/// becomes `HEAD`. The tree is built in the object database from `HEAD`'s, so a clone that
/// wrote only some files commits the same tree a full checkout would. A file keeps its mode
/// in `HEAD`; a new one is a regular file. Fails when the files are unchanged, since an empty
/// remediation commit would be a bug upstream.
pub fn commit_files(
    repo: &Repository,
    paths: &[String],
    spec: &CommitSpec<'_>,
) -> Result<Oid, GitError> {
    let refname = format!("refs/heads/{}", spec.branch);
    if !Reference::is_valid_name(&refname) {
        return Err(GitError::Permanent(format!(
            "{:?} is not a valid git branch name",
            spec.branch
        )));
    }
    let head = repo
        .head()
        .and_then(|h| h.peel_to_commit())
        .map_err(|e| local(&e, "commit (reading HEAD)"))?;
    let head_tree = super::head_tree(repo, "commit")?;
    let root = workdir(repo)?;
    // The repository's index, but only in memory: reset to HEAD's tree, never written back,
    // so the files that are not on disk are not staged as deleted.
    let mut index = repo
        .index()
        .map_err(|e| local(&e, "commit (opening the index)"))?;
    index
        .read_tree(&head_tree)
        .map_err(|e| local(&e, "commit (reading HEAD into the index)"))?;
    for rel_path in paths {
        let components = checked_components(rel_path)?;
        if components.iter().any(|c| c.eq_ignore_ascii_case(".git")) {
            return Err(GitError::Permanent(format!(
                "refusing to commit {rel_path:?}: paths under .git are not part of the tree"
            )));
        }
        match head_kind(repo, &components)? {
            ExistingEntry::Symlink | ExistingEntry::Submodule | ExistingEntry::Directory => {
                return Err(GitError::Permanent(format!(
                    "refusing to commit {rel_path:?}: in HEAD it is not a regular file"
                )));
            }
            ExistingEntry::Missing | ExistingEntry::Regular | ExistingEntry::Executable => {}
        }
        check_writable(root, rel_path, &components)?;
        let content = fs::read(root.join(rel_path)).map_err(|e| io_error("read", rel_path, &e))?;
        let mode = match head_tree.get_path(Path::new(rel_path)) {
            Ok(entry) if entry.filemode() == MODE_EXECUTABLE => MODE_EXECUTABLE,
            _ => MODE_REGULAR,
        };
        index
            .add_frombuffer(&index_entry(rel_path, mode), &content)
            .map_err(|e| local(&e, &format!("commit (staging {rel_path})")))?;
    }
    let tree_id = index
        .write_tree()
        .map_err(|e| local(&e, "commit (writing the tree)"))?;
    if tree_id == head.tree_id() {
        return Err(GitError::Permanent(
            "nothing to commit: the edits leave every file as it was".to_string(),
        ));
    }
    let tree = repo
        .find_tree(tree_id)
        .map_err(|e| local(&e, "commit (reading the tree)"))?;
    let signature = Signature::now(spec.author_name, spec.author_email)
        .map_err(|e| GitError::Permanent(format!("invalid commit author: {}", e.message())))?;
    let oid = repo
        .commit(None, &signature, &signature, spec.message, &tree, &[&head])
        .map_err(|e| local(&e, "commit"))?;
    // `reference` with force, not `branch`: libgit2 refuses to force-move the checked-out
    // branch, and a rerun may well be on it.
    repo.reference(&refname, oid, true, "remediator: remediation commit")
        .and_then(|_| repo.set_head(&refname))
        .map_err(|e| local(&e, &format!("commit (updating branch {})", spec.branch)))?;
    Ok(oid)
}

/// An index entry for `path`; libgit2 fills in the blob id and size from the content.
fn index_entry(path: &str, mode: i32) -> IndexEntry {
    IndexEntry {
        ctime: IndexTime::new(0, 0),
        mtime: IndexTime::new(0, 0),
        dev: 0,
        ino: 0,
        mode: mode as u32,
        uid: 0,
        gid: 0,
        file_size: 0,
        id: Oid::ZERO_SHA1,
        flags: 0,
        flags_extended: 0,
        path: path.as_bytes().to_vec(),
    }
}

/// The paths `commit` changed compared with its first parent (all its paths for a root commit).
pub fn diff_stat(repo: &Repository, commit: Oid) -> Result<Vec<String>, GitError> {
    let commit = repo
        .find_commit(commit)
        .map_err(|e| local(&e, "diff (finding the commit)"))?;
    let tree = commit
        .tree()
        .map_err(|e| local(&e, "diff (reading the tree)"))?;
    let parent_tree: Option<Tree<'_>> = if commit.parent_count() > 0 {
        Some(
            commit
                .parent(0)
                .and_then(|p| p.tree())
                .map_err(|e| local(&e, "diff (reading the parent)"))?,
        )
    } else {
        None
    };
    let diff = repo
        .diff_tree_to_tree(parent_tree.as_ref(), Some(&tree), None)
        .map_err(|e| local(&e, "diff"))?;
    Ok(diff
        .deltas()
        .filter_map(|d| d.new_file().path().or_else(|| d.old_file().path()))
        .map(|p| p.to_string_lossy().into_owned())
        .collect())
}

fn workdir(repo: &Repository) -> Result<&Path, GitError> {
    repo.workdir().ok_or_else(|| {
        GitError::Permanent("the repository is bare: it has no work tree to edit".to_string())
    })
}

/// Splits a repository-relative path into its components, refusing anything that could leave
/// the repository or that is not in canonical form.
fn checked_components(rel_path: &str) -> Result<Vec<&str>, GitError> {
    let refuse = |why: &str| {
        Err(GitError::Permanent(format!(
            "refusing path {rel_path:?}: {why}"
        )))
    };
    if rel_path.is_empty() {
        return refuse("it is empty");
    }
    if rel_path.starts_with('/') || Path::new(rel_path).is_absolute() {
        return refuse("it is absolute; paths must be relative to the repository root");
    }
    if rel_path.contains('\\') || rel_path.contains('\0') {
        return refuse("it contains a backslash or NUL");
    }
    let components: Vec<&str> = rel_path.split('/').collect();
    for component in &components {
        match *component {
            "" => return refuse("it has an empty component"),
            "." | ".." => return refuse("it has a '.' or '..' component"),
            _ => {}
        }
    }
    Ok(components)
}

fn head_kind(repo: &Repository, components: &[&str]) -> Result<ExistingEntry, GitError> {
    let mut tree = match repo.head().and_then(|h| h.peel_to_tree()) {
        Ok(tree) => tree,
        // An unborn branch has no tree: nothing exists in it yet.
        Err(e) if e.code() == git2::ErrorCode::UnbornBranch => return Ok(ExistingEntry::Missing),
        Err(e) => return Err(local(&e, "inspect (reading HEAD)")),
    };
    for (i, name) in components.iter().enumerate() {
        let last = i + 1 == components.len();
        let child = match tree.get_name(name) {
            None => return Ok(ExistingEntry::Missing),
            Some(entry) => match entry.filemode() {
                MODE_SYMLINK => return Ok(ExistingEntry::Symlink),
                MODE_GITLINK => return Ok(ExistingEntry::Submodule),
                MODE_TREE if last => return Ok(ExistingEntry::Directory),
                MODE_TREE => entry
                    .to_object(repo)
                    .and_then(|o| o.peel_to_tree())
                    .map_err(|e| local(&e, "inspect (reading a tree)"))?,
                MODE_EXECUTABLE if last => return Ok(ExistingEntry::Executable),
                _ if last => return Ok(ExistingEntry::Regular),
                // A file where a directory was expected: the path cannot exist.
                _ => return Ok(ExistingEntry::Missing),
            },
        };
        tree = child;
    }
    Ok(ExistingEntry::Missing)
}

fn work_tree_kind(root: &Path, components: &[&str]) -> Result<ExistingEntry, GitError> {
    let mut path = root.to_path_buf();
    for (i, name) in components.iter().enumerate() {
        path.push(name);
        let meta = match fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(ExistingEntry::Missing),
            Err(e) => return Err(io_error("inspect", &components[..=i].join("/"), &e)),
        };
        let last = i + 1 == components.len();
        let file_type = meta.file_type();
        if file_type.is_symlink() {
            return Ok(ExistingEntry::Symlink);
        }
        if file_type.is_dir() {
            // A checked-out submodule has its own `.git` (a file or a directory).
            if path.join(".git").symlink_metadata().is_ok() {
                return Ok(ExistingEntry::Submodule);
            }
            if last {
                return Ok(ExistingEntry::Directory);
            }
            continue;
        }
        if !last {
            return Ok(ExistingEntry::Missing);
        }
        return Ok(if meta.permissions().mode() & 0o111 != 0 {
            ExistingEntry::Executable
        } else {
            ExistingEntry::Regular
        });
    }
    Ok(ExistingEntry::Missing)
}

/// Checks that writing `rel_path` follows no symlink and replaces no directory.
fn check_writable(root: &Path, rel_path: &str, components: &[&str]) -> Result<(), GitError> {
    let mut path: PathBuf = root.to_path_buf();
    for (i, name) in components.iter().enumerate() {
        path.push(name);
        let meta = match fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            // Everything below a missing component will be created as plain directories.
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(io_error("inspect", rel_path, &e)),
        };
        let last = i + 1 == components.len();
        let shown = components[..=i].join("/");
        if meta.file_type().is_symlink() {
            return Err(GitError::Permanent(format!(
                "refusing to write {rel_path:?}: {shown:?} is a symlink"
            )));
        }
        if last && meta.is_dir() {
            return Err(GitError::Permanent(format!(
                "refusing to write {rel_path:?}: it is a directory"
            )));
        }
        if !last && !meta.is_dir() {
            return Err(GitError::Permanent(format!(
                "refusing to write {rel_path:?}: {shown:?} is a file, not a directory"
            )));
        }
    }
    Ok(())
}

fn io_error(action: &str, rel_path: &str, e: &io::Error) -> GitError {
    GitError::Transient(format!("could not {action} {rel_path:?} in the clone: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_paths_are_refused() {
        for bad in ["", "/etc/passwd", "../x", "a/../b", "a//b", "./a", "a\\b"] {
            assert!(
                matches!(checked_components(bad), Err(GitError::Permanent(_))),
                "{bad:?} was accepted"
            );
        }
        assert_eq!(checked_components("a/b.txt").ok(), Some(vec!["a", "b.txt"]));
    }
}
