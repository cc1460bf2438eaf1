//! The `response_format` asked of the server, and the fall-back when it refuses one.
//!
//! The best is `json_schema` with the bounded answer schema (the server can then only produce
//! the answer's shape); then the same schema without length and range keywords (OpenAI's strict
//! mode has refused some of them); then `json_object` (valid JSON, any shape); then nothing
//! (the prompt alone asks for JSON). A server that refuses a format answers 400 naming it; the
//! client steps down and asks again at once. What an endpoint refused is remembered, per
//! endpoint, for the life of the process (a worker), so each later call goes straight to the
//! format that works, and the step down is logged once.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use serde_json::{Value, json};

use crate::llm::answer_schema::{SCHEMA_NAME, SchemaBounds, answer_schema};

/// The formats tried, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum FormatLevel {
    JsonSchema,
    JsonSchemaShapeOnly,
    JsonObject,
    Plain,
}

impl FormatLevel {
    /// As the operation output and the logs name it.
    pub fn name(self) -> &'static str {
        match self {
            FormatLevel::JsonSchema => "json_schema",
            FormatLevel::JsonSchemaShapeOnly => "json_schema_shape_only",
            FormatLevel::JsonObject => "json_object",
            FormatLevel::Plain => "none",
        }
    }

    /// The request's `response_format`, `None` for the plain level.
    pub fn response_format(self) -> Option<Value> {
        let schema = |bounds| {
            json!({
                "type": "json_schema",
                "json_schema": {
                    "name": SCHEMA_NAME,
                    "strict": true,
                    "schema": answer_schema(bounds),
                }
            })
        };
        match self {
            FormatLevel::JsonSchema => Some(schema(SchemaBounds::Bounded)),
            FormatLevel::JsonSchemaShapeOnly => Some(schema(SchemaBounds::ShapeOnly)),
            FormatLevel::JsonObject => Some(json!({"type": "json_object"})),
            FormatLevel::Plain => None,
        }
    }

    /// The format to try after this one was refused with `body`: a schema refused for one of
    /// its bounds is tried without them, anything else steps down to the next kind.
    fn after_refusal(self, body: &str) -> Option<FormatLevel> {
        match self {
            FormatLevel::JsonSchema if names_a_bound(body) => {
                Some(FormatLevel::JsonSchemaShapeOnly)
            }
            FormatLevel::JsonSchema | FormatLevel::JsonSchemaShapeOnly => {
                Some(FormatLevel::JsonObject)
            }
            FormatLevel::JsonObject => Some(FormatLevel::Plain),
            FormatLevel::Plain => None,
        }
    }
}

/// What each endpoint (its full chat-completions URL) was found to accept.
static LEARNED: LazyLock<Mutex<HashMap<String, FormatLevel>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

fn learned() -> std::sync::MutexGuard<'static, HashMap<String, FormatLevel>> {
    // The map holds plain values; a panic elsewhere while it was locked cannot leave it
    // inconsistent, so a poisoned lock is used as it is.
    LEARNED
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The format to ask `endpoint` for now.
pub fn current(endpoint: &str) -> FormatLevel {
    learned()
        .get(endpoint)
        .copied()
        .unwrap_or(FormatLevel::JsonSchema)
}

/// Whether a refusal (HTTP `status`, error `body`) is about the response format: a 400 (or
/// 422, from validating proxies) whose body names `response_format`, `json_schema` or
/// `json_object`. Any other refusal is reported as it is.
pub fn is_format_refusal(status: u16, body: &[u8], level: FormatLevel) -> bool {
    if level == FormatLevel::Plain || !matches!(status, 400 | 422) {
        return false;
    }
    let text = String::from_utf8_lossy(body).to_ascii_lowercase();
    [
        "response_format",
        "json_schema",
        "json_object",
        "response format",
    ]
    .iter()
    .any(|needle| text.contains(needle))
}

/// Records that `endpoint` refused `level` with `body` and returns the format to try next,
/// `None` when there is none left. Several jobs may learn it at once; only the first logs.
pub fn step_down(
    endpoint: &str,
    shown_endpoint: &str,
    level: FormatLevel,
    body: &[u8],
    excerpt: &str,
) -> Option<FormatLevel> {
    let text = String::from_utf8_lossy(body).to_ascii_lowercase();
    let next = level.after_refusal(&text)?;
    let mut map = learned();
    let known = map
        .get(endpoint)
        .copied()
        .unwrap_or(FormatLevel::JsonSchema);
    if next > known {
        map.insert(endpoint.to_owned(), next);
        drop(map);
        tracing::warn!(
            endpoint = %shown_endpoint,
            refused = level.name(),
            using = next.name(),
            reason = %excerpt,
            "the LLM endpoint refused the response format; using the next one for the life \
             of this worker"
        );
        Some(next)
    } else {
        Some(known.max(next))
    }
}

/// Whether a refusal names one of the schema's length or range keywords.
fn names_a_bound(text: &str) -> bool {
    ["maxlength", "maxitems", "minitems", "minimum", "maximum"]
        .iter()
        .any(|keyword| text.contains(keyword))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_step_down_to_plain() {
        let endpoint = "http://format-test.invalid/v1/chat/completions";
        assert_eq!(current(endpoint), FormatLevel::JsonSchema);
        let refusal = br#"{"error":{"message":"Invalid schema for response_format 'remediation_answer': 'maxLength' is not permitted.","param":"response_format"}}"#;
        assert!(is_format_refusal(400, refusal, FormatLevel::JsonSchema));
        assert_eq!(
            step_down(endpoint, endpoint, FormatLevel::JsonSchema, refusal, "x"),
            Some(FormatLevel::JsonSchemaShapeOnly)
        );
        assert_eq!(current(endpoint), FormatLevel::JsonSchemaShapeOnly);
        let unknown = br#"{"error":{"message":"'json_schema' is not one of ['json_object', 'text'] - 'response_format.type'"}}"#;
        assert_eq!(
            step_down(
                endpoint,
                endpoint,
                FormatLevel::JsonSchemaShapeOnly,
                unknown,
                "x"
            ),
            Some(FormatLevel::JsonObject)
        );
        let no_json = br#"{"error":"response_format is not supported"}"#;
        assert_eq!(
            step_down(endpoint, endpoint, FormatLevel::JsonObject, no_json, "x"),
            Some(FormatLevel::Plain)
        );
        assert_eq!(current(endpoint), FormatLevel::Plain);
        assert!(!is_format_refusal(400, no_json, FormatLevel::Plain));
        // A late refusal of a better format (a job that started earlier) never climbs back.
        assert_eq!(
            step_down(endpoint, endpoint, FormatLevel::JsonSchema, unknown, "x"),
            Some(FormatLevel::Plain)
        );
        assert_eq!(current(endpoint), FormatLevel::Plain);
    }

    #[test]
    fn other_refusals_are_not_about_the_format() {
        let refusal =
            br#"{"error":{"message":"This model's maximum context length is 8192 tokens"}}"#;
        assert!(!is_format_refusal(400, refusal, FormatLevel::JsonSchema));
        let named = br#"{"error":{"message":"response_format json_schema unsupported"}}"#;
        assert!(!is_format_refusal(500, named, FormatLevel::JsonSchema));
        assert!(!is_format_refusal(401, named, FormatLevel::JsonSchema));
    }

    #[test]
    fn the_levels_send_what_they_say() {
        let schema = FormatLevel::JsonSchema.response_format().unwrap();
        assert_eq!(schema["type"], "json_schema");
        assert_eq!(schema["json_schema"]["name"], SCHEMA_NAME);
        assert_eq!(schema["json_schema"]["strict"], true);
        assert_eq!(schema["json_schema"]["schema"]["type"], "object");
        assert_eq!(
            FormatLevel::JsonObject.response_format(),
            Some(json!({"type": "json_object"}))
        );
        assert_eq!(FormatLevel::Plain.response_format(), None);
    }
}
