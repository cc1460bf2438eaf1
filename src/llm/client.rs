//! The HTTP client for OpenAI-compatible chat-completions endpoints (OpenAI, Azure OpenAI,
//! Ollama, vLLM, llama.cpp server, LiteLLM): one call per [`LlmClient::complete`], errors sorted
//! into transient (retry later) and permanent (fix the configuration), with no secret in any
//! message. Connections obey the outbound address policy (`crate::egress`): an endpoint on a
//! loopback, link-local or private address is refused unless the config allows it.

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};

use super::LlmSettings;
use super::prompt::{ChatMessage, Conversation};
use crate::egress::{self, EgressPolicy};

/// Token counts as the endpoint reports them; zero when it reports none.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub total_tokens: u64,
}

impl Usage {
    /// Accumulates the usage of several rounds.
    pub fn add(&mut self, other: Usage) {
        self.prompt_tokens = self.prompt_tokens.saturating_add(other.prompt_tokens);
        self.completion_tokens = self
            .completion_tokens
            .saturating_add(other.completion_tokens);
        self.total_tokens = self.total_tokens.saturating_add(other.total_tokens);
    }
}

/// The model's answer to one call.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The raw answer text, to be checked by `parse_answer`.
    pub content: String,
    pub usage: Usage,
    /// The model that answered, as the endpoint names it (may be more specific than configured).
    pub model: String,
}

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// Worth retrying later: rate limits, server errors, timeouts, connection failures.
    #[error("LLM call failed (transient): {message}")]
    Transient {
        message: String,
        /// How long the endpoint asked us to wait (Retry-After), when it said.
        retry_after: Option<Duration>,
    },
    /// Retrying cannot help until the configuration (or the request) changes.
    #[error("{0}")]
    Permanent(String),
    /// The answer hit the completion token limit before it was complete. The message is written
    /// for the model: send it back with `Conversation::add_repair(&completion.content, ..)`.
    #[error(
        "your answer was cut off at the completion token limit ({max_tokens} tokens) before the \
         JSON was complete; send a shorter answer: use search/replace edits instead of \
         whole-file writes and keep the explanation brief"
    )]
    Truncated {
        completion: Completion,
        max_tokens: u32,
    },
}

impl LlmError {
    pub fn is_transient(&self) -> bool {
        matches!(self, LlmError::Transient { .. })
    }

    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            LlmError::Transient { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    fn transient(message: impl Into<String>) -> Self {
        LlmError::Transient {
            message: message.into(),
            retry_after: None,
        }
    }
}

/// Longest excerpt of an error body quoted in a message.
const EXCERPT_CHARS: usize = 200;
/// How much of an error body is read at most; the excerpt comes from it.
const ERROR_BODY_BYTES: usize = 16 * 1024;
/// A Retry-After beyond this is treated as this, so a broken header cannot park a job for days.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);

/// A client bound to one endpoint and model.
pub struct LlmClient {
    http: reqwest::Client,
    endpoint: Url,
    settings: LlmSettings,
    egress: EgressPolicy,
}

impl std::fmt::Debug for LlmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmClient")
            .field("endpoint", &display_url(&self.endpoint))
            .field("settings", &self.settings)
            .finish()
    }
}

#[derive(serde::Serialize)]
struct ChatRequest<'a> {
    model: &'a str,
    messages: &'a [ChatMessage],
    temperature: f32,
    max_tokens: u32,
    response_format: ResponseFormat,
}

#[derive(serde::Serialize)]
struct ResponseFormat {
    #[serde(rename = "type")]
    kind: &'static str,
}

// Lenient on purpose: servers add fields freely, and some omit `usage` or `model`.
#[derive(serde::Deserialize)]
struct ChatResponse {
    #[serde(default)]
    choices: Vec<Choice>,
    usage: Option<RawUsage>,
    model: Option<String>,
    error: Option<serde_json::Value>,
}

#[derive(serde::Deserialize)]
struct Choice {
    message: Option<ResponseMessage>,
    finish_reason: Option<String>,
}

#[derive(serde::Deserialize)]
struct ResponseMessage {
    content: Option<String>,
}

#[derive(serde::Deserialize)]
struct RawUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    total_tokens: u64,
}

impl LlmClient {
    /// Checks the settings and builds an HTTP client with the configured timeout, no
    /// redirects (a redirect could carry the key to another host) and `egress` applied to
    /// every address it connects to.
    pub fn new(settings: LlmSettings, egress: EgressPolicy) -> Result<Self, LlmError> {
        if settings.model.trim().is_empty() {
            return Err(LlmError::Permanent(
                "llm model is not set; configure the model name the endpoint serves".to_owned(),
            ));
        }
        if settings.timeout_secs == 0 {
            return Err(LlmError::Permanent(
                "llm timeout_secs is 0; set a timeout of at least 1 second".to_owned(),
            ));
        }
        if settings.max_response_bytes == 0 {
            return Err(LlmError::Permanent(
                "llm max_response_bytes is 0; set a positive limit".to_owned(),
            ));
        }
        let endpoint = chat_endpoint(&settings.base_url)?;
        let timeout = Duration::from_secs(settings.timeout_secs);
        let http = egress
            .apply(reqwest::Client::builder())
            .timeout(timeout)
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("remediator/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                LlmError::Permanent(format!(
                    "cannot build the HTTP client for the LLM endpoint: {}",
                    describe(&e.without_url())
                ))
            })?;
        Ok(Self {
            http,
            endpoint,
            settings,
            egress,
        })
    }

    pub fn settings(&self) -> &LlmSettings {
        &self.settings
    }

    /// Sends the conversation and returns the model's answer.
    pub async fn complete(&self, conversation: &Conversation) -> Result<Completion, LlmError> {
        let body = ChatRequest {
            model: &self.settings.model,
            messages: conversation.messages(),
            temperature: self.settings.temperature,
            max_tokens: self.settings.max_completion_tokens,
            response_format: ResponseFormat {
                kind: "json_object",
            },
        };
        // Names are checked by the client's resolver as it connects; literals here.
        self.egress
            .check_url(&self.endpoint)
            .map_err(|blocked| self.blocked(&blocked))?;
        let mut request = self.http.post(self.endpoint.clone()).json(&body);
        if let Some(key) = &self.settings.api_key {
            request = request.bearer_auth(key.expose_secret());
        }

        let mut response = request.send().await.map_err(|e| self.send_error(e))?;
        let status = response.status();
        if !status.is_success() {
            let headers = response.headers().clone();
            let body = read_limited(&mut response, ERROR_BODY_BYTES, true)
                .await
                .unwrap_or_default();
            return Err(self.status_error(status, &headers, &body));
        }

        let body = read_limited(&mut response, self.settings.max_response_bytes, false)
            .await
            .map_err(|e| match e {
                ReadError::TooBig => LlmError::Permanent(format!(
                    "LLM response is larger than llm max_response_bytes ({} bytes); refused. \
                     Raise the limit if the endpoint is trusted, or lower max_completion_tokens",
                    self.settings.max_response_bytes
                )),
                ReadError::Http(e) => LlmError::transient(format!(
                    "reading the LLM response failed: {}",
                    describe(&e)
                )),
            })?;
        let completion = self.parse_success(&body)?;
        tracing::debug!(
            model = %completion.model,
            prompt_tokens = completion.usage.prompt_tokens,
            completion_tokens = completion.usage.completion_tokens,
            "LLM completion received"
        );
        Ok(completion)
    }

    fn parse_success(&self, body: &[u8]) -> Result<Completion, LlmError> {
        let parsed: ChatResponse = serde_json::from_slice(body).map_err(|e| {
            LlmError::Permanent(format!(
                "LLM endpoint {} answered HTTP 200 with something that is not a chat \
                 completion ({e}); check llm base_url points at an OpenAI-compatible API \
                 (usually ending in /v1)",
                display_url(&self.endpoint)
            ))
        })?;
        if let Some(error) = parsed.error {
            return Err(LlmError::Permanent(format!(
                "LLM endpoint reported an error: {}",
                self.excerpt(error.to_string().as_bytes())
            )));
        }
        let usage = parsed
            .usage
            .map(|u| Usage {
                prompt_tokens: u.prompt_tokens,
                completion_tokens: u.completion_tokens,
                total_tokens: u.total_tokens,
            })
            .unwrap_or_default();
        let model = parsed
            .model
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| self.settings.model.clone());
        let Some(choice) = parsed.choices.into_iter().next() else {
            return Err(LlmError::Permanent(
                "LLM endpoint returned a completion with no choices".to_owned(),
            ));
        };
        // A missing content (tool call, refusal) becomes an empty answer, which the answer
        // parser rejects with a message the model can act on in a repair round.
        let mut content = choice.message.and_then(|m| m.content).unwrap_or_default();
        // The endpoint saw our key; an answer that repeats it must not carry it into a pull
        // request or the operation output.
        if let Some(key) = &self.settings.api_key
            && !key.expose_secret().is_empty()
            && content.contains(key.expose_secret())
        {
            content = content.replace(key.expose_secret(), "[REDACTED]");
        }
        let completion = Completion {
            content,
            usage,
            model,
        };
        match choice.finish_reason.as_deref() {
            Some("length") => Err(LlmError::Truncated {
                completion,
                max_tokens: self.settings.max_completion_tokens,
            }),
            Some("content_filter") => Err(LlmError::Permanent(
                "the LLM endpoint's content filter blocked the answer (finish_reason \
                 \"content_filter\")"
                    .to_owned(),
            )),
            _ => Ok(completion),
        }
    }

    fn blocked(&self, blocked: &egress::BlockedAddress) -> LlmError {
        LlmError::Permanent(format!(
            "LLM endpoint {} refused: {blocked}; check llm base_url",
            display_url(&self.endpoint)
        ))
    }

    fn send_error(&self, error: reqwest::Error) -> LlmError {
        if let Some(blocked) = egress::blocked_cause(&error) {
            return self.blocked(&blocked);
        }
        let error = error.without_url();
        let endpoint = display_url(&self.endpoint);
        if error.is_builder() {
            return LlmError::Permanent(format!(
                "cannot build the request to {endpoint}: {}",
                describe(&error)
            ));
        }
        let what = if error.is_timeout() {
            format!(
                "no answer from {endpoint} within llm timeout_secs ({}s)",
                self.settings.timeout_secs
            )
        } else if error.is_connect() {
            format!("cannot connect to {endpoint}")
        } else {
            format!("request to {endpoint} failed")
        };
        LlmError::transient(format!("{what}: {}", describe(&error)))
    }

    fn status_error(&self, status: StatusCode, headers: &HeaderMap, body: &[u8]) -> LlmError {
        let code = status.as_u16();
        let excerpt = self.excerpt(body);
        let endpoint = display_url(&self.endpoint);
        let model = &self.settings.model;
        match code {
            429 if error_code(body).as_deref() == Some("insufficient_quota") => {
                LlmError::Permanent(format!(
                    "LLM endpoint reports no quota left for the API key (HTTP 429 \
                     insufficient_quota): {excerpt}; check the billing of the llm api key"
                ))
            }
            408 | 425 | 429 | 500..=599 => LlmError::Transient {
                message: format!("LLM endpoint {endpoint} answered HTTP {code}: {excerpt}"),
                retry_after: retry_after(headers),
            },
            401 if self.settings.api_key.is_none() => LlmError::Permanent(format!(
                "LLM endpoint requires an API key (HTTP 401) but none is configured: \
                 {excerpt}; set the llm api key"
            )),
            401 => LlmError::Permanent(format!(
                "LLM endpoint refused the API key (HTTP 401): {excerpt}; check llm api key"
            )),
            403 => LlmError::Permanent(format!(
                "LLM endpoint denied access (HTTP 403): {excerpt}; check that the llm api key \
                 may use model {model}"
            )),
            404 => LlmError::Permanent(format!(
                "LLM endpoint not found (HTTP 404) at {endpoint}: {excerpt}; check llm base_url \
                 (most servers expect it to end in /v1) and that model {model} exists there"
            )),
            400 | 422 => LlmError::Permanent(format!(
                "LLM endpoint rejected the request (HTTP {code}): {excerpt}; check llm model, \
                 max_completion_tokens and temperature against what this server accepts"
            )),
            413 => LlmError::Permanent(format!(
                "LLM endpoint refused the prompt as too large (HTTP 413): {excerpt}; lower llm \
                 max_context_chars"
            )),
            300..=399 => LlmError::Permanent(format!(
                "LLM endpoint {endpoint} answered with a redirect (HTTP {code}), which is not \
                 followed; set llm base_url to the final address"
            )),
            _ => LlmError::Permanent(format!(
                "LLM endpoint refused the request (HTTP {code}): {excerpt}"
            )),
        }
    }

    fn excerpt(&self, body: &[u8]) -> String {
        sanitized_excerpt(body, self.settings.api_key.as_ref())
    }
}

/// `{base_url}/chat/completions`, keeping a query string (Azure's `api-version`) in place.
fn chat_endpoint(base_url: &str) -> Result<Url, LlmError> {
    let mut url = Url::parse(base_url.trim()).map_err(|e| {
        LlmError::Permanent(format!(
            "llm base_url is not a valid URL ({e}); expected e.g. https://api.openai.com/v1"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(LlmError::Permanent(format!(
            "llm base_url must use http or https, not {}",
            url.scheme()
        )));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(LlmError::Permanent(
            "llm base_url must not contain credentials; put the key in the llm api key setting"
                .to_owned(),
        ));
    }
    let path = format!("{}/chat/completions", url.path().trim_end_matches('/'));
    url.set_path(&path);
    url.set_fragment(None);
    Ok(url)
}

/// The endpoint without its query string, for messages: a query may carry a key.
fn display_url(url: &Url) -> String {
    let mut shown = url.clone();
    shown.set_query(None);
    shown.to_string()
}

/// An error with its causes, which reqwest's own Display leaves out.
fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    // OpenAI sends the more precise retry-after-ms next to the standard header.
    let wait = if let Some(ms) = header("retry-after-ms").and_then(|v| v.parse::<f64>().ok()) {
        Duration::try_from_secs_f64(ms / 1000.0).ok()
    } else {
        let value = header("retry-after")?;
        if let Ok(secs) = value.parse::<f64>() {
            Duration::try_from_secs_f64(secs).ok()
        } else {
            let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
            let wait = when.signed_duration_since(chrono::Utc::now());
            Some(wait.to_std().unwrap_or(Duration::ZERO))
        }
    };
    wait.map(|w| w.min(MAX_RETRY_AFTER))
}

fn error_code(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let code = value.get("error")?.get("code")?;
    code.as_str().map(str::to_owned)
}

/// A short, single-line excerpt of an error body: the API's own message when it is JSON,
/// control characters removed, the key and anything shaped like an OpenAI key masked.
fn sanitized_excerpt(body: &[u8], key: Option<&SecretString>) -> String {
    let text = String::from_utf8_lossy(body);
    let message = serde_json::from_str::<serde_json::Value>(&text)
        .ok()
        .and_then(|v| {
            let error = v.get("error").unwrap_or(&v);
            error
                .get("message")
                .and_then(|m| m.as_str())
                .or_else(|| error.as_str())
                .map(str::to_owned)
        })
        .unwrap_or_else(|| text.into_owned());
    let mut flat = message
        .split_whitespace()
        .map(|word| {
            if looks_like_key(word) {
                "[REDACTED]"
            } else {
                word
            }
        })
        .collect::<Vec<_>>()
        .join(" ");
    if let Some(key) = key {
        let key = key.expose_secret();
        if !key.is_empty() {
            flat = flat.replace(key, "[REDACTED]");
        }
    }
    flat.retain(|c| !c.is_control());
    if flat.is_empty() {
        return "(empty body)".to_owned();
    }
    if flat.chars().count() > EXCERPT_CHARS {
        let cut: String = flat.chars().take(EXCERPT_CHARS).collect();
        format!("{cut}…")
    } else {
        flat
    }
}

/// OpenAI-style keys (`sk-...`, `sk-proj-...`), also when an endpoint echoes them masked.
fn looks_like_key(word: &str) -> bool {
    word.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '*'))
        .any(|token| token.starts_with("sk-") && token.len() >= 8)
}

enum ReadError {
    TooBig,
    Http(reqwest::Error),
}

/// Reads the body chunk by chunk and stops past `limit`, so a huge or endless body is never
/// buffered. With `truncate`, returns the first `limit` bytes instead of failing.
async fn read_limited(
    response: &mut reqwest::Response,
    limit: usize,
    truncate: bool,
) -> Result<Vec<u8>, ReadError> {
    if !truncate
        && response
            .content_length()
            .is_some_and(|len| len > limit as u64)
    {
        return Err(ReadError::TooBig);
    }
    let mut body = Vec::new();
    while let Some(chunk) = response
        .chunk()
        .await
        .map_err(|e| ReadError::Http(e.without_url()))?
    {
        if body.len() + chunk.len() > limit {
            if truncate {
                body.extend_from_slice(&chunk[..limit - body.len()]);
                return Ok(body);
            }
            return Err(ReadError::TooBig);
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

#[cfg(test)]
mod tests;
