//! The answer's JSON Schema, sent as `response_format: json_schema` so a server that enforces
//! schemas (OpenAI, vLLM, llama.cpp, Ollama) can only produce the shape `parse_answer` accepts.
//!
//! It follows OpenAI's strict-mode subset (every property required, `additionalProperties:
//! false`, `anyOf` for the two edit shapes) and is bounded: with a grammar-constrained small
//! model, an unbounded `edits` array or string lets the model repeat until the token limit,
//! while bounds make it close the JSON. The bounds are above anything a sane fix needs; the
//! patch policy still decides what is acceptable. `parse_answer` stays the judge either way:
//! the schema only helps the model, it is never trusted.

use serde_json::{Value, json};

/// The schema's name in the request (letters, digits, `_` and `-`, at most 64).
pub const SCHEMA_NAME: &str = "remediation_answer";

/// At most this many edits in one answer (the default policy allows 20 files).
pub const MAX_EDITS: u64 = 32;
const MAX_PATH_CHARS: u64 = 512;
/// Search text: enough lines to be unique, not a whole file.
const MAX_SEARCH_CHARS: u64 = 8_000;
const MAX_REPLACE_CHARS: u64 = 16_000;
/// A whole-file write; the policy's default change cap is 64 KiB.
const MAX_CONTENT_CHARS: u64 = 64_000;
const MAX_EXPLANATION_CHARS: u64 = 2_000;

/// How much of JSON Schema a server is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchemaBounds {
    /// With `maxItems`, `maxLength`, `minimum` and `maximum`.
    Bounded,
    /// Only the shape: for servers whose strict mode refuses length and range keywords.
    ShapeOnly,
}

/// The answer's schema: `{"edits": [...], "confidence": number, "explanation": string}`.
pub fn answer_schema(bounds: SchemaBounds) -> Value {
    let bounded = bounds == SchemaBounds::Bounded;
    let string = |max: u64| {
        if bounded {
            json!({"type": "string", "maxLength": max})
        } else {
            json!({"type": "string"})
        }
    };
    let replace_edit = json!({
        "type": "object",
        "properties": {
            "path": string(MAX_PATH_CHARS),
            "search": string(MAX_SEARCH_CHARS),
            "replace": string(MAX_REPLACE_CHARS),
        },
        "required": ["path", "search", "replace"],
        "additionalProperties": false,
    });
    let write_edit = json!({
        "type": "object",
        "properties": {
            "path": string(MAX_PATH_CHARS),
            "content": string(MAX_CONTENT_CHARS),
        },
        "required": ["path", "content"],
        "additionalProperties": false,
    });
    let mut edits = json!({
        "type": "array",
        "items": {"anyOf": [replace_edit, write_edit]},
    });
    let mut confidence = json!({"type": "number"});
    if bounded {
        edits["minItems"] = json!(1);
        edits["maxItems"] = json!(MAX_EDITS);
        confidence["minimum"] = json!(0);
        confidence["maximum"] = json!(1);
    }
    json!({
        "type": "object",
        "properties": {
            "edits": edits,
            "confidence": confidence,
            "explanation": string(MAX_EXPLANATION_CHARS),
        },
        "required": ["edits", "confidence", "explanation"],
        "additionalProperties": false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::llm::parse_answer;

    /// Every object is closed and requires all its properties, as strict mode demands.
    fn assert_strict(schema: &Value, at: &str) {
        match schema {
            Value::Object(map) => {
                if map.get("type") == Some(&json!("object")) {
                    assert_eq!(map["additionalProperties"], json!(false), "{at}");
                    let mut properties: Vec<&String> = map["properties"]
                        .as_object()
                        .unwrap_or_else(|| panic!("{at}: properties"))
                        .keys()
                        .collect();
                    let mut required: Vec<&str> = map["required"]
                        .as_array()
                        .unwrap_or_else(|| panic!("{at}: required"))
                        .iter()
                        .map(|v| v.as_str().unwrap())
                        .collect();
                    properties.sort();
                    required.sort_unstable();
                    assert_eq!(properties, required, "{at}");
                }
                for (key, value) in map {
                    assert_strict(value, &format!("{at}/{key}"));
                }
            }
            Value::Array(items) => {
                for (i, value) in items.iter().enumerate() {
                    assert_strict(value, &format!("{at}/{i}"));
                }
            }
            _ => {}
        }
    }

    #[test]
    fn the_schema_is_strict_and_bounded() {
        let schema = answer_schema(SchemaBounds::Bounded);
        assert_strict(&schema, "#");
        let edits = &schema["properties"]["edits"];
        assert_eq!(edits["maxItems"], MAX_EDITS);
        assert_eq!(edits["minItems"], 1);
        let shapes = edits["items"]["anyOf"].as_array().unwrap();
        assert_eq!(shapes.len(), 2);
        for shape in shapes {
            for (name, property) in shape["properties"].as_object().unwrap() {
                assert!(property["maxLength"].as_u64().is_some(), "{name} unbounded");
            }
        }
        assert_eq!(schema["properties"]["confidence"]["maximum"], 1);
        assert!(
            schema["properties"]["explanation"]["maxLength"]
                .as_u64()
                .is_some()
        );
    }

    #[test]
    fn the_shape_only_schema_has_no_bounds() {
        let schema = answer_schema(SchemaBounds::ShapeOnly);
        assert_strict(&schema, "#");
        let text = schema.to_string();
        for keyword in ["maxLength", "maxItems", "minItems", "minimum", "maximum"] {
            assert!(!text.contains(keyword), "{keyword} in {text}");
        }
    }

    /// The schema describes exactly what the parser accepts: its required property sets are
    /// the parser's two edit shapes.
    #[test]
    fn the_schema_matches_the_parser() {
        let schema = answer_schema(SchemaBounds::Bounded);
        let shapes: Vec<Vec<&str>> = schema["properties"]["edits"]["items"]["anyOf"]
            .as_array()
            .unwrap()
            .iter()
            .map(|shape| {
                shape["required"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|v| v.as_str().unwrap())
                    .collect()
            })
            .collect();
        assert_eq!(
            shapes,
            [vec!["path", "search", "replace"], vec!["path", "content"]]
        );
        let answer = json!({
            "edits": [
                {"path": "a.txt", "search": "x", "replace": "y"},
                {"path": "b.txt", "content": "z"}
            ],
            "confidence": 0.5,
            "explanation": "e"
        });
        assert!(parse_answer(&answer.to_string()).is_ok());
    }
}
