//! Wire types and parsed domain identifiers of the fusion service's API.
//!
//! Everything that crosses the service boundary is parsed here into a newtype,
//! so that the rest of the code never handles an unchecked string: DICOM unique
//! identifiers (PS3.5 §9), patient and accession identifiers (PS3.5 §6.2 value
//! representations LO and SH), and the JSON bodies the API answers with.

pub mod health;
pub mod ids;
pub mod note;
pub mod observation;
pub mod problem;
pub mod roles;

pub use health::{CheckStatus, Readiness};
pub use ids::{
    AccessionNumber, IdError, PatientId, SeriesInstanceUid, SopInstanceUid, StudyInstanceUid,
    TransferSyntaxUid,
};
pub use note::{
    Assertion, Mention, NoteAnalysis, NoteLabel, Section, SectionKind, Span, TriggerCategory,
    TriggerHit,
};
pub use observation::Observation;
pub use problem::ErrorBody;
pub use roles::{Role, UnknownRole};
