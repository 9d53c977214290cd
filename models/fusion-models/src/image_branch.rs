//! The image branch's per-label opinions: Monte-Carlo dropout over the
//! classifier head (Gal & Ghahramani, ICML 2016) gives T samples of each
//! label's calibrated P(present); their mean and variance are matched to a
//! Beta distribution ([`Evidence::from_beta_moments`]) whose evidence is the
//! branch's subjective-logic opinion (Han et al., ICLR 2021).
//!
//! The backbone runs once per image; only the head's dropout is sampled, and
//! all T passes run as one `[T·N, 128]` matrix product. Dropout masks come
//! from a seeded SplitMix64 stream, so a call is deterministic given its
//! seed, and the same T masks are shared by every image of a batch, so an
//! image's result does not depend on what else was in the batch.

use candle_core::{Device, Tensor};

use crate::evidence::{Evidence, EvidenceExt, sample_moments};
use crate::opinion::{Opinion, OpinionError};
use crate::package::{
    LabelSpec, Manifest, McDropout, NoUncertainty, Observation, OutputSpec, UncertaintyMethod,
};
use crate::xception::{HIDDEN, XceptionClassifier};

/// Why the branch could not produce opinions.
#[derive(Debug, thiserror::Error)]
pub enum ImageBranchError {
    /// The manifest does not describe a classifier.
    #[error("package `{0}` has no class outputs to predict")]
    NotAClassifier(String),
    /// The model's outputs do not match the manifest's classes.
    #[error("model has {model} outputs, manifest lists {manifest} classes")]
    ClassMismatch {
        /// Outputs of the model.
        model: usize,
        /// Classes in the manifest.
        manifest: usize,
    },
    /// A tensor operation failed.
    #[error("candle: {0}")]
    Candle(#[from] candle_core::Error),
    /// A probability was not usable (e.g. NaN logits).
    #[error("opinion: {0}")]
    Opinion(#[from] OpinionError),
}

/// One label's image-branch result for one image.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelPrediction {
    /// The observation.
    pub observation: Observation,
    /// Calibrated P(present) with dropout off (Keras inference mode), in [0, 1].
    pub probability: f64,
    /// Mean of the T calibrated MC-dropout samples of P(present), in [0, 1]
    /// (equal to `probability` for method "none").
    pub mean: f64,
    /// Sample variance (divisor T − 1) of those samples, in [0, ¼]; 0 for
    /// method "none".
    pub variance: f64,
    /// Number of stochastic passes T (1 for method "none").
    pub passes: usize,
    /// Beta-matched evidence (e₊, e₋).
    pub evidence: Evidence,
    /// The branch's opinion for this label (base rate 0.5).
    pub opinion: Opinion,
}

/// A SplitMix64 generator (Steele, Lea & Flood, OOPSLA 2014): tiny, fast,
/// and fully determined by its seed, which is all dropout sampling needs.
#[derive(Debug, Clone)]
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1) with 53 random bits.
    fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1_u64 << 53) as f64)
    }
}

/// `count` dropout masks of width `width` as a tensor `[count, width]`:
/// each entry is 0 with probability `rate` and 1/(1 − `rate`) otherwise
/// (inverted dropout, as Keras scales at training time), drawn from a
/// SplitMix64 stream seeded with `seed` in row-major order.
///
/// # Errors
/// A candle error if the tensor cannot be built, or if `rate` ∉ [0, 1).
pub fn dropout_masks(
    count: usize,
    width: usize,
    rate: f64,
    seed: u64,
    device: &Device,
) -> candle_core::Result<Tensor> {
    if !(0.0..1.0).contains(&rate) {
        candle_core::bail!("dropout rate {rate} outside [0, 1)");
    }
    let keep = (1.0 / (1.0 - rate)) as f32;
    let mut rng = SplitMix64(seed);
    let data: Vec<f32> = (0..count * width)
        .map(|_| if rng.next_f64() < rate { 0.0 } else { keep })
        .collect();
    Tensor::from_vec(data, (count, width), device)
}

/// The binary logit of "class k present" from a row of logits: zₖ for a
/// sigmoid head; zₖ − log Σ_{j≠k} exp zⱼ for a softmax head, whose sigmoid
/// is softmax(z)ₖ (z₁ − z₀ with two classes). Computed in f64.
#[must_use]
pub fn binary_logit(logits: &[f32], k: usize, softmax: bool) -> f64 {
    let zk = logits.get(k).map_or(f64::NAN, |&z| f64::from(z));
    if !softmax {
        return zk;
    }
    let others = logits
        .iter()
        .enumerate()
        .filter(|&(j, _)| j != k)
        .map(|(_, &z)| f64::from(z));
    let max = others.clone().fold(f64::NEG_INFINITY, f64::max);
    if max == f64::NEG_INFINITY {
        return f64::INFINITY;
    }
    let lse = max + others.map(|z| (z - max).exp()).sum::<f64>().ln();
    zk - lse
}

/// Per-image, per-label predictions from backbone features `[N, 2048]`
/// (from [`XceptionClassifier::backbone_features`]), following the
/// manifest's labels, calibration and uncertainty method:
///
/// * `mc_dropout`: T passes of the head with dropout masks drawn from `seed`;
///   for each label the calibrated P(present) = σ(z/T_label) of each pass
///   ([`binary_logit`], [`crate::TemperatureScaler`]), their mean and sample
///   variance ([`sample_moments`]), then
///   [`Evidence::from_beta_moments`] with the manifest's `max_evidence`;
/// * `none`: one inference-mode pass, variance 0, evidence at the cap.
///
/// Returns `result[image][label]` in the manifest's label order.
///
/// # Errors
/// [`ImageBranchError::NotAClassifier`] for an embedding package,
/// [`ImageBranchError::ClassMismatch`] if the model and manifest disagree,
/// [`ImageBranchError::Candle`] for a wrong feature shape,
/// [`ImageBranchError::Opinion`] for non-finite logits.
pub fn predict(
    model: &XceptionClassifier,
    features: &Tensor,
    manifest: &Manifest,
    seed: u64,
) -> Result<Vec<Vec<LabelPrediction>>, ImageBranchError> {
    let softmax = match &manifest.output {
        OutputSpec::Softmax(_) => true,
        OutputSpec::Sigmoid(_) => false,
        OutputSpec::Embedding(_) => {
            return Err(ImageBranchError::NotAClassifier(manifest.name.clone()));
        }
    };
    let classes = manifest.output.classes().len();
    if classes != model.classes() {
        return Err(ImageBranchError::ClassMismatch {
            model: model.classes(),
            manifest: classes,
        });
    }
    let (n, _) = features.dims2()?;
    let hidden = model.head_hidden(features)?; // [N, 128]
    let deterministic = model.head_logits(&hidden)?.to_vec2::<f32>()?; // [N, K]
    let labels = &manifest.labels;

    let (passes, sampled, max_evidence) = match manifest.uncertainty {
        UncertaintyMethod::McDropout(McDropout {
            passes,
            rate,
            max_evidence,
            ..
        }) => {
            // Shared masks [T, 1, 128] broadcast over the N images.
            let masks = dropout_masks(passes, HIDDEN, rate, seed, model.device())?.unsqueeze(1)?;
            let dropped = hidden.unsqueeze(0)?.broadcast_mul(&masks)?; // [T, N, 128]
            let logits = model
                .head_logits(&dropped.reshape((passes * n, HIDDEN))?)?
                .to_vec2::<f32>()?; // [T·N, K], row t·N + i
            (passes, Some(logits), max_evidence)
        }
        UncertaintyMethod::None(NoUncertainty { max_evidence })
        | UncertaintyMethod::Ensemble(crate::package::EnsembleUncertainty {
            max_evidence, ..
        }) => (1, None, max_evidence),
    };

    let calibrated = |label: &LabelSpec, row: &[f32]| {
        label
            .calibration
            .probability(binary_logit(row, label.output, softmax))
    };
    let mut out = Vec::with_capacity(n);
    for (i, det_row) in deterministic.iter().enumerate() {
        let mut per_label = Vec::with_capacity(labels.len());
        for label in labels {
            let probability = calibrated(label, det_row);
            let (mean, variance) = match &sampled {
                Some(rows) => {
                    let samples: Vec<f64> = (0..passes)
                        .map(|t| calibrated(label, &rows[t * n + i]))
                        .collect();
                    let m = sample_moments(&samples)?;
                    (m.mean, m.variance)
                }
                None => (probability, 0.0),
            };
            let evidence = Evidence::from_beta_moments(mean, variance, max_evidence)?;
            per_label.push(LabelPrediction {
                observation: label.observation,
                probability,
                mean,
                variance,
                passes,
                evidence,
                opinion: evidence.to_opinion(),
            });
        }
        out.push(per_label);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_are_seeded_and_scaled() {
        let a = dropout_masks(20, 128, 0.3, 7, &Device::Cpu).unwrap();
        let b = dropout_masks(20, 128, 0.3, 7, &Device::Cpu).unwrap();
        let c = dropout_masks(20, 128, 0.3, 8, &Device::Cpu).unwrap();
        let (a, b, c) = (
            a.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            b.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
            c.flatten_all().unwrap().to_vec1::<f32>().unwrap(),
        );
        assert_eq!(a, b);
        assert_ne!(a, c);
        let keep = 1.0 / 0.7_f64;
        assert!(
            a.iter()
                .all(|&v| v == 0.0 || (f64::from(v) - keep).abs() < 1e-6)
        );
        let dropped = a.iter().filter(|&&v| v == 0.0).count() as f64 / a.len() as f64;
        assert!((dropped - 0.3).abs() < 0.03, "dropped fraction {dropped}");
        assert!(dropout_masks(1, 1, 1.0, 0, &Device::Cpu).is_err());
    }

    #[test]
    fn binary_logit_of_softmax() {
        // Two classes: z1 − z0, whose sigmoid is softmax(z)₁.
        let z = [1.269_762_f32, -1.595_5];
        let l = binary_logit(&z, 1, true);
        assert!((l - (f64::from(z[1]) - f64::from(z[0]))).abs() < 1e-12);
        let p = 1.0 / (1.0 + (-l).exp());
        let soft = f64::from(z[1]).exp() / (f64::from(z[0]).exp() + f64::from(z[1]).exp());
        assert!((p - soft).abs() < 1e-12);
        // Three classes.
        let z = [0.5_f32, 2.0, -1.0];
        let l = binary_logit(&z, 1, true);
        let e: Vec<f64> = z.iter().map(|&v| f64::from(v).exp()).collect();
        let soft = e[1] / e.iter().sum::<f64>();
        assert!((1.0 / (1.0 + (-l).exp()) - soft).abs() < 1e-12);
        assert_eq!(binary_logit(&z, 2, false), -1.0);
        assert!(binary_logit(&z, 5, false).is_nan());
    }
}
