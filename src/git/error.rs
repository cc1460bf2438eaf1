//! `GitError`, and the classification of libgit2 failures into transient (retry) and permanent
//! (fail the operation with this message) with text an operator can act on.

use git2::{ErrorClass, ErrorCode};

use super::GitAuth;

/// A failed git step. The message is safe to store and show: it never contains a secret.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum GitError {
    /// Worth retrying later: network trouble, timeouts, a server error.
    #[error("{0}")]
    Transient(String),
    /// Retrying will not help: refused credentials, missing repository or branch, bad input.
    #[error("{0}")]
    Permanent(String),
}

impl GitError {
    pub fn is_transient(&self) -> bool {
        matches!(self, GitError::Transient(_))
    }

    pub fn message(&self) -> &str {
        match self {
            GitError::Transient(m) | GitError::Permanent(m) => m,
        }
    }
}

/// The host (and port) of a git URL, without any user info, for error messages.
pub(crate) fn url_host(url: &str) -> String {
    if let Some((_, rest)) = url.split_once("://") {
        let authority = rest.split('/').next().unwrap_or("");
        let host = authority.rsplit('@').next().unwrap_or(authority);
        if host.is_empty() {
            return display_url(url);
        }
        return host.to_string();
    }
    // scp-like syntax: [user@]host:path
    if let Some((before, _)) = url.split_once(':') {
        if !before.contains('/') {
            return before.rsplit('@').next().unwrap_or(before).to_string();
        }
    }
    url.to_string()
}

/// The URL with any user info removed, for error messages.
pub(crate) fn display_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        let (authority, path) = match rest.find('/') {
            Some(i) => rest.split_at(i),
            None => (rest, ""),
        };
        let host = authority.rsplit('@').next().unwrap_or(authority);
        return format!("{scheme}://{host}{path}");
    }
    url.to_string()
}

/// Replaces every occurrence of the token in `text`, as a last line of defence should libgit2
/// ever echo it back.
pub(crate) fn scrub(text: &str, auth: &GitAuth) -> String {
    match auth.token_text() {
        Some(token) if !token.is_empty() => text.replace(token, "[redacted]"),
        _ => text.to_string(),
    }
}

/// Turns a libgit2 error met while talking to `url` (during `action`, e.g. "clone") into a
/// classified, secret-free [`GitError`].
pub(crate) fn classify(err: &git2::Error, action: &str, url: &str, auth: &GitAuth) -> GitError {
    let host = url_host(url);
    let shown_url = display_url(url);
    let raw = scrub(err.message(), auth);
    let lower = raw.to_ascii_lowercase();

    if err.code() == ErrorCode::Auth {
        // Our credential callback writes its refusals for operators; keep them as they are.
        if err.class() == ErrorClass::Callback {
            return GitError::Permanent(raw);
        }
        return GitError::Permanent(format!(
            "git server refused the credentials for {host}; check the forge token ({action}: {raw})"
        ));
    }
    if err.code() == ErrorCode::Certificate || err.class() == ErrorClass::Ssl {
        return GitError::Permanent(format!(
            "could not verify the TLS certificate of {host} during {action}: {raw}; check the \
             server certificate or the trusted CA bundle"
        ));
    }
    if let Some(status) = http_status(&lower) {
        return http_refusal(status, action, &host, &shown_url, &raw);
    }
    if err.class() == ErrorClass::Ssh {
        return ssh_error(&lower, action, &host, &shown_url, &raw);
    }
    // A local path (file:// or plain) that is not there is reported as an OS error.
    if err.code() == ErrorCode::NotFound
        || lower.contains("failed to resolve path")
        || lower.contains("could not find repository")
    {
        return GitError::Permanent(format!(
            "repository {shown_url} not found during {action}: {raw}"
        ));
    }
    let network = matches!(
        err.class(),
        ErrorClass::Net | ErrorClass::Os | ErrorClass::Http
    ) || lower.contains("timed out")
        || lower.contains("timeout")
        || lower.contains("connection")
        || lower.contains("early eof");
    if network {
        return GitError::Transient(format!(
            "could not reach git server {host} during {action}: {raw}"
        ));
    }
    GitError::Permanent(format!("git {action} failed for {shown_url}: {raw}"))
}

/// What an HTTP status from the git server means: a refusal to act on, or a blip to retry.
fn http_refusal(status: u16, action: &str, host: &str, shown_url: &str, raw: &str) -> GitError {
    match status {
        401 => GitError::Permanent(format!(
            "git server refused the credentials for {host}; check the forge token ({action})"
        )),
        403 => GitError::Permanent(format!(
            "git server {host} denied access to {shown_url} (HTTP 403) during {action}; check \
             that the forge token may read and push this repository"
        )),
        404 => GitError::Permanent(format!(
            "repository {shown_url} not found (HTTP 404) during {action}; check the \
             repository URL and that the forge token can see it"
        )),
        408 | 429 | 500..=599 => GitError::Transient(format!(
            "git server {host} answered HTTP {status} during {action}; will retry"
        )),
        _ => GitError::Permanent(format!(
            "git server {host} answered HTTP {status} during {action}: {raw}"
        )),
    }
}

/// What an SSH transport error means: a refused key or a missing repository are final; the
/// rest may pass.
fn ssh_error(lower: &str, action: &str, host: &str, shown_url: &str, raw: &str) -> GitError {
    if lower.contains("authenticat") || lower.contains("permission denied") {
        return GitError::Permanent(format!(
            "git server refused the SSH key for {host}; check the configured SSH key \
             ({action}: {raw})"
        ));
    }
    if lower.contains("not found") || lower.contains("does not exist") {
        return GitError::Permanent(format!(
            "repository {shown_url} not found during {action}: {raw}"
        ));
    }
    GitError::Transient(format!(
        "SSH error talking to {host} during {action}: {raw}"
    ))
}

/// A local git failure (no network involved), e.g. writing the index or a commit.
pub(crate) fn local(err: &git2::Error, action: &str) -> GitError {
    GitError::Permanent(format!("git {action} failed: {}", err.message()))
}

/// The HTTP status libgit2 reports as "unexpected http status code: NNN".
fn http_status(lower_message: &str) -> Option<u16> {
    let rest = lower_message.split("http status code:").nth(1)?;
    let digits: String = rest
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_digit())
        .collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn auth() -> GitAuth {
        GitAuth {
            username: "u".into(),
            token: Some(SecretString::from("tok-12345")),
            ssh_key_file: None,
        }
    }

    #[test]
    fn hosts_come_without_user_info() {
        assert_eq!(
            url_host("https://u:p@example.com:8443/a/b.git"),
            "example.com:8443"
        );
        assert_eq!(url_host("ssh://git@example.com/a.git"), "example.com");
        assert_eq!(url_host("git@example.com:a/b.git"), "example.com");
        assert_eq!(url_host("/srv/git/a.git"), "/srv/git/a.git");
        assert_eq!(url_host("file:///srv/git/a.git"), "file:///srv/git/a.git");
        assert_eq!(
            display_url("https://u:p@example.com/a.git"),
            "https://example.com/a.git"
        );
    }

    #[test]
    fn http_statuses_are_classified() {
        let e = |m: &str| git2::Error::new(ErrorCode::GenericError, ErrorClass::Http, m);
        let not_found = classify(
            &e("unexpected http status code: 404"),
            "clone",
            "https://h/r.git",
            &auth(),
        );
        assert!(matches!(not_found, GitError::Permanent(ref m) if m.contains("not found")));
        let busy = classify(
            &e("unexpected http status code: 503"),
            "clone",
            "https://h/r.git",
            &auth(),
        );
        assert!(busy.is_transient());
        let refused = classify(
            &e("unexpected http status code: 401"),
            "push",
            "https://h/r.git",
            &auth(),
        );
        assert!(
            matches!(refused, GitError::Permanent(ref m) if m.contains("check the forge token"))
        );
    }

    #[test]
    fn the_token_never_survives_classification() {
        let e = git2::Error::new(
            ErrorCode::GenericError,
            ErrorClass::Net,
            "failed with tok-12345 in the text",
        );
        let classified = classify(&e, "clone", "https://h/r.git", &auth());
        assert!(classified.is_transient());
        assert!(!classified.message().contains("tok-12345"));
    }
}
