//! The worker's LLM rounds against a real OpenAI-compatible server, for `scripts/llm-smoke`:
//! the settings as the worker loads them (`config/default.toml`, then `--config FILE`, then
//! `REMEDIATOR__LLM__*`), the context the worker selects from a small npm repository with a
//! vulnerable lodash, and the same loop as the worker's generate step: one job budget, a call,
//! the answer parsed and applied, the error sent back for a repair round, up to `max_rounds`.
//! It prints, per call, what the server accepted (response format, streaming), how long the
//! model took and what it produced, then the outcome: an applicable answer, or the clean
//! failure a job would record. It exits non-zero only when a call itself failed (timed out,
//! refused, unreachable).
//!
//! Usage: cargo run --example llm_smoke -- [--config FILE]

use std::path::PathBuf;

use remediator::config::Settings;
use remediator::egress::EgressPolicy;
use remediator::llm::{
    CallStats, Conversation, DirFiles, LlmClient, LlmError, VulnerabilityFacts, materialize,
    parse_answer, select_context,
};

const PACKAGE_JSON: &str = r#"{
  "name": "smoke-storefront",
  "version": "1.0.0",
  "private": true,
  "dependencies": {
    "express": "^4.18.2",
    "lodash": "^4.17.20"
  }
}
"#;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let config = match (args.next().as_deref(), args.next()) {
        (Some("--config"), Some(file)) => Some(PathBuf::from(file)),
        (None, _) => None,
        _ => anyhow::bail!("usage: llm_smoke [--config FILE]"),
    };
    let settings = Settings::load(config.as_deref())?;
    anyhow::ensure!(
        settings.llm.enabled(),
        "no LLM configured: set REMEDIATOR__LLM__BASE_URL (and REMEDIATOR__LLM__MODEL)"
    );
    let llm = settings.llm.client.clone();
    println!(
        "endpoint {} model {} stream={} idle_timeout={}s call_deadline={}s job_budget={}s \
         max_completion_tokens={} reasoning={}",
        llm.base_url,
        llm.model,
        llm.stream,
        llm.idle_timeout_secs,
        llm.call_deadline().as_secs(),
        llm.job_budget_secs,
        llm.max_completion_tokens,
        llm.is_reasoning_model()
    );
    // The server runs on loopback next to the script.
    let client = LlmClient::new(llm, EgressPolicy::new(true))?;

    let repo = tempfile::tempdir()?;
    std::fs::write(repo.path().join("package.json"), PACKAGE_JSON)?;
    std::fs::write(repo.path().join("README.md"), "# smoke storefront\n")?;
    let facts = VulnerabilityFacts {
        id: "GHSA-35jh-r3h4-6jhm".to_owned(),
        aliases: vec!["CVE-2021-23337".to_owned()],
        severity: "HIGH".to_owned(),
        summary: "Command Injection in lodash".to_owned(),
        package: "lodash".to_owned(),
        ecosystem: remediator::ecosystem::Ecosystem::Npm,
        installed_version: "4.17.20".to_owned(),
        fixed_versions: vec!["4.17.21".to_owned()],
        target_version: Some("4.17.21".to_owned()),
    };
    let files = select_context(
        &DirFiles(repo.path()),
        &facts,
        client.settings().max_context_chars,
    )?;
    let mut conversation = Conversation::start(&facts, &files);
    let budget = client.job_budget();
    let read = |path: &str| std::fs::read_to_string(repo.path().join(path)).ok();
    let rounds = client.settings().max_rounds.max(1);
    for round in 1..=rounds {
        let (stats, content, problem) = match client.complete_within(&conversation, &budget).await {
            Ok(completion) => {
                let problem = parse_answer(&completion.content)
                    .and_then(|answer| materialize(&answer.edits, read).map(|_| ()))
                    .err();
                (completion.stats, completion.content, problem)
            }
            Err(LlmError::Truncated { completion, .. }) => (
                completion.stats.clone(),
                completion.content.clone(),
                Some("cut off at the completion token limit".to_owned()),
            ),
            Err(error) => {
                println!("round {round}: the call failed: {error}");
                println!("RESULT: call-failed");
                std::process::exit(2);
            }
        };
        print_call(round, &stats);
        match problem {
            None => {
                println!("answer:\n{content}");
                println!("RESULT: answer-applies");
                return Ok(());
            }
            Some(problem) => {
                let shown: String = content.chars().take(300).collect();
                println!("  answer refused: {problem}\n  answer began: {shown:?}");
                conversation.add_repair(&content, &problem);
            }
        }
    }
    println!("RESULT: no-acceptable-answer (a clean failure: the answer did not parse or apply)");
    Ok(())
}

fn print_call(round: u32, stats: &CallStats) {
    println!(
        "round {round}: response_format={} streamed={} finish_reason={} elapsed={:.1}s \
         first_token={} chunks={} completion_tokens={} reasoning_chars={}",
        stats.response_format,
        stats.streamed,
        stats.finish_reason.as_deref().unwrap_or("-"),
        stats.elapsed_ms as f64 / 1000.0,
        stats
            .first_token_ms
            .map_or("-".to_owned(), |ms| format!("{:.1}s", ms as f64 / 1000.0)),
        stats.chunks,
        stats.completion_tokens,
        stats.reasoning_chars
    );
}
