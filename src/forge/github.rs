//! GitHub (github.com and GitHub Enterprise Server) through its REST API: find the open pull
//! request for a branch, or create one and label it.
//!
//! Every call sends the headers GitHub documents (bearer token, `application/vnd.github+json`,
//! the pinned API version, a User-Agent). Redirects to another origin are refused so the token
//! never follows a response to a host we did not configure, and response bodies are capped.

use std::fmt;
use std::time::Duration;

use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::flow::{self, Created, PullRequestApi};
use super::http::{self, ApiClient, ApiClientConfig, Reply, TokenHeader, sanitize};
use super::{ForgeError, PullRequest, PullRequestSpec};
use crate::egress::EgressPolicy;
use crate::lifecycle::fix_plan::ObservedState;

pub use super::http::{MAX_RESPONSE_BYTES, USER_AGENT};

/// The REST API version these requests are written against.
pub const API_VERSION: &str = "2022-11-28";
/// GitHub asks clients hitting a secondary rate limit without a retry-after header to wait at
/// least a minute.
const SECONDARY_RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);

/// Client for one GitHub host.
#[derive(Clone)]
pub struct GithubForge {
    api: ApiClient,
}

impl fmt::Debug for GithubForge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GithubForge")
            .field("api_url", &self.api.api_url())
            .field("host", &self.api.host())
            .field("token", &"[REDACTED]")
            .finish()
    }
}

#[derive(Serialize)]
struct CreatePull<'a> {
    title: &'a str,
    head: &'a str,
    base: &'a str,
    body: &'a str,
    draft: bool,
}

#[derive(Serialize)]
struct AddLabels<'a> {
    labels: &'a [String],
}

#[derive(Serialize)]
struct UpdatePull<'a> {
    title: &'a str,
    body: &'a str,
}

/// The fields of `GET /repos/{owner}/{repo}/pulls/{number}` that say where it stands.
#[derive(Deserialize)]
struct PullState {
    state: String,
    #[serde(default)]
    merged: bool,
    #[serde(default)]
    merged_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    closed_at: Option<chrono::DateTime<chrono::Utc>>,
    /// False when it conflicts with its base (GitHub: null while it is being computed).
    #[serde(default)]
    mergeable: Option<bool>,
}

#[derive(Deserialize)]
struct PullSummary {
    number: u64,
    html_url: String,
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
    /// `api_url` is "https://api.github.com" or, for GitHub Enterprise Server,
    /// "https://HOST/api/v3". `host` is the repository host this forge serves. Plain http API
    /// URLs are accepted only with `allow_http` (local use and tests).
    pub fn new(
        api_url: &str,
        host: &str,
        token: SecretString,
        timeout: Duration,
        allow_http: bool,
        egress: EgressPolicy,
    ) -> anyhow::Result<Self> {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("application/vnd.github+json"),
        );
        headers.insert(
            "X-GitHub-Api-Version",
            HeaderValue::from_static(API_VERSION),
        );
        let api = ApiClient::new(ApiClientConfig {
            label: "GitHub",
            api_url_example: "https://HOST/api/v3",
            api_url,
            host,
            token: TokenHeader {
                name: header::AUTHORIZATION,
                value: SecretString::from(format!("Bearer {}", token.expose_secret())),
            },
            headers,
            timeout,
            allow_http,
            egress,
        })?;
        Ok(Self { api })
    }

    /// The API base this forge talks to.
    pub fn api_url(&self) -> &str {
        self.api.api_url()
    }

    /// Maps an unexpected status to an error, sorted by whether retrying can help.
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
        match status.as_u16() {
            401 => ForgeError::Permanent(format!(
                "GitHub refused the token while {context} (401{said}); check the forge token for {host}"
            )),
            403 => ForgeError::Permanent(format!(
                "GitHub denied {context} (403{said}); the token for {host} lacks pull-request write access to {repo}"
            )),
            404 => ForgeError::Permanent(format!(
                "GitHub returned 404 while {context}: repository {repo} does not exist on {host}, or the token for it cannot see it or lacks pull-request write access"
            )),
            _ if status.is_server_error() => self.api.server_error(reply, &said, context),
            _ => ForgeError::Permanent(format!(
                "GitHub API for {host} refused {context} ({status}){said}"
            )),
        }
    }
}

impl PullRequestApi for GithubForge {
    const FORGE: &'static str = "GitHub";
    const REQUEST: &'static str = "pull request";

    fn validate(spec: &PullRequestSpec) -> Result<(), ForgeError> {
        validate_spec(spec)
    }

    async fn find_open(&self, spec: &PullRequestSpec) -> Result<Option<PullRequest>, ForgeError> {
        let context = format!(
            "listing open pull requests for {}/{} branch {}",
            spec.owner, spec.repo, spec.head_branch
        );
        let mut url = self
            .api
            .endpoint(&["repos", &spec.owner, &spec.repo, "pulls"])?;
        url.query_pairs_mut()
            .append_pair("head", &format!("{}:{}", spec.owner, spec.head_branch))
            .append_pair("state", "open");
        let reply = self.api.send(Method::GET, url, None, &context).await?;
        if reply.status != StatusCode::OK {
            return Err(self.status_error(&reply, spec, &context));
        }
        let pulls: Vec<PullSummary> = self.api.parse_json(&reply, &context)?;
        Ok(pulls.into_iter().next().map(|pull| PullRequest {
            number: pull.number,
            url: pull.html_url,
            reused: true,
        }))
    }

    async fn create(&self, spec: &PullRequestSpec) -> Result<Created, ForgeError> {
        let context = format!(
            "creating a pull request for {}/{} from {} into {}",
            spec.owner, spec.repo, spec.head_branch, spec.base_branch
        );
        let url = self
            .api
            .endpoint(&["repos", &spec.owner, &spec.repo, "pulls"])?;
        let body = serde_json::to_value(CreatePull {
            title: &spec.title,
            head: &spec.head_branch,
            base: &spec.base_branch,
            body: &spec.body,
            draft: spec.draft,
        })
        .map_err(|e| ForgeError::Permanent(format!("cannot encode the pull request: {e}")))?;
        let reply = self
            .api
            .send(Method::POST, url, Some(body), &context)
            .await?;
        match reply.status {
            StatusCode::CREATED => {
                let pull: PullSummary = self.api.parse_json(&reply, &context)?;
                Ok(Created::New(PullRequest {
                    number: pull.number,
                    url: pull.html_url,
                    reused: false,
                }))
            }
            StatusCode::UNPROCESSABLE_ENTITY => {
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
            _ => Err(self.status_error(&reply, spec, &context)),
        }
    }

    async fn update(&self, spec: &PullRequestSpec, number: u64) -> Result<(), ForgeError> {
        let context = format!(
            "updating pull request #{number} of {}/{}",
            spec.owner, spec.repo
        );
        let url = self.api.endpoint(&[
            "repos",
            &spec.owner,
            &spec.repo,
            "pulls",
            &number.to_string(),
        ])?;
        let body = serde_json::to_value(UpdatePull {
            title: &spec.title,
            body: &spec.body,
        })
        .map_err(|e| ForgeError::Permanent(format!("cannot encode the pull request: {e}")))?;
        let reply = self
            .api
            .send(Method::PATCH, url, Some(body), &context)
            .await?;
        if reply.status == StatusCode::OK {
            Ok(())
        } else {
            Err(self.status_error(&reply, spec, &context))
        }
    }

    async fn state(
        &self,
        spec: &PullRequestSpec,
        number: u64,
    ) -> Result<ObservedState, ForgeError> {
        let context = format!(
            "reading pull request #{number} of {}/{}",
            spec.owner, spec.repo
        );
        let url = self.api.endpoint(&[
            "repos",
            &spec.owner,
            &spec.repo,
            "pulls",
            &number.to_string(),
        ])?;
        let reply = self.api.send(Method::GET, url, None, &context).await?;
        if reply.status != StatusCode::OK {
            return Err(self.status_error(&reply, spec, &context));
        }
        let pull: PullState = self.api.parse_json(&reply, &context)?;
        Ok(
            match (pull.state.as_str(), pull.merged || pull.merged_at.is_some()) {
                (_, true) => ObservedState::Merged(pull.merged_at),
                ("closed", false) => ObservedState::Closed(pull.closed_at),
                _ if pull.mergeable == Some(false) => ObservedState::Conflicting,
                _ => ObservedState::Open,
            },
        )
    }

    async fn comment(
        &self,
        spec: &PullRequestSpec,
        number: u64,
        body: &str,
    ) -> Result<(), ForgeError> {
        let context = format!(
            "commenting on pull request #{number} of {}/{}",
            spec.owner, spec.repo
        );
        let url = self.api.endpoint(&[
            "repos",
            &spec.owner,
            &spec.repo,
            "issues",
            &number.to_string(),
            "comments",
        ])?;
        let reply = self
            .api
            .send(
                Method::POST,
                url,
                Some(serde_json::json!({"body": body})),
                &context,
            )
            .await?;
        if reply.status.is_success() {
            Ok(())
        } else {
            Err(self.status_error(&reply, spec, &context))
        }
    }

    async fn add_labels(&self, spec: &PullRequestSpec, number: u64) -> Result<(), ForgeError> {
        let context = format!(
            "labelling pull request #{number} of {}/{}",
            spec.owner, spec.repo
        );
        let url = self.api.endpoint(&[
            "repos",
            &spec.owner,
            &spec.repo,
            "issues",
            &number.to_string(),
            "labels",
        ])?;
        let body = serde_json::to_value(AddLabels {
            labels: &spec.labels,
        })
        .map_err(|e| ForgeError::Permanent(format!("cannot encode the labels: {e}")))?;
        let reply = self
            .api
            .send(Method::POST, url, Some(body), &context)
            .await?;
        if reply.status.is_success() {
            Ok(())
        } else {
            Err(self.status_error(&reply, spec, &context))
        }
    }
}

flow::forge_with_api!(GithubForge, "github");

/// GitHub paths are OWNER/NAME; anything else cannot be a GitHub repository.
fn validate_spec(spec: &PullRequestSpec) -> Result<(), ForgeError> {
    let bad = |part: &str| part.is_empty() || part.contains('/') || part == "." || part == "..";
    if bad(&spec.owner) || bad(&spec.repo) {
        return Err(ForgeError::Permanent(format!(
            "a GitHub repository path must be OWNER/NAME, got {:?}/{:?}",
            sanitize(&spec.owner),
            sanitize(&spec.repo)
        )));
    }
    if spec.head_branch.is_empty() || spec.base_branch.is_empty() {
        return Err(ForgeError::Permanent(
            "a pull request needs both a head and a base branch".to_owned(),
        ));
    }
    Ok(())
}

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
    ErrorBody::parse(body)
        .message
        .map(|m| sanitize(&m))
        .filter(|m| !m.is_empty())
}

#[cfg(test)]
mod tests;
