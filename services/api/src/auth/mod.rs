//! Who is calling and what they may do (HIPAA §164.312(a) access control,
//! §164.312(d) person or entity authentication): the [`Principal`] a
//! request runs as, the role permission matrix ([`permissions`]), token and
//! password hashing ([`secrets`]) and the audit context of a request.
//!
//! Three kinds of credential establish a principal:
//!
//! - a session token from `POST /auth/login`, as `Authorization: Bearer
//!   <token>` or as the `fusion_session` cookie (HttpOnly, Secure,
//!   SameSite=Strict; state-changing requests then need the session's CSRF
//!   token in `X-CSRF-Token` or a `csrf_token` form field);
//! - an API key, as `Authorization: Basic base64(<key id>:<secret>)` (what
//!   Orthanc can send) or `Authorization: Bearer <key id>.<secret>`.
//!
//! They are read and checked by the gate (`crate::gate`), the middleware in
//! front of every route, which also applies the route table's access rules
//! and answers refusals; this module depends on neither the routes nor the
//! dashboard.

mod context;
pub mod permissions;
pub use fusion_app::secrets;

use std::net::IpAddr;

use actix_web::HttpMessage;
use fusion_schemas::Role;
use fusion_store::{AgentKind, AuditAgent};

pub use context::AuditContext;
pub use permissions::{Permission, allows};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "fusion_session";

/// Name of the cookie holding the session's CSRF token (not HttpOnly): the
/// dashboard echoes it into its forms' `csrf_token` field, and the
/// middleware checks that field against the session's stored hash.
pub const CSRF_COOKIE: &str = "fusion_csrf";

pub use fusion_app::secrets::API_KEY_PREFIX;

/// Who is calling, as established by the gate (`crate::gate::authenticate`);
/// handlers take it with the [`Principal`] extractor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// A user (by session) or an API key.
    pub kind: PrincipalKind,
    /// Our id of the user or key.
    pub id: String,
    /// User name or key label.
    pub name: String,
    /// The role.
    pub role: Role,
    /// How the credential came: decides whether CSRF applies.
    pub via: CredentialSource,
    /// The session's token hash, when authenticated by session.
    pub session: Option<String>,
}

/// What kind of agent a [`Principal`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    /// A person, logged in.
    User,
    /// An integration client's API key.
    ApiKey,
}

impl PrincipalKind {
    /// `user` or `api_key`, as in audit events.
    pub fn as_str(self) -> &'static str {
        self.agent_kind().as_str()
    }

    /// The audit agent kind.
    pub fn agent_kind(self) -> AgentKind {
        match self {
            Self::User => AgentKind::User,
            Self::ApiKey => AgentKind::ApiKey,
        }
    }
}

/// Where the credential was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CredentialSource {
    /// `Authorization: Bearer`.
    Bearer,
    /// `Authorization: Basic`.
    Basic,
    /// The session cookie.
    Cookie,
}

impl Principal {
    /// Whether this principal holds `permission`.
    pub fn can(&self, permission: Permission) -> bool {
        allows(self.role, permission)
    }

    /// This principal as an audit agent.
    pub fn agent(&self, address: Option<String>) -> AuditAgent {
        AuditAgent::new(self.kind.agent_kind(), self.id.clone(), self.name.clone())
            .role(self.role.as_str())
            .address(address)
    }
}

impl actix_web::FromRequest for Principal {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &actix_web::HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        std::future::ready(
            req.extensions()
                .get::<Principal>()
                .cloned()
                .ok_or_else(|| actix_web::error::ErrorUnauthorized("not authenticated")),
        )
    }
}

/// The client's address: the TCP peer. Behind a reverse proxy, configure the
/// proxy to pass it and terminate TLS there (compliance/deployment.md).
pub fn client_address(req: &actix_web::HttpRequest) -> Option<String> {
    req.peer_addr().map(|a| a.ip().to_string())
}

pub(crate) fn client_ip(req: &actix_web::HttpRequest) -> Option<IpAddr> {
    req.peer_addr().map(|a| a.ip())
}

pub(crate) fn request_id(req: &actix_web::HttpRequest) -> Option<String> {
    req.extensions()
        .get::<tracing_actix_web::RequestId>()
        .map(|id| id.to_string())
}
