//! A transaction PostgreSQL aborts as the loser of a real deadlock is what
//! the store calls transient, so the note and STOW-RS paths run it again
//! (`fusion_store::StoreError::is_transient`); other failures are not.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use fusion_store::StoreError;
use fusion_tests::TestDatabase;
use sqlx::{Connection, PgConnection};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadlock_victim_is_transient_and_other_errors_are_not() {
    let db = TestDatabase::create().await;
    let mut first = PgConnection::connect(&db.url).await.unwrap();
    let mut second = PgConnection::connect(&db.url).await.unwrap();
    sqlx::query("BEGIN").execute(&mut first).await.unwrap();
    sqlx::query("BEGIN").execute(&mut second).await.unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock(1)")
        .execute(&mut first)
        .await
        .unwrap();
    sqlx::query("SELECT pg_advisory_xact_lock(2)")
        .execute(&mut second)
        .await
        .unwrap();
    // Each now waits for the other's lock: PostgreSQL aborts one of them.
    let a = tokio::spawn(async move {
        let r = sqlx::query("SELECT pg_advisory_xact_lock(2)")
            .execute(&mut first)
            .await;
        let _ = sqlx::query("ROLLBACK").execute(&mut first).await;
        r.map(|_| ())
    });
    let b = tokio::spawn(async move {
        let r = sqlx::query("SELECT pg_advisory_xact_lock(1)")
            .execute(&mut second)
            .await;
        let _ = sqlx::query("ROLLBACK").execute(&mut second).await;
        r.map(|_| ())
    });
    let (a, b) = (a.await.unwrap(), b.await.unwrap());
    let errors: Vec<StoreError> = [a, b]
        .into_iter()
        .filter_map(Result::err)
        .map(StoreError::Query)
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].is_transient(), "{:?}", errors[0]);

    let mut conn = PgConnection::connect(&db.url).await.unwrap();
    let syntax = sqlx::query("SELEC 1").execute(&mut conn).await.unwrap_err();
    assert!(!StoreError::Query(syntax).is_transient());
    assert!(!StoreError::Corrupt("x".into()).is_transient());
}
