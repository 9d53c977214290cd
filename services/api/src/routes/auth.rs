//! `POST /auth/login`, `POST /auth/logout`, `GET /auth/me`.
//!
//! The dashboard's form login (`POST /login`, `POST /logout`) goes through
//! the same [`attempt_login`], [`session_cookies`] and [`end_session`], so
//! both paths throttle, lock, audit and set cookies alike.
//!
//! Failed logins are throttled per client address (in this process) and
//! lock the account after repeated failures (in the database, so every
//! replica sees it). Every answer to a failed login is the same, whether the
//! user exists, the password is wrong, or the account is disabled or locked.

use actix_web::cookie::{Cookie, SameSite, time};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use fusion_schemas::ErrorBody;
use fusion_store::{
    AgentKind, AuditAction, AuditAgent, AuditEntity, AuditEventType, AuditOutcome, AuditRecord,
    EntityKind, LoginGate, SessionRecord,
};
use serde::{Deserialize, Serialize};

use crate::auth::{
    AuditContext, CSRF_COOKIE, Principal, SESSION_COOKIE, client_address, client_ip, request_id,
    secrets,
};
use crate::{ApiError, AppState};

/// Body of `POST /auth/login`.
#[derive(Deserialize, utoipa::ToSchema)]
pub(crate) struct LoginRequest {
    username: String,
    password: String,
}

/// Answer to a successful login.
#[derive(Serialize, utoipa::ToSchema)]
pub(crate) struct LoginResponse {
    /// Opaque session token: `Authorization: Bearer <token>`.
    token: String,
    token_type: &'static str,
    /// Absolute expiry (RFC 3339).
    expires_at: String,
    /// For cookie sessions: send in `X-CSRF-Token` or a `csrf_token` field
    /// on state-changing requests.
    csrf_token: String,
    username: String,
    role: String,
}

fn invalid_credentials() -> HttpResponse {
    HttpResponse::Unauthorized().json(ErrorBody {
        code: "invalid_credentials".into(),
        message: "invalid user name or password, or the account is disabled or locked".into(),
        request_id: None,
    })
}

/// A successful login: the new session's secrets, shown to the caller once.
pub(crate) struct NewSession {
    /// Opaque session token.
    pub token: String,
    /// The session's CSRF token.
    pub csrf: String,
    /// Absolute expiry.
    pub expires_at: chrono::DateTime<Utc>,
    /// The user's name.
    pub username: String,
    /// The user's role.
    pub role: fusion_schemas::Role,
}

/// What a login attempt came to.
pub(crate) enum LoginOutcome {
    /// Signed in.
    Success(NewSession),
    /// Too many attempts from this address.
    Throttled,
    /// Unknown user, wrong password, disabled or locked: all look alike.
    Refused,
}

/// Checks a user name and password, throttling per client address and
/// locking after repeated failures; starts a session on success. Audits every
/// attempt, throttled and locked ones included, and the lock itself.
///
/// The attempt is counted in the database before the password is checked
/// ([`fusion_store::IdentityRepository::begin_login`]), a locked account is
/// refused without checking it, and a success starts a session only if no
/// lock was set meanwhile: under a burst of concurrent guesses at most
/// `FUSION_LOCKOUT_FAILURES` passwords are checked per lock (issue #14,
/// finding 2; OWASP ASVS 4.0 V2.2.1).
pub(crate) async fn attempt_login(
    req: &HttpRequest,
    state: &AppState,
    username: &str,
    password: &str,
) -> Result<LoginOutcome, ApiError> {
    // A control character (a NUL, which PostgreSQL text refuses) cannot be
    // in a user name: replaced, the name matches no user and the attempt is
    // refused, throttled and audited like any unknown name.
    let cleaned: String = username
        .chars()
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect();
    let username = cleaned.as_str();
    let address = client_address(req);
    let rid = request_id(req);
    let failure = |reason: &str| {
        let agent = AuditAgent::new(
            AgentKind::Anonymous,
            "",
            username.chars().take(128).collect::<String>(),
        )
        .address(address.clone());
        AuditRecord::builder(
            AuditEventType::UserAuthentication,
            "login",
            AuditAction::Execute,
            agent,
        )
        .outcome(AuditOutcome::SeriousFailure)
        .outcome_desc(reason)
        .request_id(rid.clone())
        .build()
    };
    // The store names the locked account among the entities.
    let lock_event = || {
        let agent = AuditAgent::new(AgentKind::System, "", "lockout policy")
            .address(address.clone())
            .not_requestor();
        AuditRecord::builder(
            AuditEventType::SecurityAlert,
            "account-lock",
            AuditAction::Update,
            agent,
        )
        .outcome_desc("account locked after repeated failed logins")
        .request_id(rid.clone())
        .build()
    };
    let policy = &state.auth.lockout;
    let refuse = |reason: &'static str| async move {
        state
            .repository
            .record_failed_login(None, policy, &failure(reason), &lock_event())
            .await
            .map_err(|e| ApiError::Internal(e.into()))
    };
    if let Some(ip) = client_ip(req)
        && state.login_limiter.check_key(&ip).is_err()
    {
        refuse("throttled").await?;
        return Ok(LoginOutcome::Throttled);
    }
    let now = Utc::now();
    // Count the attempt (or find the account locked) before any password is
    // checked.
    let gate = state
        .repository
        .begin_login(username, policy, now, &lock_event())
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let (admitted, refusal) = match gate {
        LoginGate::Admitted(user) => (Some(user), None),
        LoginGate::Unknown => (None, Some("unknown user name")),
        LoginGate::Disabled(_) => (None, Some("user disabled")),
        LoginGate::Locked { locked_now, .. } => {
            if locked_now {
                tracing::warn!("account locked after repeated failed logins");
            }
            (None, Some("account locked"))
        }
    };
    // Verify even when the attempt is refused, against a decoy (never the
    // account's hash), so the answer takes the same time either way.
    let phc = admitted
        .as_ref()
        .map(|u| u.password_hash.clone())
        .unwrap_or_else(|| secrets::decoy_hash().to_owned());
    let candidate = password.to_owned();
    let verified = web::block(move || secrets::verify_password(&candidate, &phc))
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    let user = match (admitted, refusal) {
        (Some(user), _) if verified => user,
        (Some(user), _) => {
            let locked = state
                .repository
                .record_failed_login(
                    Some(user.id),
                    policy,
                    &failure("wrong password"),
                    &lock_event(),
                )
                .await
                .map_err(|e| ApiError::Internal(e.into()))?;
            if locked.is_some() {
                tracing::warn!("account locked after repeated failed logins");
            }
            return Ok(LoginOutcome::Refused);
        }
        (None, reason) => {
            refuse(reason.unwrap_or("refused")).await?;
            return Ok(LoginOutcome::Refused);
        }
    };
    let token = secrets::random_token().map_err(|e| ApiError::Internal(e.into()))?;
    let csrf = secrets::random_token().map_err(|e| ApiError::Internal(e.into()))?;
    let now = Utc::now();
    let session = SessionRecord {
        token_hash: secrets::token_hash(&token),
        user_id: user.id,
        csrf_token_hash: secrets::token_hash(&csrf),
        created_at: now,
        last_seen_at: now,
        expires_at: now + state.auth.session_ttl,
        revoked_at: None,
    };
    let agent = AuditAgent::new(AgentKind::User, user.id.to_string(), user.username.clone())
        .role(user.role.as_str())
        .address(address.clone());
    let record = AuditRecord::builder(
        AuditEventType::UserAuthentication,
        "login",
        AuditAction::Execute,
        agent,
    )
    .entity(EntityKind::User, user.id.to_string())
    .request_id(rid.clone())
    .build();
    let started = state
        .repository
        .start_session(&session, &record)
        .await
        .map_err(|e| ApiError::Internal(e.into()))?;
    if !started {
        // The right password, but the account was locked (or disabled)
        // while it was being checked: the lock stands.
        refuse("account locked while the password was checked").await?;
        return Ok(LoginOutcome::Refused);
    }
    tracing::info!(user = %user.id, "login");
    Ok(LoginOutcome::Success(NewSession {
        token,
        csrf,
        expires_at: session.expires_at,
        username: user.username.clone(),
        role: user.role,
    }))
}

/// The cookies a new session sets: the session token (`fusion_session`,
/// HttpOnly) first, then its CSRF token (`fusion_csrf`, readable by the page
/// so forms can echo it back; bound to the session by its stored hash).
/// Both SameSite=Strict, Path=/, Secure as configured, living as long as
/// the session.
pub(crate) fn session_cookies(state: &AppState, session: &NewSession) -> [Cookie<'static>; 2] {
    let max_age = time::Duration::seconds(state.auth.session_ttl.num_seconds());
    let build = |name: &'static str, value: String, http_only: bool| {
        Cookie::build(name, value)
            .http_only(http_only)
            .secure(state.auth.cookie_secure)
            .same_site(SameSite::Strict)
            .path("/")
            .max_age(max_age)
            .finish()
    };
    [
        build(SESSION_COOKIE, session.token.clone(), true),
        build(CSRF_COOKIE, session.csrf.clone(), false),
    ]
}

/// Cookies that remove both session cookies.
pub(crate) fn removal_cookies() -> [Cookie<'static>; 2] {
    [SESSION_COOKIE, CSRF_COOKIE].map(|name| {
        let mut gone = Cookie::build(name, "").path("/").finish();
        gone.make_removal();
        gone
    })
}

/// Ends the caller's session, if it is one (an API key has none), audited.
pub(crate) async fn end_session(state: &AppState, ctx: &AuditContext) -> Result<(), ApiError> {
    if let Some(hash) = &ctx.principal.session {
        let record = ctx.record(
            AuditEventType::UserAuthentication,
            "logout",
            AuditAction::Execute,
            vec![AuditEntity::new(EntityKind::User, ctx.principal.id.clone())],
            vec![],
        );
        state
            .repository
            .end_session(hash, &record)
            .await
            .map_err(|e| ApiError::Internal(e.into()))?;
    }
    Ok(())
}

pub(crate) async fn login(
    req: HttpRequest,
    state: web::Data<AppState>,
    body: web::Json<LoginRequest>,
) -> Result<HttpResponse, ApiError> {
    let LoginRequest { username, password } = body.into_inner();
    match attempt_login(&req, &state, &username, &password).await? {
        LoginOutcome::Throttled => Ok(HttpResponse::build(StatusCode::TOO_MANY_REQUESTS)
            .insert_header(("Retry-After", "60"))
            .json(ErrorBody {
                code: "too_many_attempts".into(),
                message: "too many login attempts from this address; wait a minute".into(),
                request_id: None,
            })),
        LoginOutcome::Refused => Ok(invalid_credentials()),
        LoginOutcome::Success(session) => {
            let mut res = HttpResponse::Ok();
            for cookie in session_cookies(&state, &session) {
                res.cookie(cookie);
            }
            Ok(res.json(LoginResponse {
                expires_at: session.expires_at.to_rfc3339(),
                token: session.token,
                token_type: "Bearer",
                csrf_token: session.csrf,
                username: session.username,
                role: session.role.as_str().into(),
            }))
        }
    }
}

pub(crate) async fn logout(
    state: web::Data<AppState>,
    ctx: AuditContext,
) -> Result<HttpResponse, ApiError> {
    end_session(&state, &ctx).await?;
    let mut res = HttpResponse::NoContent();
    for cookie in removal_cookies() {
        res.cookie(cookie);
    }
    Ok(res.finish())
}

/// Who am I: kind, id, name and role of the caller.
pub(crate) async fn me(principal: Principal) -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({
        "kind": principal.kind.as_str(),
        "id": principal.id,
        "name": principal.name,
        "role": principal.role,
    }))
}
