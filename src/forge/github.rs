//! GitHub (github.com and GitHub Enterprise Server) through its REST API: find the open pull
//! request for a branch, or create one and label it.
//!
//! Every call sends the headers GitHub documents (bearer token, `application/vnd.github+json`,
//! the pinned API version, a User-Agent). Redirects to another origin are refused so the token
//! never follows a response to a host we did not configure, and response bodies are capped.

use std::fmt;
use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::{Forge, ForgeError, PullRequest, PullRequestSpec};

/// The REST API version these requests are written against.
pub const API_VERSION: &str = "2022-11-28";
/// Sent on every request; GitHub rejects requests without a User-Agent.
pub const USER_AGENT: &str = concat!("remediator/", env!("CARGO_PKG_VERSION"));
/// Largest response body we read; pull request JSON is a few KiB.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;
/// GitHub asks clients hitting a secondary rate limit without a retry-after header to wait at
/// least a minute.
const SECONDARY_RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);
const MAX_REDIRECTS: usize = 5;
/// GitHub's own error text is echoed into our messages; keep it short.
const MAX_ECHOED_MESSAGE: usize = 300;

/// Client for one GitHub host.
#[derive(Clone)]
pub struct GithubForge {
    api_url: Url,
    /// The repository host this forge serves, for messages ("check the forge token for HOST").
    host: String,
    token: SecretString,
    http: reqwest::Client,
}

impl fmt::Debug for GithubForge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GithubForge")
            .field("api_url", &self.api_url.as_str())
            .field("host", &self.host)
            .field("token", &"[REDACTED]")
            .finish()
    }
}

/// The marker error our redirect policy returns; found again in the reqwest error's sources.
#[derive(Debug, thiserror::Error)]
#[error("redirect to another origin refused")]
struct CrossOriginRedirect;

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

/// A response read to the end (within the cap).
struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

enum Created {
    New(PullRequest),
    AlreadyExists,
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
    ) -> anyhow::Result<Self> {
        let api_url = parse_api_url(api_url, allow_http)?;
        if HeaderValue::from_str(&format!("Bearer {}", token.expose_secret())).is_err() {
            bail!(
                "the GitHub token for {host} contains characters that cannot be sent in an HTTP header"
            );
        }
        let policy = reqwest::redirect::Policy::custom(|attempt| {
            let same_origin = attempt
                .previous()
                .first()
                .is_some_and(|first| first.origin() == attempt.url().origin());
            if !same_origin {
                attempt.error(CrossOriginRedirect)
            } else if attempt.previous().len() > MAX_REDIRECTS {
                attempt.error("too many redirects")
            } else {
                attempt.follow()
            }
        });
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .redirect(policy)
            .referer(false)
            .build()
            .context("cannot build the HTTP client for the GitHub API")?;
        Ok(Self {
            api_url,
            host: host.to_owned(),
            token,
            http,
        })
    }

    /// The API base this forge talks to.
    pub fn api_url(&self) -> &str {
        self.api_url.as_str()
    }

    fn endpoint(&self, segments: &[&str]) -> Result<Url, ForgeError> {
        let mut url = self.api_url.clone();
        url.path_segments_mut()
            .map_err(|()| {
                ForgeError::Permanent(format!(
                    "GitHub api_url for {} cannot take a path; use https://HOST/api/v3",
                    self.host
                ))
            })?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    async fn send(
        &self,
        method: Method,
        url: Url,
        json: Option<serde_json::Value>,
        context: &str,
    ) -> Result<Reply, ForgeError> {
        let mut auth = HeaderValue::from_str(&format!("Bearer {}", self.token.expose_secret()))
            .map_err(|_| {
                ForgeError::Permanent(format!(
                    "the GitHub token for {} cannot be sent in an HTTP header",
                    self.host
                ))
            })?;
        auth.set_sensitive(true);
        let mut request = self
            .http
            .request(method, url)
            .header(header::AUTHORIZATION, auth)
            .header(header::ACCEPT, "application/vnd.github+json")
            .header("X-GitHub-Api-Version", API_VERSION)
            .header(header::USER_AGENT, USER_AGENT);
        if let Some(json) = json {
            request = request.json(&json);
        }
        let mut response = request
            .send()
            .await
            .map_err(|e| self.transport_error(&e, context))?;
        let status = response.status();
        let headers = response.headers().clone();
        if response
            .content_length()
            .is_some_and(|len| len > MAX_RESPONSE_BYTES as u64)
        {
            return Err(self.oversized(context));
        }
        let mut body = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| self.transport_error(&e, context))?
        {
            if body.len() + chunk.len() > MAX_RESPONSE_BYTES {
                return Err(self.oversized(context));
            }
            body.extend_from_slice(&chunk);
        }
        Ok(Reply {
            status,
            headers,
            body,
        })
    }

    fn oversized(&self, context: &str) -> ForgeError {
        ForgeError::Permanent(format!(
            "GitHub API for {} sent a response larger than {MAX_RESPONSE_BYTES} bytes while {context}; check api_url",
            self.host
        ))
    }

    fn transport_error(&self, error: &reqwest::Error, context: &str) -> ForgeError {
        if error.is_redirect() {
            let cross_origin =
                std::iter::successors(std::error::Error::source(error), |e| e.source())
                    .any(|e| e.is::<CrossOriginRedirect>());
            let why = if cross_origin {
                "a redirect to another host, which is refused so the token stays with the configured host"
            } else {
                "too many redirects"
            };
            return ForgeError::Permanent(format!(
                "GitHub API for {} answered {context} with {why}; check the forge api_url",
                self.host
            ));
        }
        let kind = if error.is_timeout() {
            "timed out".to_owned()
        } else {
            // reqwest's own Display names only the top level ("error sending request"); the
            // sources say what actually failed. URLs are left out: they hold no secret, but
            // the host is enough to act on.
            let mut text = if error.is_connect() {
                "connection failed"
            } else if error.is_body() || error.is_decode() {
                "reading the response failed"
            } else {
                "request failed"
            }
            .to_owned();
            let mut source = std::error::Error::source(error);
            while let Some(e) = source {
                text.push_str(": ");
                text.push_str(&e.to_string());
                source = e.source();
            }
            text
        };
        ForgeError::Transient {
            message: format!(
                "cannot reach the GitHub API for {} while {context}: {kind}",
                self.host
            ),
            retry_after: None,
        }
    }

    /// Maps an unexpected status to an error, sorted by whether retrying can help.
    fn status_error(&self, reply: &Reply, spec: &PullRequestSpec, context: &str) -> ForgeError {
        let status = reply.status;
        let message = github_message(&reply.body);
        let said = message
            .as_deref()
            .map(|m| format!(": {m}"))
            .unwrap_or_default();
        if matches!(status.as_u16(), 403 | 429) {
            if let Some(retry_after) = rate_limit_wait(&reply.headers, message.as_deref()) {
                return ForgeError::Transient {
                    message: format!(
                        "GitHub rate limit reached for {} while {context} ({status}); retry in {}s",
                        self.host,
                        retry_after.as_secs()
                    ),
                    retry_after: Some(retry_after),
                };
            }
            if status == StatusCode::TOO_MANY_REQUESTS {
                return ForgeError::Transient {
                    message: format!(
                        "GitHub rate limit reached for {} while {context} (429){said}",
                        self.host
                    ),
                    retry_after: Some(SECONDARY_RATE_LIMIT_WAIT),
                };
            }
        }
        let repo = format!("{}/{}", spec.owner, spec.repo);
        match status.as_u16() {
            401 => ForgeError::Permanent(format!(
                "GitHub refused the token while {context} (401{said}); check the forge token for {}",
                self.host
            )),
            403 => ForgeError::Permanent(format!(
                "GitHub denied {context} (403{said}); the token for {} lacks pull-request write access to {repo}",
                self.host
            )),
            404 => ForgeError::Permanent(format!(
                "GitHub returned 404 while {context}: repository {repo} does not exist on {}, or the token for it cannot see it or lacks pull-request write access",
                self.host
            )),
            _ if status.is_server_error() => ForgeError::Transient {
                message: format!(
                    "GitHub API for {} failed while {context} ({status}){said}",
                    self.host
                ),
                retry_after: None,
            },
            _ => ForgeError::Permanent(format!(
                "GitHub API for {} refused {context} ({status}){said}",
                self.host
            )),
        }
    }

    fn parse_json<T: serde::de::DeserializeOwned>(
        &self,
        reply: &Reply,
        context: &str,
    ) -> Result<T, ForgeError> {
        serde_json::from_slice(&reply.body).map_err(|e| {
            ForgeError::Permanent(format!(
                "GitHub API for {} sent an unexpected response while {context}: {e}; check api_url",
                self.host
            ))
        })
    }

    async fn find_open(&self, spec: &PullRequestSpec) -> Result<Option<PullRequest>, ForgeError> {
        let context = format!(
            "listing open pull requests for {}/{} branch {}",
            spec.owner, spec.repo, spec.head_branch
        );
        let mut url = self.endpoint(&["repos", &spec.owner, &spec.repo, "pulls"])?;
        url.query_pairs_mut()
            .append_pair("head", &format!("{}:{}", spec.owner, spec.head_branch))
            .append_pair("state", "open");
        let reply = self.send(Method::GET, url, None, &context).await?;
        if reply.status != StatusCode::OK {
            return Err(self.status_error(&reply, spec, &context));
        }
        let pulls: Vec<PullSummary> = self.parse_json(&reply, &context)?;
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
        let url = self.endpoint(&["repos", &spec.owner, &spec.repo, "pulls"])?;
        let body = serde_json::to_value(CreatePull {
            title: &spec.title,
            head: &spec.head_branch,
            base: &spec.base_branch,
            body: &spec.body,
            draft: spec.draft,
        })
        .map_err(|e| ForgeError::Permanent(format!("cannot encode the pull request: {e}")))?;
        let reply = self.send(Method::POST, url, Some(body), &context).await?;
        match reply.status {
            StatusCode::CREATED => {
                let pull: PullSummary = self.parse_json(&reply, &context)?;
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

    async fn add_labels(&self, spec: &PullRequestSpec, number: u64) -> Result<(), ForgeError> {
        let context = format!(
            "labelling pull request #{number} of {}/{}",
            spec.owner, spec.repo
        );
        let url = self.endpoint(&[
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
        let reply = self.send(Method::POST, url, Some(body), &context).await?;
        if reply.status.is_success() {
            Ok(())
        } else {
            Err(self.status_error(&reply, spec, &context))
        }
    }
}

impl Forge for GithubForge {
    fn name(&self) -> &'static str {
        "github"
    }

    async fn open_or_reuse(
        &self,
        spec: &PullRequestSpec,
    ) -> Result<Option<PullRequest>, ForgeError> {
        validate_spec(spec)?;
        if let Some(existing) = self.find_open(spec).await? {
            tracing::info!(number = existing.number, branch = %spec.head_branch, "reusing open GitHub pull request");
            return Ok(Some(existing));
        }
        match self.create(spec).await? {
            Created::New(pull) => {
                if !spec.labels.is_empty() {
                    // The pull request exists either way; a missing label is cosmetic and must
                    // not turn a finished remediation into a retry that reuses it unlabelled.
                    if let Err(error) = self.add_labels(spec, pull.number).await {
                        tracing::warn!(number = pull.number, %error, "could not label GitHub pull request");
                    }
                }
                Ok(Some(pull))
            }
            Created::AlreadyExists => match self.find_open(spec).await? {
                Some(existing) => Ok(Some(existing)),
                None => Err(ForgeError::Transient {
                    message: format!(
                        "GitHub says a pull request for {}/{} branch {} already exists, but none is listed as open yet; retrying",
                        spec.owner, spec.repo, spec.head_branch
                    ),
                    retry_after: None,
                }),
            },
        }
    }
}

fn parse_api_url(api_url: &str, allow_http: bool) -> anyhow::Result<Url> {
    let url = Url::parse(api_url.trim_end_matches('/'))
        .with_context(|| format!("GitHub api_url {api_url:?} is not a valid URL"))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_http => {}
        "http" => bail!(
            "GitHub api_url {api_url:?} uses http, which would send the token in clear text; use https (or set url_policy.allow_http for local use)"
        ),
        other => bail!("GitHub api_url must be an https URL, not {other}"),
    }
    if !url.username().is_empty() || url.password().is_some() {
        bail!("GitHub api_url must not contain credentials; configure token_env or token_file");
    }
    if url.query().is_some() || url.fragment().is_some() || url.cannot_be_a_base() {
        bail!("GitHub api_url {api_url:?} must be a plain base URL such as https://HOST/api/v3");
    }
    Ok(url)
}

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
    if let Some(value) = text("retry-after") {
        if let Ok(seconds) = value.parse::<u64>() {
            return Some(Duration::from_secs(seconds.max(1)));
        }
        if let Ok(at) = chrono::DateTime::parse_from_rfc2822(value) {
            let seconds = (at.timestamp() - chrono::Utc::now().timestamp()).max(1);
            return Some(Duration::from_secs(seconds.unsigned_abs()));
        }
    }
    if text("x-ratelimit-remaining") == Some("0") {
        let wait = text("x-ratelimit-reset")
            .and_then(|reset| reset.parse::<i64>().ok())
            .map(|reset| {
                (reset - chrono::Utc::now().timestamp())
                    .max(1)
                    .unsigned_abs()
            })
            .map(Duration::from_secs)
            .unwrap_or(SECONDARY_RATE_LIMIT_WAIT);
        return Some(wait);
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

/// Strips control characters and caps length before text from a response enters our messages.
fn sanitize(text: &str) -> String {
    let mut clean: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(MAX_ECHOED_MESSAGE)
        .collect();
    if text.chars().count() > MAX_ECHOED_MESSAGE {
        clean.push('…');
    }
    clean.trim().to_owned()
}

#[cfg(test)]
mod tests;
