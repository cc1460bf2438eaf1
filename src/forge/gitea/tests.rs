//! The Gitea/Forgejo client against a fake Gitea API on loopback that checks each request the
//! way Gitea documents it: method, path, query, `Authorization: token` and the JSON body.

use serde_json::json;
use wiremock::matchers::{body_json, path, query_param};
use wiremock::{MockBuilder, ResponseTemplate};

use super::*;
use crate::forge::AnyForge;
use crate::forge::Forge;
use crate::forge::test_harness::{
    self, ApiUrlChecks, BRANCH, FakeApi, TITLE, assert_api_url_checks, assert_debug_redacted,
    assert_mentions, assert_opened, assert_states, assert_updated_and_commented, draft_of,
    four_states, json_reply, never, pull_ref, sending_json,
};

const TOKEN: &str = "0123456789abcdef0123456789abcdef01234567";
const REPO: &str = "/api/v1/repos/acme/widgets";

test_harness::fake_api!(GiteaApi: GiteaForge as AnyForge::Gitea, "Gitea" at "gitea.example.com",
    api_path: "/api/v1", list: list_open(1), create: create(),
    nothing_listed: page(json!([]), 0));

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
    let body = json!({
        "head": BRANCH,
        "base": "main",
        "title": TITLE,
        "body": "This pull request remediates ...",
    });
    sending_json(gitea("POST", &format!("{REPO}/pulls")), body)
}

fn labels() -> MockBuilder {
    gitea("GET", &format!("{REPO}/labels"))
}

/// The request that sets the labels of pull request `number`.
fn set_labels(number: u64) -> MockBuilder {
    gitea("POST", &format!("{REPO}/issues/{number}/labels"))
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
    json_reply(201, ours(number))
}

fn labels_json() -> serde_json::Value {
    json!([
        {"id": 3, "name": "bug", "color": "ee0701"},
        {"id": 7, "name": "Security", "color": "b60205"},
        {"id": 9, "name": "security", "color": "b60205"},
    ])
}

/// A fake that lists nothing and creates pull request `number` however often asked.
async fn creates(number: u64) -> Fake {
    let fake = Fake::start().await;
    fake.serve(list_open(1), page(json!([]), 0)).await;
    fake.serve(create(), created(number)).await;
    fake
}

#[tokio::test]
async fn creates_a_pull_request_then_labels_it_by_id_skipping_unknown_names() {
    let fake = Fake::start().await;
    fake.serve_once(list_open(1), page(json!([]), 0)).await;
    fake.serve_once(create(), created(42)).await;
    fake.serve_once(
        labels().and(query_param("page", "1")),
        page(labels_json(), 3),
    )
    .await;
    // "security" matches id 9 exactly (not "Security", 7); "dependencies" does not exist.
    fake.serve_once(
        set_labels(42).and(body_json(json!({"labels": [9]}))),
        json_reply(200, json!([{"id": 9}])),
    )
    .await;

    let forge = AnyForge::Gitea(fake.client());
    assert_eq!(forge.name(), "gitea");
    let pull = forge.open_or_reuse(&spec()).await;
    let url = "https://gitea.example.com/acme/widgets/pulls/42";
    assert_opened(pull, 42, url, false);
}

#[tokio::test]
async fn labels_that_all_do_not_exist_mean_no_label_call() {
    let fake = creates(4).await;
    fake.serve_once(labels(), page(json!([{"id": 3, "name": "bug"}]), 1))
        .await;
    never(path(format!("{REPO}/issues/4/labels")), &fake.server).await;
    assert_eq!(fake.opened().await, Ok(Some((4, false))));
}

#[tokio::test]
async fn a_label_failure_does_not_fail_the_pull_request() {
    let fake = creates(6).await;
    fake.serve(labels(), page(labels_json(), 3)).await;
    let forbidden = json_reply(403, json!({"message": "forbidden"}));
    fake.serve_once(set_labels(6), forbidden).await;
    assert_eq!(fake.opened().await, Ok(Some((6, false))));

    // Nor does a label list that cannot be read.
    let fake = creates(6).await;
    fake.serve_once(labels(), ResponseTemplate::new(500)).await;
    assert_eq!(fake.opened().await, Ok(Some((6, false))));
}

#[tokio::test]
async fn a_draft_gets_the_wip_title_prefix() {
    let fake = Fake::start().await;
    fake.serve(list_open(1), page(json!([]), 0)).await;
    let create_draft = gitea("POST", &format!("{REPO}/pulls")).and(body_json(json!({
        "head": BRANCH, "base": "main", "title": "WIP: t", "body": "b",
    })));
    fake.serve_once(create_draft, created(5)).await;
    never(path(format!("{REPO}/labels")), &fake.server).await;
    let pull = fake.open_spec(&draft_of(spec())).await;
    assert_eq!(pull.map(|p| p.map(|p| p.number)), Ok(Some(5)));
    assert_eq!(wire::draft_title(DRAFT_PREFIX, "WIP: t"), "WIP: t");
}

#[tokio::test]
async fn reuses_the_open_pull_request_of_this_branch_found_on_a_later_page() {
    let fake = Fake::start().await;
    // Page 1 holds someone's fork with the same branch name, another branch, and our branch
    // into another base: none of them is ours.
    let mut first: Vec<serde_json::Value> = vec![
        pull_json(1, BRANCH, "mallory/widgets", "main"),
        pull_json(2, "feature/x", "acme/widgets", "main"),
        pull_json(3, BRANCH, "acme/widgets", "release-1"),
    ];
    first.extend((100..147).map(|n| pull_json(n, "feature/y", "acme/widgets", "main")));
    fake.serve_once(list_open(1), page(json!(first), 52)).await;
    fake.serve_once(list_open(2), page(json!([ours(17)]), 52))
        .await;
    fake.assert_reuses(17, "https://gitea.example.com/acme/widgets/pulls/17")
        .await;
}

#[tokio::test]
async fn a_fork_using_our_branch_name_is_not_reused() {
    let fake = Fake::start().await;
    let fork = pull_json(1, BRANCH, "mallory/widgets", "main");
    fake.serve_once(list_open(1), page(json!([fork]), 1)).await;
    fake.serve_once(create(), created(2)).await;
    fake.serve(labels(), page(json!([]), 0)).await;
    assert_eq!(fake.opened().await, Ok(Some((2, false))));
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
        let fake = Fake::start().await;
        // The first listing races with another worker and sees nothing; the second finds it.
        fake.serve_first(list_open(1), page(json!([]), 0)).await;
        fake.serve_once(list_open(1), page(json!([ours(11)]), 1))
            .await;
        let exists = json_reply(
            status,
            json!({"message": message, "url": "https://gitea.example.com/api/swagger"}),
        );
        fake.serve_once(create(), exists).await;
        never(path(format!("{REPO}/labels")), &fake.server).await;

        assert_eq!(fake.opened().await, Ok(Some((11, true))), "status {status}");
    }
}

#[tokio::test]
async fn duplicate_but_nothing_listed_is_transient_and_other_422_is_permanent() {
    let fake = Fake::start().await;
    fake.serve_times(list_open(1), page(json!([]), 0), 2).await;
    let exists = json!({"message": "pull request already exists for these targets"});
    fake.serve(create(), json_reply(409, exists)).await;
    let (message, _) = fake.transient().await;
    assert!(message.contains("already exists"), "{message}");

    let fake = Fake::creating(json_reply(
        422,
        json!({
            "message": "There are no changes between the head and the base",
            "url": "https://gitea.example.com/api/swagger",
        }),
    ))
    .await;
    let message = fake.permanent().await;
    assert_mentions(&message, &["422", "no changes between"]);
}

#[test]
fn api_url_validation_and_redacted_debug() {
    assert_api_url_checks::<GiteaApi>(&ApiUrlChecks {
        kept: (
            "https://gitea.example.com/api/v1/",
            "https://gitea.example.com/api/v1",
        ),
        clear_text: "http://gitea.example.com/api/v1",
        refused: &[],
    });
    assert_debug_redacted(&GiteaApi::at("https://gitea.example.com/api/v1"), TOKEN);
}

#[tokio::test]
async fn the_state_of_a_pull_request_is_read_as_gitea_documents_it() {
    let one = format!("{REPO}/pulls/3");
    let cases = four_states(
        json!({"number": 3, "state": "closed", "merged": true, "merged_at": "2026-12-01T10:00:00Z", "mergeable": false}),
        json!({"number": 3, "state": "closed", "merged": false, "closed_at": "2026-12-01T11:00:00Z"}),
        json!({"number": 3, "state": "open", "merged": false, "mergeable": false}),
        json!({"number": 3, "state": "open", "merged": false, "mergeable": true}),
    );
    let target = pull_ref("acme", "widgets", 3);
    assert_states::<GiteaApi>(&target, || gitea("GET", &one), cases).await;
}

#[tokio::test]
async fn a_pull_request_is_updated_and_commented_on_as_gitea_documents_it() {
    let edit = gitea("PATCH", &format!("{REPO}/pulls/3"))
        .and(body_json(json!({"title": TITLE, "body": spec().body})));
    let edited = json_reply(201, json!({"number": 3}));
    let comment = gitea("POST", &format!("{REPO}/issues/3/comments"));
    let target = pull_ref("acme", "widgets", 3);
    assert_updated_and_commented::<GiteaApi>(&target, (edit, edited), comment).await;
}
