//! Bodies of the unauthenticated probes `/healthz` and `/readyz`.

use serde::{Deserialize, Serialize};

/// The state of one dependency checked by `/readyz`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct CheckStatus {
    /// `true` when the dependency answered within the probe's timeout.
    pub ok: bool,
    /// What went wrong, in words fit for an operator; never a secret or PHI.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// How long the check took, in milliseconds.
    pub elapsed_ms: u64,
}

/// Body of `/readyz`: 200 when every check passes, 503 otherwise.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Readiness {
    /// `"ready"` or `"unavailable"`.
    pub status: String,
    /// The database (PostgreSQL or SQLite).
    pub database: CheckStatus,
    /// The blob store holding DICOM bytes.
    pub blob_store: CheckStatus,
}
