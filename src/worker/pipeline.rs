//! The steps of one remediation job, each recorded on the operation as it starts and each safe
//! to run again: clone -> context/generate -> check -> commit -> push -> pull request. The
//! final write-back and status change are committed by the runner, together, before the ack.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use backon::Retryable;
use serde_json::json;
use tokio::sync::Semaphore;
use uuid::Uuid;

use super::failure::{Retry, StepFailure};
use super::patcher::{Patcher, ProposedPatch};
use crate::db::catalog::{self, RemediationWriteBack};
use crate::db::models::{AssessmentStatus, RemediationTarget, Step};
use crate::db::operations::StepGate;
use crate::db::{DbPool, operations};
use crate::forge::pr_text::{self, PrFacts};
use crate::forge::{Forge, ForgeRegistry, PullRequestSpec, ResolvedRepository};
use crate::git::{CommitSpec, GitAuth, PushOutcome, ScratchDir};
use diesel_async::AsyncConnection;

pub struct Pipeline {
    pub pool: DbPool,
    pub forges: ForgeRegistry,
    pub patcher: Patcher,
    pub scratch_root: PathBuf,
    pub author_name: String,
    pub author_email: String,
    pub pr_labels: Vec<String>,
    pub draft_below_confidence: f64,
    /// Open remediation pull requests per project before new ones are refused; 0: no cap.
    pub max_open_prs_per_repository: u32,
    /// Clones and pushes running at once in this process. libgit2 holds tens of MiB per pack
    /// it works on, so this, not the job concurrency, bounds a worker's memory; jobs waiting
    /// on the LLM or the forge hold no slot.
    pub git_slots: Arc<Semaphore>,
}

/// A finished job: what goes into the operation's output and onto the assessment.
#[derive(Debug, Clone)]
pub struct JobSuccess {
    pub output: serde_json::Value,
    pub write_back: RemediationWriteBack,
}

/// Step durations, kept in the operation output so slow steps are visible per job.
#[derive(Default)]
struct Timings(Vec<(Step, u128)>);

impl Timings {
    fn record(&mut self, step: Step, started: Instant) {
        let elapsed = started.elapsed();
        crate::metrics::step_duration(step.as_str(), elapsed);
        self.0.push((step, elapsed.as_millis()));
    }

    fn to_json(&self) -> serde_json::Value {
        let map: serde_json::Map<String, serde_json::Value> = self
            .0
            .iter()
            .map(|(step, ms)| (step.as_str().to_owned(), json!(ms)))
            .collect();
        serde_json::Value::Object(map)
    }
}

impl Pipeline {
    pub async fn run(&self, operation_id: Uuid) -> Result<JobSuccess, StepFailure> {
        let mut timings = Timings::default();
        let target = self.load_target(operation_id).await?;
        let branch = pr_text::branch_name(&target.vulnerability_id, &target.package_name);

        let started = self.step(operation_id, Step::Clone).await?;
        let repository = self
            .forges
            .resolve(&target.repository_url)
            .map_err(|e| StepFailure::from_forge(Step::Clone, e))?;
        let auth = GitAuth {
            username: repository.credentials.username.clone(),
            token: repository.credentials.token.clone(),
            ssh_key_file: repository.credentials.ssh_key_file.clone(),
        };
        // Before libgit2 connects anywhere: the remote must not be a private address.
        crate::git::check_remote(self.forges.egress(), &repository.url)
            .await
            .map_err(|e| StepFailure::from_git(Step::Clone, e))?;
        let scratch = ScratchDir::new_in(&self.scratch_root)
            .map_err(|e| StepFailure::from_git(Step::Clone, e))?;
        let work_tree = scratch.path().join("repo");
        {
            let (url, branch, dest, auth) = (
                repository.url.as_str().to_owned(),
                target.default_branch.clone(),
                work_tree.clone(),
                auth.clone(),
            );
            let clone = || {
                let (url, branch, dest, auth) =
                    (url.clone(), branch.clone(), dest.clone(), auth.clone());
                blocking(Step::Clone, move || {
                    // A failed try may leave a partial clone behind.
                    if dest.exists() {
                        let _ = std::fs::remove_dir_all(&dest);
                    }
                    crate::git::clone_default_branch(&url, &branch, &dest, &auth).map(|_| ())
                })
            };
            let _slot = self.git_slot(Step::Clone).await?;
            clone
                .retry(super::retry::in_place())
                .when(StepFailure::is_transient)
                .notify(|e, delay| tracing::warn!(error = %e, ?delay, "clone failed; retrying"))
                .await?;
        }
        timings.record(Step::Clone, started);

        let started = self.step(operation_id, Step::Context).await?;
        self.step(operation_id, Step::Generate).await?;
        let patch = self.patcher.write_fix(&work_tree, &target).await?;
        timings.record(Step::Generate, started);

        let started = self.step(operation_id, Step::Check).await?;
        self.patcher.check(&patch.edits)?;
        timings.record(Step::Check, started);

        let started = self.step(operation_id, Step::Commit).await?;
        let changed_files: Vec<String> = patch.edits.iter().map(|e| e.path.clone()).collect();
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
            operation_id,
            written_by_llm: patch.model(),
            confidence: patch.confidence(),
        };
        let title = pr_text::title(&facts);
        let body = pr_text::body(&facts);
        let commit = {
            let files: Vec<(String, String)> = patch
                .edits
                .iter()
                .map(|e| (e.path.clone(), e.updated.clone()))
                .collect();
            let message = format!(
                "{title}\n\nRemediates {} in {} (operation {operation_id}).",
                target.vulnerability_id, target.package_name
            );
            let (root, branch, name, email) = (
                work_tree.clone(),
                branch.clone(),
                self.author_name.clone(),
                self.author_email.clone(),
            );
            blocking(Step::Commit, move || {
                let repo = open(&root)?;
                crate::git::write_files(&repo, &files)?;
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
            .await?
        };
        timings.record(Step::Commit, started);

        let started = self.step(operation_id, Step::Push).await?;
        // Checked again: the name may resolve differently now than at clone time.
        crate::git::check_remote(self.forges.egress(), &repository.url)
            .await
            .map_err(|e| StepFailure::from_git(Step::Push, e))?;
        let pushed = {
            let (root, branch, auth) = (work_tree.clone(), branch.clone(), auth.clone());
            let push = || {
                let (root, branch, auth) = (root.clone(), branch.clone(), auth.clone());
                blocking(Step::Push, move || {
                    let repo = open(&root)?;
                    crate::git::push_branch(&repo, &branch, commit, &auth)
                })
            };
            let _slot = self.git_slot(Step::Push).await?;
            push.retry(super::retry::in_place())
                .when(StepFailure::is_transient)
                .notify(|e, delay| tracing::warn!(error = %e, ?delay, "push failed; retrying"))
                .await?
        };
        timings.record(Step::Push, started);
        drop(scratch);

        let (started, open_elsewhere) = self
            .start_pull_request_step(operation_id, &target, &repository)
            .await?;
        let pull_request = self
            .open_pull_request(
                &repository,
                &target,
                &branch,
                title,
                body,
                &patch,
                open_elsewhere,
            )
            .await?;
        timings.record(Step::PullRequest, started);

        self.step(operation_id, Step::WriteBack).await?;
        let output = json!({
            "pr_url": pull_request.as_ref().map(|p| p.url.clone()),
            "pr_number": pull_request.as_ref().map(|p| p.number),
            "pr_reused": pull_request.as_ref().map(|p| p.reused),
            "branch": branch,
            "commit": commit.to_string(),
            "push": match pushed { PushOutcome::Pushed => "pushed", PushOutcome::AlreadyUpToDate => "already_up_to_date" },
            "forge": repository.forge.name(),
            "target_version": patch.target_version,
            "changed_files": changed_files,
            "explanation": patch.explanation,
            "timings_ms": timings.to_json(),
        });
        let mut output = output;
        if let (Some(out), Some(extra)) = (output.as_object_mut(), patch.describe().as_object()) {
            out.extend(extra.clone());
        }
        Ok(JobSuccess {
            output,
            write_back: RemediationWriteBack {
                remediation_branch_name: Some(branch),
                remediation_pr_url: pull_request.as_ref().map(|p| p.url.clone()),
                remediation_pr_number: pull_request
                    .as_ref()
                    .and_then(|p| i32::try_from(p.number).ok()),
                remediation_status: Some(
                    if pull_request.is_some() {
                        "PR_OPEN"
                    } else {
                        "BRANCH_PUSHED"
                    }
                    .to_owned(),
                ),
                remediation_confidence: Some(patch.confidence().unwrap_or(1.0)),
            },
        })
    }

    async fn git_slot(&self, step: Step) -> Result<tokio::sync::SemaphorePermit<'_>, StepFailure> {
        self.git_slots
            .acquire()
            .await
            .map_err(|_| StepFailure::transient(step, "the worker is shutting down"))
    }

    async fn load_target(&self, operation_id: Uuid) -> Result<RemediationTarget, StepFailure> {
        let mut conn = self
            .pool
            .get()
            .await
            .map_err(|e| StepFailure::from_database(Step::Claim, e))?;
        let operation = operations::get(&mut conn, operation_id, None)
            .await
            .map_err(|e| StepFailure::from_database(Step::Claim, e))?
            .ok_or_else(|| {
                StepFailure::permanent(Step::Claim, format!("operation {operation_id} is gone"))
            })?;
        let target = catalog::remediation_target(&mut conn, operation.resource_id, None)
            .await
            .map_err(|e| StepFailure::from_database(Step::Claim, e))?
            .ok_or_else(|| {
                StepFailure::permanent(
                    Step::Claim,
                    format!("assessment {} no longer exists", operation.resource_id),
                )
            })?;
        if target.assessment_status != AssessmentStatus::Affected.as_str() {
            return Err(StepFailure::permanent(
                Step::Claim,
                format!(
                    "assessment {} is now {}; only AFFECTED assessments are remediated",
                    target.assessment_id, target.assessment_status
                ),
            ));
        }
        Ok(target)
    }

    /// Records that `step` starts (a poller sees progress) and refreshes the heartbeat.
    async fn step(&self, operation_id: Uuid, step: Step) -> Result<Instant, StepFailure> {
        let mut conn = self
            .pool
            .get()
            .await
            .map_err(|e| StepFailure::from_database(step, e))?;
        let gate = operations::start_step(&mut conn, operation_id, step)
            .await
            .map_err(|e| StepFailure::from_database(step, e))?;
        pass_gate(step, gate)
    }

    /// Starts the pull-request step. With a cap on open pull requests, also counts the
    /// project's other open (or opening) ones, under a per-project lock held until the step
    /// is recorded, so concurrent jobs of one project see each other. Returns that count when
    /// the project is at the cap (then no new pull request may be opened), else `None`.
    async fn start_pull_request_step(
        &self,
        operation_id: Uuid,
        target: &RemediationTarget,
        repository: &ResolvedRepository,
    ) -> Result<(Instant, Option<i64>), StepFailure> {
        let step = Step::PullRequest;
        if self.max_open_prs_per_repository == 0 || !repository.forge.opens_pull_requests() {
            return Ok((self.step(operation_id, step).await?, None));
        }
        let mut conn = self
            .pool
            .get()
            .await
            .map_err(|e| StepFailure::from_database(step, e))?;
        let (project, assessment) = (target.project_id, target.assessment_id);
        let (gate, open) = conn
            .transaction(async |conn| {
                catalog::lock_project_pull_requests(conn, project).await?;
                let open = catalog::open_pull_requests(conn, project, assessment).await?;
                let gate = operations::start_step(conn, operation_id, step).await?;
                Ok::<_, diesel::result::Error>((gate, open))
            })
            .await
            .map_err(|e| StepFailure::from_database(step, e))?;
        let started = pass_gate(step, gate)?;
        let at_cap = open >= i64::from(self.max_open_prs_per_repository);
        Ok((started, at_cap.then_some(open)))
    }

    /// Opens the pull request, or reuses the branch's open one. `at_cap` (the count of the
    /// project's other open pull requests, when it is at the cap) allows reuse only.
    #[allow(clippy::too_many_arguments)]
    async fn open_pull_request(
        &self,
        repository: &ResolvedRepository,
        target: &RemediationTarget,
        branch: &str,
        title: String,
        body: String,
        patch: &ProposedPatch,
        at_cap: Option<i64>,
    ) -> Result<Option<crate::forge::PullRequest>, StepFailure> {
        let (owner, name) = match repository.url.owner_and_name() {
            Some((owner, name)) => (owner.to_owned(), name.to_owned()),
            None => (String::new(), repository.url.path.clone()),
        };
        let spec = PullRequestSpec {
            owner,
            repo: name,
            head_branch: branch.to_owned(),
            base_branch: target.default_branch.clone(),
            title,
            body,
            labels: self.pr_labels.clone(),
            draft: patch
                .confidence()
                .is_some_and(|c| c < self.draft_below_confidence),
        };
        if let Some(open) = at_cap {
            let find = || async { repository.forge.find_open_pull_request(&spec).await };
            let existing = find
                .retry(super::retry::in_place())
                .when(|e| e.is_transient())
                .adjust(|e, delay| super::retry::honour_retry_after(e.retry_after(), delay))
                .notify(
                    |e, delay| tracing::warn!(error = %e, ?delay, "forge call failed; retrying"),
                )
                .await
                .map_err(|e| StepFailure::from_forge(Step::PullRequest, e))?;
            return match existing {
                Some(pull) => {
                    tracing::info!(
                        number = pull.number,
                        open,
                        "at the open pull request cap; reusing this branch's pull request"
                    );
                    Ok(Some(pull))
                }
                None => Err(StepFailure::permanent(
                    Step::PullRequest,
                    format!(
                        "repository {} already has {open} open remediation pull requests \
                         (max_open_prs_per_repository); merge or close some, then retry",
                        repository.url.path
                    ),
                )),
            };
        }
        let attempt = || async { repository.forge.open_or_reuse(&spec).await };
        attempt
            .retry(super::retry::in_place())
            .when(|e| e.is_transient())
            .adjust(|e, delay| super::retry::honour_retry_after(e.retry_after(), delay))
            .notify(|e, delay| tracing::warn!(error = %e, ?delay, "forge call failed; retrying"))
            .await
            .map_err(|e| StepFailure::from_forge(Step::PullRequest, e))
    }
}

/// Turns the answer of `start_step` into go (the step's start time) or the failure that ends
/// the job.
fn pass_gate(step: Step, gate: StepGate) -> Result<Instant, StepFailure> {
    match gate {
        StepGate::Go => {}
        StepGate::CancelRequested => {
            return Err(StepFailure {
                step,
                retry: Retry::Cancelled,
                message: "cancelled on request before this step started".to_owned(),
            });
        }
        StepGate::NotRunning => {
            return Err(StepFailure::permanent(
                step,
                "the operation is no longer running here (ended, or taken over by another \
                 worker); stopping",
            ));
        }
    }
    tracing::info!(step = %step, "step started");
    Ok(Instant::now())
}

fn open(root: &std::path::Path) -> Result<git2::Repository, crate::git::GitError> {
    git2::Repository::open(root)
        .map_err(|e| crate::git::GitError::Transient(format!("opening the clone: {}", e.message())))
}

/// Runs blocking git work off the async runtime.
async fn blocking<T: Send + 'static>(
    step: Step,
    work: impl FnOnce() -> Result<T, crate::git::GitError> + Send + 'static,
) -> Result<T, StepFailure> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(|e| StepFailure::from_git(step, e)),
        Err(e) => Err(StepFailure {
            step,
            retry: Retry::Transient { after: None },
            message: format!("git task failed: {e}"),
        }),
    }
}
