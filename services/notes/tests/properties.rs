//! Span invariants of `analyze` on generated text, including non-ASCII.

use fusion_notes::{Span, analyze};

/// Fragments mixing headers, triggers, findings, numbers and non-ASCII.
const FRAGMENTS: &[&str] = &[
    "IMPRESSION:",
    "Findings:",
    "\n",
    "\n\n",
    " ",
    "  ",
    ".",
    ",",
    ":",
    "1.",
    "2)",
    "1.2 cm",
    "3.5 x 2.1 mm",
    "no",
    "No",
    "not",
    "possible",
    "is ruled out",
    "cannot be excluded",
    "but",
    "history of",
    "mother",
    "effusion",
    "pleural effusions",
    "pneumothorax",
    "heart size is enlarged",
    "ETT",
    "r/o",
    "s/p",
    "(",
    ")",
    "?",
    "Dr.",
    "e.g.",
    "é",
    "µg",
    "“smart”",
    "‘quotes’",
    "肺炎",
    "—",
    "naïve",
    "\t",
    "Ω",
    "A/P:",
    "CC:",
    "edema.",
    "opacity",
    "\u{200b}",
    "🫁",
];

/// Deterministic xorshift generator: the test needs no dependency and
/// always sees the same inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn generate(rng: &mut Rng) -> String {
    let len = rng.below(40);
    let mut text = String::new();
    for _ in 0..len {
        text.push_str(FRAGMENTS[rng.below(FRAGMENTS.len())]);
        if rng.below(3) > 0 {
            text.push(' ');
        }
    }
    text
}

fn on_boundaries(text: &str, span: Span) -> bool {
    span.start <= span.end && text.is_char_boundary(span.start) && text.is_char_boundary(span.end)
}

#[test]
fn spans_are_consistent_on_generated_text() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    for _ in 0..3000 {
        let text = generate(&mut rng);
        let a = analyze(&text);

        for m in &a.mentions {
            assert!(on_boundaries(&text, m.span), "{text:?}");
            assert_eq!(&text[m.span.start..m.span.end], m.text, "{text:?}");
            assert!(m.sentence.contains(m.span), "{text:?}");
            if let Some(t) = &m.trigger {
                assert!(on_boundaries(&text, t.span));
                assert_eq!(&text[t.span.start..t.span.end], t.text);
            }
        }

        // Sections tile the text in order; anything uncovered is whitespace.
        let mut cursor = 0;
        for s in &a.sections {
            let span = s.span();
            assert!(
                on_boundaries(&text, span) && on_boundaries(&text, s.body),
                "{text:?}"
            );
            assert!(text[cursor..span.start].trim().is_empty(), "{text:?}");
            assert!(span.start >= cursor, "{text:?}");
            cursor = span.end;
        }
        assert_eq!(
            cursor,
            if a.sections.is_empty() { 0 } else { text.len() },
            "{text:?}"
        );
        if a.sections.is_empty() {
            assert!(text.trim().is_empty(), "{text:?}");
        }

        // Sentences are ordered, non-empty, disjoint, and never hold a header.
        for pair in a.sentences.windows(2) {
            assert!(pair[0].end <= pair[1].start, "{text:?}");
        }
        for s in &a.sentences {
            assert!(on_boundaries(&text, *s) && !s.is_empty(), "{text:?}");
            assert!(
                a.sections.iter().all(|sec| sec
                    .header
                    .is_none_or(|h| h.end <= s.start || s.end <= h.start)),
                "{text:?}"
            );
        }
    }
}
