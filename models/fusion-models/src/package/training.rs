//! The `[training]` record of a trained package's manifest: how it was
//! made (data set and map with their SHA-256, split sizes, settings) and the
//! figures measured per observation, out of bag on the training split and on
//! the validation split (written by `fusion train`, read with the manifest).

use fusion_schemas::Observation;
use serde::{Deserialize, Serialize};

use crate::calibration::{ECE_BINS, brier_score, expected_calibration_error};
use crate::conformal::ConformalCalibrator;
use crate::metrics::{Confusion, auroc, average_precision};

/// How a trained package was made (manifest `[training]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Training {
    /// The labelled data set's file name.
    pub data: String,
    /// Its SHA-256.
    pub data_sha256: String,
    /// The label map's name.
    pub map: String,
    /// The label map file's SHA-256.
    pub map_sha256: String,
    /// The split fitted on (`train`).
    pub split: String,
    /// Reports in that split.
    pub reports: usize,
    /// The split the `validation` figures are measured on, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_split: Option<String>,
    /// Reports in the validation split.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_reports: Option<usize>,
    /// Settings (seed, members, C grid, α).
    pub options: TrainOptions,
    /// Per observation: counts, the C chosen and figures.
    pub labels: Vec<TrainingLabel>,
    /// Base rates of observations without gold in the map (estimated, see
    /// `source`).
    #[serde(default)]
    pub priors: Vec<Prior>,
}

/// One observation's training record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingLabel {
    /// The observation.
    pub observation: Observation,
    /// Gold positives in the training split.
    pub positives: usize,
    /// Inverse regularisation strength kept.
    pub c: f64,
    /// Out-of-bag figures on the training split.
    pub out_of_bag: HeadFigures,
    /// Figures on the validation split (never fitted on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation: Option<HeadFigures>,
    /// The reliability diagram behind the validation ECE.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub validation_reliability: Option<crate::metrics::Reliability>,
    /// The same validation split through the service *without* this package
    /// (the labeller's rules and the encoder's zero-shot evidence; decision =
    /// the labeller): the "before" of the model card.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before: Option<HeadFigures>,
}

/// A base rate for an observation the heads do not predict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Prior {
    /// The observation.
    pub observation: Observation,
    /// The base rate a ∈ [0, 1].
    pub base_rate: f64,
    /// Where it comes from (e.g. "labeller positive rate on train; no gold").
    pub source: String,
}

/// Settings of a training run (written into the manifest).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainOptions {
    /// Ensemble members B per observation.
    pub members: usize,
    /// Inverse regularisation strengths tried, by OOB log-loss.
    pub c_grid: Vec<f64>,
    /// Seed of the resamples.
    pub seed: u64,
    /// Conformal miscoverage α (0.1: 90 % sets).
    pub alpha: f64,
    /// Fewest gold positives (and negatives) for a head; observations with
    /// fewer keep the rule-based text evidence.
    pub min_positives: usize,
}

impl Default for TrainOptions {
    fn default() -> Self {
        Self {
            members: 16,
            c_grid: vec![1.0, 3.0, 10.0],
            seed: 20_261_206,
            alpha: 0.1,
            min_positives: 5,
        }
    }
}

/// Figures of one head's probabilities against gold.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeadFigures {
    /// Reports scored.
    pub n: usize,
    /// Gold positives among them.
    pub positives: usize,
    /// AUROC (`None` when a class is absent).
    pub auroc: Option<f64>,
    /// Average precision (`None` without a positive).
    pub average_precision: Option<f64>,
    /// ECE, 15 equal-width bins.
    pub ece: f64,
    /// Brier score.
    pub brier: f64,
    /// Precision of p ≥ the decision threshold.
    pub precision: f64,
    /// Recall of p ≥ the decision threshold.
    pub recall: f64,
    /// F1 of p ≥ the decision threshold.
    pub f1: f64,
    /// Fraction of conformal sets holding the gold class.
    pub coverage: Option<f64>,
    /// Fraction of the gold positives' conformal sets holding "present"
    /// (`None` without a positive or a conformal threshold; absent in
    /// packages written before class-conditional calibration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub coverage_of_positives: Option<f64>,
}

impl HeadFigures {
    /// Measures `(p, gold)` pairs at `threshold`, with the conformal sets of
    /// `conformal` where given.
    #[must_use]
    pub fn measure(
        pairs: &[(f64, bool)],
        threshold: f64,
        conformal: Option<&ConformalCalibrator>,
    ) -> Self {
        let confusion = Confusion::of(pairs.iter().map(|&(p, y)| (p >= threshold, y)));
        let coverage_of = |pairs: &[&(f64, bool)]| {
            conformal.and_then(|c| {
                let covered = pairs
                    .iter()
                    .filter(|&&&(p, y)| {
                        c.predict_set(p).is_ok_and(|set| {
                            set.contains(if y {
                                crate::conformal::BinaryClass::Present
                            } else {
                                crate::conformal::BinaryClass::Absent
                            })
                        })
                    })
                    .count();
                (!pairs.is_empty()).then(|| covered as f64 / pairs.len() as f64)
            })
        };
        let all: Vec<&(f64, bool)> = pairs.iter().collect();
        let positives: Vec<&(f64, bool)> = pairs.iter().filter(|p| p.1).collect();
        let coverage = coverage_of(&all);
        let coverage_of_positives = coverage_of(&positives);
        Self {
            n: pairs.len(),
            positives: pairs.iter().filter(|p| p.1).count(),
            auroc: auroc(pairs),
            average_precision: average_precision(pairs),
            ece: expected_calibration_error(pairs, ECE_BINS).unwrap_or(f64::NAN),
            brier: brier_score(pairs).unwrap_or(f64::NAN),
            precision: confusion.precision(),
            recall: confusion.recall(),
            f1: confusion.f1(),
            coverage,
            coverage_of_positives,
        }
    }
}
