//! Outbox SQL: deliveries queued inside the prediction's or review's
//! transaction, claimed with a lease, and settled with their audit event.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::StoreError;
use crate::outbox::{DeliveryRecord, DeliveryState, DeliveryTarget};

/// Columns of an outbox row, in [`DeliveryRow`]'s order.
pub(crate) const DELIVERY_COLUMNS: &str = "id, prediction_id, review_id, case_id, target, state, \
    attempts, next_attempt_at, last_status, last_error, sop_instance_uid, created_at, updated_at, \
    delivered_at";

#[derive(sqlx::FromRow)]
pub(crate) struct DeliveryRow {
    id: Uuid,
    prediction_id: Uuid,
    review_id: Option<Uuid>,
    case_id: Uuid,
    target: String,
    state: String,
    attempts: i32,
    next_attempt_at: DateTime<Utc>,
    last_status: Option<i32>,
    last_error: Option<String>,
    sop_instance_uid: Option<String>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    delivered_at: Option<DateTime<Utc>>,
}

impl TryFrom<DeliveryRow> for DeliveryRecord {
    type Error = StoreError;

    fn try_from(r: DeliveryRow) -> Result<Self, StoreError> {
        Ok(Self {
            id: r.id,
            prediction_id: r.prediction_id,
            review_id: r.review_id,
            case_id: r.case_id,
            target: DeliveryTarget::parse(&r.target)
                .ok_or_else(|| StoreError::Corrupt(format!("outbox target {:?}", r.target)))?,
            state: DeliveryState::parse(&r.state)
                .ok_or_else(|| StoreError::Corrupt(format!("outbox state {:?}", r.state)))?,
            attempts: r.attempts,
            next_attempt_at: r.next_attempt_at,
            last_status: r.last_status,
            last_error: r.last_error,
            sop_instance_uid: r.sop_instance_uid,
            created_at: r.created_at,
            updated_at: r.updated_at,
            delivered_at: r.delivered_at,
        })
    }
}

macro_rules! impl_outbox {
    (
        $name:ident, $db:ty,
        begin_write = $begin:literal,
        skip_locked = $skip_locked:literal $(,)?
    ) => {
        impl $name {
            /// Queues one delivery per target of a prediction version (or of
            /// its review, `review_id`), inside the caller's transaction.
            pub(crate) async fn queue_deliveries_in(
                tx: &mut sqlx::Transaction<'_, $db>,
                prediction_id: uuid::Uuid,
                review_id: Option<uuid::Uuid>,
                case_id: uuid::Uuid,
                targets: &[crate::outbox::DeliveryTarget],
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<(), StoreError> {
                for target in targets {
                    sqlx::query(
                        "INSERT INTO outbox (id, prediction_id, review_id, case_id, target, state, \
                         attempts, next_attempt_at, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6, $6)",
                    )
                    .bind(uuid::Uuid::now_v7())
                    .bind(prediction_id)
                    .bind(review_id)
                    .bind(case_id)
                    .bind(target.as_str())
                    .bind(now)
                    .execute(&mut **tx)
                    .await
                    .map_err(|e| $crate::sql::unique_violation(e, "delivery"))?;
                }
                Ok(())
            }
        }

        #[async_trait::async_trait]
        impl crate::outbox::OutboxRepository for $name {
            async fn claim_delivery(
                &self,
                now: chrono::DateTime<chrono::Utc>,
                lease_until: chrono::DateTime<chrono::Utc>,
            ) -> Result<Option<crate::outbox::DeliveryRecord>, StoreError> {
                let now = crate::audit::audit_time(now);
                let lease_until = crate::audit::audit_time(lease_until);
                let mut tx = self.pool.begin_with($begin).await?;
                let sql = format!(
                    "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $2, updated_at = $1 \
                     WHERE state = 'pending' AND id = (SELECT o.id FROM outbox o \
                       WHERE o.state = 'pending' AND o.next_attempt_at <= $1 \
                       ORDER BY o.next_attempt_at, o.created_at, o.id LIMIT 1{}) \
                     RETURNING {}",
                    $skip_locked,
                    $crate::sql::outbox::DELIVERY_COLUMNS
                );
                let row: Option<$crate::sql::outbox::DeliveryRow> =
                    sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .bind(now)
                        .bind(lease_until)
                        .fetch_optional(&mut *tx)
                        .await?;
                tx.commit().await?;
                row.map(crate::outbox::DeliveryRecord::try_from).transpose()
            }

            async fn record_delivery(
                &self,
                id: uuid::Uuid,
                outcome: &crate::outbox::DeliveryOutcome,
                audit: Option<&crate::AuditRecord>,
            ) -> Result<bool, StoreError> {
                use crate::outbox::{DeliveryOutcome, bounded_error};
                let now = crate::audit::audit_time(chrono::Utc::now());
                let mut tx = self.pool.begin_with($begin).await?;
                let done = match outcome {
                    DeliveryOutcome::Delivered {
                        status,
                        sop_instance_uid,
                    } => sqlx::query(
                        "UPDATE outbox SET state = 'delivered', last_status = $2, last_error = NULL, \
                         sop_instance_uid = COALESCE($3, sop_instance_uid), delivered_at = $4, \
                         updated_at = $4 WHERE id = $1 AND state = 'pending'",
                    )
                    .bind(id)
                    .bind(*status)
                    .bind(sop_instance_uid.as_deref())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?,
                    DeliveryOutcome::Retry {
                        status,
                        error,
                        next_attempt_at,
                    } => sqlx::query(
                        "UPDATE outbox SET last_status = $2, last_error = $3, next_attempt_at = $4, \
                         updated_at = $5 WHERE id = $1 AND state = 'pending'",
                    )
                    .bind(id)
                    .bind(*status)
                    .bind(bounded_error(error))
                    .bind(crate::audit::audit_time(*next_attempt_at))
                    .bind(now)
                    .execute(&mut *tx)
                    .await?,
                    DeliveryOutcome::Failed { status, error } => sqlx::query(
                        "UPDATE outbox SET state = 'failed', last_status = $2, last_error = $3, \
                         updated_at = $4 WHERE id = $1 AND state = 'pending'",
                    )
                    .bind(id)
                    .bind(*status)
                    .bind(bounded_error(error))
                    .bind(now)
                    .execute(&mut *tx)
                    .await?,
                };
                if done.rows_affected() == 0 {
                    return Ok(false);
                }
                if let Some(audit) = audit {
                    Self::append_audit_in(&mut tx, audit).await?;
                }
                tx.commit().await?;
                Ok(true)
            }

            async fn deliveries(
                &self,
                filter: &crate::outbox::DeliveryFilter,
            ) -> Result<Vec<crate::outbox::DeliveryRecord>, StoreError> {
                let mut qb: sqlx::QueryBuilder<$db> = sqlx::QueryBuilder::new(format!(
                    "SELECT {} FROM outbox WHERE 1 = 1",
                    $crate::sql::outbox::DELIVERY_COLUMNS
                ));
                if !filter.states.is_empty() {
                    qb.push(" AND state IN (");
                    let mut list = qb.separated(", ");
                    for s in &filter.states {
                        list.push_bind(s.as_str());
                    }
                    qb.push(")");
                }
                if let Some(case_id) = filter.case_id {
                    qb.push(" AND case_id = ").push_bind(case_id);
                }
                if let Some(p) = filter.prediction_id {
                    qb.push(" AND prediction_id = ").push_bind(p);
                }
                qb.push(" ORDER BY created_at DESC, id DESC LIMIT ")
                    .push_bind(filter.limit.unwrap_or(1000).clamp(1, 1000));
                let rows: Vec<$crate::sql::outbox::DeliveryRow> =
                    qb.build_query_as().fetch_all(&self.pool).await?;
                rows.into_iter()
                    .map(crate::outbox::DeliveryRecord::try_from)
                    .collect()
            }

            async fn retry_delivery(
                &self,
                id: uuid::Uuid,
                audit: &crate::AuditRecord,
            ) -> Result<bool, StoreError> {
                let now = crate::audit::audit_time(chrono::Utc::now());
                let mut tx = self.pool.begin_with($begin).await?;
                let done = sqlx::query(
                    "UPDATE outbox SET state = 'pending', attempts = 0, next_attempt_at = $2, \
                     updated_at = $2 WHERE id = $1 AND state = 'failed'",
                )
                .bind(id)
                .bind(now)
                .execute(&mut *tx)
                .await?;
                if done.rows_affected() == 0 {
                    return Ok(false);
                }
                Self::append_audit_in(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(true)
            }
        }
    };
}
