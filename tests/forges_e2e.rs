//! GitLab and Gitea/Forgejo end to end: real intake, Postgres, RabbitMQ, worker and a
//! `git http-backend` server whose basic auth takes each forge's default git user name; the
//! forge API is a fake that checks requests as GitLab's v4 and Gitea's v1 APIs document them.

mod support;

use std::time::Duration;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use remediator::db::schema::assessments;
use remediator::forge::ForgeKind;
use remediator::pr_text::branch_name;
use serde_json::{Value, json};
use support::remediation::{FORGE_TOKEN, PACKAGE_JSON, World, WorldOptions};
use wiremock::matchers::{body_json, body_partial_json, header, method, path, query_param};
use wiremock::{Mock, ResponseTemplate};

const END: Duration = Duration::from_secs(90);

fn branch() -> String {
    branch_name("npm", "lodash")
}

/// The requests the fake forge received with this method and path, bodies decoded.
async fn requests(world: &World, http_method: &str, request_path: &str) -> Vec<Value> {
    world
        .github
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.method.as_str() == http_method && r.url.path() == request_path)
        .map(|r| serde_json::from_slice(&r.body).unwrap_or(Value::Null))
        .collect()
}

/// What every forge run must leave behind: the branch with exactly the fix, the operation's
/// output naming the forge and the request the fake returned, the assessment written back.
async fn assert_succeeded(world: &World, op: &Value, forge: &str, url: &str, number: i64) {
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op}");
    let output = &op["output"];
    assert_eq!(output["forge"], forge, "{op}");
    assert_eq!(output["pr_url"], url, "{op}");
    assert_eq!(output["pr_number"], number, "{op}");
    assert_eq!(output["pr_reused"], false, "{op}");
    assert_eq!(output["branch"], branch(), "{op}");
    assert_eq!(output["push"], "pushed", "{op}");

    let manifest = world
        .file_on_branch(&branch(), "package.json")
        .expect("branch pushed to the git server");
    assert_eq!(manifest, PACKAGE_JSON.replace("^4.17.20", "^4.17.21"));
    assert_eq!(
        world.git.git("acme/web", &["rev-parse", &branch()]).trim(),
        output["commit"].as_str().unwrap_or_default()
    );

    let mut conn = world.app.pool.get().await.unwrap();
    let (written_url, written_number): (Option<String>, Option<i32>) = assessments::table
        .find(world.catalog.affected)
        .select((
            assessments::remediation_pr_url,
            assessments::remediation_pr_number,
        ))
        .first(&mut conn)
        .await
        .unwrap();
    assert_eq!(written_url.as_deref(), Some(url));
    assert_eq!(written_number.map(i64::from), Some(number));
    assert!(!op.to_string().contains(FORGE_TOKEN));
}

#[tokio::test]
async fn gitlab_merge_request_end_to_end() {
    let world = World::start(WorldOptions {
        forge_kind: ForgeKind::Gitlab,
        ..Default::default()
    })
    .await;
    let project = "/api/v4/projects/acme%2Fweb/merge_requests";
    Mock::given(method("GET"))
        .and(path(project))
        .and(header("private-token", FORGE_TOKEN))
        .and(query_param("state", "opened"))
        .and(query_param("source_branch", branch().as_str()))
        .and(query_param("target_branch", "main"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&world.github)
        .await;
    Mock::given(method("POST"))
        .and(path(project))
        .and(header("private-token", FORGE_TOKEN))
        .and(body_partial_json(json!({
            "source_branch": branch(),
            "target_branch": "main",
            "labels": "security,dependencies",
        })))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "id": 90017,
            "iid": 17,
            "state": "opened",
            "source_branch": branch(),
            "target_branch": "main",
            "web_url": "https://gitlab.example/acme/web/-/merge_requests/17",
        })))
        .expect(1)
        .named("create merge request")
        .mount(&world.github)
        .await;

    let id = world.request(world.catalog.affected).await;
    let op = world.wait_for_end(id, END).await;
    assert_succeeded(
        &world,
        &op,
        "gitlab",
        "https://gitlab.example/acme/web/-/merge_requests/17",
        17,
    )
    .await;

    let created = requests(&world, "POST", project).await;
    assert_eq!(created.len(), 1, "exactly one merge request created");
    let title = created[0]["title"].as_str().unwrap_or_default();
    assert!(
        title.contains("lodash") && title.contains("4.17.21") && !title.starts_with("Draft:"),
        "{title}"
    );
    let description = created[0]["description"].as_str().unwrap_or_default();
    assert!(description.contains("GHSA-35jh-r3h4-6jhm"), "{description}");
    world.stop().await;
}

#[tokio::test]
async fn gitea_pull_request_end_to_end() {
    let world = World::start(WorldOptions {
        forge_kind: ForgeKind::Gitea,
        ..Default::default()
    })
    .await;
    let auth = format!("token {FORGE_TOKEN}");
    let pulls = "/api/v1/repos/acme/web/pulls";
    Mock::given(method("GET"))
        .and(path(pulls))
        .and(header("authorization", auth.as_str()))
        .and(query_param("state", "open"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("X-Total-Count", "0")
                .set_body_json(json!([])),
        )
        .mount(&world.github)
        .await;
    Mock::given(method("POST"))
        .and(path(pulls))
        .and(header("authorization", auth.as_str()))
        .and(body_partial_json(json!({"head": branch(), "base": "main"})))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "id": 4003,
            "number": 3,
            "state": "open",
            "html_url": "https://gitea.example/acme/web/pulls/3",
        })))
        .expect(1)
        .named("create pull request")
        .mount(&world.github)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/repos/acme/web/labels"))
        .and(header("authorization", auth.as_str()))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("X-Total-Count", "3")
                .set_body_json(json!([
                    {"id": 4, "name": "bug"},
                    {"id": 5, "name": "security"},
                    {"id": 6, "name": "dependencies"},
                ])),
        )
        .mount(&world.github)
        .await;
    Mock::given(method("POST"))
        .and(path("/api/v1/repos/acme/web/issues/3/labels"))
        .and(header("authorization", auth.as_str()))
        .and(body_json(json!({"labels": [5, 6]})))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .expect(1)
        .named("label pull request")
        .mount(&world.github)
        .await;

    let id = world.request(world.catalog.affected).await;
    let op = world.wait_for_end(id, END).await;
    assert_succeeded(
        &world,
        &op,
        "gitea",
        "https://gitea.example/acme/web/pulls/3",
        3,
    )
    .await;

    let created = requests(&world, "POST", pulls).await;
    assert_eq!(created.len(), 1, "exactly one pull request created");
    let title = created[0]["title"].as_str().unwrap_or_default();
    assert!(
        title.contains("lodash") && !title.starts_with("WIP:"),
        "{title}"
    );
    assert!(
        created[0]["body"]
            .as_str()
            .is_some_and(|b| b.contains(&id.to_string())),
        "the body names the operation"
    );
    world.stop().await;
}
