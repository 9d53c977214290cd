//! The service watches its own models (issue #18): a scripted stream of
//! reviews raises the coverage alarm at the stated review and not before,
//! naming the observation and the modality group, with figures checked
//! against hand-computed values; a stream of studies of a new modality mix
//! raises the drift alarm while an unchanged stream stays below the PSI
//! threshold; a real Prometheus server scrapes the metrics endpoint and its
//! query API returns the STOW-RS counter and the request latency histogram.
//!
//! Predictions of the review stream are stored through the repository with
//! invented probabilities (no model runs), so every figure is known; the
//! reviews go through the HTTP API as a clinician sends them.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use fusion_models::conformal::{BinaryClass, PredictionSet};
use fusion_models::{FusedLabel, Opinion};
use fusion_schemas::{
    AccessionNumber, BranchReport, BranchStatus, Branches, PredictionInputs, Role,
};
use fusion_store::{
    AuditAction, AuditAgent, AuditEventType, AuditFilter, AuditOutcome, AuditRecord, CaseKey,
    InputFeatures, NewModelInput, NewPrediction, PredictionStatus,
};
use fusion_tests::dicom::{multipart, read, stow_content_type};
use fusion_tests::{TestApp, spawn_app_with};
use serde_json::{Value, json};
use uuid::Uuid;

const BOUNDARY: &str = "fusion-monitoring-boundary-0123456789";
/// A 16 × 16 CR (MONOCHROME1) and a small CT.
const CR: &str = "pydicom-3.0.2/test_files/dicomdirtests/77654033/CR1/6154";
const CT: &str = "pydicom-3.0.2/test_files/CT_small.dcm";

fn system_audit(subtype: &str) -> AuditRecord {
    AuditRecord {
        event_type: AuditEventType::PatientRecord,
        subtype: subtype.to_owned(),
        action: AuditAction::Create,
        outcome: AuditOutcome::Success,
        outcome_desc: None,
        agent: AuditAgent::system(),
        entities: Vec::new(),
        patient_ids: Vec::new(),
        purpose_of_use: None,
        request_id: None,
    }
}

/// A fused label of projected probability `p` (no uncertainty mass) from
/// `sources`, with the conformal set `set`.
fn label(p: f64, sources: &[&str], set: &[BinaryClass], abstain: bool) -> FusedLabel {
    let mut l = FusedLabel {
        opinion: Opinion::new(p, 1.0 - p, 0.0, 0.5).unwrap(),
        conflict: 0.0,
        prediction_set: Some(PredictionSet::try_from(set.to_vec()).unwrap()),
        sources: sources.iter().map(|s| (*s).to_owned()).collect(),
        abstain: None,
    };
    if abstain {
        l.abstain = Some(
            serde_json::from_value(json!({
                "reason": "high_uncertainty", "uncertainty": 0.7, "max_uncertainty": 0.5
            }))
            .unwrap(),
        );
    }
    l
}

/// Stores a case with one prediction of `labels` and returns its id.
async fn predicted(app: &TestApp, n: usize, labels: &[(&str, FusedLabel)]) -> Uuid {
    let key = CaseKey {
        accession_number: Some(AccessionNumber::parse(&format!("MON{n:04}")).unwrap()),
        ..CaseKey::default()
    };
    let link = app
        .state
        .repository
        .open_case(&key, &[], &system_audit("case-open"))
        .await
        .unwrap();
    let prediction = NewPrediction {
        id: Uuid::now_v7(),
        case_id: link.case_id,
        status: PredictionStatus::Predicted,
        packages: vec![],
        branches: Branches {
            image: BranchReport {
                package: Some("invented-image@2.0.0".into()),
                ..BranchReport::empty(BranchStatus::Used, "")
            },
            text: BranchReport {
                package: Some("invented-text@1.0.0".into()),
                ..BranchReport::empty(BranchStatus::Used, "")
            },
        },
        fused: labels
            .iter()
            .map(|(k, l)| ((*k).to_owned(), l.clone()))
            .collect(),
        abstain: false,
        abstain_reasons: Vec::new(),
        timings: BTreeMap::new(),
        inputs: PredictionInputs::default(),
        findings: Vec::new(),
        refer: false,
        job_id: None,
        deliveries: vec![],
    };
    app.state
        .repository
        .insert_prediction(&prediction, &system_audit("prediction-create"))
        .await
        .unwrap();
    prediction.id
}

async fn review(app: &TestApp, token: &str, prediction: Uuid, decisions: Value) {
    let res = app
        .client
        .post(app.url(&format!("/predictions/{prediction}/reviews")))
        .bearer_auth(token)
        .json(&json!({ "decisions": decisions }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
}

async fn monitoring(app: &TestApp, token: &str) -> Value {
    let res = app
        .client
        .get(app.url("/monitoring"))
        .bearer_auth(token)
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

async fn alert_events(app: &TestApp, subtype: &str) -> Vec<fusion_store::StoredAuditEvent> {
    app.state
        .repository
        .audit_events(&AuditFilter {
            limit: Some(10_000),
            ..AuditFilter::default()
        })
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.record.subtype == subtype)
        .collect()
}

fn close(a: &Value, b: f64) -> bool {
    a.as_f64().is_some_and(|a| (a - b).abs() < 1e-9)
}

fn group<'a>(report: &'a Value, span: &str, observation: &str, g: &str) -> &'a Value {
    report[span]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["observation"] == observation && x["group"] == g)
        .unwrap_or_else(|| panic!("no {observation} ({g}) in {span}: {report:#}"))
}

/// Ten reviews agree with a confident "present" on pleural effusion (text
/// only, conformal set {present}, nominal 0.90); then reviewers reject it.
/// Coverage in the window is 10/(10 + k) after k rejections: with a margin
/// of 0.10 the alarm holds below 0.80, i.e. from k = 3 (10/13 = 0.769) and
/// not at k = 2 (10/12 = 0.833).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn coverage_alarm_fires_at_the_stated_review_with_hand_computed_figures() {
    let app = spawn_app_with(|s| {
        s.workers = 0;
        s.monitoring_interval_seconds = 0;
        s.monitoring_window_reviews = 50;
        s.monitoring_coverage_margin = 0.10;
        s.monitoring_coverage_min_reviews = 10;
        s.monitoring_drift_reference = 6;
        s.monitoring_drift_window = 6;
    })
    .await;
    let clinician = app.session_for("dr.monitor", Role::Clinician).await;
    let auditor = app.session_for("qa.monitor", Role::Auditor).await;
    let present = [BinaryClass::Present];
    let both = [BinaryClass::Present, BinaryClass::Absent];

    let mut first_case = Uuid::nil();
    for n in 0..10 {
        let mut labels = vec![("pleural_effusion", label(0.9, &["text"], &present, false))];
        if n < 2 {
            // Two image+text cardiomegaly labels that abstained; the
            // reviewer amends one to present and one to absent.
            labels.push(("cardiomegaly", label(0.55, &["image", "text"], &both, true)));
        }
        let p = predicted(&app, n, &labels).await;
        if n == 0 {
            first_case = app
                .state
                .repository
                .prediction(p)
                .await
                .unwrap()
                .unwrap()
                .prediction
                .case_id;
        }
        let mut decisions = json!({"pleural_effusion": {"decision": "accept"}});
        if n < 2 {
            let value = if n == 0 { "present" } else { "absent" };
            decisions["cardiomegaly"] = json!({"decision": "amend", "value": value});
        }
        review(&app, &clinician, p, decisions).await;
        let report = monitoring(&app, &auditor).await;
        assert_eq!(report["alerts"], json!([]), "quiet while reviews agree");
    }
    for k in 1..=4 {
        let p = predicted(
            &app,
            10 + k,
            &[("pleural_effusion", label(0.9, &["text"], &present, false))],
        )
        .await;
        review(
            &app,
            &clinician,
            p,
            json!({"pleural_effusion": {"decision": "reject"}}),
        )
        .await;
        let report = monitoring(&app, &auditor).await;
        let alerts = report["alerts"].as_array().unwrap();
        let events = alert_events(&app, "model-coverage-alert").await;
        if k < 3 {
            assert!(alerts.is_empty(), "quiet after {k} rejections: {alerts:?}");
            assert!(events.is_empty());
            continue;
        }
        // From the third rejection on: one alert, raised once.
        assert_eq!(alerts.len(), 1, "{alerts:?}");
        let a = &alerts[0];
        assert_eq!(a["kind"], "coverage");
        assert_eq!(a["subject"], "pleural_effusion");
        assert_eq!(a["group"], "text");
        assert_eq!(a["package"], "invented-text@1.0.0");
        assert!(close(&a["value"], 10.0 / (10.0 + k as f64)));
        assert!(close(&a["threshold"], 0.8));
        assert_eq!(events.len(), 1, "the alarm is raised once");
        let evidence = events[0].record.outcome_desc.clone().unwrap();
        assert!(
            evidence.contains("pleural_effusion (text)") && evidence.contains("10 of 13"),
            "{evidence}"
        );
        assert_eq!(events[0].record.event_type, AuditEventType::SecurityAlert);
        assert!(events[0].record.patient_ids.is_empty());
    }

    // Hand-computed figures after 14 reviews (10 accepted, 4 rejected, all
    // p = 0.9): agreement 10/14; Brier (10·0.01 + 4·0.81)/14 = 3.34/14;
    // one ECE bin (13): |14·0.9 − 10|/14 = 2.6/14; coverage 10/14.
    let report = monitoring(&app, &auditor).await;
    let g = group(&report, "window", "pleural_effusion", "text");
    assert_eq!(g["n"], 14);
    assert_eq!(g["with_gold"], 14);
    assert!(close(&g["agreement"], 10.0 / 14.0), "{g}");
    assert!(close(&g["calibration"]["brier"], 3.34 / 14.0), "{g}");
    assert!(close(&g["calibration"]["ece"], 2.6 / 14.0), "{g}");
    assert_eq!(g["calibration"]["reliability"][13]["count"], 14);
    assert_eq!(g["coverage"]["covered"], 10);
    assert!(close(&g["coverage"]["nominal"], 0.9));
    assert!(close(&g["abstention_rate"], 0.0));
    // Cardiomegaly: both abstained (rate 1), one of two found present; no
    // call, so no agreement; p = 0.55 against gold 1 and 0: Brier
    // (0.2025 + 0.3025)/2 = 0.2525; sets {present, absent} cover both.
    let c = group(&report, "window", "cardiomegaly", "image+text");
    assert_eq!(c["package"], "invented-image@2.0.0 + invented-text@1.0.0");
    assert!(close(&c["abstention_rate"], 1.0));
    assert!(close(&c["abstained_positive_rate"], 0.5));
    assert_eq!(c["agreement"], Value::Null);
    assert!(close(&c["calibration"]["brier"], 0.2525), "{c}");
    assert!(close(&c["coverage"]["rate"], 1.0));
    // All time equals the window here.
    assert_eq!(report["all_time"]["reviews"], 14);

    // The page shows the alert and draws the plots.
    let page = app
        .client
        .get(app.url("/monitoring"))
        .bearer_auth(&auditor)
        .header("Accept", "text/html")
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(page.contains("pleural_effusion (text) with invented-text@1.0.0"));
    assert!(
        page.matches("<svg").count() >= 3,
        "coverage chart and reliability diagrams"
    );
    // The gauges carry the same numbers.
    let metrics = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let line = metrics
        .lines()
        .find(|l| {
            l.starts_with("fusion_model_coverage{")
                && l.contains("observation=\"pleural_effusion\"")
        })
        .unwrap_or_else(|| panic!("{metrics}"));
    let value: f64 = line.rsplit(' ').next().unwrap().parse().unwrap();
    assert!((value - 10.0 / 14.0).abs() < 1e-9, "{line}");
    // Input drift on the page too: twelve invented jobs of an image
    // package, the last six from a new detector (DX, another vendor).
    for n in 0..12 {
        let (modality, vendor, p) = if n >= 6 && n % 2 == 0 {
            ("DX", "Other Imaging", 0.62)
        } else {
            ("CR", "Invented Medical", 0.18)
        };
        let input = NewModelInput {
            id: Uuid::now_v7(),
            case_id: first_case,
            prediction_id: None,
            image_package: Some("invented-image@2.0.0".to_owned()),
            text_package: None,
            features: InputFeatures {
                modality: Some(modality.to_owned()),
                body_part: Some("CHEST".to_owned()),
                view_position: Some("PA".to_owned()),
                age_band: Some("40-64".to_owned()),
                photometric_interpretation: Some("MONOCHROME2".to_owned()),
                manufacturer: Some(vendor.to_owned()),
            },
            scores: json!({"image": {"pneumonia": p}, "text": {}}),
        };
        app.state
            .repository
            .record_model_input(&input)
            .await
            .unwrap();
    }
    // In a browser: the page passes the accessibility checks; its
    // screenshot is the README's.
    let password = app.add_user("qa.page", Role::Auditor).await;
    let browser = fusion_tests::browser::Browser::start(&app.address).await;
    browser.sign_in("qa.page", &password).await;
    browser.goto("/monitoring").await;
    assert_eq!(browser.text("h1").await, "Model monitoring");
    let a11y = browser.accessibility_violations().await;
    assert!(a11y.is_empty(), "monitoring page: {a11y:#?}");
    browser.screenshot_full("monitoring").await;
    browser.close().await;
    // A clinician sees neither: 403 (authenticated, not allowed), not 401.
    for path in ["/monitoring", "/metrics"] {
        let res = app
            .client
            .get(app.url(path))
            .bearer_auth(&clinician)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "{path}");
    }
}

/// `file` as a new study: fresh Study, Series and SOP Instance UIDs, its
/// own accession number and Patient ID.
fn new_study(file: &str, n: usize) -> Vec<u8> {
    use dicom_core::{DataElement, PrimitiveValue, VR};
    use dicom_dictionary_std::tags;
    let source = read(file);
    let mut obj = dicom_object::from_reader(std::io::Cursor::new(&source[128..])).unwrap();
    let root = format!("1.2.826.0.1.3680043.8.498.18{n:04}");
    for (tag, vr, value) in [
        (tags::STUDY_INSTANCE_UID, VR::UI, format!("{root}.1")),
        (tags::SERIES_INSTANCE_UID, VR::UI, format!("{root}.1.1")),
        (tags::SOP_INSTANCE_UID, VR::UI, format!("{root}.1.1.1")),
        // A case per study: cases are keyed by accession number.
        (tags::ACCESSION_NUMBER, VR::SH, format!("DRIFT{n:04}")),
        (tags::PATIENT_ID, VR::LO, format!("DRIFT-PT-{n:04}")),
    ] {
        obj.put(DataElement::new(tag, vr, PrimitiveValue::from(value)));
    }
    obj.update_meta(|m| m.media_storage_sop_instance_uid = format!("{root}.1.1.1"));
    let mut bytes = Vec::new();
    obj.write_all(&mut bytes).unwrap();
    bytes
}

async fn stow(app: &TestApp, pacs: &(String, String), bytes: &[u8]) {
    let res = app
        .client
        .post(app.url("/dicom-web/studies"))
        .basic_auth(&pacs.0, Some(&pacs.1))
        .header("Content-Type", stow_content_type(BOUNDARY))
        .header("Accept", "application/dicom+json")
        .body(multipart(BOUNDARY, &[("application/dicom", bytes)]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
}

/// Waits until `n` jobs' inputs are recorded.
async fn inputs_recorded(app: &TestApp, n: usize) {
    let start = Instant::now();
    loop {
        let have = app
            .state
            .repository
            .model_inputs(10_000)
            .await
            .unwrap()
            .len();
        if have >= n {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "{have} of {n} recorded"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Reference: the first 6 studies (CR); window: the newest 6. Six more CR
/// studies keep every PSI at 0; six CT studies then move the modality from
/// all CR to all CT: PSI = 2·(1 − 10⁻⁴)·ln(10⁴) = 18.42 > 0.25.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_modality_mix_raises_the_drift_alarm_an_unchanged_one_does_not() {
    let app = spawn_app_with(|s| {
        // No model package here: every job ends "no usable modality", and
        // its inputs are still recorded.
        s.models_dir = std::path::PathBuf::from("/nonexistent/models");
        s.workers = 1;
        s.monitoring_interval_seconds = 0;
        s.monitoring_drift_reference = 6;
        s.monitoring_drift_window = 6;
        s.monitoring_drift_threshold = 0.25;
    })
    .await;
    let pacs = app.api_key("pacs", Role::Integration).await;
    let auditor = app.session_for("qa.drift", Role::Auditor).await;
    for n in 0..12 {
        stow(&app, &pacs, &new_study(CR, n)).await;
    }
    inputs_recorded(&app, 12).await;
    let report = monitoring(&app, &auditor).await;
    let drift = &report["drift"][0];
    assert_eq!(drift["package"], "no image package");
    assert_eq!(drift["status"], "stable", "{drift:#}");
    assert!(drift["max_psi"].as_f64().unwrap() < 0.25);
    assert_eq!(report["alerts"], json!([]));
    let modality = drift["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["feature"] == "modality")
        .unwrap();
    assert_eq!(modality["reference"], json!({"CR": 1.0}));

    for n in 12..18 {
        stow(&app, &pacs, &new_study(CT, n)).await;
    }
    inputs_recorded(&app, 18).await;
    // One job per study: the start-up sweep must not queue a study that its
    // own request is linking (it did, now and then, and a late second CR
    // job then sat in the current window).
    let recorded = app.state.repository.model_inputs(10_000).await.unwrap();
    assert_eq!(recorded.len(), 18);
    let report = monitoring(&app, &auditor).await;
    let drift = &report["drift"][0];
    assert_eq!(drift["status"], "drift");
    let modality = drift["features"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["feature"] == "modality")
        .unwrap();
    let expected = 2.0 * (1.0 - 1e-4) * (1e4_f64).ln();
    assert!(close(&modality["psi"], expected), "{modality}");
    assert_eq!(modality["current"], json!({"CT": 1.0}));
    let alerts = report["alerts"].as_array().unwrap();
    assert!(
        alerts
            .iter()
            .any(|a| a["kind"] == "drift" && a["subject"] == "modality"),
        "{alerts:?}"
    );
    let events = alert_events(&app, "model-drift-alert").await;
    assert!(
        events.iter().any(|e| e
            .record
            .outcome_desc
            .as_deref()
            .is_some_and(|d| d.starts_with("modality of no image package"))),
        "{events:?}"
    );
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Queries Prometheus until `query` returns a series (scrapes every second).
async fn prometheus_query(client: &reqwest::Client, base: &str, query: &str) -> Value {
    let start = Instant::now();
    loop {
        let res = client
            .get(format!("{base}/api/v1/query"))
            .query(&[("query", query)])
            .send()
            .await;
        if let Ok(res) = res
            && let Ok(body) = res.json::<Value>().await
            && body["data"]["result"]
                .as_array()
                .is_some_and(|r| !r.is_empty())
        {
            return body;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "Prometheus returned nothing for {query}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Kills the Prometheus server when the test ends, however it ends.
struct Server(std::process::Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_scrapes_the_stow_counter_and_the_latency_histogram() {
    let app = spawn_app_with(|s| {
        s.workers = 0;
        s.monitoring_interval_seconds = 0;
        s.metrics_bind = Some("127.0.0.1:0".parse().unwrap());
    })
    .await;
    let pacs = app.api_key("pacs", Role::Integration).await;
    let bytes = new_study(CR, 9000);
    stow(&app, &pacs, &bytes).await;
    stow(&app, &pacs, &bytes).await;

    // The main listener's /metrics needs an administrator or an auditor.
    assert_eq!(app.get("/metrics").await.status(), 401);
    let metrics_port = fusion_api_metrics_port(&app);
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\nscrape_configs:\n  - job_name: fusion\n    \
             static_configs:\n      - targets: ['127.0.0.1:{metrics_port}']\n"
        ),
    )
    .unwrap();
    let port = free_port();
    let binary = which_prometheus();
    let _server = Server(
        std::process::Command::new(binary)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    );
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let stored = prometheus_query(
        &client,
        &base,
        "fusion_dicomweb_stow_instances_total{outcome=\"stored\"}",
    )
    .await;
    assert_eq!(stored["data"]["result"][0]["value"][1], "1", "{stored}");
    let duplicate = prometheus_query(
        &client,
        &base,
        "fusion_dicomweb_stow_instances_total{outcome=\"duplicate\"}",
    )
    .await;
    assert_eq!(duplicate["data"]["result"][0]["value"][1], "1");
    let histogram = prometheus_query(
        &client,
        &base,
        "http_server_request_duration_seconds_count{http_route=\"/dicom-web/studies\",\
         http_request_method=\"POST\",http_response_status_code=\"200\"}",
    )
    .await;
    assert_eq!(
        histogram["data"]["result"][0]["value"][1], "2",
        "{histogram}"
    );
    let buckets = prometheus_query(
        &client,
        &base,
        "http_server_request_duration_seconds_bucket{http_route=\"/dicom-web/studies\",le=\"+Inf\"}",
    )
    .await;
    assert_eq!(buckets["data"]["result"][0]["value"][1], "2");
    let bytes_total =
        prometheus_query(&client, &base, "fusion_dicomweb_stow_size_bytes_total").await;
    let read: f64 = bytes_total["data"]["result"][0]["value"][1]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(read >= 2.0 * bytes.len() as f64, "{read}");
}

fn fusion_api_metrics_port(app: &TestApp) -> u16 {
    app.metrics_addr.expect("metrics listener").port()
}

fn which_prometheus() -> std::path::PathBuf {
    let found = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("prometheus"))
        .find(|p| p.is_file());
    found.expect("prometheus not found: run scripts/setup (Debian package `prometheus`)")
}
