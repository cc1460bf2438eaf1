//! The `response_format` asked of the server, and the fall-back when it refuses one.
//!
//! The best is `json_schema` with the bounded answer schema (the server can then only produce
//! the answer's shape); then the same schema without length and range keywords (OpenAI's strict
//! mode has refused some of them); then `json_object` (valid JSON, any shape); then nothing
//! (the prompt alone asks for JSON). A server that refuses a format answers 400 naming it; the
//! client steps down and asks again at once. What the endpoint refused is remembered by the
//! client, which is bound to that one endpoint and which a worker builds once and shares
//! between its jobs: so for the life of the worker each later call goes straight to the format
//! that works, and the step down is logged once. (Memory in the client rather than in a
//! process-wide table keeps two clients, or two tests, from teaching each other.)

use std::sync::{Mutex, MutexGuard, PoisonError};

use serde_json::{Value, json};

use crate::llm::answer_schema::{SCHEMA_NAME, SchemaBounds, answer_schema};

/// The formats tried, best first.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub enum FormatLevel {
    #[default]
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

/// The best format the client's endpoint has not refused.
#[derive(Debug, Default)]
pub struct Learned(Mutex<FormatLevel>);

impl Learned {
    fn level(&self) -> MutexGuard<'_, FormatLevel> {
        // A plain value: a panic elsewhere while it was locked cannot leave it inconsistent.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The format to ask for now.
    pub fn current(&self) -> FormatLevel {
        *self.level()
    }

    /// Records that the endpoint (`shown_endpoint` in the log) refused `level` with `body`
    /// and returns the format to try next, `None` when there is none left. Several jobs may
    /// learn it at once; only the first logs, and a late refusal never climbs back up.
    pub fn step_down(
        &self,
        shown_endpoint: &str,
        level: FormatLevel,
        body: &[u8],
        excerpt: &str,
    ) -> Option<FormatLevel> {
        let text = String::from_utf8_lossy(body).to_ascii_lowercase();
        let next = level.after_refusal(&text)?;
        let mut known = self.level();
        if next <= *known {
            return Some(*known);
        }
        *known = next;
        drop(known);
        tracing::warn!(
            endpoint = %shown_endpoint,
            refused = level.name(),
            using = next.name(),
            reason = %excerpt,
            "the LLM endpoint refused the response format; using the next one for the life \
             of this worker"
        );
        Some(next)
    }
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
        let learned = Learned::default();
        assert_eq!(learned.current(), FormatLevel::JsonSchema);
        let refusal = br#"{"error":{"message":"Invalid schema for response_format 'remediation_answer': 'maxLength' is not permitted.","param":"response_format"}}"#;
        assert!(is_format_refusal(400, refusal, FormatLevel::JsonSchema));
        assert_eq!(
            learned.step_down(endpoint, FormatLevel::JsonSchema, refusal, "x"),
            Some(FormatLevel::JsonSchemaShapeOnly)
        );
        assert_eq!(learned.current(), FormatLevel::JsonSchemaShapeOnly);
        let unknown = br#"{"error":{"message":"'json_schema' is not one of ['json_object', 'text'] - 'response_format.type'"}}"#;
        assert_eq!(
            learned.step_down(endpoint, FormatLevel::JsonSchemaShapeOnly, unknown, "x"),
            Some(FormatLevel::JsonObject)
        );
        let no_json = br#"{"error":"response_format is not supported"}"#;
        assert_eq!(
            learned.step_down(endpoint, FormatLevel::JsonObject, no_json, "x"),
            Some(FormatLevel::Plain)
        );
        assert_eq!(learned.current(), FormatLevel::Plain);
        assert!(!is_format_refusal(400, no_json, FormatLevel::Plain));
        // A late refusal of a better format (a job that started earlier) never climbs back.
        assert_eq!(
            learned.step_down(endpoint, FormatLevel::JsonSchema, unknown, "x"),
            Some(FormatLevel::Plain)
        );
        assert_eq!(learned.current(), FormatLevel::Plain);
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
