//! `remediator dlq list | show | replay | purge`: the dead-letter queue for operators.

use std::io::{BufRead, Write};
use std::time::Duration;

use crate::lifecycle::{OperationId, ProjectId};
use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use crate::config::Settings;
use crate::db::{self, operations};
use crate::queue::dead_letters::{DeadLetter, DeadLetterQueue, DeadLetterReason, Filter};
use crate::queue::topology::Topology;

#[derive(Debug, Subcommand)]
pub enum DlqCommand {
    /// List dead-lettered jobs (they stay in the queue).
    List {
        #[command(flatten)]
        filter: FilterArgs,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one dead-lettered job: message, headers and the operation's history.
    Show { operation_id: OperationId },
    /// Put jobs back on the work queue (operation back to PENDING, fresh attempt count).
    Replay {
        #[command(flatten)]
        selection: Selection,
        /// At most this many replays per second.
        #[arg(long)]
        rate: Option<f64>,
    },
    /// Discard jobs for good (recorded on their operations).
    Purge {
        #[command(flatten)]
        selection: Selection,
        /// Do not ask for confirmation.
        #[arg(long)]
        yes: bool,
    },
}

/// The jobs a replay or purge acts on, and who acts.
#[derive(Debug, Args)]
pub struct Selection {
    /// Operation ids to act on.
    operation_ids: Vec<OperationId>,
    #[command(flatten)]
    filter: FilterArgs,
    /// Act on every job that matches the filters (required when no id is given).
    #[arg(long)]
    all: bool,
    /// Who acts, for the operation's history (default: $USER).
    #[arg(long)]
    by: Option<String>,
}

impl Selection {
    /// Refuses a selection that names nothing: acting on the whole queue takes `--all`.
    fn check(&self, verb: &str) -> anyhow::Result<()> {
        if self.operation_ids.is_empty() && !self.all {
            bail!("name the operations to {verb}, or pass --all (with filters to narrow it)");
        }
        Ok(())
    }

    /// Whether it is the whole queue: no id and no filter.
    fn is_everything(&self) -> bool {
        self.operation_ids.is_empty() && self.filter.is_empty()
    }

    fn to_filter(&self) -> Filter {
        self.filter.to_filter(self.operation_ids.clone())
    }
}

#[derive(Debug, Args, Clone, Default)]
pub struct FilterArgs {
    /// Only jobs dead-lettered for this reason (max_attempts, crashed, unparseable,
    /// unknown_operation, delivery_limit; any other is matched as written).
    #[arg(long)]
    pub reason: Option<DeadLetterReason>,
    /// Only jobs of this project.
    #[arg(long)]
    pub project: Option<ProjectId>,
    /// Only jobs dead-lettered longer ago than this (30s, 10m, 2h, 1d).
    #[arg(long, value_parser = parse_age)]
    pub older_than: Option<Duration>,
}

impl FilterArgs {
    fn to_filter(&self, ids: Vec<OperationId>) -> Filter {
        Filter {
            operation_ids: ids,
            reason: self.reason.clone(),
            project: self.project,
            older_than: self.older_than,
        }
    }

    fn is_empty(&self) -> bool {
        self.reason.is_none() && self.project.is_none() && self.older_than.is_none()
    }
}

pub fn parse_age(text: &str) -> Result<Duration, String> {
    let (number, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = number
        .parse()
        .map_err(|_| format!("expected a duration like 30s, 10m, 2h or 1d, got {text:?}"))?;
    let secs = match unit {
        "s" | "" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86_400,
        _ => {
            return Err(format!(
                "unknown unit {unit:?} in {text:?}; use s, m, h or d"
            ));
        }
    };
    Ok(Duration::from_secs(secs))
}

fn who(by: Option<String>) -> String {
    by.or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "unknown operator".to_owned())
}

pub async fn run(settings: &Settings, command: DlqCommand) -> anyhow::Result<()> {
    let pool = db::pool(&settings.database)?;
    let queue = DeadLetterQueue::open(
        &settings.amqp.url,
        Topology::new(&settings.amqp),
        pool.clone(),
    )
    .await?;
    let result = execute(&queue, &pool, command).await;
    queue.close().await;
    result
}

async fn execute(
    queue: &DeadLetterQueue,
    pool: &db::DbPool,
    command: DlqCommand,
) -> anyhow::Result<()> {
    match command {
        DlqCommand::List { filter, json } => list(queue, &filter, json).await,
        DlqCommand::Show { operation_id } => show(queue, pool, operation_id).await,
        DlqCommand::Replay { selection, rate } => replay(queue, selection, rate).await,
        DlqCommand::Purge { selection, yes } => purge(queue, selection, yes).await,
    }
}

async fn list(queue: &DeadLetterQueue, filter: &FilterArgs, json: bool) -> anyhow::Result<()> {
    let listed = queue.list(&filter.to_filter(Vec::new())).await?;
    if json {
        println!("{}", serde_json::to_string_pretty(&listed)?);
    } else {
        print_table(&listed);
    }
    Ok(())
}

async fn show(
    queue: &DeadLetterQueue,
    pool: &db::DbPool,
    operation_id: OperationId,
) -> anyhow::Result<()> {
    let filter = Filter {
        operation_ids: vec![operation_id],
        ..Default::default()
    };
    let dead = queue
        .list(&filter)
        .await?
        .into_iter()
        .next()
        .with_context(|| format!("operation {operation_id} is not in the dead-letter queue"))?;
    let mut conn = pool.get().await?;
    let history = operations::history(&mut conn, operation_id).await?;
    let operation = operations::get(&mut conn, operation_id, None).await?;
    let shown = serde_json::json!({
        "message": dead,
        "operation": operation.map(crate::api::operations::OperationView::from),
        "history": history,
    });
    println!("{}", serde_json::to_string_pretty(&shown)?);
    Ok(())
}

async fn replay(
    queue: &DeadLetterQueue,
    selection: Selection,
    rate: Option<f64>,
) -> anyhow::Result<()> {
    selection.check("replay")?;
    let taken = queue.take_all().await?;
    let started = std::time::Instant::now();
    let summary = queue
        .replay(taken, &selection.to_filter(), &who(selection.by), rate)
        .await?;
    println!(
        "replayed {} job(s) in {:.2}s",
        summary.replayed.len(),
        started.elapsed().as_secs_f64()
    );
    for (id, why) in &summary.skipped {
        println!(
            "skipped {}: {why}",
            id.map_or("-".to_owned(), |id| id.to_string())
        );
    }
    Ok(())
}

async fn purge(queue: &DeadLetterQueue, selection: Selection, yes: bool) -> anyhow::Result<()> {
    selection.check("purge")?;
    let taken = queue.take_all().await?;
    let filter = selection.to_filter();
    let count = taken.count(&filter);
    if !yes && !confirm(count, selection.is_everything())? {
        queue.give_back(taken.into_deliveries()).await;
        println!("nothing purged");
        return Ok(());
    }
    let purged = queue.purge(taken, &filter, &who(selection.by)).await?;
    println!("purged {purged} job(s)");
    Ok(())
}

fn confirm(count: usize, everything: bool) -> anyhow::Result<bool> {
    let scope = if everything { " (the whole queue)" } else { "" };
    print!(
        "This discards {count} dead-lettered job(s){scope} for good. Type 'purge' to continue: "
    );
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(answer.trim() == "purge")
}

fn print_table(items: &[DeadLetter]) {
    println!(
        "{:<36}  {:<18}  {:>8}  {:>7}  {:<36}  LAST ERROR",
        "OPERATION", "REASON", "AGE", "ATTEMPT", "PROJECT"
    );
    for d in items {
        let age = d.dead_at.map_or("-".to_owned(), |at| {
            let secs = (chrono::Utc::now() - at).num_seconds().max(0);
            match secs {
                s if s < 120 => format!("{s}s"),
                s if s < 7200 => format!("{}m", s / 60),
                s => format!("{}h", s / 3600),
            }
        });
        let error: String = d
            .last_error
            .clone()
            .unwrap_or_default()
            .chars()
            .take(80)
            .collect();
        println!(
            "{:<36}  {:<18}  {:>8}  {:>7}  {:<36}  {}",
            d.operation_id.map_or("-".to_owned(), |id| id.to_string()),
            d.reason,
            age,
            d.attempt.map_or("-".to_owned(), |a| a.to_string()),
            d.project_id.map_or("-".to_owned(), |id| id.to_string()),
            error
        );
    }
    println!("{} job(s)", items.len());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_parse_with_units() {
        assert_eq!(parse_age("30s"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_age("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_age("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_age("1d"), Ok(Duration::from_secs(86_400)));
        assert!(parse_age("ten").is_err());
        assert!(parse_age("5y").is_err());
    }
}
