//! Step `write_back`: what the finished job records. The runner commits the operation's
//! output and the `remediation_*` fields of every assessment the pull request covers
//! together, in one transaction, before it acks (invariant 5).

use serde_json::json;

use super::lock::Locked;
use super::test::Tested;
use crate::db::fixes::CoveredWriteBack;
use crate::forge::Forge;
use crate::git::PushOutcome;
use crate::lifecycle::RemediationStatus;
use crate::lifecycle::fix_plan::FixPlan;
use crate::pr_text::LabelledLine;
use crate::worker::confidence::{self, Evidence};
use crate::worker::patcher::ProposedPatch;
use crate::worker::publish::Published;

/// A finished job: what goes into the operation's output and onto the assessments.
#[derive(Debug, Clone)]
pub struct JobSuccess {
    pub output: serde_json::Value,
    pub write_back: CoveredWriteBack,
}

pub struct Finished<'a> {
    pub published: Published,
    pub branch: String,
    pub patch: ProposedPatch,
    pub locked: Locked,
    pub tested: Tested,
    pub plan: &'a FixPlan,
    pub timings: serde_json::Value,
}

pub fn success(done: Finished<'_>) -> JobSuccess {
    let Finished {
        published:
            Published {
                repository,
                committed,
                pushed,
                opened,
            },
        branch,
        patch,
        locked,
        tested,
        plan,
        timings,
    } = done;
    let pr = opened.pull_request.as_ref();
    let score = confidence::assess(Evidence {
        author: patch.confidence(),
        locks: &[locked.verification.as_ref()],
        tests: tested.report.as_ref(),
    });
    let remaining: Vec<serde_json::Value> = plan
        .remaining
        .iter()
        .map(|r| json!({"vulnerability_id": r.advisory.vulnerability_id, "assessment_id": r.advisory.assessment_id, "reason": r.reason}))
        .collect();
    let mut output = json!({
        "pr_url": pr.map(|p| p.url.clone()),
        "pr_number": pr.map(|p| p.number),
        "pr_reused": pr.map(|p| p.reused),
        "pr_updated": opened.updated,
        "branch": branch,
        "commit": committed.commit.to_string(),
        "push": match pushed { PushOutcome::Pushed => "pushed", PushOutcome::AlreadyUpToDate => "already_up_to_date" },
        "forge": repository.forge.name(),
        "target_version": patch.target_version,
        "advisories": plan.advisory_ids(),
        "covered_assessments": plan.covered_ids(),
        "remaining": remaining,
        "changed_files": committed.changed_files,
        "explanation": patch.explanation,
        "timings_ms": timings,
        "verification": locked.verification,
        "draft_reason": draft_reason(&locked, &tested),
        "tests": tested.report,
        "remediation_confidence": score,
        "strategy_note": LabelledLine::plain(&locked.strategy_lines),
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
        write_back: CoveredWriteBack {
            fix_id: opened.fix_id,
            assessments: plan.covered_ids(),
            branch,
            pr_url: pr.map(|p| p.url.clone()),
            pr_number: pr.and_then(|p| i32::try_from(p.number).ok()),
            status: if pr.is_some() {
                RemediationStatus::PrOpen
            } else {
                RemediationStatus::BranchPushed
            },
            confidence: score.value,
        },
    }
}

impl JobSuccess {
    /// Scores the job again from `evidence`: a grouped job's combined lock result carries no
    /// check of its own, so it passes the check of every package it moved.
    pub fn rescore(&mut self, evidence: Evidence<'_>) {
        let score = confidence::assess(evidence);
        self.write_back.confidence = score.value;
        if let Some(output) = self.output.as_object_mut() {
            output.insert("remediation_confidence".to_owned(), json!(score));
        }
    }
}

/// Why the pull request is a draft: the lock step's reason, then the test step's.
fn draft_reason(locked: &Locked, tested: &Tested) -> Option<String> {
    let reasons: Vec<&str> = [&locked.draft_reason, &tested.draft_reason]
        .into_iter()
        .flatten()
        .map(String::as_str)
        .collect();
    (!reasons.is_empty()).then(|| reasons.join("; "))
}
