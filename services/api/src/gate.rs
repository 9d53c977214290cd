//! The gate in front of every route: authentication, authorisation and
//! CSRF, as one middleware ([`authenticate`]) that wraps the whole
//! application.
//!
//! It reads the credential a request presents (a session token or an API
//! key, see [`crate::auth`]) and checks it against the store, then looks
//! the route up in the route table ([`crate::route_table`]), which says what each
//! route needs. It answers 401 without valid credentials and 403 without
//! the permission, and audits failed credentials and refusals. For
//! dashboard pages (`Access::Page`) asked for by a browser (`Accept:
//! text/html`) it answers in HTML instead: a redirect to `/login`, or a 403
//! page that says who is signed in and whom the page is for.
//!
//! The gate sits above the modules it joins (it depends on `auth`, the
//! route table and the dashboard's refusal pages; none of them depends on
//! it), so `auth` stays free of routes and pages.

use actix_web::body::{EitherBody, MessageBody};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{Method, StatusCode, header};
use actix_web::middleware::Next;
use actix_web::{HttpMessage, HttpResponse, web};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::Utc;
use fusion_schemas::ErrorBody;
use fusion_store::{
    AgentKind, AuditAction, AuditAgent, AuditEventType, AuditOutcome, AuditRecord, EntityKind,
};

use crate::AppState;
use crate::auth::{
    API_KEY_PREFIX, CredentialSource, Principal, PrincipalKind, SESSION_COOKIE, client_address,
    request_id, secrets,
};
use crate::route_table::{Access, lookup};

/// A credential as presented, before it is checked.
enum Credential {
    Session {
        token: String,
        via: CredentialSource,
    },
    ApiKey {
        id: String,
        secret: String,
        via: CredentialSource,
    },
}

/// The credential a request presents: `Ok(None)` when it presents none,
/// `Err(reason)` when its Authorization header is present but unusable (not
/// visible ASCII, no scheme, an unknown scheme, Basic that is not base64 of
/// `id:secret`), which is a failed authentication attempt like a wrong
/// secret and audited as one (IHE ATNA User Authentication).
fn presented_credential(req: &ServiceRequest) -> Result<Option<Credential>, &'static str> {
    if let Some(value) = req.headers().get(header::AUTHORIZATION) {
        let value = value
            .to_str()
            .map_err(|_| "malformed Authorization header: not visible ASCII")?
            .trim();
        let (scheme, rest) = value
            .split_once(' ')
            .ok_or("malformed Authorization header: no scheme and credentials")?;
        let rest = rest.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            if rest.starts_with(API_KEY_PREFIX)
                && let Some((id, secret)) = rest.split_once('.')
            {
                return Ok(Some(Credential::ApiKey {
                    id: id.to_owned(),
                    secret: secret.to_owned(),
                    via: CredentialSource::Bearer,
                }));
            }
            return Ok(Some(Credential::Session {
                token: rest.to_owned(),
                via: CredentialSource::Bearer,
            }));
        }
        if scheme.eq_ignore_ascii_case("basic") {
            let malformed =
                "malformed Authorization header: Basic credentials are not base64 of id:secret";
            let decoded = STANDARD.decode(rest).map_err(|_| malformed)?;
            let decoded = String::from_utf8(decoded).map_err(|_| malformed)?;
            let (id, secret) = decoded.split_once(':').ok_or(malformed)?;
            return Ok(Some(Credential::ApiKey {
                id: id.to_owned(),
                secret: secret.to_owned(),
                via: CredentialSource::Basic,
            }));
        }
        return Err("unsupported Authorization scheme (Bearer or Basic)");
    }
    Ok(req.cookie(SESSION_COOKIE).map(|c| Credential::Session {
        token: c.value().to_owned(),
        via: CredentialSource::Cookie,
    }))
}

/// Whether `id` has the shape of an API key id: the prefix, then at most 64
/// letters, digits, `-` or `_` (issued ids are the prefix and 16 hex digits).
fn is_key_id(id: &str) -> bool {
    id.strip_prefix(API_KEY_PREFIX).is_some_and(|rest| {
        !rest.is_empty()
            && rest.len() <= 64
            && rest
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    })
}

/// Why a credential was refused; kept out of responses (which say only
/// "invalid credentials") but written to the audit event.
enum Refusal {
    /// No credential presented at all.
    Absent,
    Invalid {
        tried: String,
        reason: &'static str,
    },
    Unavailable(fusion_store::StoreError),
}

async fn check_credential(state: &AppState, credential: Credential) -> Result<Principal, Refusal> {
    let now = Utc::now();
    match credential {
        Credential::ApiKey { id, secret, via } => {
            // What is not shaped like a key id goes nowhere, and never into
            // the append-only trail: no control characters, no 6,000-byte
            // ids, no secret pasted into the id field (re-attack review).
            if !is_key_id(&id) {
                let _ =
                    secrets::digests_equal(&secrets::token_hash(&secret), &secrets::token_hash(""));
                return Err(Refusal::Invalid {
                    tried: String::new(),
                    reason: "malformed API key id",
                });
            }
            let key = state
                .repository
                .api_key(&id)
                .await
                .map_err(Refusal::Unavailable)?;
            let presented = secrets::token_hash(&secret);
            let invalid = |reason| Refusal::Invalid {
                tried: id.clone(),
                reason,
            };
            let Some(key) = key else {
                // Compare anyway, so an unknown id costs the same time.
                let _ = secrets::digests_equal(&presented, &secrets::token_hash(""));
                return Err(invalid("unknown API key id"));
            };
            if !secrets::digests_equal(&presented, &key.secret_hash) {
                return Err(invalid("wrong API key secret"));
            }
            if key.revoked_at.is_some() {
                return Err(invalid("API key revoked"));
            }
            if key.expires_at.is_some_and(|t| t <= now) {
                return Err(invalid("API key expired"));
            }
            Ok(Principal {
                kind: PrincipalKind::ApiKey,
                id: key.id,
                name: key.name,
                role: key.role,
                via,
                session: None,
            })
        }
        Credential::Session { token, via } => {
            let hash = secrets::token_hash(&token);
            let session = state
                .repository
                .session(&hash)
                .await
                .map_err(Refusal::Unavailable)?;
            let invalid = |reason| Refusal::Invalid {
                tried: String::new(),
                reason,
            };
            let Some(session) = session else {
                return Err(invalid("unknown session token"));
            };
            if session.revoked_at.is_some() {
                return Err(invalid("session ended"));
            }
            if session.expires_at <= now {
                return Err(invalid("session expired"));
            }
            if now - session.last_seen_at > state.auth.session_idle {
                return Err(invalid("session idle too long"));
            }
            let user = state
                .repository
                .user_by_id(session.user_id)
                .await
                .map_err(Refusal::Unavailable)?;
            let Some(user) = user.filter(|u| !u.disabled) else {
                return Err(invalid("user disabled"));
            };
            // Writing on every request would serialise them; a minute's
            // precision is plenty for an idle timeout of many minutes.
            if now - session.last_seen_at > chrono::Duration::seconds(60) {
                state
                    .repository
                    .touch_session(&hash, now)
                    .await
                    .map_err(Refusal::Unavailable)?;
            }
            Ok(Principal {
                kind: PrincipalKind::User,
                id: user.id.to_string(),
                name: user.username,
                role: user.role,
                via,
                session: Some(hash),
            })
        }
    }
}

fn error_response(status: StatusCode, code: &str, message: &str) -> HttpResponse {
    let mut res = HttpResponse::build(status);
    if status == StatusCode::UNAUTHORIZED {
        res.insert_header((
            header::WWW_AUTHENTICATE,
            "Bearer realm=\"fusion\", Basic realm=\"fusion\"",
        ));
    }
    res.json(ErrorBody {
        code: code.to_owned(),
        message: message.to_owned(),
        request_id: None,
    })
}

fn is_state_changing(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Appends the `access-denied` security alert (DICOM 110113, minor failure)
/// of a refused request; a failure to append is logged, not raised.
async fn audit_access_denied(
    state: &AppState,
    req: &ServiceRequest,
    principal: &Principal,
    why: String,
) {
    let http = req.request();
    let record = AuditRecord::builder(
        AuditEventType::SecurityAlert,
        "access-denied",
        action_of(req.method()),
        principal.agent(client_address(http)),
    )
    .outcome(AuditOutcome::MinorFailure)
    .outcome_desc(why)
    .request_id(request_id(http))
    .build();
    if let Err(e) = state.repository.append_audit(&record).await {
        tracing::error!(error = %e, "cannot audit a refusal");
    }
}

/// The middleware: authenticates, authorises against the route table,
/// checks CSRF for cookie sessions, and audits refusals.
pub(crate) async fn authenticate<B: MessageBody + 'static>(
    mut req: ServiceRequest,
    next: Next<B>,
) -> Result<ServiceResponse<EitherBody<B>>, actix_web::Error> {
    let Some(state) = req.app_data::<web::Data<AppState>>().cloned() else {
        return Ok(req.into_response(
            error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                "internal error",
            )
            .map_into_right_body(),
        ));
    };
    let pattern = req.match_pattern();
    let access = pattern
        .as_deref()
        .and_then(|p| lookup(req.method(), p))
        .map(|spec| spec.access);
    if matches!(access, Some(Access::Public)) {
        return Ok(next.call(req).await?.map_into_left_body());
    }
    let reply =
        |req: ServiceRequest, res: HttpResponse| Ok(req.into_response(res.map_into_right_body()));
    // A browser asking for a dashboard page gets pages, not JSON errors.
    let page = matches!(access, Some(Access::Page(_))) && crate::dashboard::wants_html(&req);
    let checked = match presented_credential(&req) {
        Ok(Some(credential)) => check_credential(&state, credential).await,
        Ok(None) => Err(Refusal::Absent),
        Err(reason) => Err(Refusal::Invalid {
            tried: String::new(),
            reason,
        }),
    };
    let principal = match checked {
        Ok(p) => p,
        Err(Refusal::Absent) => {
            if page {
                let res = crate::dashboard::to_login(req.request());
                return reply(req, res);
            }
            return reply(
                req,
                error_response(
                    StatusCode::UNAUTHORIZED,
                    "unauthenticated",
                    "authentication required: a session token (POST /auth/login) or an API key",
                ),
            );
        }
        Err(Refusal::Unavailable(e)) => {
            tracing::error!(error = %e, "cannot check credentials");
            return reply(
                req,
                error_response(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "cannot check credentials right now; try again",
                ),
            );
        }
        Err(Refusal::Invalid { tried, reason }) => {
            let http = req.request().clone();
            let agent = AuditAgent::new(AgentKind::Anonymous, "", tried.clone())
                .address(client_address(&http));
            let mut record = AuditRecord::builder(
                AuditEventType::UserAuthentication,
                "credential-check",
                AuditAction::Execute,
                agent,
            )
            .outcome(AuditOutcome::SeriousFailure)
            .outcome_desc(reason)
            .request_id(request_id(&http));
            if !tried.is_empty() {
                record = record.entity(EntityKind::ApiKey, tried);
            }
            let record = record.build();
            if let Err(e) = state.repository.append_audit(&record).await {
                tracing::error!(error = %e, "cannot audit a failed credential");
            }
            tracing::warn!(reason, "credential refused");
            if page {
                let res = crate::dashboard::to_login(req.request());
                return reply(req, res);
            }
            return reply(
                req,
                error_response(
                    StatusCode::UNAUTHORIZED,
                    "invalid_credentials",
                    "invalid credentials",
                ),
            );
        }
    };
    // Fail closed: a request the route table cannot place is refused, never
    // passed on. The router matches the percent-decoded path while
    // `match_pattern` reads the raw one, so `/%63ases` reaches the `/cases`
    // handler with no pattern here; without this arm any credential would
    // pass every permission check that way. A known path asked with another
    // method (no spec, but a pattern) goes on to the router's 405.
    if pattern.is_none() {
        // An unknown plain path is an ordinary 404 (a browser's favicon);
        // a percent-encoded one that no pattern matches is a probe: audited.
        if !req.path().contains('%') {
            return reply(
                req,
                error_response(StatusCode::NOT_FOUND, "not_found", "no such route"),
            );
        }
        let why = format!(
            "no route of the table matches this percent-encoded {} path",
            req.method()
        );
        audit_access_denied(&state, &req, &principal, why).await;
        return reply(
            req,
            error_response(StatusCode::NOT_FOUND, "not_found", "no such route"),
        );
    }
    match access {
        Some(Access::Any(permissions) | Access::Page(permissions))
            if !permissions.iter().any(|p| principal.can(*p)) =>
        {
            let why = format!(
                "role {} lacks {:?} for {} {}",
                principal.role,
                permissions,
                req.method(),
                pattern.as_deref().unwrap_or("")
            );
            audit_access_denied(&state, &req, &principal, why).await;
            if page {
                let res = crate::dashboard::forbidden_page(req.request(), &principal, permissions);
                return reply(req, res);
            }
            return reply(
                req,
                error_response(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    &format!("the {} role may not do this", principal.role),
                ),
            );
        }
        _ => {}
    }
    if principal.via == CredentialSource::Cookie && is_state_changing(req.method()) {
        match csrf_ok(&mut req, &state, &principal).await {
            Ok(true) => {}
            Ok(false) => {
                // A forged cross-site request looks like this: a security
                // alert, as every other refusal (IHE ATNA), naming the
                // route pattern only (never the path or query).
                let why = format!(
                    "missing or wrong CSRF token for a cookie session's {} {}",
                    req.method(),
                    pattern.as_deref().unwrap_or("")
                );
                audit_access_denied(&state, &req, &principal, why).await;
                if page {
                    let res = crate::dashboard::csrf_page(req.request(), &principal);
                    return reply(req, res);
                }
                return reply(
                    req,
                    error_response(
                        StatusCode::FORBIDDEN,
                        "csrf",
                        "missing or wrong CSRF token for a cookie session",
                    ),
                );
            }
            Err(e) => return Err(e),
        }
    }
    tracing::Span::current().record("principal", principal.id.as_str());
    req.extensions_mut().insert(principal);
    Ok(next.call(req).await?.map_into_left_body())
}

/// Maps an HTTP method to the audit action of a refused request.
pub(crate) fn action_of(method: &Method) -> AuditAction {
    match *method {
        Method::POST => AuditAction::Create,
        Method::PUT | Method::PATCH => AuditAction::Update,
        Method::DELETE => AuditAction::Delete,
        _ => AuditAction::Read,
    }
}

/// Largest form body read to find a CSRF token.
const CSRF_FORM_LIMIT: usize = 1 << 20;

/// Double-submit check: the token presented (header, or form field for HTML
/// forms) must hash to the session's CSRF token hash. A form body is read and
/// put back for the handler.
async fn csrf_ok(
    req: &mut ServiceRequest,
    state: &AppState,
    principal: &Principal,
) -> Result<bool, actix_web::Error> {
    let Some(hash) = &principal.session else {
        return Ok(false);
    };
    let session = match state.repository.session(hash).await {
        Ok(Some(s)) => s,
        _ => return Ok(false),
    };
    let presented = if let Some(v) = req.headers().get("x-csrf-token") {
        v.to_str().ok().map(str::to_owned)
    } else if req
        .content_type()
        .eq_ignore_ascii_case("application/x-www-form-urlencoded")
    {
        let mut payload = req.take_payload();
        let mut body = web::BytesMut::new();
        use futures::StreamExt as _;
        while let Some(chunk) = payload.next().await {
            let chunk = chunk?;
            if body.len() + chunk.len() > CSRF_FORM_LIMIT {
                return Ok(false);
            }
            body.extend_from_slice(&chunk);
        }
        let body = body.freeze();
        let token = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&body)
            .ok()
            .and_then(|pairs| pairs.into_iter().find(|(k, _)| k == "csrf_token"))
            .map(|(_, v)| v);
        req.set_payload(actix_web::dev::Payload::from(body));
        token
    } else {
        None
    };
    Ok(presented.is_some_and(|t| {
        secrets::digests_equal(&secrets::token_hash(&t), &session.csrf_token_hash)
    }))
}
