//! Cases SQL: linking studies and notes to cases, the inference queue
//! (claimed with `FOR UPDATE SKIP LOCKED` on PostgreSQL, under the single
//! writer on SQLite), insert-only prediction versions and reviews.
//!
//! Case linking is serialised (a transaction-level advisory lock on
//! PostgreSQL, `BEGIN IMMEDIATE` on SQLite) so that many instances of one
//! study stored at once find one case instead of racing to create several.

use chrono::{DateTime, Utc};
use fusion_schemas::{AccessionNumber, PatientId, StudyInstanceUid};
use sqlx::types::Json;
use uuid::Uuid;

use crate::StoreError;
use crate::cases::{
    CaseRecord, CaseStatus, CaseSummary, Finding, JobRecord, JobState, NewPrediction, NewReview,
    PredictionBrief, PredictionRecord, PredictionStatus, ReviewRecord,
};
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

/// Columns of a prediction row, in [`PredictionRow`]'s order.
pub(crate) const PREDICTION_COLUMNS: &str = "id, case_id, version, status, packages, branches, \
    fused, abstain, abstain_reasons, timings, inputs, findings, refer, job_id, created_at";

/// Columns of a review row, in [`ReviewRow`]'s order (`r` is `reviews`).
pub(crate) const REVIEW_COLUMNS: &str =
    "r.id, r.prediction_id, r.reviewer, r.decisions, r.comment, p.case_id, r.created_at";

/// Columns of a job row, in [`JobRow`]'s order.
pub(crate) const JOB_COLUMNS: &str =
    "id, case_id, state, attempts, claimed_by, claimed_at, last_error, created_at";

/// While a case waits for its first prediction request, its status names
/// the missing modality; once queued or predicted it is left alone.
pub(crate) const REFRESH_AWAITING: &str = "UPDATE cases SET status = CASE \
    WHEN NOT EXISTS (SELECT 1 FROM instances i WHERE i.study_instance_uid = cases.study_instance_uid) \
      THEN 'awaiting_image' \
    WHEN NOT EXISTS (SELECT 1 FROM case_notes cn WHERE cn.case_id = cases.id) THEN 'awaiting_note' \
    ELSE status END \
    WHERE id = $1 AND status IN ('awaiting_image', 'awaiting_note')";

/// When a job ends without a prediction, a case with another job queued
/// stays queued; otherwise it returns to its latest prediction's status,
/// or to awaiting one.
pub(crate) const SETTLE_STATUS: &str = "UPDATE cases SET status = CASE \
    WHEN EXISTS (SELECT 1 FROM inference_jobs j WHERE j.case_id = cases.id AND j.state IN ('queued', 'running')) \
      THEN 'queued' \
    WHEN EXISTS (SELECT 1 FROM reviews r JOIN predictions p ON p.id = r.prediction_id WHERE p.case_id = cases.id) \
      THEN 'reviewed' \
    WHEN EXISTS (SELECT 1 FROM predictions p WHERE p.case_id = cases.id) \
      THEN (SELECT p.status FROM predictions p WHERE p.case_id = cases.id ORDER BY p.version DESC LIMIT 1) \
    WHEN NOT EXISTS (SELECT 1 FROM instances i WHERE i.study_instance_uid = cases.study_instance_uid) \
      THEN 'awaiting_image' \
    ELSE 'awaiting_note' END, updated_at = $2 \
    WHERE id = $1";

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
    p_findings: Option<Json<Vec<Finding>>>,
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
            (Some(id), Some(version), Some(created_at)) => Some(PredictionBrief {
                id,
                version,
                findings: r.p_findings.map(|f| f.0).unwrap_or_default(),
                abstain: r.p_abstain.unwrap_or(false),
                refer: r.p_refer.unwrap_or(false),
                created_at,
            }),
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

#[derive(sqlx::FromRow)]
pub(crate) struct PredictionRow {
    id: Uuid,
    case_id: Uuid,
    version: i32,
    status: String,
    packages: Json<serde_json::Value>,
    branches: Json<serde_json::Value>,
    fused: Json<serde_json::Value>,
    abstain: bool,
    abstain_reasons: Json<Vec<String>>,
    timings: Json<serde_json::Value>,
    inputs: Json<serde_json::Value>,
    findings: Json<Vec<Finding>>,
    refer: bool,
    job_id: Option<Uuid>,
    created_at: DateTime<Utc>,
}

impl TryFrom<PredictionRow> for PredictionRecord {
    type Error = StoreError;

    fn try_from(r: PredictionRow) -> Result<Self, StoreError> {
        Ok(PredictionRecord {
            prediction: NewPrediction {
                id: r.id,
                case_id: r.case_id,
                status: PredictionStatus::from_db(&r.status)?,
                packages: r.packages.0,
                branches: r.branches.0,
                fused: r.fused.0,
                abstain: r.abstain,
                abstain_reasons: r.abstain_reasons.0,
                timings: r.timings.0,
                inputs: r.inputs.0,
                findings: r.findings.0,
                refer: r.refer,
                job_id: r.job_id,
                deliveries: Vec::new(),
            },
            version: r.version,
            created_at: r.created_at,
        })
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct ReviewRow {
    id: Uuid,
    prediction_id: Uuid,
    reviewer: String,
    decisions: Json<serde_json::Value>,
    comment: Option<String>,
    case_id: Uuid,
    created_at: DateTime<Utc>,
}

impl From<ReviewRow> for ReviewRecord {
    fn from(r: ReviewRow) -> Self {
        ReviewRecord {
            review: NewReview {
                id: r.id,
                prediction_id: r.prediction_id,
                reviewer: r.reviewer,
                decisions: r.decisions.0,
                comment: r.comment,
                deliveries: Vec::new(),
            },
            case_id: r.case_id,
            created_at: r.created_at,
        }
    }
}

#[derive(sqlx::FromRow)]
pub(crate) struct JobRow {
    id: Uuid,
    case_id: Uuid,
    state: String,
    attempts: i32,
    claimed_by: Option<String>,
    claimed_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
    created_at: DateTime<Utc>,
}

impl TryFrom<JobRow> for JobRecord {
    type Error = StoreError;

    fn try_from(r: JobRow) -> Result<Self, StoreError> {
        Ok(JobRecord {
            id: r.id,
            case_id: r.case_id,
            state: JobState::from_db(&r.state)?,
            attempts: r.attempts,
            claimed_by: r.claimed_by,
            claimed_at: r.claimed_at,
            last_error: r.last_error,
            created_at: r.created_at,
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

macro_rules! impl_cases {
    (
        $name:ident, $db:ty,
        begin_write = $begin:literal,
        link_lock = $link_lock:literal,
        lock_case = $lock_case:literal,
        skip_locked = $skip_locked:literal $(,)?
    ) => {
        impl $name {
            /// Finds or creates the case for `key`, completes its
            /// identifiers and links `note_ids`, inside `tx`.
            async fn link_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                key: &crate::CaseKey,
                note_ids: &[uuid::Uuid],
                audit: &crate::AuditRecord,
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
                        let fills = (has_patient.is_none() && patient.is_some())
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
                        (id, if fills { LinkChange::Updated } else { LinkChange::Unchanged })
                    }
                    None => {
                        let id = uuid::Uuid::now_v7();
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
                    let record = $crate::sql::cases::link_audit(audit, case_id, change);
                    Self::append_audit_in(tx, &record).await?;
                }
                Ok(crate::CaseLink { case_id, change })
            }

            /// Ends a job that produced no prediction: `done` or, after a
            /// failure, back to `queued` (or `failed` after the last
            /// attempt, or when another job of the case is queued already).
            async fn end_job_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                job_id: uuid::Uuid,
                error: Option<&str>,
            ) -> Result<Option<(uuid::Uuid, crate::JobState)>, StoreError> {
                let now = crate::audit::audit_time(chrono::Utc::now());
                let row: Option<(uuid::Uuid, i32)> = sqlx::query_as(
                    "SELECT case_id, attempts FROM inference_jobs WHERE id = $1 AND state = 'running'",
                )
                .bind(job_id)
                .fetch_optional(&mut **tx)
                .await?;
                let Some((case_id, attempts)) = row else {
                    return Ok(None);
                };
                sqlx::query($lock_case).bind(case_id).execute(&mut **tx).await?;
                let state = match error {
                    None => crate::JobState::Done,
                    Some(_) => {
                        let other_queued: Option<i32> = sqlx::query_scalar(
                            "SELECT 1 FROM inference_jobs WHERE case_id = $1 AND state = 'queued' LIMIT 1",
                        )
                        .bind(case_id)
                        .fetch_optional(&mut **tx)
                        .await?;
                        if attempts >= crate::MAX_JOB_ATTEMPTS || other_queued.is_some() {
                            crate::JobState::Failed
                        } else {
                            crate::JobState::Queued
                        }
                    }
                };
                let finished = matches!(state, crate::JobState::Done | crate::JobState::Failed)
                    .then_some(now);
                sqlx::query(
                    "UPDATE inference_jobs SET state = $2, last_error = COALESCE($3, last_error), \
                     finished_at = $4 WHERE id = $1",
                )
                .bind(job_id)
                .bind(state.as_str())
                .bind(error)
                .bind(finished)
                .execute(&mut **tx)
                .await?;
                Ok(Some((case_id, state)))
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
                let mut tx = self.pool.begin_with($begin).await?;
                let link = Self::link_in(&mut tx, &key, &[], audit).await?;
                tx.commit().await?;
                Ok(link)
            }

            #[tracing::instrument(skip_all, fields(note = %note_id))]
            async fn link_note(
                &self,
                note_id: uuid::Uuid,
                key: &crate::CaseKey,
                audit: &crate::AuditRecord,
            ) -> Result<crate::CaseLink, StoreError> {
                let mut tx = self.pool.begin_with($begin).await?;
                let link = Self::link_in(&mut tx, key, &[note_id], audit).await?;
                tx.commit().await?;
                Ok(link)
            }

            #[tracing::instrument(skip_all)]
            async fn open_case(
                &self,
                key: &crate::CaseKey,
                note_ids: &[uuid::Uuid],
                audit: &crate::AuditRecord,
            ) -> Result<crate::CaseLink, StoreError> {
                let mut tx = self.pool.begin_with($begin).await?;
                let link = Self::link_in(&mut tx, key, note_ids, audit).await?;
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

            #[tracing::instrument(skip_all, fields(case = %case_id))]
            async fn enqueue(
                &self,
                case_id: uuid::Uuid,
                audit: Option<&crate::AuditRecord>,
            ) -> Result<crate::Enqueued, StoreError> {
                let now = crate::audit::audit_time(chrono::Utc::now());
                let mut tx = self.pool.begin_with($begin).await?;
                sqlx::query($lock_case).bind(case_id).execute(&mut *tx).await?;
                let id = uuid::Uuid::now_v7();
                let inserted = sqlx::query(
                    "INSERT INTO inference_jobs (id, case_id, state, attempts, created_at) \
                     VALUES ($1, $2, 'queued', 0, $3) \
                     ON CONFLICT (case_id) WHERE state = 'queued' DO NOTHING",
                )
                .bind(id)
                .bind(case_id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                let created = inserted.rows_affected() > 0;
                let job_id = if created {
                    id
                } else {
                    sqlx::query_scalar(
                        "SELECT id FROM inference_jobs WHERE case_id = $1 AND state = 'queued'",
                    )
                    .bind(case_id)
                    .fetch_one(&mut *tx)
                    .await?
                };
                sqlx::query("UPDATE cases SET status = 'queued', updated_at = $2 WHERE id = $1")
                    .bind(case_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                if let Some(audit) = audit {
                    Self::append_audit_in(&mut tx, audit).await?;
                }
                tx.commit().await?;
                Ok(crate::Enqueued { job_id, created })
            }

            async fn claim_job(
                &self,
                worker_id: &str,
            ) -> Result<Option<crate::JobRecord>, StoreError> {
                let now = crate::audit::audit_time(chrono::Utc::now());
                let mut tx = self.pool.begin_with($begin).await?;
                // The oldest queued job of a case that no worker is busy
                // with: the versions of a case come out in order.
                let sql = format!(
                    "UPDATE inference_jobs SET state = 'running', attempts = attempts + 1, \
                     claimed_by = $1, claimed_at = $2 \
                     WHERE state = 'queued' AND id = (SELECT j.id FROM inference_jobs j \
                       WHERE j.state = 'queued' AND NOT EXISTS (SELECT 1 FROM inference_jobs r \
                         WHERE r.case_id = j.case_id AND r.state = 'running') \
                       ORDER BY j.created_at, j.id LIMIT 1{}) \
                     RETURNING {}",
                    $skip_locked,
                    $crate::sql::cases::JOB_COLUMNS
                );
                let row: Option<$crate::sql::cases::JobRow> =
                    sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .bind(worker_id)
                        .bind(now)
                        .fetch_optional(&mut *tx)
                        .await?;
                tx.commit().await?;
                row.map(crate::JobRecord::try_from).transpose()
            }

            async fn job(&self, id: uuid::Uuid) -> Result<Option<crate::JobRecord>, StoreError> {
                let sql = format!(
                    "SELECT {} FROM inference_jobs WHERE id = $1",
                    $crate::sql::cases::JOB_COLUMNS
                );
                let row: Option<$crate::sql::cases::JobRow> =
                    sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await?;
                row.map(crate::JobRecord::try_from).transpose()
            }

            async fn jobs_of_case(
                &self,
                case_id: uuid::Uuid,
            ) -> Result<Vec<crate::JobRecord>, StoreError> {
                let sql = format!(
                    "SELECT {} FROM inference_jobs WHERE case_id = $1 ORDER BY created_at, id",
                    $crate::sql::cases::JOB_COLUMNS
                );
                let rows: Vec<$crate::sql::cases::JobRow> =
                    sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .bind(case_id)
                        .fetch_all(&self.pool)
                        .await?;
                rows.into_iter().map(crate::JobRecord::try_from).collect()
            }

            #[tracing::instrument(skip_all, fields(job = %job_id))]
            async fn complete_job(
                &self,
                job_id: uuid::Uuid,
                case_status: Option<crate::CaseStatus>,
                audit: Option<&crate::AuditRecord>,
            ) -> Result<bool, StoreError> {
                let now = crate::audit::audit_time(chrono::Utc::now());
                let mut tx = self.pool.begin_with($begin).await?;
                let Some((case_id, _)) = Self::end_job_in(&mut tx, job_id, None).await? else {
                    return Ok(false);
                };
                if let Some(status) = case_status {
                    sqlx::query(
                        "UPDATE cases SET status = CASE WHEN EXISTS (SELECT 1 FROM inference_jobs j \
                         WHERE j.case_id = cases.id AND j.state = 'queued') THEN 'queued' ELSE $2 END, \
                         updated_at = $3 WHERE id = $1",
                    )
                    .bind(case_id)
                    .bind(status.as_str())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                if let Some(audit) = audit {
                    Self::append_audit_in(&mut tx, audit).await?;
                }
                tx.commit().await?;
                Ok(true)
            }

            #[tracing::instrument(skip_all, fields(job = %job_id))]
            async fn fail_job(
                &self,
                job_id: uuid::Uuid,
                error: &str,
            ) -> Result<Option<crate::JobState>, StoreError> {
                let mut tx = self.pool.begin_with($begin).await?;
                let ended = Self::end_job_in(&mut tx, job_id, Some(error)).await?;
                if let Some((case_id, _)) = ended {
                    sqlx::query($crate::sql::cases::SETTLE_STATUS)
                        .bind(case_id)
                        .bind(chrono::Utc::now())
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
                Ok(ended.map(|(_, state)| state))
            }

            #[tracing::instrument(skip(self))]
            async fn requeue_stale(&self, older_than: chrono::Duration) -> Result<u64, StoreError> {
                let cutoff = chrono::Utc::now() - older_than;
                let stale: Vec<uuid::Uuid> = sqlx::query_scalar(
                    "SELECT id FROM inference_jobs WHERE state = 'running' AND claimed_at < $1 \
                     ORDER BY claimed_at",
                )
                .bind(cutoff)
                .fetch_all(&self.pool)
                .await?;
                let mut requeued = 0;
                for id in stale {
                    let mut tx = self.pool.begin_with($begin).await?;
                    // Claimed again or finished since the scan: leave it.
                    let still: Option<i32> = sqlx::query_scalar(
                        "SELECT 1 FROM inference_jobs WHERE id = $1 AND state = 'running' AND claimed_at < $2",
                    )
                    .bind(id)
                    .bind(cutoff)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if still.is_some()
                        && let Some((case_id, _)) = Self::end_job_in(
                            &mut tx,
                            id,
                            Some("the worker did not finish in time (stale claim)"),
                        )
                        .await?
                    {
                        sqlx::query($crate::sql::cases::SETTLE_STATUS)
                            .bind(case_id)
                            .bind(chrono::Utc::now())
                            .execute(&mut *tx)
                            .await?;
                        requeued += 1;
                    }
                    tx.commit().await?;
                }
                Ok(requeued)
            }

            #[tracing::instrument(skip_all, fields(case = %new.case_id))]
            async fn insert_prediction(
                &self,
                new: &crate::NewPrediction,
                audit: &crate::AuditRecord,
            ) -> Result<crate::PredictionRecord, StoreError> {
                let now = crate::audit::audit_time(chrono::Utc::now());
                let mut tx = self.pool.begin_with($begin).await?;
                sqlx::query($lock_case).bind(new.case_id).execute(&mut *tx).await?;
                let version: i32 = sqlx::query_scalar(
                    "SELECT COALESCE(MAX(version), 0) + 1 FROM predictions WHERE case_id = $1",
                )
                .bind(new.case_id)
                .fetch_one(&mut *tx)
                .await?;
                let reason = (!new.abstain_reasons.is_empty()).then(|| new.abstain_reasons.join("; "));
                sqlx::query(
                    "INSERT INTO predictions (id, case_id, version, status, packages, branches, fused, \
                     abstain, reason, timings, abstain_reasons, inputs, findings, refer, job_id, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
                )
                .bind(new.id)
                .bind(new.case_id)
                .bind(version)
                .bind(new.status.as_str())
                .bind(sqlx::types::Json(&new.packages))
                .bind(sqlx::types::Json(&new.branches))
                .bind(sqlx::types::Json(&new.fused))
                .bind(new.abstain)
                .bind(reason)
                .bind(sqlx::types::Json(&new.timings))
                .bind(sqlx::types::Json(&new.abstain_reasons))
                .bind(sqlx::types::Json(&new.inputs))
                .bind(sqlx::types::Json(&new.findings))
                .bind(new.refer)
                .bind(new.job_id)
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(|e| $crate::sql::unique_violation(e, "prediction id"))?;
                if let Some(job) = new.job_id {
                    Self::end_job_in(&mut tx, job, None).await?;
                }
                Self::queue_deliveries_in(&mut tx, new.id, None, new.case_id, &new.deliveries, now)
                    .await?;
                sqlx::query(
                    "UPDATE cases SET status = CASE WHEN EXISTS (SELECT 1 FROM inference_jobs j \
                     WHERE j.case_id = cases.id AND j.state = 'queued') THEN 'queued' ELSE $2 END, \
                     updated_at = $3 WHERE id = $1",
                )
                .bind(new.case_id)
                .bind(new.case_status().as_str())
                .bind(now)
                .execute(&mut *tx)
                .await?;
                Self::append_audit_in(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(crate::PredictionRecord {
                    prediction: crate::NewPrediction {
                        deliveries: Vec::new(),
                        ..new.clone()
                    },
                    version,
                    created_at: now,
                })
            }

            async fn predictions_of_case(
                &self,
                case_id: uuid::Uuid,
            ) -> Result<Vec<crate::PredictionRecord>, StoreError> {
                let sql = format!(
                    "SELECT {} FROM predictions WHERE case_id = $1 ORDER BY version DESC",
                    $crate::sql::cases::PREDICTION_COLUMNS
                );
                let rows: Vec<$crate::sql::cases::PredictionRow> =
                    sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .bind(case_id)
                        .fetch_all(&self.pool)
                        .await?;
                rows.into_iter().map(crate::PredictionRecord::try_from).collect()
            }

            async fn prediction(
                &self,
                id: uuid::Uuid,
            ) -> Result<Option<crate::PredictionRecord>, StoreError> {
                let sql = format!(
                    "SELECT {} FROM predictions WHERE id = $1",
                    $crate::sql::cases::PREDICTION_COLUMNS
                );
                let row: Option<$crate::sql::cases::PredictionRow> =
                    sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await?;
                row.map(crate::PredictionRecord::try_from).transpose()
            }

            #[tracing::instrument(skip_all, fields(prediction = %review.prediction_id))]
            async fn put_review(
                &self,
                review: &crate::NewReview,
                audit: &crate::AuditRecord,
            ) -> Result<Option<crate::ReviewRecord>, StoreError> {
                let now = crate::audit::audit_time(chrono::Utc::now());
                let mut tx = self.pool.begin_with($begin).await?;
                let case_id: Option<uuid::Uuid> =
                    sqlx::query_scalar("SELECT case_id FROM predictions WHERE id = $1")
                        .bind(review.prediction_id)
                        .fetch_optional(&mut *tx)
                        .await?;
                let Some(case_id) = case_id else {
                    return Ok(None);
                };
                sqlx::query($lock_case).bind(case_id).execute(&mut *tx).await?;
                sqlx::query(
                    "INSERT INTO reviews (id, prediction_id, reviewer, decisions, comment, created_at) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(review.id)
                .bind(review.prediction_id)
                .bind(review.reviewer.as_str())
                .bind(sqlx::types::Json(&review.decisions))
                .bind(review.comment.as_deref())
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(|e| $crate::sql::unique_violation(e, "review id"))?;
                Self::queue_deliveries_in(
                    &mut tx,
                    review.prediction_id,
                    Some(review.id),
                    case_id,
                    &review.deliveries,
                    now,
                )
                .await?;
                sqlx::query("UPDATE cases SET status = 'reviewed', updated_at = $2 WHERE id = $1")
                    .bind(case_id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                Self::append_audit_in(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(Some(crate::ReviewRecord {
                    review: crate::NewReview {
                        deliveries: Vec::new(),
                        ..review.clone()
                    },
                    case_id,
                    created_at: now,
                }))
            }

            async fn reviews_of_prediction(
                &self,
                prediction_id: uuid::Uuid,
            ) -> Result<Vec<crate::ReviewRecord>, StoreError> {
                let sql = format!(
                    "SELECT {} FROM reviews r JOIN predictions p ON p.id = r.prediction_id \
                     WHERE r.prediction_id = $1 ORDER BY r.created_at, r.id",
                    $crate::sql::cases::REVIEW_COLUMNS
                );
                let rows: Vec<$crate::sql::cases::ReviewRow> =
                    sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .bind(prediction_id)
                        .fetch_all(&self.pool)
                        .await?;
                Ok(rows.into_iter().map(crate::ReviewRecord::from).collect())
            }
        }
    };
}
