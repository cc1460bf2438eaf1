//! The intake's per-organisation token buckets (table `intake_rate_buckets`).
//!
//! Why Postgres and not process memory: with N intake replicas behind a load balancer an
//! in-memory bucket would let N times the configured rate through, and a restart would refill
//! it. Here a take is one atomic upsert on the organisation's row (row lock held for that one
//! statement), the clock is the database's, and the cost is one short round trip on a request
//! that writes to the same database anyway.

use crate::lifecycle::OrganizationId;
use diesel::QueryableByName;
use diesel::sql_types::Double;
use diesel_async::{AsyncPgConnection, RunQueryDsl};

use super::sql::{Bind, Prepared};

/// The outcome of asking for one token.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Take {
    Granted,
    /// Empty bucket: a token will be there in this many seconds.
    Denied {
        retry_after_secs: f64,
    },
}

/// A bucket that holds at most `capacity` tokens and refills at `per_second`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bucket {
    pub capacity: f64,
    pub per_second: f64,
}

impl Bucket {
    /// The refusal when `available` tokens (less than one) are in the bucket.
    pub fn denied(self, available: f64) -> Take {
        Take::Denied {
            retry_after_secs: ((1.0 - available) / self.per_second).max(0.0),
        }
    }
}

#[derive(QueryableByName)]
struct Tokens {
    #[diesel(sql_type = diesel::sql_types::Nullable<Double>)]
    available: Option<f64>,
    #[diesel(sql_type = diesel::sql_types::Bool)]
    granted: bool,
}

/// The take, as a CTE named `take` for a statement's `WITH`: `$1` the organisation, `$2` the
/// capacity, `$3` the refill per second, `$4` whether to take at all (false: no limit). The
/// update happens (and a row is returned) only when a whole token is available after refilling
/// up to now. A macro so that the intake's look-up can `concat!` it into its own statement.
macro_rules! take_cte {
    () => {
        "take AS (
    INSERT INTO intake_rate_buckets AS b (organization_id, tokens, refilled_at)
    SELECT $1, $2 - 1, now() WHERE $4
    ON CONFLICT (organization_id) DO UPDATE
    SET tokens = LEAST($2, b.tokens
                 + GREATEST(0, EXTRACT(EPOCH FROM (now() - b.refilled_at))::float8) * $3) - 1,
        refilled_at = now()
    WHERE LEAST($2, b.tokens
                + GREATEST(0, EXTRACT(EPOCH FROM (now() - b.refilled_at))::float8) * $3) >= 1
    RETURNING 1
)"
    };
}
/// The take's outcome as the columns `granted` and `available`. `available` comes from the
/// statement's snapshot: for a refused take, the bucket as the take saw it.
macro_rules! take_columns {
    () => {
        "(NOT $4 OR EXISTS (SELECT 1 FROM take)) AS granted,
    (SELECT LEAST($2, r.tokens
                  + GREATEST(0, EXTRACT(EPOCH FROM (now() - r.refilled_at))::float8) * $3)
       FROM intake_rate_buckets r WHERE r.organization_id = $1) AS available"
    };
}
pub(crate) use {take_columns, take_cte};

const TAKE: &str = concat!("WITH ", take_cte!(), " SELECT ", take_columns!());

/// Takes one token from `organization`'s bucket, in one statement. A new organisation starts
/// with a full bucket.
pub async fn take(
    conn: &mut AsyncPgConnection,
    organization: OrganizationId,
    bucket: Bucket,
) -> diesel::QueryResult<Take> {
    let row: Tokens = Prepared::new(TAKE)
        .bind(Bind::Uuid(organization.0))
        .bind(Bind::Float(bucket.capacity))
        .bind(Bind::Float(bucket.per_second))
        .bind(Bind::Bool(true))
        .get_result(conn)
        .await?;
    Ok(match row.granted {
        true => Take::Granted,
        false => bucket.denied(row.available.unwrap_or(0.0)),
    })
}
