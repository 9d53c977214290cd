//! Issue #14, finding 1 and "fuzzing as a habit", through the real STOW-RS
//! route on PostgreSQL: a part whose Patient Name length runs past its end
//! fails alone, with a FailureReason, in bounded memory; and a bounded
//! mutation run over the shared catalogue gives no 5xx, no crash, and a
//! process peak under 1 GiB.
//!
//! The counting allocator covers the whole test process, server included
//! (it runs in process); inference workers are off, so the peak is the
//! STOW-RS path's.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::time::Instant;

use fusion_fuzz::mutate::{Rng, mutate};
use fusion_schemas::Role;
use fusion_tests::dicom::{catalogue, multipart, parse_multipart, read, stow_content_type};
use fusion_tests::{TestApp, spawn_app_with};
use peak_alloc::PeakAlloc;
use serde_json::Value;

#[global_allocator]
static PEAK: PeakAlloc = PeakAlloc;

/// The two tests here measure the same process-wide peak: one at a time.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

const BOUNDARY: &str = "fusion-stow-fuzz-boundary-8c1f0e3a5d7b9c2e4f6a8b0d";
const MR_IMPLICIT: &str = "pydicom-3.0.2/test_files/MR_small_implicit.dcm";
const CT: &str = "pydicom-3.0.2/test_files/CT_small.dcm";
const GIB: usize = 1 << 30;

/// Failure Reason (0008,1197) values of PS3.18 Table I.2-2 as they come
/// back in DICOM JSON.
const CANNOT_UNDERSTAND: u64 = 0xC000;
const PROCESSING_FAILURE: u64 = 0x0110;
const OUT_OF_RESOURCES: u64 = 0xA700;

struct Pacs {
    id: String,
    secret: String,
}

impl Pacs {
    async fn new(app: &TestApp) -> Self {
        let (id, secret) = app.api_key("pacs", Role::Integration).await;
        Self { id, secret }
    }

    async fn stow(&self, app: &TestApp, parts: &[Vec<u8>]) -> (u16, Value) {
        let parts: Vec<(&str, &[u8])> = parts
            .iter()
            .map(|p| ("application/dicom", p.as_slice()))
            .collect();
        let res = app
            .client
            .post(app.url("/dicom-web/studies"))
            .basic_auth(&self.id, Some(&self.secret))
            .header("Content-Type", stow_content_type(BOUNDARY))
            .header("Accept", "application/dicom+json")
            .body(multipart(BOUNDARY, &parts))
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        let text = res.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

/// Items of a sequence attribute in a DICOM JSON object.
fn items<'a>(body: &'a Value, tag: &str) -> Vec<&'a Value> {
    body[tag]["Value"]
        .as_array()
        .map(|v| v.iter().collect())
        .unwrap_or_default()
}

fn first_value<'a>(item: &'a Value, tag: &str) -> &'a Value {
    &item[tag]["Value"][0]
}

/// The SOP Instance UID (0008,0018) of a catalogue file, by the service's
/// own parser.
fn sop_instance_uid(bytes: &[u8]) -> String {
    fusion_imaging::parse(bytes)
        .unwrap()
        .sop_instance_uid()
        .to_string()
}

/// The 9.7 KB implicit VR MR file with its Patient Name (0010,0010) length
/// set to 0xFFFFFFF0: the attack of issue #14.
fn patient_name_past_the_end() -> Vec<u8> {
    let mut bytes = read(MR_IMPLICIT);
    let meta_len = u32::from_le_bytes(bytes[140..144].try_into().unwrap()) as usize;
    let start = 144 + meta_len;
    let at = start
        + bytes[start..]
            .windows(4)
            .position(|w| w == [0x10, 0x00, 0x10, 0x00])
            .unwrap();
    bytes[at + 4..at + 8].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    bytes
}

#[tokio::test]
async fn a_part_whose_length_runs_past_its_end_fails_alone_in_bounded_memory() {
    let _guard = ONE_AT_A_TIME.lock().await;
    let app = spawn_app_with(|s| s.workers = 0).await;
    let pacs = Pacs::new(&app).await;
    let ct = read(CT);
    let mr = read("pydicom-3.0.2/test_files/MR_small.dcm");
    let attack = patient_name_past_the_end();
    assert_eq!(attack.len(), 9702);

    PEAK.reset_peak_usage();
    let before = PEAK.current_usage();
    let (status, body) = pacs
        .stow(&app, &[ct.clone(), attack.clone(), mr.clone()])
        .await;
    let peak = PEAK.peak_usage().saturating_sub(before);
    eprintln!("STOW-RS of CT, the 9.7 KB attack, MR: {status}, process peak {peak} bytes");

    assert_eq!(status, 202, "{body}");
    let failed = items(&body, "00081198");
    assert_eq!(failed.len(), 1, "{body}");
    assert_eq!(
        first_value(failed[0], "00081197").as_u64(),
        Some(CANNOT_UNDERSTAND)
    );
    let stored: Vec<&str> = items(&body, "00081199")
        .into_iter()
        .filter_map(|i| first_value(i, "00081155").as_str())
        .collect();
    assert_eq!(stored, [sop_instance_uid(&ct), sop_instance_uid(&mr)]);
    // Before the fix the process zeroed 4 GiB for this part.
    assert!(peak < 64 << 20, "process peak {peak} bytes");

    // Both other instances are there to retrieve, byte for byte.
    for bytes in [&ct, &mr] {
        let instance = fusion_imaging::parse(bytes).unwrap();
        let res = app
            .client
            .get(app.url(&format!(
                "/dicom-web/studies/{}/series/{}/instances/{}",
                instance.study_instance_uid(),
                instance.series_instance_uid(),
                instance.sop_instance_uid()
            )))
            .basic_auth(&pacs.id, Some(&pacs.secret))
            .header("Accept", "multipart/related; type=\"application/dicom\"")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let content_type = res.headers()["content-type"].to_str().unwrap().to_owned();
        let got = parse_multipart(&content_type, &res.bytes().await.unwrap());
        assert_eq!(got.len(), 1);
        assert_eq!(&got[0], bytes);
    }
}

/// What the run counts.
#[derive(Debug, Default)]
struct Tally {
    requests: usize,
    parts: usize,
    stored: usize,
    refused: BTreeMap<u64, usize>,
    server_errors: usize,
    unanswered: usize,
    pristine_lost: usize,
}

#[tokio::test]
async fn a_bounded_mutation_run_over_the_catalogue_through_stow_rs() {
    let _guard = ONE_AT_A_TIME.lock().await;
    let requests: usize = std::env::var("STOW_FUZZ_REQUESTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(60);
    let seed: u64 = std::env::var("STOW_FUZZ_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(14);
    let app = spawn_app_with(|s| s.workers = 0).await;
    let pacs = Pacs::new(&app).await;
    // Files up to 1 MiB keep the run within a minute on two cores.
    let files: Vec<(String, Vec<u8>)> = catalogue()
        .into_iter()
        .map(|row| (row.get("file").to_owned(), row.bytes()))
        .filter(|(_, bytes)| bytes.len() <= 1 << 20)
        .collect();
    let pristine = read(CT);
    let pristine_uid = sop_instance_uid(&pristine);

    let started = Instant::now();
    PEAK.reset_peak_usage();
    let baseline = PEAK.current_usage();
    let mut rng = Rng::new(seed);
    let mut tally = Tally::default();
    for _ in 0..requests {
        // Nine mutants and one pristine file, in a random place.
        let mut parts: Vec<Vec<u8>> = (0..9)
            .map(|_| mutate(&rng.pick(&files).1, &mut rng))
            .collect();
        parts.insert(rng.below(parts.len() + 1), pristine.clone());
        let (status, body) = pacs.stow(&app, &parts).await;
        tally.requests += 1;
        tally.parts += parts.len();
        if status >= 500 {
            tally.server_errors += 1;
            continue;
        }
        let referenced = items(&body, "00081199");
        let failed = items(&body, "00081198");
        tally.stored += referenced.len();
        for item in &failed {
            let reason = first_value(item, "00081197").as_u64().unwrap_or(0);
            *tally.refused.entry(reason).or_default() += 1;
        }
        // Every part is answered; none is lost to its neighbours.
        tally.unanswered += parts.len().saturating_sub(referenced.len() + failed.len());
        if !referenced
            .iter()
            .any(|i| first_value(i, "00081155").as_str() == Some(pristine_uid.as_str()))
        {
            tally.pristine_lost += 1;
        }
    }
    let peak = PEAK.peak_usage().saturating_sub(baseline);
    let health = app.healthz().await.status();
    let refused: Vec<String> = tally
        .refused
        .iter()
        .map(|(reason, n)| format!("{reason:04X}: {n}"))
        .collect();
    eprintln!(
        "STOW-RS mutation run, seed {seed}: {} requests, {} parts, {} stored, refused by Failure Reason {{{}}}, \
         {} 5xx, {} unanswered, {} pristine parts lost, process peak {peak} bytes, /healthz {health}, {:.1} s",
        tally.requests,
        tally.parts,
        tally.stored,
        refused.join(", "),
        tally.server_errors,
        tally.unanswered,
        tally.pristine_lost,
        started.elapsed().as_secs_f64()
    );
    assert_eq!(tally.server_errors, 0, "5xx answers: {tally:?}");
    // A parser panic caught at the task boundary answers 0110, the
    // database or blob store failing answers A700: both would be crashes.
    assert_eq!(tally.refused.get(&PROCESSING_FAILURE), None, "{tally:?}");
    assert_eq!(tally.refused.get(&OUT_OF_RESOURCES), None, "{tally:?}");
    assert_eq!(tally.unanswered, 0, "{tally:?}");
    assert_eq!(tally.pristine_lost, 0, "{tally:?}");
    assert_eq!(health, 200);
    assert!(peak < GIB, "process peak {peak} bytes");
}
