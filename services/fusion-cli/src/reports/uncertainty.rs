//! How far the figures of `fusion eval reports` can be trusted on a
//! validation split of a few hundred reports, where an observation may have
//! four positives: a percentile bootstrap interval of each F1 and of the
//! macro-F1 (Efron & Tibshirani, *An Introduction to the Bootstrap*, 1993,
//! ch. 13), and the ECE a perfectly calibrated model with the same
//! probabilities would show by chance (consistency resampling: Bröcker &
//! Smith, *Weather and Forecasting* 22, 2007; Vaicenavicius et al.,
//! AISTATS 2019, §4).
//!
//! Both are deterministic: draws come from a ChaCha8 stream seeded with
//! [`SEED`].

use fusion_models::calibration::{ECE_BINS, expected_calibration_error};
use fusion_models::metrics::Confusion;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// Seed of every draw (the training seed of the shipped package).
pub const SEED: u64 = 20_261_206;

/// Resamples per interval.
pub const DRAWS: usize = 2000;

/// A two-sided 95 % percentile interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Interval {
    /// 2.5th percentile.
    pub low: f64,
    /// 97.5th percentile.
    pub high: f64,
}

/// What chance alone does to ECE on these probabilities.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct EceConsistency {
    /// The 95th percentile of ECE when each gold label is drawn from its
    /// own probability (a perfectly calibrated model on the same cases).
    pub calibrated_p95: f64,
    /// Fraction of those draws whose ECE reaches the observed one: small
    /// (< 0.05) means the observed ECE is more than chance.
    pub p_value: f64,
}

/// Consistency resampling of ECE ([`ECE_BINS`] bins) for `pairs` of
/// (probability ∈ [0, 1], gold): [`DRAWS`] times, y′ᵢ ~ Bernoulli(pᵢ), and
/// the ECE of (pᵢ, y′ᵢ). `None` for no pairs or a probability outside
/// [0, 1].
#[must_use]
pub fn ece_consistency(pairs: &[(f64, bool)]) -> Option<EceConsistency> {
    let observed = expected_calibration_error(pairs, ECE_BINS).ok()?;
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let mut draws: Vec<f64> = (0..DRAWS)
        .map(|_| {
            let drawn: Vec<(f64, bool)> = pairs
                .iter()
                .map(|&(p, _)| (p, rng.random::<f64>() < p))
                .collect();
            expected_calibration_error(&drawn, ECE_BINS).unwrap_or(f64::NAN)
        })
        .collect();
    draws.sort_by(f64::total_cmp);
    let reaching = draws.iter().filter(|&&e| e >= observed - 1e-12).count();
    Some(EceConsistency {
        calibrated_p95: percentile(&draws, 0.95),
        p_value: reaching as f64 / DRAWS as f64,
    })
}

/// One observation's (decision, gold) per report, `None` where the report
/// has no gold for it; every observation's list has one entry per report,
/// so a resample of reports resamples all of them together.
pub type Decisions = Vec<Option<(bool, bool)>>;

/// Percentile bootstrap over reports of each observation's F1 and of their
/// mean (macro-F1). `observations[j][i]` is report i's (decision, gold) for
/// observation j. Returns (per observation, macro); `None` when there are no
/// reports.
#[must_use]
pub fn f1_intervals(observations: &[Decisions]) -> Option<(Vec<Interval>, Interval)> {
    let n = observations.first()?.len();
    if n == 0 || observations.iter().any(|o| o.len() != n) {
        return None;
    }
    let mut rng = ChaCha8Rng::seed_from_u64(SEED);
    let mut per: Vec<Vec<f64>> = vec![Vec::with_capacity(DRAWS); observations.len()];
    let mut macro_f1 = Vec::with_capacity(DRAWS);
    let mut weight = vec![0_usize; n];
    for _ in 0..DRAWS {
        weight.iter_mut().for_each(|w| *w = 0);
        for _ in 0..n {
            weight[rng.random_range(0..n)] += 1;
        }
        let mut sum = 0.0;
        for (j, obs) in observations.iter().enumerate() {
            let mut c = Confusion::default();
            for (&w, row) in weight.iter().zip(obs) {
                let Some((decision, gold)) = *row else {
                    continue;
                };
                match (decision, gold) {
                    (true, true) => c.true_positive += w,
                    (true, false) => c.false_positive += w,
                    (false, true) => c.false_negative += w,
                    (false, false) => c.true_negative += w,
                }
            }
            let f1 = c.f1();
            per[j].push(f1);
            sum += f1;
        }
        macro_f1.push(sum / observations.len() as f64);
    }
    let interval = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        Interval {
            low: percentile(&v, 0.025),
            high: percentile(&v, 0.975),
        }
    };
    Some((per.into_iter().map(interval).collect(), interval(macro_f1)))
}

/// The `q`-quantile of sorted `v` (nearest rank); NaN when empty.
fn percentile(v: &[f64], q: f64) -> f64 {
    if v.is_empty() {
        return f64::NAN;
    }
    let rank = ((q * v.len() as f64).ceil() as usize).clamp(1, v.len());
    v[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentile_is_nearest_rank() {
        let v = [1.0, 2.0, 3.0, 4.0];
        assert_eq!(percentile(&v, 0.5), 2.0);
        assert_eq!(percentile(&v, 0.95), 4.0);
        assert_eq!(percentile(&v, 0.0), 1.0);
        assert!(percentile(&[], 0.5).is_nan());
    }

    #[test]
    fn certain_probabilities_have_no_chance_ece() {
        // p ∈ {0, 1} draws the same labels every time: ECE is 0 under
        // consistency, and an observed 0 is reached by every draw.
        let pairs = [(0.0, false), (1.0, true), (1.0, true)];
        let c = ece_consistency(&pairs).unwrap();
        assert_eq!(c.calibrated_p95, 0.0);
        assert_eq!(c.p_value, 1.0);
        // Every label wrong: ECE 1, never reached by chance.
        let wrong = [(0.0, true), (1.0, false)];
        assert_eq!(ece_consistency(&wrong).unwrap().p_value, 0.0);
    }

    #[test]
    fn chance_ece_of_a_coin_is_about_its_sampling_error() {
        // 400 cases at p = 0.5 in one bin: ECE = |mean y − 0.5|, whose
        // 95th percentile is ≈ 1.96 · 0.5/√400 ≈ 0.049 (normal limit).
        let pairs = vec![(0.5, true); 400];
        let c = ece_consistency(&pairs).unwrap();
        assert!((c.calibrated_p95 - 0.049).abs() < 0.01, "{c:?}");
        // All 400 positive at p = 0.5 is far beyond chance.
        assert_eq!(c.p_value, 0.0);
    }

    #[test]
    fn a_perfect_decision_has_a_point_interval() {
        let obs: Decisions = vec![
            Some((true, true)),
            Some((false, false)),
            None,
            Some((true, true)),
        ];
        let (per, macro_f1) = f1_intervals(&[obs.clone(), obs]).unwrap();
        // A resample with no positive has F1 0 by convention, so the low
        // end may be 0; the high end is 1.
        assert_eq!(per[0].high, 1.0);
        assert_eq!(macro_f1.high, 1.0);
        assert!(per[0].low <= per[0].high);
        assert!(f1_intervals(&[]).is_none());
        assert!(f1_intervals(&[vec![Some((true, true))], vec![]]).is_none());
    }
}
