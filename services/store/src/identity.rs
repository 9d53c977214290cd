//! Users, API keys and sessions as stored. Only hashes of secrets are kept:
//! argon2id PHC strings for passwords, SHA-256 for the high-entropy API key
//! secrets and session tokens.

use chrono::{DateTime, Utc};
use fusion_schemas::Role;
use uuid::Uuid;

/// A user account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserRecord {
    /// Stable id.
    pub id: Uuid,
    /// Login name, unique.
    pub username: String,
    /// The user's role.
    pub role: Role,
    /// argon2id PHC string.
    pub password_hash: String,
    /// A disabled user cannot log in; their sessions stop working.
    pub disabled: bool,
    /// Consecutive failed logins since the last success.
    pub failed_logins: i32,
    /// Locked out until this time after too many failures.
    pub locked_until: Option<DateTime<Utc>>,
}

/// What counting a login attempt came to, before any password is checked
/// ([`crate::IdentityRepository::begin_login`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LoginGate {
    /// No user of that name.
    Unknown,
    /// The account is disabled: refused, not counted.
    Disabled(UserRecord),
    /// The account is locked: refused without checking the password.
    /// `locked_now` when this attempt set the lock (it was one too many).
    Locked {
        /// The account as it is after the attempt.
        user: UserRecord,
        /// Whether this attempt set the lock.
        locked_now: bool,
    },
    /// Counted (`user.failed_logins` includes it): the password may be
    /// checked.
    Admitted(UserRecord),
}

/// A user to create.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// Stable id.
    pub id: Uuid,
    /// Login name.
    pub username: String,
    /// Role.
    pub role: Role,
    /// argon2id PHC string.
    pub password_hash: String,
}

/// A change to a user (fields left `None` stay as they are).
#[derive(Debug, Clone, Default)]
pub struct UserChange {
    /// Disable or enable.
    pub disabled: Option<bool>,
    /// A new password hash (also clears the lockout).
    pub password_hash: Option<String>,
}

/// An API key for an integration client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKeyRecord {
    /// Public key id (the Basic user name).
    pub id: String,
    /// Label, e.g. "orthanc-main".
    pub name: String,
    /// Role.
    pub role: Role,
    /// SHA-256 of the secret, hex.
    pub secret_hash: String,
    /// Who created it.
    pub created_by: Option<String>,
    /// Expiry, if any.
    pub expires_at: Option<DateTime<Utc>>,
    /// When revoked, if revoked.
    pub revoked_at: Option<DateTime<Utc>>,
    /// When created.
    pub created_at: DateTime<Utc>,
}

/// A login session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRecord {
    /// SHA-256 of the opaque token, hex.
    pub token_hash: String,
    /// The user.
    pub user_id: Uuid,
    /// SHA-256 of the session's CSRF token, hex.
    pub csrf_token_hash: String,
    /// When created.
    pub created_at: DateTime<Utc>,
    /// Last request seen (for the idle timeout).
    pub last_seen_at: DateTime<Utc>,
    /// Absolute expiry.
    pub expires_at: DateTime<Utc>,
    /// When revoked (logout), if revoked.
    pub revoked_at: Option<DateTime<Utc>>,
}
