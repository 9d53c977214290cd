//! The trait of cases: linking studies and notes to cases, and reading
//! them. Their jobs, prediction versions and reviews have traits of their
//! own ([`super::JobRepository`], [`super::PredictionRepository`],
//! [`super::ReviewRepository`]).

use async_trait::async_trait;
use fusion_schemas::{AccessionNumber, PatientId, StudyInstanceUid};
use uuid::Uuid;

use crate::StoreError;
use crate::audit::AuditRecord;
use crate::cases::{CaseFilter, CaseKey, CaseLink, CaseRecord, CaseSummary, Enqueued};
use crate::notes::NewNote;

/// Cases: a study and the notes of one order.
///
/// Linking methods take an audit *template* (agent, request id, purpose,
/// patients, the note or study entities): only the store knows whether the
/// case existed, so it sets the subtype (`case-create`, action C, or
/// `case-link`, action U), names the case first among the entities and
/// appends the event in the linking transaction. Nothing is appended when
/// nothing changed.
#[async_trait]
pub trait CaseRepository: Send + Sync {
    /// Finds the case of a stored study (by accession number when given,
    /// else by Study Instance UID), creating it when there is none, and
    /// completes its identifiers.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`]; nothing changes then.
    async fn upsert_case_for_study(
        &self,
        study: &StudyInstanceUid,
        accession: Option<&AccessionNumber>,
        patient: Option<&PatientId>,
        audit: &AuditRecord,
    ) -> Result<CaseLink, StoreError>;

    /// Stores a note and links it to the case `key` names (created when
    /// missing), in one transaction with `note_audit` and the link's event;
    /// when `enqueue`, a prediction of that case is queued in it too. A
    /// crash between storing and linking can no longer leave a note stored
    /// but never linked, and the patient check runs under the link lock:
    /// of notes of several patients racing into one accession, one is
    /// linked and the others are refused.
    ///
    /// # Errors
    ///
    /// [`StoreError::PatientMismatch`] when the note names another Patient
    /// ID than the case's study or the case (nothing is stored then),
    /// [`StoreError::AlreadyExists`] for a note id taken, [`StoreError::Query`].
    async fn put_note_linked(
        &self,
        note: &NewNote,
        note_audit: &AuditRecord,
        key: &CaseKey,
        link_audit: &AuditRecord,
        enqueue: bool,
    ) -> Result<(CaseLink, Option<Enqueued>), StoreError>;

    /// Finds or creates the case `key` names and links `note_ids` (which
    /// must exist): `POST /cases`.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn open_case(
        &self,
        key: &CaseKey,
        note_ids: &[Uuid],
        audit: &AuditRecord,
    ) -> Result<CaseLink, StoreError>;

    /// One case with its note ids.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`], or [`StoreError::Corrupt`] for a malformed row.
    async fn case(&self, id: Uuid) -> Result<Option<CaseRecord>, StoreError>;

    /// Cases matching `filter`, each with its latest prediction in brief.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`], or [`StoreError::Corrupt`] for a malformed row.
    async fn list_cases(&self, filter: &CaseFilter) -> Result<Vec<CaseSummary>, StoreError>;
}
