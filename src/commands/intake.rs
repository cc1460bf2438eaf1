//! `remediator intake`: the HTTP API plus, unless disabled, the outbox relay, until a shutdown
//! signal; then it stops accepting, drains requests in flight and exits.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::api::guard::RequestLimits;
use crate::api::serve::{ServerLimits, serve};
use crate::api::{AppState, auth::Authenticator, router};
use crate::config::Settings;
use crate::console::ConsoleState;
use crate::db;
use crate::queue::health::BrokerHealth;
use crate::queue::outbox_wake;
use crate::queue::relay::Relay;
use crate::queue::topology::Topology;
use crate::repository_admission::RepositoryRules;
use crate::shutdown::Shutdown;
use crate::webhooks::secrets::WebhookSecrets;

pub async fn run(
    settings: Settings,
    listener: TcpListener,
    shutdown: Shutdown,
) -> anyhow::Result<()> {
    let pool = db::pool(&settings.database)?;
    db::ensure_migrated(&pool).await?;
    let auth = Arc::new(Authenticator::new(&settings.auth)?);
    let wake = Arc::new(Notify::new());
    let broker = BrokerHealth::default();
    let relay = settings
        .relay
        .enabled
        .then(|| spawn_relay(&settings, &pool, &wake, &broker, &shutdown));
    let maintenance = super::background::spawn_maintenance(&settings, &pool, &shutdown);
    let state = AppState {
        pool: pool.clone(),
        auth,
        broker,
        limits: RequestLimits::from_settings(&settings),
        relay_wake: wake,
        rate_limit: crate::api::rate_limit::RateLimit::new(settings.intake.rate_limit_per_minute),
        repository_rules: RepositoryRules::from_settings(&settings),
        webhooks: Arc::new(WebhookSecrets::from_settings(&settings.webhooks)),
        mark_fixed_on_merge: settings.worker.mark_fixed_on_merge,
        group: settings.worker.group,
    };
    let address = listener.local_addr()?;
    let console = settings
        .console
        .enabled
        .then(|| console_state(&settings, &state, address));
    tracing::info!(
        %address,
        relay = settings.relay.enabled,
        console = settings.console.enabled,
        "intake listening"
    );
    let grace = Duration::from_secs(settings.intake.shutdown_grace_secs);
    serve_until_shutdown(listener, router(state, console), &settings, &shutdown).await?;
    if let Some(relay) = relay {
        let _ = tokio::time::timeout(grace, relay).await;
    }
    super::background::join(maintenance).await;
    tracing::info!("intake stopped");
    Ok(())
}

/// The outbox relay, with the listener that wakes it on a NOTIFY.
fn spawn_relay(
    settings: &Settings,
    pool: &db::DbPool,
    wake: &Arc<Notify>,
    broker: &BrokerHealth,
    shutdown: &Shutdown,
) -> JoinHandle<()> {
    let relay = Relay {
        pool: pool.clone(),
        amqp_url: settings.amqp.url.clone(),
        topology: Topology::new(&settings.amqp),
        batch_size: settings.relay.batch_size,
        poll_interval: Duration::from_millis(settings.relay.poll_interval_ms),
        wake: wake.clone(),
        broker: broker.clone(),
    };
    tokio::spawn(outbox_wake::listen(
        settings.database.url.clone(),
        wake.clone(),
        shutdown.clone(),
    ));
    tokio::spawn(relay.run(shutdown.clone()))
}

/// The console's state: the API's, plus its own broker connections and settings.
fn console_state(settings: &Settings, state: &AppState, address: SocketAddr) -> ConsoleState {
    let broker = crate::console::broker::Broker::new(
        settings.amqp.url.clone(),
        Topology::new(&settings.amqp),
        state.pool.clone(),
    );
    ConsoleState::new(
        state.clone(),
        Arc::new(broker),
        &settings.console,
        address.ip().is_loopback(),
        settings.worker.max_open_prs_per_repository,
    )
}

/// Serves until the shutdown signal, then gives requests in flight the grace period.
async fn serve_until_shutdown(
    listener: TcpListener,
    app: axum::Router,
    settings: &Settings,
    shutdown: &Shutdown,
) -> anyhow::Result<()> {
    let grace = Duration::from_secs(settings.intake.shutdown_grace_secs);
    // Not `axum::serve`: it sets no header, idle or connection limits (see `api::serve`).
    let server = serve(
        listener,
        app,
        ServerLimits::from_settings(&settings.intake),
        shutdown.clone(),
    );
    let served = tokio::spawn(server);
    shutdown.triggered().await;
    match tokio::time::timeout(grace, served).await {
        Ok(result) => result
            .context("intake server task")?
            .context("serving HTTP")?,
        Err(_) => tracing::warn!(?grace, "requests still in flight after the grace period"),
    }
    Ok(())
}
