//! The admission check of the intake and the import: whether a project's repository can be
//! remediated at all, judged from the catalog alone (no network): the URL passes
//! [`RepositoryUrl::parse`] under the configured scheme policy, an IP-literal host passes the
//! egress policy, and the default branch passes [`check_branch_name`]. `remediator import` runs
//! this before storing a project and the intake before queueing a job; the worker runs the same
//! functions (`ForgeRegistry::resolve`, `git::check_remote`, the clone), so a repository accepted
//! here is refused later only for what needs the network or the forge config: an unknown host, DNS
//! answers, the git server.

use crate::egress::{BlockedAddress, EgressPolicy, split_authority};
use crate::forge::repo_url::{RepoScheme, RepoUrlError, RepositoryUrl};
use crate::forge::settings::UrlPolicy;
use crate::git::check_branch_name;

/// The settings the check depends on: `git.allow_http` / `git.allow_file` and
/// `security.allow_private_networks`, exactly as the worker applies them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RepositoryRules {
    pub urls: UrlPolicy,
    pub egress: EgressPolicy,
}

impl RepositoryRules {
    pub fn from_settings(settings: &crate::config::Settings) -> Self {
        Self {
            urls: settings.git.url_policy(),
            egress: settings.security.egress(),
        }
    }
}

/// Why a project's repository cannot be remediated. Messages never repeat the URL (it may
/// carry a credential) or the branch name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NotRemediable {
    #[error("{0}")]
    Url(#[from] RepoUrlError),
    #[error("repository host refused: {0}")]
    Address(BlockedAddress),
    #[error("{0}")]
    Branch(String),
}

impl NotRemediable {
    /// The project field at fault, as the import file and the API name it.
    pub fn field(&self) -> &'static str {
        match self {
            NotRemediable::Url(_) | NotRemediable::Address(_) => "repository_url",
            NotRemediable::Branch(_) => "default_branch",
        }
    }
}

/// Checks a project's repository URL and default branch; see the module documentation.
pub fn check_project_repository(
    url: &str,
    branch: &str,
    rules: &RepositoryRules,
) -> Result<RepositoryUrl, NotRemediable> {
    let parsed = RepositoryUrl::parse(url, &rules.urls)?;
    let default_port = match parsed.scheme {
        RepoScheme::File => None,
        RepoScheme::Https => Some(443),
        RepoScheme::Http => Some(80),
        RepoScheme::Ssh => Some(22),
    };
    if let Some(port) = default_port {
        // Names are resolved by the worker just before git connects (DNS may change); a
        // literal address can be judged now.
        let (host, _) = split_authority(&parsed.host, port);
        if let Ok(ip) = host.parse() {
            rules
                .egress
                .check_ip(host, ip)
                .map_err(NotRemediable::Address)?;
        }
    }
    check_branch_name(branch).map_err(NotRemediable::Branch)?;
    Ok(parsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The defaults: https and ssh only, no private addresses.
    fn strict() -> RepositoryRules {
        RepositoryRules::default()
    }

    fn local() -> RepositoryRules {
        RepositoryRules {
            urls: UrlPolicy {
                allow_http: true,
                allow_file: true,
            },
            egress: EgressPolicy::allow_all(),
        }
    }

    #[test]
    fn hostile_repositories_are_refused_naming_the_field_without_echoing_it() {
        for (url, branch, field) in [
            ("file:///etc", "main", "repository_url"),
            (
                "http://169.254.169.254/latest/meta-data",
                "main",
                "repository_url",
            ),
            (
                "https://169.254.169.254/latest/meta-data",
                "main",
                "repository_url",
            ),
            ("https://[::1]/acme/web", "main", "repository_url"),
            (
                "ssh://-oProxyCommand=touch%20x/acme/web",
                "main",
                "repository_url",
            ),
            ("--upload-pack=touch /tmp/x", "main", "repository_url"),
            ("ext::sh -c touch% /tmp/x", "main", "repository_url"),
            (
                "https://github.com/acme/web\r\nHost: x",
                "main",
                "repository_url",
            ),
            (" https://github.com/acme/web", "main", "repository_url"),
            ("https://github.com/acme/web ", "main", "repository_url"),
            (
                "https://user:s3cretpass@github.com/acme/web",
                "main",
                "repository_url",
            ),
            (
                "https://ghp_abcdef0123456789@github.com/acme/web",
                "main",
                "repository_url",
            ),
            (
                "https://github.com/acme/web",
                "--upload-pack=x",
                "default_branch",
            ),
            ("https://github.com/acme/web", "main\0", "default_branch"),
        ] {
            let error = check_project_repository(url, branch, &strict())
                .expect_err(&format!("{url:?} {branch:?} should be refused"));
            assert_eq!(error.field(), field, "{url:?}: {error}");
            let message = error.to_string();
            for secret in ["s3cretpass", "ghp_abcdef", "upload-pack", "ProxyCommand"] {
                assert!(!message.contains(secret), "{message}");
            }
        }
        let long = format!("https://github.com/acme/{}", "a".repeat(3000));
        assert!(check_project_repository(&long, "main", &strict()).is_err());
    }

    #[test]
    fn the_configured_allowances_are_honoured_as_the_worker_honours_them() {
        for url in [
            "https://github.com/acme/web.git",
            "ssh://git@github.com/acme/web.git",
            "git@github.com:acme/web.git",
        ] {
            assert!(
                check_project_repository(url, "main", &strict()).is_ok(),
                "{url}"
            );
        }
        for url in [
            "file:///srv/git/web.git",
            "http://127.0.0.1:8080/acme/web.git",
        ] {
            assert!(
                check_project_repository(url, "main", &strict()).is_err(),
                "{url}"
            );
            assert!(
                check_project_repository(url, "main", &local()).is_ok(),
                "{url}"
            );
        }
        // The egress policy alone refuses a literal private address over https.
        let mut private_ok = strict();
        assert!(check_project_repository("https://10.0.0.1/a/b", "main", &private_ok).is_err());
        private_ok.egress = EgressPolicy::allow_all();
        assert!(check_project_repository("https://10.0.0.1/a/b", "main", &private_ok).is_ok());
    }
}
