//! Monitoring SQL (issue #18): the inputs each inference job's models read,
//! the newest reviews with their predictions, the queue's depth. The same
//! statements serve both backends; rows are ordered by their UUIDv7 ids,
//! which follow the time they were written.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use uuid::Uuid;

use crate::StoreError;
use crate::monitoring::{InputFeatures, ModelInputRecord, NewModelInput};

/// Columns of a model input row, in [`ModelInputRow`]'s order.
pub(crate) const MODEL_INPUT_COLUMNS: &str =
    "id, case_id, prediction_id, image_package, text_package, features, scores, recorded_at";

#[derive(sqlx::FromRow)]
pub(crate) struct ModelInputRow {
    id: Uuid,
    case_id: Uuid,
    prediction_id: Option<Uuid>,
    image_package: Option<String>,
    text_package: Option<String>,
    features: Json<serde_json::Value>,
    scores: Json<serde_json::Value>,
    recorded_at: DateTime<Utc>,
}

impl TryFrom<ModelInputRow> for ModelInputRecord {
    type Error = StoreError;

    fn try_from(r: ModelInputRow) -> Result<Self, StoreError> {
        let features: InputFeatures =
            crate::error::from_json("model_inputs.features", r.features.0)?;
        Ok(ModelInputRecord {
            input: NewModelInput {
                id: r.id,
                case_id: r.case_id,
                prediction_id: r.prediction_id,
                image_package: r.image_package,
                text_package: r.text_package,
                features,
                scores: r.scores.0,
            },
            recorded_at: r.recorded_at,
        })
    }
}

macro_rules! impl_monitoring {
    ($name:ident, $db:ty) => {
        #[async_trait::async_trait]
        impl crate::MonitoringRepository for $name {
            async fn record_model_input(
                &self,
                input: &crate::NewModelInput,
            ) -> Result<(), StoreError> {
                let now = crate::audit::audit_time(chrono::Utc::now());
                sqlx::query(
                    "INSERT INTO model_inputs (id, case_id, prediction_id, image_package, \
                     text_package, features, scores, recorded_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                )
                .bind(input.id)
                .bind(input.case_id)
                .bind(input.prediction_id)
                .bind(input.image_package.as_deref())
                .bind(input.text_package.as_deref())
                .bind(sqlx::types::Json(&input.features))
                .bind(sqlx::types::Json(&input.scores))
                .bind(now)
                .execute(&self.pool)
                .await?;
                Ok(())
            }

            async fn model_inputs(
                &self,
                limit: i64,
            ) -> Result<Vec<crate::ModelInputRecord>, StoreError> {
                let sql = format!(
                    "SELECT {} FROM model_inputs ORDER BY id DESC LIMIT $1",
                    $crate::sql::monitoring::MODEL_INPUT_COLUMNS
                );
                let rows: Vec<$crate::sql::monitoring::ModelInputRow> =
                    sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .bind(limit)
                        .fetch_all(&self.pool)
                        .await?;
                let mut out = rows
                    .into_iter()
                    .map(crate::ModelInputRecord::try_from)
                    .collect::<Result<Vec<_>, _>>()?;
                out.reverse();
                Ok(out)
            }

            async fn reviewed_predictions(
                &self,
                limit: i64,
            ) -> Result<Vec<(crate::ReviewRecord, crate::PredictionRecord)>, StoreError> {
                let sql = format!(
                    "SELECT {} FROM reviews r JOIN predictions p ON p.id = r.prediction_id \
                     ORDER BY r.id DESC LIMIT $1",
                    $crate::sql::reviews::REVIEW_COLUMNS
                );
                let reviews: Vec<$crate::sql::reviews::ReviewRow> =
                    sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .bind(limit)
                        .fetch_all(&self.pool)
                        .await?;
                let sql = format!(
                    "SELECT {} FROM predictions WHERE id IN (SELECT r.prediction_id FROM \
                     (SELECT prediction_id FROM reviews ORDER BY id DESC LIMIT $1) r)",
                    $crate::sql::predictions::PREDICTION_COLUMNS
                );
                let rows: Vec<$crate::sql::predictions::PredictionRow> =
                    sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .bind(limit)
                        .fetch_all(&self.pool)
                        .await?;
                // The monitor reads what it can: a prediction whose stored
                // row cannot be read is left out and logged (by id, column
                // and path), never the whole evaluation for every model.
                let predictions: std::collections::HashMap<uuid::Uuid, crate::PredictionRecord> =
                    rows.into_iter()
                        .filter_map(|r| {
                            let id = r.id;
                            match crate::PredictionRecord::try_from(r) {
                                Ok(p) => Some((p.prediction.id, p)),
                                Err(e) => {
                                    tracing::warn!(prediction = %id, error = %e, "reviewed prediction left out of monitoring");
                                    None
                                }
                            }
                        })
                        .collect();
                let mut out: Vec<(crate::ReviewRecord, crate::PredictionRecord)> = reviews
                    .into_iter()
                    .map(crate::ReviewRecord::from)
                    .filter_map(|r| {
                        let p = predictions.get(&r.review.prediction_id)?.clone();
                        Some((r, p))
                    })
                    .collect();
                out.reverse();
                Ok(out)
            }

            async fn queue_depth(&self) -> Result<crate::QueueDepth, StoreError> {
                let counts: Vec<(String, i64)> = sqlx::query_as(
                    "SELECT state, COUNT(*) FROM inference_jobs \
                     WHERE state IN ('queued', 'running', 'failed') GROUP BY state",
                )
                .fetch_all(&self.pool)
                .await?;
                let oldest: Option<chrono::DateTime<chrono::Utc>> = sqlx::query_scalar(
                    "SELECT created_at FROM inference_jobs WHERE state = 'queued' \
                     ORDER BY created_at LIMIT 1",
                )
                .fetch_optional(&self.pool)
                .await?;
                let of = |s: &str| {
                    counts
                        .iter()
                        .find(|(state, _)| state == s)
                        .map_or(0, |(_, n)| *n)
                };
                Ok(crate::QueueDepth {
                    queued: of("queued"),
                    running: of("running"),
                    failed: of("failed"),
                    oldest_queued_at: oldest,
                })
            }

            fn pool_use(&self) -> crate::PoolUse {
                crate::PoolUse {
                    size: self.pool.size(),
                    idle: u32::try_from(self.pool.num_idle()).unwrap_or(u32::MAX),
                    max: self.pool.options().get_max_connections(),
                }
            }
        }
    };
}
