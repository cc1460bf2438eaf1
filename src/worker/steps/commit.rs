//! Step `commit`: commits the clone as the lock step left it (the patch and the updated lock
//! files) on the remediation branch, with the title and body the pull request will carry.

use super::clone::Checkout;
use super::lock::Locked;
use crate::db::models::RemediationTarget;
use crate::forge::pr_text::{self, PrFacts};
use crate::git::CommitSpec;
use crate::lifecycle::{OperationId, Step};
use crate::worker::failure::StepFailure;
use crate::worker::patcher::ProposedPatch;
use crate::worker::pipeline::Pipeline;

/// The committed fix, and the text that describes it.
pub struct Committed {
    pub commit: git2::Oid,
    pub title: String,
    pub body: String,
    pub changed_files: Vec<String>,
}

pub async fn run(
    pipeline: &Pipeline,
    operation_id: OperationId,
    checkout: &Checkout,
    target: &RemediationTarget,
    patch: &ProposedPatch,
    locked: &Locked,
    branch: &str,
) -> Result<Committed, StepFailure> {
    let changed_files: Vec<String> = patch
        .edits
        .iter()
        .map(|e| e.path.clone())
        .chain(locked.changed.iter().map(|(path, _)| path.clone()))
        .collect();
    let facts = PrFacts {
        vulnerability_id: &target.vulnerability_id,
        aliases: &target.aliases,
        severity: &target.severity,
        summary: &target.summary,
        package: &target.package_name,
        ecosystem: &target.ecosystem,
        from_version: &target.installed_version,
        to_version: patch.target_version.as_deref(),
        changed_files: &changed_files,
        explanation: Some(&patch.explanation),
        operation_id: operation_id.0,
        written_by_llm: patch.model(),
        confidence: patch.confidence(),
    };
    let title = pr_text::title(&facts);
    let mut body = pr_text::body(&facts);
    if let Some(verification) = &locked.verification {
        body.push_str("\n\n");
        body.push_str(&verification.summary(&target.package_name));
    }
    if let Some(note) = &locked.note {
        body.push_str("\n\n");
        body.push_str(note);
    }
    if let Some(reason) = &locked.draft_reason {
        body.push_str(&format!("\n\n**Draft:** {reason}."));
    }
    let message = format!(
        "{title}\n\nRemediates {} in {} (operation {operation_id}).",
        target.vulnerability_id, target.package_name
    );
    let (root, branch, name, email) = (
        checkout.work_tree.clone(),
        branch.to_owned(),
        pipeline.author_name.clone(),
        pipeline.author_email.clone(),
    );
    let commit = checkout
        .git
        .run(Step::Commit, false, move || {
            // The lock step wrote the patch; the tool wrote the lock files.
            let repo = crate::git::open_clone(&root)?;
            crate::git::commit_all(
                &repo,
                &CommitSpec {
                    branch: &branch,
                    message: &message,
                    author_name: &name,
                    author_email: &email,
                },
            )
        })
        .await?;
    Ok(Committed {
        commit,
        title,
        body,
        changed_files,
    })
}
