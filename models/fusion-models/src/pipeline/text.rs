//! The text branch's zero-shot classifier: prompts for the 14 CheXpert
//! observations, sentence splitting, and the cosine-similarity → logit →
//! evidence mapping described on [`crate::package::ZeroShot`].

use crate::calibration::TemperatureScaler;
use crate::evidence::Evidence;
use crate::opinion::OpinionError;
use crate::package::{Observation, ZeroShot};
use crate::text_encoder::{Embedding, cosine};

/// Longest number of sentences of one note given to the encoder (the rest
/// is ignored for zero-shot evidence and the branch says so): ~15 ms each
/// on two cores.
pub const MAX_SENTENCES: usize = 64;

/// The prompt pair for an observation: (present, absent), of the form
/// "There is <finding>." / "There is no <finding>." (No Finding is phrased
/// as the absence / presence of an acute abnormality).
#[must_use]
pub const fn prompts(observation: Observation) -> (&'static str, &'static str) {
    match observation {
        Observation::NoFinding => (
            "There is no acute cardiopulmonary abnormality.",
            "There is an acute cardiopulmonary abnormality.",
        ),
        Observation::EnlargedCardiomediastinum => (
            "There is an enlarged cardiomediastinal silhouette.",
            "There is no enlarged cardiomediastinal silhouette.",
        ),
        Observation::Cardiomegaly => ("There is cardiomegaly.", "There is no cardiomegaly."),
        Observation::LungLesion => (
            "There is a lung nodule or mass.",
            "There is no lung nodule or mass.",
        ),
        Observation::LungOpacity => ("There is a lung opacity.", "There is no lung opacity."),
        Observation::Edema => ("There is pulmonary edema.", "There is no pulmonary edema."),
        Observation::Consolidation => ("There is consolidation.", "There is no consolidation."),
        Observation::Pneumonia => ("There is pneumonia.", "There is no pneumonia."),
        Observation::Atelectasis => ("There is atelectasis.", "There is no atelectasis."),
        Observation::Pneumothorax => ("There is a pneumothorax.", "There is no pneumothorax."),
        Observation::PleuralEffusion => (
            "There is a pleural effusion.",
            "There is no pleural effusion.",
        ),
        Observation::PleuralOther => (
            "There is pleural thickening.",
            "There is no pleural thickening.",
        ),
        Observation::Fracture => ("There is a fracture.", "There is no fracture."),
        Observation::SupportDevices => (
            "There is a support device such as a tube, line or pacemaker.",
            "There is no support device such as a tube, line or pacemaker.",
        ),
    }
}

/// Splits a note into sentence-like pieces at `.`, `!`, `?`, `;`, `:` and
/// line breaks, trimmed, dropping pieces without a letter (numbers, rulers).
/// Returns at most [`MAX_SENTENCES`] pieces and whether more were dropped.
#[must_use]
pub fn sentences(text: &str) -> (Vec<&str>, bool) {
    let mut out: Vec<&str> = text
        .split(['.', '!', '?', ';', ':', '\n', '\r'])
        .map(str::trim)
        .filter(|s| s.chars().any(char::is_alphabetic))
        .collect();
    let truncated = out.len() > MAX_SENTENCES;
    out.truncate(MAX_SENTENCES);
    (out, truncated)
}

/// One observation's zero-shot result on one note.
#[derive(Debug, Clone, PartialEq)]
pub struct ZeroShotScore {
    /// Index of the most relevant sentence in the note's [`sentences`].
    pub sentence: usize,
    /// Its cosine similarity to the "present" prompt, in [−1, 1].
    pub similarity_present: f64,
    /// Its cosine similarity to the "absent" prompt, in [−1, 1].
    pub similarity_absent: f64,
    /// z = scale · (present − absent).
    pub logit: f64,
    /// σ(z/T), in [0, 1].
    pub probability: f64,
    /// e₊ = w·max(2p − 1, 0), e₋ = w·max(1 − 2p, 0); none when the
    /// sentence is not relevant (similarity below the threshold).
    pub evidence: Evidence,
    /// Whether max(present, absent) reached `min_similarity`.
    pub relevant: bool,
}

/// Scores one observation on one note's sentence embeddings (`[S]` unit
/// 384-d vectors) against its prompt embeddings; `None` for a note without
/// sentences.
///
/// # Errors
/// [`OpinionError`] if the configuration gives invalid evidence (cannot
/// happen with a validated manifest; reported rather than panicking).
pub fn score(
    sentence_embeddings: &[Embedding],
    present: &Embedding,
    absent: &Embedding,
    spec: &ZeroShot,
    calibration: &TemperatureScaler,
) -> Result<Option<ZeroShotScore>, OpinionError> {
    let mut best: Option<(usize, f64, f64)> = None;
    for (i, e) in sentence_embeddings.iter().enumerate() {
        let (sp, sa) = (cosine(e, present), cosine(e, absent));
        if best.is_none_or(|(_, bp, ba)| sp.max(sa) > bp.max(ba)) {
            best = Some((i, sp, sa));
        }
    }
    let Some((sentence, sp, sa)) = best else {
        return Ok(None);
    };
    let logit = spec.scale * (sp - sa);
    let probability = calibration.probability(logit);
    let relevant = sp.max(sa) >= spec.min_similarity;
    let evidence = if relevant {
        Evidence::new(
            spec.weight * (2.0 * probability - 1.0).max(0.0),
            spec.weight * (1.0 - 2.0 * probability).max(0.0),
        )?
    } else {
        Evidence::NONE
    };
    Ok(Some(ZeroShotScore {
        sentence,
        similarity_present: sp,
        similarity_absent: sa,
        logit,
        probability,
        evidence,
        relevant,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_sentences() {
        let (s, more) = sentences("Findings: No effusion.\nPossible RLL pneumonia? 12.5 cm");
        assert_eq!(
            s,
            vec!["Findings", "No effusion", "Possible RLL pneumonia", "5 cm"]
        );
        assert!(!more);
        let long = "a. ".repeat(MAX_SENTENCES + 3);
        let (s, more) = sentences(&long);
        assert_eq!(s.len(), MAX_SENTENCES);
        assert!(more);
    }

    #[test]
    fn evidence_mapping_by_hand() {
        let spec = ZeroShot {
            enabled: true,
            scale: 10.0,
            weight: 2.0,
            min_similarity: 0.5,
            labels: vec![],
        };
        let mut present = [0.0_f32; 384];
        present[0] = 1.0;
        let mut absent = [0.0_f32; 384];
        absent[1] = 1.0;
        // cos with present 0.8, with absent 0.6 → z = 10 · 0.2 = 2.
        let mut s = [0.0_f32; 384];
        s[0] = 0.8;
        s[1] = 0.6;
        let r = score(
            &[s],
            &present,
            &absent,
            &spec,
            &TemperatureScaler::default(),
        )
        .unwrap()
        .unwrap();
        assert!((r.logit - 2.0).abs() < 1e-6);
        let p = 1.0 / (1.0 + (-r.logit).exp());
        assert!((r.evidence.positive() - 2.0 * (2.0 * p - 1.0)).abs() < 1e-12);
        assert_eq!(r.evidence.negative(), 0.0);
        // An unrelated sentence: no evidence.
        let mut u = [0.0_f32; 384];
        u[2] = 1.0;
        let r = score(
            &[u],
            &present,
            &absent,
            &spec,
            &TemperatureScaler::default(),
        )
        .unwrap()
        .unwrap();
        assert!(!r.relevant);
        assert_eq!(r.evidence, Evidence::NONE);
        assert!(
            score(&[], &present, &absent, &spec, &TemperatureScaler::default())
                .unwrap()
                .is_none()
        );
    }
}
