//! The worker end to end: real intake, Postgres, RabbitMQ and a `git http-backend` server; a
//! fake GitHub API and a fake OpenAI-compatible LLM that check requests as documented.

mod support;

use std::time::Duration;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use remediator::db::schema::{assessments, operations};
use remediator::lifecycle::EventKind;
use remediator::pr_text::branch_name;
use serde_json::{Value, json};
use support::remediation::{FORGE_TOKEN, World, WorldOptions};
use wiremock::matchers::{body_partial_json, header, method, path, query_param};
use wiremock::{Mock, ResponseTemplate};

const END: Duration = Duration::from_secs(90);

fn branch() -> String {
    branch_name("npm", "lodash")
}

fn github(m: wiremock::MockBuilder) -> wiremock::MockBuilder {
    m.and(header(
        "authorization",
        format!("Bearer {FORGE_TOKEN}").as_str(),
    ))
    .and(header("accept", "application/vnd.github+json"))
    .and(header("x-github-api-version", "2022-11-28"))
}

fn pr_json(number: u64) -> Value {
    json!({"number": number, "html_url": format!("https://github.example/acme/web/pull/{number}"), "state": "open"})
}

async fn mount_github_create(world: &World, existing_after_first_list: bool) {
    let list = || {
        github(Mock::given(method("GET")))
            .and(path("/repos/acme/web/pulls"))
            .and(query_param("head", format!("acme:{}", branch()).as_str()))
            .and(query_param("state", "open"))
    };
    if existing_after_first_list {
        list()
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&world.github)
            .await;
        list()
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([pr_json(7)])))
            .with_priority(2)
            .mount(&world.github)
            .await;
    } else {
        list()
            .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
            .mount(&world.github)
            .await;
    }
    github(Mock::given(method("POST")))
        .and(path("/repos/acme/web/pulls"))
        .and(body_partial_json(
            json!({"head": branch(), "base": "main", "draft": false}),
        ))
        .respond_with(ResponseTemplate::new(201).set_body_json(pr_json(7)))
        .expect(1)
        .named("create pull request")
        .mount(&world.github)
        .await;
    github(Mock::given(method("POST")))
        .and(path("/repos/acme/web/issues/7/labels"))
        .and(body_partial_json(
            json!({"labels": ["security", "dependencies"]}),
        ))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&world.github)
        .await;
}

async fn pr_requests(world: &World) -> Vec<Value> {
    world
        .github
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .filter(|r| r.method.as_str() == "POST" && r.url.path() == "/repos/acme/web/pulls")
        .map(|r| serde_json::from_slice(&r.body).unwrap())
        .collect()
}

#[tokio::test]
async fn a_request_ends_in_a_pushed_branch_and_one_pull_request() {
    let world = World::start(WorldOptions::default()).await;
    mount_github_create(&world, false).await;

    let id = world.request(world.catalog.affected).await;
    let op = world.wait_for_end(id, END).await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op}");
    let output = &op["output"];
    assert_eq!(output["pr_url"], "https://github.example/acme/web/pull/7");
    assert_eq!(output["pr_number"], 7);
    assert_eq!(output["branch"], branch());
    assert_eq!(output["patcher"], "bump");
    assert_eq!(output["forge"], "github");
    assert_eq!(output["target_version"], "4.17.21");
    assert_eq!(output["push"], "pushed");
    assert_eq!(op["step"], "write_back");
    assert!(op["finished_at"].is_string());

    // The branch on the server holds exactly the fix, formatting preserved.
    let manifest = world
        .file_on_branch(&branch(), "package.json")
        .expect("branch pushed");
    assert_eq!(
        manifest,
        support::remediation::PACKAGE_JSON.replace("^4.17.20", "^4.17.21")
    );
    let commit = output["commit"].as_str().unwrap();
    assert_eq!(
        world.git.git("acme/web", &["rev-parse", &branch()]).trim(),
        commit
    );
    let changed = world.git.git(
        "acme/web",
        &["show", "--name-only", "--format=%an <%ae>%n%s", &branch()],
    );
    assert!(changed.starts_with("Remediator <"), "{changed}");
    assert!(changed.contains("lodash"), "{changed}");
    assert!(changed.trim_end().ends_with("package.json"), "{changed}");
    world.git.git("acme/web", &["fsck", "--strict"]);

    // Exactly one PR request, written as GitHub documents it.
    let prs = pr_requests(&world).await;
    assert_eq!(prs.len(), 1);
    let title = prs[0]["title"].as_str().unwrap();
    assert!(
        title.contains("lodash")
            && title.contains("4.17.21")
            && title.contains("GHSA-35jh-r3h4-6jhm"),
        "{title}"
    );
    let body = prs[0]["body"].as_str().unwrap();
    assert!(
        body.contains("https://github.com/advisories/GHSA-35jh-r3h4-6jhm"),
        "{body}"
    );
    assert!(
        body.contains(&id.to_string()),
        "the body names the operation"
    );

    // The assessment is written back.
    let mut conn = world.app.pool.get().await.unwrap();
    let (branch_name, url, number, status): (
        Option<String>,
        Option<String>,
        Option<i32>,
        Option<String>,
    ) = assessments::table
        .find(world.catalog.affected)
        .select((
            assessments::remediation_branch_name,
            assessments::remediation_pr_url,
            assessments::remediation_pr_number,
            assessments::remediation_status,
        ))
        .first(&mut conn)
        .await
        .unwrap();
    assert_eq!(branch_name.as_deref(), Some(branch().as_str()));
    assert_eq!(
        url.as_deref(),
        Some("https://github.example/acme/web/pull/7")
    );
    assert_eq!(number, Some(7));
    assert_eq!(status.as_deref(), Some("PR_OPEN"));
    // The score says what the job proved: a deterministic bump, read back from the manifest
    // (the project has no lock file), whose project has no tests.
    let confidence: Option<f64> = assessments::table
        .find(world.catalog.affected)
        .select(assessments::remediation_confidence)
        .first(&mut conn)
        .await
        .unwrap();
    assert_eq!(output["remediation_confidence"]["value"], 0.72, "{output}");
    assert_eq!(
        output["remediation_confidence"]["reasons"],
        json!(["no lock file read back (x0.9)", "no tests found (x0.8)"]),
        "{output}"
    );
    assert_eq!(confidence, Some(0.72));
    // No clone is left behind.
    assert_eq!(std::fs::read_dir(world.scratch.path()).unwrap().count(), 0);
    world.stop().await;
}

#[tokio::test]
async fn a_job_run_again_reuses_its_branch_and_pull_request() {
    let world = World::start(WorldOptions::default()).await;
    mount_github_create(&world, true).await;
    let id = world.request(world.catalog.affected).await;
    let first = world.wait_for_end(id, END).await;
    assert_eq!(
        first["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED",
        "{first}"
    );

    // A duplicate delivery of the finished job is acknowledged and skipped.
    let publish = async {
        let connection = remediator::queue::connect(&world.app.settings.amqp.url, "test")
            .await
            .unwrap();
        let topology = remediator::queue::topology::Topology::new(&world.app.settings.amqp);
        let publisher = remediator::queue::publisher::Publisher::open(&connection, topology)
            .await
            .unwrap();
        publisher
            .send_work(&remediator::queue::message::JobMessage::remediation(
                id.into(),
            ))
            .await
            .unwrap()
            .confirmed()
            .await
            .unwrap();
    };
    publish.await;
    // Positive signal: a worker took the duplicate and recorded that it skipped it.
    world
        .wait_for_note(id, "skipped a delivery", Duration::from_secs(20))
        .await;
    assert_eq!(
        world.operation(id).await["status"],
        "ASYNC_OPERATION_STATUS_SUCCEEDED"
    );

    // A worker that died after opening the PR, before committing: the operation is PENDING
    // again and the job comes back. The rerun finds the branch and the PR and opens nothing new.
    let mut conn = world.app.pool.get().await.unwrap();
    diesel::update(operations::table.find(id))
        .set(operations::status.eq("ASYNC_OPERATION_STATUS_PENDING"))
        .execute(&mut conn)
        .await
        .unwrap();
    let connection = remediator::queue::connect(&world.app.settings.amqp.url, "test")
        .await
        .unwrap();
    let topology = remediator::queue::topology::Topology::new(&world.app.settings.amqp);
    let publisher = remediator::queue::publisher::Publisher::open(&connection, topology)
        .await
        .unwrap();
    publisher
        .send_work(&remediator::queue::message::JobMessage::remediation(
            id.into(),
        ))
        .await
        .unwrap()
        .confirmed()
        .await
        .unwrap();
    let second = world.wait_for_end(id, END).await;
    assert_eq!(
        second["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED",
        "{second}"
    );
    assert_eq!(second["output"]["push"], "already_up_to_date");
    assert_eq!(second["output"]["pr_reused"], true);
    assert_eq!(second["output"]["pr_number"], 7);
    assert_eq!(second["attempts"], 2);
    assert_eq!(pr_requests(&world).await.len(), 1, "one PR, ever");
    assert_eq!(world.branches(), vec!["main".to_owned(), branch()]);
    world.stop().await;
}

#[tokio::test]
async fn a_transient_forge_failure_is_retried_through_the_delay_queue() {
    let world = World::start(WorldOptions::default()).await;
    github(Mock::given(method("GET")))
        .and(path("/repos/acme/web/pulls"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&world.github)
        .await;
    // The first attempt's in-place retries all meet a 502; the delayed attempt succeeds.
    github(Mock::given(method("POST")))
        .and(path("/repos/acme/web/pulls"))
        .respond_with(ResponseTemplate::new(502).set_body_string("bad gateway"))
        .up_to_n_times(4)
        .with_priority(1)
        .mount(&world.github)
        .await;
    github(Mock::given(method("POST")))
        .and(path("/repos/acme/web/pulls"))
        .respond_with(ResponseTemplate::new(201).set_body_json(pr_json(9)))
        .with_priority(2)
        .mount(&world.github)
        .await;
    let id = world.request(world.catalog.affected).await;
    let op = world.wait_for_end(id, END).await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op}");
    assert_eq!(op["attempts"], 2);
    assert_eq!(op["output"]["pr_number"], 9);
    assert_eq!(
        op["output"]["push"], "already_up_to_date",
        "the rerun resumed after the push"
    );

    let mut conn = world.app.pool.get().await.unwrap();
    let history = remediator::db::operations::history(&mut conn, id.into())
        .await
        .unwrap();
    let attempt_error = history
        .iter()
        .find(|e| e.kind == EventKind::AttemptError)
        .expect("attempt error kept");
    let message = attempt_error.message.as_deref().unwrap();
    assert!(
        message.contains("step pull_request failed") && message.contains("will retry"),
        "{message}"
    );
    world.stop().await;
}

#[tokio::test]
async fn a_missing_repository_fails_at_once_with_a_clear_message() {
    let world = World::start(WorldOptions::default()).await;
    // Point the project at a repository the server does not have.
    let mut conn = world.app.pool.get().await.unwrap();
    diesel::update(remediator::db::schema::projects::table.find(world.catalog.project))
        .set(
            remediator::db::schema::projects::repository_url
                .eq(world.repo_url.replace("acme/web", "acme/gone")),
        )
        .execute(&mut conn)
        .await
        .unwrap();
    let id = world.request(world.catalog.affected).await;
    let op = world.wait_for_end(id, END).await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_FAILED", "{op}");
    let message = op["error_message"].as_str().unwrap();
    assert!(
        message.contains("step clone failed")
            && message.contains("not found")
            && message.contains("not retried"),
        "{message}"
    );
    assert!(!message.contains(FORGE_TOKEN));
    assert_eq!(op["attempts"], 1);
    assert!(pr_requests(&world).await.is_empty());
    world.stop().await;
}

#[tokio::test]
async fn a_package_the_bump_cannot_fix_fails_clearly_without_an_llm() {
    let options = WorldOptions {
        files: vec![(
            "package.json",
            r#"{"name": "x", "dependencies": {"express": "^4.18.2"}}"#.to_owned(),
        )],
        ..Default::default()
    };
    let world = World::start(options).await;
    let id = world.request(world.catalog.affected).await;
    let op = world.wait_for_end(id, END).await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_FAILED", "{op}");
    let message = op["error_message"].as_str().unwrap();
    assert!(
        message.contains("lodash is not a direct dependency")
            && message.contains("configure an LLM"),
        "{message}"
    );
    assert_eq!(world.branches(), vec!["main".to_owned()], "nothing pushed");
    world.stop().await;
}

#[tokio::test]
async fn a_poison_message_goes_to_the_dead_letter_queue_without_blocking() {
    let world = World::start(WorldOptions::default()).await;
    mount_github_create(&world, false).await;
    let connection = remediator::queue::connect(&world.app.settings.amqp.url, "test")
        .await
        .unwrap();
    let topology = remediator::queue::topology::Topology::new(&world.app.settings.amqp);
    let publisher = remediator::queue::publisher::Publisher::open(&connection, topology.clone())
        .await
        .unwrap();
    publisher
        .send_raw(
            &topology.work_exchange,
            "work",
            b"{not a job",
            lapin::BasicProperties::default(),
        )
        .await
        .unwrap();
    // A later, good job is still processed.
    let id = world.request(world.catalog.affected).await;
    let op = world.wait_for_end(id, END).await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op}");
    let channel = connection.create_channel().await.unwrap();
    let dead = channel
        .basic_get(
            topology.dead_queue.as_str().into(),
            lapin::options::BasicGetOptions { no_ack: true },
        )
        .await
        .unwrap()
        .expect("the poison message is dead-lettered");
    assert_eq!(dead.delivery.data, b"{not a job");
    let headers = dead.delivery.properties.headers().clone().unwrap();
    assert_eq!(
        headers.inner().get("x-remediator-dead-reason"),
        Some(&lapin::types::AMQPValue::LongString("unparseable".into()))
    );
    world.stop().await;
}

/// The clone writes to disk only what the lock tools read: at the lock step the job's work tree
/// holds the manifest and no source or README, and the pushed branch still carries every file
/// of the default branch unchanged (the commit's tree is built from `HEAD`'s).
#[tokio::test]
async fn a_job_writes_only_the_lock_tools_files_and_pushes_the_whole_tree() {
    let mut world = World::start(WorldOptions {
        files: vec![
            (
                "package.json",
                support::remediation::PACKAGE_JSON.to_owned(),
            ),
            ("README.md", "# storefront\n".to_owned()),
            ("src/index.js", "const _ = require('lodash');\n".to_owned()),
        ],
        start_worker: false,
        ..WorldOptions::default()
    })
    .await;
    mount_github_create(&world, false).await;
    let scratch = world.scratch.path().to_path_buf();
    let seen: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let record = seen.clone();
    world.start_worker_with(Some(std::sync::Arc::new(move |_, step| {
        if step == remediator::lifecycle::Step::Lock {
            *record.lock().unwrap() = files_under(&scratch);
        }
    })));

    let id = world.request(world.catalog.affected).await;
    let op = world.wait_for_end(id, END).await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op}");
    assert_eq!(*seen.lock().unwrap(), vec!["repo/package.json".to_owned()]);
    assert_eq!(
        world.file_on_branch(&branch(), "src/index.js").as_deref(),
        Some("const _ = require('lodash');\n")
    );
    assert_eq!(
        world.file_on_branch(&branch(), "README.md").as_deref(),
        Some("# storefront\n")
    );
    world.stop().await;
}

/// Files under the one job's scratch directory, relative to it, `.git` left out.
fn files_under(scratch: &std::path::Path) -> Vec<String> {
    let Some(job_dir) = std::fs::read_dir(scratch)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .next()
    else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let mut stack = vec![job_dir.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().filter_map(Result::ok) {
            let path = entry.path();
            if path.file_name().is_some_and(|n| n == ".git") {
                continue;
            }
            if path.is_dir() {
                stack.push(path);
            } else {
                found.push(path.strip_prefix(&job_dir).unwrap().display().to_string());
            }
        }
    }
    found.sort();
    found
}
