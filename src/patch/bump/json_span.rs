//! Finds where a value sits in JSON text, so a manifest can be edited in place instead of being
//! re-serialised (which would lose the author's key order, indentation and spacing). The text
//! must already have been validated by serde_json; this only walks it.

use std::ops::Range;

/// The byte range of the value at `path` (a chain of object keys from the root), including
/// quotes for a string. Where a key repeats, the last occurrence wins, as in serde_json.
pub(super) fn locate(text: &str, path: &[&str]) -> Result<Option<Range<usize>>, String> {
    let mut scanner = Scanner { text, pos: 0 };
    let (_, found) = scanner.value(path)?;
    Ok(found)
}

struct Scanner<'a> {
    text: &'a str,
    pos: usize,
}

impl Scanner<'_> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.pos).copied()
    }

    fn skip_whitespace(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.pos += 1;
        }
    }

    fn expect(&mut self, byte: u8) -> Result<(), String> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(format!(
                "expected `{}` at byte {} of the JSON text",
                byte as char, self.pos
            ))
        }
    }

    /// Scans one value; returns its span and, when `path` leads into it, the span found there.
    fn value(&mut self, path: &[&str]) -> Result<(Range<usize>, Option<Range<usize>>), String> {
        self.skip_whitespace();
        let start = self.pos;
        let mut found = None;
        match self.peek() {
            Some(b'{') => self.items(b'}', |scanner| {
                scanner.skip_whitespace();
                let key = scanner.string()?;
                let key: String = serde_json::from_str(&scanner.text[key])
                    .map_err(|error| format!("unreadable JSON key: {error}"))?;
                scanner.skip_whitespace();
                scanner.expect(b':')?;
                let wanted = path.first().is_some_and(|first| *first == key);
                let rest = if wanted { &path[1..] } else { &[] };
                let (span, inner) = scanner.value(rest)?;
                if wanted {
                    found = if rest.is_empty() { Some(span) } else { inner };
                }
                Ok(())
            })?,
            Some(b'[') => self.items(b']', |scanner| scanner.value(&[]).map(drop))?,
            Some(b'"') => {
                self.string()?;
            }
            Some(_) => {
                while !matches!(
                    self.peek(),
                    None | Some(b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r')
                ) {
                    self.pos += 1;
                }
                if self.pos == start {
                    return Err(format!(
                        "unexpected character at byte {start} of the JSON text"
                    ));
                }
            }
            None => return Err("the JSON text ends early".to_owned()),
        }
        Ok((start..self.pos, found))
    }

    /// Scans the comma-separated items of an object or array, from its opening bracket (at the
    /// current position) through `close`; `item` scans one item.
    fn items(
        &mut self,
        close: u8,
        mut item: impl FnMut(&mut Self) -> Result<(), String>,
    ) -> Result<(), String> {
        self.pos += 1;
        self.skip_whitespace();
        if self.peek() == Some(close) {
            self.pos += 1;
            return Ok(());
        }
        loop {
            item(self)?;
            self.skip_whitespace();
            if self.peek() == Some(b',') {
                self.pos += 1;
            } else {
                return self.expect(close);
            }
        }
    }

    /// Scans a string token and returns its span, quotes included.
    fn string(&mut self) -> Result<Range<usize>, String> {
        let start = self.pos;
        self.expect(b'"')?;
        loop {
            match self.peek() {
                Some(b'\\') => self.pos += 2,
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(start..self.pos);
                }
                Some(_) => self.pos += 1,
                None => return Err("a JSON string is not closed".to_owned()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str, path: &[&str]) -> Option<String> {
        locate(text, path)
            .expect("valid JSON")
            .map(|span| text[span].to_owned())
    }

    #[test]
    fn finds_nested_values_with_their_quotes() {
        let text = r#"{ "a": 1, "deps": { "x": "^1.0.0", "y" : [1, {"x": "no"}] }, "z": null }"#;
        assert_eq!(at(text, &["deps", "x"]).as_deref(), Some("\"^1.0.0\""));
        assert_eq!(
            at(text, &["deps", "y"]).as_deref(),
            Some("[1, {\"x\": \"no\"}]")
        );
        assert_eq!(at(text, &["a"]).as_deref(), Some("1"));
        assert_eq!(at(text, &["z"]).as_deref(), Some("null"));
        assert_eq!(at(text, &["deps", "missing"]), None);
        assert_eq!(at(text, &["a", "x"]), None);
    }

    #[test]
    fn keys_are_compared_decoded_and_the_last_duplicate_wins() {
        let text = "{\"d\": {\"p\\u0061ck\": \"1\", \"pack\": \"2\"}}";
        assert_eq!(at(text, &["d", "pack"]).as_deref(), Some("\"2\""));
    }

    #[test]
    fn escaped_quotes_inside_strings_do_not_end_them() {
        let text = r#"{"s": "a \"quoted\" } word", "k": "v"}"#;
        assert_eq!(at(text, &["k"]).as_deref(), Some("\"v\""));
    }

    #[test]
    fn truncated_text_is_an_error() {
        assert!(locate(r#"{"a": "b"#, &["a"]).is_err());
        assert!(locate("", &["a"]).is_err());
    }
}
