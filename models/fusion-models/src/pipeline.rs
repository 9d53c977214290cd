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
//!
//! The code follows the case: the input and output types (`types`),
//! loading the packages (`load`), the image branch (`image_branch`, with the
//! [`gate`]), the text branch (`text_branch`, with the zero-shot scoring of
//! [`text`]), fusion (`fusion`); [`calibrate`] fits the packages'
//! temperatures and conformal thresholds.

pub mod calibrate;
mod fusion;
pub mod gate;
mod image_branch;
mod load;
pub mod text;
mod text_branch;
mod types;

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use candle_core::Device;

use crate::evidence::TextEvidenceWeights;
use crate::package::{Manifest, ModelPackage, Observation, ZeroShot};
use crate::report_heads::ReportHeads;
use crate::text_encoder::{Embedding, TextEncoder};
use crate::xception::XceptionClassifier;

pub use types::{
    BranchOpinion, BranchReport, BranchStatus, Branches, CaseInput, FrameValues, FusedLabel,
    GateAttributes, HeadSource, ImageCandidate, MentionSource, NoteInput, PackageRef,
    PackageStatus, PredictionOutput, SkippedInput, ZeroShotLogits, ZeroShotSource,
};

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

#[cfg(test)]
mod tests {
    use std::path::Path;

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
}
