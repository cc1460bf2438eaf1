//! Fault tests with real worker processes: SIGKILL at each step over a batch, a RabbitMQ
//! restart, a Postgres outage, SIGTERM with jobs in flight. The invariants checked after each:
//! every accepted operation ends SUCCEEDED, each with exactly one pull request, none stuck.
//!
//! These stop and restart the shared services, so they are `#[ignore]`d and run on their own,
//! one at a time, after the rest of the suite (`scripts/test` does it). Each leaves Postgres and
//! RabbitMQ running, even when it fails.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use remediator::config::PatcherChoice;
use remediator::db::schema::operations;
use serde_json::json;
use support::fake_github::FakeGithub;
use support::processes::{WorkerConfig, terminate, wait_exit};
use support::remediation::{World, WorldOptions};
use uuid::Uuid;
use wiremock::matchers::{method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

const END: Duration = Duration::from_secs(240);

/// A world whose worker processes ask a slow fake LLM (so the generate step lasts) and a
/// stateful fake GitHub.
async fn fault_world(llm_delay: Duration) -> (World, MockServer, FakeGithub) {
    // Jobs are killed over and over here; they must not count as crash-looping.
    fault_world_with(llm_delay, 10).await
}

async fn fault_world_with(
    llm_delay: Duration,
    delivery_limit: u32,
) -> (World, MockServer, FakeGithub) {
    let llm = MockServer::start().await;
    let world = World::start(WorldOptions {
        patcher: PatcherChoice::Llm,
        llm_base_url: Some(format!("{}/v1", llm.uri())),
        start_worker: false,
        adjust: Some(Box::new(move |s| {
            s.rescuer.interval_secs = 1;
            s.rescuer.stale_after_secs = 6;
            s.amqp.max_attempts = 10;
            s.amqp.delivery_limit = delivery_limit;
        })),
        ..Default::default()
    })
    .await;
    let answer = json!({"edits": [{"path": "package.json", "search": "\"lodash\": \"^4.17.20\"", "replace": "\"lodash\": \"^4.17.21\""}],
                        "confidence": 0.9, "explanation": "raise lodash to the fixed release"});
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_delay(llm_delay).set_body_json(json!({
            "id": "c", "object": "chat.completion", "model": "fake-model",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.to_string()}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120}})))
        .mount(&llm)
        .await;
    let github = FakeGithub::with_delay(Duration::from_millis(300));
    github.mount(&world.github).await;
    (world, llm, github)
}

/// Imports `count` more AFFECTED findings of the project and requests each; returns the ids.
async fn request_batch(world: &World, count: usize) -> Vec<Uuid> {
    let mut file = json!({"findings": [], "assessments": []});
    let mut assessments = Vec::new();
    for i in 0..count {
        let finding = Uuid::new_v4();
        let assessment = Uuid::new_v4();
        file["findings"].as_array_mut().unwrap().push(json!({"id": finding, "project_id": world.catalog.project,
            "vulnerability_id": format!("GHSA-fault-{}-{i}", &finding.simple().to_string()[..6]), "severity": "HIGH",
            "package_name": "lodash", "ecosystem": "npm", "installed_version": "4.17.20", "fixed_versions": ["4.17.21"]}));
        file["assessments"].as_array_mut().unwrap().push(json!({"id": assessment, "finding_id": finding, "status": "ASSESSMENT_STATUS_AFFECTED"}));
        assessments.push(assessment);
    }
    let parsed = remediator::import::parse(
        &file.to_string(),
        &support::app::import_rules(&world.app.settings),
    )
    .unwrap();
    remediator::import::import(&world.app.pool, parsed)
        .await
        .unwrap();
    let mut ids = Vec::new();
    for assessment in assessments {
        ids.push(world.request(assessment).await);
    }
    ids
}

/// Waits until every operation ended; returns them.
async fn wait_all(world: &World, ids: &[Uuid]) -> Vec<serde_json::Value> {
    let mut ended = Vec::new();
    for id in ids {
        ended.push(world.wait_for_end(*id, END).await);
    }
    ended
}

/// The invariants: all SUCCEEDED, and since every job fixes the same package (lodash), every
/// operation reports the package's one PR, which was opened exactly once (issue 14: one pull
/// request per package fix, however many advisories, kills and redeliveries).
fn assert_one_pr_each(ops: &[serde_json::Value], github: &FakeGithub) {
    let prs = github.open_prs();
    let mut numbers = HashSet::new();
    for op in ops {
        assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op}");
        let branch = op["output"]["branch"].as_str().unwrap();
        let number = op["output"]["pr_number"].as_u64().unwrap();
        assert_eq!(
            prs.get(branch),
            Some(&number),
            "the operation reports its branch's PR"
        );
        numbers.insert(number);
    }
    assert_eq!(
        numbers.len(),
        1,
        "every operation of the package shares its PR"
    );
    assert_eq!(github.creates(), 1, "the package's PR was opened once");
}

async fn running_steps(world: &World) -> Vec<String> {
    let mut conn = world.app.pool.get().await.unwrap();
    operations::table
        .filter(operations::status.eq("ASYNC_OPERATION_STATUS_RUNNING"))
        .select(operations::step)
        .load::<Option<String>>(&mut conn)
        .await
        .unwrap_or_default()
        .into_iter()
        .flatten()
        .collect()
}

#[tokio::test]
#[ignore = "kills worker processes; run by scripts/test after the suite"]
async fn workers_killed_at_each_step_lose_nothing_and_open_no_duplicate() {
    let (world, _llm, github) = fault_world(Duration::from_millis(400)).await;
    let config = WorkerConfig::for_world(&world);
    let mut fleet: Vec<_> = (0..2).map(|_| config.spawn(&world, 2, &[])).collect();
    let ids = request_batch(&world, 10).await;

    // For each step, wait until some job is in it, then SIGKILL the whole fleet and restart it.
    let mut kills: BTreeMap<String, usize> = BTreeMap::new();
    for target in [
        "clone",
        "generate",
        "push",
        "pull_request",
        "generate",
        "pull_request",
    ] {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if running_steps(&world).await.iter().any(|s| s == target) {
                for worker in &mut fleet {
                    let _ = worker.start_kill();
                    let _ = worker.wait().await;
                }
                *kills.entry(target.to_owned()).or_default() += 1;
                fleet = (0..2).map(|_| config.spawn(&world, 2, &[])).collect();
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    let ops = wait_all(&world, &ids).await;
    let total_kills: usize = kills.values().sum::<usize>() * 2;
    println!("SIGKILLed {total_kills} worker processes, by step of a job in flight: {kills:?}");
    let attempts: i64 = ops.iter().map(|o| o["attempts"].as_i64().unwrap()).sum();
    println!(
        "{} jobs, {attempts} attempts in all, {} PRs opened",
        ops.len(),
        github.creates()
    );
    assert_one_pr_each(&ops, &github);
    assert!(kills.len() >= 3, "kills landed in several steps: {kills:?}");
    drop(fleet);
    world.stop().await;
}

/// Restarts RabbitMQ's application when dropped, so a failing test never leaves it down.
struct BrokerGuard;

impl BrokerGuard {
    fn stop() -> BrokerGuard {
        let status = std::process::Command::new("rabbitmqctl")
            .args(["-q", "stop_app"])
            .status()
            .unwrap();
        assert!(status.success(), "rabbitmqctl stop_app");
        BrokerGuard
    }
}

impl Drop for BrokerGuard {
    fn drop(&mut self) {
        let _ = std::process::Command::new("rabbitmqctl")
            .args(["-q", "start_app"])
            .status();
        let _ = std::process::Command::new("rabbitmqctl")
            .args(["-q", "await_startup"])
            .status();
    }
}

#[tokio::test]
#[ignore = "restarts RabbitMQ; run by scripts/test after the suite"]
async fn a_broker_restart_mid_batch_loses_nothing_and_does_nothing_twice() {
    let (world, _llm, github) = fault_world(Duration::from_millis(300)).await;
    let config = WorkerConfig::for_world(&world);
    let fleet: Vec<_> = (0..2).map(|_| config.spawn(&world, 2, &[])).collect();
    let mut ids = request_batch(&world, 8).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while running_steps(&world).await.is_empty() {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    {
        let _broker_down = BrokerGuard::stop();
        // The intake keeps accepting: jobs wait in the outbox.
        ids.extend(request_batch(&world, 4).await);
        tokio::time::sleep(Duration::from_secs(2)).await;
        // So it stays ready; the body says the broker is down.
        let (status, ready) = world.app.get_json(None, "/readyz").await;
        assert_eq!(status, 200, "{ready}");
        assert_eq!(ready["database"], "ok", "{ready}");
        assert!(
            ready["broker"].as_str().unwrap().starts_with("down since"),
            "{ready}"
        );
    }
    println!("RabbitMQ restarted with jobs in flight");
    let ops = wait_all(&world, &ids).await;
    assert_one_pr_each(&ops, &github);
    drop(fleet);
    world.stop().await;
}

/// Starts Postgres again when dropped.
struct DatabaseGuard(String);

impl DatabaseGuard {
    fn stop() -> DatabaseGuard {
        let version = std::fs::read_dir("/etc/postgresql")
            .unwrap()
            .filter_map(Result::ok)
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .next()
            .unwrap();
        let status = std::process::Command::new("pg_ctlcluster")
            .args([
                "--skip-systemctl-redirect",
                &version,
                "main",
                "stop",
                "-m",
                "fast",
            ])
            .status()
            .unwrap();
        assert!(status.success(), "stop Postgres");
        DatabaseGuard(version)
    }
}

impl Drop for DatabaseGuard {
    fn drop(&mut self) {
        let _ = std::process::Command::new("pg_ctlcluster")
            .args(["--skip-systemctl-redirect", &self.0, "main", "start"])
            .status();
        for _ in 0..60 {
            let ready = std::process::Command::new("pg_isready")
                .args(["-h", "127.0.0.1", "-q"])
                .status();
            if ready.is_ok_and(|s| s.success()) {
                return;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
    }
}

#[tokio::test]
#[ignore = "stops Postgres; run by scripts/test after the suite"]
async fn a_database_outage_answers_503_and_everything_completes_afterwards() {
    let (world, _llm, github) = fault_world(Duration::from_millis(300)).await;
    let config = WorkerConfig::for_world(&world);
    let fleet: Vec<_> = (0..2).map(|_| config.spawn(&world, 2, &[])).collect();
    let ids = request_batch(&world, 8).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while running_steps(&world).await.is_empty() {
        assert!(Instant::now() < deadline);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    {
        let _database_down = DatabaseGuard::stop();
        let token = world.app.full_token(world.catalog.org);
        let (status, body) = world
            .app
            .post_remediation(
                Some(&token),
                &json!({"assessment_id": world.catalog.affected}).to_string(),
            )
            .await;
        assert_eq!((status, body["code"].as_i64()), (503, Some(14)), "{body}");
        let (status, body) = world
            .app
            .get_json(Some(&token), &format!("/v1/operations/{}", ids[0]))
            .await;
        assert_eq!((status, body["code"].as_i64()), (503, Some(14)), "{body}");
        let (status, ready) = world.app.get_json(None, "/readyz").await;
        assert_eq!(status, 503, "{ready}");
        assert_ne!(ready["database"], "ok", "{ready}");
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    println!("Postgres stopped and started with jobs in flight");
    let ops = wait_all(&world, &ids).await;
    assert_one_pr_each(&ops, &github);
    drop(fleet);
    world.stop().await;
}

#[tokio::test]
#[ignore = "signals worker processes; run by scripts/test after the suite"]
async fn sigterm_lets_jobs_in_flight_finish_and_returns_the_rest() {
    let (world, _llm, github) = fault_world(Duration::from_secs(2)).await;
    let config = WorkerConfig::for_world(&world);
    // A short grace period: the jobs still waiting on the LLM when it ends go back to the queue.
    let mut worker = config.spawn(
        &world,
        4,
        &[("REMEDIATOR__INTAKE__SHUTDOWN_GRACE_SECS", "1")],
    );
    let ids = request_batch(&world, 4).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while running_steps(&world).await.len() < 4 {
        assert!(Instant::now() < deadline, "jobs never all started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    terminate(&worker);
    let status = wait_exit(&mut worker, Duration::from_secs(20)).await;
    assert!(
        status.success(),
        "the worker exits 0 on SIGTERM: {status:?}"
    );

    // A patient worker: SIGTERM waits for the jobs in flight, which end SUCCEEDED.
    let mut patient = config.spawn(
        &world,
        4,
        &[("REMEDIATOR__INTAKE__SHUTDOWN_GRACE_SECS", "60")],
    );
    let more = request_batch(&world, 2).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while world.operation(more[0]).await["step"] != "generate" {
        assert!(
            Instant::now() < deadline,
            "the patient worker never started a job"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    terminate(&patient);
    let status = wait_exit(&mut patient, Duration::from_secs(60)).await;
    assert!(status.success(), "{status:?}");
    let finished = world.operation(more[0]).await;
    assert_eq!(
        finished["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED",
        "finished within the grace period: {finished}"
    );

    let replacement = config.spawn(&world, 4, &[]);
    let mut all = ids.clone();
    all.extend(more);
    let ops = wait_all(&world, &all).await;
    assert_one_pr_each(&ops, &github);
    drop(replacement);
    world.stop().await;
}

/// The operation's status, step and claiming worker, straight from the database.
async fn operation_row(world: &World, id: Uuid) -> (String, Option<String>, Option<String>) {
    let mut conn = world.app.pool.get().await.unwrap();
    operations::table
        .find(id)
        .select((operations::status, operations::step, operations::claimed_by))
        .first(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
#[ignore = "kills worker processes; run by scripts/test after the suite"]
async fn a_job_that_kills_every_worker_it_runs_on_is_dead_lettered_as_crashed_then_replays() {
    const LIMIT: u32 = 3;
    let (world, _llm, github) = fault_world_with(Duration::from_millis(1500), LIMIT).await;
    let config = WorkerConfig::for_world(&world);
    // One job per process, so killing the process running the bad job kills only it.
    let mut fleet: Vec<_> = (0..3).map(|_| config.spawn(&world, 1, &[])).collect();
    let bad = world.request(world.catalog.affected).await;
    let good = request_batch(&world, 4).await;

    // As an OOM kill or a libgit2 crash would: whenever the bad job is past its claim, the
    // process running it dies, and a fresh one takes its place.
    let mut kills = 0;
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let (status, step, claimed_by) = operation_row(&world, bad).await;
        if status != "ASYNC_OPERATION_STATUS_RUNNING" && status != "ASYNC_OPERATION_STATUS_PENDING"
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the crash-looping job never ended"
        );
        let pid = claimed_by
            .as_deref()
            .and_then(|c| c.rsplit('/').next()?.parse::<u32>().ok());
        let past_claim = matches!(step.as_deref(), Some("clone" | "generate"));
        if status == "ASYNC_OPERATION_STATUS_RUNNING" && past_claim {
            if let Some(index) = fleet.iter().position(|w| w.id() == pid) {
                let mut worker = fleet.swap_remove(index);
                let _ = worker.start_kill();
                let _ = worker.wait().await;
                kills += 1;
                fleet.push(config.spawn(&world, 1, &[]));
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let op = world.wait_for_end(bad, END).await;
    println!(
        "the bad job's workers were SIGKILLed {kills} times; it ended: {}",
        op["error_message"]
    );
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_FAILED", "{op}");
    let error = op["error_message"].as_str().unwrap();
    assert!(
        error.contains(&format!("its worker died {LIMIT} times in a row")),
        "{error}"
    );
    assert!(
        error.contains("dead-lettered with reason crashed"),
        "{error}"
    );
    assert_eq!(
        kills, LIMIT as usize,
        "started exactly delivery_limit times"
    );

    // Meanwhile the other jobs in the same queue went through.
    let ops = wait_all(&world, &good).await;
    assert_one_pr_each(&ops, &github);

    // The cause is gone (nothing kills any more): a replay finishes it, with one PR.
    let settings = &world.app.settings;
    let dlq = remediator::queue::dead_letters::DeadLetterQueue::open(
        &settings.amqp.url,
        remediator::queue::topology::Topology::new(&settings.amqp),
        world.app.pool.clone(),
    )
    .await
    .unwrap();
    let taken = dlq.take_all().await.unwrap();
    assert_eq!(taken.items.len(), 1);
    assert_eq!(
        taken.items[0].1.reason,
        remediator::queue::dead_letters::DeadLetterReason::Ours(
            remediator::lifecycle::DeadReason::Crashed
        )
    );
    let filter = remediator::queue::dead_letters::Filter {
        operation_ids: vec![bad.into()],
        ..Default::default()
    };
    let summary = dlq
        .replay(taken, &filter, "fault-test", None)
        .await
        .unwrap();
    assert_eq!(summary.replayed, vec![bad.into()]);
    dlq.close().await;
    let op = world.wait_for_end(bad, END).await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op}");
    assert_eq!(
        github.creates(),
        1,
        "the replayed job reuses the package's PR"
    );
    assert_eq!(op["output"]["pr_reused"], true, "{op}");
    drop(fleet);
    world.stop().await;
}
