//! The service watches its own models (issue #18). Application logic, no
//! HTTP: the routes and the page call [`crate::watch::evaluate`].
//!
//! Data flow: every inference job records what its models read
//! ([`inputs`], table `model_inputs`); every clinician review is a labelled
//! outcome of the prediction it judged. [`crate::watch::evaluate`] reads both, computes
//! per package version, observation and modality-presence group the
//! agreement, Brier score, ECE with reliability, conformal coverage against
//! nominal and abstention over a sliding window and all time
//! ([`outcomes`]), the input drift per package as PSI ([`drift`]), records
//! them in the metric gauges, and raises alerts ([`alerts`]). It runs every
//! `monitoring_interval_seconds` in the HTTP service and on each
//! `GET /monitoring`.

pub mod alerts;
pub mod drift;
pub mod inputs;
pub mod math;
pub mod outcomes;

use chrono::{DateTime, Utc};
use serde::Serialize;

use alerts::{Alert, AlertBook, AlertKind};
use drift::PackageDrift;
use outcomes::GroupStats;

/// The monitor's windows and thresholds (from [`crate::Settings`], keys
/// `monitoring_*`; README "Watching the models in production").
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MonitorSettings {
    /// Sliding window: at most this many newest reviews …
    pub window_reviews: usize,
    /// … made within this many days.
    pub window_days: i64,
    /// Most reviews read for the all-time figures.
    pub history_reviews: usize,
    /// Coverage alert: rate below nominal minus this margin …
    pub coverage_margin: f64,
    /// … on at least this many reviewed sets in the window.
    pub coverage_min_reviews: usize,
    /// Nominal coverage for a set whose package states no α.
    pub default_nominal: f64,
    /// Drift: jobs in a package's reference window (its first).
    pub drift_reference: usize,
    /// Drift: jobs in the current window (its newest).
    pub drift_window: usize,
    /// Drift alert: PSI above this.
    pub drift_threshold: f64,
    /// Most recorded jobs read for drift.
    pub drift_history: usize,
}

impl MonitorSettings {
    /// The monitor's part of the service's settings.
    #[must_use]
    pub fn of(s: &crate::Settings) -> Self {
        Self {
            window_reviews: s.monitoring_window_reviews,
            window_days: s.monitoring_window_days,
            history_reviews: s.monitoring_history_reviews,
            coverage_margin: s.monitoring_coverage_margin,
            coverage_min_reviews: s.monitoring_coverage_min_reviews,
            default_nominal: s.monitoring_default_nominal,
            drift_reference: s.monitoring_drift_reference,
            drift_window: s.monitoring_drift_window,
            drift_threshold: s.monitoring_drift_threshold,
            drift_history: s.monitoring_drift_history,
        }
    }
}

/// The monitor's state in a running service: its settings and the alerts
/// firing.
#[derive(Debug)]
pub struct Monitor {
    /// Windows and thresholds.
    pub settings: MonitorSettings,
    /// Alerts firing in this process.
    pub alerts: AlertBook,
}

impl Monitor {
    /// A monitor with nothing firing.
    #[must_use]
    pub fn new(settings: MonitorSettings) -> Self {
        Self {
            settings,
            alerts: AlertBook::default(),
        }
    }
}

/// The figures of one span of reviews.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ReviewFigures {
    /// Reviews in the span.
    pub reviews: usize,
    /// The oldest review's time.
    pub from: Option<DateTime<Utc>>,
    /// Per package, observation and group.
    pub groups: Vec<GroupStats>,
}

/// What `GET /monitoring` answers.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MonitoringReport {
    /// When it was computed.
    pub generated_at: DateTime<Utc>,
    /// The windows and thresholds used.
    pub settings: MonitorSettings,
    /// The sliding window of reviews.
    pub window: ReviewFigures,
    /// All reviews (up to `history_reviews`).
    pub all_time: ReviewFigures,
    /// Input drift per package.
    pub drift: Vec<PackageDrift>,
    /// Alert conditions holding now.
    pub alerts: Vec<Alert>,
}

/// The alert conditions holding in `window` and `drift`.
#[must_use]
pub fn alert_conditions(
    settings: &MonitorSettings,
    window: &ReviewFigures,
    drift: &[PackageDrift],
) -> Vec<Alert> {
    let mut out = Vec::new();
    for g in &window.groups {
        let Some(c) = g.coverage else { continue };
        if c.below(settings.coverage_margin, settings.coverage_min_reviews) {
            let threshold = c.nominal - settings.coverage_margin;
            out.push(Alert {
                kind: AlertKind::Coverage,
                key: format!(
                    "coverage/{}/{}/{}",
                    g.package,
                    g.observation.as_str(),
                    g.group.as_str()
                ),
                package: g.package.clone(),
                subject: g.observation.as_str().to_owned(),
                group: g.group.as_str().to_owned(),
                value: c.rate,
                threshold,
                n: c.n,
                evidence: format!(
                    "{} ({}) with {}: conformal coverage {:.3} ({} of {} reviewed sets) \
                     below nominal {:.3} minus margin {:.3}",
                    g.observation.as_str(),
                    g.group.as_str(),
                    g.package,
                    c.rate,
                    c.covered,
                    c.n,
                    c.nominal,
                    settings.coverage_margin
                ),
            });
        }
    }
    for p in drift {
        for f in p.features.iter().filter(|f| f.drifted) {
            out.push(Alert {
                kind: AlertKind::Drift,
                key: format!("drift/{}/{}", p.package, f.feature),
                package: p.package.clone(),
                subject: f.feature.clone(),
                group: p.branch.to_owned(),
                value: f.psi,
                threshold: settings.drift_threshold,
                n: settings.drift_window,
                evidence: format!(
                    "{} of {} ({} branch): PSI {:.3} over the last {} jobs against its first {} \
                     exceeds {:.3}",
                    f.feature,
                    p.package,
                    p.branch,
                    f.psi,
                    settings.drift_window,
                    settings.drift_reference,
                    settings.drift_threshold
                ),
            });
        }
    }
    out
}
