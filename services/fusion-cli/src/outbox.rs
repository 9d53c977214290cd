//! `fusion outbox list|retry`: the operator's view of results leaving the
//! service (issue #17) — each delivery of an SR or FHIR report, where it
//! stands, and the destination's last answer; a failed delivery can be
//! queued again (audited).

use std::process::ExitCode;

use clap::Subcommand;
use fusion_app::Settings;
use fusion_app::admin::Operator;
use fusion_store::{
    AuditAction, AuditEventType, AuditRecord, DeliveryFilter, DeliveryState, EntityKind,
};
use uuid::Uuid;

#[derive(Debug, Subcommand)]
pub(crate) enum OutboxCommand {
    /// List deliveries, newest first: id, target, state, attempts, last
    /// HTTP status, SOP Instance UID, the destination's last answer.
    List {
        /// Only this state: pending, delivered or failed.
        #[arg(long)]
        state: Option<String>,
        /// Only this case's.
        #[arg(long)]
        case: Option<Uuid>,
        /// At most this many [default: 100].
        #[arg(long, default_value_t = 100)]
        limit: i64,
    },
    /// Queue failed deliveries again: the ids given, or every failed one
    /// with --all-failed.
    Retry {
        /// Delivery ids.
        ids: Vec<Uuid>,
        /// Every failed delivery.
        #[arg(long)]
        all_failed: bool,
    },
}

pub(crate) async fn run(settings: &Settings, cmd: OutboxCommand) -> anyhow::Result<ExitCode> {
    let state = fusion_app::connect_storage(settings).await?;
    let repo = &state.repository;
    match cmd {
        OutboxCommand::List { state, case, limit } => {
            let states = match state.as_deref() {
                None => Vec::new(),
                Some(s) => vec![DeliveryState::parse(s).ok_or_else(|| {
                    anyhow::anyhow!("--state must be pending, delivered or failed")
                })?],
            };
            let rows = repo
                .deliveries(&DeliveryFilter {
                    states,
                    case_id: case,
                    prediction_id: None,
                    limit: Some(limit),
                })
                .await?;
            println!(
                "id\tcase\tprediction\treview\ttarget\tstate\tattempts\tstatus\tsop_instance_uid\tlast_error"
            );
            for d in rows {
                println!(
                    "{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}",
                    d.id,
                    d.case_id,
                    d.prediction_id,
                    d.review_id.map(|r| r.to_string()).unwrap_or_default(),
                    d.target.as_str(),
                    d.state.as_str(),
                    d.attempts,
                    d.last_status.map(|s| s.to_string()).unwrap_or_default(),
                    d.sop_instance_uid.unwrap_or_default(),
                    d.last_error.unwrap_or_default().replace(['\t', '\n'], " "),
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        OutboxCommand::Retry { ids, all_failed } => {
            let mut ids = ids;
            if all_failed {
                let failed = repo
                    .deliveries(&DeliveryFilter {
                        states: vec![DeliveryState::Failed],
                        ..DeliveryFilter::default()
                    })
                    .await?;
                ids.extend(failed.into_iter().map(|d| d.id));
            }
            if ids.is_empty() {
                anyhow::bail!("name delivery ids, or --all-failed");
            }
            let mut missed = 0;
            for id in ids {
                let audit = AuditRecord::builder(
                    AuditEventType::PatientRecord,
                    "delivery-retry",
                    AuditAction::Update,
                    Operator::current().agent(),
                )
                .entity(EntityKind::Delivery, id.to_string())
                .build();
                if repo.retry_delivery(id, &audit).await? {
                    println!("fusion: outbox: {id} queued again");
                } else {
                    eprintln!("fusion: outbox: {id} is not a failed delivery");
                    missed += 1;
                }
            }
            Ok(if missed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            })
        }
    }
}
