//! Segmented Palette Color Lookup Table Data (PS3.3 §C.7.9.2): the
//! compressed form of a palette channel in the Segmented Red, Green and
//! Blue Palette Color Lookup Table Data (0028,1221), (0028,1222),
//! (0028,1223), expanded to the plain table of §C.7.6.3.1.6.
//!
//! A channel is a run of segments, each starting with its type word:
//!
//! - 0, discrete: a length `n`, then `n` entries copied as they are;
//! - 1, linear: a length `n` and an end value `y1`; `n` entries from the
//!   previous segment's last entry `y0` (excluded) to `y1` (included), on a
//!   straight line, rounded to the nearest integer;
//! - 2, indirect: a count `n` and a 32-bit offset (least significant word
//!   first; for 8-bit tables four 8-bit entries, least significant first);
//!   the `n` segments found at that offset are expanded again here. The
//!   offset counts entries from the start of the data, as pydicom reads it
//!   (`pydicom.pixels.processing._expand_segmented_lut`), the reference the
//!   tests compare with; so do 8-bit tables, whose segmented data holds one
//!   entry per byte.
//!
//! Expansion is bounded: the table stops at the descriptor's number of
//! entries (at most 65,536), and an indirect segment may not point at
//! another indirect segment, so the work is linear in the output.

/// Why segmented palette data cannot be expanded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SegmentedError {
    /// The data ends inside a segment.
    #[error("segmented palette data ends inside a segment")]
    Truncated,
    /// A segment type other than 0, 1 or 2.
    #[error("segmented palette data holds an unknown segment type {0}")]
    UnknownSegment(u16),
    /// A linear or indirect segment before any entry.
    #[error("segmented palette data starts with a linear or indirect segment")]
    NoPreviousEntry,
    /// An indirect segment that points outside the data, or at another
    /// indirect segment.
    #[error("segmented palette data has an indirect segment with a bad offset")]
    BadIndirect,
}

/// Expands one channel's segmented data (`data`: its 16-bit words, or its
/// bytes for an 8-bit table, `eight_bit`) into at most `entries` entries
/// (the first value of its LUT descriptor, PS3.3 §C.7.6.3.1.5). Missing
/// trailing entries are left for the caller (a shorter table clamps to its
/// last entry).
///
/// # Errors
///
/// [`SegmentedError`] naming what is malformed.
pub fn expand_segmented(
    data: &[u16],
    entries: usize,
    eight_bit: bool,
) -> Result<Vec<u16>, SegmentedError> {
    let mut out = Vec::with_capacity(entries.min(65_536));
    let walk = Walk {
        data,
        entries,
        eight_bit,
    };
    walk.expand(0, usize::MAX, &mut out, true)?;
    Ok(out)
}

struct Walk<'a> {
    data: &'a [u16],
    entries: usize,
    eight_bit: bool,
}

impl Walk<'_> {
    /// Expands up to `segments` segments of the data starting at entry `at`.
    fn expand(
        &self,
        mut at: usize,
        segments: usize,
        out: &mut Vec<u16>,
        allow_indirect: bool,
    ) -> Result<(), SegmentedError> {
        let (data, entries) = (self.data, self.entries);
        let word = |i: usize| data.get(i).copied().ok_or(SegmentedError::Truncated);
        let mut done = 0;
        // A last lone word is padding to an even length (as pydicom reads it).
        while done < segments && at + 1 < data.len() && out.len() < entries {
            let kind = word(at)?;
            let n = usize::from(word(at + 1)?);
            match kind {
                0 => {
                    let values = data
                        .get(at + 2..at + 2 + n)
                        .ok_or(SegmentedError::Truncated)?;
                    let room = entries - out.len();
                    out.extend_from_slice(&values[..n.min(room)]);
                    at += 2 + n;
                }
                1 => {
                    let y1 = f64::from(word(at + 2)?);
                    let y0 = f64::from(*out.last().ok_or(SegmentedError::NoPreviousEntry)?);
                    let room = entries - out.len();
                    for i in 1..=n.min(room) {
                        let y = y0 + (y1 - y0) * i as f64 / n as f64;
                        // Half to even, as numpy's `around` in pydicom.
                        out.push(y.round_ties_even().clamp(0.0, 65_535.0) as u16);
                    }
                    at += 3;
                }
                2 => {
                    if !allow_indirect {
                        return Err(SegmentedError::BadIndirect);
                    }
                    if out.is_empty() {
                        return Err(SegmentedError::NoPreviousEntry);
                    }
                    let (offset, len) = if self.eight_bit {
                        let b = |i| word(at + 2 + i).map(|w| usize::from(w & 0xFF));
                        (b(0)? | b(1)? << 8 | b(2)? << 16 | b(3)? << 24, 6)
                    } else {
                        (
                            usize::from(word(at + 2)?) | usize::from(word(at + 3)?) << 16,
                            4,
                        )
                    };
                    if offset >= data.len() {
                        return Err(SegmentedError::BadIndirect);
                    }
                    self.expand(offset, n, out, false)?;
                    at += len;
                }
                other => return Err(SegmentedError::UnknownSegment(other)),
            }
            done += 1;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn discrete_linear_and_indirect_segments() {
        // Discrete 0, 10; linear to 50 in 4 steps; indirect: the first two
        // segments again (after 50: 0, 10, then linear 10 → 50).
        let data = [0, 2, 0, 10, 1, 4, 50, 2, 2, 0, 0];
        let out = expand_segmented(&data, 100, false).unwrap();
        assert_eq!(out, vec![0, 10, 20, 30, 40, 50, 0, 10, 20, 30, 40, 50]);
    }

    #[test]
    fn output_stops_at_the_descriptor_length() {
        let out = expand_segmented(&[0, 1, 7, 1, 60000, 65535], 5, false).unwrap();
        assert_eq!(out.len(), 5);
        assert_eq!(out[0], 7);
    }

    #[test]
    fn malformed_data_is_refused() {
        assert_eq!(
            expand_segmented(&[1, 4, 50], 10, false),
            Err(SegmentedError::NoPreviousEntry)
        );
        assert_eq!(
            expand_segmented(&[0, 5, 1, 2], 10, false),
            Err(SegmentedError::Truncated)
        );
        assert_eq!(
            expand_segmented(&[7, 1, 1], 10, false),
            Err(SegmentedError::UnknownSegment(7))
        );
        // An indirect segment pointing at itself.
        assert_eq!(
            expand_segmented(&[0, 1, 5, 2, 1, 3, 0], 10, false),
            Err(SegmentedError::BadIndirect)
        );
    }
}
