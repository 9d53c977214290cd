//! The image branch: the applicability gate picks an image, preprocessing
//! as the manifest says, the backbone once and T MC-dropout head passes,
//! then the gate's trust discount on each label's opinion.

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::time::Instant;

use super::gate::{self, GateDecision};
use super::{
    BranchOpinion, BranchReport, BranchStatus, FrameValues, GateAttributes, ImageCandidate,
    ImageModel, ImageNet, Pipeline, SkippedInput, ms, package_id,
};
use crate::evidence::{Evidence, EvidenceExt};
use crate::image_branch::{self, LabelPrediction, binary_logit};
use crate::package::{Manifest, Observation, OutputSpec, UncertaintyMethod};
use crate::preprocess::{Photometric, preprocess_radiograph};

impl Pipeline {
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

    pub(super) fn image_branch(&self, images: &[ImageCandidate]) -> BranchReport {
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
