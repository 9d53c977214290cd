//! Users, API keys and sessions. Every change commits together with its
//! audit event.

use chrono::{DateTime, Utc};
use fusion_schemas::Role;
use uuid::Uuid;

use crate::StoreError;
use crate::identity::{ApiKeyRecord, SessionRecord, UserRecord};

pub(crate) type UserTuple = (
    Uuid,
    String,
    String,
    String,
    bool,
    i32,
    Option<DateTime<Utc>>,
);

pub(crate) const USER_COLUMNS: &str =
    "id, username, role, password_hash, disabled, failed_logins, locked_until";

fn role(s: &str) -> Result<Role, StoreError> {
    s.parse()
        .map_err(|e| StoreError::Corrupt(format!("stored role: {e}")))
}

pub(crate) fn user_from_parts(t: UserTuple) -> Result<UserRecord, StoreError> {
    Ok(UserRecord {
        id: t.0,
        username: t.1,
        role: role(&t.2)?,
        password_hash: t.3,
        disabled: t.4,
        failed_logins: t.5,
        locked_until: t.6,
    })
}

pub(crate) type KeyTuple = (
    String,
    String,
    String,
    String,
    Option<String>,
    Option<DateTime<Utc>>,
    Option<DateTime<Utc>>,
    DateTime<Utc>,
);

pub(crate) const KEY_COLUMNS: &str =
    "id, name, role, secret_hash, created_by, expires_at, revoked_at, created_at";

pub(crate) fn key_from_parts(t: KeyTuple) -> Result<ApiKeyRecord, StoreError> {
    Ok(ApiKeyRecord {
        id: t.0,
        name: t.1,
        role: role(&t.2)?,
        secret_hash: t.3,
        created_by: t.4,
        expires_at: t.5,
        revoked_at: t.6,
        created_at: t.7,
    })
}

pub(crate) type SessionTuple = (
    String,
    Uuid,
    String,
    DateTime<Utc>,
    DateTime<Utc>,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
);

pub(crate) fn session_from_parts(t: SessionTuple) -> SessionRecord {
    SessionRecord {
        token_hash: t.0,
        user_id: t.1,
        csrf_token_hash: t.2,
        created_at: t.3,
        last_seen_at: t.4,
        expires_at: t.5,
        revoked_at: t.6,
    }
}

macro_rules! impl_identity {
    ($name:ident, $db:ty, begin_write = $begin:literal $(,)?) => {
        #[async_trait::async_trait]
        impl crate::IdentityRepository for $name {
            async fn count_users(&self) -> Result<i64, StoreError> {
                let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM users")
                    .fetch_one(&self.pool)
                    .await?;
                Ok(n)
            }

            async fn create_user(
                &self,
                user: &crate::NewUser,
                audit: &crate::AuditRecord,
            ) -> Result<(), StoreError> {
                let now = chrono::Utc::now();
                let mut tx = self.pool.begin_with($begin).await?;
                sqlx::query(
                    "INSERT INTO users (id, username, role, password_hash, disabled, \
                     failed_logins, created_at, updated_at) VALUES ($1, $2, $3, $4, FALSE, 0, $5, $5)",
                )
                .bind(user.id)
                .bind(user.username.as_str())
                .bind(user.role.as_str())
                .bind(user.password_hash.as_str())
                .bind(now)
                .execute(&mut *tx)
                .await
                .map_err(|e| $crate::sql::unique_violation(e, "a user with this name"))?;
                Self::append_audit_in(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn user_by_name(
                &self,
                username: &str,
            ) -> Result<Option<crate::UserRecord>, StoreError> {
                let sql = format!(
                    "SELECT {} FROM users WHERE username = $1",
                    $crate::sql::identity::USER_COLUMNS
                );
                let row: Option<$crate::sql::identity::UserTuple> =
                    sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .bind(username)
                        .fetch_optional(&self.pool)
                        .await?;
                row.map($crate::sql::identity::user_from_parts).transpose()
            }

            async fn user_by_id(
                &self,
                id: uuid::Uuid,
            ) -> Result<Option<crate::UserRecord>, StoreError> {
                let sql = format!(
                    "SELECT {} FROM users WHERE id = $1",
                    $crate::sql::identity::USER_COLUMNS
                );
                let row: Option<$crate::sql::identity::UserTuple> =
                    sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await?;
                row.map($crate::sql::identity::user_from_parts).transpose()
            }

            async fn list_users(&self) -> Result<Vec<crate::UserRecord>, StoreError> {
                let sql = format!(
                    "SELECT {} FROM users ORDER BY username",
                    $crate::sql::identity::USER_COLUMNS
                );
                let rows: Vec<$crate::sql::identity::UserTuple> =
                    sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .fetch_all(&self.pool)
                        .await?;
                rows.into_iter()
                    .map($crate::sql::identity::user_from_parts)
                    .collect()
            }

            async fn update_user(
                &self,
                username: &str,
                change: &crate::UserChange,
                audit: &crate::AuditRecord,
            ) -> Result<bool, StoreError> {
                let now = chrono::Utc::now();
                let mut tx = self.pool.begin_with($begin).await?;
                let found: Option<(uuid::Uuid,)> =
                    sqlx::query_as("SELECT id FROM users WHERE username = $1")
                        .bind(username)
                        .fetch_optional(&mut *tx)
                        .await?;
                let Some((id,)) = found else {
                    return Ok(false);
                };
                if let Some(disabled) = change.disabled {
                    sqlx::query("UPDATE users SET disabled = $1, updated_at = $2 WHERE id = $3")
                        .bind(disabled)
                        .bind(now)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                }
                if let Some(hash) = &change.password_hash {
                    sqlx::query(
                        "UPDATE users SET password_hash = $1, failed_logins = 0, \
                         locked_until = NULL, updated_at = $2 WHERE id = $3",
                    )
                    .bind(hash.as_str())
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                }
                if change.disabled == Some(true) || change.password_hash.is_some() {
                    // A disabled account or a reset password ends every session.
                    sqlx::query(
                        "UPDATE sessions SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
                    )
                    .bind(now)
                    .bind(id)
                    .execute(&mut *tx)
                    .await?;
                }
                Self::append_audit_in(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn begin_login(
                &self,
                username: &str,
                policy: &crate::LockoutPolicy,
                now: chrono::DateTime<chrono::Utc>,
                lock_audit: &crate::AuditRecord,
            ) -> Result<crate::LoginGate, StoreError> {
                use chrono::SubsecRound;
                // Both databases keep microseconds: the lock's end reads back
                // equal to what was written, which tells this attempt's lock
                // from an older one.
                let until = (now + policy.lock_for).trunc_subsecs(6);
                let mut tx = self.pool.begin_with($begin).await?;
                // One statement counts the attempt, or locks the account when
                // the attempts since the last success have reached the limit;
                // the SET expressions all read the row as it was, and
                // concurrent attempts queue on the row lock.
                let sql = format!(
                    "UPDATE users SET \
                     failed_logins = CASE WHEN disabled OR locked_until > $1 THEN failed_logins \
                       WHEN failed_logins >= $2 THEN 0 ELSE failed_logins + 1 END, \
                     locked_until = CASE WHEN disabled OR locked_until > $1 THEN locked_until \
                       WHEN failed_logins >= $2 THEN $3 ELSE locked_until END, \
                     updated_at = $1 \
                     WHERE username = $4 RETURNING {}",
                    $crate::sql::identity::USER_COLUMNS
                );
                let row: Option<$crate::sql::identity::UserTuple> =
                    sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .bind(now)
                        .bind(policy.max_failures)
                        .bind(until)
                        .bind(username)
                        .fetch_optional(&mut *tx)
                        .await?;
                let Some(row) = row else {
                    return Ok(crate::LoginGate::Unknown);
                };
                let user = $crate::sql::identity::user_from_parts(row)?;
                let gate = if user.disabled {
                    crate::LoginGate::Disabled(user)
                } else if user.locked_until.is_some_and(|t| t > now) {
                    let locked_now = user.locked_until == Some(until) && user.failed_logins == 0;
                    if locked_now {
                        let mut lock_audit = lock_audit.clone();
                        lock_audit
                            .entities
                            .push(crate::AuditEntity::new(crate::EntityKind::User, user.id.to_string()));
                        Self::append_audit_in(&mut tx, &lock_audit).await?;
                    }
                    crate::LoginGate::Locked { user, locked_now }
                } else {
                    crate::LoginGate::Admitted(user)
                };
                tx.commit().await?;
                Ok(gate)
            }

            async fn record_failed_login(
                &self,
                user_id: Option<uuid::Uuid>,
                policy: &crate::LockoutPolicy,
                audit: &crate::AuditRecord,
                lock_audit: &crate::AuditRecord,
            ) -> Result<Option<chrono::DateTime<chrono::Utc>>, StoreError> {
                use chrono::SubsecRound;
                let now = chrono::Utc::now();
                let until = (now + policy.lock_for).trunc_subsecs(6);
                let mut tx = self.pool.begin_with($begin).await?;
                Self::append_audit_in(&mut tx, audit).await?;
                let mut locked_until = None;
                if let Some(id) = user_id {
                    // The attempt was counted before its password was checked:
                    // lock once the counted attempts have reached the limit,
                    // unless a lock is already in force.
                    let locked = sqlx::query(
                        "UPDATE users SET locked_until = $1, failed_logins = 0, updated_at = $2 \
                         WHERE id = $3 AND failed_logins >= $4 AND NOT disabled \
                         AND (locked_until IS NULL OR locked_until <= $2)",
                    )
                    .bind(until)
                    .bind(now)
                    .bind(id)
                    .bind(policy.max_failures)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected()
                        > 0;
                    if locked {
                        let mut lock_audit = lock_audit.clone();
                        lock_audit
                            .entities
                            .push(crate::AuditEntity::new(crate::EntityKind::User, id.to_string()));
                        Self::append_audit_in(&mut tx, &lock_audit).await?;
                        locked_until = Some(until);
                    }
                }
                tx.commit().await?;
                Ok(locked_until)
            }

            async fn start_session(
                &self,
                session: &crate::SessionRecord,
                audit: &crate::AuditRecord,
            ) -> Result<bool, StoreError> {
                let mut tx = self.pool.begin_with($begin).await?;
                // A lock set (or a disable) while the password was being
                // checked stands: the success clears nothing and starts no
                // session.
                let usable = sqlx::query(
                    "UPDATE users SET failed_logins = 0, locked_until = NULL \
                     WHERE id = $1 AND NOT disabled \
                     AND (locked_until IS NULL OR locked_until <= $2)",
                )
                .bind(session.user_id)
                .bind(session.created_at)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    > 0;
                if !usable {
                    return Ok(false);
                }
                sqlx::query(
                    "INSERT INTO sessions (token_hash, user_id, csrf_token_hash, created_at, \
                     last_seen_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(session.token_hash.as_str())
                .bind(session.user_id)
                .bind(session.csrf_token_hash.as_str())
                .bind(session.created_at)
                .bind(session.last_seen_at)
                .bind(session.expires_at)
                .execute(&mut *tx)
                .await?;
                Self::append_audit_in(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(true)
            }

            async fn session(
                &self,
                token_hash: &str,
            ) -> Result<Option<crate::SessionRecord>, StoreError> {
                let row: Option<$crate::sql::identity::SessionTuple> = sqlx::query_as(
                    "SELECT token_hash, user_id, csrf_token_hash, created_at, last_seen_at, \
                     expires_at, revoked_at FROM sessions WHERE token_hash = $1",
                )
                .bind(token_hash)
                .fetch_optional(&self.pool)
                .await?;
                Ok(row.map($crate::sql::identity::session_from_parts))
            }

            async fn touch_session(
                &self,
                token_hash: &str,
                now: chrono::DateTime<chrono::Utc>,
            ) -> Result<(), StoreError> {
                sqlx::query("UPDATE sessions SET last_seen_at = $1 WHERE token_hash = $2")
                    .bind(now)
                    .bind(token_hash)
                    .execute(&self.pool)
                    .await?;
                Ok(())
            }

            async fn end_session(
                &self,
                token_hash: &str,
                audit: &crate::AuditRecord,
            ) -> Result<bool, StoreError> {
                let now = chrono::Utc::now();
                let mut tx = self.pool.begin_with($begin).await?;
                let done = sqlx::query(
                    "UPDATE sessions SET revoked_at = $1 WHERE token_hash = $2 AND revoked_at IS NULL",
                )
                .bind(now)
                .bind(token_hash)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    > 0;
                Self::append_audit_in(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(done)
            }

            async fn create_api_key(
                &self,
                key: &crate::ApiKeyRecord,
                audit: &crate::AuditRecord,
            ) -> Result<(), StoreError> {
                let mut tx = self.pool.begin_with($begin).await?;
                sqlx::query(
                    "INSERT INTO api_keys (id, name, role, secret_hash, created_by, expires_at, \
                     created_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(key.id.as_str())
                .bind(key.name.as_str())
                .bind(key.role.as_str())
                .bind(key.secret_hash.as_str())
                .bind(key.created_by.as_deref())
                .bind(key.expires_at)
                .bind(key.created_at)
                .execute(&mut *tx)
                .await
                .map_err(|e| $crate::sql::unique_violation(e, "an API key with this id"))?;
                Self::append_audit_in(&mut tx, audit).await?;
                tx.commit().await?;
                Ok(())
            }

            async fn api_key(&self, id: &str) -> Result<Option<crate::ApiKeyRecord>, StoreError> {
                let sql = format!(
                    "SELECT {} FROM api_keys WHERE id = $1",
                    $crate::sql::identity::KEY_COLUMNS
                );
                let row: Option<$crate::sql::identity::KeyTuple> =
                    sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .bind(id)
                        .fetch_optional(&self.pool)
                        .await?;
                row.map($crate::sql::identity::key_from_parts).transpose()
            }

            async fn list_api_keys(&self) -> Result<Vec<crate::ApiKeyRecord>, StoreError> {
                let sql = format!(
                    "SELECT {} FROM api_keys ORDER BY created_at, id",
                    $crate::sql::identity::KEY_COLUMNS
                );
                let rows: Vec<$crate::sql::identity::KeyTuple> =
                    sqlx::query_as(sqlx::AssertSqlSafe(sql))
                        .fetch_all(&self.pool)
                        .await?;
                rows.into_iter()
                    .map($crate::sql::identity::key_from_parts)
                    .collect()
            }

            async fn revoke_api_key(
                &self,
                id: &str,
                audit: &crate::AuditRecord,
            ) -> Result<bool, StoreError> {
                let now = chrono::Utc::now();
                let mut tx = self.pool.begin_with($begin).await?;
                let done = sqlx::query(
                    "UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL",
                )
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?
                .rows_affected()
                    > 0;
                if done {
                    Self::append_audit_in(&mut tx, audit).await?;
                }
                tx.commit().await?;
                Ok(done)
            }
        }
    };
}
