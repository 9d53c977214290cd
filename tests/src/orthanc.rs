//! A real PACS for the tests: a throw-away Orthanc (with its DICOMweb plugin)
//! started by `scripts/orthanc` in a temporary folder on free ports, and a
//! small REST client for it. Dropping the handle stops the server.
//!
//! ```text
//! let app = spawn_app().await;
//! let (key_id, secret) = app.api_key("orthanc", Role::Integration).await;
//! let pacs = Orthanc::start(dicomweb_target(
//!     "fusion",
//!     &format!("{}/dicom-web/", app.address),
//!     &key_id,
//!     &secret,
//! ))
//! .await;
//! let uploaded = pacs.upload(&test_dicom("pydicom-3.0.2/test_files/CT_small.dcm")).await;
//! let res = pacs.push_study("fusion", uploaded["ParentStudy"].as_str().unwrap()).await;
//! ```
//!
//! The first start on a machine installs the Debian packages (root, apt,
//! about half a minute); later starts take well under a second.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};
use tempfile::TempDir;

use crate::repo_root;

/// The basic-auth user the handle starts Orthanc with.
pub const USER: &str = "pacs";
/// Its password.
pub const PASSWORD: &str = "pacspass";

/// A running Orthanc, stopped (SIGTERM, then SIGKILL) when dropped.
pub struct Orthanc {
    /// Base URL, `http://127.0.0.1:<port>` (no trailing slash).
    pub url: String,
    /// A client without idle pooling beyond Orthanc's 1 s keep-alive.
    pub client: reqwest::Client,
    dir: TempDir,
    stopped: bool,
}

/// `{"<name>": ["<url>", "<user>", "<password>"]}`: a `DicomWeb.Servers`
/// object with one target. Merge several with [`merge_targets`].
pub fn dicomweb_target(name: &str, url: &str, user: &str, password: &str) -> Value {
    json!({ name: [url, user, password] })
}

/// Merges `DicomWeb.Servers` objects (later entries win).
pub fn merge_targets(targets: &[Value]) -> Value {
    let mut all = serde_json::Map::new();
    for t in targets {
        all.extend(t.as_object().expect("a JSON object").clone());
    }
    Value::Object(all)
}

/// The bytes of a fetched test file, by its path in
/// `tests/data/dicom-catalog.tsv` (e.g. `pydicom-3.0.2/test_files/CT_small.dcm`).
pub fn test_dicom(rel: &str) -> Vec<u8> {
    let path = repo_root().join(".test-data/dicom").join(rel);
    std::fs::read(&path)
        .unwrap_or_else(|e| panic!("{}: {e} (run scripts/fetch-test-data)", path.display()))
}

/// Whether `pid` is a live process (a zombie counts as gone: the container's
/// PID 1 need not reap the orphaned server).
pub fn process_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit_once(") ").map(|(_, rest)| rest.chars().next());
            !matches!(state, Some(Some('Z' | 'X')) | None)
        }
        Err(_) => false,
    }
}

fn script() -> PathBuf {
    repo_root().join("scripts/orthanc")
}

impl Orthanc {
    /// Starts Orthanc with `dicomweb_servers` as its `DicomWeb.Servers`
    /// (a JSON object, `json!({})` for none; see [`dicomweb_target`]).
    pub async fn start(dicomweb_servers: Value) -> Self {
        assert!(
            dicomweb_servers.is_object(),
            "DicomWeb.Servers must be a JSON object"
        );
        let dir = tempfile::Builder::new()
            .prefix("orthanc-")
            .tempdir()
            .unwrap();
        let path = dir.path().to_owned();
        let servers = dicomweb_servers.to_string();
        let out = tokio::task::spawn_blocking(move || {
            Command::new(script())
                .arg("start")
                .arg(&path)
                .env("ORTHANC_USER", USER)
                .env("ORTHANC_PASSWORD", PASSWORD)
                .env("ORTHANC_DICOMWEB_SERVERS", servers)
                .env("ORTHANC_WATCH_PID", std::process::id().to_string())
                .env_remove("ORTHANC_HTTP_PORT")
                .env_remove("ORTHANC_DICOM_PORT")
                .output()
                .expect("run scripts/orthanc")
        })
        .await
        .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "scripts/orthanc start failed ({}):\n{}{}",
            out.status,
            stdout,
            String::from_utf8_lossy(&out.stderr)
        );
        let url = stdout.trim().to_owned();
        assert!(
            url.starts_with("http://127.0.0.1:") && !url.contains('\n'),
            "unexpected output of scripts/orthanc start: {stdout:?}"
        );
        let client = reqwest::Client::builder()
            .pool_idle_timeout(Duration::from_millis(500))
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap();
        Self {
            url,
            client,
            dir,
            stopped: false,
        }
    }

    /// The folder holding config, storage, logs and PID file.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's PID while it runs.
    pub fn pid(&self) -> Option<u32> {
        std::fs::read_to_string(self.dir().join("orthanc.pid"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
    }

    /// The config Orthanc runs with.
    pub fn config(&self) -> Value {
        serde_json::from_slice(&std::fs::read(self.dir().join("orthanc.json")).unwrap()).unwrap()
    }

    /// The HTTP port.
    pub fn http_port(&self) -> u16 {
        self.config()["HttpPort"]
            .as_u64()
            .unwrap()
            .try_into()
            .unwrap()
    }

    /// The DICOM (DIMSE) port; the AE title is `ORTHANC`.
    pub fn dicom_port(&self) -> u16 {
        self.config()["DicomPort"]
            .as_u64()
            .unwrap()
            .try_into()
            .unwrap()
    }

    /// Orthanc's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir().join("logs/orthanc.log")).unwrap_or_default()
    }

    /// `url` + `path` (`path` starts with `/`).
    pub fn endpoint(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    /// A request with Orthanc's credentials.
    pub fn request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.client
            .request(method, self.endpoint(path))
            .basic_auth(USER, Some(PASSWORD))
    }

    /// GET `path`, expecting 200 and JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        let res = self
            .request(reqwest::Method::GET, path)
            .send()
            .await
            .unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        assert_eq!(status, 200, "GET {path}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// Stores one DICOM file (POST /instances); returns Orthanc's answer:
    /// `ID`, `ParentStudy`, `ParentSeries`, `ParentPatient`, `Status`
    /// (`Success` or `AlreadyStored`).
    pub async fn upload(&self, bytes: &[u8]) -> Value {
        let res = self
            .request(reqwest::Method::POST, "/instances")
            .header(reqwest::header::CONTENT_TYPE, "application/dicom")
            .body(bytes.to_vec())
            .send()
            .await
            .unwrap();
        let status = res.status();
        let text = res.text().await.unwrap();
        assert_eq!(status, 200, "POST /instances: {text}");
        serde_json::from_str(&text).unwrap()
    }

    /// The Orthanc id of the study with this Study Instance UID.
    pub async fn lookup_study(&self, study_instance_uid: &str) -> String {
        let res = self
            .request(reqwest::Method::POST, "/tools/lookup")
            .body(study_instance_uid.to_owned())
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "POST /tools/lookup");
        let found: Value = res.json().await.unwrap();
        found
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["Type"] == "Study")
            .unwrap_or_else(|| panic!("no study {study_instance_uid} in Orthanc: {found}"))["ID"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// The Study Instance UID of a study, by its Orthanc id.
    pub async fn study_uid(&self, orthanc_study_id: &str) -> String {
        let study = self.get_json(&format!("/studies/{orthanc_study_id}")).await;
        study["MainDicomTags"]["StudyInstanceUID"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Has Orthanc push a study to DICOMweb target `server` (STOW-RS,
    /// synchronously): 200 when the target accepted every instance, an HTTP
    /// error (500) when the push failed.
    pub async fn push_study(&self, server: &str, orthanc_study_id: &str) -> reqwest::Response {
        self.request(
            reqwest::Method::POST,
            &format!("/dicom-web/servers/{server}/stow"),
        )
        .json(&json!({ "Resources": [orthanc_study_id] }))
        .send()
        .await
        .unwrap()
    }

    /// How many instances Orthanc stores.
    pub async fn instance_count(&self) -> u64 {
        self.get_json("/statistics").await["CountInstances"]
            .as_u64()
            .unwrap()
    }

    /// QIDO-RS on Orthanc's own DICOMweb: the studies it holds (DICOM JSON).
    pub async fn qido_studies(&self) -> Vec<Value> {
        let res = self
            .request(reqwest::Method::GET, "/dicom-web/studies")
            .header(reqwest::header::ACCEPT, "application/dicom+json")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200, "QIDO /dicom-web/studies");
        res.json().await.unwrap()
    }

    /// Starts a stopped server again on the same folder, ports and
    /// DICOMweb targets, its stored instances kept (a PACS back after an
    /// outage).
    pub async fn start_again(&mut self) {
        let (http, dicom) = (self.http_port(), self.dicom_port());
        let servers = self.config()["DicomWeb"]["Servers"].to_string();
        let path = self.dir().to_owned();
        let out = tokio::task::spawn_blocking(move || {
            Command::new(script())
                .arg("start")
                .arg(&path)
                .env("ORTHANC_USER", USER)
                .env("ORTHANC_PASSWORD", PASSWORD)
                .env("ORTHANC_DICOMWEB_SERVERS", servers)
                .env("ORTHANC_WATCH_PID", std::process::id().to_string())
                .env("ORTHANC_HTTP_PORT", http.to_string())
                .env("ORTHANC_DICOM_PORT", dicom.to_string())
                .output()
                .expect("run scripts/orthanc")
        })
        .await
        .unwrap();
        assert!(
            out.status.success(),
            "scripts/orthanc start (again) failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.stopped = false;
    }

    /// Stops the server now (also done on drop); idempotent.
    pub fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        let out = Command::new(script())
            .arg("stop")
            .arg(self.dir.path())
            .output();
        match out {
            Ok(out) if out.status.success() => {}
            Ok(out) => eprintln!(
                "scripts/orthanc stop failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            ),
            Err(e) => eprintln!("scripts/orthanc stop: {e}"),
        }
    }
}

impl Drop for Orthanc {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The Study Instance UIDs (0020000D) in a QIDO-RS answer.
pub fn study_uids(qido: &[Value]) -> Vec<String> {
    let mut uids: Vec<String> = qido
        .iter()
        .filter_map(|s| s["0020000D"]["Value"][0].as_str().map(str::to_owned))
        .collect();
    uids.sort();
    uids
}
