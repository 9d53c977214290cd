//! The transactional outbox (issue #17): results leaving the service.
//!
//! A prediction version (or a review of one) is delivered to each
//! destination by one outbox row, written in the same transaction as the
//! prediction or review ([`crate::NewPrediction::deliveries`],
//! [`crate::NewReview::deliveries`]), so a result is never stored without
//! its deliveries nor a delivery queued for a result that was rolled back.
//! A sender claims due rows, delivers, and records the destination's answer
//! with [`OutboxRepository::record_delivery`]; an acknowledged delivery is
//! `delivered` and never claimed again. A claim leases the row (moves its
//! `next_attempt_at` forward), so a sender that dies mid-delivery leaves the
//! row to be claimed again after the lease, by any process.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{AuditRecord, StoreError};

/// Where a delivery goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryTarget {
    /// The DICOM SR stored in this service's own archive (served by its
    /// QIDO-RS and WADO-RS).
    Local,
    /// The DICOM SR sent by STOW-RS (PS3.18 §10.5) to the configured PACS.
    Dicomweb,
    /// A FHIR R4 `transaction` Bundle POSTed to the configured endpoint.
    Fhir,
}

impl DeliveryTarget {
    /// Every target.
    pub const ALL: [Self; 3] = [Self::Local, Self::Dicomweb, Self::Fhir];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Local => "local",
            Self::Dicomweb => "dicomweb",
            Self::Fhir => "fhir",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting for its (next) attempt.
    Pending,
    /// The destination acknowledged it; never sent again.
    Delivered,
    /// Given up after the last attempt, or refused for good; an operator
    /// may queue it again (`fusion outbox retry`).
    Failed,
}

impl DeliveryState {
    /// Every state.
    pub const ALL: [Self; 3] = [Self::Pending, Self::Delivered, Self::Failed];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Delivered => "delivered",
            Self::Failed => "failed",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// One outbox row as stored.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DeliveryRecord {
    /// Our id of the delivery.
    pub id: Uuid,
    /// The prediction version delivered.
    pub prediction_id: Uuid,
    /// The review delivered (its VERIFIED report), if any.
    pub review_id: Option<Uuid>,
    /// The case.
    pub case_id: Uuid,
    /// Where it goes.
    pub target: DeliveryTarget,
    /// Where it stands.
    pub state: DeliveryState,
    /// Attempts made (a claim counts as one).
    pub attempts: i32,
    /// When it may be tried (again); while claimed, when the lease ends.
    pub next_attempt_at: DateTime<Utc>,
    /// The destination's last HTTP status, if it answered.
    pub last_status: Option<i32>,
    /// The last failure, as the destination answered it (bounded, no PHI).
    pub last_error: Option<String>,
    /// The SOP Instance UID of the SR delivered (DICOM targets).
    pub sop_instance_uid: Option<String>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When the destination acknowledged it.
    pub delivered_at: Option<DateTime<Utc>>,
}

/// What an attempt came to.
#[derive(Debug, Clone, PartialEq)]
pub enum DeliveryOutcome {
    /// Acknowledged by the destination.
    Delivered {
        /// Its HTTP status (none for the local archive).
        status: Option<i32>,
        /// The SOP Instance UID delivered (DICOM targets).
        sop_instance_uid: Option<String>,
    },
    /// Not delivered; try again at `next_attempt_at`.
    Retry {
        /// The destination's HTTP status, if it answered.
        status: Option<i32>,
        /// Why, as the destination answered.
        error: String,
        /// When to try again.
        next_attempt_at: DateTime<Utc>,
    },
    /// Not delivered, and not to be tried again.
    Failed {
        /// The destination's HTTP status, if it answered.
        status: Option<i32>,
        /// Why, as the destination answered.
        error: String,
    },
}

/// Which deliveries to list.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    /// Only these states (all when empty).
    pub states: Vec<DeliveryState>,
    /// Only this case's.
    pub case_id: Option<Uuid>,
    /// Only this prediction version's.
    pub prediction_id: Option<Uuid>,
    /// At most this many, newest first (default and cap 1000).
    pub limit: Option<i64>,
}

/// Longest `last_error` kept, characters.
pub const MAX_ERROR_CHARS: usize = 500;

/// The outbox's persistence.
#[async_trait]
pub trait OutboxRepository: Send + Sync {
    /// Claims the due pending delivery queued first (`next_attempt_at ≤
    /// now`), counting the attempt and leasing it until `lease_until`.
    /// Rows claimed by another sender are skipped (PostgreSQL `SKIP
    /// LOCKED`; SQLite's single writer).
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`], [`StoreError::Corrupt`].
    async fn claim_delivery(
        &self,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
    ) -> Result<Option<DeliveryRecord>, StoreError>;

    /// Records an attempt's outcome and appends `audit` in the same
    /// transaction. A delivery that is no longer pending is left alone
    /// (`Ok(false)`).
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn record_delivery(
        &self,
        id: Uuid,
        outcome: &DeliveryOutcome,
        audit: Option<&AuditRecord>,
    ) -> Result<bool, StoreError>;

    /// Deliveries matching `filter`, newest first.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`], [`StoreError::Corrupt`].
    async fn deliveries(&self, filter: &DeliveryFilter) -> Result<Vec<DeliveryRecord>, StoreError>;

    /// Queues a failed delivery again (attempts back to 0, due now) and
    /// appends `audit`. `Ok(false)` when it does not exist or is not failed.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn retry_delivery(&self, id: Uuid, audit: &AuditRecord) -> Result<bool, StoreError>;
}

/// `error` cut to [`MAX_ERROR_CHARS`] characters, NUL removed.
pub fn bounded_error(error: &str) -> String {
    error
        .chars()
        .filter(|c| *c != '\0')
        .take(MAX_ERROR_CHARS)
        .collect()
}
