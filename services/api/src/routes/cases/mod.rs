//! Cases, predictions and reviews over HTTP.
//!
//! - `POST /cases` opens (or finds) the case of an accession number or a
//!   study and links notes to it; `GET /cases` lists cases with their latest
//!   prediction in brief; `GET /cases/{id}` shows one with its notes' ids
//!   and latest prediction.
//! - `POST /cases/{id}/predictions` queues a prediction (202; a case with
//!   neither images nor a note is a 422 and queues nothing);
//!   `GET /cases/{id}/predictions` lists every version, newest first;
//!   `GET /predictions/{id}` shows one.
//! - `POST /predictions/{id}/reviews` records a clinician's decision per
//!   observation (accept, reject, or amend to present, absent or
//!   uncertain) and marks the case reviewed; `GET /predictions/{id}/reviews`
//!   lists them.
//!
//! Every read is audited (110110, action R; a list as a 110112 query naming
//! the patients returned); every change carries its event in the same
//! transaction. Integration clients may open cases and ask for predictions
//! but read no results (the permission matrix).
//!
//! One file per handler group: `open.rs` (`POST /cases`), `list.rs`
//! (`GET /cases`), `read.rs` (`GET /cases/{id}`), `predictions.rs` and
//! `reviews.rs`; `access.rs` says who may act on a case. This file holds
//! the error they share and the lookups of a case or prediction by path.

mod access;
mod list;
mod open;
mod predictions;
mod read;
mod reviews;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError};
use fusion_schemas::{ErrorBody, PatientId};
use fusion_store::{
    AuditAction, AuditEntity, AuditEventType, CaseRecord, EntityKind, PredictionRecord, StoreError,
};
use uuid::Uuid;

use crate::auth::AuditContext;
use crate::{ApiError, AppState};

pub(crate) use list::{ListQuery, list};
pub(crate) use open::{OpenCase, open};
pub(crate) use predictions::{case_predictions, read_prediction, request_prediction};
pub(crate) use read::read;
pub use reviews::MAX_COMMENT_CHARS;
pub(crate) use reviews::{
    AmendedValue, Decision, DecisionBody, ReviewBody, create_review, review, reviews,
};

/// Why a cases request failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CasesError {
    /// The request is malformed; `code` names how.
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    /// The request is well formed but cannot be done (a case without inputs).
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    /// The request conflicts with what is stored (a case of another
    /// patient).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// Anything the rest of the API answers.
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl ResponseError for CasesError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Invalid { .. } => StatusCode::BAD_REQUEST,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Conflict { .. } => StatusCode::CONFLICT,
            Self::Api(e) => e.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        let code = match self {
            Self::Invalid { code, .. }
            | Self::Unprocessable { code, .. }
            | Self::Conflict { code, .. } => *code,
            Self::Api(e) => return e.error_response(),
        };
        HttpResponse::build(self.status_code()).json(ErrorBody {
            code: code.to_owned(),
            message: self.to_string(),
            request_id: None,
        })
    }
}

impl From<StoreError> for CasesError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::PatientMismatch { .. } => Self::Conflict {
                code: "patient_mismatch",
                message: "the case of this accession number or study belongs to another \
                          patient"
                    .to_owned(),
            },
            e => Self::Api(ApiError::Internal(e.into())),
        }
    }
}

fn invalid(code: &'static str, message: impl Into<String>) -> CasesError {
    CasesError::Invalid {
        code,
        message: message.into(),
    }
}

pub(crate) fn not_found(what: &str) -> CasesError {
    CasesError::Api(ApiError::NotFound(format!("no such {what}")))
}

/// An unknown or malformed id in a path is a 404, as an absent one.
fn path_id(raw: &str, what: &str) -> Result<Uuid, CasesError> {
    Uuid::parse_str(raw).map_err(|_| not_found(what))
}

fn patients_of(patient: Option<&PatientId>) -> Vec<String> {
    patient.iter().map(|p| p.as_str().to_owned()).collect()
}

pub(crate) async fn existing_case(state: &AppState, raw: &str) -> Result<CaseRecord, CasesError> {
    let id = path_id(raw, "case")?;
    state
        .repository
        .case(id)
        .await?
        .ok_or_else(|| not_found("case"))
}

pub(crate) fn read_audit(
    ctx: &AuditContext,
    subtype: &str,
    entities: Vec<AuditEntity>,
    patient: Option<&PatientId>,
) -> fusion_store::AuditRecord {
    let patient_ids = patients_of(patient);
    let mut entities = entities;
    entities.extend(
        patient_ids
            .iter()
            .map(|p| AuditEntity::new(EntityKind::Patient, p)),
    );
    ctx.record(
        AuditEventType::PatientRecord,
        subtype,
        AuditAction::Read,
        entities,
        patient_ids,
    )
}

async fn existing_prediction(
    state: &AppState,
    raw: &str,
) -> Result<(PredictionRecord, CaseRecord), CasesError> {
    let id = path_id(raw, "prediction")?;
    let prediction = state
        .repository
        .prediction(id)
        .await?
        .ok_or_else(|| not_found("prediction"))?;
    let case = state
        .repository
        .case(prediction.prediction.case_id)
        .await?
        .ok_or_else(|| not_found("prediction"))?;
    Ok((prediction, case))
}
