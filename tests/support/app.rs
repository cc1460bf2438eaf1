//! The real application for integration tests: a fresh Postgres database and a private
//! RabbitMQ name prefix per test (so tests run in parallel), an intake on port 0, tokens, and
//! helpers to look at the queues.

use std::time::Duration;

use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl};
use lapin::options::BasicGetOptions;
use remediator::config::Settings;
use remediator::db::DbPool;
use remediator::queue::message::JobMessage;
use remediator::queue::topology::Topology;
use remediator::repository_admission::RepositoryRules;
use remediator::shutdown::Shutdown;
use secrecy::{ExposeSecret, SecretString};
use uuid::Uuid;

pub const JWT_SECRET: &str = "test-signing-secret-0123456789abcdef";

fn admin_url() -> String {
    std::env::var("TEST_DATABASE_ADMIN_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

pub fn amqp_url() -> String {
    std::env::var("TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// Creates an empty database named `remediator_test_<random>`; `scripts/test` drops leftovers.
pub async fn create_database() -> String {
    let name = format!("remediator_test_{}", Uuid::new_v4().simple());
    let mut admin = AsyncPgConnection::establish(&admin_url())
        .await
        .expect("connect to Postgres as admin (is it running?)");
    diesel::sql_query(format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("create test database");
    let base = admin_url();
    let (prefix, _) = base.rsplit_once('/').expect("admin url has a database");
    format!("{prefix}/{name}")
}

/// Settings for one test: its own database (migrated) and queue prefix.
pub async fn test_settings() -> Settings {
    let mut settings = Settings::defaults().expect("default settings");
    settings.database.url = SecretString::from(create_database().await);
    settings.database.pool_size = 4;
    settings.amqp.url = SecretString::from(amqp_url());
    settings.amqp.prefix = format!("rt-{}", &Uuid::new_v4().simple().to_string()[..12]);
    settings.amqp.retry_delays_secs = vec![1, 2];
    settings.auth.jwt_secret = Some(SecretString::from(JWT_SECRET.to_owned()));
    settings.relay.poll_interval_ms = 100;
    // Tests start many workers: `remediator doctor`'s check is tested on its own.
    settings.worker.check_tools_at_start = false;
    // Every fake (git server, forge API, LLM, JWKS) listens on loopback.
    settings.security.allow_private_networks = true;
    let pool = remediator::db::pool(&settings.database).expect("pool");
    remediator::db::migrate(&pool).await.expect("migrate");
    settings
}

pub struct TestApp {
    pub settings: Settings,
    pub pool: DbPool,
    pub base_url: String,
    pub http: reqwest::Client,
    pub shutdown: Shutdown,
    pub server: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl TestApp {
    pub async fn spawn() -> TestApp {
        Self::spawn_with(test_settings().await).await
    }

    pub async fn spawn_with(settings: Settings) -> TestApp {
        remediator::telemetry::init_for_tests();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let base_url = format!("http://{}", listener.local_addr().expect("addr"));
        let pool = remediator::db::pool(&settings.database).expect("pool");
        let shutdown = Shutdown::new();
        let server = tokio::spawn(remediator::commands::intake::run(
            settings.clone(),
            listener,
            shutdown.clone(),
        ));
        let app = TestApp {
            settings,
            pool,
            base_url,
            http: reqwest::Client::new(),
            shutdown,
            server,
        };
        app.wait_until_serving().await;
        app
    }

    async fn wait_until_serving(&self) {
        for _ in 0..100 {
            if self
                .http
                .get(format!("{}/healthz", self.base_url))
                .send()
                .await
                .is_ok()
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("intake did not start");
    }

    pub fn token(&self, org: Uuid, scopes: &[&str]) -> String {
        let scopes: Vec<String> = scopes.iter().map(|s| s.to_string()).collect();
        remediator::api::auth::mint_token(
            &self.settings.auth,
            org.into(),
            "tester",
            &scopes,
            Duration::from_secs(600),
        )
        .expect("mint token")
    }

    pub fn full_token(&self, org: Uuid) -> String {
        self.token(org, &["remediations:write", "operations:read"])
    }

    pub async fn post_remediation(
        &self,
        token: Option<&str>,
        body: &str,
    ) -> (u16, serde_json::Value) {
        let mut request = self
            .http
            .post(format!("{}/v1/findings/auto-remediation", self.base_url))
            .header("content-type", "application/json")
            .body(body.to_owned());
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("POST");
        let status = response.status().as_u16();
        (
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }

    pub async fn get_json(&self, token: Option<&str>, path: &str) -> (u16, serde_json::Value) {
        let mut request = self.http.get(format!("{}{}", self.base_url, path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.expect("GET");
        let status = response.status().as_u16();
        (
            status,
            response.json().await.unwrap_or(serde_json::Value::Null),
        )
    }

    pub async fn stop(self) {
        self.shutdown.trigger();
        let _ = tokio::time::timeout(Duration::from_secs(15), self.server).await;
        delete_topology(&self.settings).await;
    }
}

/// Imports the example catalog shape with fresh ids; returns them.
pub struct Catalog {
    pub org: Uuid,
    pub other_org: Uuid,
    pub project: Uuid,
    pub affected: Uuid,
    pub not_affected: Uuid,
    pub other_org_assessment: Uuid,
}

pub fn catalog_json(c: &Catalog, repository_url: &str) -> String {
    serde_json::json!({
        "organizations": [{"id": c.org, "name": "Acme"}, {"id": c.other_org, "name": "Globex"}],
        "projects": [
            {"id": c.project, "organization_id": c.org, "name": "web", "repository_url": repository_url, "default_branch": "main"},
            {"id": Uuid::from_u128(c.project.as_u128() ^ 1), "organization_id": c.other_org, "name": "other", "repository_url": repository_url}
        ],
        "findings": [
            {"id": Uuid::from_u128(c.affected.as_u128() ^ 7), "project_id": c.project, "vulnerability_id": "GHSA-35jh-r3h4-6jhm",
             "aliases": ["CVE-2021-23337"], "severity": "HIGH", "summary": "Command injection in lodash template",
             "package_name": "lodash", "ecosystem": "npm", "installed_version": "4.17.20", "fixed_versions": ["4.17.21"]},
            {"id": Uuid::from_u128(c.not_affected.as_u128() ^ 7), "project_id": c.project, "vulnerability_id": "GHSA-p6mc-m468-83gw",
             "severity": "HIGH", "package_name": "lodash", "ecosystem": "npm", "installed_version": "4.17.15", "fixed_versions": ["4.17.19"]},
            {"id": Uuid::from_u128(c.other_org_assessment.as_u128() ^ 7), "project_id": Uuid::from_u128(c.project.as_u128() ^ 1),
             "vulnerability_id": "GHSA-35jh-r3h4-6jhm", "package_name": "lodash", "ecosystem": "npm", "installed_version": "4.17.20", "fixed_versions": ["4.17.21"]}
        ],
        "assessments": [
            {"id": c.affected, "finding_id": Uuid::from_u128(c.affected.as_u128() ^ 7), "status": "ASSESSMENT_STATUS_AFFECTED"},
            {"id": c.not_affected, "finding_id": Uuid::from_u128(c.not_affected.as_u128() ^ 7), "status": "ASSESSMENT_STATUS_NOT_AFFECTED"},
            {"id": c.other_org_assessment, "finding_id": Uuid::from_u128(c.other_org_assessment.as_u128() ^ 7), "status": "ASSESSMENT_STATUS_AFFECTED"}
        ]
    })
    .to_string()
}

/// The repository rules an import with `settings` applies (the worker's).
pub fn import_rules(settings: &Settings) -> RepositoryRules {
    RepositoryRules::from_settings(settings)
}

/// Imports [`catalog_json`] with fresh ids through `remediator import`'s own path, under the
/// app's settings (so a loopback http repository needs `git.allow_http`, as for the worker).
pub async fn seed_catalog(app: &TestApp, repository_url: &str) -> Catalog {
    let c = Catalog {
        org: Uuid::new_v4(),
        other_org: Uuid::new_v4(),
        project: Uuid::new_v4(),
        affected: Uuid::new_v4(),
        not_affected: Uuid::new_v4(),
        other_org_assessment: Uuid::new_v4(),
    };
    let file = remediator::import::parse(
        &catalog_json(&c, repository_url),
        &import_rules(&app.settings),
    )
    .expect("parse catalog");
    remediator::import::import(&app.pool, file)
        .await
        .expect("import catalog");
    c
}

/// Waits for a message on a queue (basic_get, auto-acked) and decodes it. A queue that does
/// not exist yet (the relay has not declared it) counts as empty.
pub async fn next_message(
    settings: &Settings,
    queue: &str,
    timeout: Duration,
) -> Option<(JobMessage, lapin::types::FieldTable)> {
    let mut connection = remediator::queue::connect(&settings.amqp.url, "test-reader")
        .await
        .expect("amqp");
    let deadline = tokio::time::Instant::now() + timeout;
    let mut channel = connection.create_channel().await.expect("channel");
    let found = loop {
        match channel
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await
        {
            Ok(Some(message)) => {
                let delivery = message.delivery;
                let headers = delivery.properties.headers().clone().unwrap_or_default();
                let job = serde_json::from_slice(&delivery.data).expect("job message");
                break Some((job, headers));
            }
            Ok(None) => {}
            // The broker closes the channel on NOT_FOUND; open a new one. Just after a broker
            // restart a quorum queue may not be up yet ("noproc"): the broker then closes the
            // whole connection, so connect again.
            Err(_) if connection.status().connected() => {
                channel = connection.create_channel().await.expect("channel");
            }
            // Tried again on the next turn while the broker is not back yet.
            Err(_) => {
                if let Ok(again) =
                    remediator::queue::connect(&settings.amqp.url, "test-reader").await
                {
                    connection = again;
                    if let Ok(opened) = connection.create_channel().await {
                        channel = opened;
                    }
                }
            }
        }
        if tokio::time::Instant::now() > deadline {
            break None;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let _ = connection.close(200, "done".into()).await;
    found
}

/// Removes a test's queues and exchanges.
pub async fn delete_topology(settings: &Settings) {
    let Ok(connection) = remediator::queue::connect(&settings.amqp.url, "test-cleanup").await
    else {
        return;
    };
    let Ok(channel) = connection.create_channel().await else {
        return;
    };
    let _ = Topology::new(&settings.amqp).delete(&channel).await;
    let _ = connection.close(200, "cleanup".into()).await;
}

pub fn database_url(settings: &Settings) -> String {
    settings.database.url.expose_secret().to_owned()
}
