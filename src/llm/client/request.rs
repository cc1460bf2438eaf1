//! The chat-completions request body: the messages, the response format, streaming, and the
//! parameters a model takes. Reasoning models (OpenAI's o-series and GPT-5, DeepSeek R1, ...)
//! refuse `temperature` and `max_tokens`: they get `max_completion_tokens` and, when
//! configured, `reasoning_effort`. Other models get `max_tokens`, which every
//! OpenAI-compatible server reads, and the configured `temperature`.

use serde_json::Value;

use super::format::FormatLevel;
use crate::llm::LlmSettings;
use crate::llm::prompt::ChatMessage;

#[derive(serde::Serialize)]
pub struct ChatRequest<'a> {
    model: &'a str,
    messages: &'a [ChatMessage],
    #[serde(skip_serializing_if = "Option::is_none")]
    temperature: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    max_completion_tokens: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reasoning_effort: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    response_format: Option<Value>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    stream: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    stream_options: Option<StreamOptions>,
}

#[derive(serde::Serialize)]
struct StreamOptions {
    /// Asks for a last chunk with the call's token usage.
    include_usage: bool,
}

impl<'a> ChatRequest<'a> {
    pub fn new(
        settings: &'a LlmSettings,
        messages: &'a [ChatMessage],
        format: FormatLevel,
    ) -> Self {
        let reasoning = settings.is_reasoning_model();
        let effort = settings.reasoning_effort.trim();
        Self {
            model: &settings.model,
            messages,
            temperature: (!reasoning).then_some(settings.temperature),
            max_tokens: (!reasoning).then_some(settings.max_completion_tokens),
            max_completion_tokens: reasoning.then_some(settings.max_completion_tokens),
            reasoning_effort: (reasoning && !effort.is_empty()).then_some(effort),
            response_format: format.response_format(),
            stream: settings.stream,
            stream_options: settings.stream.then_some(StreamOptions {
                include_usage: true,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::llm::client::tests::CHAT_BODY_KEYS;

    fn body(settings: &LlmSettings, format: FormatLevel) -> Value {
        serde_json::to_value(ChatRequest::new(settings, &[], format)).unwrap()
    }

    fn keys(body: &Value) -> Vec<String> {
        let mut keys: Vec<String> = body.as_object().unwrap().keys().cloned().collect();
        keys.sort_unstable();
        keys
    }

    #[test]
    fn a_chat_model_gets_max_tokens_temperature_and_a_stream_with_usage() {
        let settings = LlmSettings {
            model: "gpt-4o-mini".to_owned(),
            temperature: 0.2,
            ..LlmSettings::default()
        };
        let body = body(&settings, FormatLevel::JsonObject);
        assert_eq!(keys(&body), CHAT_BODY_KEYS);
        assert_eq!(body["max_tokens"], 4096);
        assert_eq!(body["stream"], true);
        assert_eq!(body["stream_options"], json!({"include_usage": true}));
        assert!((body["temperature"].as_f64().unwrap() - 0.2).abs() < 1e-6);
    }

    #[test]
    fn a_reasoning_model_gets_max_completion_tokens_and_no_temperature() {
        let settings = LlmSettings {
            model: "o3-mini".to_owned(),
            reasoning_effort: "low".to_owned(),
            stream: false,
            ..LlmSettings::default()
        };
        let body = body(&settings, FormatLevel::Plain);
        assert_eq!(
            keys(&body),
            [
                "max_completion_tokens",
                "messages",
                "model",
                "reasoning_effort"
            ]
        );
        assert_eq!(body["max_completion_tokens"], 4096);
        assert_eq!(body["reasoning_effort"], "low");
    }

    #[test]
    fn reasoning_effort_is_only_for_reasoning_models() {
        let settings = LlmSettings {
            model: "gpt-4o".to_owned(),
            reasoning_effort: "high".to_owned(),
            ..LlmSettings::default()
        };
        assert!(body(&settings, FormatLevel::JsonSchema)["reasoning_effort"].is_null());
    }
}
