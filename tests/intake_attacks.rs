//! What an attacker or a careless client tries against a running intake (issue 15), one test
//! per attack, each asserting the refusal over real HTTP against real Postgres: made-up
//! methods and paths in metric labels, NUL and control characters in tokens and parameters, a
//! cancel whose history cannot be written, repositories the worker would refuse, slow or
//! silent connections, oversized declarations, two credentials, error responses off the
//! contract, and rate-limit refusals flooding the logs.
//!
//! Deadlines are set to one second where a test needs one to pass; the tests never assert how
//! long anything took, only that the server ended it (each wait has a generous failsafe so a
//! server that never ends it fails the test instead of hanging it).

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use remediator::config::Settings;
use remediator::db::schema::{operation_events, operations, projects};
use serde_json::{Value, json};
use support::app::{Catalog, TestApp, seed_catalog, test_settings};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use uuid::Uuid;

const REPO: &str = "https://github.com/acme/web.git";
/// How long a test waits for the server to end something before it calls it a failure.
const FAILSAFE: Duration = Duration::from_secs(30);

// ---- captured logs (for the rate-limit test) ---------------------------------------------

fn log_buffer() -> &'static Arc<Mutex<Vec<u8>>> {
    static BUFFER: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    BUFFER.get_or_init(|| Arc::new(Mutex::new(Vec::new())))
}

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

/// Installs, once per test binary and before any app starts, a subscriber writing everything
/// of ours at debug level into a buffer, so a test can see at which level a line was logged.
fn capture_logs() {
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        let buffer = log_buffer().clone();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new(
                "info,remediator=debug,lapin=warn",
            ))
            .with_ansi(false)
            .with_writer(move || Capture(buffer.clone()))
            .try_init();
    });
}

fn captured_logs() -> String {
    String::from_utf8_lossy(&log_buffer().lock().unwrap()).into_owned()
}

// ---- helpers -----------------------------------------------------------------------------

async fn spawn(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    capture_logs();
    let mut settings = test_settings().await;
    settings.relay.enabled = false;
    adjust(&mut settings);
    TestApp::spawn_with(settings).await
}

async fn spawn_with_catalog() -> (TestApp, Catalog) {
    let app = spawn(|_| {}).await;
    let c = seed_catalog(&app, REPO).await;
    (app, c)
}

fn address(app: &TestApp) -> String {
    app.base_url.trim_start_matches("http://").to_owned()
}

/// Reads until the server closes the connection (or the failsafe); returns what it sent and
/// whether it closed.
async fn read_until_closed(stream: &mut TcpStream) -> (String, bool) {
    let mut received = Vec::new();
    let mut buffer = [0u8; 8192];
    let closed = tokio::time::timeout(FAILSAFE, async {
        loop {
            match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buffer[..n]),
            }
        }
    })
    .await
    .is_ok();
    (String::from_utf8_lossy(&received).into_owned(), closed)
}

/// The JSON body of a raw HTTP/1.1 response.
fn body_of(response: &str) -> Value {
    let body = response.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    serde_json::from_str(body).unwrap_or(Value::Null)
}

fn assert_contract(body: &Value, code: i64, context: &str) {
    assert_eq!(body["code"], code, "{context}: {body}");
    assert!(body["message"].is_string(), "{context}: {body}");
    assert!(body["details"].is_array(), "{context}: {body}");
}

async fn metrics_text(app: &TestApp) -> String {
    app.http
        .get(format!("{}/metrics", app.base_url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn trigger(app: &TestApp, token: &str, assessment: Uuid) -> (u16, Value) {
    app.post_remediation(
        Some(token),
        &json!({"assessment_id": assessment}).to_string(),
    )
    .await
}

// ---- 1. metrics labels -------------------------------------------------------------------

#[tokio::test]
async fn attack_made_up_methods_and_paths_create_no_metric_series() {
    let app = spawn(|_| {}).await;
    let marker = format!("XCARD{}", Uuid::new_v4().simple());
    let long = format!("{marker}{}", "M".repeat(4000));
    for method in [format!("{marker}A"), format!("{marker}B"), long] {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        for path in ["/healthz", &format!("/{marker}/nothing/here")] {
            let response = app
                .http
                .request(method.clone(), format!("{}{path}", app.base_url))
                .send()
                .await
                .unwrap();
            assert!(response.status().is_client_error(), "{}", response.status());
        }
    }
    let metrics = metrics_text(&app).await;
    assert!(
        !metrics.contains(&marker),
        "a client-chosen method or path became a label"
    );
    let requests: Vec<&str> = metrics
        .lines()
        .filter(|l| l.starts_with("remediator_http_requests_total{"))
        .collect();
    assert!(
        requests
            .iter()
            .any(|l| l.contains(r#"method="other""#) && l.contains(r#"route="unmatched""#)),
        "{requests:#?}"
    );
    assert!(
        requests
            .iter()
            .any(|l| l.contains(r#"method="other""#) && l.contains(r#"route="/healthz""#)),
        "{requests:#?}"
    );
    for line in &requests {
        let status = line
            .split(r#"status=""#)
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .unwrap();
        assert!(
            ["1xx", "2xx", "3xx", "4xx", "5xx"].contains(&status),
            "status is a class: {line}"
        );
    }
    app.stop().await;
}

// ---- 2. the trigger refuses a repository the worker would refuse -------------------------

#[tokio::test]
async fn attack_a_stored_hostile_repository_is_refused_by_the_trigger_with_code_9() {
    // The default network policy (the test settings allow loopback for the fakes).
    let app = spawn(|s| s.security.allow_private_networks = false).await;
    let c = seed_catalog(&app, REPO).await;
    let token = app.full_token(c.org);
    // Rows as an older import (or a hand-edited database) may have left them: the intake
    // checks again rather than queueing a job that must fail.
    for (url, branch, reason) in [
        (
            "https://user:s3cretpass@github.com/acme/web.git",
            "main",
            "credentials",
        ),
        (
            "https://ghp_0123456789abcdef@github.com/acme/web.git",
            "main",
            "credentials",
        ),
        ("file:///etc", "main", "git.allow_file"),
        (
            "http://169.254.169.254/latest/meta-data",
            "main",
            "git.allow_http",
        ),
        (
            "https://169.254.169.254/latest/meta-data",
            "main",
            "link-local",
        ),
        (
            "ssh://-oProxyCommand=touch/acme/web",
            "main",
            "must not start with '-'",
        ),
        ("--upload-pack=touch /tmp/pwned", "main", "repository_url"),
        ("ext::sh -c touch% /tmp/pwned", "main", "repository_url"),
        (" https://github.com/acme/web.git", "main", "whitespace"),
        (
            "https://github.com/acme/web.git",
            "--upload-pack=x",
            "default_branch",
        ),
        (
            "https://github.com/acme/web.git",
            "ma\r\nin",
            "default_branch",
        ),
    ] {
        let mut conn = app.pool.get().await.unwrap();
        diesel::update(projects::table.find(c.project))
            .set((
                projects::repository_url.eq(url),
                projects::default_branch.eq(branch),
            ))
            .execute(&mut conn)
            .await
            .unwrap();
        let (status, body) = trigger(&app, &token, c.affected).await;
        assert_eq!(status, 400, "{url:?} {branch:?}: {body}");
        assert_contract(&body, 9, url);
        let message = body.to_string();
        assert!(message.contains(reason), "{url:?}: {message}");
        for secret in ["s3cretpass", "ghp_0123", "upload-pack", "ProxyCommand"] {
            assert!(!message.contains(secret), "echoed: {message}");
        }
    }
    let mut conn = app.pool.get().await.unwrap();
    let created: i64 = operations::table
        .count()
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(created, 0, "no job was queued for any of them");
    app.stop().await;
}

// ---- 3. cancel ---------------------------------------------------------------------------

async fn pending_operation(app: &TestApp, c: &Catalog) -> Uuid {
    let (status, body) = trigger(app, &app.full_token(c.org), c.affected).await;
    assert_eq!(status, 200, "{body}");
    body["operation_id"].as_str().unwrap().parse().unwrap()
}

async fn status_and_events(app: &TestApp, id: Uuid) -> (String, Vec<Option<String>>) {
    let mut conn = app.pool.get().await.unwrap();
    let status = operations::table
        .find(id)
        .select(operations::status)
        .first(&mut conn)
        .await
        .unwrap();
    let messages = operation_events::table
        .filter(operation_events::operation_id.eq(id))
        .select(operation_events::message)
        .load(&mut conn)
        .await
        .unwrap();
    (status, messages)
}

async fn cancel(app: &TestApp, token: &str, id: Uuid) -> (u16, Value) {
    let response = app
        .http
        .post(format!("{}/v1/operations/{id}/cancel", app.base_url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn attack_a_nul_in_the_token_subject_is_refused_before_anything_is_written() {
    let (app, c) = spawn_with_catalog().await;
    let id = pending_operation(&app, &c).await;
    let (_, events_before) = status_and_events(&app, id).await;
    for subject in ["evil\0user", "line\r\nforged: entry", "bell\u{7}"] {
        let token = remediator::api::auth::mint_token(
            &app.settings.auth,
            c.org.into(),
            subject,
            &["remediations:write".into(), "operations:read".into()],
            Duration::from_secs(600),
        )
        .unwrap();
        let (status, body) = cancel(&app, &token, id).await;
        assert_eq!(status, 401, "{subject:?}: {body}");
        assert_contract(&body, 16, subject);
        assert!(
            body["message"].as_str().unwrap().contains("`sub`"),
            "{body}"
        );
        let (status, body) = trigger(&app, &token, c.affected).await;
        assert_eq!((status, body["code"].as_i64()), (401, Some(16)), "{body}");
    }
    let (status, events) = status_and_events(&app, id).await;
    assert_eq!(status, "ASYNC_OPERATION_STATUS_PENDING");
    assert_eq!(events, events_before, "no event was written");
    app.stop().await;
}

#[tokio::test]
async fn attack_cancel_whose_event_cannot_be_written_changes_nothing() {
    let (app, c) = spawn_with_catalog().await;
    let id = pending_operation(&app, &c).await;
    let (_, events_before) = status_and_events(&app, id).await;
    // Whatever makes the "cancelled by" event fail (here the database refuses every new
    // event), the status change must roll back with it.
    let mut conn = app.pool.get().await.unwrap();
    for statement in [
        "CREATE FUNCTION refuse_events() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'events refused by the test'; END $$",
        "CREATE TRIGGER refuse_events BEFORE INSERT ON operation_events \
         FOR EACH ROW EXECUTE FUNCTION refuse_events()",
    ] {
        diesel::sql_query(statement)
            .execute(&mut conn)
            .await
            .unwrap();
    }
    let token = app.full_token(c.org);
    let (status, body) = cancel(&app, &token, id).await;
    assert_eq!(status, 500, "{body}");
    assert_contract(&body, 13, "cancel");
    let (status, events) = status_and_events(&app, id).await;
    assert_eq!(status, "ASYNC_OPERATION_STATUS_PENDING", "rolled back");
    assert_eq!(events, events_before);

    // Once events can be written again, the retry cancels, with its event.
    diesel::sql_query("DROP TRIGGER refuse_events ON operation_events")
        .execute(&mut conn)
        .await
        .unwrap();
    let (status, body) = cancel(&app, &token, id).await;
    assert_eq!(status, 200, "{body}");
    let (status, events) = status_and_events(&app, id).await;
    assert_eq!(status, "ASYNC_OPERATION_STATUS_CANCELLED");
    assert!(
        events
            .iter()
            .flatten()
            .any(|m| m.contains("cancelled by tester")),
        "{events:?}"
    );
    app.stop().await;
}

// ---- 4 and 9. query parameters -----------------------------------------------------------

#[tokio::test]
async fn attack_control_characters_in_query_parameters_are_400_naming_the_parameter() {
    let (app, c) = spawn_with_catalog().await;
    let token = app.full_token(c.org);
    let id = Uuid::new_v4();
    for (query, parameter) in [
        (
            format!("resource_type=%00&resource_id={id}"),
            "resource_type",
        ),
        (
            format!("resource_type=assess%00ment&resource_id={id}"),
            "resource_type",
        ),
        (
            "status=ASYNC_OPERATION_STATUS_PENDING%0d%0a".to_owned(),
            "status",
        ),
        ("pagination.page=%00".to_owned(), "pagination.page"),
        (
            "pagination.page_size=1%1b".to_owned(),
            "pagination.page_size",
        ),
        ("x%00y=1".to_owned(), "a query parameter name"),
    ] {
        let (status, body) = app
            .get_json(Some(&token), &format!("/v1/operations?{query}"))
            .await;
        assert_eq!(status, 400, "{query}: {body}");
        assert_contract(&body, 3, &query);
        assert!(
            body["message"].as_str().unwrap().starts_with(parameter),
            "{query}: {body}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn attack_an_empty_resource_type_is_refused_as_the_published_schema_says() {
    let (app, c) = spawn_with_catalog().await;
    let token = app.full_token(c.org);
    let (_, doc) = app.get_json(None, "/openapi.json").await;
    let parameters = doc["paths"]["/v1/operations"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let schema_of = |name: &str| {
        parameters
            .iter()
            .find(|p| p["name"] == name)
            .map(|p| p["schema"].clone())
            .unwrap_or(Value::Null)
    };
    // One exploded object parameter (`?resource_type=..&resource_id=..`), both or neither,
    // the type never empty: what the server enforces, so a fuzzer's valid request is accepted.
    let resource = schema_of("resource");
    assert_eq!(
        resource["required"],
        json!(["resource_type", "resource_id"]),
        "{parameters:#?}"
    );
    assert_eq!(resource["properties"]["resource_type"]["minLength"], 1);
    assert!(resource["properties"]["resource_type"]["pattern"].is_string());
    assert!(
        parameters
            .iter()
            .all(|p| p["name"] != "resource_type" && p["name"] != "resource_id"),
        "no lone parameter the server would refuse alone"
    );

    let (status, body) = app
        .get_json(
            Some(&token),
            &format!("/v1/operations?resource_type=&resource_id={}", c.affected),
        )
        .await;
    assert_eq!(status, 400, "{body}");
    assert_contract(&body, 3, "empty resource_type");
    assert!(body["message"].as_str().unwrap().contains("resource_type"));
    let (status, body) = app
        .get_json(
            Some(&token),
            &format!(
                "/v1/operations?resource_type=assessment&resource_id={}",
                c.affected
            ),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    app.stop().await;
}

// ---- 6. timeouts, declared lengths and the connection limit ------------------------------

async fn spawn_with_deadlines() -> (TestApp, Catalog) {
    let app = spawn(|s| {
        s.intake.header_read_timeout_secs = 1;
        s.intake.idle_timeout_secs = 1;
        s.intake.body_read_timeout_secs = 1;
    })
    .await;
    let c = seed_catalog(&app, REPO).await;
    (app, c)
}

#[tokio::test]
async fn attack_silent_and_idle_connections_are_closed() {
    let (app, _) = spawn_with_deadlines().await;
    // A connection that never sends anything.
    let mut silent = TcpStream::connect(address(&app)).await.unwrap();
    // A kept-alive connection after one answered request.
    let mut kept = TcpStream::connect(address(&app)).await.unwrap();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 1024];
    let n = kept.read(&mut first).await.unwrap();
    assert!(String::from_utf8_lossy(&first[..n]).starts_with("HTTP/1.1 200"));

    let (sent, closed) = read_until_closed(&mut silent).await;
    assert!(closed, "the silent connection is still open");
    assert!(sent.is_empty(), "{sent}");
    let (_, closed) = read_until_closed(&mut kept).await;
    assert!(closed, "the idle kept-alive connection is still open");
    app.stop().await;
}

#[tokio::test]
async fn attack_a_slowly_trickled_request_head_is_cut_off() {
    let (app, _) = spawn_with_deadlines().await;
    let mut slow = TcpStream::connect(address(&app)).await.unwrap();
    let head = b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
    // One byte every 200 ms: always active (so never idle), never done within the deadline.
    let trickle = async {
        for byte in head.iter() {
            if slow.write_all(&[*byte]).await.is_err() {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    };
    let cut_off = tokio::time::timeout(FAILSAFE, trickle).await;
    assert_eq!(
        cut_off,
        Ok(true),
        "the server let a trickled head through (or never ended it)"
    );
    app.stop().await;
}

#[tokio::test]
async fn attack_a_slow_body_is_answered_408_and_closed() {
    let (app, c) = spawn_with_deadlines().await;
    let token = app.full_token(c.org);
    let mut slow = TcpStream::connect(address(&app)).await.unwrap();
    let head = format!(
        "POST /v1/findings/auto-remediation HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ncontent-length: 100\r\n\r\n{{\"assessment_id\""
    );
    slow.write_all(head.as_bytes()).await.unwrap();
    let (response, closed) = read_until_closed(&mut slow).await;
    assert!(closed, "the slow body is still being waited for");
    assert!(response.starts_with("HTTP/1.1 408"), "{response}");
    assert_contract(&body_of(&response), 4, "slow body");
    app.stop().await;
}

#[tokio::test]
async fn attack_a_declared_length_over_the_limit_is_refused_before_reading() {
    let (app, c) = spawn_with_catalog().await;
    let token = app.full_token(c.org);
    for path in ["/v1/findings/auto-remediation", "/healthz", "/nothing"] {
        let mut stream = TcpStream::connect(address(&app)).await.unwrap();
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\
             content-type: application/json\r\ncontent-length: 10000000000\r\n\r\n{{"
        );
        stream.write_all(head.as_bytes()).await.unwrap();
        let (response, closed) = read_until_closed(&mut stream).await;
        assert!(closed, "{path}: still waiting for 10 GB");
        assert!(response.starts_with("HTTP/1.1 413"), "{path}: {response}");
        let body = body_of(&response);
        assert_contract(&body, 8, path);
        assert!(
            body["message"].as_str().unwrap().contains("16384"),
            "{body}"
        );
    }
    // A body over the limit without a declared length (chunked) is cut off the same way.
    let mut stream = TcpStream::connect(address(&app)).await.unwrap();
    let mut request = format!(
        "POST /v1/findings/auto-remediation HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {token}\r\n\
         content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n"
    );
    for _ in 0..6 {
        request.push_str(&format!("1000\r\n{}\r\n", " ".repeat(4096)));
    }
    request.push_str("0\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let (response, closed) = read_until_closed(&mut stream).await;
    assert!(closed);
    assert!(response.starts_with("HTTP/1.1 413"), "chunked: {response}");
    assert_contract(&body_of(&response), 8, "chunked");
    app.stop().await;
}

#[tokio::test]
async fn attack_connections_over_the_limit_are_answered_503_and_closed() {
    const LIMIT: usize = 3;
    let app = spawn(|s| s.intake.max_connections = LIMIT).await;
    // Kept-alive connections, each with an answered request, until one is refused. The test's
    // own HTTP client may hold one more (from waiting for the intake to start), so the refusal
    // comes after LIMIT - 1 or LIMIT of ours; never later.
    let mut held = Vec::new();
    let refused = loop {
        let mut stream = TcpStream::connect(address(&app)).await.unwrap();
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            .await
            .unwrap();
        let mut answer = [0u8; 1024];
        let n = stream.read(&mut answer).await.unwrap();
        let answer = String::from_utf8_lossy(&answer[..n]).into_owned();
        if answer.starts_with("HTTP/1.1 200") {
            held.push(stream);
            assert!(
                held.len() <= LIMIT,
                "more than {LIMIT} connections were served"
            );
            continue;
        }
        let (rest, closed) = read_until_closed(&mut stream).await;
        assert!(closed);
        break format!("{answer}{rest}");
    };
    assert!(
        held.len() >= LIMIT - 1,
        "refused below the limit: {}",
        held.len()
    );
    assert!(refused.starts_with("HTTP/1.1 503"), "{refused}");
    assert!(refused.to_ascii_lowercase().contains("retry-after: 1"));
    assert_contract(&body_of(&refused), 14, "over the limit");
    assert!(
        metrics_text_raw(&mut held[0])
            .await
            .contains("remediator_http_connections_refused_total")
    );

    // A slot freed is a connection served again.
    drop(held.pop());
    let served = tokio::time::timeout(FAILSAFE, async {
        loop {
            let mut stream = TcpStream::connect(address(&app)).await.unwrap();
            stream
                .write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
                .await
                .unwrap();
            let (response, _) = read_until_closed(&mut stream).await;
            if response.starts_with("HTTP/1.1 200") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    assert!(served.is_ok(), "the freed slot was never reused");
    drop(held);
    app.stop().await;
}

/// `/metrics` over a connection the test already holds (the limit allows no new one).
async fn metrics_text_raw(stream: &mut TcpStream) -> String {
    stream
        .write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 65536];
    // Read until the announced length has arrived.
    loop {
        let n = stream.read(&mut buffer).await.unwrap();
        received.extend_from_slice(&buffer[..n]);
        let text = String::from_utf8_lossy(&received).into_owned();
        if let Some((head, body)) = text.split_once("\r\n\r\n") {
            let length = head
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length: ")
                        .map(str::to_owned)
                })
                .and_then(|l| l.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if body.len() >= length {
                return body.to_owned();
            }
        }
        if n == 0 {
            return text;
        }
    }
}

// ---- 7. two credentials ------------------------------------------------------------------

#[tokio::test]
async fn attack_two_authorization_headers_are_refused() {
    let (app, c) = spawn_with_catalog().await;
    let good = format!("Bearer {}", app.full_token(c.org));
    let other = format!("Bearer {}", app.full_token(c.other_org));
    for (first, second) in [
        (good.as_str(), "Bearer garbage"),
        ("Bearer garbage", good.as_str()),
        (good.as_str(), other.as_str()),
        (good.as_str(), good.as_str()),
    ] {
        for (method, path) in [
            (reqwest::Method::GET, "/v1/operations".to_owned()),
            (
                reqwest::Method::POST,
                "/v1/findings/auto-remediation".to_owned(),
            ),
        ] {
            let response = app
                .http
                .request(method, format!("{}{path}", app.base_url))
                .header("authorization", first)
                .header("authorization", second)
                .header("content-type", "application/json")
                .body(json!({"assessment_id": c.affected}).to_string())
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 401, "{path}");
            let body: Value = response.json().await.unwrap();
            assert_contract(&body, 16, &path);
            assert!(
                body["message"].as_str().unwrap().contains("more than one"),
                "{body}"
            );
        }
    }
    let mut conn = app.pool.get().await.unwrap();
    let created: i64 = operations::table
        .count()
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(created, 0);
    app.stop().await;
}

// ---- 8. every error in the contract body -------------------------------------------------

#[tokio::test]
async fn attack_errors_of_the_http_layer_carry_the_contract_body() {
    let (app, c) = spawn_with_catalog().await;
    let token = app.full_token(c.org);
    let send = |method: reqwest::Method, path: &str| {
        app.http
            .request(method, format!("{}{path}", app.base_url))
            .bearer_auth(&token)
    };

    // 405, with Allow kept.
    for (method, path) in [
        (reqwest::Method::DELETE, "/v1/operations"),
        (reqwest::Method::PUT, "/v1/findings/auto-remediation"),
        (reqwest::Method::GET, "/v1/findings/auto-remediation"),
        (
            reqwest::Method::from_bytes(b"FROBNICATE").unwrap(),
            "/healthz",
        ),
    ] {
        let response = send(method.clone(), path).send().await.unwrap();
        assert_eq!(response.status(), 405, "{method} {path}");
        assert!(response.headers().contains_key("allow"), "{method} {path}");
        let body: Value = response.json().await.unwrap();
        assert_contract(&body, 12, path);
        assert!(
            !body.to_string().contains("FROBNICATE"),
            "no client-made method echoed: {body}"
        );
    }

    // The extractors' own 400s: bytes that are not UTF-8 in the query and in the path.
    for path in ["/v1/operations?status=%FF", "/v1/operations/%FF%FE"] {
        let response = send(reqwest::Method::GET, path).send().await.unwrap();
        assert_eq!(response.status(), 400, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_contract(&body, 3, path);
    }

    // 431: too many headers, or headers too large.
    let mut many = send(reqwest::Method::GET, "/healthz");
    for i in 0..150 {
        many = many.header(format!("x-filler-{i}"), "1");
    }
    let big = send(reqwest::Method::GET, "/healthz").header("x-big", "b".repeat(20_000));
    for request in [many, big] {
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 431);
        let body: Value = response.json().await.unwrap();
        assert_contract(&body, 8, "431");
    }

    // 413 for a body declared too large (the body is not sent by reqwest before the answer
    // only when it is streamed; a plain 20 KB body is declared and refused on the header).
    let response = send(reqwest::Method::POST, "/v1/findings/auto-remediation")
        .header("content-type", "application/json")
        .body("x".repeat(20_000))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 413);
    assert_contract(&response.json().await.unwrap(), 8, "413");

    // A wrong-typed `exp` is not "missing".
    for (exp, needle) in [
        (json!("tomorrow"), "`exp` claim must be a number"),
        (json!({"at": 1}), "`exp` claim must be a number"),
        (Value::Null, "lacks the required claim `exp`"),
    ] {
        let claims = json!({"sub": "x", "exp": exp, "org_id": c.org, "scope": "operations:read"});
        let token = jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(support::app::JWT_SECRET.as_bytes()).unwrap(),
        )
        .unwrap();
        let (status, body) = app.get_json(Some(&token), "/v1/operations").await;
        assert_eq!(status, 401, "{body}");
        assert!(
            body["message"].as_str().unwrap().contains(needle),
            "{exp}: {body}"
        );
    }
    app.stop().await;
}

// ---- 11. rate-limit refusals -------------------------------------------------------------

#[tokio::test]
async fn attack_rate_limit_refusals_are_counted_not_logged_as_warnings() {
    let app = spawn(|s| s.intake.rate_limit_per_minute = 1).await;
    let c = seed_catalog(&app, REPO).await;
    let token = app.full_token(c.org);
    let (status, body) = trigger(&app, &token, c.affected).await;
    assert_eq!(status, 200, "{body}");
    for _ in 0..5 {
        let (status, body) = trigger(&app, &token, c.affected).await;
        assert_eq!((status, body["code"].as_i64()), (429, Some(8)), "{body}");
    }
    let metrics = metrics_text(&app).await;
    let refused: f64 = metrics
        .lines()
        .find(|l| {
            l.starts_with("remediator_rate_limited_total{") && l.contains(r#"endpoint="trigger""#)
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0.0);
    // Other tests in this binary share the recorder: at least this test's five.
    assert!(refused >= 5.0, "{metrics}");

    let organization = c.org.to_string();
    let logs = captured_logs();
    let lines: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("over the intake rate limit") && l.contains(&organization))
        .collect();
    assert_eq!(lines.len(), 5, "one debug line per refusal: {lines:#?}");
    assert!(
        lines
            .iter()
            .all(|l| l.contains("DEBUG") && !l.contains("WARN")),
        "{lines:#?}"
    );
    app.stop().await;
}
