//! A seeded, dependency-free mutator for the bounded runs: the same seed
//! gives the same mutants on every machine, so a failure in CI is
//! reproduced by its seed alone.
//!
//! Half of the mutations aim at what the issue #14 attack used, the length
//! and size fields of DICOM element headers (found by a cheap scan for
//! plausible headers); the rest are the generic byte-level mutations of
//! AFL and libFuzzer (bit flips, interesting integers, truncation, chunk
//! copies and deletions).

/// xorshift64* (Vigna, "An experimental exploration of Marsaglia's
/// xorshift generators, scrambled", 2016): small, fast, and good enough to
/// pick offsets.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from `seed` (0 is mapped to a fixed non-zero state).
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            0
        } else {
            (self.next_u64() % n as u64) as usize
        }
    }

    /// One of `items`.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// 32-bit values that break length arithmetic: the 0xFFFFFFF0, the
/// undefined length, sign boundaries, and large but plausible sizes.
const INTERESTING_32: &[u32] = &[
    0xFFFF_FFF0,
    0xFFFF_FFFF,
    0xFFFF_FFFE,
    0x7FFF_FFFF,
    0x8000_0000,
    0x0FFF_FFFF,
    0x00FF_FFFF,
    0x0010_0000,
    0xFFFF,
    0,
    1,
];

const INTERESTING_16: &[u16] = &[0xFFFF, 0xFFFE, 0x8000, 0x7FFF, 0x1000, 0, 1];

/// Explicit VRs whose length field is 32 bits (PS3.5 §7.1.2).
const LONG_VRS: &[&[u8; 2]] = &[
    b"OB", b"OD", b"OF", b"OL", b"OV", b"OW", b"SQ", b"SV", b"UC", b"UN", b"UR", b"UT", b"UV",
];

const SHORT_VRS: &[&[u8; 2]] = &[
    b"AE", b"AS", b"AT", b"CS", b"DA", b"DS", b"DT", b"FD", b"FL", b"IS", b"LO", b"LT", b"PN",
    b"SH", b"SL", b"SS", b"ST", b"TM", b"UI", b"UL", b"US",
];

/// Groups that real data sets use most, little endian.
const GROUPS: &[u16] = &[
    0x0002, 0x0008, 0x0009, 0x0010, 0x0018, 0x0020, 0x0028, 0x0032, 0x0040, 0x0054, 0x7FE0, 0xFFFE,
];

/// Where a length field is, and how wide.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LengthField {
    /// Byte offset of the field.
    pub at: usize,
    /// 2 or 4 bytes, little endian.
    pub width: usize,
}

/// Offsets of plausible element and item length fields: a known group
/// followed by an explicit VR (length after it) or, for implicit VR, the
/// four bytes after the tag.
pub fn length_fields(bytes: &[u8]) -> Vec<LengthField> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 8 <= bytes.len() {
        let group = u16::from_le_bytes([bytes[i], bytes[i + 1]]);
        if GROUPS.contains(&group) {
            let vr = [bytes[i + 4], bytes[i + 5]];
            if LONG_VRS.iter().any(|v| **v == vr) && i + 12 <= bytes.len() {
                out.push(LengthField {
                    at: i + 8,
                    width: 4,
                });
            } else if SHORT_VRS.iter().any(|v| **v == vr) {
                out.push(LengthField {
                    at: i + 6,
                    width: 2,
                });
            } else {
                out.push(LengthField {
                    at: i + 4,
                    width: 4,
                });
            }
        }
        i += 2;
    }
    out
}

/// One to four mutations of `input`, chosen by `rng`.
pub fn mutate(input: &[u8], rng: &mut Rng) -> Vec<u8> {
    let mut out = input.to_vec();
    let fields = length_fields(input);
    for _ in 0..=rng.below(4) {
        mutate_once(&mut out, &fields, rng);
    }
    out
}

fn mutate_once(out: &mut Vec<u8>, fields: &[LengthField], rng: &mut Rng) {
    match rng.below(10) {
        // A length field: the issue #14 attack and its relatives.
        0..=4 if !fields.is_empty() => {
            let field = *rng.pick(fields);
            if field.at + field.width > out.len() {
                return;
            }
            let old = if field.width == 2 {
                u32::from(u16::from_le_bytes([out[field.at], out[field.at + 1]]))
            } else {
                u32::from_le_bytes([
                    out[field.at],
                    out[field.at + 1],
                    out[field.at + 2],
                    out[field.at + 3],
                ])
            };
            let value = match rng.below(3) {
                0 => *rng.pick(INTERESTING_32),
                1 => old.wrapping_add(rng.below(64) as u32).wrapping_sub(32),
                _ => rng.next_u64() as u32,
            };
            if field.width == 2 {
                out[field.at..field.at + 2].copy_from_slice(&(value as u16).to_le_bytes());
            } else {
                out[field.at..field.at + 4].copy_from_slice(&value.to_le_bytes());
            }
        }
        5 if out.len() >= 4 => {
            let at = rng.below(out.len() - 3);
            let value = *rng.pick(INTERESTING_32);
            out[at..at + 4].copy_from_slice(&value.to_le_bytes());
        }
        6 if out.len() >= 2 => {
            let at = rng.below(out.len() - 1);
            let value = *rng.pick(INTERESTING_16);
            out[at..at + 2].copy_from_slice(&value.to_le_bytes());
        }
        7 if !out.is_empty() => {
            for _ in 0..=rng.below(8) {
                let at = rng.below(out.len());
                out[at] ^= 1 << rng.below(8);
            }
        }
        8 if !out.is_empty() => {
            let at = rng.below(out.len());
            out.truncate(at);
        }
        9 if !out.is_empty() => {
            let start = rng.below(out.len());
            let len = rng.below((out.len() - start).min(4096)) + 1;
            let chunk = out[start..start + len].to_vec();
            if rng.below(2) == 0 {
                out.drain(start..start + len);
            } else {
                let at = rng.below(out.len() + 1);
                out.splice(at..at, chunk);
            }
        }
        _ => {
            if let Some(b) = out.get_mut(0) {
                *b = rng.next_u64() as u8;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_mutants() {
        let input: Vec<u8> = (0..=255).collect();
        let a: Vec<_> = (0..10).map(|s| mutate(&input, &mut Rng::new(s))).collect();
        let b: Vec<_> = (0..10).map(|s| mutate(&input, &mut Rng::new(s))).collect();
        assert_eq!(a, b);
        assert!(a.iter().any(|m| m != &input));
    }

    #[test]
    fn length_fields_of_implicit_and_explicit_headers_are_found() {
        // (0010,0010) implicit, length 4; (0028,0010) US explicit, length 2;
        // (7FE0,0010) OW explicit, 4-byte length.
        let mut bytes = vec![0x10, 0, 0x10, 0, 4, 0, 0, 0, b'a', b'b', b'c', b'd'];
        bytes.extend([0x28, 0, 0x10, 0, b'U', b'S', 2, 0, 1, 0]);
        bytes.extend([0xE0, 0x7F, 0x10, 0, b'O', b'W', 0, 0, 2, 0, 0, 0, 0, 0]);
        let fields = length_fields(&bytes);
        assert!(fields.contains(&LengthField { at: 4, width: 4 }));
        assert!(fields.contains(&LengthField { at: 18, width: 2 }));
        assert!(fields.contains(&LengthField { at: 30, width: 4 }));
    }
}
