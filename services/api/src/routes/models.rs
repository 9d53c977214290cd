//! `GET /models` and `GET /models/{name}`: the installed model packages as
//! JSON — identity, manifest SHA-256, labels with their calibration
//! (temperature, split-conformal q̂ and α, base rate, decision threshold),
//! the training record and validation figures of a trained package, and
//! which observations no package calibrates (`not_calibrated`). Read from
//! the manifests at start ([`fusion_models::catalogue`]); no patient data,
//! so reads are not audited.

use actix_web::{HttpResponse, web};

use crate::{ApiError, AppState};

/// `GET /models`: the whole catalogue.
pub(crate) async fn list(state: web::Data<AppState>) -> HttpResponse {
    HttpResponse::Ok().json(state.catalogue.as_ref())
}

/// `GET /models/{name}`: one package; 404 `not_found` when none is installed
/// under that name.
pub(crate) async fn read(
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    state
        .catalogue
        .package(&name)
        .map(|p| HttpResponse::Ok().json(p))
        .ok_or_else(|| ApiError::NotFound("no model package of that name is installed".into()))
}
