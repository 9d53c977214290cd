//! DICOMweb over HTTP on real files: STOW-RS (status codes and failure
//! reasons of PS3.18 §10.5.3 and Table I.2-2), QIDO-RS matching, WADO-RS
//! byte-identical retrieval, metadata and rendered images, read-back limits
//! of integration clients, and the audit events each writes.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;

use fusion_schemas::Role;
use fusion_store::{AuditEventType, AuditFilter};
use fusion_tests::dicom::{
    CatalogueRow, catalogue, multipart, parse_multipart, read, stow_content_type, values,
};
use fusion_tests::{TestApp, spawn_app, spawn_app_with};
use serde_json::Value;

const CT: &str = "pydicom-3.0.2/test_files/CT_small.dcm";
const MR: &str = "pydicom-3.0.2/test_files/MR_small.dcm";
const CR: &str = "pydicom-data-1.0.0/data_store/data/RG1_UNCR.dcm";
const TRUNCATED: &str = "pydicom-3.0.2/test_files/MR_truncated.dcm";
const BAD_J2K: &str = "pydicom-3.0.2/test_files/JPEG2000-embedded-sequence-delimiter.dcm";
const TWO_FRAMES: &str = "pydicom-3.0.2/test_files/SC_rgb_rle_16bit_2frame.dcm";
/// 73 characters with '-', like Orthanc's (longer than RFC 2046's 70).
const BOUNDARY: &str = "fusion-test-boundary-0123456789abcdef-0123456789abcdef-0123456789abcdefX";

struct Client {
    auth: (String, String),
}

impl Client {
    async fn new(app: &TestApp, name: &str) -> Self {
        let (id, secret) = app.api_key(name, Role::Integration).await;
        Self { auth: (id, secret) }
    }

    fn req(&self, app: &TestApp, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        app.client
            .request(method, app.url(path))
            .basic_auth(&self.auth.0, Some(&self.auth.1))
    }

    async fn stow(&self, app: &TestApp, path: &str, parts: &[(&str, &[u8])]) -> (u16, Value) {
        let res = self
            .req(app, reqwest::Method::POST, path)
            .header("Content-Type", stow_content_type(BOUNDARY))
            .header("Accept", "application/dicom+json")
            .body(multipart(BOUNDARY, parts))
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn get(&self, app: &TestApp, path: &str) -> reqwest::Response {
        self.req(app, reqwest::Method::GET, path)
            .send()
            .await
            .unwrap()
    }
}

fn dicom(files: &[&str]) -> Vec<Vec<u8>> {
    files.iter().map(|f| read(f)).collect()
}

fn parts(bytes: &[Vec<u8>]) -> Vec<(&str, &[u8])> {
    bytes
        .iter()
        .map(|b| ("application/dicom", b.as_slice()))
        .collect()
}

fn failure_reasons(body: &Value) -> Vec<u64> {
    values(body, "00081198")
        .iter()
        .map(|item| item["00081197"]["Value"][0].as_u64().unwrap())
        .collect()
}

fn stored_uids(body: &Value) -> Vec<String> {
    values(body, "00081199")
        .iter()
        .map(|item| item["00081155"]["Value"][0].as_str().unwrap().to_owned())
        .collect()
}

fn uid_of(file: &str) -> String {
    let instance = fusion_imaging::parse(&read(file)).unwrap();
    instance.sop_instance_uid().to_string()
}

/// Every decodable catalogued file that is a storable instance goes through
/// STOW-RS, is found by QIDO-RS, comes back byte-identical from WADO-RS, and
/// renders to a PNG of its size. Files that share a SOP Instance UID (the
/// same image in several transfer syntaxes) go to separate, fresh services.
#[tokio::test]
async fn every_decodable_catalogue_file_round_trips() {
    let mut waves: Vec<Vec<(CatalogueRow, String)>> = Vec::new();
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut not_instances = 0;
    for row in catalogue() {
        if row.get("decode_ok") != "yes" {
            continue;
        }
        let Ok(instance) = fusion_imaging::parse(&row.bytes()) else {
            not_instances += 1;
            continue;
        };
        let uid = instance.sop_instance_uid().to_string();
        let wave = seen.entry(uid.clone()).or_insert(0);
        if waves.len() <= *wave {
            waves.push(Vec::new());
        }
        waves[*wave].push((row, uid));
        *wave += 1;
    }
    let total: usize = waves.iter().map(Vec::len).sum();
    assert!(total >= 70, "{total} storable decodable files");
    eprintln!(
        "{total} files in {} waves; {not_instances} not storable instances",
        waves.len()
    );
    for wave in waves {
        let app = spawn_app().await;
        let pacs = Client::new(&app, "pacs").await;
        let viewer = app.session_for("viewer", Role::Clinician).await;
        let bytes: Vec<Vec<u8>> = wave.iter().map(|(r, _)| r.bytes()).collect();
        let (status, body) = pacs.stow(&app, "/dicom-web/studies", &parts(&bytes)).await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(stored_uids(&body).len(), wave.len());
        for ((row, uid), sent) in wave.iter().zip(&bytes) {
            let file = row.get("file");
            let item = values(&body, "00081199")
                .into_iter()
                .find(|i| i["00081155"]["Value"][0] == uid.as_str())
                .unwrap();
            let url = item["00081190"]["Value"][0].as_str().unwrap();
            let path = url.split_once("/dicom-web").unwrap().1;
            let study = path.split('/').nth(2).unwrap();
            // QIDO-RS finds it.
            let res = app
                .client
                .get(app.url(&format!(
                    "/dicom-web/studies/{study}/instances?SOPInstanceUID={uid}"
                )))
                .bearer_auth(&viewer)
                .send()
                .await
                .unwrap();
            let found: Vec<Value> = res.json().await.unwrap();
            assert_eq!(found.len(), 1, "{file}");
            // WADO-RS returns the same bytes when asked for them as stored
            // (transfer-syntax=*, PS3.18 §8.7.3.5.2).
            let res = app
                .client
                .get(app.url(&format!("/dicom-web{path}")))
                .bearer_auth(&viewer)
                .header(
                    "Accept",
                    "multipart/related; type=\"application/dicom\"; transfer-syntax=*",
                )
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200, "{file}");
            let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
            let got = parse_multipart(&ct, &res.bytes().await.unwrap());
            assert_eq!(got.len(), 1, "{file}");
            assert!(got[0] == *sent, "{file}: WADO-RS bytes differ");
            // /rendered gives a PNG of the image's size when asked.
            let res = app
                .client
                .get(app.url(&format!("/dicom-web{path}/rendered")))
                .bearer_auth(&viewer)
                .header("Accept", "image/png")
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200, "{file}: {}", res.text().await.unwrap());
            assert_eq!(res.headers()["content-type"], "image/png");
            let png = res.bytes().await.unwrap();
            let decoder = png::Decoder::new(std::io::Cursor::new(png.to_vec()));
            let info = decoder.read_info().unwrap();
            let (w, h) = (info.info().width, info.info().height);
            assert_eq!(h.to_string(), row.get("rows"), "{file}: rows");
            assert_eq!(w.to_string(), row.get("cols"), "{file}: columns");
        }
    }
}

#[tokio::test]
async fn a_broken_instance_fails_alone_with_its_reason() {
    let app = spawn_app().await;
    let pacs = Client::new(&app, "pacs").await;
    let files = dicom(&[CT, TRUNCATED, MR]);
    let mut p = parts(&files);
    p.push(("text/plain", b"not DICOM at all".as_slice()));
    let (status, body) = pacs.stow(&app, "/dicom-web/studies", &p).await;
    assert_eq!(status, 202, "some stored, some failed: {body}");
    assert_eq!(stored_uids(&body), [uid_of(CT), uid_of(MR)]);
    // Cannot understand (C000) for the truncated file and the text part.
    assert_eq!(failure_reasons(&body), [0xC000, 0xC000]);

    // No part at all: a malformed request.
    let res = pacs
        .req(&app, reqwest::Method::POST, "/dicom-web/studies")
        .header("Content-Type", stow_content_type(BOUNDARY))
        .body(format!("--{BOUNDARY}--\r\n"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);

    // None stored: 409.
    let files = dicom(&[TRUNCATED]);
    let (status, body) = pacs.stow(&app, "/dicom-web/studies", &parts(&files)).await;
    assert_eq!(status, 409);
    assert_eq!(failure_reasons(&body), [0xC000]);
}

#[tokio::test]
async fn an_undecodable_instance_is_stored_and_flagged_not_renderable() {
    let app = spawn_app().await;
    let pacs = Client::new(&app, "pacs").await;
    let files = dicom(&[BAD_J2K]);
    let (status, body) = pacs.stow(&app, "/dicom-web/studies", &parts(&files)).await;
    assert_eq!(status, 200, "{body}");
    let uid = fusion_schemas::SopInstanceUid::parse(&uid_of(BAD_J2K)).unwrap();
    let record = app.state.repository.instance(&uid).await.unwrap().unwrap();
    assert_eq!(record.decode_status, fusion_store::DecodeStatus::Failed);
    assert!(record.decode_reason.is_some());
    let viewer = app.session_for("viewer", Role::Clinician).await;
    let url = values(&body, "00081199")[0]["00081190"]["Value"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .client
        .get(format!("{url}/rendered"))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 422);
    let err: Value = res.json().await.unwrap();
    assert_eq!(err["code"], "not_renderable");
}

#[tokio::test]
async fn stow_refuses_wrong_media_types_and_other_studies() {
    let app = spawn_app().await;
    let pacs = Client::new(&app, "pacs").await;
    let ct = read(CT);
    for content_type in [
        "application/dicom".to_owned(),
        "multipart/related; boundary=abc".to_owned(),
        "multipart/related; type=\"application/dicom+json\"; boundary=abc".to_owned(),
        "application/json".to_owned(),
    ] {
        let res = pacs
            .req(&app, reqwest::Method::POST, "/dicom-web/studies")
            .header("Content-Type", &content_type)
            .body(ct.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 415, "{content_type}");
    }
    // The type parameter may come unquoted.
    let res = pacs
        .req(&app, reqwest::Method::POST, "/dicom-web/studies")
        .header(
            "Content-Type",
            format!("multipart/related; type=application/dicom; boundary={BOUNDARY}"),
        )
        .body(multipart(BOUNDARY, &[("application/dicom", &ct)]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // An instance of another study posted to /studies/{uid} fails alone.
    let ct_study = fusion_imaging::parse(&ct)
        .unwrap()
        .study_instance_uid()
        .to_string();
    let files = dicom(&[CT, MR]);
    let (status, body) = pacs
        .stow(
            &app,
            &format!("/dicom-web/studies/{ct_study}"),
            &parts(&files),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(stored_uids(&body), [uid_of(CT)]);
    assert_eq!(failure_reasons(&body), [0xA900]);
    let study_url = values(&body, "00081190")[0].as_str().unwrap();
    assert!(study_url.ends_with(&format!("/dicom-web/studies/{ct_study}")));
}

#[tokio::test]
async fn a_truncated_body_keeps_the_complete_instances() {
    let app = spawn_app().await;
    let pacs = Client::new(&app, "pacs").await;
    let files = dicom(&[CT, MR]);
    let mut body = multipart(BOUNDARY, &parts(&files));
    body.truncate(files[0].len() + 200 + files[1].len() / 2);
    let res = pacs
        .req(&app, reqwest::Method::POST, "/dicom-web/studies")
        .header("Content-Type", stow_content_type(BOUNDARY))
        .body(body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 202);
    let json: Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    assert_eq!(stored_uids(&json), [uid_of(CT)]);
    assert_eq!(failure_reasons(&json), [0xC000]);
}

#[tokio::test]
async fn an_oversize_body_is_refused_and_earlier_instances_stay() {
    let app = spawn_app_with(|s| s.stow_max_bytes = 60_000).await;
    let pacs = Client::new(&app, "pacs").await;
    let files = dicom(&[CT, MR, CT]);
    // With a Content-Length over the limit: refused before reading.
    let body = multipart(BOUNDARY, &parts(&files));
    assert!(body.len() > 60_000);
    let res = pacs
        .req(&app, reqwest::Method::POST, "/dicom-web/studies")
        .header("Content-Type", stow_content_type(BOUNDARY))
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 413);
    // Chunked, as Orthanc sends: the parts within the limit are stored, the
    // rest fails as Out of Resources (A700).
    let stream = futures::stream::iter(
        body.chunks(8192)
            .map(|c| Ok::<_, std::io::Error>(bytes::Bytes::copy_from_slice(c)))
            .collect::<Vec<_>>(),
    );
    let res = pacs
        .req(&app, reqwest::Method::POST, "/dicom-web/studies")
        .header("Content-Type", stow_content_type(BOUNDARY))
        .body(reqwest::Body::wrap_stream(stream))
        .send()
        .await
        .unwrap();
    let status = res.status();
    let json: Value = serde_json::from_str(&res.text().await.unwrap()).unwrap();
    assert_eq!(status, 202, "{json}");
    assert_eq!(stored_uids(&json), [uid_of(CT), uid_of(MR)]);
    assert_eq!(failure_reasons(&json), [0xA700]);
}

#[tokio::test]
async fn resending_is_idempotent_and_different_bytes_conflict() {
    let app = spawn_app().await;
    let pacs = Client::new(&app, "pacs").await;
    let ct = read(CT);
    let (status, _) = pacs
        .stow(&app, "/dicom-web/studies", &[("application/dicom", &ct)])
        .await;
    assert_eq!(status, 200);
    let (status, body) = pacs
        .stow(&app, "/dicom-web/studies", &[("application/dicom", &ct)])
        .await;
    assert_eq!(status, 200, "the same bytes again succeed: {body}");
    // Same SOP Instance UID, other bytes (one byte of the preamble changed).
    let mut other = ct.clone();
    other[0] ^= 0xFF;
    let (status, body) = pacs
        .stow(&app, "/dicom-web/studies", &[("application/dicom", &other)])
        .await;
    assert_eq!(status, 409);
    assert_eq!(failure_reasons(&body), [0x0111]);
    let uid = fusion_schemas::SopInstanceUid::parse(&uid_of(CT)).unwrap();
    assert_eq!(app.state.repository.conflict_count(&uid).await.unwrap(), 1);
    // The first bytes stay.
    let record = app.state.repository.instance(&uid).await.unwrap().unwrap();
    assert_eq!(record.blob_key, fusion_store::BlobKey::of(&ct));
}

async fn qido(app: &TestApp, token: &str, query: &str) -> (u16, Value) {
    let res = app
        .client
        .get(app.url(&format!("/dicom-web/studies{query}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

fn study_uids(results: &Value) -> Vec<String> {
    results
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["0020000D"]["Value"][0].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn qido_matches_as_ps3_4_prescribes() {
    let app = spawn_app().await;
    let pacs = Client::new(&app, "pacs").await;
    let files = dicom(&[CT, MR, CR]);
    let (status, _) = pacs.stow(&app, "/dicom-web/studies", &parts(&files)).await;
    assert_eq!(status, 200);
    let viewer = app.session_for("viewer", Role::Clinician).await;
    let study = |f: &str| {
        fusion_imaging::parse(&read(f))
            .unwrap()
            .study_instance_uid()
            .to_string()
    };
    let attrs =
        |f: &str| fusion_imaging::index_attributes(&fusion_imaging::parse(&read(f)).unwrap());
    let cr = attrs(CR);
    let ct = attrs(CT);

    let (status, all) = qido(&app, &viewer, "").await;
    assert_eq!(status, 200);
    assert_eq!(all.as_array().unwrap().len(), 3);
    let (_, r) = qido(&app, &viewer, "?ModalitiesInStudy=CR").await;
    assert_eq!(study_uids(&r), [study(CR)]);
    let one = &r[0];
    assert_eq!(values(one, "00080061")[0], "CR");
    assert_eq!(values(one, "00201208")[0], 1);
    assert_eq!(values(one, "00201206")[0], 1);
    assert!(
        values(one, "00081190")[0]
            .as_str()
            .unwrap()
            .ends_with(&study(CR))
    );

    let name = cr.patient_name.clone().unwrap();
    let prefix: String = name.chars().take(2).collect();
    let (_, r) = qido(
        &app,
        &viewer,
        &format!("?PatientName={}*", prefix.to_lowercase()),
    )
    .await;
    assert!(study_uids(&r).contains(&study(CR)), "{r}");
    let id = ct.patient_id.clone().unwrap();
    let (_, r) = qido(&app, &viewer, &format!("?00100020={id}")).await;
    assert_eq!(study_uids(&r), [study(CT)], "tag form of PatientID");
    let date = ct.study_date.clone().unwrap();
    let (_, r) = qido(
        &app,
        &viewer,
        &format!("?StudyDate={date}-{date}&ModalitiesInStudy=CT"),
    )
    .await;
    assert_eq!(study_uids(&r), [study(CT)]);
    let (_, r) = qido(
        &app,
        &viewer,
        &format!("?StudyInstanceUID={},{}", study(CT), study(MR)),
    )
    .await;
    assert_eq!(r.as_array().unwrap().len(), 2);
    let (_, r) = qido(&app, &viewer, "?limit=2&offset=2").await;
    assert_eq!(r.as_array().unwrap().len(), 1);
    let (status, r) = qido(&app, &viewer, "?PatientID=NOBODY").await;
    assert_eq!((status, r), (200, serde_json::json!([])));
    let (status, _) = qido(&app, &viewer, "?StudyDate=yesterday").await;
    assert_eq!(status, 400);
    // includefield adds study attributes beyond the defaults; an
    // instance attribute (Rows) is not one (issue #15 item 7).
    let (_, r) = qido(
        &app,
        &viewer,
        &format!(
            "?StudyInstanceUID={}&includefield=00080201&includefield=00280010",
            study(CT)
        ),
    )
    .await;
    assert!(r[0].get("00080201").is_some(), "{r}");
    assert!(r[0].get("00280010").is_none(), "{r}");
    let (_, r) = qido(&app, &viewer, &format!("?StudyInstanceUID={}", study(CT))).await;
    assert!(r[0].get("00080201").is_none());

    // Series and instances of a study.
    let res = app
        .client
        .get(app.url(&format!(
            "/dicom-web/studies/{}/series?Modality=CT",
            study(CT)
        )))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    let series: Value = res.json().await.unwrap();
    assert_eq!(series.as_array().unwrap().len(), 1);
    assert_eq!(values(&series[0], "00201209")[0], 1);

    // Every query is audited once, naming the patients it returned.
    let events = app
        .state
        .repository
        .audit_events(&AuditFilter::default())
        .await
        .unwrap();
    let queries: Vec<_> = events
        .iter()
        .filter(|e| e.record.event_type == AuditEventType::Query)
        .collect();
    // Ten study searches and one series search; the refused bad date is not a query.
    assert_eq!(queries.len(), 11);
    assert_eq!(queries[0].record.patient_ids.len(), {
        let mut p: Vec<String> = [CT, MR, CR]
            .iter()
            .filter_map(|f| attrs(f).patient_id.map(|p| p.to_string()))
            .collect();
        p.sort();
        p.dedup();
        p.len()
    });
    // Every stored instance is audited as transferred, with its patient.
    let transfers: Vec<_> = events
        .iter()
        .filter(|e| e.record.event_type == AuditEventType::DicomInstancesTransferred)
        .collect();
    assert_eq!(transfers.len(), 3);
    assert!(transfers.iter().all(|e| e.record.agent.name == "pacs"));
}

#[tokio::test]
async fn rendered_images_follow_windows_inversion_and_frames() {
    let app = spawn_app().await;
    let pacs = Client::new(&app, "pacs").await;
    let files = dicom(&[CT, TWO_FRAMES]);
    let (status, body) = pacs.stow(&app, "/dicom-web/studies", &parts(&files)).await;
    assert_eq!(status, 200, "{body}");
    let url = |i: usize| {
        values(&body, "00081199")[i]["00081190"]["Value"][0]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let viewer = app.session_for("viewer", Role::Clinician).await;
    let png = |path: String| {
        let app = &app;
        let viewer = viewer.clone();
        async move {
            let res = app
                .client
                .get(path)
                .bearer_auth(viewer)
                .send()
                .await
                .unwrap();
            (res.status().as_u16(), res.bytes().await.unwrap().to_vec())
        }
    };
    let (s1, narrow) = png(format!("{}/rendered?window=40,80", url(0))).await;
    let (s2, wide) = png(format!("{}/rendered?window=40,4000", url(0))).await;
    assert_eq!((s1, s2), (200, 200));
    assert_ne!(narrow, wide, "the window changes the image");
    let (status, _) = png(format!("{}/rendered?window=40", url(0))).await;
    assert_eq!(status, 400);
    let (status, _) = png(format!("{}/frames/2/rendered", url(1))).await;
    assert_eq!(status, 200);
    let (status, _) = png(format!("{}/frames/3/rendered", url(1))).await;
    assert_eq!(status, 422);
    // JPEG, the standard's default, is offered; JPEG 2000 is not.
    let res = app
        .client
        .get(format!("{}/rendered", url(0)))
        .bearer_auth(&viewer)
        .header("Accept", "image/jpeg")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "image/jpeg");
    let res = app
        .client
        .get(format!("{}/rendered", url(0)))
        .bearer_auth(&viewer)
        .header("Accept", "image/jp2")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 406);
}

#[tokio::test]
async fn metadata_carries_bulk_data_uris_that_resolve() {
    let app = spawn_app().await;
    let pacs = Client::new(&app, "pacs").await;
    let files = dicom(&[CT]);
    let (_, body) = pacs.stow(&app, "/dicom-web/studies", &parts(&files)).await;
    let url = values(&body, "00081199")[0]["00081190"]["Value"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let viewer = app.session_for("viewer", Role::Clinician).await;
    let res = app
        .client
        .get(format!("{url}/metadata"))
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "application/dicom+json");
    let meta: Value = res.json().await.unwrap();
    assert_eq!(values(&meta[0], "00080018")[0], uid_of(CT).as_str());
    let bulk = meta[0]["7FE00010"]["BulkDataURI"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = app
        .client
        .get(&bulk)
        .bearer_auth(&viewer)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
    let got = parse_multipart(&ct, &res.bytes().await.unwrap());
    assert_eq!(got[0].len(), 128 * 128 * 2, "CT_small pixel data, bytes");
    // WADO-RS refuses media types it cannot send.
    let res = app
        .client
        .get(&url)
        .bearer_auth(&viewer)
        .header("Accept", "application/dicom+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 406);
}

#[tokio::test]
async fn integration_clients_read_back_only_their_own_instances() {
    let app = spawn_app().await;
    let a = Client::new(&app, "pacs-a").await;
    let b = Client::new(&app, "pacs-b").await;
    let (_, ct_body) = a
        .stow(&app, "/dicom-web/studies", &parts(&dicom(&[CT])))
        .await;
    let (_, mr_body) = b
        .stow(&app, "/dicom-web/studies", &parts(&dicom(&[MR])))
        .await;
    let res = a.get(&app, "/dicom-web/studies").await;
    let seen: Value = res.json().await.unwrap();
    assert_eq!(seen.as_array().unwrap().len(), 1);
    let mr_url = values(&mr_body, "00081199")[0]["00081190"]["Value"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let path = mr_url.split_once("/dicom-web").unwrap().1.to_owned();
    assert_eq!(
        a.get(&app, &format!("/dicom-web{path}")).await.status(),
        404
    );
    assert_eq!(
        b.get(&app, &format!("/dicom-web{path}")).await.status(),
        200
    );
    let ct_url = values(&ct_body, "00081199")[0]["00081190"]["Value"][0]
        .as_str()
        .unwrap()
        .to_owned();
    let ct_path = ct_url.split_once("/dicom-web").unwrap().1.to_owned();
    assert_eq!(
        a.get(&app, &format!("/dicom-web{ct_path}/metadata"))
            .await
            .status(),
        200
    );
    // Auditors see no images at all.
    let auditor = app.session_for("auditor", Role::Auditor).await;
    let res = app
        .client
        .get(app.url("/dicom-web/studies"))
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
}

/// A NUL inside a text value (some devices write one; PostgreSQL cannot
/// store NUL in text or JSON) leaves the index without it, and the stored
/// bytes as sent.
#[tokio::test]
async fn a_nul_inside_a_text_value_is_indexed_without_it() {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;
    let app = spawn_app().await;
    let pacs = Client::new(&app, "pacs").await;
    let source = fusion_tests::dicom::read(CT);
    let mut obj = dicom_object::from_reader(std::io::Cursor::new(&source[128..])).unwrap();
    obj.put(DataElement::new(
        tags::PATIENT_NAME,
        VR::PN,
        PrimitiveValue::from("Doe\0^Jane"),
    ));
    obj.put(DataElement::new(
        tags::STUDY_DESCRIPTION,
        VR::LO,
        PrimitiveValue::from("CHEST\0CT"),
    ));
    let mut bytes = Vec::new();
    obj.write_all(&mut bytes).unwrap();
    let (status, body) = pacs
        .stow(&app, "/dicom-web/studies", &[("application/dicom", &bytes)])
        .await;
    assert_eq!(status, 200, "{body}");
    let study = fusion_imaging::index_attributes(&fusion_imaging::parse(&bytes).unwrap())
        .study_instance_uid
        .to_string();
    let res = pacs
        .get(
            &app,
            &format!("/dicom-web/studies?StudyInstanceUID={study}"),
        )
        .await;
    assert_eq!(res.status(), 200);
    let found: Value = res.json().await.unwrap();
    assert_eq!(
        found[0]["00100010"]["Value"][0]["Alphabetic"], "Doe^Jane",
        "{found:#}"
    );
    assert_eq!(found[0]["00081030"]["Value"][0], "CHESTCT");
    let sop = stored_uids(&body)[0].clone();
    let meta: Value = pacs
        .get(&app, &format!("/dicom-web/studies/{study}/metadata"))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(meta[0]["00080018"]["Value"][0], sop.as_str());
}

/// `file` with some text attributes replaced (the SOP Instance UID kept
/// unless replaced too), written as a Part 10 file.
fn rewritten(file: &str, changes: &[(dicom_core::Tag, dicom_core::VR, &str)]) -> Vec<u8> {
    use dicom_core::{DataElement, PrimitiveValue};
    let source = read(file);
    let mut obj = dicom_object::from_reader(std::io::Cursor::new(&source[128..])).unwrap();
    for (tag, vr, value) in changes {
        obj.put(DataElement::new(*tag, *vr, PrimitiveValue::from(*value)));
    }
    let mut bytes = Vec::new();
    obj.write_all(&mut bytes).unwrap();
    bytes
}

/// Issue #14, finding 6: an instance refused as a 0111 conflict (its SOP
/// Instance UID stored with other bytes) named another study, series and
/// patient. Before the fix its study and series rows were committed anyway:
/// QIDO listed a study with no instances, and the refused patient was
/// searchable. Nothing of it may stay.
#[tokio::test]
async fn a_refused_instance_leaves_no_study_series_or_patient() {
    use dicom_core::VR;
    use dicom_dictionary_std::tags;
    let app = spawn_app().await;
    let pacs = Client::new(&app, "pacs").await;
    let ct = read(CT);
    let (status, _) = pacs
        .stow(&app, "/dicom-web/studies", &[("application/dicom", &ct)])
        .await;
    assert_eq!(status, 200);
    let conflicting = rewritten(
        CT,
        &[
            (
                tags::STUDY_INSTANCE_UID,
                VR::UI,
                "1.2.826.0.1.3680043.8.498.14006",
            ),
            (
                tags::SERIES_INSTANCE_UID,
                VR::UI,
                "1.2.826.0.1.3680043.8.498.14006.1",
            ),
            (tags::PATIENT_ID, VR::LO, "REFUSED-0111"),
            (tags::PATIENT_NAME, VR::PN, "Refused^Patient"),
            (tags::ACCESSION_NUMBER, VR::SH, "ACC-REFUSED"),
        ],
    );
    // With a valid instance of its own beside it in the same request.
    let mr = read(MR);
    let (status, body) = pacs
        .stow(
            &app,
            "/dicom-web/studies",
            &[
                ("application/dicom", &conflicting),
                ("application/dicom", &mr),
            ],
        )
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(failure_reasons(&body), [0x0111]);
    let clinician = app.session_for("dr.house", Role::Clinician).await;
    let (_, all) = qido(&app, &clinician, "").await;
    // A phantom study has no instance to take its Study Instance UID from.
    let mut listed: Vec<String> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["0020000D"]["Value"][0].as_str().unwrap_or("").to_owned())
        .collect();
    listed.sort();
    let mut expected = vec![
        fusion_imaging::index_attributes(&fusion_imaging::parse(&ct).unwrap())
            .study_instance_uid
            .to_string(),
        fusion_imaging::index_attributes(&fusion_imaging::parse(&mr).unwrap())
            .study_instance_uid
            .to_string(),
    ];
    expected.sort();
    expected.dedup();
    let empty = all
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["00201208"]["Value"][0].as_i64().unwrap_or(0) == 0)
        .count();
    println!(
        "after a refused 0111 instance QIDO lists {} studies ({} of them without instances), {} expected",
        listed.len(),
        empty,
        expected.len()
    );
    assert_eq!(listed, expected, "{all:#}");
    for study in all.as_array().unwrap() {
        assert!(
            study["00201208"]["Value"][0].as_i64().unwrap() > 0,
            "{study:#}"
        );
    }
    for query in [
        "?PatientID=REFUSED-0111",
        "?PatientName=Refused*",
        "?AccessionNumber=ACC-REFUSED",
        "?StudyInstanceUID=1.2.826.0.1.3680043.8.498.14006",
    ] {
        let (status, found) = qido(&app, &clinician, query).await;
        assert_eq!(status, 200);
        assert_eq!(found.as_array().unwrap().len(), 0, "{query}: {found:#}");
    }
    let (status, series) = qido(&app, &clinician, "/1.2.826.0.1.3680043.8.498.14006/series").await;
    assert!(
        status == 404 || series.as_array().is_some_and(|s| s.is_empty()),
        "{status} {series:#}"
    );
    let mut db = app.pg().admin_of_app().await;
    let (studies, series): (i64, i64) =
        sqlx::query_as("SELECT (SELECT COUNT(*) FROM studies), (SELECT COUNT(*) FROM series)")
            .fetch_one(&mut db)
            .await
            .unwrap();
    assert_eq!(studies as usize, expected.len());
    assert_eq!(series, 2);
}

/// Issue #14, finding 7: integration client B tries to add one instance to
/// the study client A sent (same Study Instance UID, its own patient), then
/// asks QIDO-RS and `POST /cases` about it. Before the fix the instance was
/// stored, QIDO showed B the study with A's Patient Name and A's instance
/// count, and `POST /cases` with A's Study Instance UID returned A's
/// accession number and case status and let B queue predictions. B must
/// read back only what it sent, on every route.
#[tokio::test]
async fn an_integration_client_reads_nothing_of_another_senders_study() {
    use dicom_core::VR;
    use dicom_dictionary_std::tags;
    let app = spawn_app_with(|s| s.workers = 0).await;
    let a = Client::new(&app, "pacs-a").await;
    let b = Client::new(&app, "pacs-b").await;
    let ct = read(CT);
    let ct_attrs = fusion_imaging::index_attributes(&fusion_imaging::parse(&ct).unwrap());
    let study = ct_attrs.study_instance_uid.to_string();
    let a_name = ct_attrs.patient_name.clone().unwrap();
    let accession = ct_attrs.accession_number.clone().map(|a| a.to_string());
    let (status, _) = a
        .stow(&app, "/dicom-web/studies", &[("application/dicom", &ct)])
        .await;
    assert_eq!(status, 200);
    let injected_uid = "1.2.826.0.1.3680043.8.498.14007.1.1";
    let injected = rewritten(
        CT,
        &[
            (tags::SOP_INSTANCE_UID, VR::UI, injected_uid),
            (
                tags::SERIES_INSTANCE_UID,
                VR::UI,
                "1.2.826.0.1.3680043.8.498.14007.1",
            ),
            (tags::PATIENT_ID, VR::LO, "B-ONLY-1"),
            (tags::PATIENT_NAME, VR::PN, "Sender^Bee"),
        ],
    );
    // STOW-RS into A's study: refused, 0124 (Refused: Not Authorized).
    let (status, body) = b
        .stow(
            &app,
            "/dicom-web/studies",
            &[("application/dicom", &injected)],
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(failure_reasons(&body), [0x0124]);
    let seen: Value = b
        .get(&app, "/dicom-web/studies")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(seen, serde_json::json!([]));
    assert_eq!(
        b.get(&app, &format!("/dicom-web/studies/{study}/metadata"))
            .await
            .status(),
        404
    );

    // POST /cases with A's study or A's accession number: unknown to B,
    // nothing of A's case in the answer; no prediction may be queued.
    let open = |body: Value| {
        b.req(&app, reqwest::Method::POST, "/cases")
            .json(&body)
            .send()
    };
    let res = open(serde_json::json!({ "study_instance_uid": study }))
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
    let text = res.text().await.unwrap();
    if let Some(acc) = &accession {
        assert!(!text.contains(acc.as_str()), "{text}");
        let res = open(serde_json::json!({ "accession_number": acc }))
            .await
            .unwrap();
        assert_eq!(res.status(), 404);
    }
    let clinician = app.session_for("dr.chase", Role::Clinician).await;
    let cases: Value = app
        .client
        .get(app.url("/cases"))
        .bearer_auth(&clinician)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let cases = cases["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 1, "{cases:#?}");
    let case_id = cases[0]["id"].as_str().unwrap();
    let res = b
        .req(
            &app,
            reqwest::Method::POST,
            &format!("/cases/{case_id}/predictions"),
        )
        .json(&serde_json::json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404, "B queued a prediction on A's case");
    // A may.
    let res = a
        .req(&app, reqwest::Method::POST, "/cases")
        .json(&serde_json::json!({ "study_instance_uid": study }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);

    // Nor may A itself add an instance of another patient to its study: a
    // study is one patient's (C000, "the study is stored with another
    // Patient ID").
    let (status, body) = a
        .stow(
            &app,
            "/dicom-web/studies",
            &[("application/dicom", &injected)],
        )
        .await;
    assert_eq!(status, 409, "{body}");
    assert_eq!(failure_reasons(&body), [0xC000]);

    // A study that already holds two senders' instances of two patients
    // (stored before these checks, simulated by lifting the study's Patient
    // ID for the store): each sees its own instances, patient and counts
    // only.
    let set_study_patient = |patient: Option<String>| {
        let study = study.clone();
        let app = &app;
        async move {
            sqlx::query("UPDATE studies SET patient_id = $2 WHERE study_instance_uid = $1")
                .bind(study)
                .bind(patient)
                .execute(&mut app.pg().admin_of_app().await)
                .await
                .unwrap();
        }
    };
    set_study_patient(None).await;
    let (status, _) = a
        .stow(
            &app,
            "/dicom-web/studies",
            &[("application/dicom", &injected)],
        )
        .await;
    assert_eq!(status, 200);
    set_study_patient(ct_attrs.patient_id.clone().map(|p| p.to_string())).await;
    sqlx::query("UPDATE instances SET submitted_by = $1 WHERE sop_instance_uid = $2")
        .bind(&b.auth.0)
        .bind(injected_uid)
        .execute(&mut app.pg().admin_of_app().await)
        .await
        .unwrap();
    let seen: Value = b
        .get(&app, "/dicom-web/studies")
        .await
        .json()
        .await
        .unwrap();
    let seen = seen.as_array().unwrap();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0]["00201208"]["Value"][0], 1, "{seen:#?}");
    assert_eq!(seen[0]["00201206"]["Value"][0], 1);
    assert_eq!(seen[0]["00100010"]["Value"][0]["Alphabetic"], "Sender^Bee");
    let text = serde_json::to_string(&seen).unwrap();
    assert!(
        !text.contains(&a_name),
        "A's patient name reached B: {text}"
    );
    for query in [
        format!("?PatientName={}", a_name.replace('^', "%5E")),
        format!("?PatientID={}", ct_attrs.patient_id.clone().unwrap()),
    ] {
        let found: Value = b
            .get(&app, &format!("/dicom-web/studies{query}"))
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(found.as_array().unwrap().len(), 0, "{query}: {found:#}");
    }
    let series: Value = b
        .get(&app, &format!("/dicom-web/studies/{study}/series"))
        .await
        .json()
        .await
        .unwrap();
    let series = series.as_array().unwrap();
    assert_eq!(series.len(), 1, "{series:#?}");
    assert_eq!(series[0]["00201209"]["Value"][0], 1);
    assert!(!serde_json::to_string(series).unwrap().contains(&a_name));
    let seen_a: Value = a
        .get(&app, "/dicom-web/studies")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(seen_a[0]["00201208"]["Value"][0], 1);
    assert_eq!(
        seen_a[0]["00100010"]["Value"][0]["Alphabetic"],
        a_name.as_str()
    );
    // The mixed case may not be opened by either through POST /cases.
    let res = a
        .req(&app, reqwest::Method::POST, "/cases")
        .json(&serde_json::json!({ "study_instance_uid": study }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 404);
}

/// Sends `head` and `body` on a raw connection that declares
/// `content_length` (more than `body`; `None`: chunked, `body` being the
/// chunks sent), then waits: returns the status the service answers with,
/// the response text, how long it took, and whether the service closed the
/// connection after answering.
async fn stalled_request(
    app: &TestApp,
    head: &str,
    body: &[u8],
    content_length: Option<usize>,
) -> (u16, String, std::time::Duration, bool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut socket = tokio::net::TcpStream::connect(("127.0.0.1", app.port))
        .await
        .unwrap();
    let started = std::time::Instant::now();
    socket
        .write_all(
            match content_length {
                Some(n) => format!("{head}Content-Length: {n}\r\n\r\n"),
                None => format!("{head}Transfer-Encoding: chunked\r\n\r\n"),
            }
            .as_bytes(),
        )
        .await
        .unwrap();
    socket.write_all(body).await.unwrap();
    // Read until the service closes the connection (or 20 s pass).
    let mut answer = Vec::new();
    let closed = tokio::time::timeout(
        std::time::Duration::from_secs(20),
        socket.read_to_end(&mut answer),
    )
    .await
    .is_ok();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text, started.elapsed(), closed)
}

/// "A declared length larger than the bytes sent": before, the service
/// waited for the missing bytes as long as the client kept the socket open,
/// holding the connection and what it had buffered. Now a body that sends
/// nothing for `body_idle_timeout_seconds` is answered without the rest
/// (STOW-RS keeps the parts completed before the stall; a note is refused
/// with 400) and the connection is closed.
#[tokio::test]
async fn a_body_shorter_than_its_content_length_is_answered_after_the_idle_timeout() {
    let app = spawn_app_with(|s| s.body_idle_timeout_seconds = 1).await;
    let pacs = Client::new(&app, "pacs").await;
    let auth = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        format!("{}:{}", pacs.auth.0, pacs.auth.1),
    );

    // STOW-RS: one whole instance and half of a second, declared whole.
    let files = dicom(&[CT, MR]);
    let body = multipart(BOUNDARY, &parts(&files));
    let sent = files[0].len() + 200 + files[1].len() / 2;
    let head = format!(
        "POST /dicom-web/studies HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Basic {auth}\r\n\
         Accept: application/dicom+json\r\nContent-Type: {}\r\n",
        stow_content_type(BOUNDARY)
    );
    let (status, text, took, closed) =
        stalled_request(&app, &head, &body[..sent], Some(body.len())).await;
    println!(
        "STOW-RS stalled after {sent} of {} bytes: {status} after {took:?}",
        body.len()
    );
    assert_eq!(status, 202, "{text}");
    assert!(took < std::time::Duration::from_secs(10), "{took:?}");
    assert!(closed, "the connection is closed after the answer");
    let json: Value = serde_json::from_str(text.split("\r\n\r\n").nth(1).unwrap_or(""))
        .or_else(|_| {
            // A chunked answer: the JSON sits between the chunk sizes.
            let start = text.find("{\"").unwrap();
            let end = text.rfind('}').unwrap();
            serde_json::from_str(&text[start..=end])
        })
        .unwrap();
    assert_eq!(stored_uids(&json), [uid_of(CT)]);
    assert_eq!(failure_reasons(&json), [0xC000]);
    // The audit trail says why the cut part failed: the idle timeout.
    let refusals = app
        .state
        .repository
        .audit_events(&AuditFilter::default())
        .await
        .unwrap()
        .into_iter()
        .filter_map(|e| e.record.outcome_desc)
        .filter(|d| d.contains("C000"))
        .collect::<Vec<_>>();
    assert!(
        refusals
            .iter()
            .any(|d| d.contains("no request body bytes for 1 s")),
        "{refusals:?}"
    );

    // A note: 100 of 1,000 declared bytes.
    let head = format!(
        "POST /notes?accession_number=ACC-STALL-1 HTTP/1.1\r\nHost: 127.0.0.1\r\n\
         Authorization: Basic {auth}\r\nContent-Type: text/plain; charset=utf-8\r\n"
    );
    let (status, text, took, closed) = stalled_request(&app, &head, &[b'a'; 100], Some(1000)).await;
    assert_eq!(status, 400, "{text}");
    assert!(took < std::time::Duration::from_secs(10), "{took:?}");
    assert!(closed);
    // Chunked, one chunk and then nothing: answered, and closed too (actix
    // kept such a connection open).
    let (status, text, took, closed) = stalled_request(&app, &head, b"5\r\nHELLO\r\n", None).await;
    assert_eq!(status, 400, "{text}");
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
    assert!(took < std::time::Duration::from_secs(10), "{took:?}");
    assert!(closed, "a stalled chunked body's connection is closed");
    // Nobody reads the body of a request without credentials (401): its
    // connection is closed after the answer, not held while actix waits
    // for the rest of a chunked body (attack review: ~100 bytes held a
    // file descriptor for as long as the client wished).
    let head = "POST /cases HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n";
    let (status, text, took, closed) = stalled_request(&app, head, b"1\r\n{\r\n", None).await;
    assert_eq!(status, 401, "{text}");
    assert!(took < std::time::Duration::from_secs(10), "{took:?}");
    assert!(closed, "an unread chunked body's connection is closed");
    // The gate reads a cookie session's CSRF form itself: bounded too.
    let session = app
        .session_for("dr.stall", fusion_schemas::Role::Clinician)
        .await;
    let head = format!(
        "POST /cases HTTP/1.1\r\nHost: 127.0.0.1\r\nCookie: fusion_session={session}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\n"
    );
    let (status, text, took, closed) =
        stalled_request(&app, &head, b"csrf_token=abc&accession_number=", Some(1000)).await;
    println!("stalled CSRF form: {status} after {took:?}");
    assert!((400..500).contains(&status), "{text}");
    assert!(took < std::time::Duration::from_secs(10), "{took:?}");
    assert!(closed);

    // Nothing half-read was stored, and the service still answers.
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM notes")
        .fetch_one(&mut app.pg().admin_of_app().await)
        .await
        .unwrap();
    assert_eq!(n, 0);
    assert_eq!(app.healthz().await.status(), 200);
}
