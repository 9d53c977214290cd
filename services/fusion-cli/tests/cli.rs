//! The `fusion` binary as an operator runs it: `serve` prints its URL and
//! answers the probes on SQLite and PostgreSQL; a bad `DATABASE_URL` ends it
//! with one clear line; `migrate` migrates.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};

use fusion_tests::TestDatabase;

const FUSION: &str = env!("CARGO_BIN_EXE_fusion");

/// A `fusion` command with a clean environment: no settings leak in from
/// the developer's shell.
fn fusion(data_dir: &std::path::Path) -> Command {
    let mut cmd = Command::new(FUSION);
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("FUSION_DATA_DIR", data_dir)
        .env("RUST_LOG", "warn");
    cmd
}

struct Served {
    child: Child,
    url: String,
    /// What `serve` printed before its URL (the first-start admin lines).
    preamble: Vec<String>,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `fusion serve --bind 127.0.0.1:0` and reads the URL it prints.
fn serve(mut cmd: Command) -> Served {
    let mut child = cmd
        .args(["serve", "--bind", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    // Owned by `Served` from here on, whose Drop kills and waits.
    let mut served = Served {
        child,
        url: String::new(),
        preamble: Vec::new(),
    };
    let mut reader = BufReader::new(stdout);
    loop {
        let mut line = String::new();
        let n = reader.read_line(&mut line).unwrap();
        assert!(n > 0, "serve exited: {:?}", served.preamble);
        if let Some(url) = line.trim().strip_prefix("fusion listening on ") {
            served.url = url.to_owned();
            return served;
        }
        served.preamble.push(line.trim().to_owned());
    }
}

async fn status(url: &str) -> u16 {
    reqwest::get(url).await.unwrap().status().as_u16()
}

#[tokio::test]
async fn serve_on_the_embedded_default() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(fusion(dir.path()));
    assert!(
        served.url.starts_with("http://127.0.0.1:"),
        "{}",
        served.url
    );
    assert_eq!(status(&format!("{}/healthz", served.url)).await, 200);
    assert_eq!(status(&format!("{}/readyz", served.url)).await, 200);
    assert!(dir.path().join("fusion.db").is_file());
    assert!(dir.path().join("blobs").is_dir());
}

#[tokio::test]
async fn serve_on_postgres() {
    let db = TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = fusion(dir.path());
    cmd.env("DATABASE_URL", &db.url);
    let served = serve(cmd);
    assert_eq!(status(&format!("{}/healthz", served.url)).await, 200);
    assert_eq!(status(&format!("{}/readyz", served.url)).await, 200);
    assert!(
        !dir.path().join("fusion.db").exists(),
        "no SQLite file on PostgreSQL"
    );
}

fn assert_one_clear_line(out: &Output, expected: &str) {
    assert!(!out.status.success());
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "one line expected, got:\n{stderr}");
    assert!(lines[0].starts_with("fusion: error: "), "{stderr}");
    assert!(lines[0].contains(expected), "{stderr}");
    assert!(
        !stderr.contains("panicked") && !stderr.contains("backtrace"),
        "{stderr}"
    );
}

#[test]
fn a_bad_database_url_exits_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let cases = [
        ("mysql://db/fusion", "must start with postgres://"),
        ("not a url", "must start with postgres://"),
        (
            "postgres://fusion:s3cret-pw@127.0.0.1:1/fusion",
            "cannot connect to the postgres database",
        ),
    ];
    for (url, expected) in cases {
        let out = fusion(dir.path())
            .env("DATABASE_URL", url)
            .args(["serve", "--bind", "127.0.0.1:0"])
            .output()
            .unwrap();
        assert_one_clear_line(&out, expected);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains("s3cret-pw"),
            "the password leaked: {stderr}"
        );
    }
}

#[test]
fn a_malformed_setting_exits_with_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = fusion(dir.path())
        .env("FUSION_LOG_FORMAT", "xml")
        .arg("serve")
        .output()
        .unwrap();
    assert_one_clear_line(&out, "log_format");
}

#[test]
fn migrate_creates_the_embedded_database() {
    let dir = tempfile::tempdir().unwrap();
    let out = fusion(dir.path()).arg("migrate").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "fusion: migrations applied (sqlite)"
    );
    assert!(dir.path().join("fusion.db").is_file());
}

fn run_with_stdin(mut cmd: Command, args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = cmd
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[tokio::test]
async fn first_start_creates_an_admin_whose_password_works_once_shown() {
    let dir = tempfile::tempdir().unwrap();
    let served = serve(fusion(dir.path()));
    let line = served
        .preamble
        .iter()
        .find_map(|l| l.strip_prefix("fusion: one-time admin password: "))
        .unwrap_or_else(|| panic!("no admin password in {:?}", served.preamble));
    let password = line.to_owned();
    let res = reqwest::Client::new()
        .post(format!("{}/auth/login", served.url))
        .json(&serde_json::json!({ "username": "admin", "password": password }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    drop(served);
    // A second start does not create or print it again.
    let again = serve(fusion(dir.path()));
    assert!(again.preamble.is_empty(), "{:?}", again.preamble);
}

#[tokio::test]
async fn the_admin_password_can_be_given() {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = fusion(dir.path());
    cmd.env("FUSION_ADMIN_PASSWORD", "a-long-admin-passphrase");
    let served = serve(cmd);
    assert!(
        served.preamble.iter().all(|l| !l.contains("one-time")),
        "{:?}",
        served.preamble
    );
    let res = reqwest::Client::new()
        .post(format!("{}/auth/login", served.url))
        .json(&serde_json::json!({ "username": "admin", "password": "a-long-admin-passphrase" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

#[test]
fn users_and_api_keys_are_managed_from_the_command_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = run_with_stdin(
        fusion(dir.path()),
        &["user", "add", "dr.yang", "--role", "clinician"],
        "correct horse battery\n",
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = run_with_stdin(
        fusion(dir.path()),
        &["user", "add", "dr.short", "--role", "clinician"],
        "short\n",
    );
    assert_one_clear_line(&out, "at least 12 characters");
    let out = run_with_stdin(
        fusion(dir.path()),
        &["user", "add", "dr.yang", "--role", "clinician"],
        "correct horse battery\n",
    );
    assert_one_clear_line(&out, "already exists");
    let out = fusion(dir.path())
        .args(["user", "add", "x", "--role", "root"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("unknown role"));

    let out = fusion(dir.path())
        .args([
            "apikey",
            "create",
            "--role",
            "integration",
            "--name",
            "orthanc",
        ])
        .output()
        .unwrap();
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{stdout}");
    let id = lines[0].strip_prefix("id: ").unwrap();
    let secret = lines[1].strip_prefix("secret: ").unwrap();
    assert!(id.starts_with("fk_") && id.len() == 19, "{id}");
    assert_eq!(secret.len(), 43);

    let out = fusion(dir.path())
        .args(["apikey", "list"])
        .output()
        .unwrap();
    let listed = String::from_utf8_lossy(&out.stdout);
    assert!(listed.contains(id) && listed.contains("active"), "{listed}");
    assert!(!listed.contains(secret), "the secret is shown once only");
    let out = fusion(dir.path())
        .args(["apikey", "revoke", id])
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = fusion(dir.path())
        .args(["apikey", "list"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("revoked"));

    let out = fusion(dir.path())
        .args(["user", "disable", "dr.yang"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = fusion(dir.path()).args(["user", "list"]).output().unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "dr.yang\tclinician\tdisabled"
    );
    // Without a log filter asked for, the answer alone: no INFO lines of
    // the service ("storage ready").
    let out = fusion(dir.path())
        .env_remove("RUST_LOG")
        .args(["user", "list"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stderr), "");
    let out = fusion(dir.path())
        .args(["user", "disable", "nobody"])
        .output()
        .unwrap();
    assert_one_clear_line(&out, "no user named");
    // Every event about the account names it the same way (by username),
    // so one filter finds its creation and its disabling.
    let out = fusion(dir.path())
        .args(["audit", "export", "--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let export: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let user_events: Vec<(String, String)> = export["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["subtype"].as_str().unwrap().starts_with("user-"))
        .map(|e| {
            (
                e["subtype"].as_str().unwrap().to_owned(),
                e["entities"][0]["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        user_events,
        [
            ("user-create".to_owned(), "dr.yang".to_owned()),
            ("user-disable".to_owned(), "dr.yang".to_owned())
        ],
        "{export}"
    );
}

#[test]
fn apikey_create_prints_shell_assignments_or_json_for_scripts() {
    let dir = tempfile::tempdir().unwrap();
    let create = |format: &str| {
        let out = fusion(dir.path())
            .args([
                "apikey",
                "create",
                "--role",
                "integration",
                "--name",
                "ehr",
                "--expires-in-days",
                "30",
                "--format",
                format,
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    // `eval "$(fusion apikey create … --format env)"` sets KEY_ID and KEY_SECRET.
    let env = create("env");
    let script =
        format!("{env}\nprintf '%s\\n%s\\n%s' \"$KEY_ID\" \"$KEY_SECRET\" \"$KEY_EXPIRES\"");
    let out = Command::new("sh").args(["-c", &script]).output().unwrap();
    let shown = String::from_utf8(out.stdout).unwrap();
    let values: Vec<&str> = shown.lines().collect();
    assert_eq!(values.len(), 3, "{env}");
    assert!(
        values[0].starts_with("fk_") && values[0].len() == 19,
        "{env}"
    );
    assert_eq!(values[1].len(), 43, "{env}");
    assert!(
        values[2].parse::<chrono::DateTime<chrono::Utc>>().is_ok(),
        "{env}"
    );

    let json: serde_json::Value = serde_json::from_str(&create("json")).unwrap();
    assert!(json["id"].as_str().unwrap().starts_with("fk_"), "{json}");
    assert_eq!(json["secret"].as_str().unwrap().len(), 43, "{json}");
    assert_eq!(json["role"], "integration");
    assert_eq!(json["name"], "ehr");
    assert!(json["expires_at"].is_string(), "{json}");

    let out = fusion(dir.path())
        .args(["apikey", "list"])
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 2);
}

#[tokio::test]
async fn audit_verify_exits_1_and_names_the_first_broken_event() {
    let db = TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let with_db = || {
        let mut cmd = fusion(dir.path());
        cmd.env("DATABASE_URL", &db.url);
        cmd
    };
    for name in ["a", "b", "c"] {
        let out = with_db()
            .args(["apikey", "create", "--role", "integration", "--name", name])
            .output()
            .unwrap();
        assert!(out.status.success());
    }
    let out = with_db().args(["audit", "verify"]).output().unwrap();
    assert!(out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with("fusion: audit chain intact: 3 events"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let mut owner = db.admin_of_app().await;
    for sql in [
        "ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only",
        "UPDATE audit_events SET outcome_desc = 'nothing to see' WHERE seq = 2",
        "ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only",
    ] {
        sqlx::query(sql).execute(&mut owner).await.unwrap();
    }
    let out = with_db().args(["audit", "verify"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("BROKEN at event 2"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    let file = dir.path().join("audit.json");
    let out = with_db()
        .args([
            "audit",
            "export",
            "--format",
            "fhir",
            "--out",
            file.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bundle: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    // 3 key creations, 1 verify (the intact one), and this export; a
    // `collection` carries no `total` (FHIR R4 invariant bdl-1).
    assert_eq!(bundle["entry"].as_array().map(Vec::len), Some(5));
    assert!(bundle.get("total").is_none());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "patient ids: owner only");
        // Replacing a world-readable file leaves it owner-only too.
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        let out = with_db()
            .args(["audit", "export", "--out", file.to_str().unwrap()])
            .output()
            .unwrap();
        assert!(out.status.success());
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "replaced: owner only");
    }
}

/// A whole scenario at debug level: no password, session token, CSRF token
/// or API key secret may appear in the logs.
#[tokio::test]
async fn logs_carry_no_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("fusion.log");
    let mut cmd = fusion(dir.path());
    cmd.env("RUST_LOG", "debug")
        .env("FUSION_LOG_FORMAT", "json")
        .env("FUSION_ADMIN_PASSWORD", "admin-secret-passphrase")
        .stderr(std::fs::File::create(&log).unwrap());
    let served = serve(cmd);
    let client = reqwest::Client::new();
    let res = client
        .post(format!("{}/auth/login", served.url))
        .json(&serde_json::json!({ "username": "admin", "password": "admin-secret-passphrase" }))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = res.json().await.unwrap();
    let token = body["token"].as_str().unwrap().to_owned();
    let csrf = body["csrf_token"].as_str().unwrap().to_owned();
    client
        .get(format!("{}/auth/me", served.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let out = fusion(dir.path())
        .args([
            "apikey",
            "create",
            "--role",
            "integration",
            "--name",
            "pacs",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    let id = stdout
        .lines()
        .next()
        .unwrap()
        .strip_prefix("id: ")
        .unwrap()
        .to_owned();
    let secret = stdout
        .lines()
        .nth(1)
        .unwrap()
        .strip_prefix("secret: ")
        .unwrap()
        .to_owned();
    for password in [secret.as_str(), "wrong-secret-value"] {
        client
            .get(format!("{}/auth/me", served.url))
            .basic_auth(&id, Some(password))
            .send()
            .await
            .unwrap();
    }
    // A note, whose text must not reach the logs either.
    let res = client
        .post(format!(
            "{}/notes?patient_id=LOG-SCAN-1&accession_number=LOGSCAN1",
            served.url
        ))
        .basic_auth(&id, Some(&secret))
        .header("Content-Type", "text/plain")
        .body("FINDINGS: Zanzibarite opacity quintessentially absent. No pleural effusion.")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    client
        .post(format!("{}/auth/login", served.url))
        .json(&serde_json::json!({ "username": "admin", "password": "typo-admin-passphrase" }))
        .send()
        .await
        .unwrap();
    client
        .post(format!("{}/auth/logout", served.url))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    drop(served);
    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(
        logs.lines().count() > 10,
        "too little logged to judge:\n{logs}"
    );
    assert!(
        logs.contains("request_id"),
        "requests carry an id in the logs"
    );
    for needle in [
        "admin-secret-passphrase",
        "typo-admin-passphrase",
        "wrong-secret-value",
        token.as_str(),
        csrf.as_str(),
        secret.as_str(),
        "Zanzibarite",
        "quintessentially",
    ] {
        assert!(
            !logs.contains(needle),
            "a secret leaked into the logs: {needle}"
        );
    }
}

/// `fusion serve --demo` (what `scripts/serve --demo` runs): the public
/// chest radiograph and an invented report become one case whose prediction
/// fuses both branches well within a minute of start, and the printed demo
/// clinician sees it. Needs `scripts/fetch-test-data` and `scripts/fetch-models`.
#[tokio::test]
async fn the_demo_yields_a_fused_prediction_within_a_minute_of_start() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dicom = root.join(".test-data/dicom/pydicom-data-1.0.0/data_store/data/RG1_UNCR.dcm");
    let models = root.join("models/packages");
    assert!(
        dicom.is_file()
            && models
                .join("pneumonia-xception/model.safetensors")
                .is_file(),
        "run scripts/fetch-test-data and scripts/fetch-models first"
    );
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let mut cmd = fusion(dir.path());
    let child = cmd
        .env("FUSION_DEMO_DICOM", &dicom)
        .env("FUSION_MODELS_DIR", &models)
        .args(["serve", "--bind", "127.0.0.1:0", "--demo"])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut served = Served {
        child,
        url: String::new(),
        preamble: Vec::new(),
    };
    let stdout = served.child.stdout.take().unwrap();
    let mut reader = BufReader::new(stdout);
    let mut password = None;
    while password.is_none() {
        let mut line = String::new();
        let n = reader.read_line(&mut line).unwrap();
        assert!(n > 0, "serve exited: {:?}", served.preamble);
        let line = line.trim().to_owned();
        if let Some(url) = line.strip_prefix("fusion listening on ") {
            served.url = url.to_owned();
        }
        if let Some(rest) = line.split_once(" as 'demo' with password ") {
            password = rest.1.split_whitespace().next().map(str::to_owned);
        }
        served.preamble.push(line);
    }
    assert!(
        served
            .preamble
            .iter()
            .any(|l| l.starts_with("fusion: one-time admin password: ")),
        "{:?}",
        served.preamble
    );
    let client = reqwest::Client::new();
    let login: serde_json::Value = client
        .post(format!("{}/auth/login", served.url))
        .json(&serde_json::json!({ "username": "demo", "password": password }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let token = login["token"].as_str().unwrap().to_owned();
    let get = |path: String| {
        let request = client
            .get(format!("{}{path}", served.url))
            .bearer_auth(&token);
        async move {
            let res = request.send().await.unwrap();
            assert_eq!(res.status(), 200);
            res.json::<serde_json::Value>().await.unwrap()
        }
    };
    loop {
        let cases = get("/cases".to_owned()).await;
        if let Some(case) = cases["cases"].as_array().and_then(|c| c.first()) {
            let versions = get(format!(
                "/cases/{}/predictions",
                case["id"].as_str().unwrap()
            ))
            .await;
            let fused = versions["predictions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|p| {
                    p["fused"]["pneumonia"]["sources"] == serde_json::json!(["image", "text"])
                });
            if let Some(p) = fused {
                assert_eq!(p["branches"]["text"]["status"], "used", "{p}");
                // RG1 is an adult: outside the pediatric model's intended use.
                assert_eq!(p["branches"]["image"]["status"], "discounted", "{p}");
                break;
            }
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(60),
            "no fused demo prediction within a minute of start"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    eprintln!("demo: fused prediction {:?} after start", started.elapsed());
}

/// Issue #14, findings 5 and 8 as an operator meets them: `fusion audit
/// verify` prints the head and its sequence number; `--expect-head` with
/// that head passes while the trail only grows, and fails once the newest
/// events are deleted (which the chain alone does not show); `fusion blobs
/// gc` removes a blob no row refers to.
#[tokio::test]
async fn audit_verify_expect_head_and_blobs_gc() {
    let db = TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let with_db = || {
        let mut cmd = fusion(dir.path());
        cmd.env("DATABASE_URL", &db.url);
        cmd
    };
    let key = |name: &str| {
        let out = with_db()
            .args(["apikey", "create", "--role", "integration", "--name", name])
            .output()
            .unwrap();
        assert!(out.status.success());
    };
    key("a");
    key("b");
    let out = with_db().args(["audit", "verify"]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{text}");
    // "fusion: audit chain intact: 2 events, head <hash> (seq 2)"
    let head = text
        .split("head ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap()
        .to_owned();
    assert_eq!(head.len(), 64, "{text}");
    assert!(text.trim_end().ends_with("(seq 2)"), "{text}");
    key("c");
    let anchored = |extra: &[&str]| {
        let mut cmd = with_db();
        cmd.args(["audit", "verify", "--expect-head", &head])
            .args(extra);
        cmd.output().unwrap()
    };
    let found = anchored(&["--expect-seq", "2"]);
    assert!(found.status.success());
    assert!(
        String::from_utf8_lossy(&found.stdout)
            .contains(&format!("the expected head {head} is in the chain")),
        "{}",
        String::from_utf8_lossy(&found.stdout)
    );
    assert!(anchored(&[]).status.success());
    let bad = with_db()
        .args(["audit", "verify", "--expect-head", "not-a-hash"])
        .output()
        .unwrap();
    assert!(!bad.status.success());

    let mut owner = db.admin_of_app().await;
    for sql in [
        "ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only",
        "DELETE FROM audit_events WHERE seq >= 2",
        "ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only",
    ] {
        sqlx::query(sql).execute(&mut owner).await.unwrap();
    }
    let plain = with_db().args(["audit", "verify"]).output().unwrap();
    assert!(plain.status.success(), "the chain alone still links");
    let out = anchored(&["--expect-seq", "2"]);
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("BROKEN at event 2"), "{text}");
    // (The plain verify above appended its own event, which now holds
    // seq 2 with another hash: either way the anchored event is gone.)
    assert!(
        text.contains("truncated or rewritten") || text.contains("was rewritten"),
        "{text}"
    );

    // An orphaned blob (no row refers to it), two hours old.
    let folder = dir.path().join("blobs/sha256/ab");
    std::fs::create_dir_all(&folder).unwrap();
    let orphan = folder.join(format!("ab{}", "0".repeat(62)));
    std::fs::write(&orphan, b"orphaned bytes").unwrap();
    std::fs::File::options()
        .append(true)
        .open(&orphan)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - std::time::Duration::from_secs(7200))
        .unwrap();
    // A grace period shorter than an hour is refused: it could remove the
    // bytes of a STOW-RS request still waiting for its index commit.
    let out = with_db()
        .args(["blobs", "gc", "--grace-minutes", "0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("too short: at least 60 minutes"));
    assert!(orphan.exists());
    let out = with_db()
        .args(["blobs", "gc", "--grace-minutes", "60"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(text.contains(", 1 removed (14 bytes)"), "{text}");
    assert!(!orphan.exists());
}

/// `fusion export reviews` on a database without reviews: the header the
/// reviews map reads, nothing else, and the export audited all the same.
#[tokio::test]
async fn export_reviews_writes_the_labelled_header_and_is_audited() {
    let db = TestDatabase::create().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("reviews.csv");
    let out = fusion(dir.path())
        .env("DATABASE_URL", &db.url)
        .args(["export", "reviews", "--out", file.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stderr).contains("0 reviewed cases written"));
    let csv = std::fs::read_to_string(&file).unwrap();
    assert_eq!(
        csv,
        "report_id,split,indication,comparison,findings,impression,no_finding,\
         enlarged_cardiomediastinum,cardiomegaly,lung_lesion,lung_opacity,edema,consolidation,\
         pneumonia,atelectasis,pneumothorax,pleural_effusion,pleural_other,fracture,\
         support_devices\n"
    );
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "PHI: owner only");
    }
    // An existing file is kept (and nothing audited) unless --force.
    let export = |force: bool| {
        let mut cmd = fusion(dir.path());
        cmd.env("DATABASE_URL", &db.url).args([
            "export",
            "reviews",
            "--out",
            file.to_str().unwrap(),
        ]);
        if force {
            cmd.arg("--force");
        }
        cmd.output().unwrap()
    };
    let refused = export(false);
    assert_eq!(refused.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("exists: give --force"),
        "{}",
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(export(true).status.success());
    let mut owner = db.admin_of_app().await;
    let (n,): (i64,) = sqlx::query_as(
        "SELECT count(*) FROM audit_events WHERE subtype_code = 'reviews-export' \
         AND purpose_of_use = 'HQUALIMP'",
    )
    .fetch_one(&mut owner)
    .await
    .unwrap();
    assert_eq!(n, 2, "the refused export is not audited");

    // A case whose stored prediction cannot be read is left out, the rest
    // written, and the command exits 2 so that a script can tell.
    for sql in [
        "INSERT INTO cases (id, accession_number, status) \
         VALUES (gen_random_uuid(), 'ACC-CORRUPT-1', 'predicted')",
        "INSERT INTO predictions (id, case_id, version, status, fused) \
         SELECT gen_random_uuid(), id, 1, 'predicted', '[1, 2]' FROM cases",
    ] {
        sqlx::query(sql).execute(&mut owner).await.unwrap();
    }
    let partial = export(true);
    assert_eq!(partial.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&partial.stderr)
            .contains("1 cases with a stored row that cannot be read left out"),
        "{}",
        String::from_utf8_lossy(&partial.stderr)
    );
}

/// `fusion worker`, `fusion ingest` and the operator's commands run the
/// application (`fusion-app`), which links no HTTP server: only `serve`'s
/// crate (`fusion-api`) brings actix-web, its tracing middleware and the
/// page templates, nor does the application use the OpenAPI derives itself
/// (they reach it only through `fusion-schemas`' wire types, derives with
/// no server in them). Reads `cargo tree` (normal dependencies only).
#[test]
fn the_application_links_no_http_server() {
    let tree = |args: &[&str]| -> String {
        let cargo = option_env!("CARGO").unwrap_or("cargo");
        let workspace = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let out = Command::new(cargo)
            .current_dir(&workspace)
            .args(["tree", "--offline", "-e", "normal", "--prefix", "none"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "cargo tree failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let names = |tree: &str, forbidden: &[&str]| -> Vec<String> {
        tree.lines()
            .filter(|l| forbidden.contains(&l.split_whitespace().next().unwrap_or_default()))
            .map(str::to_owned)
            .collect()
    };
    let all = tree(&["-p", "fusion-app"]);
    assert!(all.contains("fusion-app v"), "{all}");
    let http = names(
        &all,
        &[
            "actix-web",
            "actix-http",
            "actix-server",
            "tracing-actix-web",
            "minijinja",
        ],
    );
    assert!(
        http.is_empty(),
        "the application depends on HTTP crates: {http:?}"
    );
    let direct = tree(&["-p", "fusion-app", "--depth", "1"]);
    let derives = names(&direct, &["utoipa"]);
    assert!(
        derives.is_empty(),
        "the application uses OpenAPI derives: {derives:?}"
    );
}
