-- Token buckets of the intake's per-organisation rate limit. In Postgres rather than in each
-- intake's memory so the limit holds across replicas and restarts, with one clock (now()).
CREATE TABLE intake_rate_buckets (
    organization_id uuid PRIMARY KEY,
    tokens          double precision NOT NULL,
    refilled_at     timestamptz NOT NULL
);
