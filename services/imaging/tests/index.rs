//! Index attributes and DICOM JSON on real files. Expected person names were
//! read from the same files by pydicom 3.0.2 (an independent decoder); the
//! names in this public test material are fictitious.

// Helpers outside #[test] functions unwrap too: this is a test crate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use fusion_imaging::{index_attributes, metadata_json, parse, qido_json, read};
use serde_json::json;

const CHARSETS: &str = "pydicom-3.0.2/charset_files";

fn patient_name(file: &str) -> Option<String> {
    let instance = parse(&common::read(&format!("{CHARSETS}/{file}")))
        .unwrap_or_else(|e| panic!("{file}: {e}"));
    index_attributes(&instance).patient_name
}

#[test]
fn patient_names_decode_per_specific_character_set() {
    let cases = [
        ("chrArab.dcm", "قباني^لنزار"),                         // ISO_IR 127
        ("chrFren.dcm", "Buc^Jérôme"),                          // ISO_IR 100
        ("chrFrenMulti.dcm", "Buc^Jérôme"),                     // ISO_IR 100
        ("chrGerm.dcm", "Äneas^Rüdiger"),                       // ISO_IR 100
        ("chrGreek.dcm", "Διονυσιος"),                          // ISO_IR 126
        ("chrH31.dcm", "Yamada^Tarou=山田^太郎=やまだ^たろう"), // \ISO 2022 IR 87
        ("chrH32.dcm", "ﾔﾏﾀﾞ^ﾀﾛｳ=山田^太郎=やまだ^たろう"),      // ISO 2022 IR 13\ISO 2022 IR 87
        ("chrHbrw.dcm", "שרון^דבורה"),                          // ISO_IR 138
        ("chrI2.dcm", "Hong^Gildong=洪^吉洞=홍^길동"),          // \ISO 2022 IR 149
        ("chrJapMulti.dcm", "やまだ^たろう"),                   // \ISO 2022 IR 87
        ("chrJapMultiExplicitIR6.dcm", "やまだ^たろう"),        // ISO 2022 IR 6\ISO 2022 IR 87
        ("chrKoreanMulti.dcm", "김희중"),                       // \ISO 2022 IR 149
        ("chrRuss.dcm", "Люкceмбypг"),                          // ISO_IR 144
        ("chrX1.dcm", "Wang^XiaoDong=王^小東"),                 // ISO_IR 192
        ("chrX2.dcm", "Wang^XiaoDong=王^小东"),                 // GB18030
    ];
    let mut wrong = Vec::new();
    for (file, want) in cases {
        let got = patient_name(file);
        if got.as_deref() != Some(want) {
            wrong.push(format!("{file}: got {got:?}, want {want:?}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn person_names_are_dicom_json_objects() {
    let instance = parse(&common::read(&format!("{CHARSETS}/chrH31.dcm"))).unwrap();
    let qido = qido_json(instance.object());
    assert_eq!(
        qido["00100010"],
        json!({"vr": "PN", "Value": [{
            "Alphabetic": "Yamada^Tarou",
            "Ideographic": "山田^太郎",
            "Phonetic": "やまだ^たろう"
        }]})
    );
}

#[test]
fn an_item_with_its_own_character_set_is_decoded_with_it() {
    // Top level ISO_IR 192; the item declares ISO 2022 IR 13\ISO 2022 IR 87.
    for file in ["chrSQEncoding.dcm", "chrSQEncoding1.dcm"] {
        let object = read(&common::read(&format!("{CHARSETS}/{file}"))).unwrap();
        let json = metadata_json(&object, "http://x/bulk").unwrap();
        let item = &json["00321064"]["Value"][0];
        assert_eq!(
            item["00100010"]["Value"][0],
            json!({"Alphabetic": "ﾔﾏﾀﾞ^ﾀﾛｳ", "Ideographic": "山田^太郎", "Phonetic": "やまだ^たろう"}),
            "{file}"
        );
        assert_eq!(
            json["00321032"]["Value"][0],
            json!({"Alphabetic": "Doctor^Who^^MD"}),
            "{file}"
        );
    }
}

#[test]
fn index_attributes_of_a_ct_image() {
    let instance = parse(&common::read("pydicom-3.0.2/test_files/CT_small.dcm")).unwrap();
    let a = index_attributes(&instance);
    assert_eq!(a.modality.as_deref(), Some("CT"));
    assert_eq!(
        (a.rows, a.columns, a.frames),
        (Some(128), Some(128), Some(1))
    );
    assert_eq!(a.sop_class_uid, "1.2.840.10008.5.1.4.1.1.2");
    assert_eq!(a.transfer_syntax_uid.as_str(), "1.2.840.10008.1.2.1");
    assert!(a.patient_id.is_some());
    assert!(a.study_date.as_deref().is_some_and(|d| d.len() == 8));
    let attrs = &a.attributes;
    assert_eq!(attrs["00080060"], json!({"vr": "CS", "Value": ["CT"]}));
    assert_eq!(attrs["00280010"], json!({"vr": "US", "Value": [128]}));
    assert_eq!(
        attrs["0020000D"]["Value"][0].as_str(),
        Some(a.study_instance_uid.as_str())
    );
    // Only QIDO attributes, no pixel data.
    assert!(attrs.get("7FE00010").is_none());
    assert!(attrs.get("00280030").is_none());
}

#[test]
fn multi_frame_index_and_metadata_bulk_data() {
    let instance = parse(&common::read(
        "pydicom-3.0.2/test_files/examples_ybr_color.dcm",
    ))
    .unwrap();
    let a = index_attributes(&instance);
    assert!(a.frames.is_some_and(|f| f > 1), "{:?}", a.frames);
    let json = metadata_json(instance.object(), "https://pacs.example/bulk/").unwrap();
    assert_eq!(
        json["7FE00010"],
        json!({"vr": "OB", "BulkDataURI": "https://pacs.example/bulk/7FE00010"})
    );
    assert!(json.get("00020010").is_none(), "file meta is not metadata");
    // IS and DS are JSON numbers (PS3.18 §F.2.3).
    assert!(json["00280008"]["Value"][0].is_number());
}

#[test]
fn data_sets_without_file_meta_are_read_with_a_guessed_encoding() {
    for file in [
        "ExplVR_LitEndNoMeta.dcm",
        "ExplVR_BigEndNoMeta.dcm",
        "rtstruct.dcm",
    ] {
        let bytes = common::read(&format!("pydicom-3.0.2/test_files/{file}"));
        let instance = parse(&bytes).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(!instance.has_file_meta(), "{file}");
        let a = index_attributes(&instance);
        assert!(a.modality.is_some(), "{file}");
    }
    let with_meta = parse(&common::read("pydicom-3.0.2/test_files/CT_small.dcm")).unwrap();
    assert!(with_meta.has_file_meta());
}

#[test]
fn files_without_preamble_are_read() {
    let bytes = common::read("pydicom-3.0.2/test_files/CT_small.dcm");
    assert_eq!(&bytes[128..132], b"DICM");
    let instance = parse(&bytes[128..]).unwrap();
    assert!(instance.has_file_meta());
}

#[test]
fn deflated_and_big_endian_files_parse() {
    for file in [
        "image_dfl.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_implicit.dcm",
    ] {
        let instance = parse(&common::read(&format!("pydicom-3.0.2/test_files/{file}")))
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let _ = metadata_json(instance.object(), "http://x").unwrap();
    }
}

#[test]
fn refusals_carry_stow_failure_reasons() {
    // A DICOMDIR has no SOP Instance of its own: A900.
    let err = parse(&common::read(
        "pydicom-3.0.2/test_files/dicomdirtests/DICOMDIR",
    ))
    .unwrap_err();
    assert_eq!(err.failure_reason().code(), 0xA900, "{err}");
    // File meta without a transfer syntax: C000.
    let err = parse(&common::read(
        "pydicom-3.0.2/test_files/meta_missing_tsyntax.dcm",
    ))
    .unwrap_err();
    assert_eq!(err.failure_reason().code(), 0xC000, "{err}");
    // An unknown transfer syntax: C122.
    let mut bytes = common::read("pydicom-3.0.2/test_files/CT_small.dcm");
    let at = bytes
        .windows(19)
        .position(|w| w == b"1.2.840.10008.1.2.1")
        .unwrap();
    bytes[at..at + 19].copy_from_slice(b"1.2.840.10008.9.9.9");
    let err = parse(&bytes).unwrap_err();
    assert_eq!(err.failure_reason().code(), 0xC122, "{err}");
    // Messages never carry values from the file.
    assert!(!err.to_string().contains("CompressedSamples"));
}
