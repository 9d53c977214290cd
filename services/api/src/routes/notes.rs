//! Clinical notes over HTTP: `POST /notes` (an EHR sends a note as
//! `text/plain`, FHIR R4 JSON or HL7 v2 ER7), `GET /notes/{id}` (the note
//! with its text, sections, mentions and labels) and `GET /notes` (summaries
//! by patient, accession or study).
//!
//! A note is decoded by `fusion_notes::intake`, analysed by
//! `fusion_notes::analyze` (both off the async executor), and stored with
//! its audit event (110110 Patient Record, action C) in one transaction.
//! Every span in the answer is a byte range into the stored `text`.
//!
//! A refused note (bad format, too large, unsupported media type) is
//! answered with the intake error's code and logged with it, the caller and
//! the size; it is not audited: nothing of it is stored, and the refusal
//! names no patient we could trust. Reads are audited (110110, action R);
//! a list is audited once as a query (110112) naming the patients returned.
//! A note that an integration client did not submit itself is a 404 to that
//! client, as is a note that does not exist, so that ids cannot be probed;
//! the refusal of an existing one is audited as a security alert.

use std::collections::BTreeMap;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use chrono::{DateTime, Utc};
use fusion_notes::intake::{self, DecodeOptions, DecodedNote, IntakeError, SourceFormat};
use fusion_schemas::{
    AccessionNumber, ErrorBody, Mention, NoteLabel, Observation, PatientId, Section,
    StudyInstanceUid,
};
use fusion_store::{
    AuditAction, AuditEntity, AuditEventType, AuditOutcome, EntityKind, NewNote, NoteFilter,
    NoteRecord, NoteStatus, NoteSummary, NoteTypeCode,
};
use futures::StreamExt as _;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::auth::{AuditContext, Permission};
use crate::{ApiError, AppState};

/// The largest note body: 10 MiB, the intake's default.
pub const MAX_NOTE_BYTES: usize = intake::DEFAULT_MAX_BODY_BYTES;

/// Why a notes request failed: the intake's refusals keep their own codes.
#[derive(Debug, thiserror::Error)]
pub(crate) enum NotesError {
    /// The body could not be decoded (or was too large, or of an
    /// unsupported media type).
    #[error(transparent)]
    Intake(#[from] IntakeError),
    /// A query parameter that does not parse.
    #[error("query parameter {name} is not valid: {reason}")]
    BadParameter { name: &'static str, reason: String },
    /// A query parameter that contradicts the message's own value.
    #[error("query parameter {name} differs from the value in the message")]
    Conflict { name: &'static str },
    /// The note's Patient ID differs from the patient of the study or case
    /// its accession number or Study Instance UID names.
    #[error(
        "the note's Patient ID differs from the patient of the {0} it names; \
         nothing was stored (check the accession number, Study Instance UID and Patient ID)"
    )]
    PatientMismatch(&'static str),
    /// The body stream failed before it ended.
    #[error("cannot read the request body: {0}")]
    Body(String),
    /// Anything the rest of the API answers.
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl ResponseError for NotesError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Intake(IntakeError::UnsupportedMediaType { .. }) => {
                StatusCode::UNSUPPORTED_MEDIA_TYPE
            }
            Self::Intake(IntakeError::TooLarge { .. } | IntakeError::TextTooLong { .. }) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Self::PatientMismatch(_) => StatusCode::CONFLICT,
            Self::Intake(_) | Self::BadParameter { .. } | Self::Conflict { .. } | Self::Body(_) => {
                StatusCode::BAD_REQUEST
            }
            Self::Api(e) => e.status_code(),
        }
    }

    fn error_response(&self) -> HttpResponse {
        let code = match self {
            Self::Intake(e) => e.code(),
            Self::BadParameter { .. } => "invalid_parameter",
            Self::Conflict { .. } => "metadata_conflict",
            Self::PatientMismatch(_) => "patient_mismatch",
            Self::Body(_) => "bad_request",
            Self::Api(e) => return e.error_response(),
        };
        HttpResponse::build(self.status_code()).json(ErrorBody {
            code: code.to_owned(),
            message: self.to_string(),
            request_id: None,
        })
    }
}

/// Whether `note` names a patient other than the one already known for the
/// study or case it would join (by Study Instance UID, else accession
/// number): `Some("study")` or `Some("case")`. A note without a Patient ID,
/// or naming nothing known yet, is no mismatch. One patient's report must
/// never be fused with another patient's images.
async fn patient_mismatch(
    state: &AppState,
    note: &NewNote,
) -> Result<Option<&'static str>, NotesError> {
    let Some(patient) = &note.patient_id else {
        return Ok(None);
    };
    if let Some(uid) = &note.study_instance_uid
        && let Some(study) = state.repository.study(uid).await.map_err(internal)?
        && study.patient_id.as_ref().is_some_and(|p| p != patient)
    {
        return Ok(Some("study"));
    }
    if let Some(accession) = &note.accession_number {
        let filter = fusion_store::CaseFilter {
            accession_number: Some(accession.clone()),
            limit: Some(20),
            ..fusion_store::CaseFilter::default()
        };
        let cases = state
            .repository
            .list_cases(&filter)
            .await
            .map_err(internal)?;
        for case in cases {
            // The study's patient when the case has its study (the PACS is
            // authoritative), else the patient its first note named.
            let known = match &case.study_instance_uid {
                Some(uid) => state
                    .repository
                    .study(uid)
                    .await
                    .map_err(internal)?
                    .and_then(|s| s.patient_id),
                None => case.patient_id,
            };
            if known.is_some_and(|p| &p != patient) {
                return Ok(Some("case"));
            }
        }
    }
    Ok(None)
}

fn internal(e: impl Into<anyhow::Error>) -> NotesError {
    NotesError::Api(ApiError::Internal(e.into()))
}

/// Query of `POST /notes`: the metadata of a `text/plain` note. With FHIR
/// or HL7 v2 they fill only what the message leaves empty.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct SubmitQuery {
    /// Patient ID (DICOM LO).
    patient_id: Option<String>,
    /// Accession number (DICOM SH).
    accession_number: Option<String>,
    /// Study Instance UID of the study the note reports on.
    study_instance_uid: Option<String>,
    /// The note's type, free text or a code.
    note_type: Option<String>,
    /// When the note was written (RFC 3339).
    authored_at: Option<String>,
}

/// [`SubmitQuery`] parsed into our types.
#[derive(Debug, Default)]
struct Metadata {
    patient_id: Option<PatientId>,
    accession_number: Option<AccessionNumber>,
    study_instance_uid: Option<StudyInstanceUid>,
    note_type: Option<String>,
    authored_at: Option<DateTime<Utc>>,
}

fn bad(name: &'static str) -> impl Fn(String) -> NotesError {
    move |reason| NotesError::BadParameter { name, reason }
}

impl SubmitQuery {
    fn parse(self) -> Result<Metadata, NotesError> {
        let note_type = match self.note_type {
            Some(t) if t.trim().is_empty() || t.chars().count() > 64 => {
                return Err(bad("note_type")("1 to 64 characters".into()));
            }
            Some(t) if t.chars().any(char::is_control) => {
                return Err(bad("note_type")("no control characters".into()));
            }
            other => other.map(|t| t.trim().to_owned()),
        };
        Ok(Metadata {
            patient_id: self
                .patient_id
                .as_deref()
                .map(PatientId::parse)
                .transpose()
                .map_err(|e| bad("patient_id")(e.to_string()))?,
            accession_number: self
                .accession_number
                .as_deref()
                .map(AccessionNumber::parse)
                .transpose()
                .map_err(|e| bad("accession_number")(e.to_string()))?,
            study_instance_uid: self
                .study_instance_uid
                .as_deref()
                .map(StudyInstanceUid::parse)
                .transpose()
                .map_err(|e| bad("study_instance_uid")(e.to_string()))?,
            note_type,
            authored_at: self
                .authored_at
                .as_deref()
                .map(|t| {
                    DateTime::parse_from_rfc3339(t)
                        .map(|t| t.with_timezone(&Utc))
                        .map_err(|_| bad("authored_at")("an RFC 3339 date-time with a zone".into()))
                })
                .transpose()?,
        })
    }
}

/// Fills `ours` from `given` when empty; two different values are a conflict.
fn merge<T: PartialEq>(
    name: &'static str,
    ours: &mut Option<T>,
    given: Option<T>,
) -> Result<(), NotesError> {
    match (ours.as_ref(), given) {
        (Some(a), Some(b)) if *a != b => Err(NotesError::Conflict { name }),
        (None, Some(b)) => {
            *ours = Some(b);
            Ok(())
        }
        _ => Ok(()),
    }
}

fn apply(note: &mut DecodedNote, meta: Metadata) -> Result<(), NotesError> {
    merge("patient_id", &mut note.patient_id, meta.patient_id)?;
    merge(
        "accession_number",
        &mut note.accession_number,
        meta.accession_number,
    )?;
    merge(
        "study_instance_uid",
        &mut note.study_instance_uid,
        meta.study_instance_uid,
    )?;
    if let Some(at) = meta.authored_at {
        if note.authored_at.is_some_and(|t| t != at) {
            return Err(NotesError::Conflict {
                name: "authored_at",
            });
        }
        if note.authored_at.is_none() {
            note.authored_at = Some(at);
            note.authored_at_precision = Some(intake::DatePrecision::Second);
        }
    }
    if let Some(code) = meta.note_type {
        match &note.note_type {
            Some(t) if t.code.as_deref() != Some(code.as_str()) => {
                return Err(NotesError::Conflict { name: "note_type" });
            }
            Some(_) => {}
            None => {
                note.note_type = Some(intake::NoteType {
                    system: None,
                    code: Some(code),
                    display: None,
                });
            }
        }
    }
    Ok(())
}

/// Reads the body, refusing it past `limit` bytes. A body a little over the
/// limit is read to its end before the refusal so that the client, still
/// sending, sees the 413 rather than a reset connection; one declared or
/// found to be more than twice the limit is refused at once.
async fn read_body(
    req: &HttpRequest,
    mut payload: web::Payload,
    limit: usize,
) -> Result<web::Bytes, NotesError> {
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    let too_large = |size| NotesError::Intake(IntakeError::TooLarge { size, limit });
    if let Some(size) = declared.filter(|&n| n > limit.saturating_mul(2)) {
        return Err(too_large(size));
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(0).min(limit));
    let mut seen = 0usize;
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| NotesError::Body(e.to_string()))?;
        seen += chunk.len();
        if seen > limit.saturating_mul(2) {
            return Err(too_large(seen));
        }
        if seen <= limit {
            body.extend_from_slice(&chunk);
        }
    }
    if seen > limit {
        return Err(too_large(seen));
    }
    Ok(body.freeze())
}

/// What decoding and analysis produce, off the executor.
struct Processed {
    decoded: DecodedNote,
    analysis: Option<fusion_notes::NoteAnalysis>,
}

fn source_format(f: SourceFormat) -> &'static str {
    match f {
        SourceFormat::TextPlain => "text/plain",
        SourceFormat::FhirDocumentReference => "fhir-documentreference",
        SourceFormat::FhirDiagnosticReport => "fhir-diagnosticreport",
        SourceFormat::Hl7v2Oru => "hl7v2-oru",
        SourceFormat::Hl7v2Mdm => "hl7v2-mdm",
    }
}

fn to_json(value: &impl Serialize) -> Result<serde_json::Value, NotesError> {
    serde_json::to_value(value).map_err(internal)
}

/// The answer to `POST /notes`.
#[derive(Debug, Serialize)]
struct Created {
    id: Uuid,
    status: NoteStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    no_text_reason: Option<serde_json::Value>,
    patient_id: Option<String>,
    accession_number: Option<String>,
    study_instance_uid: Option<String>,
    source_format: String,
    sections: Vec<Section>,
    mentions: Vec<Mention>,
    labels: BTreeMap<Observation, NoteLabel>,
}

/// `POST /notes`.
pub(crate) async fn submit(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuditContext,
    query: web::Query<SubmitQuery>,
    payload: web::Payload,
) -> Result<HttpResponse, NotesError> {
    let metrics = state.metrics.clone();
    let mut format = "unknown";
    let result = submit_note(req, state, ctx, query, payload, &mut format).await;
    // `fusion.notes.received`: the decoded format (known only once the note
    // was read), and stored or refused.
    let outcome = if result.is_ok() { "stored" } else { "refused" };
    metrics.notes.add(
        1,
        &[
            opentelemetry::KeyValue::new("format", format),
            opentelemetry::KeyValue::new("outcome", outcome),
        ],
    );
    result
}

async fn submit_note(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuditContext,
    query: web::Query<SubmitQuery>,
    payload: web::Payload,
    format: &mut &'static str,
) -> Result<HttpResponse, NotesError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
        .unwrap_or_default();
    let outcome = intake_note(&req, &content_type, query.into_inner(), payload).await;
    let processed = match outcome {
        Ok(p) => p,
        Err(e) => {
            if !matches!(e, NotesError::Api(_)) {
                tracing::warn!(
                    principal = %ctx.principal.id,
                    media_type = %content_type.split(';').next().unwrap_or("").trim(),
                    error = %e,
                    "note refused"
                );
            }
            return Err(e);
        }
    };
    let Processed { decoded, analysis } = processed;
    *format = source_format(decoded.source_format);
    let (status, sections, mentions, labels) = match &analysis {
        Some(a) => (
            NoteStatus::Analysed,
            a.sections.clone(),
            a.mentions.clone(),
            a.labels.clone(),
        ),
        None => (NoteStatus::NoText, Vec::new(), Vec::new(), BTreeMap::new()),
    };
    let note = NewNote {
        id: Uuid::now_v7(),
        patient_id: decoded.patient_id,
        accession_number: decoded.accession_number,
        study_instance_uid: decoded.study_instance_uid,
        note_type: decoded.note_type.map(|t| NoteTypeCode {
            system: t.system,
            code: t.code,
            display: t.display,
        }),
        source_format: source_format(decoded.source_format).to_owned(),
        source_id: decoded.source_id,
        authored_at: decoded.authored_at,
        authored_at_precision: decoded
            .authored_at_precision
            .map(|p| to_json(&p))
            .transpose()?
            .and_then(|v| v.as_str().map(str::to_owned)),
        text: decoded.text,
        status,
        no_text_reason: decoded.no_text_reason.as_ref().map(to_json).transpose()?,
        sections,
        mentions,
        labels,
        submitted_by: Some(ctx.principal.id.clone()),
    };
    if let Some(what) = patient_mismatch(&state, &note).await? {
        tracing::info!(
            on = what,
            "note refused: its Patient ID differs from its case's"
        );
        return Err(NotesError::PatientMismatch(what));
    }
    let patient_ids: Vec<String> = note
        .patient_id
        .iter()
        .map(|p| p.as_str().to_owned())
        .collect();
    let mut entities = vec![AuditEntity::new(EntityKind::Note, note.id.to_string())];
    entities.extend(
        patient_ids
            .iter()
            .map(|p| AuditEntity::new(EntityKind::Patient, p)),
    );
    let record = ctx.record(
        AuditEventType::PatientRecord,
        "note-create",
        AuditAction::Create,
        entities,
        patient_ids,
    );
    match fusion_app::cases::store_note(&state, &note, &record, &ctx.actor()).await {
        Ok(_) => {}
        Err(fusion_store::StoreError::PatientMismatch { .. }) => {
            // Another note of this order, of another patient, was linked
            // first (a race the check above cannot see): nothing stored.
            tracing::info!(
                on = "case",
                "note refused: its Patient ID differs from its case's"
            );
            return Err(NotesError::PatientMismatch("case"));
        }
        Err(e) => return Err(internal(e)),
    }
    tracing::info!(note = %note.id, status = status.as_str(), format = %note.source_format, "note stored");
    let location = format!("/notes/{}", note.id);
    Ok(HttpResponse::Created()
        .insert_header((header::LOCATION, location))
        .json(Created {
            id: note.id,
            status: note.status,
            no_text_reason: note.no_text_reason,
            patient_id: note.patient_id.map(|p| p.as_str().to_owned()),
            accession_number: note.accession_number.map(|a| a.as_str().to_owned()),
            study_instance_uid: note.study_instance_uid.map(|s| s.as_str().to_owned()),
            source_format: note.source_format,
            sections: note.sections,
            mentions: note.mentions,
            labels: note.labels,
        }))
}

/// Parameters, body, decoding and analysis: every step that can refuse the
/// note before anything is stored.
async fn intake_note(
    req: &HttpRequest,
    content_type: &str,
    query: SubmitQuery,
    payload: web::Payload,
) -> Result<Processed, NotesError> {
    let meta = query.parse()?;
    let body = read_body(req, payload, MAX_NOTE_BYTES).await?;
    let content_type = content_type.to_owned();
    let span = tracing::Span::current();
    let processed = web::block(move || {
        let _entered = span.enter();
        let options = DecodeOptions {
            max_body_bytes: MAX_NOTE_BYTES,
            ..DecodeOptions::default()
        };
        intake::decode(&content_type, &body, &options).map(|decoded| {
            let analysis = decoded.text.as_deref().map(fusion_notes::analyze);
            Processed { decoded, analysis }
        })
    })
    .await
    .map_err(internal)??;
    let mut processed = processed;
    // PostgreSQL text cannot hold NUL; a FHIR string may carry one as
    // "\u0000". Such a note is not text.
    if processed
        .decoded
        .text
        .as_deref()
        .is_some_and(|t| t.contains('\0'))
    {
        return Err(IntakeError::BinaryContent.into());
    }
    apply(&mut processed.decoded, meta)?;
    Ok(processed)
}

/// The answer to `GET /notes/{id}`.
#[derive(Debug, Serialize)]
struct NoteView {
    id: Uuid,
    status: NoteStatus,
    #[serde(skip_serializing_if = "Option::is_none")]
    no_text_reason: Option<serde_json::Value>,
    patient_id: Option<String>,
    accession_number: Option<String>,
    study_instance_uid: Option<String>,
    note_type: Option<NoteTypeCode>,
    source_format: String,
    source_id: Option<String>,
    authored_at: Option<DateTime<Utc>>,
    authored_at_precision: Option<String>,
    submitted_by: Option<String>,
    created_at: DateTime<Utc>,
    text: Option<String>,
    sections: Vec<Section>,
    mentions: Vec<Mention>,
    labels: BTreeMap<Observation, NoteLabel>,
}

impl From<NoteRecord> for NoteView {
    fn from(r: NoteRecord) -> Self {
        let n = r.note;
        Self {
            id: n.id,
            status: n.status,
            no_text_reason: n.no_text_reason,
            patient_id: n.patient_id.map(|p| p.as_str().to_owned()),
            accession_number: n.accession_number.map(|a| a.as_str().to_owned()),
            study_instance_uid: n.study_instance_uid.map(|s| s.as_str().to_owned()),
            note_type: n.note_type,
            source_format: n.source_format,
            source_id: n.source_id,
            authored_at: n.authored_at,
            authored_at_precision: n.authored_at_precision,
            submitted_by: n.submitted_by,
            created_at: r.created_at,
            text: n.text,
            sections: n.sections,
            mentions: n.mentions,
            labels: n.labels,
        }
    }
}

fn no_such_note() -> ApiError {
    ApiError::NotFound("no such note".into())
}

/// `GET /notes/{id}`.
pub(crate) async fn read(
    state: web::Data<AppState>,
    ctx: AuditContext,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let id = Uuid::parse_str(&path.into_inner()).map_err(|_| no_such_note())?;
    let record = state
        .repository
        .note(id)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?
        .ok_or_else(no_such_note)?;
    let principal = &ctx.principal;
    let own = record.note.submitted_by.as_deref() == Some(principal.id.as_str());
    let allowed = principal.can(Permission::ReadNotes)
        || (own && principal.can(Permission::ReadOwnSubmissions));
    let note_entity = AuditEntity::new(EntityKind::Note, id.to_string());
    if !allowed {
        let mut refusal = ctx.record(
            AuditEventType::SecurityAlert,
            "access-denied",
            AuditAction::Read,
            vec![note_entity],
            vec![],
        );
        refusal.outcome = AuditOutcome::MinorFailure;
        refusal.outcome_desc = Some("note submitted by another client; answered 404".into());
        state
            .repository
            .append_audit(&refusal)
            .await
            .map_err(|e| ApiError::Internal(e.into()))?;
        return Err(no_such_note());
    }
    let patient_ids: Vec<String> = record
        .note
        .patient_id
        .iter()
        .map(|p| p.as_str().to_owned())
        .collect();
    let mut entities = vec![note_entity];
    entities.extend(
        patient_ids
            .iter()
            .map(|p| AuditEntity::new(EntityKind::Patient, p)),
    );
    let audit = ctx.record(
        AuditEventType::PatientRecord,
        "note-read",
        AuditAction::Read,
        entities,
        patient_ids,
    );
    state
        .repository
        .append_audit(&audit)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    Ok(HttpResponse::Ok().json(NoteView::from(record)))
}

/// Query of `GET /notes`: at least one of the identifiers.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// Patient ID.
    patient_id: Option<String>,
    /// Accession number.
    accession_number: Option<String>,
    /// Study Instance UID.
    study_instance_uid: Option<String>,
    /// At most this many notes.
    limit: Option<i64>,
}

/// One entry of `GET /notes`.
#[derive(Debug, Serialize)]
struct SummaryView {
    id: Uuid,
    status: NoteStatus,
    patient_id: Option<String>,
    accession_number: Option<String>,
    study_instance_uid: Option<String>,
    note_type: Option<NoteTypeCode>,
    source_format: String,
    authored_at: Option<DateTime<Utc>>,
    submitted_by: Option<String>,
    created_at: DateTime<Utc>,
    labels: BTreeMap<Observation, NoteLabel>,
}

impl From<NoteSummary> for SummaryView {
    fn from(s: NoteSummary) -> Self {
        Self {
            id: s.id,
            status: s.status,
            patient_id: s.patient_id.map(|p| p.as_str().to_owned()),
            accession_number: s.accession_number.map(|a| a.as_str().to_owned()),
            study_instance_uid: s.study_instance_uid.map(|u| u.as_str().to_owned()),
            note_type: s.note_type,
            source_format: s.source_format,
            authored_at: s.authored_at,
            submitted_by: s.submitted_by,
            created_at: s.created_at,
            labels: s.labels,
        }
    }
}

fn list_param<T>(
    name: &str,
    raw: Option<&str>,
    parse: fn(&str) -> Result<T, fusion_schemas::ids::IdError>,
) -> Result<Option<T>, ApiError> {
    raw.map(parse)
        .transpose()
        .map_err(|e| ApiError::BadRequest(format!("query parameter {name} is not valid: {e}")))
}

/// `GET /notes?patient_id=…&accession_number=…&study_instance_uid=…&limit=…`.
pub(crate) async fn list(
    state: web::Data<AppState>,
    ctx: AuditContext,
    query: web::Query<ListQuery>,
) -> Result<HttpResponse, ApiError> {
    let q = query.into_inner();
    let filter = NoteFilter {
        patient_id: list_param("patient_id", q.patient_id.as_deref(), PatientId::parse)?,
        accession_number: list_param(
            "accession_number",
            q.accession_number.as_deref(),
            AccessionNumber::parse,
        )?,
        study_instance_uid: list_param(
            "study_instance_uid",
            q.study_instance_uid.as_deref(),
            StudyInstanceUid::parse,
        )?,
        limit: q.limit,
    };
    if filter.patient_id.is_none()
        && filter.accession_number.is_none()
        && filter.study_instance_uid.is_none()
    {
        return Err(ApiError::BadRequest(
            "give patient_id, accession_number or study_instance_uid".into(),
        ));
    }
    let notes = state
        .repository
        .notes(&filter)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    // The patients returned, and the one asked about: a search for a patient
    // is an access to that patient's record even when it finds nothing.
    let mut patient_ids: Vec<String> = filter
        .patient_id
        .iter()
        .chain(notes.iter().filter_map(|n| n.patient_id.as_ref()))
        .map(|p| p.as_str().to_owned())
        .collect();
    patient_ids.sort();
    patient_ids.dedup();
    let entities = notes
        .iter()
        .map(|n| AuditEntity::new(EntityKind::Note, n.id.to_string()))
        .collect();
    let audit = ctx.record(
        AuditEventType::Query,
        "note-search",
        AuditAction::Execute,
        entities,
        patient_ids,
    );
    state
        .repository
        .append_audit(&audit)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let body: Vec<SummaryView> = notes.into_iter().map(SummaryView::from).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({ "notes": body })))
}
