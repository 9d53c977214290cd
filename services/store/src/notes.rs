//! Clinical notes as the store keeps them: the decoded text, the identifiers
//! that tie a note to a patient, an order and a study, and the note
//! analysis (sections, mentions, labels) beside it.
//!
//! The analysis is kept as JSON values: the store does not depend on the
//! notes crate (dependencies point api → domain crates → store), and it
//! hands back exactly what it was given.

use chrono::{DateTime, Utc};
use std::collections::BTreeMap;

use fusion_schemas::note::{Mention, NoteLabel, Section};
use fusion_schemas::{AccessionNumber, Observation, PatientId, StudyInstanceUid};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Whether a stored note has text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoteStatus {
    /// The note has text and it was analysed.
    Analysed,
    /// The note was accepted without text (a PDF, an unfetched URL …);
    /// [`NewNote::no_text_reason`] says why.
    NoText,
}

impl NoteStatus {
    /// `analysed` or `no_text`, as stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Analysed => "analysed",
            Self::NoText => "no_text",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Self, crate::StoreError> {
        match s {
            "analysed" => Ok(Self::Analysed),
            "no_text" => Ok(Self::NoText),
            other => Err(crate::StoreError::Corrupt(format!(
                "unknown note status {other:?}"
            ))),
        }
    }
}

/// The kind of note as coded by its source (LOINC, HL7 table 0270, or a
/// caller's own code for `text/plain`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoteTypeCode {
    /// The code system, e.g. `http://loinc.org`.
    pub system: Option<String>,
    /// The code, e.g. `18748-4`.
    pub code: Option<String>,
    /// The display text, e.g. "Diagnostic imaging study".
    pub display: Option<String>,
}

/// A note to store, with its analysis. Built by the notes route.
#[derive(Debug, Clone, PartialEq)]
pub struct NewNote {
    /// Our id of the note.
    pub id: Uuid,
    /// Patient ID.
    pub patient_id: Option<PatientId>,
    /// Accession number of the order.
    pub accession_number: Option<AccessionNumber>,
    /// The imaging study the note reports on.
    pub study_instance_uid: Option<StudyInstanceUid>,
    /// The kind of note.
    pub note_type: Option<NoteTypeCode>,
    /// The format it arrived in: `text/plain`, `fhir-documentreference`,
    /// `fhir-diagnosticreport`, `hl7v2-oru` or `hl7v2-mdm`.
    pub source_format: String,
    /// The sender's identifier of the document (FHIR id, HL7 MSH-10).
    pub source_id: Option<String>,
    /// When the note was written, in UTC.
    pub authored_at: Option<DateTime<Utc>>,
    /// How much of `authored_at` the source gave (`year` … `second`).
    pub authored_at_precision: Option<String>,
    /// The note text; every span in `sections` and `mentions` is a byte
    /// range into it. `None` exactly when `status` is [`NoteStatus::NoText`].
    pub text: Option<String>,
    /// Analysed, or accepted without text.
    pub status: NoteStatus,
    /// Why there is no text (the intake's tagged JSON), when there is none.
    pub no_text_reason: Option<serde_json::Value>,
    /// Sections in text order (stored as a JSON array), empty without text.
    pub sections: Vec<Section>,
    /// Observation mentions in text order (a JSON array), empty without text.
    pub mentions: Vec<Mention>,
    /// Note-level labels (a JSON object, observation → label), empty without
    /// text.
    pub labels: BTreeMap<Observation, NoteLabel>,
    /// The principal id (user id or API key id) that submitted the note.
    pub submitted_by: Option<String>,
}

/// A stored note.
#[derive(Debug, Clone, PartialEq)]
pub struct NoteRecord {
    /// The note as it was stored.
    pub note: NewNote,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
}

/// A stored note without its text, sections and mentions: what a list returns.
#[derive(Debug, Clone, PartialEq)]
pub struct NoteSummary {
    /// Our id of the note.
    pub id: Uuid,
    /// Patient ID.
    pub patient_id: Option<PatientId>,
    /// Accession number.
    pub accession_number: Option<AccessionNumber>,
    /// Study Instance UID.
    pub study_instance_uid: Option<StudyInstanceUid>,
    /// The kind of note.
    pub note_type: Option<NoteTypeCode>,
    /// The format it arrived in.
    pub source_format: String,
    /// When the note was written.
    pub authored_at: Option<DateTime<Utc>>,
    /// Analysed, or accepted without text.
    pub status: NoteStatus,
    /// Note-level labels (observation → label).
    pub labels: BTreeMap<Observation, NoteLabel>,
    /// Who submitted it.
    pub submitted_by: Option<String>,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
}

/// Which notes to list: every given field must match (AND); oldest first.
#[derive(Debug, Clone, Default)]
pub struct NoteFilter {
    /// Patient ID equals.
    pub patient_id: Option<PatientId>,
    /// Accession number equals.
    pub accession_number: Option<AccessionNumber>,
    /// Study Instance UID equals.
    pub study_instance_uid: Option<StudyInstanceUid>,
    /// Most notes to return (default 100).
    pub limit: Option<i64>,
}
