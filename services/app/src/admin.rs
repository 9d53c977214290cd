//! Operator actions behind `fusion user …`, `fusion apikey …` and the
//! first-start admin: each one audited as an identity change (DICOM 110113
//! Security Alert; 110114 for the admin's creation at first start).

use chrono::{DateTime, Utc};
use fusion_schemas::Role;
use fusion_store::{
    ApiKeyRecord, AuditAction, AuditAgent, AuditEntity, AuditEventType, AuditRecord, EntityKind,
    NewUser, StoreError, UserChange, UserRecord,
};
use secrecy::{ExposeSecret, SecretString};

use crate::State;
use crate::secrets::{self, SecretError};

/// Shortest password accepted (NIST SP 800-63B §5.1.1.2 asks for at least 8;
/// we ask more of accounts that see patient data).
pub const MIN_PASSWORD_CHARS: usize = 12;

/// Errors of operator actions.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The password is too short.
    #[error("the password must have at least {MIN_PASSWORD_CHARS} characters")]
    WeakPassword,
    /// The user name is empty or has characters we do not allow.
    #[error("a user name is 1 to 64 characters: letters, digits, '.', '_', '-', '@'")]
    BadUsername,
    /// No such user.
    #[error("no user named {0:?}")]
    NoSuchUser(String),
    /// No active API key with this id.
    #[error("no active API key with id {0:?}")]
    NoSuchKey(String),
    /// Storage failed or the name is taken.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// Randomness or hashing failed.
    #[error(transparent)]
    Secret(#[from] SecretError),
}

/// Who performs an action from the command line: the operating-system user.
#[derive(Debug, Clone)]
pub struct Operator {
    /// The OS user name (`$USER`), or `operator`.
    pub name: String,
}

impl Operator {
    /// The operator running this process.
    pub fn current() -> Self {
        let name = std::env::var("USER")
            .or_else(|_| std::env::var("LOGNAME"))
            .unwrap_or_else(|_| "operator".to_owned());
        Self { name }
    }

    fn record(
        &self,
        event_type: AuditEventType,
        subtype: &str,
        action: AuditAction,
        entity: AuditEntity,
    ) -> AuditRecord {
        AuditRecord::builder(event_type, subtype, action, self.agent())
            .entities([entity])
            .build()
    }

    /// The operator as the audit trail's agent (kind `operator`, the
    /// requestor).
    pub fn agent(&self) -> AuditAgent {
        AuditAgent::operator(&self.name)
    }
}

fn check_username(name: &str) -> Result<(), AdminError> {
    let ok = !name.is_empty()
        && name.chars().count() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'));
    if ok {
        Ok(())
    } else {
        Err(AdminError::BadUsername)
    }
}

fn check_password(password: &str) -> Result<(), AdminError> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(AdminError::WeakPassword);
    }
    Ok(())
}

async fn hash(password: &SecretString) -> Result<String, AdminError> {
    let password = password.expose_secret().to_owned();
    tokio::task::spawn_blocking(move || secrets::hash_password(&password))
        .await
        .map_err(|e| SecretError::Hash(e.to_string()))?
        .map_err(AdminError::from)
}

/// Creates a user.
///
/// # Errors
///
/// [`AdminError::BadUsername`], [`AdminError::WeakPassword`], or a store
/// error (`already exists` when the name is taken).
pub async fn add_user(
    state: &State,
    operator: &Operator,
    username: &str,
    role: Role,
    password: &SecretString,
) -> Result<(), AdminError> {
    check_username(username)?;
    check_password(password.expose_secret())?;
    let id = uuid::Uuid::now_v7();
    let user = NewUser {
        id,
        username: username.to_owned(),
        role,
        password_hash: hash(password).await?,
    };
    let mut record = operator.record(
        AuditEventType::SecurityAlert,
        "user-create",
        AuditAction::Create,
        // By username, as the disable, enable and reset events and the
        // agent of the user's own logins name it: one filter finds them all.
        AuditEntity::new(EntityKind::User, username),
    );
    record.outcome_desc = Some(format!("user {username} (id {id}) with role {role}"));
    state.repository.create_user(&user, &record).await?;
    Ok(())
}

/// Disables (`true`) or enables (`false`) a user; disabling ends their sessions.
///
/// # Errors
///
/// [`AdminError::NoSuchUser`] or a store error.
pub async fn set_disabled(
    state: &State,
    operator: &Operator,
    username: &str,
    disabled: bool,
) -> Result<(), AdminError> {
    let record = operator.record(
        AuditEventType::SecurityAlert,
        if disabled {
            "user-disable"
        } else {
            "user-enable"
        },
        AuditAction::Update,
        AuditEntity::new(EntityKind::User, username),
    );
    let change = UserChange {
        disabled: Some(disabled),
        password_hash: None,
    };
    if state
        .repository
        .update_user(username, &change, &record)
        .await?
    {
        Ok(())
    } else {
        Err(AdminError::NoSuchUser(username.to_owned()))
    }
}

/// Sets a new password; ends the user's sessions and clears a lockout.
///
/// # Errors
///
/// [`AdminError::WeakPassword`], [`AdminError::NoSuchUser`] or a store error.
pub async fn reset_password(
    state: &State,
    operator: &Operator,
    username: &str,
    password: &SecretString,
) -> Result<(), AdminError> {
    check_password(password.expose_secret())?;
    let record = operator.record(
        AuditEventType::SecurityAlert,
        "user-password-reset",
        AuditAction::Update,
        AuditEntity::new(EntityKind::User, username),
    );
    let change = UserChange {
        disabled: None,
        password_hash: Some(hash(password).await?),
    };
    if state
        .repository
        .update_user(username, &change, &record)
        .await?
    {
        Ok(())
    } else {
        Err(AdminError::NoSuchUser(username.to_owned()))
    }
}

/// Every user.
///
/// # Errors
///
/// A store error.
pub async fn list_users(state: &State) -> Result<Vec<UserRecord>, AdminError> {
    Ok(state.repository.list_users().await?)
}

/// A freshly created API key: the secret exists only here, once.
#[derive(Debug)]
pub struct CreatedApiKey {
    /// Public id: the Basic user name, and the part before the `.` of the
    /// Bearer form `<id>.<secret>`.
    pub id: String,
    /// The secret. Shown once; only its SHA-256 is stored.
    pub secret: SecretString,
    /// Expiry, if any.
    pub expires_at: Option<DateTime<Utc>>,
}

/// Creates an API key.
///
/// # Errors
///
/// A store or randomness error.
pub async fn create_api_key(
    state: &State,
    operator: &Operator,
    name: &str,
    role: Role,
    expires_in_days: Option<i64>,
) -> Result<CreatedApiKey, AdminError> {
    let id = format!(
        "{}{}",
        secrets::API_KEY_PREFIX,
        hex::encode(secrets::random_bytes::<8>()?)
    );
    let secret = secrets::random_token()?;
    let now = Utc::now();
    let expires_at = expires_in_days.map(|d| now + chrono::Duration::days(d.max(1)));
    let key = ApiKeyRecord {
        id: id.clone(),
        name: name.to_owned(),
        role,
        secret_hash: secrets::token_hash(&secret),
        created_by: Some(operator.name.clone()),
        expires_at,
        revoked_at: None,
        created_at: now,
    };
    let mut record = operator.record(
        AuditEventType::SecurityAlert,
        "api-key-create",
        AuditAction::Create,
        AuditEntity::new(EntityKind::ApiKey, id.clone()),
    );
    record.outcome_desc = Some(format!("API key {name:?} with role {role}"));
    state.repository.create_api_key(&key, &record).await?;
    Ok(CreatedApiKey {
        id,
        secret: SecretString::from(secret),
        expires_at,
    })
}

/// Revokes an API key.
///
/// # Errors
///
/// [`AdminError::NoSuchKey`] or a store error.
pub async fn revoke_api_key(
    state: &State,
    operator: &Operator,
    id: &str,
) -> Result<(), AdminError> {
    let record = operator.record(
        AuditEventType::SecurityAlert,
        "api-key-revoke",
        AuditAction::Delete,
        AuditEntity::new(EntityKind::ApiKey, id),
    );
    if state.repository.revoke_api_key(id, &record).await? {
        Ok(())
    } else {
        Err(AdminError::NoSuchKey(id.to_owned()))
    }
}

/// Every API key (without secrets).
///
/// # Errors
///
/// A store error.
pub async fn list_api_keys(state: &State) -> Result<Vec<ApiKeyRecord>, AdminError> {
    Ok(state.repository.list_api_keys().await?)
}

/// On first start (no users at all), creates `admin` with `password` or, when
/// none is given, a random one, which is returned so the caller can show it
/// once. Returns `None` when users already exist.
///
/// # Errors
///
/// [`AdminError::WeakPassword`] for a given password that is too short, or a
/// store error.
pub async fn bootstrap_admin(
    state: &State,
    password: Option<&SecretString>,
) -> Result<Option<SecretString>, AdminError> {
    if state.repository.count_users().await? > 0 {
        return Ok(None);
    }
    let (password, generated) = match password {
        Some(p) => (p.clone(), false),
        None => (SecretString::from(secrets::random_token()?), true),
    };
    let system = Operator {
        name: "fusion".to_owned(),
    };
    match add_user(state, &system, "admin", Role::Admin, &password).await {
        Ok(()) => Ok(generated.then_some(password)),
        // Another replica created it first.
        Err(AdminError::Store(StoreError::AlreadyExists(_))) => Ok(None),
        Err(e) => Err(e),
    }
}
