//! Cloning one branch of a repository, shallow when the transport allows it, and writing to
//! disk all of its files or only those a caller names (the rest stay in the object database,
//! where [`super::read_file`] and [`super::commit_files`] find them).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use git2::build::CheckoutBuilder;
use git2::{AutotagOption, ErrorCode, FetchOptions, RemoteRedirect, Repository, Tree};

use super::credentials::remote_callbacks;
use super::error::{classify, display_url, local};
use super::{GitAuth, GitError};

/// Which files of the branch's tree a clone writes to disk.
#[derive(Clone, Copy)]
pub enum Materialize<'a> {
    /// Every file, like `git clone`.
    Everything,
    /// Only the regular files whose repository-relative path `wanted` accepts. Symlinks and
    /// submodules are never written.
    Only(&'a dyn Fn(&str) -> bool),
}

/// Clones `branch` of `url` into `dest` (which must not exist or be empty) and checks out
/// every file. See [`clone_branch`].
pub fn clone_default_branch(
    url: &str,
    branch: &str,
    dest: &Path,
    auth: &GitAuth,
) -> Result<Repository, GitError> {
    clone_branch(url, branch, dest, auth, Materialize::Everything)
}

/// Fetches `branch` of `url` into a new repository at `dest`, makes it the local branch of the
/// same name and `HEAD`, and writes the files `materialize` selects.
///
/// Over http(s), ssh and git the fetch is shallow (depth 1) and takes only that branch. A
/// `file://` URL or a plain path is fetched in full, because libgit2's local transport cannot
/// fetch shallow. The remote `origin` in `.git/config` records exactly `url`: the credentials
/// go through the callback only.
pub fn clone_branch(
    url: &str,
    branch: &str,
    dest: &Path,
    auth: &GitAuth,
    materialize: Materialize<'_>,
) -> Result<Repository, GitError> {
    if url_carries_password(url) {
        return Err(GitError::Permanent(format!(
            "repository URL {} carries a password; give the credentials in the forge \
             configuration instead",
            display_url(url)
        )));
    }
    // The same check the import and the intake ran, so a name they accepted passes here.
    super::branch::check_branch_name(branch).map_err(GitError::Permanent)?;

    let repo = Repository::init(dest).map_err(|e| local(&e, "clone (creating the repository)"))?;
    fetch_branch(&repo, url, branch, auth)?;
    let tip = repo
        .find_reference(&format!("refs/remotes/origin/{branch}"))
        .and_then(|r| r.peel_to_commit())
        .map_err(|e| {
            if e.code() == ErrorCode::NotFound {
                GitError::Permanent(format!(
                    "branch {branch:?} not found in {}; check the repository's default branch",
                    display_url(url)
                ))
            } else {
                local(&e, "clone (reading the fetched branch)")
            }
        })?;
    let local_branch = format!("refs/heads/{branch}");
    repo.reference(&local_branch, tip.id(), true, "remediator: clone")
        .and_then(|_| repo.set_head(&local_branch))
        .map_err(|e| local(&e, "clone (creating the local branch)"))?;
    match materialize {
        Materialize::Everything => write_whole_tree(&repo)?,
        Materialize::Only(wanted) => {
            let tree = tip
                .tree()
                .map_err(|e| local(&e, "clone (reading the tree)"))?;
            write_selected(&repo, &tree, dest, wanted)?;
        }
    }
    drop(tip);
    Ok(repo)
}

/// Writes every file of `HEAD` to the work tree, as `git checkout` does.
pub fn write_whole_tree(repo: &Repository) -> Result<(), GitError> {
    repo.checkout_head(Some(CheckoutBuilder::new().force()))
        .map_err(|e| local(&e, "clone (checking out)"))
}

/// Writes every regular file of `HEAD`'s tree into `dest`, a directory outside the clone (a
/// copy a tool may change at will: the clone's own work tree, which the commit is made from,
/// stays as it is). Returns `HEAD`'s commit id. Symlinks and submodules are not written.
pub fn write_head_tree_to(repo: &Repository, dest: &Path) -> Result<git2::Oid, GitError> {
    let head = repo
        .head()
        .and_then(|h| h.peel_to_commit())
        .map_err(|e| local(&e, "reading HEAD"))?;
    let tree = head.tree().map_err(|e| local(&e, "reading HEAD's tree"))?;
    fs::create_dir_all(dest)
        .map_err(|e| GitError::Transient(format!("could not create {dest:?}: {e}")))?;
    write_selected(repo, &tree, dest, &|_| true)?;
    Ok(head.id())
}

/// Like `git fetch --depth 1 origin +refs/heads/B:refs/remotes/origin/B`, with `origin`
/// created to point at exactly `url` and fetch only that branch.
fn fetch_branch(
    repo: &Repository,
    url: &str,
    branch: &str,
    auth: &GitAuth,
) -> Result<(), GitError> {
    let mut fetch = FetchOptions::new();
    fetch.remote_callbacks(remote_callbacks(auth));
    // Our URL policy checked the host; an off-site redirect would bypass it.
    fetch.follow_redirects(RemoteRedirect::None);
    fetch.download_tags(AutotagOption::None);
    if is_network_url(url) {
        fetch.depth(1);
    }
    let refspec = format!("+refs/heads/{branch}:refs/remotes/origin/{branch}");
    let mut remote = repo
        .remote_with_fetch("origin", url, &refspec)
        .map_err(|e| local(&e, "clone (creating the remote)"))?;
    remote
        .fetch(
            &[refspec.as_str()],
            Some(&mut fetch),
            Some("remediator: clone"),
        )
        .map_err(|e| classify(&e, "clone", url, auth))?;
    ensure_origin_url(repo, url)
}

/// Writes the regular files of `tree` that `wanted` accepts under `root` (only paths
/// [`super::tree_files`] lists: a name that could leave `root` or reach `.git` never is).
fn write_selected(
    repo: &Repository,
    tree: &Tree<'_>,
    root: &Path,
    wanted: &dyn Fn(&str) -> bool,
) -> Result<(), GitError> {
    for file in super::tree_files(tree)?
        .into_iter()
        .filter(|f| wanted(&f.path))
    {
        let path = &file.path;
        let blob = repo
            .find_blob(file.id)
            .map_err(|e| local(&e, &format!("clone (reading {path})")))?;
        let dest = root.join(path);
        let io = |e: std::io::Error| GitError::Transient(format!("could not write {path:?}: {e}"));
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(io)?;
        }
        fs::write(&dest, blob.content()).map_err(io)?;
        if file.executable {
            fs::set_permissions(&dest, fs::Permissions::from_mode(0o755)).map_err(io)?;
        }
    }
    Ok(())
}

/// `origin` must point at the URL we were given and nothing else (no user info added, no
/// rewriting), so later fetches and pushes go where the policy allowed.
fn ensure_origin_url(repo: &Repository, url: &str) -> Result<(), GitError> {
    let stored = repo
        .find_remote("origin")
        .map_err(|e| GitError::Permanent(format!("clone made no origin remote: {}", e.message())))?
        .url()
        .map(str::to_owned);
    if stored.as_deref() != Ok(url) {
        repo.remote_set_url("origin", url).map_err(|e| {
            GitError::Permanent(format!("could not record the origin URL: {}", e.message()))
        })?;
    }
    Ok(())
}

/// True for transports that support shallow fetches: http(s), ssh, git, and scp-like
/// `user@host:path`.
pub(crate) fn is_network_url(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    if let Some((scheme, _)) = lower.split_once("://") {
        return matches!(
            scheme,
            "http" | "https" | "ssh" | "git" | "git+ssh" | "ssh+git"
        );
    }
    match url.split_once(':') {
        Some((before, _)) => !before.is_empty() && !before.contains('/'),
        None => false,
    }
}

/// True when the URL's user info has a password (`scheme://user:secret@host`).
fn url_carries_password(url: &str) -> bool {
    let Some((_, rest)) = url.split_once("://") else {
        return false;
    };
    let authority = rest.split('/').next().unwrap_or("");
    match authority.rsplit_once('@') {
        Some((userinfo, _)) => userinfo.contains(':'),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_urls_are_told_from_local_ones() {
        assert!(is_network_url("https://example.com/a.git"));
        assert!(is_network_url("http://127.0.0.1:1234/a.git"));
        assert!(is_network_url("ssh://git@example.com/a.git"));
        assert!(is_network_url("git@example.com:a/b.git"));
        assert!(!is_network_url("file:///srv/a.git"));
        assert!(!is_network_url("/srv/a.git"));
        assert!(!is_network_url("./a:b"));
    }

    #[test]
    fn passwords_in_urls_are_spotted() {
        assert!(url_carries_password("https://u:p@example.com/a.git"));
        assert!(!url_carries_password("https://u@example.com/a.git"));
        assert!(!url_carries_password("https://example.com:443/a.git"));
        assert!(!url_carries_password("git@example.com:a.git"));
    }
}
