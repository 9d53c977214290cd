//! Probability calibration for one label of one branch: temperature scaling
//! (Guo, Pleiss, Sun, Weinberger, *On Calibration of Modern Neural Networks*,
//! ICML 2017, §4.2) fitted by minimising the negative log-likelihood, and the
//! two metrics reported for it: expected calibration error (Naeini, Cooper,
//! Hauskrecht, AAAI 2015; Guo et al. 2017, §2) and the Brier score
//! (Brier, *Monthly Weather Review* 1950).
//!
//! Labels are binary per finding (multi-label sigmoid heads), so everything
//! here is about the probability of the positive class, p = σ(z/T).

use serde::{Deserialize, Serialize};

/// Lower bound of the temperature search interval.
pub const MIN_TEMPERATURE: f64 = 0.05;
/// Upper bound of the temperature search interval.
pub const MAX_TEMPERATURE: f64 = 20.0;
/// Number of equal-width bins used for the reported ECE.
pub const ECE_BINS: usize = 15;

/// Why a calibration step refused its input.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum CalibrationError {
    /// No (logit or probability, label) pairs were given.
    #[error("no calibration pairs given")]
    Empty,
    /// A logit is NaN or infinite, or a probability is not a finite number in
    /// [0, 1].
    #[error("{name} at index {index} is {value}, expected {domain}")]
    InvalidInput {
        /// `"logit"` or `"probability"`.
        name: &'static str,
        /// Position in the input slice.
        index: usize,
        /// The refused value.
        value: f64,
        /// The allowed range.
        domain: &'static str,
    },
    /// A temperature that is NaN, infinite or ≤ 0.
    #[error("temperature {0} must be finite and > 0")]
    InvalidTemperature(f64),
    /// ECE was asked for with zero bins.
    #[error("the number of ECE bins must be at least 1")]
    ZeroBins,
}

/// Logistic function σ(z) = 1/(1 + e^(−z)) ∈ [0, 1], evaluated without
/// overflow for any finite or infinite z; NaN propagates.
#[must_use]
pub fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// softplus(x) = ln(1 + eˣ), without overflow: −ln σ(−x).
fn softplus(x: f64) -> f64 {
    x.max(0.0) + (-x.abs()).exp().ln_1p()
}

fn check_logits(pairs: &[(f64, bool)]) -> Result<(), CalibrationError> {
    if pairs.is_empty() {
        return Err(CalibrationError::Empty);
    }
    match pairs.iter().position(|(z, _)| !z.is_finite()) {
        Some(index) => Err(CalibrationError::InvalidInput {
            name: "logit",
            index,
            value: pairs[index].0,
            domain: "a finite number",
        }),
        None => Ok(()),
    }
}

fn check_probabilities(pairs: &[(f64, bool)]) -> Result<(), CalibrationError> {
    if pairs.is_empty() {
        return Err(CalibrationError::Empty);
    }
    match pairs
        .iter()
        .position(|(p, _)| !(p.is_finite() && (0.0..=1.0).contains(p)))
    {
        Some(index) => Err(CalibrationError::InvalidInput {
            name: "probability",
            index,
            value: pairs[index].0,
            domain: "[0, 1]",
        }),
        None => Ok(()),
    }
}

/// Mean NLL at inverse temperature β for already-checked pairs.
fn mean_nll(pairs: &[(f64, bool)], inv_temperature: f64) -> f64 {
    let total: f64 = pairs
        .iter()
        .map(|&(z, y)| {
            let s = z * inv_temperature;
            // −ln σ(s) = softplus(−s) for a positive; −ln(1 − σ(s)) = softplus(s).
            if y { softplus(-s) } else { softplus(s) }
        })
        .sum();
    total / pairs.len() as f64
}

/// Mean binary negative log-likelihood (nats per case) of labelled logits
/// under temperature T: (1/n) Σ −[y ln σ(z/T) + (1 − y) ln(1 − σ(z/T))].
/// `pairs` holds (logit z, label y) with y = `true` for "present".
///
/// # Errors
/// [`CalibrationError::Empty`], [`CalibrationError::InvalidInput`] for a
/// non-finite logit, [`CalibrationError::InvalidTemperature`] for T that is
/// not finite and > 0.
pub fn negative_log_likelihood(
    pairs: &[(f64, bool)],
    temperature: f64,
) -> Result<f64, CalibrationError> {
    let t = TemperatureScaler::new(temperature)?;
    check_logits(pairs)?;
    Ok(mean_nll(pairs, 1.0 / t.temperature))
}

/// Temperature scaling for one label of one branch: p = σ(z/T), T > 0
/// (Guo et al. 2017, §4.2, binary case). T > 1 softens over-confident logits,
/// T < 1 sharpens them; T = 1 is the identity.
///
/// Serialised as `{"temperature": T}`; deserialisation checks T is finite and
/// > 0.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "ScalerRecord", into = "ScalerRecord")]
pub struct TemperatureScaler {
    temperature: f64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScalerRecord {
    temperature: f64,
}

impl From<TemperatureScaler> for ScalerRecord {
    fn from(s: TemperatureScaler) -> Self {
        Self {
            temperature: s.temperature,
        }
    }
}

impl TryFrom<ScalerRecord> for TemperatureScaler {
    type Error = CalibrationError;

    fn try_from(r: ScalerRecord) -> Result<Self, Self::Error> {
        TemperatureScaler::new(r.temperature)
    }
}

impl Default for TemperatureScaler {
    /// T = 1, the identity.
    fn default() -> Self {
        Self { temperature: 1.0 }
    }
}

impl TemperatureScaler {
    /// A scaler with temperature T (dimensionless).
    ///
    /// # Errors
    /// [`CalibrationError::InvalidTemperature`] unless T is finite and > 0.
    pub fn new(temperature: f64) -> Result<Self, CalibrationError> {
        if temperature.is_finite() && temperature > 0.0 {
            Ok(Self { temperature })
        } else {
            Err(CalibrationError::InvalidTemperature(temperature))
        }
    }

    /// The temperature T > 0.
    #[must_use]
    pub const fn temperature(&self) -> f64 {
        self.temperature
    }

    /// Calibrated probability of "present", σ(z/T) ∈ [0, 1]. ±∞ logits give
    /// 1 or 0; a NaN logit gives NaN (the opinion constructors downstream
    /// refuse it).
    #[must_use]
    pub fn probability(&self, logit: f64) -> f64 {
        sigmoid(logit / self.temperature)
    }

    /// Fits T by minimising the mean NLL (see [`negative_log_likelihood`])
    /// over T ∈ [0.05, 20] on labelled (logit, label) pairs.
    ///
    /// Method: the NLL is convex in β = 1/T (a one-weight logistic regression
    /// without bias), so its derivative g(β) = (1/n) Σ (σ(βz) − y)·z is
    /// non-decreasing and the minimiser is where g changes sign. That sign
    /// change is found by bisection on ln T (deterministic; ≤ 200 halvings,
    /// stopping when the bracket no longer shrinks in f64). Bisecting the
    /// derivative rather than golden-section on the NLL itself gives T to
    /// about machine precision instead of √ε: near the minimum NLL values
    /// differ by less than their rounding.
    ///
    /// If the minimum lies outside the interval the nearer end is returned
    /// exactly, e.g. T = 0.05 for perfectly separated logits and T = 20 for
    /// logits that are anti-correlated with the labels. If every logit is 0
    /// the NLL does not depend on T and T = 1 is returned.
    ///
    /// # Errors
    /// [`CalibrationError::Empty`] for no pairs;
    /// [`CalibrationError::InvalidInput`] for a non-finite logit.
    pub fn fit(pairs: &[(f64, bool)]) -> Result<Self, CalibrationError> {
        check_logits(pairs)?;
        if pairs.iter().all(|&(z, _)| z == 0.0) {
            return Ok(Self::default());
        }
        let slope_at_temperature = |t: f64| nll_slope(pairs, 1.0 / t);
        // g ≤ 0 at the largest β: still falling, the optimum is T ≤ 0.05.
        if slope_at_temperature(MIN_TEMPERATURE) <= 0.0 {
            return Self::new(MIN_TEMPERATURE);
        }
        // g ≥ 0 at the smallest β: already rising, the optimum is T ≥ 20.
        if slope_at_temperature(MAX_TEMPERATURE) >= 0.0 {
            return Self::new(MAX_TEMPERATURE);
        }
        // Invariant: g(1/exp(lo)) > 0 > g(1/exp(hi)).
        let (mut lo, mut hi) = (MIN_TEMPERATURE.ln(), MAX_TEMPERATURE.ln());
        for _ in 0..200 {
            let mid = 0.5 * (lo + hi);
            if mid <= lo || mid >= hi {
                break;
            }
            if slope_at_temperature(mid.exp()) > 0.0 {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        Self::new(
            (0.5 * (lo + hi))
                .exp()
                .clamp(MIN_TEMPERATURE, MAX_TEMPERATURE),
        )
    }
}

/// dNLL/dβ = (1/n) Σ (σ(βz) − y)·z for already-checked pairs.
fn nll_slope(pairs: &[(f64, bool)], inv_temperature: f64) -> f64 {
    let total: f64 = pairs
        .iter()
        .map(|&(z, y)| (sigmoid(z * inv_temperature) - f64::from(u8::from(y))) * z)
        .sum();
    total / pairs.len() as f64
}

/// Expected calibration error of binary predictions, positive-class variant:
/// the predicted probability of "present" p ∈ [0, 1] is put into `bins`
/// equal-width bins, bin k = min(⌊p·bins⌋, bins − 1) (so bin k covers
/// [k/bins, (k+1)/bins) and the last bin also holds p = 1), and
/// ECE = Σₖ (nₖ/n)·|mean p in k − fraction of positives in k|
/// (Naeini et al. 2015; Guo et al. 2017, §2, applied to the positive class
/// rather than the top label). Empty bins contribute 0. Result in [0, 1].
///
/// This is not the top-label ECE: with top-label confidence max(p, 1 − p) a
/// p = 0.1 prediction of a negative case would count as a confident correct
/// one; the positive-class reliability diagram is what a per-finding
/// probability is read against. Use [`ECE_BINS`] (15) for reported numbers.
///
/// # Errors
/// [`CalibrationError::Empty`]; [`CalibrationError::ZeroBins`];
/// [`CalibrationError::InvalidInput`] for a probability outside [0, 1].
pub fn expected_calibration_error(
    predictions: &[(f64, bool)],
    bins: usize,
) -> Result<f64, CalibrationError> {
    if bins == 0 {
        return Err(CalibrationError::ZeroBins);
    }
    check_probabilities(predictions)?;
    // Per bin: (Σ p, Σ y).
    let mut acc = vec![(0.0_f64, 0.0_f64); bins];
    for &(p, y) in predictions {
        // Truncation is the floor here: p·bins is finite and ≥ 0.
        let k = ((p * bins as f64) as usize).min(bins - 1);
        acc[k].0 += p;
        acc[k].1 += f64::from(u8::from(y));
    }
    let n = predictions.len() as f64;
    // (nₖ/n)·|Σp/nₖ − Σy/nₖ| = |Σp − Σy|/n: one division, and empty bins
    // contribute 0 without a special case.
    Ok(acc
        .iter()
        .map(|&(sum_p, sum_y)| (sum_p - sum_y).abs() / n)
        .sum())
}

/// Brier score (1/n) Σ (p − y)² ∈ [0, 1] of predicted probabilities of
/// "present" against 0/1 labels (Brier 1950, binary form). 0 is perfect;
/// always predicting 0.5 scores 0.25.
///
/// # Errors
/// [`CalibrationError::Empty`]; [`CalibrationError::InvalidInput`] for a
/// probability outside [0, 1].
pub fn brier_score(predictions: &[(f64, bool)]) -> Result<f64, CalibrationError> {
    check_probabilities(predictions)?;
    let total: f64 = predictions
        .iter()
        .map(|&(p, y)| {
            let diff = p - f64::from(u8::from(y));
            diff * diff
        })
        .sum();
    Ok(total / predictions.len() as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn sigmoid_values_and_extremes() {
        assert_eq!(sigmoid(0.0), 0.5);
        assert!(close(sigmoid(3.0_f64.ln()), 0.75, 1e-15));
        assert!(close(sigmoid(-(3.0_f64.ln())), 0.25, 1e-15));
        assert_eq!(sigmoid(1000.0), 1.0);
        assert_eq!(sigmoid(-1000.0), 0.0);
        assert_eq!(sigmoid(f64::INFINITY), 1.0);
        assert_eq!(sigmoid(f64::NEG_INFINITY), 0.0);
    }

    #[test]
    fn scaler_applies_temperature() {
        // σ(2 ln 3 / 2) = σ(ln 3) = 0.75.
        let s = TemperatureScaler::new(2.0).unwrap();
        assert!(close(s.probability(2.0 * 3.0_f64.ln()), 0.75, 1e-15));
        assert_eq!(TemperatureScaler::default().probability(0.0), 0.5);
        assert!(TemperatureScaler::new(0.0).is_err());
        assert!(TemperatureScaler::new(-1.0).is_err());
        assert!(TemperatureScaler::new(f64::NAN).is_err());
    }

    #[test]
    fn nll_hand_computed() {
        // One positive at z = ln 3, T = 1: −ln 0.75. One negative at z = ln 3:
        // −ln 0.25. Mean of the two: (ln(4/3) + ln 4)/2.
        let z = 3.0_f64.ln();
        let nll = negative_log_likelihood(&[(z, true), (z, false)], 1.0).unwrap();
        assert!(close(
            nll,
            ((4.0_f64 / 3.0).ln() + 4.0_f64.ln()) / 2.0,
            1e-14
        ));
        // All-zero logits: ln 2 per case whatever T.
        let nll = negative_log_likelihood(&[(0.0, true)], 7.0).unwrap();
        assert!(close(nll, 2.0_f64.ln(), 1e-15));
        assert_eq!(
            negative_log_likelihood(&[], 1.0),
            Err(CalibrationError::Empty)
        );
    }

    #[test]
    fn fit_recovers_closed_form_temperature() {
        // Logit 2 with 3 positives and 1 negative (and the mirror at −2):
        // the NLL is minimal where σ(2/T) = 3/4, i.e. 2/T = ln 3,
        // T = 2/ln 3 = 1.820478…
        let pairs = [
            (2.0, true),
            (2.0, true),
            (2.0, true),
            (2.0, false),
            (-2.0, false),
            (-2.0, false),
            (-2.0, false),
            (-2.0, true),
        ];
        let t = TemperatureScaler::fit(&pairs).unwrap().temperature();
        assert!(close(t, 2.0 / 3.0_f64.ln(), 1e-12), "T = {t}");
        assert!(close(t, 1.820_478_453_253_675, 1e-12));
        // The fitted scaler reproduces the empirical frequency.
        let p = TemperatureScaler::new(t).unwrap().probability(2.0);
        assert!(close(p, 0.75, 1e-12));
    }

    #[test]
    fn fit_sharpens_underconfident_logits() {
        // Logit 0.5 with 9 positives in 10: σ(0.5/T) = 0.9,
        // T = 0.5/ln 9 = 0.227559…
        let mut pairs = vec![(0.5, true); 9];
        pairs.push((0.5, false));
        let t = TemperatureScaler::fit(&pairs).unwrap().temperature();
        assert!(close(t, 0.5 / 9.0_f64.ln(), 1e-12), "T = {t}");
    }

    #[test]
    fn fit_edges() {
        // Perfectly separated: NLL keeps falling as T → 0; the lower bound.
        let separated = [(1.0, true), (-1.0, false)];
        assert_eq!(
            TemperatureScaler::fit(&separated).unwrap().temperature(),
            MIN_TEMPERATURE
        );
        // Anti-correlated logits: NLL keeps falling as T → ∞; the upper bound.
        let inverted = [(1.0, false), (-1.0, true)];
        assert_eq!(
            TemperatureScaler::fit(&inverted).unwrap().temperature(),
            MAX_TEMPERATURE
        );
        // Flat likelihood: identity.
        assert_eq!(
            TemperatureScaler::fit(&[(0.0, true), (0.0, false)]).unwrap(),
            TemperatureScaler::default()
        );
        assert_eq!(TemperatureScaler::fit(&[]), Err(CalibrationError::Empty));
        assert!(matches!(
            TemperatureScaler::fit(&[(0.0, true), (f64::NAN, false)]),
            Err(CalibrationError::InvalidInput {
                name: "logit",
                index: 1,
                ..
            })
        ));
    }

    #[test]
    fn ece_and_brier_hand_computed() {
        // 0.1 → bin 1: mean p 0.1, accuracy 0.5, weight 1/2 → 0.2.
        // 0.9 → bin 13: mean p 0.9, accuracy 1.0, weight 1/2 → 0.05.
        let preds = [(0.1, false), (0.1, true), (0.9, true), (0.9, true)];
        let ece = expected_calibration_error(&preds, ECE_BINS).unwrap();
        assert!(close(ece, 0.25, 1e-15));
        // (0.01 + 0.81 + 0.01 + 0.01)/4 = 0.21.
        assert!(close(brier_score(&preds).unwrap(), 0.21, 1e-15));
        // Perfectly calibrated within one bin: 0.5 predicted, half positive.
        let fair = [(0.5, true), (0.5, false)];
        assert_eq!(expected_calibration_error(&fair, ECE_BINS).unwrap(), 0.0);
        assert_eq!(brier_score(&fair).unwrap(), 0.25);
    }

    #[test]
    fn ece_bin_edges() {
        // p = 1 lands in the last bin, p = 0 in the first: both exact → 0.
        let exact = [(1.0, true), (0.0, false)];
        assert_eq!(expected_calibration_error(&exact, ECE_BINS).unwrap(), 0.0);
        // One bin: ECE = |mean p − base rate| = |0.5 − 0.25|.
        let preds = [(0.2, false), (0.8, true), (0.5, false), (0.5, false)];
        assert!(close(
            expected_calibration_error(&preds, 1).unwrap(),
            0.25,
            1e-15
        ));
        // Two bins: [0, 0.5) holds 0.2 → |0.2 − 0|·1/4; [0.5, 1] holds 0.8,
        // 0.5, 0.5 → |1.8/3 − 1/3|·3/4 = 0.2; total 0.05 + 0.2.
        assert!(close(
            expected_calibration_error(&preds, 2).unwrap(),
            0.25,
            1e-15
        ));
    }

    #[test]
    fn metrics_reject_bad_input() {
        assert_eq!(
            expected_calibration_error(&[], ECE_BINS),
            Err(CalibrationError::Empty)
        );
        assert_eq!(brier_score(&[]), Err(CalibrationError::Empty));
        assert_eq!(
            expected_calibration_error(&[(0.5, true)], 0),
            Err(CalibrationError::ZeroBins)
        );
        assert!(matches!(
            brier_score(&[(0.5, true), (1.5, true)]),
            Err(CalibrationError::InvalidInput { index: 1, .. })
        ));
        assert!(expected_calibration_error(&[(f64::NAN, true)], ECE_BINS).is_err());
    }

    #[test]
    fn scaler_serde() {
        let s = TemperatureScaler::new(1.5).unwrap();
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(json, r#"{"temperature":1.5}"#);
        assert_eq!(serde_json::from_str::<TemperatureScaler>(&json).unwrap(), s);
        assert!(serde_json::from_str::<TemperatureScaler>(r#"{"temperature":0}"#).is_err());
    }
}
