//! The service's protective limits, end to end: the intake's per-organisation rate limit over
//! HTTP, the cap on open remediation pull requests per repository, and the outbound address
//! policy refusing a repository on a private address before git connects.

mod support;

use std::time::Duration;

use remediator::pr_text::branch_name;
use serde_json::{Value, json};
use support::app::{TestApp, seed_catalog, test_settings};
use support::remediation::{World, WorldOptions};
use uuid::Uuid;
use wiremock::matchers::{method, path};
use wiremock::{Mock, ResponseTemplate};

const END: Duration = Duration::from_secs(90);
const REPO: &str = "https://github.com/acme/web.git";

async fn post(app: &TestApp, token: &str, path: &str, body: Value) -> reqwest::Response {
    app.http
        .post(format!("{}{path}", app.base_url))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body.to_string())
        .send()
        .await
        .expect("POST")
}

#[tokio::test]
async fn the_intake_limits_remediation_writes_per_organisation() {
    let mut settings = test_settings().await;
    settings.intake.rate_limit_per_minute = 3;
    let app = TestApp::spawn_with(settings).await;
    let c = seed_catalog(&app, REPO).await;
    let token = app.full_token(c.org);
    let trigger = json!({"assessment_id": c.affected});

    // A minute's worth passes at once (the same live operation is returned each time)...
    let mut operation = None;
    for _ in 0..3 {
        let response = post(
            &app,
            &token,
            "/v1/findings/auto-remediation",
            trigger.clone(),
        )
        .await;
        assert_eq!(response.status(), 200);
        assert!(response.headers().get("retry-after").is_none());
        let body: Value = response.json().await.unwrap();
        operation.get_or_insert(body["operation_id"].as_str().unwrap().to_owned());
    }
    let operation = operation.unwrap();

    // ...then 429, code 8, with Retry-After in whole seconds and a message saying when.
    let response = post(
        &app,
        &token,
        "/v1/findings/auto-remediation",
        trigger.clone(),
    )
    .await;
    assert_eq!(response.status(), 429);
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .expect("Retry-After header")
        .to_str()
        .unwrap()
        .parse()
        .expect("Retry-After is delta-seconds");
    // 3 per minute: one token every 20 s.
    assert!((1..=20).contains(&retry_after), "{retry_after}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["code"], 8, "{body}");
    let message = body["message"].as_str().unwrap();
    assert!(
        message.contains("3 remediation requests per minute")
            && message.contains(&format!("retry in {retry_after} s")),
        "{message}"
    );

    // Cancel draws from the same bucket.
    let response = post(
        &app,
        &token,
        &format!("/v1/operations/{operation}/cancel"),
        json!({}),
    )
    .await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().get("retry-after").is_some());

    // Polling is not limited.
    for _ in 0..5 {
        let (status, body) = app
            .get_json(Some(&token), &format!("/v1/operations/{operation}"))
            .await;
        assert_eq!(status, 200, "{body}");
    }

    // Another organisation has its own bucket.
    let other = app.full_token(c.other_org);
    let response = post(
        &app,
        &other,
        "/v1/findings/auto-remediation",
        json!({"assessment_id": c.other_org_assessment}),
    )
    .await;
    assert_eq!(response.status(), 200);
    app.stop().await;
}

#[tokio::test]
async fn a_rate_limit_of_zero_is_off() {
    let mut settings = test_settings().await;
    settings.intake.rate_limit_per_minute = 0;
    let app = TestApp::spawn_with(settings).await;
    let c = seed_catalog(&app, REPO).await;
    let token = app.full_token(c.org);
    for _ in 0..10 {
        let (status, body) = app
            .post_remediation(
                Some(&token),
                &json!({"assessment_id": c.affected}).to_string(),
            )
            .await;
        assert_eq!(status, 200, "{body}");
    }
    app.stop().await;
}

/// Imports a second AFFECTED finding of the same project: express 4.18.2, fixed in 4.19.2.
async fn second_affected_assessment(world: &World) -> Uuid {
    let finding = Uuid::new_v4();
    let assessment = Uuid::new_v4();
    let file = json!({
        "findings": [{"id": finding, "project_id": world.catalog.project,
            "vulnerability_id": "GHSA-rv95-896h-c2vc", "severity": "MEDIUM",
            "summary": "Open redirect in malformed URLs", "package_name": "express",
            "ecosystem": "npm", "installed_version": "4.18.2", "fixed_versions": ["4.19.2"]}],
        "assessments": [{"id": assessment, "finding_id": finding,
            "status": "ASSESSMENT_STATUS_AFFECTED"}]
    });
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

async fn create_pr_requests(world: &World) -> Vec<Value> {
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
async fn no_pull_request_is_opened_past_the_cap() {
    let world = World::start(WorldOptions {
        adjust: Some(Box::new(|s| s.worker.max_open_prs_per_repository = 1)),
        ..Default::default()
    })
    .await;
    let second = second_affected_assessment(&world).await;
    // No branch has an open pull request yet; creating one answers #7.
    Mock::given(method("GET"))
        .and(path("/repos/acme/web/pulls"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&world.github)
        .await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/web/pulls"))
        .respond_with(ResponseTemplate::new(201).set_body_json(json!({
            "number": 7, "html_url": "https://github.example/acme/web/pull/7", "state": "open"})))
        .mount(&world.github)
        .await;
    Mock::given(method("POST"))
        .and(path("/repos/acme/web/issues/7/labels"))
        .respond_with(ResponseTemplate::new(200).set_body_json(json!([])))
        .mount(&world.github)
        .await;

    let first = world.request(world.catalog.affected).await;
    let first = world.wait_for_end(first, END).await;
    assert_eq!(
        first["status"], "ASYNC_OPERATION_STATUS_SUCCEEDED",
        "{first}"
    );
    assert_eq!(first["output"]["pr_number"], 7);

    let id = world.request(second).await;
    let op = world.wait_for_end(id, END).await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_FAILED", "{op}");
    let error = op["error_message"].as_str().unwrap();
    assert!(
        error.contains(
            "repository acme/web already has 1 open remediation pull requests \
             (max_open_prs_per_repository); merge or close some, then retry"
        ),
        "{error}"
    );
    // Failed at once (permanent), not retried.
    assert_eq!(op["attempts"], 1, "{op}");
    // The second job looked for its own pull request (it could have reused one) but never
    // asked to create one.
    let prs = create_pr_requests(&world).await;
    assert_eq!(prs.len(), 1, "{prs:?}");
    assert_eq!(prs[0]["head"], branch_name("npm", "lodash"));
    let second_branch = branch_name("npm", "express");
    let looked_up = world
        .github
        .received_requests()
        .await
        .unwrap_or_default()
        .into_iter()
        .any(|r| {
            r.method.as_str() == "GET"
                && r.url
                    .query_pairs()
                    .any(|(k, v)| k == "head" && v == format!("acme:{second_branch}"))
        });
    assert!(
        looked_up,
        "the capped job checks for a pull request to reuse"
    );
    world.stop().await;
}

#[tokio::test]
async fn a_repository_on_loopback_is_refused_before_git_connects() {
    // With the default policy the import and the trigger already refuse a literal loopback
    // address (tests/catalog.rs, tests/intake_attacks.rs). The worker is the last line, for a
    // row that got past them (imported and queued under another policy): the catalog and the
    // job come from an intake that allows private networks, the worker does not.
    let mut world = World::start(WorldOptions {
        start_worker: false,
        ..Default::default()
    })
    .await;
    let id = world.request(world.catalog.affected).await;
    world.app.settings.security.allow_private_networks = false;
    world.start_worker();
    let op = world.wait_for_end(id, END).await;
    assert_eq!(op["status"], "ASYNC_OPERATION_STATUS_FAILED", "{op}");
    assert_eq!(op["step"], "clone", "{op}");
    assert_eq!(op["attempts"], 1, "a refused address is permanent: {op}");
    let error = op["error_message"].as_str().unwrap();
    assert!(
        error.contains("127.0.0.1 is a loopback address")
            && error.contains("allow_private_networks"),
        "{error}"
    );
    assert_eq!(world.git.request_count(), 0, "git never connected");
    assert_eq!(
        world
            .github
            .received_requests()
            .await
            .unwrap_or_default()
            .len(),
        0
    );
    world.stop().await;
}

#[tokio::test]
async fn a_bucket_refills_at_its_rate_and_says_when() {
    use remediator::db::rate_limit::{Bucket, Take, take};
    // Two tokens, refilled at 5 per second.
    let bucket = Bucket {
        capacity: 2.0,
        per_second: 5.0,
    };
    let settings = test_settings().await;
    let pool = remediator::db::pool(&settings.database).unwrap();
    let mut conn = pool.get().await.unwrap();
    let org = remediator::lifecycle::OrganizationId::new_random();
    assert_eq!(take(&mut conn, org, bucket).await.unwrap(), Take::Granted);
    assert_eq!(take(&mut conn, org, bucket).await.unwrap(), Take::Granted);
    let Take::Denied { retry_after_secs } = take(&mut conn, org, bucket).await.unwrap() else {
        panic!("the bucket is empty");
    };
    assert!(
        retry_after_secs > 0.0 && retry_after_secs <= 0.2,
        "{retry_after_secs}"
    );
    tokio::time::sleep(Duration::from_millis(250)).await;
    assert_eq!(take(&mut conn, org, bucket).await.unwrap(), Take::Granted);
    // Another organisation is untouched.
    assert_eq!(
        take(
            &mut conn,
            remediator::lifecycle::OrganizationId::new_random(),
            bucket
        )
        .await
        .unwrap(),
        Take::Granted
    );
    // Five takes on one connection, one statement prepared and kept for the next (diesel's
    // `sql_query` would have prepared and closed one per take: none left here). The pattern
    // is split so that this query does not match itself.
    #[derive(diesel::QueryableByName)]
    struct Count {
        #[diesel(sql_type = diesel::sql_types::BigInt)]
        count: i64,
    }
    let prepared: Count = diesel_async::RunQueryDsl::get_result(
        diesel::sql_query(
            "SELECT count(*) AS count FROM pg_prepared_statements \
             WHERE statement LIKE '%' || 'INSERT INTO intake_rate' || '_buckets AS b%'",
        ),
        &mut conn,
    )
    .await
    .unwrap();
    assert_eq!(prepared.count, 1);
}
