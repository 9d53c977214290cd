//! The trait of the inference queue.

use async_trait::async_trait;
use uuid::Uuid;

use crate::StoreError;
use crate::audit::AuditRecord;
use crate::cases::{CaseStatus, Enqueued, JobRecord, JobState};

/// The inference queue: one job per requested prediction of a case,
/// claimed by workers, retried on failure.
#[async_trait]
pub trait JobRepository: Send + Sync {
    /// Queues a prediction job for an existing case (unless one is queued
    /// already: then that one is returned) and marks the case `queued`;
    /// appends `audit` when given, in the same transaction.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`] (also when the case does not exist).
    async fn enqueue(
        &self,
        case_id: Uuid,
        audit: Option<&AuditRecord>,
    ) -> Result<Enqueued, StoreError>;

    /// Claims the oldest queued job of a case no worker is busy with, for
    /// `worker_id`; `None` when there is none. Concurrent claimers never get
    /// the same job (PostgreSQL: `FOR UPDATE SKIP LOCKED`).
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn claim_job(&self, worker_id: &str) -> Result<Option<JobRecord>, StoreError>;

    /// One job.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn job(&self, id: Uuid) -> Result<Option<JobRecord>, StoreError>;

    /// The jobs of a case, oldest first.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn jobs_of_case(&self, case_id: Uuid) -> Result<Vec<JobRecord>, StoreError>;

    /// Marks a running job done without a prediction, setting the case's
    /// status (e.g. [`CaseStatus::NoModality`]) unless another job of the
    /// case is queued, and appends `audit` when given. `Ok(false)` when the
    /// job was not running (finished, or requeued as stale).
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn complete_job(
        &self,
        job_id: Uuid,
        case_status: Option<CaseStatus>,
        audit: Option<&AuditRecord>,
    ) -> Result<bool, StoreError>;

    /// Records a failed attempt of a running job: back to `queued`, or
    /// `failed` after [`crate::MAX_JOB_ATTEMPTS`] attempts (or when another
    /// job of the case is queued already, which will do the work). `error`
    /// must carry no PHI. `None` when the job was not running.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn fail_job(&self, job_id: Uuid, error: &str) -> Result<Option<JobState>, StoreError>;

    /// Treats jobs claimed longer than `older_than` ago and still running as
    /// failed attempts (their worker died): they are queued again or given
    /// up. Returns how many.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn requeue_stale(&self, older_than: chrono::Duration) -> Result<u64, StoreError>;
}
