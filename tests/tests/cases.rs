//! Cases and predictions end to end, with the real pipeline and the
//! reference model packages (`models/packages`, `scripts/fetch-models`): a
//! study and a note of one order become one case whose prediction fuses
//! both; a note alone gives a text-only prediction, re-issued as a new
//! version when its study arrives; explicit requests; reviews; and the job
//! queue itself on PostgreSQL (exclusive claims) and SQLite.
//!
//! The notes are invented reports of invented patients; the DICOM files are
//! the public pydicom test files.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;

use fusion_schemas::{
    AccessionNumber, BranchReport, BranchStatus, Branches, FusedLabel, Opinion, PredictionInputs,
    Role, StudyInstanceUid,
};
use fusion_store::prelude::*;
use fusion_store::{
    AuditAction, AuditAgent, AuditEventType, AuditFilter, AuditOutcome, AuditRecord, CaseFilter,
    CaseKey, CaseSort, CaseStatus, DatabaseUrl, Finding, JobState, LinkChange, NewPrediction,
    NewReview, PoolOptions, PredictionStatus,
};
use fusion_tests::dicom::{multipart, stow_content_type};
use fusion_tests::{TestApp, TestDatabase, repo_root, spawn_app_with};
use serde_json::{Value, json};
use uuid::Uuid;

const BOUNDARY: &str = "fusion-cases-boundary-0123456789abcdef";
const CR: &str = "pydicom-data-1.0.0/data_store/data/RG1_UNCR.dcm";
const CT: &str = "pydicom-3.0.2/test_files/CT_small.dcm";

/// An invented chest radiograph report with pneumonia.
const PNEUMONIA_REPORT: &str = "EXAMINATION: Chest radiograph, PA.\n\
INDICATION: Cough and fever.\n\
FINDINGS: Patchy airspace consolidation in the right lower lobe. \
No pleural effusion. No pneumothorax. Heart size is normal.\n\
IMPRESSION: Right lower lobe pneumonia.\n";

fn dicom(file: &str) -> Vec<u8> {
    fusion_tests::dicom::read(file)
}

fn attrs(file: &str) -> fusion_imaging::InstanceAttributes {
    fusion_imaging::index_attributes(&fusion_imaging::parse(&dicom(file)).unwrap())
}

async fn app_with_models() -> TestApp {
    let models = repo_root().join("models/packages");
    assert!(
        models.join("pneumonia-xception/model.safetensors").exists(),
        "run scripts/fetch-models"
    );
    spawn_app_with(|s| {
        s.models_dir = models;
        s.workers = 1;
    })
    .await
}

struct Actors {
    /// Integration client: (key id, secret).
    pacs: (String, String),
    clinician: String,
}

async fn actors(app: &TestApp) -> Actors {
    Actors {
        pacs: app.api_key("pacs", Role::Integration).await,
        clinician: app.session_for("dr.case", Role::Clinician).await,
    }
}

async fn stow(app: &TestApp, who: &Actors, file: &str) {
    let bytes = dicom(file);
    let res = app
        .client
        .post(app.url("/dicom-web/studies"))
        .basic_auth(&who.pacs.0, Some(&who.pacs.1))
        .header("Content-Type", stow_content_type(BOUNDARY))
        .header("Accept", "application/dicom+json")
        .body(multipart(BOUNDARY, &[("application/dicom", &bytes)]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "STOW of {file}");
}

async fn post_note(app: &TestApp, who: &Actors, query: &[(&str, &str)], text: &str) -> Value {
    let res = app
        .client
        .post(app.url("/notes"))
        .basic_auth(&who.pacs.0, Some(&who.pacs.1))
        .query(query)
        .header("Content-Type", "text/plain; charset=utf-8")
        .body(text.to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    res.json().await.unwrap()
}

async fn get_json(app: &TestApp, token: &str, path: &str) -> (u16, Value) {
    let res = app
        .client
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn post_json_as_key(app: &TestApp, who: &Actors, path: &str, body: &Value) -> (u16, Value) {
    let res = app
        .client
        .post(app.url(path))
        .basic_auth(&who.pacs.0, Some(&who.pacs.1))
        .json(body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// The id of the one case with this accession number.
async fn case_by_accession(app: &TestApp, who: &Actors, accession: &str) -> String {
    let (status, list) = get_json(
        app,
        &who.clinician,
        &format!("/cases?accession_number={}", urlencode(accession)),
    )
    .await;
    assert_eq!(status, 200, "{list}");
    let cases = list["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 1, "{list}");
    cases[0]["id"].as_str().unwrap().to_owned()
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Polls the case's predictions (newest first) until `done` holds.
async fn wait_for_predictions(
    app: &TestApp,
    who: &Actors,
    case_id: &str,
    what: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    app.wait_for_predictions(&who.clinician, case_id, what, done)
        .await
}

fn branch<'a>(p: &'a Value, name: &str) -> &'a str {
    p["branches"][name]["status"].as_str().unwrap()
}

fn sources(p: &Value, label: &str) -> Vec<String> {
    p["fused"][label]["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_study_and_its_report_fuse_into_one_case() {
    let app = app_with_models().await;
    let who = actors(&app).await;
    let cr = attrs(CR);
    let accession = cr.accession_number.clone().unwrap().to_string();

    stow(&app, &who, CR).await;
    let note = post_note(
        &app,
        &who,
        &[
            ("accession_number", accession.as_str()),
            ("note_type", "18748-4"),
        ],
        PNEUMONIA_REPORT,
    )
    .await;
    let case_id = case_by_accession(&app, &who, &accession).await;

    // The image-only version (if the worker was quick) and then the fused one.
    let versions = wait_for_predictions(&app, &who, &case_id, "a fused prediction", |v| {
        v.first().is_some_and(|p| branch(p, "text") == "used")
    })
    .await;
    let fused = &versions[0];
    // An adult's radiograph: outside the paediatric package's ages, so the
    // image opinion is trust-discounted; the report is used as is.
    assert_eq!(branch(fused, "image"), "discounted", "{fused:#}");
    assert!(fused["branches"]["image"]["trust"].as_f64().unwrap() < 1.0);
    assert_eq!(
        fused["branches"]["image"]["instance"],
        cr.sop_instance_uid.to_string()
    );
    let mut pneumonia = sources(fused, "pneumonia");
    pneumonia.sort();
    assert_eq!(pneumonia, ["image", "text"], "{fused:#}");
    let p = fused["fused"]["pneumonia"]["opinion"]["probability"]
        .as_f64()
        .unwrap();
    assert!(p > 0.5, "a positive report: {p}");
    assert_eq!(fused["inputs"]["notes"][0], note["id"]);
    assert!(fused["packages"].as_array().unwrap().len() >= 2);
    let version = fused["version"].as_i64().unwrap();
    assert_eq!(version, versions.len() as i64);

    // The case: its study, its note, its latest prediction.
    let (status, case) = get_json(&app, &who.clinician, &format!("/cases/{case_id}")).await;
    assert_eq!(status, 200);
    assert_eq!(
        case["study_instance_uid"],
        cr.study_instance_uid.to_string()
    );
    assert_eq!(case["note_ids"], json!([note["id"]]));
    // The study and the note each queued a job: wait until none is left.
    let mut case = case;
    for _ in 0..120 {
        if ["predicted", "abstained"].contains(&case["status"].as_str().unwrap()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        case = get_json(&app, &who.clinician, &format!("/cases/{case_id}"))
            .await
            .1;
    }
    assert!(
        ["predicted", "abstained"].contains(&case["status"].as_str().unwrap()),
        "{case}"
    );
    let latest = case["latest_prediction"]["version"].as_i64().unwrap();
    assert!(latest >= version);
    let (status, one) = get_json(
        &app,
        &who.clinician,
        &format!("/predictions/{}", fused["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(one["id"], fused["id"]);

    // The list shows the latest prediction's top findings.
    let (_, list) = get_json(&app, &who.clinician, "/cases?sort=study_date").await;
    let row = &list["cases"][0];
    assert_eq!(row["id"], case_id.as_str());
    assert_eq!(row["study_date"], "20040826");
    let findings = row["latest_prediction"]["findings"].as_array().unwrap();
    assert!(
        findings.iter().any(|f| f["label"] == "pneumonia"),
        "{row:#}"
    );

    // Results are clinical: the PACS's key reads none of them.
    for path in [
        format!("/cases/{case_id}"),
        "/cases".to_owned(),
        format!("/cases/{case_id}/predictions"),
    ] {
        let res = app
            .client
            .get(app.url(&path))
            .basic_auth(&who.pacs.0, Some(&who.pacs.1))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "{path}");
    }

    // The case and each version were created with their audit events, the
    // versions by the worker.
    let events = app
        .state
        .repository
        .audit_events(&AuditFilter::default())
        .await
        .unwrap();
    let created: Vec<&AuditRecord> = events
        .iter()
        .map(|e| &e.record)
        .filter(|r| r.subtype == "prediction-create")
        .collect();
    assert_eq!(
        created.len() as i64,
        latest,
        "one audited creation per version"
    );
    assert!(created.iter().all(|r| r.action == AuditAction::Create
        && r.event_type == AuditEventType::PatientRecord
        && r.agent.kind == "system"
        && r.patient_ids == [cr.patient_id.clone().unwrap().to_string()]));
    let case_created: Vec<&AuditRecord> = events
        .iter()
        .map(|e| &e.record)
        .filter(|r| r.subtype == "case-create")
        .collect();
    assert_eq!(case_created.len(), 1);
    assert_eq!(case_created[0].entities[0].id, case_id);
    assert_eq!(case_created[0].agent.name, "pacs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_alone_then_its_ct_gives_a_new_version_and_reviews_are_kept() {
    let app = app_with_models().await;
    let who = actors(&app).await;
    let ct = attrs(CT);
    let study = ct.study_instance_uid.to_string();
    let accession = "ACC-CT-0001";
    let patient = ct.patient_id.clone().unwrap().to_string();

    // The report first: a text-only prediction, the image branch missing.
    let note = post_note(
        &app,
        &who,
        &[
            ("accession_number", accession),
            ("study_instance_uid", study.as_str()),
            ("patient_id", patient.as_str()),
        ],
        PNEUMONIA_REPORT,
    )
    .await;
    let case_id = case_by_accession(&app, &who, accession).await;
    let v1 = wait_for_predictions(&app, &who, &case_id, "version 1", |v| !v.is_empty()).await;
    assert_eq!(v1.len(), 1);
    assert_eq!(v1[0]["version"], 1);
    assert_eq!(branch(&v1[0], "image"), "missing", "{:#}", v1[0]);
    assert!(
        v1[0]["branches"]["image"]["reason"]
            .as_str()
            .is_some_and(|r| !r.is_empty())
    );
    assert_eq!(branch(&v1[0], "text"), "used");
    assert_eq!(sources(&v1[0], "pneumonia"), ["text"]);

    // Its study arrives (no accession number in the file: found by study):
    // a CT is outside the radiograph package's intended use, so version 2
    // says why and falls back to the report.
    stow(&app, &who, CT).await;
    let versions = wait_for_predictions(&app, &who, &case_id, "version 2", |v| v.len() >= 2).await;
    assert_eq!(versions.len(), 2, "one new version for one new instance");
    let v2 = &versions[0];
    assert_eq!(v2["version"], 2, "newest first");
    assert_eq!(
        versions[1]["id"], v1[0]["id"],
        "version 1 is kept as it was"
    );
    assert_eq!(branch(v2, "image"), "not_applicable", "{v2:#}");
    let reason = v2["branches"]["image"]["reason"].as_str().unwrap();
    assert!(!reason.is_empty());
    assert_eq!(branch(v2, "text"), "used");
    assert_eq!(sources(v2, "pneumonia"), ["text"]);
    assert_eq!(
        v2["fused"]["pneumonia"]["opinion"]["probability"],
        v1[0]["fused"]["pneumonia"]["opinion"]["probability"],
        "the fallback equals the text opinion"
    );
    assert_eq!(v2["inputs"]["study_instance_uid"], study.as_str());
    assert_eq!(v2["inputs"]["notes"], json!([note["id"]]));

    // Reviews: validated, stored, listed, audited; the case is reviewed.
    let v2_id = v2["id"].as_str().unwrap();
    let review_path = format!("/predictions/{v2_id}/reviews");
    let post_review = |body: Value| {
        app.client
            .post(app.url(&review_path))
            .bearer_auth(&who.clinician)
            .json(&body)
            .send()
    };
    for (body, code) in [
        (json!({"decisions": {}}), "invalid_review"),
        (
            json!({"decisions": {"dragons": {"decision": "accept"}}}),
            "unknown_observation",
        ),
        (
            json!({"decisions": {"pneumonia": {"decision": "amend"}}}),
            "invalid_review",
        ),
        (
            json!({"decisions": {"pneumonia": {"decision": "accept", "value": "absent"}}}),
            "invalid_review",
        ),
    ] {
        let res = post_review(body.clone()).await.unwrap();
        assert_eq!(res.status(), 400, "{body}");
        let err: Value = res.json().await.unwrap();
        assert_eq!(err["code"], code, "{body}");
    }
    let res = post_review(json!({"decisions": {"pneumonia": {"decision": "maybe"}}}))
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let (status, _) = post_json_as_key(
        &app,
        &who,
        &review_path,
        &json!({"decisions": {"pneumonia": {"decision": "accept"}}}),
    )
    .await;
    assert_eq!(status, 403, "integration clients do not review");

    let res = post_review(json!({
        "decisions": {
            "pneumonia": {"decision": "accept"},
            "pleural_effusion": {"decision": "amend", "value": "uncertain"},
        },
        "comment": "Agree; small effusion cannot be excluded.",
    }))
    .await
    .unwrap();
    assert_eq!(res.status(), 201);
    let review: Value = res.json().await.unwrap();
    assert_eq!(review["prediction_id"], v2_id);
    assert_eq!(review["case_id"], case_id.as_str());
    assert_eq!(
        review["decisions"]["pleural_effusion"]["value"],
        "uncertain"
    );
    let (status, listed) = get_json(&app, &who.clinician, &review_path).await;
    assert_eq!(status, 200);
    assert_eq!(listed["reviews"].as_array().unwrap().len(), 1);
    assert_eq!(listed["reviews"][0]["id"], review["id"]);
    let (_, case) = get_json(&app, &who.clinician, &format!("/cases/{case_id}")).await;
    assert_eq!(case["status"], "reviewed");
    let (_, reviewed) = get_json(&app, &who.clinician, "/cases?status=reviewed").await;
    assert_eq!(reviewed["cases"].as_array().unwrap().len(), 1);

    let events = app
        .state
        .repository
        .audit_events(&AuditFilter {
            patient_id: Some(patient.clone()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let review_event = events
        .iter()
        .find(|e| e.record.subtype == "review-create")
        .expect("the review is audited");
    assert_eq!(review_event.record.action, AuditAction::Create);
    assert_eq!(
        review_event.record.event_type,
        AuditEventType::PatientRecord
    );
    assert!(
        review_event
            .record
            .entities
            .iter()
            .any(|e| e.kind == "review" && e.id == review["id"].as_str().unwrap())
    );
    assert!(events.iter().any(|e| e.record.subtype == "review-read"));
    let report = fusion_store::verify_chain(app.state.repository.as_ref())
        .await
        .unwrap();
    assert!(report.first_break.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explicit_cases_and_prediction_requests() {
    let app = app_with_models().await;
    let who = actors(&app).await;

    // A note with no order or study: stored, linked to nothing.
    let note = post_note(&app, &who, &[("patient_id", "TP-CASE-2")], PNEUMONIA_REPORT).await;
    let (_, none) = get_json(&app, &who.clinician, "/cases").await;
    assert!(none["cases"].as_array().unwrap().is_empty());

    // Neither an accession number nor a study: 400; an unknown note: 400.
    let (status, err) = post_json_as_key(&app, &who, "/cases", &json!({})).await;
    assert_eq!(status, 400);
    assert_eq!(err["code"], "case_key_required");
    let (status, err) = post_json_as_key(
        &app,
        &who,
        "/cases",
        &json!({"accession_number": "ACC-X-1", "note_ids": [Uuid::new_v4()]}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(err["code"], "unknown_note");

    // The integration client opens a case for its note and asks for a
    // prediction: 201, then 202 with the queued job.
    let (status, opened) = post_json_as_key(
        &app,
        &who,
        "/cases",
        &json!({"accession_number": "ACC-X-1", "note_ids": [note["id"]]}),
    )
    .await;
    assert_eq!(status, 201, "{opened}");
    assert_eq!(opened["created"], true);
    assert_eq!(opened["note_ids"], json!([note["id"]]));
    let case_id = opened["id"].as_str().unwrap().to_owned();
    let (status, again) = post_json_as_key(
        &app,
        &who,
        "/cases",
        &json!({"accession_number": "ACC-X-1"}),
    )
    .await;
    assert_eq!(status, 200, "the same order is the same case");
    assert_eq!(again["id"], case_id.as_str());
    let (status, queued) = post_json_as_key(
        &app,
        &who,
        &format!("/cases/{case_id}/predictions"),
        &json!({}),
    )
    .await;
    assert_eq!(status, 202, "{queued}");
    assert_eq!(queued["status"], "queued");
    let job_id: Uuid = queued["job_id"].as_str().unwrap().parse().unwrap();
    let versions = wait_for_predictions(&app, &who, &case_id, "the requested prediction", |v| {
        !v.is_empty()
    })
    .await;
    assert_eq!(branch(&versions[0], "image"), "missing");
    assert_eq!(versions[0]["job_id"], job_id.to_string());
    let job = app.state.repository.job(job_id).await.unwrap().unwrap();
    assert_eq!(job.state, JobState::Done);

    // Asked again: a new version, the old one kept.
    let (status, _) = post_json_as_key(
        &app,
        &who,
        &format!("/cases/{case_id}/predictions"),
        &json!({}),
    )
    .await;
    assert_eq!(status, 202);
    let versions = wait_for_predictions(&app, &who, &case_id, "version 2", |v| v.len() >= 2).await;
    let numbers: Vec<i64> = versions
        .iter()
        .map(|v| v["version"].as_i64().unwrap())
        .collect();
    assert_eq!(numbers, [2, 1]);

    // Another integration client neither re-runs this case nor learns the
    // notes others sent to it.
    let other = app.api_key("other-ris", Role::Integration).await;
    let res = app
        .client
        .post(app.url(&format!("/cases/{case_id}/predictions")))
        .basic_auth(&other.0, Some(&other.1))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let res = app
        .client
        .post(app.url("/cases"))
        .basic_auth(&other.0, Some(&other.1))
        .json(&json!({"accession_number": "ACC-X-1"}))
        .send()
        .await
        .unwrap();
    // Another sender's order is as unknown to it as an absent one: no case
    // id, status or study comes back (issue #14, finding 7).
    assert_eq!(res.status(), 404);
    let seen = res.text().await.unwrap();
    assert!(!seen.contains(case_id.as_str()), "{seen}");
    // Once a report of its own joined the order, both senders open it: the
    // first sender keeps its hold on the case it opened (it was refused
    // once another sender's note joined).
    let res = app
        .client
        .post(app.url("/notes"))
        .basic_auth(&other.0, Some(&other.1))
        .query(&[("patient_id", "TP-CASE-2"), ("accession_number", "ACC-X-1")])
        .header("Content-Type", "text/plain")
        .body(PNEUMONIA_REPORT)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    for key in [&who.pacs, &other] {
        let res = app
            .client
            .post(app.url("/cases"))
            .basic_auth(&key.0, Some(&key.1))
            .json(&json!({"accession_number": "ACC-X-1"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{}", key.0);
        let opened: Value = res.json().await.unwrap();
        assert_eq!(opened["id"], case_id.as_str());
    }

    // A case with nothing to predict from: 422, nothing queued.
    let (status, empty) = post_json_as_key(
        &app,
        &who,
        "/cases",
        &json!({"accession_number": "ACC-EMPTY"}),
    )
    .await;
    assert_eq!(status, 201);
    let empty_id: Uuid = empty["id"].as_str().unwrap().parse().unwrap();
    assert_eq!(empty["status"], "awaiting_image");
    let (status, err) = post_json_as_key(
        &app,
        &who,
        &format!("/cases/{empty_id}/predictions"),
        &json!({}),
    )
    .await;
    assert_eq!(status, 422);
    assert_eq!(err["code"], "no_modality");
    assert!(
        app.state
            .repository
            .jobs_of_case(empty_id)
            .await
            .unwrap()
            .is_empty()
    );
    let (status, _) = post_json_as_key(
        &app,
        &who,
        &format!("/cases/{}/predictions", Uuid::new_v4()),
        &json!({}),
    )
    .await;
    assert_eq!(status, 404);

    // Lists: filters, sort and paging.
    let (_, page) = get_json(&app, &who.clinician, "/cases?sort=updated&limit=1").await;
    assert_eq!(page["cases"].as_array().unwrap().len(), 1);
    let (_, page2) = get_json(&app, &who.clinician, "/cases?sort=updated&limit=1&offset=1").await;
    assert_ne!(page["cases"][0]["id"], page2["cases"][0]["id"]);
    let (_, awaiting) = get_json(&app, &who.clinician, "/cases?status=awaiting_image").await;
    assert_eq!(awaiting["cases"][0]["id"], empty_id.to_string());
    let (_, by_patient) = get_json(&app, &who.clinician, "/cases?patient_id=TP-CASE-2").await;
    assert_eq!(by_patient["cases"][0]["id"], case_id.as_str());
    for bad in [
        "status=lost",
        "sort=size",
        "study_date_from=2024-13-40",
        "limit=0",
    ] {
        let (status, _) = get_json(&app, &who.clinician, &format!("/cases?{bad}")).await;
        assert_eq!(status, 400, "{bad}");
    }
}

// ------------------------------------------------------------------ the store

fn worker_audit(subtype: &str, action: AuditAction) -> AuditRecord {
    AuditRecord {
        event_type: AuditEventType::PatientRecord,
        subtype: subtype.into(),
        action,
        outcome: AuditOutcome::Success,
        outcome_desc: None,
        agent: AuditAgent::system(),
        entities: vec![],
        patient_ids: vec!["TP-Q".into()],
        purpose_of_use: None,
        request_id: None,
    }
}

fn key(accession: &str) -> CaseKey {
    CaseKey {
        accession_number: Some(AccessionNumber::parse(accession).unwrap()),
        study_instance_uid: None,
        patient_id: None,
    }
}

fn prediction(case_id: Uuid, job_id: Option<Uuid>) -> NewPrediction {
    NewPrediction {
        id: Uuid::now_v7(),
        case_id,
        status: PredictionStatus::Predicted,
        packages: vec![],
        branches: Branches {
            image: BranchReport::empty(BranchStatus::Missing, "no image"),
            text: BranchReport::empty(BranchStatus::Used, "a note"),
        },
        fused: [(
            "pneumonia".to_owned(),
            FusedLabel {
                opinion: Opinion::new(0.8, 0.2, 0.0, 0.5).unwrap(),
                conflict: 0.0,
                prediction_set: None,
                sources: vec!["text".into()],
                abstain: None,
            },
        )]
        .into(),
        abstain: false,
        abstain_reasons: vec![],
        timings: BTreeMap::new(),
        inputs: PredictionInputs::default(),
        findings: vec![Finding {
            label: "pneumonia".into(),
            probability: 0.8,
        }],
        refer: false,
        job_id,
        deliveries: vec![],
    }
}

/// Cases, the queue, versions and reviews through the repository, on
/// either backend.
async fn store_story(repo: &dyn Repository) {
    let template = worker_audit("case-link", AuditAction::Update);
    let a = repo
        .open_case(&key("ACC-Q-1"), &[], &template)
        .await
        .unwrap();
    assert_eq!(a.change, LinkChange::Created);
    let same = repo
        .open_case(&key("ACC-Q-1"), &[], &template)
        .await
        .unwrap();
    assert_eq!(same.case_id, a.case_id);
    assert_eq!(same.change, LinkChange::Unchanged);

    // Many instances of one study find one case; the study's order
    // (accession number) arriving later completes it rather than doubling it.
    let study = StudyInstanceUid::parse("1.2.826.0.1.3680043.10.1.4711").unwrap();
    let s1 = repo
        .upsert_case_for_study(&study, None, None, &template)
        .await
        .unwrap();
    assert_eq!(s1.change, LinkChange::Created);
    let s2 = repo
        .upsert_case_for_study(&study, None, None, &template)
        .await
        .unwrap();
    assert_eq!((s2.case_id, s2.change), (s1.case_id, LinkChange::Unchanged));
    let order = AccessionNumber::parse("ACC-Q-S").unwrap();
    let s3 = repo
        .upsert_case_for_study(&study, Some(&order), None, &template)
        .await
        .unwrap();
    assert_eq!((s3.case_id, s3.change), (s1.case_id, LinkChange::Updated));
    let adopted = repo.case(s1.case_id).await.unwrap().unwrap();
    assert_eq!(adopted.accession_number, Some(order));
    assert_eq!(adopted.status, CaseStatus::AwaitingImage);
    assert!(!adopted.has_inputs());

    // One queued job per case however often it is asked for.
    let first = repo.enqueue(a.case_id, None).await.unwrap();
    let second = repo.enqueue(a.case_id, None).await.unwrap();
    assert!(first.created);
    assert!(!second.created);
    assert_eq!(first.job_id, second.job_id);
    assert_eq!(
        repo.case(a.case_id).await.unwrap().unwrap().status,
        CaseStatus::Queued
    );

    // Claimed, failed twice (queued again), then done with version 1.
    for attempt in 1..=2 {
        let job = repo.claim_job("w1").await.unwrap().unwrap();
        assert_eq!(job.id, first.job_id);
        assert_eq!(job.attempts, attempt);
        assert_eq!(
            repo.fail_job(job.id, "model task panicked").await.unwrap(),
            Some(JobState::Queued)
        );
    }
    let job = repo.claim_job("w1").await.unwrap().unwrap();
    // While it runs, a new request queues a second job, which no one may
    // claim before the first ends (versions come out in order).
    let next = repo.enqueue(a.case_id, None).await.unwrap();
    assert!(next.created);
    assert!(repo.claim_job("w2").await.unwrap().is_none());
    let audit = worker_audit("prediction-create", AuditAction::Create);
    let v1 = repo
        .insert_prediction(&prediction(a.case_id, Some(job.id)), &audit)
        .await
        .unwrap();
    assert_eq!(v1.version, 1);
    assert_eq!(
        repo.job(job.id).await.unwrap().unwrap().state,
        JobState::Done
    );
    assert_eq!(
        repo.case(a.case_id).await.unwrap().unwrap().status,
        CaseStatus::Queued,
        "another job is queued"
    );
    let job2 = repo.claim_job("w2").await.unwrap().unwrap();
    assert_eq!(job2.id, next.job_id);
    let v2 = repo
        .insert_prediction(&prediction(a.case_id, Some(job2.id)), &audit)
        .await
        .unwrap();
    assert_eq!(v2.version, 2);
    let versions = repo.predictions_of_case(a.case_id).await.unwrap();
    let numbers: Vec<i32> = versions.iter().map(|p| p.version).collect();
    assert_eq!(numbers, [2, 1]);
    assert_eq!(versions[1], v1);
    assert_eq!(
        repo.case(a.case_id).await.unwrap().unwrap().status,
        CaseStatus::Predicted
    );

    // Three failed attempts give up.
    let b = repo
        .open_case(&key("ACC-Q-2"), &[], &template)
        .await
        .unwrap();
    repo.enqueue(b.case_id, None).await.unwrap();
    let mut last = None;
    for _ in 0..3 {
        let job = repo.claim_job("w1").await.unwrap().unwrap();
        last = repo.fail_job(job.id, "boom").await.unwrap();
    }
    assert_eq!(last, Some(JobState::Failed));
    assert!(repo.claim_job("w1").await.unwrap().is_none());
    assert_eq!(
        repo.case(b.case_id).await.unwrap().unwrap().status,
        CaseStatus::AwaitingImage,
        "given up: back to waiting"
    );

    // A stale claim is queued again; no-modality ends a job without a version.
    repo.enqueue(b.case_id, None).await.unwrap();
    let stale = repo.claim_job("dead-worker").await.unwrap().unwrap();
    assert_eq!(
        repo.requeue_stale(chrono::Duration::zero()).await.unwrap(),
        1
    );
    assert!(
        !repo
            .complete_job(stale.id, Some(CaseStatus::NoModality), None)
            .await
            .unwrap(),
        "the stale claim is no longer the worker's"
    );
    let again = repo.claim_job("w1").await.unwrap().unwrap();
    assert_eq!(again.id, stale.id);
    assert!(
        repo.complete_job(
            again.id,
            Some(CaseStatus::NoModality),
            Some(&worker_audit("prediction-none", AuditAction::Update))
        )
        .await
        .unwrap()
    );
    assert_eq!(
        repo.case(b.case_id).await.unwrap().unwrap().status,
        CaseStatus::NoModality
    );

    // Reviews mark the case reviewed; an unknown prediction is None.
    let review = NewReview {
        id: Uuid::now_v7(),
        prediction_id: v2.prediction.id,
        reviewer: "u1".into(),
        decisions: json!({"pneumonia": {"decision": "accept"}}),
        comment: None,
        deliveries: vec![],
    };
    let stored = repo
        .put_review(&review, &worker_audit("review-create", AuditAction::Create))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.case_id, a.case_id);
    let missing = NewReview {
        id: Uuid::now_v7(),
        prediction_id: Uuid::now_v7(),
        ..review.clone()
    };
    assert!(
        repo.put_review(
            &missing,
            &worker_audit("review-create", AuditAction::Create)
        )
        .await
        .unwrap()
        .is_none()
    );
    assert_eq!(
        repo.reviews_of_prediction(v2.prediction.id)
            .await
            .unwrap()
            .len(),
        1
    );

    // Lists: latest prediction in brief, filters, sorts.
    let all = repo.list_cases(&CaseFilter::default()).await.unwrap();
    assert_eq!(all.len(), 3);
    let reviewed = repo
        .list_cases(&CaseFilter {
            status: Some(CaseStatus::Reviewed),
            ..CaseFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(reviewed.len(), 1);
    let brief = reviewed[0].latest_prediction.as_ref().unwrap();
    assert_eq!(brief.version, 2);
    assert_eq!(brief.findings[0].label, "pneumonia");
    let by_status = repo
        .list_cases(&CaseFilter {
            sort: CaseSort::Status,
            ascending: true,
            ..CaseFilter::default()
        })
        .await
        .unwrap();
    let statuses: Vec<CaseStatus> = by_status.iter().map(|c| c.status).collect();
    assert_eq!(
        statuses,
        [
            CaseStatus::AwaitingImage,
            CaseStatus::NoModality,
            CaseStatus::Reviewed
        ]
    );
    let by_date = repo
        .list_cases(&CaseFilter {
            sort: CaseSort::StudyDate,
            limit: Some(1),
            offset: Some(1),
            ..CaseFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(by_date.len(), 1);

    // Every change above was audited in its transaction: one case-create per
    // case, one per version, the review, the no-modality end.
    let events = repo.audit_events(&AuditFilter::default()).await.unwrap();
    let count = |s: &str| events.iter().filter(|e| e.record.subtype == s).count();
    assert_eq!(count("case-create"), 3);
    assert_eq!(
        count("case-link"),
        1,
        "only the change that changed something"
    );
    assert_eq!(count("prediction-create"), 2);
    assert_eq!(count("review-create"), 1);
    assert_eq!(count("prediction-none"), 1);
    assert!(
        fusion_store::verify_chain(repo)
            .await
            .unwrap()
            .first_break
            .is_none()
    );

    // A study of another patient naming a case's accession number is not
    // linked there (attack review: it superseded the other patient's
    // reviewed prediction).
    let pid_a = fusion_schemas::PatientId::parse("MISMATCH-A").unwrap();
    let pid_b = fusion_schemas::PatientId::parse("MISMATCH-B").unwrap();
    let order_m = AccessionNumber::parse("ACC-Q-M").unwrap();
    let study_a = StudyInstanceUid::parse("1.2.826.0.1.3680043.10.1.4712").unwrap();
    let study_b = StudyInstanceUid::parse("1.2.826.0.1.3680043.10.1.4713").unwrap();
    let owner = repo
        .upsert_case_for_study(&study_a, Some(&order_m), Some(&pid_a), &template)
        .await
        .unwrap();
    let other = repo
        .upsert_case_for_study(&study_b, Some(&order_m), Some(&pid_b), &template)
        .await;
    assert!(
        matches!(other, Err(fusion_store::StoreError::PatientMismatch { case_id }) if case_id == owner.case_id),
        "{other:?}"
    );
    let kept = repo.case(owner.case_id).await.unwrap().unwrap();
    assert_eq!(kept.study_instance_uid, Some(study_a));
    assert_eq!(kept.patient_id, Some(pid_a.clone()));

    // A note is stored, linked and queued in one transaction; one naming
    // another patient than its note-only case's is refused and nothing of
    // it is stored (under the link lock, so racing notes cannot all pass).
    let order_n = AccessionNumber::parse("ACC-Q-N").unwrap();
    let first = note_for(&pid_a, &order_n);
    let link_key = |n: &fusion_store::NewNote| CaseKey {
        accession_number: n.accession_number.clone(),
        study_instance_uid: None,
        patient_id: n.patient_id.clone(),
    };
    let (link, queued) = repo
        .put_note_linked(&first, &template, &link_key(&first), &template, true)
        .await
        .unwrap();
    assert_eq!(link.change, LinkChange::Created);
    assert!(queued.is_some_and(|q| q.created));
    let case = repo.case(link.case_id).await.unwrap().unwrap();
    assert_eq!(case.note_ids, vec![first.id]);
    assert_eq!(case.status, CaseStatus::Queued);
    let foreign = note_for(&pid_b, &order_n);
    let refused = repo
        .put_note_linked(&foreign, &template, &link_key(&foreign), &template, true)
        .await;
    assert!(
        matches!(refused, Err(fusion_store::StoreError::PatientMismatch { case_id }) if case_id == link.case_id),
        "{refused:?}"
    );
    assert!(
        repo.note(foreign.id).await.unwrap().is_none(),
        "nothing stored"
    );
    // A note of the same patient joins, its job deduplicated.
    let second = note_for(&pid_a, &order_n);
    let (again, queued) = repo
        .put_note_linked(&second, &template, &link_key(&second), &template, true)
        .await
        .unwrap();
    assert_eq!(
        (again.case_id, again.change),
        (link.case_id, LinkChange::Updated)
    );
    assert!(queued.is_some_and(|q| !q.created));
    // `POST /cases` linking an already stored note of another patient into
    // the note-only case is refused the same way.
    repo.put_note(&foreign, &template).await.unwrap();
    let opened = repo
        .open_case(&key("ACC-Q-N"), &[foreign.id], &template)
        .await;
    assert!(
        matches!(
            opened,
            Err(fusion_store::StoreError::PatientMismatch { .. })
        ),
        "{opened:?}"
    );
    let case = repo.case(link.case_id).await.unwrap().unwrap();
    assert_eq!(case.note_ids, vec![first.id, second.id]);

    // A version that abstains for want of a usable modality leaves the case
    // `no_modality`, and so does a later job that fails for good.
    let order_z = repo
        .open_case(&key("ACC-Q-Z"), &[], &template)
        .await
        .unwrap();
    let mut none = prediction(order_z.case_id, None);
    none.status = PredictionStatus::Abstained;
    none.branches = Branches {
        image: BranchReport::empty(BranchStatus::NotApplicable, "a CT"),
        text: BranchReport::empty(BranchStatus::Missing, "no note"),
    };
    none.abstain = true;
    none.abstain_reasons = vec!["no usable modality: image not_applicable, text missing".into()];
    none.findings = vec![];
    none.refer = true;
    assert_eq!(none.case_status(), CaseStatus::NoModality);
    assert!(!none.output().modalities_available);
    repo.insert_prediction(
        &none,
        &worker_audit("prediction-create", AuditAction::Create),
    )
    .await
    .unwrap();
    let status = |id| async move { repo.case(id).await.unwrap().unwrap().status };
    assert_eq!(status(order_z.case_id).await, CaseStatus::NoModality);
    repo.enqueue(order_z.case_id, None).await.unwrap();
    for _ in 0..fusion_store::MAX_JOB_ATTEMPTS {
        // Other cases' jobs may be queued: claim until this case's comes.
        loop {
            let job = repo.claim_job("worker-z").await.unwrap().unwrap();
            let failed = repo.fail_job(job.id, "boom").await.unwrap();
            if job.case_id == order_z.case_id {
                assert!(failed.is_some());
                break;
            }
        }
    }
    assert_eq!(status(order_z.case_id).await, CaseStatus::NoModality);
}

/// An analysed note of `patient` for order `accession`, invented text.
fn note_for(
    patient: &fusion_schemas::PatientId,
    accession: &AccessionNumber,
) -> fusion_store::NewNote {
    fusion_store::NewNote {
        id: Uuid::now_v7(),
        patient_id: Some(patient.clone()),
        accession_number: Some(accession.clone()),
        study_instance_uid: None,
        note_type: None,
        source_format: "text/plain".into(),
        source_id: None,
        authored_at: None,
        authored_at_precision: None,
        text: Some("FINDINGS: Mild cardiomegaly.".into()),
        status: fusion_store::NoteStatus::Analysed,
        no_text_reason: None,
        sections: Vec::new(),
        mentions: Vec::new(),
        labels: BTreeMap::new(),
        submitted_by: None,
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

#[tokio::test]
async fn the_case_store_on_postgres() {
    let db = TestDatabase::create().await;
    store_story(connect(&db.url).await.as_ref()).await;
}

#[tokio::test]
async fn the_case_store_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/fusion.db", dir.path().display());
    store_story(connect(&url).await.as_ref()).await;
}

/// Workers in several processes share one PostgreSQL queue: two claimers
/// racing over many jobs never get the same one, and get them all.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_claimers_never_get_the_same_job_on_postgres() {
    let db = TestDatabase::create().await;
    let first = connect(&db.url).await;
    // A second pool: another process, as far as the database can tell.
    let second = connect(&db.url).await;
    let template = worker_audit("case-link", AuditAction::Update);
    let mut queued = Vec::new();
    for i in 0..40 {
        let link = first
            .open_case(&key(&format!("ACC-R-{i}")), &[], &template)
            .await
            .unwrap();
        queued.push(first.enqueue(link.case_id, None).await.unwrap().job_id);
    }
    let claim_all = |repo: std::sync::Arc<dyn Repository>, name: &'static str| async move {
        let mut got = Vec::new();
        while let Some(job) = repo.claim_job(name).await.unwrap() {
            assert_eq!(job.claimed_by.as_deref(), Some(name));
            got.push(job.id);
        }
        got
    };
    let (a, b) = tokio::join!(
        tokio::spawn(claim_all(first.clone(), "worker-a")),
        tokio::spawn(claim_all(second.clone(), "worker-b")),
    );
    let (a, b) = (a.unwrap(), b.unwrap());
    assert!(a.iter().all(|id| !b.contains(id)), "a job claimed twice");
    let mut all: Vec<Uuid> = a.iter().chain(&b).copied().collect();
    all.sort();
    queued.sort();
    assert_eq!(all, queued, "every job claimed once");
}

/// One patient's report is never fused with another patient's images: a
/// note naming another Patient ID than its study is refused at intake, and
/// one that arrived before a mismatching study is left out of the fusion,
/// with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_note_for_another_patient_is_refused_or_left_out() {
    let app = app_with_models().await;
    let who = actors(&app).await;
    let cr = attrs(CR);
    let accession = cr.accession_number.clone().unwrap().to_string();
    let study = cr.study_instance_uid.to_string();

    // The note first, naming another patient than the study will.
    let early = post_note(
        &app,
        &who,
        &[
            ("accession_number", accession.as_str()),
            ("patient_id", "TP-OTHER-1"),
        ],
        PNEUMONIA_REPORT,
    )
    .await;
    // And one naming the study with another order's accession number: its
    // own case, which shows the study's patient once the study is stored,
    // gets a version without it (re-attack: it kept one from this note).
    let other_order = post_note(
        &app,
        &who,
        &[
            ("study_instance_uid", study.as_str()),
            ("accession_number", "ACC-OTHER-ORDER"),
            ("patient_id", "TP-OTHER-5"),
        ],
        PNEUMONIA_REPORT,
    )
    .await;
    stow(&app, &who, CR).await;
    // The study's own order (by accession number) becomes the study's
    // patient's, and the other patient's note leaves it (stored still,
    // under its own Patient ID): its new version uses the image alone, and
    // the case shows no other patient's report (walkthrough: the case view
    // showed it as this patient's note). The case of another order that
    // named the study keeps its patient and note but no longer names the
    // study, which the PACS says is another patient's (re-attack: adopting
    // it let one wrong Study UID take over another patient's order).
    let other_case = case_by_accession(&app, &who, "ACC-OTHER-ORDER").await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let other = loop {
        let (_, case) = get_json(&app, &who.clinician, &format!("/cases/{other_case}")).await;
        if case["study_instance_uid"].is_null() || std::time::Instant::now() > deadline {
            break case;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    assert!(other["study_instance_uid"].is_null(), "{other:#}");
    assert_eq!(other["patient_id"], "TP-OTHER-5", "{other:#}");
    assert_eq!(other["note_ids"], json!([other_order["id"]]), "{other:#}");
    let case_id = case_by_accession(&app, &who, &accession).await;
    let versions = wait_for_predictions(&app, &who, &case_id, "the study's version", |v| {
        v.first()
            .is_some_and(|p| p["inputs"]["study_instance_uid"] == study.as_str())
    })
    .await;
    let latest = &versions[0];
    assert_eq!(branch(latest, "text"), "missing", "{latest:#}");
    assert_eq!(latest["inputs"]["notes"], json!([]), "{latest:#}");
    assert!(
        sources(latest, "pneumonia").iter().all(|s| s == "image"),
        "{latest:#}"
    );
    let (_, case) = get_json(&app, &who.clinician, &format!("/cases/{case_id}")).await;
    assert_eq!(case["note_ids"], json!([]), "{case:#}");
    let (status, note) = get_json(
        &app,
        &who.clinician,
        &format!("/notes/{}", early["id"].as_str().unwrap()),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(
        note["patient_id"], "TP-OTHER-1",
        "kept under its own patient"
    );
    // The unlinking is audited on the case, naming the note.
    let events = app
        .state
        .repository
        .audit_events(&AuditFilter::default())
        .await
        .unwrap();
    assert!(
        events.iter().any(|e| {
            e.record.subtype == "case-link"
                && e.record.entities.iter().any(|x| x.id == case_id)
                && e.record
                    .entities
                    .iter()
                    .any(|x| early["id"].as_str() == Some(x.id.as_str()))
                && e.record
                    .outcome_desc
                    .as_deref()
                    .is_some_and(|d| d.contains("left it"))
        }),
        "no audit event names the unlinked note"
    );
    // The case is the study's patient's (the PACS is authoritative), on the
    // case and in the list.
    let own = cr.patient_id.clone().unwrap().to_string();
    let (_, case) = get_json(&app, &who.clinician, &format!("/cases/{case_id}")).await;
    assert_eq!(case["patient_id"], own.as_str(), "{case:#}");
    let (_, listed) = get_json(&app, &who.clinician, &format!("/cases?patient_id={own}")).await;
    // Both cases naming the study are listed under its patient, in order
    // of last change.
    assert!(
        listed["cases"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["id"] == case_id.as_str()),
        "{listed:#}"
    );

    // The same by Study Instance UID: a note naming the study (before it
    // arrives) and another patient opens a case keyed by that study; the
    // study then arriving makes the case its own patient's and queues a
    // version without the note (attack review: the case kept a version from
    // the other patient's report alone, listed under the study's patient).
    let ct = attrs(CT);
    let ct_study = ct.study_instance_uid.to_string();
    post_note(
        &app,
        &who,
        &[
            ("study_instance_uid", ct_study.as_str()),
            ("patient_id", "TP-OTHER-3"),
        ],
        PNEUMONIA_REPORT,
    )
    .await;
    let (_, listed) = get_json(&app, &who.clinician, "/cases?patient_id=TP-OTHER-3").await;
    let ct_case = listed["cases"][0]["id"].as_str().unwrap().to_owned();
    // Its version from the other patient's report alone, before the study.
    wait_for_predictions(&app, &who, &ct_case, "the note's version", |v| {
        !v.is_empty()
    })
    .await;
    stow(&app, &who, CT).await;
    // The CT is not a chest radiograph and the note is left out, so the new
    // job ends with no usable modality (the case's status says so).
    let own_ct = ct.patient_id.clone().unwrap().to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(180);
    let case = loop {
        let (_, case) = get_json(&app, &who.clinician, &format!("/cases/{ct_case}")).await;
        if case["status"] == "no_modality" || std::time::Instant::now() > deadline {
            break case;
        }
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    };
    assert_eq!(case["status"], "no_modality", "{case:#}");
    assert_eq!(case["patient_id"], own_ct.as_str(), "{case:#}");
    // The version made from the other patient's report alone is no longer
    // the latest: an abstaining version without a usable modality supersedes
    // it (found by review: the case kept showing it).
    let versions = wait_for_predictions(&app, &who, &ct_case, "a superseding version", |v| {
        v.len() >= 2
    })
    .await;
    let latest = &versions[0];
    assert_eq!(latest["abstain"], true, "{latest:#}");
    assert!(
        latest["abstain_reasons"][0]
            .as_str()
            .is_some_and(|r| r.starts_with("no usable modality")),
        "{latest:#}"
    );
    assert_eq!(branch(latest, "text"), "missing", "{latest:#}");
    assert!(
        latest["fused"]
            .as_object()
            .unwrap()
            .values()
            .all(|l| l["sources"] == json!([])),
        "{latest:#}"
    );
    // The dashboard says, on the old version, that it was made from a note
    // no longer part of the case.
    let old_version = versions.last().unwrap()["version"].as_i64().unwrap();
    let page = app
        .client
        .get(app.url(&format!("/cases/{ct_case}/view?version={old_version}")))
        .bearer_auth(&who.clinician)
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.contains("removed-notes-banner"), "{html}");
    let page = app
        .client
        .get(app.url(&format!("/cases/{ct_case}/view")))
        .bearer_auth(&who.clinician)
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap();
    let html = page.text().await.unwrap();
    assert!(!html.contains("removed-notes-banner"), "{html}");
    let (_, listed) = get_json(&app, &who.clinician, "/cases?patient_id=TP-OTHER-3").await;
    assert_eq!(listed["cases"], json!([]), "{listed:#}");

    // Now the study is known: a note for it naming another patient is
    // refused, and nothing of it is stored.
    for query in [
        vec![
            ("accession_number", accession.as_str()),
            ("patient_id", "TP-OTHER-2"),
        ],
        vec![
            ("study_instance_uid", study.as_str()),
            ("patient_id", "TP-OTHER-2"),
        ],
    ] {
        let res = app
            .client
            .post(app.url("/notes"))
            .basic_auth(&who.pacs.0, Some(&who.pacs.1))
            .query(&query)
            .header("Content-Type", "text/plain")
            .body(PNEUMONIA_REPORT)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 409, "{query:?}");
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["code"], "patient_mismatch", "{body}");
    }
    let (_, notes) = get_json(&app, &who.clinician, "/notes?patient_id=TP-OTHER-2").await;
    assert_eq!(notes["notes"], json!([]), "{notes}");
    // Nor can `POST /cases` link another patient's note into the study's
    // case, by study or with a second note of another patient; the case's
    // notes stay as they were.
    let (_, before) = get_json(&app, &who.clinician, &format!("/cases/{case_id}")).await;
    let foreign = post_note(
        &app,
        &who,
        &[("patient_id", "TP-OTHER-3")],
        PNEUMONIA_REPORT,
    )
    .await;
    let own_note = post_note(
        &app,
        &who,
        &[("patient_id", own.as_str())],
        PNEUMONIA_REPORT,
    )
    .await;
    for body in [
        json!({"study_instance_uid": study, "note_ids": [foreign["id"]]}),
        json!({"accession_number": accession, "note_ids": [foreign["id"]]}),
        json!({"study_instance_uid": study, "note_ids": [own_note["id"], foreign["id"]]}),
    ] {
        let (status, answer) = post_json_as_key(&app, &who, "/cases", &body).await;
        assert_eq!(status, 409, "{body} -> {answer}");
        assert_eq!(answer["code"], "patient_mismatch", "{answer}");
    }
    let (_, after) = get_json(&app, &who.clinician, &format!("/cases/{case_id}")).await;
    assert_eq!(after["note_ids"], before["note_ids"], "{after:#}");
    // The study's own patient is fine.
    post_note(
        &app,
        &who,
        &[
            ("accession_number", accession.as_str()),
            ("patient_id", own.as_str()),
        ],
        PNEUMONIA_REPORT,
    )
    .await;

    // A review of a superseded version is refused (422): it would mark the
    // case reviewed while its latest version is not.
    let versions =
        wait_for_predictions(&app, &who, &case_id, "a newer version", |v| v.len() >= 2).await;
    let old = versions.last().unwrap()["id"].as_str().unwrap().to_owned();
    let res = app
        .client
        .post(app.url(&format!("/predictions/{old}/reviews")))
        .bearer_auth(&who.clinician)
        .json(&json!({"decisions": {"pneumonia": {"decision": "accept"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["code"], "superseded_version", "{body}");
}

/// Notes of several patients racing into one accession number (found by an
/// attacker: six concurrent notes all passed the patient check before any
/// case existed, and one note-only case fused all six reports). Whatever
/// the race leaves linked, a prediction never uses a note naming another
/// patient than the case's: the others are skipped with the reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn notes_of_several_patients_racing_into_one_accession_are_never_fused() {
    let app = app_with_models().await;
    let who = actors(&app).await;
    let accession = "ACC-RACE-1";
    let texts = [
        "FINDINGS:\nMild cardiomegaly.",
        "FINDINGS:\nLarge left pleural effusion.",
        "FINDINGS:\nSmall right pneumothorax.",
        "FINDINGS:\nLeft lower lobe atelectasis.",
    ];
    let sends = texts.iter().enumerate().map(|(i, text)| {
        let patient = format!("TP-RACE-{i}");
        let request = app
            .client
            .post(app.url("/notes"))
            .basic_auth(&who.pacs.0, Some(&who.pacs.1))
            .query(&[
                ("patient_id", patient.as_str()),
                ("accession_number", accession),
            ])
            .header("Content-Type", "text/plain; charset=utf-8")
            .body(text.to_string());
        async move {
            let res = request.send().await.unwrap();
            let status = res.status().as_u16();
            (
                patient,
                status,
                res.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    });
    let mut patient_of = BTreeMap::new();
    for (patient, status, body) in futures::future::join_all(sends).await {
        assert!(status == 201 || status == 409, "{status} {body}");
        if status == 201 {
            patient_of.insert(body["id"].as_str().unwrap().to_owned(), patient);
        } else {
            assert_eq!(body["code"], "patient_mismatch", "{body}");
        }
    }
    // The patient check runs under the link lock, in the transaction that
    // stores the note: exactly one patient's note is stored and linked,
    // the others are refused and nothing of them is kept.
    assert_eq!(patient_of.len(), 1, "{patient_of:?}");
    let case_id = case_by_accession(&app, &who, accession).await;
    let (_, case) = get_json(&app, &who.clinician, &format!("/cases/{case_id}")).await;
    let own = case["patient_id"].as_str().unwrap().to_owned();
    let linked = case["note_ids"].as_array().unwrap().len();
    let versions = wait_for_predictions(&app, &who, &case_id, "a version with every note", |v| {
        v.first()
            .is_some_and(|p| p["inputs"]["notes"].as_array().unwrap().len() == linked)
    })
    .await;
    for version in &versions {
        let skipped: Vec<&str> = version["branches"]["text"]["skipped"]
            .as_array()
            .map(|s| s.iter().filter_map(|x| x["id"].as_str()).collect())
            .unwrap_or_default();
        for id in version["inputs"]["notes"].as_array().unwrap() {
            let id = id.as_str().unwrap();
            if skipped.contains(&id) {
                continue;
            }
            assert_eq!(
                patient_of.get(id),
                Some(&own),
                "a note of another patient was used: {version:#}"
            );
        }
    }
}

/// `POST /cases` by accession number into a note-only case (no study yet)
/// refuses a note of another patient than the case's, as the study path
/// does (found by a re-attack: it answered 200 and linked it).
#[tokio::test]
async fn a_note_only_case_refuses_another_patients_note() {
    let app = app_with_models().await;
    let who = actors(&app).await;
    let first = post_note(
        &app,
        &who,
        &[
            ("patient_id", "TP-ONLY-1"),
            ("accession_number", "ACC-ONLY-1"),
        ],
        PNEUMONIA_REPORT,
    )
    .await;
    let foreign = post_note(&app, &who, &[("patient_id", "TP-ONLY-2")], PNEUMONIA_REPORT).await;
    let body = json!({"accession_number": "ACC-ONLY-1", "note_ids": [foreign["id"]]});
    let (status, answer) = post_json_as_key(&app, &who, "/cases", &body).await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["code"], "patient_mismatch", "{answer}");
    let case_id = case_by_accession(&app, &who, "ACC-ONLY-1").await;
    let (_, case) = get_json(&app, &who.clinician, &format!("/cases/{case_id}")).await;
    assert_eq!(case["note_ids"], json!([first["id"]]), "{case:#}");
    // The case's own patient is linked.
    let own = post_note(&app, &who, &[("patient_id", "TP-ONLY-1")], PNEUMONIA_REPORT).await;
    let body = json!({"accession_number": "ACC-ONLY-1", "note_ids": [own["id"]]});
    let (status, answer) = post_json_as_key(&app, &who, "/cases", &body).await;
    assert_eq!(status, 200, "{answer}");
}

/// Notes of one patient for one order arriving while the workers store
/// predictions of that case are all stored and linked (walkthrough: 3 of 8
/// staggered rounds answered 500 on a deadlock, the note's transaction
/// holding the audit chain's lock while waiting for the case's row, which
/// a worker held while waiting for the audit chain). Every path now takes
/// the link lock, the case's row, then the audit chain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notes_of_one_patient_arriving_while_predictions_are_stored_are_all_kept() {
    let app = app_with_models().await;
    let who = actors(&app).await;
    let sends = (0..12u64).map(|i| {
        let request = app
            .client
            .post(app.url("/notes"))
            .basic_auth(&who.pacs.0, Some(&who.pacs.1))
            .query(&[
                ("patient_id", "TP-SAME-1"),
                ("accession_number", "ACC-SAME-1"),
            ])
            .header("Content-Type", "text/plain; charset=utf-8")
            .body(format!("FINDINGS:\nMild cardiomegaly, addendum {i}."));
        async move {
            tokio::time::sleep(std::time::Duration::from_millis(i * 60)).await;
            let res = request.send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.text().await.unwrap_or_default())
        }
    });
    for (status, body) in futures::future::join_all(sends).await {
        assert_eq!(status, 201, "{body}");
    }
    let case_id = case_by_accession(&app, &who, "ACC-SAME-1").await;
    let (_, case) = get_json(&app, &who.clinician, &format!("/cases/{case_id}")).await;
    assert_eq!(case["note_ids"].as_array().unwrap().len(), 12, "{case:#}");
    wait_for_predictions(&app, &who, &case_id, "a version with all 12 notes", |v| {
        v.first()
            .is_some_and(|p| p["inputs"]["notes"].as_array().unwrap().len() == 12)
    })
    .await;
}
