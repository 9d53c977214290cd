//! `POST /cases`: opens (or finds) the case of an accession number or a
//! study and links notes to it.

use actix_web::{HttpResponse, web};
use fusion_schemas::{AccessionNumber, StudyInstanceUid};
use fusion_store::{
    AuditAction, AuditEntity, AuditEventType, CaseKey, CaseStatus, EntityKind, LinkChange,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::access::may_open;
use super::{CasesError, invalid, not_found, patients_of};
use crate::AppState;
use crate::auth::{AuditContext, Permission};

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
        // Every note names the same patient, or none: one patient's report
        // is never linked into another's case.
        match (&key.patient_id, note.note.patient_id) {
            (Some(first), Some(this)) if *first != this => {
                return Err(patient_mismatch("the notes name different patients"));
            }
            (None, this) => key.patient_id = this,
            _ => {}
        }
    }
    may_open(&state, &ctx, &key).await?;
    if let Some(study) = &key.study_instance_uid
        && let Some(stored) = state.repository.study(study).await?
        && stored.patient_id.is_some()
    {
        // The PACS is authoritative for the study's patient; a note naming
        // another is refused, as `POST /notes` refuses it.
        if key.patient_id.is_some() && key.patient_id != stored.patient_id {
            return Err(patient_mismatch(
                "a note names another patient than the study",
            ));
        }
        key.patient_id = stored.patient_id;
    }
    // Nor into the case of an accession number that already belongs to
    // another patient (a note-only case has its first note's patient).
    if let (Some(accession), Some(patient)) = (&key.accession_number, &key.patient_id) {
        let filter = fusion_store::CaseFilter {
            accession_number: Some(accession.clone()),
            ..fusion_store::CaseFilter::default()
        };
        let cases = state.repository.list_cases(&filter).await?;
        if cases
            .iter()
            .any(|c| c.patient_id.as_ref().is_some_and(|p| p != patient))
        {
            return Err(patient_mismatch(
                "a note names another patient than the case",
            ));
        }
    }
    let mut entities: Vec<AuditEntity> = note_ids
        .iter()
        .map(|n| AuditEntity::new(EntityKind::Note, n.to_string()))
        .collect();
    entities.extend(
        key.study_instance_uid
            .iter()
            .map(|s| AuditEntity::new(EntityKind::Study, s.as_str())),
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

/// 409 `patient_mismatch`, as `POST /notes` and the accession path answer.
fn patient_mismatch(message: &str) -> CasesError {
    CasesError::Conflict {
        code: "patient_mismatch",
        message: message.to_owned(),
    }
}
