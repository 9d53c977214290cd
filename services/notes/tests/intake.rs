//! Note intake on invented fixtures (tests/fixtures/intake/): one file per
//! format and per refusal.

mod intake {
    use fusion_notes::intake::{
        DatePrecision, DecodeOptions, DecodedNote, IntakeError, NoTextReason, SourceFormat, decode,
    };

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!(
            "{}/tests/fixtures/intake/{name}",
            env!("CARGO_MANIFEST_DIR")
        );
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn decode_fixture(content_type: &str, name: &str) -> Result<DecodedNote, IntakeError> {
        decode(content_type, &fixture(name), &DecodeOptions::default())
    }

    #[test]
    fn plain_utf8() {
        let note = decode_fixture("text/plain", "plain_utf8.txt").unwrap();
        assert_eq!(note.source_format, SourceFormat::TextPlain);
        let text = note.text.unwrap();
        assert!(text.starts_with("EXAMINATION: XR CHEST"));
        assert!(text.contains("Cannot exclude aspiration."));
        assert_eq!(note.patient_id, None);
    }

    #[test]
    fn plain_windows_1252_smart_quotes() {
        let note = decode_fixture("text/plain", "plain_cp1252.txt").unwrap();
        assert_eq!(
            note.text.as_deref(),
            Some(
                "FINDINGS:\r\nThe \u{201c}nodule\u{201d} seen previously is not identified \u{2013} likely resolved.\r\nNo effusion. Café-au-lait spot noted.\r\n"
            )
        );
    }

    #[test]
    fn plain_utf16_without_bom_is_refused() {
        let err = decode_fixture("text/plain", "plain_utf16le_nobom.txt").unwrap_err();
        assert_eq!(err, IntakeError::Utf16WithoutBom);
        assert_eq!(err.code(), "utf16_without_bom");
    }

    #[test]
    fn fhir_document_reference() {
        let note =
            decode_fixture("application/fhir+json", "fhir_documentreference_plain.json").unwrap();
        assert_eq!(note.source_format, SourceFormat::FhirDocumentReference);
        assert!(note.text.as_deref().unwrap().contains("possibly pneumonia"));
        assert_eq!(note.patient_id.unwrap().as_str(), "tp-0001");
        assert_eq!(note.accession_number.unwrap().as_str(), "RAD24-00017");
        assert_eq!(
            note.study_instance_uid.unwrap().as_str(),
            "1.2.826.0.1.3680043.8.498.10001"
        );
        assert_eq!(note.source_id.as_deref(), Some("docref-tp-0001"));
        assert_eq!(
            note.authored_at.unwrap().to_rfc3339(),
            "2024-03-05T09:15:00+00:00"
        );
        let note_type = note.note_type.unwrap();
        assert_eq!(note_type.system.as_deref(), Some("http://loinc.org"));
        assert_eq!(
            note_type.display.as_deref(),
            Some("Diagnostic imaging study")
        );
    }

    #[test]
    fn fhir_diagnostic_report_xhtml() {
        let note = decode_fixture(
            "application/fhir+json; fhirVersion=4.0",
            "fhir_diagnosticreport_xhtml.json",
        )
        .unwrap();
        assert_eq!(note.source_format, SourceFormat::FhirDiagnosticReport);
        assert_eq!(
            note.text.as_deref(),
            Some(
                "CT HEAD WITHOUT CONTRAST\n\nFINDINGS: No intracranial haemorrhage. No mass effect & no midline shift.\n\
                 Ventricles are normal in size.\n\nIMPRESSION: No acute intracranial abnormality. Small vessel ischaemic change is not excluded\u{2026}"
            )
        );
        assert_eq!(note.patient_id.unwrap().as_str(), "TP-0002");
        assert_eq!(note.accession_number.unwrap().as_str(), "CT24-0042");
        assert_eq!(
            note.study_instance_uid.unwrap().as_str(),
            "1.2.826.0.1.3680043.8.498.10002"
        );
        // "2024-03" resolves to the start of the month.
        assert_eq!(
            note.authored_at.unwrap().to_rfc3339(),
            "2024-03-01T00:00:00+00:00"
        );
        assert_eq!(note.authored_at_precision, Some(DatePrecision::Month));
    }

    #[test]
    fn fhir_pdf_only_is_accepted_without_text() {
        let note = decode_fixture(
            "application/fhir+json",
            "fhir_diagnosticreport_pdf_only.json",
        )
        .unwrap();
        assert_eq!(note.text, None);
        assert_eq!(note.no_text_reason, Some(NoTextReason::PdfOnly));
        assert_eq!(note.patient_id.unwrap().as_str(), "tp-0003");
        assert_eq!(note.authored_at_precision, Some(DatePrecision::Day));
    }

    #[test]
    fn fhir_refusals() {
        let code = |name| {
            decode_fixture("application/fhir+json", name)
                .unwrap_err()
                .code()
        };
        assert_eq!(code("fhir_bundle.json"), "fhir_bundle");
        assert_eq!(code("fhir_truncated.json"), "fhir_malformed");
    }

    /// The text limit applies to the decoded text of every format, whatever
    /// the body's size: the fixtures decode to texts of known length.
    #[test]
    fn text_over_the_limit_is_refused_in_every_format() {
        let fixtures = [
            ("text/plain", "plain_utf8.txt"),
            ("application/fhir+json", "fhir_documentreference_plain.json"),
            ("application/fhir+json", "fhir_diagnosticreport_xhtml.json"),
            ("application/hl7-v2", "hl7v2_oru_r01_radiology.hl7"),
            ("application/hl7-v2", "hl7v2_mdm_t02_custom_delimiters.hl7"),
        ];
        for (content_type, name) in fixtures {
            let len = decode_fixture(content_type, name)
                .unwrap()
                .text
                .unwrap()
                .len();
            let at = |max_text_bytes| DecodeOptions {
                max_text_bytes,
                ..DecodeOptions::default()
            };
            let fits = decode(content_type, &fixture(name), &at(len));
            assert!(
                fits.is_ok(),
                "{name}: a text of exactly the limit is accepted"
            );
            let err = decode(content_type, &fixture(name), &at(len - 1)).unwrap_err();
            assert_eq!(
                err,
                IntakeError::TextTooLong {
                    size: len,
                    limit: len - 1
                },
                "{name}"
            );
            assert_eq!(err.code(), "text_too_long");
        }
        // A PDF-only note has no text to limit.
        let pdf = decode(
            "application/fhir+json",
            &fixture("fhir_diagnosticreport_pdf_only.json"),
            &DecodeOptions {
                max_text_bytes: 0,
                ..DecodeOptions::default()
            },
        );
        assert_eq!(pdf.unwrap().no_text_reason, Some(NoTextReason::PdfOnly));
    }

    /// A wrong resourceType or message type is echoed only when it has the
    /// form of a code: a name put there by mistake is not repeated.
    #[test]
    fn only_code_like_values_are_echoed() {
        let opts = DecodeOptions::default();
        let err = |content_type, body: &[u8]| decode(content_type, body, &opts).unwrap_err();
        let fhir = err(
            "application/fhir+json",
            br#"{"resourceType": "Patient", "id": "x"}"#,
        );
        assert!(fhir.to_string().contains("\"Patient\""), "{fhir}");
        let fhir = err(
            "application/fhir+json",
            br#"{"resourceType": "Jane Doe 1970"}"#,
        );
        assert!(!fhir.to_string().contains("Jane"), "{fhir}");
        assert!(
            fhir.to_string().contains("(not an R4 resource type)"),
            "{fhir}"
        );
        // A name written like a code is not echoed either.
        let fhir = err("application/fhir+json", br#"{"resourceType": "SmithJohn"}"#);
        assert!(!fhir.to_string().contains("Smith"), "{fhir}");
        let hl7 = err(
            "application/hl7-v2",
            b"MSH|^~\\&|A|B|C|D|20240101||ADT^A01|1|P|2.5.1\r",
        );
        assert!(hl7.to_string().contains("\"ADT^A01\""), "{hl7}");
        let hl7 = err(
            "application/hl7-v2",
            b"MSH|^~\\&|A|B|C|D|20240101||Jane Doe^1970|1|P|2.5.1\r",
        );
        assert!(!hl7.to_string().contains("Jane"), "{hl7}");
        let hl7 = err(
            "application/hl7-v2",
            b"MSH|^~\\&|A|B|C|D|20240101||SMITH^JOHN|1|P|2.5.1\r",
        );
        assert!(!hl7.to_string().contains("SMITH"), "{hl7}");
        assert!(hl7.to_string().contains("(not a message type)"), "{hl7}");
    }

    #[test]
    fn hl7v2_oru_radiology() {
        let note = decode_fixture("application/hl7-v2", "hl7v2_oru_r01_radiology.hl7").unwrap();
        assert_eq!(note.source_format, SourceFormat::Hl7v2Oru);
        assert_eq!(
            note.text.as_deref(),
            Some(
                "Comparison: none available.\nFINDINGS:\nLungs are clear. No pneumothorax.\n\
                 No evidence of pleural effusion & no consolidation.\nIMPRESSION:\n\
                 Probable mild cardiomegaly; cannot rule out early failure."
            )
        );
        assert_eq!(note.patient_id.unwrap().as_str(), "TP-0004");
        assert_eq!(note.accession_number.unwrap().as_str(), "XR24-0911");
        assert_eq!(
            note.study_instance_uid.unwrap().as_str(),
            "1.2.826.0.1.3680043.8.498.10004"
        );
        assert_eq!(note.source_id.as_deref(), Some("RIS-000123"));
        assert_eq!(
            note.authored_at.unwrap().to_rfc3339(),
            "2024-03-05T09:12:00+00:00"
        );
        assert_eq!(note.note_type.unwrap().code.as_deref(), Some("36643-5"));
    }

    #[test]
    fn hl7v2_mdm_with_custom_delimiters() {
        let note = decode_fixture(
            "x-application/hl7-v2+er7",
            "hl7v2_mdm_t02_custom_delimiters.hl7",
        )
        .unwrap();
        assert_eq!(note.source_format, SourceFormat::Hl7v2Mdm);
        assert_eq!(
            note.text.as_deref(),
            Some(
                "DISCHARGE SUMMARY\nAdmitted with community-acquired pneumonia# treated with antibiotics.\n\
                 Denies chest pain. No signs of sepsis on discharge.\n\
                 Follow-up chest film in 6 weeks to exclude underlying mass."
            )
        );
        assert_eq!(note.patient_id.unwrap().as_str(), "TP-0005");
        assert_eq!(note.accession_number.unwrap().as_str(), "ADM24-5");
        assert_eq!(note.source_id.as_deref(), Some("DICT-77"));
        assert_eq!(
            note.authored_at.unwrap().to_rfc3339(),
            "2024-03-06T03:30:00+00:00"
        );
        assert_eq!(
            note.note_type.unwrap().display.as_deref(),
            Some("Discharge summary")
        );
    }

    #[test]
    fn hl7v2_refusals() {
        let code = |name| {
            decode_fixture("application/hl7-v2", name)
                .unwrap_err()
                .code()
        };
        assert_eq!(code("hl7v2_adt_a01.hl7"), "hl7_unsupported_message");
        assert_eq!(code("hl7v2_no_msh.hl7"), "hl7_no_msh");
    }

    #[test]
    fn serialises_for_the_api() {
        let note = decode_fixture(
            "application/fhir+json",
            "fhir_diagnosticreport_pdf_only.json",
        )
        .unwrap();
        let json = serde_json::to_value(&note).unwrap();
        assert_eq!(json["source_format"], "fhir_diagnostic_report");
        assert_eq!(json["text"], serde_json::Value::Null);
        assert_eq!(json["no_text_reason"]["reason"], "pdf_only");
        assert_eq!(json["patient_id"], "tp-0003");
        assert_eq!(json["authored_at"], "2024-02-29T00:00:00Z");
        assert_eq!(json["authored_at_precision"], "day");
    }

    #[test]
    fn error_messages_do_not_echo_identifiers() {
        let body = br#"{"resourceType": "DocumentReference", "subject": {"identifier": {"value": "SECRET\\MRN"}}}"#;
        let err = decode("application/fhir+json", body, &DecodeOptions::default()).unwrap_err();
        assert_eq!(err.code(), "invalid_identifier");
        assert!(!err.to_string().contains("SECRET"), "{err}");
    }
}

/// The header variants of real chest radiograph reports (US
/// Core's example uses "INDICATION/CLINICAL QUESTION:"): a request for
/// "Pneumonia" in the indication never becomes a finding, through the whole
/// path an EHR's DiagnosticReport takes (intake, sections, labels).
mod indication_variants {
    use fusion_notes::intake::{DecodeOptions, decode};
    use fusion_notes::{NoteLabel, Observation, SectionKind, analyze};

    #[test]
    fn a_normal_report_with_a_joined_indication_header_is_normal() {
        let path = format!(
            "{}/tests/fixtures/intake/fhir_diagnosticreport_indication_variant.json",
            env!("CARGO_MANIFEST_DIR")
        );
        let body = std::fs::read(&path).unwrap();
        let note = decode("application/fhir+json", &body, &DecodeOptions::default()).unwrap();
        let text = note.text.unwrap();
        let a = analyze(&text);
        let indication = a
            .sections
            .iter()
            .find(|s| s.kind == SectionKind::Indication)
            .expect("the joined header is an indication section");
        assert!(indication.body.slice(&text).unwrap().contains("Pneumonia"));
        assert_eq!(a.labels[&Observation::Pneumonia], NoteLabel::NotMentioned);
        assert_eq!(a.labels[&Observation::PleuralEffusion], NoteLabel::Negative);
        assert_eq!(a.labels[&Observation::NoFinding], NoteLabel::Positive);
    }

    #[test]
    fn history_and_complaint_sections_never_give_a_label() {
        for text in [
            "HISTORY: Pneumonia.\nFINDINGS: Lungs are clear.",
            "CLINICAL QUESTION: effusion?\nIMPRESSION: Normal chest.",
            "Reason for exam: pneumothorax\nFINDINGS: No acute process.",
            "CC: cough, pneumonia\nHPI: treated for pneumonia last week.\nASSESSMENT: Improving.",
        ] {
            let a = analyze(text);
            for o in [
                Observation::Pneumonia,
                Observation::PleuralEffusion,
                Observation::Pneumothorax,
            ] {
                assert_eq!(a.labels[&o], NoteLabel::NotMentioned, "{o:?} in {text:?}");
            }
        }
    }
}
