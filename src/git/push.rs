//! Pushing the remediation branch, safely repeatable: a rerun that would push the same files
//! again does nothing, and any ref the server rejects is an error.

use std::cell::{Cell, RefCell};

use git2::{Direction, FetchOptions, Oid, PushOptions, Reference, RemoteRedirect, Repository};

use super::clone::is_network_url;
use super::credentials::remote_callbacks;
use super::error::{classify, local, url_host};
use super::{GitAuth, GitError};

/// What `push_branch` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushOutcome {
    /// The branch on the server now points at our commit.
    Pushed,
    /// The branch on the server already had our commit, or a commit with the same files (an
    /// earlier attempt pushed it); nothing was sent.
    AlreadyUpToDate,
}

/// The commit `branch` points at on `origin`, or `None` when the server has no such branch
/// (like `git ls-remote origin refs/heads/BRANCH`).
pub fn remote_branch_commit(
    repo: &Repository,
    branch: &str,
    auth: &GitAuth,
) -> Result<Option<Oid>, GitError> {
    let refname = branch_ref(branch)?;
    let mut remote = origin(repo)?;
    let url = remote.url().unwrap_or_default().to_owned();
    let connection = remote
        .connect_auth(Direction::Fetch, Some(remote_callbacks(auth)), None)
        .map_err(|e| classify(&e, "ls-remote", &url, auth))?;
    let heads = connection
        .list()
        .map_err(|e| classify(&e, "ls-remote", &url, auth))?;
    Ok(heads.iter().find(|h| h.name() == refname).map(|h| h.oid()))
}

/// Pushes `commit` to `branch` on `origin`, replacing whatever the branch held (the branch is
/// ours: a rerun rebuilds it on a newer default branch), unless the server's branch already has
/// the same tree, in which case nothing is pushed. The local branch is set to `commit` first.
///
/// A ref the server reports as rejected is an error even though libgit2's push call succeeds.
pub fn push_branch(
    repo: &Repository,
    branch: &str,
    commit: Oid,
    auth: &GitAuth,
) -> Result<PushOutcome, GitError> {
    let refname = branch_ref(branch)?;
    let our_tree = repo
        .find_commit(commit)
        .map(|c| c.tree_id())
        .map_err(|e| local(&e, "push (finding the commit to push)"))?;
    let local_tip = repo.find_reference(&refname).ok().and_then(|r| r.target());
    if local_tip != Some(commit) {
        repo.reference(&refname, commit, true, "remediator: branch to push")
            .map_err(|e| local(&e, &format!("push (pointing {branch} at the commit)")))?;
    }

    if let Some(remote_tip) = remote_branch_commit(repo, branch, auth)? {
        if remote_tip == commit || remote_tree(repo, branch, remote_tip, auth)? == our_tree {
            return Ok(PushOutcome::AlreadyUpToDate);
        }
    }

    let mut remote = origin(repo)?;
    let url = remote.url().unwrap_or_default().to_owned();
    let rejected: RefCell<Vec<String>> = RefCell::new(Vec::new());
    let reported = Cell::new(false);
    let mut callbacks = remote_callbacks(auth);
    callbacks.push_update_reference(|name, status| {
        if name == refname {
            reported.set(true);
        }
        if let Some(status) = status {
            rejected.borrow_mut().push(format!("{name}: {status}"));
        }
        Ok(())
    });
    let mut options = PushOptions::new();
    options.remote_callbacks(callbacks);
    options.follow_redirects(RemoteRedirect::None);
    remote
        .push(&[format!("+{refname}:{refname}")], Some(&mut options))
        .map_err(|e| classify(&e, "push", &url, auth))?;
    drop(options);

    let rejected = rejected.into_inner();
    if !rejected.is_empty() {
        let detail = rejected.join("; ");
        let message = format!(
            "git server {} rejected the push of branch {branch}: {detail}",
            url_host(&url)
        );
        // A lock held by a concurrent update on the server clears by itself; hooks, protected
        // branches and non-fast-forward rules do not.
        return Err(if detail.contains("lock") {
            GitError::Transient(message)
        } else {
            GitError::Permanent(message)
        });
    }
    if !reported.get() {
        // The server said nothing about our ref: check what it holds instead of assuming.
        let now = remote_branch_commit(repo, branch, auth)?;
        if now != Some(commit) {
            return Err(GitError::Transient(format!(
                "push of branch {branch} to {} was not confirmed: the server's branch is {}",
                url_host(&url),
                now.map_or_else(|| "missing".to_string(), |o| o.to_string())
            )));
        }
    }
    Ok(PushOutcome::Pushed)
}

/// The tip of the server's `branch` when the branch is not ours to replace: it exists, holds
/// other files than `commit`, and its tip was not both authored and committed as `our_email`
/// (a person pushed to it, amended or rebased our commit). Our branch is always one commit of
/// ours on the default branch, so its tip tells. `None`: pushing may replace it. (A push by a
/// person between this check and ours is not detected: libgit2 has no force-with-lease.)
pub fn foreign_tip(
    repo: &Repository,
    branch: &str,
    commit: Oid,
    auth: &GitAuth,
    our_email: &str,
) -> Result<Option<Oid>, GitError> {
    let Some(remote_tip) = remote_branch_commit(repo, branch, auth)? else {
        return Ok(None);
    };
    if remote_tip == commit {
        return Ok(None);
    }
    let ours = repo
        .find_commit(commit)
        .map_err(|e| local(&e, "push (finding the commit to push)"))?;
    let theirs = remote_commit(repo, branch, remote_tip, auth)?;
    let written_by_us = theirs.author().email().ok() == Some(our_email)
        && theirs.committer().email().ok() == Some(our_email);
    Ok((theirs.tree_id() != ours.tree_id() && !written_by_us).then_some(remote_tip))
}

/// The tree of the server's `branch`, fetching its tip when the commit is not here yet.
fn remote_tree(
    repo: &Repository,
    branch: &str,
    remote_tip: Oid,
    auth: &GitAuth,
) -> Result<Oid, GitError> {
    remote_commit(repo, branch, remote_tip, auth).map(|c| c.tree_id())
}

/// The server's tip of `branch`, fetching it (shallow where the transport allows) when the
/// commit is not here yet.
fn remote_commit<'r>(
    repo: &'r Repository,
    branch: &str,
    remote_tip: Oid,
    auth: &GitAuth,
) -> Result<git2::Commit<'r>, GitError> {
    if let Ok(found) = repo.find_commit(remote_tip) {
        return Ok(found);
    }
    let mut remote = origin(repo)?;
    let url = remote.url().unwrap_or_default().to_owned();
    let tracking = format!("refs/remotes/origin/{branch}");
    let mut options = FetchOptions::new();
    options.remote_callbacks(remote_callbacks(auth));
    options.follow_redirects(RemoteRedirect::None);
    if is_network_url(&url) {
        options.depth(1);
    }
    remote
        .fetch(
            &[format!("+refs/heads/{branch}:{tracking}")],
            Some(&mut options),
            None,
        )
        .map_err(|e| classify(&e, "fetch", &url, auth))?;
    // The branch may have moved since the listing; compare with what was fetched.
    repo.find_reference(&tracking)
        .and_then(|r| r.peel_to_commit())
        .map_err(|e| local(&e, &format!("push (reading the fetched {branch})")))
}

fn origin(repo: &Repository) -> Result<git2::Remote<'_>, GitError> {
    repo.find_remote("origin").map_err(|e| {
        GitError::Permanent(format!(
            "the clone has no usable origin remote: {}",
            e.message()
        ))
    })
}

fn branch_ref(branch: &str) -> Result<String, GitError> {
    let refname = format!("refs/heads/{branch}");
    if Reference::is_valid_name(&refname) {
        Ok(refname)
    } else {
        Err(GitError::Permanent(format!(
            "{branch:?} is not a valid git branch name"
        )))
    }
}
