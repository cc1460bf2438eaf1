//! Reliability without touching the shared services: retries in place and through the delay
//! queues, dead letters and their replay, cancellation, the rescuer, and poison messages.

mod support;

use std::time::{Duration, Instant};

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use remediator::config::PatcherChoice;
use remediator::db::schema::operations;
use remediator::lifecycle::{DeadReason, EventKind};
use remediator::queue::dead_letters::{DeadLetterQueue, DeadLetterReason, Filter};
use remediator::queue::message::JobMessage;
use remediator::queue::publisher::Publisher;
use remediator::queue::topology::Topology;
use serde_json::{Value, json};
use support::remediation::{World, WorldOptions};
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

const END: Duration = Duration::from_secs(120);

/// Returned messages reach the queue again asynchronously: wait for the expected depth.
async fn wait_for_depth(dlq: &DeadLetterQueue, expected: u32) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let depth = dlq.depth().await.unwrap();
        if depth == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "dead-letter queue holds {depth}, expected {expected}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn pr(number: u64) -> Value {
    json!({"number": number, "html_url": format!("https://github.example/acme/web/pull/{number}")})
}

/// Polls until the operation is at `step`.
async fn wait_for_step(world: &World, id: uuid::Uuid, step: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while world.operation(id).await["step"] != step {
        assert!(Instant::now() < deadline, "never reached {step}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `POST /v1/operations/{id}/cancel` with a token of `org`; returns the status and body.
async fn cancel(world: &World, id: uuid::Uuid, org: uuid::Uuid) -> (u16, Value) {
    let token = world.app.full_token(org);
    let response = world
        .app
        .http
        .post(format!("{}/v1/operations/{id}/cancel", world.app.base_url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn mount_empty_pr_list(world: &World) {
    Mock::given(method("GET"))
        .and(path("/repos/acme/web/pulls"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&world.github)
        .await;
}

async fn created_prs(world: &World) -> usize {
    let mut created = 0;
    for request in world.github.received_requests().await.unwrap_or_default() {
        if request.method.as_str() == "POST" && request.url.path() == "/repos/acme/web/pulls" {
            created += 1;
        }
    }
    created
}

async fn publisher(world: &World) -> (lapin::Connection, Publisher) {
    let connection = remediator::queue::connect(&world.app.settings.amqp.url, "test")
        .await
        .unwrap();
    let publisher = Publisher::open(&connection, Topology::new(&world.app.settings.amqp))
        .await
        .unwrap();
    (connection, publisher)
}

fn few_attempts() -> WorldOptions {
    WorldOptions {
        adjust: Some(Box::new(|s| {
            s.amqp.max_attempts = 2;
            s.amqp.retry_delays_secs = vec![1];
        })),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_forge_down_for_good_dead_letters_the_job_and_a_replay_finishes_it_with_one_pr() {
    let world = World::start(few_attempts()).await;
    mount_empty_pr_list(&world).await;
    let outage = Mock::given(method("POST"))
        .and(path("/repos/acme/web/pulls"))
        .respond_with(ResponseTemplate::new(502))
        .named("forge outage")
        .mount_as_scoped(&world.github)
        .await;
    let id = world.request(world.catalog.affected).await;
    let failed = world.wait_for_end(id, END).await;
    assert_eq!(
        failed["status"], "ASYNC_OPERATION_STATUS_FAILED",
        "{failed}"
    );
    let message = failed["error_message"].as_str().unwrap();
    assert!(
        message.contains("gave up after 2 attempts") && message.contains("dead-letter queue"),
        "{message}"
    );

    // Ops see it in the dead-letter queue with its reason, the queue keeps it while listing.
    let settings = &world.app.settings;
    let dlq = DeadLetterQueue::open(
        &settings.amqp.url,
        Topology::new(&settings.amqp),
        world.app.pool.clone(),
    )
    .await
    .unwrap();
    let taken = dlq.take_all().await.unwrap();
    assert_eq!(taken.items.len(), 1);
    let dead = &taken.items[0].1;
    assert_eq!(dead.operation_id, Some(id.into()));
    assert_eq!(dead.reason, DeadLetterReason::Ours(DeadReason::MaxAttempts));
    assert_eq!(dead.project_id, Some(world.catalog.project.into()));
    assert!(
        dead.last_error
            .as_deref()
            .unwrap()
            .contains("step pull_request failed")
    );
    dlq.give_back(taken.items.into_iter().map(|(d, _)| d)).await;
    wait_for_depth(&dlq, 1).await;

    // The forge recovers; a replay finishes the job with exactly one PR.
    drop(outage);
    Mock::given(method("POST"))
        .and(path("/repos/acme/web/pulls"))
        .respond_with(ResponseTemplate::new(201).set_body_json(pr(5)))
        .mount(&world.github)
        .await;
    let taken = dlq.take_all().await.unwrap();
    let filter = Filter {
        operation_ids: vec![id.into()],
        ..Default::default()
    };
    let summary = dlq
        .replay(taken, &filter, "test-operator", None)
        .await
        .unwrap();
    assert_eq!(summary.replayed, vec![id.into()]);
    assert_eq!(
        dlq.depth().await.unwrap(),
        0,
        "the message left the queue after its republish"
    );
    let replayed = world.wait_for_end(id, END).await;
    assert_eq!(
        replayed["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED",
        "{replayed}"
    );
    assert_eq!(replayed["attempts"], 1, "fresh attempt count");
    assert_eq!(replayed["output"]["pr_number"], 5);
    let mut conn = world.app.pool.get().await.unwrap();
    let history = remediator::db::operations::history(&mut conn, id.into())
        .await
        .unwrap();
    assert!(
        history.iter().any(|e| e.message.as_deref()
            == Some("replayed from the dead-letter queue by test-operator"))
    );
    assert_eq!(
        history
            .iter()
            .filter(|e| e.kind == EventKind::AttemptError)
            .count(),
        2,
        "every attempt's error is kept"
    );
    dlq.close().await;
    world.stop().await;
}

#[tokio::test]
async fn an_llm_rate_limit_with_retry_after_is_waited_out_in_place() {
    let llm = wiremock::MockServer::start().await;
    let world = World::start(WorldOptions {
        patcher: PatcherChoice::Llm,
        llm_base_url: Some(format!("{}/v1", llm.uri())),
        ..Default::default()
    })
    .await;
    mount_empty_pr_list(&world).await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/web/pulls"))
        .respond_with(ResponseTemplate::new(201).set_body_json(pr(3)))
        .mount(&world.github)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(
            ResponseTemplate::new(429)
                .insert_header("retry-after", "1")
                .set_body_json(json!({"error": {"message": "slow down", "type": "rate_limit"}})),
        )
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&llm)
        .await;
    let answer = json!({"edits": [{"path": "package.json", "search": "\"lodash\": \"^4.17.20\"", "replace": "\"lodash\": \"^4.17.21\""}], "confidence": 0.9, "explanation": "bump"});
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!({
            "id": "c", "object": "chat.completion", "model": "fake-model",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.to_string()}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}})))
        .with_priority(2)
        .mount(&llm)
        .await;
    let started = Instant::now();
    let id = world.request(world.catalog.affected).await;
    let op = world.wait_for_end(id, END).await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op}");
    assert_eq!(
        op["attempts"], 1,
        "retried inside the step, not through the queue"
    );
    assert_eq!(op["output"]["llm"]["rounds"], 1);
    assert_eq!(llm.received_requests().await.unwrap().len(), 2);
    assert!(
        started.elapsed() >= Duration::from_secs(1),
        "Retry-After was honoured"
    );
    world.stop().await;
}

#[tokio::test]
async fn a_pending_operation_is_cancelled_at_once_and_never_runs() {
    let mut world = World::start(WorldOptions {
        start_worker: false,
        ..Default::default()
    })
    .await;
    let id = world.request(world.catalog.affected).await;
    let (status, body) = cancel(&world, id, world.catalog.org).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["operation"]["status"],
        "ASYNC_OPERATION_STATUS_CANCELLED"
    );

    // Cancelling again, or another organisation cancelling, is refused as the contract says.
    let (again, _) = cancel(&world, id, world.catalog.org).await;
    assert_eq!(again, 400);
    let (foreign, _) = cancel(&world, id, world.catalog.other_org).await;
    assert_eq!(foreign, 404);

    // The job still in the queue is taken by a worker, which records that it skipped it.
    world.start_worker();
    world
        .wait_for_note(id, "skipped a delivery", Duration::from_secs(20))
        .await;
    assert_eq!(
        world.operation(id).await["status"],
        "ASYNC_OPERATION_STATUS_CANCELLED"
    );
    assert_eq!(world.branches(), vec!["main".to_owned()]);
    world.stop().await;
}

#[tokio::test]
async fn a_running_operation_stops_at_the_next_step_and_pushes_nothing() {
    let llm = wiremock::MockServer::start().await;
    let world = World::start(WorldOptions {
        patcher: PatcherChoice::Llm,
        llm_base_url: Some(format!("{}/v1", llm.uri())),
        ..Default::default()
    })
    .await;
    // The model takes its time: the worker sits in the generate step.
    let answer = json!({"edits": [{"path": "package.json", "search": "^4.17.20", "replace": "^4.17.21"}], "confidence": 0.9, "explanation": "bump"});
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .respond_with(ResponseTemplate::new(200).set_delay(Duration::from_secs(3)).set_body_json(json!({
            "id": "c", "object": "chat.completion", "model": "fake-model",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer.to_string()}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}})))
        .mount(&llm)
        .await;
    let id = world.request(world.catalog.affected).await;
    wait_for_step(&world, id, "generate").await;
    let (status, body) = cancel(&world, id, world.catalog.org).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["operation"]["status"],
        "ASYNC_OPERATION_STATUS_RUNNING"
    );
    assert_eq!(body["operation"]["cancel_requested"], true);

    let op = world.wait_for_end(id, END).await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_CANCELLED", "{op}");
    assert!(
        op["error_message"]
            .as_str()
            .unwrap()
            .contains("cancelled before step lock"),
        "{op}"
    );
    assert_eq!(
        world.branches(),
        vec!["main".to_owned()],
        "nothing pushed after the cancel"
    );
    assert_eq!(created_prs(&world).await, 0);
    world.stop().await;
}

#[tokio::test]
async fn a_cancel_is_refused_once_the_branch_may_be_pushed() {
    let world = World::start(WorldOptions::default()).await;
    mount_empty_pr_list(&world).await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/web/pulls"))
        .respond_with(
            ResponseTemplate::new(201)
                .set_body_json(pr(8))
                .set_delay(Duration::from_secs(3)),
        )
        .mount(&world.github)
        .await;
    let id = world.request(world.catalog.affected).await;
    wait_for_step(&world, id, "pull_request").await;
    let (status, body) = cancel(&world, id, world.catalog.org).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], 9);
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("can no longer be cancelled"),
        "{body}"
    );
    let op = world.wait_for_end(id, END).await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED");
    world.stop().await;
}

#[tokio::test]
async fn the_rescuer_requeues_an_operation_whose_worker_vanished() {
    let world = World::start(WorldOptions::default()).await;
    mount_empty_pr_list(&world).await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/web/pulls"))
        .respond_with(ResponseTemplate::new(201).set_body_json(pr(4)))
        .expect(1)
        .mount(&world.github)
        .await;
    // An operation a dead worker left RUNNING, its message long gone.
    let mut conn = world.app.pool.get().await.unwrap();
    let target =
        remediator::db::catalog::remediation_target(&mut conn, world.catalog.affected.into(), None)
            .await
            .unwrap()
            .unwrap();
    let (id, _) = remediator::db::operations::create_or_get_live(&mut conn, &target)
        .await
        .unwrap();
    diesel::update(operations::table.find(id))
        .set((
            operations::status.eq("ASYNC_OPERATION_STATUS_RUNNING"),
            operations::attempts.eq(1),
            operations::heartbeat_at.eq(chrono::Utc::now() - chrono::Duration::minutes(10)),
        ))
        .execute(&mut conn)
        .await
        .unwrap();
    let rescuer = remediator::worker::rescuer::Rescuer {
        pool: world.app.pool.clone(),
        interval: Duration::from_secs(1),
        stale_after: Duration::from_secs(60),
    };
    assert_eq!(rescuer.rescue_once().await.unwrap(), vec![id]);
    assert!(
        rescuer.rescue_once().await.unwrap().is_empty(),
        "rescued once"
    );
    let op = world.wait_for_end(id.0, END).await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op}");
    assert_eq!(op["attempts"], 2);
    world.stop().await;
}

#[tokio::test]
async fn a_message_naming_no_operation_is_dead_lettered_with_its_reason() {
    let world = World::start(WorldOptions::default()).await;
    let (connection, publisher) = publisher(&world).await;
    let ghost = uuid::Uuid::new_v4();
    publisher
        .send_work(&JobMessage::remediation(ghost.into()))
        .await
        .unwrap()
        .confirmed()
        .await
        .unwrap();
    let settings = &world.app.settings;
    let dlq = DeadLetterQueue::open(
        &settings.amqp.url,
        Topology::new(&settings.amqp),
        world.app.pool.clone(),
    )
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while dlq.depth().await.unwrap() == 0 {
        assert!(Instant::now() < deadline, "not dead-lettered");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let taken = dlq.take_all().await.unwrap();
    assert_eq!(taken.items[0].1.operation_id, Some(ghost.into()));
    assert_eq!(
        taken.items[0].1.reason,
        DeadLetterReason::Ours(DeadReason::UnknownOperation)
    );
    // Replay refuses it: there is nothing to put back to PENDING; it stays for ops to purge.
    let summary = dlq
        .replay(taken, &Filter::default(), "ops", None)
        .await
        .unwrap();
    assert!(summary.replayed.is_empty());
    wait_for_depth(&dlq, 1).await;
    let taken = dlq.take_all().await.unwrap();
    assert_eq!(
        dlq.purge(taken, &Filter::default(), "ops").await.unwrap(),
        1
    );
    assert_eq!(dlq.depth().await.unwrap(), 0);
    dlq.close().await;
    let _ = connection.close(200, "done".into()).await;
    world.stop().await;
}

#[tokio::test]
async fn replaying_a_hundred_dead_letters() {
    let world = World::start(WorldOptions {
        start_worker: false,
        ..Default::default()
    })
    .await;
    let (connection, publisher) = publisher(&world).await;
    let topology = Topology::new(&world.app.settings.amqp);
    // 100 FAILED operations whose jobs wait in the dead-letter queue.
    let mut file = json!({"findings": [], "assessments": []});
    let mut ids = Vec::new();
    for i in 0..100 {
        let finding = uuid::Uuid::new_v4();
        file["findings"].as_array_mut().unwrap().push(json!({"id": finding, "project_id": world.catalog.project,
            "vulnerability_id": format!("GHSA-bulk-{i}"), "package_name": "lodash", "ecosystem": "npm",
            "installed_version": "4.17.20", "fixed_versions": ["4.17.21"]}));
        file["assessments"].as_array_mut().unwrap().push(json!({"id": uuid::Uuid::new_v4(), "finding_id": finding, "status": "ASSESSMENT_STATUS_AFFECTED"}));
    }
    let parsed = remediator::import::parse(
        &file.to_string(),
        &support::app::import_rules(&world.app.settings),
    )
    .unwrap();
    remediator::import::import(&world.app.pool, parsed)
        .await
        .unwrap();
    let mut conn = world.app.pool.get().await.unwrap();
    for a in file["assessments"].as_array().unwrap() {
        let target = remediator::db::catalog::remediation_target(
            &mut conn,
            a["id"].as_str().unwrap().parse().unwrap(),
            None,
        )
        .await
        .unwrap()
        .unwrap();
        let (id, _) = remediator::db::operations::create_or_get_live(&mut conn, &target)
            .await
            .unwrap();
        diesel::update(operations::table.find(id))
            .set(operations::status.eq("ASYNC_OPERATION_STATUS_FAILED"))
            .execute(&mut conn)
            .await
            .unwrap();
        let mut headers = lapin::types::FieldTable::default();
        remediator::queue::message::mark_dead(
            &mut headers,
            remediator::lifecycle::DeadReason::MaxAttempts,
            "step push failed: test",
        );
        publisher
            .send(
                &topology.dead_exchange,
                "",
                &JobMessage::remediation(id),
                headers,
            )
            .await
            .unwrap()
            .confirmed()
            .await
            .unwrap();
        ids.push(id);
    }
    let settings = &world.app.settings;
    let dlq = DeadLetterQueue::open(&settings.amqp.url, topology.clone(), world.app.pool.clone())
        .await
        .unwrap();
    let started = Instant::now();
    let taken = dlq.take_all().await.unwrap();
    let summary = dlq
        .replay(taken, &Filter::default(), "bulk", None)
        .await
        .unwrap();
    let elapsed = started.elapsed();
    println!(
        "replayed {} dead letters in {:.3}s",
        summary.replayed.len(),
        elapsed.as_secs_f64()
    );
    assert_eq!(summary.replayed.len(), 100);
    assert_eq!(dlq.depth().await.unwrap(), 0);
    let pending: i64 = operations::table
        .filter(operations::id.eq_any(&ids))
        .filter(operations::status.eq("ASYNC_OPERATION_STATUS_PENDING"))
        .count()
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(pending, 100);
    // Every job is on the work queue exactly once.
    let mut seen = std::collections::HashSet::new();
    while let Some((job, _)) =
        support::app::next_message(settings, &topology.work_queue, Duration::from_millis(500)).await
    {
        assert!(seen.insert(job.operation_id()), "published twice");
    }
    assert_eq!(seen.len(), 100);
    dlq.close().await;
    let _ = connection.close(200, "done".into()).await;
    world.stop().await;
}

/// One more AFFECTED lodash finding of the world's project, under its own advisory id.
async fn another_affected(world: &World) -> uuid::Uuid {
    let id = format!(
        "GHSA-more-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    world
        .add_affected("lodash", "npm", &id, "4.17.20", "4.17.21")
        .await
}

#[tokio::test]
async fn a_job_that_panics_is_retried_then_failed_with_the_panic_message_and_the_worker_serves_on()
{
    let mut world = World::start(WorldOptions {
        start_worker: false,
        adjust: Some(Box::new(|s| {
            s.amqp.max_attempts = 2;
            s.amqp.retry_delays_secs = vec![1];
            // Two slots: before the guard, two panics left two zombies holding both.
            s.worker.concurrency = 2;
        })),
        ..Default::default()
    })
    .await;
    let github = support::fake_github::FakeGithub::with_delay(Duration::ZERO);
    github.mount(&world.github).await;
    let bad = world.request(world.catalog.affected).await;
    let bad_id: remediator::lifecycle::OperationId = bad.into();
    world.start_worker_with(Some(std::sync::Arc::new(move |operation, step| {
        if operation == bad_id && step == remediator::lifecycle::Step::Generate {
            panic!("injected fault: the patcher blew up");
        }
    })));

    let op = world.wait_for_end(bad, END).await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_FAILED", "{op}");
    assert_eq!(op["attempts"], 2, "retried once, then given up: {op}");
    let error = op["error_message"].as_str().unwrap();
    assert!(
        error.contains(
            "step generate failed: the job panicked: injected fault: the patcher blew up"
        ),
        "{error}"
    );
    assert!(error.contains("max_attempts"), "{error}");
    let attempt_errors: Vec<String> = world
        .history(bad)
        .await
        .into_iter()
        .filter(|e| e.kind == EventKind::AttemptError)
        .filter_map(|e| e.message)
        .collect();
    assert_eq!(attempt_errors.len(), 2, "{attempt_errors:?}");
    assert!(
        attempt_errors.iter().all(|m| m.contains("injected fault")),
        "{attempt_errors:?}"
    );

    // Both slots are free: two more jobs run side by side and succeed.
    let more = [
        another_affected(&world).await,
        another_affected(&world).await,
    ];
    let mut ids = Vec::new();
    for assessment in more {
        ids.push(world.request(assessment).await);
    }
    for id in ids {
        let op = world.wait_for_end(id, END).await;
        assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED", "{op}");
    }
    world.stop().await;
}

#[tokio::test]
async fn a_timed_out_job_keeps_its_git_slot_until_the_clone_ends_and_names_its_step() {
    let world = World::start(WorldOptions {
        adjust: Some(Box::new(|s| {
            s.worker.job_timeout_secs = 1;
            s.worker.git_concurrency = 1;
            s.amqp.max_attempts = 1;
        })),
        ..Default::default()
    })
    .await;
    world.git.delay_fetches(Duration::from_secs(4));
    let id = world.request(world.catalog.affected).await;
    let op = world.wait_for_end(id, END).await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_FAILED", "{op}");
    let error = op["error_message"].as_str().unwrap();
    assert!(
        error.contains("step clone failed: the job exceeded its deadline of 1s"),
        "{error}"
    );
    // The operation ended, but the clone it started still runs: its slot is still taken.
    let slots = world.git_slots.clone().unwrap();
    assert_eq!(
        slots.available_permits(),
        0,
        "released before the clone ended"
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    while slots.available_permits() == 0 {
        assert!(Instant::now() < deadline, "the slot was never released");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // And its scratch directory went with it.
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::read_dir(world.scratch.path())
        .unwrap()
        .next()
        .is_some()
    {
        assert!(
            Instant::now() < deadline,
            "the scratch directory was left behind"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    world.stop().await;
}
