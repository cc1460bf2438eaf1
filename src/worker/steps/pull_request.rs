//! Step `pull_request`: opens the pull request for the pushed branch, or reuses the branch's
//! open one. With a cap on open remediation pull requests per repository, the step's gate
//! counts the project's others under a per-project lock, so two jobs of one project cannot
//! both take the last place; at the cap only reuse is allowed.

use backon::Retryable;
use diesel_async::AsyncConnection;

use super::commit::Committed;
use super::{Running, StepDriver};
use crate::db::models::RemediationTarget;
use crate::db::{catalog, operations};
use crate::forge::{Forge, ForgeError, PullRequest, PullRequestSpec, ResolvedRepository};
use crate::lifecycle::Step;
use crate::worker::failure::StepFailure;
use crate::worker::pipeline::Pipeline;
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
    let (project, assessment, operation) = (
        target.project_id,
        target.assessment_id,
        driver.operation_id(),
    );
    let (gate, open) = conn
        .transaction(async |conn| {
            catalog::lock_project_pull_requests(conn, project).await?;
            let open = catalog::open_pull_requests(conn, project, assessment).await?;
            let gate = operations::start_step(conn, operation, STEP).await?;
            Ok::<_, diesel::result::Error>((gate, open))
        })
        .await
        .map_err(|e| StepFailure::from_database(STEP, e))?;
    let running = driver.enter(STEP, gate)?;
    Ok((running, (open >= i64::from(cap)).then_some(open)))
}

/// Opens the pull request, or reuses the branch's open one; `at_cap` allows reuse only.
pub async fn run(
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
