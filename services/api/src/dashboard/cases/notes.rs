//! The case page's notes: each note's text cut into plain pieces, section
//! headers and highlighted mentions (with a tooltip naming observation,
//! assertion, trigger and section), and counts per assertion.

use fusion_notes::{Mention, Section};
use fusion_store::NoteRecord;
use serde::Serialize;
use uuid::Uuid;

/// Mentions highlighted per note (a 10 MB note can hold a hundred thousand).
const MAX_MARKED: usize = 2000;

/// One piece of a note's text: plain, a section header, or a mention.
#[derive(Debug, Serialize)]
struct Piece {
    kind: &'static str,
    text: String,
    /// `present`, `absent` or `possible` (mentions).
    assertion: Option<&'static str>,
    /// The tooltip: observation, assertion, trigger, section.
    tip: Option<String>,
    /// The canonical section name (headers).
    section: Option<String>,
}

#[derive(Debug, Serialize)]
pub(super) struct NoteView {
    id: Uuid,
    title: String,
    source_format: String,
    authored_at: Option<String>,
    status: String,
    pieces: Vec<Piece>,
    counts: AssertionCounts,
    /// Mentions beyond [`MAX_MARKED`], shown unhighlighted.
    unmarked: usize,
    no_text_reason: Option<String>,
}

/// A note's mentions per assertion (every count named, zero included: the
/// templates are strict about undefined values).
#[derive(Debug, Default, Serialize)]
struct AssertionCounts {
    present: usize,
    absent: usize,
    possible: usize,
}

fn words(snake: &str) -> String {
    let spaced = snake.replace('_', " ");
    let mut chars = spaced.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn assertion_name(m: &Mention) -> &'static str {
    match m.assertion {
        fusion_notes::Assertion::Present => "present",
        fusion_notes::Assertion::Absent => "absent",
        fusion_notes::Assertion::Possible => "possible",
    }
}

fn mention_tip(m: &Mention) -> String {
    let observation = m.observation.display_name();
    let assertion = match m.assertion {
        fusion_notes::Assertion::Present => "present",
        fusion_notes::Assertion::Absent => "absent (negated)",
        fusion_notes::Assertion::Possible => "possible (hedged)",
    };
    let mut tip = format!("{observation}: {assertion}");
    match &m.trigger {
        Some(t) => {
            let category = serde_json::to_value(t.category)
                .ok()
                .and_then(|v| v.as_str().map(words))
                .unwrap_or_default();
            tip.push_str(&format!(
                " · trigger “{}” ({})",
                t.text,
                category.to_lowercase()
            ));
        }
        None => tip.push_str(" · no trigger"),
    }
    let flags: Vec<&str> = [
        (m.historical, "historical"),
        (m.hypothetical, "hypothetical"),
        (m.family, "family member"),
    ]
    .into_iter()
    .filter_map(|(on, w)| on.then_some(w))
    .collect();
    if !flags.is_empty() {
        tip.push_str(&format!(" · {}", flags.join(", ")));
    }
    let section = serde_json::to_value(m.section)
        .ok()
        .and_then(|v| v.as_str().map(words))
        .unwrap_or_default();
    tip.push_str(&format!(" · section {section}"));
    tip
}

/// Splits `text` into plain pieces, section headers and mentions, by their
/// byte spans (spans that do not fall on character boundaries, overlap, or
/// run past the end are shown as plain text).
fn pieces(text: &str, sections: &[Section], mentions: &[Mention]) -> Vec<Piece> {
    struct Mark<'a> {
        start: usize,
        end: usize,
        mention: Option<&'a Mention>,
        section: Option<&'a Section>,
    }
    let mut marks: Vec<Mark<'_>> = sections
        .iter()
        .filter_map(|s| {
            s.header.map(|h| Mark {
                start: h.start,
                end: h.end,
                mention: None,
                section: Some(s),
            })
        })
        .chain(mentions.iter().map(|m| Mark {
            start: m.span.start,
            end: m.span.end,
            mention: Some(m),
            section: None,
        }))
        .collect();
    marks.sort_by_key(|m| (m.start, std::cmp::Reverse(m.end)));
    let mut out = Vec::new();
    let mut at = 0;
    for mark in marks {
        if mark.start < at || mark.end <= mark.start || text.get(mark.start..mark.end).is_none() {
            continue;
        }
        if let Some(plain) = text.get(at..mark.start) {
            if !plain.is_empty() {
                out.push(Piece {
                    kind: "text",
                    text: plain.to_owned(),
                    assertion: None,
                    tip: None,
                    section: None,
                });
            }
        } else {
            continue;
        }
        let body = text[mark.start..mark.end].to_owned();
        match (mark.mention, mark.section) {
            (Some(m), _) => out.push(Piece {
                kind: "mention",
                text: body,
                assertion: Some(assertion_name(m)),
                tip: Some(mention_tip(m)),
                section: None,
            }),
            (None, Some(s)) => out.push(Piece {
                kind: "header",
                text: body,
                assertion: None,
                tip: None,
                section: serde_json::to_value(s.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(words)),
            }),
            (None, None) => {}
        }
        at = mark.end;
    }
    if let Some(rest) = text.get(at..)
        && !rest.is_empty()
    {
        out.push(Piece {
            kind: "text",
            text: rest.to_owned(),
            assertion: None,
            tip: None,
            section: None,
        });
    }
    out
}

/// A document type code's name: the LOINC document codes EHRs send most
/// (LOINC Document Ontology), else the code itself.
fn note_type_name(code: &str) -> String {
    let name = match code {
        "18748-4" => "Diagnostic imaging study",
        "18782-3" => "Radiology study observation",
        "68604-8" => "Radiology diagnostic study note",
        "11506-3" => "Progress note",
        "11488-4" => "Consult note",
        "34117-2" => "History and physical note",
        "18842-5" => "Discharge summary",
        "34111-5" => "Emergency department note",
        "28570-0" => "Procedure note",
        _ => return code.to_owned(),
    };
    format!("{name} (LOINC {code})")
}

pub(super) fn note_view(n: &NoteRecord) -> NoteView {
    let note = &n.note;
    let sections: &[Section] = &note.sections;
    let mentions: &[Mention] = &note.mentions;
    let mut counts = AssertionCounts::default();
    for m in mentions {
        *match m.assertion {
            fusion_notes::Assertion::Present => &mut counts.present,
            fusion_notes::Assertion::Absent => &mut counts.absent,
            fusion_notes::Assertion::Possible => &mut counts.possible,
        } += 1;
    }
    let text = note.text.clone().unwrap_or_default();
    // A very long note keeps the page usable: the first mentions are
    // highlighted, the rest shown as plain text, and the page says so.
    let marked = mentions.len().min(MAX_MARKED);
    let title = note
        .note_type
        .as_ref()
        .and_then(|t| {
            t.display
                .clone()
                .or_else(|| t.code.as_deref().map(note_type_name))
        })
        .unwrap_or_else(|| "Clinical note".to_owned());
    let source_format = match note.source_format.as_str() {
        "text" | "text/plain" => "plain text".to_owned(),
        other => words(other),
    };
    NoteView {
        id: note.id,
        title,
        source_format,
        authored_at: note
            .authored_at
            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string()),
        status: serde_json::to_value(note.status)
            .ok()
            .and_then(|v| v.as_str().map(words))
            .unwrap_or_default(),
        pieces: pieces(&text, sections, &mentions[..marked]),
        unmarked: mentions.len() - marked,
        counts,
        no_text_reason: note.no_text_reason.as_ref().map(|r| {
            r.get("message")
                .and_then(|m| m.as_str())
                .map(str::to_owned)
                .unwrap_or_else(|| r.to_string())
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fusion_notes::analyze;

    #[test]
    fn pieces_cover_the_text_exactly_and_mark_every_mention() {
        let text = "FINDINGS: No pneumothorax. Possible right lower lobe consolidation.\n\
                    IMPRESSION: Cardiomegaly.";
        let a = analyze(text);
        let p = pieces(text, &a.sections, &a.mentions);
        let joined: String = p.iter().map(|x| x.text.as_str()).collect();
        assert_eq!(joined, text);
        let marked: Vec<(&str, &str)> = p
            .iter()
            .filter(|x| x.kind == "mention")
            .map(|x| (x.text.as_str(), x.assertion.unwrap_or("")))
            .collect();
        assert!(marked.contains(&("pneumothorax", "absent")), "{marked:?}");
        assert!(marked.contains(&("Cardiomegaly", "present")), "{marked:?}");
        assert!(
            marked
                .iter()
                .any(|(t, a)| t.contains("consolidation") && *a == "possible"),
            "{marked:?}"
        );
        let headers: Vec<&str> = p
            .iter()
            .filter(|x| x.kind == "header")
            .map(|x| x.text.as_str())
            .collect();
        assert_eq!(headers.len(), 2, "{headers:?}");
        let tip = p
            .iter()
            .find(|x| x.text == "pneumothorax")
            .and_then(|x| x.tip.clone())
            .unwrap();
        assert!(tip.starts_with("Pneumothorax: absent"), "{tip}");
        assert!(tip.contains("trigger “No”"), "{tip}");
    }

    #[test]
    fn broken_spans_are_shown_as_plain_text() {
        let text = "héllo";
        let a = analyze("No effusion.");
        // Spans of another text: out of range or inside a character.
        let p = pieces(text, &a.sections, &a.mentions);
        let joined: String = p.iter().map(|x| x.text.as_str()).collect();
        assert_eq!(joined, text);
    }
}
