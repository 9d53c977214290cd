//! `GET /monitoring` (the model monitor's report: JSON, or the page for a
//! browser) and `GET /metrics` (Prometheus text format), on the main
//! listener behind authentication, and `GET /metrics` alone on its own
//! listener when `metrics_bind` is set.

use std::net::{SocketAddr, TcpListener};

use actix_web::http::header;
use actix_web::{App, HttpRequest, HttpResponse, HttpServer, web};

use crate::AppState;
use crate::auth::Principal;
use crate::dashboard::PageError;
use crate::startup::StartupError;

/// The content type of the Prometheus text exposition format.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /monitoring`: evaluates the monitor (raising any new alert) and
/// answers its report as JSON, or as the page when the client asks for
/// `text/html`.
pub(crate) async fn report(
    req: HttpRequest,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    fusion_app::metrics::refresh_operational(&state).await;
    let report = fusion_app::monitoring::evaluate(&state).await?;
    let wants_html = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    if wants_html {
        return crate::dashboard::monitoring_page(&req, &principal, &report);
    }
    Ok(HttpResponse::Ok().json(report))
}

/// `GET /metrics`: every instrument in the Prometheus text format, the
/// queue depth and pool use read just before.
pub(crate) async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    fusion_app::metrics::refresh_operational(&state).await;
    HttpResponse::Ok()
        .content_type(PROMETHEUS_TEXT)
        .body(state.metrics.encode())
}

/// Starts the metrics-only listener on `bind` (no authentication: only
/// `GET /metrics`, anything else 404) and returns the bound address.
///
/// # Errors
///
/// [`StartupError::Bind`] when the address cannot be bound.
pub fn serve_metrics(
    bind: SocketAddr,
    data: web::Data<AppState>,
) -> Result<SocketAddr, StartupError> {
    let bind_error = |source| StartupError::Bind { addr: bind, source };
    let listener = TcpListener::bind(bind).map_err(bind_error)?;
    let addr = listener.local_addr().map_err(bind_error)?;
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/metrics", web::get().to(metrics))
    })
    .workers(1)
    .listen(listener)
    .map_err(bind_error)?
    .run();
    tokio::spawn(server);
    tracing::info!(%addr, "metrics listener ready");
    Ok(addr)
}
