//! The audit trail's trait, and the walk that verifies its chain.

use async_trait::async_trait;

use super::Repository;
use crate::StoreError;
use crate::audit::{
    AuditFilter, AuditRecord, ChainAnchor, ChainReport, ChainVerifier, StoredAuditEvent,
};

/// The audit trail: append-only, hash chained.
#[async_trait]
pub trait AuditRepository: Send + Sync {
    /// Appends one event on its own (reads, failed authentication, exports).
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`]: the caller must then not serve the request.
    async fn append_audit(&self, record: &AuditRecord) -> Result<StoredAuditEvent, StoreError>;

    /// Events matching `filter`, oldest first.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`], or [`StoreError::Corrupt`] for a malformed row.
    async fn audit_events(&self, filter: &AuditFilter)
    -> Result<Vec<StoredAuditEvent>, StoreError>;

    /// Up to `limit` events after sequence number `after_seq`, for walking
    /// the whole chain in pages.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`], or [`StoreError::Corrupt`] for a malformed row.
    async fn audit_after(
        &self,
        after_seq: i64,
        limit: i64,
    ) -> Result<Vec<StoredAuditEvent>, StoreError>;

    /// The newest event's sequence number and hash (the chain head), if
    /// any, for publishing outside the database.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn audit_head(&self) -> Result<Option<ChainAnchor>, StoreError>;
}

/// Walks the whole audit chain in pages of 1,000 and reports the first break.
///
/// # Errors
///
/// [`StoreError`] when the trail cannot be read.
pub async fn verify_chain(repo: &dyn Repository) -> Result<ChainReport, StoreError> {
    verify_chain_against(repo, None).await
}

/// As [`verify_chain`], and the chain must also hold `anchor`, a head kept
/// outside the database ([`ChainAnchor`]): a truncated or rewritten trail
/// that still links is then reported as broken.
///
/// # Errors
///
/// [`StoreError`] when the trail cannot be read.
pub async fn verify_chain_against(
    repo: &dyn Repository,
    anchor: Option<ChainAnchor>,
) -> Result<ChainReport, StoreError> {
    let mut verifier = match anchor {
        Some(a) => ChainVerifier::with_anchor(a),
        None => ChainVerifier::default(),
    };
    let mut after = 0;
    loop {
        let page = repo.audit_after(after, 1000).await?;
        let Some(last) = page.last() else { break };
        after = last.seq;
        page.iter().for_each(|e| verifier.push(e));
    }
    Ok(verifier.finish())
}
