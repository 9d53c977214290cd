//! DICOMweb conformance of issue #15 items 7–10, with the independent
//! Python `dicomweb-client` (and pydicom as the reference) on the shared
//! catalogue's files:
//!
//! - STOW-RS responses (PS3.18 §10.5.3, Table 10.5.3-2): every Failed SOP
//!   Sequence item names the instance when its UIDs can be read; UIDs
//!   written as UN with NUL padding and data sets followed by padding are
//!   stored; refused instances are audited as failed transfers.
//! - The links the service hands out (RetrieveURL, BulkDataURI; §10.5.3,
//!   §10.6.3, §F.2.6) follow a configured public base URL, and forwarded
//!   headers only from trusted proxies.
//! - QIDO-RS `includefield` at study level (§10.6.3.3, Table 10.6.3-3).
//! - Rendered resources (§10.4.1.1.3, §8.3.5.1): JPEG and PNG, viewport
//!   and quality, series and study, a segmented palette (PS3.3 §C.7.9).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use base64::Engine as _;
use fusion_schemas::Role;
use fusion_store::{AuditEventType, AuditFilter, AuditOutcome};
use fusion_tests::dicom::{multipart, parse_multipart, read, stow_content_type};
use fusion_tests::{TestApp, repo_root, run_tool_async, spawn_app, spawn_app_with};
use serde_json::{Value, json};

const CT: &str = "pydicom-3.0.2/test_files/CT_small.dcm";
const MR: &str = "pydicom-3.0.2/test_files/MR_small.dcm";
const PALETTE: &str = "pydicom-3.0.2/test_files/examples_palette.dcm";
const BOUNDARY: &str = "conformance-boundary-7a1c";

struct Uids {
    class: String,
    study: String,
    series: String,
    sop: String,
}

fn uids(file: &str) -> Uids {
    let i = fusion_imaging::parse(&read(file)).unwrap();
    Uids {
        class: i.sop_class_uid().to_owned(),
        study: i.study_instance_uid().to_string(),
        series: i.series_instance_uid().to_string(),
        sop: i.sop_instance_uid().to_string(),
    }
}

fn local(file: &str) -> String {
    repo_root()
        .join(".test-data/dicom")
        .join(file)
        .display()
        .to_string()
}

/// Runs the conformance tool with `calls` (and extra request headers).
async fn client(
    app: &TestApp,
    key: &(String, String),
    calls: &Value,
    headers: &Value,
) -> Vec<Value> {
    let base = format!("{}/dicom-web", app.address);
    let (ok, out) = run_tool_async(
        "dicomweb_conformance_check.py",
        &[
            &base,
            &key.0,
            &key.1,
            &calls.to_string(),
            &headers.to_string(),
        ],
    )
    .await;
    assert!(ok, "dicomweb-client tool failed: {out}");
    let line = out.lines().rev().find(|l| l.starts_with('[')).unwrap();
    serde_json::from_str(line).unwrap()
}

/// A raw STOW-RS request of `parts`: (status, response JSON).
async fn stow_raw(app: &TestApp, key: &(String, String), parts: &[(&str, &[u8])]) -> (u16, Value) {
    let res = app
        .client
        .post(app.url("/dicom-web/studies"))
        .basic_auth(&key.0, Some(&key.1))
        .header("Content-Type", stow_content_type(BOUNDARY))
        .body(multipart(BOUNDARY, parts))
        .send()
        .await
        .unwrap();
    (res.status().as_u16(), res.json().await.unwrap())
}

fn items<'a>(response: &'a Value, tag: &str) -> &'a [Value] {
    response[tag]["Value"].as_array().map_or(&[], Vec::as_slice)
}

fn first(item: &Value, tag: &str) -> Value {
    item[tag]["Value"][0].clone()
}

/// STOW-RS Failed SOP Sequence (PS3.18 §10.5.3, Table 10.5.3-2), before:
/// an instance refused at parsing had neither UID in its item, and only
/// conflicts were audited. After: dicomweb-client's store_instances() of
/// an MR posted to a CT's study gets A900 with the MR's SOP Class and
/// Instance UIDs; a CT cut inside its data set gets C000 with the UIDs of
/// its file meta; a part that is not DICOM gets C000 alone; and each of
/// the three is an audit event 110104 "stow-rs", action C, outcome 4, its
/// Failure Reason in the description.
#[tokio::test]
async fn failed_sop_sequence_names_refused_instances_and_refusals_are_audited() {
    let app = spawn_app().await;
    let key = app.api_key("pacs", Role::Integration).await;
    let (ct, mr) = (uids(CT), uids(MR));
    let r = client(
        &app,
        &key,
        &json!([{"op": "store", "study": ct.study,
                 "files": [{"path": local(CT)}, {"path": local(MR)}]}]),
        &json!({}),
    )
    .await;
    let response = &r[0];
    let stored = items(response, "00081199");
    assert_eq!(stored.len(), 1, "{response}");
    assert_eq!(first(&stored[0], "00081155"), json!(ct.sop));
    let failed = items(response, "00081198");
    assert_eq!(failed.len(), 1, "{response}");
    assert_eq!(first(&failed[0], "00081150"), json!(mr.class));
    assert_eq!(first(&failed[0], "00081155"), json!(mr.sop));
    assert_eq!(first(&failed[0], "00081197"), json!(0xA900));

    // Cut inside the data set: the file meta still names the instance.
    let ct_bytes = read(CT);
    // Inside the value of Study Instance UID (0020,000D), at byte 2208.
    let cut = &ct_bytes[..2210];
    let (status, response) = stow_raw(
        &app,
        &key,
        &[("application/dicom", cut), ("text/plain", b"not DICOM")],
    )
    .await;
    assert_eq!(status, 409, "{response}");
    let failed = items(&response, "00081198");
    assert_eq!(failed.len(), 2, "{response}");
    assert_eq!(first(&failed[0], "00081150"), json!(ct.class));
    assert_eq!(first(&failed[0], "00081155"), json!(ct.sop));
    assert_eq!(first(&failed[0], "00081197"), json!(0xC000));
    assert!(failed[1].get("00081155").is_none(), "{response}");
    assert_eq!(first(&failed[1], "00081197"), json!(0xC000));

    let events = app
        .state
        .repository
        .audit_events(&AuditFilter {
            outcome: Some(AuditOutcome::MinorFailure),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let refused: Vec<_> = events
        .iter()
        .filter(|e| {
            e.record.subtype == "stow-rs"
                && e.record.event_type == AuditEventType::DicomInstancesTransferred
        })
        .collect();
    assert_eq!(refused.len(), 3, "{refused:#?}");
    // The MR (A900), the cut CT (C000), the text part (C000), in whatever
    // order their parts finished.
    let find = |needle: &str, sop: Option<&str>| {
        refused
            .iter()
            .find(|e| {
                let desc = e.record.outcome_desc.as_deref().unwrap_or_default();
                desc.contains(needle)
                    && sop.is_none_or(|s| e.record.entities.iter().any(|x| x.id == s))
            })
            .unwrap_or_else(|| panic!("no refusal {needle} {sop:?}: {refused:#?}"))
    };
    let mr_event = find("A900", Some(&mr.sop));
    assert!(mr_event.record.entities.iter().any(|x| x.id == mr.study));
    find("C000", Some(&ct.sop));
    let text = find("not application/dicom", None);
    assert!(text.record.entities.is_empty());
    assert!(refused.iter().all(|e| e.record.agent.name == "pacs"));
}

/// UIDs written as UN with NUL padding (PS3.5 §6.2.2) and trailing
/// padding bytes. Before: the UN SOP Instance UID read as a list of byte
/// values and the instance was refused (A900); NUL bytes after the data
/// set made the parser fail (C000). After: dicomweb-client stores the
/// instance, the response and the index carry the UID without its padding,
/// its metadata names it as UI; the padded CT is stored and read back
/// byte for byte, padding included.
#[tokio::test]
async fn nul_padded_un_uids_and_trailing_padding_are_stored() {
    let app = spawn_app().await;
    let key = app.api_key("pacs", Role::Integration).await;
    let mr = uids(MR);
    let r = client(
        &app,
        &key,
        &json!([
            {"op": "store", "files": [{"path": local(MR), "sop_uids_as_un": true}]},
            {"op": "instance_metadata", "study": mr.study, "series": mr.series, "sop": mr.sop},
            {"op": "search_instances", "filters": {"SOPInstanceUID": mr.sop}},
        ]),
        &json!({}),
    )
    .await;
    let stored = items(&r[0], "00081199");
    assert_eq!(stored.len(), 1, "{}", r[0]);
    assert_eq!(first(&stored[0], "00081155"), json!(mr.sop));
    assert_eq!(first(&stored[0], "00081150"), json!(mr.class));
    let url = first(&stored[0], "00081190");
    assert!(url.as_str().unwrap().ends_with(&mr.sop), "{url}");
    assert_eq!(r[1]["00080018"], json!({"vr": "UI", "Value": [mr.sop]}));
    assert_eq!(r[2].as_array().unwrap().len(), 1, "{}", r[2]);

    let ct = uids(CT);
    let mut padded = read(CT);
    padded.extend_from_slice(&[0u8; 64]);
    let (status, response) = stow_raw(&app, &key, &[("application/dicom", &padded)]).await;
    assert_eq!(status, 200, "{response}");
    let res = app
        .client
        .get(app.url(&format!(
            "/dicom-web/studies/{}/series/{}/instances/{}",
            ct.study, ct.series, ct.sop
        )))
        .basic_auth(&key.0, Some(&key.1))
        .header(
            "Accept",
            "multipart/related; type=\"application/dicom\"; transfer-syntax=*",
        )
        .send()
        .await
        .unwrap();
    let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
    let parts = parse_multipart(&content_type, &res.bytes().await.unwrap());
    assert!(parts[0] == padded, "the bytes are kept as sent");
}

/// The study of every RetrieveURL and BulkDataURI in a STOW-RS answer,
/// a study search and an instance's metadata.
async fn links(app: &TestApp, key: &(String, String), headers: &Value) -> Vec<String> {
    let ct = uids(CT);
    let r = client(
        app,
        key,
        &json!([
            {"op": "store", "files": [{"path": local(CT)}]},
            {"op": "search_studies", "filters": {"StudyInstanceUID": ct.study}},
            {"op": "instance_metadata", "study": ct.study, "series": ct.series, "sop": ct.sop},
        ]),
        headers,
    )
    .await;
    let mut out = vec![
        first(&items(&r[0], "00081199")[0], "00081190")
            .as_str()
            .unwrap()
            .to_owned(),
        first(&r[1][0], "00081190").as_str().unwrap().to_owned(),
    ];
    out.push(r[2]["7FE00010"]["BulkDataURI"].as_str().unwrap().to_owned());
    out
}

/// Behind a reverse proxy (issue #15 item 10). Before: the links took the
/// scheme and host from the request (X-Forwarded-Proto/Host believed from
/// anyone) and dropped X-Forwarded-Prefix; dicomweb-client, which sends
/// `Host` without the port, got links without it. After: a configured
/// `public_base_url` starts every link, and they resolve; without one, the
/// forwarded headers count only from a `trusted_proxies` address, prefix
/// and port included; from anyone else they are ignored.
#[tokio::test]
async fn links_follow_the_public_base_url_and_trusted_proxies_only() {
    let forwarded = json!({
        "X-Forwarded-Proto": "https",
        "X-Forwarded-Host": "pacs.example.org",
        "X-Forwarded-Port": "8443",
        "X-Forwarded-Prefix": "/imaging",
    });
    let app = spawn_app_with(|s| {
        s.public_base_url = Some("https://fusion.example.org/site-a/".into());
    })
    .await;
    let key = app.api_key("pacs", Role::Integration).await;
    for link in links(&app, &key, &forwarded).await {
        assert!(
            link.starts_with("https://fusion.example.org/site-a/dicom-web/studies/"),
            "{link}"
        );
    }

    let app = spawn_app_with(|s| s.trusted_proxies = "10.0.0.0/8, 127.0.0.1".into()).await;
    let key = app.api_key("pacs", Role::Integration).await;
    for link in links(&app, &key, &forwarded).await {
        assert!(
            link.starts_with("https://pacs.example.org:8443/imaging/dicom-web/studies/"),
            "{link}"
        );
    }

    // From anyone else the headers are ignored: the links take the Host
    // header as sent, which dicomweb-client sends without the port.
    let app = spawn_app().await;
    let key = app.api_key("pacs", Role::Integration).await;
    let found = links(&app, &key, &forwarded).await;
    assert!(
        found
            .iter()
            .all(|l| l.starts_with("http://127.0.0.1/dicom-web/studies/")),
        "{found:?}"
    );

    // So the service says where it is: then every link resolves.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let app = spawn_app_with(|s| {
        s.bind = format!("127.0.0.1:{port}").parse().unwrap();
        s.public_base_url = Some(format!("http://127.0.0.1:{port}"));
    })
    .await;
    let key = app.api_key("pacs", Role::Integration).await;
    let found = links(&app, &key, &forwarded).await;
    let own = format!("{}/dicom-web/studies/", app.address);
    assert!(found.iter().all(|l| l.starts_with(&own)), "{found:?}");
    let calls: Vec<Value> = found
        .iter()
        .map(|u| json!({"op": "get", "url": u}))
        .collect();
    for r in client(&app, &key, &json!(calls), &json!({})).await {
        assert_eq!(r["status"], 200, "{r}");
    }
}

/// QIDO-RS `includefield` at study level (PS3.18 §10.6.3.3, Table
/// 10.6.3-3). Before: `includefield=all` returned the attributes of one of
/// the study's instances (SOP Instance UID, Rows, Modality, …). After:
/// only Patient and Study attributes, TimezoneOffsetFromUTC when present,
/// and the computed ModalitiesInStudy, NumberOfStudyRelatedSeries and
/// -Instances; a named instance attribute is left out with a Warning.
#[tokio::test]
async fn includefield_all_at_study_level_returns_study_attributes_only() {
    let app = spawn_app().await;
    let key = app.api_key("pacs", Role::Integration).await;
    let ct = uids(CT);
    let r = client(
        &app,
        &key,
        &json!([
            {"op": "store", "files": [{"path": local(CT)}, {"path": local(MR)}]},
            {"op": "search_studies", "fields": ["all"], "filters": {"StudyInstanceUID": ct.study}},
            {"op": "search_studies", "fields": ["StudyDescription", "Rows", "00080201"],
             "filters": {"StudyInstanceUID": ct.study}},
        ]),
        &json!({}),
    )
    .await;
    let study = r[1][0].as_object().unwrap();
    // Patient and Study attributes (those the file has), and the computed.
    let allowed = [
        "00080005", "00080020", "00080030", "00080050", "00080056", "00080061", "00080090",
        "00080201", "00081030", "00081190", "00100010", "00100020", "00100030", "00100040",
        "0020000D", "00200010", "00201206", "00201208",
    ];
    let extra: Vec<&String> = study
        .keys()
        .filter(|k| !allowed.contains(&k.as_str()))
        .collect();
    assert!(
        extra.is_empty(),
        "not study attributes: {extra:?} in {}",
        r[1]
    );
    for k in [
        "00080061", "00081190", "00201206", "00201208", "0020000D", "00100020", "00080201",
    ] {
        assert!(study.contains_key(k), "{k} missing from {}", r[1]);
    }
    assert_eq!(study["00080201"]["Value"][0], "-0500");
    assert_eq!(study["00080061"]["Value"], json!(["CT"]));
    assert_eq!(study["00201208"]["Value"][0], 1);
    let named = r[2][0].as_object().unwrap();
    assert_eq!(named["00081030"]["Value"][0], "e+1");
    assert_eq!(named["00080201"]["Value"][0], "-0500");
    assert!(!named.contains_key("00280010"), "{}", r[2]);

    let res = app
        .client
        .get(app.url(&format!(
            "/dicom-web/studies?StudyInstanceUID={}&includefield=Rows",
            ct.study
        )))
        .basic_auth(&key.0, Some(&key.1))
        .send()
        .await
        .unwrap();
    let warning = res.headers()["warning"].to_str().unwrap().to_owned();
    assert!(
        warning.starts_with("299 ") && warning.contains("00280010"),
        "{warning}"
    );
}

fn decode_jpeg(bytes: &[u8]) -> (u16, u16, Vec<u8>) {
    let mut decoder = jpeg_decoder::Decoder::new(bytes);
    let pixels = decoder.decode().unwrap();
    let info = decoder.info().unwrap();
    (info.width, info.height, pixels)
}

fn decode_png(bytes: &[u8]) -> (u32, u32, Vec<u8>) {
    let decoder = png::Decoder::new(std::io::Cursor::new(bytes.to_vec()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    (info.width, info.height, buf)
}

fn body(result: &Value) -> Vec<u8> {
    let text = result["base64"]
        .as_str()
        .unwrap_or_else(|| panic!("{result}"));
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .unwrap()
}

/// The parts of a multipart body whose boundary is its first line.
fn parts_of(body: &[u8]) -> Vec<Vec<u8>> {
    let line = body.split(|&b| b == b'\r').next().unwrap();
    let boundary = String::from_utf8_lossy(&line[2..]).to_string();
    parse_multipart(&format!("multipart/related; boundary={boundary}"), body)
}

/// Rendered resources (PS3.18 §10.4.1.1.3, §8.3.5.1). Before: PNG only
/// (`Accept: image/jpeg` 406), no series or study resource (404), no
/// viewport or quality, a segmented palette 422. After, through
/// dicomweb-client: JPEG by default, PNG and GIF on request (the first two
/// equal within JPEG's error), `image/jp2` 406; `viewport` scales keeping the aspect ratio and
/// `quality` trades size; a series of two instances is a multipart of two
/// JPEGs, and so is its study; a single-image Accept on it is 406; a
/// segmented palette renders exactly as pydicom expands and applies it.
#[tokio::test]
async fn rendered_jpeg_png_viewport_series_study_and_segmented_palette() {
    let app = spawn_app().await;
    let key = app.api_key("pacs", Role::Integration).await;
    let (ct, mr) = (uids(CT), uids(MR));
    let second_mr = format!("{}.2", &mr.sop[..mr.sop.len().min(60)]);
    let scratch = tempfile::tempdir().unwrap();
    let segmented = scratch.path().join("palette-segmented.dcm");
    let segmented = segmented.to_str().unwrap();
    let reference = client(
        &app,
        &key,
        &json!([{"op": "pydicom_palette_rgb", "path": local(PALETTE), "out": segmented},
                {"op": "pydicom_palette_rgb", "path": local(PALETTE)}]),
        &json!({}),
    )
    .await;
    assert_eq!(
        reference[0]["sha256"], reference[1]["sha256"],
        "segmenting keeps the table"
    );
    let palette = fusion_imaging::parse(&std::fs::read(segmented).unwrap()).unwrap();
    let (pal_series, pal_sop) = (
        palette.series_instance_uid().to_string(),
        palette.sop_instance_uid().to_string(),
    );
    let pal_study = palette.study_instance_uid().to_string();
    let instance = |u: &Uids, media: Value, params: Value| {
        json!({"op": "rendered", "level": "instance", "study": u.study, "series": u.series,
               "sop": u.sop, "media_types": media, "params": params})
    };
    let r = client(
        &app,
        &key,
        &json!([
            {"op": "store", "files": [{"path": local(CT)}, {"path": local(MR)},
                                      {"path": local(MR), "new_sop_uid": second_mr},
                                      {"path": segmented}]},
            instance(&ct, Value::Null, Value::Null),
            instance(&ct, json!(["image/png"]), Value::Null),
            instance(&ct, Value::Null, json!({"viewport": "64,32"})),
            instance(&ct, json!(["image/jpeg"]), json!({"quality": 10})),
            {"op": "rendered", "level": "series", "study": mr.study, "series": mr.series},
            {"op": "rendered", "level": "series", "study": mr.study, "series": mr.series,
             "media_types": ["image/jpeg"]},
            {"op": "rendered", "level": "study", "study": mr.study},
            {"op": "rendered", "level": "instance", "study": pal_study, "series": pal_series,
             "sop": pal_sop, "media_types": ["image/png"]},
            instance(&ct, json!(["image/gif"]), Value::Null),
            instance(&ct, json!(["image/jp2"]), Value::Null),
        ]),
        &json!({}),
    )
    .await;
    assert_eq!(items(&r[0], "00081199").len(), 4, "{}", r[0]);
    // JPEG by default, PNG on request: the same image within JPEG's error.
    let jpeg = body(&r[1]);
    assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
    let (w, h, jpeg_pixels) = decode_jpeg(&jpeg);
    let (pw, ph, png_pixels) = decode_png(&body(&r[2]));
    assert_eq!((u32::from(w), u32::from(h)), (pw, ph));
    assert_eq!((pw, ph), (128, 128));
    let mean_error = jpeg_pixels
        .iter()
        .zip(&png_pixels)
        .map(|(a, b)| f64::from(a.abs_diff(*b)))
        .sum::<f64>()
        / png_pixels.len() as f64;
    assert!(mean_error < 2.0, "mean error {mean_error}");
    // 128 × 128 into 64 × 32: 32 × 32.
    let (w, h, _) = decode_jpeg(&body(&r[3]));
    assert_eq!((w, h), (32, 32));
    assert!(body(&r[4]).len() < jpeg.len() / 2, "quality 10 is smaller");
    // The series: two JPEGs; a single image cannot stand for it.
    let series = parts_of(&body(&r[5]));
    assert_eq!(series.len(), 2);
    assert!(series.iter().all(|p| decode_jpeg(p).0 == 64));
    assert_eq!(r[6], json!({"error": "HTTP 406"}));
    assert_eq!(parts_of(&body(&r[7])).len(), 2, "the MR study holds two");
    // The segmented palette, as pydicom applies it.
    let (w, h, rgb) = decode_png(&body(&r[8]));
    assert_eq!(reference[0]["shape"], json!([h, w, 3]));
    assert_eq!(
        json!(hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&rgb))),
        reference[0]["sha256"]
    );
    // GIF (required by PS3.18 Table 8.7.4-1): 128 × 128, 256 grey levels.
    let gif = body(&r[9]);
    assert_eq!(&gif[..6], b"GIF89a");
    assert_eq!((gif[6], gif[7], gif[8], gif[9]), (128, 0, 128, 0));
    assert_eq!(r[10], json!({"error": "HTTP 406"}));

    // The accept query parameter (PS3.18 §8.3.3.1) stands for the header,
    // as a browser's <img> needs.
    let res = app
        .client
        .get(app.url(&format!(
            "/dicom-web/studies/{}/series/{}/instances/{}/rendered?accept=image%2Fpng",
            ct.study, ct.series, ct.sop
        )))
        .basic_auth(&key.0, Some(&key.1))
        .header("Accept", "image/jpeg")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "image/png");

    // Bad parameters are refused, not ignored.
    for query in [
        "viewport=0,10",
        "quality=101",
        "annotation=patient",
        "window=40",
    ] {
        let res = app
            .client
            .get(app.url(&format!(
                "/dicom-web/studies/{}/series/{}/instances/{}/rendered?{query}",
                ct.study, ct.series, ct.sop
            )))
            .basic_auth(&key.0, Some(&key.1))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 400, "{query}");
    }
}
