//! The outbound address check for git remotes. libgit2 resolves and connects on its own, so
//! the egress policy cannot sit inside its connection the way it sits inside reqwest's; the
//! remote's host is resolved here and every address checked just before a clone or a push.
//!
//! Residual risk (time of check to time of use): libgit2 resolves the name again when it
//! connects, so a DNS server that answers a public address to us and a private one to
//! libgit2 moments later (rebinding with a very short TTL) could still steer that connection.
//! Hosts are limited to the configured `[[forges]]`, which keeps this to names whose DNS an
//! operator chose; IP-literal hosts are not affected.

use crate::egress::{EgressError, EgressPolicy, split_authority};
use crate::forge::{RepoScheme, RepositoryUrl};

use super::GitError;

/// Refuses a remote whose host is, or resolves to, an address the policy refuses (permanent);
/// a name that does not resolve is transient, as any DNS failure. `file://` needs no check.
pub async fn check_remote(egress: EgressPolicy, url: &RepositoryUrl) -> Result<(), GitError> {
    let default_port = match url.scheme {
        RepoScheme::File => return Ok(()),
        RepoScheme::Https => 443,
        RepoScheme::Http => 80,
        RepoScheme::Ssh => 22,
    };
    let (host, port) = split_authority(&url.host, default_port);
    egress
        .check_host(host, port)
        .await
        .map_err(|error| match error {
            EgressError::Blocked(blocked) => GitError::Permanent(format!(
                "repository host refused: {blocked}; check the project's repository URL"
            )),
            unresolvable @ EgressError::Unresolvable { .. } => {
                GitError::Transient(unresolvable.to_string())
            }
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forge::UrlPolicy;

    fn url(raw: &str) -> RepositoryUrl {
        let policy = UrlPolicy {
            allow_http: true,
            allow_file: true,
        };
        RepositoryUrl::parse(raw, &policy).unwrap()
    }

    #[tokio::test]
    async fn private_remotes_are_refused_before_git_runs() {
        let deny = EgressPolicy::default();
        for (raw, needle) in [
            (
                "https://10.0.0.1/acme/web.git",
                "10.0.0.1 is a private network address",
            ),
            (
                "http://169.254.169.254:8080/acme/web.git",
                "169.254.169.254 is a link-local",
            ),
            (
                "ssh://git@127.0.0.1:2222/acme/web.git",
                "127.0.0.1 is a loopback",
            ),
            ("ssh://git@[::1]:2222/acme/web.git", "::1 is a loopback"),
            ("https://localhost/acme/web.git", "localhost resolves to"),
        ] {
            match check_remote(deny, &url(raw)).await {
                Err(GitError::Permanent(message)) => {
                    assert!(message.contains(needle), "{raw}: {message}");
                    assert!(message.contains("allow_private_networks"), "{message}");
                }
                other => panic!("{raw}: {other:?}"),
            }
        }
        assert_eq!(
            check_remote(
                EgressPolicy::allow_all(),
                &url("https://10.0.0.1/acme/web.git")
            )
            .await,
            Ok(())
        );
        assert_eq!(
            check_remote(deny, &url("file:///srv/git/web.git")).await,
            Ok(())
        );
    }
}
