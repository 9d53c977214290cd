//! `fusion worker`: inference workers only, no HTTP. Several such processes
//! (and `fusion serve` replicas with `FUSION_WORKERS=0`) share one
//! PostgreSQL queue: each claims jobs with `FOR UPDATE SKIP LOCKED`.

use std::process::ExitCode;

use fusion_app::Settings;

/// Connects storage, loads the model packages once, and runs
/// `workers` (at least one) until SIGINT or SIGTERM.
///
/// # Errors
///
/// Storage that cannot be reached or migrated.
pub async fn run(settings: &Settings, workers: Option<usize>) -> anyhow::Result<ExitCode> {
    let state = fusion_app::connect_storage(settings).await?;
    let count = workers.unwrap_or(settings.workers).max(1);
    let pipeline = fusion_app::worker::load_pipeline(settings).await;
    let handles = fusion_app::worker::spawn_workers(&state, &pipeline, count);
    println!("fusion: {count} inference worker(s) running; Ctrl-C stops");
    shutdown_signal().await;
    // A job cut short stays `running` until another worker's stale sweep
    // queues it again; its transaction never committed half a prediction.
    for handle in handles {
        handle.abort();
    }
    tracing::info!("workers stopped");
    Ok(ExitCode::SUCCESS)
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}
