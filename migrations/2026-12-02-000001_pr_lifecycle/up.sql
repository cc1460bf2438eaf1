-- Issue 14: the unit of a pull request is the package fix, and a pull request is followed
-- after it is opened.

-- One row per package fix of a project: the branch, the pull request it has (or had), the
-- version it proposes and the advisories it lists. The unique key is what serialises two
-- workers fixing the same package: each job takes this row FOR UPDATE before it pushes, so
-- the second one finds the first one's pull request instead of opening another.
CREATE TABLE remediation_fixes (
    id             uuid PRIMARY KEY,
    project_id     uuid NOT NULL REFERENCES projects (id),
    ecosystem      text NOT NULL,
    package_name   text NOT NULL,
    branch_name    text NOT NULL,
    forge          text,
    -- NULL until the first pull request (or plain-git branch) exists.
    state          text CHECK (state IN ('PR_OPEN', 'BRANCH_PUSHED', 'PR_MERGED', 'PR_CLOSED')),
    target_version text,
    advisories     text[] NOT NULL DEFAULT '{}',
    pr_number      integer,
    pr_url         text,
    merged_at      timestamptz,
    closed_at      timestamptz,
    -- When the reconciler last asked the forge about the pull request.
    checked_at     timestamptz,
    -- When a refresh found a branch someone else pushed to and said so on the pull request
    -- (once); cleared when a job records the pull request again.
    left_alone_at  timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT remediation_fixes_one_per_package UNIQUE (project_id, ecosystem, package_name)
);
CREATE INDEX remediation_fixes_open ON remediation_fixes (checked_at NULLS FIRST)
    WHERE state = 'PR_OPEN';
CREATE INDEX remediation_fixes_pr_url ON remediation_fixes (pr_url);

-- Which fix an assessment's write-back belongs to, so a merge or close reaches every
-- assessment the pull request covers.
ALTER TABLE assessments ADD COLUMN remediation_fix_id uuid REFERENCES remediation_fixes (id);
CREATE INDEX assessments_remediation_fix ON assessments (remediation_fix_id);

ALTER TABLE assessments DROP CONSTRAINT assessments_remediation_status_check;
ALTER TABLE assessments ADD CONSTRAINT assessments_remediation_status_check
    CHECK (remediation_status IN ('PR_OPEN', 'BRANCH_PUSHED', 'PR_MERGED', 'PR_CLOSED', 'FAILED'));

-- Webhook deliveries already applied, by the forge's delivery id: a replayed delivery
-- changes nothing.
CREATE TABLE webhook_deliveries (
    forge        text NOT NULL,
    delivery_id  text NOT NULL,
    event        text NOT NULL,
    outcome      text NOT NULL,
    received_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (forge, delivery_id)
);
