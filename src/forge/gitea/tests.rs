//! The Gitea/Forgejo client against a fake Gitea API on loopback that checks each request the
//! way Gitea documents it: method, path, query, `Authorization: token` and the JSON body.

use std::time::Duration;

use secrecy::SecretString;
use serde_json::json;
use wiremock::matchers::{body_json, header, method, path, query_param};
use wiremock::{MockBuilder, MockServer, ResponseTemplate};

use super::*;
use crate::forge::AnyForge;
use crate::forge::Forge;
use crate::forge::test_harness::{
    self, BRANCH, TITLE, assert_debug_redacted, assert_redirect_refused, assert_states,
    assert_token_refused, assert_updated_and_commented, built, endpoint, never, permanent,
    pull_ref, refusal, run, transient, unsent_endpoint,
};

const TOKEN: &str = "0123456789abcdef0123456789abcdef01234567";
const REPO: &str = "/api/v1/repos/acme/widgets";

fn forge_at(api_url: &str) -> GiteaForge {
    built(GiteaForge::new(
        endpoint(api_url, "gitea.example.com"),
        SecretString::from(TOKEN),
    ))
}

fn api(server: &MockServer) -> String {
    format!("{}/api/v1", server.uri())
}

fn spec() -> PullRequestSpec {
    test_harness::spec("acme", "widgets", "This pull request remediates ...")
}

/// A mock that only matches with Gitea's token header and our User-Agent.
fn gitea(http_method: &str, request_path: &str) -> MockBuilder {
    let token = format!("token {TOKEN}");
    test_harness::api_mock(http_method, request_path, "Authorization", &token)
}

fn list_open(page: u32) -> MockBuilder {
    gitea("GET", &format!("{REPO}/pulls"))
        .and(query_param("state", "open"))
        .and(query_param("page", page.to_string().as_str()))
        .and(query_param("limit", "50"))
}

/// A page of the pull list with the total Gitea reports in `X-Total-Count`.
fn page(pulls: serde_json::Value, total: usize) -> ResponseTemplate {
    ResponseTemplate::new(200)
        .insert_header("X-Total-Count", total.to_string().as_str())
        .set_body_json(pulls)
}

fn create() -> MockBuilder {
    gitea("POST", &format!("{REPO}/pulls"))
        .and(header("Content-Type", "application/json"))
        .and(body_json(json!({
            "head": BRANCH,
            "base": "main",
            "title": TITLE,
            "body": "This pull request remediates ...",
        })))
}

fn pull_json(number: u64, head: &str, head_repo: &str, base: &str) -> serde_json::Value {
    json!({
        "id": 5000 + number,
        "number": number,
        "html_url": format!("https://gitea.example.com/acme/widgets/pulls/{number}"),
        "url": format!("https://gitea.example.com/acme/widgets/pulls/{number}"),
        "state": "open",
        "title": "something",
        "head": {"label": head, "ref": head, "sha": "0d1c", "repo_id": 2,
                 "repo": {"id": 2, "full_name": head_repo}},
        "base": {"label": base, "ref": base, "sha": "9a8b", "repo_id": 1,
                 "repo": {"id": 1, "full_name": "acme/widgets"}},
    })
}

fn ours(number: u64) -> serde_json::Value {
    pull_json(number, BRANCH, "acme/widgets", "main")
}

fn created(number: u64) -> ResponseTemplate {
    ResponseTemplate::new(201).set_body_json(ours(number))
}

fn labels_json() -> serde_json::Value {
    json!([
        {"id": 3, "name": "bug", "color": "ee0701"},
        {"id": 7, "name": "Security", "color": "b60205"},
        {"id": 9, "name": "security", "color": "b60205"},
    ])
}

#[tokio::test]
async fn creates_a_pull_request_then_labels_it_by_id_skipping_unknown_names() {
    let server = MockServer::start().await;
    list_open(1)
        .respond_with(page(json!([]), 0))
        .expect(1)
        .mount(&server)
        .await;
    create()
        .respond_with(created(42))
        .expect(1)
        .mount(&server)
        .await;
    gitea("GET", &format!("{REPO}/labels"))
        .and(query_param("page", "1"))
        .respond_with(page(labels_json(), 3))
        .expect(1)
        .mount(&server)
        .await;
    // "security" matches id 9 exactly (not "Security", 7); "dependencies" does not exist.
    gitea("POST", &format!("{REPO}/issues/42/labels"))
        .and(body_json(json!({"labels": [9]})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([{"id": 9}])))
        .expect(1)
        .mount(&server)
        .await;

    let forge = AnyForge::Gitea(forge_at(&api(&server)));
    assert_eq!(forge.name(), "gitea");
    let pull = forge.open_or_reuse(&spec()).await;
    assert_eq!(
        pull,
        Ok(Some(PullRequest {
            number: 42,
            url: "https://gitea.example.com/acme/widgets/pulls/42".to_owned(),
            reused: false,
        }))
    );
}

#[tokio::test]
async fn labels_that_all_do_not_exist_mean_no_label_call() {
    let server = MockServer::start().await;
    list_open(1)
        .respond_with(page(json!([]), 0))
        .mount(&server)
        .await;
    create().respond_with(created(4)).mount(&server).await;
    gitea("GET", &format!("{REPO}/labels"))
        .respond_with(page(json!([{"id": 3, "name": "bug"}]), 1))
        .expect(1)
        .mount(&server)
        .await;
    never(path(format!("{REPO}/issues/4/labels")), &server).await;
    let pull = run(&forge_at(&api(&server)), &spec()).await;
    assert_eq!(pull.map(|p| p.map(|p| p.number)), Ok(Some(4)));
}

#[tokio::test]
async fn a_label_failure_does_not_fail_the_pull_request() {
    let server = MockServer::start().await;
    list_open(1)
        .respond_with(page(json!([]), 0))
        .mount(&server)
        .await;
    create().respond_with(created(6)).mount(&server).await;
    gitea("GET", &format!("{REPO}/labels"))
        .respond_with(page(labels_json(), 3))
        .mount(&server)
        .await;
    gitea("POST", &format!("{REPO}/issues/6/labels"))
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({"message": "forbidden"})))
        .expect(1)
        .mount(&server)
        .await;
    let pull = run(&forge_at(&api(&server)), &spec()).await;
    assert_eq!(
        pull.map(|p| p.map(|p| (p.number, p.reused))),
        Ok(Some((6, false)))
    );

    // Nor does a label list that cannot be read.
    let server = MockServer::start().await;
    list_open(1)
        .respond_with(page(json!([]), 0))
        .mount(&server)
        .await;
    create().respond_with(created(6)).mount(&server).await;
    gitea("GET", &format!("{REPO}/labels"))
        .respond_with(ResponseTemplate::new(500))
        .expect(1)
        .mount(&server)
        .await;
    let pull = run(&forge_at(&api(&server)), &spec()).await;
    assert_eq!(pull.map(|p| p.map(|p| p.number)), Ok(Some(6)));
}

#[tokio::test]
async fn a_draft_gets_the_wip_title_prefix() {
    let server = MockServer::start().await;
    list_open(1)
        .respond_with(page(json!([]), 0))
        .mount(&server)
        .await;
    gitea("POST", &format!("{REPO}/pulls"))
        .and(body_json(json!({
            "head": BRANCH, "base": "main", "title": "WIP: t", "body": "b",
        })))
        .respond_with(created(5))
        .expect(1)
        .mount(&server)
        .await;
    never(path(format!("{REPO}/labels")), &server).await;
    let spec = PullRequestSpec {
        title: "t".to_owned(),
        body: "b".to_owned(),
        labels: Vec::new(),
        draft: true,
        ..spec()
    };
    let pull = run(&forge_at(&api(&server)), &spec).await;
    assert_eq!(pull.map(|p| p.map(|p| p.number)), Ok(Some(5)));
    assert_eq!(wire::draft_title(DRAFT_PREFIX, "WIP: t"), "WIP: t");
}

#[tokio::test]
async fn reuses_the_open_pull_request_of_this_branch_found_on_a_later_page() {
    let server = MockServer::start().await;
    // Page 1 holds someone's fork with the same branch name, another branch, and our branch
    // into another base: none of them is ours.
    let mut first: Vec<serde_json::Value> = vec![
        pull_json(1, BRANCH, "mallory/widgets", "main"),
        pull_json(2, "feature/x", "acme/widgets", "main"),
        pull_json(3, BRANCH, "acme/widgets", "release-1"),
    ];
    first.extend((100..147).map(|n| pull_json(n, "feature/y", "acme/widgets", "main")));
    list_open(1)
        .respond_with(page(json!(first), 52))
        .expect(1)
        .mount(&server)
        .await;
    list_open(2)
        .respond_with(page(json!([ours(17)]), 52))
        .expect(1)
        .mount(&server)
        .await;
    never(method("POST"), &server).await;

    let pull = run(&forge_at(&api(&server)), &spec()).await;
    assert_eq!(
        pull,
        Ok(Some(PullRequest {
            number: 17,
            url: "https://gitea.example.com/acme/widgets/pulls/17".to_owned(),
            reused: true,
        }))
    );
}

#[tokio::test]
async fn a_fork_using_our_branch_name_is_not_reused() {
    let server = MockServer::start().await;
    list_open(1)
        .respond_with(page(
            json!([pull_json(1, BRANCH, "mallory/widgets", "main")]),
            1,
        ))
        .expect(1)
        .mount(&server)
        .await;
    create()
        .respond_with(created(2))
        .expect(1)
        .mount(&server)
        .await;
    gitea("GET", &format!("{REPO}/labels"))
        .respond_with(page(json!([]), 0))
        .mount(&server)
        .await;
    let pull = run(&forge_at(&api(&server)), &spec()).await;
    assert_eq!(
        pull.map(|p| p.map(|p| (p.number, p.reused))),
        Ok(Some((2, false)))
    );
}

#[tokio::test]
async fn duplicate_409_or_422_lists_again_and_reuses() {
    for (status, message) in [
        (
            409,
            "pull request already exists for these targets [id: 11, issue_id: 20, head_repo_id: 1, base_repo_id: 1, head_branch: x, base_branch: main]",
        ),
        (422, "Pull request already exists for these targets"),
    ] {
        let server = MockServer::start().await;
        // The first listing races with another worker and sees nothing; the second finds it.
        list_open(1)
            .respond_with(page(json!([]), 0))
            .up_to_n_times(1)
            .expect(1)
            .mount(&server)
            .await;
        list_open(1)
            .respond_with(page(json!([ours(11)]), 1))
            .expect(1)
            .mount(&server)
            .await;
        create()
            .respond_with(ResponseTemplate::new(status).set_body_json(json!({
                "message": message,
                "url": "https://gitea.example.com/api/swagger",
            })))
            .expect(1)
            .mount(&server)
            .await;
        never(path(format!("{REPO}/labels")), &server).await;

        let pull = run(&forge_at(&api(&server)), &spec()).await;
        assert_eq!(
            pull.map(|p| p.map(|p| (p.number, p.reused))),
            Ok(Some((11, true))),
            "status {status}"
        );
    }
}

#[tokio::test]
async fn duplicate_but_nothing_listed_is_transient_and_other_422_is_permanent() {
    let server = MockServer::start().await;
    list_open(1)
        .respond_with(page(json!([]), 0))
        .expect(2)
        .mount(&server)
        .await;
    create()
        .respond_with(
            ResponseTemplate::new(409)
                .set_body_json(json!({"message": "pull request already exists for these targets"})),
        )
        .mount(&server)
        .await;
    let (message, _) = transient(run(&forge_at(&api(&server)), &spec()).await, TOKEN);
    assert!(message.contains("already exists"), "{message}");

    let server = MockServer::start().await;
    list_open(1)
        .respond_with(page(json!([]), 0))
        .mount(&server)
        .await;
    create()
        .respond_with(ResponseTemplate::new(422).set_body_json(json!({
            "message": "There are no changes between the head and the base",
            "url": "https://gitea.example.com/api/swagger",
        })))
        .expect(1)
        .mount(&server)
        .await;
    let message = permanent(run(&forge_at(&api(&server)), &spec()).await, TOKEN);
    assert!(message.contains("422"), "{message}");
    assert!(message.contains("no changes between"), "{message}");
}

#[tokio::test]
async fn unauthorized_is_permanent_and_names_the_host_not_the_token() {
    let server = MockServer::start().await;
    list_open(1)
        .respond_with(ResponseTemplate::new(401).set_body_json(json!({
            "message": "token is required", "url": "https://gitea.example.com/api/swagger",
        })))
        .expect(1)
        .mount(&server)
        .await;
    let message = permanent(run(&forge_at(&api(&server)), &spec()).await, TOKEN);
    assert_token_refused(&message, "Gitea", "token is required", "gitea.example.com");
}

#[tokio::test]
async fn not_found_and_forbidden_are_permanent() {
    let server = MockServer::start().await;
    list_open(1)
        .respond_with(
            ResponseTemplate::new(404).set_body_json(json!({"errors": [], "message": "not found"})),
        )
        .mount(&server)
        .await;
    let message = permanent(run(&forge_at(&api(&server)), &spec()).await, TOKEN);
    assert!(message.contains("404"), "{message}");
    assert!(message.contains("acme/widgets"), "{message}");

    let server = MockServer::start().await;
    list_open(1)
        .respond_with(page(json!([]), 0))
        .mount(&server)
        .await;
    create()
        .respond_with(ResponseTemplate::new(403).set_body_json(json!({
            "message": "token does not have at least one of required scope(s): [write:repository]",
        })))
        .mount(&server)
        .await;
    let message = permanent(run(&forge_at(&api(&server)), &spec()).await, TOKEN);
    assert!(message.contains("403"), "{message}");
    assert!(message.contains("write:repository"), "{message}");
}

#[tokio::test]
async fn server_errors_and_rate_limits_are_transient() {
    let server = MockServer::start().await;
    list_open(1)
        .respond_with(ResponseTemplate::new(500).set_body_string("internal error"))
        .mount(&server)
        .await;
    let (message, retry_after) = transient(run(&forge_at(&api(&server)), &spec()).await, TOKEN);
    assert!(message.contains("500"), "{message}");
    assert_eq!(retry_after, None);

    let server = MockServer::start().await;
    list_open(1)
        .respond_with(ResponseTemplate::new(429).insert_header("Retry-After", "7"))
        .mount(&server)
        .await;
    let (message, retry_after) = transient(run(&forge_at(&api(&server)), &spec()).await, TOKEN);
    assert!(message.contains("rate limit"), "{message}");
    assert_eq!(retry_after, Some(Duration::from_secs(7)));

    let server = MockServer::start().await;
    list_open(1)
        .respond_with(ResponseTemplate::new(429))
        .mount(&server)
        .await;
    let (_, retry_after) = transient(run(&forge_at(&api(&server)), &spec()).await, TOKEN);
    assert_eq!(retry_after, Some(Duration::from_secs(60)));
}

#[tokio::test]
async fn redirect_to_another_host_is_refused() {
    let elsewhere = MockServer::start().await;
    never(method("GET"), &elsewhere).await;
    let server = MockServer::start().await;
    list_open(1)
        .respond_with(ResponseTemplate::new(307).insert_header(
            "location",
            format!("{}{REPO}/pulls", elsewhere.uri()).as_str(),
        ))
        .expect(1)
        .mount(&server)
        .await;
    never(method("POST"), &server).await;
    let message = permanent(run(&forge_at(&api(&server)), &spec()).await, TOKEN);
    assert_redirect_refused(&message);
}

#[tokio::test]
async fn a_nested_path_is_refused_before_any_request() {
    let server = MockServer::start().await;
    never(method("GET"), &server).await;
    let spec = PullRequestSpec {
        owner: "group/subgroup".to_owned(),
        ..spec()
    };
    let message = permanent(run(&forge_at(&api(&server)), &spec).await, TOKEN);
    assert!(message.contains("OWNER/NAME"), "{message}");
}

#[test]
fn api_url_validation_and_redacted_debug() {
    let build = |url: &str, allow_http: bool| {
        GiteaForge::new(
            unsent_endpoint(url, "gitea.example.com", allow_http),
            SecretString::from(TOKEN),
        )
    };
    assert_eq!(
        build("https://gitea.example.com/api/v1/", false)
            .map(|f| f.api_url().to_owned())
            .ok(),
        Some("https://gitea.example.com/api/v1".to_owned())
    );
    let http = refusal(build("http://gitea.example.com/api/v1", false));
    assert!(
        http.contains("clear text") && http.contains("Gitea"),
        "{http}"
    );
    assert_debug_redacted(&forge_at("https://gitea.example.com/api/v1"), TOKEN);
}

#[tokio::test]
async fn the_state_of_a_pull_request_is_read_as_gitea_documents_it() {
    let server = MockServer::start().await;
    let forge = AnyForge::Gitea(forge_at(&api(&server)));
    let one = format!("{REPO}/pulls/3");
    let cases = vec![
        (
            json!({"number": 3, "state": "closed", "merged": true, "merged_at": "2026-12-01T10:00:00Z", "mergeable": false}),
            ObservedState::Merged("2026-12-01T10:00:00Z".parse().ok()),
        ),
        (
            json!({"number": 3, "state": "closed", "merged": false, "closed_at": "2026-12-01T11:00:00Z"}),
            ObservedState::Closed("2026-12-01T11:00:00Z".parse().ok()),
        ),
        (
            json!({"number": 3, "state": "open", "merged": false, "mergeable": false}),
            ObservedState::Conflicting,
        ),
        (
            json!({"number": 3, "state": "open", "merged": false, "mergeable": true}),
            ObservedState::Open,
        ),
    ];
    let target = pull_ref("acme", "widgets", 3);
    assert_states(&server, &forge, &target, || gitea("GET", &one), cases).await;
}

#[tokio::test]
async fn a_pull_request_is_updated_and_commented_on_as_gitea_documents_it() {
    let server = MockServer::start().await;
    let forge = AnyForge::Gitea(forge_at(&api(&server)));
    let edit = gitea("PATCH", &format!("{REPO}/pulls/3"))
        .and(body_json(json!({"title": TITLE, "body": spec().body})));
    let edited = ResponseTemplate::new(201).set_body_json(json!({"number": 3}));
    let comment = gitea("POST", &format!("{REPO}/issues/3/comments"));
    let target = pull_ref("acme", "widgets", 3);
    assert_updated_and_commented(&server, &forge, (&spec(), &target), (edit, edited), comment)
        .await;
}
