//! Sentence splitting with byte spans, tuned for clinical prose: survives
//! abbreviations ("Dr.", "e.g.", "vs."), initials ("H. pylori"), decimals and
//! measurements ("3.5 x 2.1 mm"), and numbered lists ("1. ... 2. ...");
//! ends sentences at blank lines, before list items on a new line, and after
//! header-like lines ending in a colon.

/// Abbreviations whose period never ends a sentence (lower case, no final
/// period).
const ABBREVIATIONS: &[&str] = &[
    "dr", "mr", "mrs", "ms", "prof", "e.g", "i.e", "vs", "approx", "pt", "pts", "fig", "cf", "ca",
    "st", "sr", "jr", "b.i.d", "t.i.d", "q.i.d", "p.o", "p.r.n", "a.m", "p.m", "resp", "temp",
];

/// Abbreviations that end a sentence only when an upper-case word follows.
const SOFT_ABBREVIATIONS: &[&str] = &["etc", "al"];

use crate::Span;

/// The longest sentence, in bytes, before it is cut at the next whitespace
/// or punctuation other than a sentence end, and at twice this length
/// wherever it is. Report sentences run to a few hundred bytes; text with no
/// sentence end (a run-on list, a pasted table, a list glued by commas with
/// no space) would otherwise be one sentence whose assertion scopes cost
/// time that grows with the cube of its mentions (a 32 KiB run-on took 43 s;
/// a 64 KiB comma list with no space, 6.5 min).
pub const MAX_SENTENCE_BYTES: usize = 1_000;

/// Splits `text` into sentences. Returned spans are byte offsets into
/// `text`, in order, non-overlapping, trimmed of surrounding whitespace, and
/// never empty.
#[must_use]
pub fn split_sentences(text: &str) -> Vec<Span> {
    let mut spans = Vec::new();
    let mut start: Option<usize> = None;
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        if c.is_whitespace() {
            if let Some(s) = start
                && ((c == '\n' && line_break_ends_sentence(text, s, i))
                    || i - s >= MAX_SENTENCE_BYTES)
            {
                push_trimmed(text, s, i, &mut spans);
                start = None;
            }
            continue;
        }
        let mut s = *start.get_or_insert(i);
        if i - s >= 2 * MAX_SENTENCE_BYTES {
            // No whitespace for twice the limit: no word is that long, so
            // cut before this character.
            push_trimmed(text, s, i, &mut spans);
            start = Some(i);
            s = i;
        } else if i - s >= MAX_SENTENCE_BYTES
            && !c.is_alphanumeric()
            && !matches!(c, '.' | '!' | '?')
        {
            // Past the limit, a comma, semicolon or slash ends the piece
            // as whitespace would ("effusion,edema,…" with no space).
            push_trimmed(text, s, i + c.len_utf8(), &mut spans);
            start = None;
            continue;
        }
        if matches!(c, '.' | '!' | '?') {
            let mut end = i + c.len_utf8();
            while let Some(&(j, q)) = chars.peek() {
                if !is_closer(q) {
                    break;
                }
                end = j + q.len_utf8();
                chars.next();
            }
            let next_is_space = text[end..].chars().next().is_none_or(char::is_whitespace);
            let ends = if next_is_space {
                c != '.' || period_ends_sentence(text, s, i, end)
            } else {
                // Sentences run together without a space ("effusion.2.Mild",
                // "apex.There"): a period after a word of two or more
                // letters, followed by a capital or a list number, ends one.
                c == '.'
                    && glued_start(&text[end..])
                    && word_before(text, s, i).chars().count() >= 2
                    && word_before(text, s, i).chars().all(char::is_alphabetic)
                    && period_ends_sentence(text, s, i, end)
            };
            if ends {
                push_trimmed(text, s, end, &mut spans);
                start = None;
            }
        }
    }
    if let Some(s) = start {
        push_trimmed(text, s, text.len(), &mut spans);
    }
    spans
}

/// The word (letters, digits and inner periods) that ends at byte `dot`, in
/// the sentence that began at `start`.
fn word_before(text: &str, start: usize, dot: usize) -> &str {
    let before = &text[start..dot];
    let word_start = before
        .char_indices()
        .rev()
        .take_while(|&(_, c)| c.is_alphanumeric())
        .last()
        .map_or(before.len(), |(k, _)| k);
    &before[word_start..]
}

/// Whether `rest` (the text right after a period with no space) opens a new
/// sentence: an upper-case letter followed by a lower-case one ("There"), or
/// a list number ("2." or "2)").
fn glued_start(rest: &str) -> bool {
    let mut chars = rest.chars();
    match (chars.next(), chars.next()) {
        (Some(a), Some(b)) if a.is_uppercase() => b.is_lowercase(),
        (Some(a), Some(b)) if a.is_ascii_digit() => {
            b == '.' || b == ')' || (b.is_ascii_digit() && matches!(chars.next(), Some('.' | ')')))
        }
        _ => false,
    }
}

fn is_closer(c: char) -> bool {
    matches!(c, '"' | '\'' | ')' | ']' | '\u{201d}' | '\u{2019}')
}

/// Whether the period at byte `dot` ends the sentence that began at `start`.
fn period_ends_sentence(text: &str, start: usize, dot: usize, after: usize) -> bool {
    let before = &text[start..dot];
    let word_start = before
        .char_indices()
        .rev()
        .take_while(|&(_, c)| c.is_alphanumeric() || c == '.')
        .last()
        .map_or(before.len(), |(k, _)| k);
    let word = before[word_start..].to_lowercase();
    if word.is_empty() {
        return true;
    }
    // "1." or "b." opening a sentence is a list marker, not an end.
    let is_marker = word_start == 0
        && (word.len() <= 2 && word.chars().all(|c| c.is_ascii_digit())
            || word.chars().count() == 1);
    // A lone letter is an initial ("H. pylori").
    if is_marker || word.chars().count() == 1 || ABBREVIATIONS.contains(&word.as_str()) {
        return false;
    }
    if SOFT_ABBREVIATIONS.contains(&word.as_str()) {
        return text[after..]
            .trim_start()
            .chars()
            .next()
            .is_none_or(char::is_uppercase);
    }
    true
}

/// Whether a newline at byte `nl` ends the sentence that began at `start`:
/// a blank line follows, the next line opens a list item, or the line just
/// ended looks like a header (ends with a colon).
fn line_break_ends_sentence(text: &str, start: usize, nl: usize) -> bool {
    let rest = &text[nl + 1..];
    let next_line = rest.split('\n').next().unwrap_or_default();
    if next_line.trim().is_empty() {
        return true;
    }
    if text[start..nl].trim_end().ends_with(':') {
        return true;
    }
    starts_list_item(next_line.trim_start())
}

fn starts_list_item(line: &str) -> bool {
    let digits = line.chars().take_while(char::is_ascii_digit).count();
    let after = &line[digits..];
    if (1..=2).contains(&digits) {
        return after.starts_with(". ") || after.starts_with(") ") || after == "." || after == ")";
    }
    ["- ", "* ", "\u{2022}"].iter().any(|m| line.starts_with(m))
}

fn push_trimmed(text: &str, start: usize, end: usize, spans: &mut Vec<Span>) {
    let piece = &text[start..end];
    let trimmed = piece.trim_end();
    if !trimmed.is_empty() {
        spans.push(Span::new(start, start + trimmed.len()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(text: &str) -> Vec<&str> {
        split_sentences(text)
            .iter()
            .map(|s| &text[s.start..s.end])
            .collect()
    }

    #[test]
    fn abbreviations_and_measurements_do_not_split() {
        assert_eq!(
            split("Seen by Dr. Ames, e.g. for a 1.2 cm nodule vs. scar. Pt. is stable."),
            [
                "Seen by Dr. Ames, e.g. for a 1.2 cm nodule vs. scar.",
                "Pt. is stable."
            ]
        );
        assert_eq!(
            split("Mass measures 3.5 x 2.1 mm. Heart rate 80. Lungs clear!"),
            [
                "Mass measures 3.5 x 2.1 mm.",
                "Heart rate 80.",
                "Lungs clear!"
            ]
        );
    }

    #[test]
    fn numbered_lists_split_into_items() {
        assert_eq!(
            split("1. Small left effusion. 2. No pneumothorax."),
            ["1. Small left effusion.", "2. No pneumothorax."]
        );
        assert_eq!(
            split("1. Tube in place\n2. Clear lungs\n- stable mediastinum"),
            ["1. Tube in place", "2. Clear lungs", "- stable mediastinum"]
        );
        assert_eq!(split("1."), ["1."]);
    }

    #[test]
    fn sentences_run_together_without_a_space_split() {
        assert_eq!(
            split("1.No effusion.2.Mild cardiomegaly.3)Stable tube."),
            ["1.No effusion.", "2.Mild cardiomegaly.", "3)Stable tube."]
        );
        assert_eq!(
            split("Scar at the left apex.There is a small nodule."),
            ["Scar at the left apex.", "There is a small nodule."]
        );
        // Decimals, initials, abbreviations and all-capital runs stay whole.
        assert_eq!(
            split("Nodule 1.2 cm, e.g.Granuloma, H.pylori, XXXX.XXXX more."),
            ["Nodule 1.2 cm, e.g.Granuloma, H.pylori, XXXX.XXXX more."]
        );
    }

    #[test]
    fn a_run_on_sentence_is_cut_at_a_word_boundary() {
        let text = "no effusion and mild cardiomegaly and ".repeat(100);
        let spans = split_sentences(&text);
        assert!(spans.len() >= 3, "{}", spans.len());
        for s in &spans {
            let piece = &text[s.start..s.end];
            assert!(piece.len() <= MAX_SENTENCE_BYTES + 20, "{}", piece.len());
            assert!(!piece.starts_with(' ') && !piece.ends_with(' '));
        }
        // A word is never cut.
        let joined: Vec<&str> = spans.iter().map(|s| &text[s.start..s.end]).collect();
        assert_eq!(joined.join(" "), text.trim_end());
    }

    #[test]
    fn text_without_whitespace_is_cut_at_punctuation_or_at_twice_the_limit() {
        let text = "effusion,pneumonia,no,edema,".repeat(100);
        let spans = split_sentences(&text);
        let pieces: Vec<&str> = spans.iter().map(|s| &text[s.start..s.end]).collect();
        assert!(pieces.len() >= 2, "{}", pieces.len());
        for piece in &pieces {
            assert!(piece.len() <= MAX_SENTENCE_BYTES + 20, "{}", piece.len());
            assert!(piece.ends_with(','), "cut after a comma: {piece:?}");
        }
        assert_eq!(pieces.concat(), text);
        // No punctuation at all: cut at twice the limit, on a character
        // boundary (multi-byte letters included).
        let text = "é".repeat(3 * MAX_SENTENCE_BYTES);
        let spans = split_sentences(&text);
        assert_eq!(spans.len(), 3);
        for s in &spans {
            assert!(text.is_char_boundary(s.start) && text.is_char_boundary(s.end));
            assert!(s.end - s.start <= 2 * MAX_SENTENCE_BYTES);
        }
        assert_eq!(spans.last().unwrap().end, text.len());
    }

    #[test]
    fn line_breaks_split_only_at_blank_lines_and_header_lines() {
        assert_eq!(
            split("There is a small\nleft effusion\n\nCHEST:\nclear etc. and more etc. Next"),
            [
                "There is a small\nleft effusion",
                "CHEST:",
                "clear etc. and more etc.",
                "Next"
            ]
        );
    }
}
