//! Gitea and Forgejo (which keeps Gitea's API) through the REST API v1: find the open pull
//! request for a branch, or create one, then label it.
//!
//! Gitea's pull list does not filter by head branch reliably, so the open pulls are read page
//! by page and matched here: same head branch, head in this repository (not a fork that
//! happens to use our branch name), same base. Labels are set by id, so their names are
//! looked up first; a label that does not exist is skipped, and labelling never fails the
//! pull request. A draft is a title starting with `WIP: `, Gitea's default
//! work-in-progress prefix. Gitea copied GitHub's REST layout, so creating, editing, reading,
//! commenting on and labelling a pull request go through the calls both make alike
//! (`repos_api.rs`), each with Gitea's own bodies and words where they differ.

use std::time::Duration;

use reqwest::header::{self, HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use secrecy::SecretString;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::flow::{self, Created, PullRequestApi};
use super::http::{
    self, AccessWording, ApiClient, ApiClientConfig, ApiEndpoint, ForgeClient, Reply, TokenHeader,
    forge_client, is_ok, sanitize,
};
use super::repos_api::{self, repo_endpoint};
use super::wire;
use super::{ForgeError, PullRequest, PullRequestSpec};

/// The title prefix Gitea and Forgejo treat as work in progress (their default
/// `WORK_IN_PROGRESS_PREFIXES` starts with it).
pub const DRAFT_PREFIX: &str = "WIP: ";
/// Items asked per page; Gitea's default `MAX_RESPONSE_ITEMS` is 50.
const PAGE_LIMIT: usize = 50;
/// Stops a listing that never ends (a server ignoring `page`) after this many pages.
const MAX_PAGES: usize = 20;
/// What a Gitea token needs: the write:repository scope.
const ACCESS: AccessWording =
    repos_api::access_wording("the write:repository scope or write access to");
/// How long to wait on a 429 that names no time.
const RATE_LIMIT_WAIT: Duration = Duration::from_secs(60);

forge_client! {
    /// Client for one Gitea or Forgejo host.
    GiteaForge
}

/// Gitea's create body: no draft field (a draft is a title prefix).
#[derive(Serialize)]
struct CreatePull<'a> {
    head: &'a str,
    base: &'a str,
    title: &'a str,
    body: &'a str,
}

#[derive(Deserialize)]
struct ListedPull {
    number: u64,
    html_url: String,
    head: BranchInfo,
    base: BranchInfo,
}

#[derive(Deserialize)]
struct BranchInfo {
    #[serde(rename = "ref")]
    name: String,
    /// Null when the head's fork was deleted.
    #[serde(default)]
    repo: Option<RepoInfo>,
}

#[derive(Deserialize)]
struct RepoInfo {
    full_name: String,
}

#[derive(Deserialize)]
struct Label {
    id: u64,
    name: String,
}

/// Gitea's error body: `{"message": "...", "url": "..."}`.
#[derive(Deserialize, Default)]
struct ErrorBody {
    #[serde(default)]
    message: Option<String>,
}

impl GiteaForge {
    /// `endpoint.api_url` is "https://HOST/api/v1" (Gitea and Forgejo are self-hosted, so
    /// there is no default); `endpoint.host` is the repository host this forge serves.
    pub fn new(endpoint: ApiEndpoint<'_>, token: SecretString) -> anyhow::Result<Self> {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_static("application/json"));
        Self::with_config(ApiClientConfig {
            label: "Gitea",
            api_url_example: "https://HOST/api/v1",
            endpoint,
            token: TokenHeader::authorization("token", &token),
            headers,
        })
    }

    /// Reads a paginated list (`page` from 1, `limit`) until `stop` finds what it wants, a
    /// page comes back empty or short of `X-Total-Count`, or [`MAX_PAGES`] were read.
    async fn list_pages<T: DeserializeOwned>(
        &self,
        spec: &PullRequestSpec,
        base: Url,
        context: &str,
        mut stop: impl FnMut(&T) -> bool,
    ) -> Result<Vec<T>, ForgeError> {
        let mut all = Vec::new();
        for page in 1..=MAX_PAGES {
            let mut url = base.clone();
            url.query_pairs_mut()
                .append_pair("page", &page.to_string())
                .append_pair("limit", &PAGE_LIMIT.to_string());
            let reply = self
                .call(spec, Method::GET, url, None, context, is_ok)
                .await?;
            let items: Vec<T> = self.api.parse_json(&reply, context)?;
            let total = reply
                .headers
                .get("x-total-count")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<usize>().ok());
            let empty = items.is_empty();
            let found = items.iter().any(&mut stop);
            all.extend(items);
            if found || empty || total.is_some_and(|total| all.len() >= total) {
                break;
            }
        }
        Ok(all)
    }

    /// The ids of the spec's labels that exist in the repository. Names match exactly, else
    /// ignoring case; a name that matches nothing is skipped.
    async fn label_ids(&self, spec: &PullRequestSpec) -> Result<Vec<u64>, ForgeError> {
        let context = format!("listing the labels of {}/{}", spec.owner, spec.repo);
        let url = repo_endpoint(&self.api, spec, &["labels"])?;
        let existing: Vec<Label> = self.list_pages(spec, url, &context, |_| false).await?;
        let mut ids = Vec::new();
        for wanted in &spec.labels {
            let found = existing
                .iter()
                .find(|label| label.name == *wanted)
                .or_else(|| {
                    existing
                        .iter()
                        .find(|label| label.name.eq_ignore_ascii_case(wanted))
                });
            match found {
                Some(label) if !ids.contains(&label.id) => ids.push(label.id),
                Some(_) => {}
                None => tracing::info!(
                    label = %sanitize(wanted),
                    repository = %format!("{}/{}", spec.owner, spec.repo),
                    "label does not exist in the Gitea repository; skipped"
                ),
            }
        }
        Ok(ids)
    }
}

impl ForgeClient for GiteaForge {
    fn client(&self) -> &ApiClient {
        &self.api
    }

    fn status_error(&self, reply: &Reply, spec: &PullRequestSpec, context: &str) -> ForgeError {
        let said = http::said(gitea_message(&reply.body).as_deref());
        let repo = format!("{}/{}", spec.owner, spec.repo);
        match reply.status.as_u16() {
            429 => self
                .api
                .rate_limited(reply, &said, context, RATE_LIMIT_WAIT),
            _ => self.api.refused(reply, &said, context, &repo, &ACCESS),
        }
    }
}

impl PullRequestApi for GiteaForge {
    const FORGE: &'static str = "Gitea";

    async fn find_open(&self, spec: &PullRequestSpec) -> Result<Option<PullRequest>, ForgeError> {
        let context = repos_api::listing_context(spec);
        let mut url = repo_endpoint(&self.api, spec, &["pulls"])?;
        url.query_pairs_mut().append_pair("state", "open");
        let full_name = format!("{}/{}", spec.owner, spec.repo);
        let ours = |pull: &ListedPull| {
            pull.head.name == spec.head_branch
                && pull.base.name == spec.base_branch
                && pull
                    .head
                    .repo
                    .as_ref()
                    .is_some_and(|repo| repo.full_name.eq_ignore_ascii_case(&full_name))
        };
        let pulls = self.list_pages(spec, url, &context, ours).await?;
        Ok(pulls.into_iter().find(ours).map(|pull| PullRequest {
            number: pull.number,
            url: pull.html_url,
            reused: true,
        }))
    }

    async fn create(&self, spec: &PullRequestSpec) -> Result<Created, ForgeError> {
        let title = wire::title_with_draft(spec, DRAFT_PREFIX);
        let body = CreatePull {
            head: &spec.head_branch,
            base: &spec.base_branch,
            title: &title,
            body: &spec.body,
        };
        repos_api::create_pull(self, spec, &body, |reply, context| match reply.status {
            // Gitea answers 409 ("pull request already exists for these targets"); older
            // releases and Forgejo have used 422 for the same.
            StatusCode::CONFLICT | StatusCode::UNPROCESSABLE_ENTITY => flow::duplicate_or_refused(
                "Gitea",
                reply,
                gitea_message(&reply.body),
                context,
                |m| m.to_ascii_lowercase().contains("already exists"),
            ),
            _ => Err(self.status_error(reply, spec, context)),
        })
        .await
    }

    async fn update(&self, spec: &PullRequestSpec, number: u64) -> Result<(), ForgeError> {
        let title = wire::title_with_draft(spec, DRAFT_PREFIX);
        // Gitea answers an edit with 201 and the pull request.
        repos_api::update_pull(self, spec, number, &title, StatusCode::is_success).await
    }

    /// Looks the label names up and sets the ones that exist.
    async fn add_labels(&self, spec: &PullRequestSpec, number: u64) -> Result<(), ForgeError> {
        let ids = self.label_ids(spec).await?;
        if ids.is_empty() {
            return Ok(());
        }
        repos_api::add_labels(self, spec, number, &ids).await
    }
}

flow::forge_with_api!(GiteaForge, "gitea");

/// Gitea's `message` field, cleaned for echoing.
fn gitea_message(body: &[u8]) -> Option<String> {
    http::echoed(serde_json::from_slice::<ErrorBody>(body).ok()?.message)
}

#[cfg(test)]
pub(super) mod tests;
