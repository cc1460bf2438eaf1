DROP INDEX operations_pending_created;
DROP INDEX operations_running_heartbeat;
ALTER TABLE operations DROP COLUMN cancel_requested_at;
