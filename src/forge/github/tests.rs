//! The GitHub client against a fake GitHub API on loopback that checks each request the way
//! GitHub documents it: method, path, query, the four headers and the JSON body.

use std::time::Duration;

use secrecy::SecretString;
use serde_json::json;
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{MockBuilder, MockServer, ResponseTemplate};

use super::*;
use crate::forge::AnyForge;
use crate::forge::Forge;
use crate::forge::test_harness::{
    self, BRANCH, assert_debug_redacted, assert_mentions, assert_redirect_elsewhere_refused,
    assert_refusals, assert_states, assert_updated_and_commented, built, endpoint, four_states,
    json_reply, never, pull_ref, refusal, refused_owner, run, transient, unsent_endpoint,
    unused_port,
};

const TOKEN: &str = "ghp_test_token_value";

test_harness::fake_api!(GithubApi: GithubForge, "GitHub" at "github.com",
    client: |server: &MockServer| forge_at(&server.uri()), list: list_open(""), create: create(""));

fn forge_at(api_url: &str) -> GithubForge {
    built(GithubForge::new(
        endpoint(api_url, "github.com"),
        SecretString::from(TOKEN),
    ))
}

fn spec() -> PullRequestSpec {
    test_harness::spec("acme", "widgets", "This pull request remediates ...")
}

/// A mock that only matches when every header GitHub documents is present and exact.
fn github(http_method: &str, request_path: &str) -> MockBuilder {
    let bearer = format!("Bearer {TOKEN}");
    test_harness::api_mock(http_method, request_path, "Authorization", &bearer)
        .and(header("Accept", "application/vnd.github+json"))
        .and(header("X-GitHub-Api-Version", "2022-11-28"))
}

fn list_open(prefix: &str) -> MockBuilder {
    github("GET", &format!("{prefix}/repos/acme/widgets/pulls"))
        .and(query_param("head", format!("acme:{BRANCH}").as_str()))
        .and(query_param("state", "open"))
}

fn create(prefix: &str) -> MockBuilder {
    github("POST", &format!("{prefix}/repos/acme/widgets/pulls"))
        .and(header("Content-Type", "application/json"))
        .and(body_json(json!({
            "title": "fix(deps): bump lodash from 4.17.20 to 4.17.21 [GHSA-29mw-wpgm-hmr9]",
            "head": BRANCH,
            "base": "main",
            "body": "This pull request remediates ...",
            "draft": false,
        })))
}

fn pull_json(number: u64) -> serde_json::Value {
    json!({
        "number": number,
        "html_url": format!("https://github.com/acme/widgets/pull/{number}"),
        "url": format!("https://api.github.com/repos/acme/widgets/pulls/{number}"),
        "state": "open",
        "head": {"ref": BRANCH},
    })
}

/// The answer listing `pulls`.
fn listed(pulls: serde_json::Value) -> ResponseTemplate {
    json_reply(200, pulls)
}

/// The answer creating pull request `number`.
fn created(number: u64) -> ResponseTemplate {
    json_reply(201, pull_json(number))
}

/// The request that labels pull request `number`.
fn set_labels(number: u64) -> MockBuilder {
    github(
        "POST",
        &format!("/repos/acme/widgets/issues/{number}/labels"),
    )
}

#[tokio::test]
async fn creates_a_pull_request_then_labels_it() {
    let fake = Fake::start().await;
    fake.serve_once(list_open(""), listed(json!([]))).await;
    fake.serve_once(create(""), created(42)).await;
    let labelled = json_reply(200, json!([{"name": "security"}]));
    let label_both = set_labels(42).and(body_json(json!({"labels": ["security", "dependencies"]})));
    fake.serve_once(label_both, labelled).await;

    let forge = AnyForge::Github(fake.client());
    assert_eq!(forge.name(), "github");
    let pull = forge.open_or_reuse(&spec()).await;
    assert_eq!(
        pull,
        Ok(Some(PullRequest {
            number: 42,
            url: "https://github.com/acme/widgets/pull/42".to_owned(),
            reused: false,
        }))
    );
}

#[tokio::test]
async fn draft_flag_is_sent_and_no_labels_means_no_label_call() {
    let fake = Fake::start().await;
    fake.serve(list_open(""), listed(json!([]))).await;
    let create_draft = github("POST", "/repos/acme/widgets/pulls").and(body_json(json!({
        "title": "t", "head": BRANCH, "base": "develop", "body": "b", "draft": true,
    })));
    fake.serve_once(create_draft, created(5)).await;
    never(path("/repos/acme/widgets/issues/5/labels"), &fake.server).await;

    let spec = PullRequestSpec {
        title: "t".to_owned(),
        body: "b".to_owned(),
        base_branch: "develop".to_owned(),
        labels: Vec::new(),
        draft: true,
        ..spec()
    };
    let pull = fake.open_spec(&spec).await;
    assert_eq!(
        pull.map(|p| p.map(|p| (p.number, p.reused))),
        Ok(Some((5, false)))
    );
}

#[tokio::test]
async fn reuses_an_open_pull_request_without_creating_or_labelling() {
    let fake = Fake::start().await;
    fake.serve_once(list_open(""), listed(json!([pull_json(7), pull_json(9)])))
        .await;
    never(method("POST"), &fake.server).await;

    assert_eq!(
        fake.open().await,
        Ok(Some(PullRequest {
            number: 7,
            url: "https://github.com/acme/widgets/pull/7".to_owned(),
            reused: true,
        }))
    );
}

#[tokio::test]
async fn duplicate_422_lists_again_and_reuses() {
    let fake = Fake::start().await;
    // The first listing races with another worker and sees nothing; the second finds its PR.
    fake.serve_first(list_open(""), listed(json!([]))).await;
    fake.serve_once(list_open(""), listed(json!([pull_json(11)])))
        .await;
    let exists = json!({
        "message": "Validation Failed",
        "errors": [{
            "resource": "PullRequest",
            "code": "custom",
            "message": format!("A pull request already exists for acme:{BRANCH}."),
        }],
        "documentation_url": "https://docs.github.com/rest/pulls/pulls#create-a-pull-request",
    });
    fake.serve_once(create(""), json_reply(422, exists)).await;
    never(path("/repos/acme/widgets/issues/11/labels"), &fake.server).await;

    assert_eq!(fake.opened().await, Ok(Some((11, true))));
}

#[tokio::test]
async fn duplicate_422_but_nothing_listed_is_transient() {
    let fake = Fake::start().await;
    fake.serve_times(list_open(""), listed(json!([])), 2).await;
    let exists = json!({
        "message": "Validation Failed",
        "errors": [{"message": "A pull request already exists for acme:x."}],
    });
    fake.serve(create(""), json_reply(422, exists)).await;
    let (message, _) = fake.transient().await;
    assert!(message.contains("already exists"), "{message}");
}

#[tokio::test]
async fn other_422_is_permanent_with_githubs_message() {
    let invalid = json!({
        "message": "Validation Failed",
        "errors": [{"resource": "PullRequest", "code": "custom",
                    "message": "No commits between main and remediator/x"}],
    });
    let message = Fake::creating_refused(422, invalid).await;
    assert_mentions(&message, &["422", "Validation Failed"]);
    assert!(
        message.contains("No commits between main and remediator/x"),
        "{message}"
    );
}

#[tokio::test]
async fn unauthorized_not_found_and_forbidden_are_permanent() {
    assert_refusals::<GithubApi>(
        (
            json!({"message": "Bad credentials", "documentation_url": "https://docs.github.com/rest"}),
            "Bad credentials",
        ),
        (
            json!({"message": "Not Found"}),
            &["404", "acme/widgets", "pull-request write access"],
        ),
        (
            json!({"message": "Resource not accessible by personal access token"}),
            &["403", "Resource not accessible"],
        ),
    )
    .await;
}

#[tokio::test]
async fn server_error_is_transient() {
    let failed = ResponseTemplate::new(502).set_body_string("<html>Bad gateway</html>");
    let result = Fake::listing(failed).await.open().await;
    assert!(result.as_ref().is_err_and(ForgeError::is_transient));
    let (message, retry_after) = transient(result, TOKEN);
    assert!(message.contains("502"), "{message}");
    assert_eq!(retry_after, None);

    let failed = ResponseTemplate::new(500);
    let (_, retry_after) = Fake::listing_delayed(failed).await;
    assert_eq!(retry_after, None);
}

#[tokio::test]
async fn too_many_requests_with_retry_after_is_transient_with_the_wait() {
    let limited = ResponseTemplate::new(429)
        .insert_header("retry-after", "30")
        .set_body_json(json!({"message": "You have exceeded a secondary rate limit."}));
    let result = Fake::listing(limited).await.open().await;
    assert_eq!(
        result.as_ref().err().and_then(ForgeError::retry_after),
        Some(Duration::from_secs(30))
    );
    let (message, _) = transient(result, TOKEN);
    assert!(message.contains("rate limit"), "{message}");
}

#[tokio::test]
async fn exhausted_primary_rate_limit_waits_until_reset() {
    let reset = chrono::Utc::now().timestamp() + 120;
    let limited = ResponseTemplate::new(403)
        .insert_header("x-ratelimit-limit", "5000")
        .insert_header("x-ratelimit-remaining", "0")
        .insert_header("x-ratelimit-reset", reset.to_string().as_str())
        .set_body_json(json!({"message": "API rate limit exceeded for user ID 1."}));
    let (_, retry_after) = Fake::listing_delayed(limited).await;
    let wait = retry_after.map(|d| d.as_secs()).unwrap_or_default();
    assert!((110..=121).contains(&wait), "waited {wait}s");
}

#[tokio::test]
async fn secondary_rate_limit_403_without_headers_waits_a_minute() {
    let limited = json!({
        "message": "You have exceeded a secondary rate limit. Please wait a few minutes before you try again.",
    });
    let (_, retry_after) = Fake::listing(json_reply(403, limited))
        .await
        .transient()
        .await;
    assert_eq!(retry_after, Some(Duration::from_secs(60)));
}

#[tokio::test]
async fn redirect_to_another_host_is_refused() {
    assert_redirect_elsewhere_refused::<GithubApi>(302, "/repos/acme/widgets/pulls").await;
}

#[tokio::test]
async fn redirect_on_the_same_host_is_followed() {
    // GitHub answers 301 for a renamed repository; following it on the same host is safe.
    let fake = Fake::start().await;
    let moved = format!(
        "{}/repositories/123/pulls?head=acme:{BRANCH}&state=open",
        fake.server.uri()
    );
    let redirect = ResponseTemplate::new(301).insert_header("location", moved.as_str());
    fake.serve(list_open(""), redirect).await;
    fake.serve_once(
        github("GET", "/repositories/123/pulls"),
        listed(json!([pull_json(8)])),
    )
    .await;
    let pull = fake.open().await;
    assert_eq!(pull.map(|p| p.map(|p| p.number)), Ok(Some(8)));
}

#[tokio::test]
async fn enterprise_api_url_with_api_v3_prefix() {
    let fake = Fake::start().await;
    fake.serve_once(list_open("/api/v3"), listed(json!([])))
        .await;
    let created_there = json!({
        "number": 3,
        "html_url": "https://ghe.example.com/acme/widgets/pull/3",
    });
    fake.serve_once(create("/api/v3"), json_reply(201, created_there))
        .await;
    let label = github("POST", "/api/v3/repos/acme/widgets/issues/3/labels");
    fake.serve_once(label, ResponseTemplate::new(200)).await;
    // A trailing slash in the config must not double up in the path.
    let forge = forge_at(&format!("{}/api/v3/", fake.server.uri()));
    let pull = run(&forge, &spec()).await;
    assert_eq!(
        pull,
        Ok(Some(PullRequest {
            number: 3,
            url: "https://ghe.example.com/acme/widgets/pull/3".to_owned(),
            reused: false,
        }))
    );
}

#[tokio::test]
async fn a_label_failure_does_not_fail_the_pull_request() {
    let fake = Fake::start().await;
    fake.serve(list_open(""), listed(json!([]))).await;
    fake.serve(create(""), created(4)).await;
    let forbidden = json_reply(403, json!({"message": "forbidden"}));
    fake.serve_once(set_labels(4), forbidden).await;
    assert_eq!(fake.opened().await, Ok(Some((4, false))));
}

#[tokio::test]
async fn oversized_response_is_refused() {
    let oversized = ResponseTemplate::new(200).set_body_string("x".repeat(MAX_RESPONSE_BYTES + 1));
    let message = Fake::listing(oversized).await.permanent().await;
    assert!(message.contains("larger than"), "{message}");
}

#[tokio::test]
async fn unreachable_api_is_transient() {
    let port = unused_port();
    let (message, _) = transient(
        run(&forge_at(&format!("http://127.0.0.1:{port}")), &spec()).await,
        TOKEN,
    );
    assert!(
        message.contains("cannot reach the GitHub API for github.com"),
        "{message}"
    );
}

#[tokio::test]
async fn a_non_github_path_is_refused_before_any_request() {
    let message = refused_owner::<GithubApi>("group/subgroup").await;
    assert!(message.contains("OWNER/NAME"), "{message}");
}

#[test]
fn api_url_validation() {
    let token = || SecretString::from(TOKEN);
    let build = |url: &str, allow_http: bool| {
        GithubForge::new(unsent_endpoint(url, "github.com", allow_http), token())
    };
    assert_eq!(
        build("https://api.github.com", false)
            .map(|f| f.api_url().to_owned())
            .ok(),
        Some("https://api.github.com/".to_owned())
    );
    assert!(build("https://ghe.example.com/api/v3", false).is_ok());
    let http = refusal(build("http://127.0.0.1:9/api", false));
    assert!(http.contains("clear text"), "{http}");
    assert!(build("ftp://api.github.com", true).is_err());
    assert!(build("https://user:pw@api.github.com", false).is_err());
    assert!(build("https://api.github.com/?x=1", false).is_err());
    assert!(build("not a url", false).is_err());
    let message = refusal(GithubForge::new(
        unsent_endpoint("https://api.github.com", "github.com", false),
        SecretString::from("tok\nen"),
    ));
    assert!(
        message.contains("HTTP header") && !message.contains("tok\nen"),
        "{message}"
    );
}

#[test]
fn debug_redacts_the_token() {
    assert_debug_redacted(&forge_at("https://api.github.com"), TOKEN);
}

#[tokio::test]
async fn the_state_of_a_pull_request_is_read_as_github_documents_it() {
    let fake = Fake::start().await;
    let forge = AnyForge::Github(fake.client());
    let cases = four_states(
        json!({"number": 7, "state": "closed", "merged": true, "merged_at": "2026-12-01T10:00:00Z", "mergeable": null}),
        json!({"number": 7, "state": "closed", "merged": false, "closed_at": "2026-12-01T11:00:00Z"}),
        json!({"number": 7, "state": "open", "merged": false, "mergeable": false}),
        // GitHub computes mergeability in the background: null is not a conflict.
        json!({"number": 7, "state": "open", "merged": false, "mergeable": null}),
    );
    let read = || github("GET", "/repos/acme/widgets/pulls/7");
    let target = pull_ref("acme", "widgets", 7);
    assert_states(&fake.server, &forge, &target, read, cases).await;
}

#[tokio::test]
async fn a_pull_request_is_updated_and_commented_on_as_github_documents_it() {
    let fake = Fake::start().await;
    let forge = AnyForge::Github(fake.client());
    let edit = github("PATCH", "/repos/acme/widgets/pulls/7").and(body_json(
        json!({"title": spec().title, "body": spec().body}),
    ));
    let edited = json_reply(200, json!({"number": 7}));
    let comment = github("POST", "/repos/acme/widgets/issues/7/comments");
    let target = pull_ref("acme", "widgets", 7);
    let server = &fake.server;
    assert_updated_and_commented(server, &forge, (&spec(), &target), (edit, edited), comment).await;
}
