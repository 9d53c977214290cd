//! The error body every route answers with.

use serde::{Deserialize, Serialize};

/// JSON error body: a stable machine-readable `code`, a sentence for people,
/// and the request id to quote to support. A 500 carries only the code
/// `internal` and the request id: no internals, PHI or secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// Stable error code, e.g. `bad_request`, `not_found`, `internal`.
    pub code: String,
    /// What went wrong and, where possible, what to do about it.
    pub message: String,
    /// The request id (also in the `X-Request-Id` header).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}
