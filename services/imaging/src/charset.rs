//! Text decoding per Specific Character Set (0008,0005), PS3.5 §6.1 and
//! PS3.3 §C.12.1.1.2, including ISO 2022 code extensions (PS3.5 §6.1.2.5).
//!
//! dicom-rs decodes text with the first value of (0008,0005) only and keeps
//! whatever set was declared last, even past the end of a sequence item. That
//! is right for single-valued, single-byte sets, but not for code extensions
//! (`\ISO 2022 IR 87`, `ISO 2022 IR 13\ISO 2022 IR 87`, …). For those, the
//! bytes are recovered from dicom-rs' string (its decodings of the sets it
//! falls back to are reversible) and decoded again here.

use encoding_rs::Encoding;

/// The character sets declared for a data set or item, as terms.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct CharacterSets(Vec<String>);

impl CharacterSets {
    /// From the values of (0008,0005), trimmed.
    pub(crate) fn from_values<I: IntoIterator<Item = S>, S: AsRef<str>>(values: I) -> Self {
        Self(
            values
                .into_iter()
                .map(|v| v.as_ref().trim_matches([' ', '\0']).to_owned())
                .collect(),
        )
    }

    /// The first value, the one dicom-rs decodes with.
    pub(crate) fn first(&self) -> &str {
        self.0.first().map(String::as_str).unwrap_or("")
    }

    fn uses_code_extensions(&self) -> bool {
        self.0.len() > 1 || self.first().starts_with("ISO 2022")
    }
}

/// Re-decodes `text`, which dicom-rs decoded with `decoded_with` (the first
/// value of the last (0008,0005) it read), according to `effective`, the
/// character sets in scope for the element. Returns `text` unchanged when no
/// correction is needed or the bytes cannot be recovered.
pub(crate) fn correct(
    text: &str,
    decoded_with: &CharacterSets,
    effective: &CharacterSets,
    person_name: bool,
) -> String {
    let same = canonical(decoded_with.first()) == canonical(effective.first());
    if same && !effective.uses_code_extensions() {
        return text.to_owned();
    }
    match recover_bytes(text, decoded_with.first()) {
        Some(bytes) => decode(&bytes, effective, person_name),
        None => text.to_owned(),
    }
}

/// Names the same set whatever the spelling ("ISO_IR 100", "ISO 2022 IR 100").
fn canonical(term: &str) -> String {
    let t = term.replace('_', " ");
    match t.strip_prefix("ISO 2022 IR ") {
        Some(number) => format!("ISO IR {number}"),
        None if t.is_empty() => "ISO IR 6".to_owned(),
        None => t,
    }
}

/// The bytes behind a string dicom-rs decoded with `term`, where its decoding
/// is reversible: the default repertoire and ISO_IR 100 (decoded as
/// ISO 8859-1, one char per byte), ISO_IR 13 (Shift_JIS, of which only
/// ASCII and half-width katakana occur in ISO 2022 text) and UTF-8.
fn recover_bytes(text: &str, term: &str) -> Option<Vec<u8>> {
    match canonical(term).as_str() {
        "ISO IR 6" | "ISO IR 100" => text
            .chars()
            .map(|c| u8::try_from(u32::from(c)).ok())
            .collect(),
        "ISO IR 13" => text
            .chars()
            .map(|c| match u32::from(c) {
                n @ 0..=0x7F => u8::try_from(n).ok(),
                n @ 0xFF61..=0xFF9F => u8::try_from(n - 0xFF61 + 0xA1).ok(),
                _ => None,
            })
            .collect(),
        "ISO IR 192" => Some(text.as_bytes().to_vec()),
        _ => None,
    }
}

/// One graphic set that G0 (bytes 0x21–0x7E) or G1 (0xA1–0xFE) can hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GraphicSet {
    Ascii,
    /// JIS X 0201 Romaji (ISO-IR 14): ASCII except yen sign and overline.
    JisRoman,
    /// JIS X 0201 Katakana (ISO-IR 13), in G1.
    JisKatakana,
    /// JIS X 0208 (ISO-IR 87), two bytes in G0.
    Jis0208,
    /// JIS X 0212 (ISO-IR 159), two bytes in G0.
    Jis0212,
    /// KS X 1001 (ISO-IR 149), two bytes in G1.
    Ksx1001,
    /// GB 2312 (ISO-IR 58), two bytes in G1.
    Gb2312,
    /// ISO 8859-1 upper half (ISO-IR 100).
    Latin1,
    /// Another single-byte set's upper half.
    Single(&'static Encoding),
}

/// The G0 and G1 sets a term designates initially (PS3.3 Table C.12-3/-4).
fn initial_sets(term: &str) -> (GraphicSet, Option<GraphicSet>) {
    let g1 = match canonical(term).as_str() {
        "ISO IR 13" => return (GraphicSet::JisRoman, Some(GraphicSet::JisKatakana)),
        "ISO IR 100" => Some(GraphicSet::Latin1),
        "ISO IR 149" => Some(GraphicSet::Ksx1001),
        "ISO IR 58" => Some(GraphicSet::Gb2312),
        other => single_byte(other).map(GraphicSet::Single),
    };
    (GraphicSet::Ascii, g1)
}

fn single_byte(canonical_term: &str) -> Option<&'static Encoding> {
    Some(match canonical_term {
        "ISO IR 101" => encoding_rs::ISO_8859_2,
        "ISO IR 109" => encoding_rs::ISO_8859_3,
        "ISO IR 110" => encoding_rs::ISO_8859_4,
        "ISO IR 144" => encoding_rs::ISO_8859_5,
        "ISO IR 127" => encoding_rs::ISO_8859_6,
        "ISO IR 126" => encoding_rs::ISO_8859_7,
        "ISO IR 138" => encoding_rs::ISO_8859_8,
        // ISO 8859-9 and TIS 620: their WHATWG supersets decode the same
        // graphic characters.
        "ISO IR 148" => encoding_rs::WINDOWS_1254,
        "ISO IR 166" => encoding_rs::WINDOWS_874,
        "ISO IR 203" => encoding_rs::ISO_8859_15,
        _ => return None,
    })
}

/// Decodes one string value's bytes under `sets` (PS3.5 §6.1).
pub(crate) fn decode(bytes: &[u8], sets: &CharacterSets, person_name: bool) -> String {
    if !sets.uses_code_extensions() {
        let whole: Option<&'static Encoding> = match canonical(sets.first()).as_str() {
            "ISO IR 192" => Some(encoding_rs::UTF_8),
            "GB18030" => Some(encoding_rs::GB18030),
            "GBK" => Some(encoding_rs::GBK),
            _ => None,
        };
        if let Some(enc) = whole {
            return enc.decode_without_bom_handling(bytes).0.into_owned();
        }
    }
    decode_iso2022(bytes, sets.first(), person_name)
}

fn decode_iso2022(bytes: &[u8], first_term: &str, person_name: bool) -> String {
    let (initial_g0, initial_g1) = initial_sets(first_term);
    let (mut g0, mut g1) = (initial_g0, initial_g1);
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        if b == 0x1B
            && let Some((len, designation)) = escape(&bytes[i + 1..])
        {
            match designation {
                Designation::G0(set) => g0 = set,
                Designation::G1(set) => g1 = Some(set),
            }
            i += 1 + len;
            continue;
        }
        let two_byte_g0 = matches!(g0, GraphicSet::Jis0208 | GraphicSet::Jis0212);
        if b < 0x80 && !(two_byte_g0 && (0x21..=0x7E).contains(&b)) {
            // Delimiters switch back to the initial sets (PS3.5 §6.1.2.5.3).
            let delimiter = matches!(b, b'\r' | b'\n' | b'\t' | 0x0C)
                || (person_name && matches!(b, b'^' | b'='));
            if delimiter {
                g0 = initial_g0;
                g1 = initial_g1;
            }
            out.push(match (g0, b) {
                (GraphicSet::JisRoman, 0x5C) => '\u{A5}',
                (GraphicSet::JisRoman, 0x7E) => '\u{203E}',
                _ => char::from(b),
            });
            i += 1;
        } else if b < 0x80 {
            let pair = [
                bytes[i] | 0x80,
                bytes.get(i + 1).copied().unwrap_or(0) | 0x80,
            ];
            let euc_jp: &[u8] = &pair;
            let decoded = if g0 == GraphicSet::Jis0212 {
                encoding_rs::EUC_JP
                    .decode_without_bom_handling(&[&[0x8F_u8][..], euc_jp].concat())
                    .0
                    .into_owned()
            } else {
                encoding_rs::EUC_JP
                    .decode_without_bom_handling(euc_jp)
                    .0
                    .into_owned()
            };
            out.push_str(&decoded);
            i += 2;
        } else {
            match g1 {
                Some(GraphicSet::Ksx1001) | Some(GraphicSet::Gb2312) => {
                    let end = (i + 2).min(bytes.len());
                    let enc = if g1 == Some(GraphicSet::Ksx1001) {
                        encoding_rs::EUC_KR
                    } else {
                        encoding_rs::GBK
                    };
                    out.push_str(&enc.decode_without_bom_handling(&bytes[i..end]).0);
                    i = end;
                }
                Some(GraphicSet::JisKatakana) => {
                    out.push(match b {
                        0xA1..=0xDF => char::from_u32(0xFF61 + u32::from(b) - 0xA1)
                            .unwrap_or(char::REPLACEMENT_CHARACTER),
                        _ => char::REPLACEMENT_CHARACTER,
                    });
                    i += 1;
                }
                Some(GraphicSet::Single(enc)) => {
                    out.push_str(&enc.decode_without_bom_handling(&[b]).0);
                    i += 1;
                }
                // Latin-1, and lenient for a byte with nothing designated.
                _ => {
                    out.push(char::from(b));
                    i += 1;
                }
            }
        }
    }
    out
}

enum Designation {
    G0(GraphicSet),
    G1(GraphicSet),
}

/// The escape sequences of PS3.3 Tables C.12-3 and C.12-4 (the bytes after
/// ESC), with their length.
fn escape(rest: &[u8]) -> Option<(usize, Designation)> {
    use Designation::{G0, G1};
    const SEQUENCES: &[(&[u8], Designation)] = &[
        (b"(B", G0(GraphicSet::Ascii)),
        (b"(J", G0(GraphicSet::JisRoman)),
        (b"$B", G0(GraphicSet::Jis0208)),
        (b"$(D", G0(GraphicSet::Jis0212)),
        (b")I", G1(GraphicSet::JisKatakana)),
        (b"$)C", G1(GraphicSet::Ksx1001)),
        (b"$)A", G1(GraphicSet::Gb2312)),
        (b"-A", G1(GraphicSet::Latin1)),
    ];
    for (seq, designation) in SEQUENCES {
        if rest.starts_with(seq) {
            let d = match designation {
                G0(s) => G0(*s),
                G1(s) => G1(*s),
            };
            return Some((seq.len(), d));
        }
    }
    let single = match rest {
        [b'-', b'B', ..] => "ISO IR 101",
        [b'-', b'C', ..] => "ISO IR 109",
        [b'-', b'D', ..] => "ISO IR 110",
        [b'-', b'F', ..] => "ISO IR 126",
        [b'-', b'G', ..] => "ISO IR 127",
        [b'-', b'H', ..] => "ISO IR 138",
        [b'-', b'L', ..] => "ISO IR 144",
        [b'-', b'M', ..] => "ISO IR 148",
        [b'-', b'T', ..] => "ISO IR 166",
        _ => return None,
    };
    single_byte(single).map(|enc| (2, G1(GraphicSet::Single(enc))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sets(v: &[&str]) -> CharacterSets {
        CharacterSets::from_values(v.iter())
    }

    #[test]
    fn iso_2022_ir_87_person_name() {
        // "Yamada^Tarou=" then JIS X 0208 for the ideographic group.
        let bytes = b"Yamada^Tarou=\x1b$B;3ED\x1b(B^\x1b$BB@O:\x1b(B";
        let s = decode(bytes, &sets(&["", "ISO 2022 IR 87"]), true);
        assert_eq!(s, "Yamada^Tarou=山田^太郎");
    }

    #[test]
    fn katakana_in_g1() {
        let s = decode(
            b"\xd4\xcf\xc0\xde",
            &sets(&["ISO 2022 IR 13", "ISO 2022 IR 87"]),
            true,
        );
        assert_eq!(s, "ﾔﾏﾀﾞ");
    }

    #[test]
    fn shift_jis_decoded_text_is_recovered() {
        let recovered = recover_bytes("ﾔﾏ^A", "ISO 2022 IR 13").unwrap();
        assert_eq!(recovered, b"\xd4\xcf^A");
    }

    #[test]
    fn single_valued_sets_are_left_alone() {
        let s = correct(
            "Jérôme",
            &sets(&["ISO_IR 100"]),
            &sets(&["ISO_IR 100"]),
            true,
        );
        assert_eq!(s, "Jérôme");
    }
}
