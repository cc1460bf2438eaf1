//! Crash safety with a real process: a `remediator worker` killed with SIGKILL in the middle of
//! a job leaves its message unacknowledged; another worker takes the job over once the dead
//! worker's heartbeat is stale, resumes from what was done, and opens no second pull request.

mod support;

use std::process::Stdio;
use std::time::Duration;

use secrecy::ExposeSecret;
use serde_json::json;
use support::remediation::{FORGE_TOKEN, World, WorldOptions};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

#[tokio::test]
async fn a_worker_killed_mid_job_is_taken_over_without_a_second_pull_request() {
    let mut world = World::start(WorldOptions {
        start_worker: false,
        ..Default::default()
    })
    .await;
    let pr = json!({"number": 11, "html_url": "https://github.example/acme/web/pull/11"});
    // GitHub opens the PR when asked, but answers slowly: the worker is killed while waiting.
    // Afterwards the PR shows up in the open-PR listing, as it would on GitHub.
    Mock::given(method("GET"))
        .and(path("/repos/acme/web/pulls"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&world.github)
        .await;
    Mock::given(method("GET"))
        .and(path("/repos/acme/web/pulls"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([pr.clone()])))
        .with_priority(2)
        .mount(&world.github)
        .await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/web/pulls"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(pr)
                .set_delay(Duration::from_secs(30)),
        )
        .expect(1)
        .mount(&world.github)
        .await;

    let settings = &world.app.settings;
    let config_dir = tempfile::tempdir().unwrap();
    let token_file = config_dir.path().join("token");
    std::fs::write(&token_file, FORGE_TOKEN).unwrap();
    let config = config_dir.path().join("worker.toml");
    std::fs::write(
        &config,
        format!(
            "[[forges]]\nhost = \"{}\"\nkind = \"github\"\napi_url = \"{}\"\ntoken_file = \"{}\"\n",
            world.git.base_url.trim_start_matches("http://"),
            world.github.uri(),
            token_file.display()
        ),
    )
    .unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_remediator"))
        .args([
            "--config",
            config.to_str().unwrap(),
            "worker",
            "--concurrency",
            "1",
        ])
        .env(
            "REMEDIATOR__DATABASE__URL",
            settings.database.url.expose_secret(),
        )
        .env("REMEDIATOR__AMQP__URL", settings.amqp.url.expose_secret())
        .env("REMEDIATOR__AMQP__PREFIX", &settings.amqp.prefix)
        .env("REMEDIATOR__AMQP__RETRY_DELAYS_SECS", "1,2")
        .env("REMEDIATOR__WORKER__HEARTBEAT_SECS", "1")
        .env("REMEDIATOR__WORKER__SCRATCH_DIR", world.scratch.path())
        .env("REMEDIATOR__GIT__ALLOW_HTTP", "true")
        .env("REMEDIATOR__SECURITY__ALLOW_PRIVATE_NETWORKS", "true")
        .env("REMEDIATOR__WORKER__METRICS_LISTEN", "127.0.0.1:0")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start a worker process");

    let id = world.request(world.catalog.affected).await;
    // Wait until the process is inside the pull request step, with the branch already pushed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let op = world.operation(id).await;
        if op["step"] == "pull_request" {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "worker never reached the PR step: {op}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    child.kill().await.expect("SIGKILL the worker");
    let running = world.operation(id).await;
    assert_eq!(
        running["status"], "ASYNC_OPERATION_STATUS_RUNNING",
        "left RUNNING by the dead worker"
    );

    world.start_worker();
    let op = world.wait_for_end(id, Duration::from_secs(90)).await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op}");
    assert_eq!(op["attempts"], 2, "taken over once");
    assert_eq!(
        op["output"]["push"], "already_up_to_date",
        "the push was not repeated"
    );
    assert_eq!(op["output"]["pr_reused"], true);
    assert_eq!(op["output"]["pr_number"], 11);
    world.stop().await;
}
