-- A cancel of a RUNNING operation is a request the worker honours at its next step boundary.
ALTER TABLE operations ADD COLUMN cancel_requested_at timestamptz;
ALTER TABLE operation_events DROP CONSTRAINT operation_events_kind_check;
ALTER TABLE operation_events ADD CONSTRAINT operation_events_kind_check
    CHECK (kind IN ('status', 'step', 'attempt_error', 'note'));
CREATE INDEX operations_running_heartbeat ON operations (heartbeat_at)
    WHERE status = 'ASYNC_OPERATION_STATUS_RUNNING';
CREATE INDEX operations_pending_created ON operations (created_at)
    WHERE status = 'ASYNC_OPERATION_STATUS_PENDING';
