//! The GitLab client against a fake GitLab API on loopback that checks each request the way
//! GitLab documents it: method, URL-encoded project path, query, `PRIVATE-TOKEN` and the JSON
//! body.

use serde_json::json;
use wiremock::matchers::{body_json, query_param};
use wiremock::{MockBuilder, ResponseTemplate};

use super::*;
use crate::forge::AnyForge;
use crate::forge::Forge;
use crate::forge::test_harness::{
    self, ApiUrlChecks, BRANCH, FakeApi, TITLE, assert_api_url_checks, assert_debug_redacted,
    assert_opened, assert_states, assert_updated_and_commented, assert_waits_until_reset, draft_of,
    four_states, json_reply, listed, pull_ref, run, sending_json,
};

const TOKEN: &str = "glpat-test_token_value";
/// `acme/platform/web` as one path segment, as GitLab wants a project id.
const PROJECT: &str = "/api/v4/projects/acme%2Fplatform%2Fweb";

test_harness::fake_api!(GitlabApi: GitlabForge as AnyForge::Gitlab,
    "GitLab" at "gitlab.example.com", api_path: "/api/v4", list: list_open(), create: create());

/// A project in a subgroup, the case GitHub-shaped code gets wrong.
fn spec() -> PullRequestSpec {
    test_harness::spec("acme/platform", "web", "This merge request remediates ...")
}

/// A mock that only matches with GitLab's token header and our User-Agent.
fn gitlab(http_method: &str, request_path: &str) -> MockBuilder {
    test_harness::api_mock(http_method, request_path, "PRIVATE-TOKEN", TOKEN)
}

fn list_open() -> MockBuilder {
    gitlab("GET", &format!("{PROJECT}/merge_requests"))
        .and(query_param("state", "opened"))
        .and(query_param("source_branch", BRANCH))
        .and(query_param("target_branch", "main"))
}

fn create() -> MockBuilder {
    let body = json!({
        "source_branch": BRANCH,
        "target_branch": "main",
        "title": TITLE,
        "description": "This merge request remediates ...",
        "labels": "security,dependencies",
    });
    sending_json(gitlab("POST", &format!("{PROJECT}/merge_requests")), body)
}

fn mr_json(iid: u64) -> serde_json::Value {
    json!({
        "id": 1000 + iid,
        "iid": iid,
        "project_id": 42,
        "title": TITLE,
        "state": "opened",
        "source_branch": BRANCH,
        "target_branch": "main",
        "web_url": format!("https://gitlab.example.com/acme/platform/web/-/merge_requests/{iid}"),
    })
}

/// The answer creating merge request `iid`.
fn created(iid: u64) -> ResponseTemplate {
    json_reply(201, mr_json(iid))
}

/// GitLab's 409 when a merge request of the branch already exists (`!iid`).
fn already_exists(iid: u64) -> ResponseTemplate {
    json_reply(
        409,
        json!({
            "message": [format!("Another open merge request already exists for this source branch: !{iid}")],
        }),
    )
}

#[tokio::test]
async fn creates_a_labelled_merge_request_in_a_subgroup_project() {
    let fake = Fake::start().await;
    fake.serve_once(list_open(), listed(json!([]))).await;
    fake.serve_once(create(), created(7)).await;

    let forge = AnyForge::Gitlab(fake.client());
    assert_eq!(forge.name(), "gitlab");
    let mr = forge.open_or_reuse(&spec()).await;
    let url = "https://gitlab.example.com/acme/platform/web/-/merge_requests/7";
    assert_opened(mr, 7, url, false);
    // The token travels only in PRIVATE-TOKEN, never as a bearer or in the URL.
    for request in fake.server.received_requests().await.unwrap_or_default() {
        assert!(!request.headers.contains_key("authorization"));
        assert!(!request.url.as_str().contains(TOKEN));
    }
}

#[tokio::test]
async fn a_draft_gets_the_draft_title_prefix_and_no_labels_means_no_labels_field() {
    let fake = Fake::start().await;
    let list_develop = gitlab("GET", &format!("{PROJECT}/merge_requests"))
        .and(query_param("target_branch", "develop"));
    fake.serve(list_develop, listed(json!([]))).await;
    let create_draft = gitlab("POST", &format!("{PROJECT}/merge_requests")).and(body_json(json!({
        "source_branch": BRANCH,
        "target_branch": "develop",
        "title": "Draft: t",
        "description": "b",
    })));
    fake.serve_once(create_draft, created(5)).await;

    let spec = PullRequestSpec {
        base_branch: "develop".to_owned(),
        ..draft_of(spec())
    };
    assert_eq!(fake.opened_spec(&spec).await, Ok(Some((5, false))));
}

#[test]
fn draft_prefix_is_not_doubled_and_comma_labels_are_dropped() {
    assert_eq!(wire::draft_title(DRAFT_PREFIX, "fix x"), "Draft: fix x");
    assert_eq!(
        wire::draft_title(DRAFT_PREFIX, "Draft: fix x"),
        "Draft: fix x"
    );
    assert_eq!(
        label_list(&["security".to_owned(), "a,b".to_owned(), " deps ".to_owned()]),
        Some("security,deps".to_owned())
    );
    assert_eq!(label_list(&["x,y".to_owned()]), None);
    assert_eq!(label_list(&[]), None);
}

#[tokio::test]
async fn reuses_an_open_merge_request_without_creating() {
    let fake = Fake::listing(listed(json!([mr_json(9), mr_json(3)]))).await;
    fake.assert_reuses(
        9,
        "https://gitlab.example.com/acme/platform/web/-/merge_requests/9",
    )
    .await;
}

#[tokio::test]
async fn a_listed_merge_request_from_another_branch_is_not_reused() {
    let fake = Fake::start().await;
    let mut other = mr_json(4);
    other["source_branch"] = json!("feature/unrelated");
    fake.serve(list_open(), listed(json!([other]))).await;
    fake.serve_once(create(), created(8)).await;
    assert_eq!(fake.opened().await, Ok(Some((8, false))));
}

#[tokio::test]
async fn duplicate_409_lists_again_and_reuses() {
    let fake = Fake::start().await;
    // The first listing races with another worker and sees nothing; the second finds its MR.
    fake.serve_first(list_open(), listed(json!([]))).await;
    fake.serve_once(list_open(), listed(json!([mr_json(11)])))
        .await;
    fake.serve_once(create(), already_exists(11)).await;

    assert_eq!(fake.opened().await, Ok(Some((11, true))));
}

#[tokio::test]
async fn duplicate_409_but_nothing_listed_is_transient() {
    let fake = Fake::start().await;
    fake.serve_times(list_open(), listed(json!([])), 2).await;
    fake.serve(create(), already_exists(2)).await;
    let (message, _) = fake.transient().await;
    assert!(message.contains("already exists"), "{message}");
}

#[tokio::test]
async fn validation_errors_are_permanent_with_gitlabs_message() {
    let invalid = json!({"message": {"source_branch": ["does not exist"]}});
    let message = Fake::creating_refused(422, invalid).await;
    assert!(message.contains("422"), "{message}");
    assert!(
        message.contains("source_branch does not exist"),
        "{message}"
    );

    let bad = json!({"error": "title is missing"});
    let message = Fake::creating_refused(400, bad).await;
    assert!(
        message.contains("400") && message.contains("title is missing"),
        "{message}"
    );
}

#[tokio::test]
async fn too_many_requests_without_retry_after_waits_until_the_reset() {
    // Without Retry-After, GitLab's RateLimit-Reset (a Unix time) says when.
    assert_waits_until_reset::<GitlabApi>(90, |reset| {
        ResponseTemplate::new(429).insert_header("RateLimit-Reset", reset)
    })
    .await;
}

#[tokio::test]
async fn a_top_level_project_and_a_trailing_slash_in_api_url() {
    let fake = Fake::start().await;
    let top_level = "/api/v4/projects/acme%2Fweb/merge_requests";
    fake.serve_once(gitlab("GET", top_level), listed(json!([])))
        .await;
    fake.serve_once(gitlab("POST", top_level), created(1)).await;
    let spec = PullRequestSpec {
        owner: "acme".to_owned(),
        ..spec()
    };
    let forge = GitlabApi::at(&format!("{}/api/v4/", fake.server.uri()));
    let mr = run(&forge, &spec).await;
    assert_eq!(mr.map(|m| m.map(|m| m.number)), Ok(Some(1)));
}

#[test]
fn api_url_validation_and_redacted_debug() {
    assert_api_url_checks::<GitlabApi>(&ApiUrlChecks {
        kept: ("https://gitlab.com/api/v4", "https://gitlab.com/api/v4"),
        clear_text: "http://gitlab.example.com/api/v4",
        refused: &[("https://u:p@gitlab.example.com/api/v4", false)],
    });
    assert_debug_redacted(&GitlabApi::at("https://gitlab.example.com/api/v4"), TOKEN);
}

#[tokio::test]
async fn the_state_of_a_merge_request_is_read_as_gitlab_documents_it() {
    let one = format!("{PROJECT}/merge_requests/17");
    let mut cases = four_states(
        json!({"iid": 17, "state": "merged", "merged_at": "2026-12-01T10:00:00Z", "has_conflicts": false}),
        json!({"iid": 17, "state": "closed", "closed_at": "2026-12-01T11:00:00Z"}),
        json!({"iid": 17, "state": "opened", "has_conflicts": true}),
        json!({"iid": 17, "state": "opened", "has_conflicts": false}),
    );
    cases.push((json!({"iid": 17, "state": "locked"}), ObservedState::Open));
    let target = pull_ref("acme/platform", "web", 17);
    assert_states::<GitlabApi>(&target, || gitlab("GET", &one), cases).await;
}

#[tokio::test]
async fn a_merge_request_is_updated_and_commented_on_as_gitlab_documents_it() {
    let edit = gitlab("PUT", &format!("{PROJECT}/merge_requests/17")).and(body_json(
        json!({"title": TITLE, "description": "This merge request remediates ..."}),
    ));
    let edited = json_reply(200, json!({"iid": 17}));
    let comment = gitlab("POST", &format!("{PROJECT}/merge_requests/17/notes"));
    let target = pull_ref("acme/platform", "web", 17);
    assert_updated_and_commented::<GitlabApi>(&target, (edit, edited), comment).await;
}
