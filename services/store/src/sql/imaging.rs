//! Imaging index SQL: studies, series, instances and recorded conflicts.

use chrono::{DateTime, Utc};
use fusion_schemas::{
    AccessionNumber, PatientId, SeriesInstanceUid, SopInstanceUid, StudyInstanceUid,
    TransferSyntaxUid,
};
use sqlx::types::Json;

use crate::records::{DecodeStatus, InstanceRecord, StudyRecord};
use crate::{BlobKey, StoreError};

pub(crate) fn corrupt(what: &str) -> impl Fn(String) -> StoreError + '_ {
    move |e| StoreError::Corrupt(format!("{what}: {e}"))
}

pub(crate) fn id_corrupt(what: &'static str) -> impl Fn(fusion_schemas::IdError) -> StoreError {
    move |e| StoreError::Corrupt(format!("{what}: {e}"))
}

/// Columns of an instance row, in the order [`instance_from_parts`] takes.
pub(crate) const INSTANCE_COLUMNS: &str = "sop_instance_uid, series_instance_uid, study_instance_uid, \
     sop_class_uid, transfer_syntax_uid, rows, columns, frames, blob_key, size_bytes, \
     decode_status, decode_reason, attributes, received_at, submitted_by";

pub(crate) type InstanceTuple = (
    String,
    String,
    String,
    String,
    String,
    Option<i32>,
    Option<i32>,
    Option<i32>,
    String,
    i64,
    String,
    Option<String>,
    Json<serde_json::Value>,
    DateTime<Utc>,
    Option<String>,
);

pub(crate) fn instance_from_parts(t: InstanceTuple) -> Result<InstanceRecord, StoreError> {
    Ok(InstanceRecord {
        sop_instance_uid: SopInstanceUid::parse(&t.0).map_err(id_corrupt("sop_instance_uid"))?,
        series_instance_uid: SeriesInstanceUid::parse(&t.1)
            .map_err(id_corrupt("series_instance_uid"))?,
        study_instance_uid: StudyInstanceUid::parse(&t.2)
            .map_err(id_corrupt("study_instance_uid"))?,
        sop_class_uid: t.3,
        transfer_syntax_uid: TransferSyntaxUid::parse(&t.4)
            .map_err(id_corrupt("transfer_syntax_uid"))?,
        rows: t.5,
        columns: t.6,
        frames: t.7,
        blob_key: BlobKey::parse(&t.8).map_err(corrupt("blob_key"))?,
        size_bytes: t.9,
        decode_status: DecodeStatus::parse(&t.10)?,
        decode_reason: t.11,
        attributes: t.12.0,
        received_at: t.13,
        submitted_by: t.14,
    })
}

pub(crate) type StudyTuple = (
    String,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Option<String>,
    Json<Vec<String>>,
    i64,
    i64,
    Json<serde_json::Value>,
);

/// The columns of a study result, in [`StudyTuple`] order.
pub(crate) const STUDY_COLUMNS: &str = "s.study_instance_uid, s.patient_id, s.patient_name, \
     s.accession_number, s.study_date, s.description, s.modalities, \
     (SELECT COUNT(*) FROM instances i WHERE i.study_instance_uid = s.study_instance_uid), \
     (SELECT COUNT(*) FROM series se WHERE se.study_instance_uid = s.study_instance_uid), \
     COALESCE((SELECT i.attributes FROM instances i WHERE i.study_instance_uid = s.study_instance_uid \
       ORDER BY i.received_at, i.sop_instance_uid LIMIT 1), '{}')";

pub(crate) type SeriesTuple = (
    String,
    String,
    Option<String>,
    Option<i32>,
    i64,
    Json<serde_json::Value>,
);

/// The columns of a series result, in [`SeriesTuple`] order.
pub(crate) const SERIES_COLUMNS: &str = "se.series_instance_uid, se.study_instance_uid, se.modality, \
     se.series_number, \
     (SELECT COUNT(*) FROM instances i WHERE i.series_instance_uid = se.series_instance_uid), \
     COALESCE((SELECT i.attributes FROM instances i WHERE i.series_instance_uid = se.series_instance_uid \
       ORDER BY i.received_at, i.sop_instance_uid LIMIT 1), '{}')";

pub(crate) fn series_from_parts(t: SeriesTuple) -> Result<crate::SeriesRecord, StoreError> {
    Ok(crate::SeriesRecord {
        series_instance_uid: SeriesInstanceUid::parse(&t.0)
            .map_err(id_corrupt("series_instance_uid"))?,
        study_instance_uid: StudyInstanceUid::parse(&t.1)
            .map_err(id_corrupt("study_instance_uid"))?,
        modality: t.2,
        series_number: t.3,
        instance_count: t.4,
        attributes: t.5.0,
    })
}

pub(crate) use super::imaging_query::{
    OWN_SERIES_COLUMNS, OWN_STUDY_COLUMNS, own_view, own_view_matches, push_in, push_match,
};

pub(crate) fn study_from_parts(t: StudyTuple) -> Result<StudyRecord, StoreError> {
    Ok(StudyRecord {
        study_instance_uid: StudyInstanceUid::parse(&t.0)
            .map_err(id_corrupt("study_instance_uid"))?,
        patient_id: t
            .1
            .as_deref()
            .map(PatientId::parse)
            .transpose()
            .map_err(id_corrupt("patient_id"))?,
        patient_name: t.2,
        accession_number: t
            .3
            .as_deref()
            .map(AccessionNumber::parse)
            .transpose()
            .map_err(id_corrupt("accession_number"))?,
        study_date: t.4,
        description: t.5,
        modalities: t.6.0,
        instance_count: t.7,
        series_count: t.8,
        attributes: t.9.0,
    })
}

macro_rules! impl_imaging {
    (
        $name:ident, $db:ty,
        begin_write = $begin:literal,
        lock_study = $lock_study:literal,
        refresh_modalities = $refresh_modalities:literal,
        ilike = $ilike:literal $(,)?
    ) => {
        impl $name {
            /// Undoes every row written since the `put_instance` savepoint
            /// (a refused or duplicate instance's) and releases it.
            async fn undo_instance_in(
                tx: &mut sqlx::Transaction<'_, $db>,
            ) -> Result<(), StoreError> {
                sqlx::query("ROLLBACK TO SAVEPOINT put_instance")
                    .execute(&mut **tx)
                    .await?;
                sqlx::query("RELEASE SAVEPOINT put_instance")
                    .execute(&mut **tx)
                    .await?;
                Ok(())
            }

            /// Undoes a refused instance's rows back to its savepoint and
            /// records the refusal (a minor failure saying `why`).
            async fn refuse_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                audit: &crate::AuditRecord,
                why: &str,
            ) -> Result<(), StoreError> {
                Self::undo_instance_in(tx).await?;
                let mut audit = audit.clone();
                audit.outcome = crate::AuditOutcome::MinorFailure;
                audit.outcome_desc = Some(why.to_owned());
                Self::append_audit_in(tx, &audit).await?;
                Ok(())
            }

            /// One instance's index rows, conflict record and audit event,
            /// inside `tx` (see [`crate::ImagingRepository::put_instance`]).
            async fn put_instance_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                new: &crate::NewInstance,
                audit: &crate::AuditRecord,
            ) -> Result<crate::PutOutcome, StoreError> {
                let now = chrono::Utc::now();
                // Nothing of a refused or duplicate instance may stay: its
                // study and series rows (a new study, or values filled into
                // an old one) are undone back to here when its SOP Instance
                // UID turns out to be stored already (issue #14, finding 6).
                sqlx::query("SAVEPOINT put_instance")
                    .execute(&mut **tx)
                    .await?;
                sqlx::query(
                    "INSERT INTO studies (study_instance_uid, patient_id, patient_name, \
                     accession_number, study_date, description, created_at, updated_at, \
                     study_time, study_id, referring_physician) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9, $10) \
                     ON CONFLICT (study_instance_uid) DO UPDATE SET \
                     study_time = COALESCE(studies.study_time, excluded.study_time), \
                     study_id = COALESCE(studies.study_id, excluded.study_id), \
                     referring_physician = COALESCE(studies.referring_physician, excluded.referring_physician), \
                     patient_id = COALESCE(studies.patient_id, excluded.patient_id), \
                     patient_name = COALESCE(studies.patient_name, excluded.patient_name), \
                     accession_number = COALESCE(studies.accession_number, excluded.accession_number), \
                     study_date = COALESCE(studies.study_date, excluded.study_date), \
                     description = COALESCE(studies.description, excluded.description)",
                )
                .bind(new.instance.study_instance_uid.as_str())
                .bind(new.instance.patient_id.as_ref().map(|p| p.as_str()))
                .bind(new.instance.patient_name.as_deref())
                .bind(new.instance.accession_number.as_ref().map(|a| a.as_str()))
                .bind(new.instance.study_date.as_deref())
                .bind(new.instance.study_description.as_deref())
                .bind(now)
                .bind(new.instance.study_time.as_deref())
                .bind(new.instance.study_id.as_deref())
                .bind(new.instance.referring_physician.as_deref())
                .execute(&mut **tx)
                .await?;
                // Serialise writers of one study so the modalities refresh
                // below sees every committed series.
                sqlx::query($lock_study)
                    .bind(new.instance.study_instance_uid.as_str())
                    .execute(&mut **tx)
                    .await?;
                // A submitter adds only to a study of its own (or a new one):
                // checked under the study's lock, so two senders cannot both
                // pass for one new study. The service's own SRs
                // ([`crate::SR_SUBMITTER`]) belong to no sender: they join
                // any study, and no sender's check counts them.
                if let Some(me) = new.submitted_by.as_deref()
                    && me != crate::SR_SUBMITTER
                {
                    let foreign: Option<(i32,)> = sqlx::query_as(
                        "SELECT 1 FROM instances WHERE study_instance_uid = $1 \
                         AND (submitted_by IS NULL OR submitted_by <> $2) \
                         AND COALESCE(submitted_by, '') <> $3 LIMIT 1",
                    )
                    .bind(new.instance.study_instance_uid.as_str())
                    .bind(me)
                    .bind(crate::SR_SUBMITTER)
                    .fetch_optional(&mut **tx)
                    .await?;
                    if foreign.is_some() {
                        let why = "the study holds another sender's instances; refused";
                        Self::refuse_in(tx, audit, why).await?;
                        return Ok(crate::PutOutcome::ForeignStudy);
                    }
                }
                // A study is one patient's: an instance naming another
                // Patient ID than the study was stored with is refused
                // (re-attack: it joined the study, showed in that patient's
                // case and was used for the prediction).
                // An instance naming no Patient ID does not join a study
                // stored with one either (final re-attack: it was used for
                // that patient's prediction, and our SR took its name); the
                // service's own SRs are exempt.
                if new.submitted_by.as_deref() != Some(crate::SR_SUBMITTER) {
                    let named = new.instance.patient_id.as_ref().map(|p| p.as_str());
                    let stored: Option<Option<String>> = sqlx::query_scalar(
                        "SELECT patient_id FROM studies WHERE study_instance_uid = $1",
                    )
                    .bind(new.instance.study_instance_uid.as_str())
                    .fetch_optional(&mut **tx)
                    .await?;
                    if stored.flatten().is_some_and(|s| Some(s.as_str()) != named) {
                        let why = "the study is stored with another Patient ID; refused";
                        Self::refuse_in(tx, audit, why).await?;
                        return Ok(crate::PutOutcome::PatientMismatch);
                    }
                }
                sqlx::query(
                    "INSERT INTO series (series_instance_uid, study_instance_uid, modality, \
                     body_part, series_number, created_at, description) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7) \
                     ON CONFLICT (series_instance_uid) DO NOTHING",
                )
                .bind(new.instance.series_instance_uid.as_str())
                .bind(new.instance.study_instance_uid.as_str())
                .bind(new.instance.modality.as_deref())
                .bind(new.instance.body_part.as_deref())
                .bind(new.instance.series_number)
                .bind(now)
                .bind(new.instance.series_description.as_deref())
                .execute(&mut **tx)
                .await?;
                let inserted: Option<(String,)> = sqlx::query_as(
                    "INSERT INTO instances (sop_instance_uid, series_instance_uid, \
                     study_instance_uid, sop_class_uid, transfer_syntax_uid, instance_number, \
                     rows, columns, frames, blob_key, size_bytes, decode_status, decode_reason, \
                     attributes, received_at, submitted_by) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16) \
                     ON CONFLICT (sop_instance_uid) DO NOTHING RETURNING sop_instance_uid",
                )
                .bind(new.instance.sop_instance_uid.as_str())
                .bind(new.instance.series_instance_uid.as_str())
                .bind(new.instance.study_instance_uid.as_str())
                .bind(new.instance.sop_class_uid.as_str())
                .bind(new.instance.transfer_syntax_uid.as_str())
                .bind(new.instance.instance_number)
                .bind(new.instance.rows)
                .bind(new.instance.columns)
                .bind(new.instance.frames)
                .bind(new.blob_key.as_str())
                .bind(new.size_bytes)
                .bind(new.decode_status.as_str())
                .bind(new.decode_reason.as_deref())
                .bind(sqlx::types::Json(&new.instance.attributes))
                .bind(now)
                .bind(new.submitted_by.as_deref())
                .fetch_optional(&mut **tx)
                .await?;
                let outcome = if inserted.is_some() {
                    sqlx::query($refresh_modalities)
                        .bind(new.instance.study_instance_uid.as_str())
                        .bind(now)
                        .execute(&mut **tx)
                        .await?;
                    sqlx::query("RELEASE SAVEPOINT put_instance")
                        .execute(&mut **tx)
                        .await?;
                    crate::PutOutcome::Stored
                } else {
                    Self::undo_instance_in(tx).await?;
                    let (stored,): (String,) = sqlx::query_as(
                        "SELECT blob_key FROM instances WHERE sop_instance_uid = $1",
                    )
                    .bind(new.instance.sop_instance_uid.as_str())
                    .fetch_one(&mut **tx)
                    .await?;
                    let stored = crate::BlobKey::parse(&stored).map_err($crate::sql::imaging::corrupt("blob_key"))?;
                    if stored == new.blob_key {
                        crate::PutOutcome::Duplicate
                    } else {
                        sqlx::query(
                            "INSERT INTO instance_conflicts (sop_instance_uid, stored_blob_key, \
                             rejected_blob_key, rejected_size_bytes, received_at) \
                             VALUES ($1, $2, $3, $4, $5)",
                        )
                        .bind(new.instance.sop_instance_uid.as_str())
                        .bind(stored.as_str())
                        .bind(new.blob_key.as_str())
                        .bind(new.size_bytes)
                        .bind(now)
                        .execute(&mut **tx)
                        .await?;
                        crate::PutOutcome::Conflict { stored }
                    }
                };
                let mut audit = audit.clone();
                if matches!(outcome, crate::PutOutcome::Conflict { .. }) {
                    audit.outcome = crate::AuditOutcome::MinorFailure;
                    audit.outcome_desc = Some(
                        "SOP Instance UID already stored with different bytes; refused".to_owned(),
                    );
                }
                Self::append_audit_in(tx, &audit).await?;
                Ok(outcome)
            }
        }

        #[async_trait::async_trait]
        impl crate::ImagingRepository for $name {
            #[tracing::instrument(skip_all)]
            async fn put_instance(
                &self,
                new: &crate::NewInstance,
                audit: &crate::AuditRecord,
            ) -> Result<crate::PutOutcome, StoreError> {
                let mut tx = self.pool.begin_with($begin).await?;
                let outcome = Self::put_instance_in(&mut tx, new, audit).await?;
                tx.commit().await?;
                Ok(outcome)
            }

            #[tracing::instrument(skip_all, fields(instances = batch.len()))]
            async fn put_instances(
                &self,
                batch: &[(&crate::NewInstance, &crate::AuditRecord)],
            ) -> Result<Vec<crate::PutOutcome>, StoreError> {
                let mut tx = self.pool.begin_with($begin).await?;
                let mut outcomes = Vec::with_capacity(batch.len());
                for (new, audit) in batch {
                    outcomes.push(Self::put_instance_in(&mut tx, new, audit).await?);
                }
                tx.commit().await?;
                Ok(outcomes)
            }

            async fn instance(
                &self,
                uid: &fusion_schemas::SopInstanceUid,
            ) -> Result<Option<crate::InstanceRecord>, StoreError> {
                let sql = format!(
                    "SELECT {} FROM instances WHERE sop_instance_uid = $1",
                    $crate::sql::imaging::INSTANCE_COLUMNS
                );
                let row: Option<$crate::sql::imaging::InstanceTuple> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(uid.as_str())
                    .fetch_optional(&self.pool)
                    .await?;
                row.map($crate::sql::imaging::instance_from_parts).transpose()
            }

            async fn study(
                &self,
                uid: &fusion_schemas::StudyInstanceUid,
            ) -> Result<Option<crate::StudyRecord>, StoreError> {
                let sql = format!(
                    "SELECT {} FROM studies s WHERE s.study_instance_uid = $1",
                    $crate::sql::imaging::STUDY_COLUMNS
                );
                let row: Option<$crate::sql::imaging::StudyTuple> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                .bind(uid.as_str())
                .fetch_optional(&self.pool)
                .await?;
                row.map($crate::sql::imaging::study_from_parts).transpose()
            }

            async fn referenced_blobs(
                &self,
                keys: &[crate::BlobKey],
            ) -> Result<std::collections::HashSet<crate::BlobKey>, StoreError> {
                let mut found = std::collections::HashSet::new();
                for chunk in keys.chunks(500) {
                    let mut qb = sqlx::QueryBuilder::<$db>::new(
                        "SELECT blob_key FROM instances WHERE blob_key IN (",
                    );
                    let push_list = |qb: &mut sqlx::QueryBuilder<$db>| {
                        let mut list = qb.separated(", ");
                        for k in chunk {
                            list.push_bind(k.as_str().to_owned());
                        }
                        list.push_unseparated(")");
                    };
                    push_list(&mut qb);
                    qb.push(" UNION SELECT stored_blob_key FROM instance_conflicts WHERE stored_blob_key IN (");
                    push_list(&mut qb);
                    qb.push(" UNION SELECT rejected_blob_key FROM instance_conflicts WHERE rejected_blob_key IN (");
                    push_list(&mut qb);
                    let rows: Vec<(String,)> = qb.build_query_as().fetch_all(&self.pool).await?;
                    for (k,) in rows {
                        found.insert(
                            crate::BlobKey::parse(&k).map_err($crate::sql::imaging::corrupt("blob_key"))?,
                        );
                    }
                }
                Ok(found)
            }

            async fn studies_without_case(
                &self,
                stored_before: chrono::DateTime<chrono::Utc>,
            ) -> Result<Vec<crate::StudyRecord>, StoreError> {
                let sql = format!(
                    "SELECT {} FROM studies s \
                     WHERE EXISTS (SELECT 1 FROM instances i WHERE i.study_instance_uid = s.study_instance_uid) \
                     AND NOT EXISTS (SELECT 1 FROM cases c WHERE c.study_instance_uid = s.study_instance_uid \
                       OR (s.accession_number IS NOT NULL AND c.accession_number = s.accession_number \
                           AND c.study_instance_uid IS NOT NULL)) \
                     AND s.created_at < $1 \
                     ORDER BY s.created_at, s.study_instance_uid",
                    $crate::sql::imaging::STUDY_COLUMNS
                );
                let rows: Vec<$crate::sql::imaging::StudyTuple> =
                    sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .bind(stored_before)
                        .fetch_all(&self.pool)
                        .await?;
                rows.into_iter().map($crate::sql::imaging::study_from_parts).collect()
            }

            async fn study_instances(
                &self,
                uid: &fusion_schemas::StudyInstanceUid,
            ) -> Result<Vec<crate::InstanceRecord>, StoreError> {
                let sql = format!(
                    "SELECT {} FROM instances WHERE study_instance_uid = $1 \
                     ORDER BY series_instance_uid, instance_number, sop_instance_uid",
                    $crate::sql::imaging::INSTANCE_COLUMNS
                );
                let rows: Vec<$crate::sql::imaging::InstanceTuple> = sqlx::query_as(sqlx::AssertSqlSafe(sql))
                    .bind(uid.as_str())
                    .fetch_all(&self.pool)
                    .await?;
                rows.into_iter().map($crate::sql::imaging::instance_from_parts).collect()
            }

            async fn search_studies(
                &self,
                q: &crate::StudyQuery,
            ) -> Result<Vec<crate::StudyRecord>, StoreError> {
                use $crate::sql::imaging::{push_in, push_match};
                let mut qb = match &q.submitted_by {
                    None => sqlx::QueryBuilder::<$db>::new(format!(
                        "SELECT {} FROM studies s WHERE 1 = 1",
                        $crate::sql::imaging::STUDY_COLUMNS
                    )),
                    Some(own) => {
                        let [a, b, c, d] = $crate::sql::imaging::OWN_STUDY_COLUMNS;
                        let mut qb = sqlx::QueryBuilder::<$db>::new(a);
                        qb.push_bind(own.clone()).push(b).push_bind(own.clone()).push(c);
                        qb.push_bind(own.clone()).push(d);
                        qb
                    }
                };
                if let Some(v) = &q.patient_id {
                    push_match(&mut qb, "s.patient_id", v, "LIKE");
                }
                if let Some(v) = &q.patient_name {
                    push_match(&mut qb, "s.patient_name", v, $ilike);
                }
                if let Some(v) = &q.accession_number {
                    push_match(&mut qb, "s.accession_number", v, "LIKE");
                }
                if let Some(v) = &q.study_description {
                    push_match(&mut qb, "s.description", v, "LIKE");
                }
                if let Some(v) = &q.study_id {
                    push_match(&mut qb, "s.study_id", v, "LIKE");
                }
                if let Some(v) = &q.referring_physician {
                    push_match(&mut qb, "s.referring_physician", v, $ilike);
                }
                if let Some(v) = &q.study_time_from {
                    qb.push(" AND s.study_time >= ").push_bind(v.clone());
                }
                if let Some(v) = &q.study_time_to {
                    // An upper bound HHMM covers every second of that minute.
                    qb.push(" AND s.study_time <= ").push_bind(format!("{v}~"));
                }
                if let Some(v) = &q.study_date_from {
                    qb.push(" AND s.study_date >= ").push_bind(v.clone());
                }
                if let Some(v) = &q.study_date_to {
                    qb.push(" AND s.study_date <= ").push_bind(v.clone());
                }
                if let Some(v) = &q.modality {
                    qb.push(" AND EXISTS (SELECT 1 FROM series m WHERE m.study_instance_uid = s.study_instance_uid");
                    push_match(&mut qb, "m.modality", v, "LIKE");
                    qb.push(")");
                }
                push_in(&mut qb, "s.study_instance_uid", &q.study_instance_uids);
                if let Some(v) = &q.submitted_by {
                    qb.push(" AND EXISTS (SELECT 1 FROM instances o WHERE o.study_instance_uid = s.study_instance_uid AND o.submitted_by = ")
                        .push_bind(v.clone())
                        .push(")");
                }
                qb.push(" ORDER BY s.study_date DESC, s.study_instance_uid LIMIT ")
                    .push_bind(q.limit)
                    .push(" OFFSET ")
                    .push_bind(q.offset);
                let rows: Vec<$crate::sql::imaging::StudyTuple> =
                    qb.build_query_as().fetch_all(&self.pool).await?;
                let mut records = rows
                    .into_iter()
                    .map($crate::sql::imaging::study_from_parts)
                    .collect::<Result<Vec<_>, _>>()?;
                if let Some(own) = &q.submitted_by {
                    for record in &mut records {
                        let modalities: Vec<String> = sqlx::query_scalar(
                            "SELECT DISTINCT se.modality FROM series se \
                             WHERE se.study_instance_uid = $1 AND se.modality IS NOT NULL \
                             AND EXISTS (SELECT 1 FROM instances i \
                               WHERE i.series_instance_uid = se.series_instance_uid AND i.submitted_by = $2) \
                             ORDER BY se.modality",
                        )
                        .bind(record.study_instance_uid.as_str())
                        .bind(own.as_str())
                        .fetch_all(&self.pool)
                        .await?;
                        $crate::sql::imaging::own_view(record, modalities);
                    }
                    records.retain(|r| $crate::sql::imaging::own_view_matches(r, q));
                }
                Ok(records)
            }

            async fn search_series_in(
                &self,
                study: Option<&fusion_schemas::StudyInstanceUid>,
                q: &crate::SeriesQuery,
            ) -> Result<Vec<crate::SeriesRecord>, StoreError> {
                use $crate::sql::imaging::{push_in, push_match};
                let mut qb = match &q.submitted_by {
                    None => sqlx::QueryBuilder::<$db>::new(format!(
                        "SELECT {} FROM series se WHERE 1 = 1",
                        $crate::sql::imaging::SERIES_COLUMNS
                    )),
                    Some(own) => {
                        let [a, b, c] = $crate::sql::imaging::OWN_SERIES_COLUMNS;
                        let mut qb = sqlx::QueryBuilder::<$db>::new(a);
                        qb.push_bind(own.clone()).push(b).push_bind(own.clone()).push(c);
                        qb
                    }
                };
                if let Some(study) = study {
                    qb.push(" AND se.study_instance_uid = ")
                        .push_bind(study.as_str().to_owned());
                }
                if let Some(v) = &q.modality {
                    push_match(&mut qb, "se.modality", v, "LIKE");
                }
                push_in(&mut qb, "se.series_instance_uid", &q.series_instance_uids);
                if let Some(n) = q.series_number {
                    qb.push(" AND se.series_number = ").push_bind(n);
                }
                if let Some(v) = &q.description {
                    push_match(&mut qb, "se.description", v, "LIKE");
                }
                if let Some(v) = &q.submitted_by {
                    qb.push(" AND EXISTS (SELECT 1 FROM instances o WHERE o.series_instance_uid = se.series_instance_uid AND o.submitted_by = ")
                        .push_bind(v.clone())
                        .push(")");
                }
                qb.push(" ORDER BY se.series_number, se.series_instance_uid LIMIT ")
                    .push_bind(q.limit)
                    .push(" OFFSET ")
                    .push_bind(q.offset);
                let rows: Vec<$crate::sql::imaging::SeriesTuple> =
                    qb.build_query_as().fetch_all(&self.pool).await?;
                rows.into_iter()
                    .map($crate::sql::imaging::series_from_parts)
                    .collect()
            }

            async fn search_instances_in(
                &self,
                study: Option<&fusion_schemas::StudyInstanceUid>,
                q: &crate::InstanceQuery,
            ) -> Result<Vec<crate::InstanceRecord>, StoreError> {
                use $crate::sql::imaging::push_in;
                let mut qb = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {} FROM instances WHERE 1 = 1",
                    $crate::sql::imaging::INSTANCE_COLUMNS
                ));
                if let Some(study) = study {
                    qb.push(" AND study_instance_uid = ")
                        .push_bind(study.as_str().to_owned());
                }
                if let Some(v) = &q.series_instance_uid {
                    qb.push(" AND series_instance_uid = ").push_bind(v.clone());
                }
                push_in(&mut qb, "sop_instance_uid", &q.sop_instance_uids);
                push_in(&mut qb, "sop_class_uid", &q.sop_class_uids);
                if let Some(n) = q.instance_number {
                    qb.push(" AND instance_number = ").push_bind(n);
                }
                if let Some(v) = &q.submitted_by {
                    qb.push(" AND submitted_by = ").push_bind(v.clone());
                }
                qb.push(" ORDER BY series_instance_uid, instance_number, sop_instance_uid LIMIT ")
                    .push_bind(q.limit)
                    .push(" OFFSET ")
                    .push_bind(q.offset);
                let rows: Vec<$crate::sql::imaging::InstanceTuple> =
                    qb.build_query_as().fetch_all(&self.pool).await?;
                rows.into_iter()
                    .map($crate::sql::imaging::instance_from_parts)
                    .collect()
            }

            async fn conflict_count(&self, uid: &fusion_schemas::SopInstanceUid) -> Result<i64, StoreError> {
                let (n,): (i64,) = sqlx::query_as(
                    "SELECT COUNT(*) FROM instance_conflicts WHERE sop_instance_uid = $1",
                )
                .bind(uid.as_str())
                .fetch_one(&self.pool)
                .await?;
                Ok(n)
            }
        }
    };
}
