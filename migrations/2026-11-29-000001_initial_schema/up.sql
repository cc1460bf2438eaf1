-- The whole data model of Remediator. Field names follow Chainloop's API where one exists.

CREATE TABLE organizations (
    id          uuid PRIMARY KEY,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE projects (
    id              uuid PRIMARY KEY,
    organization_id uuid NOT NULL REFERENCES organizations (id),
    name            text NOT NULL,
    repository_url  text NOT NULL,
    default_branch  text NOT NULL DEFAULT 'main',
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX projects_organization_id ON projects (organization_id);

CREATE TABLE findings (
    id                 uuid PRIMARY KEY,
    project_id         uuid NOT NULL REFERENCES projects (id),
    project_version_id uuid,
    vulnerability_id   text NOT NULL,
    aliases            text[] NOT NULL DEFAULT '{}',
    severity           text NOT NULL DEFAULT 'UNKNOWN',
    summary            text NOT NULL DEFAULT '',
    package_name       text NOT NULL,
    ecosystem          text NOT NULL,
    purl               text,
    installed_version  text NOT NULL,
    fixed_versions     text[] NOT NULL DEFAULT '{}',
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX findings_project_id ON findings (project_id);

CREATE TABLE assessments (
    id                      uuid PRIMARY KEY,
    finding_id              uuid NOT NULL REFERENCES findings (id),
    status                  text NOT NULL CHECK (status IN (
                                'ASSESSMENT_STATUS_AFFECTED', 'ASSESSMENT_STATUS_NOT_AFFECTED',
                                'ASSESSMENT_STATUS_UNDER_INVESTIGATION', 'ASSESSMENT_STATUS_FIXED')),
    justification           text,
    remediation_branch_name text,
    remediation_pr_url      text,
    remediation_pr_number   integer,
    remediation_status      text,
    remediation_confidence  double precision,
    created_at              timestamptz NOT NULL DEFAULT now(),
    updated_at              timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX assessments_finding_id ON assessments (finding_id);

CREATE TABLE operations (
    id                 uuid PRIMARY KEY,
    organization_id    uuid NOT NULL REFERENCES organizations (id),
    kind               text NOT NULL,
    status             text NOT NULL CHECK (status IN (
                           'ASYNC_OPERATION_STATUS_PENDING', 'ASYNC_OPERATION_STATUS_RUNNING',
                           'ASYNC_OPERATION_STATUS_SUCCEEDED', 'ASYNC_OPERATION_STATUS_FAILED',
                           'ASYNC_OPERATION_STATUS_CANCELLED')),
    resource_type      text NOT NULL,
    resource_id        uuid NOT NULL,
    project_id         uuid NOT NULL REFERENCES projects (id),
    project_version_id uuid,
    step               text,
    attempts           integer NOT NULL DEFAULT 0,
    output             jsonb,
    error_message      text,
    created_at         timestamptz NOT NULL DEFAULT now(),
    started_at         timestamptz,
    finished_at        timestamptz,
    heartbeat_at       timestamptz,
    updated_at         timestamptz NOT NULL DEFAULT now()
);
-- Invariant 3: one live operation per resource, enforced here so intake replicas cannot race.
CREATE UNIQUE INDEX operations_one_live_per_resource ON operations (resource_type, resource_id)
    WHERE status IN ('ASYNC_OPERATION_STATUS_PENDING', 'ASYNC_OPERATION_STATUS_RUNNING');
CREATE INDEX operations_org_created ON operations (organization_id, created_at DESC, id);

CREATE TABLE operation_events (
    id           bigserial PRIMARY KEY,
    operation_id uuid NOT NULL REFERENCES operations (id) ON DELETE CASCADE,
    at           timestamptz NOT NULL DEFAULT now(),
    kind         text NOT NULL CHECK (kind IN ('status', 'step', 'attempt_error', 'note')),
    status       text,
    step         text,
    attempt      integer,
    message      text
);
CREATE INDEX operation_events_operation ON operation_events (operation_id, id);

-- Transactional outbox: written with the operation, published by the relay.
CREATE TABLE outbox (
    id            bigserial PRIMARY KEY,
    operation_id  uuid NOT NULL REFERENCES operations (id) ON DELETE CASCADE,
    payload       jsonb NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    published_at  timestamptz,
    publish_attempts integer NOT NULL DEFAULT 0,
    last_error    text
);
CREATE INDEX outbox_unpublished ON outbox (id) WHERE published_at IS NULL;
