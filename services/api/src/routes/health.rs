//! `/healthz` (the process is alive) and `/readyz` (its database and blob
//! store answer). Both unauthenticated, for load balancers and orchestrators.

use std::time::{Duration, Instant};

use actix_web::{HttpResponse, web};
use fusion_schemas::{CheckStatus, Readiness};

use crate::AppState;

/// Longest a readiness check waits on one dependency.
const CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// Liveness: 200 while the process serves requests. Touches nothing else, so
/// an orchestrator never restarts the service for a database outage.
pub(crate) async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}

/// Readiness: 200 when the database and the blob store both answer within
/// [`CHECK_TIMEOUT`], else 503 naming which failed and why. Recovers by
/// itself: every call probes afresh, and the pool reconnects.
pub(crate) async fn readyz(state: web::Data<AppState>) -> HttpResponse {
    let database = check(state.repository.ping()).await;
    let blob_store = check(state.blobs.check()).await;
    let ready = database.ok && blob_store.ok;
    let body = Readiness {
        status: if ready { "ready" } else { "unavailable" }.to_owned(),
        database,
        blob_store,
    };
    if ready {
        HttpResponse::Ok().json(body)
    } else {
        tracing::warn!(
            database = ?body.database.reason,
            blob_store = ?body.blob_store.reason,
            "not ready"
        );
        HttpResponse::ServiceUnavailable().json(body)
    }
}

async fn check<E: std::fmt::Display>(
    probe: impl std::future::Future<Output = Result<(), E>>,
) -> CheckStatus {
    let started = Instant::now();
    let outcome = tokio::time::timeout(CHECK_TIMEOUT, probe).await;
    let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let reason = match outcome {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(e.to_string()),
        Err(_) => Some(format!("no answer within {} ms", CHECK_TIMEOUT.as_millis())),
    };
    CheckStatus {
        ok: reason.is_none(),
        reason,
        elapsed_ms,
    }
}
