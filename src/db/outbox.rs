//! The transactional outbox: a job row written in the same transaction as its operation, so
//! an accepted request is never lost even when RabbitMQ is down (invariant 1).

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::schema::outbox;
use crate::queue::message::JobMessage;

/// Writes the job's outbox row and notifies the relays (delivered when the caller's
/// transaction commits; see `queue::outbox_wake` for why the intake's own path does not).
pub async fn enqueue(conn: &mut AsyncPgConnection, message: &JobMessage) -> anyhow::Result<()> {
    diesel::insert_into(outbox::table)
        .values((
            outbox::operation_id.eq(message.operation_id()),
            outbox::payload.eq(serde_json::to_value(message)?),
        ))
        .execute(conn)
        .await?;
    diesel::sql_query(NOTIFY).execute(conn).await?;
    Ok(())
}

/// `NOTIFY` on `queue::outbox_wake::CHANNEL` (a unit test keeps the two in step).
const NOTIFY: &str = "NOTIFY remediator_outbox";

/// Locks up to `limit` unpublished rows that are due (not quarantined, or their quarantine
/// is over); rows another relay holds are skipped, so relays running side by side never
/// publish one row twice.
pub async fn lock_unpublished(
    conn: &mut AsyncPgConnection,
    limit: i64,
) -> QueryResult<Vec<(i64, serde_json::Value)>> {
    outbox::table
        .filter(outbox::published_at.is_null())
        .filter(
            outbox::next_attempt_at
                .is_null()
                .or(outbox::next_attempt_at.le(diesel::dsl::now)),
        )
        .order(outbox::id.asc())
        .limit(limit)
        .select((outbox::id, outbox::payload))
        .for_update()
        .skip_locked()
        .load(conn)
        .await
}

pub async fn mark_published(conn: &mut AsyncPgConnection, ids: &[i64]) -> QueryResult<usize> {
    diesel::update(outbox::table.filter(outbox::id.eq_any(ids)))
        .set((
            outbox::published_at.eq(diesel::dsl::now),
            outbox::publish_attempts.eq(outbox::publish_attempts + 1),
            outbox::next_attempt_at.eq(None::<chrono::DateTime<chrono::Utc>>),
        ))
        .execute(conn)
        .await
}

/// The longest a quarantined row waits between tries.
const MAX_QUARANTINE_SECS: i32 = 3600;

/// Sets a row the relay could not publish aside: records why, counts the try, and leaves it
/// until a later try (1 s, 2 s, 4 s, ... up to an hour), so the rows behind it go out now.
pub async fn quarantine(conn: &mut AsyncPgConnection, id: i64, error: &str) -> QueryResult<usize> {
    diesel::sql_query(
        "UPDATE outbox SET last_error = $2, publish_attempts = publish_attempts + 1,
             next_attempt_at = now() + make_interval(secs => least(power(2, least(publish_attempts, 20)), $3))
         WHERE id = $1",
    )
    .bind::<diesel::sql_types::BigInt, _>(id)
    .bind::<diesel::sql_types::Text, _>(error)
    .bind::<diesel::sql_types::Integer, _>(MAX_QUARANTINE_SECS)
    .execute(conn)
    .await
}

/// Unpublished rows that failed at least once (the `remediator_outbox_quarantined` gauge).
pub async fn quarantined_count(conn: &mut AsyncPgConnection) -> QueryResult<i64> {
    outbox::table
        .filter(outbox::published_at.is_null())
        .filter(outbox::last_error.is_not_null())
        .count()
        .get_result(conn)
        .await
}

pub async fn unpublished_count(conn: &mut AsyncPgConnection) -> QueryResult<i64> {
    outbox::table
        .filter(outbox::published_at.is_null())
        .count()
        .get_result(conn)
        .await
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_notification_goes_to_the_channel_the_relay_listens_on() {
        assert_eq!(
            super::NOTIFY,
            format!("NOTIFY {}", crate::queue::outbox_wake::CHANNEL)
        );
    }
}
