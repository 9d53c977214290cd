//! The text branch: per observation, one opinion from the case's notes.
//!
//! * With a trained report-heads package ([`crate::report_heads`]) and a
//!   note analysis, an observation that has a head gets the head's opinion:
//!   the calibrated probability of the members' mean logit and their spread,
//!   as a Beta opinion whose base rate is the observation's prevalence in the
//!   package's training data. The mention label is a feature of the head, so
//!   it adds no evidence of its own, and the zero-shot prompts add none.
//! * Otherwise (no head for the observation, no heads package, or a note
//!   without an analysis) the rules of [`crate::pipeline`]: the mention
//!   label's evidence through the package's [`TextEvidenceWeights`],
//!   combined with weak zero-shot evidence; rebased to the heads package's
//!   prior for the observation where it has one. The zero-shot evidence
//!   only weighs in on an observation the labeller found mentioned: the
//!   encoder separates negation and normality poorly, so on a report that
//!   does not mention a finding its most similar sentence is a normal
//!   statement about the same organ ("the lungs are clear" scores near
//!   "there is lung opacity"), and a not-mentioned finding keeps its prior,
//!   as the trained heads measure it should (not-mentioned reports: mean
//!   probability below 0.03 beside priors of 0.004–0.36).
//!
//! With several notes (oldest first) each observation uses the latest note
//! that mentions it, else the latest usable note (reports copy forward;
//! combining them would overcount).

use std::collections::BTreeMap;
use std::time::Instant;

use fusion_schemas::{NoteLabel, Observation};

use super::{
    BranchOpinion, BranchReport, BranchStatus, HeadSource, MentionSource, NoteInput, Pipeline,
    SkippedInput, TextModel, ZeroShotLogits, ZeroShotSource, ms, package_id, text,
};
use crate::calibration::TemperatureScaler;
use crate::evidence::{Evidence, EvidenceExt};
use crate::opinion::combine;
use crate::package::ZeroShot;
use crate::text_encoder::Embedding;

/// The sentences of one note that the encoder embeds, and their embeddings.
struct NoteSentences<'a> {
    /// Sentence texts: the analysis's sentences when the note has an
    /// analysis, else the zero-shot splitter's pieces.
    texts: Vec<&'a str>,
    /// Their embeddings, when the encoder ran.
    embeddings: Option<Vec<Embedding>>,
}

impl Pipeline {
    /// The zero-shot logit z = scale · (cos(s, present) − cos(s, absent))
    /// per observation (CheXpert order) on the note's most relevant sentence,
    /// before temperature scaling, with whether that sentence passed
    /// `min_similarity`: what `fusion calibrate` fits zero-shot temperatures
    /// on. `None` for a note without sentences.
    ///
    /// # Errors
    /// A message when there is no text package, zero-shot is disabled, or
    /// the encoder fails.
    pub fn zero_shot_logits(&self, note: &str) -> Result<ZeroShotLogits, String> {
        let model = self
            .text
            .as_ref()
            .map_err(|why| format!("model package not installed: {why}"))?;
        let ((spec, prompts), Some(encoder)) = (
            model
                .zero_shot
                .as_ref()
                .ok_or("the text package has zero-shot evidence disabled")?,
            &model.encoder,
        ) else {
            return Err("the text package has zero-shot evidence disabled".to_owned());
        };
        let (sentences, _) = text::sentences(note);
        let emb = encoder.embed(&sentences).map_err(|e| e.to_string())?;
        prompts
            .iter()
            .map(|(o, present, absent)| {
                text::score(&emb, present, absent, spec, &TemperatureScaler::default())
                    .map(|s| (*o, s.map(|s| (s.logit, s.relevant))))
                    .map_err(|e| e.to_string())
            })
            .collect()
    }

    pub(super) fn text_branch(&self, notes: &[NoteInput]) -> BranchReport {
        let model = match &self.text {
            Ok(m) => m,
            Err(why) if notes.is_empty() => {
                return BranchReport::empty(
                    BranchStatus::Missing,
                    format!("no note in the case (and model package not installed: {why})"),
                );
            }
            Err(why) => {
                return BranchReport::empty(
                    BranchStatus::NoPackage,
                    format!("model package not installed: {why}"),
                );
            }
        };
        let manifest = model.package.manifest();
        let mut report = BranchReport::empty(BranchStatus::Missing, "no note in the case");
        report.package = Some(match &model.heads {
            Some(h) => format!(
                "{} + {}",
                package_id(h.package.manifest()),
                package_id(manifest)
            ),
            None => package_id(manifest),
        });
        if notes.is_empty() {
            return report;
        }
        let usable: Vec<&NoteInput> = notes
            .iter()
            .filter(|n| n.excluded.is_none() && !n.text.trim().is_empty())
            .collect();
        for n in notes {
            let reason = match &n.excluded {
                Some(why) => why.clone(),
                None if n.text.trim().is_empty() => "the note text is empty".to_owned(),
                None => continue,
            };
            report.skipped.push(SkippedInput {
                id: n.note_id.clone(),
                reason,
            });
        }
        if usable.is_empty() {
            report.status = BranchStatus::Unusable;
            report.reason = Some(
                report
                    .skipped
                    .first()
                    .map_or_else(|| "no usable note".to_owned(), |s| s.reason.clone()),
            );
            return report;
        }
        report.note_ids = usable.iter().map(|n| n.note_id.clone()).collect();
        let mut remarks = Vec::new();
        if model.heads.is_none() {
            remarks.push(
                "no trained report heads installed: rule-based text evidence, not calibrated"
                    .to_owned(),
            );
        }
        let sentences = embed_notes(model, &usable, &mut remarks, &mut report.timings_ms);

        for observation in Observation::ALL {
            let key = observation.as_str();
            let labels: Vec<NoteLabel> = usable
                .iter()
                .map(|n| note_label(n, observation, &mut remarks))
                .collect();
            // Latest mentioning note, else the latest note.
            let chosen = labels
                .iter()
                .rposition(|l| *l != NoteLabel::NotMentioned)
                .unwrap_or(usable.len() - 1);
            let note = usable[chosen];
            let label = labels[chosen];
            let head = model
                .heads
                .as_ref()
                .and_then(|h| Some((h, h.heads.head(observation)?, note.analysis.as_ref()?)));
            let opinion = if let Some((heads, head, analysis)) = head {
                let embeddings: Vec<Option<Embedding>> = match &sentences[chosen].embeddings {
                    Some(e) => e.iter().copied().map(Some).collect(),
                    None => vec![None; analysis.sentences.len()],
                };
                let x = heads
                    .heads
                    .spec
                    .features(analysis, &embeddings, &[observation])
                    .pop()
                    .unwrap_or_default();
                match head.predict(&x, heads.heads.max_evidence) {
                    Ok(out) => BranchOpinion {
                        opinion: out.opinion,
                        probability: out.probability,
                        mean: Some(out.probability),
                        variance: Some(out.variance),
                        passes: Some(out.members),
                        evidence: out.evidence,
                        trust: None,
                        mention: Some(MentionSource {
                            note_id: note.note_id.clone(),
                            label,
                            evidence: Evidence::NONE,
                        }),
                        zero_shot: None,
                        prediction_set: out.prediction_set,
                        head: Some(HeadSource {
                            package: package_id(heads.package.manifest()),
                            note_id: note.note_id.clone(),
                            logit: out.logit,
                            temperature: out.temperature,
                            members: out.members,
                            decision_threshold: out.decision_threshold,
                            present: out.probability >= out.decision_threshold,
                        }),
                    },
                    Err(e) => {
                        remarks.push(format!("{key}: the trained head failed ({e}); rules used"));
                        rule_opinion(
                            model,
                            observation,
                            note,
                            label,
                            &sentences[chosen],
                            &mut remarks,
                        )
                    }
                }
            } else {
                rule_opinion(
                    model,
                    observation,
                    note,
                    label,
                    &sentences[chosen],
                    &mut remarks,
                )
            };
            report.opinions.insert(key.to_owned(), opinion);
        }
        report.status = BranchStatus::Used;
        remarks.dedup();
        report.reason = (!remarks.is_empty()).then(|| remarks.join("; "));
        report
    }
}

/// The note's label for `observation`: from its analysis when it has one,
/// else from `labels` (snake_case → `positive` | `negative` | `uncertain` |
/// `not_mentioned`; an unknown value is read as not mentioned, with a
/// remark).
fn note_label(note: &NoteInput, observation: Observation, remarks: &mut Vec<String>) -> NoteLabel {
    if let Some(a) = &note.analysis {
        return a
            .labels
            .get(&observation)
            .copied()
            .unwrap_or(NoteLabel::NotMentioned);
    }
    let key = observation.as_str();
    match note.labels.get(key).map(|s| s.trim()) {
        None | Some("not_mentioned") => NoteLabel::NotMentioned,
        Some("positive") => NoteLabel::Positive,
        Some("negative") => NoteLabel::Negative,
        Some("uncertain") => NoteLabel::Uncertain,
        Some(other) => {
            remarks.push(format!(
                "note {}: unknown label {other:?} for {key}, read as not_mentioned",
                note.note_id
            ));
            NoteLabel::NotMentioned
        }
    }
}

/// Embeds every usable note's sentences in one batch, when an encoder is
/// built (zero-shot enabled or heads installed).
fn embed_notes<'a>(
    model: &TextModel,
    usable: &[&'a NoteInput],
    remarks: &mut Vec<String>,
    timings: &mut BTreeMap<String, f64>,
) -> Vec<NoteSentences<'a>> {
    let mut out: Vec<NoteSentences<'a>> = usable
        .iter()
        .map(|note| {
            let texts: Vec<&str> = match &note.analysis {
                Some(a) => a
                    .sentences
                    .iter()
                    .take(text::MAX_SENTENCES)
                    .filter_map(|s| s.slice(&note.text))
                    .collect(),
                None => text::sentences(&note.text).0,
            };
            let all = note.analysis.as_ref().map_or_else(
                || text::sentences(&note.text).1,
                |a| a.sentences.len() > text::MAX_SENTENCES,
            );
            if all {
                remarks.push(format!(
                    "note {}: only the first {} sentences were embedded",
                    note.note_id,
                    text::MAX_SENTENCES
                ));
            }
            NoteSentences {
                texts,
                embeddings: None,
            }
        })
        .collect();
    let Some(encoder) = &model.encoder else {
        remarks.push("zero-shot classifier disabled by the package; mention labels only".into());
        return out;
    };
    let flat: Vec<&str> = out.iter().flat_map(|s| s.texts.iter().copied()).collect();
    let t = Instant::now();
    match encoder.embed(&flat) {
        Ok(flat) => {
            let mut it = flat.into_iter();
            for s in &mut out {
                s.embeddings = Some(it.by_ref().take(s.texts.len()).collect());
            }
        }
        Err(e) => remarks.push(format!(
            "the sentence encoder failed ({e}); mention labels only"
        )),
    }
    timings.insert("text_encoder".to_owned(), ms(t));
    out
}

/// The rule-based opinion: mention-label evidence ⊕ weak zero-shot evidence,
/// rebased to the heads package's prior where it has one.
fn rule_opinion(
    model: &TextModel,
    observation: Observation,
    note: &NoteInput,
    label: NoteLabel,
    sentences: &NoteSentences<'_>,
    remarks: &mut Vec<String>,
) -> BranchOpinion {
    let key = observation.as_str();
    let mention_evidence = Evidence::from_text_label(label, &model.weights);
    let mut opinion = mention_evidence.to_opinion();
    let mut evidence = mention_evidence;
    let mut zero_shot = None;
    // The labeller ran and found no mention: the zero-shot prompts add
    // nothing (module docs). A note with no labels at all was never
    // labelled, and the prompts are all the text evidence it has.
    let labelled = note.analysis.is_some() || !note.labels.is_empty();
    let mentioned = label != NoteLabel::NotMentioned || !labelled;
    if mentioned
        && let (Some((spec, prompts)), Some(emb)) = (&model.zero_shot, &sentences.embeddings)
        && let Some((_, present, absent)) = prompts.iter().find(|(o, _, _)| *o == observation)
    {
        let calibration = zero_shot_calibration(spec, observation);
        match text::score(emb, present, absent, spec, &calibration) {
            Ok(Some(s)) => {
                if let Ok(c) = combine(&opinion, &s.evidence.to_opinion()) {
                    opinion = c.opinion;
                }
                evidence = Evidence::new(
                    evidence.positive() + s.evidence.positive(),
                    evidence.negative() + s.evidence.negative(),
                )
                .unwrap_or(evidence);
                zero_shot = Some(ZeroShotSource {
                    note_id: note.note_id.clone(),
                    sentence: sentences
                        .texts
                        .get(s.sentence)
                        .map(|x| (*x).to_owned())
                        .unwrap_or_default(),
                    similarity_present: s.similarity_present,
                    similarity_absent: s.similarity_absent,
                    logit: s.logit,
                    probability: s.probability,
                    evidence: s.evidence,
                });
            }
            Ok(None) => {}
            Err(e) => remarks.push(format!("{key}: zero-shot evidence failed: {e}")),
        }
    }
    if let Some(heads) = &model.heads
        && let Ok(rebased) = opinion.with_base_rate(heads.heads.base_rate(observation))
    {
        opinion = rebased;
    }
    let prediction_set = model.zero_shot.as_ref().and_then(|(spec, _)| {
        let z = zero_shot.as_ref()?;
        spec.labels
            .iter()
            .find(|l| l.observation == observation)?
            .conformal?
            .predict_set(z.probability)
            .ok()
    });
    BranchOpinion {
        probability: opinion.projected_probability(),
        opinion,
        mean: None,
        variance: None,
        passes: None,
        evidence,
        trust: None,
        mention: Some(MentionSource {
            note_id: note.note_id.clone(),
            label,
            evidence: mention_evidence,
        }),
        zero_shot,
        prediction_set,
        head: None,
    }
}

fn zero_shot_calibration(spec: &ZeroShot, observation: Observation) -> TemperatureScaler {
    spec.labels
        .iter()
        .find(|l| l.observation == observation)
        .map(|l| l.calibration)
        .unwrap_or_default()
}
