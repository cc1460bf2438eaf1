-- A project's test commands as the import catalog sets them (`projects[].test`): the test
-- step's first choice, over the repository's `.remediator.toml` and the fleet's settings.
-- Unset on both: the test step looks elsewhere. An install without a test command means
-- nothing, so it is refused.
ALTER TABLE projects
    ADD COLUMN test_install text,
    ADD COLUMN test_command text,
    ADD CONSTRAINT projects_test_install_needs_command
        CHECK (test_install IS NULL OR test_command IS NOT NULL);
