//! Building and running the application: storage first (connect, migrate),
//! then the HTTP server on its own listener.

use std::net::{SocketAddr, TcpListener};
use std::sync::Arc;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServiceRequest, ServiceResponse};
use actix_web::http::header::{HeaderName, HeaderValue};
use actix_web::middleware::{Next, from_fn};
use actix_web::{App, HttpMessage, HttpServer, web};
use fusion_app::{Settings, SettingsError};
use tracing_actix_web::{RequestId, TracingLogger};

use crate::routes;
use crate::state::{AppState, AuthSettings};

/// Why the service could not start. Each message is one line an operator
/// can act on; none carries a password.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    /// Storage, meters or the outbox's settings could not be opened.
    #[error(transparent)]
    App(#[from] fusion_app::StartupError),
    /// Settings are malformed (the public base URL, the trusted proxies).
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The listen address cannot be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// The OpenAPI document of `GET /openapi.json`, serialised once per
/// process.
fn openapi_document() -> crate::routes::openapi::Document {
    static DOCUMENT: std::sync::LazyLock<Arc<Result<String, String>>> =
        std::sync::LazyLock::new(|| {
            Arc::new(crate::openapi::document_json().map_err(|e| e.to_string()))
        });
    crate::routes::openapi::Document(DOCUMENT.clone())
}

/// A built, bound, not yet running application.
pub struct Application {
    addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    server: Server,
    state: AppState,
}

impl Application {
    /// Connects storage (running pending migrations), binds the listener and
    /// prepares the server. Port 0 binds a free port; see [`Application::port`].
    ///
    /// # Errors
    ///
    /// [`StartupError`] naming the failing step.
    pub async fn build(settings: &Settings) -> Result<Self, StartupError> {
        // Before anything is accepted: the sweep below links only studies
        // stored before this instant.
        let started = chrono::Utc::now();
        let mut state = connect_storage(settings).await?;
        let listener = TcpListener::bind(settings.bind).map_err(|source| StartupError::Bind {
            addr: settings.bind,
            source,
        })?;
        let addr = listener.local_addr().map_err(|source| StartupError::Bind {
            addr: settings.bind,
            source,
        })?;
        // Models load once, here, and only where workers run them.
        if settings.workers > 0 {
            state.app.pipeline = Some(fusion_app::worker::load_pipeline(settings).await);
        }
        // What the packages state about themselves, for GET /models and the
        // model pages: with the pipeline's verdicts where it loaded them,
        // else by hashing their files (no weights loaded).
        state.app.catalogue = Arc::new(read_catalogue(settings, state.pipeline.as_deref()));
        let data = web::Data::new(state.clone());
        let data_for_metrics = data.clone();
        let openapi = web::Data::new(openapi_document());
        let server = HttpServer::new(move || {
            App::new()
                .wrap(from_fn(crate::gate::authenticate))
                .wrap(from_fn(crate::metrics::record_request))
                .wrap(from_fn(routes::head_as_get))
                // Outside authentication, so its refusals carry them too.
                .wrap(crate::dashboard::security_headers())
                .wrap(from_fn(request_id_header))
                .wrap(TracingLogger::<crate::telemetry::RouteRootSpan>::new())
                // Outermost: every body read, the gate's CSRF forms too, is
                // bounded, and an unread one closes the connection.
                .wrap(from_fn(crate::body_timeout::idle_timeout))
                .app_data(data.clone())
                .app_data(openapi.clone())
                .app_data(crate::error::json_config())
                .app_data(crate::error::query_config())
                .configure(crate::route_table::configure)
                .default_service(web::to(crate::error::not_found))
        })
        .listen(listener)
        .map_err(|source| StartupError::Bind {
            addr: settings.bind,
            source,
        })?
        .run();
        if let Some(pipeline) = &state.pipeline {
            fusion_app::worker::spawn_workers(&state, pipeline, settings.workers);
        }
        // Results leave through the outbox (issue #17).
        fusion_app::outbox::spawn_senders(&state);
        // The audit chain head, published outside the database (issue #14,
        // finding 5): a log line at start and on a schedule.
        if settings.audit_head_minutes > 0 {
            let publisher = state.app.clone();
            let every = std::time::Duration::from_secs(settings.audit_head_minutes * 60);
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                loop {
                    tick.tick().await;
                    fusion_app::publish_audit_head(&publisher).await;
                }
            });
        }
        // Studies stored before a crash but never linked reach their cases
        // (issue #14, finding 3); in the background, so start is not held up.
        let sweep = state.app.clone();
        let grace = chrono::Duration::minutes(
            i64::try_from(settings.blob_gc_grace_minutes).unwrap_or(i64::MAX / 60_000),
        );
        tokio::spawn(async move {
            if let Err(e) = fusion_app::ingest::link_orphan_studies(&sweep, started).await {
                tracing::error!(error = %e, "cannot sweep studies without a case");
            }
            // Then blobs no row refers to (issue #14, finding 8).
            if let Err(e) = fusion_app::blob_gc::collect_blobs(&sweep, grace).await {
                tracing::error!(error = %e, "blob collection failed");
            }
        });
        let metrics_addr = match settings.metrics_bind {
            Some(bind) => Some(
                crate::routes::monitoring::serve_metrics(bind, data_for_metrics)
                    .map_err(|source| StartupError::Bind { addr: bind, source })?,
            ),
            None => None,
        };
        if settings.monitoring_interval_seconds > 0 {
            let every = std::time::Duration::from_secs(settings.monitoring_interval_seconds);
            tokio::spawn(fusion_app::watch::run_periodically(
                state.app.clone(),
                every,
            ));
        }
        Ok(Self {
            addr,
            metrics_addr,
            server,
            state,
        })
    }

    /// The port actually bound.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The metrics listener's address, when `metrics_bind` is set.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The shared state (storage handles).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until the process receives SIGINT or SIGTERM (actix-web's
    /// signal handling), then drains in-flight requests.
    ///
    /// # Errors
    ///
    /// The server's I/O error.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

/// Opens the application's state ([`fusion_app::connect_storage`]) and
/// adds the HTTP policies: sessions and lockout, the public URL and trusted
/// proxies, the login throttle, the STOW-RS body limit.
///
/// # Errors
///
/// [`StartupError::App`] or [`StartupError::Settings`].
pub async fn connect_storage(settings: &Settings) -> Result<AppState, StartupError> {
    let app = fusion_app::connect_storage(settings).await?;
    let per_minute = std::num::NonZeroU32::new(settings.login_attempts_per_minute.max(1))
        .unwrap_or(std::num::NonZeroU32::MIN);
    Ok(AppState {
        app,
        auth: AuthSettings {
            session_ttl: chrono::Duration::minutes(settings.session_ttl_minutes.max(1)),
            session_idle: chrono::Duration::minutes(settings.session_idle_minutes.max(1)),
            cookie_secure: settings.cookie_secure,
            lockout: fusion_store::LockoutPolicy {
                max_failures: settings.lockout_failures.max(1),
                lock_for: chrono::Duration::minutes(settings.lockout_minutes.max(1)),
            },
        },
        stow_max_bytes: settings.stow_max_bytes,
        body_idle_timeout: std::time::Duration::from_secs(settings.body_idle_timeout_seconds),
        public_url: crate::public_url::PublicUrl::new(
            settings.public_base_url.as_deref(),
            &settings.trusted_proxies,
        )?,
        login_limiter: Arc::new(governor::RateLimiter::keyed(governor::Quota::per_minute(
            per_minute,
        ))),
    })
}

/// Reads the model catalogue, logging each unusable package's reason (file
/// paths and hashes stay in the operator's log).
fn read_catalogue(
    settings: &Settings,
    pipeline: Option<&fusion_models::Pipeline>,
) -> fusion_models::catalogue::Catalogue {
    use fusion_models::catalogue::Catalogue;
    let catalogue = match pipeline {
        Some(p) => Catalogue::read_loaded(&settings.models_dir, &p.packages()),
        None => Catalogue::read(&settings.models_dir),
    };
    for p in &catalogue.packages {
        if let Some(detail) = &p.detail {
            tracing::warn!(package = %p.name, error = %detail, "model package unusable");
        }
    }
    catalogue
}

/// Echoes the request id `TracingLogger` assigned as `X-Request-Id`, so a
/// caller can quote it and an operator can find the request's spans and
/// audit events.
async fn request_id_header(
    req: ServiceRequest,
    next: Next<impl MessageBody>,
) -> Result<ServiceResponse<impl MessageBody>, actix_web::Error> {
    let request_id = req.extensions().get::<RequestId>().copied();
    let mut res = next.call(req).await?;
    if let Some(id) = request_id
        && let Ok(value) = HeaderValue::from_str(&id.to_string())
    {
        res.headers_mut()
            .insert(HeaderName::from_static("x-request-id"), value);
    }
    Ok(res)
}
