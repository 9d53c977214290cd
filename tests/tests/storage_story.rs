//! The storage "story": one sequence of assertions run against PostgreSQL
//! and against SQLite, so the two backends cannot drift apart.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;

use bytes::Bytes;
use fusion_schemas::Role;
use fusion_schemas::{
    AccessionNumber, InstanceAttributes, PatientId, SeriesInstanceUid, SopInstanceUid,
    StudyInstanceUid, TransferSyntaxUid,
};
use fusion_store::{
    AuditAction, AuditAgent, AuditEntity, AuditEventType, AuditFilter, AuditOutcome, AuditRecord,
    Backend, BlobKey, BlobStore, DatabaseUrl, DecodeStatus, EntityKind, InstanceQuery, NewInstance,
    NewUser, PoolOptions, PutOutcome, Repository, SeriesQuery, SessionRecord, StudyQuery,
    UserChange,
};
use fusion_tests::TestDatabase;
use secrecy::SecretString;

fn instance(study: &str, series: &str, sop: &str, modality: &str, key: &BlobKey) -> NewInstance {
    NewInstance {
        instance: InstanceAttributes {
            study_instance_uid: StudyInstanceUid::parse(study).unwrap(),
            series_instance_uid: SeriesInstanceUid::parse(series).unwrap(),
            sop_instance_uid: SopInstanceUid::parse(sop).unwrap(),
            sop_class_uid: "1.2.840.10008.5.1.4.1.1.2".into(),
            transfer_syntax_uid: TransferSyntaxUid::parse("1.2.840.10008.1.2.1").unwrap(),
            patient_id: Some(PatientId::parse("TEST-0001").unwrap()),
            patient_name: Some("Doe^Jane".into()),
            accession_number: Some(AccessionNumber::parse("ACC-42").unwrap()),
            study_date: Some("20260102".into()),
            study_description: Some("CHEST".into()),
            study_time: Some("101500".into()),
            study_id: Some("S1".into()),
            referring_physician: Some("Smith^John".into()),
            series_description: Some(format!("{modality} SERIES")),
            modality: Some(modality.into()),
            body_part: Some("CHEST".into()),
            series_number: Some(1),
            instance_number: Some(1),
            rows: Some(128),
            columns: Some(128),
            frames: Some(1),
            attributes: serde_json::json!({ "00080060": { "vr": "CS", "Value": [modality] } }),
        },
        blob_key: key.clone(),
        size_bytes: 39206,
        decode_status: DecodeStatus::Ok,
        decode_reason: None,
        submitted_by: Some("fk_test".into()),
    }
}

fn agent() -> AuditAgent {
    AuditAgent {
        kind: "api_key".into(),
        id: "fk_test".into(),
        name: "orthanc".into(),
        role: Some("integration".into()),
        address: Some("127.0.0.1".into()),
        requestor: true,
    }
}

fn stow_audit() -> AuditRecord {
    AuditRecord {
        event_type: AuditEventType::DicomInstancesTransferred,
        subtype: "stow-rs".into(),
        action: AuditAction::Create,
        outcome: AuditOutcome::Success,
        outcome_desc: None,
        agent: agent(),
        entities: vec![AuditEntity::new(EntityKind::Instance, "1.2.3.1.1")],
        patient_ids: vec!["TEST-0001".into()],
        purpose_of_use: None,
        request_id: Some("req-1".into()),
    }
}

async fn story(repo: Arc<dyn Repository>, blobs: BlobStore) {
    // Migrating again is a no-op.
    repo.migrate().await.unwrap();
    repo.ping().await.unwrap();

    let key = blobs
        .put(Bytes::from_static(b"first instance"))
        .await
        .unwrap();
    let first = instance("1.2.3", "1.2.3.1", "1.2.3.1.1", "CT", &key);
    assert_eq!(
        repo.put_instance(&first, &stow_audit()).await.unwrap(),
        PutOutcome::Stored
    );

    // Same SOP Instance UID, same bytes: succeeds, changes nothing.
    assert_eq!(
        repo.put_instance(&first, &stow_audit()).await.unwrap(),
        PutOutcome::Duplicate
    );

    // Same SOP Instance UID, other bytes: refused and recorded.
    let other = blobs.put(Bytes::from_static(b"other bytes")).await.unwrap();
    let conflicting = instance("1.2.3", "1.2.3.1", "1.2.3.1.1", "CT", &other);
    assert_eq!(
        repo.put_instance(&conflicting, &stow_audit())
            .await
            .unwrap(),
        PutOutcome::Conflict {
            stored: key.clone()
        }
    );
    let sop = SopInstanceUid::parse("1.2.3.1.1").unwrap();
    assert_eq!(repo.conflict_count(&sop).await.unwrap(), 1);
    let stored = repo.instance(&sop).await.unwrap().unwrap();
    assert_eq!(stored.blob_key, key, "the first bytes stay");
    assert_eq!(stored.size_bytes, 39206);
    assert_eq!(stored.decode_status, DecodeStatus::Ok);
    assert_eq!(stored.rows, Some(128));
    assert_eq!(
        stored.attributes["00080060"]["Value"][0],
        serde_json::json!("CT")
    );
    assert_eq!(
        blobs.get(&stored.blob_key).await.unwrap().as_ref(),
        b"first instance"
    );

    // Both sides of the conflict are referenced rows (the collector keeps
    // them); bytes no row names are not.
    let loose = blobs.put(Bytes::from_static(b"loose")).await.unwrap();
    let referenced = repo
        .referenced_blobs(&[key.clone(), other.clone(), loose.clone()])
        .await
        .unwrap();
    assert!(referenced.contains(&key) && referenced.contains(&other));
    assert!(!referenced.contains(&loose));

    // A second series of another modality extends ModalitiesInStudy.
    let key2 = blobs.put(Bytes::from_static(b"second")).await.unwrap();
    let mut second = instance("1.2.3", "1.2.3.2", "1.2.3.2.1", "MR", &key2);
    second.decode_status = DecodeStatus::Failed;
    second.decode_reason = Some("JPEG-LS decoder not available".into());
    assert_eq!(
        repo.put_instance(&second, &stow_audit()).await.unwrap(),
        PutOutcome::Stored
    );

    let study_uid = StudyInstanceUid::parse("1.2.3").unwrap();
    let study = repo.study(&study_uid).await.unwrap().unwrap();
    assert_eq!(study.modalities, vec!["CT".to_owned(), "MR".to_owned()]);
    assert_eq!(study.instance_count, 2);
    assert_eq!(study.patient_id.unwrap().as_str(), "TEST-0001");
    assert_eq!(study.accession_number.unwrap().as_str(), "ACC-42");
    assert_eq!(study.study_date.as_deref(), Some("20260102"));

    let listed = repo.study_instances(&study_uid).await.unwrap();
    let uids: Vec<&str> = listed.iter().map(|i| i.sop_instance_uid.as_str()).collect();
    assert_eq!(uids, ["1.2.3.1.1", "1.2.3.2.1"]);
    assert_eq!(listed[1].decode_status, DecodeStatus::Failed);
    assert_eq!(
        listed[1].decode_reason.as_deref(),
        Some("JPEG-LS decoder not available")
    );

    // Every put wrote one audit event in its transaction; the conflict is
    // recorded as a refused (minor failure) transfer.
    let events = repo.audit_events(&AuditFilter::default()).await.unwrap();
    let outcomes: Vec<AuditOutcome> = events.iter().map(|e| e.record.outcome).collect();
    assert_eq!(
        outcomes,
        [
            AuditOutcome::Success,
            AuditOutcome::Success,
            AuditOutcome::MinorFailure,
            AuditOutcome::Success
        ]
    );
    assert_eq!(
        events[2].record.outcome_desc.as_deref(),
        Some("SOP Instance UID already stored with different bytes; refused")
    );
    let by_patient = AuditFilter {
        patient_id: Some("TEST-0001".into()),
        ..AuditFilter::default()
    };
    assert_eq!(repo.audit_events(&by_patient).await.unwrap().len(), 4);
    let nobody = AuditFilter {
        patient_id: Some("NOBODY".into()),
        ..AuditFilter::default()
    };
    assert!(repo.audit_events(&nobody).await.unwrap().is_empty());
    let by_agent = AuditFilter {
        agent: Some("orthanc".into()),
        outcome: Some(AuditOutcome::MinorFailure),
        ..AuditFilter::default()
    };
    assert_eq!(repo.audit_events(&by_agent).await.unwrap().len(), 1);

    // Another submitter may not add to this study.
    let mut foreign = instance("1.2.3", "1.2.3.9", "1.2.3.9.1", "CT", &loose);
    foreign.submitted_by = Some("fk_intruder".into());
    assert_eq!(
        repo.put_instance(&foreign, &stow_audit()).await.unwrap(),
        PutOutcome::ForeignStudy
    );
    // Nor may the same submitter add an instance of another patient to it:
    // a study is one patient's (re-attack: it was shown and used for the
    // study's patient).
    let mut other_patient = instance("1.2.3", "1.2.3.9", "1.2.3.9.2", "CT", &loose);
    other_patient.instance.patient_id = Some(PatientId::parse("TEST-0002").unwrap());
    assert_eq!(
        repo.put_instance(&other_patient, &stow_audit())
            .await
            .unwrap(),
        PutOutcome::PatientMismatch
    );
    assert!(
        repo.instance(&other_patient.instance.sop_instance_uid)
            .await
            .unwrap()
            .is_none()
    );
    // Nor one naming no Patient ID at all.
    let mut no_patient = instance("1.2.3", "1.2.3.9", "1.2.3.9.3", "CT", &loose);
    no_patient.instance.patient_id = None;
    assert_eq!(
        repo.put_instance(&no_patient, &stow_audit()).await.unwrap(),
        PutOutcome::PatientMismatch
    );
    // The study was stored without a case: the start-up sweep finds it.
    let orphans = repo.studies_without_case(chrono::Utc::now()).await.unwrap();
    assert_eq!(orphans.len(), 1);
    assert_eq!(orphans[0].study_instance_uid.as_str(), "1.2.3");

    qido_story(repo.as_ref(), &blobs).await;
    identity_story(repo.as_ref()).await;

    // A group commit: several instances in one transaction, outcomes in
    // order, a duplicate and a conflict inside the batch treated as alone.
    let k3 = blobs.put(Bytes::from_static(b"third")).await.unwrap();
    let k4 = blobs.put(Bytes::from_static(b"fourth")).await.unwrap();
    let third = instance("7.7.7", "7.7.7.1", "7.7.7.1.1", "CR", &k3);
    let fourth = instance("7.7.7", "7.7.7.1", "7.7.7.1.2", "CR", &k4);
    let third_again = instance("7.7.7", "7.7.7.1", "7.7.7.1.1", "CR", &k4);
    let audit = stow_audit();
    let before = repo
        .audit_events(&AuditFilter::default())
        .await
        .unwrap()
        .len();
    let outcomes = repo
        .put_instances(&[
            (&third, &audit),
            (&fourth, &audit),
            (&third, &audit),
            (&third_again, &audit),
            (&first, &audit),
        ])
        .await
        .unwrap();
    assert_eq!(
        outcomes,
        [
            PutOutcome::Stored,
            PutOutcome::Stored,
            PutOutcome::Duplicate,
            PutOutcome::Conflict { stored: k3.clone() },
            PutOutcome::Duplicate,
        ]
    );
    let batch_study = StudyInstanceUid::parse("7.7.7").unwrap();
    assert_eq!(
        repo.study(&batch_study)
            .await
            .unwrap()
            .unwrap()
            .instance_count,
        2
    );
    let events = repo.audit_events(&AuditFilter::default()).await.unwrap();
    assert_eq!(
        events.len(),
        before + 5,
        "one event per instance of the batch"
    );

    let report = fusion_store::verify_chain(repo.as_ref()).await.unwrap();
    assert!(report.first_break.is_none(), "{report:?}");
    assert!(report.events >= 10, "{report:?}");

    // Unknown identifiers are absent, not errors.
    let unknown = StudyInstanceUid::parse("9.9.9").unwrap();
    assert!(repo.study(&unknown).await.unwrap().is_none());
    assert!(repo.study_instances(&unknown).await.unwrap().is_empty());
    assert!(
        repo.instance(&SopInstanceUid::parse("9.9").unwrap())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn story_on_postgres() {
    let db = TestDatabase::create().await;
    let url = DatabaseUrl::parse(SecretString::from(db.url.clone())).unwrap();
    let repo = fusion_store::connect(&url, &PoolOptions::default())
        .await
        .unwrap();
    assert_eq!(repo.backend(), Backend::Postgres);
    repo.migrate().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    story(repo, BlobStore::local(dir.path()).unwrap()).await;
}

#[tokio::test]
async fn story_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/nested/fusion.db", dir.path().display());
    let url = DatabaseUrl::parse(SecretString::from(url)).unwrap();
    let repo = fusion_store::connect(&url, &PoolOptions::default())
        .await
        .unwrap();
    assert_eq!(repo.backend(), Backend::Sqlite);
    repo.migrate().await.unwrap();
    story(repo, BlobStore::local(&dir.path().join("blobs")).unwrap()).await;
}

/// The audit table refuses UPDATE and DELETE on both backends (the
/// append-only guarantee the audit trail builds on).
#[tokio::test]
async fn audit_events_are_append_only_on_postgres() {
    let db = TestDatabase::create().await;
    let url = DatabaseUrl::parse(SecretString::from(db.url.clone())).unwrap();
    fusion_store::connect(&url, &PoolOptions::default())
        .await
        .unwrap()
        .migrate()
        .await
        .unwrap();
    use sqlx::Connection;
    let mut conn = sqlx::PgConnection::connect(&db.url).await.unwrap();
    sqlx::query(
        "INSERT INTO audit_events (seq, recorded_at, type_code, action, outcome, agent, source, \
         prev_hash, hash) VALUES (1, now(), '110114', 'E', '0', '{}', 'fusion', 'x', 'y')",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    let update = sqlx::query("UPDATE audit_events SET outcome = '8'")
        .execute(&mut conn)
        .await
        .unwrap_err()
        .to_string();
    assert!(update.contains("append-only"), "{update}");
    let delete = sqlx::query("DELETE FROM audit_events")
        .execute(&mut conn)
        .await
        .unwrap_err()
        .to_string();
    assert!(delete.contains("append-only"), "{delete}");
    let truncate = sqlx::query("TRUNCATE audit_events")
        .execute(&mut conn)
        .await
        .unwrap_err()
        .to_string();
    assert!(truncate.contains("append-only"), "{truncate}");
}

#[tokio::test]
async fn audit_events_are_append_only_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("fusion.db");
    let url =
        DatabaseUrl::parse(SecretString::from(format!("sqlite://{}", path.display()))).unwrap();
    fusion_store::connect(&url, &PoolOptions::default())
        .await
        .unwrap()
        .migrate()
        .await
        .unwrap();
    use sqlx::Connection;
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO audit_events (seq, recorded_at, type_code, action, outcome, agent, source, \
         prev_hash, hash) VALUES (1, '2026-01-01T00:00:00Z', '110114', 'E', '0', '{}', 'fusion', 'x', 'y')",
    )
    .execute(&mut conn)
    .await
    .unwrap();
    for sql in [
        "UPDATE audit_events SET outcome = '8'",
        "DELETE FROM audit_events",
    ] {
        let err = sqlx::query(sql)
            .execute(&mut conn)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("append-only"), "{sql}: {err}");
    }
}

fn identity_audit(subtype: &str) -> AuditRecord {
    AuditRecord {
        event_type: AuditEventType::SecurityAlert,
        subtype: subtype.into(),
        action: AuditAction::Update,
        outcome: AuditOutcome::Success,
        outcome_desc: None,
        agent: agent(),
        entities: vec![],
        patient_ids: vec![],
        purpose_of_use: None,
        request_id: None,
    }
}

async fn identity_story(repo: &dyn Repository) {
    assert_eq!(repo.count_users().await.unwrap(), 0);
    let id = uuid::Uuid::now_v7();
    let user = NewUser {
        id,
        username: "dr.grey".into(),
        role: Role::Clinician,
        password_hash: "$argon2id$placeholder".into(),
    };
    repo.create_user(&user, &identity_audit("user-create"))
        .await
        .unwrap();
    let err = repo
        .create_user(&user, &identity_audit("user-create"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("already exists"), "{err}");
    let found = repo.user_by_name("dr.grey").await.unwrap().unwrap();
    assert_eq!(found.id, id);
    assert_eq!(found.role, Role::Clinician);
    assert!(!found.disabled);
    assert_eq!(
        repo.user_by_id(id).await.unwrap().unwrap().username,
        "dr.grey"
    );

    // Lockout after repeated failures.
    let policy = fusion_store::LockoutPolicy {
        max_failures: 3,
        lock_for: chrono::Duration::minutes(15),
    };
    let lock_audit = identity_audit("account-lock");
    let gate = |now| repo.begin_login("dr.grey", &policy, now, &lock_audit);
    assert_eq!(
        repo.begin_login("nobody", &policy, chrono::Utc::now(), &lock_audit)
            .await
            .unwrap(),
        fusion_store::LoginGate::Unknown
    );
    // Every attempt is counted before its password is checked: three in
    // flight at once are admitted, the fourth locks the account without
    // any of them having failed yet.
    for n in 1..=3 {
        match gate(chrono::Utc::now()).await.unwrap() {
            fusion_store::LoginGate::Admitted(u) => assert_eq!(u.failed_logins, n),
            other => panic!("attempt {n}: {other:?}"),
        }
    }
    match gate(chrono::Utc::now()).await.unwrap() {
        fusion_store::LoginGate::Locked { locked_now, .. } => assert!(locked_now),
        other => panic!("fourth attempt: {other:?}"),
    }
    match gate(chrono::Utc::now()).await.unwrap() {
        fusion_store::LoginGate::Locked { locked_now, .. } => assert!(!locked_now),
        other => panic!("fifth attempt: {other:?}"),
    }
    // A failure recorded while locked changes nothing.
    assert!(
        repo.record_failed_login(Some(id), &policy, &identity_audit("login"), &lock_audit)
            .await
            .unwrap()
            .is_none()
    );
    // A success while locked starts no session and lifts nothing.
    let now = chrono::Utc::now();
    let early = SessionRecord {
        token_hash: "c".repeat(64),
        user_id: id,
        csrf_token_hash: "d".repeat(64),
        created_at: now,
        last_seen_at: now,
        expires_at: now + chrono::Duration::hours(1),
        revoked_at: None,
    };
    assert!(
        !repo
            .start_session(&early, &identity_audit("login"))
            .await
            .unwrap()
    );
    assert!(repo.session(&early.token_hash).await.unwrap().is_none());
    // An administrator's password reset lifts the lock and the count.
    let reset = UserChange {
        disabled: None,
        password_hash: Some("$argon2id$placeholder-2".into()),
    };
    assert!(
        repo.update_user("dr.grey", &reset, &identity_audit("user-password"))
            .await
            .unwrap()
    );
    // Three admitted attempts that then fail: the failure that finds the
    // count at the limit locks the account, and the lock is audited.
    for n in 1..=3 {
        match gate(chrono::Utc::now()).await.unwrap() {
            fusion_store::LoginGate::Admitted(u) => assert_eq!(u.failed_logins, n),
            other => panic!("attempt {n} after the reset: {other:?}"),
        }
    }
    assert!(
        repo.record_failed_login(Some(id), &policy, &identity_audit("login"), &lock_audit)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        repo.record_failed_login(Some(id), &policy, &identity_audit("login"), &lock_audit)
            .await
            .unwrap()
            .is_none(),
        "one lock, not one per failure"
    );
    let locks: Vec<_> = repo
        .audit_events(&fusion_store::AuditFilter::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.record.subtype == "account-lock")
        .collect();
    assert_eq!(locks.len(), 2);
    assert!(locks.iter().all(|e| e.record.entities
        == [fusion_store::AuditEntity::new(
            EntityKind::User,
            id.to_string()
        )]));
    assert!(
        repo.update_user("dr.grey", &reset, &identity_audit("user-password"))
            .await
            .unwrap()
    );

    // Sessions.
    let now = chrono::Utc::now();
    let session = SessionRecord {
        token_hash: "a".repeat(64),
        user_id: id,
        csrf_token_hash: "b".repeat(64),
        created_at: now,
        last_seen_at: now,
        expires_at: now + chrono::Duration::hours(1),
        revoked_at: None,
    };
    assert!(
        repo.start_session(&session, &identity_audit("login"))
            .await
            .unwrap()
    );
    let stored = repo.session(&session.token_hash).await.unwrap().unwrap();
    assert_eq!(stored.user_id, id);
    assert!(stored.revoked_at.is_none());
    assert_eq!(
        repo.user_by_name("dr.grey")
            .await
            .unwrap()
            .unwrap()
            .locked_until,
        None,
        "a successful login clears the lockout"
    );

    // Disabling ends sessions.
    let disable = UserChange {
        disabled: Some(true),
        password_hash: None,
    };
    assert!(
        repo.update_user("dr.grey", &disable, &identity_audit("user-disable"))
            .await
            .unwrap()
    );
    assert!(
        !repo
            .update_user("nobody", &disable, &identity_audit("user-disable"))
            .await
            .unwrap()
    );
    assert!(
        repo.user_by_name("dr.grey")
            .await
            .unwrap()
            .unwrap()
            .disabled
    );
    assert!(
        repo.session(&session.token_hash)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    assert_eq!(repo.list_users().await.unwrap().len(), 1);

    // API keys.
    let key = fusion_store::ApiKeyRecord {
        id: "fk_0011223344556677".into(),
        name: "orthanc".into(),
        role: Role::Integration,
        secret_hash: "c".repeat(64),
        created_by: Some("ops".into()),
        expires_at: None,
        revoked_at: None,
        created_at: fusion_store::audit::audit_time(now),
    };
    repo.create_api_key(&key, &identity_audit("api-key-create"))
        .await
        .unwrap();
    assert_eq!(repo.api_key(&key.id).await.unwrap().unwrap(), key);
    assert!(
        repo.revoke_api_key(&key.id, &identity_audit("api-key-revoke"))
            .await
            .unwrap()
    );
    assert!(
        !repo
            .revoke_api_key(&key.id, &identity_audit("api-key-revoke"))
            .await
            .unwrap()
    );
    assert!(
        repo.api_key(&key.id)
            .await
            .unwrap()
            .unwrap()
            .revoked_at
            .is_some()
    );
    assert_eq!(repo.list_api_keys().await.unwrap().len(), 1);
}

/// QIDO-RS matching (PS3.4 §C.2.2.2) on both backends.
async fn qido_story(repo: &dyn Repository, blobs: &BlobStore) {
    // A second study of another patient, stored by another client.
    let key = blobs.put(Bytes::from_static(b"other study")).await.unwrap();
    let mut other = instance("1.2.4", "1.2.4.1", "1.2.4.1.1", "CR", &key);
    other.instance.patient_id = Some(PatientId::parse("TEST-0002").unwrap());
    other.instance.patient_name = Some("Smith^John".into());
    other.instance.accession_number = Some(AccessionNumber::parse("ACC-43").unwrap());
    other.instance.study_date = Some("20250615".into());
    other.submitted_by = Some("fk_other".into());
    assert_eq!(
        repo.put_instance(&other, &stow_audit()).await.unwrap(),
        PutOutcome::Stored
    );

    let all = StudyQuery {
        limit: 100,
        ..StudyQuery::default()
    };
    let uids = |v: Vec<fusion_store::StudyRecord>| -> Vec<String> {
        v.into_iter()
            .map(|s| s.study_instance_uid.to_string())
            .collect()
    };
    // Newest study date first.
    assert_eq!(
        uids(repo.search_studies(&all).await.unwrap()),
        ["1.2.3", "1.2.4"]
    );
    let q = |f: &dyn Fn(&mut StudyQuery)| {
        let mut q = all.clone();
        f(&mut q);
        q
    };
    for (query, want) in [
        (
            q(&|q| q.patient_name = Some("smith*".into())),
            vec!["1.2.4"],
        ),
        (q(&|q| q.patient_name = Some("D?e^*".into())), vec!["1.2.3"]),
        (
            q(&|q| q.patient_id = Some("TEST-0002".into())),
            vec!["1.2.4"],
        ),
        (
            q(&|q| q.patient_id = Some("TEST*".into())),
            vec!["1.2.3", "1.2.4"],
        ),
        (
            q(&|q| q.accession_number = Some("ACC-42".into())),
            vec!["1.2.3"],
        ),
        (q(&|q| q.modality = Some("MR".into())), vec!["1.2.3"]),
        (q(&|q| q.modality = Some("CR".into())), vec!["1.2.4"]),
        (
            q(&|q| {
                q.study_date_from = Some("20250101".into());
                q.study_date_to = Some("20251231".into());
            }),
            vec!["1.2.4"],
        ),
        (
            q(&|q| q.study_date_from = Some("20260101".into())),
            vec!["1.2.3"],
        ),
        (
            q(&|q| q.study_instance_uids = vec!["1.2.4".into(), "9.9".into()]),
            vec!["1.2.4"],
        ),
        (
            q(&|q| q.submitted_by = Some("fk_other".into())),
            vec!["1.2.4"],
        ),
        (q(&|q| q.patient_name = Some("100%_off".into())), vec![]),
        (
            q(&|q| {
                q.limit = 1;
                q.offset = 1;
            }),
            vec!["1.2.4"],
        ),
    ] {
        assert_eq!(
            uids(repo.search_studies(&query).await.unwrap()),
            want,
            "{query:?}"
        );
    }
    let study = repo
        .search_studies(&q(&|q| q.accession_number = Some("ACC-42".into())))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(study.series_count, 2);
    assert_eq!(study.instance_count, 2);
    assert_eq!(study.attributes["00080060"]["Value"][0], "CT");

    let study_uid = StudyInstanceUid::parse("1.2.3").unwrap();
    let series = repo
        .search_series(
            &study_uid,
            &SeriesQuery {
                limit: 10,
                ..SeriesQuery::default()
            },
        )
        .await
        .unwrap();
    let modalities: Vec<Option<String>> = series.iter().map(|s| s.modality.clone()).collect();
    assert_eq!(modalities, [Some("CT".into()), Some("MR".into())]);
    assert_eq!(series[0].instance_count, 1);
    let mr = repo
        .search_series(
            &study_uid,
            &SeriesQuery {
                modality: Some("M?".into()),
                limit: 10,
                ..SeriesQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(mr.len(), 1);
    let instances = repo
        .search_instances(
            &study_uid,
            &InstanceQuery {
                series_instance_uid: Some("1.2.3.2".into()),
                limit: 10,
                ..InstanceQuery::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(instances.len(), 1);
    assert_eq!(instances[0].sop_instance_uid.as_str(), "1.2.3.2.1");
    assert_eq!(instances[0].submitted_by.as_deref(), Some("fk_test"));
    let none = repo
        .search_instances(
            &study_uid,
            &InstanceQuery {
                submitted_by: Some("fk_other".into()),
                limit: 10,
                ..InstanceQuery::default()
            },
        )
        .await
        .unwrap();
    assert!(none.is_empty());
}
