//! The trait of prediction versions.

use async_trait::async_trait;
use uuid::Uuid;

use crate::StoreError;
use crate::audit::AuditRecord;
use crate::cases::{CaseVersions, NewPrediction, PredictionRecord};

/// A case's prediction versions: insert-only, numbered from 1.
#[async_trait]
pub trait PredictionRepository: Send + Sync {
    /// Stores `new` as the next version of its case (`max + 1`, in the same
    /// transaction; rows are never updated), sets the case's status, marks
    /// `new.job_id` done, and appends `audit`.
    ///
    /// # Errors
    ///
    /// [`StoreError::AlreadyExists`] on an id collision, [`StoreError::Query`].
    async fn insert_prediction(
        &self,
        new: &NewPrediction,
        audit: &AuditRecord,
    ) -> Result<PredictionRecord, StoreError>;

    /// Every version of a case's prediction, newest first.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`], or [`StoreError::Corrupt`] for a malformed row.
    async fn predictions_of_case(&self, case_id: Uuid)
    -> Result<Vec<PredictionRecord>, StoreError>;

    /// Every version of a case's prediction, newest first, with the rows
    /// that do not read back listed apart instead of failing the call: for
    /// the pages that must still show the case.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn prediction_versions(&self, case_id: Uuid) -> Result<CaseVersions, StoreError>;

    /// One prediction version.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`], or [`StoreError::Corrupt`] for a malformed row.
    async fn prediction(&self, id: Uuid) -> Result<Option<PredictionRecord>, StoreError>;
}
