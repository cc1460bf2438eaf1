//! `remediator worker`: builds the pipeline from settings and consumes jobs until a shutdown
//! signal.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;

use crate::config::{PatcherChoice, Settings};
use crate::db;
use crate::forge::ForgeRegistry;
use crate::lifecycle::Limits;
use crate::llm::LlmClient;
use crate::patch::PatchPolicy;
use crate::queue::topology::Topology;
use crate::sandbox::Sandbox;
use crate::shutdown::Shutdown;
use crate::worker::context::Pipeline;
use crate::worker::job::JobGuard;
use crate::worker::memory_budget::GitBudget;
use crate::worker::patcher::Patcher;
use crate::worker::reconciler::Reconciler;
use crate::worker::runner::Runner;

/// Builds a runner from settings: the part shared by `worker` and `demo`.
pub fn build_runner(settings: &Settings, pool: db::DbPool) -> anyhow::Result<Runner> {
    let forges = ForgeRegistry::from_settings(
        &settings.forges,
        settings.git.url_policy(),
        Duration::from_secs(settings.git.http_timeout_secs),
        settings.security.egress(),
    )?;
    let reconciler = settings.reconciler.enabled.then(|| Reconciler {
        pool: pool.clone(),
        forges: forges.clone(),
        interval: Duration::from_secs(settings.reconciler.interval_secs.max(1)),
        max_requests_per_tick: settings.reconciler.max_requests_per_tick.max(1),
        mark_fixed_on_merge: settings.worker.mark_fixed_on_merge,
    });
    let pipeline = build_pipeline(settings, pool.clone(), forges)?;
    check_sandbox(&pipeline, settings);
    Ok(Runner {
        pipeline: Arc::new(pipeline),
        pool: pool.clone(),
        amqp_url: settings.amqp.url.clone(),
        topology: Topology::new(&settings.amqp),
        limits: Limits {
            max_attempts: settings.amqp.max_attempts,
            delivery_limit: settings.amqp.delivery_limit,
            retry_delays_secs: settings.amqp.retry_delays_secs.clone(),
        },
        concurrency: settings.worker.concurrency,
        guard: JobGuard {
            pool,
            heartbeat_every: Duration::from_secs(settings.worker.heartbeat_secs.max(1)),
            timeout: Duration::from_secs(settings.worker.job_timeout_secs),
        },
        shutdown_grace: Duration::from_secs(settings.intake.shutdown_grace_secs),
        worker_id: crate::worker::runner::worker_id(),
        reconciler,
    })
}

/// The job pipeline: the forges, the patcher, git's memory budget, the sandbox and the steps'
/// settings.
fn build_pipeline(
    settings: &Settings,
    pool: db::DbPool,
    forges: ForgeRegistry,
) -> anyhow::Result<Pipeline> {
    let scratch_root = settings
        .worker
        .scratch_dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join("remediator"));
    Ok(Pipeline {
        pool,
        forges,
        patcher: build_patcher(settings)?,
        verify: settings
            .verify
            .clone()
            .with_default_cache_dir(&scratch_root),
        scratch_root,
        author_name: settings.git.author_name.clone(),
        author_email: settings.git.author_email.clone(),
        pr_labels: settings.worker.pr_labels.clone(),
        draft_below_confidence: settings.worker.draft_below_confidence,
        git_budget: git_budget(settings),
        max_open_prs_per_repository: settings.worker.max_open_prs_per_repository,
        before_step: None,
        sandbox: Sandbox::new(
            settings.sandbox.clone(),
            crate::lockfile::registries::endpoints(&settings.lockfiles),
        ),
        lockfiles: settings.lockfiles.clone(),
        require_verified_fix: settings.worker.require_verified_fix,
        group: settings.worker.group,
    })
}

/// The patcher: the LLM client if one is configured, the strategy, and the patch policy.
fn build_patcher(settings: &Settings) -> anyhow::Result<Patcher> {
    let llm = if settings.llm.enabled() {
        Some(
            LlmClient::new(settings.llm.client.clone(), settings.security.egress())
                .context("configuring the LLM client")?,
        )
    } else {
        None
    };
    let choice = match (settings.worker.patcher, &llm) {
        // With no LLM configured, `auto` is the deterministic bump.
        (PatcherChoice::Auto, None) => PatcherChoice::Bump,
        (choice, _) => choice,
    };
    let policy = PatchPolicy::new(&settings.policy)
        .context("invalid [policy] settings")?
        .allowing_test_edits(settings.verify.allow_test_edits);
    Ok(Patcher {
        choice,
        llm,
        policy,
    })
}

/// How much git work runs at once, sized from the memory budget (and logged).
fn git_budget(settings: &Settings) -> Arc<GitBudget> {
    let git_budget = Arc::new(GitBudget::new(
        settings.worker.memory_budget_mib,
        settings.worker.concurrency,
        settings.worker.git_concurrency,
    ));
    tracing::info!(
        slots_of_an_unknown_repository = git_budget.default_slots(),
        memory_budget_mib = settings.worker.memory_budget_mib,
        git_concurrency = settings.worker.git_concurrency,
        "git work sized"
    );
    git_budget
}

/// Says at start whether package managers can run here, and, if asked, which lock tools.
fn check_sandbox(pipeline: &Pipeline, settings: &Settings) {
    if let Err(error) = pipeline.sandbox.check() {
        // Repositories without lock files still work; jobs that need a tool fail saying this.
        tracing::error!(%error, "package managers cannot run on this worker");
    } else if settings.worker.check_tools_at_start {
        // Where each lock tool was found and its version, in the background: a few seconds of
        // tool start-ups must not delay the first job.
        let (sandbox, lockfiles) = (pipeline.sandbox.clone(), settings.lockfiles.clone());
        tokio::spawn(async move {
            crate::lockfile::inventory::log(
                &crate::lockfile::inventory::check(&sandbox, &lockfiles).await,
            );
        });
    }
}

/// Connections the worker needs besides one per job: the consumer's step records, the
/// heartbeats, the rescuer and the reconciler.
const SHARED_CONNECTIONS: usize = 4;

/// The database settings with a pool big enough for the job concurrency: a job holds a
/// connection from its push until its pull request is recorded (the package's fix lock is a
/// row lock in an open transaction), so a pool smaller than the concurrency starves the other
/// jobs' step records until they time out and retry.
fn worker_database(settings: &Settings) -> crate::config::DatabaseSettings {
    let mut database = settings.database.clone();
    let needed = usize::from(settings.worker.concurrency) + SHARED_CONNECTIONS;
    if database.pool_size < needed {
        tracing::info!(
            configured = database.pool_size,
            used = needed,
            "database.pool_size raised to the job concurrency plus the shared connections"
        );
        database.pool_size = needed;
    }
    database
}

pub async fn run(settings: Settings, shutdown: Shutdown) -> anyhow::Result<()> {
    let pool = db::pool(&worker_database(&settings))?;
    db::ensure_migrated(&pool).await?;
    let runner = build_runner(&settings, pool.clone())?;
    let maintenance = super::background::spawn_maintenance(&settings, &pool, &shutdown);
    let metrics_server = serve_metrics(&settings.worker.metrics_listen, &shutdown).await?;
    tracing::info!(
        concurrency = runner.concurrency,
        patcher = ?runner.pipeline.patcher.choice,
        "worker starting"
    );
    let result = runner.run(shutdown).await;
    super::background::join(maintenance).await;
    if let Some(server) = metrics_server {
        let _ = tokio::time::timeout(Duration::from_secs(5), server).await;
    }
    result
}

/// The worker's own small HTTP listener: `/metrics` and `/healthz`.
async fn serve_metrics(
    listen: &str,
    shutdown: &Shutdown,
) -> anyhow::Result<Option<tokio::task::JoinHandle<()>>> {
    if listen.trim().is_empty() {
        return Ok(None);
    }
    let listener = tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("listening for metrics on {listen}"))?;
    tracing::info!(address = %listener.local_addr()?, "worker metrics listening");
    let router = axum::Router::new()
        .route("/metrics", axum::routing::get(crate::metrics::render))
        .route("/healthz", axum::routing::get(crate::api::health::healthz));
    let stop = shutdown.clone();
    Ok(Some(tokio::spawn(async move {
        let served = axum::serve(listener, router)
            .with_graceful_shutdown(async move { stop.triggered().await })
            .await;
        if let Err(error) = served {
            tracing::warn!(%error, "metrics listener stopped");
        }
    })))
}
