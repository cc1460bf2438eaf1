//! In-place retries for transient failures inside a step (network blips, 429/5xx), with
//! exponential backoff and jitter; a server's `Retry-After` replaces the computed delay. What
//! still fails goes back to the queue through the retry-delay tiers.

use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

use crate::llm::{Completion, Conversation, JobBudget, LlmClient, LlmError};

/// Waits longer than this are not done in place: the job is retried later through the queue.
pub const MAX_IN_PLACE_WAIT: Duration = Duration::from_secs(60);

pub fn in_place() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(500))
        .with_max_delay(Duration::from_secs(30))
        .with_max_times(3)
        .with_jitter()
}

/// The delay before the next try: the server's `Retry-After` when it gave one (capped), the
/// backoff's otherwise. `None` ends the retries.
pub fn honour_retry_after(
    retry_after: Option<Duration>,
    backoff: Option<Duration>,
) -> Option<Duration> {
    match retry_after {
        Some(wait) if wait > MAX_IN_PLACE_WAIT => None,
        Some(wait) => backoff.map(|_| wait),
        None => backoff,
    }
}

/// One call to the model, retried in place on what may pass (a rate limit, a dropped
/// connection), within the job's LLM budget. A timeout is not transient, so it is never
/// retried here with the same budget.
pub async fn ask_model(
    llm: &LlmClient,
    conversation: &Conversation,
    budget: &JobBudget,
) -> Result<Completion, LlmError> {
    let call = || async { llm.complete_within(conversation, budget).await };
    call.retry(in_place())
        .when(LlmError::is_transient)
        .adjust(|e, delay| honour_retry_after(e.retry_after(), delay))
        .notify(|e, delay| tracing::warn!(error = %e, ?delay, "LLM call failed; retrying"))
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_wins_but_long_waits_go_back_to_the_queue() {
        let backoff = Some(Duration::from_secs(1));
        assert_eq!(
            honour_retry_after(Some(Duration::from_secs(7)), backoff),
            Some(Duration::from_secs(7))
        );
        assert_eq!(honour_retry_after(None, backoff), backoff);
        assert_eq!(
            honour_retry_after(Some(Duration::from_secs(600)), backoff),
            None
        );
        // The backoff's own end (max times reached) is kept.
        assert_eq!(honour_retry_after(Some(Duration::from_secs(7)), None), None);
    }
}
