//! The Orthanc harness itself: a real Orthanc starts on free ports, stores
//! real DICOM files and lists them over its own DICOMweb, stops without
//! leaving its process behind, and fails a push to a DICOMweb target that is
//! down.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use fusion_tests::orthanc::{
    Orthanc, dicomweb_target, merge_targets, process_alive, study_uids, test_dicom,
};
use serde_json::json;

const CT: &str = "pydicom-3.0.2/test_files/CT_small.dcm";
const MR: &str = "pydicom-3.0.2/test_files/MR_small.dcm";
/// Their Study Instance UIDs, as dcmtk's `dcmdump` reads them.
const CT_STUDY: &str = "1.3.6.1.4.1.5962.1.2.1.20040119072730.12322";
const MR_STUDY: &str = "1.3.6.1.4.1.5962.1.2.4.20040826185059.5457";

#[tokio::test]
async fn orthanc_stores_real_dicom_lists_it_over_dicomweb_and_stops() {
    let mut pacs = Orthanc::start(json!({})).await;
    let pid = pacs.pid().expect("a PID file");
    assert!(process_alive(pid));
    assert_eq!(pacs.instance_count().await, 0);
    assert!(pacs.qido_studies().await.is_empty());

    // Credentials are required.
    let anon = pacs
        .client
        .get(pacs.endpoint("/system"))
        .send()
        .await
        .unwrap();
    assert_eq!(anon.status(), 401);

    let mut uids = Vec::new();
    for file in [CT, MR] {
        let stored = pacs.upload(&test_dicom(file)).await;
        assert_eq!(stored["Status"], "Success", "{file}: {stored}");
        let study_id = stored["ParentStudy"].as_str().unwrap();
        let uid = pacs.study_uid(study_id).await;
        assert_eq!(pacs.lookup_study(&uid).await, study_id);
        uids.push(uid);
    }
    uids.sort();
    let mut expected = vec![CT_STUDY.to_owned(), MR_STUDY.to_owned()];
    expected.sort();
    assert_eq!(uids, expected);

    // Re-sending an instance changes nothing.
    let again = pacs.upload(&test_dicom(CT)).await;
    assert_eq!(again["Status"], "AlreadyStored");

    assert_eq!(pacs.instance_count().await, 2);
    let qido = pacs.qido_studies().await;
    assert_eq!(study_uids(&qido), expected, "{qido:?}");

    // Longer than Orthanc's 1 s keep-alive: the client must not reuse a
    // connection the server has closed.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(pacs.instance_count().await, 2);

    let url = pacs.url.clone();
    pacs.stop();
    assert!(!process_alive(pid), "Orthanc (pid {pid}) still runs");
    assert!(pacs.pid().is_none(), "PID file left behind");
    let after = reqwest::Client::new()
        .get(format!("{url}/system"))
        .timeout(Duration::from_secs(2))
        .send()
        .await;
    assert!(after.is_err(), "something still answers on {url}");
}

#[tokio::test]
async fn a_push_to_a_dicomweb_target_that_is_down_fails() {
    // A port that was free a moment ago and that nobody listens on now.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let pacs = Orthanc::start(merge_targets(&[
        dicomweb_target(
            "down",
            &format!("http://127.0.0.1:{closed}/dicom-web/"),
            "user",
            "pass",
        ),
        dicomweb_target("other", "http://127.0.0.1:9/dicom-web/", "u", "p"),
    ]))
    .await;
    assert_eq!(
        pacs.get_json("/dicom-web/servers").await,
        json!(["down", "other"])
    );
    let stored = pacs.upload(&test_dicom(MR)).await;
    let study = pacs.lookup_study(MR_STUDY).await;
    assert_eq!(study, stored["ParentStudy"].as_str().unwrap());

    let started = Instant::now();
    let res = pacs.push_study("down", &study).await;
    let status = res.status();
    let body = res.text().await.unwrap();
    assert!(
        status.is_server_error() || status.is_client_error(),
        "push to a closed port answered {status}: {body}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "push took {:?}",
        started.elapsed()
    );
    eprintln!(
        "push to a target that is down: {status} in {:?}: {body}",
        started.elapsed()
    );

    // An unknown target is an error too, not a silent success.
    let res = pacs.push_study("nope", &study).await;
    assert!(!res.status().is_success(), "{}", res.status());
}

#[tokio::test]
async fn parallel_instances_get_their_own_ports_and_folders() {
    let (a, b, c) = tokio::join!(
        Orthanc::start(json!({})),
        Orthanc::start(json!({})),
        Orthanc::start(json!({}))
    );
    let mut ports = vec![
        a.http_port(),
        a.dicom_port(),
        b.http_port(),
        b.dicom_port(),
        c.http_port(),
        c.dicom_port(),
    ];
    ports.sort_unstable();
    ports.dedup();
    assert_eq!(ports.len(), 6, "ports collide: {ports:?}");
    a.upload(&test_dicom(CT)).await;
    assert_eq!(a.instance_count().await, 1);
    assert_eq!(b.instance_count().await, 0);
    assert_eq!(c.instance_count().await, 0);
}
