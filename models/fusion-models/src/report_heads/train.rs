//! Training one observation's head on a site's labelled reports: an ensemble
//! of L2 logistic regressions on frozen features, each fitted on a
//! stratified bootstrap resample (Breiman, "Bagging predictors", Machine
//! Learning 1996), calibrated and measured out of bag.
//!
//! 1. For each C of the grid, B members are fitted on stratified bootstrap
//!    resamples (positives and negatives resampled separately, so every
//!    member sees the class balance). A report's out-of-bag (OOB) logit is
//!    the mean logit of the members that did not draw it; the C with the
//!    lowest OOB log-loss is kept, with its members.
//! 2. The temperature T is fitted on the OOB logits by minimum NLL
//!    ([`TemperatureScaler::fit`]; Guo et al., ICML 2017).
//! 3. Split-conformal q̂ at miscoverage α from the OOB calibrated
//!    probabilities: every report is in the calibration fold of the members
//!    that did not draw it (jackknife+-after-bootstrap, Kim, Xu & Barber,
//!    NeurIPS 2020; Angelopoulos & Bates 2021 for the score 1 − P(true)).
//! 4. The decision threshold is half the best OOB F1, t = F*/2: for a
//!    calibrated probability the F1-optimal threshold is F*/2 (Lipton, Elkan
//!    & Naryanaswamy, "Optimal thresholding of classifiers to maximize F1
//!    measure", ECML PKDD 2014). It moves smoothly with F*, where the
//!    argmax of the OOB F1 over thresholds chases a few cases of a rare
//!    observation (it picked 0.09 for one with 11 positives).
//! 5. The figures stored with the head (AUROC, average precision, ECE,
//!    Brier, F1, coverage) are OOB figures on the training split; figures on
//!    a validation split are measured separately (`fusion eval reports`).
//!
//! Nothing here looks at data outside the rows given. Deterministic: the
//! resamples come from SplitMix64 seeded with `seed` and the observation.

pub use crate::package::training::{HeadFigures, TrainOptions};

use super::logistic::{Design, FitOptions, Logistic, fit};
use crate::calibration::{TemperatureScaler, sigmoid};
use crate::conformal::ConformalCalibrator;
use crate::metrics::Confusion;

/// One trained head.
#[derive(Debug, Clone, PartialEq)]
pub struct TrainedHead {
    /// The C kept.
    pub c: f64,
    /// The members.
    pub members: Vec<Logistic>,
    /// Temperature of the mean logit.
    pub temperature: TemperatureScaler,
    /// Split-conformal threshold, when the OOB set allows one.
    pub conformal: Option<ConformalCalibrator>,
    /// Decision threshold on the calibrated probability.
    pub decision_threshold: f64,
    /// Gold prevalence in the rows given (the base rate).
    pub prevalence: f64,
    /// OOB figures on the rows given.
    pub oob: HeadFigures,
}

/// Why a head could not be trained.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TrainError {
    /// Too few gold positives or negatives.
    #[error(
        "{positives} gold positive(s) and {negatives} negative(s): at least {min} of each are needed"
    )]
    TooFewPositives {
        /// Positives given.
        positives: usize,
        /// Negatives given.
        negatives: usize,
        /// The minimum.
        min: usize,
    },
    /// Settings out of range (no members, an empty or non-positive C grid,
    /// α outside (0, 1)).
    #[error("invalid training options: {0}")]
    Options(String),
}

/// A small deterministic generator (SplitMix64, Steele, Lea & Flood,
/// OOPSLA 2014), enough for drawing bootstrap indices reproducibly.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform index in `0..n` (n > 0), by Lemire's multiply-shift.
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next()) * n as u128) >> 64) as usize
    }
}

/// One C of the grid: its OOB log-loss, C, the members and their OOB logits.
type GridPoint = (f64, f64, Vec<Logistic>, Vec<Option<f64>>);

/// Trains one head on `design` (n × D) with gold `labels`. `stream` makes
/// the resamples of different observations independent (use the
/// observation's index).
///
/// # Errors
/// [`TrainError`] as documented on its variants.
pub fn train_head(
    design: &Design,
    labels: &[bool],
    options: &TrainOptions,
    stream: u64,
) -> Result<TrainedHead, TrainError> {
    if options.members == 0
        || options.c_grid.is_empty()
        || options.c_grid.iter().any(|&c| c.is_nan() || c <= 0.0)
    {
        return Err(TrainError::Options(
            "members must be ≥ 1 and every C > 0".to_owned(),
        ));
    }
    if !(options.alpha > 0.0 && options.alpha < 1.0) {
        return Err(TrainError::Options(format!(
            "alpha {} is not in (0, 1)",
            options.alpha
        )));
    }
    let n = labels.len();
    let positives: Vec<usize> = (0..n).filter(|&i| labels[i]).collect();
    let negatives: Vec<usize> = (0..n).filter(|&i| !labels[i]).collect();
    if positives.len() < options.min_positives || negatives.len() < options.min_positives {
        return Err(TrainError::TooFewPositives {
            positives: positives.len(),
            negatives: negatives.len(),
            min: options.min_positives,
        });
    }
    // The same resamples for every C, so the grid compares like with like.
    let mut rng = SplitMix64(options.seed ^ stream.wrapping_mul(0xA076_1D64_78BD_642F));
    let resamples: Vec<Vec<f64>> = (0..options.members)
        .map(|_| {
            let mut counts = vec![0.0; n];
            for group in [&positives, &negatives] {
                for _ in 0..group.len() {
                    counts[group[rng.below(group.len())]] += 1.0;
                }
            }
            counts
        })
        .collect();

    let mut best: Option<GridPoint> = None;
    for &c in &options.c_grid {
        let members: Vec<Logistic> = resamples
            .iter()
            .map(|w| {
                fit(
                    design,
                    labels,
                    w,
                    FitOptions {
                        c,
                        ..FitOptions::default()
                    },
                )
            })
            .collect();
        let oob = oob_logits(design, &members, &resamples);
        let loss = log_loss(&oob, labels);
        if best.as_ref().is_none_or(|b| loss < b.0) {
            best = Some((loss, c, members, oob));
        }
    }
    let Some((_, c, members, oob)) = best else {
        return Err(TrainError::Options("empty C grid".to_owned()));
    };
    let scored: Vec<(f64, bool)> = oob
        .iter()
        .zip(labels)
        .filter_map(|(z, &y)| z.map(|z| (z, y)))
        .collect();
    let calibration = calibrate(&scored, options.alpha);
    Ok(TrainedHead {
        c,
        members,
        temperature: calibration.temperature,
        conformal: calibration.conformal,
        decision_threshold: calibration.decision_threshold,
        prevalence: positives.len() as f64 / n as f64,
        oob: calibration.figures,
    })
}

/// What [`calibrate`] fits on held-out logits.
#[derive(Debug, Clone, PartialEq)]
pub struct Calibration {
    /// Temperature T by minimum NLL.
    pub temperature: TemperatureScaler,
    /// Split-conformal q̂ of the calibrated probabilities.
    pub conformal: Option<ConformalCalibrator>,
    /// Threshold with the best F1 of the calibrated probabilities.
    pub decision_threshold: f64,
    /// The calibrated probabilities' figures at that threshold.
    pub figures: HeadFigures,
}

/// Steps 2–5 of the module: temperature, conformal q̂, decision threshold
/// and figures from held-out `(logit, gold)` pairs.
#[must_use]
pub fn calibrate(scored: &[(f64, bool)], alpha: f64) -> Calibration {
    let temperature = TemperatureScaler::fit(scored).unwrap_or_default();
    let calibrated: Vec<(f64, bool)> = scored
        .iter()
        .map(|&(z, y)| (temperature.probability(z), y))
        .collect();
    // Class-conditional: the positives of a rare finding are covered on
    // their own (a marginal q̂ is met by the negatives alone).
    let conformal = ConformalCalibrator::fit_class_conditional(&calibrated, alpha).ok();
    let decision_threshold = best_threshold(&calibrated);
    let figures = HeadFigures::measure(&calibrated, decision_threshold, conformal.as_ref());
    Calibration {
        temperature,
        conformal,
        decision_threshold,
        figures,
    }
}

/// Per row, the mean logit of the members whose resample left it out.
fn oob_logits(design: &Design, members: &[Logistic], resamples: &[Vec<f64>]) -> Vec<Option<f64>> {
    (0..design.rows())
        .map(|i| {
            let x = design.row(i);
            let out: Vec<f64> = members
                .iter()
                .zip(resamples)
                .filter(|(_, w)| w[i] == 0.0)
                .map(|(m, _)| m.logit(x))
                .collect();
            (!out.is_empty()).then(|| out.iter().sum::<f64>() / out.len() as f64)
        })
        .collect()
}

/// Mean log-loss of σ(z) over rows with an OOB logit.
fn log_loss(logits: &[Option<f64>], labels: &[bool]) -> f64 {
    let (sum, n) = logits
        .iter()
        .zip(labels)
        .filter_map(|(z, &y)| z.map(|z| (z, y)))
        .fold((0.0, 0_usize), |(s, n), (z, y)| {
            let p = sigmoid(z).clamp(1e-15, 1.0 - 1e-15);
            (s - if y { p.ln() } else { (1.0 - p).ln() }, n + 1)
        });
    if n == 0 {
        f64::INFINITY
    } else {
        sum / n as f64
    }
}

/// The F1-optimal threshold of calibrated probabilities, F*/2 (Lipton et
/// al. 2014), where F* is the best F1 over the thresholds of
/// [`argmax_threshold`]; 0.5 when nothing separates (F* = 0 would give 0).
fn best_threshold(pairs: &[(f64, bool)]) -> f64 {
    let best = Confusion::of(
        pairs
            .iter()
            .map(|&(p, y)| (p >= argmax_threshold(pairs), y)),
    )
    .f1();
    if best > 0.0 {
        (best / 2.0).clamp(0.05, 0.95)
    } else {
        0.5
    }
}

/// The threshold in 0.05 … 0.95 (step 0.01) with the best F1, ties to the
/// one nearest 0.5.
fn argmax_threshold(pairs: &[(f64, bool)]) -> f64 {
    let mut best: (f64, f64) = (f64::NEG_INFINITY, 0.5);
    for k in 5..=95 {
        let t = f64::from(k) / 100.0;
        let f1 = Confusion::of(pairs.iter().map(|&(p, y)| (p >= t, y))).f1();
        let nearer = (t - 0.5).abs() < (best.1 - 0.5).abs();
        if f1 > best.0 + 1e-12 || ((f1 - best.0).abs() <= 1e-12 && nearer) {
            best = (f1, t);
        }
    }
    best.1
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calibration::{ECE_BINS, expected_calibration_error};

    /// A small invented set: one informative feature, a noisy one.
    fn data(n: usize) -> (Design, Vec<bool>) {
        let mut rng = SplitMix64(7);
        let mut values = Vec::new();
        let mut labels = Vec::new();
        for i in 0..n {
            let y = i % 3 == 0;
            let signal = if y { 1.0 } else { -1.0 } + (rng.below(1000) as f64 / 500.0 - 1.0);
            let noise = rng.below(1000) as f64 / 1000.0;
            values.extend([signal, noise]);
            labels.push(y);
        }
        (Design { width: 2, values }, labels)
    }

    #[test]
    fn trains_calibrates_and_is_reproducible() {
        let (design, labels) = data(300);
        let options = TrainOptions {
            members: 8,
            ..TrainOptions::default()
        };
        let head = train_head(&design, &labels, &options, 3).unwrap();
        assert_eq!(head.members.len(), 8);
        assert!((head.prevalence - 100.0 / 300.0).abs() < 1e-12);
        assert!(head.oob.auroc.unwrap() > 0.9, "{:?}", head.oob);
        assert!(head.oob.ece < 0.1, "{:?}", head.oob);
        let coverage = head.oob.coverage.unwrap();
        assert!((coverage - 0.9).abs() < 0.05, "{coverage}");
        assert!(
            head.members
                .iter()
                .all(|m| m.weights[0] > m.weights[1].abs())
        );
        let again = train_head(&design, &labels, &options, 3).unwrap();
        assert_eq!(head, again);
        let other_stream = train_head(&design, &labels, &options, 4).unwrap();
        assert_ne!(head.members, other_stream.members);
    }

    /// Hand-computed: 10 cases at z = ln 3 (9 positive) and 10 at −ln 3
    /// (1 positive). The observed rates 0.9 / 0.1 need σ(ln 3 / T) = 0.9,
    /// i.e. ln 3 / T = ln 9, T = 1/2. Before, p = σ(±ln 3) = 0.75 / 0.25:
    /// ECE = |0.75 − 0.9| = 0.15; after, p equals the rate in both bins:
    /// ECE = 0. Scores 1 − P(true): 18 cases at 0.1, 2 at 0.9; with n = 20
    /// and α = 0.1 the rank is ⌈21 · 0.9⌉ = 19, so q̂ = 0.9.
    #[test]
    fn calibration_math_by_hand() {
        let z = 3.0_f64.ln();
        let mut scored = Vec::new();
        for k in 0..10 {
            scored.push((z, k < 9));
            scored.push((-z, k < 1));
        }
        let before: Vec<(f64, bool)> = scored.iter().map(|&(z, y)| (sigmoid(z), y)).collect();
        let ece_before = expected_calibration_error(&before, ECE_BINS).unwrap();
        assert!((ece_before - 0.15).abs() < 1e-12, "{ece_before}");
        let c = calibrate(&scored, 0.1);
        assert!(
            (c.temperature.temperature() - 0.5).abs() < 1e-9,
            "{:?}",
            c.temperature
        );
        assert!(c.figures.ece < 1e-9, "{}", c.figures.ece);
        let conformal = c.conformal.unwrap();
        assert!(
            (conformal.qhat() - 0.9).abs() < 1e-9,
            "{}",
            conformal.qhat()
        );
        assert_eq!(conformal.n(), 20);
        // The two misclassified cases score exactly q̂ (up to rounding of
        // σ(z/T)), so coverage is at least the guaranteed 0.9; F1 at the
        // threshold: 9 TP, 1 FP, 1 FN → 0.9.
        assert!(c.figures.coverage.unwrap() >= 0.9);
        assert!((c.figures.f1 - 0.9).abs() < 1e-12);
        assert!((c.figures.brier - 0.09).abs() < 1e-12);
    }

    #[test]
    fn refuses_too_few_positives_and_bad_options() {
        let (design, mut labels) = data(30);
        labels.iter_mut().skip(3).for_each(|y| *y = false);
        let e = train_head(&design, &labels, &TrainOptions::default(), 0).unwrap_err();
        assert!(
            matches!(e, TrainError::TooFewPositives { positives: 1, .. }),
            "{e}"
        );
        let bad = TrainOptions {
            c_grid: vec![0.0],
            ..TrainOptions::default()
        };
        assert!(train_head(&design, &labels, &bad, 0).is_err());
    }

    #[test]
    fn threshold_is_half_the_best_f1() {
        let pairs = [(0.9, true), (0.8, true), (0.3, false), (0.2, false)];
        // Every t in (0.3, 0.8] separates perfectly: 0.5 is nearest; F* = 1.
        assert_eq!(argmax_threshold(&pairs), 0.5);
        assert_eq!(best_threshold(&pairs), 0.5);
        let pairs = [(0.9, true), (0.2, true), (0.1, false)];
        assert_eq!(argmax_threshold(&pairs), 0.2);
        // F* = 1 at t = 0.2 → 0.5.
        assert_eq!(best_threshold(&pairs), 0.5);
        // 9 TP, 1 FP, 1 FN at best: F* = 0.9 → 0.45.
        let mut pairs = vec![(0.9, true); 9];
        pairs.extend([(0.9, false), (0.1, true)]);
        pairs.extend(vec![(0.1, false); 9]);
        assert!((best_threshold(&pairs) - 0.45).abs() < 1e-12);
        assert_eq!(best_threshold(&[(0.3, false)]), 0.5);
    }
}
