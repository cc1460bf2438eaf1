//! The requests GitHub and Gitea make alike. Gitea (and Forgejo) copied GitHub's REST layout
//! under `repos/{owner}/{repo}/`, so creating, editing, reading, commenting on and labelling a
//! pull request are the same calls on both, and a refused access is worded alike
//! ([`access_wording`]). What differs stays with each forge: the body it creates a pull request
//! with, the statuses it answers an edit with, how it finds the open pull request of a branch,
//! and how it words its other errors ([`ForgeClient::status_error`]).

use reqwest::{Method, StatusCode, Url};
use serde::Serialize;

use super::flow::{self, Created};
use super::http::{AccessWording, ApiClient, ForgeClient, Reply};
use super::wire::{AddLabels, NewComment, PullState, PullSummary, UpdatePull, encode};
use super::{ForgeError, PullRequestSpec};
use crate::lifecycle::fix_plan::ObservedState;

/// How GitHub words a refused access, and Gitea with it: a "repository", no hint on a 401 and
/// no other reason for a 404; what the token `lacks` on a 403 is each forge's own.
pub(crate) const fn access_wording(lacks: &'static str) -> AccessWording {
    AccessWording {
        token_hint: "",
        lacks,
        repository: "repository",
        or_404: "",
    }
}

/// `repos/{owner}/{repo}/{tail...}` under the API base.
pub(crate) fn repo_endpoint(
    client: &ApiClient,
    spec: &PullRequestSpec,
    tail: &[&str],
) -> Result<Url, ForgeError> {
    let mut segments = vec!["repos", spec.owner.as_str(), spec.repo.as_str()];
    segments.extend_from_slice(tail);
    client.endpoint(&segments)
}

/// "`doing` pull request #N of OWNER/NAME": what a message says the call was doing.
fn about(doing: &str, spec: &PullRequestSpec, number: u64) -> String {
    format!(
        "{doing} pull request #{number} of {}/{}",
        spec.owner, spec.repo
    )
}

/// What a message says looking for the open pull request of the spec's branch was doing.
pub(crate) fn listing_context(spec: &PullRequestSpec) -> String {
    format!(
        "listing open pull requests for {}/{} branch {}",
        spec.owner, spec.repo, spec.head_branch
    )
}

/// What a message says creating the spec's pull request was doing.
fn creating_context(spec: &PullRequestSpec) -> String {
    format!(
        "creating a pull request for {}/{} from {} into {}",
        spec.owner, spec.repo, spec.head_branch, spec.base_branch
    )
}

/// `POST repos/{owner}/{repo}/pulls` with the forge's create `body`: a 201 is the new pull
/// request; any other answer goes to `refused`, with what the call was doing, to tell a
/// duplicate from an error the way the forge words them.
pub(crate) async fn create_pull(
    forge: &impl ForgeClient,
    spec: &PullRequestSpec,
    body: &(impl Serialize + Sync),
    refused: impl FnOnce(&Reply, &str) -> Result<Created, ForgeError>,
) -> Result<Created, ForgeError> {
    let context = creating_context(spec);
    let url = repo_endpoint(forge.client(), spec, &["pulls"])?;
    let what = "the pull request";
    flow::post_create::<PullSummary>(forge.client(), url, body, what, &context, |reply| {
        refused(reply, &context)
    })
    .await
}

/// `PATCH repos/{owner}/{repo}/pulls/{number}` with the new title and the spec's body;
/// `accepted` says which statuses answer a successful edit on this forge.
pub(crate) async fn update_pull(
    forge: &impl ForgeClient,
    spec: &PullRequestSpec,
    number: u64,
    title: &str,
    accepted: fn(&StatusCode) -> bool,
) -> Result<(), ForgeError> {
    let context = about("updating", spec, number);
    let url = repo_endpoint(forge.client(), spec, &["pulls", &number.to_string()])?;
    let body = UpdatePull {
        title,
        body: &spec.body,
    };
    let body = encode(&body, "the pull request")?;
    forge
        .call(spec, Method::PATCH, url, Some(body), &context, accepted)
        .await
        .map(drop)
}

/// `GET repos/{owner}/{repo}/pulls/{number}`: open, conflicting, merged or closed.
pub(crate) async fn pull_state(
    forge: &impl ForgeClient,
    spec: &PullRequestSpec,
    number: u64,
) -> Result<ObservedState, ForgeError> {
    let context = about("reading", spec, number);
    let url = repo_endpoint(forge.client(), spec, &["pulls", &number.to_string()])?;
    let pull: PullState = forge.get_json(spec, url, &context).await?;
    Ok(pull.observed())
}

/// `POST repos/{owner}/{repo}/issues/{number}/comments`: a pull request is an issue there.
pub(crate) async fn comment(
    forge: &impl ForgeClient,
    spec: &PullRequestSpec,
    number: u64,
    body: &str,
) -> Result<(), ForgeError> {
    let context = about("commenting on", spec, number);
    let body = encode(&NewComment { body }, "the comment")?;
    post_to_issue(forge, spec, number, "comments", body, &context).await
}

/// `POST repos/{owner}/{repo}/issues/{number}/labels` with `labels` (names or ids, as the
/// forge wants them).
pub(crate) async fn add_labels<L: Serialize>(
    forge: &impl ForgeClient,
    spec: &PullRequestSpec,
    number: u64,
    labels: &[L],
) -> Result<(), ForgeError> {
    let context = about("labelling", spec, number);
    let body = encode(&AddLabels { labels }, "the labels")?;
    post_to_issue(forge, spec, number, "labels", body, &context).await
}

/// `POST repos/{owner}/{repo}/issues/{number}/{what}`; any success will do.
async fn post_to_issue(
    forge: &impl ForgeClient,
    spec: &PullRequestSpec,
    number: u64,
    what: &str,
    body: serde_json::Value,
    context: &str,
) -> Result<(), ForgeError> {
    let url = repo_endpoint(forge.client(), spec, &["issues", &number.to_string(), what])?;
    forge
        .call(
            spec,
            Method::POST,
            url,
            Some(body),
            context,
            StatusCode::is_success,
        )
        .await
        .map(drop)
}
