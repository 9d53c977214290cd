//! Sectionizer for radiology reports and clinical notes: finds headers such
//! as `FINDINGS:` or `History of Present Illness:` at line start and splits
//! the text into canonical [`SectionKind`]s with byte spans.

use std::sync::LazyLock;

use crate::Span;
use crate::phrase::PhraseMatcher;
use crate::token::tokenize;

pub use fusion_schemas::note::{Section, SectionKind};

/// Header spellings, matched case-insensitively on whole tokens.
const HEADERS: &[(SectionKind, &str)] = &[
    (
        SectionKind::Indication,
        "[clinical ]indication[s]|reason for (exam|examination|study|request|referral)|[clinical ]history|clinical (information|data|details)",
    ),
    (
        SectionKind::Comparison,
        "comparison[s]|comparison (study|exam|studies)|prior (study|studies)",
    ),
    (SectionKind::Technique, "technique|views|protocol"),
    (SectionKind::Findings, "finding[s]"),
    (
        SectionKind::Impression,
        "impression[s]|conclusion[s]|interpretation|opinion|summary",
    ),
    (
        SectionKind::ChiefComplaint,
        "chief complaint[s]|cc|presenting complaint",
    ),
    (
        SectionKind::HistoryOfPresentIllness,
        "hpi|history of [the ]present illness|present illness",
    ),
    (SectionKind::ReviewOfSystems, "ros|review of system[s]"),
    (
        SectionKind::PastHistory,
        "pmh|psh|pmhx|past (medical|surgical) history|past history|past medical and surgical history|pmh/psh|medical history",
    ),
    (
        SectionKind::Medications,
        "medication[s]|meds|(current|home|admission|discharge) (medications|meds)|medications on admission",
    ),
    (SectionKind::Allergies, "allerg(y|ies)|drug allergies"),
    (SectionKind::FamilyHistory, "family (history|hx)|fh|fhx"),
    (SectionKind::SocialHistory, "social (history|hx)|sh|shx"),
    (
        SectionKind::Assessment,
        "assessment|a/p|a & p|assessment (and|&|/) plan|impression (and|&|/) plan",
    ),
    (SectionKind::Plan, "plan|recommendation[s]"),
    (
        SectionKind::Other,
        "addendum|exam|examination|procedure|physical exam[ination]|vital signs|hospital course|laboratory data|labs|wet read",
    ),
];

static HEADER_MATCHER: LazyLock<PhraseMatcher<SectionKind>> = LazyLock::new(|| {
    let mut m = PhraseMatcher::new();
    for &(kind, pattern) in HEADERS {
        m.add(pattern, kind);
    }
    m
});

/// Splits `text` into sections in order. A header is a known spelling at the
/// start of a line (after optional indentation) followed by a colon, or
/// standing alone on its line. Sections are contiguous and in order; text
/// before the first header becomes a [`SectionKind::Preamble`] unless it is
/// only whitespace, so any text no section covers is whitespace.
#[must_use]
pub fn sectionize(text: &str) -> Vec<Section> {
    let headers = find_headers(text);
    let mut sections = Vec::with_capacity(headers.len() + 1);
    let first_start = headers.first().map_or(text.len(), |(_, h)| h.start);
    if !text[..first_start].trim().is_empty() {
        sections.push(Section {
            kind: SectionKind::Preamble,
            header: None,
            body: Span::new(0, first_start),
        });
    }
    for (i, &(kind, header)) in headers.iter().enumerate() {
        let end = headers
            .get(i + 1)
            .map_or(text.len(), |(_, next)| next.start);
        sections.push(Section {
            kind,
            header: Some(header),
            body: Span::new(header.end, end),
        });
    }
    sections
}

fn find_headers(text: &str) -> Vec<(SectionKind, Span)> {
    let mut found = Vec::new();
    let mut line_start = 0;
    for line in text.split_inclusive('\n') {
        if let Some(hit) = header_in_line(line, line_start) {
            found.push(hit);
        }
        line_start += line.len();
    }
    found
}

fn header_in_line(line: &str, base: usize) -> Option<(SectionKind, Span)> {
    let tokens = tokenize(line, base);
    let (len, &kind) = HEADER_MATCHER.longest_at(&tokens, 0)?;
    let first = tokens.first()?;
    match tokens.get(len) {
        Some(colon) if colon.norm == ":" => {
            Some((kind, Span::new(first.span.start, colon.span.end)))
        }
        None => Some((kind, Span::new(first.span.start, tokens[len - 1].span.end))),
        Some(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(text: &str) -> Vec<SectionKind> {
        sectionize(text).iter().map(|s| s.kind).collect()
    }

    #[test]
    fn radiology_headers_split_the_report() {
        let text = "Exam done today.\nINDICATION: cough\nFINDINGS:\nSmall left effusion.\n  Impression: Effusion.\n";
        let sections = sectionize(text);
        assert_eq!(
            kinds(text),
            [
                SectionKind::Preamble,
                SectionKind::Indication,
                SectionKind::Findings,
                SectionKind::Impression
            ]
        );
        let imp = sections[3];
        assert_eq!(imp.header.and_then(|h| h.slice(text)), Some("Impression:"));
        assert_eq!(imp.body.slice(text), Some(" Effusion.\n"));
        assert_eq!(
            sections[2].body.slice(text),
            Some("\nSmall left effusion.\n  ")
        );
    }

    #[test]
    fn clinical_note_abbreviations_and_bare_headers() {
        let text = "CC: dyspnea\nHPI: 3 days\nPMH\nasthma\nFH: mother with CHF\nSH: no tobacco\nA/P: treat\nMeds: none";
        assert_eq!(
            kinds(text),
            [
                SectionKind::ChiefComplaint,
                SectionKind::HistoryOfPresentIllness,
                SectionKind::PastHistory,
                SectionKind::FamilyHistory,
                SectionKind::SocialHistory,
                SectionKind::Assessment,
                SectionKind::Medications,
            ]
        );
    }

    #[test]
    fn header_words_inside_prose_are_not_headers() {
        assert_eq!(
            kinds("Findings suggest edema.\nPlan to repeat film."),
            [SectionKind::Preamble]
        );
        assert_eq!(kinds("  \n"), Vec::<SectionKind>::new());
        assert_eq!(
            kinds("Assessment and Plan: rest"),
            [SectionKind::Assessment]
        );
    }
}
