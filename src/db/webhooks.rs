//! Webhook deliveries already applied (`webhook_deliveries`), keyed by the forge's delivery
//! id, so a replayed or retried delivery changes nothing.

use diesel::prelude::*;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::schema::webhook_deliveries;

/// Records the delivery; false when it was recorded before (a replay). Run it in the
/// transaction that applies the delivery, so a delivery is recorded exactly when it applied.
pub async fn record_delivery(
    conn: &mut AsyncPgConnection,
    forge: &str,
    delivery_id: &str,
    event: &str,
    outcome: &str,
) -> QueryResult<bool> {
    let inserted = diesel::insert_into(webhook_deliveries::table)
        .values((
            webhook_deliveries::forge.eq(forge),
            webhook_deliveries::delivery_id.eq(delivery_id),
            webhook_deliveries::event.eq(event),
            webhook_deliveries::outcome.eq(outcome),
        ))
        .on_conflict((webhook_deliveries::forge, webhook_deliveries::delivery_id))
        .do_nothing()
        .execute(conn)
        .await?;
    Ok(inserted == 1)
}

/// Records what the delivery did, in its transaction.
pub async fn set_outcome(
    conn: &mut AsyncPgConnection,
    forge: &str,
    delivery_id: &str,
    outcome: &str,
) -> QueryResult<usize> {
    diesel::update(webhook_deliveries::table.find((forge, delivery_id)))
        .set(webhook_deliveries::outcome.eq(outcome))
        .execute(conn)
        .await
}

/// Forgets deliveries older than `days`: forges retry (and let people redeliver) for a few
/// days at most, so an older id cannot come back.
pub async fn forget_older_than(conn: &mut AsyncPgConnection, days: i32) -> QueryResult<usize> {
    diesel::sql_query(
        "DELETE FROM webhook_deliveries WHERE received_at < now() - make_interval(days => $1)",
    )
    .bind::<diesel::sql_types::Integer, _>(days)
    .execute(conn)
    .await
}

/// How many deliveries of a forge were recorded (tests and ops).
pub async fn count(conn: &mut AsyncPgConnection, forge: &str) -> QueryResult<i64> {
    webhook_deliveries::table
        .filter(webhook_deliveries::forge.eq(forge))
        .count()
        .get_result(conn)
        .await
}
