//! Why a note body was refused. One variant per failing step, each with a
//! stable [`IntakeError::code`] that the HTTP route turns into a 4xx body.
//!
//! Messages never echo note text or identifier values (both may be PHI);
//! they name the rule, the element path or the segment that failed.

use fusion_schemas::ids::IdError;

/// A note body that cannot be decoded, by failing step.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IntakeError {
    /// The `Content-Type` is none of `text/plain`, `application/fhir+json`
    /// (or `application/json`), `application/hl7-v2` or
    /// `x-application/hl7-v2+er7`.
    #[error("unsupported media type {media_type:?}")]
    UnsupportedMediaType {
        /// The media type as sent, without parameters, at most 100 characters.
        media_type: String,
    },
    /// The body holds no bytes, or only whitespace.
    #[error("the body is empty")]
    EmptyBody,
    /// The body is larger than the caller's limit.
    #[error("the body is {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// Body size in bytes.
        size: usize,
        /// The limit in bytes ([`crate::intake::DecodeOptions::max_body_bytes`]).
        limit: usize,
    },
    /// The decoded text is longer than the caller's limit: the body fits, but
    /// the note is too long to label and embed in bounded time.
    #[error("the note's text is {size} bytes, over the limit of {limit} bytes that are analysed")]
    TextTooLong {
        /// Text size in bytes of UTF-8.
        size: usize,
        /// The limit in bytes ([`crate::intake::DecodeOptions::max_text_bytes`]).
        limit: usize,
    },
    /// The body was declared or required to be UTF-8 (FHIR JSON always is,
    /// FHIR R4 §2.6.2 "JSON") but is not.
    #[error("the body is not valid UTF-8 (first bad byte at offset {valid_up_to})")]
    NotUtf8 {
        /// Offset in bytes of the first byte that is not UTF-8.
        valid_up_to: usize,
    },
    /// Bytes that cannot be decoded in the declared character set.
    #[error("the body is not valid {charset}")]
    InvalidEncoding {
        /// The WHATWG name of the character set, e.g. "UTF-16LE".
        charset: &'static str,
    },
    /// A `charset` parameter (or HL7 MSH-18) that names no character set we decode.
    #[error("unsupported character set {charset:?}")]
    UnsupportedCharset {
        /// The label as sent, at most 40 characters.
        charset: String,
    },
    /// NUL bytes every other byte and no byte order mark: UTF-16 whose byte
    /// order cannot be known.
    #[error("the body looks like UTF-16 without a byte order mark")]
    Utf16WithoutBom,
    /// NUL bytes or many control characters: not text.
    #[error("the body is binary, not text")]
    BinaryContent,
    /// JSON that does not parse, or does not have the shape of the FHIR R4
    /// resource it names.
    #[error("malformed FHIR JSON: {reason}")]
    FhirMalformed {
        /// What failed: a line and column, or the element path.
        reason: String,
    },
    /// A FHIR `Bundle`: send its entries one by one.
    #[error(
        "a FHIR Bundle is not accepted; send each DocumentReference or DiagnosticReport on its own"
    )]
    FhirBundle,
    /// A resourceType other than `DocumentReference` and `DiagnosticReport`.
    #[error(
        "FHIR resourceType {resource_type:?} is not a note (DocumentReference or DiagnosticReport)"
    )]
    FhirUnsupportedResource {
        /// The resourceType as sent when it is a FHIR R4 resource type,
        /// else `(not an R4 resource type)`.
        resource_type: String,
    },
    /// An `Attachment.data` (FHIR R4 §2.24.0.1 base64Binary) that is not base64.
    #[error("{element} is not valid base64")]
    FhirBadBase64 {
        /// The element path, e.g. `content[0].attachment.data`.
        element: String,
    },
    /// A resource whose status says it must not be used:
    /// `entered-in-error` (DocumentReference, DiagnosticReport) or `cancelled`
    /// (DiagnosticReport).
    #[error("the {resource_type} has status {status:?}")]
    FhirNotUsable {
        /// `DocumentReference` or `DiagnosticReport`.
        resource_type: &'static str,
        /// The status code.
        status: String,
    },
    /// The first segment is not MSH (HL7 v2.5.1 §2.14.9), e.g. a batch (FHS/BHS).
    #[error("HL7 v2 message does not start with an MSH segment")]
    Hl7NoMsh,
    /// An ER7 message that breaks the encoding rules of HL7 v2.5.1 §2.5–2.7.
    #[error("malformed HL7 v2 message: {reason} (segment {segment})")]
    Hl7Malformed {
        /// 1-based position of the segment in the message.
        segment: usize,
        /// The rule broken.
        reason: &'static str,
    },
    /// An MSH-9 message type other than ORU^R01 and MDM^T02.
    #[error("HL7 v2 message type {message_type:?} is not accepted (ORU^R01 or MDM^T02)")]
    Hl7UnsupportedMessage {
        /// MSG.1^MSG.2 as sent when it has the form of a message type (three
        /// capitals, and a capital and two digits), else
        /// `(not a message type)`.
        message_type: String,
    },
    /// A patient ID, accession number or Study Instance UID that breaks the
    /// rules of its `fusion-schemas` type.
    #[error("{field} is not a valid identifier: {source}")]
    InvalidIdentifier {
        /// Where it came from, e.g. "PID-3" or "subject".
        field: &'static str,
        /// The rule broken.
        source: IdError,
    },
    /// A date/time that is neither a FHIR R4 dateTime/instant (§2.24.0.1) nor
    /// an HL7 v2.5.1 TS/DTM (§2.A.74, §2.A.22).
    #[error("{field} is not a valid date/time")]
    InvalidDateTime {
        /// Where it came from, e.g. "OBR-7" or "DiagnosticReport.issued".
        field: &'static str,
    },
}

impl IntakeError {
    /// A stable machine-readable code for the error body, e.g. `empty_body`.
    pub fn code(&self) -> &'static str {
        match self {
            Self::UnsupportedMediaType { .. } => "unsupported_media_type",
            Self::EmptyBody => "empty_body",
            Self::TooLarge { .. } => "too_large",
            Self::TextTooLong { .. } => "text_too_long",
            Self::NotUtf8 { .. } => "not_utf8",
            Self::InvalidEncoding { .. } => "invalid_encoding",
            Self::UnsupportedCharset { .. } => "unsupported_charset",
            Self::Utf16WithoutBom => "utf16_without_bom",
            Self::BinaryContent => "binary_content",
            Self::FhirMalformed { .. } => "fhir_malformed",
            Self::FhirBundle => "fhir_bundle",
            Self::FhirUnsupportedResource { .. } => "fhir_unsupported_resource",
            Self::FhirBadBase64 { .. } => "fhir_bad_base64",
            Self::FhirNotUsable { .. } => "fhir_not_usable",
            Self::Hl7NoMsh => "hl7_no_msh",
            Self::Hl7Malformed { .. } => "hl7_malformed",
            Self::Hl7UnsupportedMessage { .. } => "hl7_unsupported_message",
            Self::InvalidIdentifier { .. } => "invalid_identifier",
            Self::InvalidDateTime { .. } => "invalid_datetime",
        }
    }
}

/// Cuts a value we echo (a media type, a resourceType) to `max` characters so
/// that an error body stays small whatever was sent.
pub(crate) fn clip(value: &str, max: usize) -> String {
    value.chars().take(max).collect()
}

/// A FHIR resourceType we echo in a refusal when it is an R4 resource type
/// (`Patient`, say); anything else (a name, free text a sender put in the
/// wrong field, which could be PHI, even written like a code) is not
/// repeated in the error body or the log.
pub(crate) fn known_resource_type(value: &str) -> String {
    if super::fhir_types::is_r4_resource_type(value) {
        value.to_owned()
    } else {
        "(not an R4 resource type)".to_owned()
    }
}

/// An HL7 v2 message type (MSH-9) we echo in a refusal when it has the form
/// of one: a three-letter message code (HL7 table 0076, e.g. `ADT`) and an
/// event of a letter and two digits (table 0003, e.g. `A01`) or none;
/// anything else ("SMITH^JOHN") is not repeated.
pub(crate) fn message_type_like(code: &str, event: &str) -> String {
    let code_ok = code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase());
    let event_ok = event.is_empty()
        || (event.len() == 3
            && event.as_bytes()[0].is_ascii_uppercase()
            && event.bytes().skip(1).all(|b| b.is_ascii_digit()));
    match (code_ok && event_ok, event.is_empty()) {
        (true, true) => code.to_owned(),
        (true, false) => format!("{code}^{event}"),
        (false, _) => "(not a message type)".to_owned(),
    }
}
