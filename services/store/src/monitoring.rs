//! What the monitoring of the models reads and writes (issue #18): the
//! inputs each inference job's models read ([`NewModelInput`], one row per
//! job), the reviewed predictions, the inference queue's depth and the
//! connection pool's use. No row here names a patient: features are
//! banded header values, scores are probabilities.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::StoreError;
use crate::cases::{PredictionRecord, ReviewRecord};

/// The header attributes the applicability gate reads, as the monitoring
/// keeps them: coded values only, the age banded. `None` when absent.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputFeatures {
    /// Modality (0008,0060), e.g. `CR`.
    pub modality: Option<String>,
    /// Body Part Examined (0018,0015), e.g. `CHEST`.
    pub body_part: Option<String>,
    /// View Position (0018,5101), e.g. `PA`.
    pub view_position: Option<String>,
    /// Patient's Age (0010,1010) as a band: `0-17`, `18-39`, `40-64`, `65+`.
    pub age_band: Option<String>,
    /// Photometric Interpretation (0028,0004), e.g. `MONOCHROME2`.
    pub photometric_interpretation: Option<String>,
    /// Manufacturer (0008,0070) of the equipment.
    pub manufacturer: Option<String>,
}

/// One inference job's inputs, as the drift monitor reads them.
#[derive(Debug, Clone, PartialEq)]
pub struct NewModelInput {
    /// Our id of the row.
    pub id: Uuid,
    /// The case predicted.
    pub case_id: Uuid,
    /// The stored prediction; `None` when no modality was usable.
    pub prediction_id: Option<Uuid>,
    /// `name@version` of the image package loaded, if any.
    pub image_package: Option<String>,
    /// `name@version` of the text package loaded, if any.
    pub text_package: Option<String>,
    /// The gate's attributes of the image the branch used, else of the
    /// first candidate; all `None` without an image.
    pub features: InputFeatures,
    /// Per branch (`image`, `text`), per observation (snake_case), the
    /// branch's probability of "present" in [0, 1].
    pub scores: serde_json::Value,
}

/// A stored [`NewModelInput`].
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInputRecord {
    /// The row as given.
    pub input: NewModelInput,
    /// When it was recorded.
    pub recorded_at: DateTime<Utc>,
}

/// Inference jobs by state, and the age of the oldest queued one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct QueueDepth {
    /// Waiting for a worker.
    pub queued: i64,
    /// Claimed by a worker.
    pub running: i64,
    /// Given up.
    pub failed: i64,
    /// When the oldest queued job was queued.
    pub oldest_queued_at: Option<DateTime<Utc>>,
}

/// The connection pool: connections open, of them idle, and the most
/// allowed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PoolUse {
    /// Connections open (idle and in use).
    pub size: u32,
    /// Of them idle.
    pub idle: u32,
    /// Most connections the pool opens.
    pub max: u32,
}

/// What the monitoring of the models reads and writes (issue #18).
#[async_trait]
pub trait MonitoringRepository: Send + Sync {
    /// Records what one inference job's models read.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn record_model_input(&self, input: &NewModelInput) -> Result<(), StoreError>;

    /// The newest `limit` recorded inputs, oldest first.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`], or [`StoreError::Corrupt`] for a malformed row.
    async fn model_inputs(&self, limit: i64) -> Result<Vec<ModelInputRecord>, StoreError>;

    /// The newest `limit` reviews with the prediction each judged, oldest
    /// review first.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`], or [`StoreError::Corrupt`] for a malformed row.
    async fn reviewed_predictions(
        &self,
        limit: i64,
    ) -> Result<Vec<(ReviewRecord, PredictionRecord)>, StoreError>;

    /// Inference jobs by state.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn queue_depth(&self) -> Result<QueueDepth, StoreError>;

    /// The connection pool's use, now (no query).
    fn pool_use(&self) -> PoolUse;
}
