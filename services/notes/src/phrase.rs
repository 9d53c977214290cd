//! Phrase lists compiled into a token-sequence matcher (longest match wins),
//! plus a tiny pattern syntax so lexicons can spell variants compactly.

use std::collections::HashMap;
use std::ops::Range;

use crate::token::{Token, tokenize};

/// Expands a pattern into every phrase it denotes: `[x]` is optional and
/// `(a|b)` picks one alternative; groups nest. `"pleural effusion[s]"` gives
/// `"pleural effusion"` and `"pleural effusions"`.
pub(crate) fn expand(pattern: &str) -> Vec<String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut pos = 0;
    alternatives(&chars, &mut pos)
        .into_iter()
        .map(|s| s.split_whitespace().collect::<Vec<_>>().join(" "))
        .filter(|s| !s.is_empty())
        .collect()
}

fn alternatives(chars: &[char], pos: &mut usize) -> Vec<String> {
    let mut out = sequence(chars, pos);
    while chars.get(*pos) == Some(&'|') {
        *pos += 1;
        out.extend(sequence(chars, pos));
    }
    out
}

fn sequence(chars: &[char], pos: &mut usize) -> Vec<String> {
    let mut acc = vec![String::new()];
    while let Some(&c) = chars.get(*pos) {
        match c {
            '|' | ')' | ']' => break,
            '(' | '[' => {
                *pos += 1;
                let mut inner = alternatives(chars, pos);
                *pos += 1; // the closing bracket
                if c == '[' {
                    inner.push(String::new());
                }
                acc = acc
                    .iter()
                    .flat_map(|a| inner.iter().map(move |b| format!("{a}{b}")))
                    .collect();
            }
            _ => {
                acc.iter_mut().for_each(|a| a.push(c));
                *pos += 1;
            }
        }
    }
    acc
}

/// Matches tokenized phrases against token streams, case-insensitively and
/// on token (hence word) boundaries.
#[derive(Debug)]
pub(crate) struct PhraseMatcher<T> {
    /// Phrases keyed by their tokens joined with [`SEP`].
    phrases: HashMap<String, T>,
    /// For each first token, the distinct phrase lengths in tokens, longest
    /// first, so a lookup tries only lengths that exist.
    lengths: HashMap<String, Vec<usize>>,
}

/// Joins token texts into a key; tokens never contain it.
const SEP: char = '\u{1f}';

fn key<'a>(words: impl IntoIterator<Item = &'a str>) -> String {
    let mut key = String::new();
    for (k, w) in words.into_iter().enumerate() {
        if k > 0 {
            key.push(SEP);
        }
        key.push_str(w);
    }
    key
}

impl<T> PhraseMatcher<T> {
    pub(crate) fn new() -> Self {
        Self {
            phrases: HashMap::new(),
            lengths: HashMap::new(),
        }
    }

    /// Adds every expansion of `pattern` (see [`expand`]) with `value`; an
    /// already-present phrase keeps its first value.
    pub(crate) fn add(&mut self, pattern: &str, value: T)
    where
        T: Clone,
    {
        for phrase in expand(pattern) {
            let words: Vec<String> = tokenize(&phrase, 0).into_iter().map(|t| t.norm).collect();
            let Some(first) = words.first() else {
                continue;
            };
            let lengths = self.lengths.entry(first.clone()).or_default();
            if let Err(at) = lengths.binary_search_by(|l| words.len().cmp(l)) {
                lengths.insert(at, words.len());
            }
            self.phrases
                .entry(key(words.iter().map(String::as_str)))
                .or_insert_with(|| value.clone());
        }
    }

    /// The longest phrase starting at token `i`: its length in tokens and value.
    pub(crate) fn longest_at(&self, tokens: &[Token], i: usize) -> Option<(usize, &T)> {
        let lengths = self.lengths.get(&tokens.get(i)?.norm)?;
        lengths.iter().find_map(|&len| {
            let window = tokens.get(i..i + len)?;
            let value = self
                .phrases
                .get(&key(window.iter().map(|t| t.norm.as_str())))?;
            Some((len, value))
        })
    }

    /// Left-to-right scan keeping the longest match at each position; matches
    /// never overlap. Ranges are token indices.
    pub(crate) fn scan(&self, tokens: &[Token]) -> Vec<(Range<usize>, &T)> {
        let mut found = Vec::new();
        let mut i = 0;
        while i < tokens.len() {
            match self.longest_at(tokens, i) {
                Some((len, value)) => {
                    found.push((i..i + len, value));
                    i += len;
                }
                None => i += 1,
            }
        }
        found
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expands_optional_and_alternative_groups() {
        let mut got = expand("(heart|cardiac silhouette) is [mildly ]enlarged");
        got.sort();
        assert_eq!(
            got,
            [
                "cardiac silhouette is enlarged",
                "cardiac silhouette is mildly enlarged",
                "heart is enlarged",
                "heart is mildly enlarged",
            ]
        );
        assert_eq!(expand("a|b"), ["a", "b"]);
    }

    #[test]
    fn longest_match_wins_and_matches_do_not_overlap() {
        let mut m = PhraseMatcher::new();
        m.add("effusion[s]", 1);
        m.add("pleural effusion", 2);
        m.add("pleural", 3);
        let tokens = tokenize("Small PLEURAL  effusion, effusions.", 0);
        let hits: Vec<_> = m.scan(&tokens).into_iter().map(|(r, v)| (r, *v)).collect();
        assert_eq!(hits, [(1..3, 2), (4..5, 1)]);
    }
}
