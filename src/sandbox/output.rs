//! What of a tool's output a job reports: the decisive part, secrets cut.
//!
//! Tools print progress first and the reason last (`Updating dependencies` ... `Because
//! requests depends on ...`; `Failed to fetch` ... `Caused by: invalid peer certificate`), and
//! some print pages of it. A capture keeps the beginning and the end of each stream, and the
//! excerpt keeps the lines that say what went wrong (`error:`, `ERR!`, `Caused by`, a
//! traceback's end) and the last lines, within `sandbox.max_output_bytes`.

use base64::Engine;

/// One stream of a tool's output, kept as its first `head` and its last `tail` bytes; what lies
/// between is counted, not kept.
#[derive(Debug, Default)]
pub struct Capture {
    head: Vec<u8>,
    tail: std::collections::VecDeque<u8>,
    head_max: usize,
    tail_max: usize,
    skipped: u64,
}

impl Capture {
    pub fn new(head_max: usize, tail_max: usize) -> Self {
        Capture {
            head_max,
            tail_max,
            ..Default::default()
        }
    }

    pub fn push(&mut self, mut bytes: &[u8]) {
        let room = self.head_max.saturating_sub(self.head.len());
        if room > 0 {
            let take = room.min(bytes.len());
            self.head.extend_from_slice(&bytes[..take]);
            bytes = &bytes[take..];
        }
        self.tail.extend(bytes);
        while self.tail.len() > self.tail_max {
            let drop = self.tail.len() - self.tail_max;
            self.tail.drain(..drop);
            self.skipped += drop as u64;
        }
    }

    /// The kept text; a gap says how much was left out.
    pub fn text(&self) -> String {
        let mut text = String::from_utf8_lossy(&self.head).into_owned();
        if self.skipped > 0 {
            text.push_str(&format!("\n[... {} bytes ...]\n", self.skipped));
        }
        let tail: Vec<u8> = self.tail.iter().copied().collect();
        text.push_str(&String::from_utf8_lossy(&tail));
        text
    }
}

/// Lines that say what failed, in the words of the tools the worker runs.
const DECISIVE: &[&str] = &[
    "error",
    "ERR!",
    "fatal:",
    "Caused by",
    "caused by",
    "Traceback",
    "Exception",
    "Because ",
    "because ",
    "failed",
    "Failed",
    "refused",
    "not found",
    "No matching",
    "Could not",
    "could not",
    "×",
    "╰─▶",
    "help:",
    "hint:",
];

/// Lines always kept from the end.
const LAST_LINES: usize = 15;

/// The decisive part of `text` within `limit` bytes, with `secrets` (and their encoded forms)
/// cut: the lines that say what failed and the last lines, in their order, a `[...]` where
/// lines were left out. When even that is too long, its end is kept.
pub fn decisive(text: &str, secrets: &[String], limit: usize) -> String {
    let text = redact(text, secrets);
    let text = text.trim();
    if text.len() <= limit {
        return text.to_owned();
    }
    let lines: Vec<&str> = text.lines().collect();
    let last = lines.len().saturating_sub(LAST_LINES);
    let mut kept = String::new();
    let mut gap = false;
    for (index, line) in lines.iter().enumerate() {
        let keep = index >= last || DECISIVE.iter().any(|marker| line.contains(marker));
        if !keep {
            gap = true;
            continue;
        }
        if gap {
            kept.push_str("[...]\n");
            gap = false;
        }
        kept.push_str(line);
        kept.push('\n');
    }
    let kept = kept.trim_end();
    if kept.len() <= limit {
        return kept.to_owned();
    }
    let mut start = kept.len() - limit;
    while !kept.is_char_boundary(start) {
        start += 1;
    }
    format!("[...]{}", &kept[start..])
}

/// `text` without any secret, in any of the forms a tool may print it: as it is, base64
/// (standard and URL-safe, padded or not) and percent-encoded.
pub fn redact(text: &str, secrets: &[String]) -> String {
    let mut text = text.to_owned();
    for secret in secrets.iter().filter(|s| s.len() >= 4) {
        for form in encoded_forms(secret) {
            if !form.is_empty() {
                text = text.replace(&form, "[redacted]");
            }
        }
    }
    text
}

fn encoded_forms(secret: &str) -> Vec<String> {
    use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
    let bytes = secret.as_bytes();
    let mut forms = vec![
        secret.to_owned(),
        STANDARD.encode(bytes),
        URL_SAFE.encode(bytes),
        // Unpadded forms last: a padded one contains its unpadded prefix.
        STANDARD_NO_PAD.encode(bytes),
        URL_SAFE_NO_PAD.encode(bytes),
        percent_encode(secret),
    ];
    forms.dedup();
    forms
}

fn percent_encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::STANDARD;

    #[test]
    fn the_cause_at_the_end_survives_pages_of_progress() {
        let mut text = String::from("Updating dependencies\n");
        for i in 0..2000 {
            text.push_str(&format!("Resolving dependencies... ({i})\n"));
        }
        text.push_str("error: Failed to fetch: `https://index.invalid/simple/h11/`\n");
        text.push_str("  Caused by: invalid peer certificate: UnknownIssuer\n");
        let out = decisive(&text, &[], 400);
        assert!(out.contains("Caused by: invalid peer certificate"), "{out}");
        assert!(out.contains("error: Failed to fetch"), "{out}");
        assert!(out.len() <= 405, "{}", out.len());
    }

    #[test]
    fn error_lines_from_the_middle_are_kept_with_the_end() {
        let mut text = String::from("npm ERR! code ETARGET\n");
        for i in 0..300 {
            text.push_str(&format!("verbose line {i}\n"));
        }
        text.push_str("npm ERR! A complete log of this run can be found in: /tmp/x.log\n");
        let out = decisive(&text, &[], 2000);
        assert!(out.starts_with("npm ERR! code ETARGET\n[...]"), "{out}");
        assert!(out.ends_with("/tmp/x.log"), "{out}");
        assert!(!out.contains("verbose line 10\n"), "{out}");
    }

    #[test]
    fn a_secret_is_cut_in_every_encoding() {
        let token = "s3cr3t-T0ken/with+chars";
        let basic = format!("ci-bot:{token}");
        let text = format!(
            "raw {token} b64 {} basic {} url {}",
            STANDARD.encode(token),
            STANDARD.encode(&basic),
            percent_encode(token)
        );
        let out = decisive(&text, &[token.to_owned(), basic.clone()], 10_000);
        assert!(!out.contains(token), "{out}");
        assert!(!out.contains(&STANDARD.encode(token)), "{out}");
        assert!(!out.contains(&STANDARD.encode(&basic)), "{out}");
        assert!(!out.contains(&percent_encode(token)), "{out}");
        assert_eq!(out.matches("[redacted]").count(), 4, "{out}");
    }

    #[test]
    fn a_capture_keeps_both_ends_of_a_long_stream() {
        let mut capture = Capture::new(10, 20);
        capture.push(b"first line\n");
        for _ in 0..100 {
            capture.push(b"noise noise\n");
        }
        capture.push(b"error: the cause\n");
        let text = capture.text();
        assert!(text.starts_with("first line"), "{text}");
        assert!(text.ends_with("error: the cause\n"), "{text}");
        assert!(text.contains("bytes ...]"), "{text}");
    }
}
