//! The reduced Dempster's rule that fuses the image and text branches'
//! binomial subjective-logic opinions about one label (present / absent).
//! The opinion itself, its invariants and trust discounting are in
//! `fusion_schemas::opinion`, re-exported here.
//!
//! Sources: A. Jøsang, *Subjective Logic* (Springer, 2016), Ch. 3 (binomial
//! opinions, projected probability, mapping to the Beta distribution) and
//! Ch. 14 (trust discounting); Z. Han, C. Zhang, H. Fu, J. T. Zhou, *Trusted
//! Multi-View Classification*, ICLR 2021, §3.1 (evidence to opinion with K
//! classes) and Definition 3.1 (reduced Dempster's combination).
//! Here K = 2: the label is present or absent.

use serde::{Deserialize, Serialize};

pub use fusion_schemas::opinion::{
    DEFAULT_BASE_RATE, EVIDENCE_LIMIT, Opinion, OpinionError, SUM_TOLERANCE,
};
pub(crate) use fusion_schemas::opinion::{check_evidence, check_in, check_non_negative};

/// Why two opinions could not be combined.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum FusionError {
    /// Total conflict, C = b₁d₂ + d₁b₂ = 1: two dogmatic opinions (u = 0) that
    /// contradict each other. Dempster's rule is undefined (division by
    /// 1 − C = 0).
    #[error("total conflict between opinions: Dempster's rule is undefined")]
    TotalConflict,
    /// The opinions have different base rates; the reduced rule has no base
    /// rate of its own, so it only combines opinions about the same prior.
    #[error(
        "base rates differ ({left} vs {right}); opinions about one label must share its base rate"
    )]
    BaseRateMismatch {
        /// Base rate of the left opinion.
        left: f64,
        /// Base rate of the right opinion.
        right: f64,
    },
    /// [`combine_all`] was given no opinions.
    #[error("no opinions to combine")]
    NoOpinions,
}

/// The result of combining two opinions with [`combine`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Combination {
    /// The combined opinion ω₁ ⊕ ω₂.
    pub opinion: Opinion,
    /// Conflict C = b₁d₂ + d₁b₂ ∈ [0, 1) between the two inputs
    /// (Han et al. 2021, Definition 3.1): the mass the rule discarded.
    pub conflict: f64,
}

/// Reduced Dempster's rule of combination for two binomial opinions
/// (Han et al. 2021, Definition 3.1, with K = 2):
///
/// C = b₁d₂ + d₁b₂,
/// b = (b₁b₂ + b₁u₂ + b₂u₁)/(1 − C),
/// d = (d₁d₂ + d₁u₂ + d₂u₁)/(1 − C),
/// u = u₁u₂/(1 − C).
///
/// The base rate of the result is the inputs' shared base rate.
///
/// Properties relied on by callers and tested: the vacuous opinion is the
/// neutral element, returned bitwise (vacuous ⊕ ω = ω ⊕ vacuous = ω, with
/// conflict 0); the rule is commutative bitwise and associative up to
/// rounding.
///
/// Numerics: for valid opinions 1 − C equals the agreeing mass
/// (b₁b₂ + b₁u₂ + b₂u₁) + (d₁d₂ + d₁u₂ + d₂u₁) + u₁u₂ exactly in real
/// arithmetic. That sum is used as the normaliser, so the result sums to 1 up
/// to rounding, and total conflict is detected as "no agreeing mass" instead
/// of by 1 − C cancelling to a tiny number.
///
/// # Errors
/// [`FusionError::BaseRateMismatch`] if the base rates are not equal (exact
/// comparison; checked before the vacuous short-circuit);
/// [`FusionError::TotalConflict`] if C = 1.
pub fn combine(left: &Opinion, right: &Opinion) -> Result<Combination, FusionError> {
    if left.base_rate() != right.base_rate() {
        return Err(FusionError::BaseRateMismatch {
            left: left.base_rate(),
            right: right.base_rate(),
        });
    }
    if left.is_vacuous() {
        return Ok(Combination {
            opinion: *right,
            conflict: 0.0,
        });
    }
    if right.is_vacuous() {
        return Ok(Combination {
            opinion: *left,
            conflict: 0.0,
        });
    }
    let (b1, d1, u1) = (left.belief(), left.disbelief(), left.uncertainty());
    let (b2, d2, u2) = (right.belief(), right.disbelief(), right.uncertainty());
    // Each sum is written so swapping the operands swaps the operands of
    // commutative + and ×, which makes the rule commutative bit for bit.
    let conflict = b1 * d2 + d1 * b2;
    let b_mass = b1 * b2 + (b1 * u2 + u1 * b2);
    let d_mass = d1 * d2 + (d1 * u2 + u1 * d2);
    let u_mass = u1 * u2;
    let agreeing = b_mass + d_mass + u_mass;
    if agreeing <= 0.0 {
        return Err(FusionError::TotalConflict);
    }
    Ok(Combination {
        opinion: Opinion::from_normalised(
            b_mass / agreeing,
            d_mass / agreeing,
            u_mass / agreeing,
            left.base_rate(),
        ),
        conflict: conflict.clamp(0.0, 1.0),
    })
}

/// The result of folding several opinions with [`combine_all`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FusedOpinion {
    /// ((ω₁ ⊕ ω₂) ⊕ ω₃) ⊕ … ⊕ ωₙ.
    pub opinion: Opinion,
    /// The conflict of each pairwise step, length n − 1: `conflicts[i]` is
    /// C between the running combination of ω₁…ωᵢ₊₁ and ωᵢ₊₂. With two
    /// branches (image, text) it holds the single C between them. Each value
    /// is in [0, 1).
    pub conflicts: Vec<f64>,
}

impl FusedOpinion {
    /// The largest step conflict, 0 when a single opinion was folded. This is
    /// the value an [`crate::AbstainPolicy`] compares with its `max_conflict`.
    #[must_use]
    pub fn max_conflict(&self) -> f64 {
        self.conflicts.iter().copied().fold(0.0, f64::max)
    }
}

/// Combines n ≥ 1 opinions by folding [`combine`] from the left and reports
/// the conflict of every step (see [`FusedOpinion::conflicts`]). Because the
/// rule is associative the order only changes the result by rounding, but the
/// reported step conflicts do depend on the order.
///
/// # Errors
/// [`FusionError::NoOpinions`] for an empty slice, otherwise any error of
/// [`combine`] at the first step that fails.
pub fn combine_all(opinions: &[Opinion]) -> Result<FusedOpinion, FusionError> {
    let (first, rest) = opinions.split_first().ok_or(FusionError::NoOpinions)?;
    let mut conflicts = Vec::with_capacity(rest.len());
    let mut acc = *first;
    for next in rest {
        let step = combine(&acc, next)?;
        conflicts.push(step.conflict);
        acc = step.opinion;
    }
    Ok(FusedOpinion {
        opinion: acc,
        conflicts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    fn op(b: f64, d: f64, u: f64) -> Opinion {
        Opinion::new(b, d, u, 0.5).unwrap()
    }

    /// SplitMix64 (Steele, Lea, Flood 2014): a fixed-seed generator so the
    /// property tests are reproducible without a dependency.
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
        fn unit(&mut self) -> f64 {
            (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
        }

        /// Uniform on the simplex b + d + u = 1 (sorted-uniform spacings),
        /// with a few vacuous and dogmatic opinions mixed in.
        fn opinion(&mut self) -> Opinion {
            match self.next_u64() % 20 {
                0 => Opinion::vacuous(),
                1 => Opinion::from_evidence(self.unit() * 50.0, 0.0).unwrap(),
                2 => {
                    let b = self.unit();
                    op(b, 1.0 - b, 0.0)
                }
                _ => {
                    let (x, y) = (self.unit(), self.unit());
                    let (lo, hi) = if x < y { (x, y) } else { (y, x) };
                    op(lo, hi - lo, 1.0 - hi)
                }
            }
        }
    }

    #[test]
    fn constructor_accepts_valid_and_rejects_invalid() {
        let o = Opinion::new(0.6, 0.2, 0.2, 0.3).unwrap();
        assert_eq!(
            (o.belief(), o.disbelief(), o.uncertainty(), o.base_rate()),
            (0.6, 0.2, 0.2, 0.3)
        );
        assert!(matches!(
            Opinion::new(f64::NAN, 0.5, 0.5, 0.5),
            Err(OpinionError::OutOfDomain { name: "belief", .. })
        ));
        assert!(matches!(
            Opinion::new(-0.1, 0.6, 0.5, 0.5),
            Err(OpinionError::OutOfDomain { .. })
        ));
        assert!(matches!(
            Opinion::new(0.5, 0.5, 0.0, 1.5),
            Err(OpinionError::OutOfDomain {
                name: "base_rate",
                ..
            })
        ));
        assert!(matches!(
            Opinion::new(0.5, 0.5, 0.1, 0.5),
            Err(OpinionError::NotNormalised { .. })
        ));
        // Within the 1e-9 tolerance is accepted, just outside is not.
        assert!(Opinion::new(0.5, 0.5, 5e-10, 0.5).is_ok());
        assert!(Opinion::new(0.5, 0.5, 2e-9, 0.5).is_err());
    }

    #[test]
    fn evidence_mapping_matches_hand_computation() {
        // e₊ = 8, e₋ = 2: S = 12, b = 8/12, d = 2/12, u = 2/12,
        // P = 8/12 + 0.5·2/12 = 9/12 = 0.75.
        let o = Opinion::from_evidence(8.0, 2.0).unwrap();
        assert!(close(o.belief(), 8.0 / 12.0, 1e-15));
        assert!(close(o.disbelief(), 2.0 / 12.0, 1e-15));
        assert!(close(o.uncertainty(), 2.0 / 12.0, 1e-15));
        assert!(close(o.projected_probability(), 0.75, 1e-15));
        // Base rate 0.2: P = 8/12 + 0.2·2/12 = 0.7.
        let o = o.with_base_rate(0.2).unwrap();
        assert!(close(o.projected_probability(), 0.7, 1e-15));
    }

    #[test]
    fn no_evidence_is_exactly_vacuous() {
        let o = Opinion::from_evidence(0.0, 0.0).unwrap();
        assert_eq!(o, Opinion::vacuous());
        assert!(o.is_vacuous());
        assert_eq!(o.projected_probability(), 0.5);
        assert_eq!(Opinion::default(), Opinion::vacuous());
    }

    #[test]
    fn evidence_rejects_negative_nan_and_overflow() {
        assert!(Opinion::from_evidence(-1.0, 0.0).is_err());
        assert!(Opinion::from_evidence(0.0, f64::NAN).is_err());
        assert!(Opinion::from_evidence(f64::INFINITY, 0.0).is_err());
        assert!(Opinion::from_evidence(f64::MAX, 0.0).is_err());
        let huge = Opinion::from_evidence(EVIDENCE_LIMIT, EVIDENCE_LIMIT).unwrap();
        assert_eq!(
            (huge.belief(), huge.disbelief(), huge.uncertainty()),
            (0.5, 0.5, 1e-300)
        );
    }

    #[test]
    fn discount_matches_formula() {
        // t = 0.5 on (0.6, 0.2, 0.2): b' = 0.3, d' = 0.1, u' = 1 − 0.4 = 0.6.
        let o = op(0.6, 0.2, 0.2).discount(0.5).unwrap();
        assert!(close(o.belief(), 0.3, 1e-15));
        assert!(close(o.disbelief(), 0.1, 1e-15));
        assert!(close(o.uncertainty(), 0.6, 1e-15));
        assert_eq!(o.base_rate(), 0.5);
    }

    #[test]
    fn discount_edges_and_errors() {
        let o = op(0.6, 0.2, 0.2).with_base_rate(0.3).unwrap();
        assert_eq!(o.discount(1.0).unwrap(), o);
        let none = o.discount(0.0).unwrap();
        assert!(none.is_vacuous());
        assert_eq!(none.uncertainty(), 1.0);
        assert_eq!(none.base_rate(), 0.3);
        assert!(o.discount(1.0 + 1e-12).is_err());
        assert!(o.discount(-0.1).is_err());
        assert!(o.discount(f64::NAN).is_err());
    }

    #[test]
    fn combine_matches_worked_example() {
        // C = 0.6·0.3 + 0.2·0.5 = 0.28; 1 − C = 0.72;
        // b = (0.30 + 0.12 + 0.10)/0.72, d = (0.06 + 0.04 + 0.06)/0.72,
        // u = 0.04/0.72.
        let c = combine(&op(0.6, 0.2, 0.2), &op(0.5, 0.3, 0.2)).unwrap();
        assert!(close(c.conflict, 0.28, 1e-15));
        assert!(close(c.opinion.belief(), 0.52 / 0.72, 1e-12));
        assert!(close(c.opinion.belief(), 0.722_222_222_222, 1e-12));
        assert!(close(c.opinion.disbelief(), 0.16 / 0.72, 1e-12));
        assert!(close(c.opinion.disbelief(), 0.222_222_222_222, 1e-12));
        assert!(close(c.opinion.uncertainty(), 0.04 / 0.72, 1e-12));
        assert!(close(c.opinion.uncertainty(), 0.055_555_555_556, 1e-12));
    }

    #[test]
    fn vacuous_is_bitwise_neutral() {
        let w = Opinion::new(0.1 + 0.2, 0.4, 1.0 - 0.7, 0.5).unwrap();
        let v = Opinion::vacuous();
        assert_eq!(combine(&v, &w).unwrap().opinion, w);
        assert_eq!(combine(&w, &v).unwrap().opinion, w);
        assert_eq!(combine(&v, &w).unwrap().conflict, 0.0);
        assert_eq!(combine(&v, &v).unwrap().opinion, v);
    }

    #[test]
    fn total_conflict_is_an_error_not_nan() {
        let yes = op(1.0, 0.0, 0.0);
        let no = op(0.0, 1.0, 0.0);
        assert_eq!(combine(&yes, &no), Err(FusionError::TotalConflict));
        assert_eq!(combine(&no, &yes), Err(FusionError::TotalConflict));
        // Dogmatic but agreeing, or partly conflicting, is fine.
        let c = combine(&yes, &op(0.5, 0.5, 0.0)).unwrap();
        assert_eq!(c.conflict, 0.5);
        assert_eq!(c.opinion.belief(), 1.0);
    }

    #[test]
    fn base_rates_must_match() {
        let a = op(0.6, 0.2, 0.2);
        let b = op(0.5, 0.3, 0.2).with_base_rate(0.1).unwrap();
        assert_eq!(
            combine(&a, &b),
            Err(FusionError::BaseRateMismatch {
                left: 0.5,
                right: 0.1
            })
        );
        let c = combine(&a.with_base_rate(0.1).unwrap(), &b).unwrap();
        assert_eq!(c.opinion.base_rate(), 0.1);
    }

    #[test]
    fn combine_all_folds_left_and_reports_step_conflicts() {
        let (a, b, c) = (op(0.6, 0.2, 0.2), op(0.5, 0.3, 0.2), op(0.1, 0.7, 0.2));
        let fused = combine_all(&[a, b, c]).unwrap();
        let ab = combine(&a, &b).unwrap();
        let abc = combine(&ab.opinion, &c).unwrap();
        assert_eq!(fused.opinion, abc.opinion);
        assert_eq!(fused.conflicts, vec![ab.conflict, abc.conflict]);
        // Second step: C = b·0.7 + d·0.1 with (b, d) = (0.52, 0.16)/0.72.
        assert!(close(abc.conflict, (0.52 * 0.7 + 0.16 * 0.1) / 0.72, 1e-12));
        assert_eq!(fused.max_conflict(), abc.conflict.max(ab.conflict));

        let single = combine_all(&[a]).unwrap();
        assert_eq!(single.opinion, a);
        assert!(single.conflicts.is_empty());
        assert_eq!(single.max_conflict(), 0.0);
        assert_eq!(combine_all(&[]), Err(FusionError::NoOpinions));
    }

    #[test]
    fn property_commutative_associative_normalised() {
        let mut rng = SplitMix64(0x5EED_0FF0_510F);
        let mut checked = 0;
        for _ in 0..5_000 {
            let (x, y, z) = (rng.opinion(), rng.opinion(), rng.opinion());
            let (Ok(xy), Ok(yx)) = (combine(&x, &y), combine(&y, &x)) else {
                continue;
            };
            assert_eq!(xy, yx, "commutativity (bitwise) for {x:?} {y:?}");
            let o = xy.opinion;
            assert!(close(
                o.belief() + o.disbelief() + o.uncertainty(),
                1.0,
                1e-12
            ));
            assert!(Opinion::new(o.belief(), o.disbelief(), o.uncertainty(), 0.5).is_ok());
            assert!((0.0..1.0).contains(&xy.conflict));

            let left = combine(&xy.opinion, &z);
            let right = combine(&y, &z).and_then(|yz| combine(&x, &yz.opinion));
            match (left, right) {
                (Ok(l), Ok(r)) => {
                    let (l, r) = (l.opinion, r.opinion);
                    assert!(close(l.belief(), r.belief(), 1e-9), "{x:?} {y:?} {z:?}");
                    assert!(close(l.disbelief(), r.disbelief(), 1e-9));
                    assert!(close(l.uncertainty(), r.uncertainty(), 1e-9));
                    checked += 1;
                }
                (Err(l), Err(r)) => assert_eq!(l, r),
                (l, r) => panic!("associativity: {l:?} vs {r:?} for {x:?} {y:?} {z:?}"),
            }
        }
        assert!(checked > 4_000, "only {checked} triples checked");
    }

    #[test]
    fn serde_shape_and_round_trip() {
        let o = Opinion::from_evidence(8.0, 2.0).unwrap();
        let json = serde_json::to_value(o).unwrap();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        assert_eq!(
            keys.len(),
            5,
            "belief, disbelief, uncertainty, base_rate, probability"
        );
        assert_eq!(json["probability"], 0.75);
        let back: Opinion = serde_json::from_value(json).unwrap();
        assert_eq!(back, o);

        let no_p = r#"{"belief":0.6,"disbelief":0.2,"uncertainty":0.2,"base_rate":0.5}"#;
        assert_eq!(
            serde_json::from_str::<Opinion>(no_p).unwrap(),
            op(0.6, 0.2, 0.2)
        );
        let bad_sum = r#"{"belief":0.6,"disbelief":0.6,"uncertainty":0.2,"base_rate":0.5}"#;
        assert!(serde_json::from_str::<Opinion>(bad_sum).is_err());
        let bad_p =
            r#"{"belief":0.6,"disbelief":0.2,"uncertainty":0.2,"base_rate":0.5,"probability":0.9}"#;
        assert!(serde_json::from_str::<Opinion>(bad_p).is_err());

        let c = combine(&op(0.6, 0.2, 0.2), &op(0.5, 0.3, 0.2)).unwrap();
        let back: Combination = serde_json::from_str(&serde_json::to_string(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }
}
