UPDATE operations SET step = 'lock' WHERE step = 'test';
UPDATE operation_events SET step = 'lock' WHERE step = 'test';
ALTER TABLE operations DROP CONSTRAINT operations_step_check;
ALTER TABLE operations ADD CONSTRAINT operations_step_check CHECK (step IN (
    'claim', 'clone', 'generate', 'lock', 'commit', 'push', 'pull_request', 'write_back'));
ALTER TABLE operation_events DROP CONSTRAINT operation_events_step_check;
ALTER TABLE operation_events ADD CONSTRAINT operation_events_step_check CHECK (step IN (
    'claim', 'clone', 'generate', 'lock', 'commit', 'push', 'pull_request', 'write_back'));
