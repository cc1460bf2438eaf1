//! Configuration of the LLM endpoint: where to send chat completions, with which model, how the
//! answer is read (streamed or whole), how long a model may take, and the limits every call
//! respects. The API key is filled in by the caller from the environment or a secret file and
//! is never printed.

use std::time::Duration;

use secrecy::SecretString;

/// Settings of one OpenAI-compatible chat-completions endpoint.
///
/// Missing fields take the values of [`LlmSettings::default`], so a config file only needs
/// `base_url` and `model`. `Debug` shows the API key as `[REDACTED]` ([`SecretString`]'s own
/// `Debug`).
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(default)]
pub struct LlmSettings {
    /// For example `https://api.openai.com/v1` or `http://127.0.0.1:11434/v1` (Ollama);
    /// requests go to `{base_url}/chat/completions`.
    pub base_url: String,
    pub model: String,
    /// Never read from the config file: a key in a file that is also shown in diagnostics is
    /// too easy to leak. `None` sends no `Authorization` header (Ollama, llama.cpp server).
    #[serde(skip)]
    pub api_key: Option<SecretString>,
    /// Read the answer as server-sent events while the model writes it (`stream: true`), so
    /// a slow model that keeps producing is told apart from a dead one. `false` waits for the
    /// whole answer in one response, for servers without streaming.
    pub stream: bool,
    /// Longest silence between two pieces of a streamed answer (content or reasoning text)
    /// once the first one arrived. The wait for the first piece (prompt processing, hidden
    /// reasoning) is bounded by `call_deadline_secs` only.
    pub idle_timeout_secs: u64,
    /// Longest one call may take, from connecting to the last byte, however steadily the
    /// model produces. In non-streaming mode it is the only timeout.
    pub call_deadline_secs: u64,
    /// Longest all the LLM calls of one job may take together (first answer, repair rounds
    /// and in-place retries); each call ends at the earlier of its own deadline and this.
    pub job_budget_secs: u64,
    /// Deprecated name of `call_deadline_secs`, from when one total timeout covered a call.
    /// When set, it wins (so an old config keeps its meaning) and a warning says to rename it.
    pub timeout_secs: Option<u64>,
    /// Budget, in characters, for repository text placed in the prompt.
    pub max_context_chars: usize,
    pub max_completion_tokens: u32,
    /// Calls per remediation: the first answer plus repair rounds.
    pub max_rounds: u32,
    /// Not sent to reasoning models, which refuse it.
    pub temperature: f32,
    /// The model is a reasoning model whatever its name: send `max_completion_tokens` instead
    /// of `max_tokens`, and no `temperature`.
    pub reasoning: bool,
    /// Model names treated as reasoning models: `*` at the end matches any rest, the match
    /// ignores case, and a name is also tried without its `vendor/` prefix.
    pub reasoning_models: Vec<String>,
    /// `reasoning_effort` sent to reasoning models (`low`, `medium`, `high`); empty: not sent.
    pub reasoning_effort: String,
    /// The most answer text (or, without streaming, response body) accepted, so a broken or
    /// hostile endpoint cannot make a worker buffer an unbounded answer.
    pub max_response_bytes: usize,
}

impl Default for LlmSettings {
    fn default() -> Self {
        Self {
            base_url: "https://api.openai.com/v1".to_owned(),
            model: String::new(),
            api_key: None,
            stream: true,
            idle_timeout_secs: 60,
            call_deadline_secs: 600,
            job_budget_secs: 720,
            timeout_secs: None,
            max_context_chars: 48_000,
            max_completion_tokens: 4096,
            max_rounds: 3,
            temperature: 0.0,
            reasoning: false,
            reasoning_models: default_reasoning_models(),
            reasoning_effort: String::new(),
            max_response_bytes: 2 * 1024 * 1024,
        }
    }
}

/// OpenAI's o-series and GPT-5, DeepSeek R1 (API name `deepseek-reasoner`), Qwen's QwQ.
fn default_reasoning_models() -> Vec<String> {
    [
        "o1*",
        "o3*",
        "o4*",
        "gpt-5*",
        "deepseek-r1*",
        "deepseek-reasoner*",
        "qwq*",
    ]
    .map(str::to_owned)
    .to_vec()
}

impl LlmSettings {
    /// The per-call deadline, from `call_deadline_secs` or its deprecated alias.
    pub fn call_deadline(&self) -> Duration {
        Duration::from_secs(self.timeout_secs.unwrap_or(self.call_deadline_secs))
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }

    pub fn job_budget(&self) -> Duration {
        Duration::from_secs(self.job_budget_secs)
    }

    /// Whether the deprecated `timeout_secs` is set, to warn about it once.
    pub fn uses_deprecated_timeout(&self) -> bool {
        self.timeout_secs.is_some()
    }

    /// Whether requests use the reasoning-model parameters: by `reasoning`, or because the
    /// model's name matches a `reasoning_models` rule.
    pub fn is_reasoning_model(&self) -> bool {
        self.reasoning
            || self
                .reasoning_models
                .iter()
                .any(|rule| name_matches(rule, &self.model))
    }
}

/// `rule` against the model name, case-insensitively; a trailing `*` matches any rest. The
/// name is also tried without a `vendor/` prefix (vLLM and LiteLLM name models
/// `deepseek-ai/DeepSeek-R1`).
fn name_matches(rule: &str, model: &str) -> bool {
    let rule = rule.trim().to_ascii_lowercase();
    if rule.is_empty() {
        return false;
    }
    let model = model.trim().to_ascii_lowercase();
    let short = model.rsplit('/').next().unwrap_or(&model).to_owned();
    [model, short]
        .iter()
        .any(|name| match rule.strip_suffix('*') {
            Some(prefix) => name.starts_with(prefix),
            None => *name == rule,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_redacts_the_api_key() {
        let settings = LlmSettings {
            api_key: Some(SecretString::from("sk-very-secret-key")),
            model: "gpt-4o-mini".to_owned(),
            ..LlmSettings::default()
        };
        let shown = format!("{settings:?}");
        assert!(!shown.contains("sk-very-secret-key"), "{shown}");
        assert!(shown.contains("[REDACTED]"), "{shown}");
        assert!(shown.contains("gpt-4o-mini"), "{shown}");
    }

    #[test]
    fn missing_fields_take_the_documented_defaults() {
        let settings: LlmSettings =
            serde_json::from_str(r#"{"base_url":"http://127.0.0.1:11434/v1","model":"qwen"}"#)
                .unwrap();
        assert_eq!(settings.base_url, "http://127.0.0.1:11434/v1");
        assert_eq!(settings.model, "qwen");
        assert!(settings.api_key.is_none());
        assert!(settings.stream);
        assert_eq!(settings.idle_timeout(), Duration::from_secs(60));
        assert_eq!(settings.call_deadline(), Duration::from_secs(600));
        assert_eq!(settings.job_budget(), Duration::from_secs(720));
        assert!(!settings.uses_deprecated_timeout());
        assert_eq!(settings.max_context_chars, 48_000);
        assert_eq!(settings.max_completion_tokens, 4096);
        assert_eq!(settings.max_rounds, 3);
        assert_eq!(settings.temperature, 0.0);
        assert!(!settings.reasoning);
        assert!(settings.reasoning_effort.is_empty());
        assert_eq!(settings.max_response_bytes, 2 * 1024 * 1024);
    }

    #[test]
    fn the_deprecated_timeout_secs_sets_the_call_deadline() {
        let settings: LlmSettings =
            serde_json::from_str(r#"{"model":"m","call_deadline_secs":600,"timeout_secs":90}"#)
                .unwrap();
        assert_eq!(settings.call_deadline(), Duration::from_secs(90));
        assert!(settings.uses_deprecated_timeout());
    }

    #[test]
    fn an_api_key_in_the_config_is_not_read() {
        let settings: LlmSettings =
            serde_json::from_str(r#"{"model":"m","api_key":"sk-from-file"}"#).unwrap();
        assert!(settings.api_key.is_none());
    }

    #[test]
    fn reasoning_models_are_recognised_by_name_or_by_setting() {
        let with = |model: &str| LlmSettings {
            model: model.to_owned(),
            ..LlmSettings::default()
        };
        for reasoning in [
            "o1",
            "o3-mini",
            "o4-mini-2025-04-16",
            "gpt-5",
            "deepseek-reasoner",
            "DeepSeek-R1-Distill-Qwen-7B",
            "deepseek-ai/DeepSeek-R1",
            "deepseek-r1:7b",
            "Qwen/QwQ-32B",
        ] {
            assert!(with(reasoning).is_reasoning_model(), "{reasoning}");
        }
        for plain in [
            "gpt-4o-mini",
            "qwen2.5-coder:7b",
            "llama3.1",
            "smollm2",
            "gpt-4.1",
        ] {
            assert!(!with(plain).is_reasoning_model(), "{plain}");
        }
        let forced = LlmSettings {
            reasoning: true,
            ..with("my-thinking-finetune")
        };
        assert!(forced.is_reasoning_model());
        let exact = LlmSettings {
            reasoning_models: vec!["thinker".to_owned(), String::new()],
            ..with("thinker")
        };
        assert!(exact.is_reasoning_model());
        assert!(
            !LlmSettings {
                model: "thinker-2".to_owned(),
                ..exact
            }
            .is_reasoning_model(),
            "a rule without * matches the whole name only"
        );
    }
}
