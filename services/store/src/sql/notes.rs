//! Clinical notes SQL: one insert with its audit event, one read by id, and a
//! filtered list of summaries.

use chrono::{DateTime, Utc};
use fusion_schemas::{AccessionNumber, PatientId, StudyInstanceUid};
use sqlx::types::Json;
use uuid::Uuid;

use crate::StoreError;
use crate::error::from_json;
use crate::notes::{NewNote, NoteRecord, NoteStatus, NoteSummary, NoteTypeCode};
use crate::sql::imaging::id_corrupt;

/// Columns of a full note row, in [`NoteRow`]'s order.
pub(crate) const NOTE_COLUMNS: &str = "id, patient_id, accession_number, study_instance_uid, \
    note_type, note_type_system, note_type_display, source_format, source_id, authored_at, \
    authored_at_precision, text, status, no_text_reason, sections, mentions, labels, \
    submitted_by, created_at";

/// Columns of a summary row, in [`SummaryRow`]'s order.
pub(crate) const SUMMARY_COLUMNS: &str = "id, patient_id, accession_number, study_instance_uid, \
    note_type, note_type_system, note_type_display, source_format, authored_at, status, labels, \
    submitted_by, created_at";

/// Most notes one list returns, whatever the caller asks.
pub(crate) const MAX_LIST: i64 = 1000;

#[derive(sqlx::FromRow)]
pub(crate) struct NoteRow {
    id: Uuid,
    patient_id: Option<String>,
    accession_number: Option<String>,
    study_instance_uid: Option<String>,
    note_type: Option<String>,
    note_type_system: Option<String>,
    note_type_display: Option<String>,
    source_format: String,
    source_id: Option<String>,
    authored_at: Option<DateTime<Utc>>,
    authored_at_precision: Option<String>,
    text: Option<String>,
    status: String,
    no_text_reason: Option<Json<serde_json::Value>>,
    sections: Json<serde_json::Value>,
    mentions: Json<serde_json::Value>,
    labels: Json<serde_json::Value>,
    submitted_by: Option<String>,
    created_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
pub(crate) struct SummaryRow {
    id: Uuid,
    patient_id: Option<String>,
    accession_number: Option<String>,
    study_instance_uid: Option<String>,
    note_type: Option<String>,
    note_type_system: Option<String>,
    note_type_display: Option<String>,
    source_format: String,
    authored_at: Option<DateTime<Utc>>,
    status: String,
    labels: Json<serde_json::Value>,
    submitted_by: Option<String>,
    created_at: DateTime<Utc>,
}

type Ids = (
    Option<PatientId>,
    Option<AccessionNumber>,
    Option<StudyInstanceUid>,
);

fn ids(
    patient_id: Option<&str>,
    accession_number: Option<&str>,
    study_instance_uid: Option<&str>,
) -> Result<Ids, StoreError> {
    Ok((
        patient_id
            .map(PatientId::parse)
            .transpose()
            .map_err(id_corrupt("notes.patient_id"))?,
        accession_number
            .map(AccessionNumber::parse)
            .transpose()
            .map_err(id_corrupt("notes.accession_number"))?,
        study_instance_uid
            .map(StudyInstanceUid::parse)
            .transpose()
            .map_err(id_corrupt("notes.study_instance_uid"))?,
    ))
}

fn note_type(
    code: Option<String>,
    system: Option<String>,
    display: Option<String>,
) -> Option<NoteTypeCode> {
    (code.is_some() || system.is_some() || display.is_some()).then_some(NoteTypeCode {
        system,
        code,
        display,
    })
}

impl TryFrom<NoteRow> for NoteRecord {
    type Error = StoreError;

    fn try_from(r: NoteRow) -> Result<Self, StoreError> {
        let (patient_id, accession_number, study_instance_uid) = ids(
            r.patient_id.as_deref(),
            r.accession_number.as_deref(),
            r.study_instance_uid.as_deref(),
        )?;
        Ok(NoteRecord {
            note: NewNote {
                id: r.id,
                patient_id,
                accession_number,
                study_instance_uid,
                note_type: note_type(r.note_type, r.note_type_system, r.note_type_display),
                source_format: r.source_format,
                source_id: r.source_id,
                authored_at: r.authored_at,
                authored_at_precision: r.authored_at_precision,
                text: r.text,
                status: NoteStatus::parse(&r.status)?,
                no_text_reason: r.no_text_reason.map(|j| j.0),
                sections: from_json("notes.sections", r.sections.0)?,
                mentions: from_json("notes.mentions", r.mentions.0)?,
                labels: from_json("notes.labels", r.labels.0)?,
                submitted_by: r.submitted_by,
            },
            created_at: r.created_at,
        })
    }
}

impl TryFrom<SummaryRow> for NoteSummary {
    type Error = StoreError;

    fn try_from(r: SummaryRow) -> Result<Self, StoreError> {
        let (patient_id, accession_number, study_instance_uid) = ids(
            r.patient_id.as_deref(),
            r.accession_number.as_deref(),
            r.study_instance_uid.as_deref(),
        )?;
        Ok(NoteSummary {
            id: r.id,
            patient_id,
            accession_number,
            study_instance_uid,
            note_type: note_type(r.note_type, r.note_type_system, r.note_type_display),
            source_format: r.source_format,
            authored_at: r.authored_at,
            status: NoteStatus::parse(&r.status)?,
            labels: from_json("notes.labels", r.labels.0)?,
            submitted_by: r.submitted_by,
            created_at: r.created_at,
        })
    }
}

macro_rules! impl_notes {
    ($name:ident, $db:ty, begin_write = $begin:literal $(,)?) => {
        impl $name {
            /// Inserts `note` inside `tx` (no audit: the caller appends it).
            async fn insert_note_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                note: &crate::NewNote,
            ) -> Result<(), StoreError> {
                let kind = note.note_type.as_ref();
                sqlx::query(
                    "INSERT INTO notes (id, patient_id, accession_number, study_instance_uid, \
                     note_type, note_type_system, note_type_display, source_format, source_id, \
                     authored_at, authored_at_precision, text, status, no_text_reason, sections, \
                     mentions, labels, submitted_by, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, \
                     $16, $17, $18, $19)",
                )
                .bind(note.id)
                .bind(note.patient_id.as_ref().map(|p| p.as_str()))
                .bind(note.accession_number.as_ref().map(|a| a.as_str()))
                .bind(note.study_instance_uid.as_ref().map(|s| s.as_str()))
                .bind(kind.and_then(|k| k.code.as_deref()))
                .bind(kind.and_then(|k| k.system.as_deref()))
                .bind(kind.and_then(|k| k.display.as_deref()))
                .bind(note.source_format.as_str())
                .bind(note.source_id.as_deref())
                .bind(note.authored_at)
                .bind(note.authored_at_precision.as_deref())
                .bind(note.text.as_deref())
                .bind(note.status.as_str())
                .bind(note.no_text_reason.as_ref().map(sqlx::types::Json))
                .bind(sqlx::types::Json(&note.sections))
                .bind(sqlx::types::Json(&note.mentions))
                .bind(sqlx::types::Json(&note.labels))
                .bind(note.submitted_by.as_deref())
                .bind(chrono::Utc::now())
                .execute(&mut **tx)
                .await
                .map_err(|e| $crate::sql::unique_violation(e, "note id"))?;
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl crate::NotesRepository for $name {
            #[tracing::instrument(skip_all, fields(note = %note.id))]
            async fn put_note(
                &self,
                note: &crate::NewNote,
                audit: &crate::AuditRecord,
            ) -> Result<(), StoreError> {
                let mut tx = self.pool.begin_with($begin).await?;
                Self::insert_note_in(&mut tx, note).await?;
                Self::append_audit_in(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn note(&self, id: uuid::Uuid) -> Result<Option<crate::NoteRecord>, StoreError> {
                let sql = format!(
                    "SELECT {} FROM notes WHERE id = $1",
                    $crate::sql::notes::NOTE_COLUMNS
                );
                let row: Option<$crate::sql::notes::NoteRow> =
                    sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await?;
                row.map(crate::NoteRecord::try_from).transpose()
            }

            async fn notes(
                &self,
                filter: &crate::NoteFilter,
            ) -> Result<Vec<crate::NoteSummary>, StoreError> {
                let mut qb = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {} FROM notes WHERE 1 = 1",
                    $crate::sql::notes::SUMMARY_COLUMNS
                ));
                if let Some(p) = &filter.patient_id {
                    qb.push(" AND patient_id = ").push_bind(p.as_str().to_owned());
                }
                if let Some(a) = &filter.accession_number {
                    qb.push(" AND accession_number = ").push_bind(a.as_str().to_owned());
                }
                if let Some(s) = &filter.study_instance_uid {
                    qb.push(" AND study_instance_uid = ").push_bind(s.as_str().to_owned());
                }
                let limit = filter
                    .limit
                    .unwrap_or(100)
                    .clamp(1, $crate::sql::notes::MAX_LIST);
                qb.push(" ORDER BY created_at, id LIMIT ").push_bind(limit);
                let rows: Vec<$crate::sql::notes::SummaryRow> =
                    qb.build_query_as().fetch_all(&self.pool).await?;
                rows.into_iter().map(crate::NoteSummary::try_from).collect()
            }
        }
    };
}
