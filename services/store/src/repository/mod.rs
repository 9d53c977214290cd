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
use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};

use crate::StoreError;
pub use crate::monitoring::MonitoringRepository;
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
