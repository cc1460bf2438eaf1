//! The operations console in a real browser: headless Chromium (Debian's package) driven by
//! playwright-core (`tests/browser/console.test.js`) against a whole world on loopback: the
//! real intake and an in-process worker, a real git server, a fake GitHub API.
//!
//! This file prepares what the browser scenario needs (a dead-lettered job whose forge has
//! recovered, a stray dead letter to purge, another organisation's operation, tokens), runs the
//! script, starts the worker when the script says it has seen its job PENDING, and checks
//! afterwards that the replay made exactly one pull request per fix. `#[ignore]`d in plain
//! `cargo test`: it needs Chromium and `npm ci` in tests/browser, which `scripts/test` provides.

mod support;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use diesel_async::RunQueryDsl;
use lapin::types::FieldTable;
use remediator::lifecycle::Step;
use remediator::queue::dead_letters::DeadLetterQueue;
use remediator::queue::message::{JobMessage, mark_dead};
use remediator::queue::publisher::Publisher;
use remediator::queue::topology::Topology;
use remediator::shutdown::Shutdown;
use support::fake_github::FakeGithub;
use support::remediation::{World, WorldOptions};
use uuid::Uuid;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

const END: Duration = Duration::from_secs(60);

fn chromium() -> PathBuf {
    std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"))
}

fn browser_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser")
}

/// Waits until the dead-letter queue holds `n` messages.
async fn wait_for_dead(world: &World, n: u32) {
    let settings = &world.app.settings;
    let dlq = DeadLetterQueue::open(
        &settings.amqp.url,
        Topology::new(&settings.amqp),
        world.app.pool.clone(),
    )
    .await
    .unwrap();
    let deadline = tokio::time::Instant::now() + END;
    while dlq.depth().await.unwrap() != n {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the dead-letter queue never held {n}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    dlq.close().await;
}

/// A message naming an operation that does not exist, as the worker dead-letters one.
async fn stray_dead_letter(world: &World) -> Uuid {
    let settings = &world.app.settings;
    let connection = remediator::queue::connect(&settings.amqp.url, "test-stray")
        .await
        .unwrap();
    let topology = Topology::new(&settings.amqp);
    let publisher = Publisher::open(&connection, topology.clone())
        .await
        .unwrap();
    let stray = Uuid::new_v4();
    let mut headers = FieldTable::default();
    mark_dead(
        &mut headers,
        remediator::lifecycle::DeadReason::UnknownOperation,
        "no operation has this id",
    );
    publisher
        .send(
            &topology.dead_exchange,
            "",
            &JobMessage::remediation(stray.into()),
            headers,
        )
        .await
        .unwrap()
        .confirmed()
        .await
        .unwrap();
    let _ = connection.close(200, "done".into()).await;
    stray
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Chromium and `npm ci` in tests/browser; scripts/test runs it"]
async fn the_console_in_headless_chromium() {
    let browser = chromium();
    assert!(
        browser.exists(),
        "{} is missing: apt-get install chromium",
        browser.display()
    );
    assert!(
        browser_dir().join("node_modules/playwright-core").exists(),
        "run `npm ci` in tests/browser first"
    );
    let mut world = World::start(WorldOptions {
        start_worker: false,
        adjust: Some(Box::new(|s| {
            s.amqp.max_attempts = 2;
            s.amqp.retry_delays_secs = vec![1];
            s.console.refresh_ms = 300;
        })),
        ..Default::default()
    })
    .await;
    let github = FakeGithub::with_delay(Duration::ZERO);
    // The forge is down for good at first: the first job is dead-lettered.
    let outage = Mock::given(method("POST"))
        .and(path("/repos/acme/web/pulls"))
        .respond_with(ResponseTemplate::new(502))
        .mount_as_scoped(&world.github)
        .await;
    github.mount(&world.github).await;
    world.start_worker();
    let dead = world.request(world.catalog.affected).await;
    let failed = world.wait_for_end(dead, END).await;
    assert_eq!(
        failed["status"], "ASYNC_OPERATION_STATUS_FAILED",
        "{failed}"
    );
    wait_for_dead(&world, 1).await;
    drop(outage);
    let stray = stray_dead_letter(&world).await;
    wait_for_dead(&world, 2).await;

    // The worker stops until the browser has seen its job PENDING; then it runs slowly enough
    // (a pause as each step starts) for the browser to see each step.
    world.worker_shutdown.trigger();
    if let Some(worker) = world.worker.take() {
        let _ = tokio::time::timeout(Duration::from_secs(20), worker).await;
    }
    world.worker_shutdown = Shutdown::new();

    // Another organisation's operation, which the read-only token must not see.
    let other_op = Uuid::new_v4();
    let mut conn = world.app.pool.get().await.unwrap();
    diesel::sql_query(format!(
        "INSERT INTO operations (id, organization_id, kind, status, resource_type, resource_id,
                                 project_id, finished_at)
         SELECT '{other_op}', organization_id, 'auto_remediation', 'ASYNC_OPERATION_STATUS_SUCCEEDED',
                'assessment', '{assessment}', id, now()
         FROM projects WHERE organization_id = '{org}'",
        assessment = world.catalog.other_org_assessment,
        org = world.catalog.other_org
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    drop(conn);
    let live = world
        .add_affected("express", "npm", "GHSA-rv95-896h-c2vc", "4.18.2", "4.19.2")
        .await;

    let screenshots = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/browser-screenshots");
    std::fs::create_dir_all(&screenshots).unwrap();
    let signals = tempfile::tempdir().unwrap();
    let org = world.catalog.org;
    let mut node = tokio::process::Command::new("node")
        .args(["--test", "--test-reporter=spec", "console.test.js"])
        .current_dir(browser_dir())
        .env("CONSOLE_URL", &world.app.base_url)
        .env("CHROMIUM", &browser)
        .env("ADMIN_TOKEN", world.app.token(org, &["ops:admin"]))
        .env("READ_TOKEN", world.app.token(org, &["operations:read"]))
        .env(
            "TRIGGER_TOKEN",
            world.app.token(org, &["remediations:write"]),
        )
        .env("LIVE_ASSESSMENT", live.to_string())
        .env("DEAD_OPERATION", dead.to_string())
        .env("STRAY_DEAD_LETTER", stray.to_string())
        .env("OTHER_ORG_OPERATION", other_op.to_string())
        .env("SIGNAL_DIR", signals.path())
        .env("SCREENSHOT_DIR", &screenshots)
        .kill_on_drop(true)
        .spawn()
        .expect("start node");

    let start_signal = signals.path().join("start-worker");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(240);
    let status = loop {
        if world.worker.is_none() && start_signal.exists() {
            world.start_worker_with(Some(Arc::new(|_, step| {
                // Blocks this worker thread only (the runtime has four): the browser gets time
                // to see the step.
                if step != Step::Claim {
                    std::thread::sleep(Duration::from_millis(700));
                }
            })));
        }
        if let Some(status) = node.try_wait().unwrap() {
            break status;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the browser test did not end"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(status.success(), "the browser scenario failed: {status}");

    // One pull request per fix: the replayed job opened its one, the live job its own.
    let replayed = world.operation(dead).await;
    assert_eq!(
        replayed["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED",
        "{replayed}"
    );
    let open = github.open_prs();
    assert_eq!(open.len(), 2, "{open:?}");
    assert_eq!(github.creates(), 2, "no second PR for the same fix");
    world.stop().await;
}
