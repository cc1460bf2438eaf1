//! Reading a streamed chat completion: server-sent events as OpenAI documents them
//! (`data: {chunk}` events, `data: [DONE]` at the end, a last chunk with `usage` and no
//! choices when `stream_options.include_usage` is set), read as they arrive.
//!
//! Two clocks bound the read: the silence between two pieces of text (content or reasoning)
//! once the first arrived, and the call's deadline. Either one ends the read and returns what
//! was received so far; the caller then drops the response, which closes the connection so
//! the server stops generating. Only the answer's `content` is kept (bounded by
//! `max_response_bytes`); reasoning text is counted, never kept.

use std::time::Duration;

use tokio::time::{Instant, timeout_at};

use super::RawUsage;

/// What the stream delivered, complete or not.
#[derive(Debug, Default)]
pub struct Streamed {
    pub content: String,
    pub finish_reason: Option<String>,
    pub usage: Option<RawUsage>,
    pub model: Option<String>,
    /// An error object the server sent inside the stream instead of chunks.
    pub error: Option<serde_json::Value>,
    pub progress: Progress,
    /// `[DONE]` arrived.
    pub done: bool,
}

/// How far the model got: for the operation's history and for timeout messages.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    /// Chunks that carried text; servers send about one token per chunk.
    pub pieces: u64,
    pub content_chars: u64,
    pub reasoning_chars: u64,
    /// Since the call started.
    pub first_piece: Option<Duration>,
}

/// Why a read stopped early.
#[derive(Debug)]
pub enum StreamStop {
    /// Nothing new for the idle timeout after text had started to arrive.
    Idle,
    /// The call's deadline came.
    Deadline,
    /// More answer text than `max_response_bytes`.
    TooBig,
    Http(reqwest::Error),
    /// A line that is not a server-sent event of a chat completion.
    Malformed(String),
}

/// The clocks and limit of one read.
pub struct Limits {
    pub started: Instant,
    pub idle: Duration,
    pub deadline: Instant,
    pub max_content_bytes: usize,
}

/// Reads events until `[DONE]`, the end of the body, or a stop; on a stop, also returns what
/// had arrived. A stream that carried its `finish_reason` and then went quiet (no `[DONE]`,
/// no close) is complete: its silence is not an error.
pub async fn read(
    response: &mut reqwest::Response,
    limits: &Limits,
) -> Result<Streamed, (StreamStop, Streamed)> {
    let mut reader = EventReader::default();
    let mut streamed = Streamed::default();
    let mut last_piece: Option<Instant> = None;
    // A partial line is bounded too, so a server cannot make us buffer an endless line.
    let max_line = limits.max_content_bytes.saturating_add(64 * 1024);
    loop {
        let wait_until = match last_piece {
            Some(at) => (at + limits.idle).min(limits.deadline),
            None => limits.deadline,
        };
        let chunk = match timeout_at(wait_until, response.chunk()).await {
            Err(_) if streamed.finish_reason.is_some() => return Ok(streamed),
            Err(_) if Instant::now() >= limits.deadline => {
                return Err((StreamStop::Deadline, streamed));
            }
            Err(_) => return Err((StreamStop::Idle, streamed)),
            Ok(Err(e)) => return Err((StreamStop::Http(e.without_url()), streamed)),
            Ok(Ok(None)) => break,
            Ok(Ok(Some(chunk))) => chunk,
        };
        let events = match reader.push(&chunk, max_line) {
            Ok(events) => events,
            Err(stop) => return Err((stop, streamed)),
        };
        for event in events {
            let before = streamed.progress.pieces;
            if let Err(stop) = apply(&event, &mut streamed, limits) {
                return Err((stop, streamed));
            }
            if streamed.progress.pieces > before {
                last_piece = Some(Instant::now());
            }
            if streamed.done || streamed.error.is_some() {
                return Ok(streamed);
            }
        }
    }
    // The body ended: an event not closed by a blank line still counts.
    if let Some(event) = reader.finish()
        && let Err(stop) = apply(&event, &mut streamed, limits)
    {
        return Err((stop, streamed));
    }
    Ok(streamed)
}

/// One dispatched server-sent event.
#[derive(Debug, PartialEq, Eq)]
struct Event {
    name: Option<String>,
    data: String,
}

/// Splits bytes into lines and lines into events, as the SSE format defines them: `data:`
/// lines joined by `\n`, a blank line dispatches, `:` starts a comment.
#[derive(Default)]
struct EventReader {
    line: Vec<u8>,
    data: Option<String>,
    name: Option<String>,
}

impl EventReader {
    fn push(&mut self, bytes: &[u8], max_line: usize) -> Result<Vec<Event>, StreamStop> {
        let mut events = Vec::new();
        for &byte in bytes {
            if byte == b'\n' {
                let line = std::mem::take(&mut self.line);
                if let Some(event) = self.line_done(&line)? {
                    events.push(event);
                }
            } else {
                self.line.push(byte);
                if self.line.len() > max_line {
                    return Err(StreamStop::TooBig);
                }
            }
        }
        Ok(events)
    }

    fn line_done(&mut self, line: &[u8]) -> Result<Option<Event>, StreamStop> {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            return Ok(self.dispatch());
        }
        let line = std::str::from_utf8(line).map_err(|_| {
            StreamStop::Malformed("a line of the event stream is not UTF-8".to_owned())
        })?;
        if line.starts_with(':') {
            return Ok(None);
        }
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "data" => match &mut self.data {
                Some(data) => {
                    data.push('\n');
                    data.push_str(value);
                }
                None => self.data = Some(value.to_owned()),
            },
            "event" => self.name = Some(value.to_owned()),
            // `id`, `retry` and unknown fields mean nothing to a completion.
            _ => {}
        }
        Ok(None)
    }

    fn dispatch(&mut self) -> Option<Event> {
        let name = self.name.take();
        self.data.take().map(|data| Event { name, data })
    }

    fn finish(&mut self) -> Option<Event> {
        let line = std::mem::take(&mut self.line);
        if !line.is_empty() {
            // A last line without its line break; a malformed one is dropped with the rest.
            let _ = self.line_done(&line);
        }
        self.dispatch()
    }
}

// Lenient on purpose: servers add fields freely and vary in which they send.
#[derive(serde::Deserialize)]
struct Chunk {
    #[serde(default)]
    choices: Vec<ChunkChoice>,
    usage: Option<RawUsage>,
    model: Option<String>,
    error: Option<serde_json::Value>,
}

#[derive(serde::Deserialize)]
struct ChunkChoice {
    #[serde(default)]
    index: u32,
    delta: Option<Delta>,
    finish_reason: Option<String>,
}

#[derive(serde::Deserialize)]
struct Delta {
    content: Option<String>,
    /// DeepSeek, llama.cpp and older vLLM.
    reasoning_content: Option<String>,
    /// Newer vLLM, Ollama, OpenRouter.
    reasoning: Option<String>,
}

fn apply(event: &Event, streamed: &mut Streamed, limits: &Limits) -> Result<(), StreamStop> {
    let data = event.data.trim();
    if data == "[DONE]" {
        streamed.done = true;
        return Ok(());
    }
    if data.is_empty() {
        return Ok(());
    }
    let chunk: Chunk = serde_json::from_str(data).map_err(|e| {
        StreamStop::Malformed(format!(
            "an event of the stream is not a chat completion chunk ({e})"
        ))
    })?;
    if let Some(error) = chunk.error {
        streamed.error = Some(error);
        return Ok(());
    }
    if event.name.as_deref() == Some("error") {
        streamed.error = Some(serde_json::Value::String(data.to_owned()));
        return Ok(());
    }
    if streamed.model.is_none() {
        streamed.model = chunk.model.filter(|m| !m.is_empty());
    }
    if let Some(usage) = chunk.usage {
        streamed.usage = Some(usage);
    }
    // One answer was asked for (n = 1); a server numbering choices still sends it as 0.
    let Some(choice) = chunk.choices.into_iter().find(|c| c.index == 0) else {
        return Ok(());
    };
    if let Some(delta) = choice.delta {
        let reasoning = delta
            .reasoning_content
            .or(delta.reasoning)
            .unwrap_or_default();
        let content = delta.content.unwrap_or_default();
        if !reasoning.is_empty() || !content.is_empty() {
            let progress = &mut streamed.progress;
            progress.pieces += 1;
            progress.reasoning_chars += reasoning.chars().count() as u64;
            progress.content_chars += content.chars().count() as u64;
            progress
                .first_piece
                .get_or_insert_with(|| limits.started.elapsed());
        }
        if streamed.content.len() + content.len() > limits.max_content_bytes {
            return Err(StreamStop::TooBig);
        }
        streamed.content.push_str(&content);
    }
    if let Some(reason) = choice.finish_reason.filter(|r| !r.is_empty()) {
        streamed.finish_reason = Some(reason);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(input: &[&[u8]]) -> Vec<Event> {
        let mut reader = EventReader::default();
        let mut out = Vec::new();
        for bytes in input {
            out.extend(reader.push(bytes, 1024).unwrap());
        }
        out.extend(reader.finish());
        out
    }

    fn data(text: &str) -> Event {
        Event {
            name: None,
            data: text.to_owned(),
        }
    }

    #[test]
    fn events_are_split_as_the_format_defines() {
        assert_eq!(
            events(&[b"data: {\"a\":1}\n\ndata: [DONE]\n\n"]),
            [data("{\"a\":1}"), data("[DONE]")]
        );
        // Split anywhere, CRLF line ends, comments, multi-line data, no space after the colon.
        assert_eq!(
            events(&[
                b": keep-alive\r\n\r\nda",
                b"ta: one\r\ndata:two\r\n",
                b"id: 7\r\n\r\nevent: error\ndata: {}\n\n"
            ]),
            [
                data("one\ntwo"),
                Event {
                    name: Some("error".to_owned()),
                    data: "{}".to_owned()
                }
            ]
        );
        // A last event without its blank line still counts.
        assert_eq!(events(&[b"data: last"]), [data("last")]);
    }

    #[test]
    fn an_endless_line_is_refused() {
        let mut reader = EventReader::default();
        assert!(matches!(
            reader.push(&[b'x'; 2000], 1024),
            Err(StreamStop::TooBig)
        ));
    }

    fn limits() -> Limits {
        Limits {
            started: Instant::now(),
            idle: Duration::from_secs(1),
            deadline: Instant::now() + Duration::from_secs(1),
            max_content_bytes: 16,
        }
    }

    #[test]
    fn chunks_build_the_answer_and_reasoning_is_only_counted() {
        let mut streamed = Streamed::default();
        let limits = limits();
        for event in [
            r#"{"model":"m-1","choices":[{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}]}"#,
            r#"{"choices":[{"index":0,"delta":{"reasoning_content":"let me think"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"reasoning":"more"}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":"{\"a\""}}]}"#,
            r#"{"choices":[{"index":0,"delta":{"content":":1}"},"finish_reason":"stop"}]}"#,
            r#"{"choices":[],"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}"#,
        ] {
            apply(&data(event), &mut streamed, &limits).unwrap();
        }
        assert_eq!(streamed.content, "{\"a\":1}");
        assert!(!streamed.content.contains("think"));
        assert_eq!(streamed.model.as_deref(), Some("m-1"));
        assert_eq!(streamed.finish_reason.as_deref(), Some("stop"));
        assert_eq!(
            streamed.usage.as_ref().map(|u| u.completion_tokens),
            Some(4)
        );
        assert_eq!(streamed.progress.pieces, 4);
        assert_eq!(streamed.progress.reasoning_chars, 16);
        assert_eq!(streamed.progress.content_chars, 7);
        assert!(streamed.progress.first_piece.is_some());
        apply(&data("[DONE]"), &mut streamed, &limits).unwrap();
        assert!(streamed.done);
    }

    #[test]
    fn answer_text_beyond_the_limit_is_refused() {
        let mut streamed = Streamed::default();
        let chunk = r#"{"choices":[{"index":0,"delta":{"content":"0123456789"}}]}"#;
        apply(&data(chunk), &mut streamed, &limits()).unwrap();
        assert!(matches!(
            apply(&data(chunk), &mut streamed, &limits()),
            Err(StreamStop::TooBig)
        ));
    }

    #[test]
    fn an_error_in_the_stream_is_kept_and_garbage_is_malformed() {
        let mut streamed = Streamed::default();
        apply(
            &data(r#"{"error":{"message":"model overloaded"}}"#),
            &mut streamed,
            &limits(),
        )
        .unwrap();
        assert!(streamed.error.is_some());
        assert!(matches!(
            apply(&data("<html>"), &mut Streamed::default(), &limits()),
            Err(StreamStop::Malformed(_))
        ));
    }
}
