//! The checks every forge client passes alike, each run once for every forge: refused tokens,
//! missing projects and forbidden creates are permanent; server errors and rate limits are
//! transient with the wait the forge asks for; a redirect to another host, an unreachable API
//! and a repository path the forge cannot hold are refused. What differs between the forges
//! (their answers, words and paths) is the data each check is given.

use std::time::Duration;

use serde_json::json;
use wiremock::ResponseTemplate;

use super::gitea::tests::GiteaApi;
use super::github::tests::GithubApi;
use super::gitlab::tests::GitlabApi;
use super::test_harness::{
    assert_owners_refused, assert_redirect_elsewhere_refused, assert_refusals,
    assert_transient_answers, assert_unreachable_is_transient, json_reply,
};

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
    assert_refusals::<GitlabApi>(
        (json!({"message": "401 Unauthorized"}), "401 Unauthorized"),
        (
            json!({"message": "404 Project Not Found"}),
            &["404", "acme/platform/web", "gitlab.example.com"],
        ),
        (
            json!({"message": "403 Forbidden"}),
            &["403 Forbidden", "Developer access"],
        ),
    )
    .await;
    assert_refusals::<GiteaApi>(
        (
            json!({"message": "token is required", "url": "https://gitea.example.com/api/swagger"}),
            "token is required",
        ),
        (
            json!({"errors": [], "message": "not found"}),
            &["404", "acme/widgets"],
        ),
        (
            json!({"message": "token does not have at least one of required scope(s): [write:repository]"}),
            &["403", "write:repository"],
        ),
    )
    .await;
}

#[tokio::test]
async fn server_errors_and_rate_limits_are_transient() {
    let bad_gateway = || ResponseTemplate::new(502).set_body_string("<html>Bad gateway</html>");
    let secondary_limit = "You have exceeded a secondary rate limit.";
    let a_few_minutes =
        format!("{secondary_limit} Please wait a few minutes before you try again.");
    assert_transient_answers::<GithubApi>(vec![
        (bad_gateway(), &["502"], None),
        (ResponseTemplate::new(500), &[], None),
        // A 429 with Retry-After waits as told.
        (
            ResponseTemplate::new(429)
                .insert_header("retry-after", "30")
                .set_body_json(json!({"message": secondary_limit})),
            &["rate limit"],
            Some(Duration::from_secs(30)),
        ),
        // A secondary rate limit 403 without headers waits a minute.
        (
            json_reply(403, json!({"message": a_few_minutes})),
            &[],
            Some(Duration::from_secs(60)),
        ),
    ])
    .await;
    assert_transient_answers::<GitlabApi>(vec![
        (bad_gateway(), &["502"], None),
        (
            ResponseTemplate::new(503).insert_header("Retry-After", "12"),
            &[],
            Some(Duration::from_secs(12)),
        ),
        (
            ResponseTemplate::new(429)
                .insert_header("Retry-After", "30")
                .insert_header("RateLimit-Limit", "600")
                .insert_header("RateLimit-Remaining", "0")
                .set_body_string("Retry later\n"),
            &["rate limit"],
            Some(Duration::from_secs(30)),
        ),
    ])
    .await;
    let seven_seconds = ResponseTemplate::new(429).insert_header("Retry-After", "7");
    assert_transient_answers::<GiteaApi>(vec![
        (
            ResponseTemplate::new(500).set_body_string("internal error"),
            &["500"],
            None,
        ),
        (seven_seconds, &["rate limit"], Some(Duration::from_secs(7))),
        // Without Retry-After, a minute.
        (
            ResponseTemplate::new(429),
            &[],
            Some(Duration::from_secs(60)),
        ),
    ])
    .await;
}

#[tokio::test]
async fn a_redirect_to_another_host_is_refused() {
    assert_redirect_elsewhere_refused::<GithubApi>(302, "/repos/acme/widgets/pulls").await;
    let merge_requests = "/api/v4/projects/acme%2Fplatform%2Fweb/merge_requests";
    assert_redirect_elsewhere_refused::<GitlabApi>(302, merge_requests).await;
    assert_redirect_elsewhere_refused::<GiteaApi>(307, "/api/v1/repos/acme/widgets/pulls").await;
}

#[tokio::test]
async fn an_unreachable_api_is_transient() {
    assert_unreachable_is_transient::<GithubApi>().await;
    assert_unreachable_is_transient::<GitlabApi>().await;
    assert_unreachable_is_transient::<GiteaApi>().await;
}

/// GitHub and Gitea hold OWNER/NAME only; GitLab wants a group and allows subgroups.
#[tokio::test]
async fn a_path_the_forge_cannot_hold_is_refused_before_any_request() {
    assert_owners_refused::<GithubApi>(&["group/subgroup"], "OWNER/NAME").await;
    let groupless = ["", "acme//sub", "acme/.."];
    assert_owners_refused::<GitlabApi>(&groupless, "GROUP[/SUBGROUP...]/NAME").await;
    assert_owners_refused::<GiteaApi>(&["group/subgroup"], "OWNER/NAME").await;
}
