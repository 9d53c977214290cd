//! HL7 v2 notes: ORU^R01 (v2.5.1 §7.3.1, unsolicited observation result)
//! and MDM^T02 (v2.5.1 §9.6.2, original document notification and content),
//! ER7-encoded (see `er7` for the parser).
//!
//! What is read:
//!
//! - Text: in message order, one line per repetition of OBX-5 where OBX-2 is
//!   TX, ST or FT (coded values, CE/CWE, and numbers are results, not prose),
//!   an OBX-2 `ED` whose data is text (type `TEXT`, subtype `PLAIN`/`HTML`,
//!   encoding `Base64` or `A`), and NTE-3 comments that follow an OBR or OBX
//!   (NTEs after PID are notes about the patient, not the report; PRT
//!   participation segments in between are skipped over). OBX with
//!   OBX-11 result status `D` (delete) or `W` (wrong) are skipped.
//! - Patient: PID-3, the repetition with identifier type (CX.5) `MR`, else
//!   the first; CX.1. PID-2 (external ID, v2.3 and earlier) when PID-3 is empty.
//! - Accession: radiology feeds put it in different places; we take the
//!   filler order number OBR-3 (EI.1), then the placer order number OBR-2,
//!   then ORC-3, ORC-2, then for MDM TXA-15 (filler) and TXA-14 (placer).
//!   The first OBR of the message is used; a later OBR (or TXA) naming
//!   another order (its OBR-3, else OBR-2, differs) is refused, as a second
//!   PID is: one message, one patient's report of one order.
//! - Study Instance UID: OBX-5 of an OBX whose OBX-3 is `113014` ("DICOM
//!   Study", DCM) or `110180` ("Study Instance UID", DCM) or whose OBX-3
//!   text is "Study Instance UID"; else ZDS-1 (IHE Radiology Scheduled
//!   Workflow, RP.1).
//! - Authored: MDM TXA-4 (activity date/time), then TXA-6 (origination);
//!   then OBR-7 (observation date/time), then OBX-14 of the first textual OBX.
//! - Note type: MDM TXA-2 (document type, HL7 table 0270), else OBR-4
//!   (universal service identifier, CWE).
//! - Source id: MSH-10 (message control ID).
//!
//! Character set: valid UTF-8 is UTF-8; otherwise MSH-18 is honoured when it
//! names `8859/n` or `UNICODE UTF-8` (HL7 table 0211), and other bytes are
//! sniffed as for `text/plain`.

use base64::Engine;
use fusion_schemas::{AccessionNumber, PatientId, StudyInstanceUid};

use super::datetime::{self, Stamp};
use super::er7::{self, Delimiters, Message, Segment};
use super::error::{IntakeError, message_type_like};
use super::text::{decode_text, html_to_text};
use super::{
    DecodeOptions, DecodedNote, NoTextReason, NoteType, SourceFormat, check_size, check_text,
    join_lines,
};

/// Decodes an HL7 v2 ER7 message (`application/hl7-v2`,
/// `x-application/hl7-v2+er7`): ORU^R01 or MDM^T02.
///
/// # Errors
///
/// [`IntakeError::TooLarge`], [`IntakeError::EmptyBody`], the text errors of
/// [`super::decode_plain_text`], [`IntakeError::Hl7NoMsh`],
/// [`IntakeError::Hl7Malformed`], [`IntakeError::Hl7UnsupportedMessage`],
/// [`IntakeError::InvalidIdentifier`], [`IntakeError::InvalidDateTime`].
pub fn decode_hl7v2(body: &[u8], options: &DecodeOptions) -> Result<DecodedNote, IntakeError> {
    check_size(body, options)?;
    let charset = msh18_charset(body);
    let text = decode_text(body, charset)?;
    let message = er7::parse(&text)?;
    let d = message.delimiters;
    let msh = message.segments.first().ok_or(IntakeError::Hl7NoMsh)?;

    let msh9 = msh.field(9);
    let (kind, event) = (d.component(msh9, 1).trim(), d.component(msh9, 2).trim());
    let format = match (kind, event) {
        ("ORU", "R01") => SourceFormat::Hl7v2Oru,
        ("MDM", "T02") => SourceFormat::Hl7v2Mdm,
        ("", _) => {
            return Err(IntakeError::Hl7Malformed {
                segment: 1,
                reason: "MSH-9 message type is empty",
            });
        }
        _ => {
            return Err(IntakeError::Hl7UnsupportedMessage {
                message_type: message_type_like(kind, event),
            });
        }
    };
    let mut note = DecodedNote::empty(format);
    note.source_id = d.value(msh.field(10), 1);

    let content = Content::collect(&message);
    note.set_text(content.text());

    let first = |name: &str| message.segments.iter().find(|s| s.name == name);
    let (pid, obr, orc, txa) = (first("PID"), first("OBR"), first("ORC"), first("TXA"));
    // ORU^R01 may repeat its PATIENT_RESULT group (v2.5.1 §7.3.1), one per
    // patient; a note is one patient's report, so a second patient is
    // refused rather than stored under the first one's id.
    if let Some(second) = message
        .segments
        .iter()
        .enumerate()
        .filter(|(_, s)| s.name == "PID")
        .nth(1)
    {
        return Err(IntakeError::Hl7Malformed {
            segment: second.0 + 1,
            reason: "a second PID segment: send one patient's report per message",
        });
    }

    // Likewise one order: a second OBR (or TXA) naming another order than
    // the first would have its report filed under the first's accession.
    // Several OBRs of one order (one accession) are one report.
    for (name, filler, placer) in [("OBR", 3, 2), ("TXA", 15, 14)] {
        let mut orders = message
            .segments
            .iter()
            .enumerate()
            .filter(|(_, s)| s.name == name)
            .map(|(k, s)| {
                (
                    k,
                    first_value(&d, &[(Some(s), filler, ""), (Some(s), placer, "")]),
                )
            });
        if let Some((_, first_order)) = orders.next()
            && let Some((k, _)) = orders.find(|(_, order)| {
                order.as_ref().map(|o| &o.0) != first_order.as_ref().map(|o| &o.0)
            })
        {
            return Err(IntakeError::Hl7Malformed {
                segment: k + 1,
                reason: if name == "OBR" {
                    "an OBR of another order (OBR-3/OBR-2): send one order's report per message"
                } else {
                    "a TXA of another order (TXA-15/TXA-14): send one document per message"
                },
            });
        }
    }

    note.patient_id = pid
        .and_then(|pid| patient(&d, pid))
        .map(|v| parse_id(PatientId::parse(&v), "PID-3"))
        .transpose()?;

    let accession_sources: [(Option<&Segment<'_>>, usize, &'static str); 6] = [
        (obr, 3, "OBR-3"),
        (obr, 2, "OBR-2"),
        (orc, 3, "ORC-3"),
        (orc, 2, "ORC-2"),
        (txa, 15, "TXA-15"),
        (txa, 14, "TXA-14"),
    ];
    note.accession_number = first_value(&d, &accession_sources)
        .map(|(v, field)| parse_id(AccessionNumber::parse(&v), field))
        .transpose()?;

    note.study_instance_uid = content
        .study_uid
        .map(|(v, field)| parse_id(StudyInstanceUid::parse(&v), field))
        .transpose()?;

    note.note_type = match (format, txa) {
        (SourceFormat::Hl7v2Mdm, Some(txa)) => document_type(&d, txa.field(2)),
        _ => None,
    }
    .or_else(|| obr.and_then(|obr| coded(&d, obr.field(4))));

    let default_offset = datetime::hl7_offset(d.component(msh.field(7), 1));
    let mut time_sources: Vec<(Option<&str>, &'static str)> = Vec::new();
    if format == SourceFormat::Hl7v2Mdm {
        time_sources.push((txa.map(|s| s.field(4)), "TXA-4"));
        time_sources.push((txa.map(|s| s.field(6)), "TXA-6"));
    }
    time_sources.push((obr.map(|s| s.field(7)), "OBR-7"));
    time_sources.push((content.first_text_obx_time, "OBX-14"));
    let stamp: Option<Stamp> = time_sources
        .into_iter()
        .find_map(|(raw, field)| d.value(raw?, 1).map(|v| (v, field)))
        .map(|(v, field)| {
            datetime::parse_hl7(&v, default_offset).ok_or(IntakeError::InvalidDateTime { field })
        })
        .transpose()?;
    note.authored_at = stamp.map(|s| s.0);
    note.authored_at_precision = stamp.map(|s| s.1);
    check_text(note, options)
}

/// What the message body holds: text lines and what else was seen.
#[derive(Default)]
struct Content<'a> {
    lines: Vec<String>,
    pdf: bool,
    referenced: bool,
    other_data: bool,
    study_uid: Option<(String, &'static str)>,
    first_text_obx_time: Option<&'a str>,
}

impl<'a> Content<'a> {
    fn collect(message: &Message<'a>) -> Self {
        let d = message.delimiters;
        let mut content = Content::default();
        let mut parent = "";
        for segment in &message.segments {
            match segment.name {
                "OBX" => content.observation(&d, segment),
                "NTE" if matches!(parent, "OBR" | "OBX") => {
                    content
                        .lines
                        .extend(d.repetitions(segment.field(3)).map(|r| d.unescape(r)));
                }
                "ZDS" if content.study_uid.is_none() => {
                    content.study_uid = d.value(segment.field(1), 1).map(|v| (v, "ZDS-1"));
                }
                _ => {}
            }
            // PRT (participation, v2.7+) sits between an OBX and its NTEs.
            if !matches!(segment.name, "NTE" | "PRT") {
                parent = segment.name;
            }
        }
        content
    }

    fn observation(&mut self, d: &Delimiters, obx: &Segment<'a>) {
        if matches!(d.component(obx.field(11), 1).trim(), "D" | "W") {
            return;
        }
        let code = d.component(obx.field(3), 1).trim();
        let name = d.component(obx.field(3), 2).trim();
        if matches!(code, "113014" | "110180") || name.eq_ignore_ascii_case("Study Instance UID") {
            if self.study_uid.is_none() {
                let value = obx.field(5);
                self.study_uid = d
                    .value(value, 1)
                    .or_else(|| d.value(value, 2))
                    .map(|v| (v, "OBX-5 (Study Instance UID)"));
            }
            return;
        }
        let before = self.lines.len();
        match obx.field(2).trim() {
            "TX" | "ST" | "FT" => {
                self.lines
                    .extend(d.repetitions(obx.field(5)).map(|r| d.unescape(r)));
            }
            "ED" => {
                for rep in d.repetitions(obx.field(5)) {
                    self.encapsulated(d, rep);
                }
            }
            "RP" => self.referenced = true,
            _ => {}
        }
        if self.lines.len() > before && self.first_text_obx_time.is_none() {
            self.first_text_obx_time = Some(obx.field(14));
        }
    }

    /// OBX-5 of type ED: source application ^ type of data ^ data subtype ^
    /// encoding ^ data (HL7 v2.5.1 §2.A.24).
    fn encapsulated(&mut self, d: &Delimiters, rep: &str) {
        let kind = d.component(rep, 2).trim().to_ascii_uppercase();
        let subtype = d.component(rep, 3).trim().to_ascii_uppercase();
        let encoding = d.component(rep, 4).trim().to_ascii_uppercase();
        if subtype == "PDF" {
            self.pdf = true;
            return;
        }
        let text = (kind == "TEXT" && matches!(subtype.as_str(), "PLAIN" | "HTML"))
            .then(|| {
                let data = d.component(rep, 5);
                let bytes = match encoding.as_str() {
                    "BASE64" => {
                        let compact: Vec<u8> =
                            data.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
                        base64::engine::general_purpose::STANDARD
                            .decode(compact)
                            .ok()?
                    }
                    "A" => d.unescape(data).into_bytes(),
                    _ => return None,
                };
                let text = decode_text(&bytes, None).ok()?;
                if subtype == "HTML" {
                    html_to_text(&text)
                } else {
                    join_lines([text])
                }
            })
            .flatten();
        match text {
            Some(t) => self.lines.push(t),
            None => self.other_data = true,
        }
    }

    fn text(&self) -> Result<String, NoTextReason> {
        join_lines(self.lines.iter().cloned()).ok_or(
            if self.pdf && !self.other_data && !self.referenced {
                NoTextReason::PdfOnly
            } else if self.referenced {
                NoTextReason::NotFetched
            } else {
                NoTextReason::NoTextObservations
            },
        )
    }
}

/// PID-3 (CX list): the MR repetition, else the first with an ID; else PID-2.
fn patient(d: &Delimiters, pid: &Segment<'_>) -> Option<String> {
    let ids: Vec<(String, &str)> = d
        .repetitions(pid.field(3))
        .filter_map(|rep| Some((d.value(rep, 1)?, d.component(rep, 5).trim())))
        .collect();
    ids.iter()
        .find(|(_, kind)| *kind == "MR")
        .or_else(|| ids.first())
        .map(|(id, _)| id.clone())
        .or_else(|| d.value(pid.field(2), 1))
}

fn first_value(
    d: &Delimiters,
    sources: &[(Option<&Segment<'_>>, usize, &'static str)],
) -> Option<(String, &'static str)> {
    sources.iter().find_map(|(segment, n, field)| {
        d.value(segment.as_ref()?.field(*n), 1).map(|v| (v, *field))
    })
}

fn parse_id<T>(
    parsed: Result<T, fusion_schemas::IdError>,
    field: &'static str,
) -> Result<T, IntakeError> {
    parsed.map_err(|source| IntakeError::InvalidIdentifier { field, source })
}

/// A CE/CWE: identifier ^ text ^ name of coding system; `LN` becomes the
/// LOINC URI FHIR uses.
fn coded(d: &Delimiters, raw: &str) -> Option<NoteType> {
    let code = d.value(raw, 1);
    let display = d.value(raw, 2);
    let system = d.value(raw, 3).map(|s| {
        if s == "LN" {
            "http://loinc.org".to_owned()
        } else {
            s
        }
    });
    (code.is_some() || display.is_some()).then_some(NoteType {
        system,
        code,
        display,
    })
}

/// TXA-2 document type, HL7 v2.5.1 user-defined table 0270 (suggested values).
fn document_type(d: &Delimiters, raw: &str) -> Option<NoteType> {
    let code = d.value(raw, 1)?;
    let known = match code.as_str() {
        "AR" => "Autopsy report",
        "CD" => "Cardiodiagnostics",
        "CN" => "Consultation",
        "DI" => "Diagnostic imaging",
        "DS" => "Discharge summary",
        "ED" => "Emergency department report",
        "HP" => "History and physical examination",
        "OP" => "Operative report",
        "PC" => "Psychiatric consultation",
        "PH" => "Psychiatric history and physical examination",
        "PN" => "Procedure note",
        "PR" => "Progress note",
        "SP" => "Surgical pathology",
        "TS" => "Transfer summary",
        _ => "",
    };
    let display = if known.is_empty() {
        d.value(raw, 2)
    } else {
        Some(known.to_owned())
    };
    Some(NoteType {
        system: Some("HL70270".to_owned()),
        code: Some(code),
        display,
    })
}

/// The character set MSH-18 names, read from the raw bytes before decoding;
/// `None` (sniff) for ASCII, unknown names, or when the body is UTF-8 anyway.
fn msh18_charset(body: &[u8]) -> Option<&'static str> {
    if std::str::from_utf8(body).is_ok() {
        return None;
    }
    let start = body.windows(3).position(|w| w == b"MSH")?;
    let line = body[start..].split(|b| *b == b'\r' || *b == b'\n').next()?;
    let separator = *line.get(3)?;
    let component = *line.get(4)?;
    let repetition = *line.get(5)?;
    // fields[0] = "MSH", fields[1] = MSH-2, so MSH-n = fields[n - 1].
    let msh18 = line.split(|b| *b == separator).nth(17)?;
    let first = msh18
        .split(|b| *b == repetition)
        .next()?
        .split(|b| *b == component)
        .next()?;
    match std::str::from_utf8(first).ok()?.trim() {
        "UNICODE UTF-8" => Some("utf-8"),
        "8859/1" => Some("iso-8859-1"),
        "8859/2" => Some("iso-8859-2"),
        "8859/3" => Some("iso-8859-3"),
        "8859/4" => Some("iso-8859-4"),
        "8859/5" => Some("iso-8859-5"),
        "8859/6" => Some("iso-8859-6"),
        "8859/7" => Some("iso-8859-7"),
        "8859/8" => Some("iso-8859-8"),
        "8859/9" => Some("iso-8859-9"),
        "8859/15" => Some("iso-8859-15"),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(msg: &str) -> Result<DecodedNote, IntakeError> {
        decode_hl7v2(msg.as_bytes(), &DecodeOptions::default())
    }

    const ORU: &str = "MSH|^~\\&|RIS|HOSP|FUSION|HOSP|20240305101500+0100||ORU^R01^ORU_R01|MSG-0001|P|2.5.1\r\
PID|1||X9^^^HOSP^PI~TP-1001^^^HOSP^MR||Testpatient^Alex||19800101|U\r\
ORC|RE|PL-1|ACC-2001\r\
OBR|1|PL-1|ACC-2001|71046^XR CHEST 2 VIEWS^C4|||202403051002\r\
NTE|1||Portable study\\F\\ patient supine.\r\
OBX|1|TX|18782-3^Radiology Study observation^LN||FINDINGS:~No focal consolidation.~||||||F|||202403051010\r\
OBX|2|FT|19005-8^Impression^LN||Possible small left effusion\\.br\\cannot exclude atelectasis.||||||F\r\
OBX|3|NM|8867-4^Heart rate^LN||72|/min|||||F\r\
OBX|4|TX|18782-3^Radiology Study observation^LN||Withdrawn line.||||||W\r\
OBX|5|HD|113014^DICOM Study^DCM||1.2.826.0.1.3680043.8.498.77||||||F\r";

    #[test]
    fn oru_text_and_metadata() {
        let note = decode(ORU).unwrap();
        assert_eq!(note.source_format, SourceFormat::Hl7v2Oru);
        assert_eq!(
            note.text.as_deref(),
            Some(
                "Portable study| patient supine.\nFINDINGS:\nNo focal consolidation.\n\nPossible small left effusion\ncannot exclude atelectasis."
            )
        );
        assert_eq!(note.patient_id.unwrap().as_str(), "TP-1001");
        assert_eq!(note.accession_number.unwrap().as_str(), "ACC-2001");
        assert_eq!(
            note.study_instance_uid.unwrap().as_str(),
            "1.2.826.0.1.3680043.8.498.77"
        );
        let note_type = note.note_type.unwrap();
        assert_eq!(note_type.code.as_deref(), Some("71046"));
        assert_eq!(note_type.display.as_deref(), Some("XR CHEST 2 VIEWS"));
        assert_eq!(note.source_id.as_deref(), Some("MSG-0001"));
        // OBR-7 has no offset: MSH-7's +0100 applies.
        assert_eq!(
            note.authored_at.unwrap().to_rfc3339(),
            "2024-03-05T09:02:00+00:00"
        );
        assert_eq!(
            note.authored_at_precision,
            Some(crate::intake::DatePrecision::Minute)
        );
    }

    #[test]
    fn mdm_uses_txa() {
        let msg = "MSH|^~\\&|DICT|HOSP|FUSION|HOSP|20240306080000||MDM^T02|MDM-7|P|2.5.1\n\
EVN|T02|20240306080000\n\
PID|1||TP-1002^^^HOSP^MR||Testpatient^Sam\n\
TXA|1|DS|TX|202403052230-0500||20240305220000||||||DOC-1||PL-9|ACC-3003||AU\n\
OBX|1|TX|||Discharged home. No evidence of infection.||||||F\n";
        let note = decode(msg).unwrap();
        assert_eq!(note.source_format, SourceFormat::Hl7v2Mdm);
        assert_eq!(
            note.text.as_deref(),
            Some("Discharged home. No evidence of infection.")
        );
        assert_eq!(note.accession_number.unwrap().as_str(), "ACC-3003");
        let note_type = note.note_type.unwrap();
        assert_eq!(note_type.code.as_deref(), Some("DS"));
        assert_eq!(note_type.display.as_deref(), Some("Discharge summary"));
        assert_eq!(
            note.authored_at.unwrap().to_rfc3339(),
            "2024-03-06T03:30:00+00:00"
        );
    }

    /// HL7 v2.5.1 §2.5: CR ends a segment; a bare LF inside OBX-5, as
    /// feeds send report lines, is a line of the text (issue #15, item 13).
    #[test]
    fn line_feeds_inside_obx5_are_lines_of_the_text() {
        for end in ["\r", "\r\n", "\n"] {
            let msg = [
                "MSH|^~\\&|RIS|GEN|FUSION|GEN|20240410091500||ORU^R01|M-1|P|2.5.1",
                "PID|1||TP-4101^^^GEN^MR",
                "OBR|1|PL-1|ACC-4101",
                "OBX|1|TX|18782-3^Radiology Study observation^LN||FINDINGS:\nNo effusion.\n||||||F",
                "NTE|1||Compared with\nprior film.",
            ]
            .join(end);
            let note = decode(&msg).unwrap();
            assert_eq!(
                note.text.as_deref(),
                Some("FINDINGS:\nNo effusion.\n\nCompared with\nprior film."),
                "{end:?}"
            );
            assert_eq!(note.accession_number.unwrap().as_str(), "ACC-4101");
        }
    }

    #[test]
    fn no_text_reasons() {
        let pdf = "MSH|^~\\&|A|B|C|D|20240101||ORU^R01|1|P|2.5.1\rPID|1||P1\rOBR|1||A1\rOBX|1|ED|11526-1^Pathology study^LN||^application^pdf^Base64^JVBERi0=||||||F\r";
        assert_eq!(
            decode(pdf).unwrap().no_text_reason,
            Some(NoTextReason::PdfOnly)
        );
        let numeric = "MSH|^~\\&|A|B|C|D|20240101||ORU^R01|1|P|2.5.1\rOBR|1||A1\rOBX|1|SN|1554-5^GLUCOSE^LN||^182|mg/dl\r";
        assert_eq!(
            decode(numeric).unwrap().no_text_reason,
            Some(NoTextReason::NoTextObservations)
        );
        let rp = "MSH|^~\\&|A|B|C|D|20240101||ORU^R01|1|P|2.5.1\rOBX|1|RP|x||http://example.invalid/r^^TEXT\r";
        assert_eq!(
            decode(rp).unwrap().no_text_reason,
            Some(NoTextReason::NotFetched)
        );
    }

    #[test]
    fn nte_comments_only_on_orders_and_observations() {
        let msg = "MSH|^~\\&|A|B|C|D|20240101||ORU^R01|1|P|2.8\rPID|1||P1\rNTE|1||Patient prefers Sam.\r\
OBR|1||A1\rNTE|1||Order comment.\rOBX|1|CWE|x||y^z\rPRT|1|AD\rNTE|1||Result comment.\r";
        assert_eq!(
            decode(msg).unwrap().text.as_deref(),
            Some("Order comment.\nResult comment.")
        );
    }

    #[test]
    fn encapsulated_text_is_read() {
        let msg = "MSH|^~\\&|A|B|C|D|20240101||ORU^R01|1|P|2.5.1\rOBX|1|ED|x||^TEXT^PLAIN^Base64^Tm8gZnJhY3R1cmUu||||||F\r";
        assert_eq!(decode(msg).unwrap().text.as_deref(), Some("No fracture."));
    }

    #[test]
    fn refusals_are_specific() {
        let code = |m: &str| decode(m).unwrap_err().code();
        assert_eq!(code("PID|1||P1\r"), "hl7_no_msh");
        assert_eq!(
            code("MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5.1\r"),
            "hl7_unsupported_message"
        );
        assert_eq!(
            code("MSH|^~\\&|A|B|C|D|20240101|||1|P|2.5.1\r"),
            "hl7_malformed"
        );
        assert_eq!(
            code(
                "MSH|^~\\&|A|B|C|D|20240101||ORU^R01|1|P|2.5.1\rOBR|1||ACCESSION-NUMBER-TOO-LONG\r"
            ),
            "invalid_identifier"
        );
        assert_eq!(
            code("MSH|^~\\&|A|B|C|D|20240101||ORU^R01|1|P|2.5.1\rOBR|1||A1||||2024-01-01\r"),
            "invalid_datetime"
        );
        assert_eq!(code("MSH|^~\\&|A|B\0|C\r"), "binary_content");
        // Two patients' results in one ORU: refused, naming the segment.
        let two = "MSH|^~\\&|A|B|C|D|20240101||ORU^R01|1|P|2.5.1\rPID|1||P1\rOBR|1||A1\r\
                   OBX|1|TX|||No effusion.||||||F\rPID|2||P2\rOBR|1||A2\rOBX|1|TX|||Mild cardiomegaly.||||||F\r";
        let err = decode(two).unwrap_err();
        assert_eq!(err.code(), "hl7_malformed");
        assert!(err.to_string().contains("segment 5"), "{err}");
        // Two orders of one patient: refused, naming the second OBR; two
        // OBRs of one order (one accession) are one report.
        let orders = |second: &str| {
            format!(
                "MSH|^~\\&|A|B|C|D|20240101||ORU^R01|1|P|2.5.1\rPID|1||P1\rOBR|1|PL-1|A1\r\
                 OBX|1|TX|||No effusion.||||||F\r{second}OBX|1|TX|||Mild cardiomegaly.||||||F\r"
            )
        };
        let err = decode(&orders("OBR|2|PL-2|A2\r")).unwrap_err();
        assert_eq!(err.code(), "hl7_malformed");
        let message = err.to_string();
        assert!(
            message.contains("another order") && message.contains("segment 5"),
            "{message}"
        );
        let err = decode(&orders("OBR|2|PL-2|\r")).unwrap_err();
        assert_eq!(
            err.code(),
            "hl7_malformed",
            "a placer number of another order"
        );
        let one = decode(&orders("OBR|2|PL-1|A1\r")).unwrap();
        assert_eq!(one.accession_number.unwrap().as_str(), "A1");
        assert_eq!(
            one.text.as_deref(),
            Some("No effusion.\nMild cardiomegaly.")
        );
        let mdm = "MSH|^~\\&|A|B|C|D|20240101||MDM^T02|1|P|2.5.1\rPID|1||P1\r\
                   TXA|1|DS|TX|20240305||||||||DOC-1||PL-9|ACC-1||AU\r\
                   TXA|2|DS|TX|20240305||||||||DOC-2||PL-8|ACC-2||AU\r\
                   OBX|1|TX|||No effusion.||||||F\r";
        let err = decode(mdm).unwrap_err();
        assert!(err.to_string().contains("a TXA of another order"), "{err}");
    }

    #[test]
    fn msh18_latin1_is_honoured() {
        let msg: &[u8] = b"MSH|^~\\&|A|B|C|D|20240101||ORU^R01|1|P|2.5.1||||||8859/1\rOBX|1|TX|||Pr\xe9sence d'un \x93nodule\x94||||||F\r";
        let note = decode_hl7v2(msg, &DecodeOptions::default()).unwrap();
        // ISO-8859-1 is decoded as its WHATWG superset Windows-1252.
        assert_eq!(
            note.text.as_deref(),
            Some("Présence d'un \u{201c}nodule\u{201d}")
        );
    }
}
