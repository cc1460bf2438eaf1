-- What the intake runs per accepted request (src/db/intake.rs), statement for statement: the
-- look-up (rate-limit take, off in benches as in bench/lib.sh, plus the assessment joined to its
-- finding and project and the package's and the group's fix records), then the write CTE
-- (operation, event and outbox row), each in its own implicit transaction as the intake runs
-- them. The assessment comes from a sequence so every request takes another one, like the load
-- generator does. Keep in step with LOOK_UP and CREATE_LIVE_WITH_JOB.
WITH pick AS (SELECT md5('p' || nextval('bench_pick'))::uuid AS id),
take AS (
    INSERT INTO intake_rate_buckets AS b (organization_id, tokens, refilled_at)
    SELECT :org_id, 0 - 1, now() WHERE false
    ON CONFLICT (organization_id) DO UPDATE
    SET tokens = LEAST(0, b.tokens
                 + GREATEST(0, EXTRACT(EPOCH FROM (now() - b.refilled_at))::float8) * 0) - 1,
        refilled_at = now()
    WHERE LEAST(0, b.tokens
                + GREATEST(0, EXTRACT(EPOCH FROM (now() - b.refilled_at))::float8) * 0) >= 1
    RETURNING 1
)
SELECT (NOT false OR EXISTS (SELECT 1 FROM take)) AS granted,
       (SELECT LEAST(0, r.tokens
                     + GREATEST(0, EXTRACT(EPOCH FROM (now() - r.refilled_at))::float8) * 0)
          FROM intake_rate_buckets r WHERE r.organization_id = :org_id) AS available,
       t.aid, t.astatus, t.fid, t.vulnerability_id, t.aliases, t.severity, t.summary,
       t.package_name, t.ecosystem, t.purl, t.installed_version, t.fixed_versions, t.pid,
       t.repository_url, t.default_branch,
       pf.state AS pf_state, pf.target_version AS pf_target, pf.pr_url AS pf_url,
       pf.closed_at AS pf_closed, (pf.id IS NOT NULL) AS has_pf,
       gf.state AS gf_state, gf.target_version AS gf_target, gf.pr_url AS gf_url,
       gf.closed_at AS gf_closed, (gf.id IS NOT NULL) AS has_gf
  FROM (SELECT 1) AS request
  LEFT JOIN (
      SELECT a.id AS aid, a.status AS astatus, f.id AS fid, f.project_version_id,
             f.vulnerability_id, f.aliases, f.severity, f.summary, f.package_name, f.ecosystem,
             f.purl, f.installed_version, f.fixed_versions, p.id AS pid, p.repository_url,
             p.default_branch
        FROM pick
        JOIN assessments a ON a.id = pick.id
        JOIN findings f ON f.id = a.finding_id
        JOIN projects p ON p.id = f.project_id
       WHERE p.organization_id = :org_id
  ) AS t ON true
  LEFT JOIN remediation_fixes pf
    ON pf.project_id = t.pid AND pf.ecosystem = t.ecosystem AND pf.package_name = t.package_name
  LEFT JOIN remediation_fixes gf
    ON gf.project_id = t.pid AND gf.ecosystem = t.ecosystem AND gf.package_name = '*' \gset
WITH created AS (
    INSERT INTO operations (id, organization_id, kind, status, resource_type, resource_id,
                            project_id, project_version_id)
    VALUES (gen_random_uuid(), :org_id, 'auto_remediation', 'ASYNC_OPERATION_STATUS_PENDING',
            'assessment', :aid, :pid, NULL)
    ON CONFLICT (resource_type, resource_id)
       WHERE status IN ('ASYNC_OPERATION_STATUS_PENDING', 'ASYNC_OPERATION_STATUS_RUNNING')
    DO NOTHING RETURNING id
), event AS (
    INSERT INTO operation_events (operation_id, kind, status)
    SELECT id, 'status', 'ASYNC_OPERATION_STATUS_PENDING' FROM created
), job AS (
    INSERT INTO outbox (operation_id, payload)
    SELECT id, jsonb_build_object('type', 'remediation.v1', 'operation_id', id::text,
                                  'attempt', 1, 'trace_id', md5(random()::text))
      FROM created
)
SELECT id, true AS created FROM created
UNION ALL
SELECT id, false FROM operations
 WHERE resource_type = 'assessment' AND resource_id = :aid
   AND status IN ('ASYNC_OPERATION_STATUS_PENDING', 'ASYNC_OPERATION_STATUS_RUNNING')
   AND NOT EXISTS (SELECT 1 FROM created);
