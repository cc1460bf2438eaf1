-- The `test` step (the project's own tests in the sandbox) runs between `lock` and `commit`.
ALTER TABLE operations DROP CONSTRAINT operations_step_check;
ALTER TABLE operations ADD CONSTRAINT operations_step_check CHECK (step IN (
    'claim', 'clone', 'generate', 'lock', 'test', 'commit', 'push', 'pull_request', 'write_back'));
ALTER TABLE operation_events DROP CONSTRAINT operation_events_step_check;
ALTER TABLE operation_events ADD CONSTRAINT operation_events_step_check CHECK (step IN (
    'claim', 'clone', 'generate', 'lock', 'test', 'commit', 'push', 'pull_request', 'write_back'));
