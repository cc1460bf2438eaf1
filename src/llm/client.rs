//! The HTTP client for OpenAI-compatible chat-completions endpoints (OpenAI, Azure OpenAI,
//! Ollama, vLLM, llama.cpp server, LiteLLM): one call per [`LlmClient::complete_within`],
//! errors sorted into transient (retry later), permanent (fix the configuration) and timed out
//! (the model did not finish in time), with no secret in any message. Connections obey the
//! outbound address policy (`crate::egress`): an endpoint on a loopback, link-local or private
//! address is refused unless the config allows it.
//!
//! The answer is streamed by default (`stream.rs`), so a slow model that keeps producing is
//! given its whole call deadline and job budget while a silent one is dropped after the idle
//! timeout; a call that ends early drops its response, which closes the connection and tells
//! the server to stop generating. The answer's shape is asked for with the best
//! `response_format` the endpoint accepts (`format.rs`), with the parameters the model takes
//! (`request.rs`).

mod format;
mod request;
mod stream;

use std::time::Duration;

use reqwest::header::HeaderMap;
use reqwest::{StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use tokio::time::{Instant, timeout_at};

use self::format::{FormatLevel, Learned};
use self::request::ChatRequest;
use self::stream::{Limits, Progress, StreamStop, Streamed};
use super::LlmSettings;
use super::prompt::Conversation;
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

/// How one call went: for the operation output (`llm.calls`) and the logs.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct CallStats {
    /// From sending the request to the end of the answer.
    pub elapsed_ms: u64,
    /// When the first piece of text (answer or reasoning) arrived; streaming only.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_token_ms: Option<u64>,
    pub streamed: bool,
    /// `json_schema`, `json_schema_shape_only`, `json_object` or `none`: what the server
    /// accepted.
    pub response_format: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub finish_reason: Option<String>,
    /// Chunks of text received (about one token each); streaming only.
    pub chunks: u64,
    pub completion_tokens: u64,
    /// Length of the reasoning text, which is never kept or logged.
    pub reasoning_chars: u64,
}

/// The model's answer to one call.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// The raw answer text, to be checked by `parse_answer`.
    pub content: String,
    pub usage: Usage,
    /// The model that answered, as the endpoint names it (may be more specific than configured).
    pub model: String,
    pub stats: CallStats,
}

/// Which clock ended a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TimeLimit {
    /// The stream went silent for `idle_timeout_secs`.
    Idle,
    /// The call reached `call_deadline_secs`.
    CallDeadline,
    /// The job's LLM time, `job_budget_secs`, ran out.
    JobBudget,
}

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// Worth retrying later: rate limits, server errors, connection failures.
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
        completion: Box<Completion>,
        max_tokens: u32,
    },
    /// The model did not finish in time. The call was abandoned and its connection closed (so
    /// the server stops generating); asking again at once with the same budget would only
    /// repeat it, so it is never retried in place.
    #[error("{message}")]
    TimedOut {
        limit: TimeLimit,
        message: String,
        elapsed: Duration,
        /// Chunks of text received before the end (streaming only).
        chunks: u64,
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

/// The LLM time one job may spend over all its calls (`llm.job_budget_secs`).
#[derive(Debug, Clone, Copy)]
pub struct JobBudget {
    deadline: Instant,
}

impl JobBudget {
    pub fn remaining(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

/// Longest excerpt of an error body quoted in a message.
const EXCERPT_CHARS: usize = 200;
/// How much of an error body is read at most; the excerpt comes from it.
const ERROR_BODY_BYTES: usize = 16 * 1024;
/// A Retry-After beyond this is treated as this, so a broken header cannot park a job for days.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(3600);
/// Connecting (TCP and TLS) takes at most this, whatever the call's deadline.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// A client bound to one endpoint and model. A worker builds one and shares it between its
/// jobs, so what the endpoint refused is remembered for the life of the worker.
pub struct LlmClient {
    http: reqwest::Client,
    endpoint: Url,
    settings: LlmSettings,
    egress: EgressPolicy,
    formats: Learned,
}

impl std::fmt::Debug for LlmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmClient")
            .field("endpoint", &display_url(&self.endpoint))
            .field("settings", &self.settings)
            .finish()
    }
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
    reasoning_content: Option<String>,
    reasoning: Option<String>,
}

#[derive(Debug, Clone, Copy, serde::Deserialize)]
struct RawUsage {
    #[serde(default)]
    prompt_tokens: u64,
    #[serde(default)]
    completion_tokens: u64,
    #[serde(default)]
    total_tokens: u64,
}

impl From<RawUsage> for Usage {
    fn from(u: RawUsage) -> Self {
        Usage {
            prompt_tokens: u.prompt_tokens,
            completion_tokens: u.completion_tokens,
            total_tokens: u.total_tokens,
        }
    }
}

/// An answer as received, streamed or whole, before it is checked.
struct Received {
    content: String,
    finish_reason: Option<String>,
    usage: Option<RawUsage>,
    model: Option<String>,
    progress: Progress,
    streamed: bool,
}

/// The end of one request: an answer, a refusal to look at (the format may be the cause), or
/// an error.
enum Attempt {
    Answered(Received),
    Refused {
        status: StatusCode,
        headers: HeaderMap,
        body: Vec<u8>,
    },
}

impl LlmClient {
    /// Checks the settings and builds an HTTP client with no redirects (a redirect could carry
    /// the key to another host) and `egress` applied to every address it connects to. No total
    /// timeout is set on the client: each call has its own deadline.
    pub fn new(settings: LlmSettings, egress: EgressPolicy) -> Result<Self, LlmError> {
        if settings.model.trim().is_empty() {
            return Err(LlmError::Permanent(
                "llm model is not set; configure the model name the endpoint serves".to_owned(),
            ));
        }
        for (name, secs) in [
            ("call_deadline_secs", settings.call_deadline().as_secs()),
            ("idle_timeout_secs", settings.idle_timeout_secs),
            ("job_budget_secs", settings.job_budget_secs),
        ] {
            if secs == 0 {
                return Err(LlmError::Permanent(format!(
                    "llm {name} is 0; set at least 1 second"
                )));
            }
        }
        if settings.max_response_bytes == 0 {
            return Err(LlmError::Permanent(
                "llm max_response_bytes is 0; set a positive limit".to_owned(),
            ));
        }
        if settings.uses_deprecated_timeout() {
            tracing::warn!(
                call_deadline_secs = settings.call_deadline().as_secs(),
                "llm timeout_secs is deprecated: it now sets llm call_deadline_secs; rename it \
                 (and see llm idle_timeout_secs and job_budget_secs)"
            );
        }
        let endpoint = chat_endpoint(&settings.base_url)?;
        let http = egress
            .apply(reqwest::Client::builder())
            .connect_timeout(CONNECT_TIMEOUT.min(settings.call_deadline()))
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
            formats: Learned::default(),
        })
    }

    pub fn settings(&self) -> &LlmSettings {
        &self.settings
    }

    /// A fresh budget for one job's calls, starting now.
    pub fn job_budget(&self) -> JobBudget {
        JobBudget {
            deadline: Instant::now() + self.settings.job_budget(),
        }
    }

    /// Sends the conversation, as the only call of a job, and returns the model's answer.
    pub async fn complete(&self, conversation: &Conversation) -> Result<Completion, LlmError> {
        self.complete_within(conversation, &self.job_budget()).await
    }

    /// Sends the conversation and returns the model's answer. The call ends at its own
    /// deadline or when `budget` runs out, whichever comes first.
    pub async fn complete_within(
        &self,
        conversation: &Conversation,
        budget: &JobBudget,
    ) -> Result<Completion, LlmError> {
        let started = Instant::now();
        let call_deadline = started + self.settings.call_deadline();
        let (deadline, limit) = if budget.deadline < call_deadline {
            (budget.deadline, TimeLimit::JobBudget)
        } else {
            (call_deadline, TimeLimit::CallDeadline)
        };
        if deadline <= started {
            return Err(self.timed_out(limit, started, None));
        }
        // Names are checked by the client's resolver as it connects; literals here.
        self.egress
            .check_url(&self.endpoint)
            .map_err(|blocked| self.blocked(&blocked))?;

        let mut level = self.formats.current();
        loop {
            let attempt = self
                .attempt(conversation, level, started, deadline, limit)
                .await?;
            match attempt {
                Attempt::Answered(received) => return self.finish(received, level, started),
                Attempt::Refused {
                    status,
                    headers,
                    body,
                } => {
                    if format::is_format_refusal(status.as_u16(), &body, level)
                        && let Some(next) = self.formats.step_down(
                            &display_url(&self.endpoint),
                            level,
                            &body,
                            &self.excerpt(&body),
                        )
                    {
                        level = next;
                        continue;
                    }
                    return Err(self.status_error(status, &headers, &body));
                }
            }
        }
    }

    /// One request with the response format `level`, read until `deadline`.
    async fn attempt(
        &self,
        conversation: &Conversation,
        level: FormatLevel,
        started: Instant,
        deadline: Instant,
        limit: TimeLimit,
    ) -> Result<Attempt, LlmError> {
        let body = ChatRequest::new(&self.settings, conversation.messages(), level);
        let mut request = self.http.post(self.endpoint.clone()).json(&body);
        if let Some(key) = &self.settings.api_key {
            request = request.bearer_auth(key.expose_secret());
        }
        let mut response = match timeout_at(deadline, request.send()).await {
            Err(_) => return Err(self.timed_out(limit, started, None)),
            Ok(sent) => sent.map_err(|e| self.send_error(e))?,
        };
        let status = response.status();
        if !status.is_success() {
            let headers = response.headers().clone();
            let body = timeout_at(
                deadline,
                read_limited(&mut response, ERROR_BODY_BYTES, true),
            )
            .await
            .ok()
            .and_then(Result::ok)
            .unwrap_or_default();
            return Ok(Attempt::Refused {
                status,
                headers,
                body,
            });
        }
        let received = if self.settings.stream && is_event_stream(response.headers()) {
            let limits = Limits {
                started,
                idle: self.settings.idle_timeout(),
                deadline,
                max_content_bytes: self.settings.max_response_bytes,
            };
            let read = stream::read(&mut response, &limits).await;
            // Whatever happened, the response is dropped here: an unfinished body closes the
            // connection, which is how a client cancels a generation.
            drop(response);
            self.streamed(read, started, limit)?
        } else {
            // Not streamed, by configuration or because the server answered with one JSON
            // body anyway (some proxies ignore `stream`).
            let body = match timeout_at(
                deadline,
                read_limited(&mut response, self.settings.max_response_bytes, false),
            )
            .await
            {
                Err(_) => return Err(self.timed_out(limit, started, None)),
                Ok(read) => read.map_err(|e| match e {
                    ReadError::TooBig => self.too_big(),
                    ReadError::Http(e) => LlmError::transient(format!(
                        "reading the LLM response failed: {}",
                        describe(&e)
                    )),
                })?,
            };
            self.parse_whole(&body)?
        };
        Ok(Attempt::Answered(received))
    }

    /// What a stream read gave: the answer, or the error its stop means.
    fn streamed(
        &self,
        read: Result<Streamed, (StreamStop, Streamed)>,
        started: Instant,
        limit: TimeLimit,
    ) -> Result<Received, LlmError> {
        let streamed = match read {
            Ok(streamed) => streamed,
            Err((stop, partial)) => {
                let progress = partial.progress;
                return Err(match stop {
                    StreamStop::Idle => self.timed_out(TimeLimit::Idle, started, Some(progress)),
                    StreamStop::Deadline => self.timed_out(limit, started, Some(progress)),
                    StreamStop::TooBig => self.too_big(),
                    StreamStop::Http(e) => LlmError::transient(format!(
                        "the LLM stream broke after {:.1}s and {} chunk(s) of text: {}",
                        started.elapsed().as_secs_f64(),
                        progress.pieces,
                        describe(&e)
                    )),
                    StreamStop::Malformed(what) => LlmError::Permanent(format!(
                        "LLM endpoint {} sent a stream that is not an OpenAI-compatible chat \
                         completion: {what}; check llm base_url, or set llm stream = false",
                        display_url(&self.endpoint)
                    )),
                });
            }
        };
        if let Some(error) = streamed.error {
            // A server that fails mid-generation (overloaded, out of memory) says so here.
            return Err(LlmError::transient(format!(
                "LLM endpoint reported an error in the stream: {}",
                self.excerpt(error.to_string().as_bytes())
            )));
        }
        if !streamed.done && streamed.finish_reason.is_none() {
            return Err(LlmError::transient(format!(
                "the LLM stream ended after {:.1}s and {} chunk(s) of text without finishing the \
                 answer (no finish_reason, no [DONE])",
                started.elapsed().as_secs_f64(),
                streamed.progress.pieces
            )));
        }
        Ok(Received {
            content: streamed.content,
            finish_reason: streamed.finish_reason,
            usage: streamed.usage,
            model: streamed.model,
            progress: streamed.progress,
            streamed: true,
        })
    }

    fn parse_whole(&self, body: &[u8]) -> Result<Received, LlmError> {
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
        let Some(choice) = parsed.choices.into_iter().next() else {
            return Err(LlmError::Permanent(
                "LLM endpoint returned a completion with no choices".to_owned(),
            ));
        };
        let (content, reasoning) = match choice.message {
            Some(m) => (
                m.content.unwrap_or_default(),
                m.reasoning_content.or(m.reasoning).unwrap_or_default(),
            ),
            None => Default::default(),
        };
        Ok(Received {
            progress: Progress {
                reasoning_chars: reasoning.chars().count() as u64,
                content_chars: content.chars().count() as u64,
                ..Progress::default()
            },
            content,
            finish_reason: choice.finish_reason,
            usage: parsed.usage,
            model: parsed.model,
            streamed: false,
        })
    }

    /// Turns a received answer into the completion, or the error its end means.
    fn finish(
        &self,
        received: Received,
        level: FormatLevel,
        started: Instant,
    ) -> Result<Completion, LlmError> {
        let usage = received.usage.map(Usage::from).unwrap_or_default();
        let model = received
            .model
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| self.settings.model.clone());
        // A missing content (tool call, refusal) becomes an empty answer, which the answer
        // parser rejects with a message the model can act on in a repair round. Thinking that
        // a server left in the content is reasoning, never the answer.
        let (answer, thinking_chars) = split_thinking(&received.content);
        let mut content = answer.to_owned();
        // The endpoint saw our key; an answer that repeats it must not carry it into a pull
        // request or the operation output.
        if let Some(key) = &self.settings.api_key
            && !key.expose_secret().is_empty()
            && content.contains(key.expose_secret())
        {
            content = content.replace(key.expose_secret(), "[REDACTED]");
        }
        let progress = received.progress;
        let stats = CallStats {
            elapsed_ms: millis(started.elapsed()),
            first_token_ms: progress.first_piece.map(millis),
            streamed: received.streamed,
            response_format: level.name(),
            finish_reason: received.finish_reason.clone(),
            chunks: progress.pieces,
            completion_tokens: usage.completion_tokens,
            reasoning_chars: progress.reasoning_chars + thinking_chars,
        };
        tracing::info!(
            model = %model,
            elapsed_ms = stats.elapsed_ms,
            first_token_ms = ?stats.first_token_ms,
            prompt_tokens = usage.prompt_tokens,
            completion_tokens = usage.completion_tokens,
            chunks = stats.chunks,
            reasoning_chars = stats.reasoning_chars,
            streamed = stats.streamed,
            response_format = stats.response_format,
            finish_reason = ?stats.finish_reason,
            "LLM completion received"
        );
        let completion = Completion {
            content,
            usage,
            model,
            stats,
        };
        match received.finish_reason.as_deref() {
            Some("length") => Err(LlmError::Truncated {
                completion: Box::new(completion),
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

    /// The error for a call that `limit` ended, saying how far the model got.
    fn timed_out(
        &self,
        limit: TimeLimit,
        started: Instant,
        progress: Option<Progress>,
    ) -> LlmError {
        let elapsed = started.elapsed();
        let secs = elapsed.as_secs_f64();
        let endpoint = display_url(&self.endpoint);
        let got = match progress {
            None if !self.settings.stream => {
                "(the answer is not streamed, llm stream = false, so its progress is unknown)"
                    .to_owned()
            }
            None => "before the endpoint answered".to_owned(),
            Some(p) if p.pieces == 0 => "before the model sent any text".to_owned(),
            Some(p) => format!(
                "after {} chunk(s) of text (about one token each; {} characters of answer, {} \
                 of reasoning), the first after {:.1}s",
                p.pieces,
                p.content_chars,
                p.reasoning_chars,
                p.first_piece.unwrap_or_default().as_secs_f64()
            ),
        };
        let closed = "the call was abandoned and its connection closed, so the server stops \
                      generating";
        let message = match limit {
            TimeLimit::Idle => format!(
                "the LLM at {endpoint} stopped producing: nothing new for {}s (llm \
                 idle_timeout_secs) at {secs:.1}s into the call, {got}; {closed}. The server \
                 may be overloaded or stuck; the job is retried later",
                self.settings.idle_timeout_secs
            ),
            TimeLimit::CallDeadline => format!(
                "the LLM at {endpoint} did not finish within llm call_deadline_secs ({}s): \
                 stopped at {secs:.1}s {got}; {closed}. For a model this slow raise llm \
                 call_deadline_secs (and job_budget_secs), or lower llm max_completion_tokens",
                self.settings.call_deadline().as_secs()
            ),
            TimeLimit::JobBudget => format!(
                "the job's LLM time ran out (llm job_budget_secs, {}s): the last call stopped \
                 at {secs:.1}s {got}; {closed}. Raise llm job_budget_secs (keeping it below \
                 worker.job_timeout_secs), or lower llm max_rounds or max_completion_tokens",
                self.settings.job_budget_secs
            ),
        };
        LlmError::TimedOut {
            limit,
            message,
            elapsed,
            chunks: progress.map_or(0, |p| p.pieces),
        }
    }

    fn too_big(&self) -> LlmError {
        LlmError::Permanent(format!(
            "LLM response is larger than llm max_response_bytes ({} bytes); refused. Raise the \
             limit if the endpoint is trusted, or lower max_completion_tokens",
            self.settings.max_response_bytes
        ))
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
        let what = if error.is_connect() {
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
                 max_completion_tokens and temperature against what this server accepts (for \
                 a reasoning model set llm reasoning = true)"
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

/// Whether the server answered with server-sent events (or said nothing of its format);
/// anything else (one JSON body, a login page) is read whole.
fn is_event_stream(headers: &HeaderMap) -> bool {
    let kind = headers
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_ascii_lowercase();
    kind.is_empty() || kind.contains("event-stream")
}

/// Splits a `<think>...</think>` block that a server left at the start of the content (a
/// reasoning model served without a reasoning parser) from the answer; returns the answer and
/// the length of the thinking. Thinking cut off before `</think>` leaves no answer.
fn split_thinking(content: &str) -> (&str, u64) {
    let trimmed = content.trim_start();
    let Some(rest) = trimmed.strip_prefix("<think>") else {
        return (content, 0);
    };
    match rest.split_once("</think>") {
        Some((thinking, answer)) => (answer.trim_start(), thinking.chars().count() as u64),
        None => ("", rest.chars().count() as u64),
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
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
