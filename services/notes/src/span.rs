//! Byte spans into the original note text, shared by every other module.

use serde::{Deserialize, Serialize};

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
