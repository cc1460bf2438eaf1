//! `remediator import` and migrations against a real database.

mod support;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use remediator::db::schema::{assessments, findings, organizations, projects};
use remediator::import;
use remediator::repository_admission::RepositoryRules;
use support::app::{Catalog, catalog_json, create_database, test_settings};
use uuid::Uuid;

async fn counts(pool: &remediator::db::DbPool) -> [i64; 4] {
    let mut conn = pool.get().await.unwrap();
    [
        organizations::table
            .count()
            .get_result(&mut conn)
            .await
            .unwrap(),
        projects::table.count().get_result(&mut conn).await.unwrap(),
        findings::table.count().get_result(&mut conn).await.unwrap(),
        assessments::table
            .count()
            .get_result(&mut conn)
            .await
            .unwrap(),
    ]
}

/// The default rules (https and ssh only, no private addresses), as a fresh install imports.
fn rules() -> RepositoryRules {
    RepositoryRules::default()
}

fn fresh_catalog() -> Catalog {
    Catalog {
        org: Uuid::new_v4(),
        other_org: Uuid::new_v4(),
        project: Uuid::new_v4(),
        affected: Uuid::new_v4(),
        not_affected: Uuid::new_v4(),
        other_org_assessment: Uuid::new_v4(),
    }
}

#[tokio::test]
async fn importing_twice_changes_nothing_the_second_time() {
    let settings = test_settings().await;
    let pool = remediator::db::pool(&settings.database).unwrap();
    let text = catalog_json(&fresh_catalog(), "https://github.com/acme/web.git");
    let first = import::import(&pool, import::parse(&text, &rules()).unwrap())
        .await
        .unwrap();
    assert_eq!(first.read, 10);
    assert_eq!(first.written, 10);
    let after_first = counts(&pool).await;
    assert_eq!(after_first, [2, 2, 3, 3]);
    let second = import::import(&pool, import::parse(&text, &rules()).unwrap())
        .await
        .unwrap();
    assert_eq!(second.written, 0, "identical rows are not rewritten");
    assert_eq!(counts(&pool).await, after_first);

    // A changed field is an update, by id.
    let changed = text.replace("Command injection in lodash template", "updated summary");
    let third = import::import(&pool, import::parse(&changed, &rules()).unwrap())
        .await
        .unwrap();
    assert_eq!(third.written, 1);
}

/// The stored test commands of `project` (install, command).
async fn stored_test(
    pool: &remediator::db::DbPool,
    project: Uuid,
) -> (Option<String>, Option<String>) {
    let mut conn = pool.get().await.unwrap();
    projects::table
        .find(project)
        .select((projects::test_install, projects::test_command))
        .first(&mut conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_projects_test_commands_round_trip_into_the_jobs_target() {
    let settings = test_settings().await;
    let pool = remediator::db::pool(&settings.database).unwrap();
    let c = fresh_catalog();
    let mut file: serde_json::Value =
        serde_json::from_str(&catalog_json(&c, "https://github.com/acme/web.git")).unwrap();
    file["projects"][0]["test"] =
        serde_json::json!({"install": "npm ci", "command": "npm run 'test:unit'"});
    let import_file = |file: &serde_json::Value| {
        let parsed = import::parse(&file.to_string(), &rules()).unwrap();
        let pool = pool.clone();
        async move { import::import(&pool, parsed).await.unwrap().written }
    };
    assert_eq!(import_file(&file).await, 10);
    assert_eq!(
        stored_test(&pool, c.project).await,
        (Some("npm ci".into()), Some("npm run 'test:unit'".into()))
    );
    // The job reads them with its target, typed, as the intake and the worker load it.
    let target = {
        let mut conn = pool.get().await.unwrap();
        remediator::db::catalog::remediation_target(&mut conn, c.affected.into(), None)
            .await
            .unwrap()
            .unwrap()
    };
    assert_eq!(
        target.test_commands,
        Some(remediator::verify::CommandOverride {
            install: "npm ci".into(),
            command: "npm run 'test:unit'".into(),
        })
    );
    assert_eq!(
        import_file(&file).await,
        0,
        "the same commands change nothing"
    );

    // A changed command is an update; an install left out is stored as none.
    file["projects"][0]["test"] = serde_json::json!({"command": "make check"});
    assert_eq!(import_file(&file).await, 1);
    assert_eq!(
        stored_test(&pool, c.project).await,
        (None, Some("make check".into()))
    );
    // A re-import without `test` removes them; the other project never had any.
    file["projects"][0].as_object_mut().unwrap().remove("test");
    assert_eq!(import_file(&file).await, 1);
    assert_eq!(stored_test(&pool, c.project).await, (None, None));
    let other = Uuid::from_u128(c.project.as_u128() ^ 1);
    assert_eq!(stored_test(&pool, other).await, (None, None));

    // An unusable command is refused naming its field, and nothing is written.
    file["projects"][1]["test"] = serde_json::json!({"command": "npm test -- \"open"});
    let err = import::parse(&file.to_string(), &rules())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(
            "invalid import file at `projects[1].test.command`: a double quote is not closed"
        ),
        "{err}"
    );
    assert_eq!(stored_test(&pool, other).await, (None, None));
}

#[tokio::test]
async fn a_malformed_file_is_rejected_whole_with_the_bad_path() {
    let settings = test_settings().await;
    let pool = remediator::db::pool(&settings.database).unwrap();
    let c = fresh_catalog();
    let good: serde_json::Value =
        serde_json::from_str(&catalog_json(&c, "https://github.com/acme/web.git")).unwrap();

    let mut bad_status = good.clone();
    bad_status["assessments"][2]["status"] = "AFFECTED".into();
    let err = import::parse(&bad_status.to_string(), &rules())
        .unwrap_err()
        .to_string();
    assert!(err.contains("assessments[2].status"), "{err}");

    let mut bad_uuid = good.clone();
    bad_uuid["findings"][1]["project_id"] = "not-a-uuid".into();
    let err = import::parse(&bad_uuid.to_string(), &rules())
        .unwrap_err()
        .to_string();
    assert!(err.contains("findings[1].project_id"), "{err}");

    // An ecosystem is one line; the message names the ones Remediator fixes by itself.
    let mut blank_ecosystem = good.clone();
    blank_ecosystem["findings"][1]["ecosystem"] = " ".into();
    let err = import::parse(&blank_ecosystem.to_string(), &rules())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("findings[1].ecosystem") && err.contains("npm, PyPI, crates.io, Go, Maven"),
        "{err}"
    );

    let mut unknown_field = good.clone();
    unknown_field["projects"][0]["colour"] = "blue".into();
    let err = import::parse(&unknown_field.to_string(), &rules())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("projects[0]") && err.contains("colour"),
        "{err}"
    );

    // Well-formed but referring to nothing: detected while writing, and everything rolls back.
    let mut dangling = good.clone();
    dangling["assessments"][1]["finding_id"] = Uuid::new_v4().to_string().into();
    let err = import::import(
        &pool,
        import::parse(&dangling.to_string(), &rules()).unwrap(),
    )
    .await
    .unwrap_err()
    .to_string();
    assert!(err.contains("assessments[1].finding_id"), "{err}");
    assert_eq!(counts(&pool).await, [0, 0, 0, 0], "nothing was written");
}

#[tokio::test]
async fn servers_refuse_a_database_that_is_behind() {
    let mut settings = test_settings().await;
    settings.database.url = secrecy::SecretString::from(create_database().await);
    let pool = remediator::db::pool(&settings.database).unwrap();
    let err = remediator::db::ensure_migrated(&pool)
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("remediator migrate"), "{err}");
    let applied = remediator::db::migrate(&pool).await.unwrap();
    let on_disk = std::fs::read_dir("migrations")
        .unwrap()
        .filter(|entry| entry.as_ref().unwrap().path().join("up.sql").exists())
        .count();
    assert_eq!(applied.len(), on_disk);
    remediator::db::ensure_migrated(&pool).await.unwrap();
    assert!(remediator::db::migrate(&pool).await.unwrap().is_empty());
}

fn example(name: &str) -> String {
    std::fs::read_to_string(format!("{}/examples/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// A database with one organisation and project (from the native format) to import into.
async fn pool_with_project() -> (remediator::db::DbPool, Uuid) {
    let settings = test_settings().await;
    let pool = remediator::db::pool(&settings.database).unwrap();
    let c = fresh_catalog();
    let text = catalog_json(&c, "https://github.com/acme/web.git");
    import::import(&pool, import::parse(&text, &rules()).unwrap())
        .await
        .unwrap();
    (pool, c.project)
}

/// (severity, ecosystem, fixed versions, assessment status) of a finding, by its derived id.
async fn finding_row(
    pool: &remediator::db::DbPool,
    project: Uuid,
    vulnerability: &str,
    package: &str,
    version: &str,
) -> (String, String, Vec<String>, String) {
    let mut conn = pool.get().await.unwrap();
    let id = import::finding_id(project.into(), vulnerability, package, version);
    let (severity, ecosystem, fixed, project_id): (String, String, Vec<String>, Uuid) =
        findings::table
            .find(id)
            .select((
                findings::severity,
                findings::ecosystem,
                findings::fixed_versions,
                findings::project_id,
            ))
            .first(&mut conn)
            .await
            .unwrap_or_else(|e| panic!("finding {vulnerability} {package} {version}: {e}"));
    assert_eq!(project_id, project);
    let status: String = assessments::table
        .find(import::assessment_id(id))
        .filter(assessments::finding_id.eq(id))
        .select(assessments::status)
        .first(&mut conn)
        .await
        .unwrap();
    (severity, ecosystem, fixed, status)
}

async fn import_report(
    pool: &remediator::db::DbPool,
    name: &str,
    project: Uuid,
) -> anyhow::Result<import::ImportSummary> {
    let document = import::parse_document(&example(name), Some(project.into()), &rules())?;
    import::import_document(pool, document).await
}

#[tokio::test]
async fn scanner_reports_import_into_a_project_once() {
    let (pool, project) = pool_with_project().await;
    let before = counts(&pool).await;
    assert_eq!(before, [2, 2, 3, 3]);

    for (name, findings) in [
        ("osv-scanner.json", 4),
        ("grype.json", 4),
        ("cyclonedx-vex.json", 6),
    ] {
        let first = import_report(&pool, name, project).await.unwrap();
        assert_eq!(first.read, 2 * findings, "{name}");
        assert_eq!(first.written, 2 * findings, "{name}");
        let second = import_report(&pool, name, project).await.unwrap();
        assert_eq!(second.read, 2 * findings, "{name}");
        assert_eq!(
            second.written, 0,
            "{name}: the same report twice changes nothing"
        );
    }
    assert_eq!(counts(&pool).await, [2, 2, 3 + 14, 3 + 14]);

    let affected = "ASSESSMENT_STATUS_AFFECTED".to_owned();
    let strings = |list: &[&str]| list.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(
        finding_row(&pool, project, "GHSA-j8r2-6x86-q33q", "requests", "2.28.0").await,
        (
            "MEDIUM".into(),
            "PyPI".into(),
            strings(&["2.31.0"]),
            affected.clone()
        )
    );
    assert_eq!(
        finding_row(&pool, project, "GO-2023-1571", "golang.org/x/net", "0.5.0").await,
        (
            "HIGH".into(),
            "Go".into(),
            strings(&["0.7.0"]),
            affected.clone()
        )
    );
    assert_eq!(
        finding_row(
            &pool,
            project,
            "GHSA-jfh8-c2jp-5v3q",
            "org.apache.logging.log4j:log4j-core",
            "2.14.1"
        )
        .await,
        (
            "CRITICAL".into(),
            "Maven".into(),
            strings(&["2.3.1", "2.12.2", "2.15.0"]),
            affected.clone()
        )
    );
    assert_eq!(
        finding_row(&pool, project, "CVE-2020-28500", "lodash", "4.17.20").await,
        (
            "MEDIUM".into(),
            "npm".into(),
            strings(&["4.17.21"]),
            "ASSESSMENT_STATUS_NOT_AFFECTED".into()
        )
    );
    assert_eq!(
        finding_row(&pool, project, "GO-2023-1571", "golang.org/x/net", "v0.5.0")
            .await
            .3,
        "ASSESSMENT_STATUS_FIXED"
    );
    assert_eq!(
        finding_row(&pool, project, "CVE-2023-32681", "requests", "2.28.0")
            .await
            .3,
        "ASSESSMENT_STATUS_UNDER_INVESTIGATION"
    );
}

#[tokio::test]
async fn a_rescan_keeps_triage_but_a_vex_statement_is_written_as_stated() {
    let (pool, project) = pool_with_project().await;
    import_report(&pool, "grype.json", project).await.unwrap();
    import_report(&pool, "cyclonedx-vex.json", project)
        .await
        .unwrap();

    let triage = |vulnerability: &'static str, package: &'static str, version: &'static str| {
        let pool = pool.clone();
        async move {
            let id = import::assessment_id(import::finding_id(
                project.into(),
                vulnerability,
                package,
                version,
            ));
            let mut conn = pool.get().await.unwrap();
            diesel::update(assessments::table.find(id))
                .set(assessments::status.eq("ASSESSMENT_STATUS_NOT_AFFECTED"))
                .execute(&mut conn)
                .await
                .unwrap();
        }
    };
    // Someone triages a Grype match and a VEX-stated finding.
    triage("GHSA-35jh-r3h4-6jhm", "lodash", "4.17.20").await;
    triage("CVE-2021-23337", "lodash", "4.17.20").await;
    // And a CycloneDX finding without analysis (a plain scan).
    triage("CVE-2022-25883", "semver", "7.3.7").await;

    let grype = import_report(&pool, "grype.json", project).await.unwrap();
    assert_eq!(grype.written, 0, "a re-scan does not undo triage");
    assert_eq!(
        finding_row(&pool, project, "GHSA-35jh-r3h4-6jhm", "lodash", "4.17.20")
            .await
            .3,
        "ASSESSMENT_STATUS_NOT_AFFECTED"
    );

    let vex = import_report(&pool, "cyclonedx-vex.json", project)
        .await
        .unwrap();
    assert_eq!(vex.written, 1, "only the VEX statement is restored");
    assert_eq!(
        finding_row(&pool, project, "CVE-2021-23337", "lodash", "4.17.20")
            .await
            .3,
        "ASSESSMENT_STATUS_AFFECTED"
    );
    assert_eq!(
        finding_row(&pool, project, "CVE-2022-25883", "semver", "7.3.7")
            .await
            .3,
        "ASSESSMENT_STATUS_NOT_AFFECTED"
    );
}

#[tokio::test]
async fn bad_scanner_imports_write_nothing() {
    let (pool, project) = pool_with_project().await;
    let before = counts(&pool).await;

    // Malformed: the path of the bad field, in the scanner's own document.
    let mut grype: serde_json::Value = serde_json::from_str(&example("grype.json")).unwrap();
    grype["matches"][2]["artifact"]["version"] = 5.into();
    let err = import::parse_document(&grype.to_string(), Some(project.into()), &rules())
        .unwrap_err()
        .to_string();
    assert!(err.contains("matches[2].artifact.version"), "{err}");

    let mut osv: serde_json::Value = serde_json::from_str(&example("osv-scanner.json")).unwrap();
    osv["results"][1]["packages"][0]["vulnerabilities"][0]["affected"][0]["ranges"] =
        "SEMVER".into();
    let err = import::parse_document(&osv.to_string(), Some(project.into()), &rules())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("results[1].packages[0].vulnerabilities[0].affected[0].ranges"),
        "{err}"
    );

    // Well-formed but for a project that does not exist: refused before any write.
    let missing = Uuid::new_v4();
    let err = import_report(&pool, "cyclonedx-vex.json", missing)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!("project {missing} does not exist")),
        "{err}"
    );

    // Not a format we know.
    let spdx = r#"{"spdxVersion": "SPDX-2.3", "packages": []}"#;
    let err = import::parse_document(spdx, Some(project.into()), &rules())
        .unwrap_err()
        .to_string();
    assert!(err.contains("unrecognised import file"), "{err}");
    let err = import::parse(spdx, &rules()).unwrap_err().to_string();
    assert!(err.contains("unrecognised import file"), "{err}");

    // The native format with --project, a scanner report without.
    let native = catalog_json(&fresh_catalog(), "https://github.com/acme/web.git");
    assert!(import::parse_document(&native, Some(project.into()), &rules()).is_err());
    assert!(import::parse_document(&example("osv-scanner.json"), None, &rules()).is_err());

    assert_eq!(counts(&pool).await, before, "nothing was written");
}

// ---- attacks on `remediator import` (issue 15) ---------------------------------------------

/// `catalog_json` with the first project's repository URL and branch replaced.
fn with_repository(c: &Catalog, url: &str, branch: &str) -> String {
    let mut file: serde_json::Value =
        serde_json::from_str(&catalog_json(c, "https://github.com/acme/web.git")).unwrap();
    file["projects"][0]["repository_url"] = url.into();
    file["projects"][0]["default_branch"] = branch.into();
    file.to_string()
}

#[tokio::test]
async fn attack_hostile_repository_urls_and_branches_are_refused_at_import_naming_the_field() {
    let settings = test_settings().await;
    let pool = remediator::db::pool(&settings.database).unwrap();
    let c = fresh_catalog();
    let long = format!("https://github.com/acme/{}", "a".repeat(1_000_000));
    for (url, branch, field, reason) in [
        ("file:///etc", "main", "repository_url", "git.allow_file"),
        (
            "http://169.254.169.254/latest/meta-data",
            "main",
            "repository_url",
            "git.allow_http",
        ),
        (
            "https://169.254.169.254/latest/meta-data",
            "main",
            "repository_url",
            "link-local",
        ),
        (
            "ssh://-oProxyCommand=touch/acme/web",
            "main",
            "repository_url",
            "'-'",
        ),
        (
            "--upload-pack=touch /tmp/pwned",
            "main",
            "repository_url",
            "whitespace",
        ),
        ("--upload-pack=touch", "main", "repository_url", "'-'"),
        (
            "ext::sh -c touch% /tmp/pwned",
            "main",
            "repository_url",
            "whitespace",
        ),
        ("ext::sh", "main", "repository_url", "remote helper"),
        (
            "https://github.com/acme/web\r\nx: y",
            "main",
            "repository_url",
            "control",
        ),
        (
            " https://github.com/acme/web.git",
            "main",
            "repository_url",
            "whitespace",
        ),
        (
            "https://github.com/acme/web.git ",
            "main",
            "repository_url",
            "whitespace",
        ),
        (long.as_str(), "main", "repository_url", "longer than 2048"),
        (
            "https://user:s3cretpass@github.com/acme/web.git",
            "main",
            "repository_url",
            "credentials",
        ),
        (
            "https://ghp_0123456789abcdefABCDEF@github.com/acme/web.git",
            "main",
            "repository_url",
            "credentials",
        ),
        (
            "https://github.com/acme/web.git",
            "--upload-pack=touch",
            "default_branch",
            "'-'",
        ),
        (
            "https://github.com/acme/web.git",
            "main\r\n",
            "default_branch",
            "control",
        ),
        (
            "https://github.com/acme/web.git",
            " main",
            "default_branch",
            "whitespace",
        ),
        (
            "https://github.com/acme/web.git",
            "a..b",
            "default_branch",
            "valid git branch",
        ),
    ] {
        // The default rules, exactly as `remediator import` builds them from the settings,
        // less the test settings' loopback allowance.
        let mut strict = settings.clone();
        strict.security.allow_private_networks = false;
        let rules = RepositoryRules::from_settings(&strict);
        let err = import::parse(&with_repository(&c, url, branch), &rules)
            .unwrap_err()
            .to_string();
        let shown = &url[..url.len().min(60)];
        assert!(
            err.contains(&format!("invalid import file at `projects[0].{field}`")),
            "{shown:?} {branch:?}: {err}"
        );
        assert!(err.contains(reason), "{shown:?} {branch:?}: {err}");
        for secret in ["s3cretpass", "ghp_0123", "upload-pack", "ProxyCommand"] {
            assert!(!err.contains(secret), "the error repeats it: {err}");
        }
        assert!(err.len() < 1000, "the error repeats the URL: {}", err.len());
    }
    assert_eq!(counts(&pool).await, [0, 0, 0, 0], "nothing was written");
}

#[tokio::test]
async fn local_repositories_import_when_the_config_allows_them_as_for_the_worker() {
    let mut settings = test_settings().await;
    let pool = remediator::db::pool(&settings.database).unwrap();
    for url in [
        "file:///srv/git/web.git",
        "http://127.0.0.1:8080/acme/web.git",
    ] {
        settings.git.allow_file = false;
        settings.git.allow_http = false;
        let c = fresh_catalog();
        let text = with_repository(&c, url, "main");
        assert!(
            import::parse(&text, &RepositoryRules::from_settings(&settings)).is_err(),
            "{url} without the allowance"
        );
        settings.git.allow_file = true;
        settings.git.allow_http = true;
        let file = import::parse(&text, &RepositoryRules::from_settings(&settings)).unwrap();
        import::import(&pool, file).await.unwrap();
    }
    // Loopback over http also needs the network allowance, as the worker's egress policy does.
    settings.security.allow_private_networks = false;
    let text = with_repository(
        &fresh_catalog(),
        "http://127.0.0.1:8080/acme/web.git",
        "main",
    );
    let err = import::parse(&text, &RepositoryRules::from_settings(&settings))
        .unwrap_err()
        .to_string();
    assert!(err.contains("allow_private_networks"), "{err}");
}

#[tokio::test]
async fn attack_nul_and_control_characters_are_refused_naming_the_field() {
    let settings = test_settings().await;
    let pool = remediator::db::pool(&settings.database).unwrap();
    let rules = RepositoryRules::from_settings(&settings);
    let good: serde_json::Value = serde_json::from_str(&catalog_json(
        &fresh_catalog(),
        "https://github.com/acme/web.git",
    ))
    .unwrap();
    for (path, value, expected) in [
        ("/findings/1/summary", "nul\u{0}here", "findings[1].summary"),
        (
            "/organizations/0/name",
            "Acme\u{0}",
            "organizations[0].name",
        ),
        (
            "/assessments/0/justification",
            "\u{0}",
            "assessments[0].justification",
        ),
        (
            "/findings/0/aliases/0",
            "CVE-\u{0}",
            "findings[0].aliases[0]",
        ),
        (
            "/findings/0/package_name",
            "lodash\u{1b}[2J",
            "findings[0].package_name",
        ),
        (
            "/findings/2/installed_version",
            "4.17.20\n",
            "findings[2].installed_version",
        ),
        ("/projects/1/name", "other\r", "projects[1].name"),
        ("/findings/0/summary", "bell\u{7}", "findings[0].summary"),
    ] {
        let mut file = good.clone();
        let (parent, key) = path.rsplit_once('/').unwrap();
        match file.pointer_mut(path) {
            Some(field) => *field = value.into(),
            None => {
                file.pointer_mut(parent).unwrap()[key] = value.into();
            }
        }
        let err = import::parse(&file.to_string(), &rules)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&format!("invalid import file at `{expected}`")),
            "{path}: {err}"
        );
        assert!(err.contains("control character U+"), "{path}: {err}");
    }
    // Multi-line text stays accepted.
    let mut file = good.clone();
    file["findings"][0]["summary"] = "line one\nline two\r\n\tindented".into();
    import::import(&pool, import::parse(&file.to_string(), &rules).unwrap())
        .await
        .unwrap();

    // In a scanner report, the path is the report's own.
    let project = good["projects"][0]["id"].as_str().unwrap().parse().unwrap();
    let mut grype: serde_json::Value = serde_json::from_str(&example("grype.json")).unwrap();
    grype["matches"][1]["vulnerability"]["description"] = "evil\u{0}".into();
    let err = import::parse_document(&grype.to_string(), Some(project), &rules)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("invalid Grype file at `matches[1].vulnerability.description`"),
        "{err}"
    );
}

#[tokio::test]
async fn attack_an_import_never_moves_a_record_to_another_organisation() {
    let settings = test_settings().await;
    let pool = remediator::db::pool(&settings.database).unwrap();
    let rules = RepositoryRules::from_settings(&settings);
    let c = fresh_catalog();
    let good: serde_json::Value =
        serde_json::from_str(&catalog_json(&c, "https://github.com/acme/web.git")).unwrap();
    import::import(&pool, import::parse(&good.to_string(), &rules).unwrap())
        .await
        .unwrap();
    let before = counts(&pool).await;
    let other_project = &good["projects"][1]["id"];

    // The project itself, a finding into the other organisation's project, and an assessment
    // onto the other organisation's finding: each refused whole, naming the record.
    let mut moved_project = serde_json::json!({"projects": [good["projects"][0].clone()]});
    moved_project["projects"][0]["organization_id"] = c.other_org.to_string().into();
    let mut moved_finding = serde_json::json!({"findings": [good["findings"][0].clone()]});
    moved_finding["findings"][0]["project_id"] = other_project.clone();
    let mut moved_assessment = serde_json::json!({"assessments": [good["assessments"][0].clone()]});
    moved_assessment["assessments"][0]["finding_id"] = good["findings"][2]["id"].clone();
    // The same moves with harmless changes around them, in one file.
    let mut mixed = good.clone();
    mixed["organizations"][0]["name"] = "Acme renamed".into();
    mixed["projects"][0]["organization_id"] = c.other_org.to_string().into();
    for (file, path, record) in [
        (
            moved_project,
            "projects[0].organization_id",
            format!("project {}", c.project),
        ),
        (
            moved_finding,
            "findings[0].project_id",
            format!("finding {}", good["findings"][0]["id"].as_str().unwrap()),
        ),
        (
            moved_assessment,
            "assessments[0].finding_id",
            format!("assessment {}", c.affected),
        ),
        (
            mixed,
            "projects[0].organization_id",
            format!("project {}", c.project),
        ),
    ] {
        let err = import::import(&pool, import::parse(&file.to_string(), &rules).unwrap())
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains(&format!("`{path}`")), "{err}");
        assert!(err.contains(&record), "{err}");
        assert!(err.contains("never changes the organisation"), "{err}");
    }
    // Nothing moved, nothing else written.
    assert_eq!(counts(&pool).await, before);
    let mut conn = pool.get().await.unwrap();
    let (organization, name): (Uuid, String) = projects::table
        .find(c.project)
        .inner_join(organizations::table)
        .select((projects::organization_id, organizations::name))
        .first(&mut conn)
        .await
        .unwrap();
    assert_eq!((organization, name.as_str()), (c.org, "Acme"));

    // Updates within the organisation are still imports like any other.
    let mut renamed = good.clone();
    renamed["projects"][0]["name"] = "web-renamed".into();
    renamed["findings"][1]["project_id"] = c.project.to_string().into();
    let summary = import::import(&pool, import::parse(&renamed.to_string(), &rules).unwrap())
        .await
        .unwrap();
    assert_eq!(summary.written, 1);
}

#[tokio::test]
async fn attack_an_oversized_import_file_is_refused_before_it_is_read() {
    let settings = test_settings().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.json");
    // A valid catalog padded with whitespace to just over the default 16 MiB.
    let c = fresh_catalog();
    let mut text = catalog_json(&c, "https://github.com/acme/web.git");
    text.push_str(&" ".repeat(16 * 1024 * 1024));
    std::fs::write(&file, &text).unwrap();
    let run = |extra: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_remediator"))
            .arg("import")
            .arg(&file)
            .args(extra)
            .env("DATABASE_URL", support::app::database_url(&settings))
            .env("RUST_LOG", "warn")
            .output()
            .unwrap()
    };
    let refused = run(&[]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success(), "{stderr}");
    assert!(
        stderr.contains("16777216") && stderr.contains("--max-bytes"),
        "{stderr}"
    );
    let pool = remediator::db::pool(&settings.database).unwrap();
    assert_eq!(counts(&pool).await, [0, 0, 0, 0]);

    // The flag raises the cap.
    let raised = run(&["--max-bytes", "40000000"]);
    let stdout = String::from_utf8_lossy(&raised.stdout);
    assert!(
        raised.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&raised.stderr)
    );
    assert!(stdout.contains("10 record(s) read"), "{stdout}");
    assert_eq!(counts(&pool).await, [2, 2, 3, 3]);
}
