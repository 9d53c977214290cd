//! Logs and traces: `tracing` everywhere, printed as JSON or pretty lines,
//! and exported over OTLP/HTTP when an endpoint is configured
//! (OpenTelemetry specification, "OTLP Exporter Configuration").
//!
//! Logs never carry PHI: handlers log identifiers of our own (request id,
//! case id), never patient names, note text or secrets, and a contained
//! panic is one log line ([`install_panic_hook`]). The HTTP request span,
//! which records the route pattern and never the path or query a client
//! sent, is the API's (`fusion_api::telemetry::RouteRootSpan`).

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::{LogFormat, Settings};

/// Errors setting up telemetry.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// The log filter does not parse.
    #[error("invalid log filter: {0}")]
    Filter(#[from] tracing_subscriber::filter::ParseError),
    /// The OTLP exporter could not be built.
    #[error("cannot set up OTLP export: {0}")]
    Otlp(#[from] opentelemetry_otlp::ExporterBuildError),
    /// A global subscriber was already installed.
    #[error("telemetry already initialised: {0}")]
    AlreadySet(#[from] tracing_subscriber::util::TryInitError),
}

/// Keeps the trace exporter alive; flushes pending spans when dropped.
#[derive(Debug)]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            // Best effort at exit: a collector that is down must not hang shutdown.
            let _ = provider.shutdown_with_timeout(std::time::Duration::from_secs(2));
        }
    }
}

/// Replaces the default panic hook, which prints the message and, with
/// `RUST_BACKTRACE` set, a backtrace of dozens of lines to stderr for every
/// panic, even one a worker contains (a codec panicking on a malformed
/// instance is answered as that instance's failure): each panic becomes one
/// `error` event with its location and message, the message cut at 200
/// characters (issue #14, finding 8).
pub fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let location = info
            .location()
            .map(|l| format!("{}:{}", l.file(), l.line()))
            .unwrap_or_default();
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        let message: String = message.chars().take(200).collect();
        tracing::error!(%location, panic = %message, "a thread panicked");
    }));
}

/// Installs the global subscriber: an env filter, a JSON or pretty formatter
/// on stderr, and an OpenTelemetry layer when `settings.otlp_endpoint` is
/// set (spans exported in batches to `<endpoint>/v1/traces`).
///
/// # Errors
///
/// [`TelemetryError`] when the filter is malformed, the exporter cannot be
/// built, or a subscriber is already installed.
pub fn init(settings: &Settings) -> Result<TelemetryGuard, TelemetryError> {
    let filter = EnvFilter::try_new(&settings.log)?;
    let fmt_layer = match settings.log_format {
        LogFormat::Json => tracing_subscriber::fmt::layer()
            .json()
            .with_current_span(true)
            .with_writer(std::io::stderr)
            .boxed(),
        LogFormat::Pretty => tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .boxed(),
    };
    let (otel_layer, provider) = match &settings.otlp_endpoint {
        Some(endpoint) => {
            let endpoint = endpoint.trim_end_matches('/');
            let traces = if endpoint.ends_with("/v1/traces") {
                endpoint.to_owned()
            } else {
                format!("{endpoint}/v1/traces")
            };
            let exporter = opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_endpoint(traces)
                .build()?;
            let provider = SdkTracerProvider::builder()
                .with_batch_exporter(exporter)
                .with_resource(
                    opentelemetry_sdk::Resource::builder()
                        .with_service_name("fusion")
                        .build(),
                )
                .build();
            let tracer = provider.tracer("fusion");
            opentelemetry::global::set_tracer_provider(provider.clone());
            (
                Some(tracing_opentelemetry::layer().with_tracer(tracer)),
                Some(provider),
            )
        }
        None => (None, None),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(fmt_layer)
        .with(otel_layer)
        .try_init()?;
    install_panic_hook();
    Ok(TelemetryGuard { provider })
}
