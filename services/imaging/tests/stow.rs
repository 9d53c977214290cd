//! STOW-RS multipart reading and the response body.

// Helpers outside #[test] functions unwrap too: this is a test crate.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use bytes::Bytes;
use fusion_imaging::{
    FailureReason, StowError, StowLimits, StowReader, StowResponse, WarningReason,
    index_attributes, parse,
};
use futures::stream;
use serde_json::json;

type Chunk = Result<Bytes, std::io::Error>;

/// A body split into chunks of `chunk` bytes, as a chunked request arrives.
fn chunked(body: Vec<u8>, chunk: usize) -> impl futures::Stream<Item = Chunk> + Send + 'static {
    let chunks: Vec<Chunk> = body
        .chunks(chunk)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    stream::iter(chunks)
}

fn body(boundary: &str, parts: &[(Option<&str>, &[u8])], closing: &str) -> Vec<u8> {
    let mut out = b"preamble, ignored\r\n".to_vec();
    for (content_type, data) in parts {
        out.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        match content_type {
            Some(t) => out.extend_from_slice(format!("Content-Type: {t}\r\n").as_bytes()),
            // A part without Content-Type still has some header field.
            None => out.extend_from_slice(format!("Content-Length: {}\r\n", data.len()).as_bytes()),
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(format!("--{boundary}--{closing}").as_bytes());
    out
}

async fn read_all(
    content_type: &str,
    body: Vec<u8>,
    chunk: usize,
    limits: StowLimits,
) -> Result<Vec<fusion_imaging::StowPart>, StowError> {
    let mut reader = StowReader::new(content_type, chunked(body, chunk), limits)?;
    let mut parts = Vec::new();
    while let Some(part) = reader.next_part().await? {
        parts.push(part);
    }
    Ok(parts)
}

#[tokio::test]
async fn real_dicom_files_come_back_byte_for_byte() {
    let files = [
        common::read("pydicom-3.0.2/test_files/CT_small.dcm"),
        common::read("pydicom-3.0.2/test_files/MR_small_RLE.dcm"),
        common::read("pydicom-3.0.2/test_files/JPGExtended.dcm"),
    ];
    let boundary = "DICOMwebBoundary";
    let parts: Vec<(Option<&str>, &[u8])> = files
        .iter()
        .map(|f| (Some("application/dicom"), f.as_slice()))
        .collect();
    let content_type =
        format!("multipart/related; type=\"application/dicom\"; boundary={boundary}");
    for chunk in [1 << 20, 4096, 333] {
        let got = read_all(
            &content_type,
            body(boundary, &parts, "\r\n"),
            chunk,
            StowLimits::default(),
        )
        .await
        .unwrap();
        assert_eq!(got.len(), 3);
        for (i, (part, file)) in got.iter().zip(&files).enumerate() {
            assert_eq!(part.index, i);
            assert!(part.is_application_dicom());
            assert_eq!(part.data.as_ref(), file.as_slice());
            let instance = parse(&part.data).unwrap();
            let _ = index_attributes(&instance);
        }
    }
}

#[tokio::test]
async fn content_type_variants_are_accepted() {
    let long = "b".repeat(120); // longer than RFC 2046's 70 characters
    let cases = [
        (
            "multipart/related; type=application/dicom; boundary=abc".to_string(),
            "abc",
        ),
        (
            "Multipart/Related; boundary=\"a b:c\"; type=\"application/dicom\"".to_string(),
            "a b:c",
        ),
        (
            format!("multipart/related;type=\"application/dicom\";boundary=\"{long}\""),
            long.as_str(),
        ),
        ("multipart/related; boundary=xyz".to_string(), "xyz"),
    ];
    for (content_type, boundary) in &cases {
        for closing in ["\r\n", ""] {
            let data: &[u8] = b"\x00\x01 not parsed here";
            let got = read_all(
                content_type,
                body(
                    boundary,
                    &[(None, data), (Some("application/dicom"), data)],
                    closing,
                ),
                3,
                StowLimits::default(),
            )
            .await
            .unwrap_or_else(|e| panic!("{content_type}: {e:?}"));
            assert_eq!(got.len(), 2, "{content_type}");
            assert_eq!(got[0].content_type, None);
            assert!(got[0].is_application_dicom());
            assert_eq!(got[1].data.as_ref(), data);
        }
    }
}

#[tokio::test]
async fn a_non_dicom_part_is_flagged_and_reading_goes_on() {
    let boundary = "x";
    let dicom = common::read("pydicom-3.0.2/test_files/MR_small.dcm");
    let parts: [(Option<&str>, &[u8]); 3] = [
        (Some("text/plain; charset=utf-8"), b"hello"),
        (Some("application/dicom"), &dicom),
        (Some("application/dicom"), b"not dicom at all"),
    ];
    let got = read_all(
        "multipart/related; type=\"application/dicom\"; boundary=x",
        body(boundary, &parts, "\r\n"),
        64,
        StowLimits::default(),
    )
    .await
    .unwrap();
    assert_eq!(got.len(), 3);
    assert!(!got[0].is_application_dicom());
    assert_eq!(got[0].content_type.as_deref(), Some("text/plain"));
    assert!(parse(&got[1].data).is_ok());
    let err = parse(&got[2].data).unwrap_err();
    assert_eq!(err.failure_reason(), FailureReason::CannotUnderstand);
}

#[tokio::test]
async fn bad_requests_are_refused_before_reading() {
    let empty = || chunked(Vec::new(), 1);
    let limits = StowLimits::default();
    assert!(matches!(
        StowReader::new("application/dicom", empty(), limits),
        Err(StowError::NotMultipartRelated)
    ));
    assert!(matches!(
        StowReader::new("multipart/related; type=\"application/dicom+json\"; boundary=a", empty(), limits),
        Err(StowError::UnsupportedType(t)) if t == "application/dicom+json"
    ));
    assert!(matches!(
        StowReader::new(
            "multipart/related; type=\"application/dicom\"",
            empty(),
            limits
        ),
        Err(StowError::NoBoundary)
    ));
}

#[tokio::test]
async fn a_part_without_any_header_is_refused_not_lost() {
    let body =
        b"--abc\r\n\r\nX1\r\n--abc\r\nContent-Type: application/dicom\r\n\r\nX2\r\n--abc--\r\n";
    let err = read_all(
        "multipart/related; boundary=abc",
        body.to_vec(),
        4,
        StowLimits::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, StowError::PartWithoutHeaders { index: 0 }),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_truncated_body_is_an_error_after_the_complete_parts() {
    let full = body(
        "zz",
        &[(None, b"first part"), (None, b"second part")],
        "\r\n",
    );
    let cut = full[..full.len() - 20].to_vec();
    let mut reader = StowReader::new(
        "multipart/related; boundary=zz",
        chunked(cut, 5),
        StowLimits::default(),
    )
    .unwrap();
    let first = reader.next_part().await.unwrap().unwrap();
    assert_eq!(first.data.as_ref(), b"first part");
    let err = reader.next_part().await.unwrap_err();
    assert!(matches!(err, StowError::Truncated), "{err:?}");
}

#[tokio::test]
async fn limits_apply_to_parts_and_to_the_whole_body() {
    let big = vec![7u8; 10_000];
    let parts: [(Option<&str>, &[u8]); 2] = [(None, b"small"), (None, &big)];
    let err = read_all(
        "multipart/related; boundary=q",
        body("q", &parts, "\r\n"),
        1000,
        StowLimits {
            max_total_bytes: 1 << 20,
            max_part_bytes: 5_000,
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, StowError::PartTooLarge { limit: 5_000 }),
        "{err:?}"
    );
    let err = read_all(
        "multipart/related; boundary=q",
        body("q", &parts, "\r\n"),
        1000,
        StowLimits {
            max_total_bytes: 8_000,
            max_part_bytes: 1 << 20,
        },
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, StowError::BodyTooLarge { limit: 8_000 }),
        "{err:?}"
    );
}

#[test]
fn status_codes_are_those_of_ps3_18_table_i_2_2() {
    let codes: Vec<u16> = [
        FailureReason::OutOfResources,
        FailureReason::DataSetDoesNotMatchSopClass,
        FailureReason::CannotUnderstand,
        FailureReason::TransferSyntaxNotSupported,
        FailureReason::ProcessingFailure,
        FailureReason::SopClassNotSupported,
    ]
    .iter()
    .map(|r| r.code())
    .collect();
    assert_eq!(codes, [0xA700, 0xA900, 0xC000, 0xC122, 0x0110, 0x0122]);
    assert_eq!(WarningReason::CoercionOfDataElements.code(), 0xB000);
    assert_eq!(WarningReason::ElementsDiscarded.code(), 0xB006);
    assert_eq!(WarningReason::DataSetDoesNotMatchSopClass.code(), 0xB007);
}

#[test]
fn response_json_follows_table_10_5_3_2() {
    let mut response = StowResponse::new(Some("https://h/dicom-web/studies/1.2".into()));
    assert_eq!(response.http_status(), 409);
    response.stored(
        "1.2.840.10008.5.1.4.1.1.2",
        "1.2.3",
        "https://h/dicom-web/studies/1.2/series/4/instances/1.2.3",
        None,
    );
    assert_eq!(response.http_status(), 200);
    response.failed(None, None, FailureReason::CannotUnderstand);
    assert_eq!(response.http_status(), 202);
    assert_eq!(
        response.to_json(),
        json!({
            "00081190": {"vr": "UR", "Value": ["https://h/dicom-web/studies/1.2"]},
            "00081198": {"vr": "SQ", "Value": [
                {"00081197": {"vr": "US", "Value": [49152]}}
            ]},
            "00081199": {"vr": "SQ", "Value": [{
                "00081150": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.2"]},
                "00081155": {"vr": "UI", "Value": ["1.2.3"]},
                "00081190": {"vr": "UR", "Value": ["https://h/dicom-web/studies/1.2/series/4/instances/1.2.3"]}
            }]}
        })
    );
    let mut warned = StowResponse::new(None);
    warned.stored(
        "1.2",
        "1.3",
        "u",
        Some(WarningReason::CoercionOfDataElements),
    );
    assert_eq!(warned.http_status(), 202);
    assert_eq!(
        warned.to_json()["00081199"]["Value"][0]["00081196"]["Value"][0],
        0xB000
    );
}
