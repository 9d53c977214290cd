//! The pipeline's input and output types: a case (images with their gate
//! attributes and frame values, notes with their mention labels) in; the
//! packages found, per-branch reports and per-label fused results out. The
//! output is what the service stores with a prediction.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::abstain::AbstainReason;
use crate::conformal::PredictionSet;
use crate::evidence::Evidence;
use crate::opinion::Opinion;
use crate::package::Observation;
use fusion_schemas::NoteLabel;

/// Modality-LUT values of one frame, row-major `[rows, columns]`, f32 (the
/// caller converts from the imaging crate's decoded frame).
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

/// Whether a package found under the packages folder is in use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PackageStatus {
    /// Verified and built; its branch runs.
    Loaded,
    /// Could not be read, verified or built (see `reason`).
    Failed,
    /// Valid, but another package of the same modality is in use.
    Ignored,
}

/// A package the pipeline found, with its identity and status; recorded
/// with every prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackageRef {
    /// Package name (the folder name when the manifest is unreadable).
    pub name: String,
    /// Package version ("" when the manifest is unreadable).
    pub version: String,
    /// `image`, `text`, or `unknown` when the manifest is unreadable.
    pub modality: String,
    /// SHA-256 of `manifest.toml` (64 hex digits), which pins every file;
    /// `None` when the package failed.
    pub manifest_sha256: Option<String>,
    /// Loaded, failed or ignored.
    pub status: PackageStatus,
    /// Why it failed or is ignored.
    pub reason: Option<String>,
}

/// What a branch did with the case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BranchStatus {
    /// Used at full trust.
    Used,
    /// The case has no input of this modality.
    Missing,
    /// The input could not be used (undecodable pixels, empty note, a model
    /// failure).
    Unusable,
    /// The input is outside the package's intended use.
    NotApplicable,
    /// Used, with its opinions trust-discounted (t < 1).
    Discounted,
    /// No usable package for this modality.
    NoPackage,
}

impl BranchStatus {
    /// Whether the branch contributed opinions (used or discounted).
    #[must_use]
    pub const fn contributed(self) -> bool {
        matches!(self, Self::Used | Self::Discounted)
    }
}

/// An input a branch looked at and did not use, with why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedInput {
    /// SOP Instance UID or note id.
    pub id: String,
    /// Why it was not used.
    pub reason: String,
}

/// The mention labeller's contribution to a text opinion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MentionSource {
    /// The note the label comes from.
    pub note_id: String,
    /// `positive`, `negative`, `uncertain` or `not_mentioned`.
    pub label: NoteLabel,
    /// The evidence it gives (package weights); none when a trained head
    /// reads the label as one of its features.
    pub evidence: Evidence,
}

/// A trained report head's contribution to a text opinion
/// ([`crate::report_heads`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadSource {
    /// `name@version` of the heads package.
    pub package: String,
    /// The note scored.
    pub note_id: String,
    /// The members' mean logit z̄, before the temperature.
    pub logit: f64,
    /// Temperature T; the probability is σ(z̄/T).
    pub temperature: f64,
    /// Ensemble members B.
    pub members: usize,
    /// The head's decision threshold on the probability.
    pub decision_threshold: f64,
    /// Whether the probability reaches the threshold (the head's call).
    pub present: bool,
}

/// The zero-shot classifier's contribution to a text opinion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ZeroShotSource {
    /// The note scored.
    pub note_id: String,
    /// The most relevant sentence of the note.
    pub sentence: String,
    /// Its cosine similarity to "There is <finding>.", in [−1, 1].
    pub similarity_present: f64,
    /// Its cosine similarity to "There is no <finding>.", in [−1, 1].
    pub similarity_absent: f64,
    /// z = scale · (present − absent).
    pub logit: f64,
    /// Calibrated σ(z/T), in [0, 1].
    pub probability: f64,
    /// The weak evidence it gives (none when not relevant).
    pub evidence: Evidence,
}

/// One branch's opinion about one label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BranchOpinion {
    /// The opinion that enters fusion (after any trust discount).
    pub opinion: Opinion,
    /// The branch's probability of "present", in [0, 1]: for the image
    /// branch the calibrated probability with dropout off, for the text
    /// branch the opinion's projected probability.
    pub probability: f64,
    /// Mean of the T MC-dropout samples of the calibrated probability
    /// (image branch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<f64>,
    /// Their sample variance (image branch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variance: Option<f64>,
    /// Number of stochastic passes T (image branch; 1 without MC).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub passes: Option<usize>,
    /// The evidence (e₊, e₋) before any discount.
    pub evidence: Evidence,
    /// Trust factor t applied, when < 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust: Option<f64>,
    /// The mention label it rests on (text branch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mention: Option<MentionSource>,
    /// The zero-shot score it rests on (text branch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zero_shot: Option<ZeroShotSource>,
    /// Split-conformal set of this branch's probability, where the package
    /// has a calibrator for the label.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prediction_set: Option<PredictionSet>,
    /// The trained head it rests on (text branch with a heads package).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub head: Option<HeadSource>,
}

/// What one branch did, saw and concluded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BranchReport {
    /// Used, missing, unusable, not applicable, discounted or no package.
    pub status: BranchStatus,
    /// For clinicians: why the branch was not used, or was discounted.
    pub reason: Option<String>,
    /// SOP Instance UID of the image used (image branch).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance: Option<String>,
    /// Ids of the notes read (text branch).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub note_ids: Vec<String>,
    /// Inputs looked at and not used, with why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub skipped: Vec<SkippedInput>,
    /// `name@version` of the package that ran.
    pub package: Option<String>,
    /// Trust factor t < 1 when discounted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trust: Option<f64>,
    /// Per-label opinions, keyed by snake_case observation; labels the
    /// branch does not speak to are absent (vacuous).
    pub opinions: BTreeMap<String, BranchOpinion>,
    /// This branch's steps, milliseconds.
    pub timings_ms: BTreeMap<String, f64>,
}

impl BranchReport {
    pub(super) fn empty(status: BranchStatus, reason: impl Into<String>) -> Self {
        Self {
            status,
            reason: Some(reason.into()),
            instance: None,
            note_ids: Vec::new(),
            skipped: Vec::new(),
            package: None,
            trust: None,
            opinions: BTreeMap::new(),
            timings_ms: BTreeMap::new(),
        }
    }
}

/// The two branches' reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Branches {
    /// The image branch.
    pub image: BranchReport,
    /// The text branch.
    pub text: BranchReport,
}

/// The fused result for one label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FusedLabel {
    /// image ⊕ text by the reduced Dempster's rule (belief, disbelief,
    /// uncertainty, base rate and projected probability).
    pub opinion: Opinion,
    /// Conflict C = b₁d₂ + d₁b₂ ∈ [0, 1] between the branches (0 with one
    /// source; 1 on total conflict, where the fused opinion is vacuous).
    pub conflict: f64,
    /// Conformal prediction set, where every contributing branch has a
    /// calibrator for the label.
    pub prediction_set: Option<PredictionSet>,
    /// Branches that contributed a non-vacuous opinion: `image`, `text`.
    pub sources: Vec<String>,
    /// Why this label is not reported, if it is not.
    pub abstain: Option<AbstainReason>,
}

/// The pipeline's answer for one case; stored with the prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictionOutput {
    /// The packages found, with identity and status.
    pub packages: Vec<PackageRef>,
    /// Per-branch reports.
    pub branches: Branches,
    /// Per-label fused results for all 14 observations, keyed by snake_case
    /// name.
    pub fused: BTreeMap<String, FusedLabel>,
    /// Whether the case-level prediction is withheld: no modality was usable,
    /// no label has evidence, or a label with evidence passed its package's
    /// thresholds.
    pub abstain: bool,
    /// Human-readable reasons for `abstain` (one per abstaining label with
    /// evidence, e.g. "pneumonia: fused uncertainty 0.62 exceeds 0.50").
    pub abstain_reasons: Vec<String>,
    /// Milliseconds per step: `preprocess`, `backbone`, `mc_head`,
    /// `text_encoder`, `fusion`, `total` (decoding is the caller's).
    pub timings_ms: BTreeMap<String, f64>,
    /// False when neither branch could contribute for any label (the HTTP
    /// side answers 422 and stores nothing).
    pub modalities_available: bool,
}

/// Per observation, the zero-shot logit before temperature scaling and
/// whether its sentence passed `min_similarity` (`None`: no sentence).
pub type ZeroShotLogits = Vec<(Observation, Option<(f64, bool)>)>;
