//! `GET /audit/events`: the audit trail, filtered, as JSON, a FHIR R4
//! Bundle of AuditEvent, NDJSON or CSV (`?format=` or the `Accept` header);
//! `GET /audit/verify`: walks the chain. Both are themselves audited.

use actix_web::http::header;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, Utc};
use fusion_store::{
    AuditAction, AuditEntity, AuditEventType, AuditFilter, AuditOutcome, EntityKind,
};
use serde::Deserialize;

use crate::auth::AuditContext;
use crate::{ApiError, AppState};
use fusion_app::audit_export::{ExportFormat, render};

/// Query of `GET /audit/events`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct EventsQuery {
    /// Events recorded at or after this instant (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    from: Option<DateTime<Utc>>,
    /// Events recorded before this instant (RFC 3339).
    #[param(value_type = Option<String>, format = DateTime)]
    to: Option<DateTime<Utc>>,
    /// Events naming this Patient ID.
    patient: Option<String>,
    /// Events by this user or key (name or id).
    agent: Option<String>,
    /// FHIR AuditEvent action: `C`, `R`, `U`, `D` or `E`.
    action: Option<String>,
    /// FHIR AuditEvent outcome: `0`, `4`, `8` or `12`.
    outcome: Option<String>,
    /// At most this many events.
    limit: Option<i64>,
    /// `json`, `fhir` (a Bundle of AuditEvent), `ndjson` or `csv`; else the
    /// `Accept` header decides.
    format: Option<String>,
}

fn negotiate(req: &HttpRequest, format: Option<&str>) -> Result<ExportFormat, ApiError> {
    if let Some(f) = format {
        return ExportFormat::parse(f).ok_or_else(|| {
            ApiError::BadRequest(format!(
                "unknown format {f:?}: use json, fhir, ndjson or csv"
            ))
        });
    }
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    Ok(if accept.contains("application/fhir+ndjson") {
        ExportFormat::Ndjson
    } else if accept.contains("application/fhir+json") {
        ExportFormat::FhirBundle
    } else if accept.contains("text/csv") {
        ExportFormat::Csv
    } else {
        ExportFormat::Json
    })
}

pub(crate) async fn events(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuditContext,
    query: web::Query<EventsQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let format = negotiate(&req, q.format.as_deref())?;
    let filter = AuditFilter {
        from: q.from,
        to: q.to,
        patient_id: q.patient.clone(),
        agent: q.agent.clone(),
        action: q
            .action
            .as_deref()
            .map(|a| {
                fusion_store::AuditAction::from_code(a)
                    .ok_or_else(|| ApiError::BadRequest("action is one of C, R, U, D, E".into()))
            })
            .transpose()?,
        outcome: q
            .outcome
            .as_deref()
            .map(|o| {
                AuditOutcome::from_code(o)
                    .ok_or_else(|| ApiError::BadRequest("outcome is one of 0, 4, 8, 12".into()))
            })
            .transpose()?,
        limit: q.limit.map(|l| l.clamp(1, 100_000)),
    };
    // The export is audited before it is read, so it lists itself and its
    // chain head covers it.
    let mut record = ctx.record(
        if matches!(format, ExportFormat::Json) {
            AuditEventType::AuditLogUsed
        } else {
            AuditEventType::Export
        },
        "audit-export",
        if matches!(format, ExportFormat::Json) {
            AuditAction::Read
        } else {
            AuditAction::Execute
        },
        vec![AuditEntity::new(EntityKind::AuditLog, "audit_events")],
        q.patient.iter().cloned().collect(),
    );
    record.outcome_desc = Some(format!("format {format:?}"));
    let own = state
        .repository
        .append_audit(&record)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let events = state
        .repository
        .audit_events(&filter)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let body =
        render(&events, format, Some(&own.hash)).map_err(|e| ApiError::Internal(e.into()))?;
    Ok(HttpResponse::Ok()
        .content_type(format.content_type())
        .insert_header(("X-Audit-Chain-Head", own.hash.clone()))
        .body(body))
}

/// Records the check (110106 Audit Log Used, `audit-verify`, action E),
/// then verifies the whole hash chain; shared by `GET /audit/verify` and
/// the auditor's integrity page.
///
/// # Errors
///
/// A storage failure while recording or reading.
pub(crate) async fn verify_audited(
    state: &AppState,
    ctx: &AuditContext,
) -> Result<fusion_store::ChainReport, fusion_store::StoreError> {
    verify_audited_against(state, ctx, None).await
}

/// As [`verify_audited`], and the chain must hold `anchor` (a head kept
/// outside the database).
///
/// # Errors
///
/// A storage failure while recording or reading.
pub(crate) async fn verify_audited_against(
    state: &AppState,
    ctx: &AuditContext,
    anchor: Option<fusion_store::ChainAnchor>,
) -> Result<fusion_store::ChainReport, fusion_store::StoreError> {
    let record = ctx.record(
        AuditEventType::AuditLogUsed,
        "audit-verify",
        AuditAction::Execute,
        vec![AuditEntity::new(EntityKind::AuditLog, "audit_events")],
        vec![],
    );
    state.repository.append_audit(&record).await?;
    fusion_store::verify_chain_against(state.repository.as_ref(), anchor).await
}

/// Query of `GET /audit/verify`: an optional head kept outside the
/// database that the chain must still hold.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct VerifyQuery {
    /// `expect_head`: an event hash, 64 hex digits.
    expect_head: Option<String>,
    /// `expect_seq`: that event's sequence number.
    expect_seq: Option<i64>,
}

/// `GET /audit/verify[?expect_head=HASH[&expect_seq=N]]`: the chain report;
/// with an expected head, a trail truncated or rewritten before it is
/// reported as broken.
pub(crate) async fn verify(
    state: web::Data<AppState>,
    ctx: AuditContext,
    query: web::Query<VerifyQuery>,
) -> Result<HttpResponse, ApiError> {
    let VerifyQuery {
        expect_head,
        expect_seq,
    } = query.into_inner();
    let anchor = match (expect_head, expect_seq) {
        (Some(hash), seq) => {
            if hash.len() != 64 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(ApiError::BadRequest(
                    "expect_head must be 64 hexadecimal digits".into(),
                ));
            }
            Some(fusion_store::ChainAnchor { hash, seq })
        }
        (None, Some(_)) => {
            return Err(ApiError::BadRequest("expect_seq needs expect_head".into()));
        }
        (None, None) => None,
    };
    let report = verify_audited_against(&state, &ctx, anchor)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    Ok(HttpResponse::Ok().json(report))
}
