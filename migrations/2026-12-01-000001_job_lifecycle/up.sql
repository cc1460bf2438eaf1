-- The job lifecycle as a state machine (src/lifecycle).

-- Claims since the job's last settled attempt: a start that dies (SIGKILL, OOM, crash) never
-- settles, so this counts crash-looping starts in Postgres, where parking and rescue (which
-- republish fresh messages and so reset the broker's delivery count) cannot reset it.
ALTER TABLE operations ADD COLUMN unsettled_starts integer NOT NULL DEFAULT 0;
-- Which worker process holds (or last held) the operation: `host/pid`, for ops and tests.
ALTER TABLE operations ADD COLUMN claimed_by text;

-- The no-op steps are gone: `context` became part of `generate`, and so did `check` (the
-- patcher checks the policy before it returns a patch).
UPDATE operations SET step = 'generate' WHERE step IN ('context', 'check');
UPDATE operation_events SET step = 'generate' WHERE step IN ('context', 'check');
ALTER TABLE operations ADD CONSTRAINT operations_step_check CHECK (step IN (
    'claim', 'clone', 'generate', 'lock', 'commit', 'push', 'pull_request', 'write_back'));
ALTER TABLE operation_events ADD CONSTRAINT operation_events_step_check CHECK (step IN (
    'claim', 'clone', 'generate', 'lock', 'commit', 'push', 'pull_request', 'write_back'));
ALTER TABLE assessments ADD CONSTRAINT assessments_remediation_status_check
    CHECK (remediation_status IN ('PR_OPEN', 'BRANCH_PUSHED', 'FAILED'));

-- The relay quarantines a row it cannot publish: it records why (last_error), counts the
-- tries (publish_attempts) and leaves the row alone until next_attempt_at, so one bad row
-- never holds back the rows behind it.
ALTER TABLE outbox ADD COLUMN next_attempt_at timestamptz;
