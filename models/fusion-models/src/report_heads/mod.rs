//! Report heads: per-observation ensembles of small logistic heads on frozen
//! features of an analysed note, trained on a site's labelled reports — the
//! recipe of the field (frozen pretrained encoders, a small trained head on
//! top), here with the mention labeller's findings as features beside the
//! sentence embeddings of all-MiniLM-L6-v2.
//!
//! * [`features`]: the feature vector of one report for one observation;
//! * [`logistic`]: L2 logistic regression fitted by L-BFGS;
//! * [`train`]: bootstrap ensembles, out-of-bag temperature scaling,
//!   conformal q̂ and decision thresholds;
//! * [`ReportHeads`]: a loaded package's heads, turning a feature vector into
//!   a calibrated probability, the members' spread and an opinion;
//! * [`write_package`]: writes a trained package (manifest, weights in
//!   safetensors).
//!
//! Weights file: `heads.safetensors` with, per label k of the manifest (in
//! order), tensors `<observation>.weight` `[B, D]` and `<observation>.bias`
//! `[B]`, f32.

pub mod features;
pub mod logistic;
pub mod train;
mod write;

use std::collections::BTreeMap;

use candle_core::{DType, Device};
use fusion_schemas::Observation;
use serde::{Deserialize, Serialize};

use crate::calibration::{TemperatureScaler, sigmoid};
use crate::conformal::{ConformalCalibrator, PredictionSet};
use crate::evidence::{Evidence, EvidenceExt, sample_moments};
use crate::opinion::Opinion;
use crate::package::{InputSpec, ModelPackage, UncertaintyMethod};

pub use crate::package::training::{Prior, Training, TrainingLabel};
pub use features::FeatureSpec;
pub use train::{Calibration, HeadFigures, TrainOptions, TrainedHead, calibrate, train_head};
pub use write::{PackageDraft, check_writable, write_package};

/// Why a heads package could not be built.
#[derive(Debug, thiserror::Error)]
pub enum HeadsError {
    /// The package is not a report-heads package of a readable shape.
    #[error("{0}")]
    Package(String),
    /// The weights file is missing a tensor or has the wrong shape.
    #[error("heads.safetensors: {0}")]
    Weights(String),
}

/// One observation's loaded head.
#[derive(Debug, Clone, PartialEq)]
pub struct Head {
    /// The observation.
    pub observation: Observation,
    /// Member weights, `[B][D]`.
    pub weights: Vec<Vec<f64>>,
    /// Member intercepts, `[B]`.
    pub biases: Vec<f64>,
    /// Temperature of the mean logit.
    pub temperature: TemperatureScaler,
    /// Conformal threshold.
    pub conformal: Option<ConformalCalibrator>,
    /// Base rate a.
    pub base_rate: f64,
    /// Decision threshold on the calibrated probability.
    pub decision_threshold: f64,
}

/// What one head says about one report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeadOutput {
    /// Calibrated probability p = σ(z̄/T) of the members' mean logit z̄.
    pub probability: f64,
    /// The members' mean logit z̄ (before the temperature).
    pub logit: f64,
    /// Sample variance of the members' calibrated probabilities σ(zₖ/T).
    pub variance: f64,
    /// Members B.
    pub members: usize,
    /// Temperature T.
    pub temperature: f64,
    /// Decision threshold; `probability ≥ threshold` is the head's "present".
    pub decision_threshold: f64,
    /// The opinion (base rate a) whose projected probability is `probability`.
    pub opinion: Opinion,
    /// Its evidence.
    pub evidence: Evidence,
    /// Conformal set, where the head has a calibrator.
    pub prediction_set: Option<PredictionSet>,
}

/// A heads package, built once and shared (`Send + Sync`).
#[derive(Debug, Clone, PartialEq)]
pub struct ReportHeads {
    /// Feature layout.
    pub spec: FeatureSpec,
    /// Encoder package name.
    pub encoder: String,
    /// Encoder manifest SHA-256.
    pub encoder_manifest_sha256: String,
    /// Evidence cap.
    pub max_evidence: f64,
    /// Heads in the manifest's label order.
    pub heads: Vec<Head>,
    /// Base rates of every observation the package knows of (heads and
    /// priors).
    pub base_rates: BTreeMap<Observation, f64>,
}

impl ReportHeads {
    /// Builds the heads of a verified package.
    ///
    /// # Errors
    /// [`HeadsError`] when the manifest is not a report-heads manifest or the
    /// weights do not match it.
    pub fn from_package(package: &ModelPackage) -> Result<Self, HeadsError> {
        let manifest = package.manifest();
        let InputSpec::NoteFeatures(input) = &manifest.input else {
            return Err(HeadsError::Package(format!(
                "{} is not a report-heads package (input is not note_features)",
                manifest.name
            )));
        };
        let UncertaintyMethod::Ensemble(ensemble) = manifest.uncertainty else {
            return Err(HeadsError::Package(
                "uncertainty.method must be ensemble".to_owned(),
            ));
        };
        let spec = FeatureSpec {
            version: input.features_version,
            hash_buckets: input.hash_buckets,
        };
        let bytes = package
            .read_weights()
            .map_err(|e| HeadsError::Package(e.to_string()))?;
        let tensors = candle_core::safetensors::load_buffer(&bytes, &Device::Cpu)
            .map_err(|e| HeadsError::Weights(e.to_string()))?;
        let mut heads = Vec::with_capacity(manifest.labels.len());
        let mut base_rates = BTreeMap::new();
        for label in &manifest.labels {
            let name = label.observation.as_str();
            let weight = tensors
                .get(&format!("{name}.weight"))
                .ok_or_else(|| HeadsError::Weights(format!("no tensor `{name}.weight`")))?;
            let bias = tensors
                .get(&format!("{name}.bias"))
                .ok_or_else(|| HeadsError::Weights(format!("no tensor `{name}.bias`")))?;
            let weights: Vec<Vec<f64>> = weight
                .to_dtype(DType::F64)
                .and_then(|t| t.to_vec2::<f64>())
                .map_err(|e| HeadsError::Weights(format!("`{name}.weight`: {e}")))?;
            let biases: Vec<f64> = bias
                .to_dtype(DType::F64)
                .and_then(|t| t.to_vec1::<f64>())
                .map_err(|e| HeadsError::Weights(format!("`{name}.bias`: {e}")))?;
            if weights.len() != ensemble.members
                || biases.len() != ensemble.members
                || weights.iter().any(|w| w.len() != spec.width())
            {
                return Err(HeadsError::Weights(format!(
                    "`{name}`: expected [{}, {}] weights and [{}] biases (features_version {}, \
                     {} hash buckets)",
                    ensemble.members,
                    spec.width(),
                    ensemble.members,
                    spec.version,
                    spec.hash_buckets
                )));
            }
            // A NaN or infinite parameter would call every report present
            // (or fall back silently): refused like a wrong shape.
            if weights
                .iter()
                .flatten()
                .chain(&biases)
                .any(|v| !v.is_finite())
            {
                return Err(HeadsError::Weights(format!(
                    "`{name}`: a weight or bias is not a finite number"
                )));
            }
            let base_rate = label.base_rate.unwrap_or(crate::opinion::DEFAULT_BASE_RATE);
            base_rates.insert(label.observation, base_rate);
            heads.push(Head {
                observation: label.observation,
                weights,
                biases,
                temperature: label.calibration,
                conformal: label.conformal,
                base_rate,
                decision_threshold: label.decision_threshold.unwrap_or(0.5),
            });
        }
        for prior in manifest.training.iter().flat_map(|t| &t.priors) {
            base_rates
                .entry(prior.observation)
                .or_insert(prior.base_rate);
        }
        Ok(Self {
            spec,
            encoder: input.encoder.clone(),
            encoder_manifest_sha256: input.encoder_manifest_sha256.clone(),
            max_evidence: ensemble.max_evidence,
            heads,
            base_rates,
        })
    }

    /// The head of `observation`, if the package has one.
    #[must_use]
    pub fn head(&self, observation: Observation) -> Option<&Head> {
        self.heads.iter().find(|h| h.observation == observation)
    }

    /// The base rate of `observation` (0.5 when the package knows none).
    #[must_use]
    pub fn base_rate(&self, observation: Observation) -> f64 {
        self.base_rates
            .get(&observation)
            .copied()
            .unwrap_or(crate::opinion::DEFAULT_BASE_RATE)
    }
}

impl Head {
    /// Runs the head on one feature vector `x` (D values).
    ///
    /// # Errors
    /// An [`crate::opinion::OpinionError`] when the numbers are not finite
    /// (a corrupt weights file).
    pub fn predict(
        &self,
        x: &[f64],
        max_evidence: f64,
    ) -> Result<HeadOutput, crate::opinion::OpinionError> {
        let logits: Vec<f64> = self
            .weights
            .iter()
            .zip(&self.biases)
            .map(|(w, b)| w.iter().zip(x).map(|(a, b)| a * b).sum::<f64>() + b)
            .collect();
        let logit = logits.iter().sum::<f64>() / logits.len().max(1) as f64;
        let probability = self.temperature.probability(logit);
        let member_p: Vec<f64> = logits
            .iter()
            .map(|z| sigmoid(z / self.temperature.temperature()))
            .collect();
        let variance = sample_moments(&member_p).map_or(0.0, |m| m.variance);
        let (evidence, opinion) =
            Evidence::opinion_from_moments(probability, variance, self.base_rate, max_evidence)?;
        let prediction_set = self.conformal.and_then(|c| c.predict_set(probability).ok());
        Ok(HeadOutput {
            probability,
            logit,
            variance,
            members: logits.len(),
            temperature: self.temperature.temperature(),
            decision_threshold: self.decision_threshold,
            opinion,
            evidence,
            prediction_set,
        })
    }
}
