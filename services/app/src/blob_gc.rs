//! The blob collector (issue #14, finding 8): DICOM bytes go to the blob
//! store before their index rows commit, so a crash in between, a refused
//! instance, or a staged file a dying process never renamed leaves bytes
//! that no row refers to and nothing ever removes. [`collect_blobs`] removes
//! those, and only those: a blob goes when no instance or recorded conflict
//! names it and it was last written longer ago than the grace period, so a
//! blob written for an instance still being indexed is never taken. It runs
//! from `fusion blobs gc` and once at each start.

use chrono::Utc;
use fusion_store::{
    AuditAction, AuditAgent, AuditEventType, AuditRecord, BlobError, BlobKey, EntityKind,
    StoreError,
};
use futures::TryStreamExt;

use crate::State;

/// Why a collection stopped.
#[derive(Debug, thiserror::Error)]
pub enum GcError {
    /// The blob store failed to list or delete.
    #[error("blob store: {0}")]
    Blobs(#[from] BlobError),
    /// The database failed to say which blobs rows refer to.
    #[error("database: {0}")]
    Store(#[from] StoreError),
    /// The grace period is below [`MIN_GRACE_MINUTES`]: a blob written by a
    /// STOW-RS request still waiting for its index commit could be removed
    /// under it, and the instance acknowledged without its bytes.
    #[error("a grace period of {0} minutes is too short: at least {MIN_GRACE_MINUTES} minutes")]
    GraceTooShort(i64),
}

/// The shortest grace period the collector accepts, minutes: well above the
/// longest STOW-RS request (the body limit over a slow link) and a database
/// held up by a lock.
pub const MIN_GRACE_MINUTES: i64 = 60;

/// What a collection did.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct GcReport {
    /// Blobs older than the grace period that were checked.
    pub examined: u64,
    /// Of those, removed because no row refers to them.
    pub removed: u64,
    /// Their bytes.
    pub removed_bytes: u64,
    /// Staged files (a `put` that never finished) removed, local folder only.
    pub staged_removed: u64,
    /// Their bytes.
    pub staged_bytes: u64,
}

/// Removes every blob that no row refers to and that was last written
/// longer than `grace` ago, and staged files as old; audits the collection
/// (110100 Application Activity, `blob-gc`, action D) when it removed
/// anything.
///
/// # Errors
///
/// [`GcError`] naming the failing side; what was removed before stays
/// removed.
pub async fn collect_blobs(state: &State, grace: chrono::Duration) -> Result<GcReport, GcError> {
    if grace < chrono::Duration::minutes(MIN_GRACE_MINUTES) {
        return Err(GcError::GraceTooShort(grace.num_minutes()));
    }
    let cutoff = Utc::now() - grace;
    let mut report = GcReport::default();
    let mut pages = state.blobs.list_older_than(cutoff).try_chunks(500);
    while let Some(page) = pages.try_next().await.map_err(|e| GcError::Blobs(e.1))? {
        report.examined += page.len() as u64;
        let keys: Vec<BlobKey> = page.iter().map(|(k, _)| k.clone()).collect();
        let referenced = state.repository.referenced_blobs(&keys).await?;
        for (key, size) in page {
            if referenced.contains(&key) {
                continue;
            }
            state.blobs.delete(&key).await?;
            report.removed += 1;
            report.removed_bytes += size;
        }
    }
    let staged_cutoff = std::time::SystemTime::now()
        .checked_sub(grace.to_std().unwrap_or_default())
        .unwrap_or(std::time::UNIX_EPOCH);
    let blobs = state.blobs.clone();
    let (files, bytes) = tokio::task::spawn_blocking(move || blobs.remove_staged(staged_cutoff))
        .await
        .map_err(|e| {
            GcError::Blobs(BlobError::BadUrl(format!(
                "the staged-file sweep failed: {e}"
            )))
        })??;
    report.staged_removed = files;
    report.staged_bytes = bytes;
    if report.removed + report.staged_removed > 0 {
        let record = AuditRecord::builder(
            AuditEventType::ApplicationActivity,
            "blob-gc",
            AuditAction::Delete,
            AuditAgent::system(),
        )
        .outcome_desc(format!(
            "{} unreferenced blobs ({} bytes) and {} staged files ({} bytes) removed",
            report.removed, report.removed_bytes, report.staged_removed, report.staged_bytes
        ))
        .entity(EntityKind::BlobStore, state.blobs.location())
        .build();
        state.repository.append_audit(&record).await?;
    }
    tracing::info!(
        examined = report.examined,
        removed = report.removed,
        removed_bytes = report.removed_bytes,
        staged_removed = report.staged_removed,
        "blob collection done"
    );
    Ok(report)
}
