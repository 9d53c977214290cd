//! Bytes to text: the character-set rules shared by `text/plain` bodies,
//! FHIR attachments and HL7 v2 messages.
//!
//! A declared charset (RFC 2046 §4.1.2 `charset` parameter, looked up by its
//! WHATWG Encoding label) is honoured; a byte order mark overrides it, as in
//! WHATWG Encoding §6 "decode". Undeclared bytes are UTF-8 when they are
//! valid UTF-8; otherwise they are Windows-1252 when any byte lies in
//! 0x80–0x9F (where Windows-1252 has its smart quotes, dashes and € and
//! ISO-8859-1 only C1 controls), else ISO-8859-1.

use std::borrow::Cow;

use encoding_rs::{Encoding, REPLACEMENT, UTF_8, WINDOWS_1252};

use super::error::{IntakeError, clip};

/// How many leading bytes the UTF-16 sniffer looks at.
const SNIFF_BYTES: usize = 4096;

/// Decodes `bytes` to text, honouring `charset` when given. Refuses binary
/// content (any NUL, or more than 1 % control characters other than
/// whitespace). The byte order mark, if any, is not part of the result.
pub(crate) fn decode_text(bytes: &[u8], charset: Option<&str>) -> Result<String, IntakeError> {
    let declared = match charset {
        Some(label) => Some(
            Encoding::for_label(label.trim().trim_matches('"').as_bytes())
                .filter(|enc| *enc != REPLACEMENT)
                .ok_or_else(|| IntakeError::UnsupportedCharset {
                    charset: clip(label, 40),
                })?,
        ),
        None => None,
    };
    let text = match (Encoding::for_bom(bytes), declared) {
        (Some((enc, bom_len)), _) => decode_strict(enc, &bytes[bom_len..])?,
        (None, Some(enc)) => decode_strict(enc, bytes)?,
        (None, None) => sniff(bytes)?,
    };
    if is_binary(&text) {
        return Err(IntakeError::BinaryContent);
    }
    Ok(text)
}

/// Decodes in a known encoding, refusing malformed sequences rather than
/// replacing them with U+FFFD.
fn decode_strict(enc: &'static Encoding, bytes: &[u8]) -> Result<String, IntakeError> {
    if enc == UTF_8 {
        return match std::str::from_utf8(bytes) {
            Ok(s) => Ok(s.to_owned()),
            Err(e) => Err(IntakeError::NotUtf8 {
                valid_up_to: e.valid_up_to(),
            }),
        };
    }
    enc.decode_without_bom_handling_and_without_replacement(bytes)
        .map(Cow::into_owned)
        .ok_or(IntakeError::InvalidEncoding {
            charset: enc.name(),
        })
}

/// Undeclared, BOM-less bytes: UTF-8, else Windows-1252 or ISO-8859-1.
fn sniff(bytes: &[u8]) -> Result<String, IntakeError> {
    if bytes.contains(&0) {
        return Err(if looks_like_utf16(bytes) {
            IntakeError::Utf16WithoutBom
        } else {
            IntakeError::BinaryContent
        });
    }
    if let Ok(s) = std::str::from_utf8(bytes) {
        return Ok(s.to_owned());
    }
    if bytes.iter().any(|b| (0x80..=0x9F).contains(b)) {
        // Windows-1252 maps every byte (WHATWG index-windows-1252): no
        // replacement characters can appear.
        let (text, _) = WINDOWS_1252.decode_without_bom_handling(bytes);
        Ok(text.into_owned())
    } else {
        Ok(encoding_rs::mem::decode_latin1(bytes).into_owned())
    }
}

/// UTF-16 text in the Latin range has a NUL in every other byte: at odd
/// offsets for little endian, at even offsets for big endian.
fn looks_like_utf16(bytes: &[u8]) -> bool {
    let sample = &bytes[..bytes.len().min(SNIFF_BYTES)];
    let pairs = sample.len() / 2;
    if pairs == 0 {
        return false;
    }
    let (mut even, mut odd) = (0usize, 0usize);
    for (i, b) in sample.iter().enumerate() {
        if *b == 0 {
            if i.is_multiple_of(2) {
                even += 1;
            } else {
                odd += 1;
            }
        }
    }
    let mostly = |n: usize| n * 2 >= pairs;
    let rarely = |n: usize| n * 10 < pairs;
    (mostly(odd) && rarely(even)) || (mostly(even) && rarely(odd))
}

/// Any NUL, or more than 1 % control characters other than tab, line feed,
/// vertical tab, form feed and carriage return.
fn is_binary(text: &str) -> bool {
    let mut total = 0usize;
    let mut control = 0usize;
    for c in text.chars() {
        if c == '\0' {
            return true;
        }
        total += 1;
        if c.is_control() && !matches!(c, '\t' | '\n' | '\u{0b}' | '\u{0c}' | '\r') {
            control += 1;
        }
    }
    control * 100 > total
}

/// The `charset` parameter of a media type (RFC 2045 §5.1 syntax), if any.
pub(crate) fn charset_param(content_type: &str) -> Option<&str> {
    content_type.split(';').skip(1).find_map(|param| {
        let (key, value) = param.split_once('=')?;
        key.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| value.trim().trim_matches('"'))
    })
}

/// The media type without parameters, trimmed and lower-cased.
pub(crate) fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// HTML or XHTML to text: block elements and `<br>` become line breaks,
/// entities are decoded, `<head>`, `<script>` and `<style>` are dropped.
/// `None` when no text is left.
pub(crate) fn html_to_text(html: &str) -> Option<String> {
    super::join_lines([nanohtml2text::html2text(html)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_with_and_without_bom() {
        assert_eq!(decode_text("héllo".as_bytes(), None).unwrap(), "héllo");
        let mut bom = vec![0xEF, 0xBB, 0xBF];
        bom.extend_from_slice("héllo".as_bytes());
        assert_eq!(decode_text(&bom, None).unwrap(), "héllo");
    }

    #[test]
    fn windows_1252_when_c1_bytes_present_else_latin1() {
        // 0x93/0x94 are curly double quotes in Windows-1252.
        let cp1252 = b"\x93no effusion\x94 \xe9";
        assert_eq!(
            decode_text(cp1252, None).unwrap(),
            "\u{201c}no effusion\u{201d} é"
        );
        let latin1 = b"caf\xe9 \xb0C";
        assert_eq!(decode_text(latin1, None).unwrap(), "café °C");
    }

    #[test]
    fn declared_charset_is_honoured() {
        assert_eq!(decode_text(b"\xe9", Some("ISO-8859-1")).unwrap(), "é");
        assert_eq!(
            decode_text(b"\xc3\x28", Some("utf-8")),
            Err(IntakeError::NotUtf8 { valid_up_to: 0 })
        );
        assert!(matches!(
            decode_text(b"x", Some("klingon")),
            Err(IntakeError::UnsupportedCharset { .. })
        ));
        // "a" in UTF-16LE.
        assert_eq!(decode_text(b"a\0", Some("utf-16le")).unwrap(), "a");
    }

    #[test]
    fn utf16_with_bom_decodes_without_bom_is_refused() {
        let le: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain(
                "No acute findings"
                    .encode_utf16()
                    .flat_map(u16::to_le_bytes),
            )
            .collect();
        assert_eq!(decode_text(&le, None).unwrap(), "No acute findings");
        assert_eq!(
            decode_text(&le[2..], None),
            Err(IntakeError::Utf16WithoutBom)
        );
        let be: Vec<u8> = "No acute findings"
            .encode_utf16()
            .flat_map(u16::to_be_bytes)
            .collect();
        assert_eq!(decode_text(&be, None), Err(IntakeError::Utf16WithoutBom));
    }

    #[test]
    fn binary_is_refused() {
        assert_eq!(
            decode_text(b"%PDF-1.4\n\0\0\x01binary", None),
            Err(IntakeError::BinaryContent)
        );
        let controls: Vec<u8> = (0..200)
            .map(|i| if i % 10 == 0 { 0x01 } else { b'a' })
            .collect();
        assert_eq!(
            decode_text(&controls, None),
            Err(IntakeError::BinaryContent)
        );
    }

    #[test]
    fn media_type_parameters() {
        assert_eq!(
            charset_param("text/plain; format=flowed; Charset=\"windows-1252\""),
            Some("windows-1252")
        );
        assert_eq!(charset_param("text/plain"), None);
        assert_eq!(essence(" Text/Plain ; charset=utf-8"), "text/plain");
    }
}
