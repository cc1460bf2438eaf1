//! Step `pull_request`: opens the pull request for the pushed branch, or reuses the branch's
//! open one and, when the fix was raised or lists more advisories now, updates its title and
//! body; then records it on the package fix and releases the fix lock. With a cap on open
//! remediation pull requests per repository, the step's gate counts the project's other
//! package fixes whose pull request is open on the forge (merged and closed ones do not
//! count) under a per-project lock, so two jobs of one project cannot both take the last
//! place; at the cap only reuse is allowed.

use backon::Retryable;
use diesel_async::AsyncConnection;

use super::commit::Committed;
use super::{Running, StepDriver};
use crate::db::fixes::{self, RecordedPull};
use crate::db::models::RemediationTarget;
use crate::db::{catalog, operations};
use crate::forge::{Forge, ForgeError, PullRequest, PullRequestSpec, ResolvedRepository};
use crate::lifecycle::Step;
use crate::lifecycle::fix_plan::FixPlan;
use crate::lifecycle::{FixId, RemediationStatus};
use crate::worker::context::Pipeline;
use crate::worker::failure::StepFailure;
use crate::worker::fix_lock::FixLock;
use crate::worker::retry;

const STEP: Step = Step::PullRequest;

/// Passes the step's gate. Returns the count of the project's other open pull requests when
/// it is at the cap (then none may be opened), else `None`.
pub async fn begin(
    pipeline: &Pipeline,
    driver: &StepDriver<'_>,
    target: &RemediationTarget,
    repository: &ResolvedRepository,
) -> Result<(Running, Option<i64>), StepFailure> {
    let cap = pipeline.max_open_prs_per_repository;
    if cap == 0 || !repository.forge.opens_pull_requests() {
        return Ok((driver.begin(STEP).await?, None));
    }
    let mut conn = pipeline
        .pool
        .get()
        .await
        .map_err(|e| StepFailure::from_database(STEP, e))?;
    let (project, operation) = (target.project_id, driver.operation_id());
    let (ecosystem, package) = (&target.facts.ecosystem, target.facts.package_name.as_str());
    let (gate, open) = conn
        .transaction(async |conn| {
            catalog::lock_project_pull_requests(conn, project).await?;
            let open =
                fixes::open_pull_requests_elsewhere(conn, project, ecosystem, package).await?;
            let gate = operations::start_step(conn, operation, STEP).await?;
            Ok::<_, diesel::result::Error>((gate, open))
        })
        .await
        .map_err(|e| StepFailure::from_database(STEP, e))?;
    let running = driver.enter(STEP, gate)?;
    Ok((running, (open >= i64::from(cap)).then_some(open)))
}

/// The pull request of a finished job, as recorded on the package fix.
#[derive(Debug, Clone)]
pub struct Opened {
    pub fix_id: FixId,
    pub pull_request: Option<PullRequest>,
    /// The reused pull request's title and body were rewritten (new version or advisories).
    pub updated: bool,
}

/// Opens the pull request, or reuses (and if needed updates) the branch's open one; `at_cap`
/// allows reuse only. Records it on the fix and releases the lock, on every path.
pub async fn run(
    repository: &ResolvedRepository,
    spec: &PullRequestSpec,
    at_cap: Option<i64>,
    lock: FixLock,
    plan: &FixPlan,
) -> Result<Opened, StepFailure> {
    let opened = match open_or_update(repository, spec, at_cap, &lock, plan).await {
        Ok(opened) => opened,
        Err(failure) => {
            lock.release().await;
            return Err(failure);
        }
    };
    let advisories = plan.advisory_ids();
    let (pull_request, updated) = opened;
    let fix_id = lock.row.id;
    let number = pull_request
        .as_ref()
        .and_then(|p| i32::try_from(p.number).ok());
    let recorded = RecordedPull {
        forge: repository.forge.name(),
        branch: &spec.head_branch,
        state: if pull_request.is_some() {
            RemediationStatus::PrOpen
        } else {
            RemediationStatus::BranchPushed
        },
        target_version: plan.target_version.as_deref(),
        advisories: &advisories,
        pr_number: number,
        pr_url: pull_request.as_ref().map(|p| p.url.as_str()),
    };
    lock.record(&recorded, STEP).await?;
    Ok(Opened {
        fix_id,
        pull_request,
        updated,
    })
}

async fn open_or_update(
    repository: &ResolvedRepository,
    spec: &PullRequestSpec,
    at_cap: Option<i64>,
    lock: &FixLock,
    plan: &FixPlan,
) -> Result<(Option<PullRequest>, bool), StepFailure> {
    let pull = open_or_reuse(repository, spec, at_cap).await?;
    let Some(pull) = pull else {
        return Ok((None, false));
    };
    // Only a pull request this fix recorded is rewritten, and only when what it says changed:
    // a rerun of the same job leaves it (and anything a person edited in it) alone.
    let ours = lock.row.pr_number.and_then(|n| u64::try_from(n).ok()) == Some(pull.number);
    let changed = lock.row.pull_request.target_version.as_deref() != plan.target_version.as_deref()
        || lock.row.advisories != plan.advisory_ids();
    if pull.reused && ours && changed {
        with_retries(|| repository.forge.update_pull_request(spec, pull.number)).await?;
        tracing::info!(
            number = pull.number,
            target_version = plan.target_version.as_deref().unwrap_or("-"),
            "updated the package's open pull request"
        );
        return Ok((Some(pull), true));
    }
    Ok((Some(pull), false))
}

async fn open_or_reuse(
    repository: &ResolvedRepository,
    spec: &PullRequestSpec,
    at_cap: Option<i64>,
) -> Result<Option<PullRequest>, StepFailure> {
    let Some(open) = at_cap else {
        return with_retries(|| repository.forge.open_or_reuse(spec)).await;
    };
    match with_retries(|| repository.forge.find_open_pull_request(spec)).await? {
        Some(pull) => {
            tracing::info!(
                number = pull.number,
                open,
                "at the open pull request cap; reusing this branch's pull request"
            );
            Ok(Some(pull))
        }
        None => Err(StepFailure::permanent(
            STEP,
            format!(
                "repository {} already has {open} open remediation pull requests \
                 (max_open_prs_per_repository); merge or close some, then retry",
                repository.url.path
            ),
        )),
    }
}

/// The pull request to open for the branch.
pub fn spec(
    pipeline: &Pipeline,
    repository: &ResolvedRepository,
    target: &RemediationTarget,
    branch: &str,
    committed: &Committed,
    draft: bool,
) -> PullRequestSpec {
    let (owner, name) = match repository.url.owner_and_name() {
        Some((owner, name)) => (owner.to_owned(), name.to_owned()),
        None => (String::new(), repository.url.path.clone()),
    };
    PullRequestSpec {
        owner,
        repo: name,
        head_branch: branch.to_owned(),
        base_branch: target.default_branch.clone(),
        title: committed.title.clone(),
        body: committed.body.clone(),
        labels: pipeline.pr_labels.clone(),
        draft,
    }
}

/// A forge call, retried in place while it fails transiently (honouring `Retry-After`).
async fn with_retries<T, F, Fut>(call: F) -> Result<T, StepFailure>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ForgeError>>,
{
    call.retry(retry::in_place())
        .when(|e| e.is_transient())
        .adjust(|e, delay| retry::honour_retry_after(e.retry_after(), delay))
        .notify(|e, delay| tracing::warn!(error = %e, ?delay, "forge call failed; retrying"))
        .await
        .map_err(|e| StepFailure::from_forge(STEP, e))
}
