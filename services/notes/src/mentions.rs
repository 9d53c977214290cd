//! Note-level analysis: observation mentions with their ConText assertion,
//! and per-observation labels following the CheXpert labeller convention
//! (Irvin et al., AAAI 2019).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Span;
use crate::assertion::{Assertion, TriggerCategory, TriggerHit, assess};
use crate::lexicon::{Observation, find_in_tokens};
use crate::sections::{Section, SectionKind, sectionize};
use crate::sentences::split_sentences;
use crate::token::tokenize;

/// One observation mentioned in the note, with its context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mention {
    /// The CheXpert observation named.
    pub observation: Observation,
    /// Byte span of the phrase in the note.
    pub span: Span,
    /// The phrase as written (`&text[span.start..span.end]`).
    pub text: String,
    /// Present, absent or possible.
    pub assertion: Assertion,
    /// About the patient's past (a trigger, or a past-history section).
    pub historical: bool,
    /// Hypothetical or conditional.
    pub hypothetical: bool,
    /// Experienced by someone else (a trigger, or a family-history section).
    pub family: bool,
    /// Kind of the section holding the mention.
    pub section: SectionKind,
    /// Byte span of the sentence holding the mention.
    pub sentence: Span,
    /// The trigger that decided the context; see
    /// [`Context::trigger`](crate::assertion::Context::trigger). A phrase
    /// that denies its own observation ("heart size is normal") is its own
    /// negation trigger.
    pub trigger: Option<TriggerHit>,
}

/// A note-level label for one observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoteLabel {
    /// At least one counted mention is present (CheXpert 1).
    Positive,
    /// Only absent counted mentions (CheXpert 0).
    Negative,
    /// A possible mention and no present one (CheXpert -1).
    Uncertain,
    /// No counted mention (CheXpert blank).
    NotMentioned,
}

/// Everything [`analyze`] finds in a note. Spans are byte offsets into the
/// analysed text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoteAnalysis {
    /// Sections in text order.
    pub sections: Vec<Section>,
    /// Sentences in text order; header words are never part of a sentence.
    pub sentences: Vec<Span>,
    /// Observation mentions in text order.
    pub mentions: Vec<Mention>,
    /// A label for each of the 14 observations, keyed by snake_case name.
    pub labels: BTreeMap<Observation, NoteLabel>,
}

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
        .map(|(m, mut context)| {
            if m.denied {
                context.assertion = Assertion::Absent;
                context.trigger = Some(TriggerHit {
                    text: text[m.span.start..m.span.end].to_owned(),
                    span: m.span,
                    category: TriggerCategory::Negation,
                });
            }
            Mention {
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
            }
        })
        .collect()
}

fn counts(m: &Mention) -> bool {
    let about_the_image = !matches!(
        m.section,
        SectionKind::Indication | SectionKind::Comparison | SectionKind::Technique
    );
    about_the_image && !m.family && !m.historical && !m.hypothetical
}

fn label(mentions: &[Mention]) -> BTreeMap<Observation, NoteLabel> {
    let counted: Vec<&Mention> = mentions.iter().filter(|m| counts(m)).collect();
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
