//! The main job end to end, as a hospital runs it (issue #8): a real PACS
//! (Orthanc) pushes studies to the service over DICOMweb with an integration
//! key as Basic credentials, the EHR sends reports (FHIR R4, HL7 v2, plain
//! text) with its own key, the workers predict on their own, a clinician
//! reviews, and an auditor exports the audit trail as a FHIR Bundle that an
//! independent implementation validates, whose chain verifies and which
//! names every step above with the agent that took it.
//!
//! Real PostgreSQL (a fresh database), real Orthanc, the real model packages
//! (`scripts/fetch-models`), the public pydicom test files (`scripts/setup`);
//! the reports are invented, of the files' (invented) patients.
//!
//! The cases:
//!
//! - chest: the PA chest radiograph `RG1_UNCR.dcm` (CR, MONOCHROME1, an
//!   adult) and a FHIR DiagnosticReport for its accession: both branches
//!   report, the image one trust-discounted (an adult, outside the paediatric
//!   package's ages), and the fused labels draw on both;
//! - CT: `CT_small.dcm` and an HL7 v2 ORU^R01: the image branch is not
//!   applicable (a CT), says why, and the prediction falls back to the note;
//! - spine: the report of a cervical spine radiograph arrives before its
//!   study: a text-only prediction, re-issued as version 2 when the study
//!   arrives (whose image is, again, outside the package: not a chest);
//! - a broken file (`MR_truncated.dcm`), which Orthanc refuses to load, so
//!   it goes straight to the service's STOW-RS beside a re-sent good
//!   instance: it fails alone with its FailureReason.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use fusion_schemas::{Role, SopInstanceUid};
use fusion_tests::dicom::{multipart, read, stow_content_type, values};
use fusion_tests::orthanc::{Orthanc, dicomweb_target};
use fusion_tests::{TestApp, repo_root, run_tool_async, spawn_app_with};
use serde_json::{Value, json};

/// The PA chest radiograph (CR, MONOCHROME1, Patient ID 9RG1, Accession
/// Number "exam Number").
const CHEST: &str = "pydicom-data-1.0.0/data_store/data/RG1_UNCR.dcm";
/// A CT slice (Patient ID 1CT1, no Accession Number).
const CT: &str = "pydicom-3.0.2/test_files/CT_small.dcm";
/// A cervical spine radiograph (CR, Body Part CSPINE, Patient ID 77654033,
/// Accession Number 2): the study whose report comes first.
const SPINE: &str = "pydicom-3.0.2/test_files/dicomdirtests/77654033/CR1/6154";
/// Catalogued `no:` (cut short inside its pixel data): Orthanc and the
/// service both refuse it.
const BROKEN: &str = "pydicom-3.0.2/test_files/MR_truncated.dcm";

/// The RIS's accession of the CT order: the file carries none, so the ORU
/// names the study by its UID too, and the note joins the study's case.
const CT_ACCESSION: &str = "RIS2004011901";
const BOUNDARY: &str = "fusion-e2e-boundary-0123456789abcdef";
/// Generous: a case's prediction takes about a second on two cores (the
/// model crates are optimised even in test builds), but CI machines vary.
const PREDICTION_TIMEOUT: Duration = Duration::from_secs(300);

/// The chest radiograph's report: negations and hedges.
const CHEST_REPORT: &str = "EXAMINATION: XR CHEST PA.\n\
CLINICAL HISTORY: 64-year-old with productive cough and low-grade fever for four days.\n\
COMPARISON: None.\n\
FINDINGS: No pneumothorax. Possible right lower lobe consolidation, cannot exclude \
pneumonia. No pleural effusion. Heart size is normal. No acute osseous abnormality.\n\
IMPRESSION: Possible right lower lobe consolidation, cannot exclude pneumonia in the \
appropriate clinical setting. Suggest follow-up radiograph after treatment.\n";

/// The CT's report, as OBX-5 lines of the ORU^R01.
const CT_REPORT_LINES: [&str; 4] = [
    "CT CHEST WITHOUT CONTRAST.",
    "FINDINGS: Dense consolidation in the right lower lobe with air bronchograms. \
     Small right pleural effusion. No pneumothorax.",
    "IMPRESSION: Right lower lobe pneumonia with a small parapneumonic effusion.",
    "Pulmonary embolism cannot be assessed on this non-contrast study.",
];

/// The cervical spine radiograph's report (plain text, before its study).
const SPINE_REPORT: &str = "EXAMINATION: XR CERVICAL SPINE, 3 VIEWS.\n\
CLINICAL HISTORY: Neck pain after a low-speed car accident.\n\
FINDINGS: No acute fracture or subluxation. Alignment is maintained. \
Mild degenerative disc disease at C5-C6. The visualised lung apices are clear; \
no apical pneumothorax.\n\
IMPRESSION: No fracture. Probable muscle strain.\n";

fn attrs(file: &str) -> fusion_imaging::InstanceAttributes {
    fusion_imaging::index_attributes(&fusion_imaging::parse(&read(file)).unwrap())
}

/// RFC 4648 base64 with padding, as FHIR's base64Binary.
fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Who acts in the story.
struct Actors {
    /// The PACS's integration key (id, secret), configured in Orthanc.
    pacs: (String, String),
    /// The EHR's integration key (id, secret).
    ehr: (String, String),
    /// A clinician's session token, and the user's id.
    clinician: String,
    clinician_id: String,
    /// An auditor's session token.
    auditor: String,
}

async fn actors(app: &TestApp) -> Actors {
    let pacs = app.api_key("orthanc", Role::Integration).await;
    let ehr = app.api_key("ehr", Role::Integration).await;
    let clinician = app.session_for("dr.e2e", Role::Clinician).await;
    let auditor = app.session_for("compliance.e2e", Role::Auditor).await;
    let (status, me) = get_json(app, &clinician, "/auth/me").await;
    assert_eq!(status, 200, "{me}");
    assert_eq!(me["name"], "dr.e2e");
    Actors {
        pacs,
        ehr,
        clinician,
        clinician_id: me["id"].as_str().unwrap().to_owned(),
        auditor,
    }
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

/// `POST /notes` as the EHR: 201 and the created note.
async fn post_note(
    app: &TestApp,
    who: &Actors,
    query: &[(&str, &str)],
    content_type: &str,
    body: Vec<u8>,
) -> Value {
    let res = app
        .client
        .post(app.url("/notes"))
        .basic_auth(&who.ehr.0, Some(&who.ehr.1))
        .query(query)
        .header("Content-Type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = res.status();
    let text = res.text().await.unwrap();
    assert_eq!(status, 201, "POST /notes ({content_type}): {text}");
    serde_json::from_str(&text).unwrap()
}

/// The id of the one case the list filter `query` finds.
async fn one_case(app: &TestApp, who: &Actors, query: &str) -> Value {
    let (status, list) = get_json(app, &who.clinician, &format!("/cases?{query}")).await;
    assert_eq!(status, 200, "{list}");
    let cases = list["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 1, "one case for {query}: {list:#}");
    cases[0].clone()
}

fn id_of(v: &Value) -> String {
    v["id"].as_str().unwrap().to_owned()
}

/// Polls the case's prediction versions (newest first) until `done` holds.
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

/// Waits until the case has no job left to run (its status is final).
async fn wait_until_settled(app: &TestApp, who: &Actors, case_id: &str) -> Value {
    let start = Instant::now();
    loop {
        let (status, case) = get_json(app, &who.clinician, &format!("/cases/{case_id}")).await;
        assert_eq!(status, 200, "{case}");
        if ["predicted", "abstained", "reviewed"].contains(&case["status"].as_str().unwrap()) {
            return case;
        }
        assert!(
            start.elapsed() < PREDICTION_TIMEOUT,
            "case {case_id} never settled: {case:#}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn branch<'a>(p: &'a Value, name: &str) -> &'a str {
    p["branches"][name]["status"].as_str().unwrap_or("")
}

fn sources(p: &Value, label: &str) -> Vec<String> {
    let mut s: Vec<String> = p["fused"][label]["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_owned())
        .collect();
    s.sort();
    s
}

fn probability(p: &Value, label: &str) -> f64 {
    p["fused"][label]["opinion"]["probability"]
        .as_f64()
        .unwrap_or_else(|| panic!("no fused {label}: {p:#}"))
}

/// (belief, disbelief, uncertainty) of a stored opinion.
fn opinion(v: &Value) -> [f64; 3] {
    ["belief", "disbelief", "uncertainty"].map(|k| {
        v[k].as_f64()
            .unwrap_or_else(|| panic!("no {k} in opinion {v}"))
    })
}

/// The reduced Dempster's rule of DESIGN.md: the combined (b, d, u) and
/// the conflict C = b₁d₂ + d₁b₂.
fn dempster([b1, d1, u1]: [f64; 3], [b2, d2, u2]: [f64; 3]) -> ([f64; 3], f64) {
    let c = b1 * d2 + d1 * b2;
    let k = 1.0 - c;
    (
        [
            (b1 * b2 + b1 * u2 + b2 * u1) / k,
            (d1 * d2 + d1 * u2 + d2 * u1) / k,
            u1 * u2 / k,
        ],
        c,
    )
}

// ------------------------------------------------------------------ step 2

/// Uploads `file` to Orthanc; returns its Orthanc study id.
async fn load_into_pacs(pacs: &Orthanc, file: &str) -> String {
    let answer = pacs.upload(&read(file)).await;
    assert_eq!(answer["Status"], "Success", "{file}: {answer}");
    answer["ParentStudy"].as_str().unwrap().to_owned()
}

/// Has Orthanc push a study of one instance to the service; asserts that
/// Orthanc reports success (200, every instance accepted: Orthanc fails a
/// push whose answer has a FailedSOPSequence) and counts that instance.
async fn push(pacs: &Orthanc, orthanc_study: &str, what: &str) {
    let res = pacs.push_study("fusion", orthanc_study).await;
    let status = res.status();
    let body = res.text().await.unwrap();
    assert_eq!(
        status,
        200,
        "Orthanc's push of the {what} failed: {body}\n{}",
        pacs.log()
    );
    let answer: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    assert_eq!(answer["InstancesCount"], "1", "Orthanc's answer: {body}");
}

/// The service holds `file`, byte for byte, submitted by the PACS's key.
async fn assert_stored(app: &TestApp, who: &Actors, file: &str) {
    let bytes = read(file);
    let uid = attrs(file).sop_instance_uid;
    let record = app
        .state
        .repository
        .instance(&uid)
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{file} not stored"));
    let stored = app.state.blobs.get(&record.blob_key).await.unwrap();
    assert!(stored.as_ref() == bytes.as_slice(), "{file}: bytes differ");
    assert_eq!(record.submitted_by.as_deref(), Some(who.pacs.0.as_str()));
}

// ------------------------------------------------------------------ step 3

/// A FHIR R4 DiagnosticReport as an EHR sends it: the report as a base64
/// text/plain attachment, the accession as an ACSN identifier, the patient
/// by MRN, the study by its UID.
fn diagnostic_report(patient: &str, accession: &str, study: &str, report: &str) -> Value {
    json!({
        "resourceType": "DiagnosticReport",
        "id": "dr-e2e-chest-1",
        "status": "final",
        "identifier": [{
            "type": {"coding": [{
                "system": "http://terminology.hl7.org/CodeSystem/v2-0203",
                "code": "ACSN"
            }]},
            "system": "urn:oid:2.999.1.2",
            "value": accession
        }],
        "category": [{"coding": [{
            "system": "http://terminology.hl7.org/CodeSystem/v2-0074",
            "code": "RAD",
            "display": "Radiology"
        }]}],
        "code": {"coding": [{
            "system": "http://loinc.org",
            "code": "36572-6",
            "display": "XR Chest PA"
        }]},
        "subject": {"identifier": {"system": "urn:oid:2.999.1.1", "value": patient}},
        "effectiveDateTime": "2004-08-26T18:50:59Z",
        "issued": "2004-08-26T19:30:00Z",
        "imagingStudy": [{"identifier": {
            "system": "urn:dicom:uid",
            "value": format!("urn:oid:{study}")
        }}],
        "presentedForm": [{
            "contentType": "text/plain; charset=utf-8",
            "language": "en",
            "title": "XR Chest PA report",
            "data": base64(report.as_bytes())
        }]
    })
}

/// An HL7 v2.5.1 ORU^R01 from the RIS: the report in TX OBX segments, the
/// study by its UID in an OBX coded 113014 (DCM, "DICOM Study").
fn oru_r01(patient: &str, accession: &str, study: &str, lines: &[&str]) -> String {
    let mut segments = vec![
        "MSH|^~\\&|RIS|GENERAL|FUSION|GENERAL|20040119093000||ORU^R01^ORU_R01|MSG-E2E-0001|P|2.5.1"
            .to_owned(),
        format!("PID|1||{patient}^^^GENERAL^MR||Testpatient^Casey||19580607|F"),
        format!("ORC|RE|PLC-E2E-1|{accession}"),
        format!("OBR|1|PLC-E2E-1|{accession}|71250^CT CHEST WO CONTRAST^C4|||200401190727"),
    ];
    for (i, line) in lines.iter().enumerate() {
        segments.push(format!(
            "OBX|{}|TX|18782-3^Radiology Study observation^LN||{line}||||||F",
            i + 1
        ));
    }
    segments.push(format!(
        "OBX|{}|HD|113014^DICOM Study^DCM||{study}||||||F",
        lines.len() + 1
    ));
    segments.join("\r") + "\r"
}

// ------------------------------------------------------------------ step 5

/// Step 5: the clinician signs in to the dashboard in a real browser
/// (headless Chromium), finds the chest case on the worklist, looks at the
/// image, the highlighted report and the per-label results, and reviews it:
/// accepts pneumothorax, amends consolidation to present, with a comment.
/// Returns the stored review, read back over the API.
async fn review_chest_case(
    app: &TestApp,
    who: &Actors,
    case_id: &str,
    prediction: &Value,
) -> Value {
    let browser = fusion_tests::browser::Browser::start(&app.address).await;
    // `TestApp::add_user` gives every user this password.
    browser.sign_in("dr.e2e", "pw-dr.e2e-0123456789").await;
    assert_eq!(browser.path().await, "/worklist");
    let row = format!("tr[data-case-id='{case_id}']");
    browser.click(&format!("{row} a.case-link")).await;
    assert_eq!(browser.path().await, format!("/cases/{case_id}/view"));
    // The radiograph through WADO-RS /rendered, the report with its
    // negations highlighted, and both modalities for pneumonia.
    let width = browser
        .client()
        .execute_async(
            "const done = arguments[0]; const i = document.querySelector('img.dicom-image'); \
             const f = () => i.complete && i.naturalWidth > 0 ? done(i.naturalWidth) : setTimeout(f, 50); f();",
            vec![],
        )
        .await
        .unwrap();
    assert!(width.as_u64().unwrap() > 100, "{width}");
    let negated: Vec<String> = {
        let mut out = Vec::new();
        for m in browser
            .client()
            .find_all(fantoccini::Locator::Css("mark.m-absent"))
            .await
            .unwrap()
        {
            out.push(m.text().await.unwrap().to_lowercase());
        }
        out
    };
    assert!(
        negated.iter().any(|t| t.contains("pneumothorax")),
        "{negated:?}"
    );
    let pneumonia = browser.text("tr.label-row[data-label='pneumonia']").await;
    assert!(
        pneumonia.contains("from image + text") || pneumonia.contains("from text + image"),
        "{pneumonia}"
    );
    assert!(
        browser
            .text("li[data-branch='image']")
            .await
            .contains("discounted")
    );
    browser.screenshot("e2e-chest-case").await;

    browser
        .find("#review-pneumothorax option[value='accept']")
        .await
        .click()
        .await
        .unwrap();
    browser
        .find("#review-consolidation option[value='amend:present']")
        .await
        .click()
        .await
        .unwrap();
    browser
        .fill(
            "#review-comment",
            "Right lower lobe consolidation is definite on the PA film.",
        )
        .await;
    browser.click("#submit-review").await;
    assert!(
        browser
            .path()
            .await
            .starts_with(&format!("/cases/{case_id}/view?reviewed=")),
        "{}",
        browser.path().await
    );
    let shown = browser.text("#reviews").await;
    assert!(
        shown.contains("Consolidation: amended to present"),
        "{shown}"
    );
    assert!(shown.contains("Pneumothorax: accepted"), "{shown}");
    assert_eq!(browser.text("#case-status").await, "Reviewed");
    browser.goto("/worklist").await;
    assert_eq!(
        browser.text(&format!("{row} .case-status")).await,
        "Reviewed"
    );
    browser.sign_out().await;
    browser.close().await;

    // The review as stored, over the API.
    let prediction_id = id_of(prediction);
    let path = format!("/predictions/{prediction_id}/reviews");
    let (status, listed) = get_json(app, &who.clinician, &path).await;
    assert_eq!(status, 200, "{listed}");
    let reviews = listed["reviews"].as_array().unwrap();
    assert_eq!(reviews.len(), 1, "{listed:#}");
    let review = reviews[0].clone();
    assert_eq!(review["prediction_id"], prediction_id.as_str());
    assert_eq!(review["case_id"], case_id);
    assert_eq!(review["reviewer"], who.clinician_id.as_str());
    assert_eq!(review["decisions"]["consolidation"]["decision"], "amend");
    assert_eq!(review["decisions"]["consolidation"]["value"], "present");
    assert_eq!(review["decisions"]["pneumothorax"]["decision"], "accept");
    assert_eq!(
        review["comment"],
        "Right lower lobe consolidation is definite on the PA film."
    );
    let (_, case) = get_json(app, &who.clinician, &format!("/cases/{case_id}")).await;
    assert_eq!(case["status"], "reviewed", "{case:#}");
    review
}

// ------------------------------------------------------------------ step 6

/// One AuditEvent of the export, flattened for assertions.
#[derive(Debug, Clone)]
struct Event {
    seq: i64,
    type_code: String,
    subtype: String,
    action: String,
    outcome: String,
    /// `who.identifier.system`: `urn:fusion:<agent kind>`.
    agent_system: String,
    /// `who.identifier.value`: the key id, user id or worker id.
    agent_id: String,
    /// `who.display`: the key's, user's or worker's name.
    agent_name: String,
    agent_role: String,
    /// `(system, value)` of every entity: `urn:fusion:<kind>`, id.
    entities: Vec<(String, String)>,
}

impl Event {
    fn from_fhir(e: &Value) -> Self {
        let text = |v: &Value| v.as_str().unwrap_or("").to_owned();
        let agent = &e["agent"][0];
        let seq = e["extension"]
            .as_array()
            .unwrap()
            .iter()
            .find(|x| x["url"] == fusion_app::audit_export::EXT_AUDIT_SEQ)
            .unwrap()["valueInteger"]
            .as_i64()
            .unwrap();
        Self {
            seq,
            type_code: text(&e["type"]["code"]),
            subtype: text(&e["subtype"][0]["code"]),
            action: text(&e["action"]),
            outcome: text(&e["outcome"]),
            agent_system: text(&agent["who"]["identifier"]["system"]),
            agent_id: text(&agent["who"]["identifier"]["value"]),
            agent_name: text(&agent["who"]["display"]),
            agent_role: text(&agent["role"][0]["text"]),
            entities: e["entity"]
                .as_array()
                .map(|all| {
                    all.iter()
                        .map(|x| {
                            (
                                text(&x["what"]["identifier"]["system"]),
                                text(&x["what"]["identifier"]["value"]),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    fn names(&self, kind: &str, id: &str) -> bool {
        self.entities
            .iter()
            .any(|(s, v)| s == &format!("urn:fusion:{kind}") && v == id)
    }

    fn by_key(&self, key: &(String, String), name: &str) -> bool {
        self.agent_system == "urn:fusion:api_key"
            && self.agent_id == key.0
            && self.agent_name == name
            && self.agent_role == "integration"
    }
}

fn with_subtype<'a>(events: &'a [Event], subtype: &str) -> Vec<&'a Event> {
    events.iter().filter(|e| e.subtype == subtype).collect()
}

/// Everything the story left to check in the audit trail.
struct Story {
    chest_case: String,
    ct_case: String,
    spine_case: String,
    notes: [String; 3],
    /// Every prediction version of the three cases.
    predictions: Vec<String>,
    review: String,
    sop_uids: [String; 3],
    patients: [String; 3],
    broken_sop_uid: Option<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pacs_push_and_ehr_notes_become_reviewed_predictions_with_a_complete_audit_trail() {
    let started = Instant::now();

    // Step 1: the service on a fresh PostgreSQL database with the reference
    // model packages and one worker, and a PACS that pushes to it with the
    // Basic credentials of an integration key.
    let models = repo_root().join("models/packages");
    assert!(
        models.join("pneumonia-xception/model.safetensors").exists(),
        "run scripts/fetch-models"
    );
    let app = spawn_app_with(|s| {
        s.models_dir = models;
        s.workers = 1;
    })
    .await;
    let who = actors(&app).await;
    let pacs = Orthanc::start(dicomweb_target(
        "fusion",
        &format!("{}/dicom-web/", app.address),
        &who.pacs.0,
        &who.pacs.1,
    ))
    .await;
    eprintln!("[{:>6.1?}] service and Orthanc up", started.elapsed());

    let chest = attrs(CHEST);
    let ct = attrs(CT);
    let spine = attrs(SPINE);
    let chest_accession = chest.accession_number.clone().unwrap().to_string();
    let chest_patient = chest.patient_id.clone().unwrap().to_string();
    let ct_patient = ct.patient_id.clone().unwrap().to_string();
    let spine_accession = spine.accession_number.clone().unwrap().to_string();
    let spine_patient = spine.patient_id.clone().unwrap().to_string();
    assert!(ct.accession_number.is_none(), "CT_small has no accession");
    assert_eq!(chest.modality.as_deref(), Some("CR"));
    assert_eq!(ct.modality.as_deref(), Some("CT"));
    assert_eq!(spine.body_part.as_deref(), Some("CSPINE"));

    // Step 2: the studies go into the PACS. No catalogued broken file is
    // one that Orthanc accepts and the service refuses (see
    // `the_broken_files_orthanc_accepts_are_ones_the_service_stores`):
    // Orthanc refuses this one itself, so it goes straight to the service's
    // STOW-RS below, in the same flow, as the PACS's key.
    let chest_study = load_into_pacs(&pacs, CHEST).await;
    let ct_study = load_into_pacs(&pacs, CT).await;
    let spine_study = load_into_pacs(&pacs, SPINE).await;
    let refused = pacs
        .request(reqwest::Method::POST, "/instances")
        .header(reqwest::header::CONTENT_TYPE, "application/dicom")
        .body(read(BROKEN))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 400, "Orthanc refuses {BROKEN}");
    assert_eq!(pacs.instance_count().await, 3);

    // Step 3, first note: the spine report comes before its study (the
    // radiologist dictated from the modality's console), as plain text with
    // the order's identifiers in the query.
    let spine_note = post_note(
        &app,
        &who,
        &[
            ("patient_id", spine_patient.as_str()),
            ("accession_number", spine_accession.as_str()),
            ("note_type", "18748-4"),
            ("authored_at", "2001-01-01T10:30:00+01:00"),
        ],
        "text/plain; charset=utf-8",
        SPINE_REPORT.as_bytes().to_vec(),
    )
    .await;
    assert_eq!(spine_note["status"], "analysed");
    assert_eq!(
        spine_note["labels"]["fracture"], "negative",
        "{spine_note:#}"
    );

    // Step 2: Orthanc pushes the chest radiograph and the CT.
    push(&pacs, &chest_study, "chest radiograph").await;
    push(&pacs, &ct_study, "CT").await;
    assert_stored(&app, &who, CHEST).await;
    assert_stored(&app, &who, CT).await;
    eprintln!("[{:>6.1?}] chest and CT pushed", started.elapsed());

    // The broken file, in one STOW-RS request with an instance the service
    // already holds (the CT, as a PACS re-sending after a time-out would):
    // the CT is answered as stored (idempotent), the broken one fails alone
    // with FailureReason C000 (cannot understand).
    let broken_bytes = read(BROKEN);
    let ct_bytes = read(CT);
    let res = app
        .client
        .post(app.url("/dicom-web/studies"))
        .basic_auth(&who.pacs.0, Some(&who.pacs.1))
        .header("Content-Type", stow_content_type(BOUNDARY))
        .header("Accept", "application/dicom+json")
        .body(multipart(
            BOUNDARY,
            &[
                ("application/dicom", &ct_bytes),
                ("application/dicom", &broken_bytes),
            ],
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202, "some stored, some failed");
    let stow: Value = res.json().await.unwrap();
    let referenced: Vec<&str> = values(&stow, "00081199")
        .iter()
        .map(|i| i["00081155"]["Value"][0].as_str().unwrap())
        .collect();
    assert_eq!(referenced, [ct.sop_instance_uid.as_str()], "{stow:#}");
    let failed = values(&stow, "00081198");
    assert_eq!(failed.len(), 1, "{stow:#}");
    assert_eq!(
        failed[0]["00081197"]["Value"][0].as_u64(),
        Some(0xC000),
        "FailureReason: cannot understand; {stow:#}"
    );
    // Its SOP Instance UID is named when the parser got that far (here it
    // did not: the data set itself cannot be read).
    let broken_sop_uid = failed[0]["00081155"]["Value"][0]
        .as_str()
        .map(str::to_owned);
    if let Some(uid) = &broken_sop_uid {
        assert!(
            app.state
                .repository
                .instance(&SopInstanceUid::parse(uid).unwrap())
                .await
                .unwrap()
                .is_none(),
            "the broken instance is not stored"
        );
    }
    // The service holds the two pushed studies, and nothing of the broken one.
    let (status, studies) = get_json(&app, &who.clinician, "/dicom-web/studies").await;
    assert_eq!(status, 200, "{studies}");
    let mut held: Vec<&str> = studies
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["0020000D"]["Value"][0].as_str().unwrap())
        .collect();
    held.sort_unstable();
    let mut pushed = [
        chest.study_instance_uid.as_str(),
        ct.study_instance_uid.as_str(),
    ];
    pushed.sort_unstable();
    assert_eq!(held, pushed, "{studies:#}");

    // Step 3: the EHR sends the chest radiograph's report as a FHIR
    // DiagnosticReport and the CT's as an HL7 v2 ORU^R01.
    let fhir = diagnostic_report(
        &chest_patient,
        &chest_accession,
        chest.study_instance_uid.as_str(),
        CHEST_REPORT,
    );
    let chest_note = post_note(
        &app,
        &who,
        &[],
        "application/fhir+json",
        serde_json::to_vec(&fhir).unwrap(),
    )
    .await;
    assert_eq!(chest_note["source_format"], "fhir-diagnosticreport");
    assert_eq!(chest_note["accession_number"], chest_accession.as_str());
    assert_eq!(chest_note["patient_id"], chest_patient.as_str());
    for (label, expected) in [
        ("pneumothorax", "negative"),
        ("pleural_effusion", "negative"),
        ("pneumonia", "uncertain"),
        ("consolidation", "uncertain"),
    ] {
        assert_eq!(
            chest_note["labels"][label], expected,
            "{label}: {chest_note:#}"
        );
    }
    let oru = oru_r01(
        &ct_patient,
        CT_ACCESSION,
        ct.study_instance_uid.as_str(),
        &CT_REPORT_LINES,
    );
    let ct_note = post_note(&app, &who, &[], "application/hl7-v2", oru.into_bytes()).await;
    assert_eq!(ct_note["source_format"], "hl7v2-oru");
    assert_eq!(ct_note["accession_number"], CT_ACCESSION);
    assert_eq!(ct_note["patient_id"], ct_patient.as_str());
    assert_eq!(
        ct_note["study_instance_uid"],
        ct.study_instance_uid.as_str()
    );
    for (label, expected) in [
        ("pneumonia", "positive"),
        ("consolidation", "positive"),
        ("pleural_effusion", "positive"),
        ("pneumothorax", "negative"),
    ] {
        assert_eq!(ct_note["labels"][label], expected, "{label}: {ct_note:#}");
    }

    // Step 4: one case per order, found by accession (the CT's by its
    // patient: its case was opened by the study, which has no accession,
    // and the ORU gave it the RIS's).
    let chest_case = id_of(
        &one_case(
            &app,
            &who,
            &format!("accession_number={}", urlencode(&chest_accession)),
        )
        .await,
    );
    let ct_case = one_case(&app, &who, &format!("patient_id={ct_patient}")).await;
    assert_eq!(ct_case["accession_number"], CT_ACCESSION, "{ct_case:#}");
    assert_eq!(
        ct_case["study_instance_uid"],
        ct.study_instance_uid.as_str()
    );
    let ct_case = id_of(&ct_case);
    let spine_case_row = one_case(&app, &who, &format!("accession_number={spine_accession}")).await;
    let spine_case = id_of(&spine_case_row);

    // The spine case: a text-only version 1 from its report alone.
    let v1 = wait_for_predictions(
        &app,
        &who,
        &spine_case,
        "the spine report's prediction",
        |v| !v.is_empty(),
    )
    .await;
    assert_eq!(v1.len(), 1, "{v1:#?}");
    let v1 = v1[0].clone();
    assert_eq!(v1["version"], 1);
    assert_eq!(branch(&v1, "image"), "missing", "{v1:#}");
    assert!(
        v1["branches"]["image"]["reason"]
            .as_str()
            .is_some_and(|r| !r.is_empty()),
        "{v1:#}"
    );
    assert_eq!(branch(&v1, "text"), "used", "{v1:#}");
    assert_eq!(sources(&v1, "fracture"), ["text"]);
    assert!(probability(&v1, "fracture") < 0.5, "no fracture: {v1:#}");
    assert_eq!(v1["inputs"]["notes"], json!([spine_note["id"]]));
    eprintln!("[{:>6.1?}] spine version 1 (text only)", started.elapsed());

    // Its study arrives from the PACS: version 2, version 1 kept as it was.
    push(&pacs, &spine_study, "spine radiograph").await;
    assert_stored(&app, &who, SPINE).await;
    let spine_versions =
        wait_for_predictions(&app, &who, &spine_case, "the spine's version 2", |v| {
            v.len() >= 2
        })
        .await;
    assert_eq!(spine_versions.len(), 2, "{spine_versions:#?}");
    let v2 = &spine_versions[0];
    assert_eq!(v2["version"], 2, "newest first");
    assert_eq!(spine_versions[1], v1, "version 1 is kept as it was");
    assert_eq!(
        v2["inputs"]["study_instance_uid"],
        spine.study_instance_uid.as_str()
    );
    assert_eq!(
        v2["inputs"]["instances"],
        json!([spine.sop_instance_uid.as_str()])
    );
    // A cervical spine film is outside the chest package: the image branch
    // says so and the text opinion stands.
    assert_eq!(branch(v2, "image"), "not_applicable", "{v2:#}");
    assert_eq!(
        v2["branches"]["image"]["reason"],
        "Body Part Examined CSPINE is not in the package's intended use (CHEST)"
    );
    assert_eq!(branch(v2, "text"), "used");
    assert_eq!(sources(v2, "fracture"), ["text"]);
    assert_eq!(
        v2["fused"]["fracture"]["opinion"], v1["fused"]["fracture"]["opinion"],
        "the fallback equals the text opinion"
    );
    eprintln!(
        "[{:>6.1?}] spine version 2 (study arrived)",
        started.elapsed()
    );

    // The chest case: both branches reported, the labels fused from both.
    let chest_versions =
        wait_for_predictions(&app, &who, &chest_case, "the fused chest prediction", |v| {
            v.first().is_some_and(|p| branch(p, "text") == "used")
        })
        .await;
    let fused = chest_versions[0].clone();
    // An adult's radiograph (born 1940): outside the paediatric package's
    // ages, so the image opinion is trust-discounted, and says why.
    assert_eq!(branch(&fused, "image"), "discounted", "{fused:#}");
    let trust = fused["branches"]["image"]["trust"].as_f64().unwrap();
    assert!((trust - 0.2).abs() < 1e-9, "trust {trust}");
    assert!(
        fused["branches"]["image"]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("patient age")),
        "{fused:#}"
    );
    assert_eq!(
        fused["branches"]["image"]["instance"],
        chest.sop_instance_uid.as_str()
    );
    assert_eq!(sources(&fused, "pneumonia"), ["image", "text"], "{fused:#}");
    // Fused by the reduced Dempster's rule from the two branches' opinions.
    let image = opinion(&fused["branches"]["image"]["opinions"]["pneumonia"]["opinion"]);
    let text = opinion(&fused["branches"]["text"]["opinions"]["pneumonia"]["opinion"]);
    let (expected, conflict) = dempster(image, text);
    let got = opinion(&fused["fused"]["pneumonia"]["opinion"]);
    for (g, e) in got.iter().zip(expected) {
        assert!((g - e).abs() < 1e-9, "fused {got:?}, expected {expected:?}");
    }
    let stored_conflict = fused["fused"]["pneumonia"]["conflict"].as_f64().unwrap();
    assert!((stored_conflict - conflict).abs() < 1e-9, "{fused:#}");
    assert!(image[2] < 1.0 && text[2] < 1.0, "neither branch is vacuous");
    // Labels only the report speaks of come from the text alone.
    assert_eq!(sources(&fused, "pneumothorax"), ["text"], "{fused:#}");
    assert!(probability(&fused, "pneumothorax") < 0.5, "{fused:#}");
    assert_eq!(fused["inputs"]["notes"], json!([chest_note["id"]]));
    assert_eq!(
        fused["inputs"]["study_instance_uid"],
        chest.study_instance_uid.as_str()
    );
    let packages = fused["packages"].as_array().unwrap();
    assert!(packages.len() >= 2, "{fused:#}");
    eprintln!("[{:>6.1?}] chest fused", started.elapsed());

    // The CT case: the image branch is not applicable and says why; the
    // prediction falls back to the report.
    let ct_versions = wait_for_predictions(
        &app,
        &who,
        &ct_case,
        "the CT's prediction with its note",
        |v| v.first().is_some_and(|p| branch(p, "text") == "used"),
    )
    .await;
    let ct_pred = ct_versions[0].clone();
    assert_eq!(branch(&ct_pred, "image"), "not_applicable", "{ct_pred:#}");
    assert_eq!(
        ct_pred["branches"]["image"]["reason"],
        "Modality CT is not in the package's intended use (CR, DX)"
    );
    assert_eq!(sources(&ct_pred, "pneumonia"), ["text"], "{ct_pred:#}");
    assert_eq!(
        ct_pred["fused"]["pneumonia"]["opinion"],
        ct_pred["branches"]["text"]["opinions"]["pneumonia"]["opinion"],
        "the fallback is the text opinion, exactly"
    );
    assert!(probability(&ct_pred, "pneumonia") > 0.5, "{ct_pred:#}");
    assert!(probability(&ct_pred, "pneumothorax") < 0.5, "{ct_pred:#}");
    assert_eq!(ct_pred["inputs"]["notes"], json!([ct_note["id"]]));
    eprintln!("[{:>6.1?}] CT predicted from its note", started.elapsed());

    // Every case settles (no job left), with its latest version shown.
    let mut predictions = Vec::new();
    for case_id in [&chest_case, &ct_case, &spine_case] {
        let case = wait_until_settled(&app, &who, case_id).await;
        let (_, body) = get_json(
            &app,
            &who.clinician,
            &format!("/cases/{case_id}/predictions"),
        )
        .await;
        let versions = body["predictions"].as_array().unwrap();
        assert_eq!(
            case["latest_prediction"]["id"], versions[0]["id"],
            "{case:#}"
        );
        let numbers: Vec<i64> = versions
            .iter()
            .map(|v| v["version"].as_i64().unwrap())
            .collect();
        let expected: Vec<i64> = (1..=numbers.len() as i64).rev().collect();
        assert_eq!(numbers, expected, "versions of case {case_id}");
        predictions.extend(versions.iter().map(id_of));
    }
    // Nothing of the broken file reached a case.
    let (_, all) = get_json(&app, &who.clinician, "/cases").await;
    assert_eq!(all["cases"].as_array().unwrap().len(), 3, "{all:#}");

    // Step 5: a clinician reviews the chest case, amending one label.
    let (_, latest) = get_json(
        &app,
        &who.clinician,
        &format!("/cases/{chest_case}/predictions"),
    )
    .await;
    let latest = latest["predictions"][0].clone();
    assert_eq!(latest["id"], fused["id"], "the fused version is the latest");
    let review = review_chest_case(&app, &who, &chest_case, &latest).await;

    // Step 6: the auditor verifies the chain, exports the trail as FHIR,
    // and the export lists every step with the agent that took it.
    let story = Story {
        chest_case,
        ct_case,
        spine_case,
        notes: [id_of(&chest_note), id_of(&ct_note), id_of(&spine_note)],
        predictions,
        review: id_of(&review),
        sop_uids: [
            chest.sop_instance_uid.to_string(),
            ct.sop_instance_uid.to_string(),
            spine.sop_instance_uid.to_string(),
        ],
        patients: [chest_patient, ct_patient, spine_patient],
        broken_sop_uid,
    };
    audit_trail(&app, &who, &story).await;
    eprintln!("[{:>6.1?}] done", started.elapsed());
}

async fn verify_chain(app: &TestApp, who: &Actors) -> Value {
    let (status, report) = get_json(app, &who.auditor, "/audit/verify").await;
    assert_eq!(status, 200, "{report}");
    assert!(report["first_break"].is_null(), "{report}");
    report
}

async fn audit_trail(app: &TestApp, who: &Actors, story: &Story) {
    let before = verify_chain(app, who).await;
    let res = app
        .client
        .get(app.url("/audit/events?format=fhir"))
        .bearer_auth(&who.auditor)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/fhir+json");
    let head = res.headers()["x-audit-chain-head"]
        .to_str()
        .unwrap()
        .to_owned();
    let body = res.text().await.unwrap();

    // An independent implementation (Python fhir.resources) validates it.
    let file = app.data_dir.path().join("audit-bundle.json");
    std::fs::write(&file, &body).unwrap();
    let (ok, out) = run_tool_async("validate_fhir.py", &["bundle", file.to_str().unwrap()]).await;
    assert!(ok, "FHIR validation failed: {out}");

    let bundle: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(bundle["resourceType"], "Bundle");
    assert_eq!(bundle["type"], "collection");
    assert_eq!(bundle["identifier"]["value"], head.as_str());
    let events: Vec<Event> = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| Event::from_fhir(&e["resource"]))
        .collect();
    assert_eq!(out.trim(), format!("valid {} AuditEvent", events.len()));
    // In chain order, from 1, with no gap; and the chain still verifies
    // with the export's own event at its head.
    let seqs: Vec<i64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=events.len() as i64).collect::<Vec<_>>());
    let after = verify_chain(app, who).await;
    assert_eq!(
        after["events"].as_u64().unwrap(),
        before["events"].as_u64().unwrap() + 2,
        "the export and the second verification were appended"
    );
    assert_eq!(
        events.len() as u64,
        before["events"].as_u64().unwrap() + 1,
        "the export lists everything before it, and itself"
    );

    // Step 2: each instance by the PACS's key, the CT twice (pushed, then
    // re-sent beside the broken file); the broken one refused (outcome 4,
    // issue #15 item 9).
    let (stow, refused): (Vec<&Event>, Vec<&Event>) = with_subtype(&events, "stow-rs")
        .into_iter()
        .partition(|e| e.outcome == "0");
    assert_eq!(stow.len(), 4, "one per instance received: {stow:#?}");
    assert_eq!(refused.len(), 1, "the broken file: {refused:#?}");
    assert_eq!(
        (
            refused[0].type_code.as_str(),
            refused[0].action.as_str(),
            refused[0].outcome.as_str()
        ),
        ("110104", "C", "4")
    );
    assert!(refused[0].by_key(&who.pacs, "orthanc"), "{:#?}", refused[0]);
    for ((uid, patient), times) in story.sop_uids.iter().zip(&story.patients).zip([1, 2, 1]) {
        let these: Vec<&&Event> = stow.iter().filter(|e| e.names("instance", uid)).collect();
        assert_eq!(these.len(), times, "stow-rs events of {uid}: {stow:#?}");
        for e in these {
            assert_eq!(
                (e.type_code.as_str(), e.action.as_str(), e.outcome.as_str()),
                ("110104", "C", "0")
            );
            assert!(e.by_key(&who.pacs, "orthanc"), "{e:#?}");
            assert!(e.names("patient", patient), "{e:#?}");
        }
    }
    if let Some(uid) = &story.broken_sop_uid {
        assert!(
            !stow.iter().any(|e| e.names("instance", uid)),
            "nothing of the broken instance was stored"
        );
        assert!(refused[0].names("instance", uid), "{:#?}", refused[0]);
    }

    // Step 3: each note by the EHR's key.
    let notes = with_subtype(&events, "note-create");
    assert_eq!(notes.len(), 3, "{notes:#?}");
    for id in &story.notes {
        let e = notes
            .iter()
            .find(|e| e.names("note", id))
            .unwrap_or_else(|| panic!("no note-create for {id}"));
        assert_eq!(
            (e.type_code.as_str(), e.action.as_str(), e.outcome.as_str()),
            ("110110", "C", "0")
        );
        assert!(e.by_key(&who.ehr, "ehr"), "{e:#?}");
    }

    // Cases opened by whoever came first, joined by the other.
    let created = with_subtype(&events, "case-create");
    assert_eq!(created.len(), 3, "{created:#?}");
    let linked = with_subtype(&events, "case-link");
    for (case, opener, joiner) in [
        (&story.chest_case, (&who.pacs, "orthanc"), (&who.ehr, "ehr")),
        (&story.ct_case, (&who.pacs, "orthanc"), (&who.ehr, "ehr")),
        (&story.spine_case, (&who.ehr, "ehr"), (&who.pacs, "orthanc")),
    ] {
        let c = created.iter().find(|e| e.names("case", case)).unwrap();
        assert_eq!((c.type_code.as_str(), c.action.as_str()), ("110110", "C"));
        assert!(
            c.by_key(opener.0, opener.1),
            "case-create of {case}: {c:#?}"
        );
        let l = linked
            .iter()
            .find(|e| e.names("case", case))
            .unwrap_or_else(|| panic!("no case-link for {case}"));
        assert_eq!((l.type_code.as_str(), l.action.as_str()), ("110110", "U"));
        assert!(l.by_key(joiner.0, joiner.1), "case-link of {case}: {l:#?}");
    }

    // Step 4: every prediction version by the worker, none by anyone else.
    let predicted = with_subtype(&events, "prediction-create");
    assert_eq!(predicted.len(), story.predictions.len(), "{predicted:#?}");
    for id in &story.predictions {
        let e = predicted
            .iter()
            .find(|e| e.names("prediction", id))
            .unwrap_or_else(|| panic!("no prediction-create for {id}"));
        assert_eq!(
            (e.type_code.as_str(), e.action.as_str(), e.outcome.as_str()),
            ("110110", "C", "0")
        );
        assert_eq!(e.agent_system, "urn:fusion:system", "{e:#?}");
        assert_eq!(e.agent_name, "inference-worker", "{e:#?}");
    }
    // A case that had no usable input yet (the CT before its note, if the
    // worker was quicker than the EHR) is recorded by the worker too.
    for e in with_subtype(&events, "prediction-none") {
        assert_eq!(e.agent_system, "urn:fusion:system", "{e:#?}");
        assert!(e.names("case", &story.ct_case), "{e:#?}");
    }
    // Reading them is the clinician's, and only the clinician's.
    let reads = with_subtype(&events, "prediction-read");
    assert!(!reads.is_empty());
    assert!(
        reads
            .iter()
            .all(|e| e.agent_system == "urn:fusion:user" && e.agent_id == who.clinician_id),
        "{reads:#?}"
    );

    // Step 5: the clinician's dashboard views of the case, then the review.
    let views = with_subtype(&events, "case-view");
    assert!(!views.is_empty(), "the case view is audited");
    assert!(
        views.iter().all(|e| e.agent_id == who.clinician_id
            && e.names("case", &story.chest_case)
            && e.names("patient", &story.patients[0])),
        "{views:#?}"
    );
    let reviews = with_subtype(&events, "review-create");
    assert_eq!(reviews.len(), 1, "{reviews:#?}");
    let r = reviews[0];
    assert_eq!(
        (r.type_code.as_str(), r.action.as_str(), r.outcome.as_str()),
        ("110110", "C", "0")
    );
    assert_eq!(r.agent_system, "urn:fusion:user");
    assert_eq!(r.agent_id, who.clinician_id);
    assert_eq!(r.agent_name, "dr.e2e");
    assert_eq!(r.agent_role, "clinician");
    assert!(r.names("review", &story.review), "{r:#?}");
    assert!(r.names("case", &story.chest_case), "{r:#?}");
    assert!(r.names("patient", &story.patients[0]), "{r:#?}");

    // Step 6: the verification, then this export, last, by the auditor.
    let auditor_events: Vec<(&str, &str)> = events
        .iter()
        .filter(|e| e.agent_role == "auditor")
        .map(|e| (e.type_code.as_str(), e.subtype.as_str()))
        .collect();
    assert_eq!(
        auditor_events,
        [
            ("110114", "login"),
            ("110101", "audit-verify"),
            ("110106", "audit-export"),
        ]
    );
    let last = events.last().unwrap();
    assert_eq!(last.subtype, "audit-export");
    assert_eq!(last.action, "E");
    assert_eq!(last.agent_name, "compliance.e2e");
    assert!(last.names("audit_log", "audit_events"));

    // Nobody failed to authenticate or was denied along the way; the one
    // failure is the broken file's refusal (step 2).
    let failures: Vec<&Event> = events
        .iter()
        .filter(|e| e.outcome != "0" && e.subtype != "stow-rs")
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");

    // A summary of the story's steps, in chain order (for the log).
    let steps: BTreeSet<&str> = events.iter().map(|e| e.subtype.as_str()).collect();
    eprintln!("{} audit events; subtypes {steps:?}", events.len());
}

/// Why the broken file goes straight to the service's STOW-RS: of the
/// catalogue's broken (`no:`) files, every one Orthanc accepts is one the
/// service stores as well (its pixel data does not decode, which the image
/// branch reports as unusable; STOW-RS stores and indexes it), and every
/// one the service refuses, Orthanc refuses too.
#[tokio::test]
async fn the_broken_files_orthanc_accepts_are_ones_the_service_stores() {
    let pacs = Orthanc::start(json!({})).await;
    let mut refused_by_both = Vec::new();
    for row in fusion_tests::dicom::catalogue() {
        if !row.get("decode_ok").starts_with("no:") {
            continue;
        }
        let file = row.get("file").to_owned();
        let bytes = row.bytes();
        let res = pacs
            .request(reqwest::Method::POST, "/instances")
            .header(reqwest::header::CONTENT_TYPE, "application/dicom")
            .body(bytes.clone())
            .send()
            .await
            .unwrap();
        let orthanc_accepts = res.status().is_success();
        let service = fusion_imaging::parse(&bytes)
            .map(|_| ())
            .map_err(|e| e.to_string());
        eprintln!("{file}: Orthanc {}, service {service:?}", res.status());
        if orthanc_accepts {
            assert!(
                service.is_ok(),
                "{file}: Orthanc accepts it, the service refuses it"
            );
        } else if service.is_err() {
            refused_by_both.push(file);
        }
    }
    assert!(
        refused_by_both.iter().any(|f| f == BROKEN),
        "{refused_by_both:?}"
    );
}
