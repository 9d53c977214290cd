//! Sectionizer for radiology reports and clinical notes: finds headers such
//! as `FINDINGS:`, `INDICATION/CLINICAL QUESTION:` or `History of Present
//! Illness:` at line start and splits the text into canonical
//! [`SectionKind`]s with byte spans. The spellings, with their sources, are
//! the table in [`crate::section_headers`].

use std::sync::LazyLock;

use crate::Span;
use crate::phrase::PhraseMatcher;
use crate::section_headers::HEADERS;
use crate::token::{Token, tokenize};

pub use fusion_schemas::note::{Section, SectionKind};

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

/// Words that join two header names into one header: "INDICATION/CLINICAL
/// QUESTION:", "History and indication:", "FINDINGS & IMPRESSION:".
const JOINERS: &[&str] = &["/", "and", "&", ",", "+", "-"];

/// A header at the start of `line`: one known name, or several joined by
/// [`JOINERS`], then a colon or the end of the line. A joined header takes
/// the kind of its first name, except that one naming the request anywhere
/// ([`SectionKind::states_the_request`]) is of that kind, so the reason for
/// a study is never read as what the study showed.
fn header_in_line(line: &str, base: usize) -> Option<(SectionKind, Span)> {
    let tokens = tokenize(line, base);
    let (mut len, &first_kind) = HEADER_MATCHER.longest_at(&tokens, 0)?;
    let mut kind = first_kind;
    while let Some(joiner) = tokens.get(len)
        && JOINERS.contains(&joiner.norm.as_str())
        && let Some((more, &next)) = HEADER_MATCHER.longest_at(&tokens, len + 1)
    {
        if next.states_the_request() && !kind.states_the_request() {
            kind = next;
        }
        len += 1 + more;
    }
    let first = tokens.first()?;
    header_end(&tokens, len).map(|end| (kind, Span::new(first.span.start, end)))
}

/// Where a header of `len` tokens ends: after its colon, or after its last
/// word when nothing else is on the line; `None` when prose follows.
fn header_end(tokens: &[Token], len: usize) -> Option<usize> {
    match tokens.get(len) {
        Some(colon) if colon.norm == ":" => Some(colon.span.end),
        None => Some(tokens[len - 1].span.end),
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
    fn joined_and_request_headers_are_indications() {
        let text = "INDICATION/CLINICAL QUESTION: Cough. Pneumonia?\nFINDINGS: Clear lungs.\nIMPRESSION: Normal.";
        let sections = sectionize(text);
        assert_eq!(
            kinds(text),
            [
                SectionKind::Indication,
                SectionKind::Findings,
                SectionKind::Impression
            ]
        );
        assert_eq!(
            sections[0].header.and_then(|h| h.slice(text)),
            Some("INDICATION/CLINICAL QUESTION:")
        );
        for header in [
            "CLINICAL QUESTION: fever",
            "Reason for exam: fever",
            "REASON FOR STUDY: fever",
            "History: fever",
            "HISTORY AND INDICATION: fever",
            "Clinical information: fever",
            "Exam reason: fever",
            "COMPARISON/HISTORY: none; fever",
            "Findings/indication: fever",
        ] {
            assert_eq!(kinds(header), [SectionKind::Indication], "{header}");
        }
        assert_eq!(
            kinds("FINDINGS/IMPRESSION: Small effusion."),
            [SectionKind::Findings]
        );
        assert_eq!(
            kinds("Findings and plan to follow: none"),
            [SectionKind::Preamble]
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
