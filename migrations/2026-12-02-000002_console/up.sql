-- The operations console (`/console/`): who did what, and the indexes its pages read through.

-- Every console action (login, logout, cancel, replay, purge), with who and what. Rows are
-- only ever inserted; the audit page reads them newest first.
CREATE TABLE console_audit (
    id BIGSERIAL PRIMARY KEY,
    at TIMESTAMPTZ NOT NULL DEFAULT now(),
    -- The token's subject and organisation.
    actor TEXT NOT NULL,
    actor_organization UUID NOT NULL,
    action TEXT NOT NULL CHECK (action IN ('login', 'logout', 'cancel', 'replay', 'purge')),
    -- What it was applied to: an operation id, "3 selected", "all matching reason=...".
    target TEXT NOT NULL,
    -- What came of it: "replayed 3, skipped 1", "cancel requested", "refused: ...".
    outcome TEXT NOT NULL,
    details JSONB
);
CREATE INDEX console_audit_at ON console_audit (at DESC, id DESC);

-- Keyset pagination of every organisation's operations (ops:admin), newest first; the
-- organisation-scoped list uses operations_org_created.
CREATE INDEX operations_created_id ON operations (created_at DESC, id DESC);
-- The same, filtered by status, by project or by step.
CREATE INDEX operations_status_created ON operations (status, created_at DESC, id DESC);
CREATE INDEX operations_project_created ON operations (project_id, created_at DESC, id DESC);
CREATE INDEX operations_step_created ON operations (step, created_at DESC, id DESC);
-- Recent failures per repository.
CREATE INDEX operations_project_failed ON operations (project_id, finished_at DESC NULLS LAST)
    WHERE status = 'ASYNC_OPERATION_STATUS_FAILED';
-- Open remediation PRs per repository.
CREATE INDEX assessments_pr_open ON assessments (finding_id) WHERE remediation_status = 'PR_OPEN';
-- Workers seen recently (from the heartbeats of the operations they ran).
CREATE INDEX operations_heartbeat ON operations (heartbeat_at) WHERE heartbeat_at IS NOT NULL;
-- Jobs per minute over the last hour.
CREATE INDEX operation_events_at ON operation_events (at);
