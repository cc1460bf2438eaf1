DROP INDEX IF EXISTS operation_events_at;
DROP INDEX IF EXISTS operations_heartbeat;
DROP INDEX IF EXISTS operations_project_failed;
DROP INDEX IF EXISTS operations_step_created;
DROP INDEX IF EXISTS operations_project_created;
DROP INDEX IF EXISTS operations_status_created;
DROP INDEX IF EXISTS operations_created_id;
DROP TABLE IF EXISTS console_audit;
