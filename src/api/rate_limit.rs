//! The intake's per-organisation rate limit on remediation writes: `POST
//! /v1/findings/auto-remediation` and `POST /v1/operations/{id}/cancel` draw from one token
//! bucket per organisation (`intake.rate_limit_per_minute`, 0 disables it). The bucket holds a
//! minute's worth, so a burst of that many passes, then one request every 60/N seconds.
//!
//! The buckets live in Postgres (`db::rate_limit`, where the choice is explained), so the limit
//! is the same whatever the number of intake replicas. GETs (polling, health, OpenAPI) are not
//! limited: they are cheap indexed reads of the caller's own rows, and clients poll them on
//! purpose; a reverse proxy is the place for a blanket limit.

use crate::lifecycle::OrganizationId;
use chrono::{SecondsFormat, Utc};
use diesel_async::AsyncPgConnection;

use super::error::{ApiError, Code};
use crate::db::rate_limit::{self, Bucket, Take};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    per_minute: u32,
}

impl RateLimit {
    pub fn new(per_minute: u32) -> Self {
        Self { per_minute }
    }

    /// The organisation's bucket (`None`: no limit): a minute's worth, refilled per second.
    pub fn bucket(&self) -> Option<Bucket> {
        (self.per_minute > 0).then(|| {
            let capacity = f64::from(self.per_minute);
            Bucket {
                capacity,
                per_second: capacity / 60.0,
            }
        })
    }

    /// Takes one request from `organization`'s allowance, or answers 429 (code 8) with a
    /// `Retry-After` saying when the next one is allowed. `endpoint` names the refused request
    /// in `remediator_rate_limited_total`.
    pub async fn check(
        &self,
        conn: &mut AsyncPgConnection,
        organization: OrganizationId,
        endpoint: &'static str,
    ) -> Result<(), ApiError> {
        let Some(bucket) = self.bucket() else {
            return Ok(());
        };
        let take = rate_limit::take(conn, organization, bucket).await?;
        self.answer(take, organization, endpoint)
    }

    /// The answer to a take made elsewhere (the intake makes it inside its look-up).
    pub fn answer(
        &self,
        take: Take,
        organization: OrganizationId,
        endpoint: &'static str,
    ) -> Result<(), ApiError> {
        match take {
            Take::Granted => Ok(()),
            Take::Denied { retry_after_secs } => {
                // Whole seconds, as Retry-After wants, rounded up so a retry at that time works.
                let wait = (retry_after_secs.ceil() as u64).max(1);
                let at = Utc::now() + chrono::Duration::seconds(wait as i64);
                // A refusal is the limit working, not a fault: an organisation over its limit
                // sends many, so they are counted, and logged only at debug.
                crate::metrics::rate_limited(endpoint);
                tracing::debug!(%organization, wait, endpoint, "organisation over the intake rate limit");
                Err(ApiError::new(
                    Code::ResourceExhausted,
                    format!(
                        "rate limit exceeded: organization {organization} may make {} remediation \
                         requests per minute; retry in {wait} s (after {})",
                        self.per_minute,
                        at.to_rfc3339_opts(SecondsFormat::Secs, true)
                    ),
                )
                .with_retry_after(wait))
            }
        }
    }
}
