ALTER TABLE projects
    DROP CONSTRAINT projects_test_install_needs_command,
    DROP COLUMN test_command,
    DROP COLUMN test_install;
