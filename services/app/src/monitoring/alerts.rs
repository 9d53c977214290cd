//! Monitoring alerts: conformal coverage more than a margin below nominal
//! in the review window, or an input feature's PSI past the threshold.
//!
//! An alert is raised once, when its condition starts to hold, as a
//! `warn` log line (target `fusion::monitoring`) and an audit event (DCM
//! 110113 Security Alert, subtype `model-coverage-alert` or
//! `model-drift-alert`, the evidence in the outcome description; no PHI:
//! packages, observations, groups, features and counts only); when the
//! condition stops holding an `info` line says it cleared. Which alerts are
//! firing is kept per process: each replica that evaluates raises its own,
//! and a restart raises the ones still holding again.

use std::collections::BTreeSet;

use fusion_store::{
    AuditAction, AuditAgent, AuditEventType, AuditRecord, EntityKind, Repository, StoreError,
};
use serde::Serialize;

/// What an alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// Conformal coverage below nominal minus the margin.
    Coverage,
    /// An input feature's PSI past the threshold.
    Drift,
}

impl AlertKind {
    /// `coverage` or `drift`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Coverage => "coverage",
            Self::Drift => "drift",
        }
    }
}

/// One alert condition that holds, with its evidence.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    /// Coverage or drift.
    pub kind: AlertKind,
    /// Stable identity: kind, package and subject.
    pub key: String,
    /// The package (`name@version`, or several joined by ` + `).
    pub package: String,
    /// Coverage: the observation; drift: the feature.
    pub subject: String,
    /// Coverage: the modality-presence group; drift: the branch.
    pub group: String,
    /// The measured value: coverage rate or PSI.
    pub value: f64,
    /// The value it is held against: nominal − margin, or the PSI threshold.
    pub threshold: f64,
    /// Cases it rests on: reviewed sets, or jobs in the current window.
    pub n: usize,
    /// One line for the log and the audit event.
    pub evidence: String,
}

/// The alerts firing in this process.
#[derive(Debug, Default)]
pub struct AlertBook {
    /// Held through a whole [`AlertBook::raise`], so that two evaluations
    /// at once raise an alert once.
    firing: tokio::sync::Mutex<BTreeSet<String>>,
}

impl AlertBook {
    /// Compares `alerts` (the conditions holding now) with those firing:
    /// appends an audit event and logs each new one, logs each cleared one,
    /// and returns the new ones.
    ///
    /// # Errors
    ///
    /// [`StoreError`] when an audit event cannot be appended; the alert is
    /// then not marked firing, so the next evaluation tries again.
    pub async fn raise(
        &self,
        repository: &dyn Repository,
        alerts: &[Alert],
    ) -> Result<Vec<Alert>, StoreError> {
        let mut firing = self.firing.lock().await;
        let now: BTreeSet<&str> = alerts.iter().map(|a| a.key.as_str()).collect();
        let cleared: Vec<String> = firing
            .iter()
            .filter(|k| !now.contains(k.as_str()))
            .cloned()
            .collect();
        for key in cleared {
            tracing::info!(target: "fusion::monitoring", alert = %key, "monitoring alert cleared");
            firing.remove(&key);
        }
        let new: Vec<Alert> = alerts
            .iter()
            .filter(|a| !firing.contains(&a.key))
            .cloned()
            .collect();
        for alert in &new {
            repository.append_audit(&audit_record(alert)).await?;
            tracing::warn!(
                target: "fusion::monitoring",
                alert = %alert.key,
                kind = alert.kind.as_str(),
                package = %alert.package,
                subject = %alert.subject,
                group = %alert.group,
                value = alert.value,
                threshold = alert.threshold,
                n = alert.n,
                "monitoring alert: {}",
                alert.evidence
            );
            firing.insert(alert.key.clone());
        }
        Ok(new)
    }
}

/// The audit event of a newly raised alert, by the service itself.
#[must_use]
pub fn audit_record(alert: &Alert) -> AuditRecord {
    let subtype = match alert.kind {
        AlertKind::Coverage => "model-coverage-alert",
        AlertKind::Drift => "model-drift-alert",
    };
    AuditRecord::builder(
        AuditEventType::SecurityAlert,
        subtype,
        AuditAction::Execute,
        AuditAgent::system(),
    )
    .outcome_desc(alert.evidence.clone())
    .entity(EntityKind::MonitoredPackages, alert.package.clone())
    .build()
}
