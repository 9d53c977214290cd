//! The trait of clinicians' reviews of prediction versions.

use async_trait::async_trait;
use uuid::Uuid;

use crate::StoreError;
use crate::audit::AuditRecord;
use crate::cases::{NewReview, ReviewRecord};

/// Reviews: a clinician's decisions on one prediction version.
#[async_trait]
pub trait ReviewRepository: Send + Sync {
    /// Stores a review of a prediction version, marks its case `reviewed`
    /// and appends `audit`. `Ok(None)` when the prediction does not exist.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn put_review(
        &self,
        review: &NewReview,
        audit: &AuditRecord,
    ) -> Result<Option<ReviewRecord>, StoreError>;

    /// The reviews of a prediction version, oldest first.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn reviews_of_prediction(
        &self,
        prediction_id: Uuid,
    ) -> Result<Vec<ReviewRecord>, StoreError>;
}
