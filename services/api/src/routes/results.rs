//! Results as they leave the service (issue #17): `GET /cases/{id}/fhir`
//! (the latest prediction version as a FHIR R4 Bundle,
//! [`fusion_app::fhir_report`]) and `GET /cases/{id}/deliveries` (where each
//! version's SR and FHIR deliveries stand, [`fusion_store::outbox`]).

use actix_web::{HttpResponse, web};
use fusion_store::{AuditEntity, DeliveryFilter, EntityKind};

use super::cases::{CasesError, existing_case, not_found, read_audit};
use crate::auth::AuditContext;
use crate::{ApiError, AppState};

/// `GET /cases/{id}/fhir`: 200 `application/fhir+json` Bundle (type
/// `collection`) of the latest version with its latest review; 404 when
/// the case or its prediction does not exist. Audited as a read (110110).
pub(crate) async fn fhir(
    state: web::Data<AppState>,
    ctx: AuditContext,
    path: web::Path<String>,
) -> Result<HttpResponse, CasesError> {
    let case = existing_case(&state, &path.into_inner()).await?;
    let bundle = fusion_app::fhir_report::case_bundle(&state, case.id)
        .await
        .map_err(|e| CasesError::Api(ApiError::Internal(e.into())))?
        .ok_or_else(|| not_found("prediction of this case"))?;
    let audit = read_audit(
        &ctx,
        "fhir-report-read",
        vec![AuditEntity::new(EntityKind::Case, case.id.to_string())],
        case.patient_id.as_ref(),
    );
    state.repository.append_audit(&audit).await?;
    Ok(HttpResponse::Ok()
        .content_type("application/fhir+json")
        .json(bundle))
}

/// `GET /cases/{id}/deliveries`: the case's outbox rows, newest first
/// (target, state, attempts, the destination's last answer, the SR's SOP
/// Instance UID). Audited as a read (110110).
pub(crate) async fn deliveries(
    state: web::Data<AppState>,
    ctx: AuditContext,
    path: web::Path<String>,
) -> Result<HttpResponse, CasesError> {
    let case = existing_case(&state, &path.into_inner()).await?;
    let rows = state
        .repository
        .deliveries(&DeliveryFilter {
            case_id: Some(case.id),
            ..DeliveryFilter::default()
        })
        .await?;
    let audit = read_audit(
        &ctx,
        "delivery-read",
        vec![AuditEntity::new(EntityKind::Case, case.id.to_string())],
        case.patient_id.as_ref(),
    );
    state.repository.append_audit(&audit).await?;
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "case_id": case.id,
        "deliveries": rows,
    })))
}
