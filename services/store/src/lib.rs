//! Persistence for the fusion service.
//!
//! One [`Repository`] trait, two backends: PostgreSQL, the system of record,
//! and SQLite, the embedded default that lets `fusion serve` run on a fresh
//! machine with nothing installed. DICOM bytes never go into a table: they
//! live in the content-addressed [`BlobStore`] (SHA-256 keys, through the
//! `object_store` crate), written durably before any row refers to them.

mod blob;
mod error;
mod records;
mod repository;
mod sql;

pub use blob::{BlobError, BlobKey, BlobStore};
pub use error::StoreError;
pub use records::{DecodeStatus, InstanceRecord, NewInstance, PutOutcome, StudyRecord};
pub use repository::{Backend, DatabaseUrl, PoolOptions, Repository, connect};
