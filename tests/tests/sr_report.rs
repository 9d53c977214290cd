//! Results in the PACS's own language (issue #17): each prediction version
//! becomes a Comprehensive SR (UNVERIFIED), each review a VERIFIED one
//! naming its predecessor; both are stored in the case's study and served
//! by our QIDO-RS and WADO-RS. Checked with third-party tools only:
//! dicom3tools' `dciodvfy` (no "Error" line), DCMTK's `dsrdump` (renders
//! the tree), pydicom (reads the numbers back, compared with the stored
//! prediction); the FHIR Bundle of the case with @medplum/core's validator
//! (profiles and invariants) and fhir.resources.
//!
//! The report texts are invented; the images are public test files.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::Command;
use std::time::{Duration, Instant};

use fusion_schemas::Role;
use fusion_tests::dicom::{multipart, parse_multipart, stow_content_type};
use fusion_tests::{TestApp, python, repo_root, spawn_app_with};
use serde_json::{Value, json};

const BOUNDARY: &str = "fusion-sr-boundary-0123456789abcdef";
const CR: &str = "pydicom-data-1.0.0/data_store/data/RG1_UNCR.dcm";
const CT: &str = "pydicom-3.0.2/test_files/CT_small.dcm";

/// An invented chest radiograph report with pneumonia.
const PNEUMONIA_REPORT: &str = "EXAMINATION: Chest radiograph, PA.\n\
INDICATION: Cough and fever.\n\
FINDINGS: Patchy airspace consolidation in the right lower lobe. \
No pleural effusion. No pneumothorax. Heart size is normal.\n\
IMPRESSION: Right lower lobe pneumonia.\n";

async fn app_with_models() -> TestApp {
    let models = repo_root().join("models/packages");
    assert!(
        models.join("pneumonia-xception/model.safetensors").exists(),
        "run scripts/fetch-models"
    );
    spawn_app_with(|s| {
        s.models_dir = models;
        s.workers = 1;
    })
    .await
}

struct Who {
    pacs: (String, String),
    clinician: String,
}

async fn stow(app: &TestApp, who: &Who, file: &str) {
    let bytes = fusion_tests::dicom::read(file);
    let res = app
        .client
        .post(app.url("/dicom-web/studies"))
        .basic_auth(&who.pacs.0, Some(&who.pacs.1))
        .header("Content-Type", stow_content_type(BOUNDARY))
        .header("Accept", "application/dicom+json")
        .body(multipart(BOUNDARY, &[("application/dicom", &bytes)]))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "STOW of {file}");
}

async fn post_note(app: &TestApp, who: &Who, accession: &str, text: &str) {
    post_note_to(app, who, ("accession_number", accession), text).await;
}

async fn post_note_to(app: &TestApp, who: &Who, key: (&str, &str), text: &str) {
    let res = app
        .client
        .post(app.url("/notes"))
        .basic_auth(&who.pacs.0, Some(&who.pacs.1))
        .query(&[key, ("note_type", "18748-4")])
        .header("Content-Type", "text/plain; charset=utf-8")
        .body(text.to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
}

async fn get_json(app: &TestApp, token: &str, path: &str) -> Value {
    let res = app
        .client
        .get(app.url(path))
        .bearer_auth(token)
        .header("Accept", "application/json")
        .send()
        .await
        .unwrap();
    let status = res.status();
    let text = res.text().await.unwrap();
    assert_eq!(status, 200, "GET {path}: {text}");
    serde_json::from_str(&text).unwrap()
}

async fn case_of(app: &TestApp, who: &Who, accession: &str) -> String {
    let list = get_json(
        app,
        &who.clinician,
        &format!("/cases?accession_number={accession}"),
    )
    .await;
    list["cases"][0]["id"].as_str().unwrap().to_owned()
}

/// Waits until the case's `local` delivery of the report (the version's,
/// or its review's) is delivered; returns the SR's SOP Instance UID.
async fn stored_report(app: &TestApp, who: &Who, case_id: &str, reviewed: bool) -> String {
    let start = Instant::now();
    loop {
        let rows = get_json(app, &who.clinician, &format!("/cases/{case_id}/deliveries")).await;
        let found = rows["deliveries"].as_array().unwrap().iter().find(|d| {
            d["target"] == "local"
                && d["state"] == "delivered"
                && d["review_id"].is_null() != reviewed
        });
        if let Some(d) = found {
            return d["sop_instance_uid"].as_str().unwrap().to_owned();
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "the SR was not stored: {rows:#}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The SR as our own QIDO-RS finds it and WADO-RS returns it.
async fn retrieve_sr(app: &TestApp, token: &str, study: &str, sop: &str) -> Vec<u8> {
    let series = get_json(
        app,
        token,
        &format!("/dicom-web/studies/{study}/series?Modality=SR"),
    )
    .await;
    let series = series.as_array().unwrap();
    assert_eq!(series.len(), 1, "one results series: {series:#?}");
    let series_uid = series[0]["0020000E"]["Value"][0].as_str().unwrap();
    let instances = get_json(
        app,
        token,
        &format!("/dicom-web/studies/{study}/series/{series_uid}/instances"),
    )
    .await;
    assert!(
        instances
            .as_array()
            .unwrap()
            .iter()
            .any(|i| i["00080018"]["Value"][0] == sop),
        "QIDO lists the SR: {instances:#}"
    );
    let res = app
        .client
        .get(app.url(&format!(
            "/dicom-web/studies/{study}/series/{series_uid}/instances/{sop}"
        )))
        .bearer_auth(token)
        .header("Accept", "multipart/related; type=\"application/dicom\"")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let ct = res.headers()["content-type"].to_str().unwrap().to_owned();
    let body = res.bytes().await.unwrap();
    parse_multipart(&ct, &body).remove(0)
}

/// dciodvfy reports no error, dsrdump renders it; returns pydicom's reading
/// and the dsrdump text.
fn third_party_checks(bytes: &[u8], name: &str) -> (Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(format!("{name}.dcm"));
    std::fs::write(&file, bytes).unwrap();
    let out = Command::new("dciodvfy")
        .arg(&file)
        .output()
        .expect("dciodvfy (apt dicom3tools; scripts/setup)");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let errors: Vec<&str> = report.lines().filter(|l| l.starts_with("Error")).collect();
    assert!(errors.is_empty(), "dciodvfy on {name}:\n{report}");
    let out = Command::new("dsrdump")
        .arg(&file)
        .output()
        .expect("dsrdump (apt dcmtk; scripts/setup)");
    let dump = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "dsrdump on {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dump.contains("Imaging Measurement Report"), "{dump}");
    let out = Command::new(python())
        .arg(repo_root().join("tests/tools/sr_check.py"))
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "pydicom: {}",
        String::from_utf8_lossy(&out.stdout)
    );
    let read: Value = serde_json::from_slice(&out.stdout).unwrap();
    // Kept for the README: $CARGO_TARGET_DIR/screenshots/NAME.txt.
    let shots = std::env::var("CARGO_TARGET_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| repo_root().join("target"))
        .join("screenshots");
    let _ = std::fs::create_dir_all(&shots);
    let _ = std::fs::write(shots.join(format!("{name}.dsrdump.txt")), &dump);
    let _ = std::fs::write(shots.join(format!("{name}.dciodvfy.txt")), &report);
    println!(
        "{name}: {} bytes; dciodvfy: {} lines",
        bytes.len(),
        report.lines().count()
    );
    (read, dump)
}

/// The SR's numbers are the stored prediction's (6 decimals, DS).
fn assert_numbers_match(sr: &Value, prediction: &Value) {
    let observations = sr["observations"].as_object().unwrap();
    assert_eq!(observations.len(), 14, "{sr:#}");
    for (label, fused) in prediction["fused"].as_object().unwrap() {
        let code = match label.as_str() {
            "enlarged_cardiomediastinum" => "ENLCARDIOMED".to_owned(),
            other => other.replace('_', "").to_uppercase(),
        };
        let got = &observations[&code];
        let op = &fused["opinion"];
        for (ours, theirs) in [
            ("probability", "probability"),
            ("uncertainty", "uncertainty"),
            ("belief", "belief"),
            ("disbelief", "disbelief"),
            ("base_rate", "base_rate"),
        ] {
            let want = op[theirs].as_f64().unwrap();
            let have = got[ours].as_f64().unwrap();
            assert!(
                (want - have).abs() < 1e-6,
                "{label} {ours}: {have} vs {want}"
            );
        }
        let conflict = fused["conflict"].as_f64().unwrap();
        assert!((got["conflict"].as_f64().unwrap() - conflict).abs() < 1e-6);
        let mut want_set: Vec<String> = fused["prediction_set"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|c| c.as_str().unwrap().to_uppercase())
                    .collect()
            })
            .unwrap_or_default();
        let mut have_set: Vec<String> = got["conformal_set"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c.as_str().unwrap().to_owned())
            .collect();
        want_set.sort();
        have_set.sort();
        assert_eq!(have_set, want_set, "{label} conformal set");
        let abstained = if fused["abstain"].is_null() {
            "No"
        } else {
            "Yes"
        };
        assert_eq!(got["abstention"], abstained, "{label}");
    }
}

fn validate_fhir(bundle: &Value) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bundle.json");
    std::fs::write(&file, serde_json::to_vec_pretty(bundle).unwrap()).unwrap();
    let medplum = repo_root().join(".test-data/medplum");
    assert!(
        medplum.join("node_modules/@medplum/core").exists(),
        "run scripts/fetch-fhir-validator"
    );
    let out = Command::new("node")
        .arg(repo_root().join("tests/tools/validate_fhir_medplum.cjs"))
        .arg(&medplum)
        .arg(&file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "medplum: {text}");
    let (ok, text) =
        fusion_tests::run_tool("validate_fhir.py", &["report", file.to_str().unwrap()]);
    assert!(ok, "fhir.resources: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_prediction_and_its_review_become_srs_any_viewer_reads() {
    let app = app_with_models().await;
    let who = Who {
        pacs: app.api_key("pacs", Role::Integration).await,
        clinician: app.session_for("dr.sr", Role::Clinician).await,
    };
    let cr = fusion_imaging::index_attributes(
        &fusion_imaging::parse(&fusion_tests::dicom::read(CR)).unwrap(),
    );
    let accession = cr.accession_number.clone().unwrap().to_string();
    let study = cr.study_instance_uid.to_string();
    stow(&app, &who, CR).await;
    post_note(&app, &who, &accession, PNEUMONIA_REPORT).await;
    let case_id = case_of(&app, &who, &accession).await;
    let versions = app
        .wait_for_predictions(&who.clinician, &case_id, "a fused prediction", |v| {
            v.first()
                .is_some_and(|p| p["branches"]["text"]["status"] == "used")
        })
        .await;
    let prediction = versions[0].clone();
    let prediction_id = prediction["id"].as_str().unwrap();
    // Wait for this version's own report (an image-only version may have
    // come first).
    let unverified_uid = loop {
        let uid = stored_report(&app, &who, &case_id, false).await;
        let rows = get_json(
            &app,
            &who.clinician,
            &format!("/cases/{case_id}/deliveries"),
        )
        .await;
        if rows["deliveries"].as_array().unwrap().iter().any(|d| {
            d["prediction_id"] == prediction_id
                && d["target"] == "local"
                && d["state"] == "delivered"
        }) {
            break rows["deliveries"]
                .as_array()
                .unwrap()
                .iter()
                .find(|d| d["prediction_id"] == prediction_id && d["target"] == "local")
                .unwrap()["sop_instance_uid"]
                .as_str()
                .unwrap()
                .to_owned();
        }
        let _ = uid;
        tokio::time::sleep(Duration::from_millis(250)).await;
    };

    // UNVERIFIED, served by QIDO-RS and WADO-RS, valid, with our numbers.
    let bytes = retrieve_sr(&app, &who.clinician, &study, &unverified_uid).await;
    let (sr, dump) = third_party_checks(&bytes, "sr-unverified");
    assert_eq!(sr["sop_class"], "1.2.840.10008.5.1.4.1.1.88.33");
    assert_eq!(sr["verification_flag"], "UNVERIFIED");
    assert_eq!(sr["completion_flag"], "COMPLETE");
    assert_eq!(sr["modality"], "SR");
    assert_eq!(sr["root"], "126000");
    assert_eq!(sr["study_instance_uid"], study);
    assert_eq!(
        sr["patient_id"],
        cr.patient_id.as_ref().unwrap().to_string()
    );
    assert_eq!(sr["evidence"], json!([cr.sop_instance_uid.to_string()]));
    assert_eq!(
        sr["image_library"],
        json!([cr.sop_instance_uid.to_string()])
    );
    assert!(sr["predecessor"].is_null() && sr["verifying_observer"].is_null());
    assert_numbers_match(&sr, &prediction);
    let pneumonia = &sr["observations"]["PNEUMONIA"];
    assert!(
        pneumonia["algorithms"]
            .as_array()
            .unwrap()
            .iter()
            .any(|a| a == "pneumonia-xception"),
        "{pneumonia:#}"
    );
    let summary = sr["summary"].as_str().unwrap();
    assert!(
        summary.contains("UNVERIFIED") && summary.contains("Pneumonia"),
        "{summary}"
    );
    assert!(dump.contains("UNVERIFIED"), "{dump}");

    // The FHIR Bundle of the case: preliminary, valid, the same numbers.
    let bundle = get_json(&app, &who.clinician, &format!("/cases/{case_id}/fhir")).await;
    validate_fhir(&bundle);
    let report = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["resource"]["resourceType"] == "DiagnosticReport")
        .unwrap();
    assert_eq!(report["resource"]["status"], "preliminary");
    // One AI report per case: its id is the case's, whatever the version.
    let report_id = report["resource"]["id"].as_str().unwrap().to_owned();

    // A clinician amends pneumonia: a VERIFIED SR follows the UNVERIFIED one.
    let res = app
        .client
        .post(app.url(&format!("/predictions/{prediction_id}/reviews")))
        .bearer_auth(&who.clinician)
        .json(&json!({
            "decisions": {"pneumonia": {"decision": "amend", "value": "absent"}, "pleural_effusion": {"decision": "accept"}},
            "comment": "Invented review comment."
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let verified_uid = stored_report(&app, &who, &case_id, true).await;
    assert_ne!(verified_uid, unverified_uid);
    // The integration key that sent the study never reads an SR (they carry
    // predictions and reviewers' comments); the clinician does.
    let sr_series = |res: reqwest::Response| async move {
        assert_eq!(res.status().as_u16() / 100, 2);
        let text = res.text().await.unwrap();
        if text.trim().is_empty() {
            0
        } else {
            serde_json::from_str::<Value>(&text)
                .unwrap()
                .as_array()
                .map_or(0, Vec::len)
        }
    };
    let path = format!("/dicom-web/studies/{study}/series?Modality=SR");
    let as_pacs = app
        .client
        .get(app.url(&path))
        .basic_auth(&who.pacs.0, Some(&who.pacs.1))
        .send()
        .await
        .unwrap();
    assert_eq!(
        sr_series(as_pacs).await,
        0,
        "an integration key reads no SR"
    );
    let as_clinician = app
        .client
        .get(app.url(&path))
        .bearer_auth(&who.clinician)
        .send()
        .await
        .unwrap();
    assert_eq!(
        sr_series(as_clinician).await,
        1,
        "the clinician reads the SR series"
    );
    let bytes = retrieve_sr(&app, &who.clinician, &study, &verified_uid).await;
    let (sr, _) = third_party_checks(&bytes, "sr-verified");
    assert_eq!(sr["verification_flag"], "VERIFIED");
    assert_eq!(sr["verifying_observer"], "dr.sr");
    assert_eq!(sr["predecessor"], unverified_uid.as_str());
    assert_numbers_match(&sr, &prediction);
    assert_eq!(sr["observations"]["PNEUMONIA"]["review_decision"], "AMEND");
    assert_eq!(
        sr["observations"]["PLEURALEFFUSION"]["review_decision"],
        "ACCEPT"
    );

    let bundle = get_json(&app, &who.clinician, &format!("/cases/{case_id}/fhir")).await;
    validate_fhir(&bundle);
    let entries = bundle["entry"].as_array().unwrap();
    let report = entries
        .iter()
        .find(|e| e["resource"]["resourceType"] == "DiagnosticReport")
        .unwrap();
    assert_eq!(report["resource"]["status"], "final");
    assert_eq!(report["resource"]["id"], report_id.as_str());
    let obs = entries
        .iter()
        .find(|e| e["resource"]["code"]["coding"][0]["code"] == "PNEUMONIA")
        .unwrap();
    let p = prediction["fused"]["pneumonia"]["opinion"]["probability"]
        .as_f64()
        .unwrap();
    assert!((obs["resource"]["valueQuantity"]["value"].as_f64().unwrap() - p).abs() < 1e-6);
    assert_eq!(
        obs["resource"]["interpretation"][0]["coding"][0]["code"],
        "NEG"
    );
    assert_eq!(obs["resource"]["status"], "final");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_study_the_image_model_does_not_use_gives_an_sr_without_image_library() {
    let app = app_with_models().await;
    let who = Who {
        pacs: app.api_key("pacs", Role::Integration).await,
        clinician: app.session_for("dr.ct", Role::Clinician).await,
    };
    let ct = fusion_imaging::index_attributes(
        &fusion_imaging::parse(&fusion_tests::dicom::read(CT)).unwrap(),
    );
    let accession = ct.accession_number.clone().map(|a| a.to_string());
    stow(&app, &who, CT).await;
    let study = ct.study_instance_uid.to_string();
    // The report reaches the study's case by accession, else by study.
    match &accession {
        Some(a) => post_note(&app, &who, a, PNEUMONIA_REPORT).await,
        None => post_note_to(&app, &who, ("study_instance_uid", &study), PNEUMONIA_REPORT).await,
    }
    let list = get_json(&app, &who.clinician, "/cases").await;
    assert_eq!(list["cases"].as_array().unwrap().len(), 1, "{list:#}");
    let case_id = list["cases"][0]["id"].as_str().unwrap().to_owned();
    // A CT is outside the chest radiograph model's use: text only.
    let versions = app
        .wait_for_predictions(&who.clinician, &case_id, "a text prediction", |v| {
            v.first()
                .is_some_and(|p| p["branches"]["text"]["status"] == "used")
        })
        .await;
    assert_ne!(versions[0]["branches"]["image"]["status"], "used");
    assert_ne!(versions[0]["branches"]["image"]["status"], "discounted");
    let uid = stored_report(&app, &who, &case_id, false).await;
    let bytes = retrieve_sr(&app, &who.clinician, &study, &uid).await;
    let (sr, _) = third_party_checks(&bytes, "sr-no-image-branch");
    assert_eq!(sr["verification_flag"], "UNVERIFIED");
    assert_eq!(sr["image_library"], json!([]));
    assert_eq!(sr["evidence"], json!([ct.sop_instance_uid.to_string()]));
}
