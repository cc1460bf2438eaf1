//! `remediator import` and migrations against a real database.

mod support;

use diesel::prelude::*;
use diesel_async::RunQueryDsl;
use remediator::commands::import;
use remediator::db::schema::{assessments, findings, organizations, projects};
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
    let first = import::import(&pool, import::parse(&text).unwrap())
        .await
        .unwrap();
    assert_eq!(first.read, 10);
    assert_eq!(first.written, 10);
    let after_first = counts(&pool).await;
    assert_eq!(after_first, [2, 2, 3, 3]);
    let second = import::import(&pool, import::parse(&text).unwrap())
        .await
        .unwrap();
    assert_eq!(second.written, 0, "identical rows are not rewritten");
    assert_eq!(counts(&pool).await, after_first);

    // A changed field is an update, by id.
    let changed = text.replace("Command injection in lodash template", "updated summary");
    let third = import::import(&pool, import::parse(&changed).unwrap())
        .await
        .unwrap();
    assert_eq!(third.written, 1);
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
    let err = import::parse(&bad_status.to_string())
        .unwrap_err()
        .to_string();
    assert!(err.contains("assessments[2].status"), "{err}");

    let mut bad_uuid = good.clone();
    bad_uuid["findings"][1]["project_id"] = "not-a-uuid".into();
    let err = import::parse(&bad_uuid.to_string())
        .unwrap_err()
        .to_string();
    assert!(err.contains("findings[1].project_id"), "{err}");

    let mut unknown_field = good.clone();
    unknown_field["projects"][0]["colour"] = "blue".into();
    let err = import::parse(&unknown_field.to_string())
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("projects[0]") && err.contains("colour"),
        "{err}"
    );

    // Well-formed but referring to nothing: detected while writing, and everything rolls back.
    let mut dangling = good.clone();
    dangling["assessments"][1]["finding_id"] = Uuid::new_v4().to_string().into();
    let err = import::import(&pool, import::parse(&dangling.to_string()).unwrap())
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
    assert_eq!(applied.len(), 2);
    remediator::db::ensure_migrated(&pool).await.unwrap();
    assert!(remediator::db::migrate(&pool).await.unwrap().is_empty());
}
