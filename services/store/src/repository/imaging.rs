//! The imaging index's trait: studies, series, instances.

use async_trait::async_trait;
use fusion_schemas::{SopInstanceUid, StudyInstanceUid};

use crate::StoreError;
use crate::audit::AuditRecord;
use crate::records::{
    InstanceQuery, InstanceRecord, NewInstance, PutOutcome, SeriesQuery, SeriesRecord, StudyQuery,
    StudyRecord,
};

/// The imaging index: studies, series, instances (PS3.3 Annex A.1.2).
#[async_trait]
pub trait ImagingRepository: Send + Sync {
    /// Indexes an instance and its study and series, and appends `audit`, in
    /// one transaction. The bytes must already be durable in the blob store.
    /// A conflicting re-send is recorded and audited as a minor failure.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] when the database fails; a conflicting re-send
    /// is not an error but [`PutOutcome::Conflict`].
    async fn put_instance(
        &self,
        new: &NewInstance,
        audit: &AuditRecord,
    ) -> Result<PutOutcome, StoreError>;

    /// [`Self::put_instance`] for several instances in one transaction
    /// (group commit: one WAL flush for the batch), outcomes in the order
    /// given. All or nothing: on an error nothing of the batch is kept, and
    /// the caller may retry the instances one by one to isolate the failure.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] when the database fails for any instance.
    async fn put_instances(
        &self,
        batch: &[(&NewInstance, &AuditRecord)],
    ) -> Result<Vec<PutOutcome>, StoreError>;

    /// One instance by SOP Instance UID.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`], or [`StoreError::Corrupt`] for a malformed row.
    async fn instance(&self, uid: &SopInstanceUid) -> Result<Option<InstanceRecord>, StoreError>;

    /// One study by Study Instance UID, with its instance count.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`], or [`StoreError::Corrupt`] for a malformed row.
    async fn study(&self, uid: &StudyInstanceUid) -> Result<Option<StudyRecord>, StoreError>;

    /// Which of `keys` a row still refers to (an instance's bytes, or either
    /// side of a recorded conflict): the blobs the collector must keep.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn referenced_blobs(
        &self,
        keys: &[crate::BlobKey],
    ) -> Result<std::collections::HashSet<crate::BlobKey>, StoreError>;

    /// Studies with stored instances that no case names, by study or by
    /// accession number (a case that holds a study; one a note opened and
    /// that holds none has not linked this one): stored before a crash,
    /// never linked (issue #14, finding 3). For the start-up sweep: only studies first stored before
    /// `stored_before` (the process's start), so a study that a request of
    /// this process is storing and about to link is not linked, and queued,
    /// a second time by the sweep.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn studies_without_case(
        &self,
        stored_before: chrono::DateTime<chrono::Utc>,
    ) -> Result<Vec<StudyRecord>, StoreError>;

    /// The instances of a study, ordered by series then instance number.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`], or [`StoreError::Corrupt`] for a malformed row.
    async fn study_instances(
        &self,
        uid: &StudyInstanceUid,
    ) -> Result<Vec<InstanceRecord>, StoreError>;

    /// QIDO-RS study search (PS3.18 §10.6), newest study date first.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`], or [`StoreError::Corrupt`] for a malformed row.
    async fn search_studies(&self, query: &StudyQuery) -> Result<Vec<StudyRecord>, StoreError>;

    /// QIDO-RS series search within a study, by series number.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`], or [`StoreError::Corrupt`] for a malformed row.
    async fn search_series(
        &self,
        study: &StudyInstanceUid,
        query: &SeriesQuery,
    ) -> Result<Vec<SeriesRecord>, StoreError> {
        self.search_series_in(Some(study), query).await
    }

    /// QIDO-RS series search within a study, or across all studies when
    /// `study` is `None` (PS3.18 §10.6.1: `GET /series`).
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`], or [`StoreError::Corrupt`] for a malformed row.
    async fn search_series_in(
        &self,
        study: Option<&StudyInstanceUid>,
        query: &SeriesQuery,
    ) -> Result<Vec<SeriesRecord>, StoreError>;

    /// QIDO-RS instance search within a study (and a series, if given).
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`], or [`StoreError::Corrupt`] for a malformed row.
    async fn search_instances(
        &self,
        study: &StudyInstanceUid,
        query: &InstanceQuery,
    ) -> Result<Vec<InstanceRecord>, StoreError> {
        self.search_instances_in(Some(study), query).await
    }

    /// QIDO-RS instance search within a study, or across all studies when
    /// `study` is `None` (PS3.18 §10.6.1: `GET /instances`).
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`], or [`StoreError::Corrupt`] for a malformed row.
    async fn search_instances_in(
        &self,
        study: Option<&StudyInstanceUid>,
        query: &InstanceQuery,
    ) -> Result<Vec<InstanceRecord>, StoreError>;

    /// How many conflicting re-sends were recorded for a SOP Instance UID.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn conflict_count(&self, uid: &SopInstanceUid) -> Result<i64, StoreError>;
}
