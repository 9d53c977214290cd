//! `GET /openapi.json`: the OpenAPI 3.1 description of the REST API
//! ([`crate::openapi`]). Public, as the API it describes is: it holds no
//! data, only the routes, their parameters, bodies, roles and error codes.

use std::sync::LazyLock;

use actix_web::HttpResponse;

use crate::ApiError;

/// The document, serialised once.
static DOCUMENT: LazyLock<Result<String, String>> =
    LazyLock::new(|| crate::openapi::document_json().map_err(|e| e.to_string()));

/// 200 with the document as `application/json`.
pub(crate) async fn document() -> Result<HttpResponse, ApiError> {
    match &*DOCUMENT {
        Ok(json) => Ok(HttpResponse::Ok()
            .content_type("application/json")
            .body(json.clone())),
        Err(e) => Err(ApiError::Internal(anyhow::anyhow!(
            "cannot serialise the OpenAPI document: {e}"
        ))),
    }
}
