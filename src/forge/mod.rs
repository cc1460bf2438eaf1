//! The forge layer: which forge and which credentials serve a repository, and how a pull
//! request is opened (or an existing one reused) there.
//!
//! The forge for a repository is chosen by the host in its URL from the server's own
//! `[[forges]]` config, never from anything in the request, so a caller cannot send our token
//! to a host of its choosing. Each forge kind lives in its own file behind [`Forge`];
//! [`AnyForge`] dispatches without boxing so the futures stay `Send`.

#[cfg(test)]
mod client_checks;
mod flow;
pub mod gitea;
pub mod github;
pub mod gitlab;
mod http;
pub mod plain;
pub mod repo_url;
mod repos_api;
pub mod settings;
#[cfg(test)]
mod test_harness;
mod wire;

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use anyhow::{Context, bail};
use secrecy::{ExposeSecret, SecretString};

use crate::egress::EgressPolicy;
use crate::git::GitAuth;
use crate::lifecycle::fix_plan::ObservedState;

pub use http::ApiEndpoint;
pub use repo_url::{RepoScheme, RepoUrlError, RepositoryUrl};
pub use settings::{ForgeKind, ForgeSettings, UrlPolicy};

/// A repository URL matched to its forge and credentials.
#[derive(Clone, Debug)]
pub struct ResolvedRepository {
    pub url: RepositoryUrl,
    pub credentials: GitAuth,
    pub forge: AnyForge,
}

/// The pull request to open (or find) for a pushed branch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullRequestSpec {
    pub owner: String,
    pub repo: String,
    pub head_branch: String,
    pub base_branch: String,
    pub title: String,
    pub body: String,
    pub labels: Vec<String>,
    pub draft: bool,
}

/// A pull request by its repository and number, as the reconciler knows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullRequestRef {
    pub owner: String,
    pub repo: String,
    pub number: u64,
}

impl PullRequestRef {
    /// The repository and number of pull request `number` of `repository`.
    pub fn of(repository: &ResolvedRepository, number: u64) -> Self {
        let (owner, repo) = match repository.url.owner_and_name() {
            Some((owner, name)) => (owner.to_owned(), name.to_owned()),
            None => (String::new(), repository.url.path.clone()),
        };
        PullRequestRef {
            owner,
            repo,
            number,
        }
    }

    /// A spec naming only the repository: what the forges' shared request and error code
    /// takes for messages. The branches are placeholders, never sent.
    pub(crate) fn as_spec(&self) -> PullRequestSpec {
        PullRequestSpec {
            owner: self.owner.clone(),
            repo: self.repo.clone(),
            head_branch: "-".to_owned(),
            base_branch: "-".to_owned(),
            title: String::new(),
            body: String::new(),
            labels: Vec::new(),
            draft: false,
        }
    }
}

/// An open pull request on a forge.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PullRequest {
    pub number: u64,
    /// The web page of the pull request (not the API URL).
    pub url: String,
    /// True when an open pull request for the branch already existed.
    pub reused: bool,
}

/// A forge failure, sorted by whether trying again can help.
#[derive(thiserror::Error, Debug, Clone, PartialEq, Eq)]
pub enum ForgeError {
    /// Network trouble, 5xx, rate limits: retry, after `retry_after` when the forge said so.
    #[error("{message}")]
    Transient {
        message: String,
        retry_after: Option<Duration>,
    },
    /// Refused credentials, missing repository, invalid request: retrying cannot help.
    #[error("{0}")]
    Permanent(String),
}

impl ForgeError {
    pub fn is_transient(&self) -> bool {
        matches!(self, ForgeError::Transient { .. })
    }

    /// How long the forge asked us to wait, if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ForgeError::Transient { retry_after, .. } => *retry_after,
            ForgeError::Permanent(_) => None,
        }
    }
}

/// What every forge can do for a pushed branch.
pub trait Forge {
    /// Short name for logs and operation output ("github", "gitlab", "gitea", "plain_git").
    fn name(&self) -> &'static str;

    /// Returns the open pull request for `spec.head_branch`, creating it if there is none.
    /// `Ok(None)` means this forge has no pull requests (plain git: the branch is the result).
    fn open_or_reuse(
        &self,
        spec: &PullRequestSpec,
    ) -> impl Future<Output = Result<Option<PullRequest>, ForgeError>> + Send;

    /// The open pull request for `spec.head_branch`, if there is one; never creates one. Used
    /// when no new pull request may be opened (the repository is at its cap) but reusing ours
    /// is still fine. Always `Ok(None)` for plain git.
    fn find_open_pull_request(
        &self,
        spec: &PullRequestSpec,
    ) -> impl Future<Output = Result<Option<PullRequest>, ForgeError>> + Send;

    /// Sets the title and body of open pull request `number` to the spec's: the fix was raised
    /// to another version or lists more advisories. A no-op for plain git.
    fn update_pull_request(
        &self,
        spec: &PullRequestSpec,
        number: u64,
    ) -> impl Future<Output = Result<(), ForgeError>> + Send;

    /// Adds a comment to the pull request (a no-op for plain git).
    fn comment_on_pull_request(
        &self,
        target: &PullRequestRef,
        body: &str,
    ) -> impl Future<Output = Result<(), ForgeError>> + Send;

    /// Where the pull request stands on the forge (the reconciler asks). `Ok(None)` for plain
    /// git, which has no pull requests.
    fn pull_request_state(
        &self,
        target: &PullRequestRef,
    ) -> impl Future<Output = Result<Option<ObservedState>, ForgeError>> + Send;
}

/// Every supported forge, dispatched statically.
#[derive(Clone, Debug)]
pub enum AnyForge {
    Github(github::GithubForge),
    Gitlab(gitlab::GitlabForge),
    Gitea(gitea::GiteaForge),
    PlainGit(plain::PlainGit),
}

/// Runs `$call` on whichever forge `$any` holds. The forges' futures differ in type, so there
/// is no `dyn Forge` to hand the call to; the match is written once here instead.
macro_rules! on_each_forge {
    ($any:expr, $forge:ident => $call:expr) => {
        match $any {
            AnyForge::Github($forge) => $call,
            AnyForge::Gitlab($forge) => $call,
            AnyForge::Gitea($forge) => $call,
            AnyForge::PlainGit($forge) => $call,
        }
    };
}

impl Forge for AnyForge {
    fn name(&self) -> &'static str {
        on_each_forge!(self, forge => forge.name())
    }

    async fn open_or_reuse(
        &self,
        spec: &PullRequestSpec,
    ) -> Result<Option<PullRequest>, ForgeError> {
        on_each_forge!(self, forge => forge.open_or_reuse(spec).await)
    }

    async fn find_open_pull_request(
        &self,
        spec: &PullRequestSpec,
    ) -> Result<Option<PullRequest>, ForgeError> {
        on_each_forge!(self, forge => forge.find_open_pull_request(spec).await)
    }

    async fn update_pull_request(
        &self,
        spec: &PullRequestSpec,
        number: u64,
    ) -> Result<(), ForgeError> {
        on_each_forge!(self, forge => forge.update_pull_request(spec, number).await)
    }

    async fn comment_on_pull_request(
        &self,
        target: &PullRequestRef,
        body: &str,
    ) -> Result<(), ForgeError> {
        on_each_forge!(self, forge => forge.comment_on_pull_request(target, body).await)
    }

    async fn pull_request_state(
        &self,
        target: &PullRequestRef,
    ) -> Result<Option<ObservedState>, ForgeError> {
        on_each_forge!(self, forge => forge.pull_request_state(target).await)
    }
}

impl AnyForge {
    /// False for plain git, which pushes a branch and opens nothing.
    pub fn opens_pull_requests(&self) -> bool {
        !matches!(self, AnyForge::PlainGit(_))
    }
}

/// One configured host.
#[derive(Clone, Debug)]
struct ForgeEntry {
    credentials: GitAuth,
    forge: AnyForge,
}

/// The configured forges, keyed by host, with their tokens loaded once at startup.
#[derive(Clone, Debug)]
pub struct ForgeRegistry {
    by_host: HashMap<String, ForgeEntry>,
    url_policy: UrlPolicy,
    egress: EgressPolicy,
}

impl ForgeRegistry {
    /// Builds the registry, reading every token from its environment variable or file now so
    /// a missing secret stops startup instead of failing jobs later. Errors name the variable
    /// or file, never the value.
    pub fn from_settings(
        forges: &[ForgeSettings],
        url_policy: UrlPolicy,
        http_timeout: Duration,
        egress: EgressPolicy,
    ) -> anyhow::Result<Self> {
        let mut by_host = HashMap::new();
        for settings in forges {
            let host = normalize_config_host(&settings.host)?;
            let entry = build_entry(settings, &host, url_policy, http_timeout, egress)
                .with_context(|| format!("forge for host {host} ({})", settings.kind.as_str()))?;
            if by_host.insert(host.clone(), entry).is_some() {
                bail!("host {host} appears in more than one [[forges]] entry; keep one");
            }
        }
        Ok(Self {
            by_host,
            url_policy,
            egress,
        })
    }

    /// The outbound address policy the forges apply; git remotes are checked against it too.
    pub fn egress(&self) -> EgressPolicy {
        self.egress
    }

    /// Validates `repository_url` and finds its forge and credentials. A `file://` URL (when
    /// allowed) needs no forge: it resolves to plain git without credentials. For ssh URLs an
    /// entry for the bare host name also matches, since ssh often runs on another port than
    /// the one in the https URLs the entry was written for.
    pub fn resolve(&self, repository_url: &str) -> Result<ResolvedRepository, ForgeError> {
        let url = RepositoryUrl::parse(repository_url, &self.url_policy)
            .map_err(|e| ForgeError::Permanent(e.to_string()))?;
        if url.scheme == RepoScheme::File {
            return Ok(ResolvedRepository {
                url,
                credentials: GitAuth {
                    username: "git".to_owned(),
                    token: None,
                    ssh_key_file: None,
                },
                forge: AnyForge::PlainGit(plain::PlainGit),
            });
        }
        let entry = self
            .by_host
            .get(&url.host)
            .or_else(|| match url.scheme {
                RepoScheme::Ssh => url
                    .host
                    .rsplit_once(':')
                    .and_then(|(bare, _port)| self.by_host.get(bare)),
                _ => None,
            })
            .ok_or_else(|| {
                ForgeError::Permanent(format!(
                    "no forge configured for host {}; add a [[forges]] entry",
                    url.host
                ))
            })?;
        let mut credentials = entry.credentials.clone();
        if url.scheme == RepoScheme::Ssh {
            credentials.username = url.user().unwrap_or("git").to_owned();
        }
        Ok(ResolvedRepository {
            url,
            credentials,
            forge: entry.forge.clone(),
        })
    }
}

/// Config hosts are written like URL authorities; catch the common mistake of a full URL.
fn normalize_config_host(host: &str) -> anyhow::Result<String> {
    let trimmed = host.trim();
    if trimmed.is_empty() {
        bail!("a [[forges]] entry has an empty host");
    }
    if trimmed.contains("://") || trimmed.contains('/') || trimmed.contains('@') {
        bail!(
            "forge host {trimmed:?} must be the host as it appears in repository URLs, e.g. \"github.com\" or \"git.example.com:8443\", without scheme, user or path"
        );
    }
    Ok(trimmed.to_ascii_lowercase())
}

fn build_entry(
    settings: &ForgeSettings,
    host: &str,
    url_policy: UrlPolicy,
    http_timeout: Duration,
    egress: EgressPolicy,
) -> anyhow::Result<ForgeEntry> {
    let token = load_token(settings)?;
    if let Some(key) = &settings.ssh_key_file {
        std::fs::metadata(key)
            .with_context(|| format!("cannot read ssh_key_file {}", key.display()))?;
    }
    let endpoint = |api_url| ApiEndpoint {
        api_url,
        host,
        timeout: http_timeout,
        allow_http: url_policy.allow_http,
        egress,
    };
    let forge = match settings.kind {
        ForgeKind::Github => {
            let token = required_token(&token, settings.kind)?;
            let api_url = settings
                .effective_api_url()
                .unwrap_or(settings::GITHUB_DEFAULT_API_URL);
            AnyForge::Github(github::GithubForge::new(endpoint(api_url), token)?)
        }
        ForgeKind::Gitlab => {
            let token = required_token(&token, settings.kind)?;
            let Some(api_url) = settings.effective_api_url() else {
                bail!(
                    "a gitlab forge for a host other than {} needs api_url, e.g. \"https://{host}/api/v4\"",
                    settings::GITLAB_DEFAULT_HOST
                );
            };
            AnyForge::Gitlab(gitlab::GitlabForge::new(endpoint(api_url), token)?)
        }
        ForgeKind::Gitea => {
            let token = required_token(&token, settings.kind)?;
            let Some(api_url) = settings.effective_api_url() else {
                bail!(
                    "a gitea forge is self-hosted and needs api_url, e.g. \"https://{host}/api/v1\""
                );
            };
            AnyForge::Gitea(gitea::GiteaForge::new(endpoint(api_url), token)?)
        }
        ForgeKind::PlainGit => AnyForge::PlainGit(plain::PlainGit),
    };
    Ok(ForgeEntry {
        credentials: GitAuth {
            username: settings.effective_git_username().to_owned(),
            token,
            ssh_key_file: settings.ssh_key_file.clone(),
        },
        forge,
    })
}

/// Forges with an API need a token to open pull requests.
fn required_token(token: &Option<SecretString>, kind: ForgeKind) -> anyhow::Result<SecretString> {
    match token {
        Some(token) => Ok(token.clone()),
        None => bail!(
            "a {} forge needs a token to open pull requests; set token_env or token_file",
            kind.as_str()
        ),
    }
}

fn load_token(settings: &ForgeSettings) -> anyhow::Result<Option<SecretString>> {
    let token = match (&settings.token_env, &settings.token_file) {
        (Some(_), Some(_)) => bail!("set either token_env or token_file, not both"),
        (None, None) => return Ok(None),
        (Some(var), None) => {
            let value = std::env::var(var).map_err(|e| match e {
                std::env::VarError::NotPresent => {
                    anyhow::anyhow!("environment variable {var} (token_env) is not set")
                }
                std::env::VarError::NotUnicode(_) => {
                    anyhow::anyhow!("environment variable {var} (token_env) is not valid UTF-8")
                }
            })?;
            let token = SecretString::from(value.trim().to_owned());
            if token.expose_secret().is_empty() {
                bail!("environment variable {var} (token_env) is empty");
            }
            token
        }
        (None, Some(path)) => {
            let value = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read token_file {}", path.display()))?;
            let token = SecretString::from(value.trim_end_matches(['\n', '\r']).to_owned());
            if token.expose_secret().is_empty() {
                bail!("token_file {} is empty", path.display());
            }
            token
        }
    };
    Ok(Some(token))
}

#[cfg(test)]
mod tests;
