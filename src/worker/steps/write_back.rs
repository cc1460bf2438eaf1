//! Step `write_back`: what the finished job records. The runner commits the operation's
//! output and the assessment's `remediation_*` fields together, in one transaction, before
//! it acks (invariant 5).

use serde_json::json;

use super::commit::Committed;
use super::lock::Locked;
use crate::db::catalog::RemediationWriteBack;
use crate::forge::{Forge, PullRequest, ResolvedRepository};
use crate::git::PushOutcome;
use crate::lifecycle::RemediationStatus;
use crate::worker::patcher::ProposedPatch;

/// A finished job: what goes into the operation's output and onto the assessment.
#[derive(Debug, Clone)]
pub struct JobSuccess {
    pub output: serde_json::Value,
    pub write_back: RemediationWriteBack,
}

pub struct Finished<'a> {
    pub repository: &'a ResolvedRepository,
    pub branch: String,
    pub committed: Committed,
    pub pushed: PushOutcome,
    pub patch: ProposedPatch,
    pub locked: Locked,
    pub pull_request: Option<PullRequest>,
    pub timings: serde_json::Value,
}

pub fn success(done: Finished<'_>) -> JobSuccess {
    let Finished {
        repository,
        branch,
        committed,
        pushed,
        patch,
        locked,
        pull_request,
        timings,
    } = done;
    let pr = pull_request.as_ref();
    let mut output = json!({
        "pr_url": pr.map(|p| p.url.clone()),
        "pr_number": pr.map(|p| p.number),
        "pr_reused": pr.map(|p| p.reused),
        "branch": branch,
        "commit": committed.commit.to_string(),
        "push": match pushed { PushOutcome::Pushed => "pushed", PushOutcome::AlreadyUpToDate => "already_up_to_date" },
        "forge": repository.forge.name(),
        "target_version": patch.target_version,
        "changed_files": committed.changed_files,
        "explanation": patch.explanation,
        "timings_ms": timings,
        "verification": locked.verification,
        "draft_reason": locked.draft_reason,
        "strategy_note": locked.note,
    });
    if let (Some(out), Some(extra)) = (output.as_object_mut(), patch.describe().as_object()) {
        out.extend(extra.clone());
        // The lock step may have had to change the strategy (an override).
        if let Some(strategy) = locked.strategy {
            out.insert("strategy".to_owned(), json!(strategy));
        }
    }
    JobSuccess {
        output,
        write_back: RemediationWriteBack {
            remediation_branch_name: Some(branch),
            remediation_pr_url: pr.map(|p| p.url.clone()),
            remediation_pr_number: pr.and_then(|p| i32::try_from(p.number).ok()),
            remediation_status: Some(if pr.is_some() {
                RemediationStatus::PrOpen
            } else {
                RemediationStatus::BranchPushed
            }),
            remediation_confidence: Some(patch.confidence().unwrap_or(1.0)),
        },
    }
}
