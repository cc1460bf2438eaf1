//! The pull request flow every forge with an API shares: reuse the open request from the same
//! branch, else create one and label it; a "duplicate" answer (another worker won the race)
//! is resolved by listing again. Each forge only says how to list, create and label.

use std::future::Future;

use reqwest::{StatusCode, Url};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::http::{self, ApiClient, ForgeClient, Reply};
use super::{ForgeError, PullRequest, PullRequestSpec};
use super::{repos_api, wire};
use crate::lifecycle::fix_plan::ObservedState;

/// What a create request answered.
pub(crate) enum Created {
    New(PullRequest),
    /// The forge refused a duplicate: one is open for this branch already.
    AlreadyExists,
}

/// A request as the forge lists it or answers its creation, in the forge's own field names.
pub(crate) trait ListedRequest: DeserializeOwned {
    /// `reused`: it was open already (listed), not created now.
    fn into_pull_request(self, reused: bool) -> PullRequest;
}

pub(crate) trait PullRequestApi: ForgeClient + Sized {
    /// "GitHub", "GitLab", "Gitea": for messages.
    const FORGE: &'static str;
    /// "pull request" or "merge request", as the forge calls it.
    const REQUEST: &'static str = "pull request";

    /// Refuses a spec this forge cannot address, before any request. The default wants
    /// GitHub's OWNER/NAME, which Gitea keeps.
    fn validate(spec: &PullRequestSpec) -> Result<(), ForgeError> {
        wire::validate_owner_and_name(spec, Self::FORGE)
    }

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

    /// Where request `number` stands: open, merged or closed. The default reads it the way
    /// GitHub's REST layout does, which Gitea copied.
    fn state(
        &self,
        spec: &PullRequestSpec,
        number: u64,
    ) -> impl Future<Output = Result<ObservedState, ForgeError>> + Send {
        repos_api::pull_state(self, spec, number)
    }

    /// Adds a comment to request `number`; the default posts it the GitHub (and Gitea) way.
    fn comment(
        &self,
        spec: &PullRequestSpec,
        number: u64,
        body: &str,
    ) -> impl Future<Output = Result<(), ForgeError>> + Send {
        repos_api::comment(self, spec, number, body)
    }

    /// Labels a new request; forges that label on creation keep this default.
    fn add_labels(
        &self,
        _spec: &PullRequestSpec,
        _number: u64,
    ) -> impl Future<Output = Result<(), ForgeError>> + Send {
        async { Ok(()) }
    }
}

/// POSTs a create request (`what` names its body in errors): a 201 is the new request, read
/// as `T`; any other answer goes to `refused`, which tells a duplicate from an error the way
/// its forge words them.
pub(crate) async fn post_create<T: ListedRequest>(
    client: &ApiClient,
    url: Url,
    body: &(impl Serialize + Sync),
    what: &str,
    context: &str,
    refused: impl FnOnce(&Reply) -> Result<Created, ForgeError>,
) -> Result<Created, ForgeError> {
    let reply = client.post_json(url, body, what, context).await?;
    if reply.status != StatusCode::CREATED {
        return refused(&reply);
    }
    let request: T = client.parse_json(&reply, context)?;
    Ok(Created::New(request.into_pull_request(false)))
}

/// A create refused with the forge's `message`: a duplicate (another worker opened it
/// first) when `duplicate` recognises the message, else a permanent error that echoes it.
pub(crate) fn duplicate_or_refused(
    forge: &str,
    reply: &Reply,
    message: Option<String>,
    context: &str,
    duplicate: impl Fn(&str) -> bool,
) -> Result<Created, ForgeError> {
    if message.as_deref().is_some_and(duplicate) {
        return Ok(Created::AlreadyExists);
    }
    Err(ForgeError::Permanent(format!(
        "{forge} refused {context} ({}){}",
        reply.status.as_u16(),
        http::said(message.as_deref())
    )))
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
