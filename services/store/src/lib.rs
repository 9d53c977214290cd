//! Persistence for the fusion service.
//!
//! One [`Repository`] trait, two backends: PostgreSQL, the system of record,
//! and SQLite, the embedded default that lets `fusion serve` run on a fresh
//! machine with nothing installed. DICOM bytes never go into a table: they
//! live in the content-addressed [`BlobStore`] (SHA-256 keys, through the
//! `object_store` crate), written durably before any row refers to them.

pub mod audit;
mod blob;
mod cases;
mod error;
mod identity;
mod monitoring;
mod notes;
pub mod outbox;
mod records;
mod repository;
mod sql;

pub use audit::{
    AgentKind, AuditAction, AuditAgent, AuditEntity, AuditEventType, AuditFilter, AuditOutcome,
    AuditRecord, AuditRecordBuilder, ChainAnchor, ChainReport, EntityKind, StoredAuditEvent,
};
pub use blob::{BlobError, BlobKey, BlobStore};
pub use cases::{
    CaseFilter, CaseKey, CaseLink, CaseRecord, CaseSort, CaseStatus, CaseSummary, CaseVersions,
    Enqueued, Finding, JobRecord, JobState, LinkChange, MAX_FINDINGS, MAX_JOB_ATTEMPTS,
    NewPrediction, NewReview, PredictionBrief, PredictionRecord, PredictionStatus, ReviewRecord,
    UnreadableVersion,
};
pub use error::{StoreError, TRANSIENT_ATTEMPTS};
pub use identity::{ApiKeyRecord, LoginGate, NewUser, SessionRecord, UserChange, UserRecord};
pub use monitoring::{InputFeatures, ModelInputRecord, NewModelInput, PoolUse, QueueDepth};
pub use notes::{NewNote, NoteFilter, NoteRecord, NoteStatus, NoteSummary, NoteTypeCode};
pub use outbox::{
    DeliveryFilter, DeliveryOutcome, DeliveryRecord, DeliveryState, DeliveryTarget,
    OutboxRepository,
};
pub use records::{
    DecodeStatus, InstanceQuery, InstanceRecord, NewInstance, PutOutcome, SeriesQuery,
    SeriesRecord, StudyQuery, StudyRecord, like_pattern,
};
pub use repository::{
    AuditRepository, Backend, CaseRepository, DatabaseUrl, IdentityRepository, ImagingRepository,
    JobRepository, LockoutPolicy, MonitoringRepository, NotesRepository, PoolOptions,
    PredictionRepository, Repository, RepositoryCore, ReviewRepository, verify_chain,
    verify_chain_against,
};
pub use sql::connect;

/// The repository traits, for `use fusion_store::prelude::*`.
pub mod prelude {
    pub use crate::outbox::OutboxRepository;
    pub use crate::repository::{
        AuditRepository, CaseRepository, IdentityRepository, ImagingRepository, JobRepository,
        MonitoringRepository, NotesRepository, PredictionRepository, Repository, RepositoryCore,
        ReviewRepository,
    };
}

/// The `submitted_by` of the DICOM SR instances the service writes itself
/// (results of issue #17): no API key or user has this id, so integration
/// keys, which read only what they sent, never read an SR, and the
/// one-sender-per-study rule of the index leaves these instances out.
pub const SR_SUBMITTER: &str = "fusion-sr";
