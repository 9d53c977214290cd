//! The prediction pipeline: one case (images with their DICOM header
//! attributes, clinical notes with their mention labels) in, per-label fused
//! opinions out, with every fallback reported rather than raised.
//!
//! * Image branch: the applicability gate ([`gate`]) picks the first image
//!   inside the image package's intended use (a trust-discounted one only
//!   when none is fully in scope); preprocessing as the manifest says, the
//!   backbone once, T MC-dropout head passes with the manifest's fixed seed
//!   (so a case always gives the same result), per-label temperature, Beta
//!   moment matching → opinion ([`crate::image_branch`]), then the gate's
//!   trust discount.
//! * Text branch: per label, the mention labeller's label of the chosen note
//!   → evidence through the package's [`TextEvidenceWeights`], combined by
//!   Dempster's rule with weak zero-shot evidence from MiniLM sentence
//!   embeddings ([`text`], [`crate::package::ZeroShot`]). With several notes
//!   (given oldest first), each label uses the latest note that mentions it
//!   (positive, negative or uncertain), else the latest note with text:
//!   notes about one patient are not independent (reports copy forward), so
//!   combining them by Dempster's rule would overcount; the newest statement
//!   reflects the current state.
//! * Fusion: reduced Dempster's rule image ⊕ text per label, the conflict C,
//!   abstention by the strictest policy of the packages that contributed,
//!   and a conformal prediction set where every contributing branch has a
//!   calibrator (the union of the branch sets, which keeps the coverage
//!   guarantee of each).
//!
//! A missing or broken package, an undecodable image, an empty note or a
//! failing model never fails the case: the branch reports its status and
//! reason, and contributes the vacuous opinion.

pub mod calibrate;
pub mod gate;
pub mod text;
mod text_branch;

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device};

use crate::abstain::{AbstainPolicy, AbstainReason};
use crate::calibration::TemperatureScaler;
use crate::conformal::{BinaryClass, PredictionSet};
use crate::evidence::{Evidence, EvidenceExt, TextEvidenceWeights};
use crate::image_branch::{self, LabelPrediction, binary_logit};
use crate::opinion::{Opinion, combine};
use crate::package::{
    self, Architecture, Manifest, Modality, ModelPackage, Observation, OutputSpec,
    UncertaintyMethod, ZeroShot,
};
use crate::preprocess::{Photometric, preprocess_radiograph};
use crate::report_heads::ReportHeads;
use crate::text_encoder::{Embedding, ForwardPass, TextEncoder};
use crate::xception::XceptionClassifier;

use gate::GateDecision;

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

pub use fusion_schemas::prediction::{
    BranchOpinion, BranchReport, BranchStatus, Branches, FusedLabel, HeadSource, MentionSource,
    PackageRef, PackageStatus, PredictionOutput, SkippedInput, ZeroShotSource,
};

/// Per observation, the zero-shot logit before temperature scaling and
/// whether its sentence passed `min_similarity` (`None`: no sentence).
pub type ZeroShotLogits = Vec<(Observation, Option<(f64, bool)>)>;

/// The image model a package runs.
enum ImageNet {
    Xception(Box<XceptionClassifier>),
    /// logit_k = weight_k · mean(input) + bias_k.
    MeanLogistic {
        weight: Vec<f32>,
        bias: Vec<f32>,
    },
}

struct ImageModel {
    package: ModelPackage,
    net: ImageNet,
    device: Device,
}

/// Prompt embeddings (present, absent) per observation.
type PromptEmbeddings = Vec<(Observation, Embedding, Embedding)>;

struct TextModel {
    package: ModelPackage,
    weights: TextEvidenceWeights,
    /// The sentence encoder, built when zero-shot is enabled or heads are
    /// installed.
    encoder: Option<TextEncoder>,
    /// Zero-shot settings and prompt embeddings, when enabled.
    zero_shot: Option<(ZeroShot, PromptEmbeddings)>,
    /// Trained report heads on this encoder, when installed.
    heads: Option<TextHeads>,
}

/// A loaded report-heads package.
struct TextHeads {
    package: ModelPackage,
    heads: ReportHeads,
}

/// The loaded packages and built models; load once at start-up and share
/// (`Send + Sync`; `predict` takes `&self`).
pub struct Pipeline {
    image: Result<ImageModel, String>,
    text: Result<TextModel, String>,
    packages: Vec<PackageRef>,
}

impl std::fmt::Debug for Pipeline {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pipeline")
            .field("packages", &self.packages)
            .finish_non_exhaustive()
    }
}

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

fn package_id(m: &Manifest) -> String {
    format!("{}@{}", m.name, m.version)
}

impl Pipeline {
    /// Loads every package under `dir` (each immediate subfolder with a
    /// `manifest.toml`; checksums verified) and builds its model on the
    /// device of [`crate::select_device`] (the CPU when that fails). The
    /// first valid package of each modality, by folder name, is used.
    ///
    /// Never fails: a missing folder or a missing, broken or unbuildable
    /// package leaves its branch reporting "model package not installed:
    /// <why>", and the package is listed with status `failed`.
    #[must_use]
    pub fn load(dir: &Path) -> Self {
        Self::load_with_text_pass(dir, None)
    }

    /// As [`Pipeline::load`], with the text encoder's forward pass chosen
    /// (`None`: [`ForwardPass::default_for`] the device). Used to compare
    /// predictions of the service's pass with the `BertModel` reference.
    #[must_use]
    pub fn load_with_text_pass(dir: &Path, text_pass: Option<ForwardPass>) -> Self {
        match package::list(dir) {
            Ok(listing) => Self::from_listing(listing, dir, text_pass),
            Err(e) => {
                let why = format!("cannot list {}: {e}", dir.display());
                Self {
                    image: Err(why.clone()),
                    text: Err(why),
                    packages: Vec::new(),
                }
            }
        }
    }

    /// Loads the single package in `package_dir` (as [`Pipeline::load`]
    /// does for each package of a folder); the other branch reports no
    /// package. Used by `fusion calibrate`.
    #[must_use]
    pub fn load_package(package_dir: &Path) -> Self {
        let listing = vec![package::PackageListing {
            dir: package_dir.to_path_buf(),
            manifest: ModelPackage::read_manifest(package_dir),
        }];
        Self::from_listing(listing, package_dir, None)
    }

    fn from_listing(
        listing: Vec<package::PackageListing>,
        dir: &Path,
        text_pass: Option<ForwardPass>,
    ) -> Self {
        let device = crate::select_device().unwrap_or(Device::Cpu);
        let text_pass = text_pass.unwrap_or_else(|| ForwardPass::default_for(&device));
        let mut packages = Vec::new();
        let mut image: Result<ImageModel, String> =
            Err(format!("no image package under {}", dir.display()));
        let mut text: Result<TextModel, String> =
            Err(format!("no text package under {}", dir.display()));
        let mut heads_found = Vec::new();
        for entry in listing {
            let folder = entry
                .dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let manifest = match entry.manifest {
                Ok(m) => m,
                Err(e) => {
                    packages.push(PackageRef {
                        name: folder,
                        version: String::new(),
                        modality: "unknown".to_owned(),
                        manifest_sha256: None,
                        status: PackageStatus::Failed,
                        reason: Some(e.to_string()),
                    });
                    continue;
                }
            };
            let mut reference = PackageRef {
                name: manifest.name.clone(),
                version: manifest.version.clone(),
                modality: manifest.modality.to_string(),
                manifest_sha256: None,
                status: PackageStatus::Failed,
                reason: None,
            };
            if manifest.architecture == Architecture::ReportHeads {
                // Heads attach to their encoder package, loaded in this loop.
                heads_found.push((entry.dir, manifest, packages.len()));
                packages.push(reference);
                continue;
            }
            let slot_taken = match manifest.modality {
                Modality::Image => image
                    .as_ref()
                    .ok()
                    .map(|m| package_id(m.package.manifest())),
                Modality::Text => text.as_ref().ok().map(|m| package_id(m.package.manifest())),
            };
            if let Some(active) = slot_taken {
                reference.status = PackageStatus::Ignored;
                reference.reason = Some(format!(
                    "another {} package is in use: {active}",
                    manifest.modality
                ));
                packages.push(reference);
                continue;
            }
            let built = ModelPackage::load(&entry.dir)
                .map_err(|e| e.to_string())
                .and_then(|pkg| {
                    reference.manifest_sha256 = Some(pkg.manifest_sha256().to_owned());
                    match manifest.modality {
                        Modality::Image => build_image(pkg, &device).map(|m| image = Ok(m)),
                        Modality::Text => build_text(pkg, &device, text_pass).map(|m| text = Ok(m)),
                    }
                });
            match built {
                Ok(()) => reference.status = PackageStatus::Loaded,
                Err(why) => {
                    let why = format!("{}: {why}", manifest.name);
                    match manifest.modality {
                        Modality::Image => image = Err(why.clone()),
                        Modality::Text => text = Err(why.clone()),
                    }
                    reference.manifest_sha256 = None;
                    reference.reason = Some(why);
                }
            }
            packages.push(reference);
        }
        for (heads_dir, manifest, index) in heads_found {
            let reference = &mut packages[index];
            match attach_heads(&mut text, &heads_dir, &manifest, &device, text_pass) {
                Ok(sha) => {
                    reference.status = PackageStatus::Loaded;
                    reference.manifest_sha256 = Some(sha);
                }
                Err((status, why)) => {
                    reference.status = status;
                    reference.reason = Some(why);
                }
            }
        }
        Self {
            image,
            text,
            packages,
        }
    }

    /// The packages found by [`Pipeline::load`]: name, version, modality,
    /// manifest SHA-256 and status (loaded, failed with the reason, or
    /// ignored).
    #[must_use]
    pub fn packages(&self) -> Vec<PackageRef> {
        self.packages.clone()
    }

    /// Runs both branches and fuses them. Never panics and never fails on
    /// bad input: every problem is reported in the output (branch status and
    /// reason, skipped inputs, per-label abstention).
    #[must_use]
    pub fn predict(&self, input: &CaseInput) -> PredictionOutput {
        let start = Instant::now();
        let image = guarded("image", || self.image_branch(&input.images));
        let text = guarded("text", || self.text_branch(&input.notes));
        let fusion_start = Instant::now();
        let mut out = self.fuse(image, text);
        let mut timings = BTreeMap::new();
        for report in [&out.branches.image, &out.branches.text] {
            for (k, v) in &report.timings_ms {
                timings.insert(k.clone(), *v);
            }
        }
        timings.insert("fusion".to_owned(), ms(fusion_start));
        timings.insert("total".to_owned(), ms(start));
        out.timings_ms = timings;
        out
    }

    /// The image model's uncalibrated binary logit per label (dropout off,
    /// temperature 1) for one frame with the given Photometric
    /// Interpretation (`MONOCHROME1` or `MONOCHROME2`), in the manifest's
    /// label order: what `fusion calibrate` fits temperatures on. The
    /// applicability gate is not applied.
    ///
    /// # Errors
    /// A message when there is no image package, or the frame cannot be
    /// preprocessed or run.
    pub fn image_logits(
        &self,
        frame: &FrameValues,
        photometric_interpretation: &str,
    ) -> Result<Vec<(Observation, f64)>, String> {
        let model = self
            .image
            .as_ref()
            .map_err(|why| format!("model package not installed: {why}"))?;
        let attrs = GateAttributes {
            photometric_interpretation: Some(photometric_interpretation.to_owned()),
            ..GateAttributes::default()
        };
        let manifest = model.package.manifest();
        let softmax = matches!(manifest.output, OutputSpec::Softmax(_));
        let logits = catch_unwind(AssertUnwindSafe(|| image_logit_row(model, &attrs, frame)))
            .map_err(|_| "the image model failed unexpectedly".to_owned())??;
        Ok(manifest
            .labels
            .iter()
            .map(|l| (l.observation, binary_logit(&logits, l.output, softmax)))
            .collect())
    }

    /// The zero-shot logit z = scale · (cos(s, present) − cos(s, absent))
    /// per observation (CheXpert order) on the note's most relevant sentence,
    /// before temperature scaling, with whether that sentence passed
    /// `min_similarity`: what `fusion calibrate` fits zero-shot temperatures
    /// on. `None` for a note without sentences.
    ///
    /// # Errors
    /// A message when there is no text package, zero-shot is disabled, or
    /// the encoder fails.
    pub fn zero_shot_logits(&self, note: &str) -> Result<ZeroShotLogits, String> {
        let model = self
            .text
            .as_ref()
            .map_err(|why| format!("model package not installed: {why}"))?;
        let ((spec, prompts), Some(encoder)) = (
            model
                .zero_shot
                .as_ref()
                .ok_or("the text package has zero-shot evidence disabled")?,
            &model.encoder,
        ) else {
            return Err("the text package has zero-shot evidence disabled".to_owned());
        };
        let (sentences, _) = text::sentences(note);
        let emb = encoder.embed(&sentences).map_err(|e| e.to_string())?;
        prompts
            .iter()
            .map(|(o, present, absent)| {
                text::score(&emb, present, absent, spec, &TemperatureScaler::default())
                    .map(|s| (*o, s.map(|s| (s.logit, s.relevant))))
                    .map_err(|e| e.to_string())
            })
            .collect()
    }

    fn image_branch(&self, images: &[ImageCandidate]) -> BranchReport {
        let model = match &self.image {
            Ok(m) => m,
            Err(why) if images.is_empty() => {
                return BranchReport::empty(
                    BranchStatus::Missing,
                    format!("no image in the case (and model package not installed: {why})"),
                );
            }
            Err(why) => {
                return BranchReport::empty(
                    BranchStatus::NoPackage,
                    format!("model package not installed: {why}"),
                );
            }
        };
        let manifest = model.package.manifest();
        let mut report = BranchReport::empty(BranchStatus::Missing, "no image in the case");
        report.package = Some(package_id(manifest));
        if images.is_empty() {
            return report;
        }
        // Rank: in scope first, then discounted; keep the caller's order
        // within each group.
        let mut in_scope = Vec::new();
        let mut discounted = Vec::new();
        let mut not_applicable = Vec::new();
        let mut undecodable = Vec::new();
        for candidate in images {
            let decision = gate::evaluate(&candidate.attributes, &manifest.intended_use);
            match (&candidate.pixels, decision) {
                (_, GateDecision::NotApplicable { reason }) => {
                    not_applicable.push((candidate.sop_instance_uid.clone(), reason));
                }
                (Err(e), _) => undecodable.push((
                    candidate.sop_instance_uid.clone(),
                    format!("pixel data could not be decoded: {e}"),
                )),
                (Ok(_), GateDecision::Applicable { notes }) => {
                    in_scope.push((candidate, 1.0, None, notes));
                }
                (
                    Ok(_),
                    GateDecision::Discounted {
                        trust,
                        reason,
                        notes,
                    },
                ) => discounted.push((candidate, trust, Some(reason), notes)),
            }
        }
        let mut skipped: Vec<SkippedInput> = Vec::new();
        let mut chosen = None;
        for (candidate, trust, reason, notes) in in_scope.into_iter().chain(discounted) {
            if chosen.is_some() {
                skipped.push(SkippedInput {
                    id: candidate.sop_instance_uid.clone(),
                    reason: "another image of the case was used".to_owned(),
                });
                continue;
            }
            let Ok(frame) = &candidate.pixels else {
                continue;
            };
            match run_image(model, &candidate.attributes, frame, &mut report.timings_ms) {
                Ok(predictions) => chosen = Some((candidate, trust, reason, notes, predictions)),
                Err(why) => skipped.push(SkippedInput {
                    id: candidate.sop_instance_uid.clone(),
                    reason: why,
                }),
            }
        }
        for (id, reason) in not_applicable.iter().chain(&undecodable) {
            skipped.push(SkippedInput {
                id: id.clone(),
                reason: reason.clone(),
            });
        }
        let Some((candidate, trust, reason, notes, predictions)) = chosen else {
            // Nothing usable: say why, preferring "not applicable" (the input
            // was fine, the model is not for it).
            let (status, reason) = if let Some((_, r)) = not_applicable.first() {
                (BranchStatus::NotApplicable, r.clone())
            } else {
                (
                    BranchStatus::Unusable,
                    skipped
                        .first()
                        .map_or_else(|| "no usable image".to_owned(), |s| s.reason.clone()),
                )
            };
            report.status = status;
            report.reason = Some(if skipped.len() > 1 {
                format!(
                    "{reason} (and {} other image(s) not usable)",
                    skipped.len() - 1
                )
            } else {
                reason
            });
            report.skipped = skipped;
            return report;
        };
        report.instance = Some(candidate.sop_instance_uid.clone());
        report.skipped = skipped;
        report.status = if trust < 1.0 {
            BranchStatus::Discounted
        } else {
            BranchStatus::Used
        };
        report.trust = (trust < 1.0).then_some(trust);
        let mut reasons: Vec<String> = reason.into_iter().collect();
        reasons.extend(notes);
        report.reason = (!reasons.is_empty()).then(|| reasons.join("; "));
        for (label, p) in manifest.labels.iter().zip(predictions) {
            // The label's prior (the report heads' prevalence where
            // installed), so the branch reports the opinion it is fused with.
            let prior = self.base_rate(p.observation);
            let opinion = match p
                .opinion
                .discount(trust)
                .and_then(|o| o.with_base_rate(prior))
            {
                Ok(o) => o,
                Err(e) => {
                    report.reason = Some(format!("trust discount failed: {e}"));
                    continue;
                }
            };
            let prediction_set = label
                .conformal
                .and_then(|c| c.predict_set(p.probability).ok());
            report.opinions.insert(
                p.observation.as_str().to_owned(),
                BranchOpinion {
                    opinion,
                    probability: p.probability,
                    mean: Some(p.mean),
                    variance: Some(p.variance),
                    passes: Some(p.passes),
                    evidence: p.evidence,
                    trust: (trust < 1.0).then_some(trust),
                    mention: None,
                    zero_shot: None,
                    prediction_set,
                    head: None,
                },
            );
        }
        report
    }

    /// The prior of `observation` that every opinion about it is fused
    /// with: the report-heads package's base rate (the observation's
    /// prevalence in its training data) where one is installed, else 0.5.
    #[must_use]
    pub fn base_rate(&self, observation: Observation) -> f64 {
        self.text
            .as_ref()
            .ok()
            .and_then(|m| m.heads.as_ref())
            .map_or(crate::opinion::DEFAULT_BASE_RATE, |h| {
                h.heads.base_rate(observation)
            })
    }

    fn policy_of(&self, modality: Modality) -> Option<AbstainPolicy> {
        match modality {
            Modality::Image => self
                .image
                .as_ref()
                .ok()
                .map(|m| m.package.manifest().abstain),
            Modality::Text => self
                .text
                .as_ref()
                .ok()
                .map(|m| m.package.manifest().abstain),
        }
    }

    fn fuse(&self, image: BranchReport, text: BranchReport) -> PredictionOutput {
        let strictest = |policies: &[AbstainPolicy]| -> AbstainPolicy {
            policies
                .iter()
                .copied()
                .reduce(|a, b| {
                    AbstainPolicy::new(
                        a.max_uncertainty().min(b.max_uncertainty()),
                        a.max_conflict().min(b.max_conflict()),
                    )
                    .unwrap_or(a)
                })
                .unwrap_or_default()
        };
        let loaded: Vec<AbstainPolicy> = [Modality::Image, Modality::Text]
            .into_iter()
            .filter_map(|m| self.policy_of(m))
            .collect();
        let modalities_available = image.status.contributed() || text.status.contributed();
        let mut fused = BTreeMap::new();
        let mut abstain_reasons = Vec::new();
        let mut any_evidence = false;
        for observation in Observation::ALL {
            let key = observation.as_str();
            let mut sources = Vec::new();
            let mut policies = Vec::new();
            let mut sets = Vec::new();
            let mut pick = |name: &str, modality: Modality, report: &BranchReport| {
                let o = report.opinions.get(key)?;
                if o.opinion.is_vacuous() {
                    return None;
                }
                sources.push(name.to_owned());
                policies.extend(self.policy_of(modality));
                sets.push(o.prediction_set);
                Some(o.opinion)
            };
            // Every opinion about a label shares its prior: the heads
            // package's base rate where it has one, else 0.5.
            let prior = self.base_rate(observation);
            let rebase = |o: Opinion| o.with_base_rate(prior).unwrap_or(o);
            let left = rebase(pick("image", Modality::Image, &image).unwrap_or_default());
            let right = rebase(pick("text", Modality::Text, &text).unwrap_or_default());
            let (opinion, conflict) = match combine(&left, &right) {
                Ok(c) => (c.opinion, c.conflict),
                Err(_) => (Opinion::vacuous(), 1.0),
            };
            let policy = if policies.is_empty() {
                strictest(&loaded)
            } else {
                strictest(&policies)
            };
            let abstain = policy.evaluate(&opinion, conflict);
            let prediction_set = if sets.is_empty() {
                None
            } else {
                sets.iter()
                    .try_fold(None, |acc: Option<PredictionSet>, s| {
                        let s = (*s)?;
                        Some(Some(match acc {
                            None => s,
                            Some(a) => union(a, s),
                        }))
                    })
                    .flatten()
            };
            if !sources.is_empty() {
                any_evidence = true;
                if let Some(reason) = &abstain {
                    abstain_reasons.push(format!("{key}: {}", describe(reason)));
                }
            }
            fused.insert(
                key.to_owned(),
                FusedLabel {
                    opinion,
                    conflict,
                    prediction_set,
                    sources,
                    abstain,
                },
            );
        }
        if !modalities_available {
            abstain_reasons.insert(
                0,
                format!(
                    "no usable modality: image {}, text {}",
                    status_text(&image),
                    status_text(&text)
                ),
            );
        } else if !any_evidence {
            abstain_reasons.insert(0, "no label has evidence from either branch".to_owned());
        }
        PredictionOutput {
            packages: self.packages(),
            branches: Branches { image, text },
            fused,
            abstain: !abstain_reasons.is_empty(),
            abstain_reasons,
            timings_ms: BTreeMap::new(),
            modalities_available,
        }
    }
}

fn status_text(r: &BranchReport) -> String {
    let status = serde_json::to_value(r.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    match &r.reason {
        Some(reason) => format!("{status} ({reason})"),
        None => status,
    }
}

fn describe(reason: &AbstainReason) -> String {
    match *reason {
        AbstainReason::HighUncertainty {
            uncertainty,
            max_uncertainty,
        } => format!("fused uncertainty {uncertainty:.2} exceeds {max_uncertainty:.2}"),
        AbstainReason::HighConflict {
            conflict,
            max_conflict,
        } => format!("conflict between image and text {conflict:.2} exceeds {max_conflict:.2}"),
        AbstainReason::HighUncertaintyAndConflict {
            uncertainty,
            max_uncertainty,
            conflict,
            max_conflict,
        } => format!(
            "fused uncertainty {uncertainty:.2} exceeds {max_uncertainty:.2} and conflict \
             {conflict:.2} exceeds {max_conflict:.2}"
        ),
    }
}

fn union(a: PredictionSet, b: PredictionSet) -> PredictionSet {
    let classes: Vec<BinaryClass> = [BinaryClass::Present, BinaryClass::Absent]
        .into_iter()
        .filter(|c| a.contains(*c) || b.contains(*c))
        .collect();
    PredictionSet::try_from(classes).unwrap_or(a)
}

fn zero_shot_calibration(spec: &ZeroShot, observation: Observation) -> TemperatureScaler {
    spec.labels
        .iter()
        .find(|l| l.observation == observation)
        .map(|l| l.calibration)
        .unwrap_or_default()
}

/// Runs `f`, turning a panic inside a model into an "unusable" report.
fn guarded(branch: &str, f: impl FnOnce() -> BranchReport) -> BranchReport {
    catch_unwind(AssertUnwindSafe(f)).unwrap_or_else(|_| {
        BranchReport::empty(
            BranchStatus::Unusable,
            format!("the {branch} model failed unexpectedly on this input"),
        )
    })
}

fn build_image(package: ModelPackage, device: &Device) -> Result<ImageModel, String> {
    let net = match package.manifest().architecture {
        Architecture::Xception => ImageNet::Xception(Box::new(
            XceptionClassifier::from_package(&package, device).map_err(|e| e.to_string())?,
        )),
        Architecture::MeanLogistic => {
            let (weight, bias) = load_mean_logistic(&package)?;
            ImageNet::MeanLogistic { weight, bias }
        }
        Architecture::Bert | Architecture::ReportHeads => {
            return Err("a text package cannot read images".to_owned());
        }
    };
    Ok(ImageModel {
        package,
        net,
        device: device.clone(),
    })
}

/// Reads the `weight` `[K]` and `bias` `[K]` tensors of a mean-logistic
/// package, K = the manifest's class count.
fn load_mean_logistic(package: &ModelPackage) -> Result<(Vec<f32>, Vec<f32>), String> {
    let bytes = package.read_weights().map_err(|e| e.to_string())?;
    let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
        .map_err(|e| format!("weights: {e}"))?;
    let classes = package.manifest().output.classes().len();
    let read = |name: &str| -> Result<Vec<f32>, String> {
        let t = tensors
            .get(name)
            .ok_or_else(|| format!("weights: no tensor `{name}`"))?;
        let v = t
            .to_dtype(DType::F32)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>())
            .map_err(|e| format!("weights: `{name}`: {e}"))?;
        if v.len() == classes {
            Ok(v)
        } else {
            Err(format!(
                "weights: `{name}` has {} values for {classes} classes",
                v.len()
            ))
        }
    };
    Ok((read("weight")?, read("bias")?))
}

fn build_text(
    package: ModelPackage,
    device: &Device,
    pass: ForwardPass,
) -> Result<TextModel, String> {
    let manifest = package.manifest();
    let weights = manifest.text_evidence.unwrap_or_default();
    if manifest.architecture != Architecture::Bert {
        return Err("a report-heads package needs its encoder package beside it".to_owned());
    }
    let mut encoder = None;
    let zero_shot = match &manifest.zero_shot {
        Some(spec) if spec.enabled => {
            let built = TextEncoder::from_package_with(&package, device, pass)
                .map_err(|e| e.to_string())?;
            let encoder = encoder.insert(built);
            let texts: Vec<&str> = Observation::ALL
                .iter()
                .flat_map(|o| {
                    let (p, a) = text::prompts(*o);
                    [p, a]
                })
                .collect();
            let emb = encoder.embed(&texts).map_err(|e| e.to_string())?;
            let prompts = Observation::ALL
                .iter()
                .zip(emb.chunks_exact(2))
                .map(|(o, pair)| (*o, pair[0], pair[1]))
                .collect();
            Some((spec.clone(), prompts))
        }
        _ => None,
    };
    Ok(TextModel {
        package,
        weights,
        encoder,
        zero_shot,
        heads: None,
    })
}

/// Attaches a report-heads package to the loaded text model when it names
/// that model's encoder (name and manifest SHA-256); builds the encoder when
/// zero-shot had not. Returns the heads manifest's SHA-256, or the status
/// (ignored, failed) and why.
fn attach_heads(
    text: &mut Result<TextModel, String>,
    dir: &Path,
    manifest: &Manifest,
    device: &Device,
    pass: ForwardPass,
) -> Result<String, (PackageStatus, String)> {
    let failed = |why: String| (PackageStatus::Failed, format!("{}: {why}", manifest.name));
    let crate::package::InputSpec::NoteFeatures(input) = &manifest.input else {
        return Err(failed("not a note-features package".to_owned()));
    };
    let model = text.as_mut().map_err(|why| {
        failed(format!(
            "its encoder `{}` is not loaded ({why})",
            input.encoder
        ))
    })?;
    if let Some(active) = &model.heads {
        return Err((
            PackageStatus::Ignored,
            format!(
                "another report-heads package is in use: {}",
                package_id(active.package.manifest())
            ),
        ));
    }
    let encoder = model.package.manifest();
    if encoder.name != input.encoder
        || model.package.manifest_sha256() != input.encoder_manifest_sha256
    {
        return Err(failed(format!(
            "trained on encoder `{}` (manifest {}), but the loaded text package is `{}` (manifest {})",
            input.encoder,
            input.encoder_manifest_sha256,
            encoder.name,
            model.package.manifest_sha256()
        )));
    }
    let package = ModelPackage::load(dir).map_err(|e| failed(e.to_string()))?;
    let heads = ReportHeads::from_package(&package).map_err(|e| failed(e.to_string()))?;
    if model.encoder.is_none() {
        let built = TextEncoder::from_package_with(&model.package, device, pass)
            .map_err(|e| failed(e.to_string()))?;
        model.encoder = Some(built);
    }
    let sha = package.manifest_sha256().to_owned();
    model.heads = Some(TextHeads { package, heads });
    Ok(sha)
}

/// The photometric interpretation the preprocessing needs.
fn photometric(attrs: &GateAttributes) -> Result<Photometric, String> {
    match attrs
        .photometric_interpretation
        .as_deref()
        .map(|s| s.trim_matches([' ', '\0']).to_ascii_uppercase())
        .as_deref()
    {
        Some("MONOCHROME1") => Ok(Photometric::Monochrome1),
        Some("MONOCHROME2") => Ok(Photometric::Monochrome2),
        Some(other) => Err(format!(
            "Photometric Interpretation {other} is not greyscale; the image model reads \
             MONOCHROME1 or MONOCHROME2"
        )),
        None => Err("Photometric Interpretation is not recorded".to_owned()),
    }
}

/// Preprocesses one frame as the manifest says: tensor `[1, C, H, W]`.
/// Adds the `preprocess` timing.
fn preprocess_frame(
    model: &ImageModel,
    attrs: &GateAttributes,
    frame: &FrameValues,
    timings: &mut BTreeMap<String, f64>,
) -> Result<candle_core::Tensor, String> {
    let manifest = model.package.manifest();
    let photometric = photometric(attrs)?;
    let spec = manifest
        .preprocessing
        .as_ref()
        .ok_or("the package has no preprocessing section")?;
    let t = Instant::now();
    let (_, x) = preprocess_radiograph(
        &frame.values,
        frame.rows as usize,
        frame.columns as usize,
        photometric,
        spec,
        &manifest.input,
        &model.device,
    )
    .map_err(|e| format!("preprocessing failed: {e}"))?;
    timings.insert("preprocess".to_owned(), ms(t));
    Ok(x)
}

/// Preprocesses one frame and runs the image model: per-label predictions in
/// the manifest's label order. Adds `preprocess`, `backbone` and `mc_head`
/// timings.
fn run_image(
    model: &ImageModel,
    attrs: &GateAttributes,
    frame: &FrameValues,
    timings: &mut BTreeMap<String, f64>,
) -> Result<Vec<LabelPrediction>, String> {
    let x = preprocess_frame(model, attrs, frame, timings)?;
    let manifest = model.package.manifest();
    match &model.net {
        ImageNet::Xception(net) => {
            let t = Instant::now();
            let features = net
                .backbone_features(&x)
                .map_err(|e| format!("image model failed: {e}"))?;
            timings.insert("backbone".to_owned(), ms(t));
            let t = Instant::now();
            let seed = match manifest.uncertainty {
                UncertaintyMethod::McDropout(mc) => mc.seed,
                UncertaintyMethod::None(_) | UncertaintyMethod::Ensemble(_) => 0,
            };
            let mut per_image = image_branch::predict(net, &features, manifest, seed)
                .map_err(|e| format!("image model failed: {e}"))?;
            timings.insert("mc_head".to_owned(), ms(t));
            per_image
                .pop()
                .ok_or_else(|| "image model returned no result".to_owned())
        }
        ImageNet::MeanLogistic { weight, bias } => {
            let t = Instant::now();
            let mean = x
                .mean_all()
                .and_then(|m| m.to_scalar::<f32>())
                .map_err(|e| format!("image model failed: {e}"))?;
            let logits: Vec<f32> = weight.iter().zip(bias).map(|(w, b)| w * mean + b).collect();
            timings.insert("backbone".to_owned(), ms(t));
            mean_logistic_predictions(manifest, &logits)
        }
    }
}

/// Inference-mode logits `[K]` of one frame (no dropout).
fn image_logit_row(
    model: &ImageModel,
    attrs: &GateAttributes,
    frame: &FrameValues,
) -> Result<Vec<f32>, String> {
    let mut timings = BTreeMap::new();
    let x = preprocess_frame(model, attrs, frame, &mut timings)?;
    let row = match &model.net {
        ImageNet::Xception(net) => net
            .forward(&x)
            .and_then(|t| t.flatten_all())
            .and_then(|t| t.to_vec1::<f32>()),
        ImageNet::MeanLogistic { weight, bias } => x
            .mean_all()
            .and_then(|m| m.to_scalar::<f32>())
            .map(|mean| weight.iter().zip(bias).map(|(w, b)| w * mean + b).collect()),
    };
    row.map_err(|e| format!("image model failed: {e}"))
}

/// Deterministic predictions from one row of logits: variance 0, so the
/// evidence is the manifest's cap (`max_evidence`) split by p.
fn mean_logistic_predictions(
    manifest: &Manifest,
    logits: &[f32],
) -> Result<Vec<LabelPrediction>, String> {
    let softmax = matches!(manifest.output, OutputSpec::Softmax(_));
    let cap = manifest.uncertainty.max_evidence();
    manifest
        .labels
        .iter()
        .map(|label| {
            let p = label
                .calibration
                .probability(binary_logit(logits, label.output, softmax));
            let evidence =
                Evidence::from_beta_moments(p, 0.0, cap).map_err(|e| format!("opinion: {e}"))?;
            Ok(LabelPrediction {
                observation: label.observation,
                probability: p,
                mean: p,
                variance: 0.0,
                passes: 1,
                evidence,
                opinion: evidence.to_opinion(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pipeline_is_shareable() {
        fn shareable<T: Send + Sync>() {}
        shareable::<Pipeline>();
    }

    #[test]
    fn missing_folder_reports_no_package() {
        let p = Pipeline::load(Path::new("/nonexistent/packages"));
        assert!(p.packages().is_empty());
        let out = p.predict(&CaseInput {
            images: vec![],
            notes: vec![NoteInput {
                note_id: "n1".into(),
                text: "No effusion.".into(),
                labels: BTreeMap::new(),
                excluded: None,
                analysis: None,
            }],
        });
        assert_eq!(out.branches.image.status, BranchStatus::Missing);
        assert_eq!(out.branches.text.status, BranchStatus::NoPackage);
        assert!(
            out.branches
                .text
                .reason
                .as_deref()
                .is_some_and(|r| r.starts_with("model package not installed: "))
        );
        assert!(!out.modalities_available);
        assert!(out.abstain);
        assert_eq!(out.fused.len(), 14);
    }

    #[test]
    fn union_of_sets() {
        let p = PredictionSet::try_from(vec![BinaryClass::Present]).unwrap();
        let a = PredictionSet::try_from(vec![BinaryClass::Absent]).unwrap();
        let u = union(p, a);
        assert!(u.contains(BinaryClass::Present) && u.contains(BinaryClass::Absent));
    }
}
