//! Benchmark (not a test): the same 600-instance STOW-RS push into Orthanc
//! and into the service, on this machine, with PostgreSQL and durability on
//! (the service fsyncs every blob and commits every index row before it
//! answers). Prints instances/s for each and their ratio.
//!
//! ```sh
//! ./scripts/setup && cargo run --release -p fusion-tests --example bench_stow -- [N=600] [ROUNDS=3]
//! ```
//!
//! The instances are CT_small (39 kB) re-identified with new Study, Series
//! and SOP Instance UIDs, 60 studies of 10 instances, in one multipart
//! request as Orthanc sends it (chunked).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Instant;

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use fusion_schemas::Role;
use fusion_tests::dicom::{multipart, read, stow_content_type};
use fusion_tests::orthanc::{Orthanc, dicomweb_target};

const BOUNDARY: &str = "bench-boundary-0123456789abcdef0123456789abcdef0123456789abcdef0123";

fn instances(n: usize) -> Vec<Vec<u8>> {
    let source = read("pydicom-3.0.2/test_files/CT_small.dcm");
    let base = dicom_object::from_reader(std::io::Cursor::new(&source[128..])).unwrap();
    let run = std::process::id();
    (0..n)
        .map(|i| {
            let mut obj = base.clone();
            let study = format!("1.2.826.0.1.3680043.10.1137.{run}.{}", i / 10 + 1);
            let series = format!("{study}.1");
            let sop = format!("{series}.{}", i + 1);
            for (tag, uid) in [
                (tags::STUDY_INSTANCE_UID, study),
                (tags::SERIES_INSTANCE_UID, series),
                (tags::SOP_INSTANCE_UID, sop.clone()),
            ] {
                obj.put(DataElement::new(tag, VR::UI, PrimitiveValue::from(uid)));
            }
            obj.meta_mut().media_storage_sop_instance_uid = sop;
            obj.meta_mut().update_information_group_length();
            let mut out = Vec::new();
            obj.write_all(&mut out).unwrap();
            out
        })
        .collect()
}

async fn push(client: &reqwest::Client, url: &str, auth: (&str, &str), body: Vec<u8>) -> f64 {
    let chunks: Vec<Result<bytes::Bytes, std::io::Error>> = body
        .chunks(64 * 1024)
        .map(|c| Ok(bytes::Bytes::copy_from_slice(c)))
        .collect();
    let started = Instant::now();
    let res = client
        .post(url)
        .basic_auth(auth.0, Some(auth.1))
        .header("Content-Type", stow_content_type(BOUNDARY))
        .header("Accept", "application/dicom+json")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    let status = res.status();
    let text = res.text().await.unwrap();
    let elapsed = started.elapsed().as_secs_f64();
    assert!(
        status.is_success(),
        "{url}: {status} {}",
        &text[..text.len().min(300)]
    );
    elapsed
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(600);
    let rounds: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(3);
    let client = reqwest::Client::builder()
        .pool_idle_timeout(std::time::Duration::from_millis(500))
        .build()
        .unwrap();
    let mut ours = Vec::new();
    let mut theirs = Vec::new();
    for round in 0..rounds {
        let data = instances(n);
        let bytes: usize = data.iter().map(Vec::len).sum();
        let parts: Vec<(&str, &[u8])> = data
            .iter()
            .map(|b| ("application/dicom", b.as_slice()))
            .collect();
        let body = multipart(BOUNDARY, &parts);

        let app = fusion_tests::spawn_app().await;
        let (id, secret) = app.api_key("bench", Role::Integration).await;
        let orthanc = Orthanc::start(dicomweb_target(
            "fusion",
            &app.url("/dicom-web/"),
            &id,
            &secret,
        ))
        .await;

        let t_orthanc = push(
            &client,
            &orthanc.endpoint("/dicom-web/studies"),
            (fusion_tests::orthanc::USER, fusion_tests::orthanc::PASSWORD),
            body.clone(),
        )
        .await;
        let t_fusion = push(
            &client,
            &app.url("/dicom-web/studies"),
            (&id, &secret),
            body,
        )
        .await;
        let (r_orthanc, r_fusion) = (n as f64 / t_orthanc, n as f64 / t_fusion);
        println!(
            "round {}: {n} instances ({:.1} MB): Orthanc {:.0} instances/s ({:.2} s), fusion {:.0} instances/s ({:.2} s), ratio {:.2}",
            round + 1,
            bytes as f64 / 1e6,
            r_orthanc,
            t_orthanc,
            r_fusion,
            t_fusion,
            r_fusion / r_orthanc
        );
        theirs.push(r_orthanc);
        ours.push(r_fusion);
    }
    let median = |v: &mut Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        v[v.len() / 2]
    };
    let (o, f) = (median(&mut theirs), median(&mut ours));
    println!(
        "median of {rounds}: Orthanc {o:.0} instances/s, fusion {f:.0} instances/s, ratio {:.2} (target ≥ 2)",
        f / o
    );
}
