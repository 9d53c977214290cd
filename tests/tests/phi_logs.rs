//! Issue #14, finding 4: no identifying value a client sends reaches the
//! logs or the spans (what the OpenTelemetry export carries: every span's
//! fields are printed here with each event and at each span's start and
//! end). A full scenario (STOW-RS of an instance, a note, a login, QIDO-RS,
//! note and case searches, an instance whose decoder panics) runs at
//! `info`, then again at `debug`; the captured JSON lines are searched for
//! the patient id, name, accession number, note text and secrets it sent.
//! Before the fix the request span recorded the path with its query
//! (`/notes?patient_id=…`, `?PatientName=…`).
//!
//! One test in its own binary: it installs the process's global subscriber.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::Write;
use std::sync::{Arc, Mutex};

use fusion_schemas::Role;
use fusion_tests::dicom::{multipart, read, stow_content_type};
use fusion_tests::spawn_app_with;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, reload};

const BOUNDARY: &str = "fusion-phi-boundary-0123456789";
const PATIENT_ID: &str = "PHIZQ7731";
const PATIENT_NAME: &str = "Zqxjvwmp^Kestrel";
const ACCESSION: &str = "ACCZQ9913";
/// A study date in ISO form, which QIDO-RS refuses with a 400 quoting it.
const STUDY_DATE: &str = "1931-07-04";
const NOTE: &str = "FINDINGS: Plumbagoish opacity in the left lower lobe. IMPRESSION: Pneumonia.";
/// The RLE file whose segment is shorter than its frame: dicom-rs panics
/// decoding it (contained; kept as a fuzz regression input).
const PANICS: &str = "../fuzz/regressions/dicom_parse/rle-segment-shorter-than-frame";

#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    fn take(&self) -> String {
        String::from_utf8(std::mem::take(&mut *self.0.lock().unwrap())).unwrap()
    }
}

/// Runs the scenario once against a fresh service; returns the secrets it
/// used (password, API key secret, session token).
async fn scenario() -> Vec<String> {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;
    let app = spawn_app_with(|s| s.workers = 0).await;
    let (key, secret) = app.api_key("pacs", Role::Integration).await;
    let password = app.add_user("dr.log", Role::Clinician).await;
    let res = app.login("dr.log", &password).await;
    assert_eq!(res.status(), 200);
    let token = res.json::<serde_json::Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    // A wrong password is logged and audited without the password.
    assert_eq!(app.login("dr.log", "Wrong-Zqxj-Pass").await.status(), 401);

    let source = read("pydicom-3.0.2/test_files/CT_small.dcm");
    let mut obj = dicom_object::from_reader(std::io::Cursor::new(&source[128..])).unwrap();
    for (tag, vr, value) in [
        (tags::PATIENT_ID, VR::LO, PATIENT_ID),
        (tags::PATIENT_NAME, VR::PN, PATIENT_NAME),
        (tags::ACCESSION_NUMBER, VR::SH, ACCESSION),
    ] {
        obj.put(DataElement::new(tag, vr, PrimitiveValue::from(value)));
    }
    let mut ct = Vec::new();
    obj.write_all(&mut ct).unwrap();
    let panics =
        std::fs::read(fusion_tests::repo_root().join(PANICS.trim_start_matches("../"))).unwrap();
    let res = app
        .client
        .post(app.url("/dicom-web/studies"))
        .basic_auth(&key, Some(&secret))
        .header("Content-Type", stow_content_type(BOUNDARY))
        .header("Accept", "application/dicom+json")
        .body(multipart(
            BOUNDARY,
            &[("application/dicom", &ct), ("application/dicom", &panics)],
        ))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let res = app
        .client
        .post(app.url("/notes"))
        .basic_auth(&key, Some(&secret))
        .query(&[("patient_id", PATIENT_ID), ("accession_number", ACCESSION)])
        .header("Content-Type", "text/plain; charset=utf-8")
        .body(NOTE)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    for path in [
        format!("/notes?patient_id={PATIENT_ID}"),
        format!("/dicom-web/studies?PatientName=Zqxjvwmp*&PatientID={PATIENT_ID}"),
        format!("/dicom-web/studies?AccessionNumber={ACCESSION}"),
        format!("/cases?accession_number={ACCESSION}"),
        format!("/cases?patient_id={PATIENT_ID}"),
    ] {
        let res = app
            .client
            .get(app.url(&path))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "{path}");
    }
    // A malformed query naming a patient: refused, still not logged.
    let res = app
        .client
        .get(app.url(&format!(
            "/dicom-web/studies?PatientID={PATIENT_ID}&limit=x"
        )))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    // A malformed value the 400 body quotes back (a study date is PHI):
    // the body has it, the log must not.
    let res = app
        .client
        .get(app.url(&format!("/dicom-web/studies?StudyDate={STUDY_DATE}")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(res.text().await.unwrap().contains(STUDY_DATE));
    vec![password, secret, token]
}

fn phi_lines(log: &str, secrets: &[String]) -> Vec<String> {
    let mut needles: Vec<String> = vec![
        PATIENT_ID.to_lowercase(),
        "zqxjvwmp".into(),
        "kestrel".into(),
        ACCESSION.to_lowercase(),
        STUDY_DATE.into(),
        "plumbagoish".into(),
        "wrong-zqxj-pass".into(),
    ];
    needles.extend(secrets.iter().map(|s| s.to_lowercase()));
    log.lines()
        .filter(|line| {
            let line = line.to_lowercase();
            needles.iter().any(|n| line.contains(n.as_str()))
        })
        .map(str::to_owned)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_identifying_value_reaches_logs_or_spans_at_info_or_debug() {
    let captured = Captured::default();
    let writer = captured.clone();
    let (filter, level) = reload::Layer::new(EnvFilter::new("info"));
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .json()
                .with_current_span(true)
                .with_span_list(true)
                .with_span_events(FmtSpan::NEW | FmtSpan::CLOSE)
                .with_writer(move || writer.clone()),
        )
        .init();
    fusion_app::telemetry::install_panic_hook();

    let mut counts = Vec::new();
    for filter in ["info", "debug"] {
        level.reload(EnvFilter::new(filter)).unwrap();
        let secrets = scenario().await;
        // Let the background tasks (linking, sweeps) finish writing.
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let log = captured.take();
        let lines = log.lines().count();
        let phi = phi_lines(&log, &secrets);
        println!(
            "{filter}: {} of {lines} log lines carry an identifying value",
            phi.len()
        );
        for line in phi.iter().take(5) {
            println!("  {line}");
        }
        // The contained decoder panic is one line, not a backtrace.
        let panics: Vec<&str> = log
            .lines()
            .filter(|l| l.contains("a thread panicked"))
            .collect();
        assert!(
            !panics.is_empty(),
            "the decoder panic was not logged as one line"
        );
        assert!(!log.contains("stack backtrace"));
        assert!(lines > 20, "the scenario was logged ({lines} lines)");
        counts.push(phi.len());
    }
    assert_eq!(
        counts,
        [0, 0],
        "identifying values in the logs (info, debug)"
    );
}
