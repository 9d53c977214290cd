//! Opening a repository: the backend a [`DatabaseUrl`] names, behind the
//! [`Repository`] traits.

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use super::{PgRepository, SqliteRepository};
use crate::StoreError;
use crate::repository::{Backend, DatabaseUrl, PoolOptions, Repository};

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
