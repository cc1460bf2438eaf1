//! The client against a fake model server that streams as the OpenAI API documents it: slow,
//! stalled and cut-off models, servers refusing `json_schema`, and reasoning models.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::time::Instant;

use super::sse_server::{FakeModelServer, Generation, Reply};
use super::{GOOD_ANSWER, PARTIAL_ANSWER, conversation, truncated};
use crate::egress::EgressPolicy;
use crate::llm::client::format::FormatLevel;
use crate::llm::client::{Completion, LlmClient, LlmError, TimeLimit};
use crate::llm::{LlmSettings, parse_answer};

fn settings(server: &FakeModelServer, model: &str) -> LlmSettings {
    LlmSettings {
        base_url: server.base_url.clone(),
        model: model.to_owned(),
        idle_timeout_secs: 1,
        call_deadline_secs: 20,
        ..LlmSettings::default()
    }
}

fn client(settings: LlmSettings) -> LlmClient {
    LlmClient::new(settings, EgressPolicy::allow_all()).unwrap()
}

/// One call of a new client with `settings` on the test conversation.
async fn ask(settings: LlmSettings) -> Result<Completion, LlmError> {
    client(settings).complete(&conversation()).await
}

/// A fake server whose model generates `generation` for every request, and what one call
/// with the test settings, changed by `adjust`, answered.
async fn ask_model(
    generation: Generation,
    adjust: impl FnOnce(&mut LlmSettings),
) -> (FakeModelServer, Result<Completion, LlmError>) {
    let server = FakeModelServer::start(move |_, _| Reply::Generate(generation.clone())).await;
    let mut settings = settings(&server, "gpt-4o-mini");
    adjust(&mut settings);
    let answer = ask(settings).await;
    (server, answer)
}

/// What ended a call that timed out: the clock, the chunks of text read before, and how long
/// it took.
fn timed_out(err: &LlmError) -> (TimeLimit, u64, Duration) {
    let LlmError::TimedOut {
        limit,
        chunks,
        elapsed,
        ..
    } = err
    else {
        panic!("expected a timeout, got {err}");
    };
    (*limit, *chunks, *elapsed)
}

/// The server's 400 as OpenAI words a refused request: `message` about `param`.
fn bad_request(message: &str, param: &str, code: Value) -> Reply {
    Reply::Refuse {
        status: 400,
        body: json!({"error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}}),
    }
}

/// The answer in about 40 pieces, one every 150 ms: about 6 s in all, far past a short total
/// timeout, while no gap comes near the 1 s idle timeout.
fn slow_model() -> Generation {
    let pieces = 40;
    Generation::of(
        GOOD_ANSWER,
        GOOD_ANSWER.len().div_ceil(pieces),
        Duration::from_millis(150),
    )
}

#[tokio::test]
async fn a_slow_model_that_keeps_producing_is_read_to_the_end() {
    let server = FakeModelServer::start(|_, _| Reply::Generate(slow_model())).await;
    let started = Instant::now();
    let completion = ask(settings(&server, "gpt-4o-mini")).await.unwrap();
    let took = started.elapsed();

    assert_eq!(completion.content, GOOD_ANSWER);
    assert!(parse_answer(&completion.content).is_ok());
    assert!(took >= Duration::from_secs(5), "{took:?}");
    // The usage chunk, after the finish_reason chunk, is read.
    let pieces = slow_model().content.len() as u64;
    assert!(pieces >= 38, "{pieces}");
    assert_eq!(completion.usage.completion_tokens, pieces);
    assert_eq!(completion.usage.prompt_tokens, 100);
    assert_eq!(completion.model, "fake-stream-model");
    let stats = &completion.stats;
    assert!(stats.streamed);
    assert_eq!(stats.chunks, pieces);
    assert_eq!(stats.finish_reason.as_deref(), Some("stop"));
    assert_eq!(stats.response_format, "json_schema");
    assert!(stats.elapsed_ms >= 5_000, "{stats:?}");
    let first = stats.first_token_ms.unwrap();
    assert!((100..1_000).contains(&first), "{stats:?}");
    eprintln!(
        "slow model: {took:?} in all, first text after {first} ms, {} chunks",
        stats.chunks
    );

    // The request streamed, asked for the usage chunk, and for the answer's schema.
    let bodies = server.bodies();
    assert_eq!(bodies.len(), 1);
    assert_eq!(bodies[0]["stream"], true);
    assert_eq!(bodies[0]["stream_options"], json!({"include_usage": true}));
    assert_eq!(bodies[0]["response_format"]["type"], "json_schema");
    assert_eq!(bodies[0]["response_format"]["json_schema"]["strict"], true);
    assert_eq!(
        bodies[0]["response_format"]["json_schema"]["schema"]["properties"]["edits"]["maxItems"],
        32
    );
}

/// The same slow model read whole (`stream = false`) cannot be told from a dead one: only the
/// call deadline ends the wait, as the single total timeout used to.
#[tokio::test]
async fn without_streaming_the_same_slow_model_only_meets_the_deadline() {
    let (server, answer) = ask_model(slow_model(), |s| {
        s.stream = false;
        s.call_deadline_secs = 2;
    })
    .await;
    let err = answer.unwrap_err();
    let (limit, _, elapsed) = timed_out(&err);
    assert_eq!(limit, TimeLimit::CallDeadline);
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert!(!err.is_transient());
    let message = err.to_string();
    assert!(message.contains("call_deadline_secs (2s)"), "{message}");
    assert!(message.contains("stream = false"), "{message}");
    assert!(server.bodies()[0].get("stream").is_none());
}

#[tokio::test]
async fn a_stalled_model_hits_the_idle_timeout_and_the_connection_is_closed() {
    let server = FakeModelServer::start(|_, _| {
        let mut generation = Generation::of(GOOD_ANSWER, 10, Duration::from_millis(50));
        generation.content.truncate(5);
        generation.finish_reason = None;
        Reply::Generate(generation)
    })
    .await;
    let started = Instant::now();
    let err = ask(settings(&server, "gpt-4o-mini")).await.unwrap_err();
    let took = started.elapsed();

    let (limit, chunks, _) = timed_out(&err);
    assert_eq!(limit, TimeLimit::Idle);
    assert_eq!(chunks, 5);
    assert!(!err.is_transient(), "never retried in place");
    // Five pieces in 250 ms, then one idle second; the 20 s deadline is nowhere near.
    assert!(
        took >= Duration::from_secs(1) && took < Duration::from_secs(3),
        "{took:?}"
    );
    let message = err.to_string();
    assert!(message.contains("idle_timeout_secs"), "{message}");
    assert!(message.contains("5 chunk(s) of text"), "{message}");
    assert!(message.contains("connection closed"), "{message}");

    // The server saw the client hang up while it was still "generating".
    let closed = server
        .client_closed(0, Duration::from_secs(5))
        .await
        .expect("the client closed the connection");
    assert!(closed < Duration::from_secs(3), "{closed:?}");
    assert_eq!(server.seen()[0].pieces_sent, 5);
    eprintln!("stalled model: timed out after {took:?}, server saw the close after {closed:?}");
}

#[tokio::test]
async fn the_call_deadline_ends_a_model_that_would_go_on_and_closes_the_connection() {
    let mut generation = slow_model();
    // Far more than the deadline allows: 200 pieces, 30 s.
    generation.content = vec!["x".to_owned(); 200];
    let (server, answer) = ask_model(generation, |s| s.call_deadline_secs = 2).await;
    let err = answer.unwrap_err();
    let (limit, chunks, _) = timed_out(&err);
    assert_eq!(limit, TimeLimit::CallDeadline);
    // About 13 pieces in 2 s (fewer on a loaded machine), and none after the deadline.
    assert!((3..=14).contains(&chunks), "{chunks}");
    assert!(err.to_string().contains("call_deadline_secs (2s)"), "{err}");
    let closed = server
        .client_closed(0, Duration::from_secs(5))
        .await
        .expect("the client closed the connection");
    assert!(closed < Duration::from_secs(3), "{closed:?}");
    assert!(server.seen()[0].pieces_sent < 20);
}

#[tokio::test]
async fn the_job_budget_is_shared_by_the_calls_of_a_job() {
    let server = FakeModelServer::start(|_, _| Reply::Generate(slow_model())).await;
    let client = client(LlmSettings {
        job_budget_secs: 8,
        ..settings(&server, "gpt-4o-mini")
    });
    let budget = client.job_budget();
    // The first call (about 6 s) fits; the second has 2 s left and is cut there.
    client
        .complete_within(&conversation(), &budget)
        .await
        .unwrap();
    let err = client
        .complete_within(&conversation(), &budget)
        .await
        .unwrap_err();
    let (limit, _, elapsed) = timed_out(&err);
    assert_eq!(limit, TimeLimit::JobBudget);
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert!(err.to_string().contains("job_budget_secs, 8s"), "{err}");
    // Nothing left: the next call is refused before any request.
    tokio::time::sleep(budget.remaining()).await;
    let err = client
        .complete_within(&conversation(), &budget)
        .await
        .unwrap_err();
    assert!(matches!(
        err,
        LlmError::TimedOut {
            limit: TimeLimit::JobBudget,
            ..
        }
    ));
    assert_eq!(server.bodies().len(), 2);
}

#[tokio::test]
async fn a_stream_cut_off_at_the_token_limit_is_a_repairable_truncation() {
    let mut generation = Generation::of(PARTIAL_ANSWER, 8, Duration::from_millis(5));
    generation.finish_reason = Some("length");
    let (_, answer) = ask_model(generation, |s| s.max_completion_tokens = 7).await;
    let err = answer.unwrap_err();
    let (completion, max_tokens) = truncated(&err);
    assert_eq!(max_tokens, 7);
    assert_eq!(completion.stats.finish_reason.as_deref(), Some("length"));
    assert_eq!(completion.usage.completion_tokens, 6);
    assert!(err.to_string().contains("cut off"));
}

#[tokio::test]
async fn streamed_text_beyond_max_response_bytes_is_refused() {
    let generation = Generation::of(&"y".repeat(4000), 100, Duration::from_millis(1));
    let (server, answer) = ask_model(generation, |s| s.max_response_bytes = 1000).await;
    let err = answer.unwrap_err();
    assert!(matches!(err, LlmError::Permanent(_)), "{err}");
    assert!(
        err.to_string().contains("max_response_bytes (1000 bytes)"),
        "{err}"
    );
    assert!(server.seen()[0].pieces_sent < 40);
}

fn refuses_json_schema(body: &Value, _: usize) -> Reply {
    if body["response_format"]["type"] == "json_schema" {
        // vLLM-style: the request validation names the field and the value.
        return Reply::Refuse {
            status: 400,
            body: json!({"object": "error", "message": "response_format.type: 'json_schema' is not supported by this server; expected 'json_object' or 'text'", "type": "BadRequestError", "param": null, "code": 400}),
        };
    }
    Reply::Generate(Generation::of(GOOD_ANSWER, 20, Duration::from_millis(5)))
}

#[tokio::test]
async fn a_server_refusing_json_schema_gets_json_object_and_it_is_remembered() {
    let server = FakeModelServer::start(refuses_json_schema).await;
    let first = client(settings(&server, "gpt-4o-mini"));
    let completion = first.complete(&conversation()).await.unwrap();
    assert_eq!(completion.content, GOOD_ANSWER);
    assert_eq!(completion.stats.response_format, "json_object");
    let formats = |bodies: Vec<Value>| -> Vec<String> {
        bodies
            .iter()
            .map(|b| b["response_format"]["type"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(formats(server.bodies()), ["json_schema", "json_object"]);

    // The next calls of the same client (a worker's jobs) go straight to json_object.
    first.complete(&conversation()).await.unwrap();
    first.complete(&conversation()).await.unwrap();
    assert_eq!(
        formats(server.bodies()),
        ["json_schema", "json_object", "json_object", "json_object"]
    );
    assert_eq!(first.formats.current(), FormatLevel::JsonObject);
}

#[tokio::test]
async fn a_schema_refused_for_its_bounds_is_sent_without_them_then_json_object_then_nothing() {
    let server = FakeModelServer::start(|body, _| {
        let format = &body["response_format"];
        let refusal = |message: &str| bad_request(message, "response_format", Value::Null);
        if format["type"] == "json_schema" && format.to_string().contains("maxLength") {
            return refusal(
                "Invalid schema for response_format 'remediation_answer': In context=('properties', 'explanation'), 'maxLength' is not permitted.",
            );
        }
        if format["type"] == "json_schema" || format["type"] == "json_object" {
            return refusal("This response_format type is unavailable now.");
        }
        Reply::Generate(Generation::of(GOOD_ANSWER, 20, Duration::from_millis(5)))
    })
    .await;
    let completion = ask(settings(&server, "gpt-4o-mini")).await.unwrap();
    assert_eq!(completion.stats.response_format, "none");
    let bodies = server.bodies();
    assert_eq!(bodies.len(), 4);
    assert!(
        bodies[0]["response_format"]
            .to_string()
            .contains("maxLength")
    );
    assert_eq!(bodies[1]["response_format"]["type"], "json_schema");
    assert!(
        !bodies[1]["response_format"]
            .to_string()
            .contains("maxLength")
    );
    assert_eq!(bodies[2]["response_format"], json!({"type": "json_object"}));
    assert!(bodies[3].get("response_format").is_none());
}

#[tokio::test]
async fn a_400_about_something_else_is_not_a_format_refusal() {
    let server = FakeModelServer::start(|_, _| {
        bad_request(
            "This model's maximum context length is 8192 tokens.",
            "messages",
            json!("context_length_exceeded"),
        )
    })
    .await;
    let err = ask(settings(&server, "gpt-4o-mini")).await.unwrap_err();
    assert!(matches!(err, LlmError::Permanent(_)), "{err}");
    assert!(err.to_string().contains("maximum context length"), "{err}");
    assert_eq!(server.bodies().len(), 1);
}

/// OpenAI's refusal of a parameter the model does not take (o-series: `temperature`).
fn unsupported_parameter(param: &str) -> Reply {
    let message = format!("Unsupported parameter: '{param}' is not supported with this model.");
    bad_request(&message, param, json!("unsupported_parameter"))
}

const THOUGHT: &str = "SECRET-CHAIN-OF-THOUGHT the user wants a bump; ";

/// An o-series style model: refuses `temperature` and `max_tokens` (as OpenAI's API does),
/// thinks aloud in `reasoning_content` before answering.
#[tokio::test]
async fn a_reasoning_model_gets_its_parameters_and_its_reasoning_is_never_the_answer() {
    let server = FakeModelServer::start(|body, _| {
        for refused in ["temperature", "max_tokens"] {
            if body.get(refused).is_some() {
                return unsupported_parameter(refused);
            }
        }
        let mut generation = Generation::of(GOOD_ANSWER, 30, Duration::from_millis(5));
        generation.reasoning = vec![THOUGHT.to_owned(); 20];
        Reply::Generate(generation)
    })
    .await;
    let completion = ask(LlmSettings {
        reasoning_effort: "low".to_owned(),
        ..settings(&server, "o4-mini")
    })
    .await
    .unwrap();

    assert_eq!(completion.content, GOOD_ANSWER);
    assert_eq!(
        completion.stats.reasoning_chars,
        20 * THOUGHT.chars().count() as u64
    );
    let bodies = server.bodies();
    assert_eq!(bodies.len(), 1, "no refusal: {bodies:?}");
    let body = &bodies[0];
    assert!(body.get("temperature").is_none(), "{body}");
    assert!(body.get("max_tokens").is_none(), "{body}");
    assert_eq!(body["max_completion_tokens"], 4096);
    assert_eq!(body["reasoning_effort"], "low");
    // That it is never logged either is checked on a whole job's logs in
    // tests/secret_hygiene.rs (a log capture here would race with the other tests' threads).
}

/// The same refusal, against a model nobody said reasons, fails with a hint to say so.
#[tokio::test]
async fn a_refused_temperature_points_at_the_reasoning_setting() {
    let server = FakeModelServer::start(|_, _| unsupported_parameter("temperature")).await;
    let err = ask(settings(&server, "my-private-thinker"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("llm reasoning = true"), "{err}");
    assert!(server.bodies()[0].get("temperature").is_some());
}

#[tokio::test]
async fn thinking_left_in_the_content_is_not_the_answer() {
    let server = FakeModelServer::start(|_, _| {
        let text = format!("<think>{THOUGHT}</think>\n{GOOD_ANSWER}");
        Reply::Generate(Generation::of(&text, 16, Duration::from_millis(2)))
    })
    .await;
    let completion = ask(settings(&server, "deepseek-r1:7b")).await.unwrap();
    assert_eq!(completion.content, GOOD_ANSWER);
    assert_eq!(
        completion.stats.reasoning_chars,
        THOUGHT.chars().count() as u64
    );
}

#[tokio::test]
async fn without_streaming_the_answer_is_read_whole() {
    let generation = Generation::of(GOOD_ANSWER, 50, Duration::from_millis(1));
    let (server, answer) = ask_model(generation, |s| s.stream = false).await;
    let completion = answer.unwrap();
    assert_eq!(completion.content, GOOD_ANSWER);
    assert!(!completion.stats.streamed);
    assert_eq!(
        completion.usage.completion_tokens,
        GOOD_ANSWER.len().div_ceil(50) as u64
    );
    let body = &server.bodies()[0];
    assert!(body.get("stream").is_none() && body.get("stream_options").is_none());
}
