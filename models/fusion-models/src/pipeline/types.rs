//! The pipeline's input and output types: a case (images with their gate
//! attributes and frame values, notes with their mention labels) in; the
//! packages found, per-branch reports and per-label fused results out. The
//! output is what the service stores with a prediction: its types, like the
//! gate attributes and frame values, are the shared vocabulary of
//! `fusion_schemas`, re-exported here.

use std::collections::BTreeMap;

use crate::package::Observation;

pub use fusion_schemas::prediction::{
    BranchOpinion, BranchReport, BranchStatus, Branches, FusedLabel, HeadSource, MentionSource,
    PackageRef, PackageStatus, PredictionOutput, SkippedInput, ZeroShotSource,
};
pub use fusion_schemas::{FrameValues, GateAttributes};

/// One image of the case that the image branch may use.
#[derive(Debug, Clone, PartialEq)]
pub struct ImageCandidate {
    /// SOP Instance UID (0008,0018).
    pub sop_instance_uid: String,
    /// Header attributes for the applicability gate.
    pub attributes: GateAttributes,
    /// Frame 1's modality-LUT values, or why they could not be decoded
    /// (the branch then reports "unusable" unless another image works).
    pub pixels: Result<FrameValues, String>,
}

/// One clinical note of the case.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NoteInput {
    /// The note's identifier (reported in `note_ids`).
    pub note_id: String,
    /// The note's text (UTF-8).
    pub text: String,
    /// The mention labeller's label per observation (snake_case name →
    /// `positive` | `negative` | `uncertain` | `not_mentioned`); an
    /// observation not listed is `not_mentioned`.
    pub labels: BTreeMap<String, String>,
    /// Why the note must not be used for this case, when it must not (e.g.
    /// it names another Patient ID than the study): reported as skipped.
    pub excluded: Option<String>,
    /// The note's analysis (sections, sentences, mentions, labels) by the
    /// mention labeller, computed on `text`. Trained report heads need it;
    /// when given, its labels are the note's labels and `labels` is not read.
    pub analysis: Option<fusion_schemas::NoteAnalysis>,
}

/// Everything the pipeline needs for one case. Notes are given oldest first.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CaseInput {
    /// Candidate images, in the caller's order of preference.
    pub images: Vec<ImageCandidate>,
    /// Notes, oldest first.
    pub notes: Vec<NoteInput>,
}

/// Per observation, the zero-shot logit before temperature scaling and
/// whether its sentence passed `min_similarity` (`None`: no sentence).
pub type ZeroShotLogits = Vec<(Observation, Option<(f64, bool)>)>;
