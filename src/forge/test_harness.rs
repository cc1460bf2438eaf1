//! What the forge clients' tests share: a fake forge API on loopback (wiremock) whose mocks
//! match only requests carrying the forge's token header and our User-Agent, the pull request
//! spec the tests open, and the checks of an answer (a permanent or transient error that never
//! carries the token). Each forge's tests keep what is theirs: paths, bodies, headers, the
//! forge's own answers and messages, told to the harness through [`FakeApi`].

use std::marker::PhantomData;
use std::time::Duration;

use secrecy::SecretString;
use serde_json::json;
use wiremock::matchers::{body_json, header, method, path};
use wiremock::{Match, Mock, MockBuilder, MockServer, ResponseTemplate};

use super::{
    AnyForge, ApiEndpoint, Forge, ForgeError, PullRequest, PullRequestRef, PullRequestSpec,
};
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

/// `spec` made a draft titled "t", with the body "b" and no labels.
pub(crate) fn draft_of(spec: PullRequestSpec) -> PullRequestSpec {
    PullRequestSpec {
        title: "t".to_owned(),
        body: "b".to_owned(),
        labels: Vec::new(),
        draft: true,
        ..spec
    }
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
pub(crate) async fn assert_states<A: FakeApi>(
    target: &PullRequestRef,
    read: impl Fn() -> MockBuilder,
    cases: Vec<(serde_json::Value, ObservedState)>,
) {
    let fake = Fake::<A>::start().await;
    let (server, forge) = (&fake.server, A::any(fake.client()));
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
pub(crate) async fn assert_updated_and_commented<A: FakeApi>(
    target: &PullRequestRef,
    (edit, edited): (MockBuilder, ResponseTemplate),
    comment: MockBuilder,
) {
    let fake = Fake::<A>::start().await;
    let (server, forge, spec) = (&fake.server, A::any(fake.client()), A::spec());
    edit.respond_with(edited).expect(1).mount(server).await;
    comment
        .and(body_json(json!({"body": "not refreshed"})))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({"id": 1})))
        .expect(1)
        .mount(server)
        .await;
    assert_eq!(
        forge.update_pull_request(&spec, target.number).await,
        Ok(())
    );
    assert_eq!(
        forge.comment_on_pull_request(target, "not refreshed").await,
        Ok(())
    );
}

/// `mock`, matching only when the request sends the JSON `body`, declared as JSON.
pub(crate) fn sending_json(mock: MockBuilder, body: serde_json::Value) -> MockBuilder {
    mock.and(header("Content-Type", "application/json"))
        .and(body_json(body))
}

/// The answer of a pull list (a 200) holding `pulls`.
pub(crate) fn listed(pulls: serde_json::Value) -> ResponseTemplate {
    json_reply(200, pulls)
}

/// An answer with status `status` and the JSON `body`.
pub(crate) fn json_reply(status: u16, body: serde_json::Value) -> ResponseTemplate {
    ResponseTemplate::new(status).set_body_json(body)
}

/// What one forge's tests tell the shared [`Fake`] about that forge's API.
pub(crate) trait FakeApi {
    /// The client under test.
    type Client: Forge;
    /// The token the client sends; no error may carry it.
    const TOKEN: &'static str;
    /// The forge's name as its client words errors ("GitHub").
    const LABEL: &'static str;
    /// The repository host the client serves.
    const HOST: &'static str;
    /// The API's path below the server's root ("" for GitHub, "/api/v4" for GitLab).
    const API_PATH: &'static str;
    /// The client's constructor.
    fn build(endpoint: ApiEndpoint<'_>, token: SecretString) -> anyhow::Result<Self::Client>;
    /// The API base `client` talks to, as it keeps it.
    fn api_url(client: &Self::Client) -> String;
    /// The client of the API at `api_url`, with the tests' token.
    fn at(api_url: &str) -> Self::Client {
        built(Self::build(
            endpoint(api_url, Self::HOST),
            SecretString::from(Self::TOKEN),
        ))
    }
    /// `client` as the forge the registry hands out.
    fn any(client: Self::Client) -> AnyForge;
    /// The client of the fake API `server` serves.
    fn client(server: &MockServer) -> Self::Client {
        Self::at(&format!("{}{}", server.uri(), Self::API_PATH))
    }
    /// The pull request the tests open.
    fn spec() -> PullRequestSpec;
    /// The request that lists the open pull requests of the spec's branch (its first page).
    fn list_open() -> MockBuilder;
    /// The request that creates the spec's pull request.
    fn create() -> MockBuilder;
    /// The list answer that holds no pull request.
    fn nothing_listed() -> ResponseTemplate {
        json_reply(200, json!([]))
    }
}

/// Declares `$api`, the [`FakeApi`] of one forge's tests, and `Fake` for it: the client is
/// `$client`'s, its API at `$api_path` on the fake server, the token the test file's `TOKEN`,
/// the spec its `spec()`, and the list and create requests the given expressions.
macro_rules! fake_api {
    ($api:ident: $client:ty as $any:path, $label:literal at $host:literal,
     api_path: $api_path:literal,
     list: $list:expr, create: $create:expr $(, nothing_listed: $nothing:expr)?) => {
        /// What the shared harness needs to know of this forge's API.
        pub(crate) struct $api;

        type Fake = $crate::forge::test_harness::Fake<$api>;

        impl $crate::forge::test_harness::FakeApi for $api {
            type Client = $client;
            const TOKEN: &'static str = TOKEN;
            const LABEL: &'static str = $label;
            const HOST: &'static str = $host;
            const API_PATH: &'static str = $api_path;

            fn build(
                endpoint: $crate::forge::ApiEndpoint<'_>,
                token: ::secrecy::SecretString,
            ) -> ::anyhow::Result<$client> {
                <$client>::new(endpoint, token)
            }

            fn any(client: $client) -> $crate::forge::AnyForge {
                $any(client)
            }

            fn api_url(client: &$client) -> String {
                client.api_url().to_owned()
            }

            fn spec() -> PullRequestSpec {
                spec()
            }

            fn list_open() -> MockBuilder {
                $list
            }

            fn create() -> MockBuilder {
                $create
            }

            $(fn nothing_listed() -> ResponseTemplate {
                $nothing
            })?
        }
    };
}
pub(crate) use fake_api;

/// A fake forge API on loopback, and the client of `A` that talks to it.
pub(crate) struct Fake<A> {
    pub server: MockServer,
    api: PhantomData<A>,
}

impl<A: FakeApi> Fake<A> {
    /// A fake API that answers nothing yet.
    pub async fn start() -> Self {
        Fake {
            server: MockServer::start().await,
            api: PhantomData,
        }
    }

    /// A fake whose pull list answers `listed`, and must be asked exactly once.
    pub async fn listing(listed: ResponseTemplate) -> Self {
        let fake = Self::start().await;
        fake.serve_once(A::list_open(), listed).await;
        fake
    }

    /// A fake that lists no pull request and answers the create, which must be asked exactly
    /// once, with `created`.
    pub async fn creating(created: ResponseTemplate) -> Self {
        let fake = Self::start().await;
        fake.serve(A::list_open(), A::nothing_listed()).await;
        fake.serve_once(A::create(), created).await;
        fake
    }

    /// Answers the requests `mock` matches with `response`, however many come.
    pub async fn serve(&self, mock: MockBuilder, response: ResponseTemplate) {
        mock.respond_with(response).mount(&self.server).await;
    }

    /// Answers only the first request `mock` matches with `response` (later ones fall through
    /// to the mocks mounted after it); the test fails unless that first one comes.
    pub async fn serve_first(&self, mock: MockBuilder, response: ResponseTemplate) {
        mock.respond_with(response)
            .up_to_n_times(1)
            .expect(1)
            .mount(&self.server)
            .await;
    }

    /// Answers the requests `mock` matches with `response`; the test fails unless exactly one
    /// comes.
    pub async fn serve_once(&self, mock: MockBuilder, response: ResponseTemplate) {
        self.serve_times(mock, response, 1).await;
    }

    /// Answers the requests `mock` matches with `response`; the test fails unless exactly
    /// `times` come.
    pub async fn serve_times(&self, mock: MockBuilder, response: ResponseTemplate, times: u64) {
        mock.respond_with(response)
            .expect(times)
            .mount(&self.server)
            .await;
    }

    /// The client of this fake API.
    pub fn client(&self) -> A::Client {
        A::client(&self.server)
    }

    /// What opening (or reusing) the tests' pull request answers.
    pub async fn open(&self) -> Answer {
        self.open_spec(&A::spec()).await
    }

    /// What opening (or reusing) `spec`'s pull request answers.
    pub async fn open_spec(&self, spec: &PullRequestSpec) -> Answer {
        run(&self.client(), spec).await
    }

    /// The message of the permanent error opening the tests' pull request ends in.
    pub async fn permanent(&self) -> String {
        permanent(self.open().await, A::TOKEN)
    }

    /// The message and wait of the transient error opening the tests' pull request ends in.
    pub async fn transient(&self) -> (String, Option<Duration>) {
        transient(self.open().await, A::TOKEN)
    }

    /// The permanent error of a fake whose pull list answers `status` with `body`.
    pub async fn listing_refused(status: u16, body: serde_json::Value) -> String {
        Self::listing(json_reply(status, body))
            .await
            .permanent()
            .await
    }

    /// The permanent error of a fake whose create answers `status` with `body`.
    pub async fn creating_refused(status: u16, body: serde_json::Value) -> String {
        Self::creating(json_reply(status, body))
            .await
            .permanent()
            .await
    }

    /// The transient error of a fake whose pull list answers `listed`.
    pub async fn listing_delayed(listed: ResponseTemplate) -> (String, Option<Duration>) {
        Self::listing(listed).await.transient().await
    }

    /// Opening the tests' pull request reuses the open one numbered `number` at `url`, and
    /// creates nothing.
    pub async fn assert_reuses(&self, number: u64, url: &str) {
        never(method("POST"), &self.server).await;
        assert_opened(self.open().await, number, url, true);
    }

    /// The number and reuse flag of the pull request opening the tests' one gives.
    pub async fn opened(&self) -> Result<Option<(u64, bool)>, ForgeError> {
        self.opened_spec(&A::spec()).await
    }

    /// The number and reuse flag of the pull request opening `spec`'s gives.
    pub async fn opened_spec(
        &self,
        spec: &PullRequestSpec,
    ) -> Result<Option<(u64, bool)>, ForgeError> {
        self.open_spec(spec)
            .await
            .map(|pull| pull.map(|pull| (pull.number, pull.reused)))
    }
}

/// A pull list that redirects to another host (status `status`, to `path` there) is refused
/// before the token follows it: nothing reaches the other host, nothing is created.
pub(crate) async fn assert_redirect_elsewhere_refused<A: FakeApi>(status: u16, path_there: &str) {
    let elsewhere = MockServer::start().await;
    never(method("GET"), &elsewhere).await;
    let location = format!("{}{path_there}", elsewhere.uri());
    let fake = Fake::<A>::listing(
        ResponseTemplate::new(status).insert_header("location", location.as_str()),
    )
    .await;
    never(method("POST"), &fake.server).await;
    assert_redirect_refused(&fake.permanent().await);
}

/// The permanent error a pull request of `owner` gets before any request is sent.
pub(crate) async fn refused_owner<A: FakeApi>(owner: &str) -> String {
    let fake = Fake::<A>::start().await;
    never(method("GET"), &fake.server).await;
    let spec = PullRequestSpec {
        owner: owner.to_owned(),
        ..A::spec()
    };
    permanent(fake.open_spec(&spec).await, A::TOKEN)
}

/// The four states every forge reports, each paired with the forge's JSON for it: merged at
/// 10:00 and closed at 11:00 on 2026-12-01, open with a conflict, and open.
pub(crate) fn four_states(
    merged: serde_json::Value,
    closed: serde_json::Value,
    conflicting: serde_json::Value,
    open: serde_json::Value,
) -> Vec<(serde_json::Value, ObservedState)> {
    vec![
        (
            merged,
            ObservedState::Merged("2026-12-01T10:00:00Z".parse().ok()),
        ),
        (
            closed,
            ObservedState::Closed("2026-12-01T11:00:00Z".parse().ok()),
        ),
        (conflicting, ObservedState::Conflicting),
        (open, ObservedState::Open),
    ]
}

/// What opening the pull request answered is pull request `number` at `url`, reused or not.
pub(crate) fn assert_opened(answer: Answer, number: u64, url: &str, reused: bool) {
    let url = url.to_owned();
    assert_eq!(
        answer,
        Ok(Some(PullRequest {
            number,
            url,
            reused
        }))
    );
}

/// `message` mentions every one of `parts`.
pub(crate) fn assert_mentions(message: &str, parts: &[&str]) {
    for part in parts {
        assert!(message.contains(part), "{part:?} missing from: {message}");
    }
}

/// The three refusals every forge can give, each a permanent error: a 401 on the pull list
/// (the message names the forge, what it `said` and the host, never the token), a 404 on the
/// list and a 403 on the create (the messages mention their parts).
pub(crate) async fn assert_refusals<A: FakeApi>(
    (unauthorized, said): (serde_json::Value, &str),
    (not_found, not_found_parts): (serde_json::Value, &[&str]),
    (forbidden, forbidden_parts): (serde_json::Value, &[&str]),
) {
    let message = Fake::<A>::listing_refused(401, unauthorized).await;
    assert_token_refused(&message, A::LABEL, said, A::HOST);
    let message = Fake::<A>::listing_refused(404, not_found).await;
    assert_mentions(&message, not_found_parts);
    let message = Fake::<A>::creating_refused(403, forbidden).await;
    assert_mentions(&message, forbidden_parts);
}

/// Opening the tests' pull request while nothing listens at the API is transient, and the
/// message says which forge's API for which host could not be reached.
pub(crate) async fn assert_unreachable_is_transient<A: FakeApi>() {
    let port = unused_port();
    let forge = A::at(&format!("http://127.0.0.1:{port}{}", A::API_PATH));
    let (message, _) = transient(run(&forge, &A::spec()).await, A::TOKEN);
    let unreachable = format!("cannot reach the {} API for {}", A::LABEL, A::HOST);
    assert!(message.contains(&unreachable), "{message}");
}

/// Each pull list answer is a transient error whose message mentions the parts given and
/// whose wait is the one given.
pub(crate) async fn assert_transient_answers<A: FakeApi>(
    answers: Vec<(ResponseTemplate, &[&str], Option<Duration>)>,
) {
    for (answer, parts, wait) in answers {
        let result = Fake::<A>::listing(answer).await.open().await;
        assert!(result.as_ref().is_err_and(ForgeError::is_transient));
        let (message, retry_after) = transient(result, A::TOKEN);
        assert_mentions(&message, parts);
        assert_eq!(retry_after, wait, "{message}");
    }
}

/// The pull list answers `limited(reset)`: a rate limit that lifts at the Unix time `reset`,
/// `ahead` seconds from now. The transient error waits until about then.
pub(crate) async fn assert_waits_until_reset<A: FakeApi>(
    ahead: i64,
    limited: impl FnOnce(&str) -> ResponseTemplate,
) {
    let reset = chrono::Utc::now().timestamp() + ahead;
    let (_, retry_after) = Fake::<A>::listing_delayed(limited(&reset.to_string())).await;
    let wait = retry_after.map(|d| d.as_secs()).unwrap_or_default();
    let wait = i64::try_from(wait).unwrap_or(i64::MAX);
    assert!((ahead - 10..=ahead + 1).contains(&wait), "waited {wait}s");
}

/// Each pull request owner is refused before any request is sent, with a message that
/// mentions `expected`: the path shape the forge wants.
pub(crate) async fn assert_owners_refused<A: FakeApi>(owners: &[&str], expected: &str) {
    for owner in owners {
        let message = refused_owner::<A>(owner).await;
        assert!(message.contains(expected), "{message}");
    }
}

/// What the checks of a forge's configured API URL are given.
pub(crate) struct ApiUrlChecks<'a> {
    /// A configured API URL and the base the client keeps of it.
    pub kept: (&'a str, &'a str),
    /// A plain http URL, refused as clear text while http is not allowed.
    pub clear_text: &'a str,
    /// URLs refused whether or not http is allowed (each with `allow_http`).
    pub refused: &'a [(&'a str, bool)],
}

/// The client keeps the API base it is configured with (normalised), refuses clear text
/// naming the forge, and refuses each of the `refused` URLs.
pub(crate) fn assert_api_url_checks<A: FakeApi>(checks: &ApiUrlChecks<'_>) {
    let build = |url: &str, allow_http: bool| {
        A::build(
            unsent_endpoint(url, A::HOST, allow_http),
            SecretString::from(A::TOKEN),
        )
    };
    let (configured, kept) = checks.kept;
    let client = build(configured, false).map(|client| A::api_url(&client));
    assert_eq!(client.ok().as_deref(), Some(kept));
    let http = refusal(build(checks.clear_text, false));
    assert!(
        http.contains("clear text") && http.contains(A::LABEL),
        "{http}"
    );
    for (url, allow_http) in checks.refused {
        assert!(build(url, *allow_http).is_err(), "{url} was not refused");
    }
}
