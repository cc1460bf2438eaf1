DROP TABLE outbox;
DROP TABLE operation_events;
DROP TABLE operations;
DROP TABLE assessments;
DROP TABLE findings;
DROP TABLE projects;
DROP TABLE organizations;
