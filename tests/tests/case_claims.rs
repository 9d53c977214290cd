//! Who a case belongs to when notes and studies disagree about patients
//! (found by a re-attack of the case-linking fixes): a study settles every
//! case that named it for another patient, even when its own link is
//! refused; a wrong Study UID in one note cannot take over another
//! patient's order; two notes of two patients cannot both claim one study.
//! Real PostgreSQL, real STOW-RS of rewritten DICOM files, no model needed.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use fusion_schemas::Role;
use fusion_store::AuditFilter;
use fusion_tests::dicom::{multipart, read, stow_content_type};
use fusion_tests::{TestApp, spawn_app};
use serde_json::{Value, json};

const BOUNDARY: &str = "fusion-claims-boundary-0123456789abcdef";
const CR: &str = "pydicom-data-1.0.0/data_store/data/RG1_UNCR.dcm";
const REPORT: &str = "FINDINGS: Mild cardiomegaly. No pleural effusion.";

/// The CR file as study `n` of `patient` with `accession`.
fn study(n: u32, patient: &str, accession: &str) -> (String, Vec<u8>) {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;
    let source = read(CR);
    let mut obj = dicom_object::from_reader(std::io::Cursor::new(&source[128..])).unwrap();
    let root = format!("1.2.826.0.1.3680043.8.498.27{n:04}");
    for (tag, vr, value) in [
        (tags::STUDY_INSTANCE_UID, VR::UI, format!("{root}.1")),
        (tags::SERIES_INSTANCE_UID, VR::UI, format!("{root}.1.1")),
        (tags::SOP_INSTANCE_UID, VR::UI, format!("{root}.1.1.1")),
        (tags::ACCESSION_NUMBER, VR::SH, accession.to_owned()),
        (tags::PATIENT_ID, VR::LO, patient.to_owned()),
    ] {
        obj.put(DataElement::new(tag, vr, PrimitiveValue::from(value)));
    }
    obj.update_meta(|m| m.media_storage_sop_instance_uid = format!("{root}.1.1.1"));
    let mut bytes = Vec::new();
    obj.write_all(&mut bytes).unwrap();
    (format!("{root}.1"), bytes)
}

struct Who {
    pacs: (String, String),
    clinician: String,
}

async fn who(app: &TestApp) -> Who {
    Who {
        pacs: app.api_key("pacs", Role::Integration).await,
        clinician: app.session_for("dr.claims", Role::Clinician).await,
    }
}

async fn stow(app: &TestApp, who: &Who, bytes: &[u8]) {
    let res = app
        .client
        .post(app.url("/dicom-web/studies"))
        .basic_auth(&who.pacs.0, Some(&who.pacs.1))
        .header("Content-Type", stow_content_type(BOUNDARY))
        .header("Accept", "application/dicom+json")
        .body(multipart(BOUNDARY, &[("application/dicom", bytes)]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

async fn note(app: &TestApp, who: &Who, query: &[(&str, &str)]) -> (u16, Value) {
    let res = app
        .client
        .post(app.url("/notes"))
        .basic_auth(&who.pacs.0, Some(&who.pacs.1))
        .query(query)
        .header("Content-Type", "text/plain; charset=utf-8")
        .body(REPORT)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

async fn get(app: &TestApp, who: &Who, path: &str) -> Value {
    let res = app
        .client
        .get(app.url(path))
        .bearer_auth(&who.clinician)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{path}");
    res.json().await.unwrap()
}

/// The one case listed for `query` (e.g. `accession_number=X`).
async fn case(app: &TestApp, who: &Who, query: &str) -> Value {
    let list = get(app, who, &format!("/cases?{query}")).await;
    let cases = list["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 1, "{query}: {list:#}");
    get(
        app,
        who,
        &format!("/cases/{}", cases[0]["id"].as_str().unwrap()),
    )
    .await
}

/// A study whose accession number is another patient's order (its link
/// refused) still settles the case a note opened by its Study UID: the case
/// becomes the study's patient's, the note leaves it, and the audit event
/// is found by the note's Patient ID too.
#[tokio::test]
async fn a_study_refused_by_its_order_still_settles_the_cases_naming_it() {
    let app = spawn_app().await;
    let who = who(&app).await;
    let (_, first) = study(1, "TP-CLAIM-P1", "ACC-CLAIM-O");
    stow(&app, &who, &first).await;
    let (uid, second) = study(2, "TP-CLAIM-S", "ACC-CLAIM-O");
    let (status, n) = note(
        &app,
        &who,
        &[("patient_id", "TP-CLAIM-N"), ("study_instance_uid", &uid)],
    )
    .await;
    assert_eq!(status, 201, "{n}");
    stow(&app, &who, &second).await;
    let settled = case(&app, &who, "patient_id=TP-CLAIM-S").await;
    assert_eq!(settled["study_instance_uid"], uid.as_str(), "{settled:#}");
    assert_eq!(settled["patient_id"], "TP-CLAIM-S", "{settled:#}");
    assert_eq!(settled["note_ids"], json!([]), "{settled:#}");
    // The order's own case is untouched.
    let order = case(&app, &who, "accession_number=ACC-CLAIM-O").await;
    assert_eq!(order["patient_id"], "TP-CLAIM-P1", "{order:#}");
    let events = app
        .state
        .repository
        .audit_events(&AuditFilter {
            patient_id: Some("TP-CLAIM-N".into()),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert!(
        events.iter().any(|e| e.record.subtype == "case-link"
            && e.record
                .entities
                .iter()
                .any(|x| n["id"].as_str() == Some(x.id.as_str()))),
        "{events:#?}"
    );
}

/// A note naming its own order and a wrong Study UID (another patient's
/// study, of another order) keeps its order: when that study arrives the
/// case no longer names it, and the patient's real study then joins it.
#[tokio::test]
async fn a_wrong_study_uid_in_a_note_does_not_take_over_its_order() {
    let app = spawn_app().await;
    let who = who(&app).await;
    let (wrong_uid, wrong) = study(3, "TP-CLAIM-Q", "ACC-CLAIM-X2");
    let (own_uid, own) = study(4, "TP-CLAIM-N2", "ACC-CLAIM-X");
    let (status, n) = note(
        &app,
        &who,
        &[
            ("patient_id", "TP-CLAIM-N2"),
            ("accession_number", "ACC-CLAIM-X"),
            ("study_instance_uid", &wrong_uid),
        ],
    )
    .await;
    assert_eq!(status, 201, "{n}");
    stow(&app, &who, &wrong).await;
    let order = case(&app, &who, "accession_number=ACC-CLAIM-X").await;
    assert_eq!(order["patient_id"], "TP-CLAIM-N2", "{order:#}");
    assert!(order["study_instance_uid"].is_null(), "{order:#}");
    assert_eq!(order["note_ids"], json!([n["id"]]), "{order:#}");
    let theirs = case(&app, &who, "accession_number=ACC-CLAIM-X2").await;
    assert_eq!(theirs["patient_id"], "TP-CLAIM-Q", "{theirs:#}");
    assert_eq!(theirs["note_ids"], json!([]), "{theirs:#}");
    stow(&app, &who, &own).await;
    let order = case(&app, &who, "accession_number=ACC-CLAIM-X").await;
    assert_eq!(order["study_instance_uid"], own_uid.as_str(), "{order:#}");
    assert_eq!(order["note_ids"], json!([n["id"]]), "{order:#}");
    // A later report of the order is accepted.
    let (status, body) = note(
        &app,
        &who,
        &[
            ("patient_id", "TP-CLAIM-N2"),
            ("accession_number", "ACC-CLAIM-X"),
        ],
    )
    .await;
    assert_eq!(status, 201, "{body}");
}

/// Two notes of two patients cannot both claim one study before it arrives:
/// the second is refused, whichever key it names the study by.
#[tokio::test]
async fn two_patients_cannot_claim_one_study() {
    let app = spawn_app().await;
    let who = who(&app).await;
    let uid = "1.2.826.0.1.3680043.8.498.279999.1";
    let (status, body) = note(
        &app,
        &who,
        &[
            ("patient_id", "TP-CLAIM-B"),
            ("accession_number", "ACC-CLAIM-Y"),
        ],
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = note(
        &app,
        &who,
        &[("patient_id", "TP-CLAIM-A"), ("study_instance_uid", uid)],
    )
    .await;
    assert_eq!(status, 201, "{body}");
    let (status, body) = note(
        &app,
        &who,
        &[
            ("patient_id", "TP-CLAIM-B"),
            ("accession_number", "ACC-CLAIM-Y"),
            ("study_instance_uid", uid),
        ],
    )
    .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(body["code"], "patient_mismatch", "{body}");
    let order = case(&app, &who, "accession_number=ACC-CLAIM-Y").await;
    assert!(order["study_instance_uid"].is_null(), "{order:#}");
}
