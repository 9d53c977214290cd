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

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, ResponseError, web};
use chrono::{DateTime, Utc};
use fusion_schemas::{AccessionNumber, ErrorBody, PatientId, StudyInstanceUid};
use fusion_store::{
    AuditAction, AuditEntity, AuditEventType, CaseFilter, CaseKey, CaseRecord, CaseSort,
    CaseStatus, CaseSummary, Finding, LinkChange, NewReview, PredictionRecord, PredictionStatus,
    ReviewRecord, StoreError,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::{AuditContext, Permission};
use crate::{ApiError, AppState};

/// Longest review comment, characters.
pub const MAX_COMMENT_CHARS: usize = 4000;

/// Why a cases request failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum CasesError {
    /// The request is malformed; `code` names how.
    #[error("{message}")]
    Invalid { code: &'static str, message: String },
    /// The request is well formed but cannot be done (a case without inputs).
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    /// Anything the rest of the API answers.
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl ResponseError for CasesError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Invalid { .. } => StatusCode::BAD_REQUEST,
            Self::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Api(e) => e.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        let code = match self {
            Self::Invalid { code, .. } | Self::Unprocessable { code, .. } => *code,
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
        Self::Api(ApiError::Internal(e.into()))
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

// ------------------------------------------------------------------ views

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

/// The answer to `POST /cases`: what the caller sent, the case id and
/// status; no results (an integration client may call it).
#[derive(Debug, Serialize)]
struct OpenedView {
    id: Uuid,
    created: bool,
    status: CaseStatus,
    accession_number: Option<String>,
    study_instance_uid: Option<String>,
    note_ids: Vec<Uuid>,
}

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
                created_at: p.created_at,
            }),
        }
    }
}

/// A review as the API shows it.
#[derive(Debug, Serialize)]
struct ReviewView {
    id: Uuid,
    prediction_id: Uuid,
    case_id: Uuid,
    reviewer: String,
    decisions: serde_json::Value,
    comment: Option<String>,
    created_at: DateTime<Utc>,
}

impl From<ReviewRecord> for ReviewView {
    fn from(r: ReviewRecord) -> Self {
        Self {
            id: r.review.id,
            prediction_id: r.review.prediction_id,
            case_id: r.case_id,
            reviewer: r.review.reviewer,
            decisions: r.review.decisions,
            comment: r.review.comment,
            created_at: r.created_at,
        }
    }
}

// ------------------------------------------------------------------ POST /cases

/// Body of `POST /cases`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct OpenCase {
    /// The study (DICOM UI, PS3.5 §9); this or `accession_number`.
    study_instance_uid: Option<String>,
    /// The accession number (DICOM SH); this or `study_instance_uid`.
    accession_number: Option<String>,
    /// Notes to join to the case, by id (UUID; at most 100).
    #[serde(default)]
    #[schema(value_type = Vec<String>)]
    note_ids: Vec<Uuid>,
}

impl OpenCase {
    fn parse(self) -> Result<(CaseKey, Vec<Uuid>), CasesError> {
        let key = CaseKey {
            accession_number: self
                .accession_number
                .as_deref()
                .map(AccessionNumber::parse)
                .transpose()
                .map_err(|e| invalid("invalid_accession_number", e.to_string()))?,
            study_instance_uid: self
                .study_instance_uid
                .as_deref()
                .map(StudyInstanceUid::parse)
                .transpose()
                .map_err(|e| invalid("invalid_study_instance_uid", e.to_string()))?,
            patient_id: None,
        };
        if key.accession_number.is_none() && key.study_instance_uid.is_none() {
            return Err(invalid(
                "case_key_required",
                "give accession_number or study_instance_uid",
            ));
        }
        let mut notes = self.note_ids;
        notes.sort();
        notes.dedup();
        if notes.len() > 100 {
            return Err(invalid("too_many_notes", "at most 100 note_ids"));
        }
        Ok((key, notes))
    }
}

/// `POST /cases`: 201 with the new case, 200 with an existing one.
pub(crate) async fn open(
    state: web::Data<AppState>,
    ctx: AuditContext,
    body: web::Json<OpenCase>,
) -> Result<HttpResponse, CasesError> {
    let (mut key, note_ids) = body.into_inner().parse()?;
    // The patient comes from what is stored, never from the caller; a note
    // the caller may not read is as unknown as an absent one.
    let may_read_notes = ctx.principal.can(Permission::ReadNotes);
    for id in &note_ids {
        let note = state.repository.note(*id).await?;
        let visible = note.filter(|n| {
            may_read_notes || n.note.submitted_by.as_deref() == Some(ctx.principal.id.as_str())
        });
        let Some(note) = visible else {
            return Err(invalid("unknown_note", format!("no such note: {id}")));
        };
        if key.patient_id.is_none() {
            key.patient_id = note.note.patient_id;
        }
    }
    may_open(&state, &ctx, &key).await?;
    if let Some(study) = &key.study_instance_uid
        && let Some(stored) = state.repository.study(study).await?
        && stored.patient_id.is_some()
    {
        key.patient_id = stored.patient_id;
    }
    let mut entities: Vec<AuditEntity> = note_ids
        .iter()
        .map(|n| AuditEntity::new("note", n.to_string()))
        .collect();
    entities.extend(
        key.study_instance_uid
            .iter()
            .map(|s| AuditEntity::new("study", s.as_str())),
    );
    let template = ctx.record(
        AuditEventType::PatientRecord,
        "case-link",
        AuditAction::Update,
        entities,
        patients_of(key.patient_id.as_ref()),
    );
    let link = state
        .repository
        .open_case(&key, &note_ids, &template)
        .await?;
    let case = state
        .repository
        .case(link.case_id)
        .await?
        .ok_or_else(|| not_found("case"))?;
    let created = link.change == LinkChange::Created;
    // An integration client sees the notes it sent, not other senders'.
    let mut shown_notes = Vec::with_capacity(case.note_ids.len());
    for id in &case.note_ids {
        if may_read_notes
            || state
                .repository
                .note(*id)
                .await?
                .is_some_and(|n| n.note.submitted_by.as_deref() == Some(ctx.principal.id.as_str()))
        {
            shown_notes.push(*id);
        }
    }
    let view = OpenedView {
        id: case.id,
        created,
        status: case.status,
        accession_number: case.accession_number.map(|a| a.as_str().to_owned()),
        study_instance_uid: case.study_instance_uid.map(|s| s.as_str().to_owned()),
        note_ids: shown_notes,
    };
    let mut res = if created {
        HttpResponse::Created()
    } else {
        HttpResponse::Ok()
    };
    Ok(res
        .insert_header(("location", format!("/cases/{}", case.id)))
        .json(view))
}

// ------------------------------------------------------------------ GET /cases

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
        .map(|c| AuditEntity::new("case", c.id.to_string()))
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

// ------------------------------------------------------------------ GET /cases/{id}

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
    entities.extend(patient_ids.iter().map(|p| AuditEntity::new("patient", p)));
    ctx.record(
        AuditEventType::PatientRecord,
        subtype,
        AuditAction::Read,
        entities,
        patient_ids,
    )
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
    let mut entities = vec![AuditEntity::new("case", case.id.to_string())];
    entities.extend(
        latest
            .iter()
            .map(|p| AuditEntity::new("prediction", p.prediction.id.to_string())),
    );
    let audit = read_audit(&ctx, "case-read", entities, case.patient_id.as_ref());
    state.repository.append_audit(&audit).await?;
    Ok(HttpResponse::Ok().json(CaseView::new(case, latest.map(PredictionView::from))))
}

// ------------------------------------------------------------------ predictions

/// Whether the caller may act on `case`: a clinician always; an
/// integration client only on a case holding a note or an instance it sent
/// (another sender's case is as unknown to it as an absent one). The EHR
/// asking for a new version of the case its report joined is the intended
/// use; a key cannot gain a hold on another sender's case by `POST /cases`
/// ([`may_open`]) or by an instance slipped into another sender's study
/// (refused at STOW-RS, issue #14 finding 7).
async fn may_act_on(
    state: &AppState,
    ctx: &AuditContext,
    case: &CaseRecord,
) -> Result<bool, CasesError> {
    if ctx.principal.can(Permission::ReadCases) {
        return Ok(true);
    }
    Ok(ownership(state, ctx, case).await?.iter().any(|mine| *mine))
}

/// For each note of `case` and each instance of its study: whether the
/// caller sent it.
async fn ownership(
    state: &AppState,
    ctx: &AuditContext,
    case: &CaseRecord,
) -> Result<Vec<bool>, CasesError> {
    let me = Some(ctx.principal.id.as_str());
    let mut owners = Vec::new();
    for id in &case.note_ids {
        if let Some(n) = state.repository.note(*id).await? {
            owners.push(n.note.submitted_by.as_deref() == me);
        }
    }
    if let Some(study) = &case.study_instance_uid {
        let instances = state.repository.study_instances(study).await?;
        owners.extend(instances.iter().map(|i| i.submitted_by.as_deref() == me));
    }
    Ok(owners)
}

/// For an integration client opening a case: the study it names must be
/// unknown or hold only its own instances, and the case its accession
/// number names must not hold another sender's data; otherwise it is
/// answered as unknown, before anything is written, so the answer (case id,
/// status, study) never shows another sender's case (issue #14, finding 7).
async fn may_open(state: &AppState, ctx: &AuditContext, key: &CaseKey) -> Result<(), CasesError> {
    if ctx.principal.can(Permission::ReadCases) {
        return Ok(());
    }
    let me = Some(ctx.principal.id.as_str());
    if let Some(study) = &key.study_instance_uid {
        let instances = state.repository.study_instances(study).await?;
        if instances.iter().any(|i| i.submitted_by.as_deref() != me) {
            return Err(not_found("study"));
        }
    }
    if let Some(accession) = &key.accession_number {
        let filter = fusion_store::CaseFilter {
            accession_number: Some(accession.clone()),
            ..fusion_store::CaseFilter::default()
        };
        for summary in state.repository.list_cases(&filter).await? {
            if let Some(case) = state.repository.case(summary.id).await?
                && ownership(state, ctx, &case).await?.iter().any(|mine| !mine)
            {
                return Err(not_found("case"));
            }
        }
    }
    Ok(())
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
        vec![AuditEntity::new("case", case.id.to_string())],
        patients_of(case.patient_id.as_ref()),
    );
    let queued = crate::inference::enqueue(&state, case.id, Some(&audit)).await?;
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
    let mut entities = vec![AuditEntity::new("case", case.id.to_string())];
    entities.extend(
        versions
            .iter()
            .map(|p| AuditEntity::new("prediction", p.prediction.id.to_string())),
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

/// `GET /predictions/{id}`.
pub(crate) async fn read_prediction(
    state: web::Data<AppState>,
    ctx: AuditContext,
    path: web::Path<String>,
) -> Result<HttpResponse, CasesError> {
    let (prediction, case) = existing_prediction(&state, &path.into_inner()).await?;
    let entities = vec![
        AuditEntity::new("case", case.id.to_string()),
        AuditEntity::new("prediction", prediction.prediction.id.to_string()),
    ];
    let audit = read_audit(&ctx, "prediction-read", entities, case.patient_id.as_ref());
    state.repository.append_audit(&audit).await?;
    Ok(HttpResponse::Ok().json(PredictionView::from(prediction)))
}

// ------------------------------------------------------------------ reviews

/// A reviewer's decision on one observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Decision {
    /// The prediction stands.
    Accept,
    /// The prediction is wrong; no replacement value.
    Reject,
    /// The prediction is replaced by `value`.
    Amend,
}

/// The value a reviewer amends an observation to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum AmendedValue {
    Present,
    Absent,
    Uncertain,
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DecisionBody {
    decision: Decision,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<AmendedValue>,
}

/// Body of `POST /predictions/{id}/reviews`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReviewBody {
    /// A decision per observation, keyed by its snake_case name
    /// (`pleural_effusion`).
    decisions: BTreeMap<String, DecisionBody>,
    /// The reviewer's comment.
    comment: Option<String>,
}

impl DecisionBody {
    /// A decision; `value` only with [`Decision::Amend`] (checked when the
    /// review is parsed).
    pub(crate) fn new(decision: Decision, value: Option<AmendedValue>) -> Self {
        Self { decision, value }
    }
}

impl ReviewBody {
    /// A review: decisions keyed by snake_case observation, and a comment.
    pub(crate) fn new(decisions: BTreeMap<String, DecisionBody>, comment: Option<String>) -> Self {
        Self { decisions, comment }
    }

    /// Checks the decisions against the prediction's observations.
    fn parse(
        self,
        prediction: &PredictionRecord,
    ) -> Result<(serde_json::Value, Option<String>), CasesError> {
        if self.decisions.is_empty() {
            return Err(invalid(
                "invalid_review",
                "decisions must name at least one observation",
            ));
        }
        let known = &prediction.prediction.fused;
        for (observation, d) in &self.decisions {
            if !known.contains_key(observation) {
                return Err(invalid(
                    "unknown_observation",
                    format!("the prediction has no observation {observation:?}"),
                ));
            }
            match (d.decision, d.value) {
                (Decision::Amend, None) => {
                    return Err(invalid(
                        "invalid_review",
                        format!(
                            "{observation}: amend needs a value (present, absent or uncertain)"
                        ),
                    ));
                }
                (Decision::Accept | Decision::Reject, Some(_)) => {
                    return Err(invalid(
                        "invalid_review",
                        format!("{observation}: only amend takes a value"),
                    ));
                }
                _ => {}
            }
        }
        let comment = self
            .comment
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty());
        if comment
            .as_ref()
            .is_some_and(|c| c.chars().count() > MAX_COMMENT_CHARS || c.contains('\0'))
        {
            return Err(invalid(
                "invalid_review",
                format!("comment: at most {MAX_COMMENT_CHARS} characters of text"),
            ));
        }
        let decisions = serde_json::to_value(&self.decisions)
            .map_err(|e| CasesError::Api(ApiError::Internal(e.into())))?;
        Ok((decisions, comment))
    }
}

/// Stores `body` as a review of prediction `prediction_id` by the caller,
/// with its audit event (110110 `review-create`, action C) in the same
/// transaction; the case becomes `reviewed`. Shared by the JSON API and the
/// dashboard's review form.
///
/// # Errors
///
/// 404 for an unknown prediction; 400 `invalid_review` /
/// `unknown_observation` for decisions that do not fit the prediction; 422
/// `superseded_version` for a version that is not the case's latest;
/// storage failures.
pub(crate) async fn create_review(
    state: &AppState,
    ctx: &AuditContext,
    prediction_id: &str,
    body: ReviewBody,
) -> Result<ReviewRecord, CasesError> {
    let (prediction, case) = existing_prediction(state, prediction_id).await?;
    let (decisions, comment) = body.parse(&prediction)?;
    // A review judges the case's current result: an older version is
    // history, and reviewing it would mark the case reviewed while its
    // latest version is not.
    let latest = state
        .repository
        .predictions_of_case(case.id)
        .await?
        .into_iter()
        .next()
        .map(|p| p.version);
    if latest != Some(prediction.version) {
        return Err(CasesError::Unprocessable {
            code: "superseded_version",
            message: format!(
                "version {} is not the case's latest (version {}): review the latest",
                prediction.version,
                latest.unwrap_or_default()
            ),
        });
    }
    let review = NewReview {
        id: Uuid::now_v7(),
        prediction_id: prediction.prediction.id,
        reviewer: ctx.principal.id.clone(),
        decisions,
        comment,
        // Its VERIFIED SR and FHIR deliveries, in the same transaction (#17).
        deliveries: state.outbox.for_review(case.study_instance_uid.is_some()),
    };
    let audit = ctx.record(
        AuditEventType::PatientRecord,
        "review-create",
        AuditAction::Create,
        vec![
            AuditEntity::new("review", review.id.to_string()),
            AuditEntity::new("prediction", prediction.prediction.id.to_string()),
            AuditEntity::new("case", case.id.to_string()),
        ],
        patients_of(case.patient_id.as_ref()),
    );
    let stored = state
        .repository
        .put_review(&review, &audit)
        .await?
        .ok_or_else(|| not_found("prediction"))?;
    crate::outbox::wake(state);
    Ok(stored)
}

/// `POST /predictions/{id}/reviews`: 201 with the review.
pub(crate) async fn review(
    state: web::Data<AppState>,
    ctx: AuditContext,
    path: web::Path<String>,
    body: web::Json<ReviewBody>,
) -> Result<HttpResponse, CasesError> {
    let stored = create_review(&state, &ctx, &path.into_inner(), body.into_inner()).await?;
    Ok(HttpResponse::Created()
        .insert_header((
            "location",
            format!("/predictions/{}/reviews", stored.review.prediction_id),
        ))
        .json(ReviewView::from(stored)))
}

/// `GET /predictions/{id}/reviews`.
pub(crate) async fn reviews(
    state: web::Data<AppState>,
    ctx: AuditContext,
    path: web::Path<String>,
) -> Result<HttpResponse, CasesError> {
    let (prediction, case) = existing_prediction(&state, &path.into_inner()).await?;
    let reviews = state
        .repository
        .reviews_of_prediction(prediction.prediction.id)
        .await?;
    let mut entities = vec![
        AuditEntity::new("case", case.id.to_string()),
        AuditEntity::new("prediction", prediction.prediction.id.to_string()),
    ];
    entities.extend(
        reviews
            .iter()
            .map(|r| AuditEntity::new("review", r.review.id.to_string())),
    );
    let audit = read_audit(&ctx, "review-read", entities, case.patient_id.as_ref());
    state.repository.append_audit(&audit).await?;
    let body: Vec<ReviewView> = reviews.into_iter().map(ReviewView::from).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "prediction_id": prediction.prediction.id,
        "reviews": body,
    })))
}
