//! The API's error type: a stable code and status per variant, an opaque
//! body for internal failures (the cause goes to the log only).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use fusion_schemas::ErrorBody;

/// Errors a handler answers with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The request is malformed; the message says how.
    #[error("{0}")]
    BadRequest(String),
    /// Nothing at this path or with this identifier.
    #[error("{0}")]
    NotFound(String),
    /// A dependency (database, blob store) is unavailable.
    #[error("{0}")]
    Unavailable(String),
    /// Anything else: logged with its cause chain, answered as an opaque 500.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl ApiError {
    fn code(&self) -> &'static str {
        match self {
            Self::BadRequest(_) => "bad_request",
            Self::NotFound(_) => "not_found",
            Self::Unavailable(_) => "unavailable",
            Self::Internal(_) => "internal",
        }
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        let message = match self {
            Self::Internal(cause) => {
                tracing::error!(error = ?cause, "internal error");
                "internal error; quote the request id to support".to_owned()
            }
            other => other.to_string(),
        };
        HttpResponse::build(self.status_code()).json(ErrorBody {
            code: self.code().to_owned(),
            message,
            request_id: None,
        })
    }
}
