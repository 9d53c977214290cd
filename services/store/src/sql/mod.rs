//! The SQL behind the repository traits, written once per concern and
//! expanded for each backend by a macro: the two databases share the SQL
//! (upserts with `ON CONFLICT`, `RETURNING`, `$n` parameters) and differ only
//! where the dialects do, which each macro takes as arguments.

#[macro_use]
mod audit;
#[macro_use]
mod cases;
mod connect;
pub use connect::connect;
#[macro_use]
mod identity;
#[macro_use]
mod imaging;
mod imaging_query;
#[macro_use]
mod jobs;
#[macro_use]
mod monitoring;
#[macro_use]
mod notes;
#[macro_use]
pub(crate) mod outbox;
#[macro_use]
mod predictions;
#[macro_use]
mod reviews;

use crate::StoreError;

/// The PostgreSQL backend: the system of record.
#[derive(Debug, Clone)]
pub(crate) struct PgRepository {
    pool: sqlx::PgPool,
}

/// The SQLite backend: the embedded default. Write transactions start
/// `IMMEDIATE` so that two writers queue on the busy timeout instead of
/// failing on a lock upgrade.
#[derive(Debug, Clone)]
pub(crate) struct SqliteRepository {
    pool: sqlx::SqlitePool,
}

impl PgRepository {
    pub(crate) fn new(pool: sqlx::PgPool) -> Self {
        Self { pool }
    }
}

impl SqliteRepository {
    pub(crate) fn new(pool: sqlx::SqlitePool) -> Self {
        Self { pool }
    }
}

macro_rules! impl_core {
    ($name:ident, $backend:expr, $migrator:expr) => {
        #[async_trait::async_trait]
        impl crate::RepositoryCore for $name {
            fn backend(&self) -> crate::Backend {
                $backend
            }

            #[tracing::instrument(skip(self), fields(backend = $backend.as_str()))]
            async fn migrate(&self) -> Result<(), StoreError> {
                $migrator.run(&self.pool).await?;
                Ok(())
            }

            async fn ping(&self) -> Result<(), StoreError> {
                sqlx::query("SELECT 1").execute(&self.pool).await?;
                Ok(())
            }
        }
    };
}

impl_core!(
    PgRepository,
    crate::Backend::Postgres,
    sqlx::migrate!("../../migrations/postgres")
);
impl_core!(
    SqliteRepository,
    crate::Backend::Sqlite,
    sqlx::migrate!("../../migrations/sqlite")
);

// Appends to the audit chain are serialised: PostgreSQL by a transaction-level
// advisory lock taken just before the append (held only until commit),
// SQLite by its single writer (`BEGIN IMMEDIATE`).
impl_audit!(
    PgRepository,
    sqlx::Postgres,
    begin_write = "BEGIN",
    audit_lock = "SELECT pg_advisory_xact_lock(7270001)",
    patient_filter = |qb: &mut sqlx::QueryBuilder<sqlx::Postgres>, pid: String| {
        qb.push(" AND patient_ids @> ")
            .push_bind(sqlx::types::Json(vec![pid]));
    },
);
impl_audit!(
    SqliteRepository,
    sqlx::Sqlite,
    begin_write = "BEGIN IMMEDIATE",
    audit_lock = "SELECT 1",
    patient_filter = |qb: &mut sqlx::QueryBuilder<sqlx::Sqlite>, pid: String| {
        qb.push(" AND EXISTS (SELECT 1 FROM json_each(patient_ids) WHERE json_each.value = ")
            .push_bind(pid)
            .push(")");
    },
);

impl_identity!(PgRepository, sqlx::Postgres, begin_write = "BEGIN");
impl_identity!(
    SqliteRepository,
    sqlx::Sqlite,
    begin_write = "BEGIN IMMEDIATE"
);

impl_imaging!(
    PgRepository,
    sqlx::Postgres,
    begin_write = "BEGIN",
    lock_study = "SELECT 1 FROM studies WHERE study_instance_uid = $1 FOR UPDATE",
    refresh_modalities = "UPDATE studies SET modalities = COALESCE((SELECT jsonb_agg(DISTINCT modality ORDER BY modality) \
        FROM series WHERE study_instance_uid = $1 AND modality IS NOT NULL), '[]'::jsonb), updated_at = $2 \
        WHERE study_instance_uid = $1",
    ilike = "ILIKE",
);
impl_imaging!(
    SqliteRepository,
    sqlx::Sqlite,
    begin_write = "BEGIN IMMEDIATE",
    lock_study = "SELECT 1 FROM studies WHERE study_instance_uid = $1",
    refresh_modalities = "UPDATE studies SET modalities = COALESCE((SELECT json_group_array(modality) FROM \
        (SELECT DISTINCT modality FROM series WHERE study_instance_uid = $1 AND modality IS NOT NULL ORDER BY modality)), '[]'), \
        updated_at = $2 WHERE study_instance_uid = $1",
    ilike = "LIKE",
);

impl_notes!(PgRepository, sqlx::Postgres, begin_write = "BEGIN");
impl_notes!(
    SqliteRepository,
    sqlx::Sqlite,
    begin_write = "BEGIN IMMEDIATE"
);

impl_cases!(
    PgRepository,
    sqlx::Postgres,
    begin_write = "BEGIN",
    link_lock = "SELECT pg_advisory_xact_lock(7270002)",
);
impl_cases!(
    SqliteRepository,
    sqlx::Sqlite,
    begin_write = "BEGIN IMMEDIATE",
    link_lock = "SELECT 1",
);

// A case's jobs, versions and reviews change under a lock on its row
// (SQLite: the single writer).
impl_jobs!(
    PgRepository,
    sqlx::Postgres,
    begin_write = "BEGIN",
    lock_case = "SELECT 1 FROM cases WHERE id = $1 FOR UPDATE",
    skip_locked = " FOR UPDATE SKIP LOCKED",
);
impl_jobs!(
    SqliteRepository,
    sqlx::Sqlite,
    begin_write = "BEGIN IMMEDIATE",
    lock_case = "SELECT 1 FROM cases WHERE id = $1",
    skip_locked = "",
);
impl_predictions!(
    PgRepository,
    sqlx::Postgres,
    begin_write = "BEGIN",
    lock_case = "SELECT 1 FROM cases WHERE id = $1 FOR UPDATE",
);
impl_predictions!(
    SqliteRepository,
    sqlx::Sqlite,
    begin_write = "BEGIN IMMEDIATE",
    lock_case = "SELECT 1 FROM cases WHERE id = $1",
);
impl_reviews!(
    PgRepository,
    sqlx::Postgres,
    begin_write = "BEGIN",
    lock_case = "SELECT 1 FROM cases WHERE id = $1 FOR UPDATE",
);
impl_reviews!(
    SqliteRepository,
    sqlx::Sqlite,
    begin_write = "BEGIN IMMEDIATE",
    lock_case = "SELECT 1 FROM cases WHERE id = $1",
);

impl_monitoring!(PgRepository, sqlx::Postgres);
impl_monitoring!(SqliteRepository, sqlx::Sqlite);
impl_outbox!(
    PgRepository,
    sqlx::Postgres,
    begin_write = "BEGIN",
    skip_locked = " FOR UPDATE SKIP LOCKED",
);
impl_outbox!(
    SqliteRepository,
    sqlx::Sqlite,
    begin_write = "BEGIN IMMEDIATE",
    skip_locked = "",
);

/// Maps a unique-constraint violation to [`StoreError::AlreadyExists`].
pub(crate) fn unique_violation(e: sqlx::Error, what: &str) -> StoreError {
    match &e {
        sqlx::Error::Database(db) if db.is_unique_violation() => {
            StoreError::AlreadyExists(what.to_owned())
        }
        _ => StoreError::Query(e),
    }
}
