//! Postgres: the source of truth. Owns the connection pool, the embedded migrations and the
//! queries each part of the flow runs (one file per aggregate).

pub mod audit;
pub mod catalog;
pub mod console;
pub mod fixes;
pub mod intake;
pub mod models;
pub mod operations;
pub mod outbox;
pub mod rate_limit;
pub mod schema;
pub mod sql;
pub mod webhooks;

use std::time::Duration;

use anyhow::{Context, bail};
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{
    AsyncDieselConnectionManager, ManagerConfig, RecyclingMethod,
};
use diesel_async::{AsyncMigrationHarness, AsyncPgConnection};
use diesel_migrations::{EmbeddedMigrations, MigrationHarness, embed_migrations};
use secrecy::{ExposeSecret, SecretString};

use crate::config::DatabaseSettings;

pub type DbPool = Pool<AsyncPgConnection>;
pub type DbConn = Object<AsyncPgConnection>;

pub const MIGRATIONS: EmbeddedMigrations = embed_migrations!("migrations");

/// Builds the pool. Connections are opened lazily, so this succeeds while Postgres is down.
///
/// A connection is handed out again without a `SELECT 1` first (`RecyclingMethod::Fast`):
/// that check cost every request a round trip. A connection that died is noticed by the
/// query that meets it, which fails (a request answers 503, a job step retries); the driver
/// then marks it closed and the pool drops it instead of handing it out again.
pub fn pool(settings: &DatabaseSettings) -> anyhow::Result<DbPool> {
    let mut config = ManagerConfig::default();
    config.recycling_method = RecyclingMethod::Fast;
    let manager = AsyncDieselConnectionManager::<AsyncPgConnection>::new_with_config(
        settings.url.expose_secret(),
        config,
    );
    let timeout = Some(Duration::from_secs(settings.acquire_timeout_secs));
    Pool::builder(manager)
        .max_size(settings.pool_size)
        .wait_timeout(timeout)
        .create_timeout(timeout)
        .recycle_timeout(timeout)
        .runtime(deadpool::Runtime::Tokio1)
        .build()
        .context("building the database pool")
}

/// Applies every pending migration (`remediator migrate`). Returns the versions applied.
pub async fn migrate(pool: &DbPool) -> anyhow::Result<Vec<String>> {
    let conn = pool.get().await.context("connecting to Postgres")?;
    // The harness blocks on the async connection, so it runs on a blocking thread.
    tokio::task::spawn_blocking(move || {
        let mut harness = AsyncMigrationHarness::new(conn);
        let applied = harness
            .run_pending_migrations(MIGRATIONS)
            .map_err(|e| anyhow::anyhow!("applying migrations: {e}"))?;
        Ok(applied.iter().map(|v| v.to_string()).collect())
    })
    .await?
}

/// Refuses to run a server against a database whose schema is behind this binary.
pub async fn ensure_migrated(pool: &DbPool) -> anyhow::Result<()> {
    let conn = pool.get().await.context("connecting to Postgres")?;
    let pending = tokio::task::spawn_blocking(move || {
        let mut harness = AsyncMigrationHarness::new(conn);
        harness
            .pending_migrations(MIGRATIONS)
            .map(|p| p.iter().map(|m| m.name().to_string()).collect::<Vec<_>>())
            .map_err(|e| anyhow::anyhow!("reading the migration state: {e}"))
    })
    .await??;
    if !pending.is_empty() {
        bail!(
            "the database schema is behind this version ({} pending migration(s): {}); \
             run `remediator migrate` first",
            pending.len(),
            pending.join(", ")
        );
    }
    Ok(())
}

/// The parts of a database URL that creating, renaming and dropping a database need.
struct DatabaseUrl<'a> {
    /// Everything before the last `/`.
    base: &'a str,
    name: &'a str,
    /// `?...` or empty.
    query: &'a str,
}

impl<'a> DatabaseUrl<'a> {
    fn parse(url: &'a str) -> anyhow::Result<Self> {
        let (base, rest) = url
            .rsplit_once('/')
            .context("the database URL names no database")?;
        let (name, query) = match rest.find('?') {
            Some(index) => rest.split_at(index),
            None => (rest, ""),
        };
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        {
            bail!("the database name in the URL must be made of letters, digits, `_` and `-`");
        }
        Ok(DatabaseUrl { base, name, query })
    }

    /// A connection to the maintenance database every Postgres has.
    async fn connect_admin(&self) -> anyhow::Result<AsyncPgConnection> {
        use diesel_async::AsyncConnection;
        AsyncPgConnection::establish(&format!("{}/postgres{}", self.base, self.query))
            .await
            .context("connecting to Postgres's maintenance database")
    }
}

/// The same server and options with another database name (the demo's own database).
pub fn with_database_name(url: &SecretString, name: &str) -> anyhow::Result<SecretString> {
    let parsed = DatabaseUrl::parse(url.expose_secret())?;
    DatabaseUrl::parse(&format!("{}/{name}", parsed.base))?;
    Ok(SecretString::from(format!(
        "{}/{name}{}",
        parsed.base, parsed.query
    )))
}

/// The database name of a URL, for messages (the URL itself may hold a password).
pub fn database_name(settings: &DatabaseSettings) -> anyhow::Result<String> {
    Ok(DatabaseUrl::parse(settings.url.expose_secret())?
        .name
        .to_owned())
}

/// Creates the database named in the URL when it does not exist yet, so `remediator migrate`
/// and `remediator demo` work on a fresh Postgres. Returns true when it was created.
pub async fn create_database_if_missing(settings: &DatabaseSettings) -> anyhow::Result<bool> {
    use diesel_async::RunQueryDsl;
    let url = DatabaseUrl::parse(settings.url.expose_secret())?;
    let mut admin = url.connect_admin().await?;
    match diesel::sql_query(format!("CREATE DATABASE \"{}\"", url.name))
        .execute(&mut admin)
        .await
    {
        Ok(_) => Ok(true),
        Err(diesel::result::Error::DatabaseError(_, info))
            if info.message().contains("already exists") =>
        {
            Ok(false)
        }
        Err(error) => Err(error).context("creating the database"),
    }
}

/// Drops the database named in the URL, closing its other sessions (demo cleanup). Returns
/// true when it existed.
pub async fn drop_database(settings: &DatabaseSettings) -> anyhow::Result<bool> {
    use diesel_async::RunQueryDsl;
    let url = DatabaseUrl::parse(settings.url.expose_secret())?;
    let mut admin = url.connect_admin().await?;
    let existed = diesel::sql_query(format!(
        "SELECT 1 FROM pg_database WHERE datname = '{}'",
        url.name
    ))
    .execute(&mut admin)
    .await
    .context("looking the database up")?
        > 0;
    diesel::sql_query(format!(
        "DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)",
        url.name
    ))
    .execute(&mut admin)
    .await
    .context("dropping the database")?;
    Ok(existed)
}
