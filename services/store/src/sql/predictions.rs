//! Prediction versions' SQL: insert-only, numbered per case in the
//! inserting transaction, which also ends the job that produced them and
//! queues their deliveries (the transactional outbox).

use chrono::{DateTime, Utc};
use sqlx::types::Json;
use uuid::Uuid;

use crate::StoreError;
use crate::cases::{
    CaseVersions, NewPrediction, PredictionRecord, PredictionStatus, UnreadableVersion,
};

/// Columns of a prediction row, in [`PredictionRow`]'s order.
pub(crate) const PREDICTION_COLUMNS: &str = "id, case_id, version, status, packages, branches, \
    fused, abstain, abstain_reasons, timings, inputs, findings, refer, job_id, created_at";

/// A row's JSON column in its stored shape (`fusion_schemas::prediction`):
/// a missing or malformed field is a corrupt row, never a blank.
fn typed<T: serde::de::DeserializeOwned>(
    column: &str,
    value: serde_json::Value,
) -> Result<T, StoreError> {
    crate::error::from_json(&format!("predictions.{column}"), value)
}

#[derive(sqlx::FromRow)]
pub(crate) struct PredictionRow {
    pub(crate) id: Uuid,
    case_id: Uuid,
    version: i32,
    status: String,
    packages: Json<serde_json::Value>,
    branches: Json<serde_json::Value>,
    fused: Json<serde_json::Value>,
    abstain: bool,
    abstain_reasons: Json<serde_json::Value>,
    timings: Json<serde_json::Value>,
    inputs: Json<serde_json::Value>,
    findings: Json<serde_json::Value>,
    refer: bool,
    job_id: Option<Uuid>,
    created_at: DateTime<Utc>,
}

impl TryFrom<PredictionRow> for PredictionRecord {
    type Error = StoreError;

    fn try_from(r: PredictionRow) -> Result<Self, StoreError> {
        Ok(PredictionRecord {
            prediction: NewPrediction {
                id: r.id,
                case_id: r.case_id,
                status: PredictionStatus::from_db(&r.status)?,
                packages: typed("packages", r.packages.0)?,
                branches: typed("branches", r.branches.0)?,
                fused: typed("fused", r.fused.0)?,
                abstain: r.abstain,
                abstain_reasons: typed("abstain_reasons", r.abstain_reasons.0)?,
                timings: typed("timings", r.timings.0)?,
                inputs: typed("inputs", r.inputs.0)?,
                findings: typed("findings", r.findings.0)?,
                refer: r.refer,
                job_id: r.job_id,
                deliveries: Vec::new(),
            },
            version: r.version,
            created_at: r.created_at,
        })
    }
}

/// Rows (newest first) read back, a row that does not parse listed apart
/// ([`StoreError::Corrupt`]); any other error is returned.
pub(crate) fn partition(rows: Vec<PredictionRow>) -> Result<CaseVersions, StoreError> {
    let mut out = CaseVersions::default();
    for row in rows {
        let (id, version, created_at) = (row.id, row.version, row.created_at);
        match PredictionRecord::try_from(row) {
            Ok(p) => out.readable.push(p),
            Err(StoreError::Corrupt(reason)) => out.unreadable.push(UnreadableVersion {
                id,
                version,
                created_at,
                reason,
            }),
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

macro_rules! impl_predictions {
    (
        $name:ident, $db:ty,
        begin_write = $begin:literal,
        lock_case = $lock_case:literal $(,)?
    ) => {
        #[async_trait::async_trait]
        impl crate::PredictionRepository for $name {
            #[tracing::instrument(skip_all, fields(case = %new.case_id))]
            async fn insert_prediction(
                &self,
                new: &crate::NewPrediction,
                audit: &crate::AuditRecord,
            ) -> Result<crate::PredictionRecord, StoreError> {
                let now = crate::audit::audit_time(chrono::Utc::now());
                let mut tx = self.pool.begin_with($begin).await?;
                sqlx::query($lock_case).bind(new.case_id).execute(&mut *tx).await?;
                let version: i32 = sqlx::query_scalar(
                    "SELECT COALESCE(MAX(version), 0) + 1 FROM predictions WHERE case_id = $1",
                )
                .bind(new.case_id)
                .fetch_one(&mut *tx)
                .await?;
                let reason = (!new.abstain_reasons.is_empty()).then(|| new.abstain_reasons.join("; "));
                sqlx::query(
                    "INSERT INTO predictions (id, case_id, version, status, packages, branches, fused, \
                     abstain, reason, timings, abstain_reasons, inputs, findings, refer, job_id, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
                )
                .bind(new.id)
                .bind(new.case_id)
                .bind(version)
                .bind(new.status.as_str())
                .bind(sqlx::types::Json(&new.packages))
                .bind(sqlx::types::Json(&new.branches))
                .bind(sqlx::types::Json(&new.fused))
                .bind(new.abstain)
                .bind(reason)
                .bind(sqlx::types::Json(&new.timings))
                .bind(sqlx::types::Json(&new.abstain_reasons))
                .bind(sqlx::types::Json(&new.inputs))
                .bind(sqlx::types::Json(&new.findings))
                .bind(new.refer)
                .bind(new.job_id)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(|e| $crate::sql::unique_violation(e, "prediction id"))?;
                if let Some(job) = new.job_id {
                    Self::end_job_in(&mut tx, job, None).await?;
                }
                Self::queue_deliveries_in(&mut tx, new.id, None, new.case_id, &new.deliveries, now)
                    .await?;
                sqlx::query(
                    "UPDATE cases SET status = CASE WHEN EXISTS (SELECT 1 FROM inference_jobs j \
                     WHERE j.case_id = cases.id AND j.state = 'queued') THEN 'queued' ELSE $2 END, \
                     updated_at = $3 WHERE id = $1",
                )
                .bind(new.case_id)
                .bind(new.case_status().as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?;
                Self::append_audit_in(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(crate::PredictionRecord {
                    prediction: crate::NewPrediction {
                        deliveries: Vec::new(),
                        ..new.clone()
                    },
                    version,
                    created_at: now,
                })
            }

            async fn predictions_of_case(
                &self,
                case_id: uuid::Uuid,
            ) -> Result<Vec<crate::PredictionRecord>, StoreError> {
                let versions = self.prediction_versions(case_id).await?;
                match versions.unreadable.into_iter().next() {
                    Some(u) => Err(StoreError::Corrupt(u.reason)),
                    None => Ok(versions.readable),
                }
            }

            async fn prediction_versions(
                &self,
                case_id: uuid::Uuid,
            ) -> Result<crate::CaseVersions, StoreError> {
                let sql = format!(
                    "SELECT {} FROM predictions WHERE case_id = $1 ORDER BY version DESC",
                    $crate::sql::predictions::PREDICTION_COLUMNS
                );
                let rows: Vec<$crate::sql::predictions::PredictionRow> =
                    sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .bind(case_id)
                        .fetch_all(&self.pool)
                        .await?;
                $crate::sql::predictions::partition(rows)
            }

            async fn prediction(
                &self,
                id: uuid::Uuid,
            ) -> Result<Option<crate::PredictionRecord>, StoreError> {
                let sql = format!(
                    "SELECT {} FROM predictions WHERE id = $1",
                    $crate::sql::predictions::PREDICTION_COLUMNS
                );
                let row: Option<$crate::sql::predictions::PredictionRow> =
                    sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await?;
                row.map(crate::PredictionRecord::try_from).transpose()
            }
        }
    };
}
