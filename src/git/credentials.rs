//! Git credentials and the libgit2 credential callback: the only way a token or SSH key reaches
//! git (never a URL, never `.git/config`).

use std::fmt;
use std::path::PathBuf;

use git2::{Cred, CredentialType, ErrorClass, ErrorCode, RemoteCallbacks};
use secrecy::{ExposeSecret, SecretString};

use super::error::url_host;

/// How to authenticate to a git server: HTTPS with `username` + `token` (for forges the token
/// is the password), or SSH with a private key file. A forge resolves a repository's URL to
/// one (`crate::forge::ForgeRegistry::resolve`); `Debug` redacts the token.
#[derive(Clone)]
pub struct GitAuth {
    /// HTTPS user name (e.g. `x-access-token` for GitHub apps, `oauth2` for GitLab), and the SSH
    /// user when the URL does not name one.
    pub username: String,
    pub token: Option<SecretString>,
    pub ssh_key_file: Option<PathBuf>,
}

impl fmt::Debug for GitAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GitAuth")
            .field("username", &self.username)
            .field("token", &self.token.as_ref().map(|_| "[REDACTED]"))
            .field("ssh_key_file", &self.ssh_key_file)
            .finish()
    }
}

impl GitAuth {
    /// The token, if any, as the text to scrub from error messages.
    pub(crate) fn token_text(&self) -> Option<&str> {
        self.token.as_ref().map(|t| t.expose_secret())
    }
}

/// libgit2 asks again after the server refuses what we gave; each kind of credential is offered
/// once, and this caps the total in case a server keeps asking for other kinds.
const MAX_CREDENTIAL_CALLS: u32 = 4;

/// Callbacks whose credential callback answers with `auth`, and refuses (with an error that
/// `classify` turns into an actionable permanent failure) when the same kind of credential is
/// asked for a second time, because that means the server refused it and asking again would
/// loop.
pub fn remote_callbacks(auth: &GitAuth) -> RemoteCallbacks<'_> {
    let mut callbacks = RemoteCallbacks::new();
    let mut calls = 0u32;
    let mut offered_userpass = false;
    let mut offered_ssh_key = false;
    callbacks.credentials(move |url, username_from_url, allowed| {
        calls += 1;
        let host = url_host(url);
        if calls > MAX_CREDENTIAL_CALLS {
            return Err(refused(&host));
        }
        if allowed.contains(CredentialType::USERNAME) {
            // SSH asks for the user name alone before it asks for a key.
            return Cred::username(username_from_url.unwrap_or(&auth.username));
        }
        if allowed.contains(CredentialType::SSH_KEY) {
            if let Some(key) = &auth.ssh_key_file {
                if offered_ssh_key {
                    return Err(refused(&host));
                }
                offered_ssh_key = true;
                let user = username_from_url.unwrap_or(&auth.username);
                return Cred::ssh_key(user, None, key, None).map_err(|e| {
                    auth_error(format!(
                        "could not load the SSH key {} for {host}: {}",
                        key.display(),
                        e.message()
                    ))
                });
            }
        }
        if allowed.contains(CredentialType::USER_PASS_PLAINTEXT) {
            let Some(token) = &auth.token else {
                return Err(auth_error(format!(
                    "git server {host} asked for credentials but no forge token is configured; \
                     configure the forge token"
                )));
            };
            if offered_userpass {
                return Err(refused(&host));
            }
            offered_userpass = true;
            return Cred::userpass_plaintext(&auth.username, token.expose_secret());
        }
        if allowed.contains(CredentialType::SSH_KEY) {
            return Err(auth_error(format!(
                "git server {host} asked for an SSH key but no SSH key file is configured; \
                 configure the SSH key file"
            )));
        }
        Err(auth_error(format!(
            "git server {host} asked for an unsupported kind of credential ({allowed:?}); \
             use an HTTPS token or an SSH key"
        )))
    });
    callbacks
}

fn refused(host: &str) -> git2::Error {
    auth_error(format!(
        "git server refused the credentials for {host}; check the forge token"
    ))
}

/// An error coded `Auth` and classed `Callback`: `classify` keeps its message as it is, since it
/// was written here to be read by an operator.
fn auth_error(message: String) -> git2::Error {
    git2::Error::new(ErrorCode::Auth, ErrorClass::Callback, message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_the_token() {
        let auth = GitAuth {
            username: "x-access-token".into(),
            token: Some(SecretString::from("ghp_supersecret")),
            ssh_key_file: None,
        };
        let shown = format!("{auth:?}");
        assert!(!shown.contains("ghp_supersecret"), "{shown}");
        assert!(shown.contains("[REDACTED]"), "{shown}");
        assert!(shown.contains("x-access-token"), "{shown}");
    }
}
