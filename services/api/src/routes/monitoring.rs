//! `GET /metrics` (Prometheus text format), on the main listener behind
//! authentication, and alone on its own listener when `metrics_bind` is
//! set. `GET /monitoring` (the model monitor's report, JSON or the page) is
//! the dashboard's (`dashboard::monitoring_report`).

use std::net::{SocketAddr, TcpListener};

use actix_web::{App, HttpResponse, HttpServer, web};

use crate::AppState;

/// The content type of the Prometheus text exposition format.
pub const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// `GET /metrics`: every instrument in the Prometheus text format, the
/// queue depth and pool use read just before.
pub(crate) async fn metrics(state: web::Data<AppState>) -> HttpResponse {
    state.refresh_operational().await;
    HttpResponse::Ok()
        .content_type(PROMETHEUS_TEXT)
        .body(state.metrics.encode())
}

/// Starts the metrics-only listener on `bind` (no authentication: only
/// `GET /metrics`, anything else 404) and returns the bound address.
///
/// # Errors
///
/// The I/O error when the address cannot be bound (startup reports it as
/// `StartupError::Bind`).
pub fn serve_metrics(bind: SocketAddr, data: web::Data<AppState>) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind(bind)?;
    let addr = listener.local_addr()?;
    let server = HttpServer::new(move || {
        App::new()
            .app_data(data.clone())
            .route("/metrics", web::get().to(metrics))
    })
    .workers(1)
    .listen(listener)?
    .run();
    tokio::spawn(server);
    tracing::info!(%addr, "metrics listener ready");
    Ok(addr)
}
