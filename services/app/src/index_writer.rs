//! Group commit of the imaging index.
//!
//! Every stored instance needs its index rows and its audit event committed
//! before it is acknowledged (PS3.18 §10.5: a STOW-RS response lists only
//! instances that are stored). One transaction per instance makes each wait
//! for its own write-ahead-log flush, and the audit hash chain serialises
//! them. The writer task here takes every instance waiting when it is free
//! and commits them together in one transaction
//! ([`fusion_store::ImagingRepository::put_instances`]): one flush for the
//! batch, the same guarantees per instance. If a batch fails, its instances
//! are retried one by one, so one bad instance fails alone.

use std::sync::Arc;

use fusion_store::{AuditRecord, NewInstance, PutOutcome, Repository, StoreError};
use tokio::sync::{mpsc, oneshot};

/// Most instances committed in one transaction.
pub const MAX_BATCH: usize = 64;

struct Job {
    new: NewInstance,
    audit: AuditRecord,
    reply: oneshot::Sender<Result<PutOutcome, StoreError>>,
}

/// A handle to the writer task; cheap to clone. The task ends when the last
/// handle is dropped.
#[derive(Clone)]
pub struct IndexWriter {
    jobs: mpsc::Sender<Job>,
}

impl std::fmt::Debug for IndexWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IndexWriter").finish_non_exhaustive()
    }
}

impl IndexWriter {
    /// Starts the writer task on the current Tokio runtime.
    pub fn start(repository: Arc<dyn Repository>) -> Self {
        let (jobs, rx) = mpsc::channel(4 * MAX_BATCH);
        tokio::spawn(run(repository, rx));
        Self { jobs }
    }

    /// Indexes `new` and appends `audit`, committed (alone or with other
    /// waiting instances) before this returns.
    ///
    /// # Errors
    ///
    /// What [`fusion_store::ImagingRepository::put_instance`] returns;
    /// [`StoreError::Stopped`] once the writer task has ended.
    pub async fn put(
        &self,
        new: NewInstance,
        audit: AuditRecord,
    ) -> Result<PutOutcome, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.jobs
            .send(Job { new, audit, reply })
            .await
            .map_err(|_| StoreError::Stopped("the index writer"))?;
        answer
            .await
            .unwrap_or(Err(StoreError::Stopped("the index writer")))
    }
}

async fn run(repository: Arc<dyn Repository>, mut rx: mpsc::Receiver<Job>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut batch, MAX_BATCH).await > 0 {
        let jobs = std::mem::take(&mut batch);
        if jobs.len() == 1 {
            for job in jobs {
                let outcome = put_one(repository.as_ref(), &job).await;
                let _ = job.reply.send(outcome);
            }
            continue;
        }
        let items: Vec<(&NewInstance, &AuditRecord)> =
            jobs.iter().map(|j| (&j.new, &j.audit)).collect();
        match repository.put_instances(&items).await {
            Ok(outcomes) if outcomes.len() == jobs.len() => {
                tracing::debug!(instances = jobs.len(), "index batch committed");
                for (job, outcome) in jobs.into_iter().zip(outcomes) {
                    let _ = job.reply.send(Ok(outcome));
                }
            }
            other => {
                if let Err(e) = other {
                    tracing::warn!(error = %e, instances = jobs.len(), "index batch failed; retrying one by one");
                }
                for job in jobs {
                    let outcome = put_one(repository.as_ref(), &job).await;
                    let _ = job.reply.send(outcome);
                }
            }
        }
    }
}

/// One instance's transaction, run again when the database aborted it as
/// the loser of a deadlock ([`StoreError::is_transient`]): a STOW-RS request
/// racing notes and predictions of its case answered A700 for an instance
/// it could have stored.
async fn put_one(repository: &dyn Repository, job: &Job) -> Result<PutOutcome, StoreError> {
    let mut attempt = 1;
    loop {
        match repository.put_instance(&job.new, &job.audit).await {
            Err(e) if e.is_transient() && attempt < fusion_store::TRANSIENT_ATTEMPTS => {
                tracing::warn!(error = %e, attempt, "index transaction lost a race; running it again");
                attempt += 1;
            }
            outcome => return outcome,
        }
    }
}
