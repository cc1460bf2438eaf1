//! The package lock a job holds from its push until its pull request is recorded: the row of
//! the package fix (`remediation_fixes`), taken `FOR UPDATE` in a transaction on a connection
//! of its own. A second job for the same package (another advisory, another worker) waits
//! here, then finds the first one's pull request and updates it instead of opening another
//! (invariant 2). A job that dies while holding it drops the connection, and Postgres releases
//! the lock with the transaction; a dropped lock is never returned to the pool with its
//! transaction open (the pool discards such connections).

use crate::ecosystem::Ecosystem;
use diesel_async::{AsyncConnection, AsyncPgConnection, RunQueryDsl, TransactionManager};

use crate::db::fixes::{self, FixRow, RecordedPull};
use crate::db::{DbConn, DbPool};
use crate::lifecycle::{FixScope, ProjectId, Step};
use crate::worker::failure::StepFailure;

/// How long a job waits for another job of the same package before it retries later: well
/// above a push and a pull request call, well under the job deadline.
const LOCK_TIMEOUT: &str = "120s";

pub struct FixLock {
    conn: DbConn,
    /// The package's fix as it stood when the lock was taken.
    pub row: FixRow,
}

/// What identifies the package fix.
pub struct FixKey<'a> {
    pub project: ProjectId,
    pub ecosystem: &'a Ecosystem,
    /// The package, or the ecosystem's group: names the fix row.
    pub scope: FixScope<'a>,
    pub branch: &'a str,
}

impl FixLock {
    pub async fn acquire(pool: &DbPool, key: &FixKey<'_>, step: Step) -> Result<Self, StepFailure> {
        let db = |e: diesel::result::Error| StepFailure::from_database(step, e);
        let mut conn = pool
            .get()
            .await
            .map_err(|e| StepFailure::from_database(step, e))?;
        <AsyncPgConnection as AsyncConnection>::TransactionManager::begin_transaction(&mut *conn)
            .await
            .map_err(db)?;
        diesel::sql_query(format!("SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'"))
            .execute(&mut *conn)
            .await
            .map_err(db)?;
        let row = fixes::lock(
            &mut conn,
            key.project,
            key.ecosystem,
            key.scope.key(),
            key.branch,
        )
        .await
        .map_err(|e| {
            StepFailure::transient(
                step,
                format!(
                    "could not take the fix of {} (another job of the package holds it \
                         for more than {LOCK_TIMEOUT}, or the database failed): {e}",
                    key.scope
                ),
            )
        })?;
        Ok(FixLock { conn, row })
    }

    /// Records the pull request and releases the lock (commit).
    pub async fn record(mut self, pull: &RecordedPull<'_>, step: Step) -> Result<(), StepFailure> {
        let db = |e: diesel::result::Error| StepFailure::from_database(step, e);
        fixes::record_pull_request(&mut self.conn, self.row.id, pull)
            .await
            .map_err(db)?;
        <AsyncPgConnection as AsyncConnection>::TransactionManager::commit_transaction(
            &mut *self.conn,
        )
        .await
        .map_err(db)
    }

    /// Notes that the branch was left alone and the pull request says so, and releases the
    /// lock (commit), so the comment is made once.
    pub async fn note_left_alone(mut self) {
        let noted = fixes::note_left_alone(&mut self.conn, self.row.id).await;
        let committed = match noted {
            Ok(_) => {
                <AsyncPgConnection as AsyncConnection>::TransactionManager::commit_transaction(
                    &mut *self.conn,
                )
                .await
            }
            Err(error) => Err(error),
        };
        if let Err(error) = committed {
            tracing::warn!(%error, "could not note the comment on the fix");
        }
    }

    /// Releases the lock without recording anything (rollback). Dropping the lock does the
    /// same, later: the connection is discarded instead of being reused.
    pub async fn release(mut self) {
        if let Err(error) =
            <AsyncPgConnection as AsyncConnection>::TransactionManager::rollback_transaction(
                &mut *self.conn,
            )
            .await
        {
            tracing::warn!(%error, "could not roll back the fix lock; dropping its connection");
        }
    }
}
