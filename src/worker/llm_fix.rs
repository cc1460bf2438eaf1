//! The LLM rounds: ask for edits, build the patch ourselves, check it against the policy, and
//! on any problem send the precise error back, up to `max_rounds` calls. The model's answer is
//! data: it only ever becomes file edits that go through the same policy as a bump.

use std::path::{Path, PathBuf};

use super::failure::{Retry, StepFailure};
use super::git_work::{GitLoad, GitWork};
use super::patcher::{PatchAuthor, ProposedPatch, existing_entry};
use crate::db::models::Step;
use crate::llm::{
    CallStats, ContextFile, Conversation, HeadFiles, LlmClient, LlmError, TimeLimit, Usage,
    VulnerabilityFacts, materialize, parse_answer, select_context,
};
use crate::patch::{FileEdit, PatchPolicy};

pub async fn generate(
    llm: &LlmClient,
    policy: &PatchPolicy,
    root: &Path,
    git: &GitWork,
    facts: &VulnerabilityFacts,
    target_version: Option<String>,
) -> Result<ProposedPatch, StepFailure> {
    let files = read_context(llm, root, git, facts).await?;
    let mut conversation = Conversation::start(facts, &files);
    let max_rounds = llm.settings().max_rounds.max(1);
    // One budget for every call of this job, in-place retries included.
    let budget = llm.job_budget();
    let mut usage = Usage::default();
    let mut calls: Vec<CallStats> = Vec::new();
    let mut last_error = String::new();
    for round in 1..=max_rounds {
        let answer = super::retry::ask_model(llm, &conversation, &budget).await;
        let completion = match answer {
            Ok(completion) => completion,
            Err(LlmError::Truncated { completion, .. }) => {
                usage.add(completion.usage);
                calls.push(completion.stats.clone());
                last_error = "the answer was cut off at the token limit".to_owned();
                conversation.add_repair(
                    &completion.content,
                    "your answer was cut off at the token limit; answer with smaller edits",
                );
                continue;
            }
            Err(error) => return Err(call_failed(&error, &calls)),
        };
        usage.add(completion.usage);
        calls.push(completion.stats.clone());
        let model = completion.model.clone();
        match build_patch(root, policy, &completion.content).await? {
            Ok((edits, confidence, explanation)) => {
                return Ok(ProposedPatch {
                    edits,
                    author: PatchAuthor::Llm {
                        model,
                        rounds: round,
                        usage,
                        confidence,
                        calls,
                    },
                    target_version,
                    explanation,
                });
            }
            Err(problem) => {
                tracing::info!(round, %problem, "model answer refused; asking for a repair");
                conversation.add_repair(&completion.content, &problem);
                last_error = problem;
            }
        }
    }
    Err(StepFailure::permanent(
        Step::Generate,
        format!(
            "the model gave no acceptable patch in {max_rounds} round(s) ({}); last problem: \
             {last_error}",
            model_time(&calls, &usage)
        ),
    ))
}

/// The files the model is shown, read from the object database (the clone wrote only the
/// lock tools' files to disk) as git work under the memory budget: reading every file of a
/// big tree fills libgit2's pack caches as a fetch does.
async fn read_context(
    llm: &LlmClient,
    root: &Path,
    git: &GitWork,
    facts: &VulnerabilityFacts,
) -> Result<Vec<ContextFile>, StepFailure> {
    let max_chars = llm.settings().max_context_chars;
    let root = root.to_path_buf();
    let facts = facts.clone();
    let files = git
        .run(Step::Generate, GitLoad::WholePack, move || {
            let repo = crate::git::open_clone(&root)?;
            let files =
                HeadFiles::open(&repo).and_then(|head| select_context(&head, &facts, max_chars));
            files.map_err(|e| {
                crate::git::GitError::Transient(format!("reading the repository: {e}"))
            })
        })
        .await?;
    Ok(files)
}

/// The step's failure when the model could not be asked, and whether a later attempt may
/// get an answer.
fn call_failed(error: &LlmError, calls: &[CallStats]) -> StepFailure {
    let retry = match error {
        // The server went silent: maybe overloaded; a later attempt may work.
        LlmError::TimedOut {
            limit: TimeLimit::Idle,
            ..
        } => Retry::Transient { after: None },
        // The model was still producing: the same budget would end the same way.
        LlmError::TimedOut { .. } => Retry::Permanent,
        _ if error.is_transient() => Retry::Transient {
            after: error.retry_after(),
        },
        _ => Retry::Permanent,
    };
    StepFailure {
        step: Step::Generate,
        retry,
        message: format!("LLM call failed: {error}{}", earlier_calls(calls)),
    }
}

/// "the model took 182.4s over 3 call(s) and produced 2,513 tokens", for the history.
fn model_time(calls: &[CallStats], usage: &Usage) -> String {
    let millis: u64 = calls.iter().map(|c| c.elapsed_ms).sum();
    let produced = if usage.completion_tokens > 0 {
        format!("{} tokens", usage.completion_tokens)
    } else {
        format!(
            "{} chunks of text",
            calls.iter().map(|c| c.chunks).sum::<u64>()
        )
    };
    format!(
        "the model took {:.1}s over {} call(s) and produced {produced}",
        millis as f64 / 1000.0,
        calls.len()
    )
}

/// What the calls before a failed one cost, when there were any.
fn earlier_calls(calls: &[CallStats]) -> String {
    if calls.is_empty() {
        return String::new();
    }
    let tokens = calls.iter().map(|c| c.completion_tokens).sum();
    let usage = Usage {
        completion_tokens: tokens,
        ..Usage::default()
    };
    format!(" (before it, {})", model_time(calls, &usage))
}

type Built = (Vec<FileEdit>, f64, String);

/// Parses an answer and turns it into checked edits. The inner error is a problem with the
/// answer (sent back to the model); the outer one a failure of ours (reading the clone).
async fn build_patch(
    root: &Path,
    policy: &PatchPolicy,
    raw: &str,
) -> Result<Result<Built, String>, StepFailure> {
    let answer = match parse_answer(raw) {
        Ok(answer) => answer,
        Err(problem) => return Ok(Err(problem)),
    };
    let root: PathBuf = root.to_path_buf();
    let policy = policy.clone();
    tokio::task::spawn_blocking(move || -> Result<Result<Built, String>, StepFailure> {
        let repo =
            crate::git::open_clone(&root).map_err(|e| StepFailure::from_git(Step::Generate, e))?;
        let read = |path: &str| crate::git::read_file(&repo, path).ok().flatten();
        let changed = match materialize(&answer.edits, read) {
            Ok(changed) => changed,
            Err(problem) => return Ok(Err(problem)),
        };
        let mut edits = Vec::with_capacity(changed.len());
        for (path, original, updated) in changed {
            let existing = existing_entry(&repo, &path)?;
            edits.push(FileEdit {
                path,
                existing,
                original,
                updated,
            });
        }
        if let Err(violation) = policy.check(&edits) {
            return Ok(Err(violation.to_string()));
        }
        Ok(Ok((edits, answer.confidence, answer.explanation)))
    })
    .await
    .map_err(|e| StepFailure::transient(Step::Generate, format!("patch task failed: {e}")))?
}
