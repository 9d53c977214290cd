//! `/healthz` and `/readyz` on both backends, and readiness through a
//! database outage and back.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use fusion_schemas::Readiness;
use fusion_tests::{spawn_app, spawn_app_sqlite};

#[tokio::test]
async fn healthz_answers_200_with_a_request_id() {
    let app = spawn_app().await;
    let res = app.healthz().await;
    assert_eq!(res.status(), 200);
    let id = res.headers()["x-request-id"].to_str().unwrap().to_owned();
    assert_eq!(uuid::Uuid::parse_str(&id).unwrap().get_version_num(), 4);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body, serde_json::json!({ "status": "ok" }));
}

#[tokio::test]
async fn readyz_is_200_on_postgres() {
    let app = spawn_app().await;
    let res = app.readyz().await;
    assert_eq!(res.status(), 200);
    let body: Readiness = res.json().await.unwrap();
    assert_eq!(body.status, "ready");
    assert!(body.database.ok && body.blob_store.ok);
}

#[tokio::test]
async fn readyz_is_200_on_sqlite() {
    let app = spawn_app_sqlite().await;
    let res = app.readyz().await;
    assert_eq!(res.status(), 200);
    let body: Readiness = res.json().await.unwrap();
    assert_eq!(body.status, "ready");
    assert!(app.data_dir.path().join("fusion.db").is_file());
    assert!(app.data_dir.path().join("blobs").is_dir());
}

async fn wait_for_status(app: &fusion_tests::TestApp, want: u16) -> Readiness {
    let mut last = None;
    for _ in 0..40 {
        let res = app.readyz().await;
        let status = res.status().as_u16();
        let body: Readiness = res.json().await.unwrap();
        if status == want {
            return body;
        }
        last = Some((status, body));
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    panic!("readyz never answered {want}; last: {last:?}");
}

#[tokio::test]
async fn readyz_reports_a_database_outage_and_recovers_by_itself() {
    let app = spawn_app().await;
    wait_for_status(&app, 200).await;

    app.pg().stop().await;
    let body = wait_for_status(&app, 503).await;
    assert_eq!(body.status, "unavailable");
    assert!(!body.database.ok);
    let reason = body.database.reason.unwrap();
    assert!(
        reason.contains("database"),
        "reason should say what failed: {reason}"
    );
    assert!(body.blob_store.ok, "the blob store is still fine");

    app.pg().start().await;
    let body = wait_for_status(&app, 200).await;
    assert!(body.database.ok);
}

#[tokio::test]
async fn readyz_reports_a_missing_blob_folder() {
    let app = spawn_app_sqlite().await;
    let blobs = app.data_dir.path().join("blobs");
    std::fs::remove_dir_all(&blobs).unwrap();
    let body = wait_for_status(&app, 503).await;
    assert!(app.readyz().await.status() == 503);
    assert!(!body.blob_store.ok);
    assert!(body.database.ok);
    std::fs::create_dir_all(&blobs).unwrap();
    wait_for_status(&app, 200).await;
}
