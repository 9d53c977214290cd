//! The application's state: storage, models, queues and meters, opened
//! once per process and shared by every operation, with no HTTP parts (the
//! API wraps it with its session, lockout and proxy policies).

use std::sync::Arc;

use fusion_store::prelude::*;
use fusion_store::{BlobError, BlobStore, DatabaseUrl, PoolOptions, StoreError};

use crate::config::{Settings, SettingsError};

/// Why storage, meters or outbox settings could not be opened. Each message
/// is one line an operator can act on; none carries a password.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// Settings are malformed.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The database URL is wrong, the database unreachable, or a migration failed.
    #[error(transparent)]
    Database(#[from] StoreError),
    /// The blob store cannot be opened.
    #[error(transparent)]
    Blobs(#[from] BlobError),
    /// The metrics pipeline cannot be set up.
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
    /// The outbox destinations are malformed.
    #[error(transparent)]
    Outbox(#[from] crate::destinations::OutboxSettingsError),
}

/// What every operation shares: storage handles, the models, the queues'
/// wake-ups and the meters; cheap to clone.
#[derive(Clone)]
pub struct State {
    /// The database.
    pub repository: Arc<dyn Repository>,
    /// DICOM bytes.
    pub blobs: BlobStore,
    /// The model pipeline, loaded once at start when this process runs
    /// inference workers (`None` otherwise: operations only queue jobs).
    pub pipeline: Option<Arc<fusion_models::Pipeline>>,
    /// What the installed model packages state about themselves (read from
    /// their manifests when the HTTP service starts; empty for the CLI's
    /// commands): `GET /models` and the model pages.
    pub catalogue: Arc<fusion_models::catalogue::Catalogue>,
    /// Wakes this process's inference workers when a job is queued.
    pub jobs: Arc<tokio::sync::Notify>,
    /// Group-commits the imaging index of stored instances.
    pub index_writer: crate::index_writer::IndexWriter,
    /// Operational metrics (Prometheus and OTLP).
    pub metrics: crate::metrics::Metrics,
    /// The model monitor's settings and firing alerts.
    pub monitor: Arc<crate::monitoring::Monitor>,
    /// Where results go (the outbox's destinations and retry policy).
    pub outbox: Arc<crate::destinations::OutboxSettings>,
    /// Wakes this process's outbox senders when deliveries are queued.
    pub deliveries: Arc<tokio::sync::Notify>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("repository", &self.repository)
            .field("blobs", &self.blobs)
            .finish_non_exhaustive()
    }
}

/// Connects the database (migrating it unless `migrate_on_start` is off),
/// opens the blob store, and sets up the meters, the monitor and the
/// outbox's destinations. No models are loaded
/// ([`crate::worker::load_pipeline`] does that where workers run).
///
/// # Errors
///
/// [`StartupError`] naming the failing step.
pub async fn connect_storage(settings: &Settings) -> Result<State, StartupError> {
    let url = DatabaseUrl::parse(settings.database_url())?;
    let options = PoolOptions {
        max_connections: settings.db_max_connections,
        ..PoolOptions::default()
    };
    let repository = fusion_store::connect(&url, &options).await?;
    if settings.migrate_on_start {
        repository.migrate().await?;
    }
    let blobs = BlobStore::open(&settings.blob_url()?)?;
    tracing::info!(
        backend = repository.backend().as_str(),
        blobs = blobs.location(),
        "storage ready"
    );
    let outbox = Arc::new(crate::destinations::OutboxSettings::from_settings(
        settings,
    )?);
    Ok(State {
        outbox,
        deliveries: Arc::new(tokio::sync::Notify::new()),
        index_writer: crate::index_writer::IndexWriter::start(repository.clone()),
        repository,
        blobs,
        pipeline: None,
        catalogue: Arc::default(),
        jobs: Arc::new(tokio::sync::Notify::new()),
        metrics: crate::metrics::Metrics::new(settings.otlp_endpoint.as_deref())?,
        monitor: Arc::new(crate::monitoring::Monitor::new(
            crate::monitoring::MonitorSettings::of(settings),
        )),
    })
}

/// Logs the audit chain head (`audit chain head`, with `seq` and `hash`)
/// at info level under the target `fusion::audit_head`, for shipping to a
/// log store the database's owner cannot rewrite; those lines are the
/// heads `fusion audit verify --expect-head HASH --expect-seq N` checks.
pub async fn publish_audit_head(state: &State) {
    match state.repository.audit_head().await {
        Ok(Some(head)) => tracing::info!(
            target: "fusion::audit_head",
            seq = head.seq.unwrap_or_default(),
            hash = %head.hash,
            "audit chain head"
        ),
        // Said too, so that a missing line never means "not published"
        // (README review: a first start on a fresh database logged nothing).
        Ok(None) => tracing::info!(
            target: "fusion::audit_head",
            seq = 0,
            "audit chain head: the trail is empty"
        ),
        Err(e) => tracing::warn!(error = %e, "cannot read the audit chain head"),
    }
}

impl State {
    /// Reads the queue depth and pool use into the operational gauges
    /// ([`crate::metrics::Metrics`]); a database failure is logged, not
    /// raised (the gauges keep their last values).
    pub async fn refresh_operational(&self) {
        self.metrics.record_pool(self.repository.pool_use());
        match self.repository.queue_depth().await {
            Ok(depth) => self.metrics.record_queue(depth),
            Err(e) => tracing::warn!(error = %e, "cannot read the inference queue depth"),
        }
    }
}
