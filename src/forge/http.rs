//! The HTTP client every forge REST API shares: a token header that is marked sensitive, a
//! User-Agent, redirects followed only within the configured origin (so the token never
//! follows a response to a host we did not configure), the outbound address policy (no
//! connection to loopback, link-local or private addresses unless allowed), a timeout, a cap
//! on response bodies, and transport failures sorted into transient and permanent
//! [`ForgeError`]s.
//!
//! What a status code means differs per forge, so each forge maps statuses itself
//! ([`ForgeClient::status_error`]); this file gives it the reply and the shared helpers
//! (`Retry-After`, echoing the forge's text, the messages every forge words alike).

use std::fmt;
use std::future::Future;
use std::time::Duration;

use anyhow::{Context, bail};
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::de::DeserializeOwned;

use super::{ForgeError, PullRequestSpec};
use crate::egress::{self, EgressPolicy};

/// Sent on every request; GitHub rejects requests without a User-Agent, and the others log it.
pub const USER_AGENT: &str = concat!("remediator/", env!("CARGO_PKG_VERSION"));
/// Largest response body we read; pull request JSON is a few KiB, a page of them a few hundred.
pub const MAX_RESPONSE_BYTES: usize = 1024 * 1024;
const MAX_REDIRECTS: usize = 5;
/// A forge's own error text is echoed into our messages; keep it short.
const MAX_ECHOED_MESSAGE: usize = 300;

/// The marker error our redirect policy returns; found again in the reqwest error's sources.
#[derive(Debug, thiserror::Error)]
#[error("redirect to another origin refused")]
struct CrossOriginRedirect;

/// A response read to the end (within the cap).
pub(crate) struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// How a forge wants its token: the header name and the full value ("Bearer TOKEN").
pub(crate) struct TokenHeader {
    pub name: HeaderName,
    pub value: SecretString,
}

impl TokenHeader {
    /// The token in `Authorization`, after `scheme` ("Bearer", "token").
    pub fn authorization(scheme: &str, token: &SecretString) -> Self {
        Self {
            name: header::AUTHORIZATION,
            value: SecretString::from(format!("{scheme} {}", token.expose_secret())),
        }
    }
}

/// Declares a forge client type around one [`ApiClient`]: the struct, a `Debug` that shows
/// the API base and host but never the token, `api_url()`, and `with_config` building the
/// client. The forges differ only in the config they build and how they read statuses, so
/// this part is written once.
macro_rules! forge_client {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone)]
        pub struct $name {
            api: $crate::forge::http::ApiClient,
        }

        impl ::std::fmt::Debug for $name {
            fn fmt(&self, f: &mut ::std::fmt::Formatter<'_>) -> ::std::fmt::Result {
                self.api.debug_forge(f, stringify!($name))
            }
        }

        impl $name {
            /// The API base this forge talks to.
            pub fn api_url(&self) -> &str {
                self.api.api_url()
            }

            /// Builds the HTTP client every call of this forge goes through.
            fn with_config(
                config: $crate::forge::http::ApiClientConfig<'_>,
            ) -> anyhow::Result<Self> {
                Ok(Self {
                    api: $crate::forge::http::ApiClient::new(config)?,
                })
            }
        }
    };
}
pub(crate) use forge_client;

/// How a forge words a refused access: what its token needs and what it calls a repository.
pub(crate) struct AccessWording {
    /// Follows the advice to check the token on a 401, e.g. " (it needs the api scope)".
    pub token_hint: &'static str,
    /// What a token refused with 403 lacks, up to the repository's name.
    pub lacks: &'static str,
    /// "repository", or "project" on GitLab.
    pub repository: &'static str,
    /// Another reason for a 404, after "the token for it cannot see it".
    pub or_404: &'static str,
}

/// One forge API base on one host, with its token.
#[derive(Clone)]
pub(crate) struct ApiClient {
    /// The forge's name in messages: "GitHub", "GitLab", "Gitea".
    label: &'static str,
    /// What a correct api_url looks like, for messages: "https://HOST/api/v4".
    api_url_example: &'static str,
    api_url: Url,
    /// The repository host this forge serves, for messages ("check the forge token for HOST").
    host: String,
    token_header: HeaderName,
    token_value: SecretString,
    /// Non-secret headers the forge documents for every call (Accept, API version).
    headers: HeaderMap,
    http: reqwest::Client,
    egress: EgressPolicy,
}

/// Where a forge's API is and how it may be reached: what every forge client is built from
/// besides its token and its own headers.
#[derive(Clone, Copy, Debug)]
pub struct ApiEndpoint<'a> {
    /// The API base, e.g. "https://api.github.com" or "https://HOST/api/v4".
    pub api_url: &'a str,
    /// The repository host this forge serves.
    pub host: &'a str,
    pub timeout: Duration,
    /// Plain http API URLs are accepted only for local use and tests.
    pub allow_http: bool,
    /// Which addresses the client may connect to.
    pub egress: EgressPolicy,
}

/// Everything [`ApiClient::new`] needs.
pub(crate) struct ApiClientConfig<'a> {
    pub label: &'static str,
    pub api_url_example: &'static str,
    pub endpoint: ApiEndpoint<'a>,
    pub token: TokenHeader,
    pub headers: HeaderMap,
}

/// A forge client as the shared request code sees it: the HTTP client its requests go
/// through, and what a status it did not expect means on that forge (each forge words its
/// own errors: which token scope is missing, what the repository is called there).
pub(crate) trait ForgeClient: Sync {
    fn client(&self) -> &ApiClient;

    /// Maps an unexpected status to an error, sorted by whether retrying can help.
    fn status_error(&self, reply: &Reply, spec: &PullRequestSpec, context: &str) -> ForgeError;

    /// Sends one request ([`ApiClient::send`]) and returns the reply when `accepted` takes its
    /// status; any other status is [`Self::status_error`].
    fn call(
        &self,
        spec: &PullRequestSpec,
        method: Method,
        url: Url,
        json: Option<serde_json::Value>,
        context: &str,
        accepted: fn(&StatusCode) -> bool,
    ) -> impl Future<Output = Result<Reply, ForgeError>> + Send {
        async move {
            let reply = self.client().send(method, url, json, context).await?;
            if accepted(&reply.status) {
                Ok(reply)
            } else {
                Err(self.status_error(&reply, spec, context))
            }
        }
    }

    /// `GET url`, answered 200 with a `T` as JSON ([`ApiClient::parse_json`]).
    fn get_json<T: DeserializeOwned>(
        &self,
        spec: &PullRequestSpec,
        url: Url,
        context: &str,
    ) -> impl Future<Output = Result<T, ForgeError>> + Send {
        async move {
            let reply = self
                .call(spec, Method::GET, url, None, context, is_ok)
                .await?;
            self.client().parse_json(&reply, context)
        }
    }
}

/// A status the call accepts only as 200 (the others are unexpected there).
pub(crate) fn is_ok(status: &StatusCode) -> bool {
    *status == StatusCode::OK
}

impl ApiClient {
    pub fn new(config: ApiClientConfig<'_>) -> anyhow::Result<Self> {
        let ApiClientConfig {
            label,
            api_url_example,
            endpoint:
                ApiEndpoint {
                    api_url,
                    host,
                    timeout,
                    allow_http,
                    egress,
                },
            token,
            headers,
        } = config;
        let api_url = parse_api_url(label, api_url_example, api_url, allow_http)?;
        if HeaderValue::from_str(token.value.expose_secret()).is_err() {
            bail!(
                "the {label} token for {host} contains characters that cannot be sent in an HTTP header"
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
        let http = egress
            .apply(reqwest::Client::builder())
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .redirect(policy)
            .referer(false)
            .build()
            .with_context(|| format!("cannot build the HTTP client for the {label} API"))?;
        Ok(Self {
            label,
            api_url_example,
            api_url,
            host: host.to_owned(),
            token_header: token.name,
            token_value: token.value,
            headers,
            http,
            egress,
        })
    }

    /// The API base this client talks to.
    pub fn api_url(&self) -> &str {
        self.api_url.as_str()
    }

    /// The repository host this client serves.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The `Debug` of the forge client `name` built on this client: its API base and host,
    /// never its token.
    pub fn debug_forge(&self, f: &mut fmt::Formatter<'_>, name: &str) -> fmt::Result {
        f.debug_struct(name)
            .field("api_url", &self.api_url())
            .field("host", &self.host())
            .field("token", &"[REDACTED]")
            .finish()
    }

    /// The API base with `segments` appended, each percent-encoded on its own: a '/' inside a
    /// segment becomes `%2F`, which is how GitLab wants a project path as one id.
    pub fn endpoint(&self, segments: &[&str]) -> Result<Url, ForgeError> {
        let mut url = self.api_url.clone();
        url.path_segments_mut()
            .map_err(|()| {
                ForgeError::Permanent(format!(
                    "{} api_url for {} cannot take a path; use {}",
                    self.label, self.host, self.api_url_example
                ))
            })?
            .pop_if_empty()
            .extend(segments);
        Ok(url)
    }

    /// Sends one request with the token and the forge's headers and reads the reply within
    /// [`MAX_RESPONSE_BYTES`]. Any status is a reply; only transport trouble is an error.
    pub async fn send(
        &self,
        method: Method,
        url: Url,
        json: Option<serde_json::Value>,
        context: &str,
    ) -> Result<Reply, ForgeError> {
        // Names are checked by the client's resolver as it connects; literals here.
        self.egress
            .check_url(&url)
            .map_err(|blocked| self.blocked(&blocked, context))?;
        let mut token = HeaderValue::from_str(self.token_value.expose_secret()).map_err(|_| {
            ForgeError::Permanent(format!(
                "the {} token for {} cannot be sent in an HTTP header",
                self.label, self.host
            ))
        })?;
        token.set_sensitive(true);
        let mut request = self
            .http
            .request(method, url)
            .headers(self.headers.clone())
            .header(self.token_header.clone(), token)
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
            body: self.scrub_token(body),
        })
    }

    /// A forge (or something posing as one) may echo the token back, e.g. in an error
    /// message we quote. It is cut out of every body before anything reads it.
    fn scrub_token(&self, body: Vec<u8>) -> Vec<u8> {
        // The header value is "Bearer TOKEN", "token TOKEN" or TOKEN; tokens hold no spaces.
        let value = self.token_value.expose_secret();
        let token = value.rsplit(' ').next().unwrap_or(value).as_bytes();
        if token.len() < 4 || !body.windows(token.len()).any(|w| w == token) {
            return body;
        }
        let mut clean = Vec::with_capacity(body.len());
        let mut rest = body.as_slice();
        while !rest.is_empty() {
            if rest.starts_with(token) {
                clean.extend_from_slice(b"[REDACTED]");
                rest = &rest[token.len()..];
            } else {
                clean.push(rest[0]);
                rest = &rest[1..];
            }
        }
        clean
    }

    /// POSTs `body` ("the pull request" is `what`, named if it cannot be encoded) and returns
    /// the reply of any status, as [`Self::send`] does; creating goes through here.
    pub async fn post_json(
        &self,
        url: Url,
        body: &(impl serde::Serialize + Sync),
        what: &str,
        context: &str,
    ) -> Result<Reply, ForgeError> {
        let body = super::wire::encode(body, what)?;
        self.send(Method::POST, url, Some(body), context).await
    }

    /// Decodes a successful reply; a body of the wrong shape means api_url points elsewhere.
    pub fn parse_json<T: DeserializeOwned>(
        &self,
        reply: &Reply,
        context: &str,
    ) -> Result<T, ForgeError> {
        serde_json::from_slice(&reply.body).map_err(|e| {
            ForgeError::Permanent(format!(
                "{} API for {} sent an unexpected response while {context}: {e}; check api_url",
                self.label, self.host
            ))
        })
    }

    /// A 401: the forge refused the token. `hint` follows the advice to check it, e.g. which
    /// scope the token needs.
    pub fn token_refused(&self, said: &str, context: &str, hint: &str) -> ForgeError {
        ForgeError::Permanent(format!(
            "{} refused the token while {context} (401{said}); check the forge token for {}{hint}",
            self.label, self.host
        ))
    }

    /// A 401, 403 or 404 to a call on `repo`, in the forge's `wording`; any other status is
    /// [`Self::unexpected`].
    pub fn refused(
        &self,
        reply: &Reply,
        said: &str,
        context: &str,
        repo: &str,
        wording: &AccessWording,
    ) -> ForgeError {
        let (label, host) = (self.label, &self.host);
        match reply.status.as_u16() {
            401 => self.token_refused(said, context, wording.token_hint),
            403 => ForgeError::Permanent(format!(
                "{label} denied {context} (403{said}); the token for {host} lacks {} {repo}",
                wording.lacks
            )),
            404 => ForgeError::Permanent(format!(
                "{label} returned 404 while {context}: {} {repo} does not exist on {host}, or the token for it cannot see it{}",
                wording.repository, wording.or_404
            )),
            _ => self.unexpected(reply, said, context),
        }
    }

    /// A status the forge gives no meaning of its own: a 5xx is the forge's trouble
    /// ([`Self::server_error`]); anything else refused the call, and retrying the same request
    /// cannot help.
    pub fn unexpected(&self, reply: &Reply, said: &str, context: &str) -> ForgeError {
        if reply.status.is_server_error() {
            return self.server_error(reply, said, context);
        }
        ForgeError::Permanent(format!(
            "{} API for {} refused {context} ({}){said}",
            self.label, self.host, reply.status
        ))
    }

    /// A 5xx: the forge is having trouble, trying again later can help (after its
    /// `Retry-After`, which a 503 may carry).
    pub fn server_error(&self, reply: &Reply, said: &str, context: &str) -> ForgeError {
        ForgeError::Transient {
            message: format!(
                "{} API for {} failed while {context} ({}){said}",
                self.label, self.host, reply.status
            ),
            retry_after: retry_after(&reply.headers),
        }
    }

    /// A 429: wait as long as `Retry-After` says, or `default_wait` when it says nothing.
    pub fn rate_limited(
        &self,
        reply: &Reply,
        said: &str,
        context: &str,
        default_wait: Duration,
    ) -> ForgeError {
        let wait = retry_after(&reply.headers).unwrap_or(default_wait);
        ForgeError::Transient {
            message: format!(
                "{} rate limit reached for {} while {context} ({}){said}; retry in {}s",
                self.label,
                self.host,
                reply.status,
                wait.as_secs()
            ),
            retry_after: Some(wait),
        }
    }

    fn oversized(&self, context: &str) -> ForgeError {
        ForgeError::Permanent(format!(
            "{} API for {} sent a response larger than {MAX_RESPONSE_BYTES} bytes while {context}; check api_url",
            self.label, self.host
        ))
    }

    fn blocked(&self, blocked: &egress::BlockedAddress, context: &str) -> ForgeError {
        ForgeError::Permanent(format!(
            "{} API for {} refused before {context}: {blocked}; check the forge api_url",
            self.label, self.host
        ))
    }

    fn transport_error(&self, error: &reqwest::Error, context: &str) -> ForgeError {
        if let Some(blocked) = egress::blocked_cause(error) {
            return self.blocked(&blocked, context);
        }
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
                "{} API for {} answered {context} with {why}; check the forge api_url",
                self.label, self.host
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
                "cannot reach the {} API for {} while {context}: {kind}",
                self.label, self.host
            ),
            retry_after: None,
        }
    }
}

fn parse_api_url(
    label: &str,
    example: &str,
    api_url: &str,
    allow_http: bool,
) -> anyhow::Result<Url> {
    let url = Url::parse(api_url.trim_end_matches('/'))
        .with_context(|| format!("{label} api_url {api_url:?} is not a valid URL"))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_http => {}
        "http" => bail!(
            "{label} api_url {api_url:?} uses http, which would send the token in clear text; use https (or set url_policy.allow_http for local use)"
        ),
        other => bail!("{label} api_url must be an https URL, not {other}"),
    }
    if !url.username().is_empty() || url.password().is_some() {
        bail!("{label} api_url must not contain credentials; configure token_env or token_file");
    }
    if url.query().is_some() || url.fragment().is_some() || url.cannot_be_a_base() {
        bail!("{label} api_url {api_url:?} must be a plain base URL such as {example}");
    }
    Ok(url)
}

/// The wait a `Retry-After` header asks for: delta-seconds or an HTTP date, at least 1 s.
pub(crate) fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get("retry-after")?.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds.max(1)));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let seconds = (at.timestamp() - chrono::Utc::now().timestamp()).max(1);
    Some(Duration::from_secs(seconds.unsigned_abs()))
}

/// The wait until the Unix time in header `name` (a rate-limit reset), at least 1 s.
pub(crate) fn wait_until_reset(headers: &HeaderMap, name: &str) -> Option<Duration> {
    let reset = headers
        .get(name)?
        .to_str()
        .ok()?
        .trim()
        .parse::<i64>()
        .ok()?;
    let seconds = (reset - chrono::Utc::now().timestamp()).max(1);
    Some(Duration::from_secs(seconds.unsigned_abs()))
}

/// Strips control characters and caps length before text from a response enters our messages.
pub(crate) fn sanitize(text: &str) -> String {
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

/// A forge's own error text, cleaned for echoing; `None` when there is nothing to echo.
pub(crate) fn echoed(message: Option<String>) -> Option<String> {
    message.map(|m| sanitize(&m)).filter(|m| !m.is_empty())
}

/// `": TEXT"` for a forge message worth echoing, or nothing.
pub(crate) fn said(message: Option<&str>) -> String {
    message.map(|m| format!(": {m}")).unwrap_or_default()
}
