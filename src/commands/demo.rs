//! `remediator demo`: the whole flow on this machine with no LLM key and no forge account.
//! It makes a small repository with a vulnerable dependency (a local bare repository), imports
//! its project, finding and AFFECTED assessment, runs intake, relay and worker in-process
//! against the configured Postgres and RabbitMQ, calls the real HTTP endpoint, polls the
//! operation to its end, and prints the operation and the diff of the pushed branch.
//!
//! It owns its corner of the shared services: the database `<configured name>_demo` and the
//! queues and exchanges of the prefix `<configured prefix>-demo`. Both are removed when it ends
//! (unless `--keep`), and removed first when an interrupted run left them, so every run starts
//! from the same state and leaves nothing behind.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use secrecy::SecretString;
use serde_json::{Value, json};

use crate::config::{PatcherChoice, Settings};
use crate::db::DbPool;
use crate::lifecycle::{AssessmentId, FindingId, OperationStatus, OrganizationId, ProjectId};
use crate::queue::topology::Topology;
use crate::shutdown::Shutdown;

const PACKAGE_JSON: &str = r#"{
  "name": "demo-storefront",
  "version": "1.0.0",
  "private": true,
  "dependencies": {
    "express": "^4.18.2",
    "lodash": "^4.17.20"
  }
}
"#;

pub async fn run(mut settings: Settings, keep: bool) -> anyhow::Result<()> {
    let workdir = tempfile::Builder::new()
        .prefix("remediator-demo-")
        .tempdir()?;
    let repo_path = workdir.path().join("storefront.git");
    {
        // git2 blocks: keep it off the async runtime, like the worker does.
        let path = repo_path.clone();
        tokio::task::spawn_blocking(move || create_sample_repository(&path)).await??;
    }
    let repository_url = format!("file://{}", repo_path.display());
    println!("1. sample repository with lodash ^4.17.20: {repository_url}");

    let database = isolate(&mut settings, workdir.path())?;
    if remove_demo_state(&settings).await? {
        println!("   removed the demo database and queues an interrupted run left behind");
    }
    crate::db::create_database_if_missing(&settings.database).await?;
    let pool = crate::db::pool(&settings.database)?;
    crate::db::migrate(&pool).await?;

    let ids = DemoIds::new();
    let catalog = crate::import::parse(
        &ids.catalog(&repository_url).to_string(),
        &crate::repository_admission::RepositoryRules::from_settings(&settings),
    )?;
    crate::import::import(&pool, catalog).await?;
    println!(
        "2. imported organisation, project, finding GHSA-35jh-r3h4-6jhm and its AFFECTED assessment"
    );

    let outcome = run_services(&settings, &pool, &ids).await?;
    let shown = match outcome {
        Ok(operation) => show(&operation, &repo_path).await,
        Err(error) => Err(error),
    };
    // The pool holds connections to the database about to be dropped.
    drop(pool);
    finish(&settings, &database, keep).await?;
    shown
}

/// Moves the settings to the demo's own corner of the shared services: a database and a
/// queue prefix of its own, local-only repository URLs, the deterministic bump, and a
/// throwaway signing secret if none is set. Returns the database's name.
fn isolate(settings: &mut Settings, workdir: &Path) -> anyhow::Result<String> {
    let database = format!("{}_demo", crate::db::database_name(&settings.database)?);
    settings.database.url = crate::db::with_database_name(&settings.database.url, &database)?;
    settings.amqp.prefix = format!("{}-demo", settings.amqp.prefix);
    settings.git.allow_file = true;
    settings.worker.patcher = PatcherChoice::Bump;
    settings.worker.scratch_dir = Some(workdir.join("scratch"));
    // The demo's repository needs npm alone; `remediator doctor` checks the other tools.
    settings.worker.check_tools_at_start = false;
    settings.relay.poll_interval_ms = 100;
    // The demo mints its own token, which only an HS256 secret allows.
    if settings.auth.algorithm != "HS256" {
        settings.auth.algorithm = "HS256".into();
        settings.auth.public_key_files.clear();
        settings.auth.jwks_url.clear();
        settings.auth.jwt_secret = None;
    }
    if settings.auth.jwt_secret.is_none() {
        settings.auth.jwt_secret = Some(SecretString::from(uuid::Uuid::new_v4().to_string()));
    }
    Ok(database)
}

/// Runs intake (with relay) and one worker in this process while the demo's request goes
/// through them, and stops both. The outer error: they could not start (the demo ends there);
/// the inner one: the request did not come to an end (the demo still cleans up).
async fn run_services(
    settings: &Settings,
    pool: &DbPool,
    ids: &DemoIds,
) -> anyhow::Result<anyhow::Result<Value>> {
    let shutdown = Shutdown::new();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base_url = format!("http://{}", listener.local_addr()?);
    let intake = tokio::spawn(super::intake::run(
        settings.clone(),
        listener,
        shutdown.clone(),
    ));
    let runner = super::worker::build_runner(settings, pool.clone())?;
    let worker = tokio::spawn(runner.run(shutdown.clone()));
    println!("3. intake (with relay) on {base_url} and one worker are running in this process");

    let outcome = drive(settings, &base_url, ids).await;
    shutdown.trigger();
    let _ = tokio::time::timeout(Duration::from_secs(15), intake).await;
    let _ = tokio::time::timeout(Duration::from_secs(15), worker).await;
    Ok(outcome)
}

/// Removes the demo's database and queues, or says where they were kept.
async fn finish(settings: &Settings, database: &str, keep: bool) -> anyhow::Result<()> {
    if keep {
        println!(
            "\n7. kept the database {database} and the queues {}.* (the next demo removes them)",
            settings.amqp.prefix
        );
    } else {
        remove_demo_state(settings).await?;
        println!(
            "\n7. removed the database {database} and the queues {}.*: nothing of the demo is left",
            settings.amqp.prefix
        );
    }
    Ok(())
}

/// Prints the finished operation and the diff of its branch; fails unless it succeeded.
async fn show(operation: &Value, repo_path: &Path) -> anyhow::Result<()> {
    println!(
        "\n5. the operation:\n{}",
        serde_json::to_string_pretty(operation)?
    );
    if operation["status"] != OperationStatus::Succeeded.as_str() {
        bail!(
            "the demo operation did not succeed: {}",
            operation["error_message"]
        );
    }
    let branch = operation["output"]["branch"]
        .as_str()
        .context("the operation output names no branch")?;
    println!("\n6. diff of the pushed branch {branch} against main:\n");
    let (path, branch) = (repo_path.to_owned(), branch.to_owned());
    let diff = tokio::task::spawn_blocking(move || branch_diff(&path, &branch)).await??;
    println!("{diff}");
    Ok(())
}

/// Drops the demo's database and deletes its queues and exchanges. Returns true when the
/// database was there (a run was interrupted, or kept with `--keep`).
async fn remove_demo_state(settings: &Settings) -> anyhow::Result<bool> {
    let existed = crate::db::drop_database(&settings.database)
        .await
        .context("removing the demo database")?;
    let connection = crate::queue::connect(&settings.amqp.url, "remediator-demo-cleanup").await?;
    let channel = connection.create_channel().await?;
    Topology::new(&settings.amqp)
        .delete(&channel)
        .await
        .context("deleting the demo queues")?;
    let _ = connection.close(200, "demo cleanup".into()).await;
    Ok(existed)
}

async fn drive(settings: &Settings, base_url: &str, ids: &DemoIds) -> anyhow::Result<Value> {
    let token = super::token::run(settings, ids.org, "demo", None, Duration::from_secs(600))?;
    let http = reqwest::Client::new();
    let started = Instant::now();
    let response = http
        .post(format!("{base_url}/v1/findings/auto-remediation"))
        .bearer_auth(&token)
        .json(&json!({"assessment_id": ids.assessment}))
        .send()
        .await?;
    let status = response.status();
    let body: Value = response.json().await?;
    println!("4. POST /v1/findings/auto-remediation -> {status} {body}");
    let operation_id = body["operation_id"]
        .as_str()
        .context("no operation_id in the answer")?
        .to_owned();
    let mut last_step = String::new();
    loop {
        let answer: Value = http
            .get(format!("{base_url}/v1/operations/{operation_id}"))
            .bearer_auth(&token)
            .send()
            .await?
            .json()
            .await?;
        let operation = answer["operation"].clone();
        let status = operation["status"].as_str().unwrap_or_default().to_owned();
        let step = operation["step"].as_str().unwrap_or("-").to_owned();
        if step != last_step {
            println!(
                "   {:>6} ms  {status}  step={step}",
                started.elapsed().as_millis()
            );
            last_step = step;
        }
        if !OperationStatus::parse(&status).is_some_and(OperationStatus::is_live) {
            println!("   finished in {} ms", started.elapsed().as_millis());
            return Ok(operation);
        }
        if started.elapsed() > Duration::from_secs(120) {
            bail!("the operation did not finish within 120 s: {operation}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

struct DemoIds {
    org: OrganizationId,
    project: ProjectId,
    finding: FindingId,
    assessment: AssessmentId,
}

impl DemoIds {
    fn new() -> Self {
        DemoIds {
            org: OrganizationId::new_random(),
            project: ProjectId::new_random(),
            finding: FindingId::new_random(),
            assessment: AssessmentId::new_random(),
        }
    }

    fn catalog(&self, repository_url: &str) -> Value {
        json!({
            "organizations": [{"id": self.org, "name": "Demo Org"}],
            "projects": [{"id": self.project, "organization_id": self.org, "name": "demo-storefront",
                          "repository_url": repository_url, "default_branch": "main"}],
            "findings": [{"id": self.finding, "project_id": self.project, "vulnerability_id": "GHSA-35jh-r3h4-6jhm",
                          "aliases": ["CVE-2021-23337"], "severity": "HIGH",
                          "summary": "Command Injection in lodash template",
                          "package_name": "lodash", "ecosystem": "npm", "purl": "pkg:npm/lodash@4.17.20",
                          "installed_version": "4.17.20", "fixed_versions": ["4.17.21"]}],
            "assessments": [{"id": self.assessment, "finding_id": self.finding, "status": "ASSESSMENT_STATUS_AFFECTED"}]
        })
    }
}

/// A bare repository with one commit on `main`, made with git2 so the demo needs no git CLI.
fn create_sample_repository(path: &Path) -> anyhow::Result<()> {
    let repo = git2::Repository::init_bare(path).context("creating the sample repository")?;
    let mut tree = repo.treebuilder(None)?;
    for (name, content) in [
        ("package.json", PACKAGE_JSON),
        (
            "README.md",
            "# demo-storefront\n\nA tiny shop that uses lodash.\n",
        ),
        (
            "index.js",
            "const _ = require('lodash');\nconsole.log(_.template('hi <%= name %>')({ name: 'demo' }));\n",
        ),
    ] {
        let blob = repo.blob(content.as_bytes())?;
        tree.insert(name, blob, 0o100644)?;
    }
    let tree = repo.find_tree(tree.write()?)?;
    let signature = git2::Signature::now("Demo Maintainer", "maintainer@example.com")?;
    repo.commit(
        Some("refs/heads/main"),
        &signature,
        &signature,
        "Initial commit",
        &tree,
        &[],
    )?;
    repo.set_head("refs/heads/main")?;
    Ok(())
}

fn branch_diff(repo_path: &Path, branch: &str) -> anyhow::Result<String> {
    let repo = git2::Repository::open_bare(repo_path)?;
    let main = repo.revparse_single("refs/heads/main")?.peel_to_tree()?;
    let fixed = repo
        .revparse_single(&format!("refs/heads/{branch}"))
        .with_context(|| format!("branch {branch} was not pushed"))?
        .peel_to_tree()?;
    let diff = repo.diff_tree_to_tree(Some(&main), Some(&fixed), None)?;
    let mut text = String::new();
    diff.print(git2::DiffFormat::Patch, |_, _, line| {
        let prefix = match line.origin() {
            '+' | '-' | ' ' => line.origin().to_string(),
            _ => String::new(),
        };
        text.push_str(&prefix);
        text.push_str(&String::from_utf8_lossy(line.content()));
        true
    })?;
    Ok(text)
}
