//! Results back in the PACS (issue #17), end to end with a real Orthanc and
//! the real `fusion` binary: Orthanc pushes a study; the fused prediction's
//! UNVERIFIED SR arrives in Orthanc (found through its REST API), and after
//! a clinician's review (through the API) the VERIFIED SR too. Then Orthanc
//! is down for 30 s while a new version is made, and `fusion serve` is
//! killed and started again in between: once Orthanc is back every SR is
//! there exactly once, and each was acknowledged once (the audit trail).
//!
//! Prints the figures the issue asks for: the SR's size and the time from
//! the prediction's commit to its SR in Orthanc.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fusion_schemas::Role;
use fusion_store::{AuditFilter, AuditOutcome};
use fusion_tests::orthanc::{Orthanc, PASSWORD, USER, dicomweb_target, test_dicom};
use fusion_tests::{TestDatabase, repo_root};
use serde_json::{Value, json};

const FUSION: &str = env!("CARGO_BIN_EXE_fusion");
const CR: &str = "pydicom-data-1.0.0/data_store/data/RG1_UNCR.dcm";
const CLINICIAN_PASSWORD: &str = "pw-dr.pacs-0123456789";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn env(db: &TestDatabase, data: &std::path::Path, orthanc: &str) -> Vec<(String, String)> {
    [
        ("DATABASE_URL", db.url.clone()),
        ("FUSION_DATA_DIR", data.display().to_string()),
        (
            "FUSION_MODELS_DIR",
            repo_root().join("models/packages").display().to_string(),
        ),
        ("FUSION_WORKERS", "1".into()),
        ("FUSION_SR_DESTINATION_URL", format!("{orthanc}/dicom-web")),
        ("FUSION_SR_DESTINATION_USER", USER.into()),
        ("FUSION_SR_DESTINATION_PASSWORD", PASSWORD.into()),
        ("FUSION_OUTBOX_BACKOFF_SECONDS", "2".into()),
        ("FUSION_OUTBOX_MAX_ATTEMPTS", "30".into()),
        ("FUSION_ADMIN_PASSWORD", "admin-password-0123456789".into()),
        ("RUST_LOG", "warn".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

struct Served(Child);

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn serve(vars: &[(String, String)], port: u16) -> Served {
    let mut child = Command::new(FUSION)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(vars.iter().cloned())
        .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let served = Served(child);
    let mut reader = BufReader::new(stdout);
    loop {
        let mut line = String::new();
        assert!(reader.read_line(&mut line).unwrap() > 0, "serve exited");
        if line.starts_with("fusion listening on ") {
            // Keep draining so the child never blocks on a full pipe.
            std::thread::spawn(move || {
                let mut sink = String::new();
                while reader.read_line(&mut sink).is_ok_and(|n| n > 0) {
                    sink.clear();
                }
            });
            return served;
        }
    }
}

/// The SR instances Orthanc holds for a study: (SOP Instance UID,
/// VerificationFlag, file size).
async fn orthanc_srs(pacs: &Orthanc, study_uid: &str) -> Vec<(String, String, u64)> {
    let found = pacs
        .request(reqwest::Method::POST, "/tools/find")
        .json(
            &json!({"Level": "Series", "Query": {"StudyInstanceUID": study_uid, "Modality": "SR"}}),
        )
        .send()
        .await;
    let Ok(found) = found else {
        return Vec::new();
    };
    let series: Vec<String> = found.json().await.unwrap_or_default();
    let mut out = Vec::new();
    for s in series {
        let instances: Vec<Value> = pacs
            .get_json(&format!("/series/{s}/instances"))
            .await
            .as_array()
            .unwrap()
            .clone();
        for i in instances {
            let id = i["ID"].as_str().unwrap();
            let tags = pacs
                .get_json(&format!("/instances/{id}/simplified-tags"))
                .await;
            let size = i["FileSize"].as_u64().unwrap_or_default();
            out.push((
                tags["SOPInstanceUID"].as_str().unwrap().to_owned(),
                tags["VerificationFlag"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned(),
                size,
            ));
        }
    }
    out.sort();
    out
}

async fn wait_for_sr(
    pacs: &Orthanc,
    study_uid: &str,
    what: &str,
    done: impl Fn(&[(String, String, u64)]) -> bool,
) -> Vec<(String, String, u64)> {
    let start = Instant::now();
    loop {
        let srs = orthanc_srs(pacs, study_uid).await;
        if done(&srs) {
            return srs;
        }
        assert!(
            start.elapsed() < Duration::from_secs(300),
            "{what}: Orthanc holds {srs:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn get_json(client: &reqwest::Client, url: &str, token: &str) -> Value {
    let res = client.get(url).bearer_auth(token).send().await.unwrap();
    assert_eq!(res.status(), 200, "GET {url}");
    res.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn srs_reach_the_pacs_once_through_an_outage_and_a_restart() {
    let db = TestDatabase::create().await;
    let data = tempfile::tempdir().unwrap();
    let port = free_port();
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();

    // The database, an API key for Orthanc and a clinician, set up as an
    // operator would.
    let out = Command::new(FUSION)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env(&db, data.path(), "http://127.0.0.1:9"))
        .arg("migrate")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let settings = fusion_app::Settings::load_from(
        &fusion_app::config::Overrides::default(),
        env(&db, data.path(), "http://127.0.0.1:9"),
    )
    .unwrap();
    let state = fusion_app::connect_storage(&settings).await.unwrap();
    let operator = fusion_app::admin::Operator {
        name: "test-operator".into(),
    };
    let key =
        fusion_app::admin::create_api_key(&state, &operator, "orthanc", Role::Integration, None)
            .await
            .unwrap();
    use secrecy::ExposeSecret;
    fusion_app::admin::add_user(
        &state,
        &operator,
        "dr.pacs",
        Role::Clinician,
        &secrecy::SecretString::from(CLINICIAN_PASSWORD.to_owned()),
    )
    .await
    .unwrap();

    let mut pacs = Orthanc::start(dicomweb_target(
        "fusion",
        &format!("{base}/dicom-web/"),
        &key.id,
        key.secret.expose_secret(),
    ))
    .await;
    let vars = env(&db, data.path(), &pacs.url);
    let mut served = serve(&vars, port);
    let login: Value = client
        .post(format!("{base}/auth/login"))
        .json(&json!({"username": "dr.pacs", "password": CLINICIAN_PASSWORD}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"].as_str().unwrap().to_owned();

    // Orthanc pushes the study; the prediction's UNVERIFIED SR comes back.
    let uploaded = pacs.upload(&test_dicom(CR)).await;
    let study_uid = pacs
        .study_uid(uploaded["ParentStudy"].as_str().unwrap())
        .await;
    let res = pacs
        .push_study("fusion", uploaded["ParentStudy"].as_str().unwrap())
        .await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    let start = Instant::now();
    let (case_id, v1) = loop {
        let cases = get_json(&client, &format!("{base}/cases"), &token).await;
        if let Some(id) = cases["cases"][0]["id"].as_str() {
            let p = get_json(&client, &format!("{base}/cases/{id}/predictions"), &token).await;
            if let Some(v) = p["predictions"].as_array().unwrap().first() {
                break (id.to_owned(), v.clone());
            }
        }
        assert!(start.elapsed() < Duration::from_secs(300), "no prediction");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let srs = wait_for_sr(&pacs, &study_uid, "the UNVERIFIED SR", |s| !s.is_empty()).await;
    let arrived = chrono::Utc::now();
    let created: chrono::DateTime<chrono::Utc> =
        v1["created_at"].as_str().unwrap().parse().unwrap();
    println!(
        "FIGURE: SR size {} bytes; prediction committed → SR in Orthanc {} ms",
        srs[0].2,
        (arrived - created).num_milliseconds()
    );
    assert_eq!(srs.len(), 1);
    assert_eq!(srs[0].1, "UNVERIFIED");

    // A clinician's review: the VERIFIED SR follows.
    let v1_id = v1["id"].as_str().unwrap();
    let res = client
        .post(format!("{base}/predictions/{v1_id}/reviews"))
        .bearer_auth(&token)
        .json(&json!({"decisions": {"pneumonia": {"decision": "accept"}}}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let srs = wait_for_sr(&pacs, &study_uid, "the VERIFIED SR", |s| s.len() == 2).await;
    let mut flags: Vec<&str> = srs.iter().map(|s| s.1.as_str()).collect();
    flags.sort();
    assert_eq!(flags, ["UNVERIFIED", "VERIFIED"]);

    // The PACS goes down; a new version is made meanwhile and its delivery
    // fails; the service is killed and started again; the PACS returns
    // 30 s after it went down.
    pacs.stop();
    let down = Instant::now();
    let res = client
        .post(format!("{base}/cases/{case_id}/predictions"))
        .basic_auth(&key.id, Some(key.secret.expose_secret()))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let start = Instant::now();
    loop {
        let rows = get_json(
            &client,
            &format!("{base}/cases/{case_id}/deliveries"),
            &token,
        )
        .await;
        let failing = rows["deliveries"].as_array().unwrap().iter().any(|d| {
            d["target"] == "dicomweb"
                && d["state"] == "pending"
                && d["attempts"].as_i64() >= Some(1)
                && d["last_error"].is_string()
        });
        if failing {
            break;
        }
        assert!(start.elapsed() < Duration::from_secs(300), "{rows:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    drop(served); // SIGKILL: no chance to tidy up
    served = serve(&vars, port);
    if let Some(rest) = Duration::from_secs(30).checked_sub(down.elapsed()) {
        tokio::time::sleep(rest).await;
    }
    pacs.start_again().await;
    let srs = wait_for_sr(&pacs, &study_uid, "version 2's SR after the outage", |s| {
        s.len() == 3
    })
    .await;
    let mut uids: Vec<&str> = srs.iter().map(|s| s.0.as_str()).collect();
    uids.dedup();
    assert_eq!(uids.len(), 3, "{srs:?}");

    // Every PACS delivery is delivered, and was acknowledged exactly once.
    let rows = get_json(
        &client,
        &format!("{base}/cases/{case_id}/deliveries"),
        &token,
    )
    .await;
    let dicomweb: Vec<&Value> = rows["deliveries"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["target"] == "dicomweb")
        .collect();
    assert_eq!(dicomweb.len(), 3, "{rows:#}");
    let events = state
        .repository
        .audit_events(&AuditFilter::default())
        .await
        .unwrap();
    for d in dicomweb {
        assert_eq!(d["state"], "delivered", "{d:#}");
        let id = d["id"].as_str().unwrap();
        let acknowledged = events
            .iter()
            .filter(|e| {
                e.record.subtype == "stow-rs-out"
                    && e.record.outcome == AuditOutcome::Success
                    && e.record
                        .entities
                        .iter()
                        .any(|x| x.kind == "delivery" && x.id == id)
            })
            .count();
        assert_eq!(acknowledged, 1, "delivery {id}");
    }
    drop(served);
}
