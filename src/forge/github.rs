//! GitHub (github.com and GitHub Enterprise Server) through its REST API: find the open pull
//! request for a branch, or create one and label it.
//!
//! Every call sends the headers GitHub documents (bearer token, `application/vnd.github+json`,
//! the pinned API version, a User-Agent). Redirects to another origin are refused so the token
//! never follows a response to a host we did not configure, and response bodies are capped.
//! Creating, editing, reading, commenting on and labelling a pull request are the calls Gitea
//! makes alike (`repos_api.rs`); finding, the create body and the wording of errors are
//! GitHub's own here.

use std::time::Duration;

use reqwest::StatusCode;
use reqwest::header::{self, HeaderMap, HeaderValue};
use secrecy::SecretString;
use serde::{Deserialize, Serialize};

use super::flow::{self, Created, ListedRequest, PullRequestApi};
use super::http::{
    self, AccessWording, ApiClient, ApiClientConfig, ApiEndpoint, ForgeClient, Reply, TokenHeader,
    forge_client, is_ok, sanitize,
};
use super::repos_api::{self, repo_endpoint};
use super::wire::PullSummary;
use super::{ForgeError, PullRequest, PullRequestSpec};

pub use super::http::{MAX_RESPONSE_BYTES, USER_AGENT};

/// The REST API version these requests are written against.
pub const API_VERSION: &str = "2022-11-28";
/// What a GitHub token needs: pull-request write access.
const ACCESS: AccessWording = AccessWording {
    or_404: " or lacks pull-request write access",
    ..repos_api::access_wording("pull-request write access to")
};
/// GitHub asks clients hitting a secondary rate limit without a retry-after header to wait at
/// least a minute.
const SECONDARY_RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);

forge_client! {
    /// Client for one GitHub host.
    GithubForge
}

#[derive(Serialize)]
struct CreatePull<'a> {
    title: &'a str,
    head: &'a str,
    base: &'a str,
    body: &'a str,
    draft: bool,
}

/// GitHub's error body: `{"message": "...", "errors": [{"message": "..."} | "..."]}`.
#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    message: Option<String>,
    #[serde(default)]
    errors: Vec<serde_json::Value>,
}

impl ErrorBody {
    fn parse(body: &[u8]) -> Self {
        serde_json::from_slice(body).unwrap_or_default()
    }

    fn detail_messages(&self) -> impl Iterator<Item = &str> {
        self.errors.iter().filter_map(|e| match e {
            serde_json::Value::String(s) => Some(s.as_str()),
            other => other.get("message").and_then(|m| m.as_str()),
        })
    }
}

impl GithubForge {
    /// `endpoint.api_url` is "https://api.github.com" or, for GitHub Enterprise Server,
    /// "https://HOST/api/v3"; `endpoint.host` is the repository host this forge serves.
    pub fn new(endpoint: ApiEndpoint<'_>, token: SecretString) -> anyhow::Result<Self> {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/vnd.github+json"),
        );
        headers.insert(
            "X-GitHub-Api-Version",
            HeaderValue::from_static(API_VERSION),
        );
        Self::with_config(ApiClientConfig {
            label: "GitHub",
            api_url_example: "https://HOST/api/v3",
            endpoint,
            token: TokenHeader::authorization("Bearer", &token),
            headers,
        })
    }
}

impl ForgeClient for GithubForge {
    fn client(&self) -> &ApiClient {
        &self.api
    }

    fn status_error(&self, reply: &Reply, spec: &PullRequestSpec, context: &str) -> ForgeError {
        let status = reply.status;
        let host = self.api.host();
        let message = github_message(&reply.body);
        let said = http::said(message.as_deref());
        if matches!(status.as_u16(), 403 | 429) {
            if let Some(retry_after) = rate_limit_wait(&reply.headers, message.as_deref()) {
                return ForgeError::Transient {
                    message: format!(
                        "GitHub rate limit reached for {host} while {context} ({status}); retry in {}s",
                        retry_after.as_secs()
                    ),
                    retry_after: Some(retry_after),
                };
            }
            if status == StatusCode::TOO_MANY_REQUESTS {
                return self
                    .api
                    .rate_limited(reply, &said, context, SECONDARY_RATE_LIMIT_WAIT);
            }
        }
        let repo = format!("{}/{}", spec.owner, spec.repo);
        self.api.refused(reply, &said, context, &repo, &ACCESS)
    }
}

impl PullRequestApi for GithubForge {
    const FORGE: &'static str = "GitHub";

    async fn find_open(&self, spec: &PullRequestSpec) -> Result<Option<PullRequest>, ForgeError> {
        let context = repos_api::listing_context(spec);
        let mut url = repo_endpoint(&self.api, spec, &["pulls"])?;
        url.query_pairs_mut()
            .append_pair("head", &format!("{}:{}", spec.owner, spec.head_branch))
            .append_pair("state", "open");
        let pulls: Vec<PullSummary> = self.get_json(spec, url, &context).await?;
        Ok(pulls
            .into_iter()
            .next()
            .map(|pull| pull.into_pull_request(true)))
    }

    async fn create(&self, spec: &PullRequestSpec) -> Result<Created, ForgeError> {
        let body = CreatePull {
            title: &spec.title,
            head: &spec.head_branch,
            base: &spec.base_branch,
            body: &spec.body,
            draft: spec.draft,
        };
        repos_api::create_pull(self, spec, &body, |reply, context| match reply.status {
            StatusCode::UNPROCESSABLE_ENTITY => unprocessable(reply, context),
            _ => Err(self.status_error(reply, spec, context)),
        })
        .await
    }

    async fn update(&self, spec: &PullRequestSpec, number: u64) -> Result<(), ForgeError> {
        repos_api::update_pull(self, spec, number, &spec.title, is_ok).await
    }

    async fn add_labels(&self, spec: &PullRequestSpec, number: u64) -> Result<(), ForgeError> {
        repos_api::add_labels(self, spec, number, &spec.labels).await
    }
}

/// A 422 to a create: a duplicate (another worker opened it first), or a validation failure
/// with GitHub's reasons.
fn unprocessable(reply: &Reply, context: &str) -> Result<Created, ForgeError> {
    let error = ErrorBody::parse(&reply.body);
    if error
        .detail_messages()
        .any(|m| m.contains("A pull request already exists"))
    {
        return Ok(Created::AlreadyExists);
    }
    let mut text = sanitize(error.message.as_deref().unwrap_or("Validation Failed"));
    for detail in error.detail_messages() {
        text.push_str("; ");
        text.push_str(&sanitize(detail));
    }
    Err(ForgeError::Permanent(format!(
        "GitHub refused {context} (422): {text}"
    )))
}

flow::forge_with_api!(GithubForge, "github");

/// How long GitHub asks us to wait, if the response is a rate-limit answer: `retry-after`
/// first, then `x-ratelimit-remaining: 0` with `x-ratelimit-reset`, then the secondary
/// rate-limit message without headers (GitHub: wait at least a minute).
fn rate_limit_wait(headers: &HeaderMap, message: Option<&str>) -> Option<Duration> {
    let text = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    if let Some(wait) = http::retry_after(headers) {
        return Some(wait);
    }
    if text("x-ratelimit-remaining") == Some("0") {
        return Some(
            http::wait_until_reset(headers, "x-ratelimit-reset")
                .unwrap_or(SECONDARY_RATE_LIMIT_WAIT),
        );
    }
    if message.is_some_and(|m| m.to_ascii_lowercase().contains("rate limit")) {
        return Some(SECONDARY_RATE_LIMIT_WAIT);
    }
    None
}

/// GitHub's `message` field, cleaned for echoing.
fn github_message(body: &[u8]) -> Option<String> {
    http::echoed(ErrorBody::parse(body).message)
}

#[cfg(test)]
pub(super) mod tests;
