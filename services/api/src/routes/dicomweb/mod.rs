//! DICOMweb (DICOM PS3.18) under `/dicom-web`, one file per service:
//! [`stow`] (STOW-RS, §10.5), [`qido`] (QIDO-RS, §10.6), [`wado`] (WADO-RS
//! instances and metadata, §10.4), [`frames`] (Retrieve Frames and bulk
//! data), [`rendered`] (rendered resources), with the content negotiation
//! and multipart bodies of [`negotiate`]. This module holds what they share:
//! the retrieve URL base, path parsing and the caller's read-back
//! restriction.
//!
//! Integration clients may read back only what they sent; other instances
//! answer 404 to them, as if absent.

mod decode_slots;
mod frames;
mod negotiate;
mod qido;
mod rendered;
mod stow;
mod wado;

pub(crate) use frames::{bulk_data, frames};
pub(crate) use qido::{
    search_all_instances, search_all_series, search_series, search_series_instances,
    search_studies, search_study_instances,
};
pub(crate) use rendered::{frame_rendered, instance_rendered, series_rendered, study_rendered};
pub(crate) use stow::{stow, stow_study};
pub(crate) use wado::{metadata, retrieve};

use std::collections::BTreeSet;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use fusion_schemas::{ErrorBody, SeriesInstanceUid, SopInstanceUid, StudyInstanceUid};
use fusion_store::InstanceRecord;
use serde_json::Value;

use crate::auth::{AuditContext, Permission};
use crate::{ApiError, AppState};

/// The base of every DICOMweb URL the service hands out (RetrieveURL,
/// BulkDataURI): the public origin ([`crate::public_url`]: the configured
/// base URL, a trusted proxy's forwarded headers, or the request's Host)
/// followed by `/dicom-web`.
fn base_url(req: &HttpRequest, state: &AppState) -> String {
    format!("{}/dicom-web", state.public_url.origin(req))
}

fn dicom_json(status: StatusCode, body: &Value) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("application/dicom+json")
        .body(body.to_string())
}

fn problem(status: StatusCode, code: &str, message: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status).json(ErrorBody {
        code: code.to_owned(),
        message: message.into(),
        request_id: None,
    })
}

fn parse_study(raw: &str) -> Result<StudyInstanceUid, ApiError> {
    StudyInstanceUid::parse(raw).map_err(|e| ApiError::BadRequest(e.to_string()))
}

fn parse_series(raw: &str) -> Result<SeriesInstanceUid, ApiError> {
    SeriesInstanceUid::parse(raw).map_err(|e| ApiError::BadRequest(e.to_string()))
}

fn parse_sop(raw: &str) -> Result<SopInstanceUid, ApiError> {
    SopInstanceUid::parse(raw).map_err(|e| ApiError::BadRequest(e.to_string()))
}

/// The study, and optionally the series and instance, a WADO-RS path names
/// (`{study}`, `{series}`, `{instance}` path segments), parsed; a malformed
/// UID is a 400.
pub(crate) struct Scope {
    study: StudyInstanceUid,
    series: Option<SeriesInstanceUid>,
    instance: Option<SopInstanceUid>,
}

impl actix_web::FromRequest for Scope {
    type Error = ApiError;
    type Future = std::future::Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let m = req.match_info();
        std::future::ready((|| {
            Ok(Scope {
                study: parse_study(m.get("study").unwrap_or(""))?,
                series: m.get("series").map(parse_series).transpose()?,
                instance: m.get("instance").map(parse_sop).transpose()?,
            })
        })())
    }
}

/// The submitter restriction for a caller who may read only their own data.
fn own_only(ctx: &AuditContext) -> Option<String> {
    (!ctx.principal.can(Permission::ReadImages)).then(|| ctx.principal.id.clone())
}

fn internal(e: impl Into<anyhow::Error>) -> ApiError {
    ApiError::Internal(e.into())
}

async fn study_patients(
    state: &AppState,
    study: &StudyInstanceUid,
) -> Result<BTreeSet<String>, ApiError> {
    Ok(state
        .repository
        .study(study)
        .await
        .map_err(internal)?
        .and_then(|s| s.patient_id)
        .map(|p| p.to_string())
        .into_iter()
        .collect())
}

fn instance_url(base: &str, i: &InstanceRecord) -> String {
    format!(
        "{base}/studies/{}/series/{}/instances/{}",
        i.study_instance_uid, i.series_instance_uid, i.sop_instance_uid
    )
}
