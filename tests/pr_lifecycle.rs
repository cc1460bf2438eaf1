//! Issue 14 end to end: one pull request per package fix, and a pull request that stays true
//! after it is opened. Real intake, Postgres, RabbitMQ, workers and git server; the forges are
//! fakes that answer as their APIs document (a stateful GitHub, wiremock GitLab and Gitea) and
//! deliver webhooks signed as they sign them.

mod support;

use std::time::Duration;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use remediator::db::schema::{assessments, remediation_fixes};
use remediator::forge::ForgeKind;
use remediator::pr_text::branch_name;
use remediator::webhooks::verify::sign_hex;
use secrecy::SecretString;
use serde_json::{Value, json};
use support::fake_github::FakeGithub;
use support::remediation::{PACKAGE_JSON, SettingsHook, World, WorldOptions};
use uuid::Uuid;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

const END: Duration = Duration::from_secs(90);
const GITHUB_SECRET: &str = "github-webhook-secret-0123456789";
const GITLAB_SECRET: &str = "gitlab-webhook-token-0123456789";
const GITEA_SECRET: &str = "gitea-webhook-secret-0123456789";
const FIRST: &str = "GHSA-35jh-r3h4-6jhm";

fn lodash_branch() -> String {
    branch_name("npm", "lodash")
}

fn with_webhook_secrets(
    extra: impl FnOnce(&mut remediator::config::Settings) + Send + 'static,
) -> SettingsHook {
    Box::new(move |settings| {
        settings.webhooks.github_secret = Some(SecretString::from(GITHUB_SECRET.to_owned()));
        settings.webhooks.gitlab_secret = Some(SecretString::from(GITLAB_SECRET.to_owned()));
        settings.webhooks.gitea_secret = Some(SecretString::from(GITEA_SECRET.to_owned()));
        // The reconciler is tested on its own; here only webhooks move pull requests.
        settings.reconciler.enabled = false;
        extra(settings);
    })
}

async fn github_world(adjust: SettingsHook, start_worker: bool) -> (World, FakeGithub) {
    let mut world = World::start(WorldOptions {
        start_worker: false,
        adjust: Some(adjust),
        ..Default::default()
    })
    .await;
    let github = FakeGithub::default();
    github.mount(&world.github).await;
    if start_worker {
        world.start_worker();
    }
    (world, github)
}

/// Imports one more AFFECTED finding of the world's project, with any list of fixed versions.
async fn add_advisory(
    world: &World,
    package: &str,
    id: &str,
    installed: &str,
    fixed: &[&str],
) -> Uuid {
    let (finding, assessment) = (Uuid::new_v4(), Uuid::new_v4());
    let file = json!({
        "findings": [{"id": finding, "project_id": world.catalog.project,
            "vulnerability_id": id, "severity": "MEDIUM", "summary": format!("{id} in {package}"),
            "package_name": package, "ecosystem": "npm",
            "installed_version": installed, "fixed_versions": fixed}],
        "assessments": [{"id": assessment, "finding_id": finding, "status": "ASSESSMENT_STATUS_AFFECTED"}]});
    let parsed = remediator::import::parse(
        &file.to_string(),
        &support::app::import_rules(&world.app.settings),
    )
    .unwrap();
    remediator::import::import(&world.app.pool, parsed)
        .await
        .unwrap();
    assessment
}

/// An assessment as the write-back left it.
#[derive(Debug, PartialEq)]
struct WrittenBack {
    status: String,
    remediation_status: Option<String>,
    pr_number: Option<i32>,
    branch: Option<String>,
    fix: Option<Uuid>,
}

async fn written_back(world: &World, assessment: Uuid) -> WrittenBack {
    let mut conn = world.app.pool.get().await.unwrap();
    let (status, remediation_status, pr_number, branch, fix) = assessments::table
        .find(assessment)
        .select((
            assessments::status,
            assessments::remediation_status,
            assessments::remediation_pr_number,
            assessments::remediation_branch_name,
            assessments::remediation_fix_id,
        ))
        .first(&mut conn)
        .await
        .unwrap();
    WrittenBack {
        status,
        remediation_status,
        pr_number,
        branch,
        fix,
    }
}

async fn fix_states(world: &World) -> Vec<(String, Option<String>, Option<i32>)> {
    let mut conn = world.app.pool.get().await.unwrap();
    remediation_fixes::table
        .order(remediation_fixes::package_name)
        .select((
            remediation_fixes::package_name,
            remediation_fixes::state,
            remediation_fixes::pr_number,
        ))
        .load(&mut conn)
        .await
        .unwrap()
}

async fn succeed(world: &World, assessment: Uuid) -> Value {
    let id = world.request(assessment).await;
    let op = world.wait_for_end(id, END).await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op}");
    op
}

async fn deliver(
    world: &World,
    forge: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> (u16, Value) {
    let mut request = world
        .app
        .http
        .post(format!("{}/v1/webhooks/{forge}", world.app.base_url))
        .header("content-type", "application/json")
        .body(body.to_vec());
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A GitHub `pull_request` delivery as GitHub sends it (the fields we read, and some others).
fn github_event(action: &str, number: u64, merged: bool) -> Vec<u8> {
    json!({
        "action": action, "number": number,
        "pull_request": {
            "url": format!("https://api.github.example/repos/acme/web/pulls/{number}"),
            "html_url": format!("https://github.example/acme/web/pull/{number}"),
            "number": number, "state": if action == "reopened" { "open" } else { "closed" },
            "merged": merged,
            "merged_at": if merged { json!("2026-12-01T11:00:00Z") } else { Value::Null },
            "closed_at": if action == "reopened" { Value::Null } else { json!("2026-12-01T11:00:00Z") },
            "head": {"ref": lodash_branch(), "sha": "0123abc"},
            "base": {"ref": "main"}
        },
        "repository": {"full_name": "acme/web", "html_url": "https://github.example/acme/web"},
        "sender": {"login": "maintainer"}
    })
    .to_string()
    .into_bytes()
}

fn github_headers(delivery: &str, body: &[u8], secret: &str) -> Vec<(&'static str, String)> {
    vec![
        ("x-github-event", "pull_request".to_owned()),
        ("x-github-delivery", delivery.to_owned()),
        (
            "x-hub-signature-256",
            format!("sha256={}", sign_hex(secret, body)),
        ),
    ]
}

#[tokio::test]
async fn several_advisories_on_one_package_open_one_pull_request_listing_all() {
    let (world, github) = github_world(with_webhook_secrets(|_| {}), true).await;
    let second = add_advisory(
        &world,
        "lodash",
        "GHSA-29mw-wpgm-hmr9",
        "4.17.20",
        &["4.17.21"],
    )
    .await;
    let third = add_advisory(
        &world,
        "lodash",
        "GHSA-p6mc-m468-0002",
        "4.17.20",
        &["3.10.9", "4.17.22"],
    )
    .await;
    let unfixed = add_advisory(&world, "lodash", "GHSA-none-0000-0003", "4.17.20", &[]).await;
    let express = add_advisory(
        &world,
        "express",
        "GHSA-rv95-896h-c2vc",
        "4.18.2",
        &["4.19.2"],
    )
    .await;

    let op = succeed(&world, world.catalog.affected).await;
    let output = &op["output"];
    assert_eq!(output["pr_reused"], false, "{op}");
    assert_eq!(output["branch"], lodash_branch(), "{op}");
    assert_eq!(
        output["target_version"], "4.17.22",
        "the version that fixes all three: {op}"
    );
    assert_eq!(
        output["advisories"],
        json!(["GHSA-29mw-wpgm-hmr9", FIRST, "GHSA-p6mc-m468-0002"]),
        "{op}"
    );
    assert_eq!(
        output["remaining"][0]["vulnerability_id"], "GHSA-none-0000-0003",
        "{op}"
    );

    // One pull request, listing every advisory it fixes and the one it does not.
    assert_eq!(github.creates(), 1);
    let created = &github.created()[0];
    assert_eq!(created["head"], lodash_branch());
    let title = created["title"].as_str().unwrap();
    assert!(
        title.contains("to 4.17.22")
            && title.contains(FIRST)
            && title.contains("GHSA-29mw-wpgm-hmr9"),
        "{title}"
    );
    let body = created["body"].as_str().unwrap();
    for id in [FIRST, "GHSA-29mw-wpgm-hmr9", "GHSA-p6mc-m468-0002"] {
        assert!(
            body.contains(&format!("[{id}](https://github.com/advisories/{id})")),
            "{id} not listed: {body}"
        );
    }
    assert!(
        body.contains("### Not fixed by this change\n\n- [GHSA-none-0000-0003]"),
        "{body}"
    );
    assert!(
        !body.contains("GHSA-rv95"),
        "another package's advisory leaked in: {body}"
    );
    assert!(
        body.contains("4.17.20 → 4.17.22"),
        "versions are not escaped: {body}"
    );
    assert_eq!(
        world
            .file_on_branch(&lodash_branch(), "package.json")
            .unwrap(),
        PACKAGE_JSON.replace("^4.17.20", "^4.17.22")
    );

    // Every covered assessment is written back to the one pull request; the rest are not.
    let first = written_back(&world, world.catalog.affected).await;
    assert_eq!(first.remediation_status.as_deref(), Some("PR_OPEN"));
    assert_eq!(first.pr_number, Some(1));
    assert_eq!(first.branch.as_deref(), Some(lodash_branch().as_str()));
    assert!(first.fix.is_some());
    for covered in [second, third] {
        assert_eq!(written_back(&world, covered).await, first, "{covered}");
    }
    for untouched in [unfixed, express, world.catalog.not_affected] {
        let row = written_back(&world, untouched).await;
        assert_eq!(
            (row.remediation_status, row.pr_number, row.fix),
            (None, None, None),
            "{untouched}"
        );
    }

    // A trigger for another advisory of the package while the pull request is open reuses it.
    let again = succeed(&world, second).await;
    assert_eq!(again["output"]["pr_reused"], true, "{again}");
    assert_eq!(
        again["output"]["pr_updated"], false,
        "nothing changed: {again}"
    );
    assert_eq!(again["output"]["pr_number"], 1, "{again}");
    assert_eq!(again["output"]["push"], "already_up_to_date", "{again}");
    assert_eq!(github.creates(), 1);
    assert!(github.updates().is_empty());

    // A new advisory needing a higher version raises the same pull request.
    let fourth = add_advisory(
        &world,
        "lodash",
        "GHSA-high-0000-0004",
        "4.17.20",
        &["4.17.23"],
    )
    .await;
    let raised = succeed(&world, fourth).await;
    assert_eq!(raised["output"]["pr_reused"], true, "{raised}");
    assert_eq!(raised["output"]["pr_updated"], true, "{raised}");
    assert_eq!(raised["output"]["push"], "pushed", "{raised}");
    assert_eq!(raised["output"]["target_version"], "4.17.23", "{raised}");
    assert_eq!(github.creates(), 1, "still one pull request");
    let updates = github.updates();
    assert_eq!(updates.len(), 1);
    assert_eq!(updates[0].0, 1);
    let new_title = updates[0].1["title"].as_str().unwrap();
    assert!(new_title.contains("to 4.17.23"), "{new_title}");
    assert!(
        updates[0].1["body"]
            .as_str()
            .unwrap()
            .contains("GHSA-high-0000-0004")
    );
    assert_eq!(
        world
            .file_on_branch(&lodash_branch(), "package.json")
            .unwrap(),
        PACKAGE_JSON.replace("^4.17.20", "^4.17.23")
    );
    for covered in [world.catalog.affected, second, third, fourth] {
        assert_eq!(
            written_back(&world, covered).await.pr_number,
            Some(1),
            "{covered}"
        );
    }
    let branches = world.branches();
    assert_eq!(
        branches
            .iter()
            .filter(|b| b.starts_with("remediator/"))
            .count(),
        1,
        "{branches:?}"
    );
    world.stop().await;
}

/// A step hook that holds each job at the start of its push until `jobs` jobs are there, so
/// they race for the package from the same point (at most 10 s).
fn meet_at_push(jobs: usize) -> remediator::worker::context::StepHook {
    let arrived = std::sync::Arc::new((std::sync::Mutex::new(0usize), std::sync::Condvar::new()));
    std::sync::Arc::new(move |_, step| {
        if step != remediator::lifecycle::Step::Push {
            return;
        }
        let (count, all_here) = &*arrived;
        let mut count = count.lock().unwrap();
        *count += 1;
        all_here.notify_all();
        let _ = all_here
            .wait_timeout_while(count, Duration::from_secs(10), |n| *n < jobs)
            .unwrap();
    })
}

// Multi-threaded: the step hook blocks a runtime thread while the other job catches up.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_workers_racing_on_one_package_open_one_pull_request() {
    let adjust = with_webhook_secrets(|settings| {
        settings.database.pool_size = 12;
        // One job per worker at a time, so the two jobs run on two workers.
        settings.worker.concurrency = 1;
    });
    let mut world = World::start(WorldOptions {
        start_worker: false,
        adjust: Some(adjust),
        ..Default::default()
    })
    .await;
    // A slow forge widens the window in which both jobs are between push and pull request.
    let github = FakeGithub::with_delay(Duration::from_millis(400));
    github.mount(&world.github).await;
    let second = add_advisory(
        &world,
        "lodash",
        "GHSA-29mw-wpgm-hmr9",
        "4.17.20",
        &["4.17.21"],
    )
    .await;

    let meet = meet_at_push(2);
    world.start_worker_with(Some(meet.clone()));
    let other_pool = remediator::db::pool(&world.app.settings.database).unwrap();
    let mut other =
        remediator::commands::worker::build_runner(&world.app.settings, other_pool).unwrap();
    std::sync::Arc::get_mut(&mut other.pipeline)
        .unwrap()
        .before_step = Some(meet);
    let other_shutdown = remediator::shutdown::Shutdown::new();
    let other_worker = tokio::spawn(other.run(other_shutdown.clone()));

    let (a, b) = tokio::join!(world.request(world.catalog.affected), world.request(second));
    let (a, b) = tokio::join!(world.wait_for_end(a, END), world.wait_for_end(b, END));
    for op in [&a, &b] {
        assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op}");
        assert_eq!(op["output"]["pr_number"], 1, "{op}");
    }
    let reused: Vec<bool> = [&a, &b]
        .iter()
        .map(|op| op["output"]["pr_reused"] == true)
        .collect();
    assert_eq!(
        reused.iter().filter(|r| **r).count(),
        1,
        "one opened it, one reused it: {a} {b}"
    );
    assert_eq!(github.creates(), 1, "two workers, one pull request");
    // Serialised on the package's fix: the second job looked only after the first had opened
    // it, so it never even asked to create one (without the lock it races into a 422).
    assert_eq!(github.create_attempts(), 1, "the jobs did not serialise");
    assert_eq!(github.open_prs().len(), 1);
    let branches = world.branches();
    assert_eq!(
        branches
            .iter()
            .filter(|b| b.starts_with("remediator/"))
            .count(),
        1,
        "{branches:?}"
    );
    assert_eq!(
        fix_states(&world).await,
        vec![("lodash".to_owned(), Some("PR_OPEN".to_owned()), Some(1))]
    );
    for assessment in [world.catalog.affected, second] {
        assert_eq!(written_back(&world, assessment).await.pr_number, Some(1));
    }
    other_shutdown.trigger();
    let _ = tokio::time::timeout(Duration::from_secs(20), other_worker).await;
    world.stop().await;
}

#[tokio::test]
async fn github_webhooks_follow_the_pull_request_and_refuse_what_is_not_signed() {
    let adjust = with_webhook_secrets(|settings| settings.worker.mark_fixed_on_merge = true);
    let (world, github) = github_world(adjust, true).await;
    let second = add_advisory(
        &world,
        "lodash",
        "GHSA-29mw-wpgm-hmr9",
        "4.17.20",
        &["4.17.21"],
    )
    .await;
    succeed(&world, world.catalog.affected).await;
    let open = written_back(&world, second).await;
    assert_eq!(open.remediation_status.as_deref(), Some("PR_OPEN"));

    // Unsigned, mis-signed (another secret, or a body changed after signing): 401, no change.
    let merged = github_event("closed", 1, true);
    let mut unsigned = github_headers("d-unsigned", &merged, GITHUB_SECRET);
    unsigned.retain(|(name, _)| *name != "x-hub-signature-256");
    let tampered_body = github_event("closed", 1, false);
    for (headers, body) in [
        (unsigned, merged.clone()),
        (
            github_headers("d-wrong-secret", &merged, "not-the-secret"),
            merged.clone(),
        ),
        (
            github_headers("d-tampered", &merged, GITHUB_SECRET),
            tampered_body,
        ),
    ] {
        let (status, answer) = deliver(&world, "github", &headers, &body).await;
        assert_eq!(status, 401, "{answer}");
        assert_eq!(answer["code"], 16, "{answer}");
    }
    assert_eq!(
        written_back(&world, second).await,
        open,
        "refused deliveries changed nothing"
    );
    let mut conn = world.app.pool.get().await.unwrap();
    assert_eq!(
        remediator::db::webhooks::count(&mut conn, "github")
            .await
            .unwrap(),
        0,
        "refused deliveries are not recorded"
    );
    drop(conn);

    // Closed unmerged, reopened, then the close replayed: the replay changes nothing.
    let closed = github_event("closed", 1, false);
    let (status, answer) = deliver(
        &world,
        "github",
        &github_headers("d-1", &closed, GITHUB_SECRET),
        &closed,
    )
    .await;
    assert_eq!(
        (status, answer["outcome"].as_str()),
        (200, Some("applied")),
        "{answer}"
    );
    assert_eq!(
        written_back(&world, second)
            .await
            .remediation_status
            .as_deref(),
        Some("PR_CLOSED")
    );
    let reopened = github_event("reopened", 1, false);
    let (status, answer) = deliver(
        &world,
        "github",
        &github_headers("d-2", &reopened, GITHUB_SECRET),
        &reopened,
    )
    .await;
    assert_eq!(
        (status, answer["outcome"].as_str()),
        (200, Some("applied")),
        "{answer}"
    );
    assert_eq!(
        written_back(&world, second)
            .await
            .remediation_status
            .as_deref(),
        Some("PR_OPEN")
    );
    let (status, answer) = deliver(
        &world,
        "github",
        &github_headers("d-1", &closed, GITHUB_SECRET),
        &closed,
    )
    .await;
    assert_eq!(
        (status, answer["outcome"].as_str()),
        (200, Some("duplicate")),
        "{answer}"
    );
    assert_eq!(
        written_back(&world, second)
            .await
            .remediation_status
            .as_deref(),
        Some("PR_OPEN"),
        "the replay changed nothing"
    );

    // A pull request that is not ours, and an event we do not follow, change nothing.
    let foreign = github_event("closed", 99, true);
    let (status, answer) = deliver(
        &world,
        "github",
        &github_headers("d-3", &foreign, GITHUB_SECRET),
        &foreign,
    )
    .await;
    assert_eq!(
        (status, answer["outcome"].as_str()),
        (200, Some("unknown_pull_request")),
        "{answer}"
    );
    let synced = github_event("synchronize", 1, false);
    let (status, answer) = deliver(
        &world,
        "github",
        &github_headers("d-4", &synced, GITHUB_SECRET),
        &synced,
    )
    .await;
    assert_eq!(
        (status, answer["outcome"].as_str()),
        (200, Some("ignored")),
        "{answer}"
    );

    // Merged: every assessment the pull request covers is PR_MERGED and, as configured, FIXED.
    let (status, answer) = deliver(
        &world,
        "github",
        &github_headers("d-5", &merged, GITHUB_SECRET),
        &merged,
    )
    .await;
    assert_eq!(
        (status, answer["outcome"].as_str()),
        (200, Some("applied")),
        "{answer}"
    );
    for assessment in [world.catalog.affected, second] {
        let row = written_back(&world, assessment).await;
        assert_eq!(
            row.remediation_status.as_deref(),
            Some("PR_MERGED"),
            "{assessment}"
        );
        assert_eq!(row.status, "ASSESSMENT_STATUS_FIXED", "{assessment}");
    }
    assert_eq!(
        fix_states(&world).await,
        vec![("lodash".to_owned(), Some("PR_MERGED".to_owned()), Some(1))]
    );
    // The not-affected assessment of the same package is untouched.
    assert_eq!(
        written_back(&world, world.catalog.not_affected)
            .await
            .status,
        "ASSESSMENT_STATUS_NOT_AFFECTED"
    );
    assert_eq!(github.creates(), 1);
    world.stop().await;
}

#[tokio::test]
async fn a_merge_request_closed_on_gitlab_is_not_reopened_by_a_later_trigger() {
    let mut world = World::start(WorldOptions {
        forge_kind: ForgeKind::Gitlab,
        start_worker: false,
        adjust: Some(with_webhook_secrets(|_| {})),
        ..Default::default()
    })
    .await;
    let project = "/api/v4/projects/acme%2Fweb/merge_requests";
    Mock::given(method("GET"))
        .and(path(project))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&world.github)
        .await;
    Mock::given(method("POST"))
        .and(path(project))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "id": 90017, "iid": 17, "state": "opened",
            "source_branch": lodash_branch(), "target_branch": "main",
            "web_url": "https://gitlab.example/acme/web/-/merge_requests/17",
        })))
        // The first fix, then the fix to a higher version after the first was closed.
        .expect(2)
        .named("create merge request")
        .mount(&world.github)
        .await;
    let second = add_advisory(
        &world,
        "lodash",
        "GHSA-29mw-wpgm-hmr9",
        "4.17.20",
        &["4.17.21"],
    )
    .await;
    world.start_worker();
    succeed(&world, world.catalog.affected).await;

    let hook = |action: &str, state: &str| {
        json!({
            "object_kind": "merge_request", "event_type": "merge_request",
            "user": {"username": "maintainer"},
            "project": {"path_with_namespace": "acme/web", "web_url": "https://gitlab.example/acme/web"},
            "object_attributes": {
                "id": 90017, "iid": 17, "state": state, "action": action,
                "url": "https://gitlab.example/acme/web/-/merge_requests/17",
                "source_branch": lodash_branch(), "target_branch": "main",
                "updated_at": "2026-12-01 11:00:00 UTC"
            }
        })
        .to_string()
        .into_bytes()
    };
    let close = hook("close", "closed");
    let headers = |token: &str, uuid: &str| {
        vec![
            ("x-gitlab-event", "Merge Request Hook".to_owned()),
            ("x-gitlab-event-uuid", uuid.to_owned()),
            ("x-gitlab-token", token.to_owned()),
        ]
    };
    let (status, answer) = deliver(&world, "gitlab", &headers("a-guess", "u-0"), &close).await;
    assert_eq!(
        (status, answer["code"].as_i64()),
        (401, Some(16)),
        "{answer}"
    );
    assert_eq!(
        written_back(&world, second)
            .await
            .remediation_status
            .as_deref(),
        Some("PR_OPEN")
    );

    let (status, answer) = deliver(&world, "gitlab", &headers(GITLAB_SECRET, "u-1"), &close).await;
    assert_eq!(
        (status, answer["outcome"].as_str()),
        (200, Some("applied")),
        "{answer}"
    );
    for assessment in [world.catalog.affected, second] {
        let row = written_back(&world, assessment).await;
        assert_eq!(row.remediation_status.as_deref(), Some("PR_CLOSED"));
        assert_eq!(
            row.status, "ASSESSMENT_STATUS_AFFECTED",
            "a close fixes nothing"
        );
    }

    // Both advisories the merge request covered are refused now, saying why and since when.
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let token = world.app.full_token(world.catalog.org);
    for assessment in [world.catalog.affected, second] {
        let (status, body) = world
            .app
            .post_remediation(
                Some(&token),
                &json!({"assessment_id": assessment}).to_string(),
            )
            .await;
        assert_eq!(status, 400, "{body}");
        assert_eq!(body["code"], 9, "{body}");
        let message = body["message"].as_str().unwrap();
        assert!(
            message.contains(&format!("closed without merging on {today}")),
            "{message}"
        );
        assert!(
            message.contains("merge_requests/17") && message.contains("reopen it"),
            "{message}"
        );
    }
    // A fix to a higher version is a different change, and is accepted.
    let higher = add_advisory(
        &world,
        "lodash",
        "GHSA-high-0000-0004",
        "4.17.20",
        &["4.17.23"],
    )
    .await;
    let op = succeed(&world, higher).await;
    assert_eq!(op["output"]["pr_reused"], false, "{op}");
    assert_eq!(op["output"]["target_version"], "4.17.23", "{op}");
    world.stop().await;
}

#[tokio::test]
async fn gitea_webhooks_are_checked_with_x_gitea_signature() {
    let mut world = World::start(WorldOptions {
        forge_kind: ForgeKind::Gitea,
        start_worker: false,
        adjust: Some(with_webhook_secrets(|_| {})),
        ..Default::default()
    })
    .await;
    let pulls = "/api/v1/repos/acme/web/pulls";
    Mock::given(method("GET"))
        .and(path(pulls))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("X-Total-Count", "0")
                .set_body_json(json!([])),
        )
        .mount(&world.github)
        .await;
    Mock::given(method("POST"))
        .and(path(pulls))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "id": 4003, "number": 3, "state": "open", "html_url": "https://gitea.example/acme/web/pulls/3",
        })))
        .expect(1)
        .mount(&world.github)
        .await;
    Mock::given(method("GET"))
        .and(path("/api/v1/repos/acme/web/labels"))
        .respond_with(
            ResponseTemplate::new(200)
                .insert_header("X-Total-Count", "0")
                .set_body_json(json!([])),
        )
        .mount(&world.github)
        .await;
    world.start_worker();
    succeed(&world, world.catalog.affected).await;

    let merged = json!({
        "action": "closed", "number": 3,
        "pull_request": {"id": 4003, "number": 3, "state": "closed", "merged": true,
            "merged_at": "2026-12-01T11:00:00Z", "closed_at": "2026-12-01T11:00:00Z",
            "html_url": "https://gitea.example/acme/web/pulls/3",
            "head": {"ref": lodash_branch()}, "base": {"ref": "main"}},
        "repository": {"full_name": "acme/web"}
    })
    .to_string()
    .into_bytes();
    let headers = |signature: String| {
        vec![
            ("x-gitea-event", "pull_request".to_owned()),
            ("x-gitea-delivery", "g-1".to_owned()),
            ("x-gitea-signature", signature),
        ]
    };
    let (status, answer) = deliver(
        &world,
        "gitea",
        &headers(sign_hex("wrong", &merged)),
        &merged,
    )
    .await;
    assert_eq!(status, 401, "{answer}");
    assert_eq!(
        written_back(&world, world.catalog.affected)
            .await
            .remediation_status
            .as_deref(),
        Some("PR_OPEN")
    );
    let (status, answer) = deliver(
        &world,
        "gitea",
        &headers(sign_hex(GITEA_SECRET, &merged)),
        &merged,
    )
    .await;
    assert_eq!(
        (status, answer["outcome"].as_str()),
        (200, Some("applied")),
        "{answer}"
    );
    let row = written_back(&world, world.catalog.affected).await;
    assert_eq!(row.remediation_status.as_deref(), Some("PR_MERGED"));
    assert_eq!(
        row.status, "ASSESSMENT_STATUS_AFFECTED",
        "mark_fixed_on_merge is off by default"
    );
    world.stop().await;
}

#[tokio::test]
async fn the_reconciler_alone_sees_merged_and_closed_pull_requests() {
    let adjust = with_webhook_secrets(|settings| {
        // Two packages at most one open pull request: the cap counts what is open on the forge.
        settings.worker.max_open_prs_per_repository = 1;
        settings.reconciler.interval_secs = 1;
        settings.reconciler.max_requests_per_tick = 1;
    });
    let (world, github) = github_world(adjust, true).await;
    let express = add_advisory(
        &world,
        "express",
        "GHSA-rv95-896h-c2vc",
        "4.18.2",
        &["4.19.2"],
    )
    .await;
    let other_lodash = add_advisory(
        &world,
        "lodash",
        "GHSA-29mw-wpgm-hmr9",
        "4.17.20",
        &["4.17.21"],
    )
    .await;
    succeed(&world, world.catalog.affected).await;

    // At the cap: the express fix may not open a second pull request.
    let refused = world.request(express).await;
    let refused = world.wait_for_end(refused, END).await;
    assert_eq!(
        refused["status"], "ASYNC_OPERATION_STATUS_FAILED",
        "{refused}"
    );
    assert!(
        refused["error_message"]
            .as_str()
            .unwrap()
            .contains("max_open_prs_per_repository"),
        "{refused}"
    );

    // Merged on the forge, no webhook: the reconciler (as configured: one request per second)
    // finds out, and the cap no longer counts it.
    github.merge(1);
    let reconciler = remediator::worker::reconciler::Reconciler {
        pool: world.app.pool.clone(),
        forges: remediator::forge::ForgeRegistry::from_settings(
            &world.app.settings.forges,
            world.app.settings.git.url_policy(),
            Duration::from_secs(5),
            world.app.settings.security.egress(),
        )
        .unwrap(),
        interval: Duration::from_secs(1),
        max_requests_per_tick: 1,
        mark_fixed_on_merge: false,
    };
    // (The worker's own reconciler is disabled by the hook; this one is driven by hand.)
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let tick = reconciler.tick().await.unwrap();
    assert_eq!((tick.asked, tick.changed), (1, 1), "{tick:?}");
    for assessment in [world.catalog.affected, other_lodash] {
        assert_eq!(
            written_back(&world, assessment)
                .await
                .remediation_status
                .as_deref(),
            Some("PR_MERGED")
        );
    }
    // A merged pull request is not asked about again.
    assert_eq!(reconciler.tick().await.unwrap().asked, 0);

    let op = succeed(&world, express).await;
    assert_eq!(op["output"]["pr_number"], 2, "{op}");
    assert_eq!(
        op["output"]["branch"],
        branch_name("npm", "express"),
        "{op}"
    );

    // Closed on the forge: PR_CLOSED, and a later trigger answers 400 code 9.
    github.close(2);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let tick = reconciler.tick().await.unwrap();
    assert_eq!((tick.asked, tick.changed), (1, 1), "{tick:?}");
    assert_eq!(
        written_back(&world, express)
            .await
            .remediation_status
            .as_deref(),
        Some("PR_CLOSED")
    );
    let token = world.app.full_token(world.catalog.org);
    let (status, body) = world
        .app
        .post_remediation(Some(&token), &json!({"assessment_id": express}).to_string())
        .await;
    assert_eq!((status, body["code"].as_i64()), (400, Some(9)), "{body}");
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("closed without merging on 2026-12-01"),
        "{body}"
    );
    assert_eq!(
        github.state_reads(),
        vec![1, 2],
        "one request per pull request per tick"
    );
    assert_eq!(
        fix_states(&world).await,
        vec![
            ("express".to_owned(), Some("PR_CLOSED".to_owned()), Some(2)),
            ("lodash".to_owned(), Some("PR_MERGED".to_owned()), Some(1)),
        ]
    );
    world.stop().await;
}

#[tokio::test]
async fn the_reconciler_in_the_worker_runs_on_its_interval_and_within_its_request_budget() {
    let adjust: SettingsHook = Box::new(|settings| {
        settings.reconciler.enabled = true;
        settings.reconciler.interval_secs = 1;
        settings.reconciler.max_requests_per_tick = 1;
    });
    let (world, github) = github_world(adjust, true).await;
    let express = add_advisory(
        &world,
        "express",
        "GHSA-rv95-896h-c2vc",
        "4.18.2",
        &["4.19.2"],
    )
    .await;
    succeed(&world, world.catalog.affected).await;
    succeed(&world, express).await;
    github.merge(1);
    github.close(2);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let states = fix_states(&world).await;
        if states
            == vec![
                ("express".to_owned(), Some("PR_CLOSED".to_owned()), Some(2)),
                ("lodash".to_owned(), Some("PR_MERGED".to_owned()), Some(1)),
            ]
        {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "reconciler did not catch up: {states:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        written_back(&world, world.catalog.affected)
            .await
            .remediation_status
            .as_deref(),
        Some("PR_MERGED")
    );
    assert_eq!(
        written_back(&world, express)
            .await
            .remediation_status
            .as_deref(),
        Some("PR_CLOSED")
    );
    // One request per tick of one second: both states took at least two ticks, and the forge
    // was never asked about a settled pull request again.
    let reads = github.state_reads();
    assert!(reads.len() >= 2, "{reads:?}");
    let settled_reads = |n: u64| reads.iter().filter(|r| **r == n).count();
    assert!(settled_reads(1) >= 1 && settled_reads(2) >= 1, "{reads:?}");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(
        github.state_reads().len(),
        reads.len(),
        "settled pull requests are not polled"
    );
    world.stop().await;
}

#[tokio::test]
async fn the_status_vocabulary_and_the_webhooks_are_published_and_unconfigured_forges_refuse() {
    let app = support::app::TestApp::spawn().await;
    let (status, doc) = app.get_json(None, "/openapi.json").await;
    assert_eq!(status, 200);
    // The published vocabulary is the one the code stores, in full.
    let published = &doc["components"]["schemas"]["v1RemediationStatus"]["enum"];
    let ours: Vec<&str> = remediator::lifecycle::RemediationStatus::ALL
        .iter()
        .map(|s| s.as_str())
        .collect();
    let mut published: Vec<&str> = published
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    published.sort();
    let mut sorted = ours.clone();
    sorted.sort();
    assert_eq!(published, sorted);
    let hook = &doc["paths"]["/v1/webhooks/{forge}"]["post"];
    assert_eq!(
        hook["security"],
        json!([]),
        "signed by the forge, not by a token"
    );
    assert!(hook["responses"]["401"].is_object());

    // No secret configured (the default): every delivery is refused, however it is signed.
    let body = github_event("closed", 1, true);
    let response = app
        .http
        .post(format!("{}/v1/webhooks/github", app.base_url))
        .header("x-github-event", "pull_request")
        .header("x-github-delivery", "d-1")
        .header(
            "x-hub-signature-256",
            format!("sha256={}", sign_hex("", &body)),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 401);
    let answer: Value = response.json().await.unwrap();
    assert_eq!(answer["code"], 16, "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("not configured"),
        "{answer}"
    );
    let response = app
        .http
        .post(format!("{}/v1/webhooks/bitbucket", app.base_url))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status().as_u16(), 404);
    app.stop().await;
}

#[tokio::test]
async fn a_branch_a_person_pushed_to_is_left_alone() {
    let (world, github) = github_world(with_webhook_secrets(|_| {}), true).await;
    succeed(&world, world.catalog.affected).await;
    // A maintainer adds a commit of their own on top of ours.
    let branch = lodash_branch();
    let tip = world.git.git("acme/web", &["rev-parse", &branch]);
    let theirs = world.git.git(
        "acme/web",
        &[
            "-c",
            "user.name=Maintainer",
            "-c",
            "user.email=maintainer@example.com",
            "commit-tree",
            &format!("{}^{{tree}}", tip.trim()),
            "-p",
            tip.trim(),
            "-m",
            "tweak the fix by hand",
        ],
    );
    world.git.git(
        "acme/web",
        &["update-ref", &format!("refs/heads/{branch}"), theirs.trim()],
    );

    // A newer advisory needs a higher version: rebuilding the branch would drop their commit.
    let higher = add_advisory(
        &world,
        "lodash",
        "GHSA-high-0000-0004",
        "4.17.20",
        &["4.17.23"],
    )
    .await;
    let id = world.request(higher).await;
    let op = world.wait_for_end(id, END).await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_FAILED", "{op}");
    let error = op["error_message"].as_str().unwrap();
    assert!(
        error.contains("Remediator did not write") && error.contains("left alone"),
        "{error}"
    );
    assert_eq!(
        world.git.git("acme/web", &["rev-parse", &branch]).trim(),
        theirs.trim(),
        "their commit stays"
    );
    assert!(
        github.updates().is_empty(),
        "the pull request text is not rewritten either"
    );
    assert_eq!(github.creates(), 1);
    world.stop().await;
}

#[tokio::test]
async fn a_code_change_does_not_replace_an_open_version_bump_of_the_package() {
    // An LLM that answers with a code change (the bump handles the advisory with a version).
    let llm = wiremock::MockServer::start().await;
    let answer = json!({"edits": [{"path": "package.json", "search": "\"start\": \"node server.js\"",
                                   "replace": "\"start\": \"node --disable-proto=delete server.js\""}],
                        "confidence": 0.9, "explanation": "turn off __proto__"});
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "c", "object": "chat.completion", "model": "fake-model",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.to_string()}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}})))
        .mount(&llm)
        .await;
    let mut world = World::start(WorldOptions {
        llm_base_url: Some(format!("{}/v1", llm.uri())),
        start_worker: false,
        adjust: Some(with_webhook_secrets(|_| {})),
        ..Default::default()
    })
    .await;
    let github = FakeGithub::default();
    github.mount(&world.github).await;
    world.start_worker();
    let bump = succeed(&world, world.catalog.affected).await;
    assert_eq!(bump["output"]["patcher"], "bump", "{bump}");

    // An advisory without a fixed version needs a code change; made on the package branch,
    // it would replace the open bump (and silently drop GHSA-35jh's fix).
    let code_change = add_advisory(&world, "lodash", "GHSA-code-0000-0005", "4.17.20", &[]).await;
    let id = world.request(code_change).await;
    let op = world.wait_for_end(id, END).await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_FAILED", "{op}");
    let error = op["error_message"].as_str().unwrap();
    assert!(
        error.contains(&format!("also fixes {FIRST}, which this change would drop")),
        "{error}"
    );
    assert_eq!(
        world
            .file_on_branch(&lodash_branch(), "package.json")
            .unwrap(),
        PACKAGE_JSON.replace("^4.17.20", "^4.17.21"),
        "the open bump is intact"
    );
    assert!(github.updates().is_empty());
    assert_eq!(github.creates(), 1);
    assert_eq!(
        written_back(&world, world.catalog.affected)
            .await
            .remediation_status
            .as_deref(),
        Some("PR_OPEN")
    );
    world.stop().await;
}

/// A reconciler driven by hand (the worker's own is disabled by [`with_webhook_secrets`]).
fn manual_reconciler(world: &World) -> remediator::worker::reconciler::Reconciler {
    remediator::worker::reconciler::Reconciler {
        pool: world.app.pool.clone(),
        forges: remediator::forge::ForgeRegistry::from_settings(
            &world.app.settings.forges,
            world.app.settings.git.url_policy(),
            Duration::from_secs(5),
            world.app.settings.security.egress(),
        )
        .unwrap(),
        interval: Duration::from_secs(1),
        max_requests_per_tick: 10,
        mark_fixed_on_merge: false,
    }
}

/// The assessment's operations, newest first, once there are `count` and all have ended.
async fn ended_operations(world: &World, assessment: Uuid, count: usize) -> Vec<Value> {
    let token = world.app.full_token(world.catalog.org);
    let deadline = tokio::time::Instant::now() + END;
    loop {
        let (_, page) = world
            .app
            .get_json(
                Some(&token),
                &format!("/v1/operations?resource_type=assessment&resource_id={assessment}"),
            )
            .await;
        let ops = page["operations"].as_array().cloned().unwrap_or_default();
        let ended = ops.iter().all(|op| {
            !matches!(
                op["status"].as_str(),
                Some("ASYNC_OPERATION_STATUS_PENDING" | "ASYNC_OPERATION_STATUS_RUNNING")
            )
        });
        if ops.len() >= count && ended {
            return ops;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "operations did not end: {ops:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

const MOVED_BASE: &str = r#"{
  "name": "storefront-web",
  "version": "1.5.0",
  "private": true,
  "scripts": {
    "start": "node server.js"
  },
  "dependencies": {
    "express": "^4.21.0",
    "lodash": "^4.17.20"
  }
}
"#;

#[tokio::test]
async fn a_conflicting_pull_request_is_recreated_on_the_new_base() {
    let (world, github) = github_world(with_webhook_secrets(|_| {}), true).await;
    succeed(&world, world.catalog.affected).await;
    let branch = lodash_branch();
    // The base moves on (another developer changes the lines next to ours) and the forge says
    // the pull request conflicts now.
    let moved = world.git.push_commit(
        "acme/web",
        "main",
        &[("package.json", MOVED_BASE)],
        "bump express, version",
    );
    github.set_conflicting(1, true);
    let reconciler = manual_reconciler(&world);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let tick = reconciler.tick().await.unwrap();
    assert_eq!((tick.asked, tick.refreshed), (1, 1), "{tick:?}");

    let ops = ended_operations(&world, world.catalog.affected, 2).await;
    let refresh = &ops[0];
    assert_eq!(
        refresh["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED",
        "{refresh}"
    );
    assert_eq!(refresh["output"]["pr_reused"], true, "{refresh}");
    assert_eq!(refresh["output"]["pr_number"], 1, "{refresh}");
    assert_eq!(refresh["output"]["push"], "pushed", "{refresh}");
    // Rebuilt on the new base: one commit of ours on top of it, with their change and ours.
    assert_eq!(
        world
            .git
            .git("acme/web", &["rev-parse", &format!("{branch}^")])
            .trim(),
        moved
    );
    assert_eq!(
        world.file_on_branch(&branch, "package.json").unwrap(),
        MOVED_BASE.replace("^4.17.20", "^4.17.21")
    );
    assert_eq!(github.creates(), 1, "the same pull request");
    assert!(github.comments().is_empty());
    world.stop().await;
}

#[tokio::test]
async fn a_conflicting_branch_someone_pushed_to_is_left_alone_with_one_comment() {
    let (world, github) = github_world(with_webhook_secrets(|_| {}), true).await;
    succeed(&world, world.catalog.affected).await;
    let branch = lodash_branch();
    let tip = world.git.git("acme/web", &["rev-parse", &branch]);
    let theirs = world.git.git(
        "acme/web",
        &[
            "-c",
            "user.name=Maintainer",
            "-c",
            "user.email=maintainer@example.com",
            "commit-tree",
            &format!("{}^{{tree}}", tip.trim()),
            "-p",
            tip.trim(),
            "-m",
            "a fix of my own on the branch",
        ],
    );
    world.git.git(
        "acme/web",
        &["update-ref", &format!("refs/heads/{branch}"), theirs.trim()],
    );
    world.git.push_commit(
        "acme/web",
        "main",
        &[("package.json", MOVED_BASE)],
        "bump express, version",
    );
    github.set_conflicting(1, true);
    let reconciler = manual_reconciler(&world);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(reconciler.tick().await.unwrap().refreshed, 1);

    let ops = ended_operations(&world, world.catalog.affected, 2).await;
    assert_eq!(
        ops[0]["status"], "ASYNC_OPERATION_STATUS_FAILED",
        "{}",
        ops[0]
    );
    assert!(
        ops[0]["error_message"]
            .as_str()
            .unwrap()
            .contains("left alone"),
        "{}",
        ops[0]
    );
    assert_eq!(
        world.git.git("acme/web", &["rev-parse", &branch]).trim(),
        theirs.trim(),
        "their commit stays"
    );
    let comments = github.comments();
    assert_eq!(comments.len(), 1, "{comments:?}");
    assert_eq!(comments[0].0, 1);
    assert!(
        comments[0].1.contains("did not refresh") && comments[0].1.contains(&branch),
        "{comments:?}"
    );

    // Still conflicting at the next tick: no second refresh job, no second comment.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let tick = reconciler.tick().await.unwrap();
    assert_eq!((tick.asked, tick.refreshed), (1, 0), "{tick:?}");
    // A trigger by hand fails again, saying why, without commenting twice.
    let again = world.request(world.catalog.affected).await;
    let again = world.wait_for_end(again, END).await;
    assert_eq!(again["status"], "ASYNC_OPERATION_STATUS_FAILED", "{again}");
    assert_eq!(github.comments().len(), 1, "one comment");
    world.stop().await;
}

#[tokio::test]
async fn repository_grouping_carries_every_pending_fix_in_one_pull_request() {
    let adjust = with_webhook_secrets(|settings| {
        settings.worker.group = remediator::config::Grouping::Repository;
    });
    let (world, github) = github_world(adjust, true).await;
    let second = add_advisory(
        &world,
        "lodash",
        "GHSA-29mw-wpgm-hmr9",
        "4.17.20",
        &["4.17.21"],
    )
    .await;
    let express = add_advisory(
        &world,
        "express",
        "GHSA-rv95-896h-c2vc",
        "4.18.2",
        &["4.19.2"],
    )
    .await;
    // Not declared in the manifest: the bump cannot fix it, so it is left out and named.
    let minimist = add_advisory(
        &world,
        "minimist",
        "GHSA-xvch-5gv4-984h",
        "1.2.5",
        &["1.2.6"],
    )
    .await;

    let op = succeed(&world, world.catalog.affected).await;
    let output = &op["output"];
    let group_branch = branch_name("npm", "security-updates");
    assert_eq!(output["branch"], group_branch, "{op}");
    assert_eq!(output["group"], "repository", "{op}");
    assert_eq!(
        output["target_version"], "express 4.19.2, lodash 4.17.21",
        "{op}"
    );
    assert_eq!(output["packages"].as_array().map(Vec::len), Some(2), "{op}");
    // Scored from each package's own lock check (no lock file: read back from the manifest).
    assert_eq!(
        output["remediation_confidence"],
        json!({"value": 0.72, "reasons": ["no lock file read back (x0.9)", "no tests found (x0.8)"]}),
        "{op}"
    );
    assert_eq!(
        output["remaining"][0]["vulnerability_id"], "GHSA-xvch-5gv4-984h",
        "{op}"
    );
    assert_eq!(
        world.file_on_branch(&group_branch, "package.json").unwrap(),
        PACKAGE_JSON
            .replace("^4.17.20", "^4.17.21")
            .replace("^4.18.2", "^4.19.2")
    );
    assert_eq!(github.creates(), 1);
    let created = &github.created()[0];
    assert_eq!(
        created["title"],
        "fix(deps): security updates for 2 npm packages (express 4.19.2, lodash 4.17.21)"
    );
    let body = created["body"].as_str().unwrap();
    for needle in [
        "## lodash 4.17.21",
        "## express 4.19.2",
        "GHSA-29mw-wpgm-hmr9",
        "## Not fixed by this change\n\n- [GHSA-xvch-5gv4-984h]",
    ] {
        assert!(body.contains(needle), "{needle:?} missing: {body}");
    }
    for covered in [world.catalog.affected, second, express] {
        let row = written_back(&world, covered).await;
        assert_eq!(
            (row.remediation_status.as_deref(), row.pr_number),
            (Some("PR_OPEN"), Some(1)),
            "{covered}"
        );
        assert_eq!(row.branch.as_deref(), Some(group_branch.as_str()));
    }
    assert_eq!(written_back(&world, minimist).await.pr_number, None);

    // Another package's trigger finds the same grouped pull request.
    let again = succeed(&world, express).await;
    assert_eq!(again["output"]["pr_reused"], true, "{again}");
    assert_eq!(again["output"]["pr_number"], 1, "{again}");
    assert_eq!(
        again["output"]["pr_updated"], false,
        "the same fixes read the same: {again}"
    );
    assert_eq!(again["output"]["push"], "already_up_to_date", "{again}");
    assert_eq!(github.creates(), 1);
    assert!(github.updates().is_empty());
    let branches = world.branches();
    assert_eq!(
        branches
            .iter()
            .filter(|b| b.starts_with("remediator/"))
            .count(),
        1,
        "{branches:?}"
    );
    world.stop().await;
}

#[tokio::test]
async fn a_pull_request_that_no_longer_proposes_the_right_fix_is_refreshed_by_the_reconciler() {
    let (world, github) = github_world(with_webhook_secrets(|_| {}), true).await;
    succeed(&world, world.catalog.affected).await;
    let reconciler = manual_reconciler(&world);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let tick = reconciler.tick().await.unwrap();
    assert_eq!(
        (tick.asked, tick.refreshed),
        (1, 0),
        "still right: {tick:?}"
    );

    // A new advisory needs a higher version; nobody triggers it.
    let higher = add_advisory(
        &world,
        "lodash",
        "GHSA-high-0000-0004",
        "4.17.20",
        &["4.17.23"],
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let tick = reconciler.tick().await.unwrap();
    assert_eq!((tick.asked, tick.refreshed), (1, 1), "{tick:?}");
    let ops = ended_operations(&world, world.catalog.affected, 2).await;
    assert_eq!(
        ops[0]["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED",
        "{}",
        ops[0]
    );
    assert_eq!(ops[0]["output"]["pr_updated"], true, "{}", ops[0]);
    assert_eq!(ops[0]["output"]["target_version"], "4.17.23", "{}", ops[0]);
    assert_eq!(
        world
            .file_on_branch(&lodash_branch(), "package.json")
            .unwrap(),
        PACKAGE_JSON.replace("^4.17.20", "^4.17.23")
    );
    assert_eq!(github.creates(), 1);
    assert_eq!(github.updates().len(), 1);
    assert_eq!(written_back(&world, higher).await.pr_number, Some(1));

    // Right again: the next tick leaves it alone.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let tick = reconciler.tick().await.unwrap();
    assert_eq!((tick.asked, tick.refreshed), (1, 0), "{tick:?}");
    world.stop().await;
}
