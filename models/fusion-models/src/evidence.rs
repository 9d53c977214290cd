//! Evidence for one label, from the two branches: the image branch's
//! MC-dropout (or ensemble) samples of a calibrated probability, matched to a
//! Beta distribution, and the text branch's mention label (positive /
//! negative / uncertain / not mentioned) mapped through configurable weights.
//!
//! Evidence e₊, e₋ ≥ 0 becomes an [`Opinion`] by Han et al. (ICLR 2021), §3.1
//! with K = 2, through [`Evidence::to_opinion`].

use fusion_schemas::NoteLabel;
use serde::{Deserialize, Serialize};

use crate::opinion::{Opinion, OpinionError, check_evidence, check_in, check_non_negative};
pub use fusion_schemas::Evidence;

/// The models' ways to [`Evidence`]: from the moments of a probability's
/// posterior samples (image branch, report heads) and from the mention
/// labeller's label (text branch). Implemented for [`Evidence`] only; bring
/// it into scope to call `Evidence::from_beta_moments` and the others.
pub trait EvidenceExt {
    /// Evidence from the mean `mean` = p and variance `variance` = v of a
    /// probability's posterior samples (MC dropout or an ensemble) by
    /// moment-matching a Beta(α, β) distribution. Method of moments for the
    /// Beta: α + β = p(1 − p)/v − 1, α = p(α + β), β = (1 − p)(α + β);
    /// then the subjective-logic evidence is e₊ = α − 1, e₋ = β − 1 (Jøsang
    /// 2016, Ch. 3, binomial opinion to Beta mapping: α = e₊ + a·W with
    /// W = 2, a = 1/2).
    ///
    /// Exact rules, applied in this order, with S = α + β and
    /// S_max = `max_evidence` + 2:
    /// 1. v = 0 (all samples identical): S = S_max — the samples cannot tell
    ///    how concentrated the distribution is, so the cap is used;
    /// 2. v ≥ p(1 − p) (the largest variance any distribution on [0, 1] with
    ///    mean p can have; includes p ∈ {0, 1} with v > 0): the samples carry
    ///    no usable concentration → [`Evidence::NONE`] (vacuous);
    /// 3. otherwise S = min(p(1 − p)/v − 1, S_max).
    ///
    /// Then e₊ = clamp(pS − 1, 0, `max_evidence`), e₋ = clamp((1 − p)S − 1,
    /// 0, `max_evidence`). When both α, β ≥ 1 the lower clamp is inactive,
    /// e₊ + e₋ = S − 2 and the opinion's projected probability (a = 0.5) is
    /// exactly p. When p is so extreme that α or β < 1 its evidence clamps at
    /// 0 and the upper clamp keeps the other ≤ `max_evidence`, so
    /// e₊ + e₋ ≤ `max_evidence` always holds.
    ///
    /// Inputs: p ∈ [0, 1], v ≥ 0 finite, `max_evidence` ∈ [0, 1e300].
    ///
    /// # Errors
    /// [`OpinionError::OutOfDomain`] naming the first input outside its range.
    fn from_beta_moments(
        mean: f64,
        variance: f64,
        max_evidence: f64,
    ) -> Result<Evidence, OpinionError> {
        let p = check_in("mean", mean, 0.0, 1.0, "[0, 1]")?;
        let v = check_non_negative("variance", variance)?;
        let cap = check_evidence("max_evidence", max_evidence)?;
        let s_max = cap + 2.0;
        let spread = p * (1.0 - p);
        let strength = if v == 0.0 {
            s_max
        } else if v >= spread {
            return Ok(Evidence::NONE);
        } else {
            (spread / v - 1.0).min(s_max)
        };
        let positive = (p * strength - 1.0).clamp(0.0, cap);
        let negative = ((1.0 - p) * strength - 1.0).clamp(0.0, cap);
        Evidence::new(positive, negative)
    }

    /// The opinion, with base rate `base_rate` = a, whose projected
    /// probability is exactly the mean p of a probability's posterior samples
    /// (an ensemble or MC dropout) with variance v, and its evidence.
    ///
    /// This is the binomial opinion ↔ Beta mapping of Jøsang 2016, §3.4,
    /// with the base rate kept: Beta(α, β) with α = e₊ + a·W, β = e₋ +
    /// (1 − a)·W, W = 2, whose mean α/(α + β) equals the projected
    /// probability b + a·u. (With a = ½ it is [`Evidence::from_beta_moments`];
    /// DESIGN's e₊ = α − 1 is that special case.) Steps, with S = α + β:
    /// 1. S from the moments as in [`Evidence::from_beta_moments`]: the cap
    ///    `max_evidence` + 2 when v = 0, p(1 − p)/v − 1 otherwise, capped;
    ///    v ≥ p(1 − p) (no usable concentration) gives 0 here;
    /// 2. S is raised to max(2a/p, 2(1 − a)/(1 − p), 2) when below it: an
    ///    opinion with base rate a has P ≥ a·u and 1 − P ≥ (1 − a)·u, so a
    ///    probability far below (above) the prior needs that much strength —
    ///    the uncertainty mass never exceeds p/a or (1 − p)/(1 − a). So the
    ///    widest spread gives the most uncertain opinion whose projected
    ///    probability is still p, continuous with a spread just below it.
    ///    (It gave the vacuous opinion, P = a, before: members that disagree
    ///    about a probability of 10⁻³ showed the prior, 9 %, instead.)
    /// 3. e₊ = p·S − 2a, e₋ = (1 − p)·S − 2(1 − a), b = e₊/S, d = e₋/S,
    ///    u = 2/S.
    ///
    /// p is clamped to [1e-9, 1 − 1e-9] first, so S stays finite.
    ///
    /// # Errors
    /// [`OpinionError::OutOfDomain`] for p or a outside [0, 1], a negative or
    /// non-finite v, or `max_evidence` outside [0, 1e300].
    fn opinion_from_moments(
        mean: f64,
        variance: f64,
        base_rate: f64,
        max_evidence: f64,
    ) -> Result<(Evidence, Opinion), OpinionError> {
        let p = check_in("mean", mean, 0.0, 1.0, "[0, 1]")?.clamp(1e-9, 1.0 - 1e-9);
        let v = check_non_negative("variance", variance)?;
        let a = check_in("base_rate", base_rate, 0.0, 1.0, "[0, 1]")?;
        let cap = check_evidence("max_evidence", max_evidence)?;
        let spread = p * (1.0 - p);
        let from_moments = if v == 0.0 {
            cap + 2.0
        } else if v >= spread {
            0.0
        } else {
            (spread / v - 1.0).min(cap + 2.0)
        };
        let strength = from_moments
            .max(2.0 * a / p)
            .max(2.0 * (1.0 - a) / (1.0 - p))
            .max(2.0);
        let positive = (p * strength - 2.0 * a).max(0.0);
        let negative = ((1.0 - p) * strength - 2.0 * (1.0 - a)).max(0.0);
        let evidence = Evidence::new(positive, negative)?;
        let s = positive + negative + 2.0;
        let opinion = Opinion::new(positive / s, negative / s, 2.0 / s, a)?;
        Ok((evidence, opinion))
    }

    /// [`Evidence::from_beta_moments`] on the [`sample_moments`] of
    /// `samples` (probabilities in [0, 1], at least 2).
    ///
    /// # Errors
    /// Those of [`sample_moments`] and [`Evidence::from_beta_moments`].
    fn from_samples(samples: &[f64], max_evidence: f64) -> Result<Evidence, OpinionError> {
        let m = sample_moments(samples)?;
        Self::from_beta_moments(m.mean, m.variance, max_evidence)
    }

    /// Evidence from the text branch's mention label for this label:
    /// positive → (w_pos, 0), negative → (0, w_neg), uncertain →
    /// (w_unc, w_unc), not mentioned → none.
    #[must_use]
    fn from_text_label(label: NoteLabel, weights: &TextEvidenceWeights) -> Evidence {
        let (positive, negative) = match label {
            NoteLabel::Positive => (weights.positive, 0.0),
            NoteLabel::Negative => (0.0, weights.negative),
            NoteLabel::Uncertain => (weights.uncertain, weights.uncertain),
            NoteLabel::NotMentioned => (0.0, 0.0),
        };
        // The weights were checked to lie in [0, EVIDENCE_LIMIT]: never NONE.
        Evidence::new(positive, negative).unwrap_or(Evidence::NONE)
    }
}

impl EvidenceExt for Evidence {}

/// Mean and Bessel-corrected sample variance of n ≥ 2 samples.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SampleMoments {
    /// Arithmetic mean, in the samples' units (a probability in [0, 1] here).
    pub mean: f64,
    /// Sample variance Σ(xᵢ − x̄)²/(n − 1), ≥ 0.
    pub variance: f64,
    /// Number of samples n ≥ 2.
    pub n: usize,
}

/// Mean and sample variance (divisor n − 1) of probability samples, e.g. T
/// MC-dropout forward passes (Gal & Ghahramani, ICML 2016) or ensemble
/// members, computed in two passes for accuracy.
///
/// The unbiased (n − 1) divisor is used deliberately: with few passes the
/// population variance (divisor n) underestimates the spread, and with one
/// pass it would be 0, which [`Evidence::from_beta_moments`] turns into the
/// maximum evidence — a single forward pass would look certain. Here one
/// sample is an error instead.
///
/// # Errors
/// [`OpinionError::TooFewSamples`] for fewer than 2 samples;
/// [`OpinionError::OutOfDomain`] if a sample is not a finite number in [0, 1].
pub fn sample_moments(samples: &[f64]) -> Result<SampleMoments, OpinionError> {
    let n = samples.len();
    if n < 2 {
        return Err(OpinionError::TooFewSamples { n });
    }
    for &x in samples {
        check_in("sample", x, 0.0, 1.0, "[0, 1]")?;
    }
    let count = n as f64;
    let mean = samples.iter().sum::<f64>() / count;
    let squares: f64 = samples.iter().map(|x| (x - mean) * (x - mean)).sum();
    Ok(SampleMoments {
        // Rounding can put the mean of values in [0, 1] an ulp outside.
        mean: mean.clamp(0.0, 1.0),
        variance: squares / (count - 1.0),
        n,
    })
}

/// Evidence weights (pseudo-counts in [0, 1e300]) for the text branch; read
/// from the model package manifest. Missing fields take the defaults; unknown
/// fields are rejected so a misspelt key is not silently ignored.
///
/// Defaults, chosen so the opinions are easy to read (base rate 0.5):
/// * `positive` = 8: an explicit assertion gives (b, d, u) = (0.8, 0, 0.2),
///   P = 0.9 — strong evidence that still leaves room for labeler and
///   reporting errors, and that an image branch with comparable evidence can
///   contest (conflict is then visible instead of being overruled);
/// * `negative` = 8: symmetric to `positive`, (0, 0.8, 0.2), P = 0.1;
/// * `uncertain` = 1: a hedge is weak, balanced evidence, (0.25, 0.25, 0.5),
///   P = 0.5 — it halves the vacuity without moving the probability;
/// * not mentioned carries no evidence (vacuous): absence from a report is not
///   a negation.
///
/// These are priors to be replaced by values fitted on the validation split.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "TextWeightsRecord", into = "TextWeightsRecord")]
pub struct TextEvidenceWeights {
    positive: f64,
    negative: f64,
    uncertain: f64,
}

#[derive(Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
struct TextWeightsRecord {
    positive: f64,
    negative: f64,
    uncertain: f64,
}

impl Default for TextWeightsRecord {
    fn default() -> Self {
        TextEvidenceWeights::default().into()
    }
}

impl From<TextEvidenceWeights> for TextWeightsRecord {
    fn from(w: TextEvidenceWeights) -> Self {
        Self {
            positive: w.positive,
            negative: w.negative,
            uncertain: w.uncertain,
        }
    }
}

impl TryFrom<TextWeightsRecord> for TextEvidenceWeights {
    type Error = OpinionError;

    fn try_from(r: TextWeightsRecord) -> Result<Self, Self::Error> {
        TextEvidenceWeights::new(r.positive, r.negative, r.uncertain)
    }
}

impl Default for TextEvidenceWeights {
    /// `positive` = 8, `negative` = 8, `uncertain` = 1 (see the type's docs).
    fn default() -> Self {
        Self {
            positive: 8.0,
            negative: 8.0,
            uncertain: 1.0,
        }
    }
}

impl TextEvidenceWeights {
    /// Weights for positive, negative and uncertain mentions (pseudo-counts).
    ///
    /// # Errors
    /// [`OpinionError::OutOfDomain`] if a weight is NaN, negative or above
    /// [`crate::opinion::EVIDENCE_LIMIT`].
    pub fn new(positive: f64, negative: f64, uncertain: f64) -> Result<Self, OpinionError> {
        Ok(Self {
            positive: check_evidence("positive weight", positive)?,
            negative: check_evidence("negative weight", negative)?,
            uncertain: check_evidence("uncertain weight", uncertain)?,
        })
    }

    /// Evidence e₊ given by a positive mention.
    #[must_use]
    pub const fn positive(&self) -> f64 {
        self.positive
    }

    /// Evidence e₋ given by a negative mention.
    #[must_use]
    pub const fn negative(&self) -> f64 {
        self.negative
    }

    /// Evidence given to each of e₊ and e₋ by an uncertain mention.
    #[must_use]
    pub const fn uncertain(&self) -> f64 {
        self.uncertain
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opinion_from_moments_keeps_the_mean_and_the_base_rate() {
        // p = 0.3, v = 0.0021 → S = 0.21/0.0021 − 1 = 99; a = 0.1:
        // e₊ = 0.3·99 − 0.2 = 29.5, e₋ = 0.7·99 − 1.8 = 67.5, u = 2/99.
        let (e, o) = Evidence::opinion_from_moments(0.3, 0.0021, 0.1, 1000.0).unwrap();
        assert!((e.positive() - 29.5).abs() < 1e-9 && (e.negative() - 67.5).abs() < 1e-9);
        assert!((o.uncertainty() - 2.0 / 99.0).abs() < 1e-12);
        assert!((o.projected_probability() - 0.3).abs() < 1e-12);
        assert_eq!(o.base_rate(), 0.1);
        // Far below the prior: strength raised so u ≤ p/a and P = p exactly.
        let (_, o) = Evidence::opinion_from_moments(0.001, 1e-4, 0.4, 100.0).unwrap();
        assert!((o.projected_probability() - 0.001).abs() < 1e-12);
        assert!(o.uncertainty() <= 0.001 / 0.4 + 1e-12);
        // Variance at its maximum: the most uncertain opinion that keeps
        // P = p. S = max(2·0.2/0.5, 2·0.8/0.5, 2) = 3.2: e₊ = 1.6 − 0.4 =
        // 1.2, e₋ = 1.6 − 1.6 = 0, u = 2/3.2 = 0.625, P = 0.375 + 0.2·0.625.
        let (e, o) = Evidence::opinion_from_moments(0.5, 0.25, 0.2, 100.0).unwrap();
        assert!((e.positive() - 1.2).abs() < 1e-12 && e.negative() == 0.0);
        assert!((o.uncertainty() - 0.625).abs() < 1e-12);
        assert!((o.projected_probability() - 0.5).abs() < 1e-12);
        // Continuous at v = p(1 − p): just below it the same opinion.
        let p = 0.001;
        let (_, below) =
            Evidence::opinion_from_moments(p, p * (1.0 - p) * 0.999, 0.089, 100.0).unwrap();
        let (_, at) = Evidence::opinion_from_moments(p, p * (1.0 - p) * 1.5, 0.089, 100.0).unwrap();
        assert!((below.uncertainty() - at.uncertainty()).abs() < 1e-9);
        assert!(
            (at.projected_probability() - p).abs() < 1e-12,
            "P stays p, not the prior"
        );
        assert!(Evidence::opinion_from_moments(0.5, 0.01, 1.5, 100.0).is_err());
    }

    fn close(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn beta_moments_hand_computed() {
        // p = 0.8, v = 0.01: S = 0.16/0.01 − 1 = 15, α = 12, β = 3,
        // e = (11, 2); opinion S = 15: b = 11/15, d = 2/15, u = 2/15, P = 0.8.
        let e = Evidence::from_beta_moments(0.8, 0.01, 100.0).unwrap();
        assert!(close(e.positive(), 11.0, 1e-9));
        assert!(close(e.negative(), 2.0, 1e-9));
        let o = e.to_opinion();
        assert!(close(o.belief(), 11.0 / 15.0, 1e-9));
        assert!(close(o.uncertainty(), 2.0 / 15.0, 1e-9));
        assert!(close(o.projected_probability(), 0.8, 1e-12));
    }

    #[test]
    fn beta_moments_cap() {
        // p = 0.8, v = 0.001: formula S = 159 > S_max = 98 + 2 = 100,
        // so α = 80, β = 20 and e = (79, 19), total = max_evidence.
        let e = Evidence::from_beta_moments(0.8, 0.001, 98.0).unwrap();
        assert!(close(e.positive(), 79.0, 1e-9));
        assert!(close(e.negative(), 19.0, 1e-9));
        // v = 0: S = S_max as well.
        assert_eq!(
            Evidence::from_beta_moments(0.8, 0.0, 98.0).unwrap(),
            Evidence::from_beta_moments(0.8, 0.001, 98.0).unwrap()
        );
        // p = 1, v = 0: α = 100, β = 0 → e₊ clamped to 98, e₋ = 0.
        let e = Evidence::from_beta_moments(1.0, 0.0, 98.0).unwrap();
        assert_eq!((e.positive(), e.negative()), (98.0, 0.0));
        // p = 0.005 with S = 100: α = 0.5 → e₊ = 0; β = 99.5 → e₋ = 98.
        let e = Evidence::from_beta_moments(0.005, 0.0, 98.0).unwrap();
        assert_eq!(e.positive(), 0.0);
        assert_eq!(e.negative(), 98.0);
        // max_evidence = 0 always gives the vacuous opinion.
        let e = Evidence::from_beta_moments(0.9, 0.0, 0.0).unwrap();
        assert!(e.to_opinion().is_vacuous());
    }

    #[test]
    fn beta_moments_vacuous_and_weak() {
        // v ≥ p(1 − p): vacuous.
        assert_eq!(
            Evidence::from_beta_moments(0.5, 0.25, 50.0).unwrap(),
            Evidence::NONE
        );
        assert_eq!(
            Evidence::from_beta_moments(0.5, 0.3, 50.0).unwrap(),
            Evidence::NONE
        );
        assert_eq!(
            Evidence::from_beta_moments(1.0, 0.01, 50.0).unwrap(),
            Evidence::NONE
        );
        // p = 0.5, v = 0.1: S = 1.5, α = β = 0.75 < 1 → no evidence.
        assert_eq!(
            Evidence::from_beta_moments(0.5, 0.1, 50.0).unwrap(),
            Evidence::NONE
        );
        assert!(Evidence::NONE.to_opinion().is_vacuous());
    }

    #[test]
    fn beta_moments_reject_bad_input() {
        assert!(Evidence::from_beta_moments(1.1, 0.01, 10.0).is_err());
        assert!(Evidence::from_beta_moments(f64::NAN, 0.01, 10.0).is_err());
        assert!(Evidence::from_beta_moments(0.5, -0.01, 10.0).is_err());
        assert!(Evidence::from_beta_moments(0.5, 0.01, f64::INFINITY).is_err());
        assert!(Evidence::from_beta_moments(0.5, 0.01, -1.0).is_err());
    }

    #[test]
    fn sample_moments_hand_computed() {
        // mean 0.4; squared deviations 0.04, 0, 0.04; / (3 − 1) = 0.04.
        let m = sample_moments(&[0.2, 0.4, 0.6]).unwrap();
        assert!(close(m.mean, 0.4, 1e-15));
        assert!(close(m.variance, 0.04, 1e-15));
        assert_eq!(m.n, 3);
        assert_eq!(
            sample_moments(&[0.3]),
            Err(OpinionError::TooFewSamples { n: 1 })
        );
        assert_eq!(
            sample_moments(&[]),
            Err(OpinionError::TooFewSamples { n: 0 })
        );
        assert!(sample_moments(&[0.3, 1.2]).is_err());
        assert!(sample_moments(&[0.3, f64::NAN]).is_err());
    }

    #[test]
    fn evidence_from_samples_chains_moments_and_matching() {
        // mean 0.4, v = 0.04: S = 0.24/0.04 − 1 = 5, α = 2, β = 3 → (1, 2).
        let e = Evidence::from_samples(&[0.2, 0.4, 0.6], 100.0).unwrap();
        assert!(close(e.positive(), 1.0, 1e-9));
        assert!(close(e.negative(), 2.0, 1e-9));
        // Identical samples: v = 0 → capped.
        let e = Evidence::from_samples(&[0.5, 0.5], 10.0).unwrap();
        assert!(close(e.positive(), 5.0, 1e-12));
        assert!(close(e.negative(), 5.0, 1e-12));
    }

    #[test]
    fn text_labels_map_to_weights() {
        let w = TextEvidenceWeights::default();
        let ev = |l| Evidence::from_text_label(l, &w);
        assert_eq!(ev(NoteLabel::Positive), Evidence::new(8.0, 0.0).unwrap());
        assert_eq!(ev(NoteLabel::Negative), Evidence::new(0.0, 8.0).unwrap());
        assert_eq!(ev(NoteLabel::Uncertain), Evidence::new(1.0, 1.0).unwrap());
        assert_eq!(ev(NoteLabel::NotMentioned), Evidence::NONE);
        // Default opinions: S = 10 → (0.8, 0, 0.2), P = 0.9;
        // uncertain S = 4 → (0.25, 0.25, 0.5), P = 0.5.
        let pos = ev(NoteLabel::Positive).to_opinion();
        assert!(close(pos.belief(), 0.8, 1e-15));
        assert!(close(pos.projected_probability(), 0.9, 1e-15));
        let unc = ev(NoteLabel::Uncertain).to_opinion();
        assert_eq!(
            (unc.belief(), unc.disbelief(), unc.uncertainty()),
            (0.25, 0.25, 0.5)
        );
        assert!(ev(NoteLabel::NotMentioned).to_opinion().is_vacuous());
    }

    #[test]
    fn text_weights_deserialise_with_defaults_and_validation() {
        let w: TextEvidenceWeights = serde_json::from_str(r#"{"positive": 5}"#).unwrap();
        assert_eq!(w, TextEvidenceWeights::new(5.0, 8.0, 1.0).unwrap());
        let w: TextEvidenceWeights = serde_json::from_str("{}").unwrap();
        assert_eq!(w, TextEvidenceWeights::default());
        assert!(serde_json::from_str::<TextEvidenceWeights>(r#"{"positive": -1}"#).is_err());
        assert!(serde_json::from_str::<TextEvidenceWeights>(r#"{"postive": 5}"#).is_err());
        let json = serde_json::to_string(&TextEvidenceWeights::default()).unwrap();
        assert_eq!(json, r#"{"positive":8.0,"negative":8.0,"uncertain":1.0}"#);
        assert_eq!(
            serde_json::to_string(&NoteLabel::NotMentioned).unwrap(),
            r#""not_mentioned""#
        );
    }

    #[test]
    fn evidence_validates_and_round_trips() {
        assert!(Evidence::new(-1.0, 0.0).is_err());
        assert!(Evidence::new(f64::MAX, 0.0).is_err());
        let e = Evidence::new(3.0, 1.5).unwrap();
        let json = serde_json::to_string(&e).unwrap();
        assert_eq!(json, r#"{"positive":3.0,"negative":1.5}"#);
        assert_eq!(serde_json::from_str::<Evidence>(&json).unwrap(), e);
        assert!(serde_json::from_str::<Evidence>(r#"{"positive":-3,"negative":1}"#).is_err());
    }
}
