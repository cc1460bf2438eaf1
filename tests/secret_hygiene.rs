//! Invariant 6, checked where secrets could end up: whole jobs run with distinctive secret
//! values (forge token, LLM key, JWT signing secret), then every place the service writes to is
//! searched for them: the logs of the intake and the worker (captured by this binary's own
//! tracing subscriber), a `pg_dump` of the database, the operation as the API returns it, every
//! file left in the scratch directory, the pushed repository, and every request the fake LLM,
//! the fake GitHub and the git server received (each may see only its own credential, and only
//! in its header).

mod support;

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use remediator::config::PatcherChoice;
use remediator::pr_text::branch_name;
use secrecy::SecretString;
use serde_json::{Value, json};
use support::remediation::{World, WorldOptions};
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const FORGE_TOKEN: &str = "ghp_HYGIENE_CANARY_1234";
const LLM_KEY: &str = "sk-HYGIENE-CANARY-5678";
const JWT_SECRET: &str = "jwt-HYGIENE-CANARY-9012";
/// What a reasoning model thinks aloud (`reasoning_content`): never kept, logged or shown.
const REASONING: &str = "REASONING-HYGIENE-CANARY-3456";
const CANARIES: [(&str, &str); 4] = [
    ("forge token", FORGE_TOKEN),
    ("LLM key", LLM_KEY),
    ("JWT secret", JWT_SECRET),
    ("model's reasoning text", REASONING),
];
const END: Duration = Duration::from_secs(90);

// ---- captured logs -----------------------------------------------------------------------

fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static BUFFER: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUFFER.get_or_init(|| Arc::new(Mutex::new(Vec::new())))
}

/// Where the subscriber writes: appends to the shared buffer.
struct Capture(Arc<Mutex<Vec<u8>>>);

impl Write for Capture {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut buffer) = self.0.lock() {
            buffer.extend_from_slice(bytes);
        }
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Installs, once per test binary and before any app starts (whose own `init_for_tests` then
/// finds a subscriber in place), a subscriber that writes everything at debug level (trace
/// for our crate) into the buffer: more than production logs, so more chances to leak.
fn capture_logs() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let buffer = log_buffer().clone();
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "debug,remediator=trace,lapin=info",
            ))
            .with_ansi(false)
            .with_writer(move || Capture(buffer.clone()))
            .try_init()
            .expect("this test binary installs the only subscriber");
    });
}

fn captured_logs() -> String {
    String::from_utf8_lossy(&log_buffer().lock().unwrap()).into_owned()
}

// ---- the search --------------------------------------------------------------------------

fn assert_clean(haystack: &[u8], place: &str) {
    let text = String::from_utf8_lossy(haystack);
    for (name, canary) in CANARIES {
        assert!(
            !text.contains(canary),
            "the {name} appears in {place}: ...{}...",
            excerpt(&text, canary)
        );
    }
}

fn excerpt(text: &str, needle: &str) -> String {
    let at = text.find(needle).unwrap_or(0);
    let start = text[..at]
        .char_indices()
        .rev()
        .nth(120)
        .map_or(0, |(i, _)| i);
    text[start..].chars().take(240 + needle.len()).collect()
}

/// Every regular file under `dir`, recursively.
fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let entry = entry.unwrap();
            let kind = entry.file_type().unwrap();
            if kind.is_dir() {
                pending.push(entry.path());
            } else if kind.is_file() {
                found.push(entry.path());
            }
        }
    }
    found
}

fn pg_dump(world: &World) -> Vec<u8> {
    let url = support::app::database_url(&world.app.settings);
    let output = std::process::Command::new("pg_dump")
        .arg("--no-owner")
        .arg(&url)
        .output()
        .expect("run pg_dump (the PostgreSQL client tools are installed with Postgres)");
    assert!(
        output.status.success(),
        "pg_dump failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

/// Searches everything the service wrote or sent during the run.
async fn search_everywhere(world: &World, llm: &MockServer, operation: &Value) {
    let id = operation["id"].as_str().unwrap();

    // The operation as the API shows it, one and as a list.
    assert_clean(operation.to_string().as_bytes(), "the operation");
    let token = world.app.full_token(world.catalog.org);
    let (_, list) = world.app.get_json(Some(&token), "/v1/operations").await;
    assert!(list.to_string().contains(id), "{list}");
    assert_clean(list.to_string().as_bytes(), "the operation list");

    // Every row of every table, the history of attempts included.
    let dump = pg_dump(world);
    let dump_text = String::from_utf8_lossy(&dump);
    assert!(
        dump_text.contains(id) && dump_text.contains("operation_events"),
        "the dump holds the data"
    );
    assert_clean(&dump, "the pg_dump of the database");

    // Whatever is left on disk where clones are made, .git/config of any clone included.
    for file in files_under(world.scratch.path()) {
        assert_clean(
            &std::fs::read(&file).unwrap(),
            &format!("scratch file {}", file.display()),
        );
    }

    // What was pushed: commits, trees and the server repository's config.
    let history = world.git.git("acme/web", &["log", "--all", "-p"]);
    assert_clean(history.as_bytes(), "the pushed history");
    let config = std::fs::read(world.git.repo_path("acme/web").join("config")).unwrap();
    assert_clean(&config, "the server repository's config");

    // The git server: credentials only ever in the Authorization header, never in a URL.
    let requests = world.git.request_log();
    assert!(!requests.is_empty(), "git talked to the server");
    for request in &requests {
        assert_clean(request.as_bytes(), &format!("git request line {request}"));
    }

    // The LLM sees its key in the Authorization header and nothing else of ours.
    let llm_requests = llm.received_requests().await.unwrap_or_default();
    assert!(!llm_requests.is_empty(), "the LLM was asked");
    for request in &llm_requests {
        assert_clean(&request.body, "an LLM request body");
        assert_clean(request.url.as_str().as_bytes(), "an LLM request URL");
        for (name, value) in request.headers.iter() {
            let value = value.to_str().unwrap_or_default();
            if name.as_str() == "authorization" {
                assert_eq!(value, format!("Bearer {LLM_KEY}"));
            } else {
                assert_clean(value.as_bytes(), &format!("LLM header {name}"));
            }
        }
    }

    // GitHub sees its token in the Authorization header and nothing else of ours.
    let forge_requests = world.github.received_requests().await.unwrap_or_default();
    assert!(!forge_requests.is_empty(), "GitHub was called");
    for request in &forge_requests {
        assert_clean(&request.body, "a GitHub request body");
        assert_clean(request.url.as_str().as_bytes(), "a GitHub request URL");
        for (name, value) in request.headers.iter() {
            let value = value.to_str().unwrap_or_default();
            if name.as_str() == "authorization" {
                assert_eq!(value, format!("Bearer {FORGE_TOKEN}"));
            } else {
                assert_clean(value.as_bytes(), &format!("GitHub header {name}"));
            }
        }
    }

    // The logs of both sides of the job were captured, and hold no secret.
    let logs = captured_logs();
    assert!(
        logs.contains("remediation accepted"),
        "intake logs captured"
    );
    assert!(logs.contains("step started"), "worker logs captured");
    assert!(logs.contains(id), "the job's lines name its operation");
    assert_clean(logs.as_bytes(), "the logs");
}

// ---- the world ---------------------------------------------------------------------------

fn chat_completion(content: &str) -> ResponseTemplate {
    ResponseTemplate::new(200).set_body_json(json!({
        "id": "chatcmpl-hygiene",
        "object": "chat.completion",
        "created": 1_700_000_000,
        "model": "fake-model",
        "choices": [{
            "index": 0,
            "message": {
                "role": "assistant",
                "content": content,
                "reasoning_content": format!("The user wants a bump. {REASONING}")
            },
            "finish_reason": "stop"
        }],
        "usage": {"prompt_tokens": 700, "completion_tokens": 60, "total_tokens": 760}
    }))
}

fn good_answer(explanation: &str) -> String {
    json!({
        "edits": [{
            "path": "package.json",
            "search": "\"lodash\": \"^4.17.20\"",
            "replace": "\"lodash\": \"^4.17.21\""
        }],
        "confidence": 0.9,
        "explanation": explanation
    })
    .to_string()
}

async fn world_with_llm(llm: &MockServer) -> World {
    capture_logs();
    let world = World::start(WorldOptions {
        patcher: PatcherChoice::Llm,
        llm_base_url: Some(format!("{}/v1", llm.uri())),
        forge_token: FORGE_TOKEN,
        llm_api_key: LLM_KEY,
        adjust: Some(Box::new(|s| {
            s.auth.jwt_secret = Some(SecretString::from(JWT_SECRET.to_owned()));
        })),
        ..Default::default()
    })
    .await;
    // The settings as an operator would log them: every secret redacted.
    tracing::info!(settings = ?world.app.settings, "settings of the hygiene run");
    world
}

fn pr(number: u64) -> Value {
    json!({"number": number, "html_url": format!("https://github.example/acme/web/pull/{number}"), "state": "open"})
}

#[tokio::test]
async fn a_full_llm_job_leaves_no_secret_anywhere() {
    let llm = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(chat_completion(&good_answer(
            "Raises lodash to ^4.17.21, the first release without the template injection.",
        )))
        .mount(&llm)
        .await;
    let world = world_with_llm(&llm).await;
    Mock::given(method("GET"))
        .and(path("/repos/acme/web/pulls"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&world.github)
        .await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/web/pulls"))
        .respond_with(ResponseTemplate::new(201).set_body_json(pr(7)))
        .mount(&world.github)
        .await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/web/issues/7/labels"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&world.github)
        .await;

    let id = world.request(world.catalog.affected).await;
    let op = world.wait_for_end(id, END).await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op}");
    assert_eq!(op["output"]["patcher"], "llm", "{op}");
    assert_eq!(op["output"]["pr_number"], 7, "{op}");
    assert!(
        world
            .file_on_branch(&branch_name("npm", "lodash"), "package.json")
            .is_some_and(|m| m.contains("^4.17.21"))
    );
    search_everywhere(&world, &llm, &op).await;
    world.stop().await;
}

/// Endpoints that echo a secret back (the LLM repeating its key in the explanation, GitHub
/// quoting the token in an error) must not get it stored, logged or put into a pull request.
#[tokio::test]
async fn secrets_echoed_back_by_the_llm_or_the_forge_are_not_kept() {
    let llm = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(chat_completion(&good_answer(&format!(
            "Raises lodash to ^4.17.21. (Authenticated with {LLM_KEY}.)"
        ))))
        .mount(&llm)
        .await;
    let world = world_with_llm(&llm).await;
    Mock::given(method("GET"))
        .and(path("/repos/acme/web/pulls"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&world.github)
        .await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/web/pulls"))
        .respond_with(ResponseTemplate::new(422).set_body_json(json!({
            "message": format!("Validation Failed for token {FORGE_TOKEN}"),
            "errors": [{"resource": "PullRequest", "code": "custom",
                        "message": format!("token {FORGE_TOKEN} may not open pull requests")}]
        })))
        .mount(&world.github)
        .await;

    let id = world.request(world.catalog.affected).await;
    let op = world.wait_for_end(id, END).await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_FAILED", "{op}");
    let error = op["error_message"].as_str().unwrap();
    assert!(
        error.contains("GitHub refused") && error.contains("[REDACTED]"),
        "the forge's message is quoted without the token: {error}"
    );
    // The pull request GitHub was asked for carries the explanation without the key.
    let created: Vec<Value> = world
        .github
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.method.as_str() == "POST" && r.url.path() == "/repos/acme/web/pulls")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect();
    assert_eq!(created.len(), 1);
    let body = created[0]["body"].as_str().unwrap();
    // (Markdown-escaped in the body: `\[REDACTED\]`.)
    assert!(
        body.contains("Authenticated with") && body.contains("REDACTED"),
        "{body}"
    );
    search_everywhere(&world, &llm, &op).await;
    world.stop().await;
}
