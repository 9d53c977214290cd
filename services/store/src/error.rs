//! The store's error type. Messages are fit for an operator: they name the
//! failing step and never carry a password, a note's text or patient data.

/// Errors from the database side of the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// `DATABASE_URL` is not a `postgres://`, `postgresql://` or `sqlite://` URL.
    #[error("DATABASE_URL is not usable: {0}")]
    BadUrl(String),
    /// The database could not be reached or refused the connection.
    #[error("cannot connect to the {backend} database: {source}")]
    Connect {
        /// `postgres` or `sqlite`.
        backend: &'static str,
        /// The driver's error.
        #[source]
        source: sqlx::Error,
    },
    /// Applying the migrations failed.
    #[error("database migration failed: {0}")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A query failed.
    #[error("database query failed: {0}")]
    Query(#[from] sqlx::Error),
    /// A row with this key already exists (the message names what).
    #[error("{0} already exists")]
    AlreadyExists(String),
    /// A stored row could not be read back into its type (a bug or a
    /// hand-edited row).
    #[error("stored row is malformed: {0}")]
    Corrupt(String),
    /// A component in front of the database (a writer task) has stopped,
    /// as it does while the process shuts down.
    #[error("{0} has stopped")]
    Stopped(&'static str),
}
