//! The body of a fake OpenAI-compatible model's answer, for wiremock responders: server-sent
//! events when the request asks to stream (as OpenAI documents them: a role chunk, content
//! chunks, the `finish_reason` in a chunk with an empty delta, a usage chunk with empty
//! `choices` when `stream_options.include_usage` is set, then `data: [DONE]`), one
//! `chat.completion` JSON body otherwise.

use serde_json::{Value, json};
use wiremock::{Request, Respond, ResponseTemplate};

/// A model that answers `content` with this usage to every request.
#[derive(Clone, Debug)]
pub struct ChatAnswer {
    pub content: String,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

impl ChatAnswer {
    pub fn new(content: impl Into<String>, prompt_tokens: u64, completion_tokens: u64) -> Self {
        ChatAnswer {
            content: content.into(),
            prompt_tokens,
            completion_tokens,
        }
    }
}

impl Respond for ChatAnswer {
    fn respond(&self, request: &Request) -> ResponseTemplate {
        answer(
            request,
            &self.content,
            self.prompt_tokens,
            self.completion_tokens,
        )
    }
}

/// `content` as the answer to `request`, streamed when it asked to stream.
pub fn answer(
    request: &Request,
    content: &str,
    prompt_tokens: u64,
    completion_tokens: u64,
) -> ResponseTemplate {
    let body: Value = serde_json::from_slice(&request.body).unwrap_or_default();
    let usage = json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens
    });
    if body["stream"] != json!(true) {
        return ResponseTemplate::new(200).set_body_json(json!({
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": "fake-model",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": content},
                "logprobs": null,
                "finish_reason": "stop"
            }],
            "usage": usage
        }));
    }
    let chunk = |delta: Value, finish_reason: Option<&str>| {
        json!({
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": "fake-model",
            "system_fingerprint": "fp_fake",
            "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}],
            "usage": null
        })
    };
    let mut events = vec![chunk(
        json!({"role": "assistant", "content": "", "refusal": null}),
        None,
    )];
    let chars: Vec<char> = content.chars().collect();
    for piece in chars.chunks(16) {
        events.push(chunk(
            json!({"content": piece.iter().collect::<String>()}),
            None,
        ));
    }
    events.push(chunk(json!({}), Some("stop")));
    if body["stream_options"]["include_usage"] == json!(true) {
        events.push(json!({
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 1_700_000_000,
            "model": "fake-model",
            "system_fingerprint": "fp_fake",
            "choices": [],
            "usage": usage
        }));
    }
    let mut sse: String = events.iter().map(|e| format!("data: {e}\n\n")).collect();
    sse.push_str("data: [DONE]\n\n");
    ResponseTemplate::new(200).set_body_raw(sse, "text/event-stream")
}
