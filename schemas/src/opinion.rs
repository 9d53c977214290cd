//! Binomial subjective-logic opinions about one label (present / absent)
//! and the evidence they come from: the values every prediction carries,
//! with their invariants checked on construction and on reading. The
//! models (`fusion-models`) build and fuse them; the store keeps them in a
//! prediction's stored shape ([`crate::prediction`]).
//!
//! Sources: A. Jøsang, *Subjective Logic* (Springer, 2016), Ch. 3 (binomial
//! opinions, projected probability, mapping to the Beta distribution) and
//! Ch. 14 (trust discounting); Z. Han, C. Zhang, H. Fu, J. T. Zhou, *Trusted
//! Multi-View Classification*, ICLR 2021, §3.1 (evidence to opinion with K
//! classes). Here K = 2: the label is present or absent.

use serde::{Deserialize, Serialize};

/// Largest accepted |b + d + u − 1| when an opinion is built from numbers
/// supplied from outside (constructor, deserialisation).
pub const SUM_TOLERANCE: f64 = 1e-9;

/// Base rate used when none is given: the uninformative prior for K = 2
/// classes, 1/K (Han et al. 2021 use 1/K implicitly through S = Σ e + K).
pub const DEFAULT_BASE_RATE: f64 = 0.5;

/// Number of classes of a binomial opinion (present, absent); the `K` in
/// S = e₊ + e₋ + K of Han et al. 2021, §3.1.
const CLASSES: f64 = 2.0;

/// Why a number was refused by a constructor in this crate's opinion,
/// evidence and abstention code.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
pub enum OpinionError {
    /// A value is NaN, infinite, or outside the range it must lie in.
    #[error("{name} = {value} is outside its domain {domain}")]
    OutOfDomain {
        /// Which quantity, e.g. `"belief"` or `"trust"`.
        name: &'static str,
        /// The refused value.
        value: f64,
        /// The allowed range, e.g. `"[0, 1]"`.
        domain: &'static str,
    },
    /// belief + disbelief + uncertainty is not 1 within [`SUM_TOLERANCE`].
    #[error("belief + disbelief + uncertainty = {sum}, expected 1 within 1e-9")]
    NotNormalised {
        /// The offending sum.
        sum: f64,
    },
    /// A sample variance needs at least two samples.
    #[error("{n} sample(s) given, at least 2 are needed for a sample variance")]
    TooFewSamples {
        /// Number of samples given.
        n: usize,
    },
    /// The probability stored next to a deserialised opinion disagrees with
    /// b + a·u recomputed from its parts (a hand-edited or corrupt record).
    #[error("stored probability {stored} differs from b + a·u = {computed}")]
    ProbabilityMismatch {
        /// The stored value.
        stored: f64,
        /// b + a·u recomputed from the stored parts.
        computed: f64,
    },
}

/// Checks `value` is finite and in the closed interval [`lo`, `hi`].
///
/// # Errors
/// [`OpinionError::OutOfDomain`] naming `name` and `domain` otherwise.
pub fn check_in(
    name: &'static str,
    value: f64,
    lo: f64,
    hi: f64,
    domain: &'static str,
) -> Result<f64, OpinionError> {
    if value.is_finite() && value >= lo && value <= hi {
        Ok(value)
    } else {
        Err(OpinionError::OutOfDomain {
            name,
            value,
            domain,
        })
    }
}

/// Largest accepted evidence count or weight. Far above any real count, and
/// small enough that sums of a few of them (and S = e₊ + e₋ + 2) stay finite.
pub const EVIDENCE_LIMIT: f64 = 1e300;

/// Checks `value` is finite and ≥ 0.
///
/// # Errors
/// [`OpinionError::OutOfDomain`] otherwise.
pub fn check_non_negative(name: &'static str, value: f64) -> Result<f64, OpinionError> {
    check_in(name, value, 0.0, f64::MAX, "[0, ∞) and finite")
}

/// Checks `value` is an evidence count or weight: in [0, [`EVIDENCE_LIMIT`]].
///
/// # Errors
/// [`OpinionError::OutOfDomain`] otherwise.
pub fn check_evidence(name: &'static str, value: f64) -> Result<f64, OpinionError> {
    check_in(name, value, 0.0, EVIDENCE_LIMIT, "[0, 1e300]")
}

/// A binomial opinion ω = (b, d, u, a) about one label (Jøsang 2016, Ch. 3).
///
/// * `belief` b ∈ [0, 1]: mass for "present";
/// * `disbelief` d ∈ [0, 1]: mass for "absent";
/// * `uncertainty` u ∈ [0, 1]: mass left uncommitted (vacuity);
/// * `base_rate` a ∈ [0, 1]: prior probability of "present" used to
///   distribute u in the projected probability P = b + a·u.
///
/// Invariant: every part is finite and in [0, 1] and |b + d + u − 1| ≤ 1e-9.
///
/// Serialised (JSON) as
/// `{"belief": b, "disbelief": d, "uncertainty": u, "base_rate": a, "probability": P}`;
/// `probability` is derived and written for readers of stored records. On
/// reading it is optional, and when present must equal b + a·u within 1e-9.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "OpinionRecord", into = "OpinionRecord")]
pub struct Opinion {
    belief: f64,
    disbelief: f64,
    uncertainty: f64,
    base_rate: f64,
}

/// The stored shape of an [`Opinion`]; kept private so the invariant cannot be
/// bypassed.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OpinionRecord {
    belief: f64,
    disbelief: f64,
    uncertainty: f64,
    base_rate: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    probability: Option<f64>,
}

impl From<Opinion> for OpinionRecord {
    fn from(o: Opinion) -> Self {
        Self {
            belief: o.belief,
            disbelief: o.disbelief,
            uncertainty: o.uncertainty,
            base_rate: o.base_rate,
            probability: Some(o.projected_probability()),
        }
    }
}

impl TryFrom<OpinionRecord> for Opinion {
    type Error = OpinionError;

    fn try_from(r: OpinionRecord) -> Result<Self, Self::Error> {
        let o = Opinion::new(r.belief, r.disbelief, r.uncertainty, r.base_rate)?;
        if let Some(stored) = r.probability {
            let computed = o.projected_probability();
            if stored.is_nan() || (stored - computed).abs() > SUM_TOLERANCE {
                return Err(OpinionError::ProbabilityMismatch { stored, computed });
            }
        }
        Ok(o)
    }
}

impl Opinion {
    /// Builds an opinion from its four parts.
    ///
    /// # Errors
    /// [`OpinionError::OutOfDomain`] if any part is NaN, infinite or outside
    /// [0, 1]; [`OpinionError::NotNormalised`] if |b + d + u − 1| > 1e-9.
    /// The parts are stored as given (not renormalised).
    pub fn new(
        belief: f64,
        disbelief: f64,
        uncertainty: f64,
        base_rate: f64,
    ) -> Result<Self, OpinionError> {
        let b = check_in("belief", belief, 0.0, 1.0, "[0, 1]")?;
        let d = check_in("disbelief", disbelief, 0.0, 1.0, "[0, 1]")?;
        let u = check_in("uncertainty", uncertainty, 0.0, 1.0, "[0, 1]")?;
        let a = check_in("base_rate", base_rate, 0.0, 1.0, "[0, 1]")?;
        let sum = b + d + u;
        if (sum - 1.0).abs() > SUM_TOLERANCE {
            return Err(OpinionError::NotNormalised { sum });
        }
        Ok(Self::from_parts(b, d, u, a))
    }

    /// Builds an opinion from parts the caller computed to satisfy the
    /// invariant (each finite and in [0, 1], summing to 1 up to rounding),
    /// without checking them: for the fusion rule of `fusion-models`, whose
    /// normalised masses satisfy it by construction. Anything read from
    /// outside goes through [`Opinion::new`].
    #[must_use]
    pub const fn from_normalised(
        belief: f64,
        disbelief: f64,
        uncertainty: f64,
        base_rate: f64,
    ) -> Self {
        Self::from_parts(belief, disbelief, uncertainty, base_rate)
    }

    const fn from_parts(belief: f64, disbelief: f64, uncertainty: f64, a: f64) -> Self {
        Self {
            belief,
            disbelief,
            uncertainty,
            base_rate: a,
        }
    }

    /// The vacuous opinion (0, 0, 1) with base rate 0.5: no evidence either
    /// way (Jøsang 2016, Ch. 3). It is the neutral element of the fusion rule.
    #[must_use]
    pub const fn vacuous() -> Self {
        Self::from_parts(0.0, 0.0, 1.0, DEFAULT_BASE_RATE)
    }

    /// Opinion from non-negative evidence counts for "present" (`positive`,
    /// e₊) and "absent" (`negative`, e₋), base rate 0.5 (Han et al. 2021,
    /// §3.1 with K = 2; Jøsang 2016, Ch. 3, with non-informative prior weight
    /// W = 2):
    /// S = e₊ + e₋ + 2, b = e₊/S, d = e₋/S, u = 2/S.
    ///
    /// Zero evidence gives exactly the vacuous opinion (0, 0, 1).
    ///
    /// # Errors
    /// [`OpinionError::OutOfDomain`] if either count is NaN, negative or above
    /// [`EVIDENCE_LIMIT`].
    pub fn from_evidence(positive: f64, negative: f64) -> Result<Self, OpinionError> {
        let e_pos = check_evidence("positive evidence", positive)?;
        let e_neg = check_evidence("negative evidence", negative)?;
        Ok(Self::from_checked_evidence(e_pos, e_neg))
    }

    /// [`Opinion::from_evidence`] for counts already checked to lie in
    /// [0, [`EVIDENCE_LIMIT`]], so S is finite and the map cannot fail.
    fn from_checked_evidence(positive: f64, negative: f64) -> Self {
        let s = positive + negative + CLASSES;
        Self::from_parts(positive / s, negative / s, CLASSES / s, DEFAULT_BASE_RATE)
    }

    /// The same opinion with base rate `base_rate`.
    ///
    /// # Errors
    /// [`OpinionError::OutOfDomain`] unless `base_rate` is finite and in [0, 1].
    pub fn with_base_rate(self, base_rate: f64) -> Result<Self, OpinionError> {
        let a = check_in("base_rate", base_rate, 0.0, 1.0, "[0, 1]")?;
        Ok(Self {
            base_rate: a,
            ..self
        })
    }

    /// Belief b ∈ [0, 1]: mass committed to "present".
    #[must_use]
    pub const fn belief(&self) -> f64 {
        self.belief
    }

    /// Disbelief d ∈ [0, 1]: mass committed to "absent".
    #[must_use]
    pub const fn disbelief(&self) -> f64 {
        self.disbelief
    }

    /// Uncertainty (vacuity) u ∈ [0, 1]: uncommitted mass.
    #[must_use]
    pub const fn uncertainty(&self) -> f64 {
        self.uncertainty
    }

    /// Base rate a ∈ [0, 1]: prior probability of "present".
    #[must_use]
    pub const fn base_rate(&self) -> f64 {
        self.base_rate
    }

    /// Projected probability of "present", P = b + a·u ∈ [0, 1]
    /// (Jøsang 2016, Ch. 3).
    #[must_use]
    pub fn projected_probability(&self) -> f64 {
        // b + a·u can exceed 1 by an ulp when b + u is 1 + ε.
        (self.belief + self.base_rate * self.uncertainty).clamp(0.0, 1.0)
    }

    /// True when no mass is committed (b = d = 0 exactly, so u = 1 up to the
    /// constructor's tolerance).
    #[must_use]
    pub fn is_vacuous(&self) -> bool {
        self.belief == 0.0 && self.disbelief == 0.0
    }

    /// Trust discounting by a factor `trust` = t ∈ [0, 1] (Jøsang 2016,
    /// Ch. 14, probabilistic discounting with the trust opinion's projected
    /// probability t):
    /// b' = t·b, d' = t·d, u' = 1 − t·(b + d); the base rate is kept.
    ///
    /// t = 1 returns the opinion unchanged (bitwise); t = 0 returns the
    /// vacuous opinion with the same base rate.
    ///
    /// # Errors
    /// [`OpinionError::OutOfDomain`] unless `trust` is finite and in [0, 1].
    pub fn discount(&self, trust: f64) -> Result<Self, OpinionError> {
        let t = check_in("trust", trust, 0.0, 1.0, "[0, 1]")?;
        // u' = 1 − t(b + d) would turn u into 1 − (b + d), which can differ
        // from u by an ulp; full trust must be the identity.
        if t == 1.0 {
            return Ok(*self);
        }
        let b = t * self.belief;
        let d = t * self.disbelief;
        Ok(Self::from_parts(b, d, 1.0 - (b + d), self.base_rate))
    }
}

impl Default for Opinion {
    /// The vacuous opinion, see [`Opinion::vacuous`].
    fn default() -> Self {
        Self::vacuous()
    }
}

/// Non-negative evidence for "present" (`positive`, e₊) and "absent"
/// (`negative`, e₋), in pseudo-counts (units of observations; Jøsang 2016,
/// Ch. 3). Both lie in [0, [`EVIDENCE_LIMIT`]].
///
/// Serialised as `{"positive": e₊, "negative": e₋}`; deserialisation
/// re-checks the invariant.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "EvidenceRecord", into = "EvidenceRecord")]
pub struct Evidence {
    positive: f64,
    negative: f64,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct EvidenceRecord {
    positive: f64,
    negative: f64,
}

impl From<Evidence> for EvidenceRecord {
    fn from(e: Evidence) -> Self {
        Self {
            positive: e.positive,
            negative: e.negative,
        }
    }
}

impl TryFrom<EvidenceRecord> for Evidence {
    type Error = OpinionError;

    fn try_from(r: EvidenceRecord) -> Result<Self, Self::Error> {
        Evidence::new(r.positive, r.negative)
    }
}

impl Evidence {
    /// No evidence either way; maps to the vacuous opinion.
    pub const NONE: Self = Self {
        positive: 0.0,
        negative: 0.0,
    };

    /// Evidence from two counts.
    ///
    /// # Errors
    /// [`OpinionError::OutOfDomain`] if either count is NaN, negative or above
    /// [`EVIDENCE_LIMIT`].
    pub fn new(positive: f64, negative: f64) -> Result<Self, OpinionError> {
        Ok(Self {
            positive: check_evidence("positive evidence", positive)?,
            negative: check_evidence("negative evidence", negative)?,
        })
    }

    /// Evidence e₊ for "present", ≥ 0.
    #[must_use]
    pub const fn positive(&self) -> f64 {
        self.positive
    }

    /// Evidence e₋ for "absent", ≥ 0.
    #[must_use]
    pub const fn negative(&self) -> f64 {
        self.negative
    }

    /// The opinion this evidence supports, base rate 0.5:
    /// S = e₊ + e₋ + 2, b = e₊/S, d = e₋/S, u = 2/S (see
    /// [`Opinion::from_evidence`]). Infallible: the invariant was checked on
    /// construction.
    #[must_use]
    pub fn to_opinion(&self) -> Opinion {
        Opinion::from_checked_evidence(self.positive, self.negative)
    }
}
