//! Cases: linking what arrives (a stored instance, a stored note) to its
//! case and queueing a prediction for the workers ([`crate::worker`]).
//!
//! A study links by its accession number, else by its Study Instance UID; a
//! note by the accession number or study it names. The case is created when
//! missing. Linking failures are logged, not raised: what arrived is stored,
//! and the next arrival, re-send or start links it again.
//!
//! Logs name cases, jobs and notes by identifier only, never patient data.

use fusion_schemas::{AccessionNumber, PatientId, StudyInstanceUid};
use fusion_store::{
    AuditAction, AuditEventType, AuditRecord, CaseKey, Enqueued, EntityKind, NewNote, NoteStatus,
    StoreError,
};
use uuid::Uuid;

use crate::State;
pub use crate::actor::Actor;

/// A study and what links it to its case: the Accession Number (0008,0050)
/// and Patient ID (0010,0020) it was stored with.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct StudyKey {
    /// Study Instance UID (0020,000D).
    pub study: StudyInstanceUid,
    /// Accession Number, when the instance has one.
    pub accession: Option<AccessionNumber>,
    /// Patient ID, when the instance has one.
    pub patient: Option<PatientId>,
}

/// Queues a prediction for `case_id` (deduplicated by the store) and wakes
/// a worker of this process.
///
/// # Errors
///
/// [`StoreError`] from the queue.
pub async fn enqueue(
    state: &State,
    case_id: Uuid,
    audit: Option<&AuditRecord>,
) -> Result<Enqueued, StoreError> {
    let queued = state.repository.enqueue(case_id, audit).await?;
    state.jobs.notify_one();
    Ok(queued)
}

/// After STOW-RS (or `fusion ingest`) stored instances of a study: links the
/// study to its case (by accession number, else by study; created when
/// missing) and queues a prediction when `new_instances` were stored or the
/// link is new (a study re-sent as duplicates only, whose first link was
/// lost). A failure is logged, not raised: the instances are stored, and the
/// next instance, note, re-send or start links it again.
pub async fn link_study(state: &State, key: &StudyKey, new_instances: bool, actor: &Actor) {
    let patient_ids: Vec<String> = key.patient.iter().map(|p| p.as_str().to_owned()).collect();
    let template = actor
        .audit(
            AuditEventType::PatientRecord,
            "case-link",
            AuditAction::Update,
        )
        .entity(EntityKind::Study, key.study.as_str())
        .patient_ids(patient_ids)
        .build();
    link_study_and_enqueue(
        state,
        &key.study,
        key.accession.as_ref(),
        key.patient.as_ref(),
        new_instances,
        &template,
    )
    .await;
}

async fn link_study_and_enqueue(
    state: &State,
    study: &StudyInstanceUid,
    accession: Option<&AccessionNumber>,
    patient: Option<&PatientId>,
    new_instances: bool,
    template: &AuditRecord,
) {
    let linked = state
        .repository
        .upsert_case_for_study(study, accession, patient, template)
        .await;
    let link = match linked {
        Ok(link) => link,
        Err(e) => {
            tracing::error!(error = %e, "cannot link a study to its case");
            // Cases that named the study and became its patient's before
            // the link was refused still get a version without the other
            // patient's notes.
            requeue_other_cases_of(state, study, patient, Uuid::nil()).await;
            return;
        }
    };
    if !new_instances && link.change == fusion_store::LinkChange::Unchanged {
        // Duplicates of a study already linked: nothing new to predict.
        return;
    }
    match enqueue(state, link.case_id, None).await {
        Ok(q) => {
            tracing::info!(case = %link.case_id, job = %q.job_id, new_job = q.created, "study linked; prediction queued")
        }
        Err(e) => tracing::error!(case = %link.case_id, error = %e, "cannot queue a prediction"),
    }
    requeue_other_cases_of(state, study, patient, link.case_id).await;
}

/// Other cases that name `study` (opened from a note that named the study
/// with another order's accession number) show the study's patient from now
/// on (the PACS is authoritative): each gets a new version, in which the
/// workers leave out notes of another patient than the study's. Without it
/// such a case kept, under the study's patient, a version computed from
/// another patient's report alone. Failures are logged.
async fn requeue_other_cases_of(
    state: &State,
    study: &StudyInstanceUid,
    patient: Option<&PatientId>,
    linked: Uuid,
) {
    let Some(patient) = patient else {
        return;
    };
    let filter = fusion_store::CaseFilter {
        patient_id: Some(patient.clone()),
        limit: Some(1000),
        ..fusion_store::CaseFilter::default()
    };
    let cases = match state.repository.list_cases(&filter).await {
        Ok(cases) => cases,
        Err(e) => {
            tracing::error!(error = %e, "cannot list the other cases of a study");
            return;
        }
    };
    let others = cases
        .iter()
        .filter(|c| c.id != linked && c.study_instance_uid.as_ref() == Some(study));
    for other in others {
        match enqueue(state, other.id, None).await {
            Ok(q) => {
                tracing::info!(case = %other.id, job = %q.job_id, "another case names the study; prediction queued")
            }
            Err(e) => tracing::error!(case = %other.id, error = %e, "cannot queue a prediction"),
        }
    }
}

/// Stores a note and, when it names an accession number or a study, links
/// it to that case (created when missing) and, when it has text, queues a
/// prediction: one transaction with `audit` (the note's event) and the
/// link's event, so a crash never leaves a note stored but unlinked.
/// Returns the case linked to, if any.
///
/// # Errors
///
/// [`StoreError::PatientMismatch`] when the note names another Patient ID
/// than its case's study or case (checked under the link lock, so racing
/// notes of several patients cannot all pass): nothing is stored.
/// [`StoreError`] otherwise; nothing is stored then either.
pub async fn store_note(
    state: &State,
    note: &NewNote,
    audit: &AuditRecord,
    actor: &Actor,
) -> Result<Option<Uuid>, StoreError> {
    if note.accession_number.is_none() && note.study_instance_uid.is_none() {
        state.repository.put_note(note, audit).await?;
        return Ok(None);
    }
    let patient_ids: Vec<String> = note
        .patient_id
        .iter()
        .map(|p| p.as_str().to_owned())
        .collect();
    let template = actor
        .audit(
            AuditEventType::PatientRecord,
            "case-link",
            AuditAction::Update,
        )
        .entity(EntityKind::Note, note.id.to_string())
        .patient_ids(patient_ids)
        .build();
    let key = CaseKey {
        accession_number: note.accession_number.clone(),
        study_instance_uid: note.study_instance_uid.clone(),
        patient_id: note.patient_id.clone(),
    };
    let analysed = note.status == NoteStatus::Analysed;
    let mut attempt = 1;
    let (link, queued) = loop {
        match state
            .repository
            .put_note_linked(note, audit, &key, &template, analysed)
            .await
        {
            // Aborted as the loser of a deadlock: nothing was kept, so the
            // same transaction runs again.
            Err(e) if e.is_transient() && attempt < fusion_store::TRANSIENT_ATTEMPTS => {
                tracing::warn!(note = %note.id, error = %e, attempt, "note transaction lost a race; running it again");
                attempt += 1;
            }
            other => break other?,
        }
    };
    match queued {
        Some(q) => {
            state.jobs.notify_one();
            tracing::info!(case = %link.case_id, job = %q.job_id, new_job = q.created, "note linked; prediction queued");
        }
        None => tracing::info!(case = %link.case_id, "note linked"),
    }
    Ok(Some(link.case_id))
}
