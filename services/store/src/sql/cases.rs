//! Cases SQL: linking studies and notes to cases and listing them.
//!
//! Case linking is serialised (a transaction-level advisory lock on
//! PostgreSQL, `BEGIN IMMEDIATE` on SQLite) so that many instances of one
//! study stored at once find one case instead of racing to create several.
//! The inference queue is in [`super::jobs`], prediction versions in
//! [`super::predictions`], reviews in [`super::reviews`].

use chrono::{DateTime, Utc};
use fusion_schemas::{AccessionNumber, PatientId, StudyInstanceUid};
use sqlx::types::Json;
use uuid::Uuid;

use crate::StoreError;
use crate::cases::{CaseRecord, CaseStatus, CaseSummary, PredictionBrief};
use crate::sql::imaging::id_corrupt;

/// Columns of a case row, in [`CaseRow`]'s order (`c` is `cases`).
/// A case's patient is its study's (the PACS is authoritative) once the
/// study has arrived, else the one its first note named.
pub(crate) const CASE_COLUMNS: &str = "c.id, COALESCE((SELECT s.patient_id FROM studies s \
    WHERE s.study_instance_uid = c.study_instance_uid), c.patient_id) AS patient_id, c.accession_number, \
    c.study_instance_uid, (SELECT s.study_date FROM studies s WHERE s.study_instance_uid = c.study_instance_uid) AS study_date, \
    EXISTS (SELECT 1 FROM instances i WHERE i.study_instance_uid = c.study_instance_uid) AS has_images, \
    c.status, c.created_at, c.updated_at";

/// Columns of a case list row, in [`SummaryRow`]'s order.
pub(crate) const SUMMARY_COLUMNS: &str = "c.id, COALESCE(s.patient_id, c.patient_id) AS patient_id, c.accession_number, \
    c.study_instance_uid, s.study_date, c.status, c.updated_at, p.id AS p_id, p.version AS p_version, \
    p.findings AS p_findings, p.abstain AS p_abstain, p.refer AS p_refer, p.created_at AS p_created_at";

/// The joins of a case list: the study (for its date) and the latest
/// prediction version.
pub(crate) const SUMMARY_FROM: &str = " FROM cases c \
    LEFT JOIN studies s ON s.study_instance_uid = c.study_instance_uid \
    LEFT JOIN predictions p ON p.case_id = c.id \
      AND p.version = (SELECT MAX(p2.version) FROM predictions p2 WHERE p2.case_id = c.id) \
    WHERE 1 = 1";

/// While a case waits for its first prediction request, its status names
/// the missing modality; once queued or predicted it is left alone.
pub(crate) const REFRESH_AWAITING: &str = "UPDATE cases SET status = CASE \
    WHEN NOT EXISTS (SELECT 1 FROM instances i WHERE i.study_instance_uid = cases.study_instance_uid) \
      THEN 'awaiting_image' \
    WHEN NOT EXISTS (SELECT 1 FROM case_notes cn WHERE cn.case_id = cases.id) THEN 'awaiting_note' \
    ELSE status END \
    WHERE id = $1 AND status IN ('awaiting_image', 'awaiting_note')";

/// Most cases one list returns, whatever the caller asks.
pub(crate) const MAX_LIST: i64 = 1000;

#[derive(sqlx::FromRow)]
pub(crate) struct CaseRow {
    id: Uuid,
    patient_id: Option<String>,
    accession_number: Option<String>,
    study_instance_uid: Option<String>,
    study_date: Option<String>,
    has_images: bool,
    status: String,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
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
            .map_err(id_corrupt("cases.patient_id"))?,
        accession_number
            .map(AccessionNumber::parse)
            .transpose()
            .map_err(id_corrupt("cases.accession_number"))?,
        study_instance_uid
            .map(StudyInstanceUid::parse)
            .transpose()
            .map_err(id_corrupt("cases.study_instance_uid"))?,
    ))
}

impl CaseRow {
    pub(crate) fn into_record(self, note_ids: Vec<Uuid>) -> Result<CaseRecord, StoreError> {
        let (patient_id, accession_number, study_instance_uid) = ids(
            self.patient_id.as_deref(),
            self.accession_number.as_deref(),
            self.study_instance_uid.as_deref(),
        )?;
        Ok(CaseRecord {
            id: self.id,
            patient_id,
            accession_number,
            study_instance_uid,
            study_date: self.study_date,
            has_images: self.has_images,
            status: CaseStatus::from_db(&self.status)?,
            note_ids,
            created_at: self.created_at,
            updated_at: self.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct SummaryRow {
    id: Uuid,
    patient_id: Option<String>,
    accession_number: Option<String>,
    study_instance_uid: Option<String>,
    study_date: Option<String>,
    status: String,
    updated_at: DateTime<Utc>,
    p_id: Option<Uuid>,
    p_version: Option<i32>,
    p_findings: Option<Json<serde_json::Value>>,
    p_abstain: Option<bool>,
    p_refer: Option<bool>,
    p_created_at: Option<DateTime<Utc>>,
}

impl TryFrom<SummaryRow> for CaseSummary {
    type Error = StoreError;

    fn try_from(r: SummaryRow) -> Result<Self, StoreError> {
        let (patient_id, accession_number, study_instance_uid) = ids(
            r.patient_id.as_deref(),
            r.accession_number.as_deref(),
            r.study_instance_uid.as_deref(),
        )?;
        let latest_prediction = match (r.p_id, r.p_version, r.p_created_at) {
            (Some(id), Some(version), Some(created_at)) => {
                // One unreadable value must not take the whole list down:
                // the case is listed without its findings and flagged, and
                // the error (column and path only, never the value) logged.
                let findings = match r.p_findings {
                    Some(f) => crate::error::from_json("predictions.findings", f.0),
                    None => Ok(Vec::new()),
                };
                let findings_unreadable = findings.is_err();
                if let Err(e) = &findings {
                    tracing::warn!(case = %r.id, prediction = %id, error = %e, "listed without its findings");
                }
                Some(PredictionBrief {
                    id,
                    version,
                    findings: findings.unwrap_or_default(),
                    abstain: r.p_abstain.unwrap_or(false),
                    refer: r.p_refer.unwrap_or(false) || findings_unreadable,
                    findings_unreadable,
                    created_at,
                })
            }
            _ => None,
        };
        Ok(CaseSummary {
            id: r.id,
            patient_id,
            accession_number,
            study_instance_uid,
            study_date: r.study_date,
            status: CaseStatus::from_db(&r.status)?,
            updated_at: r.updated_at,
            latest_prediction,
        })
    }
}

/// The row of an existing case that linking may complete.
pub(crate) type LinkRow = (Uuid, Option<String>, Option<String>, Option<String>);

/// Completes a link's audit template: the subtype and action say what
/// happened, the case is named first among the entities.
pub(crate) fn link_audit(
    template: &crate::AuditRecord,
    case_id: Uuid,
    change: crate::LinkChange,
) -> crate::AuditRecord {
    let mut record = template.clone();
    let (subtype, action) = match change {
        crate::LinkChange::Created => ("case-create", crate::AuditAction::Create),
        _ => ("case-link", crate::AuditAction::Update),
    };
    record.subtype = subtype.to_owned();
    record.action = action;
    record.entities.insert(
        0,
        crate::AuditEntity::new(crate::EntityKind::Case, case_id.to_string()),
    );
    record
}

/// Says in a link's audit record which notes left the case because it
/// became its study's patient's (nothing when none did).
pub(crate) fn name_unlinked(record: &mut crate::AuditRecord, unlinked: &[(Uuid, String)]) {
    if unlinked.is_empty() {
        return;
    }
    record.outcome_desc = Some(format!(
        "the case became its study's patient's; {} note(s) naming another Patient ID left it",
        unlinked.len()
    ));
    for (note, patient) in unlinked {
        record.entities.push(crate::AuditEntity::new(
            crate::EntityKind::Note,
            note.to_string(),
        ));
        // The other patient's record changed too: the event is found by
        // either Patient ID.
        if !record.patient_ids.contains(patient) {
            record.patient_ids.push(patient.clone());
        }
    }
}

macro_rules! impl_cases {
    (
        $name:ident, $db:ty,
        begin_write = $begin:literal,
        link_lock = $link_lock:literal $(,)?
    ) => {
        impl $name {
            /// Makes case `case_id` patient `patient`'s (its study's, as
            /// stored: the PACS is authoritative) and unlinks its notes that
            /// name another Patient ID; they stay stored under their own.
            /// One patient's report is never shown, sent or used with another
            /// patient's study. Returns the notes unlinked.
            async fn adopt_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                case_id: uuid::Uuid,
                patient: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<Vec<(uuid::Uuid, String)>, StoreError> {
                sqlx::query("UPDATE cases SET patient_id = $2, updated_at = $3 WHERE id = $1")
                    .bind(case_id)
                    .bind(patient)
                    .bind(now)
                    .execute(&mut **tx)
                    .await?;
                let leaving: Vec<(uuid::Uuid, String)> = sqlx::query_as(
                    "SELECT n.id, n.patient_id FROM case_notes cn JOIN notes n ON n.id = cn.note_id \
                     WHERE cn.case_id = $1 AND n.patient_id IS NOT NULL AND n.patient_id <> $2 \
                     ORDER BY n.id",
                )
                .bind(case_id)
                .bind(patient)
                .fetch_all(&mut **tx)
                .await?;
                for (note, _) in &leaving {
                    sqlx::query("DELETE FROM case_notes WHERE case_id = $1 AND note_id = $2")
                        .bind(case_id)
                        .bind(*note)
                        .execute(&mut **tx)
                        .await?;
                }
                Ok(leaving)
            }

            /// Other cases naming `study` with another Patient ID than the
            /// study was stored with (`patient`), each settled before the
            /// study is linked, in a transaction of its own so that this
            /// holds even when the study's own link is refused: a case of
            /// another order (its accession number is not the study's) no
            /// longer names the study, the note's claim being contradicted
            /// by the PACS, and keeps its patient and notes; a case keyed by
            /// the study alone becomes the study's patient's and the other
            /// patient's notes leave it ([`Self::adopt_in`]). Returns the
            /// cases that changed.
            async fn settle_claims_on(
                &self,
                study: &str,
                accession: Option<&str>,
                patient: &str,
                audit: &crate::AuditRecord,
            ) -> Result<Vec<uuid::Uuid>, StoreError> {
                let mut tx = self.pool.begin_with($begin).await?;
                sqlx::query($link_lock).execute(&mut *tx).await?;
                let stored: Option<Option<String>> =
                    sqlx::query_scalar("SELECT patient_id FROM studies WHERE study_instance_uid = $1")
                        .bind(study)
                        .fetch_optional(&mut *tx)
                        .await?;
                if stored.flatten().as_deref() != Some(patient) {
                    return Ok(Vec::new());
                }
                let others: Vec<(uuid::Uuid, Option<String>)> = sqlx::query_as(
                    "SELECT id, accession_number FROM cases WHERE study_instance_uid = $1 \
                     AND patient_id IS NOT NULL AND patient_id <> $2 \
                     AND (accession_number IS NULL OR $3 IS NULL OR accession_number <> $3) \
                     ORDER BY id",
                )
                .bind(study)
                .bind(patient)
                .bind(accession)
                .fetch_all(&mut *tx)
                .await?;
                let now = crate::audit::audit_time(chrono::Utc::now());
                let mut records = Vec::new();
                for (other, other_accession) in &others {
                    let mut record = $crate::sql::cases::link_audit(
                        audit,
                        *other,
                        crate::LinkChange::Updated,
                    );
                    if other_accession.is_some() {
                        sqlx::query(
                            "UPDATE cases SET study_instance_uid = NULL, updated_at = $2 \
                             WHERE id = $1",
                        )
                        .bind(*other)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                        record.outcome_desc = Some(
                            "the study is another patient's: the case, of another order, \
                             no longer names it"
                                .to_owned(),
                        );
                    } else {
                        let unlinked = Self::adopt_in(&mut tx, *other, patient, now).await?;
                        $crate::sql::cases::name_unlinked(&mut record, &unlinked);
                    }
                    records.push(record);
                }
                for record in &records {
                    Self::append_audit_in(&mut tx, record).await?;
                }
                tx.commit().await?;
                Ok(others.into_iter().map(|(id, _)| id).collect())
            }

            /// Refuses to link `note_ids` to case `case_id` when any names
            /// another Patient ID than the case's reference patient: its
            /// study's as stored (the PACS is authoritative), else the
            /// case's, else the first of these notes that names one. Run
            /// under the link lock, so notes racing into one case are
            /// checked one after the other: one patient's report is never
            /// linked into another patient's case.
            async fn check_note_patients(
                tx: &mut sqlx::Transaction<'_, $db>,
                case_id: uuid::Uuid,
                case_patient: Option<String>,
                case_study: Option<String>,
                note_ids: &[uuid::Uuid],
            ) -> Result<(), StoreError> {
                if note_ids.is_empty() {
                    return Ok(());
                }
                let mut reference: Option<String> = None;
                if let Some(study) = &case_study {
                    reference = sqlx::query_scalar::<_, Option<String>>(
                        "SELECT patient_id FROM studies WHERE study_instance_uid = $1",
                    )
                    .bind(study)
                    .fetch_optional(&mut **tx)
                    .await?
                    .flatten();
                }
                let mut reference = reference.or(case_patient);
                for note in note_ids {
                    let named: Option<String> = sqlx::query_scalar::<_, Option<String>>(
                        "SELECT patient_id FROM notes WHERE id = $1",
                    )
                    .bind(*note)
                    .fetch_optional(&mut **tx)
                    .await?
                    .flatten();
                    match (&reference, named) {
                        (Some(want), Some(named)) if *want != named => {
                            return Err(StoreError::PatientMismatch { case_id });
                        }
                        (None, named @ Some(_)) => reference = named,
                        _ => {}
                    }
                }
                // Nor is a note linked to a case naming a study that another
                // case names for another patient (two notes of two patients
                // naming one study before it arrives: re-attack, both were
                // linked); the study, once stored, settles such claims.
                if let (Some(study), Some(patient)) = (&case_study, &reference) {
                    let other: Option<uuid::Uuid> = sqlx::query_scalar(
                        "SELECT id FROM cases WHERE study_instance_uid = $1 AND id <> $2 \
                         AND patient_id IS NOT NULL AND patient_id <> $3 LIMIT 1",
                    )
                    .bind(study)
                    .bind(case_id)
                    .bind(patient)
                    .fetch_optional(&mut **tx)
                    .await?;
                    if let Some(other) = other {
                        return Err(StoreError::PatientMismatch { case_id: other });
                    }
                }
                Ok(())
            }

            /// Finds or creates the case for `key`, completes its
            /// identifiers and links `note_ids`, inside `tx`.
            async fn link_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                key: &crate::CaseKey,
                note_ids: &[uuid::Uuid],
                audit: &crate::AuditRecord,
                first: Option<&crate::AuditRecord>,
            ) -> Result<crate::CaseLink, StoreError> {
                use crate::LinkChange;
                if key.accession_number.is_none() && key.study_instance_uid.is_none() {
                    return Err(StoreError::Corrupt(
                        "a case needs an accession number or a study".into(),
                    ));
                }
                sqlx::query($link_lock).execute(&mut **tx).await?;
                let now = crate::audit::audit_time(chrono::Utc::now());
                let accession = key.accession_number.as_ref().map(|a| a.as_str());
                let study = key.study_instance_uid.as_ref().map(|s| s.as_str());
                let patient = key.patient_id.as_ref().map(|p| p.as_str());
                let mut found: Option<$crate::sql::cases::LinkRow> = None;
                let mut unlinked: Vec<(uuid::Uuid, String)> = Vec::new();
                if let Some(accession) = accession {
                    found = sqlx::query_as(
                        "SELECT id, patient_id, accession_number, study_instance_uid FROM cases \
                         WHERE accession_number = $1",
                    )
                    .bind(accession)
                    .fetch_optional(&mut **tx)
                    .await?;
                }
                if found.is_none()
                    && let Some(study) = study
                {
                    // With an accession number, only a case still without
                    // one may be adopted: another order is another case.
                    let sql = if accession.is_some() {
                        "SELECT id, patient_id, accession_number, study_instance_uid FROM cases \
                         WHERE study_instance_uid = $1 AND accession_number IS NULL \
                         ORDER BY created_at, id LIMIT 1"
                    } else {
                        "SELECT id, patient_id, accession_number, study_instance_uid FROM cases \
                         WHERE study_instance_uid = $1 ORDER BY created_at, id LIMIT 1"
                    };
                    found = sqlx::query_as(sql)
                        .bind(study)
                        .fetch_optional(&mut **tx)
                        .await?;
                }
                let (case_id, mut change) = match found {
                    Some((id, has_patient, has_accession, has_study)) => {
                        // A case that holds a study is that study's
                        // patient's (the PACS is authoritative; a case opened
                        // from a note adopts its study's Patient ID): another
                        // patient's study or note is not linked to it.
                        let mut adopts_patient = false;
                        if let (Some(has), Some(arrived)) = (has_patient.as_deref(), patient)
                            && has != arrived
                        {
                            // The one exception: the study itself arriving
                            // (no note) at a case that only named it, or
                            // named no study yet, from a note of another
                            // patient. The PACS's Patient ID, as the study
                            // stores it, becomes the case's; the worker then
                            // leaves that note out, and the new link queues
                            // a prediction without it.
                            let stored: Option<(Option<String>,)> = if note_ids.is_empty()
                                && study.is_some()
                                && (has_study.is_none() || has_study.as_deref() == study)
                            {
                                sqlx::query_as(
                                    "SELECT patient_id FROM studies WHERE study_instance_uid = $1",
                                )
                                .bind(study)
                                .fetch_optional(&mut **tx)
                                .await?
                            } else {
                                None
                            };
                            if stored.and_then(|s| s.0).as_deref() != Some(arrived) {
                                return Err(StoreError::PatientMismatch { case_id: id });
                            }
                            unlinked = Self::adopt_in(tx, id, arrived, now).await?;
                            adopts_patient = true;
                        }
                        let fills = adopts_patient
                            || (has_patient.is_none() && patient.is_some())
                            || (has_accession.is_none() && accession.is_some())
                            || (has_study.is_none() && study.is_some());
                        if fills {
                            sqlx::query(
                                "UPDATE cases SET patient_id = COALESCE(patient_id, $2), \
                                 accession_number = COALESCE(accession_number, $3), \
                                 study_instance_uid = COALESCE(study_instance_uid, $4), \
                                 updated_at = $5 WHERE id = $1",
                            )
                            .bind(id)
                            .bind(patient)
                            .bind(accession)
                            .bind(study)
                            .bind(now)
                            .execute(&mut **tx)
                            .await?;
                        }
                        let case_patient = if adopts_patient {
                            patient.map(str::to_owned)
                        } else {
                            has_patient.or_else(|| patient.map(str::to_owned))
                        };
                        let case_study = has_study.or_else(|| study.map(str::to_owned));
                        Self::check_note_patients(tx, id, case_patient, case_study, note_ids)
                            .await?;
                        (id, if fills { LinkChange::Updated } else { LinkChange::Unchanged })
                    }
                    None => {
                        let id = uuid::Uuid::now_v7();
                        Self::check_note_patients(
                            tx,
                            id,
                            patient.map(str::to_owned),
                            study.map(str::to_owned),
                            note_ids,
                        )
                        .await?;
                        sqlx::query(
                            "INSERT INTO cases (id, patient_id, accession_number, study_instance_uid, \
                             status, created_at, updated_at) VALUES ($1, $2, $3, $4, 'awaiting_image', $5, $5)",
                        )
                        .bind(id)
                        .bind(patient)
                        .bind(accession)
                        .bind(study)
                        .bind(now)
                        .execute(&mut **tx)
                        .await?;
                        (id, LinkChange::Created)
                    }
                };
                for note in note_ids {
                    let linked = sqlx::query(
                        "INSERT INTO case_notes (case_id, note_id) VALUES ($1, $2) \
                         ON CONFLICT DO NOTHING",
                    )
                    .bind(case_id)
                    .bind(*note)
                    .execute(&mut **tx)
                    .await?;
                    if linked.rows_affected() > 0 && change == LinkChange::Unchanged {
                        change = LinkChange::Updated;
                    }
                }
                if change != LinkChange::Unchanged {
                    sqlx::query("UPDATE cases SET updated_at = $2 WHERE id = $1")
                        .bind(case_id)
                        .bind(now)
                        .execute(&mut **tx)
                        .await?;
                    sqlx::query($crate::sql::cases::REFRESH_AWAITING)
                        .bind(case_id)
                        .execute(&mut **tx)
                        .await?;
                    // Locks in one order on every path (the link lock, the
                    // case's row, then the audit chain's), so linking never
                    // deadlocks with a prediction or a queued job: an event
                    // that belongs before the link's (the note's creation)
                    // is appended here, after the case row is held.
                    if let Some(first) = first {
                        Self::append_audit_in(tx, first).await?;
                    }
                    let mut record = $crate::sql::cases::link_audit(audit, case_id, change);
                    $crate::sql::cases::name_unlinked(&mut record, &unlinked);
                    Self::append_audit_in(tx, &record).await?;
                }
                Ok(crate::CaseLink { case_id, change })
            }
        }

        #[async_trait::async_trait]
        impl crate::CaseRepository for $name {
            #[tracing::instrument(skip_all)]
            async fn upsert_case_for_study(
                &self,
                study: &fusion_schemas::StudyInstanceUid,
                accession: Option<&fusion_schemas::AccessionNumber>,
                patient: Option<&fusion_schemas::PatientId>,
                audit: &crate::AuditRecord,
            ) -> Result<crate::CaseLink, StoreError> {
                let key = crate::CaseKey {
                    accession_number: accession.cloned(),
                    study_instance_uid: Some(study.clone()),
                    patient_id: patient.cloned(),
                };
                if let Some(patient) = patient {
                    self.settle_claims_on(
                        study.as_str(),
                        accession.map(|a| a.as_str()),
                        patient.as_str(),
                        audit,
                    )
                    .await?;
                }
                let mut tx = self.pool.begin_with($begin).await?;
                let link = Self::link_in(&mut tx, &key, &[], audit, None).await?;
                tx.commit().await?;
                Ok(link)
            }

            #[tracing::instrument(skip_all, fields(note = %note.id))]
            async fn put_note_linked(
                &self,
                note: &crate::NewNote,
                note_audit: &crate::AuditRecord,
                key: &crate::CaseKey,
                link_audit: &crate::AuditRecord,
                enqueue: bool,
            ) -> Result<(crate::CaseLink, Option<crate::Enqueued>), StoreError> {
                let mut tx = self.pool.begin_with($begin).await?;
                Self::insert_note_in(&mut tx, note).await?;
                // A new note always changes its case, so `link_in` holds the
                // case's row before it appends the note's event, then the
                // link's: the audit chain is taken last, as on every path.
                let link =
                    Self::link_in(&mut tx, key, &[note.id], link_audit, Some(note_audit)).await?;
                if link.change == crate::LinkChange::Unchanged {
                    return Err(StoreError::Corrupt(
                        "a new note left its case unchanged".into(),
                    ));
                }
                let queued = if enqueue {
                    Some(Self::enqueue_in(&mut tx, link.case_id).await?)
                } else {
                    None
                };
                tx.commit().await?;
                Ok((link, queued))
            }

            #[tracing::instrument(skip_all)]
            async fn open_case(
                &self,
                key: &crate::CaseKey,
                note_ids: &[uuid::Uuid],
                audit: &crate::AuditRecord,
            ) -> Result<crate::CaseLink, StoreError> {
                let mut tx = self.pool.begin_with($begin).await?;
                let link = Self::link_in(&mut tx, key, note_ids, audit, None).await?;
                tx.commit().await?;
                Ok(link)
            }

            async fn case(&self, id: uuid::Uuid) -> Result<Option<crate::CaseRecord>, StoreError> {
                let sql = format!(
                    "SELECT {} FROM cases c WHERE c.id = $1",
                    $crate::sql::cases::CASE_COLUMNS
                );
                let row: Option<$crate::sql::cases::CaseRow> =
                    sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await?;
                let Some(row) = row else { return Ok(None) };
                let notes: Vec<uuid::Uuid> = sqlx::query_scalar(
                    "SELECT cn.note_id FROM case_notes cn JOIN notes n ON n.id = cn.note_id \
                     WHERE cn.case_id = $1 ORDER BY n.created_at, n.id",
                )
                .bind(id)
                .fetch_all(&self.pool)
                .await?;
                row.into_record(notes).map(Some)
            }

            async fn list_cases(
                &self,
                filter: &crate::CaseFilter,
            ) -> Result<Vec<crate::CaseSummary>, StoreError> {
                let mut qb = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {}{}",
                    $crate::sql::cases::SUMMARY_COLUMNS,
                    $crate::sql::cases::SUMMARY_FROM
                ));
                if let Some(s) = filter.status {
                    qb.push(" AND c.status = ").push_bind(s.as_str());
                }
                if let Some(p) = &filter.patient_id {
                    qb.push(" AND COALESCE(s.patient_id, c.patient_id) = ")
                        .push_bind(p.as_str().to_owned());
                }
                if let Some(a) = &filter.accession_number {
                    qb.push(" AND c.accession_number = ").push_bind(a.as_str().to_owned());
                }
                if let Some(from) = &filter.study_date_from {
                    qb.push(" AND s.study_date >= ").push_bind(from.clone());
                }
                if let Some(to) = &filter.study_date_to {
                    qb.push(" AND s.study_date <= ").push_bind(to.clone());
                }
                let dir = if filter.ascending { "ASC" } else { "DESC" };
                qb.push(match filter.sort {
                    crate::CaseSort::StudyDate => {
                        format!(" ORDER BY s.study_date {dir} NULLS LAST, c.updated_at DESC, c.id")
                    }
                    crate::CaseSort::Updated => format!(" ORDER BY c.updated_at {dir}, c.id {dir}"),
                    crate::CaseSort::Status => {
                        format!(" ORDER BY c.status {dir}, c.updated_at DESC, c.id")
                    }
                });
                let limit = filter
                    .limit
                    .unwrap_or(100)
                    .clamp(1, $crate::sql::cases::MAX_LIST);
                qb.push(" LIMIT ").push_bind(limit);
                qb.push(" OFFSET ").push_bind(filter.offset.unwrap_or(0).max(0));
                let rows: Vec<$crate::sql::cases::SummaryRow> =
                    qb.build_query_as().fetch_all(&self.pool).await?;
                rows.into_iter().map(crate::CaseSummary::try_from).collect()
            }

        }
    };
}
