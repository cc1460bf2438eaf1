//! Server-side forge configuration: which forge serves which host, where its token lives, and
//! which repository URL schemes are allowed. These come from the service's config file only,
//! never from a request, so a caller cannot point a token at a host of its choosing.

use std::path::PathBuf;

use serde::Deserialize;

/// The kind of forge behind a host; decides which API opens pull requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ForgeKind {
    /// github.com or GitHub Enterprise Server (REST API v3).
    Github,
    /// gitlab.com or self-managed GitLab (REST API v4, merge requests).
    Gitlab,
    /// Gitea or Forgejo (REST API v1); "forgejo" is accepted as another name for it.
    #[serde(alias = "forgejo")]
    Gitea,
    /// Any git server reachable over https/ssh; the branch is pushed, no pull request opened.
    PlainGit,
}

impl ForgeKind {
    /// The name used in config and messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ForgeKind::Github => "github",
            ForgeKind::Gitlab => "gitlab",
            ForgeKind::Gitea => "gitea",
            ForgeKind::PlainGit => "plain_git",
        }
    }
}

/// One `[[forges]]` entry.
#[derive(Clone, Debug, Deserialize)]
pub struct ForgeSettings {
    /// Authority as it appears in repository URLs: "github.com", "ghe.example.com",
    /// "127.0.0.1:8080". Matched case-insensitively.
    pub host: String,
    pub kind: ForgeKind,
    /// REST API base. GitHub: default "https://api.github.com"; GHE: "https://HOST/api/v3".
    /// GitLab: default "https://gitlab.com/api/v4" for host gitlab.com, required
    /// ("https://HOST/api/v4") for any other host. Gitea/Forgejo: required, "https://HOST/api/v1".
    #[serde(default)]
    pub api_url: Option<String>,
    /// User name for git over https, with the token as password. Default "x-access-token" for
    /// GitHub and "oauth2" for GitLab (what each documents for token auth), "git" otherwise
    /// (Gitea accepts a token as the password with any user name).
    #[serde(default)]
    pub git_username: Option<String>,
    /// Name of the environment variable that holds the token.
    #[serde(default)]
    pub token_env: Option<String>,
    /// Or a file that holds the token (a trailing newline is trimmed).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// Private key for ssh repository URLs.
    #[serde(default)]
    pub ssh_key_file: Option<PathBuf>,
}

/// GitHub's public API, used when a github forge has no `api_url`.
pub const GITHUB_DEFAULT_API_URL: &str = "https://api.github.com";
/// The host whose GitLab API has a known address.
pub const GITLAB_DEFAULT_HOST: &str = "gitlab.com";
/// gitlab.com's API, used when a gitlab forge for host gitlab.com has no `api_url`.
pub const GITLAB_DEFAULT_API_URL: &str = "https://gitlab.com/api/v4";

impl ForgeSettings {
    /// The REST API base for this forge: the configured one, else the kind's public default.
    /// `None` when there is none to use: plain git, Gitea (always self-hosted), and GitLab on
    /// any host but gitlab.com, whose token must not be sent to gitlab.com by default.
    pub fn effective_api_url(&self) -> Option<&str> {
        match (self.kind, self.api_url.as_deref()) {
            (_, Some(url)) => Some(url),
            (ForgeKind::Github, None) => Some(GITHUB_DEFAULT_API_URL),
            (ForgeKind::Gitlab, None)
                if self.host.trim().eq_ignore_ascii_case(GITLAB_DEFAULT_HOST) =>
            {
                Some(GITLAB_DEFAULT_API_URL)
            }
            (ForgeKind::Gitlab | ForgeKind::Gitea | ForgeKind::PlainGit, None) => None,
        }
    }

    /// The user name git sends over https together with the token.
    pub fn effective_git_username(&self) -> &str {
        match (self.kind, self.git_username.as_deref()) {
            (_, Some(name)) => name,
            (ForgeKind::Github, None) => "x-access-token",
            (ForgeKind::Gitlab, None) => "oauth2",
            (ForgeKind::Gitea | ForgeKind::PlainGit, None) => "git",
        }
    }
}

/// Which repository URL schemes beyond https and ssh are accepted. Both default to false:
/// http sends the token in clear text and file reads the worker's own disk, so they are only
/// for local use and tests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(default)]
pub struct UrlPolicy {
    pub allow_http: bool,
    pub allow_file: bool,
}
