//! The intake end to end over HTTP, against real Postgres and RabbitMQ: the contract's happy
//! path and every error, duplicates and races, tenancy, pagination, and the outbox relay.

mod support;

use std::sync::Arc;
use std::time::Duration;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use remediator::db::schema::{operations, outbox};
use remediator::queue::relay::Relay;
use remediator::queue::topology::Topology;
use remediator::shutdown::Shutdown;
use serde_json::json;
use support::app::{TestApp, next_message, seed_catalog, test_settings};
use uuid::Uuid;

const REPO: &str = "https://github.com/acme/web.git";

async fn count_outbox(app: &TestApp, published: bool) -> i64 {
    let mut conn = app.pool.get().await.unwrap();
    let query = outbox::table.into_boxed();
    let query = if published {
        query.filter(outbox::published_at.is_not_null())
    } else {
        query.filter(outbox::published_at.is_null())
    };
    query.count().get_result(&mut conn).await.unwrap()
}

#[tokio::test]
async fn accepted_request_creates_a_pending_operation_and_a_queued_job() {
    let app = TestApp::spawn().await;
    let c = seed_catalog(&app, REPO).await;
    let token = app.full_token(c.org);

    let (status, body) = app
        .post_remediation(
            Some(&token),
            &json!({"assessment_id": c.affected}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let id: Uuid = body["operation_id"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        body.as_object().unwrap().len(),
        1,
        "only operation_id: {body}"
    );

    let (status, body) = app
        .get_json(Some(&token), &format!("/v1/operations/{id}"))
        .await;
    assert_eq!(status, 200, "{body}");
    let op = &body["operation"];
    assert_eq!(op["id"], id.to_string());
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_PENDING");
    assert_eq!(op["kind"], "auto_remediation");
    assert_eq!(op["resource_type"], "assessment");
    assert_eq!(op["resource_id"], c.affected.to_string());
    assert_eq!(op["project_id"], c.project.to_string());
    assert!(chrono::DateTime::parse_from_rfc3339(op["created_at"].as_str().unwrap()).is_ok());

    let topology = Topology::new(&app.settings.amqp);
    let (job, headers) = next_message(&app.settings, &topology.work_queue, Duration::from_secs(10))
        .await
        .expect("the job reaches the work queue");
    assert_eq!(job.operation_id(), id.into());
    assert_eq!(job.attempt(), 1);
    assert!(headers.inner().contains_key("x-remediator-attempt"));
    assert_eq!(count_outbox(&app, false).await, 0);
    assert_eq!(count_outbox(&app, true).await, 1);
    app.stop().await;
}

#[tokio::test]
async fn every_error_has_the_contract_body() {
    let app = TestApp::spawn().await;
    let c = seed_catalog(&app, REPO).await;
    let token = app.full_token(c.org);
    let read_only = app.token(c.org, &["operations:read"]);
    let expired = {
        let mut s = app.settings.auth.clone();
        s.leeway_secs = 0;
        // A token that expired an hour ago, signed with the right key.
        let claims = json!({"sub": "x", "exp": chrono::Utc::now().timestamp() - 3600, "org_id": c.org, "scope": "remediations:write"});
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(support::app::JWT_SECRET.as_bytes()).unwrap(),
        )
        .unwrap()
    };
    let wrong_key = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &json!({"sub": "x", "exp": chrono::Utc::now().timestamp() + 3600, "org_id": c.org, "scope": "remediations:write"}),
        &jsonwebtoken::EncodingKey::from_secret(b"another-secret").unwrap(),
    )
    .unwrap();

    let good = json!({"assessment_id": c.affected}).to_string();
    let cases: Vec<(Option<&str>, String, u16, i64, &str)> = vec![
        (Some(&token), "{not json".into(), 400, 3, "not valid JSON"),
        (
            Some(&token),
            "{}".into(),
            400,
            3,
            "assessment_id is required",
        ),
        (
            Some(&token),
            r#"{"assessment_id":"42"}"#.into(),
            400,
            3,
            "must be a UUID",
        ),
        (
            Some(&token),
            json!({"assessment_id": Uuid::new_v4()}).to_string(),
            404,
            5,
            "not found",
        ),
        (
            Some(&token),
            json!({"assessment_id": c.other_org_assessment}).to_string(),
            404,
            5,
            "not found",
        ),
        (
            Some(&token),
            json!({"assessment_id": c.not_affected}).to_string(),
            400,
            9,
            "ASSESSMENT_STATUS_NOT_AFFECTED",
        ),
        (None, good.clone(), 401, 16, "missing bearer token"),
        (Some("garbage"), good.clone(), 401, 16, "invalid"),
        (Some(&expired), good.clone(), 401, 16, "expired"),
        (Some(&wrong_key), good.clone(), 401, 16, "invalid"),
        (Some(&read_only), good.clone(), 403, 7, "remediations:write"),
        (
            Some(&token),
            format!(
                r#"{{"assessment_id":"{}","pad":"{}"}}"#,
                c.affected,
                "x".repeat(20_000)
            ),
            413,
            8,
            "exceeds",
        ),
    ];
    for (token, body, status, code, needle) in cases {
        let (got_status, got) = app.post_remediation(token, &body).await;
        assert_eq!(got_status, status, "{body:.80} -> {got}");
        assert_eq!(got["code"], code, "{got}");
        assert!(
            got["message"].as_str().unwrap().contains(needle),
            "{got} should mention {needle}"
        );
        assert!(got["details"].is_array(), "{got}");
    }
    // Nothing was created by any of them.
    let mut conn = app.pool.get().await.unwrap();
    let ops: i64 = operations::table
        .count()
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(ops, 0);
    assert_eq!(
        count_outbox(&app, false).await + count_outbox(&app, true).await,
        0
    );

    let (status, body) = app
        .get_json(Some(&token), "/v1/operations/not-a-uuid")
        .await;
    assert_eq!((status, body["code"].as_i64()), (400, Some(3)), "{body}");
    let (status, body) = app
        .get_json(Some(&token), &format!("/v1/operations/{}", Uuid::new_v4()))
        .await;
    assert_eq!((status, body["code"].as_i64()), (404, Some(5)), "{body}");
    let write_only = app.token(c.org, &["remediations:write"]);
    let (status, body) = app.get_json(Some(&write_only), "/v1/operations").await;
    assert_eq!((status, body["code"].as_i64()), (403, Some(7)), "{body}");
    let (status, body) = app.get_json(None, "/v1/operations").await;
    assert_eq!((status, body["code"].as_i64()), (401, Some(16)), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn a_live_operation_is_returned_again_even_under_a_race() {
    let mut settings = test_settings().await;
    settings.relay.enabled = false;
    let app = TestApp::spawn_with(settings).await;
    let c = seed_catalog(&app, REPO).await;
    let token = app.full_token(c.org);
    let body = json!({"assessment_id": c.affected}).to_string();

    let requests = (0..8).map(|_| app.post_remediation(Some(&token), &body));
    let answers = futures_util::future::join_all(requests).await;
    let ids: std::collections::HashSet<String> = answers
        .iter()
        .map(|(status, body)| {
            assert_eq!(*status, 200, "{body}");
            body["operation_id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "all concurrent requests share one operation");
    assert_eq!(count_outbox(&app, false).await, 1, "exactly one job queued");
    let mut conn = app.pool.get().await.unwrap();
    let events: i64 = remediator::db::schema::operation_events::table
        .count()
        .get_result(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        events, 1,
        "one PENDING event, written by the request that created it"
    );
    drop(conn);

    // Once the operation ended, a new request starts a new one.
    let mut conn = app.pool.get().await.unwrap();
    diesel::update(operations::table)
        .set(operations::status.eq("ASYNC_OPERATION_STATUS_FAILED"))
        .execute(&mut conn)
        .await
        .unwrap();
    let (_, again) = app.post_remediation(Some(&token), &body).await;
    assert!(!ids.contains(again["operation_id"].as_str().unwrap()));
    app.stop().await;
}

#[tokio::test]
async fn operations_are_listed_per_organisation_with_pagination_and_filters() {
    let mut settings = test_settings().await;
    settings.relay.enabled = false;
    let app = TestApp::spawn_with(settings).await;
    let c = seed_catalog(&app, REPO).await;
    let token = app.full_token(c.org);
    let (_, first) = app
        .post_remediation(
            Some(&token),
            &json!({"assessment_id": c.affected}).to_string(),
        )
        .await;
    let other_token = app.full_token(c.other_org);
    let (_, other) = app
        .post_remediation(
            Some(&other_token),
            &json!({"assessment_id": c.other_org_assessment}).to_string(),
        )
        .await;

    let (status, body) = app
        .get_json(
            Some(&token),
            "/v1/operations?pagination.page=0&pagination.page_size=500",
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["operations"].as_array().unwrap().len(), 1);
    assert_eq!(body["operations"][0]["id"], first["operation_id"]);
    assert_eq!(
        body["pagination"],
        json!({"total_count": 1, "page": 0, "total_pages": 1, "page_size": 100})
    );

    // Another organisation's operation answers exactly like a missing one.
    let other_id = other["operation_id"].as_str().unwrap();
    let (status, body) = app
        .get_json(Some(&token), &format!("/v1/operations/{other_id}"))
        .await;
    assert_eq!((status, body["code"].as_i64()), (404, Some(5)));

    let (_, body) = app
        .get_json(Some(&token), &format!("/v1/operations?resource_type=assessment&resource_id={}&status=ASYNC_OPERATION_STATUS_PENDING", c.affected))
        .await;
    assert_eq!(body["pagination"]["total_count"], 1);
    let (_, body) = app
        .get_json(
            Some(&token),
            "/v1/operations?status=ASYNC_OPERATION_STATUS_SUCCEEDED",
        )
        .await;
    assert_eq!(body["pagination"]["total_count"], 0);
    let (_, body) = app
        .get_json(
            Some(&token),
            "/v1/operations?pagination.page=1&pagination.page_size=1",
        )
        .await;
    assert_eq!(body["operations"].as_array().unwrap().len(), 0);
    assert_eq!(body["pagination"]["page"], 1);
    for bad in [
        "resource_type=assessment",
        "status=BOGUS",
        "pagination.page=-1",
        "pagination.page_size=x",
    ] {
        let (status, body) = app
            .get_json(Some(&token), &format!("/v1/operations?{bad}"))
            .await;
        assert_eq!(
            (status, body["code"].as_i64()),
            (400, Some(3)),
            "{bad}: {body}"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn the_relay_catches_up_after_the_broker_was_unreachable() {
    let mut settings = test_settings().await;
    let good_url = settings.amqp.url.clone();
    // Nothing listens on port 1: the intake must still accept and keep the job in the outbox.
    settings.amqp.url =
        secrecy::SecretString::from("amqp://guest:guest@127.0.0.1:1/%2f".to_owned());
    let app = TestApp::spawn_with(settings).await;
    let c = seed_catalog(&app, REPO).await;
    let (status, body) = app
        .post_remediation(
            Some(&app.full_token(c.org)),
            &json!({"assessment_id": c.affected}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        count_outbox(&app, false).await,
        1,
        "the job waits in the outbox"
    );
    // Still ready: it accepts work, which waits in the outbox; the body says the broker is down.
    let (status, ready) = app.get_json(None, "/readyz").await;
    assert_eq!(status, 200, "{ready}");
    assert_eq!(ready["database"], "ok");
    assert!(
        ready["broker"].as_str().unwrap().starts_with("down since"),
        "{ready}"
    );

    let mut fixed = app.settings.clone();
    fixed.amqp.url = good_url;
    let shutdown = Shutdown::new();
    let relay = Relay {
        pool: app.pool.clone(),
        amqp_url: fixed.amqp.url.clone(),
        topology: Topology::new(&fixed.amqp),
        batch_size: 50,
        poll_interval: Duration::from_millis(50),
        wake: Arc::new(tokio::sync::Notify::new()),
        broker: Default::default(),
    };
    let task = tokio::spawn(relay.run(shutdown.clone()));
    let (job, _) = next_message(
        &fixed,
        &Topology::new(&fixed.amqp).work_queue,
        Duration::from_secs(10),
    )
    .await
    .expect("relay published the job once the broker was reachable");
    assert_eq!(
        job.operation_id().to_string(),
        body["operation_id"].as_str().unwrap()
    );
    shutdown.trigger();
    task.await.unwrap();
    assert_eq!(count_outbox(&app, false).await, 0);
    app.stop().await;
    support::app::delete_topology(&fixed).await;
}

#[tokio::test]
async fn two_relays_drain_one_outbox_without_publishing_a_row_twice() {
    let mut settings = test_settings().await;
    settings.relay.enabled = false;
    let app = TestApp::spawn_with(settings).await;
    // Many AFFECTED assessments, one request each.
    let c = seed_catalog(&app, REPO).await;
    let mut file = json!({"findings": [], "assessments": []});
    let total = 120;
    for i in 0..total {
        let finding = Uuid::new_v4();
        file["findings"].as_array_mut().unwrap().push(json!({
            "id": finding, "project_id": c.project, "vulnerability_id": format!("GHSA-test-{i}"),
            "package_name": "lodash", "ecosystem": "npm", "installed_version": "4.17.20", "fixed_versions": ["4.17.21"]}));
        file["assessments"].as_array_mut().unwrap().push(json!({"id": Uuid::new_v4(), "finding_id": finding, "status": "ASSESSMENT_STATUS_AFFECTED"}));
    }
    let parsed = remediator::import::parse(
        &file.to_string(),
        &support::app::import_rules(&app.settings),
    )
    .unwrap();
    remediator::import::import(&app.pool, parsed).await.unwrap();
    let token = app.full_token(c.org);
    let mut expected = std::collections::HashSet::new();
    for a in file["assessments"].as_array().unwrap() {
        let (status, body) = app
            .post_remediation(Some(&token), &json!({"assessment_id": a["id"]}).to_string())
            .await;
        assert_eq!(status, 200);
        expected.insert(body["operation_id"].as_str().unwrap().to_owned());
    }
    assert_eq!(count_outbox(&app, false).await, total);

    let shutdown = Shutdown::new();
    let relays: Vec<_> = (0..2)
        .map(|_| {
            let relay = Relay {
                pool: app.pool.clone(),
                amqp_url: app.settings.amqp.url.clone(),
                topology: Topology::new(&app.settings.amqp),
                batch_size: 7,
                poll_interval: Duration::from_millis(20),
                wake: Arc::new(tokio::sync::Notify::new()),
                broker: Default::default(),
            };
            tokio::spawn(relay.run(shutdown.clone()))
        })
        .collect();
    let queue = Topology::new(&app.settings.amqp).work_queue;
    let mut seen = std::collections::HashMap::<String, usize>::new();
    for _ in 0..total {
        let (job, _) = next_message(&app.settings, &queue, Duration::from_secs(20))
            .await
            .expect("message");
        *seen.entry(job.operation_id().to_string()).or_default() += 1;
    }
    // Give a wrongly duplicated publish time to show up.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        next_message(&app.settings, &queue, Duration::from_millis(200))
            .await
            .is_none(),
        "no extra message"
    );
    shutdown.trigger();
    for relay in relays {
        relay.await.unwrap();
    }
    assert!(seen.values().all(|n| *n == 1), "each row published once");
    assert_eq!(
        seen.keys()
            .cloned()
            .collect::<std::collections::HashSet<_>>(),
        expected
    );
    assert_eq!(count_outbox(&app, false).await, 0);
    app.stop().await;
}

#[tokio::test]
async fn a_job_another_process_enqueues_wakes_the_relay_without_waiting_for_a_poll() {
    // The relay polls once an hour here: only the NOTIFY of a committed outbox row (what a
    // replay from the CLI or a rescue by a worker sends) can make it publish in this test.
    let mut settings = test_settings().await;
    settings.relay.poll_interval_ms = 3_600_000;
    let app = TestApp::spawn_with(settings).await;
    let c = seed_catalog(&app, REPO).await;
    let token = app.full_token(c.org);
    let (status, body) = app
        .post_remediation(
            Some(&token),
            &json!({"assessment_id": c.affected}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let id: Uuid = body["operation_id"].as_str().unwrap().parse().unwrap();
    let topology = Topology::new(&app.settings.amqp);
    next_message(&app.settings, &topology.work_queue, Duration::from_secs(10))
        .await
        .expect("the intake wakes its own relay for its own request");

    // Another process: its own connection, its own transaction.
    let other = remediator::db::pool(&app.settings.database).unwrap();
    let mut conn = other.get().await.unwrap();
    diesel_async::AsyncConnection::transaction(&mut *conn, async |conn| {
        remediator::db::outbox::enqueue(
            conn,
            &remediator::queue::message::JobMessage::remediation(id.into()),
        )
        .await
    })
    .await
    .unwrap();
    let (job, _) = next_message(&app.settings, &topology.work_queue, Duration::from_secs(20))
        .await
        .expect("the notification woke the relay");
    assert_eq!(job.operation_id(), id.into());
    assert_eq!(count_outbox(&app, false).await, 0);
    app.stop().await;
}

#[tokio::test]
async fn health_readiness_and_openapi_are_served() {
    let app = TestApp::spawn().await;
    let (status, body) = app.get_json(None, "/healthz").await;
    assert_eq!((status, body["status"].as_str()), (200, Some("ok")));
    let (status, body) = app.get_json(None, "/readyz").await;
    assert_eq!(status, 200, "{body}");
    let (status, doc) = app.get_json(None, "/openapi.json").await;
    assert_eq!(status, 200);
    for path in [
        "/v1/findings/auto-remediation",
        "/v1/operations",
        "/v1/operations/{operation_id}",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} documented");
    }
    let (status, body) = app.get_json(None, "/nope").await;
    assert_eq!((status, body["code"].as_i64()), (404, Some(5)));
    app.stop().await;
}

#[tokio::test]
async fn an_undecodable_outbox_row_is_quarantined_and_holds_back_no_other_row() {
    let mut settings = test_settings().await;
    // The relay under test is the one started below, not the intake's.
    settings.relay.enabled = false;
    let app = TestApp::spawn_with(settings).await;
    let c = seed_catalog(&app, REPO).await;
    let (status, body) = app
        .post_remediation(
            Some(&app.full_token(c.org)),
            &json!({"assessment_id": c.affected}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let operation: Uuid = body["operation_id"].as_str().unwrap().parse().unwrap();
    // Behind the good row: one a newer intake might write (a message version this relay does
    // not know), then another good one.
    let mut conn = app.pool.get().await.unwrap();
    diesel::insert_into(outbox::table)
        .values((
            outbox::operation_id.eq(operation),
            outbox::payload.eq(json!({"type": "remediation.v9", "operation_id": operation})),
        ))
        .execute(&mut conn)
        .await
        .unwrap();
    let job = remediator::queue::message::JobMessage::remediation(operation.into());
    remediator::db::outbox::enqueue(&mut conn, &job)
        .await
        .unwrap();

    let connection = remediator::queue::connect(&app.settings.amqp.url, "test")
        .await
        .unwrap();
    let topology = Topology::new(&app.settings.amqp);
    let publisher = remediator::queue::publisher::Publisher::open(&connection, topology.clone())
        .await
        .unwrap();
    let relay = Relay {
        pool: app.pool.clone(),
        amqp_url: app.settings.amqp.url.clone(),
        topology: topology.clone(),
        batch_size: 10,
        poll_interval: Duration::from_millis(50),
        wake: Arc::new(tokio::sync::Notify::new()),
        broker: Default::default(),
    };
    assert_eq!(relay.drain_once(&publisher).await.unwrap(), 3);
    for _ in 0..2 {
        let (message, _) =
            next_message(&app.settings, &topology.work_queue, Duration::from_secs(10))
                .await
                .expect("both good rows were published");
        assert_eq!(message.operation_id(), operation.into());
    }
    type At = Option<chrono::DateTime<chrono::Utc>>;
    let (attempts, error, published, due): (i32, Option<String>, At, At) = outbox::table
        .filter(outbox::published_at.is_null())
        .select((
            outbox::publish_attempts,
            outbox::last_error,
            outbox::published_at,
            outbox::next_attempt_at,
        ))
        .first(&mut conn)
        .await
        .unwrap();
    assert_eq!((attempts, published), (1, None));
    assert!(
        error
            .as_deref()
            .unwrap()
            .contains("cannot decode the message"),
        "{error:?}"
    );
    assert!(due.unwrap() > chrono::Utc::now(), "retried later, not now");
    assert_eq!(
        remediator::db::outbox::quarantined_count(&mut conn)
            .await
            .unwrap(),
        1,
        "what remediator_outbox_quarantined reports"
    );
    // Until it is due it is left alone; then it is tried again and counted.
    assert_eq!(relay.drain_once(&publisher).await.unwrap(), 0);
    diesel::update(outbox::table.filter(outbox::published_at.is_null()))
        .set(outbox::next_attempt_at.eq(chrono::Utc::now() - chrono::Duration::seconds(1)))
        .execute(&mut conn)
        .await
        .unwrap();
    assert_eq!(relay.drain_once(&publisher).await.unwrap(), 1);
    let attempts: i32 = outbox::table
        .filter(outbox::published_at.is_null())
        .select(outbox::publish_attempts)
        .first(&mut conn)
        .await
        .unwrap();
    assert_eq!(attempts, 2);
    let _ = connection.close(200, "done".into()).await;
    app.stop().await;
}
