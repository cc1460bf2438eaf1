//! The `remediator` binary: one executable, one subcommand per role.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use remediator::commands;
use remediator::config::Settings;
use remediator::import;
use remediator::shutdown::Shutdown;
use remediator::telemetry::{DefaultLevel, LogFormat};

#[derive(Parser)]
#[command(
    name = "remediator",
    version,
    about = "Open vulnerability auto-remediation service"
)]
struct Cli {
    /// Configuration file layered over the built-in defaults (see config/default.toml).
    #[arg(long, global = true, env = "REMEDIATOR_CONFIG")]
    config: Option<PathBuf>,
    /// Log lines as text or JSON.
    #[arg(
        long,
        global = true,
        env = "REMEDIATOR_LOG_FORMAT",
        value_enum,
        default_value = "text"
    )]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show the whole flow on this machine: sample repository, intake, relay, worker, branch.
    /// Uses its own database and queues and removes them when it ends.
    Demo {
        /// Log at info (default: warnings only, so the numbered steps stay readable).
        #[arg(short, long)]
        verbose: bool,
        /// Keep the demo's database and queues for inspection (the next run removes them).
        #[arg(long)]
        keep: bool,
    },
    /// Create the database if needed and apply pending migrations.
    Migrate,
    /// Check that this machine can run the lock step: the sandbox, and every lock tool found
    /// as the worker finds it and run inside the sandbox (exit status 1 when one is not ready).
    Doctor,
    /// Serve the HTTP API and run the outbox relay.
    Intake {
        /// Address to listen on (default: intake.listen).
        #[arg(long)]
        listen: Option<String>,
    },
    /// Consume jobs: clone, write the fix, push the branch, open the pull request.
    Worker {
        /// Jobs in flight in this process (default: worker.concurrency).
        #[arg(long)]
        concurrency: Option<u16>,
    },
    /// Inspect, replay and purge dead-lettered jobs.
    #[command(subcommand)]
    Dlq(commands::dlq::DlqCommand),
    /// Load a JSON file: the native catalog (organisations, projects, findings, assessments),
    /// or a scanner report (OSV-Scanner, Grype, CycloneDX with vulnerabilities) with --project.
    Import {
        file: PathBuf,
        /// The existing project a scanner report was made for (not used with the native format).
        #[arg(long)]
        project: Option<remediator::lifecycle::ProjectId>,
        /// Largest file accepted, in bytes (default 16 MiB); the whole file is held in memory.
        #[arg(long, default_value_t = import::DEFAULT_MAX_BYTES)]
        max_bytes: u64,
    },
    /// Print a bearer token signed with the configured secret (HS256 only).
    Token {
        #[arg(long)]
        org: remediator::lifecycle::OrganizationId,
        #[arg(long, default_value = "local-user")]
        sub: String,
        /// Scopes (repeatable); default: remediations:write and operations:read.
        #[arg(long)]
        scope: Vec<String>,
        /// Lifetime in seconds.
        #[arg(long, default_value_t = 3600)]
        ttl: u64,
    },
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let level = match cli.command {
        Command::Demo { verbose: false, .. } => DefaultLevel::Quiet,
        _ => DefaultLevel::Info,
    };
    remediator::telemetry::init(cli.log_format, level);
    match run(cli).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    let settings = Settings::load(cli.config.as_deref())?;
    match cli.command {
        Command::Demo { keep, .. } => commands::demo::run(settings, keep).await,
        Command::Dlq(command) => commands::dlq::run(&settings, command).await,
        Command::Doctor => doctor(&settings).await,
        Command::Migrate => migrate(&settings).await,
        Command::Intake { listen } => intake(settings, listen).await,
        Command::Worker { concurrency } => worker(settings, concurrency).await,
        Command::Import {
            file,
            project,
            max_bytes,
        } => import_file(&settings, &file, project, max_bytes).await,
        Command::Token {
            org,
            sub,
            scope,
            ttl,
        } => {
            let scopes = (!scope.is_empty()).then_some(scope);
            let token =
                commands::token::run(&settings, org, &sub, scopes, Duration::from_secs(ttl))?;
            println!("{token}");
            Ok(())
        }
    }
}

async fn doctor(settings: &Settings) -> anyhow::Result<()> {
    let (report, ready) = commands::doctor::run(settings).await;
    print!("{report}");
    if !ready {
        anyhow::bail!("this machine cannot run every lock tool (see above)");
    }
    Ok(())
}

async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    if remediator::db::create_database_if_missing(&settings.database).await? {
        println!("created the database");
    }
    let pool = remediator::db::pool(&settings.database)?;
    let applied = remediator::db::migrate(&pool).await?;
    if applied.is_empty() {
        println!("database is up to date");
    } else {
        println!(
            "applied {} migration(s): {}",
            applied.len(),
            applied.join(", ")
        );
    }
    Ok(())
}

async fn intake(settings: Settings, listen: Option<String>) -> anyhow::Result<()> {
    let address = listen.unwrap_or_else(|| settings.intake.listen.clone());
    let listener = tokio::net::TcpListener::bind(&address)
        .await
        .with_context(|| format!("listening on {address}"))?;
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    commands::intake::run(settings, listener, shutdown).await
}

async fn worker(mut settings: Settings, concurrency: Option<u16>) -> anyhow::Result<()> {
    if let Some(n) = concurrency {
        settings.worker.concurrency = n;
    }
    // libgit2's network timeouts are process-wide and must be set before any git work.
    // SAFETY: called once, before the worker starts any thread that uses git.
    unsafe {
        remediator::git::set_network_timeouts(
            Duration::from_secs(settings.git.http_timeout_secs),
            Duration::from_secs(settings.git.http_timeout_secs * 4),
        );
        let (cache, mapped) =
            remediator::worker::memory_budget::libgit2_limits(settings.worker.memory_budget_mib);
        remediator::git::limit_memory(cache, mapped);
    }
    let shutdown = Shutdown::new();
    shutdown.trigger_on_signals();
    commands::worker::run(settings, shutdown).await
}

async fn import_file(
    settings: &Settings,
    file: &Path,
    project: Option<remediator::lifecycle::ProjectId>,
    max_bytes: u64,
) -> anyhow::Result<()> {
    let text = import::read_file(file, max_bytes)?;
    // The worker's own URL and branch rules, so nothing it would refuse is stored.
    let rules = remediator::repository_admission::RepositoryRules::from_settings(settings);
    let document = import::parse_document(&text, project, &rules)
        .with_context(|| format!("importing {}", file.display()))?;
    let format = document.format;
    let pool = remediator::db::pool(&settings.database)?;
    remediator::db::ensure_migrated(&pool).await?;
    let summary = import::import_document(&pool, document).await?;
    let into = project.map_or_else(String::new, |p| format!(" into project {p}"));
    println!(
        "imported {} ({}){into}: {} record(s) read, {} created or changed",
        file.display(),
        format.name(),
        summary.read,
        summary.written
    );
    Ok(())
}
