//! Delivering results (issue #17): the sender side of the transactional
//! outbox ([`fusion_store::outbox`]).
//!
//! The outbox rows of a prediction version are written in its transaction
//! ([`OutboxSettings::for_prediction`]), those of a review in the review's
//! ([`OutboxSettings::for_review`]). Senders (tasks of any process) claim
//! due rows and deliver them:
//!
//! - `local`: the DICOM SR ([`crate::sr`]) goes through the ingest path
//!   ([`crate::ingest::store_instance`]) into this service's archive, so
//!   QIDO-RS and WADO-RS serve it to whoever may read the study;
//! - `dicomweb`: the same SR, by STOW-RS (PS3.18 §10.5) to the configured
//!   PACS ([`http::stow`]);
//! - `fhir`: a FHIR R4 `transaction` Bundle ([`crate::fhir_report`]) POSTed
//!   to the configured endpoint.
//!
//! A transient failure (no answer, a timeout, 408, 429, 5xx, a 2xx whose
//! body does not acknowledge the instance) is retried after
//! `backoff · 2^(attempt − 1)`, at most 300 s, up to `max_attempts`
//! attempts; a refusal (another 4xx) fails at once. The destination's
//! answer is kept with the row. The SR's bytes are a pure function of the
//! stored result, so an attempt repeated after a crash re-sends the same
//! SOP Instance, which a PACS stores once. Every attempt at a remote
//! destination is audited (110104 DICOM Instances Transferred, or 110106
//! Export for FHIR) with the destination as the agent.

pub mod http;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use fusion_store::{
    AgentKind, AuditAction, AuditAgent, AuditEventType, AuditOutcome, AuditRecord, DeliveryOutcome,
    DeliveryRecord, DeliveryTarget, EntityKind,
};

use crate::State;
use crate::ingest::{InstanceOutcome, Submitter};

/// How often an idle sender looks for due deliveries.
pub const POLL_INTERVAL: Duration = Duration::from_secs(1);

pub use crate::destinations::{Destination, MAX_BACKOFF, OutboxSettings, OutboxSettingsError};

/// What one attempt came to, before the retry policy.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempt {
    /// Acknowledged.
    Delivered {
        /// HTTP status, if remote.
        status: Option<i32>,
        /// SOP Instance UID of the SR, for DICOM targets.
        sop_instance_uid: Option<String>,
    },
    /// May succeed later.
    Transient {
        /// HTTP status, if it answered.
        status: Option<i32>,
        /// What went wrong, as the destination answered.
        error: String,
    },
    /// Will not succeed as it is.
    Refused {
        /// HTTP status, if it answered.
        status: Option<i32>,
        /// What went wrong.
        error: String,
    },
}

/// Starts `settings.senders` sender tasks on the current runtime.
pub fn spawn_senders(state: &State) -> Vec<tokio::task::JoinHandle<()>> {
    let client = match http::client(&state.outbox) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!(error = %e, "cannot build the outbox HTTP client; no senders");
            return Vec::new();
        }
    };
    (0..state.outbox.senders)
        .map(|i| tokio::spawn(run_sender(state.clone(), client.clone(), i)))
        .collect()
}

async fn run_sender(state: State, client: reqwest::Client, n: usize) {
    tracing::info!(sender = n, "outbox sender started");
    // A claim leases the row for longer than one attempt can take.
    let lease = chrono::Duration::from_std(state.outbox.timeout * 2 + Duration::from_secs(30))
        .unwrap_or(chrono::Duration::minutes(2));
    loop {
        let now = Utc::now();
        match state.repository.claim_delivery(now, now + lease).await {
            Ok(Some(d)) => {
                deliver(&state, &client, d).await;
                continue;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "cannot claim a delivery"),
        }
        tokio::select! {
            () = state.deliveries.notified() => {}
            () = tokio::time::sleep(POLL_INTERVAL) => {}
        }
    }
}

/// Makes one attempt at a claimed delivery and records its outcome.
pub async fn deliver(state: &State, client: &reqwest::Client, d: DeliveryRecord) {
    let span = tracing::info_span!("outbox_delivery", delivery = %d.id, target = d.target.as_str(), attempt = d.attempts);
    tracing::Instrument::instrument(
        async {
            let attempt = attempt(state, client, &d).await;
            let outcome = match attempt.clone() {
                Attempt::Delivered {
                    status,
                    sop_instance_uid,
                } => DeliveryOutcome::Delivered {
                    status,
                    sop_instance_uid,
                },
                Attempt::Transient { status, error } if d.attempts < state.outbox.max_attempts => {
                    let wait = state.outbox.backoff_after(d.attempts);
                    DeliveryOutcome::Retry {
                        status,
                        error,
                        next_attempt_at: Utc::now()
                            + chrono::Duration::from_std(wait)
                                .unwrap_or(chrono::Duration::minutes(5)),
                    }
                }
                Attempt::Transient { status, error } => DeliveryOutcome::Failed {
                    status,
                    error: format!("gave up after {} attempts: {error}", d.attempts),
                },
                Attempt::Refused { status, error } => DeliveryOutcome::Failed { status, error },
            };
            let audit = audit_of(state, &d, &attempt).await;
            match state
                .repository
                .record_delivery(d.id, &outcome, audit.as_ref())
                .await
            {
                Ok(_) => tracing::info!(
                    outcome = outcome_name(&outcome),
                    "delivery attempt recorded"
                ),
                Err(e) => tracing::error!(error = %e, "cannot record a delivery attempt"),
            }
        },
        span,
    )
    .await;
}

fn outcome_name(o: &DeliveryOutcome) -> &'static str {
    match o {
        DeliveryOutcome::Delivered { .. } => "delivered",
        DeliveryOutcome::Retry { .. } => "retry",
        DeliveryOutcome::Failed { .. } => "failed",
    }
}

async fn attempt(state: &State, client: &reqwest::Client, d: &DeliveryRecord) -> Attempt {
    match d.target {
        DeliveryTarget::Local => store_locally(state, d).await,
        DeliveryTarget::Dicomweb => {
            let Some(dest) = &state.outbox.dicomweb else {
                return Attempt::Refused {
                    status: None,
                    error: "no DICOMweb destination is configured".into(),
                };
            };
            match build_sr(state, d).await {
                Ok(doc) => http::stow(client, dest, &doc).await,
                Err(a) => a,
            }
        }
        DeliveryTarget::Fhir => {
            let Some(dest) = &state.outbox.fhir else {
                return Attempt::Refused {
                    status: None,
                    error: "no FHIR endpoint is configured".into(),
                };
            };
            match crate::fhir_report::transaction_bundle(state, d.prediction_id, d.review_id).await
            {
                Ok(bundle) => http::post_fhir(client, dest, &bundle).await,
                Err(e) => Attempt::Refused {
                    status: None,
                    error: e.to_string(),
                },
            }
        }
    }
}

/// Loads and builds the SR of a delivery.
async fn build_sr(state: &State, d: &DeliveryRecord) -> Result<crate::sr::SrDocument, Attempt> {
    let input = crate::sr::load(state, d.prediction_id, d.review_id)
        .await
        .map_err(|e| match e {
            crate::sr::SrError::Store(_) => Attempt::Transient {
                status: None,
                error: e.to_string(),
            },
            _ => Attempt::Refused {
                status: None,
                error: e.to_string(),
            },
        })?;
    tokio::task::spawn_blocking(move || crate::sr::build(&input))
        .await
        .map_err(|e| Attempt::Transient {
            status: None,
            error: format!("the SR task did not finish: {e}"),
        })?
        .map_err(|e| Attempt::Refused {
            status: None,
            error: e.to_string(),
        })
}

/// Stores the SR through the ingest path as [`SR_SUBMITTER`], a submitter
/// no caller has: clinicians and auditors (who read every study) see it in
/// QIDO-RS and WADO-RS, an integration key never does, even on its own
/// study, since an SR carries predictions, reviewers and their comments,
/// which integration clients never read (threat model). The study's sender
/// keeps adding instances to its study (the ingest's one-sender rule leaves
/// [`SR_SUBMITTER`] out).
async fn store_locally(state: &State, d: &DeliveryRecord) -> Attempt {
    let doc = match build_sr(state, d).await {
        Ok(doc) => doc,
        Err(a) => return a,
    };
    let case = match state.repository.case(d.case_id).await {
        Ok(Some(c)) => c,
        Ok(None) => {
            return Attempt::Refused {
                status: None,
                error: "the case does not exist".into(),
            };
        }
        Err(e) => {
            return Attempt::Transient {
                status: None,
                error: e.to_string(),
            };
        }
    };
    let Some(study) = case.study_instance_uid else {
        return Attempt::Refused {
            status: None,
            error: crate::sr::SrError::NoStudy.to_string(),
        };
    };
    let submitter = Submitter {
        audit_subtype: "sr-store",
        actor: crate::Actor::new(sr_writer_agent()),
        id: SR_SUBMITTER.to_owned(),
    };
    match crate::ingest::store_instance(state, doc.bytes.into(), Some(&study), &submitter).await {
        InstanceOutcome::Stored(_) | InstanceOutcome::Duplicate(_) => Attempt::Delivered {
            status: None,
            sop_instance_uid: Some(doc.sop_instance_uid),
        },
        InstanceOutcome::Failed(f) => Attempt::Transient {
            status: None,
            error: format!("{:?}: {}", f.reason, f.detail),
        },
    }
}

/// The `submitted_by` of the SRs the service stores (see
/// [`fusion_store::SR_SUBMITTER`]).
pub use fusion_store::SR_SUBMITTER;

/// The agent storing SRs into the archive.
pub fn sr_writer_agent() -> AuditAgent {
    AuditAgent::new(AgentKind::System, "sr-writer", "outbox sender")
}

/// An attempt's error as the audit trail keeps it: a destination's answer
/// ("HTTP 409: …") without its body, which a PACS or EHR may fill with
/// patient data and which an append-only trail could never drop; the body
/// stays with the delivery (`fusion outbox list`, `/deliveries`).
fn without_answer_body(error: &str) -> String {
    match error.split_once(": ") {
        Some((head, _)) if head.starts_with("HTTP ") => {
            format!("{head} (the answer's body is kept with the delivery)")
        }
        _ => error.to_owned(),
    }
}

/// The audit event of an attempt at a remote destination (none for the
/// archive: its ingest records its own 110104).
async fn audit_of(state: &State, d: &DeliveryRecord, attempt: &Attempt) -> Option<AuditRecord> {
    let (dest, event_type, subtype) = match d.target {
        DeliveryTarget::Local => return None,
        DeliveryTarget::Dicomweb => (
            state.outbox.dicomweb.as_ref(),
            AuditEventType::DicomInstancesTransferred,
            "stow-rs-out",
        ),
        DeliveryTarget::Fhir => (
            state.outbox.fhir.as_ref(),
            AuditEventType::Export,
            "fhir-transaction-out",
        ),
    };
    let patient_ids = match state.repository.case(d.case_id).await {
        Ok(Some(c)) => c.patient_id.iter().map(|p| p.as_str().to_owned()).collect(),
        _ => Vec::new(),
    };
    let (outcome, desc) = match attempt {
        Attempt::Delivered { .. } => (AuditOutcome::Success, None),
        Attempt::Transient { error, .. } => (AuditOutcome::MinorFailure, Some(error.clone())),
        Attempt::Refused { error, .. } => (AuditOutcome::MinorFailure, Some(error.clone())),
    };
    let agent = AuditAgent::new(
        AgentKind::Destination,
        d.target.as_str(),
        dest.map(Destination::address).unwrap_or_default(),
    )
    .role("110152 Destination Role ID")
    .address(dest.map(Destination::address))
    .not_requestor();
    let mut record = AuditRecord::builder(event_type, subtype, AuditAction::Read, agent)
        .outcome(outcome)
        .entity(EntityKind::Delivery, d.id.to_string())
        .entity(EntityKind::Prediction, d.prediction_id.to_string())
        .patient_ids(patient_ids);
    if let Some(desc) = desc {
        record = record.outcome_desc(fusion_store::outbox::bounded_error(&without_answer_body(
            &desc,
        )));
    }
    if let Some(r) = d.review_id {
        record = record.entity(EntityKind::Review, r.to_string());
    }
    if d.target == DeliveryTarget::Dicomweb {
        record = record.entity(
            EntityKind::Instance,
            crate::sr::report_uid(d.prediction_id, d.review_id),
        );
    }
    Some(record.build())
}

/// Wakes this process's senders (after a prediction or review queued
/// deliveries).
pub fn wake(state: &State) {
    state.deliveries.notify_waiters();
}

/// One line saying where a version's deliveries stand, for the dashboard:
/// per report (UNVERIFIED, then each review's VERIFIED) and target, its
/// state, e.g. "unverified SR: archive delivered, PACS pending (2
/// attempts); verified SR: …". "none" when nothing is queued.
pub fn describe(rows: &[DeliveryRecord], prediction_id: uuid::Uuid) -> String {
    let mut mine: Vec<&DeliveryRecord> = rows
        .iter()
        .filter(|d| d.prediction_id == prediction_id)
        .collect();
    if mine.is_empty() {
        return "none".to_owned();
    }
    mine.sort_by_key(|d| (d.review_id.is_some(), d.created_at, d.target.as_str()));
    let mut parts: Vec<String> = Vec::new();
    let mut current: Option<Option<uuid::Uuid>> = None;
    for d in mine {
        let what = match d.target {
            DeliveryTarget::Local => "archive",
            DeliveryTarget::Dicomweb => "PACS",
            DeliveryTarget::Fhir => "FHIR",
        };
        let mut state = d.state.as_str().to_owned();
        if d.state != fusion_store::DeliveryState::Delivered && d.attempts > 0 {
            state.push_str(&format!(" ({} attempts)", d.attempts));
        }
        if current != Some(d.review_id) {
            current = Some(d.review_id);
            let head = if d.review_id.is_some() {
                "verified"
            } else {
                "unverified"
            };
            parts.push(format!("{head}: {what} {state}"));
        } else if let Some(last) = parts.last_mut() {
            last.push_str(&format!(", {what} {state}"));
        }
    }
    parts.join("; ")
}

/// The shared handle type of the settings.
pub type SharedOutboxSettings = Arc<OutboxSettings>;

#[cfg(test)]
mod tests {
    use super::without_answer_body;

    #[test]
    fn the_audit_trail_keeps_no_answer_body() {
        assert_eq!(
            without_answer_body("HTTP 409: {\"error\":\"patient DOE^JANE\"}"),
            "HTTP 409 (the answer's body is kept with the delivery)"
        );
        assert_eq!(
            without_answer_body(
                "HTTP 200 with a body that is not a DICOM JSON STOW-RS response: DOE"
            ),
            "HTTP 200 with a body that is not a DICOM JSON STOW-RS response (the answer's body is kept with the delivery)"
        );
        assert_eq!(
            without_answer_body("connection refused"),
            "connection refused"
        );
    }
}
