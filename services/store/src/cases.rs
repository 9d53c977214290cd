//! Cases, prediction versions, reviews and the inference queue as the store
//! keeps them.
//!
//! A case groups one imaging study and the notes of the same order: it is
//! keyed by the accession number when one is known, else by the Study
//! Instance UID. Predictions are insert-only versions (1, 2, …) of a case;
//! a review belongs to one version. The model output is kept as typed JSON
//! in its stored shape (`fusion_schemas::prediction`, which is
//! `schemas/prediction.schema.json`), with a small summary ([`Finding`]s
//! and a refer flag) beside it for case lists.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use fusion_schemas::prediction::{Branches, FusedLabel, PackageRef, PredictionInputs};
use fusion_schemas::{AccessionNumber, PatientId, PredictionOutput, StudyInstanceUid};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::StoreError;

/// Where a case stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseStatus {
    /// Notes (or nothing) but no image yet; nothing queued.
    AwaitingImage,
    /// An image but no note yet; nothing queued.
    AwaitingNote,
    /// A prediction job is queued or running.
    Queued,
    /// The latest prediction was issued.
    Predicted,
    /// The latest prediction abstained (too uncertain or conflicting).
    Abstained,
    /// Neither modality was usable: no prediction was issued.
    NoModality,
    /// A clinician reviewed a prediction of the case.
    Reviewed,
}

impl CaseStatus {
    /// Every status, in workflow order.
    pub const ALL: [Self; 7] = [
        Self::AwaitingImage,
        Self::AwaitingNote,
        Self::Queued,
        Self::Predicted,
        Self::Abstained,
        Self::NoModality,
        Self::Reviewed,
    ];

    /// The stored (and wire) name, e.g. `no_modality`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::AwaitingImage => "awaiting_image",
            Self::AwaitingNote => "awaiting_note",
            Self::Queued => "queued",
            Self::Predicted => "predicted",
            Self::Abstained => "abstained",
            Self::NoModality => "no_modality",
            Self::Reviewed => "reviewed",
        }
    }

    /// Parses a stored or wire name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == s)
    }

    pub(crate) fn from_db(s: &str) -> Result<Self, StoreError> {
        Self::parse(s).ok_or_else(|| StoreError::Corrupt(format!("unknown case status {s:?}")))
    }
}

/// A stored case.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseRecord {
    /// Our id of the case.
    pub id: Uuid,
    /// Patient ID.
    pub patient_id: Option<PatientId>,
    /// Accession number of the order.
    pub accession_number: Option<AccessionNumber>,
    /// The imaging study.
    pub study_instance_uid: Option<StudyInstanceUid>,
    /// Study Date of the study, `YYYYMMDD`, when it is stored.
    pub study_date: Option<String>,
    /// Whether the study has at least one stored instance.
    pub has_images: bool,
    /// Where it stands.
    pub status: CaseStatus,
    /// The linked notes, oldest link first.
    pub note_ids: Vec<Uuid>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl CaseRecord {
    /// Whether a prediction can be asked for: a study with images or a note.
    pub fn has_inputs(&self) -> bool {
        self.has_images || !self.note_ids.is_empty()
    }
}

/// What linking did to a case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkChange {
    /// The case was created.
    Created,
    /// An existing case gained a study, accession, patient or note.
    Updated,
    /// The case already held everything given.
    Unchanged,
}

/// The case a study or note was linked to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CaseLink {
    /// The case.
    pub case_id: Uuid,
    /// What changed.
    pub change: LinkChange,
}

/// The identifiers a case is found or created by. At least one of
/// `accession_number` and `study_instance_uid` must be given.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CaseKey {
    /// Accession number: the key when given.
    pub accession_number: Option<AccessionNumber>,
    /// Study Instance UID: the key without an accession number.
    pub study_instance_uid: Option<StudyInstanceUid>,
    /// Patient ID, recorded when the case has none.
    pub patient_id: Option<PatientId>,
}

/// How to sort a case list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CaseSort {
    /// By Study Date (cases without a study last).
    StudyDate,
    /// By last change (the default).
    #[default]
    Updated,
    /// By status name, then last change.
    Status,
}

/// Which cases to list: every given field must match (AND).
#[derive(Debug, Clone, Default)]
pub struct CaseFilter {
    /// Status equals.
    pub status: Option<CaseStatus>,
    /// Patient ID equals.
    pub patient_id: Option<PatientId>,
    /// Accession number equals.
    pub accession_number: Option<AccessionNumber>,
    /// Study Date on or after (`YYYYMMDD`).
    pub study_date_from: Option<String>,
    /// Study Date on or before (`YYYYMMDD`).
    pub study_date_to: Option<String>,
    /// Sort key.
    pub sort: CaseSort,
    /// Ascending instead of the default descending (newest first).
    pub ascending: bool,
    /// Most cases to return (default 100, at most 1,000).
    pub limit: Option<i64>,
    /// Cases to skip.
    pub offset: Option<i64>,
}

/// Most findings a prediction's summary keeps.
pub const MAX_FINDINGS: usize = 5;

/// One label of a prediction's summary: the fused probability that the
/// finding is present.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Finding {
    /// The observation, e.g. `pneumonia`.
    pub label: String,
    /// Fused projected probability.
    pub probability: f64,
}

/// The latest prediction of a case, in brief.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictionBrief {
    /// The prediction.
    pub id: Uuid,
    /// Its version.
    pub version: i32,
    /// The top findings, most probable first.
    pub findings: Vec<Finding>,
    /// Whether it abstained.
    pub abstain: bool,
    /// Whether a clinician should look first (uncertain, conflicting,
    /// abstained, contradicting the report, or its findings unreadable).
    pub refer: bool,
    /// The stored findings could not be read ([`StoreError::Corrupt`],
    /// logged): `findings` is empty and the case is flagged, so one bad
    /// row does not fail the whole list.
    pub findings_unreadable: bool,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
}

/// A case in a list.
#[derive(Debug, Clone, PartialEq)]
pub struct CaseSummary {
    /// Our id of the case.
    pub id: Uuid,
    /// Patient ID.
    pub patient_id: Option<PatientId>,
    /// Accession number.
    pub accession_number: Option<AccessionNumber>,
    /// Study Instance UID.
    pub study_instance_uid: Option<StudyInstanceUid>,
    /// Study Date, `YYYYMMDD`.
    pub study_date: Option<String>,
    /// Where it stands.
    pub status: CaseStatus,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// The latest prediction, if any.
    pub latest_prediction: Option<PredictionBrief>,
}

/// Whether a prediction version was issued or abstained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PredictionStatus {
    /// Issued.
    Predicted,
    /// Issued with `abstain: true`.
    Abstained,
}

impl PredictionStatus {
    /// `predicted` or `abstained`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Predicted => "predicted",
            Self::Abstained => "abstained",
        }
    }

    pub(crate) fn from_db(s: &str) -> Result<Self, StoreError> {
        match s {
            "predicted" => Ok(Self::Predicted),
            "abstained" => Ok(Self::Abstained),
            other => Err(StoreError::Corrupt(format!(
                "unknown prediction status {other:?}"
            ))),
        }
    }

    fn case_status(self) -> CaseStatus {
        match self {
            Self::Predicted => CaseStatus::Predicted,
            Self::Abstained => CaseStatus::Abstained,
        }
    }
}

/// A prediction to store as the next version of its case.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPrediction {
    /// Our id of the prediction.
    pub id: Uuid,
    /// The case.
    pub case_id: Uuid,
    /// Issued or abstained.
    pub status: PredictionStatus,
    /// The model packages found, with identity and status.
    pub packages: Vec<PackageRef>,
    /// Per-modality reports (status, reason, opinions).
    pub branches: Branches,
    /// Fused result per label, keyed by snake_case observation.
    pub fused: BTreeMap<String, FusedLabel>,
    /// Whether the prediction abstains.
    pub abstain: bool,
    /// Why, when it abstains.
    pub abstain_reasons: Vec<String>,
    /// Timings per step, milliseconds.
    pub timings: BTreeMap<String, f64>,
    /// What went in: the study, instances and notes used.
    pub inputs: PredictionInputs,
    /// Summary for lists: the top findings.
    pub findings: Vec<Finding>,
    /// Summary for lists: whether a clinician should look first.
    pub refer: bool,
    /// The job that produced it; marked done in the same transaction.
    pub job_id: Option<Uuid>,
    /// Where its results go (the transactional outbox, issue #17): one
    /// delivery per target, queued in the same transaction. Not stored
    /// with the prediction; empty when read back.
    pub deliveries: Vec<crate::outbox::DeliveryTarget>,
}

impl NewPrediction {
    /// The case status this prediction leaves behind: `no_modality` for a
    /// version in which neither branch contributed
    /// ([`Self::modalities_available`]).
    pub fn case_status(&self) -> CaseStatus {
        if self.modalities_available() {
            self.status.case_status()
        } else {
            CaseStatus::NoModality
        }
    }

    /// Whether a branch contributed. A case's first job with no usable
    /// modality stores no version; a later one stores an abstaining version
    /// with only vacuous opinions, so that an earlier version (made from
    /// inputs since left out, e.g. another patient's note) is no longer
    /// the latest.
    pub fn modalities_available(&self) -> bool {
        self.branches.image.status.contributed() || self.branches.text.status.contributed()
    }

    /// The pipeline's answer this version stores.
    pub fn output(&self) -> PredictionOutput {
        PredictionOutput {
            packages: self.packages.clone(),
            branches: self.branches.clone(),
            fused: self.fused.clone(),
            abstain: self.abstain,
            abstain_reasons: self.abstain_reasons.clone(),
            timings_ms: self.timings.clone(),
            modalities_available: self.modalities_available(),
        }
    }
}

/// A stored prediction version.
#[derive(Debug, Clone, PartialEq)]
pub struct PredictionRecord {
    /// The prediction as given.
    pub prediction: NewPrediction,
    /// Its version within the case, from 1.
    pub version: i32,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
}

/// A stored prediction version whose row cannot be read back into a
/// [`PredictionRecord`] (a malformed JSON column: written by another build,
/// or damaged), listed instead of failing its case's pages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnreadableVersion {
    /// The prediction's id.
    pub id: Uuid,
    /// Its version within the case.
    pub version: i32,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
    /// Which column is malformed and where (never its content).
    pub reason: String,
}

/// Every version of a case's prediction, newest first, the readable and the
/// unreadable apart.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CaseVersions {
    /// The versions that read back, newest first.
    pub readable: Vec<PredictionRecord>,
    /// The versions that do not, newest first.
    pub unreadable: Vec<UnreadableVersion>,
}

impl CaseVersions {
    /// The highest version number, readable or not.
    #[must_use]
    pub fn latest_version(&self) -> Option<i32> {
        self.readable
            .iter()
            .map(|p| p.version)
            .chain(self.unreadable.iter().map(|u| u.version))
            .max()
    }
}

/// A review to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewReview {
    /// Our id of the review.
    pub id: Uuid,
    /// The prediction version reviewed.
    pub prediction_id: Uuid,
    /// Who reviewed (user id).
    pub reviewer: String,
    /// Per observation: `{decision, value?}`, JSON object.
    pub decisions: serde_json::Value,
    /// Free-text comment.
    pub comment: Option<String>,
    /// Where the reviewed (VERIFIED) results go, queued in the same
    /// transaction (issue #17). Not stored with the review; empty when
    /// read back.
    pub deliveries: Vec<crate::outbox::DeliveryTarget>,
}

/// A stored review.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewRecord {
    /// The review as given.
    pub review: NewReview,
    /// The case of the reviewed prediction.
    pub case_id: Uuid,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
}

/// Where an inference job stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Waiting for a worker.
    Queued,
    /// Claimed by a worker.
    Running,
    /// Finished.
    Done,
    /// Gave up after [`MAX_JOB_ATTEMPTS`].
    Failed,
}

/// Attempts after which a failing job is given up.
pub const MAX_JOB_ATTEMPTS: i32 = 3;

impl JobState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::Done => "done",
            Self::Failed => "failed",
        }
    }

    pub(crate) fn from_db(s: &str) -> Result<Self, StoreError> {
        match s {
            "queued" => Ok(Self::Queued),
            "running" => Ok(Self::Running),
            "done" => Ok(Self::Done),
            "failed" => Ok(Self::Failed),
            other => Err(StoreError::Corrupt(format!("unknown job state {other:?}"))),
        }
    }
}

/// An inference job.
#[derive(Debug, Clone, PartialEq)]
pub struct JobRecord {
    /// Our id of the job.
    pub id: Uuid,
    /// The case to predict.
    pub case_id: Uuid,
    /// Where it stands.
    pub state: JobState,
    /// Claims so far.
    pub attempts: i32,
    /// The worker that claimed it last.
    pub claimed_by: Option<String>,
    /// When it was claimed last.
    pub claimed_at: Option<DateTime<Utc>>,
    /// The last failure (no PHI).
    pub last_error: Option<String>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
}

/// The job an enqueue left queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enqueued {
    /// The queued job (an existing one when the case already had one).
    pub job_id: Uuid,
    /// Whether this call created it.
    pub created: bool,
}
