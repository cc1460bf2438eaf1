//! The GitHub client against a fake GitHub API on loopback that checks each request the way
//! GitHub documents it: method, path, query, the four headers and the JSON body.

use secrecy::SecretString;
use serde_json::json;
use wiremock::matchers::{body_json, header, path, query_param};
use wiremock::{MockBuilder, ResponseTemplate};

use super::*;
use crate::forge::AnyForge;
use crate::forge::Forge;
use crate::forge::test_harness::{
    self, ApiUrlChecks, BRANCH, FakeApi, assert_api_url_checks, assert_debug_redacted,
    assert_mentions, assert_opened, assert_states, assert_updated_and_commented,
    assert_waits_until_reset, draft_of, four_states, json_reply, listed, never, pull_ref, refusal,
    run, sending_json, unsent_endpoint,
};

const TOKEN: &str = "ghp_test_token_value";

test_harness::fake_api!(GithubApi: GithubForge as AnyForge::Github, "GitHub" at "github.com",
    api_path: "", list: list_open(""), create: create(""));

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
    let body = json!({
        "title": "fix(deps): bump lodash from 4.17.20 to 4.17.21 [GHSA-29mw-wpgm-hmr9]",
        "head": BRANCH,
        "base": "main",
        "body": "This pull request remediates ...",
        "draft": false,
    });
    sending_json(
        github("POST", &format!("{prefix}/repos/acme/widgets/pulls")),
        body,
    )
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
    assert_opened(pull, 42, "https://github.com/acme/widgets/pull/42", false);
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
        base_branch: "develop".to_owned(),
        ..draft_of(spec())
    };
    assert_eq!(fake.opened_spec(&spec).await, Ok(Some((5, false))));
}

#[tokio::test]
async fn reuses_an_open_pull_request_without_creating_or_labelling() {
    let fake = Fake::listing(listed(json!([pull_json(7), pull_json(9)]))).await;
    fake.assert_reuses(7, "https://github.com/acme/widgets/pull/7")
        .await;
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
async fn exhausted_primary_rate_limit_waits_until_reset() {
    assert_waits_until_reset::<GithubApi>(120, |reset| {
        ResponseTemplate::new(403)
            .insert_header("x-ratelimit-limit", "5000")
            .insert_header("x-ratelimit-remaining", "0")
            .insert_header("x-ratelimit-reset", reset)
            .set_body_json(json!({"message": "API rate limit exceeded for user ID 1."}))
    })
    .await;
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
    let forge = GithubApi::at(&format!("{}/api/v3/", fake.server.uri()));
    let pull = run(&forge, &spec()).await;
    let url = "https://ghe.example.com/acme/widgets/pull/3";
    assert_opened(pull, 3, url, false);
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

#[test]
fn api_url_validation() {
    assert_api_url_checks::<GithubApi>(&ApiUrlChecks {
        kept: ("https://api.github.com", "https://api.github.com/"),
        clear_text: "http://127.0.0.1:9/api",
        refused: &[
            ("ftp://api.github.com", true),
            ("https://user:pw@api.github.com", false),
            ("https://api.github.com/?x=1", false),
            ("not a url", false),
        ],
    });
    let enterprise = unsent_endpoint("https://ghe.example.com/api/v3", "github.com", false);
    assert!(GithubForge::new(enterprise, SecretString::from(TOKEN)).is_ok());
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
    assert_debug_redacted(&GithubApi::at("https://api.github.com"), TOKEN);
}

#[tokio::test]
async fn the_state_of_a_pull_request_is_read_as_github_documents_it() {
    let cases = four_states(
        json!({"number": 7, "state": "closed", "merged": true, "merged_at": "2026-12-01T10:00:00Z", "mergeable": null}),
        json!({"number": 7, "state": "closed", "merged": false, "closed_at": "2026-12-01T11:00:00Z"}),
        json!({"number": 7, "state": "open", "merged": false, "mergeable": false}),
        // GitHub computes mergeability in the background: null is not a conflict.
        json!({"number": 7, "state": "open", "merged": false, "mergeable": null}),
    );
    let read = || github("GET", "/repos/acme/widgets/pulls/7");
    let target = pull_ref("acme", "widgets", 7);
    assert_states::<GithubApi>(&target, read, cases).await;
}

#[tokio::test]
async fn a_pull_request_is_updated_and_commented_on_as_github_documents_it() {
    let edit = github("PATCH", "/repos/acme/widgets/pulls/7").and(body_json(
        json!({"title": spec().title, "body": spec().body}),
    ));
    let edited = json_reply(200, json!({"number": 7}));
    let comment = github("POST", "/repos/acme/widgets/issues/7/comments");
    let target = pull_ref("acme", "widgets", 7);
    assert_updated_and_commented::<GithubApi>(&target, (edit, edited), comment).await;
}
