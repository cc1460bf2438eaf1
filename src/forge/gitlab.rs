//! GitLab (gitlab.com and self-managed) through its REST API v4: find the open merge request
//! for a branch, or create one, labelled in the same call.
//!
//! The project is addressed by its full path, URL-encoded as one id (`acme%2Fsub%2Fweb`), so
//! nested groups work. The token goes in `PRIVATE-TOKEN`, which personal, project and group
//! access tokens all accept. A draft is a title starting with `Draft: `, as GitLab documents.

use std::time::Duration;

use reqwest::header::{HeaderMap, HeaderName};
use reqwest::{Method, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};

use super::flow::{self, Created, ListedRequest, PullRequestApi};
use super::http::{
    self, AccessWording, ApiClient, ApiClientConfig, ApiEndpoint, ForgeClient, Reply, TokenHeader,
    forge_client, is_ok, sanitize,
};
use super::wire::{self, NewComment, encode};
use super::{ForgeError, PullRequest, PullRequestSpec};
use crate::lifecycle::fix_plan::ObservedState;

/// The title prefix that makes a merge request a draft.
pub const DRAFT_PREFIX: &str = "Draft: ";
/// What a GitLab token needs: the api scope and Developer access.
const ACCESS: AccessWording = AccessWording {
    token_hint: " (it needs the api scope)",
    lacks: "the api scope or at least Developer access to",
    repository: "project",
    or_404: "",
};
/// How long to wait on a 429 that names no time (GitLab normally sends `Retry-After`).
const RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);

#[derive(Serialize)]
struct UpdateMergeRequest<'a> {
    title: &'a str,
    description: &'a str,
}

/// The fields of `GET /projects/:id/merge_requests/:iid` that say where it stands.
#[derive(Deserialize)]
struct MergeRequestState {
    state: String,
    #[serde(default)]
    merged_at: Option<chrono::DateTime<chrono::Utc>>,
    #[serde(default)]
    closed_at: Option<chrono::DateTime<chrono::Utc>>,
    /// True when it conflicts with its target branch.
    #[serde(default)]
    has_conflicts: bool,
}

forge_client! {
    /// Client for one GitLab host.
    GitlabForge
}

#[derive(Serialize)]
struct CreateMergeRequest<'a> {
    source_branch: &'a str,
    target_branch: &'a str,
    title: &'a str,
    description: &'a str,
    /// GitLab takes label names as one comma-separated string and creates missing ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    labels: Option<String>,
}

#[derive(Deserialize)]
struct MergeRequestSummary {
    /// The project-scoped number (`!7`), not the instance-wide `id`.
    iid: u64,
    web_url: String,
    #[serde(default)]
    source_branch: Option<String>,
}

impl ListedRequest for MergeRequestSummary {
    fn into_pull_request(self, reused: bool) -> PullRequest {
        PullRequest {
            number: self.iid,
            url: self.web_url,
            reused,
        }
    }
}

impl GitlabForge {
    /// `endpoint.api_url` is "https://gitlab.com/api/v4" or, self-managed,
    /// "https://HOST/api/v4"; `endpoint.host` is the repository host this forge serves.
    pub fn new(endpoint: ApiEndpoint<'_>, token: SecretString) -> anyhow::Result<Self> {
        Self::with_config(ApiClientConfig {
            label: "GitLab",
            api_url_example: "https://HOST/api/v4",
            endpoint,
            token: TokenHeader {
                // PRIVATE-TOKEN; header names are case-insensitive and `from_static` wants
                // lowercase.
                name: HeaderName::from_static("private-token"),
                value: SecretString::from(token.expose_secret().to_owned()),
            },
            headers: HeaderMap::new(),
        })
    }

    fn merge_requests_url(&self, spec: &PullRequestSpec) -> Result<Url, ForgeError> {
        self.api
            .endpoint(&["projects", &project_path(spec), "merge_requests"])
    }

    fn merge_request_url(&self, spec: &PullRequestSpec, iid: u64) -> Result<Url, ForgeError> {
        self.api.endpoint(&[
            "projects",
            &project_path(spec),
            "merge_requests",
            &iid.to_string(),
        ])
    }
}

impl ForgeClient for GitlabForge {
    fn client(&self) -> &ApiClient {
        &self.api
    }

    fn status_error(&self, reply: &Reply, spec: &PullRequestSpec, context: &str) -> ForgeError {
        let said = http::said(gitlab_message(&reply.body).as_deref());
        match reply.status.as_u16() {
            429 => {
                let default = http::wait_until_reset(&reply.headers, "ratelimit-reset")
                    .unwrap_or(RATE_LIMIT_WAIT);
                self.api.rate_limited(reply, &said, context, default)
            }
            _ => self
                .api
                .refused(reply, &said, context, &project_path(spec), &ACCESS),
        }
    }
}

impl PullRequestApi for GitlabForge {
    const FORGE: &'static str = "GitLab";
    const REQUEST: &'static str = "merge request";

    fn validate(spec: &PullRequestSpec) -> Result<(), ForgeError> {
        validate_spec(spec)
    }

    async fn find_open(&self, spec: &PullRequestSpec) -> Result<Option<PullRequest>, ForgeError> {
        let context = format!(
            "listing open merge requests for {} branch {}",
            project_path(spec),
            spec.head_branch
        );
        let mut url = self.merge_requests_url(spec)?;
        url.query_pairs_mut()
            .append_pair("state", "opened")
            .append_pair("source_branch", &spec.head_branch)
            .append_pair("target_branch", &spec.base_branch);
        let requests: Vec<MergeRequestSummary> = self.get_json(spec, url, &context).await?;
        // GitLab filters by source branch itself; checking again costs nothing and keeps an
        // instance that ignored the parameter from handing us someone else's merge request.
        Ok(requests
            .into_iter()
            .find(|mr| {
                mr.source_branch
                    .as_deref()
                    .is_none_or(|branch| branch == spec.head_branch)
            })
            .map(|mr| mr.into_pull_request(true)))
    }

    async fn update(&self, spec: &PullRequestSpec, iid: u64) -> Result<(), ForgeError> {
        let context = format!("updating merge request !{iid} of {}", project_path(spec));
        let url = self.merge_request_url(spec, iid)?;
        let title = wire::title_with_draft(spec, DRAFT_PREFIX);
        let body = UpdateMergeRequest {
            title: &title,
            description: &spec.body,
        };
        let body = encode(&body, "the merge request")?;
        self.call(spec, Method::PUT, url, Some(body), &context, is_ok)
            .await
            .map(drop)
    }

    async fn state(&self, spec: &PullRequestSpec, iid: u64) -> Result<ObservedState, ForgeError> {
        let context = format!("reading merge request !{iid} of {}", project_path(spec));
        let url = self.merge_request_url(spec, iid)?;
        let mr: MergeRequestState = self.get_json(spec, url, &context).await?;
        // "locked" is a merge request being merged right now: still open until it is merged.
        Ok(match mr.state.as_str() {
            "merged" => ObservedState::Merged(mr.merged_at),
            "closed" => ObservedState::Closed(mr.closed_at),
            _ if mr.has_conflicts => ObservedState::Conflicting,
            _ => ObservedState::Open,
        })
    }

    async fn comment(
        &self,
        spec: &PullRequestSpec,
        iid: u64,
        body: &str,
    ) -> Result<(), ForgeError> {
        let context = format!(
            "commenting on merge request !{iid} of {}",
            project_path(spec)
        );
        let mut url = self.merge_request_url(spec, iid)?;
        url.path_segments_mut()
            .map_err(|()| ForgeError::Permanent("the GitLab API URL cannot take a path".into()))?
            .push("notes");
        let body = encode(&NewComment { body }, "the comment")?;
        self.call(
            spec,
            Method::POST,
            url,
            Some(body),
            &context,
            StatusCode::is_success,
        )
        .await
        .map(drop)
    }

    async fn create(&self, spec: &PullRequestSpec) -> Result<Created, ForgeError> {
        let project = project_path(spec);
        let context = format!(
            "creating a merge request for {project} from {} into {}",
            spec.head_branch, spec.base_branch
        );
        let url = self.merge_requests_url(spec)?;
        let title = wire::title_with_draft(spec, DRAFT_PREFIX);
        let body = CreateMergeRequest {
            source_branch: &spec.head_branch,
            target_branch: &spec.base_branch,
            title: &title,
            description: &spec.body,
            labels: label_list(&spec.labels),
        };
        flow::post_create::<MergeRequestSummary>(
            &self.api,
            url,
            &body,
            "the merge request",
            &context,
            |reply| match reply.status {
                StatusCode::CONFLICT => flow::duplicate_or_refused(
                    "GitLab",
                    reply,
                    gitlab_message(&reply.body),
                    &context,
                    |m| m.contains("already exists"),
                ),
                _ => Err(self.status_error(reply, spec, &context)),
            },
        )
        .await
    }
}

flow::forge_with_api!(GitlabForge, "gitlab");

/// The project's full path, "group/subgroup/name": GitLab's id for it, once URL-encoded.
fn project_path(spec: &PullRequestSpec) -> String {
    format!("{}/{}", spec.owner, spec.repo)
}

/// The labels as GitLab's comma-separated string. A name with a comma in it would turn into
/// two labels, so it is left out (labels are cosmetic; the merge request matters).
fn label_list(labels: &[String]) -> Option<String> {
    let usable: Vec<&str> = labels
        .iter()
        .map(|label| label.trim())
        .filter(|label| {
            let ok = !label.is_empty() && !label.contains(',');
            if !ok {
                tracing::warn!(label = %sanitize(label), "GitLab label names cannot contain a comma; label skipped");
            }
            ok
        })
        .collect();
    (!usable.is_empty()).then(|| usable.join(","))
}

/// GitLab projects live at GROUP[/SUBGROUP...]/NAME.
fn validate_spec(spec: &PullRequestSpec) -> Result<(), ForgeError> {
    let bad_segment = |part: &str| part.is_empty() || part == "." || part == "..";
    if spec.owner.split('/').any(bad_segment) || bad_segment(&spec.repo) || spec.repo.contains('/')
    {
        return Err(ForgeError::Permanent(format!(
            "a GitLab project path must be GROUP[/SUBGROUP...]/NAME, got {:?}/{:?}",
            sanitize(&spec.owner),
            sanitize(&spec.repo)
        )));
    }
    wire::require_branches(spec, "merge request", "source", "target")
}

/// GitLab's error text, cleaned for echoing. It comes as `{"message": "..."}`,
/// `{"message": ["..."]}`, `{"message": {"field": ["..."]}}` or OAuth style
/// `{"error": "...", "error_description": "..."}`.
fn gitlab_message(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    let mut parts = Vec::new();
    collect_text(value.get("message"), None, &mut parts);
    if parts.is_empty() {
        collect_text(value.get("error"), None, &mut parts);
        collect_text(value.get("error_description"), None, &mut parts);
    }
    let text = sanitize(&parts.join("; "));
    (!text.is_empty()).then_some(text)
}

fn collect_text(value: Option<&serde_json::Value>, field: Option<&str>, out: &mut Vec<String>) {
    match value {
        Some(serde_json::Value::String(text)) => out.push(match field {
            Some(field) => format!("{field} {text}"),
            None => text.clone(),
        }),
        Some(serde_json::Value::Array(items)) => {
            for item in items {
                collect_text(Some(item), field, out);
            }
        }
        Some(serde_json::Value::Object(fields)) => {
            for (name, item) in fields {
                collect_text(Some(item), Some(name), out);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
pub(super) mod tests;
