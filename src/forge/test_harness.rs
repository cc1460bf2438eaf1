//! What the forge clients' tests share: a fake forge API on loopback (wiremock) whose mocks
//! match only requests carrying the forge's token header and our User-Agent, the pull request
//! spec the tests open, and the checks of an answer (a permanent or transient error that never
//! carries the token). Each forge's tests keep what is theirs: paths, bodies, headers, the
//! forge's own answers and messages.

use std::time::Duration;

use serde_json::json;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Match, Mock, MockBuilder, MockServer, ResponseTemplate};

use super::{ApiEndpoint, Forge, ForgeError, PullRequest, PullRequestRef, PullRequestSpec};
use crate::egress::EgressPolicy;
use crate::lifecycle::fix_plan::ObservedState;

/// The branch every test's pull request comes from.
pub(crate) const BRANCH: &str = "remediator/ghsa-29mw-wpgm-hmr9-lodash";
/// The title every test's pull request carries.
pub(crate) const TITLE: &str =
    "fix(deps): bump lodash from 4.17.20 to 4.17.21 [GHSA-29mw-wpgm-hmr9]";

/// What `open_or_reuse` answered.
pub(crate) type Answer = Result<Option<PullRequest>, ForgeError>;

/// The fake API at `api_url` serving `host`: plain http on loopback, a 5 s timeout, and an
/// egress policy that allows loopback.
pub(crate) fn endpoint<'a>(api_url: &'a str, host: &'a str) -> ApiEndpoint<'a> {
    ApiEndpoint {
        api_url,
        host,
        timeout: Duration::from_secs(5),
        allow_http: true,
        egress: EgressPolicy::allow_all(),
    }
}

/// What a constructor check builds from: no request is sent, so only `api_url` and
/// `allow_http` matter.
pub(crate) fn unsent_endpoint<'a>(
    api_url: &'a str,
    host: &'a str,
    allow_http: bool,
) -> ApiEndpoint<'a> {
    ApiEndpoint {
        timeout: Duration::from_secs(1),
        allow_http,
        ..endpoint(api_url, host)
    }
}

/// Why a constructor refused its config; empty when it built.
pub(crate) fn refusal<F>(built: anyhow::Result<F>) -> String {
    built.err().map(|e| e.to_string()).unwrap_or_default()
}

/// A forge client's `Debug` never shows its token, and says it is redacted.
pub(crate) fn assert_debug_redacted(forge: &impl std::fmt::Debug, token: &str) {
    let debug = format!("{forge:?}");
    assert!(!debug.contains(token), "{debug}");
    assert!(debug.contains("REDACTED"), "{debug}");
}

/// The forge a test's constructor built; a test cannot go on without it.
pub(crate) fn built<F>(forge: anyhow::Result<F>) -> F {
    match forge {
        Ok(forge) => forge,
        Err(e) => panic!("forge should build: {e:#}"),
    }
}

/// The pull request of [`BRANCH`] into main with [`TITLE`], `body`, and two labels.
pub(crate) fn spec(owner: &str, repo: &str, body: &str) -> PullRequestSpec {
    PullRequestSpec {
        owner: owner.to_owned(),
        repo: repo.to_owned(),
        head_branch: BRANCH.to_owned(),
        base_branch: "main".to_owned(),
        title: TITLE.to_owned(),
        body: body.to_owned(),
        labels: vec!["security".to_owned(), "dependencies".to_owned()],
        draft: false,
    }
}

/// Pull request `number` of `owner`/`repo`, as the reconciler names it.
pub(crate) fn pull_ref(owner: &str, repo: &str, number: u64) -> PullRequestRef {
    PullRequestRef {
        owner: owner.to_owned(),
        repo: repo.to_owned(),
        number,
    }
}

/// A mock that only matches `http_method` on `request_path` with the token header
/// `token_header: token_value` and our User-Agent.
pub(crate) fn api_mock(
    http_method: &str,
    request_path: &str,
    token_header: &'static str,
    token_value: &str,
) -> MockBuilder {
    Mock::given(method(http_method))
        .and(path(request_path))
        .and(header(token_header, token_value))
        .and(header(
            "User-Agent",
            concat!("remediator/", env!("CARGO_PKG_VERSION")),
        ))
}

/// Mounts a mock that fails the test if any request `matcher` takes reaches `server`.
pub(crate) async fn never(matcher: impl Match + 'static, server: &MockServer) {
    Mock::given(matcher)
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .expect(0)
        .mount(server)
        .await;
}

/// Opens (or reuses) the spec's pull request on `forge`.
pub(crate) async fn run(forge: &impl Forge, spec: &PullRequestSpec) -> Answer {
    forge.open_or_reuse(spec).await
}

/// The message of a permanent error, which must not carry `token`.
pub(crate) fn permanent(answer: Answer, token: &str) -> String {
    match answer {
        Err(ForgeError::Permanent(message)) => {
            assert!(!message.contains(token), "token leaked: {message}");
            message
        }
        other => panic!("expected a permanent error, got {other:?}"),
    }
}

/// The message and wait of a transient error; the message must not carry `token`.
pub(crate) fn transient(answer: Answer, token: &str) -> (String, Option<Duration>) {
    match answer {
        Err(ForgeError::Transient {
            message,
            retry_after,
        }) => {
            assert!(!message.contains(token), "token leaked: {message}");
            (message, retry_after)
        }
        other => panic!("expected a transient error, got {other:?}"),
    }
}

/// A loopback port nothing listens on (bound, then let go).
pub(crate) fn unused_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// What `forge` says when it refuses our token: its own words (`said`), and the host whose
/// token to check, never the token.
pub(crate) fn assert_token_refused(message: &str, forge: &str, said: &str, host: &str) {
    assert!(
        message.contains(&format!("{forge} refused the token")),
        "{message}"
    );
    assert!(message.contains(said), "{message}");
    assert!(
        message.contains(&format!("check the forge token for {host}")),
        "{message}"
    );
}

/// What a forge says when an API answer redirects to another host.
pub(crate) fn assert_redirect_refused(message: &str) {
    assert!(message.contains("redirect to another host"), "{message}");
    assert!(message.contains("api_url"), "{message}");
}

/// For each case, the forge's API answers the GET `read` matches with the case's JSON once,
/// and the forge must read the case's state from it.
pub(crate) async fn assert_states(
    server: &MockServer,
    forge: &impl Forge,
    target: &PullRequestRef,
    read: impl Fn() -> MockBuilder,
    cases: Vec<(serde_json::Value, ObservedState)>,
) {
    for (answer, expected) in cases {
        server.reset().await;
        read()
            .respond_with(ResponseTemplate::new(200).set_body_json(answer.clone()))
            .expect(1)
            .mount(server)
            .await;
        let state = forge.pull_request_state(target).await;
        assert_eq!(state, Ok(Some(expected)), "{answer}");
    }
}

/// The forge edits the spec's pull request `target.number` once, through the request `edit`
/// matches (answered with `edited`), and comments "not refreshed" on it once through the
/// request `comment` matches.
pub(crate) async fn assert_updated_and_commented(
    server: &MockServer,
    forge: &impl Forge,
    (spec, target): (&PullRequestSpec, &PullRequestRef),
    (edit, edited): (MockBuilder, ResponseTemplate),
    comment: MockBuilder,
) {
    edit.respond_with(edited).expect(1).mount(server).await;
    comment
        .and(body_json(json!({"body": "not refreshed"})))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 1})))
        .expect(1)
        .mount(server)
        .await;
    assert_eq!(forge.update_pull_request(spec, target.number).await, Ok(()));
    assert_eq!(
        forge.comment_on_pull_request(target, "not refreshed").await,
        Ok(())
    );
}
