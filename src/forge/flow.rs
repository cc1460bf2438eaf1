//! The pull request flow every forge with an API shares: reuse the open request from the same
//! branch, else create one and label it; a "duplicate" answer (another worker won the race)
//! is resolved by listing again. Each forge only says how to list, create and label.

use std::future::Future;

use super::{ForgeError, PullRequest, PullRequestSpec};
use crate::lifecycle::fix_plan::ObservedState;

/// What a create request answered.
pub(crate) enum Created {
    New(PullRequest),
    /// The forge refused a duplicate: one is open for this branch already.
    AlreadyExists,
}

pub(crate) trait PullRequestApi: Sync {
    /// "GitHub", "GitLab", "Gitea": for messages.
    const FORGE: &'static str;
    /// "pull request" or "merge request", as the forge calls it.
    const REQUEST: &'static str;

    /// Refuses a spec this forge cannot address, before any request.
    fn validate(spec: &PullRequestSpec) -> Result<(), ForgeError>;

    fn find_open(
        &self,
        spec: &PullRequestSpec,
    ) -> impl Future<Output = Result<Option<PullRequest>, ForgeError>> + Send;

    fn create(
        &self,
        spec: &PullRequestSpec,
    ) -> impl Future<Output = Result<Created, ForgeError>> + Send;

    /// Sets the title and body of an open request (the fix was raised or lists more
    /// advisories now).
    fn update(
        &self,
        spec: &PullRequestSpec,
        number: u64,
    ) -> impl Future<Output = Result<(), ForgeError>> + Send;

    /// Where request `number` stands: open, merged or closed.
    fn state(
        &self,
        spec: &PullRequestSpec,
        number: u64,
    ) -> impl Future<Output = Result<ObservedState, ForgeError>> + Send;

    /// Adds a comment to request `number`.
    fn comment(
        &self,
        spec: &PullRequestSpec,
        number: u64,
        body: &str,
    ) -> impl Future<Output = Result<(), ForgeError>> + Send;

    /// Labels a new request; forges that label on creation keep this default.
    fn add_labels(
        &self,
        _spec: &PullRequestSpec,
        _number: u64,
    ) -> impl Future<Output = Result<(), ForgeError>> + Send {
        async { Ok(()) }
    }
}

pub(crate) async fn find_open<A: PullRequestApi>(
    api: &A,
    spec: &PullRequestSpec,
) -> Result<Option<PullRequest>, ForgeError> {
    A::validate(spec)?;
    api.find_open(spec).await
}

pub(crate) async fn open_or_reuse<A: PullRequestApi>(
    api: &A,
    spec: &PullRequestSpec,
) -> Result<Option<PullRequest>, ForgeError> {
    A::validate(spec)?;
    if let Some(existing) = api.find_open(spec).await? {
        tracing::info!(number = existing.number, branch = %spec.head_branch, "reusing the open {} {}", A::FORGE, A::REQUEST);
        return Ok(Some(existing));
    }
    match api.create(spec).await? {
        Created::New(pull) => {
            if !spec.labels.is_empty()
                && let Err(error) = api.add_labels(spec, pull.number).await
            {
                // The request exists either way; a missing label is cosmetic and must not turn
                // a finished remediation into a retry that reuses it unlabelled.
                tracing::warn!(number = pull.number, %error, "could not label the {} {}", A::FORGE, A::REQUEST);
            }
            Ok(Some(pull))
        }
        Created::AlreadyExists => match api.find_open(spec).await? {
            Some(existing) => Ok(Some(existing)),
            None => Err(ForgeError::Transient {
                message: format!(
                    "{} says a {} for {}/{} branch {} already exists, but none is listed as open yet; retrying",
                    A::FORGE,
                    A::REQUEST,
                    spec.owner,
                    spec.repo,
                    spec.head_branch
                ),
                retry_after: None,
            }),
        },
    }
}

/// Implements [`super::Forge`] for a forge whose pull requests go through this flow.
macro_rules! forge_with_api {
    ($forge:ty, $name:literal) => {
        impl $crate::forge::Forge for $forge {
            fn name(&self) -> &'static str {
                $name
            }

            async fn find_open_pull_request(
                &self,
                spec: &$crate::forge::PullRequestSpec,
            ) -> Result<Option<$crate::forge::PullRequest>, $crate::forge::ForgeError> {
                $crate::forge::flow::find_open(self, spec).await
            }

            async fn open_or_reuse(
                &self,
                spec: &$crate::forge::PullRequestSpec,
            ) -> Result<Option<$crate::forge::PullRequest>, $crate::forge::ForgeError> {
                $crate::forge::flow::open_or_reuse(self, spec).await
            }

            async fn update_pull_request(
                &self,
                spec: &$crate::forge::PullRequestSpec,
                number: u64,
            ) -> Result<(), $crate::forge::ForgeError> {
                <Self as $crate::forge::flow::PullRequestApi>::validate(spec)?;
                $crate::forge::flow::PullRequestApi::update(self, spec, number).await
            }

            async fn comment_on_pull_request(
                &self,
                target: &$crate::forge::PullRequestRef,
                body: &str,
            ) -> Result<(), $crate::forge::ForgeError> {
                let spec = target.as_spec();
                $crate::forge::flow::PullRequestApi::comment(self, &spec, target.number, body).await
            }

            async fn pull_request_state(
                &self,
                target: &$crate::forge::PullRequestRef,
            ) -> Result<Option<$crate::lifecycle::fix_plan::ObservedState>, $crate::forge::ForgeError> {
                let spec = target.as_spec();
                $crate::forge::flow::PullRequestApi::state(self, &spec, target.number)
                    .await
                    .map(Some)
            }
        }
    };
}
pub(crate) use forge_with_api;
