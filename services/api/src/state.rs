//! The HTTP service's shared state: the application's state
//! ([`fusion_app::State`]) plus what only HTTP needs (session policy, STOW-RS
//! body limit, public URL, login throttle). Every handler takes it as
//! `web::Data<AppState>`.

use std::sync::Arc;

/// What every handler shares: the application's [`fusion_app::State`]
/// (storage, models, queues, meters) and the HTTP-only policies; cheap to
/// clone.
///
/// It dereferences to the application's state, so a handler reads
/// `state.repository` and hands `&state` to `fusion_app`'s operations: the
/// HTTP state is the application's state plus what only HTTP needs.
#[derive(Clone)]
pub struct AppState {
    /// The application: storage handles, models, queues, meters.
    pub app: fusion_app::State,
    /// Session and lockout policy.
    pub auth: AuthSettings,
    /// Largest STOW-RS body, bytes.
    pub stow_max_bytes: u64,
    /// Longest pause within a request body ([`crate::body_timeout`]).
    pub body_idle_timeout: std::time::Duration,
    /// How the service names itself in the links it hands out.
    pub public_url: crate::public_url::PublicUrl,
    /// Per-client-address throttle of login attempts (this process).
    pub login_limiter: Arc<governor::DefaultKeyedRateLimiter<std::net::IpAddr>>,
}

impl std::ops::Deref for AppState {
    type Target = fusion_app::State;

    fn deref(&self) -> &fusion_app::State {
        &self.app
    }
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState")
            .field("app", &self.app)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

/// Session and lockout policy, from the settings.
#[derive(Debug, Clone)]
pub struct AuthSettings {
    /// Absolute session lifetime.
    pub session_ttl: chrono::Duration,
    /// Idle timeout.
    pub session_idle: chrono::Duration,
    /// `Secure` flag on the session cookie.
    pub cookie_secure: bool,
    /// Account lockout.
    pub lockout: fusion_store::LockoutPolicy,
}
