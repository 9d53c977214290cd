//! The stored shape of a note analysis: sections, sentences, observation
//! mentions with their ConText assertion (Harkema et al., J Biomed Inform
//! 2009) and per-observation note labels following the CheXpert labeller
//! convention (Irvin et al., AAAI 2019). The note labeller
//! (`fusion-notes`) produces it, the store keeps it as typed JSON, the text
//! branch of the models reads it, the dashboard shows it.
//!
//! Every span is a byte range into the note text it was computed on.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::Observation;

/// A half-open range `[start, end)` of **byte offsets** into the original
/// UTF-8 text. Every span this crate returns lies on `char` boundaries, so
/// `&text[span.start..span.end]` never panics for the text it came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Span {
    /// First byte of the range.
    pub start: usize,
    /// One past the last byte of the range.
    pub end: usize,
}

impl Span {
    /// Builds a span from byte offsets; `start` must not exceed `end`.
    #[must_use]
    pub const fn new(start: usize, end: usize) -> Self {
        Self { start, end }
    }

    /// Length in bytes.
    #[must_use]
    pub const fn len(&self) -> usize {
        self.end - self.start
    }

    /// True when the span covers no bytes.
    #[must_use]
    pub const fn is_empty(&self) -> bool {
        self.start == self.end
    }

    /// True when `other` lies entirely inside this span.
    #[must_use]
    pub const fn contains(&self, other: Self) -> bool {
        self.start <= other.start && other.end <= self.end
    }

    /// The covered text, or `None` when the span is out of range or splits a
    /// character of `text`.
    #[must_use]
    pub fn slice<'a>(&self, text: &'a str) -> Option<&'a str> {
        text.get(self.start..self.end)
    }
}

/// Canonical section kinds; many header spellings map to each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SectionKind {
    /// Text before the first recognised header.
    Preamble,
    /// Reason for the study: "INDICATION:", "Clinical history:", "HISTORY:".
    Indication,
    /// Prior studies compared against.
    Comparison,
    /// Acquisition technique or views.
    Technique,
    /// Radiology findings.
    Findings,
    /// Radiology impression or conclusion.
    Impression,
    /// "CHIEF COMPLAINT:", "CC:".
    ChiefComplaint,
    /// "HPI:", "History of Present Illness:".
    HistoryOfPresentIllness,
    /// "ROS:", "Review of Systems:".
    ReviewOfSystems,
    /// Past medical or surgical history: "PMH:", "PSH".
    PastHistory,
    /// "MEDICATIONS:", "Meds:".
    Medications,
    /// "ALLERGIES:".
    Allergies,
    /// "FAMILY HISTORY:", "FH:".
    FamilyHistory,
    /// "SOCIAL HISTORY:", "SH:".
    SocialHistory,
    /// "ASSESSMENT:", and combined "A/P:" / "Assessment and Plan:".
    Assessment,
    /// "PLAN:", "RECOMMENDATIONS:".
    Plan,
    /// A recognised header with no kind of its own ("ADDENDUM:", "EXAM:").
    Other,
}

impl SectionKind {
    /// Whether the section states why the study or visit was requested
    /// rather than what was found: the indication (clinical history,
    /// clinical question, reason for exam), the chief complaint and the
    /// history of present illness. Mentions there never count towards a
    /// label ([`Mention::counts`]).
    #[must_use]
    pub fn states_the_request(self) -> bool {
        matches!(
            self,
            SectionKind::Indication
                | SectionKind::ChiefComplaint
                | SectionKind::HistoryOfPresentIllness
        )
    }
}

/// One section: an optional header and the body that follows it up to the
/// next header (or the end of the text). Spans are byte offsets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Section {
    /// Canonical kind.
    pub kind: SectionKind,
    /// The header words including a trailing colon; `None` for the preamble.
    pub header: Option<Span>,
    /// Everything after the header up to the next section, whitespace included.
    pub body: Span,
}

impl Section {
    /// Header and body together.
    #[must_use]
    pub fn span(&self) -> Span {
        Span::new(
            self.header.map_or(self.body.start, |h| h.start),
            self.body.end,
        )
    }
}

/// Whether the patient has the concept, per the sentence.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Assertion {
    /// Affirmed: no negation or uncertainty applies.
    #[default]
    Present,
    /// Negated ("no effusion", "pneumothorax is ruled out").
    Absent,
    /// Hedged ("possible pneumonia", "cannot exclude edema").
    Possible,
}

/// The kind of context a trigger phrase signals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TriggerCategory {
    /// Negation: the concept is absent.
    Negation,
    /// Uncertainty: the concept is possible.
    Possible,
    /// The concept belongs to the patient's past.
    Historical,
    /// The concept is hypothetical or conditional ("return if ...").
    Hypothetical,
    /// The concept is experienced by someone else, e.g. a relative.
    Family,
}

/// A trigger phrase that set part of a concept's context.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TriggerHit {
    /// The trigger text as written.
    pub text: String,
    /// Byte span of the trigger in the analysed text.
    pub span: Span,
    /// What the trigger signals.
    pub category: TriggerCategory,
}

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
    /// `Context::trigger` of the labeller. A phrase
    /// that denies its own observation ("heart size is normal") is its own
    /// negation trigger.
    pub trigger: Option<TriggerHit>,
}

impl Mention {
    /// Whether the mention counts towards its note label: it is about the
    /// patient now (not family, historical or hypothetical) and lies outside
    /// the sections that state the request ([`SectionKind::states_the_request`]:
    /// an order such as "r/o pneumonia" or a history of cough says nothing
    /// about the image) and outside comparison and technique. So no label,
    /// positive or other, is ever derived from an indication or history.
    #[must_use]
    pub fn counts(&self) -> bool {
        let about_the_image = !self.section.states_the_request()
            && !matches!(
                self.section,
                SectionKind::Comparison | SectionKind::Technique
            );
        about_the_image && !self.family && !self.historical && !self.hypothetical
    }
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

impl NoteLabel {
    /// The serde name: `positive`, `negative`, `uncertain`, `not_mentioned`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Positive => "positive",
            Self::Negative => "negative",
            Self::Uncertain => "uncertain",
            Self::NotMentioned => "not_mentioned",
        }
    }
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
