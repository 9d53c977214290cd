//! The numbers the monitor reports, as pure functions of small slices: the
//! calibration figures of reviewed probabilities (Brier score and ECE over
//! 15 equal-width bins, as [`fusion_models::calibration`] computes them for
//! the model cards), conformal coverage against its nominal level, and the
//! population stability index of a distribution against a reference.
//!
//! PSI (Siddiqi, *Credit Risk Scorecards*, 2006, ch. 8; Yurdakul 2018):
//! PSI = Σᵢ (aᵢ − eᵢ)·ln(aᵢ/eᵢ) over the categories (or bins) i, with eᵢ
//! the reference share and aᵢ the current share. A share of 0 is replaced by
//! [`PSI_FLOOR`] so that a category seen in one window only gives a large,
//! finite term. Conventional reading: < 0.1 stable, 0.1–0.25 moderate shift,
//! > 0.25 significant shift.

use std::collections::{BTreeMap, BTreeSet};

use fusion_models::calibration::{ECE_BINS, brier_score, expected_calibration_error};
use fusion_models::metrics::{ReliabilityBin, reliability};
use serde::Serialize;

/// The share that stands in for an empty category in [`psi`].
pub const PSI_FLOOR: f64 = 1e-4;

/// Equal-width bins of a probability for [`psi`] of scores: 10 over [0, 1].
pub const SCORE_BINS: usize = 10;

/// Calibration of `(p, gold)` pairs: p the predicted probability of
/// "present" in [0, 1], gold whether the reviewer found it present.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Calibration {
    /// Pairs.
    pub n: usize,
    /// Pairs whose gold is present.
    pub positives: usize,
    /// Brier score (1/n) Σ (p − y)², in [0, 1].
    pub brier: f64,
    /// Expected calibration error over 15 equal-width bins, in [0, 1].
    pub ece: f64,
    /// The reliability diagram's bins (15, equal width).
    pub reliability: Vec<ReliabilityBin>,
}

/// The calibration figures of `pairs`; `None` when there are none or a
/// probability lies outside [0, 1].
#[must_use]
pub fn calibration(pairs: &[(f64, bool)]) -> Option<Calibration> {
    let brier = brier_score(pairs).ok()?;
    let ece = expected_calibration_error(pairs, ECE_BINS).ok()?;
    Some(Calibration {
        n: pairs.len(),
        positives: pairs.iter().filter(|(_, y)| *y).count(),
        brier,
        ece,
        reliability: reliability(pairs),
    })
}

/// Conformal coverage: the share of sets that hold the gold class.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Coverage {
    /// Sets with a gold class.
    pub n: usize,
    /// Of them, sets holding it.
    pub covered: usize,
    /// covered / n, in [0, 1].
    pub rate: f64,
    /// The level the sets were built for, 1 − α.
    pub nominal: f64,
}

impl Coverage {
    /// Tallies `covered` flags against `nominal`; `None` without any.
    #[must_use]
    pub fn of(covered: impl IntoIterator<Item = bool>, nominal: f64) -> Option<Self> {
        let (n, hit) = covered
            .into_iter()
            .fold((0_usize, 0_usize), |(n, h), c| (n + 1, h + usize::from(c)));
        (n > 0).then(|| Self {
            n,
            covered: hit,
            rate: hit as f64 / n as f64,
            nominal,
        })
    }

    /// Whether the rate lies more than `margin` below nominal, once at
    /// least `min_n` sets are counted.
    #[must_use]
    pub fn below(&self, margin: f64, min_n: usize) -> bool {
        self.n >= min_n && self.rate < self.nominal - margin
    }
}

/// Shares of each category among `values` (`None` counted as `"missing"`).
#[must_use]
pub fn shares<'a>(values: impl IntoIterator<Item = Option<&'a str>>) -> BTreeMap<String, f64> {
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut n = 0_usize;
    for v in values {
        *counts.entry(v.unwrap_or("missing").to_owned()).or_default() += 1;
        n += 1;
    }
    counts
        .into_iter()
        .map(|(k, c)| (k, c as f64 / n.max(1) as f64))
        .collect()
}

/// The bin of a probability among [`SCORE_BINS`] equal-width bins over
/// [0, 1] (the last also holds 1), as a label `"0.3-0.4"`.
#[must_use]
pub fn score_bin(p: f64) -> String {
    let k = ((p.clamp(0.0, 1.0) * SCORE_BINS as f64) as usize).min(SCORE_BINS - 1);
    format!(
        "{:.1}-{:.1}",
        k as f64 / SCORE_BINS as f64,
        (k + 1) as f64 / SCORE_BINS as f64
    )
}

/// Population stability index of `current` shares against `reference`
/// shares (module docs), over the union of their categories.
#[must_use]
pub fn psi(reference: &BTreeMap<String, f64>, current: &BTreeMap<String, f64>) -> f64 {
    let keys: BTreeSet<&String> = reference.keys().chain(current.keys()).collect();
    keys.into_iter()
        .map(|k| {
            let e = reference.get(k).copied().unwrap_or(0.0).max(PSI_FLOOR);
            let a = current.get(k).copied().unwrap_or(0.0).max(PSI_FLOOR);
            (a - e) * (a / e).ln()
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    /// Four invented reviews: p = 0.9 present, 0.8 absent, 0.2 absent,
    /// 0.6 present.
    const PAIRS: [(f64, bool); 4] = [(0.9, true), (0.8, false), (0.2, false), (0.6, true)];

    #[test]
    fn brier_and_ece_by_hand() {
        let c = calibration(&PAIRS).unwrap();
        // Brier: (0.01 + 0.64 + 0.04 + 0.16) / 4 = 0.2125.
        assert!(close(c.brier, 0.2125), "{}", c.brier);
        // Bins of width 1/15: 0.9 → 13, 0.8 → 12, 0.2 → 3, 0.6 → 9; each
        // alone, so ECE = (0.1 + 0.8 + 0.2 + 0.4) / 4 = 0.375.
        assert!(close(c.ece, 0.375), "{}", c.ece);
        assert_eq!((c.n, c.positives), (4, 2));
        assert_eq!(c.reliability.len(), 15);
        assert_eq!(c.reliability[12].count, 1);
        assert_eq!(c.reliability[12].observed_rate, 0.0);
        // Two in one bin: 0.61 present and 0.62 absent share bin 9:
        // |1.23 − 1| / 2 = 0.115.
        let c = calibration(&[(0.61, true), (0.62, false)]).unwrap();
        assert!(close(c.ece, 0.115), "{}", c.ece);
        assert!(calibration(&[]).is_none());
        assert!(calibration(&[(1.5, true)]).is_none());
    }

    #[test]
    fn coverage_by_hand() {
        // 10 sets, 7 hold the gold class: 0.7 against 0.9 nominal.
        let flags = [true; 7].into_iter().chain([false; 3]);
        let c = Coverage::of(flags, 0.9).unwrap();
        assert_eq!((c.n, c.covered), (10, 7));
        assert!(close(c.rate, 0.7));
        // 0.7 < 0.9 − 0.1 = 0.8: below; not with a margin of 0.25, nor
        // before 11 sets are counted.
        assert!(c.below(0.1, 10));
        assert!(!c.below(0.25, 10));
        assert!(!c.below(0.1, 11));
        assert!(Coverage::of([], 0.9).is_none());
    }

    #[test]
    fn psi_by_hand() {
        // Reference CR 0.8, DX 0.2; current CR 0.5, DX 0.5:
        // (0.5 − 0.8)·ln(0.5/0.8) + (0.5 − 0.2)·ln(0.5/0.2)
        // = 0.141000… + 0.274887… = 0.415888…
        let reference = shares([Some("CR"); 8].into_iter().chain([Some("DX"); 2]));
        let current = shares([Some("CR"); 5].into_iter().chain([Some("DX"); 5]));
        let expected = -0.3 * (0.5_f64 / 0.8).ln() + 0.3 * (0.5_f64 / 0.2).ln();
        assert!(close(psi(&reference, &current), expected));
        assert!(close(expected, 0.415_888_308_335_967), "{expected}");
        // The same distribution: 0.
        assert!(close(psi(&reference, &reference), 0.0));
        // A category new in the current window counts with the floor:
        // reference CR 1.0; current CR 0.5, CT 0.5 →
        // (0.5 − 1)·ln(0.5) + (0.5 − 1e-4)·ln(0.5/1e-4).
        let only_cr = shares([Some("CR"); 4]);
        let mixed = shares([Some("CR"), Some("CT"), None, None]);
        assert_eq!(mixed.get("missing"), Some(&0.5));
        let half = shares([Some("CR"), Some("CT")]);
        let expected = -0.5 * 0.5_f64.ln() + (0.5 - 1e-4) * (0.5_f64 / 1e-4).ln();
        assert!(close(psi(&only_cr, &half), expected));
    }

    #[test]
    fn score_bins_are_tenths() {
        assert_eq!(score_bin(0.0), "0.0-0.1");
        assert_eq!(score_bin(0.35), "0.3-0.4");
        assert_eq!(score_bin(1.0), "0.9-1.0");
    }
}
