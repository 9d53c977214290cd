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
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line).unwrap();
    let url = line
        .trim()
        .strip_prefix("fusion listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
        .to_owned();
    Served { child, url }
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
