//! Cloning one branch of a repository, shallow when the transport allows it.

use std::path::Path;

use git2::build::RepoBuilder;
use git2::{AutotagOption, ErrorClass, ErrorCode, FetchOptions, RemoteRedirect, Repository};

use super::credentials::remote_callbacks;
use super::error::{classify, display_url};
use super::{GitAuth, GitError};

/// Clones `branch` of `url` into `dest` (which must not exist or be empty) and checks it out.
///
/// Over http(s), ssh and git the clone is shallow (depth 1) and fetches only that branch. A
/// `file://` URL or a plain path is cloned in full, because libgit2's local transport cannot
/// make a shallow clone. The remote `origin` in `.git/config` records exactly `url`: the
/// credentials go through the callback only.
pub fn clone_default_branch(
    url: &str,
    branch: &str,
    dest: &Path,
    auth: &GitAuth,
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

    let mut fetch = FetchOptions::new();
    fetch.remote_callbacks(remote_callbacks(auth));
    // Our URL policy checked the host; an off-site redirect would bypass it.
    fetch.follow_redirects(RemoteRedirect::None);
    fetch.download_tags(AutotagOption::None);
    if is_network_url(url) {
        fetch.depth(1);
    }

    // Like `git clone --single-branch`: the remote's only refspec is the branch we work on.
    let refspec = format!("+refs/heads/{branch}:refs/remotes/origin/{branch}");
    let mut builder = RepoBuilder::new();
    builder
        .branch(branch)
        .fetch_options(fetch)
        .remote_create(move |repo, name, remote_url| {
            repo.remote_with_fetch(name, remote_url, &refspec)
        });

    let repo = builder.clone(url, dest).map_err(|e| {
        if e.code() == ErrorCode::NotFound && e.class() == ErrorClass::Reference {
            GitError::Permanent(format!(
                "branch {branch:?} not found in {}; check the repository's default branch",
                display_url(url)
            ))
        } else {
            classify(&e, "clone", url, auth)
        }
    })?;

    ensure_origin_url(&repo, url)?;
    Ok(repo)
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
