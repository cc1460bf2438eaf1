//! The files of `HEAD`'s tree, read from the object database. A clone writes only the files
//! the lock tools need to disk; the patcher, the LLM context and the commit see the rest here.

use git2::{ObjectType, Oid, Repository, Tree, TreeWalkMode, TreeWalkResult};

use super::GitError;
use super::error::local;

/// Directories of a tree that hold installed dependencies, virtualenvs, build output or VCS
/// data, never the project's own manifests or code: every walk of a tree passes them over.
pub const NOT_PROJECT_DIRS: &[&str] = &[
    ".git",
    "node_modules",
    "target",
    "vendor",
    "dist",
    "build",
    ".venv",
    "venv",
    "__pycache__",
    ".tox",
];

const MODE_REGULAR: i32 = 0o100644;
const MODE_EXECUTABLE: i32 = 0o100755;

/// A regular file of the tree.
#[derive(Debug, Clone)]
pub struct TreeFile {
    /// Repository-relative, with `/`.
    pub path: String,
    pub id: Oid,
    pub executable: bool,
}

/// `HEAD`'s tree; `action` names the caller in the error.
pub fn head_tree<'r>(repo: &'r Repository, action: &str) -> Result<Tree<'r>, GitError> {
    repo.head()
        .and_then(|h| h.peel_to_tree())
        .map_err(|e| local(&e, &format!("{action} (reading HEAD)")))
}

/// The regular files of `HEAD`'s tree, as [`tree_files`].
pub fn head_files(repo: &Repository) -> Result<Vec<TreeFile>, GitError> {
    tree_files(&head_tree(repo, "list")?)
}

/// The regular files of `tree` (symlinks and submodules left out), in the tree's order. A name
/// that is not UTF-8, or that could leave the repository or reach `.git` on disk, is left out
/// with everything under it, as git's own checkout refuses it: nothing here could show, edit or
/// write such a file.
pub fn tree_files(tree: &Tree<'_>) -> Result<Vec<TreeFile>, GitError> {
    let mut files = Vec::new();
    tree.walk(TreeWalkMode::PreOrder, |dir, entry| {
        let Ok(name) = std::str::from_utf8(entry.name_bytes()) else {
            return TreeWalkResult::Skip;
        };
        if !safe_component(name) {
            return TreeWalkResult::Skip;
        }
        let mode = entry.filemode();
        if entry.kind() == Some(ObjectType::Blob) && matches!(mode, MODE_REGULAR | MODE_EXECUTABLE)
        {
            files.push(TreeFile {
                path: format!("{dir}{name}"),
                id: entry.id(),
                executable: mode == MODE_EXECUTABLE,
            });
        }
        TreeWalkResult::Ok
    })
    .map_err(|e| local(&e, "list (walking the tree)"))?;
    Ok(files)
}

const MODE_LINK: i32 = 0o120000;

/// Every symbolic link of `HEAD`'s tree (repository-relative paths), which no step reads
/// through: the lock step refuses a lock file committed as one.
pub fn head_links(repo: &Repository) -> Result<Vec<String>, GitError> {
    let tree = head_tree(repo, "list links")?;
    let mut links = Vec::new();
    tree.walk(TreeWalkMode::PreOrder, |dir, entry| {
        let Ok(name) = std::str::from_utf8(entry.name_bytes()) else {
            return TreeWalkResult::Skip;
        };
        if entry.filemode() == MODE_LINK {
            links.push(format!("{dir}{name}"));
        }
        TreeWalkResult::Ok
    })
    .map_err(|e| local(&e, "list links (walking the tree)"))?;
    Ok(links)
}

/// A tree entry name that is safe to create on disk.
fn safe_component(name: &str) -> bool {
    !(name.is_empty()
        || name == "."
        || name == ".."
        || name.eq_ignore_ascii_case(".git")
        || name.contains(['/', '\\', '\0']))
}

/// The bytes of the regular file `rel_path` in `HEAD`'s tree; `None` when there is no such
/// file or it is bigger than `max_bytes`.
pub fn read_head_file(
    repo: &Repository,
    rel_path: &str,
    max_bytes: u64,
) -> Result<Option<Vec<u8>>, GitError> {
    read_tree_file(repo, &head_tree(repo, "read")?, rel_path, max_bytes)
}

/// [`read_head_file`] in a tree the caller keeps open (one lookup of `HEAD` for many files).
pub fn read_tree_file(
    repo: &Repository,
    tree: &Tree<'_>,
    rel_path: &str,
    max_bytes: u64,
) -> Result<Option<Vec<u8>>, GitError> {
    let Ok(entry) = tree.get_path(std::path::Path::new(rel_path)) else {
        return Ok(None);
    };
    if entry.kind() != Some(ObjectType::Blob)
        || !matches!(entry.filemode(), MODE_REGULAR | MODE_EXECUTABLE)
    {
        return Ok(None);
    }
    read_blob(repo, entry.id(), max_bytes)
}

/// The size of blob `id`, from its object header in `odb` (the caller keeps it open for many
/// blobs): for a delta in a pack only the start of the delta is inflated, not its chain.
pub fn blob_size(odb: &git2::Odb<'_>, id: Oid) -> Result<u64, GitError> {
    let (size, _) = odb
        .read_header(id)
        .map_err(|e| local(&e, &format!("read (reading the header of blob {id})")))?;
    Ok(size as u64)
}

/// The bytes of blob `id`; `None` when it is bigger than `max_bytes`. The blob is inflated to
/// learn its size: a header check first would walk its delta chain's headers for nothing, since
/// a blob that fits is inflated anyway.
pub fn read_blob(repo: &Repository, id: Oid, max_bytes: u64) -> Result<Option<Vec<u8>>, GitError> {
    let blob = repo
        .find_blob(id)
        .map_err(|e| local(&e, &format!("read (reading blob {id})")))?;
    if blob.size() as u64 > max_bytes {
        return Ok(None);
    }
    Ok(Some(blob.content().to_vec()))
}
