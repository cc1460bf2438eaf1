//! A fake OpenAI-compatible model server on loopback, on raw tokio TCP so a test controls the
//! timing of every byte and sees when the client closes the connection.
//!
//! It speaks HTTP/1.1 with keep-alive and answers streamed requests (`"stream": true`) as the
//! OpenAI API documents server-sent events: `data: {chat.completion.chunk}` events, the first
//! with the role, one per piece of text, the `finish_reason` in a chunk with an empty delta,
//! then, with `stream_options.include_usage`, a chunk with empty `choices` and the `usage`
//! (every earlier chunk carries `"usage": null`), then `data: [DONE]`. Requests without
//! `stream` get one `chat.completion` JSON body once the whole answer is "generated".

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Notify;
use tokio::time::Instant;

/// What the model does for one request.
#[derive(Clone, Debug)]
pub enum Reply {
    Generate(Generation),
    /// An HTTP error status with a JSON body.
    Refuse {
        status: u16,
        body: Value,
    },
}

/// A generation: reasoning pieces, then answer pieces, one every `every`.
#[derive(Clone, Debug)]
pub struct Generation {
    pub reasoning: Vec<String>,
    pub content: Vec<String>,
    pub every: Duration,
    /// `None`: after the last piece the model stalls, sending nothing and never finishing.
    pub finish_reason: Option<&'static str>,
}

impl Generation {
    /// `answer` cut into pieces of `piece_chars`, sent every `every`, finishing with `stop`.
    pub fn of(answer: &str, piece_chars: usize, every: Duration) -> Self {
        let chars: Vec<char> = answer.chars().collect();
        Generation {
            reasoning: Vec::new(),
            content: chars
                .chunks(piece_chars.max(1))
                .map(|c| c.iter().collect())
                .collect(),
            every,
            finish_reason: Some("stop"),
        }
    }
}

/// What the server saw of one request.
#[derive(Clone, Debug)]
pub struct Seen {
    pub body: Value,
    /// Pieces of text written before the response ended or the client went away.
    pub pieces_sent: usize,
    /// When the client closed the connection while the model was still generating, counted
    /// from the request's arrival.
    pub client_closed_after: Option<Duration>,
}

type Script = dyn Fn(&Value, usize) -> Reply + Send + Sync;

pub struct FakeModelServer {
    pub base_url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
    changed: Arc<Notify>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeModelServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl FakeModelServer {
    /// Starts a server that answers the n-th request (from 0) with `script(body, n)`.
    pub async fn start(script: impl Fn(&Value, usize) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let changed = Arc::new(Notify::new());
        let script: Arc<Script> = Arc::new(script);
        let task = {
            let seen = Arc::clone(&seen);
            let changed = Arc::clone(&changed);
            tokio::spawn(async move {
                loop {
                    let Ok((socket, _)) = listener.accept().await else {
                        return;
                    };
                    let connection = Connection {
                        socket,
                        buffer: Vec::new(),
                        seen: Arc::clone(&seen),
                        changed: Arc::clone(&changed),
                        script: Arc::clone(&script),
                    };
                    tokio::spawn(connection.serve());
                }
            })
        };
        FakeModelServer {
            base_url: format!("http://{address}/v1"),
            seen,
            changed,
            task,
        }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn bodies(&self) -> Vec<Value> {
        self.seen().into_iter().map(|s| s.body).collect()
    }

    /// Waits (up to `within`) until the server has seen the client close request `index`'s
    /// connection, and returns when that happened.
    pub async fn client_closed(&self, index: usize, within: Duration) -> Option<Duration> {
        let until = Instant::now() + within;
        loop {
            let notified = self.changed.notified();
            if let Some(after) = self
                .seen()
                .get(index)
                .and_then(|seen| seen.client_closed_after)
            {
                return Some(after);
            }
            if tokio::time::timeout_at(until, notified).await.is_err() {
                return None;
            }
        }
    }
}

struct Connection {
    socket: TcpStream,
    buffer: Vec<u8>,
    seen: Arc<Mutex<Vec<Seen>>>,
    changed: Arc<Notify>,
    script: Arc<Script>,
}

impl Connection {
    async fn serve(mut self) {
        while let Some((path, body)) = self.read_request().await {
            let arrived = Instant::now();
            assert_eq!(path, "/v1/chat/completions", "the documented path");
            let body: Value = serde_json::from_slice(&body).expect("the request body is JSON");
            let index = {
                let mut seen = self.seen.lock().unwrap();
                seen.push(Seen {
                    body: body.clone(),
                    pieces_sent: 0,
                    client_closed_after: None,
                });
                seen.len() - 1
            };
            self.changed.notify_waiters();
            let reply = (self.script)(&body, index);
            let open = match reply {
                Reply::Refuse { status, body } => self.refuse(status, &body).await,
                Reply::Generate(generation) if body["stream"] == json!(true) => {
                    let include_usage = body["stream_options"]["include_usage"] == json!(true);
                    self.stream(&generation, include_usage, index, arrived)
                        .await
                }
                Reply::Generate(generation) => self.whole(&generation).await,
            };
            if !open {
                return;
            }
        }
    }

    /// Reads one request's head and body; `None` when the client closed the connection.
    async fn read_request(&mut self) -> Option<(String, Vec<u8>)> {
        let head_end = loop {
            if let Some(at) = find(&self.buffer, b"\r\n\r\n") {
                break at;
            }
            if !self.fill().await {
                return None;
            }
        };
        let head = String::from_utf8_lossy(&self.buffer[..head_end]).into_owned();
        let mut lines = head.split("\r\n");
        let request_line = lines.next()?.to_owned();
        let mut parts = request_line.split(' ');
        assert_eq!(parts.next(), Some("POST"));
        let path = parts.next()?.to_owned();
        let mut length = 0;
        for line in lines {
            let (name, value) = line.split_once(':')?;
            let name = name.trim().to_ascii_lowercase();
            if name == "content-length" {
                length = value.trim().parse().ok()?;
            }
            if name == "content-type" {
                assert_eq!(value.trim(), "application/json");
            }
        }
        let body_start = head_end + 4;
        while self.buffer.len() < body_start + length {
            if !self.fill().await {
                return None;
            }
        }
        let body = self.buffer[body_start..body_start + length].to_vec();
        self.buffer.drain(..body_start + length);
        Some((path, body))
    }

    async fn fill(&mut self) -> bool {
        let mut chunk = [0u8; 8192];
        match self.socket.read(&mut chunk).await {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buffer.extend_from_slice(&chunk[..n]);
                true
            }
        }
    }

    async fn refuse(&mut self, status: u16, body: &Value) -> bool {
        let body = body.to_string();
        let head = format!(
            "HTTP/1.1 {status} Refused\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        self.socket.write_all(head.as_bytes()).await.is_ok()
            && self.socket.write_all(body.as_bytes()).await.is_ok()
    }

    async fn whole(&mut self, generation: &Generation) -> bool {
        let pieces = generation.reasoning.len() + generation.content.len();
        tokio::time::sleep(generation.every * u32::try_from(pieces).unwrap()).await;
        let body = json!({
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": 1_700_000_000,
            "model": "fake-stream-model",
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": generation.content.concat()},
                "logprobs": null,
                "finish_reason": generation.finish_reason.unwrap_or("stop")
            }],
            "usage": usage(generation)
        })
        .to_string();
        let head = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            body.len()
        );
        self.socket.write_all(head.as_bytes()).await.is_ok()
            && self.socket.write_all(body.as_bytes()).await.is_ok()
    }

    /// Streams the generation; returns whether the connection is still usable.
    async fn stream(
        &mut self,
        generation: &Generation,
        include_usage: bool,
        index: usize,
        arrived: Instant,
    ) -> bool {
        let head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream; charset=utf-8\r\n\
                    cache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n";
        if self.socket.write_all(head.as_bytes()).await.is_err() {
            return self.closed(index, arrived);
        }
        let role = chunk(
            json!({"role": "assistant", "content": "", "refusal": null}),
            None,
        );
        if !self.event(&role).await {
            return self.closed(index, arrived);
        }
        let pieces = generation
            .reasoning
            .iter()
            .map(|r| json!({"reasoning_content": r}))
            .chain(generation.content.iter().map(|c| json!({"content": c})));
        for delta in pieces {
            tokio::time::sleep(generation.every).await;
            if !self.event(&chunk(delta, None)).await {
                return self.closed(index, arrived);
            }
            self.seen.lock().unwrap()[index].pieces_sent += 1;
        }
        let Some(finish_reason) = generation.finish_reason else {
            // Stalled: nothing more, ever; wait for the client to give up and close.
            let mut byte = [0u8; 1];
            let _ =
                tokio::time::timeout(Duration::from_secs(60), self.socket.read(&mut byte)).await;
            return self.closed(index, arrived);
        };
        let last = chunk(json!({}), Some(finish_reason));
        if !self.event(&last).await {
            return self.closed(index, arrived);
        }
        if include_usage {
            let usage_chunk = json!({
                "id": "chatcmpl-fake",
                "object": "chat.completion.chunk",
                "created": 1_700_000_000,
                "model": "fake-stream-model",
                "system_fingerprint": "fp_fake",
                "choices": [],
                "usage": usage(generation)
            });
            if !self.event(&usage_chunk.to_string()).await {
                return self.closed(index, arrived);
            }
        }
        self.event("[DONE]").await && self.socket.write_all(b"0\r\n\r\n").await.is_ok()
    }

    /// Writes `data: {data}` and the blank line as one HTTP chunk.
    async fn event(&mut self, data: &str) -> bool {
        let event = format!("data: {data}\n\n");
        let framed = format!("{:x}\r\n{event}\r\n", event.len());
        self.socket.write_all(framed.as_bytes()).await.is_ok() && self.socket.flush().await.is_ok()
    }

    fn closed(&mut self, index: usize, arrived: Instant) -> bool {
        self.seen.lock().unwrap()[index].client_closed_after = Some(arrived.elapsed());
        self.changed.notify_waiters();
        false
    }
}

fn chunk(delta: Value, finish_reason: Option<&str>) -> String {
    json!({
        "id": "chatcmpl-fake",
        "object": "chat.completion.chunk",
        "created": 1_700_000_000,
        "model": "fake-stream-model",
        "system_fingerprint": "fp_fake",
        "choices": [{"index": 0, "delta": delta, "logprobs": null, "finish_reason": finish_reason}],
        "usage": null
    })
    .to_string()
}

/// One token per piece, as a server would count them.
fn usage(generation: &Generation) -> Value {
    let completion = (generation.reasoning.len() + generation.content.len()) as u64;
    json!({"prompt_tokens": 100, "completion_tokens": completion, "total_tokens": 100 + completion})
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
