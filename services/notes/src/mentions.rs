//! Note-level analysis: observation mentions with their ConText assertion,
//! and per-observation labels following the CheXpert labeller convention
//! (Irvin et al., AAAI 2019).

use std::collections::BTreeMap;

use crate::Span;
use crate::assertion::{Assertion, TriggerCategory, TriggerHit, assess, normality};
use crate::lexicon::{MatchKind, Observation, find_in_tokens};
use crate::sections::{SectionKind, sectionize};
use crate::sentences::split_sentences;
use crate::token::tokenize;

pub use fusion_schemas::note::{Mention, NoteAnalysis, NoteLabel};

/// Analyses a radiology report or clinical note: sections, sentences,
/// observation mentions with assertion status, and CheXpert-style labels.
///
/// Labelling rules, per observation:
/// * Counted mentions exclude family, historical and hypothetical ones, and
///   those in the indication, comparison and technique sections (an order
///   such as "r/o pneumonia" says nothing about the image).
/// * If the impression mentions the observation, only the impression's
///   mentions count: it is the radiologist's final word.
/// * Any present → positive, else any possible → uncertain, else any
///   absent → negative, else not mentioned.
/// * No Finding is positive when no observation other than Support Devices
///   is positive or uncertain and the note either states normality ("no
///   acute cardiopulmonary process", "normal chest") or negates at least
///   one observation; otherwise it is not mentioned. It is never negative,
///   as in CheXpert where the column is 1 or blank.
#[must_use]
pub fn analyze(text: &str) -> NoteAnalysis {
    let sections = sectionize(text);
    let mut sentences = Vec::new();
    let mut mentions = Vec::new();
    for section in &sections {
        let body = section.body;
        for local in split_sentences(&text[body.start..body.end]) {
            let sentence = Span::new(body.start + local.start, body.start + local.end);
            sentences.push(sentence);
            mentions.extend(sentence_mentions(text, sentence, section.kind));
        }
    }
    let labels = label(&mentions);
    NoteAnalysis {
        sections,
        sentences,
        mentions,
        labels,
    }
}

fn sentence_mentions(text: &str, sentence: Span, section: SectionKind) -> Vec<Mention> {
    let tokens = tokenize(&text[sentence.start..sentence.end], sentence.start);
    let found = find_in_tokens(&tokens);
    let spans: Vec<Span> = found.iter().map(|m| m.span).collect();
    let contexts = assess(text, sentence, &spans);
    found
        .into_iter()
        .zip(contexts)
        .filter_map(|(m, mut context)| {
            match m.kind {
                MatchKind::Names => {}
                MatchKind::Denies => {
                    context.assertion = Assertion::Absent;
                    context.trigger = Some(TriggerHit {
                        text: text[m.span.start..m.span.end].to_owned(),
                        span: m.span,
                        category: TriggerCategory::Negation,
                    });
                }
                MatchKind::Hedges => {
                    context.assertion = Assertion::Possible;
                    context.trigger = Some(TriggerHit {
                        text: text[m.span.start..m.span.end].to_owned(),
                        span: m.span,
                        category: TriggerCategory::Possible,
                    });
                }
                MatchKind::Old => context.historical = true,
                MatchKind::Structure => {
                    // A bare structure is a mention only when stated normal.
                    let trigger = normality(text, sentence, m.span)?;
                    context.assertion = Assertion::Absent;
                    context.trigger = Some(trigger);
                }
            }
            Some(Mention {
                observation: m.observation,
                span: m.span,
                text: text[m.span.start..m.span.end].to_owned(),
                assertion: context.assertion,
                historical: context.historical || section == SectionKind::PastHistory,
                hypothetical: context.hypothetical,
                family: context.family || section == SectionKind::FamilyHistory,
                section,
                sentence,
                trigger: context.trigger,
            })
        })
        .collect()
}

fn label(mentions: &[Mention]) -> BTreeMap<Observation, NoteLabel> {
    let counted: Vec<&Mention> = mentions.iter().filter(|m| m.counts()).collect();
    let mut labels: BTreeMap<Observation, NoteLabel> = Observation::ALL
        .iter()
        .filter(|&&o| o != Observation::NoFinding)
        .map(|&o| (o, observation_label(&counted, o)))
        .collect();
    let abnormal = labels.iter().any(|(&o, &l)| {
        o != Observation::SupportDevices && matches!(l, NoteLabel::Positive | NoteLabel::Uncertain)
    });
    let normal_stated = counted
        .iter()
        .any(|m| m.observation == Observation::NoFinding && m.assertion == Assertion::Present);
    let something_negated = labels.values().any(|&l| l == NoteLabel::Negative);
    let no_finding = if !abnormal && (normal_stated || something_negated) {
        NoteLabel::Positive
    } else {
        NoteLabel::NotMentioned
    };
    labels.insert(Observation::NoFinding, no_finding);
    labels
}

fn observation_label(counted: &[&Mention], observation: Observation) -> NoteLabel {
    let all: Vec<&Mention> = counted
        .iter()
        .copied()
        .filter(|m| m.observation == observation)
        .collect();
    let in_impression: Vec<&Mention> = all
        .iter()
        .copied()
        .filter(|m| m.section == SectionKind::Impression)
        .collect();
    let used = if in_impression.is_empty() {
        all
    } else {
        in_impression
    };
    let any = |a: Assertion| used.iter().any(|m| m.assertion == a);
    if any(Assertion::Present) {
        NoteLabel::Positive
    } else if any(Assertion::Possible) {
        NoteLabel::Uncertain
    } else if any(Assertion::Absent) {
        NoteLabel::Negative
    } else {
        NoteLabel::NotMentioned
    }
}
