//! Test harness for the end-to-end tests: the real application on port 0,
//! against a fresh, UUID-named, migrated PostgreSQL database (dropped
//! afterwards) or a temporary SQLite file, with a temporary blob folder.
//!
//! PostgreSQL is found through `FUSION_TEST_PG_URL`, else `DATABASE_URL`
//! when it is a `postgres://` URL, else `postgres://postgres@127.0.0.1:5432`.
//! `scripts/test` sets these up.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

pub mod browser;
pub mod dicom;
pub mod orthanc;

use std::time::Duration;

use fusion_api::Application;
use fusion_app::Settings;
use fusion_app::config::Overrides;
use sqlx::Connection;
use tempfile::TempDir;

/// The PostgreSQL server the tests create their databases on (no database
/// name in the path).
pub fn pg_server_url() -> String {
    let raw = std::env::var("FUSION_TEST_PG_URL")
        .ok()
        .or_else(|| {
            std::env::var("DATABASE_URL")
                .ok()
                .filter(|u| u.starts_with("postgres"))
        })
        .unwrap_or_else(|| "postgres://postgres@127.0.0.1:5432".to_owned());
    let mut url = url_parse(&raw);
    url.set_path("");
    url.to_string().trim_end_matches('/').to_owned()
}

fn url_parse(raw: &str) -> reqwest::Url {
    reqwest::Url::parse(raw).expect("test PostgreSQL URL parses")
}

/// A throw-away PostgreSQL database, dropped (with its connections) when
/// this value is dropped.
pub struct TestDatabase {
    pub name: String,
    pub url: String,
    server: String,
}

impl TestDatabase {
    /// Creates `test_<uuid>` on the test server.
    pub async fn create() -> Self {
        let server = pg_server_url();
        let name = format!("fusion_test_{}", uuid::Uuid::new_v4().simple());
        let mut conn = sqlx::PgConnection::connect(&format!("{server}/postgres"))
            .await
            .expect("connect to the test PostgreSQL server (is scripts/test running it?)");
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let url = format!("{server}/{name}");
        Self { name, url, server }
    }

    /// A superuser connection to the maintenance database, for tests that
    /// act on the test database from outside (stopping it, tampering).
    pub async fn admin(&self) -> sqlx::PgConnection {
        sqlx::PgConnection::connect(&format!("{}/postgres", self.server))
            .await
            .unwrap()
    }

    /// Refuses new connections to this database and ends the open ones: from
    /// the service's side the database is down.
    pub async fn stop(&self) {
        let mut admin = self.admin().await;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE \"{}\" WITH ALLOW_CONNECTIONS false",
            self.name
        )))
        .execute(&mut admin)
        .await
        .unwrap();
        sqlx::query(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = $1 AND pid <> pg_backend_pid()",
        )
        .bind(&self.name)
        .execute(&mut admin)
        .await
        .unwrap();
    }

    /// A connection to the test database itself, as its owner (the
    /// superuser): for tests that inspect or tamper with rows directly.
    pub async fn admin_of_app(&self) -> sqlx::PgConnection {
        sqlx::PgConnection::connect(&self.url).await.unwrap()
    }

    /// Accepts connections again.
    pub async fn start(&self) {
        let mut admin = self.admin().await;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "ALTER DATABASE \"{}\" WITH ALLOW_CONNECTIONS true",
            self.name
        )))
        .execute(&mut admin)
        .await
        .unwrap();
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let server = self.server.clone();
        let name = self.name.clone();
        // Drop runs outside any runtime guarantee: use a private one.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                if let Ok(mut conn) =
                    sqlx::PgConnection::connect(&format!("{server}/postgres")).await
                {
                    let _ = sqlx::query(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                }
            });
        })
        .join();
    }
}

/// Which database a spawned app uses.
pub enum Db {
    Postgres(TestDatabase),
    Sqlite,
}

/// A running application and what it needs to be torn down.
pub struct TestApp {
    pub address: String,
    pub port: u16,
    pub client: reqwest::Client,
    pub data_dir: TempDir,
    pub db: Db,
    pub settings: Settings,
    pub state: fusion_api::AppState,
    /// The metrics-only listener, when `metrics_bind` was set.
    pub metrics_addr: Option<std::net::SocketAddr>,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.address, path)
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client.get(self.url(path)).send().await.unwrap()
    }

    pub async fn healthz(&self) -> reqwest::Response {
        self.get("/healthz").await
    }

    pub async fn readyz(&self) -> reqwest::Response {
        self.get("/readyz").await
    }

    /// Creates a user with `role` and a fixed test password; returns the password.
    pub async fn add_user(&self, name: &str, role: fusion_schemas::Role) -> String {
        let password = format!("pw-{name}-0123456789");
        fusion_app::admin::add_user(
            &self.state,
            &operator(),
            name,
            role,
            &secrecy::SecretString::from(password.clone()),
        )
        .await
        .unwrap();
        password
    }

    /// Logs in; returns the login response body (token, csrf_token, …).
    pub async fn login(&self, name: &str, password: &str) -> reqwest::Response {
        self.client
            .post(self.url("/auth/login"))
            .json(&serde_json::json!({ "username": name, "password": password }))
            .send()
            .await
            .unwrap()
    }

    /// A user with `role`, logged in: returns the session token.
    pub async fn session_for(&self, name: &str, role: fusion_schemas::Role) -> String {
        let password = self.add_user(name, role).await;
        let res = self.login(name, &password).await;
        assert_eq!(res.status(), 200, "login of {name}");
        let body: serde_json::Value = res.json().await.unwrap();
        body["token"].as_str().unwrap().to_owned()
    }

    /// Polls `GET /cases/{case_id}/predictions` with bearer `token` until
    /// `done` holds for the versions (newest first), and returns them;
    /// panics after 300 s (debug builds on two cores: the image backbone
    /// takes seconds) naming `what` and the versions seen.
    pub async fn wait_for_predictions(
        &self,
        token: &str,
        case_id: &str,
        what: &str,
        done: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        let start = std::time::Instant::now();
        loop {
            let res = self
                .client
                .get(self.url(&format!("/cases/{case_id}/predictions")))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200, "predictions of {case_id}");
            let body: serde_json::Value = res.json().await.unwrap();
            let versions = body["predictions"].as_array().unwrap().clone();
            if done(&versions) {
                return versions;
            }
            assert!(
                start.elapsed() < Duration::from_secs(300),
                "timed out waiting for {what}; have {versions:#?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// An API key with `role`: returns (id, secret).
    pub async fn api_key(&self, name: &str, role: fusion_schemas::Role) -> (String, String) {
        use secrecy::ExposeSecret;
        let key = fusion_app::admin::create_api_key(&self.state, &operator(), name, role, None)
            .await
            .unwrap();
        (key.id, key.secret.expose_secret().to_owned())
    }

    /// The PostgreSQL database behind the app, if it runs on PostgreSQL.
    pub fn pg(&self) -> &TestDatabase {
        match &self.db {
            Db::Postgres(db) => db,
            Db::Sqlite => panic!("this app runs on SQLite"),
        }
    }
}

/// The repository root (for test tools and fetched test data).
pub fn repo_root() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_owned()
}

/// The Python with the test tools (`tests/requirements.txt`), as set up by
/// `scripts/test`.
pub fn python() -> std::path::PathBuf {
    let path = std::env::var_os("FUSION_TEST_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/python"));
    assert!(
        path.exists(),
        "{} not found: run ./scripts/test (it installs the Python test tools)",
        path.display()
    );
    path
}

/// As [`run_tool`], off the async runtime: use it while the app must keep
/// serving (the app's database pool lives on the test's runtime, which a
/// blocking wait would stall).
pub async fn run_tool_async(tool: &str, args: &[&str]) -> (bool, String) {
    let tool = tool.to_owned();
    let args: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        run_tool(&tool, &args)
    })
    .await
    .unwrap()
}

/// Runs `tests/tools/<tool>` with `args`; returns (success, stdout + stderr).
pub fn run_tool(tool: &str, args: &[&str]) -> (bool, String) {
    let out = std::process::Command::new(python())
        .arg(repo_root().join("tests/tools").join(tool))
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The operator the tests act as for identity set-up.
pub fn operator() -> fusion_app::admin::Operator {
    fusion_app::admin::Operator {
        name: "test-operator".to_owned(),
    }
}

fn settings_for(database_url: String, data_dir: &TempDir) -> Settings {
    let env = vec![
        ("DATABASE_URL".to_owned(), database_url),
        (
            "FUSION_DATA_DIR".to_owned(),
            data_dir.path().display().to_string(),
        ),
    ];
    let overrides = Overrides {
        bind: Some("127.0.0.1:0".parse().unwrap()),
        ..Overrides::default()
    };
    Settings::load_from(&overrides, env).unwrap()
}

async fn launch(settings: Settings, data_dir: TempDir, db: Db) -> TestApp {
    if std::env::var("TEST_LOG").is_ok() {
        let _ = fusion_app::telemetry::init(&settings).map(std::mem::forget);
    }
    let app = Application::build(&settings)
        .await
        .expect("application builds");
    let port = app.port();
    let metrics_addr = app.metrics_addr();
    let state = app.state().clone();
    tokio::spawn(app.run_until_stopped());
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    TestApp {
        address: format!("http://127.0.0.1:{port}"),
        port,
        client,
        data_dir,
        db,
        settings,
        state,
        metrics_addr,
    }
}

/// Starts the app against a fresh PostgreSQL database with settings changed
/// by `change` (limits, policies).
pub async fn spawn_app_with(change: impl FnOnce(&mut Settings)) -> TestApp {
    let db = TestDatabase::create().await;
    let data_dir = tempfile::tempdir().unwrap();
    let mut settings = settings_for(db.url.clone(), &data_dir);
    change(&mut settings);
    launch(settings, data_dir, Db::Postgres(db)).await
}

/// Starts the app against a fresh, migrated PostgreSQL database.
pub async fn spawn_app() -> TestApp {
    let db = TestDatabase::create().await;
    let data_dir = tempfile::tempdir().unwrap();
    let settings = settings_for(db.url.clone(), &data_dir);
    launch(settings, data_dir, Db::Postgres(db)).await
}

/// Starts the app on the embedded default: SQLite and local blobs in a
/// temporary data folder.
pub async fn spawn_app_sqlite() -> TestApp {
    let data_dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/fusion.db", data_dir.path().display());
    let settings = settings_for(url, &data_dir);
    launch(settings, data_dir, Db::Sqlite).await
}
