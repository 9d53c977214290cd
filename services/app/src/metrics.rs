//! Operational metrics (issue #18): OpenTelemetry instruments read by a
//! Prometheus exporter (text format 0.0.4 at `GET /metrics`, and on its own
//! listener when `metrics_bind` is set) and, when an OTLP endpoint is
//! configured, exported over OTLP/HTTP to `<endpoint>/v1/metrics` every
//! 30 s as well.
//!
//! Names follow the OpenTelemetry semantic conventions where one exists:
//! `http.server.request.duration` (s, histogram; attributes
//! `http.request.method`, `http.route`, `http.response.status_code`),
//! `db.client.connection.count` (`db.client.connection.state` = `idle` |
//! `used`) and `db.client.connection.max`; the Prometheus exporter writes
//! them as `http_server_request_duration_seconds`, … (OpenTelemetry
//! "Prometheus and OpenMetrics Compatibility"). The service's own are under
//! `fusion.`: STOW-RS instances and bytes, notes, the inference queue and
//! workers, and the model monitor's gauges. No attribute carries PHI: routes
//! are patterns, packages and observations are names.

use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge, Histogram, Meter, MeterProvider as _, UpDownCounter};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::metrics::{PeriodicReader, SdkMeterProvider};

/// Bucket boundaries of `http.server.request.duration`, seconds, as the
/// semantic conventions advise.
pub const HTTP_DURATION_BUCKETS: [f64; 14] = [
    0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Bucket boundaries of inference job durations and queue waits, seconds.
pub const JOB_DURATION_BUCKETS: [f64; 12] = [
    0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
];

/// Errors setting up the metrics pipeline.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The Prometheus exporter could not be built.
    #[error("cannot set up the Prometheus exporter: {0}")]
    Prometheus(#[from] opentelemetry_sdk::error::OTelSdkError),
    /// The OTLP exporter could not be built.
    #[error("cannot set up OTLP metric export: {0}")]
    Otlp(#[from] opentelemetry_otlp::ExporterBuildError),
}

/// The service's instruments and the registry Prometheus reads. One per
/// application (tests run several in one process), cheap to clone.
#[derive(Clone)]
pub struct Metrics {
    provider: SdkMeterProvider,
    registry: prometheus::Registry,
    /// `http.server.request.duration`, seconds.
    pub http_duration: Histogram<f64>,
    /// `fusion.dicomweb.stow.instances`, by `outcome` (`stored`,
    /// `duplicate`, `conflict`, `failed`).
    pub stow_instances: Counter<u64>,
    /// `fusion.dicomweb.stow.size`, bytes of STOW-RS request bodies read.
    pub stow_bytes: Counter<u64>,
    /// `fusion.notes.received`, by `format` and `outcome`.
    pub notes: Counter<u64>,
    /// `fusion.inference.jobs`, finished jobs by `outcome` (`predicted`,
    /// `abstained`, `no_modality`, `lost`, `failed`).
    pub jobs: Counter<u64>,
    /// `fusion.inference.job.duration`, seconds from claim to end.
    pub job_duration: Histogram<f64>,
    /// `fusion.inference.queue.wait`, seconds from queued to claimed.
    pub queue_wait: Histogram<f64>,
    /// `fusion.inference.queue.depth`, jobs by `state`.
    pub queue_depth: Gauge<i64>,
    /// `fusion.inference.queue.oldest_age`, seconds the oldest queued job
    /// has waited (0 when none).
    pub queue_oldest: Gauge<f64>,
    /// `fusion.inference.workers`, inference workers running in this process.
    pub workers: UpDownCounter<i64>,
    /// `db.client.connection.count`, by `db.client.connection.state`.
    pub db_connections: Gauge<i64>,
    /// `db.client.connection.max`.
    pub db_connections_max: Gauge<i64>,
    /// `fusion.model.coverage`: conformal coverage in the review window, by
    /// `package`, `observation`, `group`.
    pub coverage: Gauge<f64>,
    /// `fusion.model.coverage.nominal`: its nominal level 1 − α.
    pub coverage_nominal: Gauge<f64>,
    /// `fusion.model.brier`: Brier score in the review window.
    pub brier: Gauge<f64>,
    /// `fusion.model.ece`: ECE (15 bins) in the review window.
    pub ece: Gauge<f64>,
    /// `fusion.model.agreement`: share of calls reviewers agreed with.
    pub agreement: Gauge<f64>,
    /// `fusion.model.abstention`: share of reviewed labels that abstained.
    pub abstention: Gauge<f64>,
    /// `fusion.model.input.psi`: PSI of a feature, by `package`, `feature`.
    pub psi: Gauge<f64>,
    /// `fusion.model.alerts`: monitoring alerts firing, by `kind`.
    pub alerts: Gauge<i64>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Builds the instruments on a meter provider with a Prometheus reader
    /// and, when `otlp_endpoint` is given, an OTLP/HTTP reader.
    ///
    /// # Errors
    ///
    /// [`MetricsError`] when an exporter cannot be built.
    pub fn new(otlp_endpoint: Option<&str>) -> Result<Self, MetricsError> {
        let registry = prometheus::Registry::new();
        let prometheus_reader = opentelemetry_prometheus::exporter()
            .with_registry(registry.clone())
            .scope_info_enabled(false)
            .without_target_info()
            .build()?;
        let mut builder = SdkMeterProvider::builder()
            .with_reader(prometheus_reader)
            .with_resource(
                opentelemetry_sdk::Resource::builder()
                    .with_service_name("fusion")
                    .build(),
            );
        if let Some(endpoint) = otlp_endpoint {
            let endpoint = endpoint.trim_end_matches('/');
            let url = if endpoint.ends_with("/v1/metrics") {
                endpoint.to_owned()
            } else {
                format!("{endpoint}/v1/metrics")
            };
            let exporter = opentelemetry_otlp::MetricExporter::builder()
                .with_http()
                .with_endpoint(url)
                .build()?;
            builder = builder.with_reader(
                PeriodicReader::builder(exporter)
                    .with_interval(Duration::from_secs(30))
                    .build(),
            );
        }
        let provider = builder.build();
        let meter = provider.meter("fusion");
        Ok(Self::instruments(provider, registry, &meter))
    }

    fn instruments(provider: SdkMeterProvider, registry: prometheus::Registry, m: &Meter) -> Self {
        let gauge = |name: &'static str, description: &'static str| {
            m.f64_gauge(name).with_description(description).build()
        };
        Self {
            http_duration: m
                .f64_histogram("http.server.request.duration")
                .with_unit("s")
                .with_description("Duration of HTTP server requests.")
                .with_boundaries(HTTP_DURATION_BUCKETS.to_vec())
                .build(),
            stow_instances: m
                .u64_counter("fusion.dicomweb.stow.instances")
                .with_description("DICOM instances received by STOW-RS, by outcome.")
                .build(),
            stow_bytes: m
                .u64_counter("fusion.dicomweb.stow.size")
                .with_unit("By")
                .with_description("Bytes of STOW-RS request bodies read.")
                .build(),
            notes: m
                .u64_counter("fusion.notes.received")
                .with_description("Clinical notes received, by format and outcome.")
                .build(),
            jobs: m
                .u64_counter("fusion.inference.jobs")
                .with_description("Inference jobs finished, by outcome.")
                .build(),
            job_duration: m
                .f64_histogram("fusion.inference.job.duration")
                .with_unit("s")
                .with_description("Inference job duration, from claim to end.")
                .with_boundaries(JOB_DURATION_BUCKETS.to_vec())
                .build(),
            queue_wait: m
                .f64_histogram("fusion.inference.queue.wait")
                .with_unit("s")
                .with_description("Time an inference job waited in the queue.")
                .with_boundaries(JOB_DURATION_BUCKETS.to_vec())
                .build(),
            queue_depth: m
                .i64_gauge("fusion.inference.queue.depth")
                .with_description("Inference jobs by state.")
                .build(),
            queue_oldest: m
                .f64_gauge("fusion.inference.queue.oldest_age")
                .with_unit("s")
                .with_description("Age of the oldest queued inference job.")
                .build(),
            workers: m
                .i64_up_down_counter("fusion.inference.workers")
                .with_description("Inference workers running in this process.")
                .build(),
            db_connections: m
                .i64_gauge("db.client.connection.count")
                .with_description("Database connections by state.")
                .build(),
            db_connections_max: m
                .i64_gauge("db.client.connection.max")
                .with_description("Most database connections the pool opens.")
                .build(),
            coverage: gauge(
                "fusion.model.coverage",
                "Conformal coverage on reviewed cases in the sliding window.",
            ),
            coverage_nominal: gauge(
                "fusion.model.coverage.nominal",
                "Nominal coverage (1 - alpha) of the conformal sets.",
            ),
            brier: gauge(
                "fusion.model.brier",
                "Brier score on reviewed cases in the sliding window.",
            ),
            ece: gauge(
                "fusion.model.ece",
                "Expected calibration error (15 bins) on reviewed cases in the sliding window.",
            ),
            agreement: gauge(
                "fusion.model.agreement",
                "Share of the service's calls that reviewers agreed with, sliding window.",
            ),
            abstention: gauge(
                "fusion.model.abstention",
                "Share of reviewed labels the service abstained on, sliding window.",
            ),
            psi: gauge(
                "fusion.model.input.psi",
                "Population stability index of an input feature against the reference window.",
            ),
            alerts: m
                .i64_gauge("fusion.model.alerts")
                .with_description("Model monitoring alerts firing, by kind.")
                .build(),
            provider,
            registry,
        }
    }

    /// The current values in the Prometheus text exposition format 0.0.4.
    #[must_use]
    pub fn encode(&self) -> String {
        let families = self.registry.gather();
        prometheus::TextEncoder::new()
            .encode_to_string(&families)
            .unwrap_or_default()
    }

    /// Records the connection pool's use.
    pub fn record_pool(&self, pool: fusion_store::PoolUse) {
        let used = i64::from(pool.size.saturating_sub(pool.idle));
        self.db_connections
            .record(used, &[KeyValue::new("db.client.connection.state", "used")]);
        self.db_connections.record(
            i64::from(pool.idle),
            &[KeyValue::new("db.client.connection.state", "idle")],
        );
        self.db_connections_max.record(i64::from(pool.max), &[]);
    }

    /// Records the inference queue's depth.
    pub fn record_queue(&self, depth: fusion_store::QueueDepth) {
        for (state, n) in [
            ("queued", depth.queued),
            ("running", depth.running),
            ("failed", depth.failed),
        ] {
            self.queue_depth.record(n, &[KeyValue::new("state", state)]);
        }
        let age = depth.oldest_queued_at.map_or(0.0, |t| {
            (chrono::Utc::now() - t).num_milliseconds().max(0) as f64 / 1e3
        });
        self.queue_oldest.record(age, &[]);
    }

    /// Flushes pending OTLP exports (best effort, at shutdown).
    pub fn shutdown(&self) {
        let _ = self.provider.shutdown_with_timeout(Duration::from_secs(2));
    }
}
