//! The DICOM Structured Report of a prediction version (issue #17).
//!
//! IOD: Comprehensive SR (PS3.3 §A.35.3, SOP Class
//! 1.2.840.10008.5.1.4.1.1.88.33), Explicit VR Little Endian, UTF-8
//! (`ISO_IR 192`). Content: a documented subset of TID 1500 "Measurement
//! Report" (PS3.16) with qualitative evaluations, built as follows:
//!
//! ```text
//! CONTAINER Imaging Measurement Report (126000, DCM)
//!  ├ HAS CONCEPT MOD  Language (121049) = English
//!  ├ HAS OBS CONTEXT  TID 1002/1004: Observer Type = Device, Device Observer UID/Name/Manufacturer
//!  ├ HAS CONCEPT MOD  Procedure reported (121058) = Radiographic imaging procedure
//!  ├ CONTAINS Image Library (111028) › Image Library Group › IMAGE   [when the image branch used one]
//!  ├ CONTAINS Imaging Measurements (126010)
//!  │   └ Measurement Group (125007), one per observation (TID 1501):
//!  │       Tracking Identifier, Tracking UID, Finding (CheXpert label),
//!  │       NUM fused probability, belief, disbelief, uncertainty, base rate, conflict,
//!  │       NUM image/text branch probability, CODE conformal set class(es),
//!  │       CODE abstention (+ TEXT reason), CODE image/text contribution (+ reason),
//!  │       HAS CONCEPT MOD TID 4019 Algorithm Name / Version of the packages that ran,
//!  │       CODE clinician review decision (+ amended value)   [VERIFIED only]
//!  └ CONTAINS Qualitative Evaluations (C0034375, UMLS)
//!      TEXT Summary (121111), CODE abstention (+ reasons), CODE image/text contribution
//!      (+ reason), CONTAINER Model package (TID 4019 name, version, manifest SHA-256),
//!      TEXT clinician review comment   [VERIFIED only]
//! ```
//!
//! Why a subset: TID 1501 has no slots for a belief/uncertainty split, a
//! conformal set or modality contributions; those use local codes
//! ([`items::LOCAL_SCHEME`]), declared in the Coding Scheme Identification
//! Sequence. The header names no Content Template for the same reason.
//!
//! A prediction gives an UNVERIFIED report; each review gives a new VERIFIED
//! one with the Verifying Observer Sequence and the Predecessor Documents
//! Sequence naming the UNVERIFIED report. Patient and study attributes are
//! copied from a source instance of the study; the source instances are
//! listed in the Current Requested Procedure Evidence Sequence. A case
//! without a study has no SR.
//!
//! The bytes are a pure function of the stored prediction (and review):
//! UIDs are derived from our ids ([`derived_uid`]), dates from the stored
//! times. Rebuilding after a crash gives the same instance, so storing it
//! again is a no-op and sending it again cannot make a second instance.

pub mod content;
pub mod items;
pub mod load;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use dicom_core::{DataElement, PrimitiveValue, Tag, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::InMemDicomObject;
use dicom_object::meta::FileMetaTableBuilder;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use items::{code_item, sequence, text};

/// The SOP Class of every report: Comprehensive SR Storage.
pub const SOP_CLASS: &str = uids::COMPREHENSIVE_SR_STORAGE;

/// The Series Number of the results series.
pub const SERIES_NUMBER: i32 = 9901;

/// Why a report cannot be built. Messages carry no patient data.
#[derive(Debug, thiserror::Error)]
pub enum SrError {
    /// The case has no imaging study: notes alone produce no SR.
    #[error("the case has no imaging study; no SR is made for notes alone")]
    NoStudy,
    /// The prediction, its case or its review is not stored.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// The study has no stored instance to copy its identity from.
    #[error("the study has no readable source instance")]
    NoSource,
    /// A stored prediction does not read back as the pipeline's output.
    #[error("the stored prediction is malformed: {0}")]
    Malformed(String),
    /// The database failed.
    #[error("database: {0}")]
    Store(#[from] fusion_store::StoreError),
    /// dicom-rs refused to write the object.
    #[error("cannot encode the SR: {0}")]
    Encode(String),
}

/// One referenced source instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceInstance {
    /// Series Instance UID.
    pub series: String,
    /// SOP Class UID.
    pub sop_class: String,
    /// SOP Instance UID.
    pub sop_instance: String,
}

/// A clinician's review, for the VERIFIED report.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewInput {
    /// Our id of the review.
    pub id: Uuid,
    /// The Verifying Observer Name (0040,A075): the reviewer's user name.
    pub reviewer: String,
    /// When the review was stored: Verification DateTime.
    pub reviewed_at: DateTime<Utc>,
    /// Per observation (snake_case): `accept`, `reject` or `amend`, and the
    /// amended value (`present`, `absent`, `uncertain`).
    pub decisions: BTreeMap<String, (String, Option<String>)>,
    /// The reviewer's comment.
    pub comment: Option<String>,
}

/// Everything a report is built from, read from the store by [`load`].
#[derive(Debug, Clone)]
pub struct SrInput {
    /// The prediction version.
    pub prediction_id: Uuid,
    /// Its case.
    pub case_id: Uuid,
    /// Its version number.
    pub version: i32,
    /// When it was stored: Content Date/Time of the UNVERIFIED report.
    pub created_at: DateTime<Utc>,
    /// Study Instance UID.
    pub study_instance_uid: String,
    /// Patient and General Study module attributes copied from a source
    /// instance: (tag, VR, value; empty for a type 2 attribute it lacks).
    pub identity: Vec<(Tag, VR, String)>,
    /// The instances handed to the models (the evidence).
    pub evidence: Vec<SourceInstance>,
    /// The instance the image branch used, if it used one.
    pub image_used: Option<SourceInstance>,
    /// The pipeline's stored output.
    pub output: fusion_models::PredictionOutput,
    /// The review, for a VERIFIED report.
    pub review: Option<ReviewInput>,
}

/// A built report.
#[derive(Debug, Clone)]
pub struct SrDocument {
    /// The Part 10 file bytes.
    pub bytes: Vec<u8>,
    /// Its SOP Instance UID.
    pub sop_instance_uid: String,
    /// Its Series Instance UID.
    pub series_instance_uid: String,
}

pub use load::load;

/// A UID under the `2.25` root (PS3.5 §B.2) from a UUID made of the first
/// 16 bytes of SHA-256(`name`) with the version 8 and variant bits set
/// (RFC 9562 §5.8): the same name gives the same UID.
pub fn derived_uid(name: &str) -> String {
    let digest = Sha256::digest(name.as_bytes());
    let mut bytes = [0_u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x80;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    format!("2.25.{}", u128::from_be_bytes(bytes))
}

/// The SOP Instance UID of the UNVERIFIED report of a prediction version,
/// or of the VERIFIED report of its review.
pub fn report_uid(prediction_id: Uuid, review_id: Option<Uuid>) -> String {
    match review_id {
        None => derived_uid(&format!("fusion-sr:{prediction_id}")),
        Some(r) => derived_uid(&format!("fusion-sr:{prediction_id}:{r}")),
    }
}

/// The Series Instance UID of a case's results series.
pub fn series_uid(case_id: Uuid) -> String {
    derived_uid(&format!("fusion-sr-series:{case_id}"))
}

/// The Device Observer UID of this service (TID 1004).
pub fn device_uid() -> String {
    derived_uid("fusion-device-observer")
}

/// Builds the report's Part 10 bytes.
///
/// # Errors
///
/// [`SrError::Encode`] when dicom-rs cannot write it.
pub fn build(input: &SrInput) -> Result<SrDocument, SrError> {
    let review_id = input.review.as_ref().map(|r| r.id);
    let sop_instance_uid = report_uid(input.prediction_id, review_id);
    let series_instance_uid = series_uid(input.case_id);
    let content_time = input
        .review
        .as_ref()
        .map_or(input.created_at, |r| r.reviewed_at);
    let (date, time) = (
        content_time.format("%Y%m%d").to_string(),
        content_time.format("%H%M%S%.6f").to_string(),
    );
    let mut obj = InMemDicomObject::new_empty();
    // SOP Common (C.12.1).
    put(&mut obj, tags::SPECIFIC_CHARACTER_SET, VR::CS, "ISO_IR 192");
    put(&mut obj, tags::INSTANCE_CREATION_DATE, VR::DA, &date);
    put(&mut obj, tags::INSTANCE_CREATION_TIME, VR::TM, &time);
    put(&mut obj, tags::SOP_CLASS_UID, VR::UI, SOP_CLASS);
    put(&mut obj, tags::SOP_INSTANCE_UID, VR::UI, &sop_instance_uid);
    put(&mut obj, tags::TIMEZONE_OFFSET_FROM_UTC, VR::SH, "+0000");
    // SR Document Series (C.17.1) and General Equipment (C.7.5.1).
    put(&mut obj, tags::MODALITY, VR::CS, "SR");
    put(
        &mut obj,
        tags::SERIES_INSTANCE_UID,
        VR::UI,
        &series_instance_uid,
    );
    put(
        &mut obj,
        tags::SERIES_NUMBER,
        VR::IS,
        &SERIES_NUMBER.to_string(),
    );
    put(
        &mut obj,
        tags::SERIES_DESCRIPTION,
        VR::LO,
        "AI results (fusion), not for primary diagnosis",
    );
    put(&mut obj, tags::MANUFACTURER, VR::LO, "fusion project");
    put(
        &mut obj,
        tags::MANUFACTURER_MODEL_NAME,
        VR::LO,
        "clinical multimodal fusion",
    );
    put(
        &mut obj,
        tags::SOFTWARE_VERSIONS,
        VR::LO,
        env!("CARGO_PKG_VERSION"),
    );
    // SR Document General (C.17.2).
    let instance_number = input.version * 100 + i32::from(input.review.is_some());
    put(
        &mut obj,
        tags::INSTANCE_NUMBER,
        VR::IS,
        &instance_number.to_string(),
    );
    put(&mut obj, tags::CONTENT_DATE, VR::DA, &date);
    put(&mut obj, tags::CONTENT_TIME, VR::TM, &time);
    put(&mut obj, tags::COMPLETION_FLAG, VR::CS, "COMPLETE");
    put(
        &mut obj,
        tags::VERIFICATION_FLAG,
        VR::CS,
        if input.review.is_some() {
            "VERIFIED"
        } else {
            "UNVERIFIED"
        },
    );
    // Patient (C.7.1.1) and General Study (C.7.2.1), copied.
    for (tag, vr, value) in &input.identity {
        put(&mut obj, *tag, *vr, value);
    }
    put(
        &mut obj,
        tags::STUDY_INSTANCE_UID,
        VR::UI,
        &input.study_instance_uid,
    );
    obj.put(sequence(
        tags::REFERENCED_PERFORMED_PROCEDURE_STEP_SEQUENCE,
        Vec::new(),
    ));
    obj.put(sequence(
        tags::PERFORMED_PROCEDURE_CODE_SEQUENCE,
        Vec::new(),
    ));
    if !input.evidence.is_empty() {
        obj.put(sequence(
            tags::CURRENT_REQUESTED_PROCEDURE_EVIDENCE_SEQUENCE,
            vec![hierarchical_reference(
                &input.study_instance_uid,
                &input.evidence,
            )],
        ));
    }
    if let Some(review) = &input.review {
        obj.put(sequence(
            tags::VERIFYING_OBSERVER_SEQUENCE,
            vec![InMemDicomObject::from_element_iter([
                text(tags::VERIFYING_OBSERVER_NAME, VR::PN, &review.reviewer),
                sequence(
                    tags::VERIFYING_OBSERVER_IDENTIFICATION_CODE_SEQUENCE,
                    Vec::new(),
                ),
                text(tags::VERIFYING_ORGANIZATION, VR::LO, "fusion service"),
                text(
                    tags::VERIFICATION_DATE_TIME,
                    VR::DT,
                    &format!("{}+0000", review.reviewed_at.format("%Y%m%d%H%M%S%.6f")),
                ),
            ])],
        ));
        let predecessor = SourceInstance {
            series: series_instance_uid.clone(),
            sop_class: SOP_CLASS.to_owned(),
            sop_instance: report_uid(input.prediction_id, None),
        };
        obj.put(sequence(
            tags::PREDECESSOR_DOCUMENTS_SEQUENCE,
            vec![hierarchical_reference(
                &input.study_instance_uid,
                &[predecessor],
            )],
        ));
    }
    obj.put(sequence(
        tags::CODING_SCHEME_IDENTIFICATION_SEQUENCE,
        vec![InMemDicomObject::from_element_iter([
            text(tags::CODING_SCHEME_DESIGNATOR, VR::SH, items::LOCAL_SCHEME),
            text(
                tags::CODING_SCHEME_NAME,
                VR::ST,
                "Clinical multimodal fusion service local codes",
            ),
            text(
                tags::CODING_SCHEME_RESPONSIBLE_ORGANIZATION,
                VR::ST,
                "fusion project",
            ),
        ])],
    ));
    // SR Document Content (C.17.3): the root CONTAINER.
    obj.put(DataElement::new(
        tags::VALUE_TYPE,
        VR::CS,
        PrimitiveValue::from("CONTAINER"),
    ));
    obj.put(sequence(
        tags::CONCEPT_NAME_CODE_SEQUENCE,
        vec![code_item(items::IMAGING_MEASUREMENT_REPORT)],
    ));
    obj.put(DataElement::new(
        tags::CONTINUITY_OF_CONTENT,
        VR::CS,
        PrimitiveValue::from("SEPARATE"),
    ));
    obj.put(sequence(tags::CONTENT_SEQUENCE, content::tree(input)));
    let file = obj
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN)
                .implementation_class_uid(derived_uid("fusion-implementation"))
                .implementation_version_name("FUSION_SR_1"),
        )
        .map_err(|e| SrError::Encode(e.to_string()))?;
    let mut bytes = Vec::new();
    file.write_all(&mut bytes)
        .map_err(|e| SrError::Encode(e.to_string()))?;
    Ok(SrDocument {
        bytes,
        sop_instance_uid,
        series_instance_uid,
    })
}

fn put(obj: &mut InMemDicomObject, tag: Tag, vr: VR, value: &str) {
    obj.put(text(tag, vr, value));
}

/// An item of the Hierarchical SOP Instance Reference Macro (PS3.3 Table
/// C.17-3): the study, its series, their instances.
fn hierarchical_reference(study: &str, instances: &[SourceInstance]) -> InMemDicomObject {
    let mut by_series: BTreeMap<&str, Vec<&SourceInstance>> = BTreeMap::new();
    for i in instances {
        by_series.entry(i.series.as_str()).or_default().push(i);
    }
    let series = by_series
        .into_iter()
        .map(|(series, list)| {
            InMemDicomObject::from_element_iter([
                text(tags::SERIES_INSTANCE_UID, VR::UI, series),
                sequence(
                    tags::REFERENCED_SOP_SEQUENCE,
                    list.into_iter()
                        .map(|i| {
                            InMemDicomObject::from_element_iter([
                                text(tags::REFERENCED_SOP_CLASS_UID, VR::UI, &i.sop_class),
                                text(tags::REFERENCED_SOP_INSTANCE_UID, VR::UI, &i.sop_instance),
                            ])
                        })
                        .collect(),
                ),
            ])
        })
        .collect();
    InMemDicomObject::from_element_iter([
        text(tags::STUDY_INSTANCE_UID, VR::UI, study),
        sequence(tags::REFERENCED_SERIES_SEQUENCE, series),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn derived_uids_are_stable_valid_and_distinct() {
        let a = derived_uid("x");
        assert_eq!(a, derived_uid("x"));
        assert_ne!(a, derived_uid("y"));
        assert!(a.len() <= 64 && a.starts_with("2.25."));
        assert!(a[5..].chars().all(|c| c.is_ascii_digit()));
        assert!(!a[5..].starts_with('0'));
    }
}
