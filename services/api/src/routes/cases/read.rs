//! `GET /cases/{id}`: one case with its notes' ids and latest prediction.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use fusion_store::{AuditEntity, CaseRecord, CaseStatus, EntityKind};
use serde::Serialize;
use uuid::Uuid;

use super::predictions::PredictionView;
use super::{CasesError, existing_case, read_audit};
use crate::AppState;
use crate::auth::AuditContext;

/// A case as the API shows it.
#[derive(Debug, Serialize)]
struct CaseView {
    id: Uuid,
    status: CaseStatus,
    patient_id: Option<String>,
    accession_number: Option<String>,
    study_instance_uid: Option<String>,
    study_date: Option<String>,
    has_images: bool,
    note_ids: Vec<Uuid>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    latest_prediction: Option<PredictionView>,
}

impl CaseView {
    fn new(c: CaseRecord, latest_prediction: Option<PredictionView>) -> Self {
        Self {
            id: c.id,
            status: c.status,
            patient_id: c.patient_id.map(|p| p.as_str().to_owned()),
            accession_number: c.accession_number.map(|a| a.as_str().to_owned()),
            study_instance_uid: c.study_instance_uid.map(|s| s.as_str().to_owned()),
            study_date: c.study_date,
            has_images: c.has_images,
            note_ids: c.note_ids,
            created_at: c.created_at,
            updated_at: c.updated_at,
            latest_prediction,
        }
    }
}

/// `GET /cases/{id}`.
pub(crate) async fn read(
    state: web::Data<AppState>,
    ctx: AuditContext,
    path: web::Path<String>,
) -> Result<HttpResponse, CasesError> {
    let case = existing_case(&state, &path.into_inner()).await?;
    let latest = state
        .repository
        .predictions_of_case(case.id)
        .await?
        .into_iter()
        .next();
    let mut entities = vec![AuditEntity::new(EntityKind::Case, case.id.to_string())];
    entities.extend(
        latest
            .iter()
            .map(|p| AuditEntity::new(EntityKind::Prediction, p.prediction.id.to_string())),
    );
    let audit = read_audit(&ctx, "case-read", entities, case.patient_id.as_ref());
    state.repository.append_audit(&audit).await?;
    Ok(HttpResponse::Ok().json(CaseView::new(case, latest.map(PredictionView::from))))
}
