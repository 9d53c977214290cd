//! Predictions: `POST /cases/{id}/predictions` queues one (202; a case
//! with neither images nor a note is a 422 and queues nothing);
//! `GET /cases/{id}/predictions` lists every version, newest first;
//! `GET /predictions/{id}` shows one.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use fusion_store::{
    AuditAction, AuditEntity, AuditEventType, EntityKind, Finding, PredictionRecord,
    PredictionStatus,
};
use serde::Serialize;
use uuid::Uuid;

use super::access::may_act_on;
use super::{CasesError, existing_case, existing_prediction, not_found, patients_of, read_audit};
use crate::AppState;
use crate::auth::AuditContext;

/// A prediction version as the API shows it.
#[derive(Debug, Serialize)]
pub(crate) struct PredictionView {
    id: Uuid,
    case_id: Uuid,
    version: i32,
    status: PredictionStatus,
    abstain: bool,
    abstain_reasons: Vec<String>,
    refer: bool,
    findings: Vec<Finding>,
    packages: Vec<fusion_schemas::PackageRef>,
    branches: fusion_schemas::Branches,
    fused: BTreeMap<String, fusion_schemas::FusedLabel>,
    timings_ms: BTreeMap<String, f64>,
    inputs: fusion_schemas::PredictionInputs,
    job_id: Option<Uuid>,
    created_at: DateTime<Utc>,
}

impl From<PredictionRecord> for PredictionView {
    fn from(r: PredictionRecord) -> Self {
        let p = r.prediction;
        Self {
            id: p.id,
            case_id: p.case_id,
            version: r.version,
            status: p.status,
            abstain: p.abstain,
            abstain_reasons: p.abstain_reasons,
            refer: p.refer,
            findings: p.findings,
            packages: p.packages,
            branches: p.branches,
            fused: p.fused,
            timings_ms: p.timings,
            inputs: p.inputs,
            job_id: p.job_id,
            created_at: r.created_at,
        }
    }
}

/// `POST /cases/{id}/predictions`: 202 with the queued job.
pub(crate) async fn request_prediction(
    state: web::Data<AppState>,
    ctx: AuditContext,
    path: web::Path<String>,
) -> Result<HttpResponse, CasesError> {
    let case = existing_case(&state, &path.into_inner()).await?;
    if !case.has_inputs() {
        return Err(CasesError::Unprocessable {
            code: "no_modality",
            message: "the case has neither a stored image nor a note: nothing to predict from"
                .into(),
        });
    }
    if !may_act_on(&state, &ctx, &case).await? {
        return Err(not_found("case"));
    }
    let audit = ctx.record(
        AuditEventType::PatientRecord,
        "prediction-request",
        AuditAction::Execute,
        vec![AuditEntity::new(EntityKind::Case, case.id.to_string())],
        patients_of(case.patient_id.as_ref()),
    );
    let queued = fusion_app::cases::enqueue(&state, case.id, Some(&audit)).await?;
    Ok(HttpResponse::Accepted()
        .insert_header(("location", format!("/cases/{}/predictions", case.id)))
        .json(serde_json::json!({
            "job_id": queued.job_id,
            "case_id": case.id,
            "status": "queued",
        })))
}

/// `GET /cases/{id}/predictions`: every version, newest first.
pub(crate) async fn case_predictions(
    state: web::Data<AppState>,
    ctx: AuditContext,
    path: web::Path<String>,
) -> Result<HttpResponse, CasesError> {
    let case = existing_case(&state, &path.into_inner()).await?;
    let versions = state.repository.predictions_of_case(case.id).await?;
    let mut entities = vec![AuditEntity::new(EntityKind::Case, case.id.to_string())];
    entities.extend(
        versions
            .iter()
            .map(|p| AuditEntity::new(EntityKind::Prediction, p.prediction.id.to_string())),
    );
    let audit = read_audit(&ctx, "prediction-read", entities, case.patient_id.as_ref());
    state.repository.append_audit(&audit).await?;
    let body: Vec<PredictionView> = versions.into_iter().map(PredictionView::from).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "case_id": case.id,
        "status": case.status,
        "predictions": body,
    })))
}

/// `GET /predictions/{id}`.
pub(crate) async fn read_prediction(
    state: web::Data<AppState>,
    ctx: AuditContext,
    path: web::Path<String>,
) -> Result<HttpResponse, CasesError> {
    let (prediction, case) = existing_prediction(&state, &path.into_inner()).await?;
    let entities = vec![
        AuditEntity::new(EntityKind::Case, case.id.to_string()),
        AuditEntity::new(EntityKind::Prediction, prediction.prediction.id.to_string()),
    ];
    let audit = read_audit(&ctx, "prediction-read", entities, case.patient_id.as_ref());
    state.repository.append_audit(&audit).await?;
    Ok(HttpResponse::Ok().json(PredictionView::from(prediction)))
}
