//! Step `commit`: commits the files the patch and the lock step changed, as the lock step left
//! them in the clone, on the remediation branch, with the title and body the pull request will
//! carry. Every other file keeps its content in `HEAD`: the tree is built in the object
//! database, not from a checkout.

use super::GitLoad;
use super::clone::Checkout;
use super::lock::Locked;
use super::test::Tested;
use crate::db::models::RemediationTarget;
use crate::git::CommitSpec;
use crate::lifecycle::fix_plan::FixPlan;
use crate::lifecycle::{OperationId, Step};
use crate::pr_text::{self, AdvisoryFacts, NotFixed, PrFacts};
use crate::worker::context::Pipeline;
use crate::worker::failure::StepFailure;
use crate::worker::patcher::ProposedPatch;

/// The committed fix, and the text that describes it.
pub struct Committed {
    pub commit: git2::Oid,
    pub title: String,
    pub body: String,
    pub changed_files: Vec<String>,
}

/// What is committed: the fix of the plan's advisories.
pub struct What<'a> {
    pub target: &'a RemediationTarget,
    pub plan: &'a FixPlan,
    pub patch: &'a ProposedPatch,
    pub locked: &'a Locked,
    pub tested: &'a Tested,
    pub branch: &'a str,
}

pub async fn run(
    pipeline: &Pipeline,
    operation_id: OperationId,
    checkout: &Checkout,
    what: What<'_>,
) -> Result<Committed, StepFailure> {
    let What {
        target,
        plan,
        patch,
        locked,
        tested,
        branch,
    } = what;
    // The patch's files, the lock files the tool wrote, and the LLM's repair of what the fix
    // broke (when it left no regression).
    let changed_files = with_repairs(fix_files(patch, locked), tested);
    // The triggering advisory is the plan's first; the others share the pull request.
    let also_fixes: Vec<AdvisoryFacts<'_>> = plan
        .covered
        .iter()
        .filter(|a| a.assessment_id != target.assessment_id)
        .map(AdvisoryFacts::from)
        .collect();
    let not_fixed: Vec<NotFixed<'_>> = plan.remaining.iter().map(NotFixed::from).collect();
    let facts = PrFacts {
        advisory: AdvisoryFacts::from(target),
        package: &target.facts.package_name,
        ecosystem: target.facts.ecosystem.as_str(),
        from_version: &target.facts.installed_version,
        to_version: patch.target_version.as_deref(),
        changed_files: &changed_files,
        explanation: Some(&patch.explanation),
        operation_id,
        written_by_llm: patch.model(),
        confidence: patch.confidence(),
        also_fixes: &also_fixes,
        not_fixed: &not_fixed,
        lock: locked.pr_facts(),
        tests: tested.report.as_ref(),
    };
    let title = pr_text::title(&facts);
    let body = pr_text::body(&facts);
    let message = format!(
        "{title}\n\nRemediates {} in {} (operation {operation_id}).",
        plan.advisory_ids().join(", "),
        target.facts.package_name
    );
    commit_text(
        pipeline,
        checkout,
        branch,
        title,
        body,
        changed_files,
        message,
    )
    .await
}

/// The files one package's fix changed: the patch's, then the lock files the tool wrote.
pub(crate) fn fix_files(patch: &ProposedPatch, locked: &Locked) -> Vec<String> {
    patch
        .edits
        .iter()
        .map(|e| e.path.clone())
        .chain(locked.changed.iter().map(|(path, _)| path.clone()))
        .collect()
}

/// `changed` and, after them, the files the LLM's repair changed (when it left no
/// regression), once each: the package and the grouped jobs commit both.
pub(crate) fn with_repairs(mut changed: Vec<String>, tested: &Tested) -> Vec<String> {
    add_new(&mut changed, tested.repaired_files.iter().cloned());
    changed
}

/// Appends the `paths` not in `changed` yet, in order.
pub(crate) fn add_new(changed: &mut Vec<String>, paths: impl IntoIterator<Item = String>) {
    for path in paths {
        if !changed.contains(&path) {
            changed.push(path);
        }
    }
}

/// Commits `changed_files` on `branch` with `message`; the pull request will carry `title` and
/// `body`. The package and the repository-grouped jobs both end here.
pub async fn commit_text(
    pipeline: &Pipeline,
    checkout: &Checkout,
    branch: &str,
    title: String,
    body: String,
    changed_files: Vec<String>,
    message: String,
) -> Result<Committed, StepFailure> {
    let (root, paths, branch, name, email) = (
        checkout.work_tree.clone(),
        changed_files.clone(),
        branch.to_owned(),
        pipeline.author_name.clone(),
        pipeline.author_email.clone(),
    );
    let commit = checkout
        .git
        .run(Step::Commit, GitLoad::FewObjects, move || {
            // The lock step wrote the patch; the tool wrote the lock files.
            let repo = crate::git::open_clone(&root)?;
            crate::git::commit_files(
                &repo,
                &paths,
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
