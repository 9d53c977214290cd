//! The trait of users, sessions and API keys.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::LockoutPolicy;
use crate::StoreError;
use crate::audit::AuditRecord;
use crate::identity::{ApiKeyRecord, LoginGate, NewUser, SessionRecord, UserChange, UserRecord};

/// Users, sessions and API keys.
#[async_trait]
pub trait IdentityRepository: Send + Sync {
    /// How many users exist (zero on first start).
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn count_users(&self) -> Result<i64, StoreError>;

    /// Creates a user.
    ///
    /// # Errors
    ///
    /// [`StoreError::AlreadyExists`] when the name is taken.
    async fn create_user(&self, user: &NewUser, audit: &AuditRecord) -> Result<(), StoreError>;

    /// A user by login name.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn user_by_name(&self, username: &str) -> Result<Option<UserRecord>, StoreError>;

    /// A user by id.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn user_by_id(&self, id: Uuid) -> Result<Option<UserRecord>, StoreError>;

    /// Every user, by name.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn list_users(&self) -> Result<Vec<UserRecord>, StoreError>;

    /// Disables, enables or resets the password of a user; disabling or a
    /// new password revokes the user's sessions. `Ok(false)` when no such user.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn update_user(
        &self,
        username: &str,
        change: &UserChange,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError>;

    /// Counts a login attempt for `username` before any password is checked,
    /// in one statement (`UPDATE … RETURNING`), so that concurrent attempts
    /// cannot all read the same count (issue #14, finding 2). The count is
    /// of attempts since the last success or lock, so an attempt still being
    /// verified counts as a failure until it succeeds. An enabled, unlocked
    /// account with fewer than `policy.max_failures` counted attempts admits
    /// the attempt; one that has reached it is locked by this attempt (the
    /// lock starts at `now`, `lock_audit` is appended in the same
    /// transaction, naming the account among its entities) and refuses it; a locked or disabled account refuses
    /// without counting.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn begin_login(
        &self,
        username: &str,
        policy: &LockoutPolicy,
        now: DateTime<Utc>,
        lock_audit: &AuditRecord,
    ) -> Result<LoginGate, StoreError>;

    /// After an admitted attempt failed its password check: locks the
    /// account when its counted attempts have reached `policy.max_failures`
    /// (appending `lock_audit`, naming the account, with the lock), and appends the failure's
    /// `audit`. With `user_id` `None` (unknown user, refused before
    /// checking, throttled) it only appends `audit`. Returns the lock's end
    /// when this failure locked the account.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn record_failed_login(
        &self,
        user_id: Option<Uuid>,
        policy: &LockoutPolicy,
        audit: &AuditRecord,
        lock_audit: &AuditRecord,
    ) -> Result<Option<DateTime<Utc>>, StoreError>;

    /// Stores a new session after a successful password check and clears
    /// the attempt count, only if the account is still enabled and not
    /// locked at `session.created_at`: a lock set while the password was
    /// being checked stands. `Ok(false)` (nothing written) when it is not.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn start_session(
        &self,
        session: &SessionRecord,
        audit: &AuditRecord,
    ) -> Result<bool, StoreError>;

    /// A session by token hash.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn session(&self, token_hash: &str) -> Result<Option<SessionRecord>, StoreError>;

    /// Records activity on a session (idle timeout).
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn touch_session(&self, token_hash: &str, now: DateTime<Utc>) -> Result<(), StoreError>;

    /// Revokes a session (logout). `Ok(false)` when it was not active.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn end_session(&self, token_hash: &str, audit: &AuditRecord) -> Result<bool, StoreError>;

    /// Stores a new API key (its secret's hash only).
    ///
    /// # Errors
    ///
    /// [`StoreError::AlreadyExists`] on an id collision.
    async fn create_api_key(
        &self,
        key: &ApiKeyRecord,
        audit: &AuditRecord,
    ) -> Result<(), StoreError>;

    /// An API key by id.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn api_key(&self, id: &str) -> Result<Option<ApiKeyRecord>, StoreError>;

    /// Every API key.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn list_api_keys(&self) -> Result<Vec<ApiKeyRecord>, StoreError>;

    /// Revokes a key. `Ok(false)` when no active key has this id.
    ///
    /// # Errors
    ///
    /// [`StoreError::Query`].
    async fn revoke_api_key(&self, id: &str, audit: &AuditRecord) -> Result<bool, StoreError>;
}
