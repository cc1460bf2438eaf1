//! What the forge APIs share on the wire, and the checks of a spec before any request.
//!
//! Gitea (and Forgejo) copied GitHub's REST layout, so the pull request bodies both send and
//! read are one set of types here; GitLab's merge requests have their own names and stay in
//! `gitlab.rs`. A draft on GitLab and Gitea is a title prefix, each forge naming its own.

use serde::{Deserialize, Serialize};

use super::flow::ListedRequest;
use super::http::sanitize;
use super::{ForgeError, PullRequest, PullRequestSpec};
use crate::lifecycle::fix_plan::ObservedState;

/// The edit of an open pull request's text (GitHub, Gitea).
#[derive(Serialize)]
pub(crate) struct UpdatePull<'a> {
    pub title: &'a str,
    pub body: &'a str,
}

/// Labels to add: names on GitHub, ids on Gitea.
#[derive(Serialize)]
pub(crate) struct AddLabels<'a, L: Serialize> {
    pub labels: &'a [L],
}

/// A comment on a pull or merge request (every forge takes `{"body": ...}`).
#[derive(Serialize)]
pub(crate) struct NewComment<'a> {
    pub body: &'a str,
}

/// The fields of `GET /repos/{owner}/{repo}/pulls/{number}` that say where it stands.
#[derive(Deserialize)]
pub(crate) struct PullState {
    state: String,
    #[serde(default)]
    merged: bool,
    #[serde(default)]
    merged_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    closed_at: Option<chrono::DateTime<chrono::Utc>>,
    /// False when it conflicts with its base (GitHub: null while it is being computed).
    #[serde(default)]
    mergeable: Option<bool>,
}

impl PullState {
    /// Merged wins over closed (a merged pull request is closed too); an open one that no
    /// longer merges is conflicting.
    pub fn observed(self) -> ObservedState {
        match (self.state.as_str(), self.merged || self.merged_at.is_some()) {
            (_, true) => ObservedState::Merged(self.merged_at),
            ("closed", false) => ObservedState::Closed(self.closed_at),
            _ if self.mergeable == Some(false) => ObservedState::Conflicting,
            _ => ObservedState::Open,
        }
    }
}

/// A pull request as a list or a create answers it.
#[derive(Deserialize)]
pub(crate) struct PullSummary {
    pub number: u64,
    pub html_url: String,
}

impl ListedRequest for PullSummary {
    fn into_pull_request(self, reused: bool) -> PullRequest {
        PullRequest {
            number: self.number,
            url: self.html_url,
            reused,
        }
    }
}

/// A request body as JSON; `what` names it in the error ("the pull request", "the labels").
pub(crate) fn encode(body: &impl Serialize, what: &str) -> Result<serde_json::Value, ForgeError> {
    serde_json::to_value(body)
        .map_err(|e| ForgeError::Permanent(format!("cannot encode {what}: {e}")))
}

/// The title to send: the spec's, with the forge's draft prefix when it is a draft.
pub(crate) fn title_with_draft(spec: &PullRequestSpec, draft_prefix: &str) -> String {
    if spec.draft {
        draft_title(draft_prefix, &spec.title)
    } else {
        spec.title.clone()
    }
}

/// `title` with `prefix` in front, unless it starts with it already.
pub(crate) fn draft_title(prefix: &str, title: &str) -> String {
    if title.starts_with(prefix.trim_end()) {
        title.to_owned()
    } else {
        format!("{prefix}{title}")
    }
}

/// GitHub and Gitea paths are OWNER/NAME, with no nested groups; `forge` names it in the
/// message.
pub(crate) fn validate_owner_and_name(
    spec: &PullRequestSpec,
    forge: &str,
) -> Result<(), ForgeError> {
    let bad = |part: &str| part.is_empty() || part.contains('/') || part == "." || part == "..";
    if bad(&spec.owner) || bad(&spec.repo) {
        return Err(ForgeError::Permanent(format!(
            "a {forge} repository path must be OWNER/NAME, got {:?}/{:?}",
            sanitize(&spec.owner),
            sanitize(&spec.repo)
        )));
    }
    require_branches(spec, "pull request", "head", "base")
}

/// Refuses a spec without both branches, in the forge's words: "a merge request needs both a
/// source and a target branch".
pub(crate) fn require_branches(
    spec: &PullRequestSpec,
    request: &str,
    head: &str,
    base: &str,
) -> Result<(), ForgeError> {
    if spec.head_branch.is_empty() || spec.base_branch.is_empty() {
        return Err(ForgeError::Permanent(format!(
            "a {request} needs both a {head} and a {base} branch"
        )));
    }
    Ok(())
}
