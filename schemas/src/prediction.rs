//! The stored shape of a prediction: the pipeline's answer for one case
//! (`fusion_models::Pipeline::predict`), kept by the store as typed JSON and
//! read back by the dashboard, the reports and monitoring. These serde types
//! are `schemas/prediction.schema.json`; the models' tests check that a
//! prediction validates against it.
//!
//! Maps keyed by observation use its snake_case name (`pneumonia`); fields
//! the schema marks optional are skipped when absent and default on reading,
//! every other field must be present.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::NoteLabel;
use crate::opinion::{Evidence, Opinion};

/// One of the two classes of a binary label. Serialised as `"present"` or
/// `"absent"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BinaryClass {
    /// The finding is present.
    Present,
    /// The finding is absent.
    Absent,
}

/// A conformal prediction set for a binary label: ∅, {present}, {absent} or
/// {present, absent}.
///
/// A singleton is a confident call at level 1 − α, the full set says the
/// model cannot decide at that level, and the empty set (possible only when
/// q̂ < 0.5, i.e. with a large α on well-separated scores) says neither class
/// conforms to the calibration data — callers should treat it like an
/// abstention, not as a call.
///
/// Serialised as a JSON list of classes, present first: `[]`, `["present"]`,
/// `["absent"]`, `["present", "absent"]`; a duplicate is refused on reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(try_from = "Vec<BinaryClass>", into = "Vec<BinaryClass>")]
pub struct PredictionSet {
    present: bool,
    absent: bool,
}

impl From<PredictionSet> for Vec<BinaryClass> {
    fn from(set: PredictionSet) -> Self {
        set.classes().collect()
    }
}

/// A prediction set that lists a class twice, refused on reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("a prediction set lists the class {0:?} twice")]
pub struct DuplicateClass(pub BinaryClass);

impl TryFrom<Vec<BinaryClass>> for PredictionSet {
    type Error = DuplicateClass;

    fn try_from(classes: Vec<BinaryClass>) -> Result<Self, Self::Error> {
        let mut set = Self::default();
        for class in classes {
            let slot = match class {
                BinaryClass::Present => &mut set.present,
                BinaryClass::Absent => &mut set.absent,
            };
            if *slot {
                return Err(DuplicateClass(class));
            }
            *slot = true;
        }
        Ok(set)
    }
}

impl PredictionSet {
    /// The set holding `present` and `absent` as asked.
    #[must_use]
    pub const fn new(present: bool, absent: bool) -> Self {
        Self { present, absent }
    }

    /// Whether `class` is in the set.
    #[must_use]
    pub const fn contains(&self, class: BinaryClass) -> bool {
        match class {
            BinaryClass::Present => self.present,
            BinaryClass::Absent => self.absent,
        }
    }

    /// Number of classes in the set, 0 to 2.
    #[must_use]
    pub fn len(&self) -> usize {
        usize::from(self.present) + usize::from(self.absent)
    }

    /// True for the empty set.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        !self.present && !self.absent
    }

    /// The classes in the set, present first.
    pub fn classes(&self) -> impl Iterator<Item = BinaryClass> + use<> {
        let present = self.present.then_some(BinaryClass::Present);
        let absent = self.absent.then_some(BinaryClass::Absent);
        present.into_iter().chain(absent)
    }
}

/// Why a label was abstained on: the threshold(s) passed and the observed
/// values. Serialised with a `"reason"` tag in snake_case, e.g.
/// `{"reason": "high_uncertainty", "uncertainty": 0.6, "max_uncertainty": 0.5}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum AbstainReason {
    /// u > `max_uncertainty`.
    HighUncertainty {
        /// The fused opinion's uncertainty u ∈ [0, 1].
        uncertainty: f64,
        /// The policy's threshold.
        max_uncertainty: f64,
    },
    /// C > `max_conflict` (or C is NaN).
    HighConflict {
        /// The conflict C given to the abstention policy (`fusion_models::AbstainPolicy::evaluate`).
        conflict: f64,
        /// The policy's threshold.
        max_conflict: f64,
    },
    /// Both thresholds were passed.
    HighUncertaintyAndConflict {
        /// The fused opinion's uncertainty u ∈ [0, 1].
        uncertainty: f64,
        /// The policy's uncertainty threshold.
        max_uncertainty: f64,
        /// The conflict C.
        conflict: f64,
        /// The policy's conflict threshold.
        max_conflict: f64,
    },
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
/// (`fusion_models::report_heads`).
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
    /// A report of a branch that contributed nothing: `status`, `reason`,
    /// and no opinions.
    #[must_use]
    pub fn empty(status: BranchStatus, reason: impl Into<String>) -> Self {
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

/// What went into a stored prediction: the study, the instances the image
/// branch could choose from and the notes the text branch read, as
/// identifiers. Stored beside the pipeline's answer (not part of it).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct PredictionInputs {
    /// Study Instance UID of the case's study, when it has one.
    pub study_instance_uid: Option<String>,
    /// SOP Instance UIDs of the candidate images, in the order given.
    pub instances: Vec<String>,
    /// Ids of the notes, oldest first.
    pub notes: Vec<String>,
}
