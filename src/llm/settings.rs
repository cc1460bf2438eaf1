//! Configuration of the LLM endpoint: where to send chat completions, with which model, and the
//! limits every call respects. The API key is filled in by the caller from the environment or a
//! secret file and is never printed.

use std::fmt;

use secrecy::SecretString;

/// Settings of one OpenAI-compatible chat-completions endpoint.
///
/// Missing fields take the values of [`LlmSettings::default`], so a config file only needs
/// `base_url` and `model`.
#[derive(Clone, serde::Deserialize)]
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
    /// Covers the whole call, from connecting to the last byte of the body.
    pub timeout_secs: u64,
    /// Budget, in characters, for repository text placed in the prompt.
    pub max_context_chars: usize,
    pub max_completion_tokens: u32,
    /// Calls per remediation: the first answer plus repair rounds.
    pub max_rounds: u32,
    pub temperature: f32,
    /// A response body bigger than this is refused without being read further, so a broken or
    /// hostile endpoint cannot make a worker buffer an unbounded answer.
    pub max_response_bytes: usize,
}

impl Default for LlmSettings {
    fn default() -> Self {
        Self {
            base_url: "https://api.openai.com/v1".to_owned(),
            model: String::new(),
            api_key: None,
            timeout_secs: 120,
            max_context_chars: 48_000,
            max_completion_tokens: 4096,
            max_rounds: 3,
            temperature: 0.0,
            max_response_bytes: 2 * 1024 * 1024,
        }
    }
}

impl fmt::Debug for LlmSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LlmSettings")
            .field("base_url", &self.base_url)
            .field("model", &self.model)
            .field("api_key", &self.api_key.as_ref().map(|_| "[REDACTED]"))
            .field("timeout_secs", &self.timeout_secs)
            .field("max_context_chars", &self.max_context_chars)
            .field("max_completion_tokens", &self.max_completion_tokens)
            .field("max_rounds", &self.max_rounds)
            .field("temperature", &self.temperature)
            .field("max_response_bytes", &self.max_response_bytes)
            .finish()
    }
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
        assert_eq!(settings.timeout_secs, 120);
        assert_eq!(settings.max_context_chars, 48_000);
        assert_eq!(settings.max_completion_tokens, 4096);
        assert_eq!(settings.max_rounds, 3);
        assert_eq!(settings.temperature, 0.0);
        assert_eq!(settings.max_response_bytes, 2 * 1024 * 1024);
    }

    #[test]
    fn an_api_key_in_the_config_is_not_read() {
        let settings: LlmSettings =
            serde_json::from_str(r#"{"model":"m","api_key":"sk-from-file"}"#).unwrap();
        assert!(settings.api_key.is_none());
    }
}
