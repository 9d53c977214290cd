//! A prediction version as FHIR R4 (issue #17): a DiagnosticReport
//! (`preliminary` until a clinician reviews it, `final` after) with one
//! Observation per CheXpert observation and a Device for the models.
//!
//! - Observation: `valueQuantity` is the fused probability of presence
//!   (UCUM `1`); `component`s hold the uncertainty mass, belief,
//!   disbelief, conflict and the conformal set's classes; `interpretation`
//!   (v3 ObservationInterpretation) is POS, NEG or IND (abstained or both
//!   classes in the set), the reviewer's decision applied once final;
//!   `derivedFrom` names the ImagingStudy and the notes' DocumentReferences.
//! - DiagnosticReport (LOINC 18748-4 Diagnostic imaging study): `result`
//!   lists the Observations, `imagingStudy` the study (by its DICOM UID,
//!   `urn:dicom:uid`), `conclusion` is the SR's text summary.
//! - Device: the service, with each model package's name, version and
//!   manifest SHA-256.
//!
//! Patient, ImagingStudy and DocumentReference are referenced by identifier
//! (logical references, FHIR R4 §2.3.0.1): the EHR owns them. The report
//! and Observation ids are derived from the case's id, so there is one AI
//! report per case in the EHR: the `transaction` Bundle of the push (`PUT`
//! per resource) replaces an earlier version's preliminary report, and the
//! preliminary one with the final one, instead of adding another (the EHR's
//! resource history keeps the earlier ones, FHIR R4 §3.1.0.5). Every push
//! sends the case's current state (its latest version and that version's
//! latest review), whichever delivery triggered it, so a late retry of an
//! old delivery never puts an older result back; a repeated delivery
//! changes nothing.

use chrono::{DateTime, SecondsFormat, Utc};
use fusion_models::{BinaryClass, FusedLabel, PredictionOutput};
use fusion_schemas::Observation;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::State;
use crate::sr::{ReviewInput, SrError};

/// The code system of the CheXpert observations and the fusion quantities.
pub const CODE_SYSTEM: &str = "urn:fusion:codes";

/// A resource id derived from `name` (a UUID, FHIR `id` syntax).
fn rid(name: &str) -> String {
    let uid = crate::sr::derived_uid(name);
    let n: u128 = uid[5..].parse().unwrap_or_default();
    Uuid::from_u128(n).to_string()
}

fn instant(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn quantity(v: f64) -> Value {
    let v = if v.is_finite() {
        (v * 1e6).round() / 1e6
    } else {
        0.0
    };
    json!({ "value": v, "unit": "1", "system": "http://unitsofmeasure.org", "code": "1" })
}

fn concept(code: &str, display: &str) -> Value {
    json!({ "coding": [{ "system": CODE_SYSTEM, "code": code, "display": display }], "text": display })
}

/// What a Bundle is made of.
struct Parts {
    case_id: Uuid,
    prediction_id: Uuid,
    version: i32,
    created_at: DateTime<Utc>,
    patient_id: Option<String>,
    study: Option<String>,
    note_ids: Vec<Uuid>,
    output: PredictionOutput,
    review: Option<ReviewInput>,
    summary: String,
}

async fn parts(
    state: &State,
    prediction_id: Uuid,
    review_id: Option<Uuid>,
) -> Result<Parts, SrError> {
    let repo = &state.repository;
    let record = repo
        .prediction(prediction_id)
        .await?
        .ok_or(SrError::NotFound("prediction"))?;
    let case = repo
        .case(record.prediction.case_id)
        .await?
        .ok_or(SrError::NotFound("case"))?;
    // The SR's loader reads the same stored output (and the review); a
    // case without a study still has a FHIR report.
    let sr = crate::sr::load(state, prediction_id, review_id).await;
    let (output, review, summary) = match sr {
        Ok(input) => (
            input.output.clone(),
            input.review.clone(),
            crate::sr::content::summary(&input),
        ),
        Err(SrError::NoStudy | SrError::NoSource) => {
            let input = crate::sr::load::without_study(state, &record, review_id).await?;
            (
                input.output.clone(),
                input.review.clone(),
                crate::sr::content::summary(&input),
            )
        }
        Err(e) => return Err(e),
    };
    Ok(Parts {
        case_id: record.prediction.case_id,
        prediction_id,
        version: record.version,
        created_at: record.created_at,
        patient_id: case.patient_id.map(|p| p.as_str().to_owned()),
        study: case.study_instance_uid.map(|s| s.as_str().to_owned()),
        note_ids: case.note_ids,
        output,
        review,
        summary,
    })
}

/// The Bundle `GET /cases/{id}/fhir` returns (type `collection`): the
/// latest version of the case, with its latest review. `Ok(None)` when the
/// case has no prediction.
///
/// # Errors
///
/// [`SrError`] from the store or a malformed stored prediction.
pub async fn case_bundle(state: &State, case_id: Uuid) -> Result<Option<Value>, SrError> {
    let Some((id, review)) = current(state, case_id).await? else {
        return Ok(None);
    };
    let p = parts(state, id, review).await?;
    Ok(Some(bundle(&p, "collection")))
}

/// The case's latest prediction version and that version's latest review.
async fn current(state: &State, case_id: Uuid) -> Result<Option<(Uuid, Option<Uuid>)>, SrError> {
    let Some(latest) = state
        .repository
        .predictions_of_case(case_id)
        .await?
        .into_iter()
        .next()
    else {
        return Ok(None);
    };
    let id = latest.prediction.id;
    let review = state
        .repository
        .reviews_of_prediction(id)
        .await?
        .last()
        .map(|r| r.review.id);
    Ok(Some((id, review)))
}

/// The `transaction` Bundle of a delivery: the current state of the case
/// the version `prediction_id` belongs to (see the module's docs), so an
/// older version's delivery, sent late, pushes the newer result.
///
/// # Errors
///
/// As [`case_bundle`].
pub async fn transaction_bundle(
    state: &State,
    prediction_id: Uuid,
    review_id: Option<Uuid>,
) -> Result<Value, SrError> {
    let record = state
        .repository
        .prediction(prediction_id)
        .await?
        .ok_or(SrError::NotFound("prediction"))?;
    let (id, review) = current(state, record.prediction.case_id)
        .await?
        .unwrap_or((prediction_id, review_id));
    let p = parts(state, id, review).await?;
    Ok(bundle(&p, "transaction"))
}

fn bundle(p: &Parts, kind: &str) -> Value {
    let final_ = p.review.is_some();
    let status = if final_ { "final" } else { "preliminary" };
    let subject = p.patient_id.as_ref().map(|pid| {
        json!({ "type": "Patient", "identifier": { "system": "urn:fusion:patient-id", "value": pid } })
    });
    let study_ref = p.study.as_ref().map(|s| {
        json!({ "type": "ImagingStudy", "identifier": { "system": "urn:dicom:uid", "value": format!("urn:oid:{s}") } })
    });
    let mut derived: Vec<Value> = study_ref.iter().cloned().collect();
    derived.extend(p.note_ids.iter().map(|n| {
        json!({ "type": "DocumentReference", "identifier": { "system": "urn:fusion:note", "value": n.to_string() } })
    }));
    let device_id = rid(&format!("fhir-device:{}", p.prediction_id));
    let mut entries = Vec::new();
    let loaded: Vec<&fusion_models::PackageRef> = p
        .output
        .packages
        .iter()
        .filter(|x| x.status == fusion_models::PackageStatus::Loaded)
        .collect();
    let mut device = json!({
        "resourceType": "Device",
        "id": device_id,
        "status": "active",
        "manufacturer": "fusion project",
        "deviceName": [{ "name": "clinical multimodal fusion", "type": "model-name" }],
    });
    if !loaded.is_empty() {
        device["version"] = Value::Array(
            loaded
                .iter()
                .map(|x| json!({ "type": { "text": format!("{} model package", x.modality) }, "value": format!("{} {}", x.name, x.version) }))
                .collect(),
        );
        device["property"] = Value::Array(
            loaded
                .iter()
                .filter_map(|x| x.manifest_sha256.as_ref().map(|sha| (x, sha)))
                .map(|(x, sha)| json!({ "type": { "text": format!("{} manifest SHA-256", x.name) }, "valueCode": [{ "text": sha }] }))
                .collect(),
        );
    }
    entries.push(device);
    let mut results = Vec::new();
    for (label, fused) in &p.output.fused {
        let Some(o) = Observation::parse(label) else {
            continue;
        };
        let id = rid(&format!("fhir-observation:{}:{label}", p.case_id));
        results.push(json!({ "reference": format!("urn:uuid:{id}") }));
        entries.push(observation(
            p, o, fused, &id, status, &subject, &derived, &device_id,
        ));
    }
    let report_id = rid(&format!("fhir-report:{}", p.case_id));
    let mut report = json!({
        "resourceType": "DiagnosticReport",
        "id": report_id,
        "identifier": [{ "system": "urn:fusion:prediction", "value": format!("{}", p.prediction_id) }],
        "status": status,
        "category": [{ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v2-0074", "code": "RAD", "display": "Radiology" }] }],
        "code": { "coding": [{ "system": "http://loinc.org", "code": "18748-4", "display": "Diagnostic imaging study" }], "text": format!("AI findings, version {}", p.version) },
        "effectiveDateTime": instant(p.created_at),
        "issued": instant(p.review.as_ref().map_or(p.created_at, |r| r.reviewed_at)),
        "result": results,
        "conclusion": p.summary,
    });
    if let Some(s) = &subject {
        report["subject"] = s.clone();
    }
    if let Some(s) = &study_ref {
        report["imagingStudy"] = json!([s]);
    }
    if let Some(r) = &p.review {
        report["resultsInterpreter"] = json!([{ "type": "Practitioner", "display": r.reviewer }]);
    }
    entries.push(report);
    let entry: Vec<Value> = entries
        .into_iter()
        .map(|resource| {
            let id = resource["id"].as_str().unwrap_or_default().to_owned();
            let kind_name = resource["resourceType"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let mut e = json!({ "fullUrl": format!("urn:uuid:{id}"), "resource": resource });
            if kind == "transaction" {
                e["request"] = json!({ "method": "PUT", "url": format!("{kind_name}/{id}") });
            }
            e
        })
        .collect();
    // Resources refer to each other by fullUrl.
    let mut b = json!({
        "resourceType": "Bundle",
        "id": rid(&format!("fhir-bundle:{}:{:?}", p.prediction_id, p.review.as_ref().map(|r| r.id))),
        "type": kind,
        "entry": entry,
    });
    if kind == "collection" {
        b["timestamp"] = json!(instant(Utc::now()));
    }
    b
}

#[allow(clippy::too_many_arguments)]
fn observation(
    p: &Parts,
    o: Observation,
    fused: &FusedLabel,
    id: &str,
    status: &str,
    subject: &Option<Value>,
    derived: &[Value],
    device_id: &str,
) -> Value {
    let op = &fused.opinion;
    let prob = op.projected_probability();
    let mut components = vec![
        json!({ "code": concept("UNCERTAINTY", "Uncertainty mass"), "valueQuantity": quantity(op.uncertainty()) }),
        json!({ "code": concept("BELIEF", "Belief mass"), "valueQuantity": quantity(op.belief()) }),
        json!({ "code": concept("DISBELIEF", "Disbelief mass"), "valueQuantity": quantity(op.disbelief()) }),
        json!({ "code": concept("CONFLICT", "Conflict between modalities"), "valueQuantity": quantity(fused.conflict) }),
    ];
    let mut both = false;
    if let Some(set) = &fused.prediction_set {
        both = set.len() == 2;
        for class in set.classes() {
            let (code, display) = match class {
                BinaryClass::Present => ("present", "Present"),
                BinaryClass::Absent => ("absent", "Absent"),
            };
            components.push(json!({
                "code": concept("CONFORMALSET", "Conformal prediction set"),
                "valueCodeableConcept": concept(code, display),
            }));
        }
    }
    let mut call = if fused.abstain.is_some() || both {
        "IND"
    } else if prob >= 0.5 {
        "POS"
    } else {
        "NEG"
    };
    let decision = p.review.as_ref().and_then(|r| r.decisions.get(o.as_str()));
    if let Some((d, value)) = decision {
        call = match (d.as_str(), value.as_deref()) {
            ("amend", Some("present")) => "POS",
            ("amend", Some("absent")) => "NEG",
            ("amend", _) => "IND",
            ("reject", _) if call == "POS" => "NEG",
            ("reject", _) if call == "NEG" => "POS",
            _ => call,
        };
    }
    let display = match call {
        "POS" => "Positive",
        "NEG" => "Negative",
        _ => "Indeterminate",
    };
    let mut obs = json!({
        "resourceType": "Observation",
        "id": id,
        "status": status,
        "category": [{ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/observation-category", "code": "imaging", "display": "Imaging" }] }],
        "code": concept(&o.as_str().to_uppercase(), o.display_name()),
        "effectiveDateTime": instant(p.created_at),
        "issued": instant(p.created_at),
        "valueQuantity": quantity(prob),
        "interpretation": [{ "coding": [{ "system": "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation", "code": call, "display": display }] }],
        "device": { "reference": format!("urn:uuid:{device_id}") },
        "component": components,
    });
    if let Some(s) = subject {
        obs["subject"] = s.clone();
    }
    if !derived.is_empty() {
        obs["derivedFrom"] = Value::Array(derived.to_vec());
    }
    let mut notes = Vec::new();
    if let Some(reason) = &fused.abstain {
        notes.push(format!(
            "Withheld: {}",
            crate::sr::content::abstain_text(reason)
        ));
    }
    if let Some((d, value)) = decision {
        notes.push(match value {
            Some(v) => format!("Clinician decision: {d} to {v}"),
            None => format!("Clinician decision: {d}"),
        });
    }
    if !notes.is_empty() {
        obs["note"] = Value::Array(notes.into_iter().map(|t| json!({ "text": t })).collect());
    }
    obs
}
