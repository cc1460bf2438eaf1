//! The headers of a dead message as a person reads them: AMQP's typed values, as serde writes
//! them, shown as text, numbers, or JSON of those.

use maud::{Markup, html};

/// The headers table of a dead letter's page.
pub(super) fn table(headers: &serde_json::Value) -> Markup {
    html! {
        table #headers {
            thead { tr { th { "header" } th { "value" } } }
            tbody {
                @if let Some(headers) = headers.as_object() {
                    @for (name, value) in headers {
                        tr { td { code { (name) } } td { code { (readable(value)) } } }
                    }
                }
            }
        }
    }
}

/// A header value as a person reads it. The decoded headers are AMQP's typed values as serde
/// writes them (`{"LongString": [bytes]}`, `{"LongLongInt": 3}`, nested tables and arrays);
/// strings are shown as text, numbers as numbers, tables and arrays as JSON of those.
fn readable(value: &serde_json::Value) -> String {
    const AMQP_TYPES: &[&str] = &[
        "Boolean",
        "ShortShortInt",
        "ShortShortUInt",
        "ShortInt",
        "ShortUInt",
        "LongInt",
        "LongUInt",
        "LongLongInt",
        "Float",
        "Double",
        "DecimalValue",
        "ShortString",
        "LongString",
        "FieldArray",
        "Timestamp",
        "FieldTable",
        "ByteArray",
        "Void",
    ];
    fn simplify(value: &serde_json::Value) -> serde_json::Value {
        use serde_json::Value;
        match value {
            Value::Object(map)
                if map.len() == 1 && map.keys().all(|k| AMQP_TYPES.contains(&k.as_str())) =>
            {
                match map.values().next() {
                    Some(Value::Array(items))
                        if !items.is_empty()
                            && items.iter().all(|i| i.as_u64().is_some_and(|n| n < 256)) =>
                    {
                        let bytes: Vec<u8> = items
                            .iter()
                            .filter_map(|i| i.as_u64())
                            .map(|n| n as u8)
                            .collect();
                        Value::String(String::from_utf8_lossy(&bytes).into_owned())
                    }
                    Some(other) => simplify(other),
                    None => Value::Null,
                }
            }
            Value::Object(map) => {
                Value::Object(map.iter().map(|(k, v)| (k.clone(), simplify(v))).collect())
            }
            Value::Array(items) => Value::Array(items.iter().map(simplify).collect()),
            other => other.clone(),
        }
    }
    match simplify(value) {
        serde_json::Value::String(text) => text,
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amqp_header_values_read_as_text_and_numbers() {
        let value = serde_json::json!({"LongString": [109, 97, 120]});
        assert_eq!(readable(&value), "max");
        assert_eq!(readable(&serde_json::json!({"LongLongInt": 3})), "3");
        let deaths =
            serde_json::json!({"FieldArray": [{"FieldTable": {"reason": {"LongString": [114]}}}]});
        assert_eq!(readable(&deaths), r#"[{"reason":"r"}]"#);
    }
}
