//! After a crash (issue #14, findings 3 and 8): studies whose instances were
//! stored but never linked reach their cases when the PACS re-sends them and
//! at the next start; blobs no row refers to are collected after a grace
//! period, and only those.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use fusion_schemas::Role;
use fusion_tests::dicom::{multipart, read, stow_content_type};
use fusion_tests::{TestApp, spawn_app_with};

const BOUNDARY: &str = "fusion-recovery-boundary-0123456789";
const STUDIES: [&str; 3] = [
    "pydicom-3.0.2/test_files/CT_small.dcm",
    "pydicom-3.0.2/test_files/MR_small.dcm",
    "pydicom-data-1.0.0/data_store/data/RG1_UNCR.dcm",
];

async fn stow(app: &TestApp, key: &(String, String), files: &[&str]) -> u16 {
    let bytes: Vec<Vec<u8>> = files.iter().map(|f| read(f)).collect();
    let parts: Vec<(&str, &[u8])> = bytes
        .iter()
        .map(|b| ("application/dicom", b.as_slice()))
        .collect();
    app.client
        .post(app.url("/dicom-web/studies"))
        .basic_auth(&key.0, Some(&key.1))
        .header("Content-Type", stow_content_type(BOUNDARY))
        .header("Accept", "application/dicom+json")
        .body(multipart(BOUNDARY, &parts))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn studies_without_case(app: &TestApp) -> i64 {
    let (n,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM studies s WHERE NOT EXISTS \
         (SELECT 1 FROM cases c WHERE c.study_instance_uid = s.study_instance_uid)",
    )
    .fetch_one(&mut app.pg().admin_of_app().await)
    .await
    .unwrap();
    n
}

/// The state a kill -9 between the index commit and the case link leaves:
/// instances stored, no case, no job.
async fn lose_the_links(app: &TestApp) {
    let mut db = app.pg().admin_of_app().await;
    for sql in [
        "DELETE FROM inference_jobs",
        "DELETE FROM case_notes",
        "DELETE FROM cases",
    ] {
        sqlx::query(sql).execute(&mut db).await.unwrap();
    }
}

/// Finding 3: a PACS re-sends a whole study after a crash; every instance
/// is a duplicate. Before the fix nothing linked the study, so it never got
/// a case or a prediction (3 of 3 here).
#[tokio::test]
async fn a_resent_study_reaches_its_case_and_the_start_sweep_links_the_rest() {
    let started = chrono::Utc::now();
    let app = spawn_app_with(|s| s.workers = 0).await;
    let key = app.api_key("pacs", Role::Integration).await;
    assert_eq!(stow(&app, &key, &STUDIES).await, 200);
    assert_eq!(studies_without_case(&app).await, 0);
    lose_the_links(&app).await;
    assert_eq!(studies_without_case(&app).await, 3);

    // The PACS re-sends all three: duplicates only.
    assert_eq!(stow(&app, &key, &STUDIES).await, 200);
    let left = studies_without_case(&app).await;
    println!("studies without a case after the re-send: {left} of 3");
    assert_eq!(left, 0);
    let (jobs,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM inference_jobs")
        .fetch_one(&mut app.pg().admin_of_app().await)
        .await
        .unwrap();
    assert_eq!(jobs, 3, "each re-linked study has its prediction queued");
    // Re-sent again: linked already, nothing new queued.
    assert_eq!(stow(&app, &key, &STUDIES[..1]).await, 200);
    let (jobs,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM inference_jobs")
        .fetch_one(&mut app.pg().admin_of_app().await)
        .await
        .unwrap();
    assert_eq!(jobs, 3);

    // Not re-sent: the sweep at start links them. A sweep of a process
    // that started before they arrived leaves them to the requests that
    // stored them (linking them too would queue each prediction twice).
    lose_the_links(&app).await;
    assert_eq!(
        fusion_app::ingest::link_orphan_studies(&app.state, started)
            .await
            .unwrap(),
        0
    );
    assert_eq!(studies_without_case(&app).await, 3);
    let linked = fusion_app::ingest::link_orphan_studies(&app.state, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(linked, 3);
    assert_eq!(studies_without_case(&app).await, 0);
    assert_eq!(
        fusion_app::ingest::link_orphan_studies(&app.state, chrono::Utc::now())
            .await
            .unwrap(),
        0
    );
}

fn blob_files(app: &TestApp) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let root = app.data_dir.path().join("blobs/sha256");
    for dir in std::fs::read_dir(&root).unwrap() {
        for f in std::fs::read_dir(dir.unwrap().path()).unwrap() {
            out.push(f.unwrap().path());
        }
    }
    out.sort();
    out
}

fn age(path: &std::path::Path, by: std::time::Duration) {
    let f = std::fs::File::options().append(true).open(path).unwrap();
    f.set_modified(std::time::SystemTime::now() - by).unwrap();
}

/// Finding 8: blobs orphaned by a crash (bytes written, no row) and staged
/// files of a `put` that never finished are never collected before the
/// fix. The collector removes exactly those older than the grace period,
/// keeps every blob a row refers to (an instance, or the refused side of a
/// conflict), and audits what it removed.
#[tokio::test]
async fn the_collector_removes_only_old_unreferenced_blobs() {
    let app = spawn_app_with(|s| s.workers = 0).await;
    let key = app.api_key("pacs", Role::Integration).await;
    assert_eq!(stow(&app, &key, &STUDIES[..2]).await, 200);
    // A refused re-send (0111): its bytes are kept as the conflict's record.
    let mut other = read(STUDIES[0]);
    other[0] ^= 0xFF;
    let res = app
        .client
        .post(app.url("/dicom-web/studies"))
        .basic_auth(&key.0, Some(&key.1))
        .header("Content-Type", stow_content_type(BOUNDARY))
        .body(multipart(BOUNDARY, &[("application/dicom", &other)]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 409);
    // Orphans: bytes stored with no row (the crash), one old, one fresh.
    let old = app
        .state
        .blobs
        .put(bytes::Bytes::from_static(b"orphaned by a crash"))
        .await
        .unwrap();
    let fresh = app
        .state
        .blobs
        .put(bytes::Bytes::from_static(b"being indexed right now"))
        .await
        .unwrap();
    let kept = blob_files(&app);
    assert_eq!(kept.len(), 5);
    let day = std::time::Duration::from_secs(2 * 24 * 3600);
    for path in &kept {
        if !path.ends_with(fresh.as_str()) {
            age(path, day);
        }
    }
    // A staged file of a put that never reached its rename.
    let staged = kept[0].with_file_name(format!("{}#7", old.as_str()));
    std::fs::write(&staged, b"half written").unwrap();
    age(&staged, day);

    let report = fusion_app::blob_gc::collect_blobs(&app.state, chrono::Duration::days(1))
        .await
        .unwrap();
    assert_eq!(report.examined, 4, "{report:?}");
    assert_eq!(report.removed, 1, "{report:?}");
    assert_eq!(report.removed_bytes, b"orphaned by a crash".len() as u64);
    assert_eq!(report.staged_removed, 1);
    assert!(!app.state.blobs.contains(&old).await.unwrap());
    assert!(app.state.blobs.contains(&fresh).await.unwrap());
    assert!(!staged.exists());
    // Everything a row refers to still reads back.
    let keys: Vec<fusion_store::BlobKey> = blob_files(&app)
        .iter()
        .map(|p| fusion_store::BlobKey::parse(p.file_name().unwrap().to_str().unwrap()).unwrap())
        .collect();
    assert_eq!(keys.len(), 4);
    for k in &keys {
        app.state.blobs.get(k).await.unwrap();
    }
    let audited = app
        .state
        .repository
        .audit_events(&fusion_store::AuditFilter::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.record.subtype == "blob-gc")
        .count();
    assert_eq!(audited, 1);
    // A second run finds nothing more.
    let again = fusion_app::blob_gc::collect_blobs(&app.state, chrono::Duration::days(1))
        .await
        .unwrap();
    assert_eq!((again.removed, again.staged_removed), (0, 0));
}

/// Attack review: a note opened the order's case (no study yet), then the
/// study was stored and the service killed before linking it. The sweep
/// took any case with the study's accession number as its link, so the
/// study never reached that case nor any prediction. A case links a study
/// by accession only once it holds a study.
#[tokio::test]
async fn a_study_whose_order_a_note_opened_is_linked_by_the_start_sweep() {
    const RG1: &str = "pydicom-data-1.0.0/data_store/data/RG1_UNCR.dcm";
    let app = spawn_app_with(|s| s.workers = 0).await;
    let key = app.api_key("pacs", Role::Integration).await;
    let res = app
        .client
        .post(app.url("/notes"))
        .basic_auth(&key.0, Some(&key.1))
        .query(&[("accession_number", "exam Number")])
        .header("Content-Type", "text/plain; charset=utf-8")
        .body("FINDINGS: No pneumothorax. IMPRESSION: Normal.")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert_eq!(stow(&app, &key, &[RG1]).await, 200);
    // The state a kill -9 between the index commit and the link leaves
    // for a case a note opened: the case without its study, no new job.
    let mut db = app.pg().admin_of_app().await;
    for sql in [
        "UPDATE cases SET study_instance_uid = NULL",
        "DELETE FROM inference_jobs",
    ] {
        sqlx::query(sql).execute(&mut db).await.unwrap();
    }
    let linked = fusion_app::ingest::link_orphan_studies(&app.state, chrono::Utc::now())
        .await
        .unwrap();
    assert_eq!(
        linked, 1,
        "the study is found though its accession has a case"
    );
    let (cases, with_study, jobs): (i64, i64, i64) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM cases), \
         (SELECT COUNT(*) FROM cases WHERE study_instance_uid IS NOT NULL), \
         (SELECT COUNT(*) FROM inference_jobs)",
    )
    .fetch_one(&mut db)
    .await
    .unwrap();
    assert_eq!((cases, with_study, jobs), (1, 1, 1));
    assert_eq!(
        fusion_app::ingest::link_orphan_studies(&app.state, chrono::Utc::now())
            .await
            .unwrap(),
        0
    );
}
