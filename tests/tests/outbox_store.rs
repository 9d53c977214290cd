//! The outbox as the store keeps it (issue #17), one story on PostgreSQL
//! and SQLite: deliveries are queued in the prediction's (or review's)
//! transaction, a claim leases one due delivery at a time, an outcome is
//! recorded once, a delivered row is never claimed again, an expired lease
//! is claimed again, and a failed one can be queued again. On PostgreSQL two
//! senders racing never claim the same delivery.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;

use chrono::{Duration, Utc};
use fusion_schemas::{AccessionNumber, BranchReport, BranchStatus, Branches, PredictionInputs};
use fusion_store::{
    AuditAction, AuditAgent, AuditEventType, AuditOutcome, AuditRecord, CaseKey, DatabaseUrl,
    DeliveryFilter, DeliveryOutcome, DeliveryState, DeliveryTarget, NewPrediction, NewReview,
    PoolOptions, PredictionStatus, Repository,
};
use fusion_tests::TestDatabase;
use serde_json::json;
use uuid::Uuid;

fn audit(subtype: &str) -> AuditRecord {
    AuditRecord {
        event_type: AuditEventType::PatientRecord,
        subtype: subtype.into(),
        action: AuditAction::Create,
        outcome: AuditOutcome::Success,
        outcome_desc: None,
        agent: AuditAgent {
            kind: "system".into(),
            id: "test".into(),
            name: "test".into(),
            role: None,
            address: None,
            requestor: false,
        },
        entities: vec![],
        patient_ids: vec![],
        purpose_of_use: None,
        request_id: None,
    }
}

async fn connect(url: &str) -> std::sync::Arc<dyn Repository> {
    let url = DatabaseUrl::parse(url.to_owned().into()).unwrap();
    let repo = fusion_store::connect(&url, &PoolOptions::default())
        .await
        .unwrap();
    repo.migrate().await.unwrap();
    repo
}

async fn prediction(repo: &dyn Repository, accession: &str, targets: Vec<DeliveryTarget>) -> Uuid {
    let case = repo
        .open_case(
            &CaseKey {
                accession_number: Some(AccessionNumber::parse(accession).unwrap()),
                study_instance_uid: None,
                patient_id: None,
            },
            &[],
            &audit("case-link"),
        )
        .await
        .unwrap();
    let new = NewPrediction {
        id: Uuid::now_v7(),
        case_id: case.case_id,
        status: PredictionStatus::Predicted,
        packages: vec![],
        branches: Branches {
            image: BranchReport::empty(BranchStatus::Missing, "no image"),
            text: BranchReport::empty(BranchStatus::Missing, "no note"),
        },
        fused: BTreeMap::new(),
        abstain: false,
        abstain_reasons: vec![],
        timings: BTreeMap::new(),
        inputs: PredictionInputs::default(),
        findings: vec![],
        refer: false,
        job_id: None,
        deliveries: targets,
    };
    let stored = repo
        .insert_prediction(&new, &audit("prediction-create"))
        .await
        .unwrap();
    assert!(
        stored.prediction.deliveries.is_empty(),
        "not stored with the prediction"
    );
    new.id
}

async fn outbox_story(repo: &dyn Repository) {
    let p = prediction(
        repo,
        "ACC-OUT-1",
        vec![DeliveryTarget::Local, DeliveryTarget::Dicomweb],
    )
    .await;
    let now = Utc::now() + Duration::milliseconds(10);
    let rows = repo.deliveries(&DeliveryFilter::default()).await.unwrap();
    assert_eq!(rows.len(), 2);
    assert!(
        rows.iter()
            .all(|d| d.prediction_id == p && d.state == DeliveryState::Pending && d.attempts == 0)
    );

    // One claim, one delivery; its lease hides it from the next claim.
    let lease = now + Duration::seconds(60);
    let first = repo.claim_delivery(now, lease).await.unwrap().unwrap();
    assert_eq!(first.attempts, 1);
    let second = repo.claim_delivery(now, lease).await.unwrap().unwrap();
    assert_ne!(first.id, second.id);
    assert!(repo.claim_delivery(now, lease).await.unwrap().is_none());

    // Delivered: recorded once, never claimed again even after the lease.
    let delivered = DeliveryOutcome::Delivered {
        status: Some(200),
        sop_instance_uid: Some("2.25.1".into()),
    };
    assert!(
        repo.record_delivery(first.id, &delivered, Some(&audit("stow-rs-out")))
            .await
            .unwrap()
    );
    assert!(
        !repo
            .record_delivery(first.id, &delivered, None)
            .await
            .unwrap()
    );
    // The other's sender died: after its lease it is claimed again.
    let later = lease + Duration::seconds(1);
    let again = repo
        .claim_delivery(later, later + Duration::seconds(60))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((again.id, again.attempts), (second.id, 2));
    assert!(repo.claim_delivery(later, later).await.unwrap().is_none());

    // A retry waits for its time; a failure keeps the destination's answer.
    let retry = DeliveryOutcome::Retry {
        status: Some(503),
        error: "HTTP 503: busy".into(),
        next_attempt_at: later + Duration::seconds(30),
    };
    assert!(repo.record_delivery(second.id, &retry, None).await.unwrap());
    assert!(
        repo.claim_delivery(later + Duration::seconds(29), later + Duration::seconds(90))
            .await
            .unwrap()
            .is_none()
    );
    let third = repo
        .claim_delivery(later + Duration::seconds(31), later + Duration::seconds(90))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (third.id, third.last_status, third.last_error.as_deref()),
        (second.id, Some(503), Some("HTTP 503: busy"))
    );
    let failed = DeliveryOutcome::Failed {
        status: Some(409),
        error: "HTTP 409: refused".into(),
    };
    assert!(repo.record_delivery(third.id, &failed, None).await.unwrap());
    let rows = repo
        .deliveries(&DeliveryFilter {
            states: vec![DeliveryState::Failed],
            ..DeliveryFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].last_error.as_deref(), Some("HTTP 409: refused"));
    assert!(
        repo.retry_delivery(third.id, &audit("delivery-retry"))
            .await
            .unwrap()
    );
    assert!(
        !repo
            .retry_delivery(first.id, &audit("delivery-retry"))
            .await
            .unwrap(),
        "only failed ones"
    );
    let back = repo
        .claim_delivery(
            Utc::now() + Duration::seconds(1),
            later + Duration::seconds(600),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!((back.id, back.attempts), (third.id, 1));
    let done = repo.deliveries(&DeliveryFilter::default()).await.unwrap();
    let first_row = done.iter().find(|d| d.id == first.id).unwrap();
    assert_eq!(first_row.state, DeliveryState::Delivered);
    assert_eq!(first_row.sop_instance_uid.as_deref(), Some("2.25.1"));
    assert!(first_row.delivered_at.is_some());

    // A review queues its own deliveries in its transaction.
    let review = NewReview {
        id: Uuid::now_v7(),
        prediction_id: p,
        reviewer: "u1".into(),
        decisions: json!({"pneumonia": {"decision": "accept"}}),
        comment: None,
        deliveries: vec![DeliveryTarget::Local, DeliveryTarget::Fhir],
    };
    repo.put_review(&review, &audit("review-create"))
        .await
        .unwrap()
        .unwrap();
    let of_review: Vec<_> = repo
        .deliveries(&DeliveryFilter {
            prediction_id: Some(p),
            ..DeliveryFilter::default()
        })
        .await
        .unwrap()
        .into_iter()
        .filter(|d| d.review_id == Some(review.id))
        .collect();
    assert_eq!(of_review.len(), 2);
    assert!(
        fusion_store::verify_chain(repo)
            .await
            .unwrap()
            .first_break
            .is_none()
    );
}

#[tokio::test]
async fn the_outbox_on_postgres() {
    let db = TestDatabase::create().await;
    outbox_story(connect(&db.url).await.as_ref()).await;
}

#[tokio::test]
async fn the_outbox_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/fusion.db", dir.path().display());
    outbox_story(connect(&url).await.as_ref()).await;
}

/// Senders in several processes share one PostgreSQL outbox: two racing
/// over many deliveries never claim the same one, and claim them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_senders_never_claim_the_same_delivery_on_postgres() {
    let db = TestDatabase::create().await;
    let first = connect(&db.url).await;
    let second = connect(&db.url).await;
    for i in 0..20 {
        prediction(
            first.as_ref(),
            &format!("ACC-RACE-{i}"),
            vec![DeliveryTarget::Dicomweb],
        )
        .await;
    }
    let claim_all = |repo: std::sync::Arc<dyn Repository>| async move {
        let mut ids = Vec::new();
        while let Some(d) = repo
            .claim_delivery(Utc::now(), Utc::now() + Duration::seconds(600))
            .await
            .unwrap()
        {
            ids.push(d.id);
        }
        ids
    };
    let (a, b) = tokio::join!(
        tokio::spawn(claim_all(first.clone())),
        tokio::spawn(claim_all(second.clone()))
    );
    let mut all: Vec<Uuid> = a.unwrap().into_iter().chain(b.unwrap()).collect();
    let n = all.len();
    all.sort();
    all.dedup();
    assert_eq!((n, all.len()), (20, 20));
}
