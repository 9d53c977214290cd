//! The model monitor at work: reads the reviewed predictions and recorded
//! inputs from the store, computes the figures and alert conditions of
//! [`crate::monitoring`], records them as gauges ([`crate::metrics`]) and
//! raises the alerts that started to hold; on demand (`GET /monitoring`) and
//! every few minutes ([`run_periodically`]).

use chrono::Utc;
use fusion_models::Observation;
use fusion_store::StoreError;
use opentelemetry::KeyValue;

use crate::State;
use crate::monitoring::alerts::{Alert, AlertKind};
use crate::monitoring::drift::{self, DriftSettings, PackageDrift};
use crate::monitoring::{MonitoringReport, ReviewFigures, alert_conditions, outcomes};

/// Computes the report from the database, records the gauges and raises
/// the alerts that started to hold.
///
/// # Errors
///
/// [`StoreError`] when the database cannot be read or an alert's audit
/// event cannot be appended.
pub async fn evaluate(state: &State) -> Result<MonitoringReport, StoreError> {
    let settings = state.monitor.settings;
    let limit = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
    let reviews = state
        .repository
        .reviewed_predictions(limit(settings.history_reviews))
        .await?;
    let now = Utc::now();
    let since = now - chrono::Duration::days(settings.window_days.max(0));
    let window_reviews = outcomes::window(&reviews, since, settings.window_reviews);
    let window = figures(window_reviews, state, settings.default_nominal);
    let all_time = figures(&reviews, state, settings.default_nominal);
    let inputs = state
        .repository
        .model_inputs(limit(settings.drift_history))
        .await?;
    let drift = drift::drift(
        &inputs,
        DriftSettings {
            reference: settings.drift_reference,
            window: settings.drift_window,
            threshold: settings.drift_threshold,
        },
    );
    let alerts = alert_conditions(&settings, &window, &drift);
    record_gauges(state, &window, &drift, &alerts);
    state
        .monitor
        .alerts
        .raise(state.repository.as_ref(), &alerts)
        .await?;
    Ok(MonitoringReport {
        generated_at: now,
        settings,
        window,
        all_time,
        drift,
        alerts,
    })
}

fn record_gauges(state: &State, window: &ReviewFigures, drift: &[PackageDrift], alerts: &[Alert]) {
    let m = &state.metrics;
    for g in &window.groups {
        let attrs = [
            KeyValue::new("package", g.package.clone()),
            KeyValue::new("observation", g.observation.as_str()),
            KeyValue::new("group", g.group.as_str()),
        ];
        if let Some(c) = g.coverage {
            m.coverage.record(c.rate, &attrs);
            m.coverage_nominal.record(c.nominal, &attrs);
        }
        if let Some(c) = &g.calibration {
            m.brier.record(c.brier, &attrs);
            m.ece.record(c.ece, &attrs);
        }
        if let Some(a) = g.agreement {
            m.agreement.record(a, &attrs);
        }
        m.abstention.record(g.abstention_rate, &attrs);
    }
    for p in drift {
        for f in &p.features {
            m.psi.record(
                f.psi,
                &[
                    KeyValue::new("package", p.package.clone()),
                    KeyValue::new("feature", f.feature.clone()),
                ],
            );
        }
    }
    for kind in [AlertKind::Coverage, AlertKind::Drift] {
        let n = alerts.iter().filter(|a| a.kind == kind).count();
        m.alerts.record(
            i64::try_from(n).unwrap_or(i64::MAX),
            &[KeyValue::new("kind", kind.as_str())],
        );
    }
}

/// Runs [`evaluate`] every `every` until the runtime stops; a failure is
/// logged and tried again at the next tick.
pub async fn run_periodically(state: State, every: std::time::Duration) {
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        state.refresh_operational().await;
        if let Err(e) = evaluate(&state).await {
            tracing::warn!(target: "fusion::monitoring", error = %e, "model monitoring failed");
        }
    }
}

fn figures(
    reviews: &[(fusion_store::ReviewRecord, fusion_store::PredictionRecord)],
    state: &State,
    default_nominal: f64,
) -> ReviewFigures {
    let catalogue = &state.catalogue;
    let nominal = |package: &str, o: Observation| {
        let name = package.split('@').next().unwrap_or(package);
        let card = catalogue.package(name)?;
        let alpha = card
            .labels
            .iter()
            .find(|l| l.observation == o)?
            .conformal_alpha?;
        Some(1.0 - alpha)
    };
    let labels = outcomes::reviewed_labels(reviews, nominal);
    ReviewFigures {
        reviews: reviews.len(),
        from: reviews.first().map(|(r, _)| r.created_at),
        groups: outcomes::summarise(&labels, default_nominal),
    }
}
