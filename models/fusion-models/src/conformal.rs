//! Split conformal prediction for one binary label: from n held-out
//! calibration cases, a threshold q̂ such that the prediction set built from a
//! new case's probability holds its true class with probability ≥ 1 − α
//! (marginally, for exchangeable data).
//!
//! Class-conditional (Mondrian) calibration fits one q̂ per true class, so
//! the guarantee holds for the positives of a rare finding on their own, not
//! only on average over cases that are nearly all negative (Vovk, Gammerman
//! & Shafer 2005, §4.5, Mondrian conformal predictors; Angelopoulos & Bates
//! 2021, §4.1, class-conditional conformal). With one marginal q̂ fitted
//! where 0.4 % of cases are positive, 90 % coverage is met by the negatives
//! alone and a positive's set can be empty nearly always.
//!
//! Sources: V. Vovk, A. Gammerman, G. Shafer, *Algorithmic Learning in a
//! Random World* (2005); A. N. Angelopoulos, S. Bates, *A Gentle Introduction
//! to Conformal Prediction and Distribution-Free Uncertainty Quantification*
//! (2021), §1: score s = 1 − f(X)_Y, q̂ = the ⌈(n+1)(1−α)⌉/n empirical
//! quantile of the scores, set C(X) = {y : 1 − f(X)_y ≤ q̂}, and Theorem 1
//! (coverage).

use serde::{Deserialize, Serialize};

pub use fusion_schemas::{BinaryClass, PredictionSet};

/// Why conformal calibration or prediction refused its input.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum ConformalError {
    /// No calibration scores were given.
    #[error("no calibration scores given")]
    Empty,
    /// A score or probability is not a finite number in [0, 1].
    #[error("{name} at index {index} is {value}, expected a number in [0, 1]")]
    OutOfRange {
        /// `"score"`, `"probability"` or `"qhat"`.
        name: &'static str,
        /// Position in the input slice (0 for a single value).
        index: usize,
        /// The refused value.
        value: f64,
    },
    /// α is not in the open interval (0, 1).
    #[error("alpha = {0} must be in (0, 1)")]
    InvalidAlpha(f64),
    /// Class-conditional thresholds whose case counts do not add up to n.
    #[error("class-conditional counts {present} present + {absent} absent differ from n = {n}")]
    ClassCounts {
        /// Positive calibration cases.
        present: usize,
        /// Negative calibration cases.
        absent: usize,
        /// All calibration cases.
        n: usize,
    },
    /// A threshold for one class was given without the other's.
    #[error("class-conditional thresholds need both \"present\" and \"absent\"")]
    OneClassOnly,
}

/// Nonconformity score s = 1 − P(true class) ∈ [0, 1] of one case, where
/// `p_present` is the model's probability of "present" and P(absent) =
/// 1 − `p_present` (Angelopoulos & Bates 2021, §1).
///
/// # Errors
/// [`ConformalError::OutOfRange`] unless `p_present` is finite and in [0, 1].
pub fn nonconformity_score(p_present: f64, present: bool) -> Result<f64, ConformalError> {
    let p = check_unit("probability", 0, p_present)?;
    Ok(score_of(p, present))
}

/// The one formula for scores, used both when calibrating and when building
/// sets so that the comparison s ≤ q̂ sees identically computed numbers.
fn score_of(p_present: f64, present: bool) -> f64 {
    // For "absent", 1 − P(absent) = 1 − (1 − p) = p; p itself avoids a
    // double rounding.
    if present { 1.0 - p_present } else { p_present }
}

fn check_unit(name: &'static str, index: usize, value: f64) -> Result<f64, ConformalError> {
    if value.is_finite() && (0.0..=1.0).contains(&value) {
        Ok(value)
    } else {
        Err(ConformalError::OutOfRange { name, index, value })
    }
}

/// The 1-based rank k = ⌈(n + 1)(1 − α)⌉ of the calibration score used as q̂,
/// or `None` when k > n (too few cases for level α: q̂ is then 1 and every
/// set is full). Requires α ∈ (0, 1).
///
/// (n + 1)(1 − α) is computed in floating point, where e.g. α = 0.7, n = 9
/// gives 3.0000000000000004 instead of 3; it is lowered by a relative 1e-12
/// before rounding up so that such decimal α values get the rank exact
/// arithmetic gives.
///
/// # Errors
/// [`ConformalError::InvalidAlpha`] unless 0 < α < 1.
pub fn quantile_rank(n: usize, alpha: f64) -> Result<Option<usize>, ConformalError> {
    if !(alpha > 0.0 && alpha < 1.0) {
        return Err(ConformalError::InvalidAlpha(alpha));
    }
    let x = (n as f64 + 1.0) * (1.0 - alpha);
    // x > 0 and finite, so the truncating cast of its ceiling is exact.
    let k = (x - x * 1e-12).ceil() as usize;
    Ok((k <= n).then_some(k))
}

/// A fitted split-conformal threshold for one label.
///
/// * `qhat` q̂ ∈ [0, 1]: the k-th smallest calibration score,
///   k = ⌈(n + 1)(1 − α)⌉, or 1.0 when k > n;
/// * `alpha` α ∈ (0, 1): target miscoverage;
/// * `n` ≥ 1: number of calibration cases.
///
/// Guarantee (Angelopoulos & Bates 2021, Thm. 1): for a new case exchangeable
/// with the calibration cases, P(true class ∈ set) ≥ 1 − α, and ≤ 1 − α +
/// 1/(n + 1) when scores have no ties.
///
/// When class-conditional ([`ConformalCalibrator::fit_class_conditional`]),
/// it also holds one threshold per true class, and sets are built from those
/// (the marginal q̂ is kept for reporting): P(present ∈ set | present) ≥ 1 − α
/// and P(absent ∈ set | absent) ≥ 1 − α.
///
/// Serialised as `{"qhat": q̂, "alpha": α, "n": n}`, with
/// `"present": {"qhat", "n"}` and `"absent": {"qhat", "n"}` when
/// class-conditional; reading re-checks the ranges.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "CalibratorRecord", into = "CalibratorRecord")]
pub struct ConformalCalibrator {
    qhat: f64,
    alpha: f64,
    n: usize,
    by_class: Option<ClassThresholds>,
}

/// The threshold of one true class in class-conditional calibration.
///
/// * `qhat` q̂ ∈ [0, 1]: the k-th smallest score of the class's calibration
///   cases, k = ⌈(n + 1)(1 − α)⌉, or 1.0 when k > n (too few cases of the
///   class: it is in every set);
/// * `n` ≥ 0: calibration cases of the class.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClassThreshold {
    /// q̂ of the class.
    pub qhat: f64,
    /// Calibration cases of the class.
    pub n: usize,
}

/// Per-class thresholds (Mondrian taxonomy by the true class).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ClassThresholds {
    /// For "present": scores 1 − p of the positive calibration cases.
    pub present: ClassThreshold,
    /// For "absent": scores p of the negative calibration cases.
    pub absent: ClassThreshold,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CalibratorRecord {
    qhat: f64,
    alpha: f64,
    n: usize,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    present: Option<ClassThreshold>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    absent: Option<ClassThreshold>,
}

impl From<ConformalCalibrator> for CalibratorRecord {
    fn from(c: ConformalCalibrator) -> Self {
        Self {
            qhat: c.qhat,
            alpha: c.alpha,
            n: c.n,
            present: c.by_class.map(|b| b.present),
            absent: c.by_class.map(|b| b.absent),
        }
    }
}

impl TryFrom<CalibratorRecord> for ConformalCalibrator {
    type Error = ConformalError;

    fn try_from(r: CalibratorRecord) -> Result<Self, Self::Error> {
        let qhat = check_unit("qhat", 0, r.qhat)?;
        quantile_rank(r.n, r.alpha)?;
        if r.n == 0 {
            return Err(ConformalError::Empty);
        }
        let by_class = match (r.present, r.absent) {
            (None, None) => None,
            (Some(present), Some(absent)) => {
                check_unit("qhat", 0, present.qhat)?;
                check_unit("qhat", 1, absent.qhat)?;
                if present.n + absent.n != r.n {
                    return Err(ConformalError::ClassCounts {
                        present: present.n,
                        absent: absent.n,
                        n: r.n,
                    });
                }
                Some(ClassThresholds { present, absent })
            }
            _ => return Err(ConformalError::OneClassOnly),
        };
        Ok(Self {
            qhat,
            alpha: r.alpha,
            n: r.n,
            by_class,
        })
    }
}

/// q̂ of one class's scores: the k-th smallest, or 1.0 when the class has
/// too few cases for level α (its label is then in every set).
fn class_threshold(mut scores: Vec<f64>, alpha: f64) -> Result<ClassThreshold, ConformalError> {
    let n = scores.len();
    let qhat = match quantile_rank(n, alpha)? {
        Some(k) => {
            scores.sort_by(f64::total_cmp);
            scores[k - 1]
        }
        None => 1.0,
    };
    Ok(ClassThreshold { qhat, n })
}

impl ConformalCalibrator {
    /// Fits q̂ from nonconformity scores s = 1 − P(true class) of n ≥ 1
    /// calibration cases at miscoverage `alpha` (see the type's docs).
    ///
    /// # Errors
    /// [`ConformalError::Empty`] for no scores,
    /// [`ConformalError::OutOfRange`] for a score outside [0, 1] or NaN,
    /// [`ConformalError::InvalidAlpha`] unless 0 < α < 1.
    pub fn from_scores(scores: &[f64], alpha: f64) -> Result<Self, ConformalError> {
        let rank = quantile_rank(scores.len(), alpha)?;
        if scores.is_empty() {
            return Err(ConformalError::Empty);
        }
        for (index, &s) in scores.iter().enumerate() {
            check_unit("score", index, s)?;
        }
        let qhat = match rank {
            Some(k) => {
                let mut sorted = scores.to_vec();
                sorted.sort_by(f64::total_cmp);
                sorted[k - 1]
            }
            None => 1.0,
        };
        Ok(Self {
            qhat,
            alpha,
            n: scores.len(),
            by_class: None,
        })
    }

    /// Fits q̂ from calibration pairs (p_present, present): the model's
    /// probability of "present" and the true label; scores are
    /// [`nonconformity_score`]s.
    ///
    /// # Errors
    /// As [`ConformalCalibrator::from_scores`], with
    /// [`ConformalError::OutOfRange`] naming the offending probability.
    pub fn fit(pairs: &[(f64, bool)], alpha: f64) -> Result<Self, ConformalError> {
        let scores = pairs
            .iter()
            .enumerate()
            .map(|(index, &(p, present))| {
                check_unit("probability", index, p).map(|p| score_of(p, present))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_scores(&scores, alpha)
    }

    /// Fits class-conditional (Mondrian) thresholds from calibration pairs
    /// (p_present, present): q̂ of "present" from the positives' scores
    /// 1 − p, q̂ of "absent" from the negatives' scores p, each at level α
    /// (see the module docs); the marginal q̂ of all pairs is kept for
    /// reporting. A class with fewer than ⌈1/α⌉ − 1 cases gets q̂ = 1: it is
    /// in every set, the honest answer when its coverage cannot be
    /// guaranteed.
    ///
    /// # Errors
    /// As [`ConformalCalibrator::fit`].
    pub fn fit_class_conditional(
        pairs: &[(f64, bool)],
        alpha: f64,
    ) -> Result<Self, ConformalError> {
        let marginal = Self::fit(pairs, alpha)?;
        let scores = |class: bool| -> Vec<f64> {
            pairs
                .iter()
                .filter(|&&(_, y)| y == class)
                .map(|&(p, y)| score_of(p, y))
                .collect()
        };
        Ok(Self {
            by_class: Some(ClassThresholds {
                present: class_threshold(scores(true), alpha)?,
                absent: class_threshold(scores(false), alpha)?,
            }),
            ..marginal
        })
    }

    /// The per-class thresholds, when fitted class-conditionally.
    #[must_use]
    pub const fn class_conditional(&self) -> Option<ClassThresholds> {
        self.by_class
    }

    /// The threshold q̂ ∈ [0, 1].
    #[must_use]
    pub const fn qhat(&self) -> f64 {
        self.qhat
    }

    /// The target miscoverage α ∈ (0, 1).
    #[must_use]
    pub const fn alpha(&self) -> f64 {
        self.alpha
    }

    /// The number of calibration cases n ≥ 1.
    #[must_use]
    pub const fn n(&self) -> usize {
        self.n
    }

    /// The prediction set for a case with probability `p_present` of
    /// "present": each class y with 1 − P(y) ≤ q̂, i.e. "present" when
    /// 1 − p ≤ q̂ and "absent" when p ≤ q̂, where q̂ is the class's own
    /// threshold when class-conditional. See [`PredictionSet`] for the
    /// meaning of the empty set.
    ///
    /// # Errors
    /// [`ConformalError::OutOfRange`] unless `p_present` is finite and in
    /// [0, 1] (a NaN must not silently become an empty set).
    pub fn predict_set(&self, p_present: f64) -> Result<PredictionSet, ConformalError> {
        let p = check_unit("probability", 0, p_present)?;
        let (q_present, q_absent) = match self.by_class {
            Some(b) => (b.present.qhat, b.absent.qhat),
            None => (self.qhat, self.qhat),
        };
        Ok(PredictionSet::new(
            score_of(p, true) <= q_present,
            score_of(p, false) <= q_absent,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEN_SCORES: [f64; 10] = [0.3, 0.1, 0.7, 0.2, 0.9, 0.5, 0.4, 0.8, 0.6, 0.05];

    fn set(present: bool, absent: bool) -> PredictionSet {
        PredictionSet::new(present, absent)
    }

    #[test]
    fn quantile_rank_hand_computed() {
        // ⌈10·0.9⌉ = 9, ⌈20·0.9⌉ = 18, ⌈11·0.8⌉ = ⌈8.8⌉ = 9, ⌈5·0.9⌉ = 5 > 4.
        assert_eq!(quantile_rank(9, 0.1), Ok(Some(9)));
        assert_eq!(quantile_rank(19, 0.1), Ok(Some(18)));
        assert_eq!(quantile_rank(10, 0.2), Ok(Some(9)));
        assert_eq!(quantile_rank(4, 0.1), Ok(None));
        assert_eq!(quantile_rank(1, 0.5), Ok(Some(1)));
        // Exactly integral in decimal, not in binary: ⌈10·0.3⌉ = 3,
        // ⌈20·0.05⌉ = 1.
        assert_eq!(quantile_rank(9, 0.7), Ok(Some(3)));
        assert_eq!(quantile_rank(19, 0.95), Ok(Some(1)));
        assert_eq!(
            quantile_rank(10, 0.0),
            Err(ConformalError::InvalidAlpha(0.0))
        );
        assert_eq!(
            quantile_rank(10, 1.0),
            Err(ConformalError::InvalidAlpha(1.0))
        );
        assert!(quantile_rank(10, f64::NAN).is_err());
    }

    #[test]
    fn qhat_is_kth_smallest_score() {
        // Sorted: 0.05 0.1 0.2 0.3 0.4 0.5 0.6 0.7 0.8 0.9.
        let c = ConformalCalibrator::from_scores(&TEN_SCORES, 0.2).unwrap();
        assert_eq!((c.qhat(), c.alpha(), c.n()), (0.8, 0.2, 10));
        // α = 0.5: k = ⌈5.5⌉ = 6 → 0.5. α = 0.9: k = ⌈1.1⌉ = 2 → 0.1.
        assert_eq!(
            ConformalCalibrator::from_scores(&TEN_SCORES, 0.5)
                .unwrap()
                .qhat(),
            0.5
        );
        assert_eq!(
            ConformalCalibrator::from_scores(&TEN_SCORES, 0.9)
                .unwrap()
                .qhat(),
            0.1
        );
        // α = 0.05: k = ⌈10.45⌉ = 11 > 10 → q̂ = 1.
        assert_eq!(
            ConformalCalibrator::from_scores(&TEN_SCORES, 0.05)
                .unwrap()
                .qhat(),
            1.0
        );
    }

    #[test]
    fn prediction_sets_hand_computed() {
        let wide = ConformalCalibrator::from_scores(&TEN_SCORES, 0.2).unwrap(); // q̂ = 0.8
        let mid = ConformalCalibrator::from_scores(&TEN_SCORES, 0.5).unwrap(); // q̂ = 0.5
        let narrow = ConformalCalibrator::from_scores(&TEN_SCORES, 0.9).unwrap(); // q̂ = 0.1
        // p = 0.7: scores 0.3 (present), 0.7 (absent).
        assert_eq!(wide.predict_set(0.7).unwrap(), set(true, true));
        assert_eq!(mid.predict_set(0.7).unwrap(), set(true, false));
        assert_eq!(mid.predict_set(0.2).unwrap(), set(false, true));
        // Ties with q̂ are included: p = 0.5 gives scores 0.5 and 0.5.
        assert_eq!(mid.predict_set(0.5).unwrap(), set(true, true));
        // q̂ = 0.1 < min(p, 1 − p) = 0.4: empty.
        assert!(narrow.predict_set(0.6).unwrap().is_empty());
        assert_eq!(narrow.predict_set(0.95).unwrap(), set(true, false));
        assert!(mid.predict_set(f64::NAN).is_err());
        assert!(mid.predict_set(1.5).is_err());
    }

    #[test]
    fn fit_from_pairs_uses_true_class_scores() {
        // Scores: 1 − 0.9 = 0.1, 1 − 0.7 = 0.3, 0.2 (absent, p = 0.2),
        // 0.6 (absent, p = 0.6). n = 4, α = 0.5: k = ⌈2.5⌉ = 3 → 0.3.
        let pairs = [(0.9, true), (0.7, true), (0.2, false), (0.6, false)];
        let c = ConformalCalibrator::fit(&pairs, 0.5).unwrap();
        assert!((c.qhat() - 0.3).abs() < 1e-15);
        assert!((nonconformity_score(0.2, false).unwrap() - 0.2).abs() < 1e-15);
        assert!(nonconformity_score(-0.1, true).is_err());
        assert!(matches!(
            ConformalCalibrator::fit(&[(0.5, true), (2.0, false)], 0.1),
            Err(ConformalError::OutOfRange {
                name: "probability",
                index: 1,
                ..
            })
        ));
    }

    #[test]
    fn fit_rejects_bad_input() {
        assert_eq!(
            ConformalCalibrator::from_scores(&[], 0.1),
            Err(ConformalError::Empty)
        );
        assert_eq!(
            ConformalCalibrator::fit(&[], 0.1),
            Err(ConformalError::Empty)
        );
        assert_eq!(
            ConformalCalibrator::from_scores(&[0.1], 1.5),
            Err(ConformalError::InvalidAlpha(1.5))
        );
        assert!(ConformalCalibrator::from_scores(&[0.1, f64::NAN], 0.1).is_err());
        assert!(ConformalCalibrator::from_scores(&[0.1, -0.2], 0.1).is_err());
    }

    #[test]
    fn empirical_coverage_on_synthetic_data() {
        // SplitMix64, fixed seed. Each case: true risk π ~ U(0, 1), label
        // ~ Bernoulli(π), model probability = π blurred by uniform noise of
        // half-width 0.2 and clipped: informative but imperfect.
        let mut state: u64 = 0xC0FF_EE00_D15E_A5E5;
        let mut unit = move || {
            state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = state;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut case = || {
            let risk = unit();
            let present = unit() < risk;
            let p = (risk + 0.4 * (unit() - 0.5)).clamp(0.0, 1.0);
            (p, present)
        };
        let (alpha, n_cal, n_test, trials) = (0.1, 200, 1_000, 40);
        let mut covered = 0_usize;
        let mut sizes = 0_usize;
        for _ in 0..trials {
            let cal: Vec<_> = (0..n_cal).map(|_| case()).collect();
            let c = ConformalCalibrator::fit(&cal, alpha).unwrap();
            for _ in 0..n_test {
                let (p, present) = case();
                let s = c.predict_set(p).unwrap();
                let truth = if present {
                    BinaryClass::Present
                } else {
                    BinaryClass::Absent
                };
                covered += usize::from(s.contains(truth));
                sizes += s.len();
            }
        }
        let total = (trials * n_test) as f64;
        let coverage = covered as f64 / total;
        // Thm. 1: 1 − α ≤ E[coverage] ≤ 1 − α + 1/(n + 1); the tolerance is
        // ~3 standard errors of the 40-trial average.
        assert!(coverage >= 1.0 - alpha - 0.01, "coverage {coverage}");
        assert!(
            coverage <= 1.0 - alpha + 1.0 / (n_cal as f64 + 1.0) + 0.01,
            "coverage {coverage}"
        );
        // The sets are informative: on average well below two classes.
        assert!((sizes as f64 / total) < 1.9);
    }

    #[test]
    fn serde_shapes() {
        let json = |s: PredictionSet| serde_json::to_string(&s).unwrap();
        assert_eq!(json(set(true, true)), r#"["present","absent"]"#);
        assert_eq!(json(set(true, false)), r#"["present"]"#);
        assert_eq!(json(set(false, true)), r#"["absent"]"#);
        assert_eq!(json(set(false, false)), "[]");
        let back: PredictionSet = serde_json::from_str(r#"["absent","present"]"#).unwrap();
        assert_eq!(back, set(true, true));
        assert!(serde_json::from_str::<PredictionSet>(r#"["present","present"]"#).is_err());
        assert!(serde_json::from_str::<PredictionSet>(r#"["maybe"]"#).is_err());

        let c = ConformalCalibrator::from_scores(&TEN_SCORES, 0.2).unwrap();
        let text = serde_json::to_string(&c).unwrap();
        assert_eq!(text, r#"{"qhat":0.8,"alpha":0.2,"n":10}"#);
        assert_eq!(
            serde_json::from_str::<ConformalCalibrator>(&text).unwrap(),
            c
        );
        assert!(
            serde_json::from_str::<ConformalCalibrator>(r#"{"qhat":0.8,"alpha":0,"n":10}"#)
                .is_err()
        );
        assert!(
            serde_json::from_str::<ConformalCalibrator>(r#"{"qhat":1.8,"alpha":0.1,"n":10}"#)
                .is_err()
        );
        assert!(
            serde_json::from_str::<ConformalCalibrator>(r#"{"qhat":0.8,"alpha":0.1,"n":0}"#)
                .is_err()
        );
    }

    /// Nine positives and nineteen negatives, α = 0.1.
    fn mondrian_pairs() -> Vec<(f64, bool)> {
        let positives = [0.9, 0.8, 0.3, 0.95, 0.6, 0.7, 0.85, 0.5, 0.75];
        let negatives = (1..=19).map(|i| f64::from(i) / 100.0);
        positives
            .iter()
            .map(|&p| (p, true))
            .chain(negatives.map(|p| (p, false)))
            .collect()
    }

    #[test]
    fn class_conditional_thresholds_hand_computed() {
        let c = ConformalCalibrator::fit_class_conditional(&mondrian_pairs(), 0.1).unwrap();
        let b = c.class_conditional().unwrap();
        // Positives: scores 1 − p; n = 9, k = ⌈10·0.9⌉ = 9: the largest,
        // 1 − 0.3.
        assert_eq!(b.present.n, 9);
        assert_eq!(b.present.qhat, 1.0 - 0.3);
        // Negatives: scores p = 0.01 … 0.19; n = 19, k = ⌈20·0.9⌉ = 18.
        assert_eq!(b.absent.n, 19);
        assert_eq!(b.absent.qhat, 0.18);
        // Marginal, for reporting: n = 28, k = ⌈29·0.9⌉ = 27, the second
        // largest of all 28 scores: 1 − 0.5.
        assert_eq!((c.qhat(), c.n()), (1.0 - 0.5, 28));
        // Sets use the class thresholds: p = 0.35 → 1 − p = 0.65 ≤ 0.7
        // (present), 0.35 > 0.18 (not absent).
        assert_eq!(c.predict_set(0.35).unwrap(), set(true, false));
        // p = 0.25: 0.75 > 0.7 and 0.25 > 0.18: empty.
        assert!(c.predict_set(0.25).unwrap().is_empty());
        // p = 0.1: 0.9 > 0.7; 0.1 ≤ 0.18: absent only.
        assert_eq!(c.predict_set(0.1).unwrap(), set(false, true));
        // The marginal q̂ alone would have called p = 0.35 empty (0.65 > 0.5,
        // 0.35 ≤ 0.5: absent only): the positives' own q̂ keeps "present".
        let marginal = ConformalCalibrator::fit(&mondrian_pairs(), 0.1).unwrap();
        assert_eq!(marginal.predict_set(0.35).unwrap(), set(false, true));
    }

    #[test]
    fn a_class_with_too_few_cases_is_in_every_set() {
        // Four positives: k = ⌈5·0.9⌉ = 5 > 4, q̂ = 1.
        let mut pairs = vec![(0.9, true), (0.2, true), (0.6, true), (0.05, true)];
        pairs.extend((1..=19).map(|i| (f64::from(i) / 100.0, false)));
        let c = ConformalCalibrator::fit_class_conditional(&pairs, 0.1).unwrap();
        assert_eq!(c.class_conditional().unwrap().present.qhat, 1.0);
        for p in [0.0, 0.01, 0.5, 1.0] {
            assert!(c.predict_set(p).unwrap().contains(BinaryClass::Present));
        }
        // No positives at all: the same.
        let negatives: Vec<_> = (1..=19).map(|i| (f64::from(i) / 100.0, false)).collect();
        let c = ConformalCalibrator::fit_class_conditional(&negatives, 0.1).unwrap();
        let b = c.class_conditional().unwrap();
        assert_eq!((b.present.qhat, b.present.n), (1.0, 0));
        assert!(c.predict_set(0.0).unwrap().contains(BinaryClass::Present));
    }

    #[test]
    fn class_conditional_coverage_holds_for_the_rare_class() {
        // 1 % positives with scores that overlap the negatives: the marginal
        // q̂ covers the negatives and leaves most positives out; Mondrian
        // covers ≥ 90 % of each class on fresh draws.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let mut uniform = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state >> 11) as f64 / (1u64 << 53) as f64
        };
        let mut draw = |n: usize| -> Vec<(f64, bool)> {
            (0..n)
                .map(|_| {
                    let y = uniform() < 0.01;
                    let p = if y {
                        0.2 + 0.6 * uniform()
                    } else {
                        0.3 * uniform()
                    };
                    (p, y)
                })
                .collect()
        };
        let calibration = draw(20_000);
        let test = draw(100_000);
        let coverage = |c: &ConformalCalibrator, class: bool| {
            let of_class: Vec<_> = test.iter().filter(|p| p.1 == class).collect();
            let covered = of_class
                .iter()
                .filter(|&&&(p, y)| {
                    c.predict_set(p).unwrap().contains(if y {
                        BinaryClass::Present
                    } else {
                        BinaryClass::Absent
                    })
                })
                .count();
            covered as f64 / of_class.len() as f64
        };
        let marginal = ConformalCalibrator::fit(&calibration, 0.1).unwrap();
        let mondrian = ConformalCalibrator::fit_class_conditional(&calibration, 0.1).unwrap();
        assert!(
            coverage(&marginal, true) < 0.5,
            "{}",
            coverage(&marginal, true)
        );
        for class in [true, false] {
            let c = coverage(&mondrian, class);
            assert!((0.88..0.93).contains(&c), "class {class}: {c}");
        }
    }

    #[test]
    fn class_conditional_serde_shape() {
        let c = ConformalCalibrator::fit_class_conditional(&mondrian_pairs(), 0.1).unwrap();
        let text = serde_json::to_string(&c).unwrap();
        assert!(
            text.contains(r#""present":{"qhat":0.7,"n":9},"absent":{"qhat":0.18,"n":19}"#),
            "{text}"
        );
        assert_eq!(
            serde_json::from_str::<ConformalCalibrator>(&text).unwrap(),
            c
        );
        let one = r#"{"qhat":0.5,"alpha":0.1,"n":28,"present":{"qhat":0.7,"n":9}}"#;
        assert_eq!(
            serde_json::from_str::<ConformalCalibrator>(one)
                .unwrap_err()
                .to_string(),
            "class-conditional thresholds need both \"present\" and \"absent\""
        );
        let counts = r#"{"qhat":0.5,"alpha":0.1,"n":28,"present":{"qhat":0.7,"n":9},"absent":{"qhat":0.18,"n":18}}"#;
        assert!(
            serde_json::from_str::<ConformalCalibrator>(counts)
                .unwrap_err()
                .to_string()
                .contains("9 present + 18 absent differ from n = 28")
        );
    }
}
