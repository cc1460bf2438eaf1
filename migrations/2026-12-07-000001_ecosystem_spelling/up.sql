-- Ecosystems are compared as OSV spells them (src/ecosystem.rs). Catalogs imported before the
-- import normalised the spelling may hold `pypi` or `cargo`: rewrite those rows so a job's
-- queries find them. A fix row is left as it is where the OSV spelling already has one (the
-- unique key would refuse the rename; the older row keeps its own spelling and history).
UPDATE findings SET ecosystem = CASE lower(btrim(ecosystem))
        WHEN 'npm' THEN 'npm'
        WHEN 'pypi' THEN 'PyPI'
        WHEN 'crates.io' THEN 'crates.io'
        WHEN 'cargo' THEN 'crates.io'
        WHEN 'go' THEN 'Go'
        WHEN 'golang' THEN 'Go'
        WHEN 'maven' THEN 'Maven'
    END
WHERE lower(btrim(ecosystem)) IN ('npm', 'pypi', 'crates.io', 'cargo', 'go', 'golang', 'maven')
  AND ecosystem NOT IN ('npm', 'PyPI', 'crates.io', 'Go', 'Maven');

UPDATE remediation_fixes r SET ecosystem = CASE lower(btrim(r.ecosystem))
        WHEN 'npm' THEN 'npm'
        WHEN 'pypi' THEN 'PyPI'
        WHEN 'crates.io' THEN 'crates.io'
        WHEN 'cargo' THEN 'crates.io'
        WHEN 'go' THEN 'Go'
        WHEN 'golang' THEN 'Go'
        WHEN 'maven' THEN 'Maven'
    END
WHERE lower(btrim(r.ecosystem)) IN ('npm', 'pypi', 'crates.io', 'cargo', 'go', 'golang', 'maven')
  AND r.ecosystem NOT IN ('npm', 'PyPI', 'crates.io', 'Go', 'Maven')
  AND NOT EXISTS (
      SELECT 1 FROM remediation_fixes o
      WHERE o.project_id = r.project_id AND o.package_name = r.package_name
        AND o.ecosystem = CASE lower(btrim(r.ecosystem))
            WHEN 'npm' THEN 'npm' WHEN 'pypi' THEN 'PyPI' WHEN 'crates.io' THEN 'crates.io'
            WHEN 'cargo' THEN 'crates.io' WHEN 'go' THEN 'Go' WHEN 'golang' THEN 'Go'
            WHEN 'maven' THEN 'Maven' END);
