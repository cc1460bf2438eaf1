-- What the intake runs per accepted request (src/api/remediation.rs), as one transaction:
-- catalog::remediation_target, operations::create_or_get_live (insert + its event) and
-- outbox::enqueue. The assessment comes from a sequence so every transaction takes another
-- one, like the load generator does.
BEGIN;
WITH pick AS (SELECT md5('p' || nextval('bench_pick'))::uuid AS id)
SELECT a.id AS aid, a.status AS astatus, f.id AS fid, f.vulnerability_id, f.aliases, f.severity,
       f.summary, f.package_name, f.ecosystem, f.purl, f.installed_version, f.fixed_versions,
       p.id AS pid, p.organization_id AS org, p.repository_url, p.default_branch
  FROM pick
  JOIN assessments a ON a.id = pick.id
  JOIN findings f ON f.id = a.finding_id
  JOIN projects p ON p.id = f.project_id
 WHERE p.organization_id = :org_id
 LIMIT 1 \gset
INSERT INTO operations (id, organization_id, kind, status, resource_type, resource_id,
                        project_id, project_version_id)
VALUES (gen_random_uuid(), :org, 'auto_remediation', 'ASYNC_OPERATION_STATUS_PENDING',
        'assessment', :aid, :pid, NULL)
ON CONFLICT (resource_type, resource_id)
   WHERE status IN ('ASYNC_OPERATION_STATUS_PENDING', 'ASYNC_OPERATION_STATUS_RUNNING')
DO NOTHING RETURNING id AS opid \gset
INSERT INTO operation_events (operation_id, kind, status, step, message)
VALUES (:opid, 'status', 'ASYNC_OPERATION_STATUS_PENDING', NULL, NULL);
INSERT INTO outbox (operation_id, payload)
VALUES (:opid, jsonb_build_object('type', 'remediation.v1', 'operation_id', :opid::text,
                                  'attempt', 1, 'trace_id', md5(random()::text)));
END;
