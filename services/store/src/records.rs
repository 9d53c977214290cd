//! Rows of the imaging index as the rest of the service sees them.

use chrono::{DateTime, Utc};
use fusion_schemas::{
    AccessionNumber, InstanceAttributes, PatientId, SeriesInstanceUid, SopInstanceUid,
    StudyInstanceUid, TransferSyntaxUid,
};
use serde::{Deserialize, Serialize};

use crate::BlobKey;

/// Whether an instance's pixel data could be decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DecodeStatus {
    /// Pixel data decoded.
    Ok,
    /// Pixel data could not be decoded; the instance is stored and indexed
    /// but not renderable, and the image model reports it as unusable.
    Failed,
    /// Not tried yet, or the instance has no pixel data.
    Unknown,
}

impl DecodeStatus {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Failed => "failed",
            Self::Unknown => "unknown",
        }
    }

    pub(crate) fn parse(s: &str) -> Result<Self, crate::StoreError> {
        match s {
            "ok" => Ok(Self::Ok),
            "failed" => Ok(Self::Failed),
            "unknown" => Ok(Self::Unknown),
            other => Err(crate::StoreError::Corrupt(format!(
                "unknown decode_status {other:?}"
            ))),
        }
    }
}

/// An instance to index: the attributes imaging read from it (with those
/// of its study and series, PS3.3 Annex A.1.2 information model) and what
/// the store keeps beside them. Its bytes must already be in the blob store
/// under `blob_key`.
#[derive(Debug, Clone)]
pub struct NewInstance {
    /// The indexed attributes, DICOM JSON for QIDO-RS among them.
    pub instance: InstanceAttributes,
    /// SHA-256 of the stored bytes.
    pub blob_key: BlobKey,
    /// Size of the stored bytes, in bytes.
    pub size_bytes: i64,
    /// Whether the pixel data decoded.
    pub decode_status: DecodeStatus,
    /// Why decoding failed, when it did.
    pub decode_reason: Option<String>,
    /// Who stored it (API key or user id), for read-back of own submissions.
    pub submitted_by: Option<String>,
}

/// What indexing an instance did. Re-sending the same SOP Instance UID with
/// the same bytes is a no-op that succeeds; with different bytes it is
/// refused and recorded (DESIGN.md, "Storage").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PutOutcome {
    /// A new instance was indexed.
    Stored,
    /// The same SOP Instance UID with the same bytes was already indexed.
    Duplicate,
    /// The SOP Instance UID is already indexed with other bytes; the new
    /// bytes were refused and the conflict recorded.
    Conflict {
        /// The blob key of the instance already stored.
        stored: BlobKey,
    },
    /// The instance names a study that holds another submitter's instances:
    /// refused, nothing indexed (an integration client may add only to its
    /// own studies; issue #14, finding 7).
    ForeignStudy,
    /// The instance names another Patient ID than its study was stored
    /// with: refused, nothing indexed (a study is one patient's).
    PatientMismatch,
}

/// An indexed instance.
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceRecord {
    /// SOP Instance UID (0008,0018).
    pub sop_instance_uid: SopInstanceUid,
    /// Series Instance UID (0020,000E).
    pub series_instance_uid: SeriesInstanceUid,
    /// Study Instance UID (0020,000D).
    pub study_instance_uid: StudyInstanceUid,
    /// SOP Class UID (0008,0016).
    pub sop_class_uid: String,
    /// Transfer Syntax UID (0002,0010).
    pub transfer_syntax_uid: TransferSyntaxUid,
    /// Rows (0028,0010), pixels.
    pub rows: Option<i32>,
    /// Columns (0028,0011), pixels.
    pub columns: Option<i32>,
    /// Number of Frames (0028,0008).
    pub frames: Option<i32>,
    /// SHA-256 of the stored bytes.
    pub blob_key: BlobKey,
    /// Size of the stored bytes, in bytes.
    pub size_bytes: i64,
    /// Whether the pixel data decoded.
    pub decode_status: DecodeStatus,
    /// Why decoding failed, when it did.
    pub decode_reason: Option<String>,
    /// The indexed attributes as DICOM JSON (PS3.18 §F.2).
    pub attributes: serde_json::Value,
    /// When the instance was first stored.
    pub received_at: DateTime<Utc>,
    /// Who stored it.
    pub submitted_by: Option<String>,
}

/// An indexed study.
#[derive(Debug, Clone, PartialEq)]
pub struct StudyRecord {
    /// Study Instance UID (0020,000D).
    pub study_instance_uid: StudyInstanceUid,
    /// Patient ID (0010,0020).
    pub patient_id: Option<PatientId>,
    /// Patient's Name (0010,0010).
    pub patient_name: Option<String>,
    /// Accession Number (0008,0050).
    pub accession_number: Option<AccessionNumber>,
    /// Study Date (0008,0020), YYYYMMDD.
    pub study_date: Option<String>,
    /// Study Description (0008,1030).
    pub description: Option<String>,
    /// Modalities in Study (0008,0061), sorted, distinct.
    pub modalities: Vec<String>,
    /// Number of instances indexed.
    pub instance_count: i64,
    /// Number of series.
    pub series_count: i64,
    /// DICOM JSON of one of its instances (for the study-level tags).
    pub attributes: serde_json::Value,
}

/// Match keys of a QIDO-RS study search (PS3.18 §10.6.1.2, matching per
/// PS3.4 §C.2.2.2): `None` matches everything.
#[derive(Debug, Clone, Default)]
pub struct StudyQuery {
    /// Patient ID (0010,0020): single value, `*` and `?` wildcards allowed.
    pub patient_id: Option<String>,
    /// Patient's Name (0010,0010): wildcards, case-insensitive.
    pub patient_name: Option<String>,
    /// Accession Number (0008,0050): single value, wildcards allowed.
    pub accession_number: Option<String>,
    /// Study Description (0008,1030): single value, `*` and `?` wildcards
    /// allowed (PS3.4 §C.2.2.2.4).
    pub study_description: Option<String>,
    /// Study ID (0020,0010): single value, wildcards allowed.
    pub study_id: Option<String>,
    /// Referring Physician's Name (0008,0090): wildcards, case-insensitive.
    pub referring_physician: Option<String>,
    /// Study Time (0008,0030) range, inclusive, `HHMMSS` prefixes compared
    /// as text (PS3.4 §C.2.2.2.5).
    pub study_time_from: Option<String>,
    /// Upper end of the Study Time range.
    pub study_time_to: Option<String>,
    /// Study Date (0008,0020) range, inclusive, `YYYYMMDD` each end.
    pub study_date_from: Option<String>,
    /// Upper end of the Study Date range.
    pub study_date_to: Option<String>,
    /// Modalities in Study (0008,0061): a study matches if any series has it.
    pub modality: Option<String>,
    /// Study Instance UID (0020,000D): list of UID matching.
    pub study_instance_uids: Vec<String>,
    /// Only studies holding an instance stored by this submitter (an
    /// integration client reads back its own submissions only).
    pub submitted_by: Option<String>,
    /// Most results.
    pub limit: i64,
    /// Results to skip.
    pub offset: i64,
}

/// Match keys of a QIDO-RS series search within a study.
#[derive(Debug, Clone, Default)]
pub struct SeriesQuery {
    /// Modality (0008,0060), single value or wildcards.
    pub modality: Option<String>,
    /// Series Instance UID (0020,000E): list of UID matching.
    pub series_instance_uids: Vec<String>,
    /// Series Description (0008,103E): single value, wildcards allowed.
    pub description: Option<String>,
    /// Series Number (0020,0011).
    pub series_number: Option<i32>,
    /// Only series holding an instance stored by this submitter.
    pub submitted_by: Option<String>,
    /// Most results.
    pub limit: i64,
    /// Results to skip.
    pub offset: i64,
}

/// Match keys of a QIDO-RS instance search within a series (or study).
#[derive(Debug, Clone, Default)]
pub struct InstanceQuery {
    /// Restrict to this series.
    pub series_instance_uid: Option<String>,
    /// SOP Instance UID (0008,0018): list of UID matching.
    pub sop_instance_uids: Vec<String>,
    /// SOP Class UID (0008,0016): list of UID matching.
    pub sop_class_uids: Vec<String>,
    /// Instance Number (0020,0013).
    pub instance_number: Option<i32>,
    /// Only instances stored by this submitter.
    pub submitted_by: Option<String>,
    /// Most results.
    pub limit: i64,
    /// Results to skip.
    pub offset: i64,
}

/// A series as QIDO-RS returns it.
#[derive(Debug, Clone, PartialEq)]
pub struct SeriesRecord {
    /// Series Instance UID (0020,000E).
    pub series_instance_uid: SeriesInstanceUid,
    /// Study Instance UID (0020,000D).
    pub study_instance_uid: StudyInstanceUid,
    /// Modality (0008,0060).
    pub modality: Option<String>,
    /// Series Number (0020,0011).
    pub series_number: Option<i32>,
    /// Number of Series Related Instances (0020,1209).
    pub instance_count: i64,
    /// DICOM JSON of one of its instances (series- and study-level tags).
    pub attributes: serde_json::Value,
}

/// Translates a DICOM wildcard pattern (PS3.4 §C.2.2.2.4: `*` any run, `?`
/// one character) into a SQL `LIKE` pattern with `\` as the escape.
pub fn like_pattern(dicom: &str) -> String {
    let mut out = String::with_capacity(dicom.len());
    for c in dicom.chars() {
        match c {
            '*' => out.push('%'),
            '?' => out.push('_'),
            '%' | '_' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            c => out.push(c),
        }
    }
    out
}
