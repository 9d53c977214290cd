//! A real PACS: Debian's Orthanc with its DICOMweb plugin pushes studies to
//! the service with an integration API key as HTTP Basic credentials, as a
//! hospital would configure it; a wrong secret is refused and audited; and an
//! independent DICOMweb client (Python `dicomweb-client`) searches and
//! retrieves what was pushed.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use fusion_schemas::{Role, SopInstanceUid};
use fusion_store::{AuditFilter, AuditOutcome};
use fusion_tests::dicom::read;
use fusion_tests::orthanc::{Orthanc, dicomweb_target};
use fusion_tests::{run_tool_async, spawn_app};

const FILES: &[&str] = &[
    "pydicom-3.0.2/test_files/CT_small.dcm",
    "pydicom-data-1.0.0/data_store/data/RG1_UNCR.dcm",
];

#[tokio::test]
async fn orthanc_pushes_studies_with_basic_credentials_of_an_api_key() {
    let app = spawn_app().await;
    let (id, secret) = app.api_key("orthanc", Role::Integration).await;
    let target = format!("{}/dicom-web/", app.address);
    let orthanc = Orthanc::start(dicomweb_target("fusion", &target, &id, &secret)).await;
    for file in FILES {
        let bytes = read(file);
        let answer = orthanc.upload(&bytes).await;
        let study = answer["ParentStudy"].as_str().unwrap().to_owned();
        let res = orthanc.push_study("fusion", &study).await;
        let status = res.status();
        let body = res.text().await.unwrap();
        assert!(
            status.is_success(),
            "Orthanc's push of {file} failed: {status} {body}"
        );
        // The service holds the instance, byte for byte.
        let uid = fusion_imaging::parse(&bytes)
            .unwrap()
            .sop_instance_uid()
            .to_string();
        let record = app
            .state
            .repository
            .instance(&SopInstanceUid::parse(&uid).unwrap())
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("{file} not stored"));
        let stored = app.state.blobs.get(&record.blob_key).await.unwrap();
        assert!(
            stored.as_ref() == bytes.as_slice(),
            "{file}: stored bytes differ"
        );
        assert_eq!(record.submitted_by.as_deref(), Some(id.as_str()));
    }
    // Pushing again changes nothing and still succeeds (Orthanc retries).
    let study = orthanc.upload(&read(FILES[0])).await["ParentStudy"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        orthanc
            .push_study("fusion", &study)
            .await
            .status()
            .is_success()
    );
}

#[tokio::test]
async fn a_wrong_secret_is_refused_and_audited() {
    let app = spawn_app().await;
    let (id, _) = app.api_key("orthanc", Role::Integration).await;
    let target = format!("{}/dicom-web/", app.address);
    let orthanc = Orthanc::start(dicomweb_target("fusion", &target, &id, "not-the-secret")).await;
    let study = orthanc.upload(&read(FILES[0])).await["ParentStudy"]
        .as_str()
        .unwrap()
        .to_owned();
    let res = orthanc.push_study("fusion", &study).await;
    assert!(!res.status().is_success(), "the push must fail");
    let failures = app
        .state
        .repository
        .audit_events(&AuditFilter {
            outcome: Some(AuditOutcome::SeriousFailure),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert!(!failures.is_empty());
    let e = &failures[0].record;
    assert_eq!(e.event_type.code(), "110114");
    assert_eq!(e.outcome_desc.as_deref(), Some("wrong API key secret"));
    assert_eq!(e.entities[0].id, id);
    assert_eq!(e.agent.address.as_deref(), Some("127.0.0.1"));
    let uid = fusion_imaging::parse(&read(FILES[0]))
        .unwrap()
        .sop_instance_uid()
        .to_string();
    assert!(
        app.state
            .repository
            .instance(&SopInstanceUid::parse(&uid).unwrap())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn dicomweb_client_searches_and_retrieves() {
    let app = spawn_app().await;
    let (id, secret) = app.api_key("orthanc", Role::Integration).await;
    let target = format!("{}/dicom-web/", app.address);
    let orthanc = Orthanc::start(dicomweb_target("fusion", &target, &id, &secret)).await;
    let bytes = read(FILES[0]);
    let study = orthanc.upload(&bytes).await["ParentStudy"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        orthanc
            .push_study("fusion", &study)
            .await
            .status()
            .is_success()
    );
    let instance = fusion_imaging::parse(&bytes).unwrap();
    let study_uid = instance.study_instance_uid().to_string();
    let base = format!("{}/dicom-web", app.address);
    let (ok, out) = run_tool_async(
        "dicomweb_client_check.py",
        &[&base, &id, &secret, &study_uid],
    )
    .await;
    assert!(ok, "dicomweb-client failed: {out}");
    let json: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(json["studies"], serde_json::json!([study_uid]));
    assert_eq!(
        json["series"],
        serde_json::json!([instance.series_instance_uid().to_string()])
    );
    let got = &json["instances"][0];
    assert_eq!(
        got["sop_instance_uid"],
        instance.sop_instance_uid().to_string()
    );
    let pixels = instance
        .object()
        .element(dicom_dictionary_std::tags::PIXEL_DATA)
        .unwrap()
        .to_bytes()
        .unwrap();
    let sha = {
        use sha2::Digest;
        hex::encode(sha2::Sha256::digest(&pixels))
    };
    assert_eq!(got["pixel_sha256"], sha.as_str());
}
