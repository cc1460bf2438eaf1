//! Maps a TOML string value, as toml_edit reports its position, back to the bytes of its
//! contents, so a manifest can be edited in place; and the parse before and after the edit.
//! Shared by the TOML manifest formats.

use std::ops::Range;

use toml_edit::{Document, Value};

use crate::patch::bump::{BumpError, BumpOutcome, ManifestKind};

/// Parses a TOML manifest of `kind`, keeping the positions of its values.
pub(super) fn parse(kind: ManifestKind, content: &str) -> Result<Document<&str>, BumpError> {
    Document::parse(content).map_err(|error| kind.parse_error(error.to_string()))
}

/// Hands back `outcome` once its updated manifest still parses. The edit only swaps version
/// text inside strings, so a failure means the positions were wrong: refuse rather than hand
/// back a broken manifest.
pub(super) fn still_parses(
    kind: ManifestKind,
    outcome: BumpOutcome,
) -> Result<BumpOutcome, BumpError> {
    if let BumpOutcome::Bumped { updated, .. } = &outcome {
        Document::parse(updated.as_str()).map_err(|error| {
            kind.parse_error(format!(
                "the bumped manifest no longer parses ({error}); this is a bug"
            ))
        })?;
    }
    Ok(outcome)
}

/// The byte range of a version string's contents, or why it cannot be rewritten in place.
pub(super) fn version_span(content: &str, value: &Value) -> Result<Range<usize>, String> {
    let decoded = value
        .as_str()
        .ok_or_else(|| "has a version that is not a string".to_owned())?;
    let span = value
        .span()
        .ok_or_else(|| "has no recorded position in the file; this is a bug".to_owned())?;
    string_contents(content, span, decoded)
        .ok_or_else(|| "has a version string written with escapes or line breaks".to_owned())
}

/// The byte range of a TOML string's contents inside its quotes, provided the raw text is
/// exactly the decoded value (no escapes, no line continuation), so it can be replaced verbatim.
pub(super) fn string_contents(
    content: &str,
    token: Range<usize>,
    decoded: &str,
) -> Option<Range<usize>> {
    let inner = inside_quotes(content, token)?;
    (content.get(inner.clone())? == decoded).then_some(inner)
}

/// The byte range of `decoded[..len]` inside the string token, when the raw text agrees with
/// the decoded value up to there. A PEP 508 string often escapes quotes in its environment
/// marker (`"six>=1.16; python_version < \"3.8\""`); the name and version before the marker
/// can still be rewritten in place.
pub(super) fn string_prefix(
    content: &str,
    token: Range<usize>,
    decoded: &str,
    len: usize,
) -> Option<Range<usize>> {
    let inner = inside_quotes(content, token)?;
    let raw = content.get(inner.start..inner.start.checked_add(len)?)?;
    (Some(raw) == decoded.get(..len)).then_some(inner.start..inner.start + len)
}

/// The range between the quotes of a string token, which must be a whole quoted string.
fn inside_quotes(content: &str, token: Range<usize>) -> Option<Range<usize>> {
    let raw = content.get(token.clone())?;
    let quote = ["\"\"\"", "'''", "\"", "'"].into_iter().find(|quote| {
        raw.starts_with(quote) && raw.ends_with(quote) && raw.len() >= 2 * quote.len()
    })?;
    Some(token.start + quote.len()..token.end - quote.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contents_only_when_written_verbatim() {
        let text = r#"a = "1.2.3""#;
        assert_eq!(string_contents(text, 4..11, "1.2.3"), Some(5..10));
        let text = r"a = '1.2.3'";
        assert_eq!(string_contents(text, 4..11, "1.2.3"), Some(5..10));
        let text = r#"a = "\u0031.2""#;
        assert_eq!(string_contents(text, 4..14, "1.2"), None);
        assert_eq!(string_contents(text, 0..3, "1.2"), None);
    }

    #[test]
    fn prefix_before_an_escape_is_usable() {
        let text = r#"d = ["six>=1.16; python_version < \"3.8\""]"#;
        let decoded = r#"six>=1.16; python_version < "3.8""#;
        let token = 5..text.len() - 1;
        assert_eq!(string_prefix(text, token.clone(), decoded, 9), Some(6..15));
        assert_eq!(&text[6..15], "six>=1.16");
        // Past the escape the raw text and the value differ.
        assert_eq!(string_prefix(text, token, decoded, decoded.len()), None);
    }
}
