//! The files of `HEAD`'s tree, read from the object database. A clone writes only the files
//! the lock tools need to disk; the patcher, the LLM context and the commit see the rest here.

use git2::{ObjectType, Odb, Oid, Repository, Tree, TreeWalkMode, TreeWalkResult};

use super::GitError;
use super::error::local;

const MODE_REGULAR: i32 = 0o100644;
const MODE_EXECUTABLE: i32 = 0o100755;

/// A regular file of the tree.
#[derive(Debug, Clone)]
pub struct TreeFile {
    /// Repository-relative, with `/`.
    pub path: String,
    pub id: Oid,
}

/// The regular files of `HEAD`'s tree (symlinks and submodules left out), in the tree's order.
/// Names that are not UTF-8 are left out too: nothing here could show or edit them.
pub fn head_files(repo: &Repository) -> Result<Vec<TreeFile>, GitError> {
    let tree = repo
        .head()
        .and_then(|h| h.peel_to_tree())
        .map_err(|e| local(&e, "list (reading HEAD)"))?;
    tree_files(&tree)
}

/// The regular files of `tree`, as [`head_files`].
pub fn tree_files(tree: &Tree<'_>) -> Result<Vec<TreeFile>, GitError> {
    let mut files = Vec::new();
    tree.walk(TreeWalkMode::PreOrder, |dir, entry| {
        let Ok(name) = std::str::from_utf8(entry.name_bytes()) else {
            return TreeWalkResult::Skip;
        };
        let is_file = entry.kind() == Some(ObjectType::Blob)
            && matches!(entry.filemode(), MODE_REGULAR | MODE_EXECUTABLE);
        if is_file {
            files.push(TreeFile {
                path: format!("{dir}{name}"),
                id: entry.id(),
            });
        }
        TreeWalkResult::Ok
    })
    .map_err(|e| local(&e, "list (walking the tree)"))?;
    Ok(files)
}

/// The bytes of the regular file `rel_path` in `HEAD`'s tree; `None` when there is no such
/// file or it is bigger than `max_bytes` (its size is read from the object header, so a big
/// file is never inflated).
pub fn read_head_file(
    repo: &Repository,
    rel_path: &str,
    max_bytes: u64,
) -> Result<Option<Vec<u8>>, GitError> {
    let tree = repo
        .head()
        .and_then(|h| h.peel_to_tree())
        .map_err(|e| local(&e, "read (reading HEAD)"))?;
    let odb = repo
        .odb()
        .map_err(|e| local(&e, "read (opening the object database)"))?;
    read_tree_file(repo, &odb, &tree, rel_path, max_bytes)
}

/// [`read_head_file`] in a tree and object database the caller keeps open (one lookup each
/// for many files).
pub fn read_tree_file(
    repo: &Repository,
    odb: &Odb<'_>,
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
    read_blob(repo, odb, entry.id(), max_bytes)
}

/// The bytes of blob `id`; `None` when it is bigger than `max_bytes`. The size is read from
/// the object header only when the blob is stored whole (`read_header` of a delta would resolve
/// its chain, which `find_blob` then does again).
pub fn read_blob(
    repo: &Repository,
    _odb: &Odb<'_>,
    id: Oid,
    max_bytes: u64,
) -> Result<Option<Vec<u8>>, GitError> {
    let blob = repo
        .find_blob(id)
        .map_err(|e| local(&e, &format!("read (reading blob {id})")))?;
    if blob.size() as u64 > max_bytes {
        return Ok(None);
    }
    Ok(Some(blob.content().to_vec()))
}
