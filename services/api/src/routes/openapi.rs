//! `GET /openapi.json`: the OpenAPI 3.1 description of the REST API
//! ([`crate::openapi`]). Public, as the API it describes is: it holds no
//! data, only the routes, their parameters, bodies, roles and error codes.

use std::sync::Arc;

use actix_web::{HttpResponse, web};

use crate::ApiError;

/// The document as served, serialised once per process. Startup builds it
/// (from [`crate::openapi::document_json`]) and hands it to this handler as
/// app data: the document describes the route table, which lists this
/// handler, so the handler takes it rather than reaching for it.
#[derive(Debug, Clone)]
pub(crate) struct Document(pub(crate) Arc<Result<String, String>>);

/// 200 with the document as `application/json`.
pub(crate) async fn document(doc: web::Data<Document>) -> Result<HttpResponse, ApiError> {
    match &*doc.0 {
        Ok(json) => Ok(HttpResponse::Ok()
            .content_type("application/json")
            .body(json.clone())),
        Err(e) => Err(ApiError::Internal(anyhow::anyhow!(
            "cannot serialise the OpenAPI document: {e}"
        ))),
    }
}
