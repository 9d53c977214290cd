//! Note intake: the hospital's note formats decoded into text plus the
//! identifiers that tie a note to a patient, an order and an imaging study.
//!
//! Three formats, one result ([`DecodedNote`]):
//!
//! - `text/plain` ([`decode_plain_text`]): bytes to text by the declared or
//!   sniffed character set (see the `text` rules: UTF-8, else Windows-1252
//!   when bytes 0x80–0x9F occur, else ISO-8859-1).
//! - FHIR R4 JSON ([`decode_fhir_json`]): `DocumentReference` and
//!   `DiagnosticReport`.
//! - HL7 v2 ER7 ([`decode_hl7v2`]): `ORU^R01` and `MDM^T02`.
//!
//! [`decode`] picks one by `Content-Type`. Every refusal is an
//! [`IntakeError`] with a stable [`IntakeError::code`]. A note whose content
//! cannot be read as text (a PDF, an attachment only referenced by URL) is
//! accepted with `text: None` and a [`NoTextReason`], so the case can still
//! go ahead on imaging alone.

mod datetime;
mod er7;
mod error;
mod fhir;
mod fhir_types;
mod hl7v2;
mod json_unique;
mod text;

use chrono::{DateTime, Utc};
use fusion_schemas::{AccessionNumber, PatientId, StudyInstanceUid};
use serde::Serialize;

pub use datetime::DatePrecision;
pub use error::IntakeError;
pub use fhir::decode_fhir_json;
pub use hl7v2::decode_hl7v2;

/// The default body limit: 10 MiB (10 485 760 bytes). A FHIR or HL7 v2 body
/// may carry a base64 PDF of several MiB, which is accepted without text.
pub const DEFAULT_MAX_BODY_BYTES: usize = 10 * 1024 * 1024;

/// The default limit on a note's decoded text: 64 KiB (65 536 bytes of
/// UTF-8). Every sentence of an accepted note is labelled and embedded, so
/// the time a note costs grows with its text; this bounds it. A chest
/// radiograph report is a few hundred bytes to a few KiB (the longest of the
/// 3,080 Open-i reports in `../shared` is 1,446 bytes), so the limit is some
/// forty times the longest report seen.
pub const DEFAULT_MAX_TEXT_BYTES: usize = 64 * 1024;

/// Limits a caller sets on decoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeOptions {
    /// The largest body accepted, in bytes; larger ones are
    /// [`IntakeError::TooLarge`]. Default [`DEFAULT_MAX_BODY_BYTES`].
    pub max_body_bytes: usize,
    /// The longest decoded text accepted, in bytes of UTF-8; longer ones are
    /// [`IntakeError::TextTooLong`]. Default [`DEFAULT_MAX_TEXT_BYTES`].
    pub max_text_bytes: usize,
}

impl Default for DecodeOptions {
    fn default() -> Self {
        Self {
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_text_bytes: DEFAULT_MAX_TEXT_BYTES,
        }
    }
}

/// The format a note arrived in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceFormat {
    /// A `text/plain` body.
    TextPlain,
    /// A FHIR R4 DocumentReference resource.
    FhirDocumentReference,
    /// A FHIR R4 DiagnosticReport resource.
    FhirDiagnosticReport,
    /// An HL7 v2 ORU^R01 message (v2.5.1 §7.3.1, unsolicited observation).
    Hl7v2Oru,
    /// An HL7 v2 MDM^T02 message (v2.5.1 §9.6.2, original document with content).
    Hl7v2Mdm,
}

/// Why an accepted note has no text.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum NoTextReason {
    /// Its only content is PDF (FHIR attachments of type `application/pdf`,
    /// HL7 OBX-2 `ED` with subtype PDF). PDF text is not extracted.
    PdfOnly,
    /// A text attachment is referenced by `Attachment.url` only; URLs are
    /// never fetched (the service makes no outbound requests for a note).
    NotFetched,
    /// Attachments only in content types that are not read, e.g. C-CDA
    /// (`application/xml`) or images.
    UnsupportedContentType {
        /// The distinct content types found, in order, without parameters;
        /// `(none)` for an attachment without `contentType`.
        content_types: Vec<String>,
    },
    /// A resource with no attachment, no conclusion and no authored narrative.
    NoContent,
    /// An HL7 v2 message with no OBX of value type TX, ST or FT, no textual
    /// ED and no NTE comment on an order or observation.
    NoTextObservations,
}

/// The kind of note, as coded by the source: FHIR `DocumentReference.type` /
/// `DiagnosticReport.code` (LOINC preferred), HL7 v2 TXA-2 (table 0270) or
/// OBR-4.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NoteType {
    /// The code system: a FHIR system URI (`http://loinc.org`; HL7 v2 `LN`
    /// is mapped to it) or the HL7 v2 coding-system name as sent.
    pub system: Option<String>,
    /// The code, e.g. `18842-5` or `DS`.
    pub code: Option<String>,
    /// The display text, e.g. "Discharge summary".
    pub display: Option<String>,
}

/// A decoded note: its text (if any) and the metadata the source carried.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DecodedNote {
    /// The note text, `None` when the note has no usable text; then
    /// `no_text_reason` says why. Line breaks are `\n` for FHIR and HL7 v2
    /// sources; a `text/plain` body is kept as sent, less its byte order mark.
    pub text: Option<String>,
    /// Why `text` is `None`; `None` exactly when `text` is `Some`.
    pub no_text_reason: Option<NoTextReason>,
    /// Patient ID (DICOM (0010,0020) rules): FHIR `subject`, HL7 PID-3.
    pub patient_id: Option<PatientId>,
    /// Accession number (DICOM (0008,0050) rules): FHIR identifier of type
    /// ACSN (v2-0203), HL7 OBR-3, else OBR-2.
    pub accession_number: Option<AccessionNumber>,
    /// The imaging study the note reports on.
    pub study_instance_uid: Option<StudyInstanceUid>,
    /// The kind of note.
    pub note_type: Option<NoteType>,
    /// The format it arrived in.
    pub source_format: SourceFormat,
    /// The source's own identifier: FHIR `Resource.id`, HL7 MSH-10 message
    /// control ID.
    pub source_id: Option<String>,
    /// When the note was written or the observation made, in UTC.
    pub authored_at: Option<DateTime<Utc>>,
    /// How much of `authored_at` the source gave (partial dates resolve to
    /// the start of their period).
    pub authored_at_precision: Option<DatePrecision>,
}

impl DecodedNote {
    fn empty(source_format: SourceFormat) -> Self {
        Self {
            text: None,
            no_text_reason: None,
            patient_id: None,
            accession_number: None,
            study_instance_uid: None,
            note_type: None,
            source_format,
            source_id: None,
            authored_at: None,
            authored_at_precision: None,
        }
    }

    /// Sets the text, or the reason there is none, keeping the two exclusive.
    fn set_text(&mut self, text: Result<String, NoTextReason>) {
        match text {
            Ok(t) => {
                self.text = Some(t);
                self.no_text_reason = None;
            }
            Err(reason) => {
                self.text = None;
                self.no_text_reason = Some(reason);
            }
        }
    }
}

/// Decodes a note body by its `Content-Type`.
///
/// | media type | decoder |
/// | --- | --- |
/// | `text/plain` (`charset` honoured) | [`decode_plain_text`] |
/// | `application/fhir+json`, `application/json+fhir`, `application/json` | [`decode_fhir_json`] |
/// | `application/hl7-v2`, `application/hl7-v2+er7`, `x-application/hl7-v2+er7` | [`decode_hl7v2`] |
///
/// # Errors
///
/// [`IntakeError::UnsupportedMediaType`] for any other type, else the
/// decoder's errors.
pub fn decode(
    content_type: &str,
    body: &[u8],
    options: &DecodeOptions,
) -> Result<DecodedNote, IntakeError> {
    let media_type = text::essence(content_type);
    match media_type.as_str() {
        "text/plain" => decode_plain_text(body, text::charset_param(content_type), options),
        "application/fhir+json" | "application/json+fhir" | "application/json" => {
            decode_fhir_json(body, options)
        }
        "application/hl7-v2" | "application/hl7-v2+er7" | "x-application/hl7-v2+er7" => {
            decode_hl7v2(body, options)
        }
        _ => Err(IntakeError::UnsupportedMediaType {
            media_type: error::clip(&media_type, 100),
        }),
    }
}

/// Decodes a `text/plain` body (RFC 2046 §4.1): in `charset` when given
/// (a WHATWG Encoding label), else UTF-8 with or without byte order mark,
/// else Windows-1252 when any byte is in 0x80–0x9F, else ISO-8859-1.
///
/// # Errors
///
/// [`IntakeError::TooLarge`], [`IntakeError::EmptyBody`] (no bytes or only
/// whitespace), [`IntakeError::TextTooLong`], [`IntakeError::BinaryContent`], [`IntakeError::Utf16WithoutBom`],
/// [`IntakeError::NotUtf8`] (declared UTF-8), [`IntakeError::InvalidEncoding`],
/// [`IntakeError::UnsupportedCharset`].
pub fn decode_plain_text(
    body: &[u8],
    charset: Option<&str>,
    options: &DecodeOptions,
) -> Result<DecodedNote, IntakeError> {
    check_size(body, options)?;
    let text = text::decode_text(body, charset)?;
    if text.trim().is_empty() {
        return Err(IntakeError::EmptyBody);
    }
    let mut note = DecodedNote::empty(SourceFormat::TextPlain);
    note.set_text(Ok(text));
    check_text(note, options)
}

/// The check every format ends with: the decoded text's length.
fn check_text(note: DecodedNote, options: &DecodeOptions) -> Result<DecodedNote, IntakeError> {
    match &note.text {
        Some(text) if text.len() > options.max_text_bytes => Err(IntakeError::TextTooLong {
            size: text.len(),
            limit: options.max_text_bytes,
        }),
        _ => Ok(note),
    }
}

/// The checks every format starts with: the size limit, then emptiness.
fn check_size(body: &[u8], options: &DecodeOptions) -> Result<(), IntakeError> {
    if body.len() > options.max_body_bytes {
        return Err(IntakeError::TooLarge {
            size: body.len(),
            limit: options.max_body_bytes,
        });
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(IntakeError::EmptyBody);
    }
    Ok(())
}

/// Joins text lines with `\n`, normalising CR and CRLF inside them, trimming
/// trailing whitespace of each line and dropping blank lines at both ends.
/// `None` when nothing but whitespace is left.
fn join_lines<I: IntoIterator<Item = String>>(lines: I) -> Option<String> {
    let joined = lines.into_iter().collect::<Vec<_>>().join("\n");
    let normalised = joined.replace("\r\n", "\n").replace('\r', "\n");
    let lines: Vec<&str> = normalised.split('\n').map(str::trim_end).collect();
    let first = lines.iter().position(|l| !l.is_empty())?;
    let last = lines.iter().rposition(|l| !l.is_empty())?;
    Some(lines[first..=last].join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dispatches_on_media_type() {
        let opts = DecodeOptions::default();
        let note = decode("text/plain; charset=utf-8", b"No pneumothorax.", &opts).unwrap();
        assert_eq!(note.source_format, SourceFormat::TextPlain);
        assert_eq!(note.text.as_deref(), Some("No pneumothorax."));
        assert!(note.no_text_reason.is_none());
        let err = decode("application/pdf", b"%PDF", &opts).unwrap_err();
        assert_eq!(err.code(), "unsupported_media_type");
    }

    #[test]
    fn empty_and_oversized_bodies_are_refused_before_decoding() {
        let opts = DecodeOptions {
            max_body_bytes: 8,
            ..DecodeOptions::default()
        };
        assert_eq!(
            decode("text/plain", b"", &opts).unwrap_err().code(),
            "empty_body"
        );
        assert_eq!(
            decode("text/plain", b" \r\n\t", &opts).unwrap_err().code(),
            "empty_body"
        );
        assert_eq!(
            decode("text/plain", b"12345678", &opts)
                .unwrap()
                .text
                .as_deref(),
            Some("12345678")
        );
        assert_eq!(
            decode("application/hl7-v2", b"123456789", &opts),
            Err(IntakeError::TooLarge { size: 9, limit: 8 })
        );
        for ct in ["application/fhir+json", "x-application/hl7-v2+er7"] {
            assert_eq!(decode(ct, b"", &opts).unwrap_err().code(), "empty_body");
        }
    }

    #[test]
    fn ten_mib_of_body_and_64_kib_of_text_are_the_default_limits() {
        let opts = DecodeOptions::default();
        let at_limit = vec![b'a'; DEFAULT_MAX_BODY_BYTES];
        assert_eq!(
            decode_plain_text(&at_limit, None, &opts).unwrap_err(),
            IntakeError::TextTooLong {
                size: DEFAULT_MAX_BODY_BYTES,
                limit: 65_536
            }
        );
        let over = vec![b'a'; DEFAULT_MAX_BODY_BYTES + 1];
        assert_eq!(
            decode_plain_text(&over, None, &opts).unwrap_err().code(),
            "too_large"
        );
        let text_at_limit = vec![b'a'; DEFAULT_MAX_TEXT_BYTES];
        assert!(decode_plain_text(&text_at_limit, None, &opts).is_ok());
        let lifted = DecodeOptions {
            max_text_bytes: DEFAULT_MAX_BODY_BYTES,
            ..opts
        };
        assert!(decode_plain_text(&at_limit, None, &lifted).is_ok());
    }

    #[test]
    fn plain_text_keeps_its_bytes_less_the_bom() {
        let body = b"\xEF\xBB\xBFFINDINGS:\r\nNo focal consolidation.\r\n";
        let note = decode_plain_text(body, None, &DecodeOptions::default()).unwrap();
        assert_eq!(
            note.text.as_deref(),
            Some("FINDINGS:\r\nNo focal consolidation.\r\n")
        );
    }

    #[test]
    fn join_lines_normalises_breaks_and_trims() {
        let lines = [
            "".to_owned(),
            "a\r\nb".to_owned(),
            "c\rd".to_owned(),
            "  ".to_owned(),
        ];
        assert_eq!(join_lines(lines).as_deref(), Some("a\nb\nc\nd"));
        assert_eq!(join_lines(["  ".to_owned()]), None);
    }
}
