//! FHIR R4 JSON notes: `DocumentReference` (R4 §3.3.1, FHIR-I
//! documentreference.html) and `DiagnosticReport` (R4 §8.1,
//! diagnosticreport.html).
//!
//! Why small serde structs and not a FHIR crate: the maintained model crates
//! either lack R4 (`fhir-sdk`/`fhir-model` 0.13 build STU3, R4B and R5 only,
//! and need a newer rustc than the workspace's 1.94) or generate the whole
//! model (`fhirbolt` 0.4 with `r4`: about 440 000 lines of generated serde
//! code, minutes to build on the two-core machines, last released 2023). We
//! read about fifteen elements; typed structs for exactly those, with serde
//! ignoring the rest, cost nothing to build and say what we depend on.
//!
//! What is read, in order of preference:
//!
//! - Text: one attachment (`DocumentReference.content[].attachment`,
//!   `DiagnosticReport.presentedForm[]`) — repetitions are alternative
//!   renditions of the same document (R4: "SHALL be semantically
//!   equivalent"), so the first `text/plain` with `data` wins, else the first
//!   `text/html`/`application/xhtml+xml` with `data`, stripped to text. For a
//!   DiagnosticReport with no readable attachment, `conclusion`; then the
//!   narrative `text.div`, but only when `text.status` is `additional` or
//!   `extensions` — a `generated` narrative is a rendering of the structured
//!   fields (code, subject, dates), not report prose. A DocumentReference's
//!   narrative describes the reference, never the note, and is not read.
//!   Attachments with only a `url` are never fetched.
//! - Patient: `subject.identifier.value` (a business identifier such as an
//!   MRN, what DICOM Patient ID holds), else the id of a `Patient/<id>`
//!   `subject.reference` (relative or absolute, `_history` ignored).
//!   Contained patients (`#id`) are not resolved.
//! - Accession: the first identifier whose `type` is `ACSN` (v2-0203) among
//!   `identifier[]`, then `DiagnosticReport.basedOn[].identifier`, then
//!   `DocumentReference.context.related[].identifier`.
//! - Study Instance UID: an identifier with system `urn:dicom:uid` (value
//!   `urn:oid:<uid>`) on `DiagnosticReport.imagingStudy[]` or
//!   `DocumentReference.context.related[]`.
//! - Authored: `DocumentReference.date`, else the chosen attachment's
//!   `creation`; `DiagnosticReport.effectiveDateTime`, else
//!   `effectivePeriod.start`, else `issued`.
//! - Note type: `DocumentReference.type` / `DiagnosticReport.code`, the LOINC
//!   coding if there is one, else the first coding, else the text.

use base64::Engine;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use fusion_schemas::{AccessionNumber, PatientId, StudyInstanceUid};
use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::datetime::{self, Stamp};
use super::error::{IntakeError, known_resource_type};
use super::text::{charset_param, decode_text, essence, html_to_text};
use super::{
    DecodeOptions, DecodedNote, NoTextReason, NoteType, SourceFormat, check_size, check_text,
    join_lines,
};

/// RFC 4648 §4 base64, as FHIR base64Binary; padding optional because some
/// senders drop it.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

const LOINC: &str = "http://loinc.org";
const V2_0203: &str = "http://terminology.hl7.org/CodeSystem/v2-0203";
const DICOM_UID: &str = "urn:dicom:uid";

/// Decodes a FHIR R4 JSON `DocumentReference` or `DiagnosticReport`
/// (media type `application/fhir+json`, FHIR R4 §2.6.2 "JSON").
///
/// # Errors
///
/// [`IntakeError::TooLarge`], [`IntakeError::EmptyBody`],
/// [`IntakeError::NotUtf8`] (FHIR JSON is always UTF-8),
/// [`IntakeError::FhirMalformed`] (bad JSON, a property name twice in one
/// object (RFC 8259 §4), or an element of the wrong shape), [`IntakeError::FhirBundle`], [`IntakeError::FhirUnsupportedResource`],
/// [`IntakeError::FhirNotUsable`] (`entered-in-error`, `cancelled`),
/// [`IntakeError::FhirBadBase64`], [`IntakeError::InvalidIdentifier`],
/// [`IntakeError::InvalidDateTime`], and the text errors of
/// [`super::decode_plain_text`] for the attachment read.
pub fn decode_fhir_json(body: &[u8], options: &DecodeOptions) -> Result<DecodedNote, IntakeError> {
    check_size(body, options)?;
    let body = body.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(body);
    let json = std::str::from_utf8(body).map_err(|e| IntakeError::NotUtf8 {
        valid_up_to: e.valid_up_to(),
    })?;
    if let Some(duplicate) = super::json_unique::first_duplicate(json) {
        return Err(malformed(&duplicate));
    }
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| IntakeError::FhirMalformed {
            reason: format!("invalid JSON at line {} column {}", e.line(), e.column()),
        })?;
    let resource_type = match value.get("resourceType") {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(_) => return Err(malformed("resourceType is not a string")),
        None if value.is_object() => return Err(malformed("no resourceType")),
        None => return Err(malformed("not a JSON object")),
    };
    let note = match resource_type.as_str() {
        "DocumentReference" => document_reference(typed(value, "DocumentReference")?),
        "DiagnosticReport" => diagnostic_report(typed(value, "DiagnosticReport")?),
        "Bundle" => Err(IntakeError::FhirBundle),
        other => Err(IntakeError::FhirUnsupportedResource {
            resource_type: known_resource_type(other),
        }),
    }?;
    check_text(note, options)
}

fn malformed(reason: &str) -> IntakeError {
    IntakeError::FhirMalformed {
        reason: reason.to_owned(),
    }
}

/// Deserialises into our structs, reporting the element path on mismatch but
/// not serde's message, which may quote the value.
fn typed<T: DeserializeOwned>(value: serde_json::Value, resource: &str) -> Result<T, IntakeError> {
    serde_path_to_error::deserialize(value).map_err(|e| IntakeError::FhirMalformed {
        reason: format!("{resource}.{} does not have the FHIR R4 shape", e.path()),
    })
}

// --- the elements we read (FHIR R4 datatypes, §2.24) ----------------------

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct DocumentReference {
    id: Option<String>,
    status: Option<String>,
    identifier: Vec<Identifier>,
    #[serde(rename = "type")]
    kind: Option<CodeableConcept>,
    subject: Option<Reference>,
    date: Option<String>,
    content: Vec<Content>,
    context: Option<DocumentContext>,
}

#[derive(Deserialize)]
struct Content {
    attachment: Attachment,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct DocumentContext {
    related: Vec<Reference>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct DiagnosticReport {
    id: Option<String>,
    status: Option<String>,
    identifier: Vec<Identifier>,
    based_on: Vec<Reference>,
    code: Option<CodeableConcept>,
    subject: Option<Reference>,
    effective_date_time: Option<String>,
    effective_period: Option<Period>,
    issued: Option<String>,
    imaging_study: Vec<Reference>,
    presented_form: Vec<Attachment>,
    conclusion: Option<String>,
    text: Option<Narrative>,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase", default)]
struct Attachment {
    content_type: Option<String>,
    data: Option<String>,
    url: Option<String>,
    creation: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Period {
    start: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Narrative {
    status: Option<String>,
    div: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Reference {
    reference: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    identifier: Option<Identifier>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Identifier {
    system: Option<String>,
    value: Option<String>,
    #[serde(rename = "type")]
    kind: Option<CodeableConcept>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct CodeableConcept {
    coding: Vec<Coding>,
    text: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Coding {
    system: Option<String>,
    code: Option<String>,
    display: Option<String>,
}

// --- the two resources -----------------------------------------------------

fn document_reference(doc: DocumentReference) -> Result<DecodedNote, IntakeError> {
    if let Some(status @ "entered-in-error") = doc.status.as_deref() {
        return Err(IntakeError::FhirNotUsable {
            resource_type: "DocumentReference",
            status: status.to_owned(),
        });
    }
    let mut note = DecodedNote::empty(SourceFormat::FhirDocumentReference);
    let attachments: Vec<(String, &Attachment)> = doc
        .content
        .iter()
        .enumerate()
        .map(|(i, c)| (format!("content[{i}].attachment.data"), &c.attachment))
        .collect();
    note.set_text(attachment_text(&attachments)?);

    let related = doc
        .context
        .as_ref()
        .map(|c| c.related.as_slice())
        .unwrap_or_default();
    note.patient_id = patient(doc.subject.as_ref())?;
    note.accession_number = accession(
        doc.identifier
            .iter()
            .chain(related.iter().filter_map(|r| r.identifier.as_ref())),
    )?;
    note.study_instance_uid = study_uid(related)?;
    note.note_type = doc.kind.as_ref().and_then(note_type);
    note.source_id = doc.id;
    let creation = doc
        .content
        .iter()
        .find_map(|c| c.attachment.creation.as_deref());
    let stamp = match (doc.date.as_deref(), creation) {
        (Some(date), _) => Some(fhir_time(date, "DocumentReference.date")?),
        (None, Some(creation)) => Some(fhir_time(creation, "Attachment.creation")?),
        (None, None) => None,
    };
    set_stamp(&mut note, stamp);
    Ok(note)
}

fn diagnostic_report(report: DiagnosticReport) -> Result<DecodedNote, IntakeError> {
    if let Some(status @ ("entered-in-error" | "cancelled")) = report.status.as_deref() {
        return Err(IntakeError::FhirNotUsable {
            resource_type: "DiagnosticReport",
            status: status.to_owned(),
        });
    }
    let mut note = DecodedNote::empty(SourceFormat::FhirDiagnosticReport);
    let attachments: Vec<(String, &Attachment)> = report
        .presented_form
        .iter()
        .enumerate()
        .map(|(i, a)| (format!("presentedForm[{i}].data"), a))
        .collect();
    let text = match attachment_text(&attachments)? {
        Ok(text) => Ok(text),
        Err(reason) => report
            .conclusion
            .as_deref()
            .and_then(|c| join_lines([c.to_owned()]))
            .or_else(|| authored_narrative(report.text.as_ref()))
            .ok_or(reason),
    };
    note.set_text(text);

    note.patient_id = patient(report.subject.as_ref())?;
    note.accession_number = accession(
        report
            .identifier
            .iter()
            .chain(report.based_on.iter().filter_map(|r| r.identifier.as_ref())),
    )?;
    note.study_instance_uid = study_uid(&report.imaging_study)?;
    note.note_type = report.code.as_ref().and_then(note_type);
    note.source_id = report.id;
    let period_start = report
        .effective_period
        .as_ref()
        .and_then(|p| p.start.as_deref());
    let stamp = if let Some(t) = report.effective_date_time.as_deref() {
        Some(fhir_time(t, "DiagnosticReport.effectiveDateTime")?)
    } else if let Some(t) = period_start {
        Some(fhir_time(t, "DiagnosticReport.effectivePeriod.start")?)
    } else if let Some(t) = report.issued.as_deref() {
        Some(fhir_time(t, "DiagnosticReport.issued")?)
    } else {
        None
    };
    set_stamp(&mut note, stamp);
    Ok(note)
}

fn set_stamp(note: &mut DecodedNote, stamp: Option<Stamp>) {
    note.authored_at = stamp.map(|s| s.0);
    note.authored_at_precision = stamp.map(|s| s.1);
}

fn fhir_time(value: &str, field: &'static str) -> Result<Stamp, IntakeError> {
    datetime::parse_fhir(value).ok_or(IntakeError::InvalidDateTime { field })
}

// --- text --------------------------------------------------------------------

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Plain,
    Html,
    Pdf,
    Other,
}

fn kind_of(content_type: &str) -> Kind {
    match essence(content_type).as_str() {
        "text/plain" => Kind::Plain,
        // "application/xhtml" is not registered but occurs in US Core examples.
        "text/html" | "application/xhtml+xml" | "application/xhtml" => Kind::Html,
        "application/pdf" => Kind::Pdf,
        _ => Kind::Other,
    }
}

/// The text of the preferred attachment, or why none is readable. The outer
/// error is a refusal (bad base64, binary text); the inner one a reason.
fn attachment_text(
    attachments: &[(String, &Attachment)],
) -> Result<Result<String, NoTextReason>, IntakeError> {
    let kind = |a: &Attachment| kind_of(a.content_type.as_deref().unwrap_or_default());
    for wanted in [Kind::Plain, Kind::Html] {
        for (path, a) in attachments.iter().filter(|(_, a)| kind(a) == wanted) {
            let Some(data) = a.data.as_deref() else {
                continue;
            };
            let compact: Vec<u8> = data.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
            let bytes = BASE64
                .decode(&compact)
                .map_err(|_| IntakeError::FhirBadBase64 {
                    element: path.clone(),
                })?;
            let charset = a.content_type.as_deref().and_then(charset_param);
            let decoded = decode_text(&bytes, charset)?;
            let text = match wanted {
                Kind::Html => html_to_text(&decoded),
                _ => join_lines([decoded]),
            };
            if let Some(text) = text {
                return Ok(Ok(text));
            }
        }
    }
    let text_by_url = attachments.iter().any(|(_, a)| {
        matches!(kind(a), Kind::Plain | Kind::Html) && a.data.is_none() && a.url.is_some()
    });
    let mut content_types: Vec<String> = Vec::new();
    for (_, a) in attachments {
        if matches!(kind(a), Kind::Pdf | Kind::Other) {
            let ct = a
                .content_type
                .as_deref()
                .map_or_else(|| "(none)".to_owned(), essence);
            if !content_types.contains(&ct) {
                content_types.push(ct);
            }
        }
    }
    Ok(Err(if text_by_url {
        NoTextReason::NotFetched
    } else if !content_types.is_empty() && attachments.iter().all(|(_, a)| kind(a) == Kind::Pdf) {
        NoTextReason::PdfOnly
    } else if !content_types.is_empty() {
        NoTextReason::UnsupportedContentType { content_types }
    } else {
        NoTextReason::NoContent
    }))
}

/// The narrative, when a person wrote part of it (R4 Narrative.status
/// `additional` or `extensions`).
fn authored_narrative(narrative: Option<&Narrative>) -> Option<String> {
    let narrative = narrative?;
    match narrative.status.as_deref() {
        Some("additional" | "extensions") => html_to_text(narrative.div.as_deref()?),
        _ => None,
    }
}

// --- identifiers -----------------------------------------------------------

fn nonblank(s: Option<&str>) -> Option<&str> {
    s.map(str::trim).filter(|s| !s.is_empty())
}

fn patient(subject: Option<&Reference>) -> Result<Option<PatientId>, IntakeError> {
    let Some(subject) = subject else {
        return Ok(None);
    };
    if subject.kind.as_deref().is_some_and(|k| k != "Patient") {
        return Ok(None);
    }
    if let Some(value) = nonblank(subject.identifier.as_ref().and_then(|i| i.value.as_deref())) {
        return parse_id(PatientId::parse(value), "subject.identifier").map(Some);
    }
    let id = subject.reference.as_deref().and_then(|r| {
        let segments: Vec<&str> = r.split('/').collect();
        segments
            .windows(2)
            .rev()
            .find(|w| w[0] == "Patient")
            .map(|w| w[1])
    });
    match nonblank(id) {
        Some(id) => parse_id(PatientId::parse(id), "subject.reference").map(Some),
        None => Ok(None),
    }
}

fn accession<'a>(
    mut identifiers: impl Iterator<Item = &'a Identifier>,
) -> Result<Option<AccessionNumber>, IntakeError> {
    let is_acsn = |i: &Identifier| {
        i.kind.as_ref().is_some_and(|t| {
            t.coding.iter().any(|c| {
                c.code.as_deref() == Some("ACSN")
                    && c.system.as_deref().is_none_or(|s| s == V2_0203)
            })
        })
    };
    match identifiers
        .find(|i| is_acsn(i))
        .and_then(|i| nonblank(i.value.as_deref()))
    {
        Some(value) => parse_id(AccessionNumber::parse(value), "identifier (ACSN)").map(Some),
        None => Ok(None),
    }
}

fn study_uid(references: &[Reference]) -> Result<Option<StudyInstanceUid>, IntakeError> {
    let uid = references
        .iter()
        .filter(|r| r.kind.as_deref().is_none_or(|k| k == "ImagingStudy"))
        .filter_map(|r| r.identifier.as_ref())
        .filter(|i| i.system.as_deref() == Some(DICOM_UID))
        .find_map(|i| nonblank(i.value.as_deref()));
    match uid {
        Some(v) => {
            let v = v.strip_prefix("urn:oid:").unwrap_or(v);
            parse_id(StudyInstanceUid::parse(v), "imaging study identifier").map(Some)
        }
        None => Ok(None),
    }
}

fn parse_id<T>(
    parsed: Result<T, fusion_schemas::IdError>,
    field: &'static str,
) -> Result<T, IntakeError> {
    parsed.map_err(|source| IntakeError::InvalidIdentifier { field, source })
}

fn note_type(concept: &CodeableConcept) -> Option<NoteType> {
    let coding = concept
        .coding
        .iter()
        .find(|c| c.system.as_deref() == Some(LOINC))
        .or_else(|| concept.coding.first());
    let display = coding
        .and_then(|c| nonblank(c.display.as_deref()))
        .or_else(|| nonblank(concept.text.as_deref()));
    let note_type = NoteType {
        system: coding
            .and_then(|c| nonblank(c.system.as_deref()))
            .map(str::to_owned),
        code: coding
            .and_then(|c| nonblank(c.code.as_deref()))
            .map(str::to_owned),
        display: display.map(str::to_owned),
    };
    (note_type.code.is_some() || note_type.display.is_some()).then_some(note_type)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b64(s: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(s)
    }

    fn decode(json: &serde_json::Value) -> Result<DecodedNote, IntakeError> {
        decode_fhir_json(json.to_string().as_bytes(), &DecodeOptions::default())
    }

    #[test]
    fn document_reference_plain_text_attachment() {
        let doc = serde_json::json!({
            "resourceType": "DocumentReference",
            "id": "note-1",
            "status": "current",
            "type": {"coding": [{"system": "http://loinc.org", "code": "18748-4", "display": "Diagnostic imaging study"}]},
            "subject": {"reference": "Patient/tp-0001"},
            "date": "2024-03-05T10:15:00+01:00",
            "identifier": [{"type": {"coding": [{"system": V2_0203, "code": "ACSN"}]}, "value": "ACC-778"}],
            "content": [{"attachment": {"contentType": "text/plain; charset=windows-1252",
                          "data": b64(b"No effusion \x96 no pneumothorax.")}}],
            "context": {"related": [{"identifier": {"system": "urn:dicom:uid", "value": "urn:oid:1.2.826.0.1.3680043.8.498.1"}}]}
        });
        let note = decode(&doc).unwrap();
        assert_eq!(note.source_format, SourceFormat::FhirDocumentReference);
        assert_eq!(
            note.text.as_deref(),
            Some("No effusion \u{2013} no pneumothorax.")
        );
        assert_eq!(note.patient_id.unwrap().as_str(), "tp-0001");
        assert_eq!(note.accession_number.unwrap().as_str(), "ACC-778");
        assert_eq!(
            note.study_instance_uid.unwrap().as_str(),
            "1.2.826.0.1.3680043.8.498.1"
        );
        assert_eq!(note.note_type.unwrap().code.as_deref(), Some("18748-4"));
        assert_eq!(note.source_id.as_deref(), Some("note-1"));
        assert_eq!(
            note.authored_at.unwrap().to_rfc3339(),
            "2024-03-05T09:15:00+00:00"
        );
    }

    #[test]
    fn html_is_stripped_keeping_breaks_and_entities() {
        let html = "<html><head><title>T</title><style>p{}</style></head><body>\
                    <p>FINDINGS:</p><p>Heart size normal.<br/>No effusion &amp; no edema.</p>\
                    <script>alert(1)</script><p>IMPRESSION: possible early infiltrate&nbsp;&#8212; correlate.</p></body></html>";
        let report = serde_json::json!({
            "resourceType": "DiagnosticReport", "status": "final",
            "code": {"text": "XR chest"},
            "presentedForm": [{"contentType": "application/pdf", "data": b64(b"%PDF-1.4")},
                              {"contentType": "text/html", "data": b64(html.as_bytes())}]
        });
        let text = decode(&report).unwrap().text.unwrap();
        assert_eq!(
            text,
            "FINDINGS:\n\nHeart size normal.\nNo effusion & no edema.\n\nIMPRESSION: possible early infiltrate\u{a0}\u{2014} correlate."
        );
    }

    #[test]
    fn pdf_only_and_url_only_are_accepted_without_text() {
        let pdf = serde_json::json!({"resourceType": "DiagnosticReport", "code": {},
            "presentedForm": [{"contentType": "application/pdf", "url": "http://example.invalid/r.pdf"}]});
        let note = decode(&pdf).unwrap();
        assert_eq!(note.text, None);
        assert_eq!(note.no_text_reason, Some(NoTextReason::PdfOnly));

        let url = serde_json::json!({"resourceType": "DocumentReference",
            "content": [{"attachment": {"contentType": "text/plain", "url": "http://example.invalid/n.txt"}}]});
        assert_eq!(
            decode(&url).unwrap().no_text_reason,
            Some(NoTextReason::NotFetched)
        );

        let ccda = serde_json::json!({"resourceType": "DocumentReference",
            "content": [{"attachment": {"contentType": "application/xml", "data": b64(b"<x/>")}}]});
        assert_eq!(
            decode(&ccda).unwrap().no_text_reason,
            Some(NoTextReason::UnsupportedContentType {
                content_types: vec!["application/xml".into()]
            })
        );
        let bare = serde_json::json!({"resourceType": "DocumentReference", "content": []});
        assert_eq!(
            decode(&bare).unwrap().no_text_reason,
            Some(NoTextReason::NoContent)
        );
    }

    #[test]
    fn diagnostic_report_falls_back_to_conclusion_then_authored_narrative() {
        let mut report = serde_json::json!({
            "resourceType": "DiagnosticReport", "status": "final", "code": {},
            "conclusion": "No acute intracranial abnormality.",
            "text": {"status": "additional", "div": "<div xmlns=\"http://www.w3.org/1999/xhtml\"><p>Possible small infarct.</p></div>"},
            "effectivePeriod": {"start": "2023-07"},
            "basedOn": [{"identifier": {"type": {"coding": [{"code": "ACSN"}]}, "value": "A1"}}],
            "imagingStudy": [{"identifier": {"system": "urn:dicom:uid", "value": "urn:oid:2.25.1"}}]
        });
        let note = decode(&report).unwrap();
        assert_eq!(
            note.text.as_deref(),
            Some("No acute intracranial abnormality.")
        );
        assert_eq!(note.accession_number.unwrap().as_str(), "A1");
        assert_eq!(note.study_instance_uid.unwrap().as_str(), "2.25.1");
        assert_eq!(
            note.authored_at_precision,
            Some(crate::intake::DatePrecision::Month)
        );
        assert_eq!(
            note.authored_at.unwrap().to_rfc3339(),
            "2023-07-01T00:00:00+00:00"
        );

        report["conclusion"] = serde_json::Value::Null;
        assert_eq!(
            decode(&report).unwrap().text.as_deref(),
            Some("Possible small infarct.")
        );

        report["text"]["status"] = "generated".into();
        assert_eq!(
            decode(&report).unwrap().no_text_reason,
            Some(NoTextReason::NoContent)
        );
    }

    #[test]
    fn patient_from_identifier_or_reference() {
        let with_ident = serde_json::json!({"resourceType": "DocumentReference",
            "subject": {"reference": "Patient/x", "identifier": {"value": "MRN-42"}}});
        assert_eq!(
            decode(&with_ident).unwrap().patient_id.unwrap().as_str(),
            "MRN-42"
        );
        let absolute = serde_json::json!({"resourceType": "DocumentReference",
            "subject": {"reference": "https://ehr.example.invalid/fhir/Patient/p7/_history/3"}});
        assert_eq!(
            decode(&absolute).unwrap().patient_id.unwrap().as_str(),
            "p7"
        );
        let group = serde_json::json!({"resourceType": "DocumentReference", "subject": {"reference": "Group/g1"}});
        assert_eq!(decode(&group).unwrap().patient_id, None);
    }

    #[test]
    fn refusals_are_specific() {
        let opts = DecodeOptions::default();
        let code = |body: &[u8]| decode_fhir_json(body, &opts).unwrap_err().code();
        assert_eq!(
            code(b"{\"resourceType\": \"DocumentReference\""),
            "fhir_malformed"
        );
        assert_eq!(code(b"[1,2]"), "fhir_malformed");
        assert_eq!(code(b"{\"id\": \"x\"}"), "fhir_malformed");
        assert_eq!(
            code(b"{\"resourceType\": \"Bundle\", \"entry\": []}"),
            "fhir_bundle"
        );
        assert_eq!(
            code(b"{\"resourceType\": \"Observation\"}"),
            "fhir_unsupported_resource"
        );
        assert_eq!(
            code(b"{\"resourceType\": \"DocumentReference\", \"content\": {}}"),
            "fhir_malformed"
        );
        assert_eq!(
            code(br#"{"resourceType": "DocumentReference", "content": [{"attachment": {"contentType": "text/plain", "data": "no*base64"}}]}"#),
            "fhir_bad_base64"
        );
        assert_eq!(
            code(b"{\"resourceType\": \"DiagnosticReport\", \"status\": \"entered-in-error\"}"),
            "fhir_not_usable"
        );
        assert_eq!(
            code(b"{\"resourceType\": \"DiagnosticReport\", \"issued\": \"2020-13\"}"),
            "invalid_datetime"
        );
        assert_eq!(
            code(br#"{"resourceType": "DiagnosticReport", "imagingStudy": [{"identifier": {"system": "urn:dicom:uid", "value": "urn:oid:1.02"}}]}"#),
            "invalid_identifier"
        );
        assert_eq!(
            code(b"{\"resourceType\": \"Docum\xe9ntReference\"}"),
            "not_utf8"
        );
    }

    #[test]
    fn shape_errors_name_the_path_not_the_value() {
        let err = decode_fhir_json(
            br#"{"resourceType": "DocumentReference", "content": [{"attachment": {"data": 12345}}]}"#,
            &DecodeOptions::default(),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("content[0].attachment.data"), "{msg}");
        assert!(!msg.contains("12345"), "{msg}");
    }
}
