//! What a verified delivery says: which pull request (its web URL, number and head branch)
//! and what happened to it. Only the fields we use are read, so the forges' large payloads
//! parse whatever else they carry:
//!
//! - GitHub `pull_request` event: `action` (`closed` with `pull_request.merged` true is a
//!   merge, false a close; `reopened`), `pull_request.{number, html_url, merged, merged_at,
//!   closed_at, head.ref}`;
//! - GitLab `Merge Request Hook`: `object_kind: "merge_request"`,
//!   `object_attributes.{iid, url, state, action, source_branch}` (`action` `merge`, `close`,
//!   `reopen`);
//! - Gitea/Forgejo `pull_request` event: GitHub's shape (`action` `closed` / `reopened`,
//!   `pull_request.{number, html_url, merged, merged_at, closed_at, head.ref}`).
//!
//! Every other event and action (opened, edited, synchronize, review, ping...) is `Ignored`.

use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::WebhookForge;
use crate::lifecycle::fix_plan::ObservedState;

/// A pull request event we act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRequestEvent {
    pub pr_url: String,
    pub number: u64,
    pub head_branch: String,
    pub observed: ObservedState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    PullRequest(PullRequestEvent),
    /// An event or action that changes nothing we follow; the text says which.
    Ignored(String),
}

/// Why a signed delivery could not be read (400).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the {forge} delivery is not a {what}: {detail}")]
pub struct Malformed {
    forge: &'static str,
    what: &'static str,
    detail: String,
}

#[derive(Deserialize)]
struct GithubLike {
    action: Option<String>,
    pull_request: Option<GithubPull>,
}

#[derive(Deserialize)]
struct GithubPull {
    number: u64,
    html_url: String,
    #[serde(default)]
    merged: Option<bool>,
    #[serde(default)]
    merged_at: Option<DateTime<Utc>>,
    #[serde(default)]
    closed_at: Option<DateTime<Utc>>,
    head: Head,
}

#[derive(Deserialize)]
struct Head {
    #[serde(rename = "ref")]
    name: String,
}

#[derive(Deserialize)]
struct GitlabHook {
    object_kind: Option<String>,
    object_attributes: Option<GitlabAttributes>,
}

#[derive(Deserialize)]
struct GitlabAttributes {
    iid: u64,
    url: String,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    action: Option<String>,
    source_branch: String,
}

/// Reads a delivery whose event header said `event`.
pub fn parse(forge: WebhookForge, event: &str, body: &[u8]) -> Result<Event, Malformed> {
    match forge {
        WebhookForge::Github | WebhookForge::Gitea => {
            if event != "pull_request" {
                return Ok(Event::Ignored(format!("{event} event")));
            }
            let hook: GithubLike = serde_json::from_slice(body)
                .map_err(|e| malformed(forge, "pull_request event", e))?;
            let (Some(action), Some(pull)) = (hook.action, hook.pull_request) else {
                return Err(malformed(
                    forge,
                    "pull_request event",
                    "action or pull_request is missing",
                ));
            };
            let observed = match action.as_str() {
                "closed" if pull.merged.unwrap_or(false) || pull.merged_at.is_some() => {
                    ObservedState::Merged(pull.merged_at)
                }
                "closed" => ObservedState::Closed(pull.closed_at),
                "reopened" => ObservedState::Open,
                other => return Ok(Event::Ignored(format!("pull_request action {other}"))),
            };
            Ok(Event::PullRequest(PullRequestEvent {
                pr_url: pull.html_url,
                number: pull.number,
                head_branch: pull.head.name,
                observed,
            }))
        }
        WebhookForge::Gitlab => {
            if event != "Merge Request Hook" {
                return Ok(Event::Ignored(format!("{event} event")));
            }
            let hook: GitlabHook = serde_json::from_slice(body)
                .map_err(|e| malformed(forge, "merge request event", e))?;
            let attributes = match (hook.object_kind.as_deref(), hook.object_attributes) {
                (Some("merge_request"), Some(attributes)) => attributes,
                _ => {
                    return Err(malformed(
                        forge,
                        "merge request event",
                        "object_kind is not merge_request, or object_attributes is missing",
                    ));
                }
            };
            // GitLab's hook carries no merged_at/closed_at; the time we hear of it stands in.
            let observed = match (attributes.action.as_deref(), attributes.state.as_deref()) {
                (Some("merge"), _) => ObservedState::Merged(None),
                (Some("close"), _) => ObservedState::Closed(None),
                (Some("reopen"), _) => ObservedState::Open,
                (action, _) => {
                    return Ok(Event::Ignored(format!(
                        "merge request action {}",
                        action.unwrap_or("(none)")
                    )));
                }
            };
            Ok(Event::PullRequest(PullRequestEvent {
                pr_url: attributes.url,
                number: attributes.iid,
                head_branch: attributes.source_branch,
                observed,
            }))
        }
    }
}

fn malformed(forge: WebhookForge, what: &'static str, detail: impl std::fmt::Display) -> Malformed {
    Malformed {
        forge: forge.as_str(),
        what,
        detail: detail.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn github(action: &str, merged: bool) -> Vec<u8> {
        json!({
            "action": action, "number": 7,
            "pull_request": {
                "url": "https://api.github.com/repos/acme/web/pulls/7",
                "html_url": "https://github.com/acme/web/pull/7", "number": 7,
                "state": if action == "reopened" { "open" } else { "closed" },
                "merged": merged,
                "merged_at": if merged { json!("2026-12-01T10:00:00Z") } else { json!(null) },
                "closed_at": "2026-12-01T10:00:00Z",
                "head": {"ref": "remediator/npm-lodash", "sha": "abc"},
                "base": {"ref": "main"},
                "user": {"login": "remediator-bot"}
            },
            "repository": {"full_name": "acme/web"},
            "sender": {"login": "maintainer"}
        })
        .to_string()
        .into_bytes()
    }

    #[test]
    fn github_and_gitea_closed_merged_and_reopened() {
        let at: DateTime<Utc> = "2026-12-01T10:00:00Z".parse().unwrap();
        for forge in [WebhookForge::Github, WebhookForge::Gitea] {
            let merged = parse(forge, "pull_request", &github("closed", true)).unwrap();
            assert_eq!(
                merged,
                Event::PullRequest(PullRequestEvent {
                    pr_url: "https://github.com/acme/web/pull/7".into(),
                    number: 7,
                    head_branch: "remediator/npm-lodash".into(),
                    observed: ObservedState::Merged(Some(at)),
                })
            );
            let Event::PullRequest(closed) =
                parse(forge, "pull_request", &github("closed", false)).unwrap()
            else {
                panic!("closed is an event");
            };
            assert_eq!(closed.observed, ObservedState::Closed(Some(at)));
            let Event::PullRequest(reopened) =
                parse(forge, "pull_request", &github("reopened", false)).unwrap()
            else {
                panic!("reopened is an event");
            };
            assert_eq!(reopened.observed, ObservedState::Open);
            assert!(matches!(
                parse(forge, "pull_request", &github("synchronize", false)).unwrap(),
                Event::Ignored(_)
            ));
            assert!(matches!(
                parse(forge, "ping", b"{}").unwrap(),
                Event::Ignored(_)
            ));
            assert!(parse(forge, "pull_request", b"{\"action\":\"closed\"}").is_err());
        }
    }

    #[test]
    fn gitlab_merge_close_and_reopen() {
        let hook = |action: &str, state: &str| {
            json!({
                "object_kind": "merge_request", "event_type": "merge_request",
                "project": {"path_with_namespace": "acme/web"},
                "object_attributes": {
                    "id": 90017, "iid": 17, "state": state, "action": action,
                    "url": "https://gitlab.example/acme/web/-/merge_requests/17",
                    "source_branch": "remediator/npm-lodash", "target_branch": "main"
                }
            })
            .to_string()
            .into_bytes()
        };
        let event = |action, state| {
            parse(
                WebhookForge::Gitlab,
                "Merge Request Hook",
                &hook(action, state),
            )
        };
        let Ok(Event::PullRequest(merged)) = event("merge", "merged") else {
            panic!("merge is an event");
        };
        assert_eq!(merged.number, 17);
        assert_eq!(
            merged.pr_url,
            "https://gitlab.example/acme/web/-/merge_requests/17"
        );
        assert_eq!(merged.observed, ObservedState::Merged(None));
        assert!(matches!(
            event("close", "closed"),
            Ok(Event::PullRequest(PullRequestEvent {
                observed: ObservedState::Closed(None),
                ..
            }))
        ));
        assert!(matches!(
            event("reopen", "opened"),
            Ok(Event::PullRequest(PullRequestEvent {
                observed: ObservedState::Open,
                ..
            }))
        ));
        assert!(matches!(event("update", "opened"), Ok(Event::Ignored(_))));
        assert!(matches!(
            parse(WebhookForge::Gitlab, "Push Hook", b"{}"),
            Ok(Event::Ignored(_))
        ));
        assert!(
            parse(
                WebhookForge::Gitlab,
                "Merge Request Hook",
                b"{\"object_kind\":\"push\"}"
            )
            .is_err()
        );
    }
}
