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
    /// The case an accession number or study names belongs to another
    /// Patient ID than what arrived: it is not linked there (a wrong-patient
    /// link would put one patient's study or note into another's case).
    #[error("case {case_id} belongs to another patient; not linked")]
    PatientMismatch {
        /// The case that was not linked to.
        case_id: uuid::Uuid,
    },
}

/// Attempts a transaction is given when the database aborts it as the
/// loser of a deadlock or a serialisation conflict ([`StoreError::is_transient`]).
pub const TRANSIENT_ATTEMPTS: u32 = 3;

impl StoreError {
    /// Whether the database aborted the transaction only because another
    /// one raced it: PostgreSQL's `40P01` (deadlock detected) and `40001`
    /// (serialization failure), SQLSTATE class 40 "Transaction Rollback"
    /// (PostgreSQL manual, Appendix A). Nothing of it was kept, so the same
    /// transaction may be run again.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        match self {
            Self::Query(sqlx::Error::Database(e)) => {
                matches!(e.code().as_deref(), Some("40P01" | "40001"))
            }
            _ => false,
        }
    }
}

/// Reads a stored JSON column into its typed shape. A malformed value is
/// [`StoreError::Corrupt`] naming the column and the path of the bad field
/// (e.g. `predictions.fused: a malformed value at no_finding.probability`),
/// never serde's message, which quotes the value and so could carry patient
/// data or note text into a log.
pub(crate) fn from_json<T: serde::de::DeserializeOwned>(
    what: &str,
    value: serde_json::Value,
) -> Result<T, StoreError> {
    serde_path_to_error::deserialize(value)
        .map_err(|e| StoreError::Corrupt(format!("{what}: a malformed value at {}", e.path())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Row {
        probability: f64,
    }

    #[test]
    fn a_malformed_stored_value_is_named_by_its_path_not_quoted() {
        let value = serde_json::json!({ "probability": "Jane Invented-Patient" });
        let e = from_json::<Row>("predictions.fused", value).unwrap_err();
        let text = e.to_string();
        assert!(text.contains("predictions.fused"), "{text}");
        assert!(text.contains("probability"), "{text}");
        assert!(!text.contains("Jane"), "{text}");
    }
}
