//! Word/punctuation tokens with byte spans: the unit every matcher works on,
//! so that phrase lists never need regular expressions.

use crate::Span;

/// One token: a maximal run of alphanumeric characters (a word) or a single
/// other non-space character (punctuation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    /// Byte span in the text the tokenizer was given, shifted by its base.
    pub span: Span,
    /// Lower-cased text, used for all comparisons.
    pub norm: String,
    /// True for words, false for punctuation.
    pub word: bool,
}

/// Splits `text` into tokens whose spans are offset by `base` bytes, so that
/// a slice of a note can be tokenized with spans into the whole note.
pub(crate) fn tokenize(text: &str, base: usize) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut word_start: Option<usize> = None;
    for (i, c) in text.char_indices() {
        if c.is_alphanumeric() {
            word_start.get_or_insert(i);
            continue;
        }
        if let Some(start) = word_start.take() {
            tokens.push(make(text, start, i, base, true));
        }
        if !c.is_whitespace() {
            tokens.push(make(text, i, i + c.len_utf8(), base, false));
        }
    }
    if let Some(start) = word_start {
        tokens.push(make(text, start, text.len(), base, true));
    }
    tokens
}

fn make(text: &str, start: usize, end: usize, base: usize, word: bool) -> Token {
    let raw = &text[start..end];
    // Typographic apostrophes and dashes compare equal to their ASCII forms.
    let norm = match raw {
        "\u{2019}" | "\u{2018}" => "'".to_owned(),
        "\u{2013}" | "\u{2014}" => "-".to_owned(),
        _ => raw.to_lowercase(),
    };
    Token {
        span: Span::new(base + start, base + end),
        norm,
        word,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_and_punctuation_keep_byte_spans() {
        let text = "Pt. r/o µ-effusion";
        let tokens = tokenize(text, 10);
        let norms: Vec<&str> = tokens.iter().map(|t| t.norm.as_str()).collect();
        assert_eq!(norms, ["pt", ".", "r", "/", "o", "µ", "-", "effusion"]);
        for t in &tokens {
            assert!(text.is_char_boundary(t.span.start - 10));
        }
        assert_eq!(tokens[7].span, Span::new(10 + 11, 10 + text.len()));
    }
}
