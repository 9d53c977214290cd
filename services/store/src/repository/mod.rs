//! The repository traits the service talks to, one per concern, and
//! [`connect`], which picks the backend from `DATABASE_URL`.

mod audit;
mod cases;
mod identity;
mod imaging;
mod jobs;
mod notes;
mod predictions;
mod reviews;

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

use crate::StoreError;
pub use crate::monitoring::MonitoringRepository;
use crate::sql::{PgRepository, SqliteRepository};
pub use audit::{AuditRepository, verify_chain, verify_chain_against};
pub use cases::CaseRepository;
pub use identity::IdentityRepository;
pub use imaging::ImagingRepository;
pub use jobs::JobRepository;
pub use notes::NotesRepository;
pub use predictions::PredictionRepository;
pub use reviews::ReviewRepository;

/// Which database a repository talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL, the system of record.
    Postgres,
    /// SQLite, the embedded default.
    Sqlite,
}

impl Backend {
    /// `"postgres"` or `"sqlite"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Postgres => "postgres",
            Self::Sqlite => "sqlite",
        }
    }
}

/// A parsed `DATABASE_URL`. Its `Debug` shows the backend only: the URL may
/// hold a password.
#[derive(Clone)]
pub struct DatabaseUrl {
    url: SecretString,
    backend: Backend,
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({}://[redacted])", self.backend.as_str())
    }
}

impl DatabaseUrl {
    /// Parses `postgres://…`, `postgresql://…` or `sqlite://…` (also
    /// `sqlite::memory:`).
    ///
    /// # Errors
    ///
    /// [`StoreError::BadUrl`] naming the accepted schemes; the message never
    /// repeats the URL, which may hold a password.
    pub fn parse(url: SecretString) -> Result<Self, StoreError> {
        let raw = url.expose_secret();
        let backend = if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            Backend::Postgres
        } else if raw.starts_with("sqlite:") {
            Backend::Sqlite
        } else if raw.trim().is_empty() {
            return Err(StoreError::BadUrl("it is empty".into()));
        } else {
            return Err(StoreError::BadUrl(
                "it must start with postgres://, postgresql:// or sqlite://".into(),
            ));
        };
        Ok(Self { url, backend })
    }

    /// The backend this URL selects.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub(crate) fn expose(&self) -> &str {
        self.url.expose_secret()
    }
}

/// Connection-pool settings.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// Most connections held open (PostgreSQL); SQLite uses as many readers.
    pub max_connections: u32,
    /// How long a query waits for a connection before failing, so that a
    /// database outage turns into an error instead of a hung request.
    pub acquire_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(3),
        }
    }
}

/// Lockout after repeated failed logins (per account; the per-address
/// throttle lives in the API).
#[derive(Debug, Clone)]
pub struct LockoutPolicy {
    /// Failures in a row that lock the account.
    pub max_failures: i32,
    /// How long the lock lasts.
    pub lock_for: chrono::Duration,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            max_failures: 5,
            lock_for: chrono::Duration::minutes(15),
        }
    }
}

/// Everything the service stores in its database, behind one trait (made of
/// one sub-trait per concern) so that PostgreSQL and SQLite are
/// interchangeable: the same "story" tests run on both. Every method is one
/// transaction; every method that changes patient data, identities or keys
/// takes the [`AuditRecord`] of that change and appends it to the audit chain
/// in the same transaction.
pub trait Repository:
    RepositoryCore
    + ImagingRepository
    + IdentityRepository
    + AuditRepository
    + NotesRepository
    + CaseRepository
    + JobRepository
    + PredictionRepository
    + ReviewRepository
    + MonitoringRepository
    + crate::outbox::OutboxRepository
{
}

impl<T> Repository for T where
    T: RepositoryCore
        + ImagingRepository
        + IdentityRepository
        + AuditRepository
        + NotesRepository
        + CaseRepository
        + JobRepository
        + PredictionRepository
        + ReviewRepository
        + MonitoringRepository
        + crate::outbox::OutboxRepository
{
}

/// Connection-level operations.
#[async_trait]
pub trait RepositoryCore: Send + Sync + fmt::Debug {
    /// Which database this is.
    fn backend(&self) -> Backend;

    /// Applies the migrations under `migrations/<backend>/` that have not run.
    ///
    /// # Errors
    ///
    /// [`StoreError::Migrate`], e.g. when a merged migration was edited.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// Round-trips a trivial query: the readiness check.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] when the database cannot be reached.
    async fn ping(&self) -> Result<(), StoreError>;
}

/// Connects to the database `url` names. PostgreSQL: an eager connection, so
/// a wrong host or password fails here. SQLite: the file and its folder are
/// created if missing; WAL journal, `synchronous = FULL` (an acknowledged
/// write survives power loss), foreign keys on.
///
/// # Errors
///
/// [`StoreError::Connect`] when the database cannot be reached or opened,
/// [`StoreError::BadUrl`] when the driver refuses the URL.
pub async fn connect(
    url: &DatabaseUrl,
    options: &PoolOptions,
) -> Result<Arc<dyn Repository>, StoreError> {
    match url.backend() {
        Backend::Postgres => {
            let connect = sqlx::postgres::PgConnectOptions::from_str(url.expose())
                .map_err(|e| StoreError::BadUrl(e.to_string()))?
                .application_name("fusion");
            // One direct connection first: a pool would hide "connection
            // refused" or "password authentication failed" behind a timeout.
            probe::<sqlx::PgConnection>(&connect, "postgres").await?;
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(options.max_connections)
                .acquire_timeout(options.acquire_timeout)
                .connect_lazy_with(connect);
            Ok(Arc::new(PgRepository::new(pool)))
        }
        Backend::Sqlite => {
            use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
            let connect = SqliteConnectOptions::from_str(url.expose())
                .map_err(|e| StoreError::BadUrl(e.to_string()))?
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Full)
                .foreign_keys(true)
                .busy_timeout(Duration::from_secs(5));
            let file = connect.get_filename();
            if let Some(parent) = file.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(|e| StoreError::Connect {
                    backend: "sqlite",
                    source: sqlx::Error::Io(e),
                })?;
            }
            probe::<sqlx::SqliteConnection>(&connect, "sqlite").await?;
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(options.max_connections)
                .acquire_timeout(options.acquire_timeout)
                .connect_lazy_with(connect);
            Ok(Arc::new(SqliteRepository::new(pool)))
        }
    }
}

/// Opens and closes one connection, returning the driver's own error.
async fn probe<C: sqlx::Connection>(
    options: &C::Options,
    backend: &'static str,
) -> Result<(), StoreError> {
    let conn = C::connect_with(options)
        .await
        .map_err(|source| StoreError::Connect { backend, source })?;
    // Closing cleanly is a courtesy to the server; a failure here changes nothing.
    let _ = conn.close().await;
    Ok(())
}
