//! What the service knows of a DICOM instance outside its bytes: the
//! attributes imaging indexes and the store keeps, the header attributes the
//! models' applicability gate reads, and a frame's values as the image
//! branch takes them.

use serde::{Deserialize, Serialize};

use crate::{
    AccessionNumber, PatientId, SeriesInstanceUid, SopInstanceUid, StudyInstanceUid,
    TransferSyntaxUid,
};

/// The attributes the service indexes for an instance, with its study and
/// series (PS3.3 Annex A.1.2 information model): what
/// `fusion_imaging::index_attributes` reads from a parsed instance and the
/// store keeps (`fusion_store::NewInstance` holds it with what the store
/// adds: blob key, size, decode status, submitter).
#[derive(Debug, Clone, PartialEq)]
pub struct InstanceAttributes {
    /// Study Instance UID (0020,000D).
    pub study_instance_uid: StudyInstanceUid,
    /// Series Instance UID (0020,000E).
    pub series_instance_uid: SeriesInstanceUid,
    /// SOP Instance UID (0008,0018).
    pub sop_instance_uid: SopInstanceUid,
    /// SOP Class UID (0008,0016).
    pub sop_class_uid: String,
    /// Transfer Syntax UID (0002,0010).
    pub transfer_syntax_uid: TransferSyntaxUid,
    /// Patient ID (0010,0020); `None` when absent or not a valid LO.
    pub patient_id: Option<PatientId>,
    /// Patient's Name (0010,0010) as DICOM PN text (`Family^Given=Ideographic=Phonetic`),
    /// decoded per Specific Character Set.
    pub patient_name: Option<String>,
    /// Accession Number (0008,0050); `None` when absent or not a valid SH.
    pub accession_number: Option<AccessionNumber>,
    /// Study Date (0008,0020), DA as sent (YYYYMMDD).
    pub study_date: Option<String>,
    /// Study Description (0008,1030).
    pub study_description: Option<String>,
    /// Study Time (0008,0030), TM as sent.
    pub study_time: Option<String>,
    /// Study ID (0020,0010).
    pub study_id: Option<String>,
    /// Referring Physician's Name (0008,0090), PN text (`^`-separated).
    pub referring_physician: Option<String>,
    /// Series Description (0008,103E).
    pub series_description: Option<String>,
    /// Modality (0008,0060).
    pub modality: Option<String>,
    /// Body Part Examined (0018,0015).
    pub body_part: Option<String>,
    /// Series Number (0020,0011).
    pub series_number: Option<i32>,
    /// Instance Number (0020,0013).
    pub instance_number: Option<i32>,
    /// Rows (0028,0010), pixels.
    pub rows: Option<i32>,
    /// Columns (0028,0011), pixels.
    pub columns: Option<i32>,
    /// Number of Frames (0028,0008); 1 for an image without it, `None`
    /// without pixel data or when the value is not an integer.
    pub frames: Option<i32>,
    /// The QIDO-RS attributes as DICOM JSON (PS3.18 §F.2), keyed by tag as
    /// eight upper-case hex digits (`fusion_imaging::qido_json`); returned by
    /// QIDO-RS.
    pub attributes: serde_json::Value,
}

/// Modality-LUT values of one frame, row-major `[rows, columns]`, f32: the
/// image branch's input (the caller converts from the imaging crate's
/// decoded frame).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct FrameValues {
    /// Rows (0028,0010), pixels.
    pub rows: u32,
    /// Columns (0028,0011), pixels.
    pub columns: u32,
    /// `rows × columns` values, row-major.
    pub values: Vec<f32>,
}

/// The DICOM header attributes the applicability gate reads, as strings
/// (trailing spaces and NULs are tolerated). `None` when not recorded.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct GateAttributes {
    /// Modality (0008,0060), e.g. `CR`.
    pub modality: Option<String>,
    /// Body Part Examined (0018,0015), e.g. `CHEST`.
    pub body_part_examined: Option<String>,
    /// View Position (0018,5101), e.g. `PA`.
    pub view_position: Option<String>,
    /// Photometric Interpretation (0028,0004), e.g. `MONOCHROME1`.
    pub photometric_interpretation: Option<String>,
    /// Patient's Age (0010,1010), AS, e.g. `045Y`.
    pub patient_age: Option<String>,
    /// Patient's Birth Date (0010,0030), DA `YYYYMMDD`.
    pub patient_birth_date: Option<String>,
    /// Study Date (0008,0020), DA `YYYYMMDD`.
    pub study_date: Option<String>,
    /// Bits Stored (0028,0101).
    pub bits_stored: Option<u16>,
}
