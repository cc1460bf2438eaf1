//! Plain git hosting: the pushed branch is the whole result, there is no pull request API.

use super::{Forge, ForgeError, PullRequest, PullRequestRef, PullRequestSpec};
use crate::lifecycle::fix_plan::ObservedState;

/// A forge without pull requests.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PlainGit;

impl Forge for PlainGit {
    fn name(&self) -> &'static str {
        "plain_git"
    }

    async fn open_or_reuse(
        &self,
        spec: &PullRequestSpec,
    ) -> Result<Option<PullRequest>, ForgeError> {
        tracing::debug!(
            branch = %spec.head_branch,
            "plain git forge: branch pushed, no pull request to open"
        );
        Ok(None)
    }

    async fn find_open_pull_request(
        &self,
        _spec: &PullRequestSpec,
    ) -> Result<Option<PullRequest>, ForgeError> {
        Ok(None)
    }

    async fn update_pull_request(
        &self,
        _spec: &PullRequestSpec,
        _number: u64,
    ) -> Result<(), ForgeError> {
        Ok(())
    }

    async fn comment_on_pull_request(
        &self,
        _target: &PullRequestRef,
        _body: &str,
    ) -> Result<(), ForgeError> {
        Ok(())
    }

    async fn pull_request_state(
        &self,
        _target: &PullRequestRef,
    ) -> Result<Option<ObservedState>, ForgeError> {
        Ok(None)
    }
}
