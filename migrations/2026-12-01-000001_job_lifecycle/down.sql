ALTER TABLE outbox DROP COLUMN next_attempt_at;
ALTER TABLE assessments DROP CONSTRAINT assessments_remediation_status_check;
ALTER TABLE operation_events DROP CONSTRAINT operation_events_step_check;
ALTER TABLE operations DROP CONSTRAINT operations_step_check;
ALTER TABLE operations DROP COLUMN claimed_by;
ALTER TABLE operations DROP COLUMN unsettled_starts;
