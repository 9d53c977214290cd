//! Audit-trail SQL: the chained append (also used inside other concerns'
//! transactions) and filtered reads.

use chrono::{DateTime, Utc};
use sqlx::types::Json;

use crate::StoreError;
use crate::audit::{
    AuditAction, AuditAgent, AuditEntity, AuditEventType, AuditOutcome, AuditRecord,
    StoredAuditEvent,
};

pub(crate) const AUDIT_COLUMNS: &str = "seq, recorded_at, type_code, subtype_code, action, \
    outcome, outcome_desc, agent, entity, patient_ids, purpose_of_use, request_id, prev_hash, hash";

pub(crate) type AuditTuple = (
    i64,
    DateTime<Utc>,
    String,
    Option<String>,
    String,
    String,
    Option<String>,
    Json<AuditAgent>,
    Json<Vec<AuditEntity>>,
    Json<Vec<String>>,
    Option<String>,
    Option<String>,
    String,
    String,
);

pub(crate) fn audit_from_parts(t: AuditTuple) -> Result<StoredAuditEvent, StoreError> {
    let bad =
        |what: &str, v: &str| StoreError::Corrupt(format!("audit event {}: {what} {v:?}", t.0));
    Ok(StoredAuditEvent {
        seq: t.0,
        recorded_at: t.1,
        record: AuditRecord {
            event_type: AuditEventType::from_code(&t.2).ok_or_else(|| bad("type", &t.2))?,
            subtype: t.3.unwrap_or_default(),
            action: AuditAction::from_code(&t.4).ok_or_else(|| bad("action", &t.4))?,
            outcome: AuditOutcome::from_code(&t.5).ok_or_else(|| bad("outcome", &t.5))?,
            outcome_desc: t.6,
            agent: t.7.0,
            entities: t.8.0,
            patient_ids: t.9.0,
            purpose_of_use: t.10,
            request_id: t.11,
        },
        prev_hash: t.12,
        hash: t.13,
    })
}

macro_rules! impl_audit {
    (
        $name:ident, $db:ty,
        begin_write = $begin:literal,
        audit_lock = $audit_lock:literal,
        patient_filter = $patient_filter:expr $(,)?
    ) => {
        impl $name {
            /// Appends `record` to the chain inside `tx`: the caller's change
            /// and its audit event commit or roll back together.
            pub(crate) async fn append_audit_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                record: &crate::audit::AuditRecord,
            ) -> Result<crate::audit::StoredAuditEvent, StoreError> {
                sqlx::query($audit_lock).execute(&mut **tx).await?;
                let last: Option<(i64, String)> = sqlx::query_as(
                    "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1",
                )
                .fetch_optional(&mut **tx)
                .await?;
                let (seq, prev_hash) = match last {
                    Some((seq, hash)) => (seq + 1, hash),
                    None => (1, crate::audit::GENESIS_HASH.to_owned()),
                };
                let recorded_at = crate::audit::audit_time(chrono::Utc::now());
                let hash = crate::audit::chain_hash(seq, recorded_at, record, &prev_hash)
                    .map_err(|e| StoreError::Corrupt(format!("cannot canonicalise audit event: {e}")))?;
                sqlx::query(
                    "INSERT INTO audit_events (seq, recorded_at, type_code, subtype_code, action, \
                     outcome, outcome_desc, agent, source, entity, patient_ids, purpose_of_use, \
                     request_id, prev_hash, hash) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'fusion', $9, $10, $11, $12, $13, $14)",
                )
                .bind(seq)
                .bind(recorded_at)
                .bind(record.event_type.code())
                .bind(record.subtype.as_str())
                .bind(record.action.code())
                .bind(record.outcome.code())
                .bind(record.outcome_desc.as_deref())
                .bind(sqlx::types::Json(&record.agent))
                .bind(sqlx::types::Json(&record.entities))
                .bind(sqlx::types::Json(&record.patient_ids))
                .bind(record.purpose_of_use.as_deref())
                .bind(record.request_id.as_deref())
                .bind(prev_hash.as_str())
                .bind(hash.as_str())
                .execute(&mut **tx)
                .await?;
                Ok(crate::audit::StoredAuditEvent {
                    seq,
                    recorded_at,
                    record: record.clone(),
                    prev_hash,
                    hash,
                })
            }
        }

        #[async_trait::async_trait]
        impl crate::AuditRepository for $name {
            async fn append_audit(
                &self,
                record: &crate::audit::AuditRecord,
            ) -> Result<crate::audit::StoredAuditEvent, StoreError> {
                let mut tx = self.pool.begin_with($begin).await?;
                let stored = Self::append_audit_in(&mut tx, record).await?;
                tx.commit().await?;
                Ok(stored)
            }

            async fn audit_events(
                &self,
                filter: &crate::audit::AuditFilter,
            ) -> Result<Vec<crate::audit::StoredAuditEvent>, StoreError> {
                let mut qb = sqlx::QueryBuilder::<$db>::new(format!(
                    "SELECT {} FROM audit_events WHERE 1 = 1",
                    $crate::sql::audit::AUDIT_COLUMNS
                ));
                if let Some(from) = filter.from {
                    qb.push(" AND recorded_at >= ").push_bind(from);
                }
                if let Some(to) = filter.to {
                    qb.push(" AND recorded_at < ").push_bind(to);
                }
                if let Some(pid) = &filter.patient_id {
                    let add = $patient_filter;
                    add(&mut qb, pid.clone());
                }
                if let Some(agent) = &filter.agent {
                    qb.push(" AND (agent ->> 'id' = ")
                        .push_bind(agent.clone())
                        .push(" OR agent ->> 'name' = ")
                        .push_bind(agent.clone())
                        .push(")");
                }
                if let Some(action) = filter.action {
                    qb.push(" AND action = ").push_bind(action.code());
                }
                if let Some(outcome) = filter.outcome {
                    qb.push(" AND outcome = ").push_bind(outcome.code());
                }
                qb.push(" ORDER BY seq");
                if let Some(limit) = filter.limit {
                    qb.push(" LIMIT ").push_bind(limit);
                }
                let rows: Vec<$crate::sql::audit::AuditTuple> =
                    qb.build_query_as().fetch_all(&self.pool).await?;
                rows.into_iter().map($crate::sql::audit::audit_from_parts).collect()
            }

            async fn audit_after(
                &self,
                after_seq: i64,
                limit: i64,
            ) -> Result<Vec<crate::audit::StoredAuditEvent>, StoreError> {
                let sql = format!(
                    "SELECT {} FROM audit_events WHERE seq > $1 ORDER BY seq LIMIT $2",
                    $crate::sql::audit::AUDIT_COLUMNS
                );
                let rows: Vec<$crate::sql::audit::AuditTuple> =
                    sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .bind(after_seq)
                        .bind(limit)
                        .fetch_all(&self.pool)
                        .await?;
                rows.into_iter().map($crate::sql::audit::audit_from_parts).collect()
            }

            async fn audit_head(&self) -> Result<Option<crate::ChainAnchor>, StoreError> {
                let row: Option<(i64, String)> = sqlx::query_as(
                    "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1",
                )
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map(|(seq, hash)| crate::ChainAnchor {
                    hash,
                    seq: Some(seq),
                }))
            }
        }
    };
}
