//! The transactional outbox: a job row written in the same transaction as its operation, so
//! an accepted request is never lost even when RabbitMQ is down (invariant 1).

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

use super::schema::outbox;
use crate::queue::message::JobMessage;

pub async fn enqueue(conn: &mut AsyncPgConnection, message: &JobMessage) -> anyhow::Result<()> {
    diesel::insert_into(outbox::table)
        .values((
            outbox::operation_id.eq(message.operation_id()),
            outbox::payload.eq(serde_json::to_value(message)?),
        ))
        .execute(conn)
        .await?;
    Ok(())
}

/// Locks up to `limit` unpublished rows; rows another relay holds are skipped, so relays
/// running side by side never publish one row twice.
pub async fn lock_unpublished(
    conn: &mut AsyncPgConnection,
    limit: i64,
) -> QueryResult<Vec<(i64, serde_json::Value)>> {
    outbox::table
        .filter(outbox::published_at.is_null())
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
        ))
        .execute(conn)
        .await
}

pub async fn unpublished_count(conn: &mut AsyncPgConnection) -> QueryResult<i64> {
    outbox::table
        .filter(outbox::published_at.is_null())
        .count()
        .get_result(conn)
        .await
}

pub async fn unpublished_for(conn: &mut AsyncPgConnection, operation: Uuid) -> QueryResult<i64> {
    outbox::table
        .filter(outbox::operation_id.eq(operation))
        .filter(outbox::published_at.is_null())
        .count()
        .get_result(conn)
        .await
}
