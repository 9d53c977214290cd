//! Reading what a report is built from out of the store: the prediction
//! version, its case and study, the source instances and (for a VERIFIED
//! report) the review.

use std::collections::BTreeMap;

use dicom_core::{Tag, VR};
use dicom_dictionary_std::tags;
use fusion_schemas::SopInstanceUid;
use fusion_store::InstanceRecord;
use uuid::Uuid;

use super::{ReviewInput, SourceInstance, SrError, SrInput};
use crate::State;

/// Whether a SOP Class is an SR (PS3.4 Annex B: 1.2.840.10008.5.1.4.1.1.88.x):
/// reports are evidence of nothing and never model input.
pub fn is_sr_class(sop_class_uid: &str) -> bool {
    sop_class_uid.starts_with("1.2.840.10008.5.1.4.1.1.88.")
}

/// Patient (C.7.1.1) and General Study (C.7.2.1) attributes copied into
/// the report; type 2 ones are written empty when the source lacks them.
const IDENTITY: [(Tag, VR, bool); 12] = [
    (tags::PATIENT_NAME, VR::PN, true),
    (tags::PATIENT_ID, VR::LO, true),
    (tags::ISSUER_OF_PATIENT_ID, VR::LO, false),
    (tags::PATIENT_BIRTH_DATE, VR::DA, true),
    (tags::PATIENT_SEX, VR::CS, true),
    (tags::PATIENT_AGE, VR::AS, false),
    (tags::STUDY_DATE, VR::DA, true),
    (tags::STUDY_TIME, VR::TM, true),
    (tags::REFERRING_PHYSICIAN_NAME, VR::PN, true),
    (tags::STUDY_ID, VR::SH, true),
    (tags::ACCESSION_NUMBER, VR::SH, true),
    (tags::STUDY_DESCRIPTION, VR::LO, false),
];

/// Loads the input of the report of `prediction_id` (UNVERIFIED) or of its
/// review `review_id` (VERIFIED).
///
/// # Errors
///
/// [`SrError::NoStudy`] for a case without a study, [`SrError::NotFound`],
/// [`SrError::NoSource`], [`SrError::Malformed`], [`SrError::Store`].
pub async fn load(
    state: &State,
    prediction_id: Uuid,
    review_id: Option<Uuid>,
) -> Result<SrInput, SrError> {
    let repo = &state.repository;
    let record = repo
        .prediction(prediction_id)
        .await?
        .ok_or(SrError::NotFound("prediction"))?;
    let p = &record.prediction;
    let case = repo
        .case(p.case_id)
        .await?
        .ok_or(SrError::NotFound("case"))?;
    let study = case.study_instance_uid.ok_or(SrError::NoStudy)?;
    let output = p.output();
    // The evidence: the instances handed to the models, else the study's.
    let named = &p.inputs.instances;
    let mut records: Vec<InstanceRecord> = Vec::new();
    for uid in named {
        if let Ok(uid) = SopInstanceUid::parse(uid)
            && let Some(r) = repo.instance(&uid).await?
        {
            records.push(r);
        }
    }
    if records.is_empty() {
        records = repo.study_instances(&study).await?;
    }
    records.retain(|r| !is_sr_class(&r.sop_class_uid));
    let evidence: Vec<SourceInstance> = records
        .iter()
        .map(|r| SourceInstance {
            series: r.series_instance_uid.to_string(),
            sop_class: r.sop_class_uid.clone(),
            sop_instance: r.sop_instance_uid.to_string(),
        })
        .collect();
    let image_used = output
        .branches
        .image
        .status
        .contributed()
        .then_some(output.branches.image.instance.as_deref())
        .flatten()
        .and_then(|uid| evidence.iter().find(|e| e.sop_instance == uid).cloned());
    let source = records.first().ok_or(SrError::NoSource)?;
    let identity = identity_of(state, source).await?;
    let review = match review_id {
        None => None,
        Some(id) => Some(review_of(state, prediction_id, id).await?),
    };
    Ok(SrInput {
        prediction_id,
        case_id: p.case_id,
        version: record.version,
        created_at: record.created_at,
        study_instance_uid: study.to_string(),
        identity,
        evidence,
        image_used,
        output,
        review,
    })
}

/// The input of the FHIR report of a version whose case has no study (or
/// no readable instance): the output and review, no identity or evidence.
///
/// # Errors
///
/// [`SrError::Malformed`], [`SrError::NotFound`], [`SrError::Store`].
pub async fn without_study(
    state: &State,
    record: &fusion_store::PredictionRecord,
    review_id: Option<Uuid>,
) -> Result<SrInput, SrError> {
    let p = &record.prediction;
    let review = match review_id {
        None => None,
        Some(id) => Some(review_of(state, p.id, id).await?),
    };
    Ok(SrInput {
        prediction_id: p.id,
        case_id: p.case_id,
        version: record.version,
        created_at: record.created_at,
        study_instance_uid: String::new(),
        identity: Vec::new(),
        evidence: Vec::new(),
        image_used: None,
        output: p.output(),
        review,
    })
}

/// The identity attributes of the study, read from a stored source instance.
async fn identity_of(
    state: &State,
    source: &InstanceRecord,
) -> Result<Vec<(Tag, VR, String)>, SrError> {
    let bytes = state
        .blobs
        .get(&source.blob_key)
        .await
        .map_err(|_| SrError::NoSource)?;
    // Only whether it parsed matters here: the error is dropped in the task.
    let object = tokio::task::spawn_blocking(move || fusion_imaging::read(&bytes).ok())
        .await
        .map_err(|_| SrError::NoSource)?
        .ok_or(SrError::NoSource)?;
    let mut out = Vec::new();
    for (tag, vr, type2) in IDENTITY {
        let value = fusion_imaging::gate::element_text(&object, tag).unwrap_or_default();
        if type2 || !value.is_empty() {
            out.push((tag, vr, value));
        }
    }
    Ok(out)
}

async fn review_of(
    state: &State,
    prediction_id: Uuid,
    review_id: Uuid,
) -> Result<ReviewInput, SrError> {
    let review = state
        .repository
        .reviews_of_prediction(prediction_id)
        .await?
        .into_iter()
        .find(|r| r.review.id == review_id)
        .ok_or(SrError::NotFound("review"))?;
    let reviewer = match Uuid::parse_str(&review.review.reviewer) {
        Ok(id) => state
            .repository
            .user_by_id(id)
            .await?
            .map_or_else(|| review.review.reviewer.clone(), |u| u.username),
        Err(_) => review.review.reviewer.clone(),
    };
    let mut decisions = BTreeMap::new();
    if let Some(map) = review.review.decisions.as_object() {
        for (label, d) in map {
            let decision = d
                .get("decision")
                .and_then(|v| v.as_str())
                .ok_or_else(|| SrError::Malformed(format!("review decision of {label}")))?;
            let value = d.get("value").and_then(|v| v.as_str()).map(str::to_owned);
            decisions.insert(label.clone(), (decision.to_owned(), value));
        }
    }
    Ok(ReviewInput {
        id: review.review.id,
        reviewer,
        reviewed_at: review.created_at,
        decisions,
        comment: review.review.comment,
    })
}
