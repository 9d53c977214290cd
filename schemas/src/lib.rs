//! Wire types and parsed domain identifiers of the fusion service's API.
//!
//! Everything that crosses the service boundary is parsed here into a newtype,
//! so that the rest of the code never handles an unchecked string: DICOM unique
//! identifiers (PS3.5 §9), patient and accession identifiers (PS3.5 §6.2 value
//! representations LO and SH), and the JSON bodies the API answers with.
//!
//! It is also the one home of the vocabulary the crates share: the
//! instance attributes imaging reads and the store keeps ([`instance`]),
//! observations and note analyses ([`note`]), and the stored shape of a
//! prediction with its opinions ([`prediction`], [`opinion`]).

pub mod health;
pub mod ids;
pub mod instance;
pub mod note;
pub mod observation;
pub mod opinion;
pub mod prediction;
pub mod problem;
pub mod roles;

pub use health::{CheckStatus, Readiness};
pub use ids::{
    AccessionNumber, IdError, PatientId, SeriesInstanceUid, SopInstanceUid, StudyInstanceUid,
    TransferSyntaxUid,
};
pub use instance::{FrameValues, GateAttributes, InstanceAttributes};
pub use note::{
    Assertion, Mention, NoteAnalysis, NoteLabel, Section, SectionKind, Span, TriggerCategory,
    TriggerHit,
};
pub use observation::Observation;
pub use opinion::{Evidence, Opinion, OpinionError};
pub use prediction::{
    AbstainReason, BinaryClass, BranchOpinion, BranchReport, BranchStatus, Branches,
    DuplicateClass, FusedLabel, HeadSource, MentionSource, PackageRef, PackageStatus,
    PredictionInputs, PredictionOutput, PredictionSet, SkippedInput, ZeroShotSource,
};
pub use problem::ErrorBody;
pub use roles::{Role, UnknownRole};
