//! Abstention: decline to report a fused label when its opinion is too vacuous
//! or the branches disagreed too much, and say which threshold was passed.
//!
//! The two signals are the fused opinion's uncertainty (vacuity) u and the
//! Dempster conflict C between branches (Han et al., ICLR 2021, Definition
//! 3.1); see also Jøsang 2016, Ch. 12, on conflict as a signal distinct from
//! vacuity.

use serde::{Deserialize, Serialize};

use crate::opinion::{Opinion, OpinionError, check_in};

/// Thresholds above which a fused label is not reported. Both lie in [0, 1];
/// a threshold of 1 disables that check (u and C never exceed 1).
///
/// Serialised as `{"max_uncertainty": …, "max_conflict": …}`; deserialisation
/// re-checks the ranges and rejects unknown fields.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "PolicyRecord", into = "PolicyRecord")]
pub struct AbstainPolicy {
    max_uncertainty: f64,
    max_conflict: f64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyRecord {
    max_uncertainty: f64,
    max_conflict: f64,
}

impl From<AbstainPolicy> for PolicyRecord {
    fn from(p: AbstainPolicy) -> Self {
        Self {
            max_uncertainty: p.max_uncertainty,
            max_conflict: p.max_conflict,
        }
    }
}

impl TryFrom<PolicyRecord> for AbstainPolicy {
    type Error = OpinionError;

    fn try_from(r: PolicyRecord) -> Result<Self, Self::Error> {
        AbstainPolicy::new(r.max_uncertainty, r.max_conflict)
    }
}

pub use fusion_schemas::AbstainReason;

impl Default for AbstainPolicy {
    /// u > 0.5 or C > 0.5: used when no package supplies a policy.
    fn default() -> Self {
        Self {
            max_uncertainty: 0.5,
            max_conflict: 0.5,
        }
    }
}

impl AbstainPolicy {
    /// A policy abstaining when u > `max_uncertainty` or C > `max_conflict`.
    ///
    /// # Errors
    /// [`OpinionError::OutOfDomain`] unless both thresholds are finite and in
    /// [0, 1].
    pub fn new(max_uncertainty: f64, max_conflict: f64) -> Result<Self, OpinionError> {
        Ok(Self {
            max_uncertainty: check_in("max_uncertainty", max_uncertainty, 0.0, 1.0, "[0, 1]")?,
            max_conflict: check_in("max_conflict", max_conflict, 0.0, 1.0, "[0, 1]")?,
        })
    }

    /// The uncertainty threshold, in [0, 1].
    #[must_use]
    pub const fn max_uncertainty(&self) -> f64 {
        self.max_uncertainty
    }

    /// The conflict threshold, in [0, 1].
    #[must_use]
    pub const fn max_conflict(&self) -> f64 {
        self.max_conflict
    }

    /// `None` to report the label, or the reason to abstain. A threshold is
    /// passed when the value is strictly greater than it, so a value equal to
    /// the threshold is reported. `conflict` is the conflict of the fusion
    /// that produced `opinion` (e.g. [`crate::FusedOpinion::max_conflict`]);
    /// a NaN conflict counts as passed, so a bug upstream abstains rather than
    /// reports.
    #[must_use]
    pub fn evaluate(&self, opinion: &Opinion, conflict: f64) -> Option<AbstainReason> {
        let uncertainty = opinion.uncertainty();
        let too_vacuous = uncertainty > self.max_uncertainty;
        let too_conflicted = conflict.is_nan() || conflict > self.max_conflict;
        match (too_vacuous, too_conflicted) {
            (false, false) => None,
            (true, false) => Some(AbstainReason::HighUncertainty {
                uncertainty,
                max_uncertainty: self.max_uncertainty,
            }),
            (false, true) => Some(AbstainReason::HighConflict {
                conflict,
                max_conflict: self.max_conflict,
            }),
            (true, true) => Some(AbstainReason::HighUncertaintyAndConflict {
                uncertainty,
                max_uncertainty: self.max_uncertainty,
                conflict,
                max_conflict: self.max_conflict,
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_are_strict_and_named() {
        let policy = AbstainPolicy::new(0.5, 0.3).unwrap();
        let confident = Opinion::new(0.7, 0.1, 0.2, 0.5).unwrap();
        let vague = Opinion::new(0.2, 0.2, 0.6, 0.5).unwrap();
        let edge = Opinion::new(0.3, 0.2, 0.5, 0.5).unwrap();

        assert_eq!(policy.evaluate(&confident, 0.1), None);
        assert_eq!(policy.evaluate(&edge, 0.3), None);
        assert_eq!(
            policy.evaluate(&vague, 0.1),
            Some(AbstainReason::HighUncertainty {
                uncertainty: 0.6,
                max_uncertainty: 0.5
            })
        );
        assert_eq!(
            policy.evaluate(&confident, 0.31),
            Some(AbstainReason::HighConflict {
                conflict: 0.31,
                max_conflict: 0.3
            })
        );
        assert_eq!(
            policy.evaluate(&vague, 0.4),
            Some(AbstainReason::HighUncertaintyAndConflict {
                uncertainty: 0.6,
                max_uncertainty: 0.5,
                conflict: 0.4,
                max_conflict: 0.3
            })
        );
        assert!(matches!(
            policy.evaluate(&confident, f64::NAN),
            Some(AbstainReason::HighConflict { .. })
        ));
    }

    #[test]
    fn fused_example_abstains_on_conflict() {
        // The worked example of `combine`: C = 0.28, u = 0.0556.
        let fused = crate::combine_all(&[
            Opinion::new(0.6, 0.2, 0.2, 0.5).unwrap(),
            Opinion::new(0.5, 0.3, 0.2, 0.5).unwrap(),
        ])
        .unwrap();
        let strict = AbstainPolicy::new(0.5, 0.25).unwrap();
        assert!(matches!(
            strict.evaluate(&fused.opinion, fused.max_conflict()),
            Some(AbstainReason::HighConflict { .. })
        ));
        let lenient = AbstainPolicy::new(0.5, 0.3).unwrap();
        assert_eq!(lenient.evaluate(&fused.opinion, fused.max_conflict()), None);
        // Threshold 1 disables the uncertainty check, even for vacuous.
        let off = AbstainPolicy::new(1.0, 1.0).unwrap();
        assert_eq!(off.evaluate(&Opinion::vacuous(), 1.0), None);
    }

    #[test]
    fn policy_validation_and_serde() {
        assert!(AbstainPolicy::new(1.1, 0.2).is_err());
        assert!(AbstainPolicy::new(0.5, f64::NAN).is_err());
        let p: AbstainPolicy =
            serde_json::from_str(r#"{"max_uncertainty":0.5,"max_conflict":0.3}"#).unwrap();
        assert_eq!(p, AbstainPolicy::new(0.5, 0.3).unwrap());
        assert!(
            serde_json::from_str::<AbstainPolicy>(r#"{"max_uncertainty":2,"max_conflict":0.3}"#)
                .is_err()
        );
        let reason = AbstainReason::HighUncertainty {
            uncertainty: 0.6,
            max_uncertainty: 0.5,
        };
        let json = serde_json::to_string(&reason).unwrap();
        assert_eq!(
            json,
            r#"{"reason":"high_uncertainty","uncertainty":0.6,"max_uncertainty":0.5}"#
        );
        assert_eq!(
            serde_json::from_str::<AbstainReason>(&json).unwrap(),
            reason
        );
    }
}
