//! The reconciler: follows open remediation pull requests on forges that send no webhooks (or
//! whose webhooks were lost). Every `reconciler.interval_secs` it claims at most
//! `reconciler.max_requests_per_tick` open pull requests not checked for an interval (least
//! recently checked first, `SKIP LOCKED`, so the reconcilers of several workers share the work
//! and a forge is asked about each pull request at most once per interval), asks their forge
//! where each stands, and moves the merged and closed ones, with every assessment they cover,
//! exactly as a webhook would. A pull request that conflicts with its base (the base moved),
//! or that no longer proposes the fix a plan made now would (a new advisory needs a higher
//! version, a listed one is no longer AFFECTED), is refreshed: a job is queued for one of its assessments, which rebuilds the fix on the new
//! base and force-pushes the branch if every commit on it is ours (otherwise it leaves the
//! branch alone and says so once on the pull request; the reconciler then stops asking for
//! refreshes of it). A forge that answers with a rate limit ends the tick: the rest wait for
//! the next one.

use std::ops::ControlFlow;
use std::time::Duration;

use diesel_async::AsyncConnection;

use crate::db::{DbConn, DbPool, catalog, fixes, operations, outbox};
use crate::forge::{Forge, ForgeRegistry, PullRequestRef};
use crate::lifecycle::FixScope;
use crate::lifecycle::fix_plan::{self, ObservedState};
use crate::queue::message::JobMessage;
use crate::shutdown::Shutdown;

/// How long applied webhook delivery ids are kept for deduplication (forges retry for hours,
/// and keep deliveries for manual redelivery for days).
const DELIVERY_RETENTION_DAYS: i32 = 30;

#[derive(Clone)]
pub struct Reconciler {
    pub pool: DbPool,
    pub forges: ForgeRegistry,
    pub interval: Duration,
    /// Forge requests per tick, across every forge: the bound that keeps us within their
    /// rate limits however many pull requests are open.
    pub max_requests_per_tick: u32,
    /// `worker.mark_fixed_on_merge`.
    pub mark_fixed_on_merge: bool,
}

/// What one tick did, for logs and tests.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tick {
    pub asked: usize,
    pub changed: usize,
    /// Conflicting pull requests a refresh job was queued for.
    pub refreshed: usize,
    pub failed: usize,
}

impl Reconciler {
    pub async fn run(self, shutdown: Shutdown) {
        tracing::info!(
            interval_secs = self.interval.as_secs(),
            max_requests_per_tick = self.max_requests_per_tick,
            "reconciler following open pull requests"
        );
        loop {
            tokio::select! {
                _ = tokio::time::sleep(self.interval) => {}
                _ = shutdown.triggered() => return,
            }
            match self.tick().await {
                Ok(tick) if tick.asked > 0 => tracing::info!(?tick, "reconciled pull requests"),
                Ok(_) => {}
                Err(error) => {
                    tracing::warn!(error = %format!("{error:#}"), "reconciler tick failed")
                }
            }
        }
    }

    /// One pass over the pull requests that are due.
    pub async fn tick(&self) -> anyhow::Result<Tick> {
        let mut conn = self.pool.get().await?;
        crate::db::webhooks::forget_older_than(&mut conn, DELIVERY_RETENTION_DAYS).await?;
        let min_age = i64::try_from(self.interval.as_secs()).unwrap_or(i64::MAX);
        let due =
            fixes::claim_due(&mut conn, i64::from(self.max_requests_per_tick), min_age).await?;
        let mut tick = Tick::default();
        for fix in due {
            match self.ask(&fix, &mut tick).await {
                ControlFlow::Continue(Some((number, observed))) => {
                    self.follow(&mut conn, &fix, number, observed, &mut tick)
                        .await?;
                }
                ControlFlow::Continue(None) => {}
                ControlFlow::Break(()) => break,
            }
        }
        Ok(tick)
    }

    /// Asks the fix's forge where its pull request stands: its number and state, `None` when
    /// there is nothing to follow (no forge, no number, not found, a failed request), or
    /// `Break` when the forge rate-limits us: asking it again now would only extend the limit.
    async fn ask(
        &self,
        fix: &fixes::DueFix,
        tick: &mut Tick,
    ) -> ControlFlow<(), Option<(u64, ObservedState)>> {
        let repository = match self.forges.resolve(&fix.repository_url) {
            Ok(repository) => repository,
            Err(error) => {
                tracing::warn!(fix = %fix.id, %error, "cannot reconcile: no forge for the repository");
                tick.failed += 1;
                return ControlFlow::Continue(None);
            }
        };
        let Ok(number) = u64::try_from(fix.pr_number) else {
            return ControlFlow::Continue(None);
        };
        tick.asked += 1;
        let target = PullRequestRef::of(&repository, number);
        match repository.forge.pull_request_state(&target).await {
            Ok(Some(observed)) => {
                crate::metrics::reconciler_request(match observed {
                    ObservedState::Open => "open",
                    ObservedState::Conflicting => "conflicting",
                    ObservedState::Merged(_) => "merged",
                    ObservedState::Closed(_) => "closed",
                });
                ControlFlow::Continue(Some((number, observed)))
            }
            Ok(None) => ControlFlow::Continue(None),
            Err(error) => {
                tick.failed += 1;
                crate::metrics::reconciler_request("failed");
                tracing::warn!(fix = %fix.id, number, %error, "cannot read the pull request's state");
                if error.retry_after().is_some() {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(None)
                }
            }
        }
    }

    /// Makes the change the pull request's state calls for: a refresh of an open one that is
    /// stale or conflicts with its base, the new state of a merged or closed one.
    async fn follow(
        &self,
        conn: &mut DbConn,
        fix: &fixes::DueFix,
        number: u64,
        observed: ObservedState,
        tick: &mut Tick,
    ) -> anyhow::Result<()> {
        match observed {
            ObservedState::Open => {
                // The advisories moved on (a new one needs a higher version, or one is no
                // longer AFFECTED): the pull request no longer proposes the right fix.
                if !fix.left_alone
                    && let Some(why) = self.stale(conn, fix).await?
                    && self.refresh(conn, fix).await?
                {
                    tick.refreshed += 1;
                    tracing::info!(fix = %fix.id, number, package = %fix.package_name, why, "pull request is stale; refreshing it");
                }
            }
            ObservedState::Conflicting => {
                if !fix.left_alone && self.refresh(conn, fix).await? {
                    tick.refreshed += 1;
                    tracing::info!(fix = %fix.id, number, package = %fix.package_name, "pull request conflicts with its base; refreshing it");
                }
            }
            ObservedState::Merged(_) | ObservedState::Closed(_) => {
                let mark_fixed = self.mark_fixed_on_merge;
                let changed = conn
                    .transaction(async |conn| {
                        fixes::apply_observed(conn, fix.id, observed, mark_fixed).await
                    })
                    .await?;
                if changed {
                    tick.changed += 1;
                    tracing::info!(
                        fix = %fix.id,
                        number,
                        package = %fix.package_name,
                        status = %observed.status(),
                        "pull request moved on the forge"
                    );
                }
            }
        }
        Ok(())
    }

    /// Why the open pull request no longer proposes what a plan made now would: another
    /// version, or another set of advisories. `None`: it is still right. Grouped fixes and
    /// code changes are refreshed by their next trigger, not here.
    async fn stale(
        &self,
        conn: &mut DbConn,
        fix: &fixes::DueFix,
    ) -> anyhow::Result<Option<String>> {
        // A code change (no version) is rewritten only by a trigger: asking the model again
        // every interval would be a loop.
        if FixScope::of_key(&fix.package_name) == FixScope::Group || fix.target_version.is_none() {
            return Ok(None);
        }
        let advisories =
            fixes::package_advisories(conn, fix.project_id, &fix.ecosystem, &fix.package_name)
                .await?;
        let Some(trigger) = advisories.iter().find(|a| a.own_target().is_some()) else {
            return Ok(None);
        };
        let plan = fix_plan::plan(trigger, &advisories);
        if plan.target_version != fix.target_version {
            return Ok(Some(format!(
                "the fix is now {} (the pull request proposes {})",
                plan.target_version.as_deref().unwrap_or("-"),
                fix.target_version.as_deref().unwrap_or("-")
            )));
        }
        if plan.advisory_ids() != fix.advisories {
            return Ok(Some(format!(
                "it now fixes {} (the pull request lists {})",
                plan.advisory_ids().join(", "),
                fix.advisories.join(", ")
            )));
        }
        Ok(None)
    }

    /// Queues the job that rebuilds the fix (on the current base), as the intake queues a trigger
    /// (an operation and its outbox row in one transaction); false when the fix covers no
    /// AFFECTED assessment any more, or a job for it is already live (invariant 3).
    async fn refresh(&self, conn: &mut DbConn, fix: &fixes::DueFix) -> anyhow::Result<bool> {
        let fix_id = fix.id;
        let created = conn
            .transaction(async |conn| -> anyhow::Result<bool> {
                let Some(assessment) = fixes::refresh_candidate(conn, fix_id).await? else {
                    return Ok(false);
                };
                let Some(target) = catalog::remediation_target(conn, assessment, None).await?
                else {
                    return Ok(false);
                };
                let (operation, created) = operations::create_or_get_live(conn, &target).await?;
                if created {
                    outbox::enqueue(conn, &JobMessage::remediation(operation)).await?;
                }
                Ok(created)
            })
            .await?;
        Ok(created)
    }
}
