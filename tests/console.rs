//! The operations console over HTTP, against real Postgres and RabbitMQ: every page and action,
//! its status and content, tenancy (a read-only token sees only its organisation), CSRF and
//! scope refusals, the session cookie's attributes, and the audit trail.

mod support;

use std::time::Duration;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use lapin::types::FieldTable;
use remediator::db::schema::{assessments, console_audit, operations};
use remediator::lifecycle::DeadReason;
use remediator::queue::message::{JobMessage, mark_dead};
use remediator::queue::publisher::Publisher;
use remediator::queue::topology::Topology;
use serde_json::json;
use support::app::{Catalog, TestApp, next_message, seed_catalog, test_settings};
use support::console::ConsoleClient;
use uuid::Uuid;

const REPO: &str = "https://github.com/acme/web.git";
const ADMIN: &str = "ops:admin";
const READ: &str = "operations:read";

async fn trigger(app: &TestApp, org: Uuid, assessment: Uuid) -> Uuid {
    let token = app.full_token(org);
    let (status, body) = app
        .post_remediation(
            Some(&token),
            &json!({"assessment_id": assessment}).to_string(),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    body["operation_id"].as_str().unwrap().parse().unwrap()
}

async fn set_status(app: &TestApp, id: Uuid, status: &str, error: Option<&str>) {
    let mut conn = app.pool.get().await.unwrap();
    diesel::update(operations::table.find(id))
        .set((
            operations::status.eq(status),
            operations::error_message.eq(error),
            operations::finished_at.eq(diesel::dsl::now),
        ))
        .execute(&mut conn)
        .await
        .unwrap();
}

/// Puts a job message for `id` on the dead-letter queue as the worker does (our headers).
async fn dead_letter(app: &TestApp, id: Uuid, reason: DeadReason, error: &str) {
    let connection = remediator::queue::connect(&app.settings.amqp.url, "test-dead")
        .await
        .unwrap();
    let topology = Topology::new(&app.settings.amqp);
    let publisher = Publisher::open(&connection, topology.clone())
        .await
        .unwrap();
    let mut headers = FieldTable::default();
    mark_dead(&mut headers, reason, error);
    publisher
        .send(
            &topology.dead_exchange,
            "",
            &JobMessage::remediation(id.into()),
            headers,
        )
        .await
        .unwrap()
        .confirmed()
        .await
        .unwrap();
    let _ = connection.close(200, "done".into()).await;
}

/// A FAILED operation of the catalog's organisation, dead-lettered with `max_attempts`.
async fn failed_and_dead(app: &TestApp, c: &Catalog, error: &str) -> Uuid {
    let id = trigger(app, c.org, c.affected).await;
    // The relay publishes the job; nothing consumes it here. Take it off the work queue so
    // the dead letter is the only copy, as after a real dead-lettering.
    let topology = Topology::new(&app.settings.amqp);
    next_message(&app.settings, &topology.work_queue, Duration::from_secs(10))
        .await
        .expect("the job was published");
    set_status(app, id, "ASYNC_OPERATION_STATUS_FAILED", Some(error)).await;
    dead_letter(app, id, DeadReason::MaxAttempts, error).await;
    id
}

async fn audit_actions(app: &TestApp) -> Vec<(String, String, String)> {
    let mut conn = app.pool.get().await.unwrap();
    console_audit::table
        .order(console_audit::id.asc())
        .select((
            console_audit::action,
            console_audit::target,
            console_audit::outcome,
        ))
        .load(&mut conn)
        .await
        .unwrap()
}

fn count_messages_in(body: &str, marker: &str) -> usize {
    body.matches(marker).count()
}

#[tokio::test]
async fn login_sets_a_strict_session_cookie_and_logout_clears_it() {
    let app = TestApp::spawn().await;
    let c = seed_catalog(&app, REPO).await;

    // No session: pages send the browser to the login form; the refresh script gets 401.
    let anonymous = ConsoleClient::new(&app);
    let page = anonymous.get("/console/").await;
    assert_eq!(page.status, 303);
    assert_eq!(page.location(), Some("/console/login"));
    assert_eq!(anonymous.get("/console/?fragment=1").await.status, 401);
    assert_eq!(
        anonymous.get("/console").await.location(),
        Some("/console/")
    );

    let form = anonymous.get("/console/login").await;
    assert_eq!(form.status, 200);
    assert!(
        form.body.contains("<textarea id=\"token\""),
        "{}",
        form.body
    );
    let csp = form.headers["content-security-policy"].to_str().unwrap();
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
    assert_eq!(form.headers["x-frame-options"], "DENY");
    assert_eq!(form.headers["cache-control"], "no-store");

    // A bad token, a token without a console scope, and a form without its nonce are refused.
    let mut client = ConsoleClient::new(&app);
    let refused = client.login("not-a-jwt").await;
    assert_eq!(refused.status, 401, "{}", refused.body);
    assert!(refused.body.contains("the token was refused"));
    let no_scope = client
        .login(&app.token(c.org, &["remediations:write"]))
        .await;
    assert_eq!(no_scope.status, 403);
    assert!(
        no_scope.body.contains("operations:read"),
        "{}",
        no_scope.body
    );
    assert!(client.cookie.is_none());
    let token = app.token(c.org, &[READ]);
    let forged = client
        .post("/console/login", &[("token", &token), ("login_csrf", "00")])
        .await;
    assert_eq!(forged.status, 403, "{}", forged.body);

    let oversized = client
        .post("/console/login", &[("token", &"a".repeat(20_000))])
        .await;
    assert_eq!(
        oversized.status, 413,
        "the intake's body limit holds for the console"
    );

    let ok = client.login(&token).await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    assert_eq!(ok.location(), Some("/console/"));
    let cookie = ok
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("remediator_console="))
        .unwrap();
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(cookie.contains("Path=/console"), "{cookie}");
    // Bound to loopback: no Secure (the browser would never send it back over plain HTTP).
    assert!(!cookie.contains("Secure"), "{cookie}");
    // It expires with the token (minted for 600 s).
    let max_age: i64 = cookie
        .split("Max-Age=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!((590..=600).contains(&max_age), "{cookie}");

    let overview = client.get("/console/").await;
    assert_eq!(overview.status, 200, "{}", overview.body);
    assert!(overview.body.contains("Overview"));
    // The token is never rendered into a page; only its CSRF token is.
    assert!(!overview.body.contains(&token));
    let csrf = overview.csrf();

    // Logout needs the CSRF token of a live session.
    let forged = client
        .post("/console/logout", &[("csrf", "deadbeef")])
        .await;
    assert_eq!(forged.status, 403);
    let out = client.post("/console/logout", &[("csrf", &csrf)]).await;
    assert_eq!(out.status, 303);
    assert_eq!(out.location(), Some("/console/login"));
    let cleared = out
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("remediator_console="))
        .unwrap();
    assert!(cleared.starts_with("remediator_console=;") && cleared.contains("Max-Age=0"));

    let actions = audit_actions(&app).await;
    let names: Vec<&str> = actions.iter().map(|(a, _, _)| a.as_str()).collect();
    assert_eq!(names, ["login", "logout"]);

    // An expired token in the cookie is no session.
    let expired = {
        let claims = json!({"sub": "x", "exp": chrono::Utc::now().timestamp() - 3600,
                            "org_id": c.org, "scope": READ});
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(support::app::JWT_SECRET.as_bytes()).unwrap(),
        )
        .unwrap()
    };
    let mut stale = ConsoleClient::new(&app);
    stale.cookie = Some(format!("remediator_console={expired}"));
    assert_eq!(stale.get("/console/operations").await.status, 303);
    assert_eq!(
        stale.get("/console/operations?fragment=1").await.status,
        401
    );
    app.stop().await;
}

#[tokio::test]
async fn a_read_only_token_sees_its_own_organisation_and_no_actions() {
    let app = TestApp::spawn().await;
    let c = seed_catalog(&app, REPO).await;
    let ours = trigger(&app, c.org, c.affected).await;
    let theirs = trigger(&app, c.other_org, c.other_org_assessment).await;
    let reader = ConsoleClient::logged_in(&app, &app.token(c.org, &[READ])).await;

    let list = reader.get("/console/operations").await;
    assert_eq!(list.status, 200);
    assert!(list.body.contains(&ours.to_string()), "{}", list.body);
    assert!(!list.body.contains(&theirs.to_string()), "{}", list.body);
    assert!(list.body.contains("(read-only)"));
    assert!(!list.body.contains("href=\"/console/audit\""));

    let page = reader.get(&format!("/console/operations/{ours}")).await;
    assert_eq!(page.status, 200);
    assert!(page.body.contains("PENDING"));
    // Cancel is the admin's: no button for a read-only session.
    assert!(!page.body.contains("data-action=\"cancel\""));
    let other = reader.get(&format!("/console/operations/{theirs}")).await;
    assert_eq!(
        other.status, 404,
        "another organisation's operation is not found"
    );
    // The live fragments keep to the same walls.
    let fragment = reader
        .get(&format!("/console/operations/{ours}?fragment=1"))
        .await;
    assert_eq!(fragment.status, 200);
    assert!(
        fragment.body.starts_with("<dl class=\"facts\">"),
        "{}",
        fragment.body
    );
    let other = reader
        .get(&format!("/console/operations/{theirs}?fragment=1"))
        .await;
    assert_eq!(other.status, 404);
    let rows = reader.get("/console/operations?fragment=1").await;
    assert!(rows.body.contains(&ours.to_string()) && !rows.body.contains(&theirs.to_string()));

    // Even with its own valid CSRF token, every action is refused for lack of scope.
    let csrf = page.csrf();
    let cancel = reader
        .post(
            &format!("/console/operations/{ours}/cancel"),
            &[("csrf", &csrf)],
        )
        .await;
    assert_eq!(cancel.status, 403);
    assert!(cancel.body.contains("ops:admin"), "{}", cancel.body);
    for path in [
        "/console/dead-letters/replay",
        "/console/dead-letters/purge",
    ] {
        let refused = reader
            .post(path, &[("csrf", &csrf), ("mode", "all"), ("confirm", "1")])
            .await;
        assert_eq!(refused.status, 403, "{path}");
    }
    assert_eq!(reader.get("/console/audit").await.status, 403);

    // The overview shows its organisation's work and no fleet figures.
    let overview = reader.get("/console/").await;
    assert_eq!(overview.status, 200);
    assert!(!overview.body.contains("data-queue="), "{}", overview.body);
    assert!(
        overview.body.contains(&ours.to_string()),
        "its oldest PENDING"
    );
    let repositories = reader.get("/console/repositories").await;
    assert!(repositories.body.contains(">web<"), "{}", repositories.body);
    assert!(
        !repositories.body.contains(">other<"),
        "{}",
        repositories.body
    );

    let mut conn = app.pool.get().await.unwrap();
    let status: String = operations::table
        .find(ours)
        .select(operations::status)
        .first(&mut conn)
        .await
        .unwrap();
    assert_eq!(
        status, "ASYNC_OPERATION_STATUS_PENDING",
        "nothing was cancelled"
    );
    app.stop().await;
}

#[tokio::test]
async fn an_admin_cancels_with_the_apis_code_and_every_refusal_is_explained() {
    let app = TestApp::spawn().await;
    let c = seed_catalog(&app, REPO).await;
    let theirs = trigger(&app, c.other_org, c.other_org_assessment).await;
    let admin = ConsoleClient::logged_in(&app, &app.token(c.org, &[ADMIN])).await;

    let list = admin.get("/console/operations").await;
    assert!(
        list.body.contains(&theirs.to_string()),
        "the admin sees every organisation"
    );
    let page = admin.get(&format!("/console/operations/{theirs}")).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("data-action=\"cancel\""),
        "{}",
        page.body
    );
    let csrf = page.csrf();
    let path = format!("/console/operations/{theirs}/cancel");

    // No CSRF token, a wrong one, another session's, and a cross-site origin: refused.
    assert_eq!(admin.post(&path, &[]).await.status, 403);
    assert_eq!(
        admin.post(&path, &[("csrf", &"0".repeat(64))]).await.status,
        403
    );
    let other_session = ConsoleClient::logged_in(&app, &app.token(c.other_org, &[ADMIN])).await;
    let other_csrf = other_session.get("/console/").await.csrf();
    assert_ne!(other_csrf, csrf);
    assert_eq!(
        admin.post(&path, &[("csrf", &other_csrf)]).await.status,
        403
    );
    let cross = admin
        .post_with(
            &path,
            &[("csrf", &csrf)],
            &[("origin", "https://evil.example")],
        )
        .await;
    assert_eq!(cross.status, 403);
    assert!(cross.body.contains("cross-site"));
    // Without a session at all.
    let anonymous = ConsoleClient::new(&app);
    assert_eq!(anonymous.post(&path, &[("csrf", &csrf)]).await.status, 303);

    let done = admin.post(&path, &[("csrf", &csrf)]).await;
    assert_eq!(done.status, 303, "{}", done.body);
    assert_eq!(
        done.location(),
        Some(format!("/console/operations/{theirs}?done=cancelled").as_str())
    );
    let after = admin.get(done.location().unwrap()).await;
    assert!(after.body.contains("Cancelled."));
    assert!(after.body.contains("CANCELLED"));
    assert!(
        after
            .body
            .contains("cancelled by tester (console) while pending")
    );
    assert!(!after.body.contains("data-action=\"cancel\""));

    // Cancelling again is the API's refusal, shown as a page.
    let again = admin.post(&path, &[("csrf", &csrf)]).await;
    assert_eq!(again.status, 409);
    assert!(again.body.contains("already ended"), "{}", again.body);

    // A RUNNING job is asked to stop at its next step boundary; past the push it is refused.
    let running = trigger(&app, c.org, c.affected).await;
    let mut conn = app.pool.get().await.unwrap();
    diesel::update(operations::table.find(running))
        .set((
            operations::status.eq("ASYNC_OPERATION_STATUS_RUNNING"),
            operations::step.eq("clone"),
        ))
        .execute(&mut conn)
        .await
        .unwrap();
    let path = format!("/console/operations/{running}/cancel");
    let requested = admin.post(&path, &[("csrf", &csrf)]).await;
    assert_eq!(
        requested.location(),
        Some(format!("/console/operations/{running}?done=cancel-requested").as_str())
    );
    let page = admin.get(requested.location().unwrap()).await;
    assert!(page.body.contains("cancel requested"), "{}", page.body);
    assert!(
        !page.body.contains("data-action=\"cancel\""),
        "asked once is enough"
    );
    diesel::update(operations::table.find(running))
        .set((
            operations::cancel_requested_at.eq(None::<chrono::DateTime<chrono::Utc>>),
            operations::step.eq("push"),
        ))
        .execute(&mut conn)
        .await
        .unwrap();
    let late = admin.post(&path, &[("csrf", &csrf)]).await;
    assert_eq!(late.status, 409);
    assert!(
        late.body.contains("can no longer be cancelled"),
        "{}",
        late.body
    );

    let audit = admin.get("/console/audit").await;
    assert_eq!(audit.status, 200);
    assert!(audit.body.contains(&theirs.to_string()));
    let actions = audit_actions(&app).await;
    let cancels: Vec<&(String, String, String)> =
        actions.iter().filter(|(a, _, _)| a == "cancel").collect();
    assert_eq!(cancels.len(), 4);
    assert_eq!(cancels[0].2, "cancelled");
    assert!(cancels[1].2.starts_with("refused: "), "{:?}", cancels[1]);
    assert_eq!(cancels[2].2, "cancel requested");
    assert!(
        cancels[3].2.contains("can no longer be cancelled"),
        "{:?}",
        cancels[3]
    );
    app.stop().await;
}

#[tokio::test]
async fn the_operations_table_filters_and_pages_by_keyset() {
    let app = TestApp::spawn().await;
    let c = seed_catalog(&app, REPO).await;
    let admin = ConsoleClient::logged_in(&app, &app.token(c.org, &[ADMIN])).await;
    // 120 operations a second apart, every third FAILED, one RUNNING at step push.
    let mut conn = app.pool.get().await.unwrap();
    diesel::sql_query(format!(
        "INSERT INTO operations (id, organization_id, kind, status, resource_type, resource_id,
                                 project_id, created_at, step, started_at)
         SELECT gen_random_uuid(), '{org}', 'auto_remediation',
                CASE WHEN n = 7 THEN 'ASYNC_OPERATION_STATUS_RUNNING'
                     WHEN n % 3 = 0 THEN 'ASYNC_OPERATION_STATUS_FAILED'
                     ELSE 'ASYNC_OPERATION_STATUS_SUCCEEDED' END,
                'assessment', gen_random_uuid(), '{project}',
                now() - make_interval(secs => n), CASE WHEN n = 7 THEN 'push' END,
                now() - make_interval(secs => n)
         FROM generate_series(1, 120) AS n",
        org = c.org,
        project = c.project
    ))
    .execute(&mut conn)
    .await
    .unwrap();

    let first = admin.get("/console/operations").await;
    assert_eq!(first.status, 200);
    assert_eq!(count_messages_in(&first.body, "data-operation-id="), 50);
    assert!(
        first
            .body
            .contains("data-live=\"/console/operations?fragment=1\"")
    );
    // The RUNNING row shows its step as progress.
    assert!(
        first.body.contains("<progress value=\"7\" max=\"9\""),
        "{}",
        first.body
    );
    let next = first
        .body
        .split("rel=\"next\" href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .replace("&amp;", "&");
    let second = admin.get(&next).await;
    assert_eq!(count_messages_in(&second.body, "data-operation-id="), 50);
    assert!(
        !second.body.contains("data-live="),
        "older pages are not refreshed"
    );
    let ids = |body: &str| -> Vec<String> {
        body.split("data-operation-id=\"")
            .skip(1)
            .map(|s| s[..36].to_owned())
            .collect()
    };
    let (a, b) = (ids(&first.body), ids(&second.body));
    assert!(a.iter().all(|id| !b.contains(id)), "pages do not overlap");
    let third_link = second
        .body
        .split("rel=\"next\" href=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .replace("&amp;", "&");
    let third = admin.get(&third_link).await;
    assert_eq!(count_messages_in(&third.body, "data-operation-id="), 20);
    assert!(!third.body.contains("rel=\"next\""));

    let failed = admin.get("/console/operations?status=FAILED").await;
    assert_eq!(
        count_messages_in(&failed.body, "data-status=\"FAILED\""),
        40
    );
    assert_eq!(count_messages_in(&failed.body, "data-operation-id="), 40);
    let by_step = admin.get("/console/operations?step=push").await;
    assert_eq!(count_messages_in(&by_step.body, "data-operation-id="), 1);
    let by_project = admin
        .get(&format!("/console/operations?project={}", Uuid::new_v4()))
        .await;
    assert!(by_project.body.contains("No operation matches."));
    let since = (chrono::Utc::now() - chrono::Duration::seconds(10))
        .format("%Y-%m-%dT%H:%M:%S")
        .to_string();
    let recent = admin
        .get(&format!("/console/operations?from={since}"))
        .await;
    let n = count_messages_in(&recent.body, "data-operation-id=");
    assert!((8..=10).contains(&n), "{n} rows in the last 10 s");
    let one = &a[3];
    let by_id = admin.get(&format!("/console/operations?id={one}")).await;
    assert_eq!(ids(&by_id.body), vec![one.clone()]);
    let fragment = admin
        .get("/console/operations?status=FAILED&fragment=1")
        .await;
    assert!(
        fragment.body.starts_with("<table>"),
        "{}",
        &fragment.body[..80]
    );
    assert!(!fragment.body.contains("<html"));

    for bad in [
        "status=BOGUS",
        "project=x",
        "step=dance",
        "from=yesterday",
        "id=12",
        "after=zz",
    ] {
        let page = admin.get(&format!("/console/operations?{bad}")).await;
        assert_eq!(page.status, 400, "{bad}");
    }
    app.stop().await;
}

#[tokio::test]
async fn dead_letters_list_show_replay_and_a_purge_that_needs_the_typed_count() {
    let app = TestApp::spawn().await;
    let c = seed_catalog(&app, REPO).await;
    let id = failed_and_dead(&app, &c, "step pull_request failed: 502 <b>bad gateway</b>").await;
    let admin = ConsoleClient::logged_in(&app, &app.token(c.other_org, &[ADMIN])).await;
    let reader = ConsoleClient::logged_in(&app, &app.token(c.org, &[READ])).await;
    let outsider = ConsoleClient::logged_in(&app, &app.token(c.other_org, &[READ])).await;

    let list = admin.get("/console/dead-letters").await;
    assert_eq!(list.status, 200, "{}", list.body);
    assert!(
        list.body.contains(&format!("data-dead-letter=\"{id}\"")),
        "{}",
        list.body
    );
    assert!(list.body.contains("max_attempts"));
    // Text from the queue is escaped.
    assert!(
        list.body.contains("502 &lt;b&gt;bad gateway&lt;/b&gt;"),
        "{}",
        list.body
    );
    assert!(list.body.contains("data-action=\"replay-selected\""));
    assert!(
        admin
            .get("/console/dead-letters?reason=crashed")
            .await
            .body
            .contains("nothing that matches")
    );
    assert_eq!(
        admin
            .get("/console/dead-letters?older_than=soon")
            .await
            .status,
        400
    );

    // The owner's read-only token sees it without actions; another organisation does not.
    let read = reader.get("/console/dead-letters").await;
    assert!(read.body.contains(&format!("data-dead-letter=\"{id}\"")));
    assert!(!read.body.contains("data-action="), "{}", read.body);
    assert!(!read.body.contains("name=\"id\""));
    let shown = reader.get(&format!("/console/dead-letters/{id}")).await;
    assert_eq!(shown.status, 200);
    assert!(!shown.body.contains("data-action="));
    assert!(
        !outsider
            .get("/console/dead-letters")
            .await
            .body
            .contains(&id.to_string())
    );
    assert_eq!(
        outsider
            .get(&format!("/console/dead-letters/{id}"))
            .await
            .status,
        404
    );

    let page = admin.get(&format!("/console/dead-letters/{id}")).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("x-remediator-dead-reason"),
        "headers shown"
    );
    assert!(page.body.contains("remediation.v1"), "body shown");
    assert!(page.body.contains("data-action=\"replay-one\""));
    let csrf = page.csrf();

    // Purge: asking shows the count to type; a wrong count changes nothing.
    let ask = admin
        .post(
            "/console/dead-letters/purge",
            &[("csrf", &csrf), ("mode", "all")],
        )
        .await;
    assert_eq!(ask.status, 200, "{}", ask.body);
    assert!(ask.body.contains("data-purge-count=\"1\""), "{}", ask.body);
    let wrong = admin
        .post(
            "/console/dead-letters/purge",
            &[("csrf", &csrf), ("mode", "all"), ("confirm", "2")],
        )
        .await;
    assert_eq!(wrong.status, 409);
    assert!(wrong.body.contains("data-purge-refused"));
    assert!(
        admin
            .get("/console/dead-letters")
            .await
            .body
            .contains(&id.to_string()),
        "still there"
    );
    // Replays and purges without a CSRF token are refused before anything is read.
    for path in [
        "/console/dead-letters/replay",
        "/console/dead-letters/purge",
    ] {
        let refused = admin.post(path, &[("mode", "all"), ("confirm", "1")]).await;
        assert_eq!(refused.status, 403);
    }

    // Replay one: the operation is PENDING again and its job is on the work queue.
    let replay = admin
        .post(
            "/console/dead-letters/replay",
            &[
                ("csrf", &csrf),
                ("mode", "selected"),
                ("id", &id.to_string()),
            ],
        )
        .await;
    assert_eq!(replay.status, 200, "{}", replay.body);
    assert!(
        replay.body.contains("replayed 1, skipped 0"),
        "{}",
        replay.body
    );
    let topology = Topology::new(&app.settings.amqp);
    let (job, _) = next_message(&app.settings, &topology.work_queue, Duration::from_secs(10))
        .await
        .expect("the replayed job is on the work queue");
    assert_eq!(job.operation_id(), id.into());
    let op = admin.get(&format!("/console/operations/{id}")).await;
    assert!(op.body.contains("PENDING"));
    assert!(
        op.body
            .contains("replayed from the dead-letter queue by tester (console)")
    );
    assert!(
        admin
            .get("/console/dead-letters")
            .await
            .body
            .contains("nothing that matches")
    );

    // Dead again, twice (a second operation too): purge the selection with the typed count.
    set_status(&app, id, "ASYNC_OPERATION_STATUS_FAILED", Some("again")).await;
    dead_letter(&app, id, DeadReason::MaxAttempts, "again").await;
    let stray = Uuid::new_v4();
    dead_letter(
        &app,
        stray,
        DeadReason::UnknownOperation,
        "no such operation",
    )
    .await;
    let ask = admin
        .post(
            "/console/dead-letters/purge",
            &[
                ("csrf", &csrf),
                ("mode", "selected"),
                ("id", &id.to_string()),
                ("id", &stray.to_string()),
            ],
        )
        .await;
    assert!(ask.body.contains("data-purge-count=\"2\""), "{}", ask.body);
    let done = admin
        .post(
            "/console/dead-letters/purge",
            &[
                ("csrf", &csrf),
                ("mode", "selected"),
                ("id", &id.to_string()),
                ("id", &stray.to_string()),
                ("confirm", "2"),
            ],
        )
        .await;
    assert_eq!(done.status, 200, "{}", done.body);
    assert!(done.body.contains("Purged 2"), "{}", done.body);
    let op = admin.get(&format!("/console/operations/{id}")).await;
    assert!(
        op.body
            .contains("discarded from the dead-letter queue by tester (console)")
    );

    let actions = audit_actions(&app).await;
    let summary: Vec<(&str, &str)> = actions
        .iter()
        .filter(|(a, _, _)| a != "login")
        .map(|(a, _, o)| (a.as_str(), o.as_str()))
        .collect();
    assert_eq!(
        summary,
        [
            ("purge", "refused: typed \"2\", 1 matched"),
            ("replay", "replayed 1, skipped 0"),
            ("purge", "purged 2"),
        ]
    );
    let audit = admin.get("/console/audit").await;
    assert!(audit.body.contains("2 selected"), "{}", audit.body);
    app.stop().await;
}

#[tokio::test]
async fn replay_all_matching_at_a_rate_skips_what_cannot_be_replayed() {
    let app = TestApp::spawn().await;
    let c = seed_catalog(&app, REPO).await;
    let id = failed_and_dead(&app, &c, "boom").await;
    // Not FAILED any more (someone fixed it by hand): a replay leaves it in the queue.
    let stray = Uuid::new_v4();
    dead_letter(
        &app,
        stray,
        DeadReason::UnknownOperation,
        "no such operation",
    )
    .await;
    let admin = ConsoleClient::logged_in(&app, &app.token(c.org, &[ADMIN])).await;
    let csrf = admin.get("/console/dead-letters").await.csrf();
    let bad_rate = admin
        .post(
            "/console/dead-letters/replay",
            &[("csrf", &csrf), ("mode", "all"), ("rate", "-1")],
        )
        .await;
    assert_eq!(bad_rate.status, 400);
    let started = std::time::Instant::now();
    let replay = admin
        .post(
            "/console/dead-letters/replay",
            &[("csrf", &csrf), ("mode", "all"), ("rate", "4")],
        )
        .await;
    assert_eq!(replay.status, 200, "{}", replay.body);
    assert!(
        replay.body.contains("replayed 1, skipped 1"),
        "{}",
        replay.body
    );
    assert!(replay.body.contains(&id.to_string()));
    assert!(
        replay.body.contains("the operation no longer exists"),
        "{}",
        replay.body
    );
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "the rate paused after the replay"
    );
    let left = admin.get("/console/dead-letters").await;
    assert!(left.body.contains(&stray.to_string()));
    assert!(!left.body.contains(&format!("data-dead-letter=\"{id}\"")));
    let filtered = admin
        .post(
            "/console/dead-letters/replay",
            &[("csrf", &csrf), ("mode", "all"), ("reason", "crashed")],
        )
        .await;
    assert!(
        filtered.body.contains("replayed 0, skipped 0"),
        "{}",
        filtered.body
    );
    app.stop().await;
}

#[tokio::test]
async fn the_overview_and_repositories_show_the_fleet() {
    let app = TestApp::spawn().await;
    let c = seed_catalog(&app, REPO).await;
    let pending = trigger(&app, c.org, c.affected).await;
    let mut conn = app.pool.get().await.unwrap();
    // A job that ran on a worker: RUNNING at clone, with a fresh heartbeat.
    let running = trigger(&app, c.other_org, c.other_org_assessment).await;
    diesel::update(operations::table.find(running))
        .set((
            operations::status.eq("ASYNC_OPERATION_STATUS_RUNNING"),
            operations::step.eq("clone"),
            operations::claimed_by.eq("worker-host/4242"),
            operations::heartbeat_at.eq(diesel::dsl::now),
            operations::started_at.eq(diesel::dsl::now),
        ))
        .execute(&mut conn)
        .await
        .unwrap();
    // History for the jobs-per-minute figures: one success, one failure, one retry.
    diesel::sql_query(format!(
        "INSERT INTO operation_events (operation_id, kind, status, attempt, message) VALUES
           ('{pending}', 'status', 'ASYNC_OPERATION_STATUS_SUCCEEDED', NULL, NULL),
           ('{pending}', 'attempt_error', NULL, 1, 'transient'),
           ('{pending}', 'attempt_error', NULL, 2, 'final'),
           ('{pending}', 'status', 'ASYNC_OPERATION_STATUS_FAILED', NULL, 'final'),
           ('{pending}', 'attempt_error', NULL, 1, 'transient')"
    ))
    .execute(&mut conn)
    .await
    .unwrap();
    // The project has an open remediation PR.
    diesel::update(assessments::table.find(c.affected))
        .set(assessments::remediation_status.eq("PR_OPEN"))
        .execute(&mut conn)
        .await
        .unwrap();
    let admin = ConsoleClient::logged_in(&app, &app.token(c.org, &[ADMIN])).await;
    let overview = admin.get("/console/").await;
    assert_eq!(overview.status, 200, "{}", overview.body);
    let topology = Topology::new(&app.settings.amqp);
    for queue in topology.queues() {
        assert!(
            overview
                .body
                .contains(&format!("data-queue-name=\"{queue}\"")),
            "{queue}: {}",
            overview.body
        );
    }
    assert!(overview.body.contains("data-live=\"/console/?fragment=1\""));
    assert!(overview.body.contains("data-figure=\"outbox\""));
    assert!(
        overview.body.contains("worker-host/4242"),
        "{}",
        overview.body
    );
    assert!(
        overview
            .body
            .contains(&format!("/console/operations/{running}"))
    );
    assert!(
        overview
            .body
            .contains(&format!("/console/operations/{pending}")),
        "oldest PENDING"
    );
    let figure = |name: &str| -> String {
        let marker = format!("data-figure=\"{name}\"");
        let rest = overview.body.split(&marker).nth(1).unwrap();
        let value = rest.split("class=\"value").nth(1).unwrap();
        value
            .split('>')
            .nth(1)
            .unwrap()
            .split('<')
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(figure("succeeded"), "1");
    assert_eq!(figure("failed"), "1");
    assert_eq!(figure("retried"), "2");
    let fragment = admin.get("/console/?fragment=1").await;
    assert!(fragment.body.contains("worker-host/4242"));
    assert!(!fragment.body.contains("<html"));

    let repositories = admin.get("/console/repositories").await;
    assert_eq!(repositories.status, 200);
    assert!(
        repositories.body.contains("data-open-prs=\"1\""),
        "{}",
        repositories.body
    );
    assert!(
        repositories.body.contains("1 / 10"),
        "{}",
        repositories.body
    );

    let css = admin.get("/console/static/console.css").await;
    assert_eq!(css.status, 200);
    assert!(
        css.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    let js = admin.get("/console/static/console.js").await;
    assert!(js.body.contains("data-live"));
    assert_eq!(admin.get("/console/static/x.js").await.status, 404);
    assert_eq!(admin.get("/console/nowhere").await.status, 404);
    app.stop().await;
}

#[tokio::test]
async fn the_console_can_be_turned_off() {
    let mut settings = test_settings().await;
    settings.console.enabled = false;
    let app = TestApp::spawn_with(settings).await;
    let (status, body) = app.get_json(None, "/console/").await;
    assert_eq!(status, 404);
    assert_eq!(body["code"], 5, "the API's own 404: {body}");
    app.stop().await;
}

#[tokio::test]
async fn the_admin_scope_and_the_secure_flag_are_configurable() {
    let mut settings = test_settings().await;
    settings.console.admin_scope = "acme:remediator-admin".into();
    settings.console.secure_cookie = remediator::config::SecureCookie::Always;
    let app = TestApp::spawn_with(settings).await;
    let c = seed_catalog(&app, REPO).await;
    // The default admin scope means nothing here: no console scope at all.
    let mut client = ConsoleClient::new(&app);
    assert_eq!(client.login(&app.token(c.org, &[ADMIN])).await.status, 403);
    let page = client
        .login(&app.token(c.org, &["acme:remediator-admin"]))
        .await;
    assert_eq!(page.status, 303, "{}", page.body);
    let cookie = page
        .set_cookies()
        .into_iter()
        .find(|c| c.starts_with("remediator_console="))
        .unwrap();
    assert!(
        cookie.ends_with("; Secure"),
        "always Secure, even on loopback: {cookie}"
    );
    let audit = client.get("/console/audit").await;
    assert_eq!(audit.status, 200, "the configured scope is the admin's");
    assert!(audit.body.contains("all organisations (admin)"));
    app.stop().await;
}
