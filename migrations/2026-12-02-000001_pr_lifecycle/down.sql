DROP TABLE webhook_deliveries;
UPDATE assessments SET remediation_status = 'PR_OPEN'
    WHERE remediation_status IN ('PR_MERGED', 'PR_CLOSED');
ALTER TABLE assessments DROP CONSTRAINT assessments_remediation_status_check;
ALTER TABLE assessments ADD CONSTRAINT assessments_remediation_status_check
    CHECK (remediation_status IN ('PR_OPEN', 'BRANCH_PUSHED', 'FAILED'));
DROP INDEX assessments_remediation_fix;
ALTER TABLE assessments DROP COLUMN remediation_fix_id;
DROP TABLE remediation_fixes;
