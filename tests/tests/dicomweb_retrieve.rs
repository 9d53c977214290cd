//! WADO-RS retrieval with the independent Python `dicomweb-client` (and
//! pydicom as the reference decoder): Retrieve Frames (PS3.18 §10.4.1.1.4)
//! in every negotiated form, bulk data of compressed pixel data and inside
//! sequences (§10.4.1.1.5), multipart boundaries that never occur in the
//! payload (§8.7.1.2), transfer syntax negotiation of instances
//! (§8.7.3.5.2), HEAD and refused `application/dicom+xml` (§8.7), and
//! QIDO-RS paging with the "additional results" warning (§8.3.4.4).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use fusion_schemas::Role;
use fusion_tests::dicom::{multipart, read, stow_content_type};
use fusion_tests::{TestApp, repo_root, run_tool_async, spawn_app};
use serde_json::{Value, json};

const CT: &str = "pydicom-3.0.2/test_files/CT_small.dcm";
const MR: &str = "pydicom-3.0.2/test_files/MR_small.dcm";
const MR_J2K: &str = "pydicom-3.0.2/test_files/MR_small_jp2klossless.dcm";
const MR_JLS: &str = "pydicom-3.0.2/test_files/MR_small_jpeg_ls_lossless.dcm";
const RLE_2FRAMES: &str = "pydicom-3.0.2/test_files/SC_rgb_rle_16bit_2frame.dcm";
const JPEG_30FRAMES: &str = "pydicom-3.0.2/test_files/examples_ybr_color.dcm";
const ECG: &str = "pydicom-3.0.2/test_files/waveform_ecg.dcm";
const BOUNDARY: &str = "test-boundary-4f1d2c";
const EXPLICIT_LE: &str = "1.2.840.10008.1.2.1";

struct Uids {
    study: String,
    series: String,
    sop: String,
}

fn uids(bytes: &[u8]) -> Uids {
    let i = fusion_imaging::parse(bytes).unwrap();
    Uids {
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

/// An app with the files stored through STOW-RS by an integration key,
/// which then reads them back: (app, key id, key secret).
async fn app_with(bytes: &[Vec<u8>]) -> (TestApp, String, String) {
    let app = spawn_app().await;
    let (id, secret) = app.api_key("pacs", Role::Integration).await;
    let parts: Vec<(&str, &[u8])> = bytes
        .iter()
        .map(|b| ("application/dicom", b.as_slice()))
        .collect();
    let res = app
        .client
        .post(app.url("/dicom-web/studies"))
        .basic_auth(&id, Some(&secret))
        .header("Content-Type", stow_content_type(BOUNDARY))
        .body(multipart(BOUNDARY, &parts))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    (app, id, secret)
}

/// Runs the dicomweb-client tool with `calls`; returns its result per call.
async fn client(app: &TestApp, id: &str, secret: &str, calls: &Value) -> Vec<Value> {
    let base = format!("{}/dicom-web", app.address);
    let (ok, out) = run_tool_async(
        "dicomweb_retrieve_check.py",
        &[&base, id, secret, &calls.to_string()],
    )
    .await;
    assert!(ok, "dicomweb-client tool failed: {out}");
    let line = out.lines().rev().find(|l| l.starts_with('[')).unwrap();
    serde_json::from_str(line).unwrap()
}

fn instance_path(u: &Uids) -> String {
    format!(
        "/dicom-web/studies/{}/series/{}/instances/{}",
        u.study, u.series, u.sop
    )
}

fn frames_call(u: &Uids, frames: &[u32], media_types: Value) -> Value {
    json!({"op": "frames", "study": u.study, "series": u.series, "sop": u.sop,
           "frames": frames, "media_types": media_types})
}

/// Retrieve Frames, before: 404 for every media type. After: as stored
/// (JPEG 2000, RLE, JPEG baseline fragments split per frame, JPEG-LS) and
/// uncompressed `application/octet-stream` (decoded; equal to pydicom's
/// decoding), in the order asked; compressed types the instance is not in
/// answer 406, frames beyond Number of Frames 404.
#[tokio::test]
async fn dicomweb_client_retrieves_frames_as_stored_and_uncompressed() {
    let files = [CT, MR_J2K, RLE_2FRAMES, JPEG_30FRAMES];
    let bytes: Vec<Vec<u8>> = files.iter().map(|f| read(f)).collect();
    let (app, id, secret) = app_with(&bytes).await;
    let (ct, j2k, rle, jpeg) = (
        uids(&bytes[0]),
        uids(&bytes[1]),
        uids(&bytes[2]),
        uids(&bytes[3]),
    );
    let calls = json!([
        // 0–3: references from pydicom.
        {"op": "pydicom_frames", "path": local(MR)},
        {"op": "pydicom_encapsulated", "path": local(MR_J2K)},
        {"op": "pydicom_frames", "path": local(RLE_2FRAMES)},
        {"op": "pydicom_encapsulated", "path": local(JPEG_30FRAMES)},
        // 4: dicomweb-client's default (type="*/*"): as stored.
        frames_call(&j2k, &[1], Value::Null),
        // 5: uncompressed.
        frames_call(&j2k, &[1], json!(["application/octet-stream"])),
        // 6: the stored type, named.
        frames_call(&j2k, &[1], json!([["image/jp2", "1.2.840.10008.1.2.4.90"]])),
        // 7: RLE frames 2 then 1, decoded.
        frames_call(&rle, &[2, 1], json!([["application/octet-stream", EXPLICIT_LE]])),
        // 8: JPEG frames 30, 1 and 15 as stored.
        frames_call(&jpeg, &[30, 1, 15], json!(["image/jpeg"])),
        // 9: a native instance.
        frames_call(&ct, &[1], Value::Null),
        {"op": "pydicom_frames", "path": local(CT)},
        // 11: a compressed type the instance is not stored in.
        frames_call(&j2k, &[1], json!(["image/jpeg"])),
        // 12: no frame 3.
        frames_call(&rle, &[3], Value::Null),
    ]);
    let r = client(&app, &id, &secret, &calls).await;
    let mr_pixels = &r[0][0];
    let j2k_stored = &r[1][0];
    assert_eq!(r[4], json!([j2k_stored]), "as stored");
    assert_eq!(r[5], json!([mr_pixels]), "decoded J2K = the native MR");
    assert_eq!(r[6], json!([j2k_stored]));
    assert_eq!(r[7], json!([r[2][1], r[2][0]]), "RLE decoded as pydicom");
    assert_eq!(r[8], json!([r[3][29], r[3][0], r[3][14]]), "JPEG frames");
    assert_eq!(r[9], json!([r[10][0]]), "native CT frame");
    assert_eq!(r[11], json!({"error": "HTTP 406"}));
    assert_eq!(r[12], json!({"error": "HTTP 404"}));

    // The part headers name media type and transfer syntax; the 406 lists
    // what is available.
    let res = app
        .client
        .get(app.url(&format!("{}/frames/1", instance_path(&j2k))))
        .basic_auth(&id, Some(&secret))
        .header(
            "Accept",
            "multipart/related; type=\"application/octet-stream\"; transfer-syntax=*",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let ct_header = res.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct_header.starts_with("multipart/related; type=\"image/jp2\""));
    let body = res.bytes().await.unwrap();
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("Content-Type: image/jp2; transfer-syntax=1.2.840.10008.1.2.4.90"));
    let res = app
        .client
        .get(app.url(&format!("{}/frames/1", instance_path(&ct))))
        .basic_auth(&id, Some(&secret))
        .header("Accept", "multipart/related; type=\"image/jls\"")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 406);
    let refusal: Value = res.json().await.unwrap();
    assert_eq!(
        refusal["available"],
        json!([format!(
            "multipart/related; type=\"application/octet-stream\"; transfer-syntax={EXPLICIT_LE}"
        )])
    );
    for bad in ["0", "1,x", ""] {
        let res = app
            .client
            .get(app.url(&format!("{}/frames/{bad}", instance_path(&ct))))
            .basic_auth(&id, Some(&secret))
            .send()
            .await
            .unwrap();
        assert!(
            [400, 404].contains(&res.status().as_u16()),
            "{bad}: {}",
            res.status()
        );
    }
}

/// JPEG-LS frames pass through as `image/jls` whatever the build; decoded
/// (with the `jpeg-ls` feature, as `scripts/test` builds) they equal the
/// native MR.
#[tokio::test]
async fn jpeg_ls_frames_pass_through_as_image_jls() {
    let bytes = vec![read(MR_JLS)];
    let (app, id, secret) = app_with(&bytes).await;
    let jls = uids(&bytes[0]);
    let calls = json!([
        {"op": "pydicom_encapsulated", "path": local(MR_JLS)},
        {"op": "pydicom_frames", "path": local(MR)},
        frames_call(&jls, &[1], json!(["image/jls"])),
        frames_call(&jls, &[1], json!(["application/octet-stream"])),
    ]);
    let r = client(&app, &id, &secret, &calls).await;
    assert_eq!(r[2], r[0]);
    let record = app
        .state
        .repository
        .instance(&fusion_schemas::SopInstanceUid::parse(&jls.sop).unwrap())
        .await
        .unwrap()
        .unwrap();
    if record.decode_status == fusion_store::DecodeStatus::Failed {
        assert_eq!(r[3], json!({"error": "HTTP 406"}), "JPEG-LS not built in");
    } else {
        assert_eq!(r[3], r[1]);
    }
}

fn bulk_uris(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            if let Some(Value::String(uri)) = m.get("BulkDataURI") {
                out.push(uri.clone());
            }
            m.values().for_each(|x| bulk_uris(x, out));
        }
        Value::Array(a) => a.iter().for_each(|x| bulk_uris(x, out)),
        _ => {}
    }
}

/// Every BulkDataURI the metadata hands out resolves. Before: `…/bulk/7FE00010`
/// of a compressed instance answered 404, and URIs inside sequences had
/// no route. After: compressed pixel data comes back as stored (one part
/// per frame) or decoded, and a waveform inside a sequence comes back with
/// its bytes.
#[tokio::test]
async fn every_bulk_data_uri_of_the_metadata_resolves() {
    let files = [CT, MR_J2K, RLE_2FRAMES, ECG];
    let bytes: Vec<Vec<u8>> = files.iter().map(|f| read(f)).collect();
    let (app, id, secret) = app_with(&bytes).await;
    let mut calls = vec![
        json!({"op": "pydicom_encapsulated", "path": local(MR_J2K)}),
        json!({"op": "pydicom_frames", "path": local(MR)}),
    ];
    let mut uris = Vec::new();
    for b in &bytes {
        let res = app
            .client
            .get(app.url(&format!("{}/metadata", instance_path(&uids(b)))))
            .basic_auth(&id, Some(&secret))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let meta: Value = res.json().await.unwrap();
        bulk_uris(&meta, &mut uris);
    }
    assert!(
        uris.iter().any(|u| u.ends_with("/54000100/0/54001010")),
        "a bulk data URI inside the waveform sequence: {uris:?}"
    );
    let j2k_pixels = uris
        .iter()
        .position(|u| u.contains(&uids(&bytes[1]).sop) && u.ends_with("/7FE00010"))
        .unwrap();
    for u in &uris {
        calls.push(json!({"op": "bulk", "url": u, "media_types": null}));
    }
    calls.push(
        json!({"op": "bulk", "url": uris[j2k_pixels], "media_types": ["application/octet-stream"]}),
    );
    let r = client(&app, &id, &secret, &json!(calls)).await;
    for (u, got) in uris.iter().zip(&r[2..]) {
        assert!(got.is_array(), "{u}: {got}");
    }
    assert_eq!(r[2 + j2k_pixels], r[0], "compressed pixel data as stored");
    assert_eq!(r.last().unwrap(), &r[1], "decoded pixel data");
    // The waveform's bytes equal the element's value.
    let ecg = fusion_imaging::read(&bytes[3]).unwrap();
    let seq = ecg
        .element(dicom_dictionary_std::tags::WAVEFORM_SEQUENCE)
        .unwrap();
    let item = &seq.items().unwrap()[0];
    let data = item
        .element(dicom_dictionary_std::tags::WAVEFORM_DATA)
        .unwrap()
        .to_bytes()
        .unwrap();
    let i = uris
        .iter()
        .position(|u| u.ends_with("/54000100/0/54001010"))
        .unwrap();
    assert_eq!(r[2 + i][0]["len"], json!(data.len()));
}

/// The multipart boundary is drawn per response and never occurs in a
/// part. Before: the fixed boundary `fusion-bulk` inside stored pixel data
/// cut the bulk data short for a client that splits on the delimiter
/// (dicomweb-client). After: the value comes back whole.
#[tokio::test]
async fn stored_bytes_that_contain_the_old_boundary_come_back_whole() {
    let mut ct = read(CT);
    let at = ct.len() - 200;
    let marker = b"\r\n--fusion-bulk--\r\n--fusion-bulk\r\n";
    ct[at..at + marker.len()].copy_from_slice(marker);
    let (app, id, secret) = app_with(std::slice::from_ref(&ct)).await;
    let u = uids(&ct);
    let pixels = fusion_imaging::read(&ct)
        .unwrap()
        .element(dicom_dictionary_std::tags::PIXEL_DATA)
        .unwrap()
        .to_bytes()
        .unwrap()
        .into_owned();
    let expected = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&pixels))
    };
    let url = format!("{}{}/bulk/7FE00010", app.address, instance_path(&u));
    let calls = json!([
        {"op": "bulk", "url": url, "media_types": null},
        frames_call(&u, &[1], json!(["application/octet-stream"])),
    ]);
    let r = client(&app, &id, &secret, &calls).await;
    assert_eq!(r[0], json!([{"len": pixels.len(), "sha256": expected}]));
    assert_eq!(r[1], r[0]);
    let mut boundaries = Vec::new();
    for _ in 0..2 {
        let res = app
            .client
            .get(&url)
            .basic_auth(&id, Some(&secret))
            .send()
            .await
            .unwrap();
        let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
        let boundary = ct.split("boundary=").nth(1).unwrap().to_owned();
        assert!(boundary.len() <= 70);
        boundaries.push(boundary);
    }
    assert_ne!(boundaries[0], boundaries[1]);
}

/// Transfer syntax negotiation of instance retrieval. Before: no
/// transfer-syntax (or Explicit VR Little Endian) on a compressed instance
/// returned the compressed bytes with 200. After: they are transcoded to
/// Explicit VR Little Endian (pixel data decoded: equal to pydicom's
/// decoding; YBR JPEG becomes RGB); `transfer-syntax=*` sends them as
/// stored; another compressed syntax is 406 naming what is available.
#[tokio::test]
async fn instances_are_transcoded_or_refused_as_negotiated() {
    let files = [MR_J2K, RLE_2FRAMES, JPEG_30FRAMES];
    let bytes: Vec<Vec<u8>> = files.iter().map(|f| read(f)).collect();
    let (app, id, secret) = app_with(&bytes).await;
    let (j2k, rle, jpeg) = (uids(&bytes[0]), uids(&bytes[1]), uids(&bytes[2]));
    let inst = |u: &Uids, media: Value| json!({"op": "instance", "study": u.study, "series": u.series, "sop": u.sop, "media_types": media});
    let calls = json!([
        {"op": "pydicom_file", "path": local(MR)},
        {"op": "pydicom_file", "path": local(MR_J2K)},
        {"op": "pydicom_frames", "path": local(RLE_2FRAMES)},
        // No transfer-syntax parameter: the default, Explicit VR LE.
        inst(&j2k, json!(["application/dicom"])),
        inst(&j2k, json!([["application/dicom", EXPLICIT_LE]])),
        // dicomweb-client's default is ("application/dicom", "*"): as stored.
        inst(&j2k, Value::Null),
        inst(&j2k, json!([["application/dicom", "1.2.840.10008.1.2.4.50"]])),
        inst(&rle, json!(["application/dicom"])),
        inst(&jpeg, json!([["application/dicom", EXPLICIT_LE]])),
        {"op": "pydicom_pixels", "path": local(RLE_2FRAMES)},
    ]);
    let r = client(&app, &id, &secret, &calls).await;
    for i in [3, 4] {
        assert_eq!(r[i]["transfer_syntax"], EXPLICIT_LE);
        assert_eq!(
            r[i]["pixel_sha256"], r[0]["pixel_sha256"],
            "lossless J2K = native MR"
        );
    }
    assert_eq!(r[5], r[1], "as stored");
    assert_eq!(r[6], json!({"error": "HTTP 406"}));
    assert_eq!(r[7]["transfer_syntax"], EXPLICIT_LE);
    assert_eq!(r[7]["photometric"], "RGB");
    assert_eq!(r[7]["pixel_len"], json!(2 * 60000));
    assert_eq!(
        r[7]["pixel_sha256"], r[9]["sha256"],
        "RLE decoded as pydicom"
    );
    assert_eq!(r[8]["transfer_syntax"], EXPLICIT_LE);
    assert_eq!(r[8]["photometric"], "RGB");
    let record = fusion_imaging::parse(&bytes[2]).unwrap();
    let obj = record.object();
    let rows = obj
        .element(dicom_dictionary_std::tags::ROWS)
        .unwrap()
        .to_int::<u32>()
        .unwrap();
    let cols = obj
        .element(dicom_dictionary_std::tags::COLUMNS)
        .unwrap()
        .to_int::<u32>()
        .unwrap();
    assert_eq!(r[8]["pixel_len"], json!(30 * rows * cols * 3));

    let res = app
        .client
        .get(app.url(&instance_path(&j2k)))
        .basic_auth(&id, Some(&secret))
        .header(
            "Accept",
            "multipart/related; type=\"application/dicom\"; transfer-syntax=1.2.840.10008.1.2.4.50",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 406);
    let refusal: Value = res.json().await.unwrap();
    let available: Vec<&str> = refusal["available"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        available.iter().any(|a| a.ends_with(EXPLICIT_LE)),
        "{available:?}"
    );
    assert!(
        available
            .iter()
            .any(|a| a.ends_with("1.2.840.10008.1.2.4.90")),
        "{available:?}"
    );
}

/// HEAD answers the headers of GET without a body (before: 404/405), and
/// `application/dicom+xml` is refused with 406 (before: JSON with 200).
#[tokio::test]
async fn head_works_and_dicom_xml_is_refused() {
    let bytes = vec![read(CT)];
    let (app, id, secret) = app_with(&bytes).await;
    let u = uids(&bytes[0]);
    let metadata = app.url(&format!("{}/metadata", instance_path(&u)));
    let get = app
        .client
        .get(&metadata)
        .basic_auth(&id, Some(&secret))
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 200);
    let get_len = get.bytes().await.unwrap().len();
    let head = app
        .client
        .head(&metadata)
        .basic_auth(&id, Some(&secret))
        .send()
        .await
        .unwrap();
    assert_eq!(head.status(), 200);
    assert_eq!(head.headers()["content-type"], "application/dicom+json");
    assert_eq!(
        head.headers()["content-length"].to_str().unwrap(),
        get_len.to_string()
    );
    assert!(head.bytes().await.unwrap().is_empty());
    for path in [
        "/dicom-web/studies".to_owned(),
        format!("/dicom-web/studies/{}/series", u.study),
        format!("{}/frames/1", instance_path(&u)),
        instance_path(&u),
    ] {
        let res = app
            .client
            .head(app.url(&path))
            .basic_auth(&id, Some(&secret))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "HEAD {path}");
    }
    for (path, accept, status) in [
        (metadata.clone(), "application/dicom+xml", 406),
        (
            metadata.clone(),
            "multipart/related; type=\"application/dicom+xml\"",
            406,
        ),
        (app.url("/dicom-web/studies"), "application/dicom+xml", 406),
        (
            app.url("/dicom-web/studies"),
            "application/dicom+xml, application/dicom+json; q=0.5",
            200,
        ),
        (app.url("/dicom-web/studies"), "application/json", 200),
    ] {
        let res = app
            .client
            .get(&path)
            .basic_auth(&id, Some(&secret))
            .header("Accept", accept)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), status, "{accept} {path}");
    }
}

/// A copy of `bytes` with its SOP Instance UID's last three digits set to
/// `n` (100–999): same length, so every element stays well formed.
fn with_sop_suffix(bytes: &[u8], sop: &str, n: u32) -> Vec<u8> {
    let new = format!("{}{n:03}", &sop[..sop.len() - 3]);
    let mut out = bytes.to_vec();
    let (old, new) = (sop.as_bytes(), new.as_bytes());
    let mut i = 0;
    while i + old.len() <= out.len() {
        if &out[i..i + old.len()] == old {
            out[i..i + old.len()].copy_from_slice(new);
            i += old.len();
        } else {
            i += 1;
        }
    }
    out
}

/// Paging (PS3.18 §8.3.4.4). Before: a search without `limit` stopped at
/// 100 results with no sign. After: all 120 come back; a limit that cuts
/// the result carries `Warning: 299 {host}: "There are additional results
/// that can be requested"`, and dicomweb-client pages to the end.
#[tokio::test]
async fn searches_return_every_match_and_warn_when_a_limit_cuts() {
    let ct = read(CT);
    let u = uids(&ct);
    let bytes: Vec<Vec<u8>> = (100..220)
        .map(|n| with_sop_suffix(&ct, &u.sop, n))
        .collect();
    let (app, id, secret) = app_with(&bytes).await;
    let search = |query: &str| {
        app.client
            .get(app.url(&format!("/dicom-web/studies/{}/instances{query}", u.study)))
            .basic_auth(&id, Some(&secret))
            .send()
    };
    let res = search("").await.unwrap();
    assert!(res.headers().get("warning").is_none());
    assert_eq!(res.json::<Vec<Value>>().await.unwrap().len(), 120);
    let res = search("?limit=50").await.unwrap();
    let warning = res.headers()["warning"].to_str().unwrap().to_owned();
    let host = app.address.trim_start_matches("http://");
    assert_eq!(
        warning,
        format!("299 {host}: \"There are additional results that can be requested\"")
    );
    assert_eq!(res.json::<Vec<Value>>().await.unwrap().len(), 50);
    let res = search("?limit=50&offset=100").await.unwrap();
    assert!(res.headers().get("warning").is_none());
    assert_eq!(res.json::<Vec<Value>>().await.unwrap().len(), 20);
    let r = client(
        &app,
        &id,
        &secret,
        &json!([{"op": "search_instances", "study": u.study, "limit": 50}]),
    )
    .await;
    assert_eq!(r[0].as_array().unwrap().len(), 120);
}

/// Match keys a search does not apply are refused, never ignored (before:
/// `studies?StudyID=…` and `series?SeriesDescription=…` returned every
/// record with 200); `*` alone is universal matching (PS3.4 §C.2.2.2.3).
#[tokio::test]
async fn unsupported_match_keys_are_refused_and_star_matches_all() {
    let bytes = vec![read(CT)];
    let (app, id, secret) = app_with(&bytes).await;
    let u = uids(&bytes[0]);
    let get = |path: String| {
        app.client
            .get(app.url(&path))
            .basic_auth(&id, Some(&secret))
            .send()
    };
    for (path, key) in [
        ("/dicom-web/studies?Foo=1".to_owned(), "Foo"),
        (
            "/dicom-web/studies?PerformedProcedureStepStartDate=20200101".to_owned(),
            "PerformedProcedureStepStartDate",
        ),
        (
            format!("/dicom-web/studies/{}/series?StudyID=x", u.study),
            "StudyID",
        ),
        (
            format!("/dicom-web/studies/{}/instances?PatientID=x", u.study),
            "PatientID",
        ),
    ] {
        let res = get(path.clone()).await.unwrap();
        assert_eq!(res.status(), 400, "{path}");
        let body: Value = res.json().await.unwrap();
        assert!(
            body["message"].as_str().unwrap().contains(key),
            "{path}: {body}"
        );
    }
    for path in [
        "/dicom-web/studies?PatientID=*".to_owned(),
        "/dicom-web/studies?AccessionNumber=*&PatientName=*".to_owned(),
    ] {
        let res = get(path.clone()).await.unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let found: Vec<Value> = res.json().await.unwrap();
        assert_eq!(found.len(), 1, "{path}");
    }
    // StudyDescription matches, with wildcards (before: ignored).
    let description = fusion_imaging::parse(&bytes[0])
        .unwrap()
        .object()
        .element(dicom_dictionary_std::tags::STUDY_DESCRIPTION)
        .map(|e| e.to_str().unwrap().trim().to_owned())
        .unwrap_or_default();
    assert_eq!(description, "e+1", "CT_small's StudyDescription");
    for (query, n) in [
        ("StudyDescription=e%2B1".to_owned(), 1),
        ("StudyDescription=e%2B*".to_owned(), 1),
        ("StudyDescription=e%3F1".to_owned(), 1),
        ("StudyDescription=NO%20SUCH%20STUDY".to_owned(), 0),
    ] {
        let res = get(format!("/dicom-web/studies?{query}")).await.unwrap();
        assert_eq!(res.status(), 200, "{query}");
        let found: Vec<Value> = res.json().await.unwrap();
        assert_eq!(found.len(), n, "{query}");
    }
    let res = get("/dicom-web/studies?includefield=NoSuchField".to_owned())
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(
        res.headers()["warning"]
            .to_str()
            .unwrap()
            .contains("NoSuchField")
    );
}

/// The required study keys of PS3.18 Table 10.6.1-5 that were ignored
/// (before: `studies?StudyID=NOPE` returned every study) now match:
/// StudyID, StudyTime (ranges), ReferringPhysicianName; and
/// SeriesDescription for series.
#[tokio::test]
async fn study_and_series_keys_match_as_table_10_6_1_5_requires() {
    let bytes = vec![read(CT)];
    let (app, id, secret) = app_with(&bytes).await;
    let u = uids(&bytes[0]);
    // CT_small: StudyID "1CT1", StudyTime "072730", no referring physician
    // or series description.
    let cases = [
        ("/dicom-web/studies?StudyID=1CT1".to_owned(), 1),
        ("/dicom-web/studies?StudyID=1C*".to_owned(), 1),
        ("/dicom-web/studies?StudyID=NOPE".to_owned(), 0),
        ("/dicom-web/studies?StudyTime=07".to_owned(), 1),
        ("/dicom-web/studies?StudyTime=070000-073000".to_owned(), 1),
        ("/dicom-web/studies?StudyTime=0728-".to_owned(), 0),
        ("/dicom-web/studies?StudyTime=-0727".to_owned(), 1),
        (
            "/dicom-web/studies?ReferringPhysicianName=NOPE*".to_owned(),
            0,
        ),
        ("/dicom-web/studies?ReferringPhysicianName=*".to_owned(), 1),
        (
            format!(
                "/dicom-web/studies/{}/series?SeriesDescription=NOPE",
                u.study
            ),
            0,
        ),
        (
            format!("/dicom-web/studies/{}/series?SeriesDescription=*", u.study),
            1,
        ),
    ];
    for (path, n) in cases {
        let res = app
            .client
            .get(app.url(&path))
            .basic_auth(&id, Some(&secret))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let found: Vec<Value> = res.json().await.unwrap();
        assert_eq!(found.len(), n, "{path}");
    }
    let res = app
        .client
        .get(app.url("/dicom-web/studies?StudyTime=7am"))
        .basic_auth(&id, Some(&secret))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}

/// Cross-study searches `GET /series` and `GET /instances` (PS3.18
/// §10.6.1; before: 404), as dicomweb-client's `search_for_series()` and
/// `search_for_instances()` without a study call them.
#[tokio::test]
async fn cross_study_series_and_instance_searches() {
    let bytes = vec![read(CT), read(MR)];
    let (app, id, secret) = app_with(&bytes).await;
    let (ct, mr) = (uids(&bytes[0]), uids(&bytes[1]));
    assert_ne!(ct.study, mr.study);
    let r = client(&app, &id, &secret, &json!([{"op": "search_all"}])).await;
    let mut series = vec![ct.series.clone(), mr.series.clone()];
    series.sort();
    let mut sops = vec![ct.sop.clone(), mr.sop.clone()];
    sops.sort();
    assert_eq!(r[0], json!({"series": series, "instances": sops}));
    for (path, n) in [
        (
            format!("/dicom-web/series?StudyInstanceUID={}", ct.study),
            1,
        ),
        (format!("/dicom-web/instances?SOPInstanceUID={}", mr.sop), 1),
        ("/dicom-web/series?Modality=MR".to_owned(), 1),
        ("/dicom-web/instances?limit=1".to_owned(), 1),
    ] {
        let res = app
            .client
            .get(app.url(&path))
            .basic_auth(&id, Some(&secret))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
        let found: Vec<Value> = res.json().await.unwrap();
        assert_eq!(found.len(), n, "{path}");
    }
    // Another key holder sees none of them.
    let (other, other_secret) = app.api_key("other-pacs", Role::Integration).await;
    let res = app
        .client
        .get(app.url("/dicom-web/instances"))
        .basic_auth(&other, Some(&other_secret))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert!(res.json::<Vec<Value>>().await.unwrap().is_empty());
    let res = app
        .client
        .get(app.url("/dicom-web/instances?PatientName=x"))
        .basic_auth(&id, Some(&secret))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}
