//! The trait of clinical notes.

use async_trait::async_trait;
use uuid::Uuid;

use crate::StoreError;
use crate::audit::AuditRecord;
use crate::notes::{NewNote, NoteFilter, NoteRecord, NoteSummary};

/// Clinical notes with their analysis.
#[async_trait]
pub trait NotesRepository: Send + Sync {
    /// Stores a note and appends `audit`, in one transaction.
    ///
    /// # Errors
    ///
    /// [`StoreError::AlreadyExists`] when a note with this id exists,
    /// [`StoreError::Query`] when the database fails; nothing is stored then.
    async fn put_note(&self, note: &NewNote, audit: &AuditRecord) -> Result<(), StoreError>;

    /// One note by id, with its text and analysis.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`], or [`StoreError::Corrupt`] for a malformed row.
    async fn note(&self, id: Uuid) -> Result<Option<NoteRecord>, StoreError>;

    /// Summaries of the notes matching `filter`, oldest first, at most
    /// `filter.limit` (default 100, at most 1,000).
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`], or [`StoreError::Corrupt`] for a malformed row.
    async fn notes(&self, filter: &NoteFilter) -> Result<Vec<NoteSummary>, StoreError>;
}
