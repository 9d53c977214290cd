//! The inference queue's SQL: jobs claimed with `FOR UPDATE SKIP LOCKED`
//! on PostgreSQL (under the single writer on SQLite), failed attempts
//! retried up to [`crate::MAX_JOB_ATTEMPTS`], stale claims requeued.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::StoreError;
use crate::cases::{JobRecord, JobState};

/// Columns of a job row, in [`JobRow`]'s order.
pub(crate) const JOB_COLUMNS: &str =
    "id, case_id, state, attempts, claimed_by, claimed_at, last_error, created_at";

/// When a job ends without a prediction, a case with another job queued
/// stays queued; otherwise it returns to its latest prediction's status
/// (`no_modality` for a version that abstained for want of a usable
/// modality, as when it was stored), or to awaiting one.
pub(crate) const SETTLE_STATUS: &str = "UPDATE cases SET status = CASE \
    WHEN EXISTS (SELECT 1 FROM inference_jobs j WHERE j.case_id = cases.id AND j.state IN ('queued', 'running')) \
      THEN 'queued' \
    WHEN EXISTS (SELECT 1 FROM reviews r JOIN predictions p ON p.id = r.prediction_id WHERE p.case_id = cases.id) \
      THEN 'reviewed' \
    WHEN EXISTS (SELECT 1 FROM predictions p WHERE p.case_id = cases.id) \
      THEN (SELECT CASE WHEN p.reason LIKE 'no usable modality%' THEN 'no_modality' ELSE p.status END \
        FROM predictions p WHERE p.case_id = cases.id ORDER BY p.version DESC LIMIT 1) \
    WHEN NOT EXISTS (SELECT 1 FROM instances i WHERE i.study_instance_uid = cases.study_instance_uid) \
      THEN 'awaiting_image' \
    ELSE 'awaiting_note' END, updated_at = $2 \
    WHERE id = $1";

#[derive(sqlx::FromRow)]
pub(crate) struct JobRow {
    id: Uuid,
    case_id: Uuid,
    state: String,
    attempts: i32,
    claimed_by: Option<String>,
    claimed_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
    created_at: DateTime<Utc>,
}

impl TryFrom<JobRow> for JobRecord {
    type Error = StoreError;

    fn try_from(r: JobRow) -> Result<Self, StoreError> {
        Ok(JobRecord {
            id: r.id,
            case_id: r.case_id,
            state: JobState::from_db(&r.state)?,
            attempts: r.attempts,
            claimed_by: r.claimed_by,
            claimed_at: r.claimed_at,
            last_error: r.last_error,
            created_at: r.created_at,
        })
    }
}

macro_rules! impl_jobs {
    (
        $name:ident, $db:ty,
        begin_write = $begin:literal,
        lock_case = $lock_case:literal,
        skip_locked = $skip_locked:literal $(,)?
    ) => {
        impl $name {
            /// Queues a prediction of `case_id` inside `tx` (deduplicated:
            /// a case has at most one queued job) and marks the case queued.
            async fn enqueue_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                case_id: uuid::Uuid,
            ) -> Result<crate::Enqueued, StoreError> {
                let now = crate::audit::audit_time(chrono::Utc::now());
                sqlx::query($lock_case).bind(case_id).execute(&mut **tx).await?;
                let id = uuid::Uuid::now_v7();
                let inserted = sqlx::query(
                    "INSERT INTO inference_jobs (id, case_id, state, attempts, created_at) \
                     VALUES ($1, $2, 'queued', 0, $3) \
                     ON CONFLICT (case_id) WHERE state = 'queued' DO NOTHING",
                )
                .bind(id)
                .bind(case_id)
                .bind(now)
                .execute(&mut **tx)
                .await?;
                let created = inserted.rows_affected() > 0;
                let job_id = if created {
                    id
                } else {
                    sqlx::query_scalar(
                        "SELECT id FROM inference_jobs WHERE case_id = $1 AND state = 'queued'",
                    )
                    .bind(case_id)
                    .fetch_one(&mut **tx)
                    .await?
                };
                sqlx::query("UPDATE cases SET status = 'queued', updated_at = $2 WHERE id = $1")
                    .bind(case_id)
                    .bind(now)
                    .execute(&mut **tx)
                    .await?;
                Ok(crate::Enqueued { job_id, created })
            }

            /// Ends a job that produced no prediction: `done` or, after a
            /// failure, back to `queued` (or `failed` after the last
            /// attempt, or when another job of the case is queued already).
            async fn end_job_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                job_id: uuid::Uuid,
                error: Option<&str>,
            ) -> Result<Option<(uuid::Uuid, crate::JobState)>, StoreError> {
                let now = crate::audit::audit_time(chrono::Utc::now());
                let row: Option<(uuid::Uuid, i32)> = sqlx::query_as(
                    "SELECT case_id, attempts FROM inference_jobs WHERE id = $1 AND state = 'running'",
                )
                .bind(job_id)
                .fetch_optional(&mut **tx)
                .await?;
                let Some((case_id, attempts)) = row else {
                    return Ok(None);
                };
                sqlx::query($lock_case).bind(case_id).execute(&mut **tx).await?;
                let state = match error {
                    None => crate::JobState::Done,
                    Some(_) => {
                        let other_queued: Option<i32> = sqlx::query_scalar(
                            "SELECT 1 FROM inference_jobs WHERE case_id = $1 AND state = 'queued' LIMIT 1",
                        )
                        .bind(case_id)
                        .fetch_optional(&mut **tx)
                        .await?;
                        if attempts >= crate::MAX_JOB_ATTEMPTS || other_queued.is_some() {
                            crate::JobState::Failed
                        } else {
                            crate::JobState::Queued
                        }
                    }
                };
                let finished = matches!(state, crate::JobState::Done | crate::JobState::Failed)
                    .then_some(now);
                sqlx::query(
                    "UPDATE inference_jobs SET state = $2, last_error = COALESCE($3, last_error), \
                     finished_at = $4 WHERE id = $1",
                )
                .bind(job_id)
                .bind(state.as_str())
                .bind(error)
                .bind(finished)
                .execute(&mut **tx)
                .await?;
                Ok(Some((case_id, state)))
            }
        }

        #[async_trait::async_trait]
        impl crate::JobRepository for $name {
            #[tracing::instrument(skip_all, fields(case = %case_id))]
            async fn enqueue(
                &self,
                case_id: uuid::Uuid,
                audit: Option<&crate::AuditRecord>,
            ) -> Result<crate::Enqueued, StoreError> {
                let mut tx = self.pool.begin_with($begin).await?;
                let queued = Self::enqueue_in(&mut tx, case_id).await?;
                if let Some(audit) = audit {
                    Self::append_audit_in(&mut tx, audit).await?;
                }
                tx.commit().await?;
                Ok(queued)
            }

            async fn claim_job(
                &self,
                worker_id: &str,
            ) -> Result<Option<crate::JobRecord>, StoreError> {
                let now = crate::audit::audit_time(chrono::Utc::now());
                let mut tx = self.pool.begin_with($begin).await?;
                // The oldest queued job of a case that no worker is busy
                // with: the versions of a case come out in order.
                let sql = format!(
                    "UPDATE inference_jobs SET state = 'running', attempts = attempts + 1, \
                     claimed_by = $1, claimed_at = $2 \
                     WHERE state = 'queued' AND id = (SELECT j.id FROM inference_jobs j \
                       WHERE j.state = 'queued' AND NOT EXISTS (SELECT 1 FROM inference_jobs r \
                         WHERE r.case_id = j.case_id AND r.state = 'running') \
                       ORDER BY j.created_at, j.id LIMIT 1{}) \
                     RETURNING {}",
                    $skip_locked,
                    $crate::sql::jobs::JOB_COLUMNS
                );
                let row: Option<$crate::sql::jobs::JobRow> =
                    sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .bind(worker_id)
                        .bind(now)
                        .fetch_optional(&mut *tx)
                        .await?;
                tx.commit().await?;
                row.map(crate::JobRecord::try_from).transpose()
            }

            async fn job(&self, id: uuid::Uuid) -> Result<Option<crate::JobRecord>, StoreError> {
                let sql = format!(
                    "SELECT {} FROM inference_jobs WHERE id = $1",
                    $crate::sql::jobs::JOB_COLUMNS
                );
                let row: Option<$crate::sql::jobs::JobRow> =
                    sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await?;
                row.map(crate::JobRecord::try_from).transpose()
            }

            async fn jobs_of_case(
                &self,
                case_id: uuid::Uuid,
            ) -> Result<Vec<crate::JobRecord>, StoreError> {
                let sql = format!(
                    "SELECT {} FROM inference_jobs WHERE case_id = $1 ORDER BY created_at, id",
                    $crate::sql::jobs::JOB_COLUMNS
                );
                let rows: Vec<$crate::sql::jobs::JobRow> =
                    sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .bind(case_id)
                        .fetch_all(&self.pool)
                        .await?;
                rows.into_iter().map(crate::JobRecord::try_from).collect()
            }

            #[tracing::instrument(skip_all, fields(job = %job_id))]
            async fn complete_job(
                &self,
                job_id: uuid::Uuid,
                case_status: Option<crate::CaseStatus>,
                audit: Option<&crate::AuditRecord>,
            ) -> Result<bool, StoreError> {
                let now = crate::audit::audit_time(chrono::Utc::now());
                let mut tx = self.pool.begin_with($begin).await?;
                let Some((case_id, _)) = Self::end_job_in(&mut tx, job_id, None).await? else {
                    return Ok(false);
                };
                if let Some(status) = case_status {
                    sqlx::query(
                        "UPDATE cases SET status = CASE WHEN EXISTS (SELECT 1 FROM inference_jobs j \
                         WHERE j.case_id = cases.id AND j.state = 'queued') THEN 'queued' ELSE $2 END, \
                         updated_at = $3 WHERE id = $1",
                    )
                    .bind(case_id)
                    .bind(status.as_str())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                if let Some(audit) = audit {
                    Self::append_audit_in(&mut tx, audit).await?;
                }
                tx.commit().await?;
                Ok(true)
            }

            #[tracing::instrument(skip_all, fields(job = %job_id))]
            async fn fail_job(
                &self,
                job_id: uuid::Uuid,
                error: &str,
            ) -> Result<Option<crate::JobState>, StoreError> {
                let mut tx = self.pool.begin_with($begin).await?;
                let ended = Self::end_job_in(&mut tx, job_id, Some(error)).await?;
                if let Some((case_id, _)) = ended {
                    sqlx::query($crate::sql::jobs::SETTLE_STATUS)
                        .bind(case_id)
                        .bind(chrono::Utc::now())
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(ended.map(|(_, state)| state))
            }

            #[tracing::instrument(skip(self))]
            async fn requeue_stale(&self, older_than: chrono::Duration) -> Result<u64, StoreError> {
                let cutoff = chrono::Utc::now() - older_than;
                let stale: Vec<uuid::Uuid> = sqlx::query_scalar(
                    "SELECT id FROM inference_jobs WHERE state = 'running' AND claimed_at < $1 \
                     ORDER BY claimed_at",
                )
                .bind(cutoff)
                .fetch_all(&self.pool)
                .await?;
                let mut requeued = 0;
                for id in stale {
                    let mut tx = self.pool.begin_with($begin).await?;
                    // Claimed again or finished since the scan: leave it.
                    let still: Option<i32> = sqlx::query_scalar(
                        "SELECT 1 FROM inference_jobs WHERE id = $1 AND state = 'running' AND claimed_at < $2",
                    )
                    .bind(id)
                    .bind(cutoff)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if still.is_some()
                        && let Some((case_id, _)) = Self::end_job_in(
                            &mut tx,
                            id,
                            Some("the worker did not finish in time (stale claim)"),
                        )
                        .await?
                    {
                        sqlx::query($crate::sql::jobs::SETTLE_STATUS)
                            .bind(case_id)
                            .bind(chrono::Utc::now())
                            .execute(&mut *tx)
                            .await?;
                        requeued += 1;
                    }
                    tx.commit().await?;
                }
                Ok(requeued)
            }
        }
    };
}
