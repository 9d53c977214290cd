//! Reviews' SQL: a clinician's decisions on one prediction version,
//! stored with the deliveries of the reviewed results.

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use uuid::Uuid;

use crate::cases::{NewReview, ReviewRecord};

/// Columns of a review row, in [`ReviewRow`]'s order (`r` is `reviews`).
pub(crate) const REVIEW_COLUMNS: &str =
    "r.id, r.prediction_id, r.reviewer, r.decisions, r.comment, p.case_id, r.created_at";

#[derive(sqlx::FromRow)]
pub(crate) struct ReviewRow {
    id: Uuid,
    prediction_id: Uuid,
    reviewer: String,
    decisions: Json<serde_json::Value>,
    comment: Option<String>,
    case_id: Uuid,
    created_at: DateTime<Utc>,
}

impl From<ReviewRow> for ReviewRecord {
    fn from(r: ReviewRow) -> Self {
        ReviewRecord {
            review: NewReview {
                id: r.id,
                prediction_id: r.prediction_id,
                reviewer: r.reviewer,
                decisions: r.decisions.0,
                comment: r.comment,
                deliveries: Vec::new(),
            },
            case_id: r.case_id,
            created_at: r.created_at,
        }
    }
}

macro_rules! impl_reviews {
    (
        $name:ident, $db:ty,
        begin_write = $begin:literal,
        lock_case = $lock_case:literal $(,)?
    ) => {
        #[async_trait::async_trait]
        impl crate::ReviewRepository for $name {
            #[tracing::instrument(skip_all, fields(prediction = %review.prediction_id))]
            async fn put_review(
                &self,
                review: &crate::NewReview,
                audit: &crate::AuditRecord,
            ) -> Result<Option<crate::ReviewRecord>, StoreError> {
                let now = crate::audit::audit_time(chrono::Utc::now());
                let mut tx = self.pool.begin_with($begin).await?;
                let case_id: Option<uuid::Uuid> =
                    sqlx::query_scalar("SELECT case_id FROM predictions WHERE id = $1")
                        .bind(review.prediction_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                let Some(case_id) = case_id else {
                    return Ok(None);
                };
                sqlx::query($lock_case).bind(case_id).execute(&mut *tx).await?;
                sqlx::query(
                    "INSERT INTO reviews (id, prediction_id, reviewer, decisions, comment, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(review.id)
                .bind(review.prediction_id)
                .bind(review.reviewer.as_str())
                .bind(sqlx::types::Json(&review.decisions))
                .bind(review.comment.as_deref())
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(|e| $crate::sql::unique_violation(e, "review id"))?;
                Self::queue_deliveries_in(
                    &mut tx,
                    review.prediction_id,
                    Some(review.id),
                    case_id,
                    &review.deliveries,
                    now,
                )
                .await?;
                sqlx::query("UPDATE cases SET status = 'reviewed', updated_at = $2 WHERE id = $1")
                    .bind(case_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                Self::append_audit_in(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(Some(crate::ReviewRecord {
                    review: crate::NewReview {
                        deliveries: Vec::new(),
                        ..review.clone()
                    },
                    case_id,
                    created_at: now,
                }))
            }

            async fn reviews_of_prediction(
                &self,
                prediction_id: uuid::Uuid,
            ) -> Result<Vec<crate::ReviewRecord>, StoreError> {
                let sql = format!(
                    "SELECT {} FROM reviews r JOIN predictions p ON p.id = r.prediction_id \
                     WHERE r.prediction_id = $1 ORDER BY r.created_at, r.id",
                    $crate::sql::reviews::REVIEW_COLUMNS
                );
                let rows: Vec<$crate::sql::reviews::ReviewRow> =
                    sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .bind(prediction_id)
                        .fetch_all(&self.pool)
                        .await?;
                Ok(rows.into_iter().map(crate::ReviewRecord::from).collect())
            }
        }
    };
}
