//! The intake's per-organisation token buckets (table `intake_rate_buckets`).
//!
//! Why Postgres and not process memory: with N intake replicas behind a load balancer an
//! in-memory bucket would let N times the configured rate through, and a restart would refill
//! it. Here a take is one atomic upsert on the organisation's row (row lock held for that one
//! statement), the clock is the database's, and the cost is one short round trip on a request
//! that writes to the same database anyway.

use diesel::sql_types::{Double, Uuid as SqlUuid};
use diesel::{QueryResult, QueryableByName};
use diesel_async::{AsyncPgConnection, RunQueryDsl};
use uuid::Uuid;

/// The outcome of asking for one token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Take {
    Granted,
    /// Empty bucket: a token will be there in this many seconds.
    Denied {
        retry_after_secs: f64,
    },
}

#[derive(QueryableByName)]
struct Tokens {
    #[diesel(sql_type = Double)]
    tokens: f64,
}

/// Takes one token from `organization`'s bucket, which holds at most `capacity` tokens and
/// refills at `per_second`. A new organisation starts with a full bucket.
pub async fn take(
    conn: &mut AsyncPgConnection,
    organization: Uuid,
    capacity: f64,
    per_second: f64,
) -> QueryResult<Take> {
    // `available` is the bucket after refilling up to now; the update only happens (and the
    // row is only returned) when at least one whole token is available.
    let granted: Vec<Tokens> = diesel::sql_query(
        "INSERT INTO intake_rate_buckets AS b (organization_id, tokens, refilled_at)
         VALUES ($1, $2 - 1, now())
         ON CONFLICT (organization_id) DO UPDATE
         SET tokens = LEAST($2, b.tokens
                     + GREATEST(0, EXTRACT(EPOCH FROM (now() - b.refilled_at))::float8) * $3) - 1,
             refilled_at = now()
         WHERE LEAST($2, b.tokens
                     + GREATEST(0, EXTRACT(EPOCH FROM (now() - b.refilled_at))::float8) * $3) >= 1
         RETURNING tokens",
    )
    .bind::<SqlUuid, _>(organization)
    .bind::<Double, _>(capacity)
    .bind::<Double, _>(per_second)
    .load(conn)
    .await?;
    if !granted.is_empty() {
        return Ok(Take::Granted);
    }
    let available: Vec<Tokens> = diesel::sql_query(
        "SELECT LEAST($2, tokens
                + GREATEST(0, EXTRACT(EPOCH FROM (now() - refilled_at))::float8) * $3) AS tokens
         FROM intake_rate_buckets WHERE organization_id = $1",
    )
    .bind::<SqlUuid, _>(organization)
    .bind::<Double, _>(capacity)
    .bind::<Double, _>(per_second)
    .load(conn)
    .await?;
    let available = <[Tokens]>::first(&available).map_or(0.0, |row| row.tokens);
    Ok(Take::Denied {
        retry_after_secs: ((1.0 - available) / per_second).max(0.0),
    })
}
