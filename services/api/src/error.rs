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

/// JSON bodies: 1 MiB at most; a malformed body is a 400 with our error body.
pub(crate) fn json_config() -> actix_web::web::JsonConfig {
    actix_web::web::JsonConfig::default()
        .limit(1 << 20)
        .error_handler(|err, _req| {
            let status = match &err {
                actix_web::error::JsonPayloadError::OverflowKnownLength { .. }
                | actix_web::error::JsonPayloadError::Overflow { .. } => {
                    StatusCode::PAYLOAD_TOO_LARGE
                }
                actix_web::error::JsonPayloadError::ContentType => {
                    StatusCode::UNSUPPORTED_MEDIA_TYPE
                }
                _ => StatusCode::BAD_REQUEST,
            };
            let body = ErrorBody {
                code: "bad_request".to_owned(),
                message: format!("invalid JSON body: {err}"),
                request_id: None,
            };
            actix_web::error::InternalError::from_response(
                err,
                HttpResponse::build(status).json(body),
            )
            .into()
        })
}

/// Query strings: a malformed one is a 400 with our error body.
pub(crate) fn query_config() -> actix_web::web::QueryConfig {
    actix_web::web::QueryConfig::default().error_handler(|err, _req| {
        let body = ErrorBody {
            code: "bad_request".to_owned(),
            message: format!("invalid query: {err}"),
            request_id: None,
        };
        actix_web::error::InternalError::from_response(err, HttpResponse::BadRequest().json(body))
            .into()
    })
}

/// Any path the route table does not have (reached only when authenticated).
pub(crate) async fn not_found() -> HttpResponse {
    HttpResponse::NotFound().json(ErrorBody {
        code: "not_found".to_owned(),
        message: "no such route".to_owned(),
        request_id: None,
    })
}
