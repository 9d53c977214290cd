//! Clinical notes over HTTP: each format is decoded, analysed and stored
//! with spans that index the stored text exactly; every refusal has its own
//! 4xx code and stores nothing; reads are limited to the right callers and
//! audited. Plus the notes store itself on PostgreSQL and SQLite.
//!
//! Fixtures (`tests/fixtures/notes/`) are invented reports of invented
//! patients.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use base64::Engine as _;
use fusion_schemas::{AccessionNumber, PatientId, Role};
use fusion_store::prelude::*;
use fusion_store::{
    AuditAction, AuditAgent, AuditEntity, AuditEventType, AuditFilter, AuditOutcome, AuditRecord,
    DatabaseUrl, EntityKind, NewNote, NoteFilter, NoteStatus, PoolOptions, StoreError,
};
use fusion_tests::{TestApp, TestDatabase, repo_root, spawn_app, spawn_app_sqlite};
use serde_json::Value;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(repo_root().join("tests/fixtures/notes").join(name)).unwrap()
}

/// An integration client's credentials.
struct Client {
    id: String,
    secret: String,
}

async fn integration(app: &TestApp, name: &str) -> Client {
    let (id, secret) = app.api_key(name, Role::Integration).await;
    Client { id, secret }
}

async fn post_note(
    app: &TestApp,
    client: &Client,
    query: &str,
    content_type: Option<&str>,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut req = app
        .client
        .post(app.url(&format!("/notes{query}")))
        .basic_auth(&client.id, Some(&client.secret))
        .body(body);
    if let Some(ct) = content_type {
        req = req.header("content-type", ct);
    }
    req.send().await.unwrap()
}

async fn get_note_as_key(app: &TestApp, client: &Client, id: &str) -> reqwest::Response {
    app.client
        .get(app.url(&format!("/notes/{id}")))
        .basic_auth(&client.id, Some(&client.secret))
        .send()
        .await
        .unwrap()
}

async fn get_as(app: &TestApp, token: &str, path: &str) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
}

async fn note_count(app: &TestApp) -> i64 {
    let mut conn = app.pg().admin_of_app().await;
    sqlx::query_scalar("SELECT COUNT(*) FROM notes")
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

fn span_of(v: &Value) -> (usize, usize) {
    (
        v["start"].as_u64().unwrap() as usize,
        v["end"].as_u64().unwrap() as usize,
    )
}

/// `text[span]`, or a failure naming the span when it is out of range or
/// splits a character.
fn slice<'a>(text: &'a str, span: &Value, what: &str) -> &'a str {
    let (start, end) = span_of(span);
    text.get(start..end)
        .unwrap_or_else(|| panic!("{what}: span {start}..{end} does not index the text"))
}

/// Every mention's span gives its text; its trigger's span gives the
/// trigger's text; its sentence holds it.
fn assert_spans_index(text: &str, mentions: &Value, sections: &Value, label: &str) {
    let mentions = mentions.as_array().unwrap();
    assert!(!mentions.is_empty(), "{label}: no mentions");
    for m in mentions {
        assert_eq!(
            slice(text, &m["span"], label),
            m["text"].as_str().unwrap(),
            "{label}: mention {m}"
        );
        let sentence = slice(text, &m["sentence"], label);
        assert!(
            sentence.contains(m["text"].as_str().unwrap()),
            "{label}: sentence {sentence:?} lacks {m}"
        );
        if let Some(t) = m["trigger"].as_object() {
            assert_eq!(
                slice(text, &t["span"], label),
                t["text"].as_str().unwrap(),
                "{label}: trigger of {m}"
            );
        }
        for key in [
            "observation",
            "assertion",
            "section",
            "historical",
            "hypothetical",
            "family",
        ] {
            assert!(m.get(key).is_some(), "{label}: mention lacks {key}");
        }
    }
    for s in sections.as_array().unwrap() {
        slice(text, &s["body"], label);
        if !s["header"].is_null() {
            slice(text, &s["header"], label);
        }
    }
}

fn assertion_of(mentions: &Value, observation: &str) -> Vec<String> {
    mentions
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["observation"] == observation)
        .map(|m| m["assertion"].as_str().unwrap().to_owned())
        .collect()
}

struct Case {
    name: &'static str,
    query: &'static str,
    content_type: &'static str,
    body: Vec<u8>,
    patient: &'static str,
    accession: &'static str,
    study: Option<&'static str>,
    source_format: &'static str,
    labels: &'static [(&'static str, &'static str)],
}

#[tokio::test]
async fn each_format_is_analysed_and_its_spans_index_the_stored_text() {
    let app = spawn_app().await;
    let ehr = integration(&app, "ehr").await;
    let clinician = app.session_for("dr.osler", Role::Clinician).await;
    let cases = [
        Case {
            name: "text/plain",
            query: "?patient_id=TP-1001&accession_number=ACC-2024-1001\
                    &study_instance_uid=2.25.100100100100&note_type=18748-4\
                    &authored_at=2024-03-05T10:15:00%2B01:00",
            content_type: "text/plain; charset=utf-8",
            body: fixture("cxr_report.txt"),
            patient: "TP-1001",
            accession: "ACC-2024-1001",
            study: Some("2.25.100100100100"),
            source_format: "text/plain",
            labels: &[
                // "likely pneumonia": CheXpert counts hedges as uncertain.
                ("pneumonia", "uncertain"),
                ("pneumothorax", "negative"),
                ("pleural_effusion", "negative"),
                ("support_devices", "positive"),
            ],
        },
        Case {
            name: "FHIR DiagnosticReport",
            query: "",
            content_type: "application/fhir+json",
            body: fixture("cxr_diagnosticreport.json"),
            patient: "TP-2002",
            accession: "ACC-2024-2002",
            study: Some("2.25.200200200200"),
            source_format: "fhir-diagnosticreport",
            labels: &[
                ("pneumothorax", "positive"),
                ("edema", "uncertain"),
                ("consolidation", "negative"),
            ],
        },
        Case {
            name: "HL7 v2 ORU^R01",
            query: "",
            content_type: "x-application/hl7-v2+er7",
            body: fixture("cxr_oru_r01.hl7"),
            patient: "TP-3003",
            accession: "ACC-2024-3003",
            study: Some("2.25.300300300300"),
            source_format: "hl7v2-oru",
            labels: &[
                ("cardiomegaly", "positive"),
                ("pneumonia", "uncertain"),
                ("pneumothorax", "negative"),
            ],
        },
    ];
    for case in cases {
        let res = post_note(
            &app,
            &ehr,
            case.query,
            Some(case.content_type),
            case.body.clone(),
        )
        .await;
        assert_eq!(res.status(), 201, "{}: {:?}", case.name, res.text().await);
        let location = res.headers()["location"].to_str().unwrap().to_owned();
        let created: Value = res.json().await.unwrap();
        let id = created["id"].as_str().unwrap();
        assert_eq!(location, format!("/notes/{id}"), "{}", case.name);
        assert_eq!(created["status"], "analysed", "{}", case.name);
        assert!(created.get("no_text_reason").is_none(), "{}", case.name);
        assert_eq!(created["patient_id"], case.patient, "{}", case.name);
        assert_eq!(created["accession_number"], case.accession, "{}", case.name);
        assert_eq!(
            created["study_instance_uid"].as_str(),
            case.study,
            "{}",
            case.name
        );
        assert_eq!(created["source_format"], case.source_format);
        for (observation, label) in case.labels {
            assert_eq!(
                created["labels"][observation],
                *label,
                "{}: {observation} (mentions {:?})",
                case.name,
                assertion_of(&created["mentions"], observation)
            );
        }

        // The clinician's read and the submitter's read return the same note.
        let read = get_as(&app, &clinician, &location).await;
        assert_eq!(read.status(), 200, "{}", case.name);
        let note: Value = read.json().await.unwrap();
        let own: Value = get_note_as_key(&app, &ehr, id).await.json().await.unwrap();
        assert_eq!(note, own, "{}", case.name);
        assert_eq!(note["submitted_by"], ehr.id.as_str());
        let text = note["text"].as_str().unwrap();
        assert_spans_index(text, &created["mentions"], &created["sections"], case.name);
        assert_spans_index(text, &note["mentions"], &note["sections"], case.name);
        assert_eq!(note["mentions"], created["mentions"], "{}", case.name);
        assert_eq!(note["labels"], created["labels"], "{}", case.name);
        if case.name == "text/plain" {
            // Kept as sent: CRLF line ends and a three-byte dash, so byte
            // and character offsets differ after it.
            assert_eq!(text.as_bytes(), case.body.as_slice());
            assert_eq!(note["note_type"]["code"], "18748-4");
            assert_eq!(note["authored_at"], "2024-03-05T09:15:00Z");
        }
    }
    assert_eq!(note_count(&app).await, 3);

    // Each creation and each read is audited with the patient it concerns.
    let events = app
        .state
        .repository
        .audit_events(&AuditFilter {
            patient_id: Some("TP-2002".into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    // The note's own events; linking it to its case and the case's
    // prediction are audited too (tests/tests/cases.rs).
    let summary: Vec<(&str, &str, AuditAction)> = events
        .iter()
        .filter(|e| e.record.subtype.starts_with("note-"))
        .map(|e| {
            (
                e.record.event_type.code(),
                e.record.subtype.as_str(),
                e.record.action,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("110110", "note-create", AuditAction::Create),
            ("110110", "note-read", AuditAction::Read),
            ("110110", "note-read", AuditAction::Read),
        ]
    );
    assert_eq!(events[0].record.agent.id, ehr.id);
    assert!(events[0].record.entities.iter().any(|e| e.kind == "note"));
}

type Refusal = (
    &'static str,
    &'static str,
    Option<&'static str>,
    Vec<u8>,
    u16,
    &'static str,
);

#[tokio::test]
async fn every_refusal_has_its_own_code_and_stores_nothing() {
    let app = spawn_app().await;
    let ehr = integration(&app, "ehr").await;
    let hl7 = fixture("cxr_oru_r01.hl7");
    let mut too_large = vec![b'a'; 10 * 1024 * 1024 + 1];
    too_large[..9].copy_from_slice(b"FINDINGS:");
    // A body well under 10 MiB whose text is one byte over the 64 KiB
    // that are analysed: as plain text, and as a FHIR attachment.
    let mut too_long = b"FINDINGS:\n".to_vec();
    while too_long.len() <= 64 * 1024 {
        too_long.extend_from_slice(b"No pleural effusion. ");
    }
    too_long.truncate(64 * 1024 + 1);
    let too_long_fhir = serde_json::json!({
        "resourceType": "DiagnosticReport", "status": "final",
        "code": {"text": "XR chest"},
        "presentedForm": [{"contentType": "text/plain",
            "data": base64::engine::general_purpose::STANDARD.encode(&too_long)}]
    })
    .to_string()
    .into_bytes();
    // (what, query, Content-Type, body, status, code)
    let cases: Vec<Refusal> = vec![
        ("FHIR that does not parse", "", Some("application/fhir+json"),
         br#"{"resourceType": "DiagnosticReport", "status": "final""#.to_vec(), 400, "fhir_malformed"),
        ("FHIR of the wrong shape", "", Some("application/fhir+json"),
         br#"{"resourceType": "DiagnosticReport", "presentedForm": {"data": 7}}"#.to_vec(), 400, "fhir_malformed"),
        // Two subjects: we would read the last, another reader the first.
        ("FHIR with a property twice", "", Some("application/fhir+json"),
         br#"{"resourceType": "DiagnosticReport", "status": "final", "code": {"text": "XR"},
             "subject": {"identifier": {"value": "TP-1"}}, "conclusion": "No effusion.",
             "subject": {"identifier": {"value": "TP-2"}}}"#.to_vec(), 400, "fhir_malformed"),
        ("a FHIR Bundle", "", Some("application/fhir+json"),
         br#"{"resourceType": "Bundle", "type": "collection", "entry": []}"#.to_vec(), 400, "fhir_bundle"),
        ("a FHIR Patient", "", Some("application/fhir+json"),
         br#"{"resourceType": "Patient", "id": "p1"}"#.to_vec(), 400, "fhir_unsupported_resource"),
        ("bad base64", "", Some("application/fhir+json"),
         br#"{"resourceType": "DiagnosticReport", "status": "final", "presentedForm": [{"contentType": "text/plain", "data": "***"}]}"#.to_vec(),
         400, "fhir_bad_base64"),
        ("HL7 without MSH", "", Some("application/hl7-v2"),
         b"PID|1||TP-9\rOBX|1|TX|x||No effusion.\r".to_vec(), 400, "hl7_no_msh"),
        ("HL7 ADT", "", Some("application/hl7-v2"),
         b"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5.1\rPID|1||TP-9\r".to_vec(), 400, "hl7_unsupported_message"),
        ("HL7 with an overlong patient id", "", Some("application/hl7-v2"),
         format!("MSH|^~\\&|A|B|C|D|20240101||ORU^R01|1|P|2.5.1\rPID|1||{}\rOBX|1|TX|x||No effusion.\r", "9".repeat(65)).into_bytes(),
         400, "invalid_identifier"),
        ("an empty body", "", Some("text/plain"), Vec::new(), 400, "empty_body"),
        ("a whitespace body", "", Some("application/hl7-v2"), b" \r\n ".to_vec(), 400, "empty_body"),
        ("10 MiB + 1", "", Some("text/plain"), too_large, 413, "too_large"),
        ("text of 64 KiB + 1", "", Some("text/plain"), too_long, 413, "text_too_long"),
        ("a FHIR attachment of 64 KiB + 1", "", Some("application/fhir+json"), too_long_fhir,
         413, "text_too_long"),
        ("UTF-16 without BOM", "", Some("text/plain"),
         "No effusion.".encode_utf16().flat_map(u16::to_le_bytes).collect(), 400, "utf16_without_bom"),
        ("declared UTF-8, is not", "", Some("text/plain; charset=utf-8"),
         b"No pleural effusion \xff\xfe.".to_vec(), 400, "not_utf8"),
        ("an unknown charset", "", Some("text/plain; charset=x-klingon"),
         b"No effusion.".to_vec(), 400, "unsupported_charset"),
        ("binary", "", Some("text/plain"), b"%PDF-1.4\n\0\0\x01\x02".to_vec(), 400, "binary_content"),
        ("a PDF media type", "", Some("application/pdf"), b"%PDF-1.4".to_vec(), 415, "unsupported_media_type"),
        ("no media type", "", None, b"No effusion.".to_vec(), 415, "unsupported_media_type"),
        ("a bad patient_id", "?patient_id=TP%5C1", Some("text/plain"),
         b"No effusion.".to_vec(), 400, "invalid_parameter"),
        ("a bad study_instance_uid", "?study_instance_uid=1.02.3", Some("text/plain"),
         b"No effusion.".to_vec(), 400, "invalid_parameter"),
        ("a bad authored_at", "?authored_at=2024-03-05", Some("text/plain"),
         b"No effusion.".to_vec(), 400, "invalid_parameter"),
        ("a parameter contradicting the message", "?patient_id=TP-OTHER",
         Some("application/hl7-v2"), hl7.clone(), 400, "metadata_conflict"),
    ];
    for (name, query, content_type, body, status, code) in cases {
        let res = post_note(&app, &ehr, query, content_type, body).await;
        assert_eq!(res.status().as_u16(), status, "{name}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["code"], code, "{name}: {body}");
        if matches!(code, "invalid_parameter" | "metadata_conflict") {
            let message = body["message"].as_str().unwrap();
            let param = query[1..].split('=').next().unwrap();
            assert!(message.contains(param), "{name}: {message}");
        }
    }
    assert_eq!(note_count(&app).await, 0);
    let created = app
        .state
        .repository
        .audit_events(&AuditFilter::default())
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.record.subtype == "note-create")
        .count();
    assert_eq!(created, 0);

    // A parameter that agrees with the message, or fills what it lacks, is fine.
    let res = post_note(
        &app,
        &ehr,
        "?patient_id=TP-3003&note_type=18782-3",
        Some("x-application/hl7-v2+er7"),
        hl7,
    )
    .await;
    assert_eq!(res.status(), 400, "OBX note type vs parameter");
    let res = post_note(
        &app,
        &ehr,
        "?patient_id=TP-3003",
        Some("application/hl7-v2"),
        fixture("cxr_oru_r01.hl7"),
    )
    .await;
    assert_eq!(res.status(), 201);
    assert_eq!(note_count(&app).await, 1);
}

/// A note of exactly the 64 KiB of text that are analysed is accepted and
/// labelled: the limit refuses only what is over it.
#[tokio::test]
async fn a_note_of_the_whole_text_limit_is_analysed() {
    let app = spawn_app().await;
    let ehr = integration(&app, "ehr").await;
    let mut text = b"FINDINGS:\nMild cardiomegaly.\n".to_vec();
    let filler: [&[u8]; 3] = [
        b"No pleural effusion. ",
        b"The osseous structures are intact. ",
        b"Degenerative changes of the spine.\n",
    ];
    for k in 0.. {
        let next = filler[k % filler.len()];
        if text.len() + next.len() > 64 * 1024 {
            break;
        }
        text.extend_from_slice(next);
    }
    text.resize(64 * 1024, b' ');
    let res = post_note(&app, &ehr, "?patient_id=TP-9", Some("text/plain"), text).await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    assert_eq!(created["labels"]["cardiomegaly"], "positive");
    assert_eq!(created["labels"]["pleural_effusion"], "negative");
}

#[tokio::test]
async fn a_pdf_only_report_is_stored_without_text() {
    let app = spawn_app().await;
    let ehr = integration(&app, "ehr").await;
    let res = post_note(
        &app,
        &ehr,
        "?accession_number=ACC-2024-2003",
        Some("application/fhir+json"),
        fixture("cxr_pdf_only.json"),
    )
    .await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    assert_eq!(created["status"], "no_text");
    assert_eq!(created["no_text_reason"]["reason"], "pdf_only");
    assert_eq!(created["patient_id"], "TP-2003");
    assert_eq!(created["accession_number"], "ACC-2024-2003");
    assert_eq!(created["mentions"], serde_json::json!([]));
    let note: Value = get_note_as_key(&app, &ehr, created["id"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert!(note["text"].is_null());
    assert_eq!(note["no_text_reason"]["reason"], "pdf_only");
}

#[tokio::test]
async fn reads_are_limited_to_clinicians_and_the_submitter_and_audited() {
    let app = spawn_app().await;
    let ehr = integration(&app, "ehr").await;
    let other = integration(&app, "other-ehr").await;
    let clinician = app.session_for("dr.osler", Role::Clinician).await;
    let auditor = app.session_for("compliance", Role::Auditor).await;
    let mut ids = Vec::new();
    for (patient, accession) in [
        ("TP-1001", "ACC-1"),
        ("TP-1001", "ACC-2"),
        ("TP-1002", "ACC-3"),
    ] {
        let res = post_note(
            &app,
            &ehr,
            &format!("?patient_id={patient}&accession_number={accession}"),
            Some("text/plain"),
            b"FINDINGS: No pneumothorax. Possible small left effusion.".to_vec(),
        )
        .await;
        assert_eq!(res.status(), 201);
        let body: Value = res.json().await.unwrap();
        ids.push(body["id"].as_str().unwrap().to_owned());
    }

    // An accession already known for one patient refuses another's note.
    let res = post_note(
        &app,
        &ehr,
        "?patient_id=TP-1002&accession_number=ACC-2",
        Some("text/plain"),
        b"FINDINGS: No pneumothorax.".to_vec(),
    )
    .await;
    assert_eq!(res.status(), 409);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "patient_mismatch");

    // Another integration client cannot tell someone else's note from none.
    let theirs = get_note_as_key(&app, &other, &ids[0]).await;
    assert_eq!(theirs.status(), 404);
    let theirs: Value = theirs.json().await.unwrap();
    let none = get_note_as_key(&app, &other, &uuid::Uuid::now_v7().to_string()).await;
    assert_eq!(none.status(), 404);
    assert_eq!(theirs, none.json::<Value>().await.unwrap());
    assert_eq!(
        get_note_as_key(&app, &ehr, "not-a-uuid").await.status(),
        404
    );
    assert_eq!(get_note_as_key(&app, &ehr, &ids[0]).await.status(), 200);
    assert_eq!(
        get_as(&app, &auditor, &format!("/notes/{}", ids[0]))
            .await
            .status(),
        403
    );

    // Lists: clinicians only, by patient, accession or study.
    let list = |q: &str| {
        let path = format!("/notes{q}");
        let (app, clinician) = (&app, &clinician);
        async move { get_as(app, clinician, &path).await }
    };
    let by_patient: Value = list("?patient_id=TP-1001").await.json().await.unwrap();
    let found: Vec<&str> = by_patient["notes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|n| n["id"].as_str().unwrap())
        .collect();
    assert_eq!(found, [ids[0].as_str(), ids[1].as_str()]);
    assert!(by_patient["notes"][0].get("text").is_none());
    assert_eq!(by_patient["notes"][0]["labels"]["pneumothorax"], "negative");
    let by_accession: Value = list("?accession_number=ACC-2").await.json().await.unwrap();
    assert_eq!(by_accession["notes"].as_array().unwrap().len(), 1);
    let both: Value = list("?accession_number=ACC-3&patient_id=TP-1002")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(both["notes"].as_array().unwrap().len(), 1);
    assert_eq!(list("").await.status(), 400);
    assert_eq!(list("?patient_id=a%5Cb").await.status(), 400);
    let as_key = app
        .client
        .get(app.url("/notes?patient_id=TP-1001"))
        .basic_auth(&ehr.id, Some(&ehr.secret))
        .send()
        .await
        .unwrap();
    assert_eq!(as_key.status(), 403);

    let events = app
        .state
        .repository
        .audit_events(&AuditFilter::default())
        .await
        .unwrap();
    let searches: Vec<&AuditRecord> = events
        .iter()
        .map(|e| &e.record)
        .filter(|r| r.subtype == "note-search")
        .collect();
    assert_eq!(searches.len(), 3, "three successful lists");
    assert_eq!(searches[1].patient_ids, ["TP-1001"]);
    assert_eq!(searches[1].event_type, AuditEventType::Query);
    let refused: Vec<&AuditRecord> = events
        .iter()
        .map(|e| &e.record)
        .filter(|r| r.subtype == "access-denied" && r.agent.id == other.id)
        .collect();
    assert_eq!(refused.len(), 1, "the refused read of an existing note");
    assert_eq!(refused[0].outcome, AuditOutcome::MinorFailure);
    assert!(refused[0].patient_ids.is_empty());
    let reads = events
        .iter()
        .filter(|e| e.record.subtype == "note-read")
        .count();
    assert_eq!(reads, 1);
    assert_eq!(
        fusion_store::verify_chain(app.state.repository.as_ref())
            .await
            .unwrap()
            .first_break,
        None
    );
}

#[tokio::test]
async fn notes_work_on_the_embedded_default_too() {
    let app = spawn_app_sqlite().await;
    let ehr = integration(&app, "ehr").await;
    let res = post_note(
        &app,
        &ehr,
        "?patient_id=TP-1001",
        Some("text/plain"),
        fixture("cxr_report.txt"),
    )
    .await;
    assert_eq!(res.status(), 201);
    let created: Value = res.json().await.unwrap();
    let note: Value = get_note_as_key(&app, &ehr, created["id"].as_str().unwrap())
        .await
        .json()
        .await
        .unwrap();
    assert_spans_index(
        note["text"].as_str().unwrap(),
        &note["mentions"],
        &note["sections"],
        "sqlite",
    );
    assert_eq!(note["mentions"], created["mentions"]);
}

fn store_audit(note: &NewNote) -> AuditRecord {
    AuditRecord {
        event_type: AuditEventType::PatientRecord,
        subtype: "note-create".into(),
        action: AuditAction::Create,
        outcome: AuditOutcome::Success,
        outcome_desc: None,
        agent: AuditAgent::system(),
        entities: vec![AuditEntity::new(EntityKind::Note, note.id.to_string())],
        patient_ids: note
            .patient_id
            .iter()
            .map(|p| p.as_str().to_owned())
            .collect(),
        purpose_of_use: None,
        request_id: None,
    }
}

fn new_note(patient: &str, accession: &str, text: Option<&str>) -> NewNote {
    NewNote {
        id: uuid::Uuid::now_v7(),
        patient_id: Some(PatientId::parse(patient).unwrap()),
        accession_number: Some(AccessionNumber::parse(accession).unwrap()),
        study_instance_uid: None,
        note_type: Some(fusion_store::NoteTypeCode {
            system: Some("http://loinc.org".into()),
            code: Some("18748-4".into()),
            display: Some("Diagnostic imaging study".into()),
        }),
        source_format: "text/plain".into(),
        source_id: None,
        authored_at: Some(chrono::DateTime::from_timestamp(1_709_630_100, 0).unwrap()),
        authored_at_precision: Some("second".into()),
        text: text.map(str::to_owned),
        status: if text.is_some() {
            NoteStatus::Analysed
        } else {
            NoteStatus::NoText
        },
        no_text_reason: text
            .is_none()
            .then(|| serde_json::json!({"reason": "pdf_only"})),
        sections: serde_json::from_value(serde_json::json!([{"kind": "findings", "header": null, "body": {"start": 0, "end": 4}}])).unwrap(),
        mentions: Vec::new(),
        labels: serde_json::from_value(serde_json::json!({"pneumothorax": "negative"})).unwrap(),
        submitted_by: Some("fk_test".into()),
    }
}

async fn store_story(repo: &dyn Repository) {
    let with_text = new_note("TP-1", "ACC-1", Some("No pneumothorax — none."));
    let without = new_note("TP-1", "ACC-2", None);
    repo.put_note(&with_text, &store_audit(&with_text))
        .await
        .unwrap();
    repo.put_note(&without, &store_audit(&without))
        .await
        .unwrap();
    let again = repo.put_note(&with_text, &store_audit(&with_text)).await;
    assert!(
        matches!(again, Err(StoreError::AlreadyExists(_))),
        "{again:?}"
    );

    let back = repo.note(with_text.id).await.unwrap().unwrap();
    assert_eq!(back.note, with_text);
    let back = repo.note(without.id).await.unwrap().unwrap();
    assert_eq!(back.note, without);
    assert!(repo.note(uuid::Uuid::now_v7()).await.unwrap().is_none());

    let by_patient = repo
        .notes(&NoteFilter {
            patient_id: Some(PatientId::parse("TP-1").unwrap()),
            ..NoteFilter::default()
        })
        .await
        .unwrap();
    let ids: Vec<_> = by_patient.iter().map(|n| n.id).collect();
    assert_eq!(ids, [with_text.id, without.id]);
    assert_eq!(by_patient[1].status, NoteStatus::NoText);
    assert_eq!(by_patient[0].labels, with_text.labels);
    let by_accession = repo
        .notes(&NoteFilter {
            accession_number: Some(AccessionNumber::parse("ACC-2").unwrap()),
            ..NoteFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(by_accession.len(), 1);
    assert_eq!(by_accession[0].id, without.id);
    let limited = repo
        .notes(&NoteFilter {
            limit: Some(1),
            ..NoteFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(limited.len(), 1);

    // One audit event per stored note; the refused duplicate left none.
    let events = repo.audit_events(&AuditFilter::default()).await.unwrap();
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e.record.patient_ids == ["TP-1"]));
}

#[tokio::test]
async fn the_notes_store_round_trips_on_postgres_and_sqlite() {
    let db = TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let urls = [
        db.url.clone(),
        format!("sqlite://{}/notes.db", dir.path().display()),
    ];
    for url in urls {
        let url = DatabaseUrl::parse(url.into()).unwrap();
        let repo = fusion_store::connect(&url, &PoolOptions::default())
            .await
            .unwrap();
        repo.migrate().await.unwrap();
        store_story(repo.as_ref()).await;
    }
}
