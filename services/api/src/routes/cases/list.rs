//! `GET /cases`: cases with their latest prediction in brief, filtered,
//! sorted and paged.

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use fusion_schemas::{AccessionNumber, PatientId};
use fusion_store::{
    AuditAction, AuditEntity, AuditEventType, CaseFilter, CaseSort, CaseStatus, CaseSummary,
    EntityKind, Finding,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{CasesError, invalid};
use crate::AppState;
use crate::auth::AuditContext;

/// One entry of `GET /cases`.
#[derive(Debug, Serialize)]
struct SummaryView {
    id: Uuid,
    status: CaseStatus,
    patient_id: Option<String>,
    accession_number: Option<String>,
    study_instance_uid: Option<String>,
    study_date: Option<String>,
    updated_at: DateTime<Utc>,
    latest_prediction: Option<BriefView>,
}

#[derive(Debug, Serialize)]
struct BriefView {
    id: Uuid,
    version: i32,
    abstain: bool,
    refer: bool,
    findings: Vec<Finding>,
    /// The stored findings could not be read: open the case.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    findings_unreadable: bool,
    created_at: DateTime<Utc>,
}

impl From<CaseSummary> for SummaryView {
    fn from(s: CaseSummary) -> Self {
        Self {
            id: s.id,
            status: s.status,
            patient_id: s.patient_id.map(|p| p.as_str().to_owned()),
            accession_number: s.accession_number.map(|a| a.as_str().to_owned()),
            study_instance_uid: s.study_instance_uid.map(|u| u.as_str().to_owned()),
            study_date: s.study_date,
            updated_at: s.updated_at,
            latest_prediction: s.latest_prediction.map(|p| BriefView {
                id: p.id,
                version: p.version,
                abstain: p.abstain,
                refer: p.refer,
                findings: p.findings,
                findings_unreadable: p.findings_unreadable,
                created_at: p.created_at,
            }),
        }
    }
}

/// Query of `GET /cases`.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(crate) struct ListQuery {
    /// Case status.
    pub(crate) status: Option<String>,
    /// Patient ID.
    pub(crate) patient_id: Option<String>,
    /// Accession number.
    pub(crate) accession_number: Option<String>,
    /// `YYYYMMDD` or `YYYY-MM-DD`.
    pub(crate) study_date_from: Option<String>,
    /// `YYYYMMDD` or `YYYY-MM-DD`.
    pub(crate) study_date_to: Option<String>,
    /// `study_date`, `updated` (default) or `status`.
    pub(crate) sort: Option<String>,
    /// `asc` or `desc` (default: newest first, statuses A→Z).
    pub(crate) order: Option<String>,
    /// At most this many cases.
    pub(crate) limit: Option<i64>,
    /// Skip this many.
    pub(crate) offset: Option<i64>,
}

/// A DICOM DA (`YYYYMMDD`) from `YYYYMMDD` or `YYYY-MM-DD`.
fn study_date(name: &str, raw: Option<&str>) -> Result<Option<String>, CasesError> {
    let Some(raw) = raw else { return Ok(None) };
    let compact: String = raw.chars().filter(|c| *c != '-').collect();
    let valid = compact.len() == 8
        && compact.chars().all(|c| c.is_ascii_digit())
        && chrono::NaiveDate::parse_from_str(&compact, "%Y%m%d").is_ok();
    if !valid {
        return Err(invalid(
            "invalid_parameter",
            format!("query parameter {name} is not a date (YYYYMMDD or YYYY-MM-DD)"),
        ));
    }
    Ok(Some(compact))
}

impl ListQuery {
    /// The store filter, or a 400 naming the parameter that is not valid.
    pub(crate) fn parse(self) -> Result<CaseFilter, CasesError> {
        let bad = |name: &str, reason: String| {
            invalid(
                "invalid_parameter",
                format!("query parameter {name} is not valid: {reason}"),
            )
        };
        let status = self
            .status
            .as_deref()
            .map(|s| {
                CaseStatus::parse(s).ok_or_else(|| {
                    let known: Vec<&str> = CaseStatus::ALL.iter().map(|c| c.as_str()).collect();
                    bad("status", format!("one of {}", known.join(", ")))
                })
            })
            .transpose()?;
        let sort = match self.sort.as_deref() {
            None | Some("updated") => CaseSort::Updated,
            Some("study_date") => CaseSort::StudyDate,
            Some("status") => CaseSort::Status,
            Some(_) => return Err(bad("sort", "study_date, updated or status".into())),
        };
        let ascending = match self.order.as_deref() {
            None => sort == CaseSort::Status,
            Some("asc") => true,
            Some("desc") => false,
            Some(_) => return Err(bad("order", "asc or desc".into())),
        };
        let limit = self.limit.unwrap_or(100);
        if !(1..=1000).contains(&limit) {
            return Err(bad("limit", "1 to 1000".into()));
        }
        let offset = self.offset.unwrap_or(0);
        if offset < 0 {
            return Err(bad("offset", "0 or more".into()));
        }
        Ok(CaseFilter {
            status,
            patient_id: self
                .patient_id
                .as_deref()
                .map(PatientId::parse)
                .transpose()
                .map_err(|e| bad("patient_id", e.to_string()))?,
            accession_number: self
                .accession_number
                .as_deref()
                .map(AccessionNumber::parse)
                .transpose()
                .map_err(|e| bad("accession_number", e.to_string()))?,
            study_date_from: study_date("study_date_from", self.study_date_from.as_deref())?,
            study_date_to: study_date("study_date_to", self.study_date_to.as_deref())?,
            sort,
            ascending,
            limit: Some(limit),
            offset: Some(offset),
        })
    }
}

/// `GET /cases`.
pub(crate) async fn list(
    state: web::Data<AppState>,
    ctx: AuditContext,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, CasesError> {
    let filter = query.into_inner().parse()?;
    let cases = state.repository.list_cases(&filter).await?;
    let mut patient_ids: Vec<String> = filter
        .patient_id
        .iter()
        .chain(cases.iter().filter_map(|c| c.patient_id.as_ref()))
        .map(|p| p.as_str().to_owned())
        .collect();
    patient_ids.sort();
    patient_ids.dedup();
    let entities = cases
        .iter()
        .map(|c| AuditEntity::new(EntityKind::Case, c.id.to_string()))
        .collect();
    let audit = ctx.record(
        AuditEventType::Query,
        "case-search",
        AuditAction::Execute,
        entities,
        patient_ids,
    );
    state.repository.append_audit(&audit).await?;
    let body: Vec<SummaryView> = cases.into_iter().map(SummaryView::from).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "cases": body,
        "limit": filter.limit,
        "offset": filter.offset,
    })))
}
