//! Typed settings, layered: built-in defaults, then an optional TOML file
//! (`--config` / `FUSION_CONFIG`), then `FUSION_*` environment variables,
//! then the standard variables `DATABASE_URL` and
//! `OTEL_EXPORTER_OTLP_ENDPOINT`, then command-line flags. Secrets are
//! [`SecretString`]s whose `Debug` prints `[REDACTED]`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// The default log filter: INFO, the JPEG 2000 codec's chatter at WARN.
pub const DEFAULT_LOG: &str = "info,jpeg2k=warn,openjp2=warn";

/// Errors while reading settings.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// The file, an environment variable or a flag holds a value of the wrong shape.
    #[error("invalid settings: {0}")]
    Invalid(#[from] config::ConfigError),
    /// `FUSION_DATA_DIR` cannot be made absolute.
    #[error("cannot resolve the data folder {path}: {source}")]
    DataDir {
        /// The folder as given.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Log output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// One JSON object per line, for log collectors.
    Json,
    /// Human-readable lines for a terminal.
    #[default]
    Pretty,
}

/// The service's settings. Field names are the keys of the TOML file and,
/// upper-cased with the `FUSION_` prefix, of the environment.
#[derive(Debug, Clone, Deserialize)]
pub struct Settings {
    /// Address to listen on (`FUSION_BIND`, `--bind`). Default `127.0.0.1:8080`.
    pub bind: SocketAddr,
    /// Folder for the embedded database and local blobs (`FUSION_DATA_DIR`).
    /// Default `./var`.
    pub data_dir: PathBuf,
    /// `postgres://…` or `sqlite://…` (`DATABASE_URL`). Default
    /// `sqlite://<data_dir>/fusion.db`.
    #[serde(default)]
    pub database_url: Option<SecretString>,
    /// Blob store location (`FUSION_BLOB_URL`), e.g. `file:///srv/blobs` or
    /// `s3://bucket/prefix`. Default: the folder `<data_dir>/blobs`.
    #[serde(default)]
    pub blob_url: Option<String>,
    /// `json` or `pretty` (`FUSION_LOG_FORMAT`). Default `pretty`.
    pub log_format: LogFormat,
    /// Log filter in `RUST_LOG` syntax (`FUSION_LOG`, else `RUST_LOG`).
    /// Default `info` (the JPEG 2000 codec's chatter at `warn`).
    pub log: String,
    /// OTLP/HTTP endpoint for trace export (`OTEL_EXPORTER_OTLP_ENDPOINT`);
    /// unset means plain logs only.
    #[serde(default)]
    pub otlp_endpoint: Option<String>,
    /// Most database connections held open (`FUSION_DB_MAX_CONNECTIONS`). Default 20
    /// (a STOW-RS request stores up to 8 instances at once).
    pub db_max_connections: u32,
    /// Absolute lifetime of a login session, minutes (`FUSION_SESSION_TTL_MINUTES`).
    /// Default 720 (12 h).
    pub session_ttl_minutes: i64,
    /// A session unused this long ends, minutes (`FUSION_SESSION_IDLE_MINUTES`).
    /// Default 30.
    pub session_idle_minutes: i64,
    /// Mark the session cookie `Secure` (`FUSION_COOKIE_SECURE`). Default
    /// true; browsers accept it on `http://localhost` and `127.0.0.1`.
    pub cookie_secure: bool,
    /// Login attempts allowed per client address per minute
    /// (`FUSION_LOGIN_ATTEMPTS_PER_MINUTE`). Default 10.
    pub login_attempts_per_minute: u32,
    /// Failed logins in a row that lock an account (`FUSION_LOCKOUT_FAILURES`). Default 5.
    pub lockout_failures: i32,
    /// How long a lockout lasts, minutes (`FUSION_LOCKOUT_MINUTES`). Default 15.
    pub lockout_minutes: i64,
    /// Apply pending migrations when the service starts
    /// (`FUSION_MIGRATE_ON_START`). Default true; set false when the service
    /// runs with a database role that may not change the schema and
    /// `fusion migrate` runs separately (compliance/deployment.md).
    pub migrate_on_start: bool,
    /// Largest STOW-RS request body, bytes (`FUSION_STOW_MAX_BYTES`).
    /// Default 4 GiB ([`fusion_imaging::DEFAULT_MAX_TOTAL_BYTES`]).
    pub stow_max_bytes: u64,
    /// Seconds a request body may go without a byte before the request is
    /// answered without the rest and the connection closed
    /// (`FUSION_BODY_IDLE_TIMEOUT_SECONDS`; 0 = never). Default 60, as
    /// nginx's `client_body_timeout`.
    pub body_idle_timeout_seconds: u64,
    /// Folder of the model packages (`FUSION_MODELS_DIR`), loaded once at
    /// start by the inference workers. Default `models/packages`.
    pub models_dir: PathBuf,
    /// In-process inference workers (`FUSION_WORKERS`); 0 leaves inference
    /// to `fusion worker` processes. Default 1.
    pub workers: usize,
    /// How often the service publishes the audit chain head to its log, as
    /// one `audit chain head` line with the newest event's sequence number
    /// and hash, minutes (`FUSION_AUDIT_HEAD_MINUTES`); also once at start.
    /// Shipped off the host, these lines are the heads
    /// `fusion audit verify --expect-head` checks against. 0 turns it off.
    /// Default 60.
    pub audit_head_minutes: u64,
    /// Blobs that no row refers to are removed by `fusion blobs gc` (and at
    /// start) once older than this, minutes (`FUSION_BLOB_GC_GRACE_MINUTES`),
    /// so a blob written for an instance still being indexed is never
    /// taken. Default 1440 (a day).
    pub blob_gc_grace_minutes: u64,
    /// The URL clients reach the service at, e.g.
    /// `https://pacs.example.org/fusion` (`FUSION_PUBLIC_BASE_URL`): every
    /// RetrieveURL and BulkDataURI the service hands out starts with it
    /// (see the API's `public_url` module). Unset: taken from each request.
    #[serde(default)]
    pub public_base_url: Option<String>,
    /// Reverse proxies whose `X-Forwarded-Proto`, `-Host`, `-Port`,
    /// `-Prefix` and `Forwarded` headers are believed, as IP addresses or
    /// CIDR blocks separated by commas (`FUSION_TRUSTED_PROXIES`). Default
    /// none: those headers are ignored.
    pub trusted_proxies: String,
    /// Address of a separate listener serving only `GET /metrics`
    /// (Prometheus text format) without authentication
    /// (`FUSION_METRICS_BIND`), for a scraper on the internal network; bind
    /// it where only the scraper reaches. Unset: no such listener, and
    /// `GET /metrics` on the main listener needs an admin or auditor.
    #[serde(default)]
    pub metrics_bind: Option<SocketAddr>,
    /// How often the HTTP service evaluates the model monitor, raising its
    /// alerts and updating its gauges, seconds
    /// (`FUSION_MONITORING_INTERVAL_SECONDS`); 0 only on `GET /monitoring`.
    /// Default 300.
    pub monitoring_interval_seconds: u64,
    /// Sliding window of the review figures: the newest this many reviews
    /// (`FUSION_MONITORING_WINDOW_REVIEWS`). Default 200.
    pub monitoring_window_reviews: usize,
    /// … made within this many days (`FUSION_MONITORING_WINDOW_DAYS`).
    /// Default 30.
    pub monitoring_window_days: i64,
    /// Most reviews read for the all-time figures
    /// (`FUSION_MONITORING_HISTORY_REVIEWS`). Default 2000: every review
    /// read holds its whole stored prediction while the figures are
    /// computed (measured: about 240 KB resident per review).
    pub monitoring_history_reviews: usize,
    /// Coverage alert when the window's conformal coverage of an
    /// observation and group falls more than this below nominal
    /// (`FUSION_MONITORING_COVERAGE_MARGIN`). Default 0.10.
    pub monitoring_coverage_margin: f64,
    /// … on at least this many reviewed sets
    /// (`FUSION_MONITORING_COVERAGE_MIN_REVIEWS`). Default 30.
    pub monitoring_coverage_min_reviews: usize,
    /// Nominal coverage of a set whose package states no α
    /// (`FUSION_MONITORING_DEFAULT_NOMINAL`). Default 0.9.
    pub monitoring_default_nominal: f64,
    /// Drift: a package's first this many jobs are its reference window
    /// (`FUSION_MONITORING_DRIFT_REFERENCE`). Default 200.
    pub monitoring_drift_reference: usize,
    /// Drift: its newest this many jobs are compared with it
    /// (`FUSION_MONITORING_DRIFT_WINDOW`). Default 200.
    pub monitoring_drift_window: usize,
    /// Drift alert when a feature's PSI exceeds this
    /// (`FUSION_MONITORING_DRIFT_THRESHOLD`). Default 0.25.
    pub monitoring_drift_threshold: f64,
    /// Most recorded jobs read for drift
    /// (`FUSION_MONITORING_DRIFT_HISTORY`). Default 20000.
    pub monitoring_drift_history: usize,
    /// Password for the `admin` user created on first start
    /// (`FUSION_ADMIN_PASSWORD`); random and printed once when unset.
    #[serde(default)]
    pub admin_password: Option<SecretString>,
    /// DICOMweb base URL of the PACS that receives each prediction's DICOM
    /// SR by STOW-RS (`FUSION_SR_DESTINATION_URL`), e.g.
    /// `http://pacs:8042/dicom-web`; the SR is POSTed to `<url>/studies`.
    /// Unset (default): SRs are stored and served here only.
    #[serde(default)]
    pub sr_destination_url: Option<String>,
    /// HTTP basic-auth user for the PACS (`FUSION_SR_DESTINATION_USER`).
    #[serde(default)]
    pub sr_destination_user: Option<String>,
    /// Its password (`FUSION_SR_DESTINATION_PASSWORD`, a secret).
    #[serde(default)]
    pub sr_destination_password: Option<SecretString>,
    /// Also send UNVERIFIED SRs, before a clinician's review
    /// (`FUSION_SR_SEND_UNVERIFIED`). Default true; false sends the
    /// VERIFIED SR of a review only.
    pub sr_send_unverified: bool,
    /// FHIR R4 base URL that receives each result as a `transaction`
    /// Bundle (`FUSION_FHIR_ENDPOINT_URL`). Unset (default): nothing is
    /// sent; `GET /cases/{id}/fhir` works either way.
    #[serde(default)]
    pub fhir_endpoint_url: Option<String>,
    /// Bearer token for the FHIR endpoint (`FUSION_FHIR_ENDPOINT_TOKEN`, a
    /// secret).
    #[serde(default)]
    pub fhir_endpoint_token: Option<SecretString>,
    /// Attempts before a delivery is marked failed
    /// (`FUSION_OUTBOX_MAX_ATTEMPTS`). Default 8.
    pub outbox_max_attempts: i32,
    /// Delay before the first retry, seconds, doubled per attempt up to
    /// 300 (`FUSION_OUTBOX_BACKOFF_SECONDS`). Default 5.
    pub outbox_backoff_seconds: u64,
    /// Limit on one delivery request, seconds, body included
    /// (`FUSION_OUTBOX_TIMEOUT_SECONDS`). Default 30.
    pub outbox_timeout_seconds: u64,
    /// Deliveries in flight at once in this process (`FUSION_OUTBOX_SENDERS`);
    /// 0 leaves them to other processes. Default 4.
    pub outbox_senders: usize,
}

/// Values given on the command line; they override everything else.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--config <file>`.
    pub config_file: Option<PathBuf>,
    /// `--bind <addr>`.
    pub bind: Option<SocketAddr>,
}

impl Settings {
    /// Loads the settings from the layers described in the module docs,
    /// reading the process environment.
    ///
    /// # Errors
    ///
    /// [`SettingsError::Invalid`] naming the key whose value is malformed or
    /// the file that cannot be read.
    pub fn load(overrides: &Overrides) -> Result<Self, SettingsError> {
        Self::load_from(overrides, std::env::vars())
    }

    /// As [`Settings::load`], with the environment given explicitly (tests).
    ///
    /// # Errors
    ///
    /// As [`Settings::load`].
    pub fn load_from(
        overrides: &Overrides,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, SettingsError> {
        let env: std::collections::HashMap<String, String> = env.into_iter().collect();
        let config_file = overrides
            .config_file
            .clone()
            .or_else(|| env.get("FUSION_CONFIG").map(PathBuf::from));
        let mut builder = config::Config::builder()
            .set_default("bind", "127.0.0.1:8080")?
            .set_default("data_dir", "./var")?
            .set_default("log_format", "pretty")?
            .set_default("log", DEFAULT_LOG)?
            .set_default("db_max_connections", 20)?
            .set_default("session_ttl_minutes", 720)?
            .set_default("session_idle_minutes", 30)?
            .set_default("cookie_secure", true)?
            .set_default("login_attempts_per_minute", 10)?
            .set_default("lockout_failures", 5)?
            .set_default("lockout_minutes", 15)?
            .set_default("stow_max_bytes", fusion_imaging::DEFAULT_MAX_TOTAL_BYTES)?
            .set_default("body_idle_timeout_seconds", 60)?
            .set_default("models_dir", "models/packages")?
            .set_default("workers", 1)?
            .set_default("audit_head_minutes", 60)?
            .set_default("blob_gc_grace_minutes", 1440)?
            .set_default("migrate_on_start", true)?
            .set_default("trusted_proxies", "")?
            .set_default("monitoring_interval_seconds", 300)?
            .set_default("monitoring_window_reviews", 200)?
            .set_default("monitoring_window_days", 30)?
            .set_default("monitoring_history_reviews", 2_000)?
            .set_default("monitoring_coverage_margin", 0.10)?
            .set_default("monitoring_coverage_min_reviews", 30)?
            .set_default("monitoring_default_nominal", 0.9)?
            .set_default("monitoring_drift_reference", 200)?
            .set_default("monitoring_drift_window", 200)?
            .set_default("monitoring_drift_threshold", 0.25)?
            .set_default("monitoring_drift_history", 20_000)?
            .set_default("sr_send_unverified", true)?
            .set_default("outbox_max_attempts", 8)?
            .set_default("outbox_backoff_seconds", 5)?
            .set_default("outbox_timeout_seconds", 30)?
            .set_default("outbox_senders", 4)?;
        // The defaults alone say which settings are whole numbers.
        let defaults = builder.build_cloned()?;
        if let Some(file) = config_file {
            builder = builder.add_source(config::File::from(file.clone()).required(true));
            refuse_unknown_keys(&builder, &file)?;
        }
        let fusion_env: std::collections::HashMap<String, String> = env
            .iter()
            .filter(|(k, _)| k.starts_with("FUSION_") && k.as_str() != "FUSION_CONFIG")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        builder = builder
            .add_source(
                config::Environment::with_prefix("FUSION")
                    .prefix_separator("_")
                    .try_parsing(true)
                    .source(Some(fusion_env)),
            )
            .set_override_option("database_url", env.get("DATABASE_URL").cloned())?
            .set_override_option(
                "otlp_endpoint",
                env.get("OTEL_EXPORTER_OTLP_ENDPOINT").cloned(),
            )?
            .set_override_option("bind", overrides.bind.map(|b| b.to_string()))?;
        if !env.contains_key("FUSION_LOG") {
            builder = builder.set_override_option("log", env.get("RUST_LOG").cloned())?;
        }
        let built = builder.build().map_err(without_excerpt)?;
        refuse_fractions(&defaults, &built)?;
        let mut settings: Settings = built.try_deserialize()?;
        if settings
            .database_url
            .as_ref()
            .is_some_and(|u| u.expose_secret().trim().is_empty())
        {
            settings.database_url = None;
        }
        Ok(settings)
    }

    /// The database URL, defaulting to the SQLite file in the data folder.
    pub fn database_url(&self) -> SecretString {
        match &self.database_url {
            Some(url) => url.clone(),
            None => SecretString::from(format!(
                "sqlite://{}",
                self.data_dir.join("fusion.db").display()
            )),
        }
    }

    /// The blob store URL, defaulting to `<data_dir>/blobs` as an absolute
    /// `file://` URL.
    ///
    /// # Errors
    ///
    /// [`SettingsError::DataDir`] when the data folder cannot be created or
    /// resolved.
    pub fn blob_url(&self) -> Result<url::Url, SettingsError> {
        if let Some(raw) = &self.blob_url {
            return url::Url::parse(raw).map_err(|e| {
                SettingsError::Invalid(config::ConfigError::Message(format!(
                    "FUSION_BLOB_URL is not a URL: {e}"
                )))
            });
        }
        let folder = self.data_dir.join("blobs");
        let abs = absolute(&folder)?;
        url::Url::from_directory_path(&abs).map_err(|()| SettingsError::DataDir {
            path: folder,
            source: std::io::Error::other("not an absolute path"),
        })
    }
}

/// A key of the settings file that names no setting (`databse_url`) is
/// refused, naming it: ignored, it would leave the setting at its default
/// (for `database_url`, a new local SQLite database) without a word. The
/// environment is not checked this way, since other `FUSION_*` variables
/// (of tests and tools) share its prefix.
fn refuse_unknown_keys(
    defaults_and_file: &config::ConfigBuilder<config::builder::DefaultState>,
    file: &Path,
) -> Result<(), SettingsError> {
    let built = defaults_and_file.build_cloned().map_err(without_excerpt)?;
    let mut unknown = Vec::new();
    // Errors of the values themselves are reported by the full load.
    let _ = serde_ignored::deserialize(built, |path| unknown.push(path.to_string()))
        .map(|_: Settings| ());
    match unknown.first() {
        None => Ok(()),
        Some(key) => Err(SettingsError::Invalid(config::ConfigError::Message(
            format!("{}: unknown setting {key:?}", file.display()),
        ))),
    }
}

/// A settings file that does not parse is named with the first line of the
/// parser's message (the line and column) only: the parser quotes the line,
/// which may hold the database URL's password.
fn without_excerpt(e: config::ConfigError) -> config::ConfigError {
    match e {
        config::ConfigError::FileParse { uri, cause } => {
            let cause = cause.to_string();
            let first = cause.lines().next().unwrap_or("not valid");
            config::ConfigError::Message(format!(
                "{}: {first}",
                uri.as_deref().unwrap_or("the settings file")
            ))
        }
        other => other,
    }
}

/// A whole-number setting given a fraction (`FUSION_STOW_MAX_BYTES=1.5`, or
/// `1.5` in the file) is refused, naming it: the `config` crate would round
/// it silently.
fn refuse_fractions(
    defaults: &config::Config,
    built: &config::Config,
) -> Result<(), SettingsError> {
    use config::{Source, ValueKind};
    for (key, default) in defaults.collect()? {
        let whole = matches!(
            default.kind,
            ValueKind::I64(_) | ValueKind::U64(_) | ValueKind::I128(_) | ValueKind::U128(_)
        );
        if !whole {
            continue;
        }
        if let Ok(value) = built.get::<config::Value>(&key)
            && let ValueKind::Float(f) = value.kind
            && f.fract() != 0.0
        {
            return Err(SettingsError::Invalid(config::ConfigError::Message(
                format!(
                    "{key} (FUSION_{}) must be a whole number, not {f}",
                    key.to_ascii_uppercase()
                ),
            )));
        }
    }
    Ok(())
}

fn absolute(path: &Path) -> Result<PathBuf, SettingsError> {
    std::path::absolute(path).map_err(|source| SettingsError::DataDir {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_are_the_embedded_setup() {
        let s = Settings::load_from(&Overrides::default(), env(&[])).unwrap();
        assert_eq!(s.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(s.database_url().expose_secret(), "sqlite://./var/fusion.db");
        assert!(s.blob_url().unwrap().as_str().ends_with("/var/blobs/"));
        assert_eq!(s.log_format, LogFormat::Pretty);
        assert!(s.otlp_endpoint.is_none());
    }

    #[test]
    fn environment_then_flags_override() {
        let e = env(&[
            ("FUSION_BIND", "0.0.0.0:9000"),
            ("FUSION_DATA_DIR", "/tmp/fusion-x"),
            ("FUSION_LOG_FORMAT", "json"),
            ("DATABASE_URL", "postgres://u:pw@db/fusion"),
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318"),
        ]);
        let s = Settings::load_from(&Overrides::default(), e.clone()).unwrap();
        assert_eq!(s.bind.to_string(), "0.0.0.0:9000");
        assert_eq!(s.log_format, LogFormat::Json);
        assert_eq!(
            s.blob_url().unwrap().as_str(),
            "file:///tmp/fusion-x/blobs/"
        );
        assert_eq!(s.otlp_endpoint.as_deref(), Some("http://127.0.0.1:4318"));
        let flags = Overrides {
            bind: Some("127.0.0.1:1".parse().unwrap()),
            ..Overrides::default()
        };
        let s = Settings::load_from(&flags, e).unwrap();
        assert_eq!(s.bind.to_string(), "127.0.0.1:1");
    }

    #[test]
    fn a_fraction_for_a_whole_number_is_refused_not_rounded() {
        let err = Settings::load_from(
            &Overrides::default(),
            env(&[("FUSION_STOW_MAX_BYTES", "1.5")]),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("stow_max_bytes (FUSION_STOW_MAX_BYTES) must be a whole number, not 1.5"),
            "{err}"
        );
        // Whole numbers, written either way, and fractional settings stay.
        let s = Settings::load_from(
            &Overrides::default(),
            env(&[
                ("FUSION_STOW_MAX_BYTES", "1048576"),
                ("FUSION_MONITORING_DRIFT_THRESHOLD", "0.3"),
            ]),
        )
        .unwrap();
        assert_eq!(s.stow_max_bytes, 1_048_576);
        assert!((s.monitoring_drift_threshold - 0.3).abs() < 1e-12);
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let e = env(&[("DATABASE_URL", "postgres://u:hunter2@db/fusion")]);
        let s = Settings::load_from(&Overrides::default(), e).unwrap();
        let shown = format!("{s:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
    }

    #[test]
    fn config_file_is_read_and_env_wins() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("fusion.toml");
        std::fs::write(&file, "bind = \"127.0.0.1:7000\"\nlog_format = \"json\"\n").unwrap();
        let flags = Overrides {
            config_file: Some(file),
            ..Overrides::default()
        };
        let s = Settings::load_from(&flags, env(&[("FUSION_LOG_FORMAT", "pretty")])).unwrap();
        assert_eq!(s.bind.to_string(), "127.0.0.1:7000");
        assert_eq!(s.log_format, LogFormat::Pretty);
    }

    #[test]
    fn an_unknown_key_in_the_file_is_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("fusion.toml");
        std::fs::write(&file, "databse_url = \"postgres://u@db/fusion\"\n").unwrap();
        let flags = Overrides {
            config_file: Some(file.clone()),
            ..Overrides::default()
        };
        let err = Settings::load_from(&flags, env(&[]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown setting \"databse_url\""), "{err}");
        assert!(err.contains("fusion.toml"), "{err}");
        // Every key of a settings struct is known; other FUSION_ variables
        // of the environment are not settings and are let be.
        std::fs::write(
            &file,
            "database_url = \"postgres://u@db/fusion\"\nworkers = 2\nmodels_dir = \"m\"\n",
        )
        .unwrap();
        let s = Settings::load_from(&flags, env(&[("FUSION_RECORD_PREDICTIONS", "1")])).unwrap();
        assert_eq!(s.workers, 2);
    }

    #[test]
    fn a_file_that_does_not_parse_is_named_without_its_lines() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("fusion.toml");
        std::fs::write(
            &file,
            "bind = \"127.0.0.1:7000\"\ndatabase_url = \"postgres://u:hunter2@db/f\n",
        )
        .unwrap();
        let flags = Overrides {
            config_file: Some(file),
            ..Overrides::default()
        };
        let err = Settings::load_from(&flags, env(&[]))
            .unwrap_err()
            .to_string();
        assert!(!err.contains("hunter2"), "{err}");
        assert!(
            err.contains("fusion.toml") && err.contains("line 2"),
            "{err}"
        );
    }

    #[test]
    fn a_malformed_value_names_its_key() {
        let err = Settings::load_from(&Overrides::default(), env(&[("FUSION_BIND", "nope")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("bind"), "{err}");
    }
}
