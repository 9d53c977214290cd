//! A destination that misbehaves (issue #17): answering 409, 500, garbage
//! or a body that trickles in, it gets retries with backoff or a failure
//! that says why, every attempt audited with the destination as
//! participant, and it never holds up other deliveries; once it answers
//! properly, `fusion outbox retry`'s store call sends what failed, exactly
//! once. The destination is a small Python server
//! (`tests/tools/bad_destination.py`) speaking STOW-RS and FHIR.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use fusion_schemas::Role;
use fusion_store::{
    AuditAction, AuditAgent, AuditEventType, AuditFilter, AuditOutcome, AuditRecord,
    DeliveryFilter, DeliveryRecord, DeliveryState, DeliveryTarget,
};
use fusion_tests::dicom::{multipart, stow_content_type};
use fusion_tests::{TestApp, python, repo_root, spawn_app_with};
use serde_json::Value;

const BOUNDARY: &str = "fusion-outbox-boundary-0123456789";
const CT: &str = "pydicom-3.0.2/test_files/CT_small.dcm";
const MR: &str = "pydicom-3.0.2/test_files/MR_small.dcm";

/// An invented report.
const REPORT: &str = "FINDINGS: Small right pleural effusion. No pneumothorax.\n\
IMPRESSION: Small right pleural effusion.\n";

struct Destination {
    child: Child,
    url: String,
    client: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Destination {
    async fn start() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port_file = dir.path().join("port");
        let child = Command::new(python())
            .arg(repo_root().join("tests/tools/bad_destination.py"))
            .arg(&port_file)
            .spawn()
            .unwrap();
        let start = Instant::now();
        let port = loop {
            if let Ok(p) = std::fs::read_to_string(&port_file)
                && !p.is_empty()
            {
                break p;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "the destination did not start"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        Self {
            child,
            url: format!("http://127.0.0.1:{port}"),
            client: reqwest::Client::new(),
            _dir: dir,
        }
    }

    async fn mode(&self, mode: &str) {
        let res = self
            .client
            .post(format!("{}/mode/{mode}", self.url))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }

    async fn received(&self) -> Value {
        self.client
            .get(format!("{}/received", self.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

impl Drop for Destination {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn stow(app: &TestApp, key: &(String, String), file: &str) {
    let bytes = fusion_tests::dicom::read(file);
    let res = app
        .client
        .post(app.url("/dicom-web/studies"))
        .basic_auth(&key.0, Some(&key.1))
        .header("Content-Type", stow_content_type(BOUNDARY))
        .body(multipart(BOUNDARY, &[("application/dicom", &bytes)]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

async fn note_for_study(app: &TestApp, key: &(String, String), study: &str) {
    let res = app
        .client
        .post(app.url("/notes"))
        .basic_auth(&key.0, Some(&key.1))
        .query(&[("study_instance_uid", study), ("note_type", "18748-4")])
        .header("Content-Type", "text/plain; charset=utf-8")
        .body(REPORT)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
}

async fn deliveries(app: &TestApp) -> Vec<DeliveryRecord> {
    app.state
        .repository
        .deliveries(&DeliveryFilter::default())
        .await
        .unwrap()
}

/// Waits until every remote delivery is settled (delivered or failed) and
/// `also` holds; returns them.
async fn settled(
    app: &TestApp,
    what: &str,
    also: impl Fn(&[DeliveryRecord]) -> bool,
) -> Vec<DeliveryRecord> {
    let start = Instant::now();
    loop {
        let rows = deliveries(app).await;
        if !rows.is_empty() && rows.iter().all(|d| d.state != DeliveryState::Pending) && also(&rows)
        {
            return rows;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "{what}: {rows:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn retry_failed(app: &TestApp) -> usize {
    let failed: Vec<DeliveryRecord> = deliveries(app)
        .await
        .into_iter()
        .filter(|d| d.state == DeliveryState::Failed)
        .collect();
    let audit = AuditRecord {
        event_type: AuditEventType::PatientRecord,
        subtype: "delivery-retry".into(),
        action: AuditAction::Update,
        outcome: AuditOutcome::Success,
        outcome_desc: None,
        agent: AuditAgent {
            kind: "operator".into(),
            id: "test".into(),
            name: "test".into(),
            role: None,
            address: None,
            requestor: true,
        },
        entities: vec![],
        patient_ids: vec![],
        purpose_of_use: None,
        request_id: None,
    };
    for d in &failed {
        assert!(
            app.state
                .repository
                .retry_delivery(d.id, &audit)
                .await
                .unwrap()
        );
    }
    app.state.deliveries.notify_waiters();
    failed.len()
}

fn remote(rows: &[DeliveryRecord]) -> Vec<&DeliveryRecord> {
    rows.iter()
        .filter(|d| d.target != DeliveryTarget::Local)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_misbehaving_destination_is_retried_or_failed_with_its_reason() {
    let dest = Destination::start().await;
    let models = repo_root().join("models/packages");
    let (dicomweb, fhir) = (
        format!("{}/dicom-web", dest.url),
        format!("{}/fhir", dest.url),
    );
    let app = spawn_app_with(|s| {
        s.models_dir = models;
        s.workers = 1;
        s.sr_destination_url = Some(dicomweb);
        s.fhir_endpoint_url = Some(fhir);
        s.outbox_max_attempts = 3;
        s.outbox_backoff_seconds = 1;
        s.outbox_timeout_seconds = 2;
    })
    .await;
    let key = app.api_key("pacs", Role::Integration).await;
    let ct = fusion_imaging::index_attributes(
        &fusion_imaging::parse(&fusion_tests::dicom::read(CT)).unwrap(),
    );

    // 409: a refusal, failed at the first attempt with the answer.
    dest.mode("409").await;
    stow(&app, &key, CT).await;
    note_for_study(&app, &key, ct.study_instance_uid.as_str()).await;
    let rows = settled(&app, "409", |r| {
        remote(r).len() == 2 && r.iter().any(|d| d.target == DeliveryTarget::Local)
    })
    .await;
    let local = rows
        .iter()
        .find(|d| d.target == DeliveryTarget::Local)
        .unwrap();
    assert_eq!(
        local.state,
        DeliveryState::Delivered,
        "the archive is not held up"
    );
    for d in remote(&rows) {
        assert_eq!(d.state, DeliveryState::Failed, "{d:#?}");
        assert_eq!(d.attempts, 1);
        assert_eq!(d.last_status, Some(409));
        assert!(
            d.last_error
                .as_deref()
                .unwrap()
                .contains("conflict: this destination refuses"),
            "{d:#?}"
        );
    }

    // 500: retried with backoff, failed after the last attempt.
    dest.mode("500").await;
    assert_eq!(retry_failed(&app).await, 2);
    let rows = settled(&app, "500", |r| {
        remote(r)
            .iter()
            .all(|d| d.last_status == Some(500) && d.attempts == 3)
    })
    .await;
    for d in remote(&rows) {
        assert_eq!(d.state, DeliveryState::Failed);
        assert!(
            d.last_error
                .as_deref()
                .unwrap()
                .starts_with("gave up after 3 attempts: HTTP 500"),
            "{d:#?}"
        );
        assert!(
            d.last_error
                .as_deref()
                .unwrap()
                .contains("internal error at the destination")
        );
    }

    // Garbage with a 200: not an acknowledgement.
    dest.mode("garbage").await;
    retry_failed(&app).await;
    let rows = settled(&app, "garbage", |r| {
        remote(r).iter().all(|d| {
            d.attempts == 3 && d.last_error.as_deref().is_some_and(|e| e.contains("not a"))
        })
    })
    .await;
    let dicomweb = rows
        .iter()
        .find(|d| d.target == DeliveryTarget::Dicomweb)
        .unwrap();
    assert!(
        dicomweb
            .last_error
            .as_deref()
            .unwrap()
            .contains("not a DICOM JSON STOW-RS response"),
        "{dicomweb:#?}"
    );

    // A body that trickles in: timed out and retried, while another case's
    // results are stored meanwhile.
    dest.mode("slow").await;
    retry_failed(&app).await;
    let mr = fusion_imaging::index_attributes(
        &fusion_imaging::parse(&fusion_tests::dicom::read(MR)).unwrap(),
    );
    stow(&app, &key, MR).await;
    note_for_study(&app, &key, mr.study_instance_uid.as_str()).await;
    let start = Instant::now();
    loop {
        let rows = deliveries(&app).await;
        let second_local = rows
            .iter()
            .filter(|d| d.target == DeliveryTarget::Local && d.state == DeliveryState::Delivered)
            .count();
        let slow_pending = rows
            .iter()
            .any(|d| d.target == DeliveryTarget::Dicomweb && d.state == DeliveryState::Pending);
        if second_local == 2 {
            assert!(
                slow_pending
                    || rows.iter().any(|d| d
                        .last_error
                        .as_deref()
                        .is_some_and(|e| e.contains("in time")))
            );
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "the second case's SR waits: {rows:#?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let rows = settled(&app, "slow", |r| remote(r).len() == 4).await;
    assert!(
        remote(&rows).iter().any(|d| d.last_error.as_deref()
            == Some("gave up after 3 attempts: the destination did not answer in time")),
        "{rows:#?}"
    );

    // A proper answer: everything failed goes out, each SR once.
    dest.mode("ok").await;
    retry_failed(&app).await;
    let rows = settled(&app, "ok", |r| {
        r.iter().all(|d| d.state == DeliveryState::Delivered)
    })
    .await;
    let received = dest.received().await;
    let mut stored: Vec<String> = received["stow"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap().to_owned())
        .collect();
    stored.sort();
    let mut ours: Vec<String> = rows
        .iter()
        .filter(|d| d.target == DeliveryTarget::Dicomweb)
        .map(|d| d.sop_instance_uid.clone().unwrap())
        .collect();
    ours.sort();
    assert_eq!(stored, ours, "each SR acknowledged once");
    assert_eq!(received["fhir"].as_array().unwrap().len(), 2);
    for bundle in received["fhir"].as_array().unwrap() {
        assert_eq!(bundle["type"], "transaction");
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("bundle.json");
        std::fs::write(&file, bundle.to_string()).unwrap();
        let out = Command::new("node")
            .arg(repo_root().join("tests/tools/validate_fhir_medplum.cjs"))
            .arg(repo_root().join(".test-data/medplum"))
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
    }

    // Every remote attempt is audited, the destination as participant.
    let events = app
        .state
        .repository
        .audit_events(&AuditFilter::default())
        .await
        .unwrap();
    let transfers: Vec<_> = events
        .iter()
        .filter(|e| e.record.subtype == "stow-rs-out")
        .collect();
    // 1 (409) + 3 (500) + 3 (garbage) + 3 (slow) + 1 (ok), and the second
    // case's 3 slow + 1 ok.
    assert!(transfers.len() >= 11, "{}", transfers.len());
    for e in &transfers {
        assert_eq!(
            e.record.event_type,
            AuditEventType::DicomInstancesTransferred
        );
        assert_eq!(e.record.agent.kind, "destination");
        assert_eq!(e.record.agent.address.as_deref(), Some(dest.url.as_str()));
    }
    assert!(
        transfers
            .iter()
            .any(|e| e.record.outcome == AuditOutcome::Success)
    );
    assert!(transfers.iter().any(|e| {
        e.record.outcome == AuditOutcome::MinorFailure
            && e.record
                .outcome_desc
                .as_deref()
                .is_some_and(|d| d.contains("409"))
    }));
}
