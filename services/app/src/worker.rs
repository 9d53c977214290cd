//! Inference workers: the loop that runs the job queue [`crate::cases`]
//! fills.
//!
//! A worker claims a job (PostgreSQL `FOR UPDATE SKIP LOCKED`, so workers in
//! several processes share one queue), gathers the case's inputs (the
//! study's instances decoded to modality values with the header attributes
//! the applicability gate reads, and the case's notes with their labels),
//! runs [`Pipeline::predict`] off the executor, and stores the result as the
//! case's next prediction version with its audit event, in one transaction.
//! When neither modality is usable it stores nothing and marks the case
//! `no_modality`. Workers wake on [`State::jobs`] when this process
//! queues a job and poll every [`POLL_INTERVAL`] for jobs other processes
//! queue.
//!
//! Logs name cases, jobs and instances by identifier only, never patient
//! data or note text.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use fusion_models::{
    CaseInput, FrameValues, GateAttributes, ImageCandidate, NoteInput, Pipeline, PredictionOutput,
};
use fusion_notes::intake::DEFAULT_MAX_TEXT_BYTES as MAX_TEXT_BYTES;
use fusion_schemas::PredictionInputs;
use fusion_store::{
    AgentKind, AuditAction, AuditAgent, AuditEntity, AuditEventType, AuditRecord, CaseRecord,
    CaseStatus, DecodeStatus, EntityKind, Finding, JobRecord, MAX_FINDINGS, NewPrediction,
    PredictionRecord, PredictionStatus, StoreError,
};
use uuid::Uuid;

use crate::State;

/// How often an idle worker looks for jobs queued by other processes.
pub const POLL_INTERVAL: Duration = Duration::from_secs(2);

/// A job claimed longer ago than this is taken as abandoned (its worker
/// died) and queued again.
pub const STALE_AFTER: Duration = Duration::from_secs(600);

/// Most instances of a study handed to the image branch (decoded ones
/// first); the gate picks among them.
pub const MAX_IMAGES: usize = 8;

/// Why a job failed (retried up to the store's attempt limit). Messages
/// carry no patient data.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The database failed.
    #[error("database: {0}")]
    Store(#[from] StoreError),
    /// The job's case no longer exists.
    #[error("the case does not exist")]
    NoCase,
    /// The blocking task running the models panicked or was cancelled.
    #[error("the model task did not finish: {0}")]
    Task(String),
    /// The model output could not be serialised.
    #[error("cannot serialise the model output: {0}")]
    Serialise(#[from] serde_json::Error),
}

/// What a finished job did.
#[derive(Debug, Clone, PartialEq)]
pub enum JobOutcome {
    /// A new prediction version was stored.
    Predicted {
        /// The prediction.
        prediction_id: Uuid,
        /// Its version within the case.
        version: i32,
        /// Whether it abstained.
        abstain: bool,
    },
    /// Neither modality was usable and the case had no version yet:
    /// nothing stored, case `no_modality`. (With earlier versions, an
    /// abstaining version supersedes them: [`Self::Predicted`].)
    NoModality,
    /// The job was no longer ours (requeued as stale meanwhile).
    Lost,
}

// ------------------------------------------------------------------ workers

/// Loads the model packages under `settings.models_dir`, once, off the
/// executor. Never fails: a missing package leaves its branch reporting so.
pub async fn load_pipeline(settings: &crate::config::Settings) -> Arc<Pipeline> {
    let dir = settings.models_dir.clone();
    let started = Instant::now();
    let loaded = tokio::task::spawn_blocking(move || Pipeline::load(&dir)).await;
    let pipeline = match loaded {
        Ok(p) => p,
        // `load` does not panic; should it, an empty folder gives a
        // pipeline whose branches say that no package is installed.
        Err(e) => {
            tracing::error!(error = %e, "loading the model packages failed");
            Pipeline::load(std::path::Path::new(""))
        }
    };
    for p in pipeline.packages() {
        tracing::info!(
            package = %p.name,
            version = %p.version,
            modality = %p.modality,
            status = ?p.status,
            reason = p.reason.as_deref().unwrap_or(""),
            "model package"
        );
    }
    let loaded = pipeline
        .packages()
        .iter()
        .filter(|p| p.status == fusion_schemas::PackageStatus::Loaded)
        .count();
    tracing::info!(
        elapsed_ms = started.elapsed().as_millis() as u64,
        loaded,
        "model packages loaded"
    );
    if loaded == 0 {
        // Every case would come out "nothing usable": say so where an
        // operator looks (review: a wrong models_dir went unnoticed).
        tracing::warn!(
            models_dir = %settings.models_dir.display(),
            "no model package loaded: predictions will have no usable branch; \
             check FUSION_MODELS_DIR and run scripts/fetch-models"
        );
    }
    Arc::new(pipeline)
}

/// Starts `count` workers on the current runtime, sharing `pipeline`.
pub fn spawn_workers(
    state: &State,
    pipeline: &Arc<Pipeline>,
    count: usize,
) -> Vec<tokio::task::JoinHandle<()>> {
    let host = std::env::var("HOSTNAME").unwrap_or_else(|_| "local".to_owned());
    (0..count)
        .map(|i| {
            let id = format!("{host}:{}:{i}", std::process::id());
            tokio::spawn(run_worker(state.clone(), pipeline.clone(), id))
        })
        .collect()
}

/// One worker: claims and runs jobs until the runtime stops.
pub async fn run_worker(state: State, pipeline: Arc<Pipeline>, worker_id: String) {
    tracing::info!(worker = %worker_id, "inference worker started");
    // Counted down when the task ends (the runtime stops or it panics).
    state.metrics.workers.add(1, &[]);
    let _running = WorkerGauge(state.metrics.clone());
    let stale = chrono::Duration::from_std(STALE_AFTER).unwrap_or(chrono::Duration::minutes(10));
    let mut last_sweep: Option<Instant> = None;
    loop {
        if last_sweep.is_none_or(|t| t.elapsed() >= POLL_INTERVAL * 30) {
            last_sweep = Some(Instant::now());
            match state.repository.requeue_stale(stale).await {
                Ok(0) => {}
                Ok(n) => tracing::warn!(jobs = n, "stale inference jobs queued again"),
                Err(e) => tracing::warn!(error = %e, "cannot sweep stale inference jobs"),
            }
        }
        match state.repository.claim_job(&worker_id).await {
            Ok(Some(job)) => {
                run_claimed(&state, &pipeline, &worker_id, job).await;
                continue;
            }
            Ok(None) => {}
            Err(e) => tracing::warn!(worker = %worker_id, error = %e, "cannot claim a job"),
        }
        tokio::select! {
            () = state.jobs.notified() => {}
            () = tokio::time::sleep(POLL_INTERVAL) => {}
        }
    }
}

/// Counts a worker out of `fusion.inference.workers` when dropped.
struct WorkerGauge(crate::metrics::Metrics);

impl Drop for WorkerGauge {
    fn drop(&mut self) {
        self.0.workers.add(-1, &[]);
    }
}

/// Runs a claimed job and records its end (a failure is retried by the
/// queue up to its attempt limit).
pub async fn run_claimed(state: &State, pipeline: &Arc<Pipeline>, worker_id: &str, job: JobRecord) {
    let span = tracing::info_span!("inference_job", job = %job.id, case = %job.case_id, attempt = job.attempts);
    let _ = tracing::Instrument::instrument(
        async {
            let started = Instant::now();
            if let Some(claimed) = job.claimed_at {
                let wait = (claimed - job.created_at).num_milliseconds().max(0) as f64 / 1e3;
                state.metrics.queue_wait.record(wait, &[]);
            }
            let result = process_job(state, pipeline, worker_id, &job).await;
            let outcome = match &result {
                Ok(JobOutcome::Predicted { abstain: true, .. }) => "abstained",
                Ok(JobOutcome::Predicted { .. }) => "predicted",
                Ok(JobOutcome::NoModality) => "no_modality",
                Ok(JobOutcome::Lost) => "lost",
                Err(_) => "failed",
            };
            let attrs = [opentelemetry::KeyValue::new("outcome", outcome)];
            state.metrics.jobs.add(1, &attrs);
            state
                .metrics
                .job_duration
                .record(started.elapsed().as_secs_f64(), &attrs);
            match result {
                Ok(outcome) => tracing::info!(
                    outcome = ?outcome,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "inference job done"
                ),
                Err(e) => {
                    tracing::warn!(error = %e, "inference job failed");
                    match state.repository.fail_job(job.id, &e.to_string()).await {
                        Ok(state) => {
                            tracing::info!(state = ?state, "inference job failure recorded")
                        }
                        Err(e) => tracing::error!(error = %e, "cannot record a job failure"),
                    }
                }
            }
        },
        span,
    )
    .await;
}

/// The agent of the events a worker records.
pub fn worker_agent(worker_id: &str) -> AuditAgent {
    AuditAgent::new(AgentKind::System, worker_id, "inference-worker").not_requestor()
}

/// Gathers the case's inputs, predicts, and stores the outcome.
///
/// # Errors
///
/// [`WorkerError`] for a database failure or a model task that did not
/// finish.
pub async fn process_job(
    state: &State,
    pipeline: &Arc<Pipeline>,
    worker_id: &str,
    job: &JobRecord,
) -> Result<JobOutcome, WorkerError> {
    let case = state
        .repository
        .case(job.case_id)
        .await?
        .ok_or(WorkerError::NoCase)?;
    let (images, notes) = gather(state, &case).await?;
    let inputs = PredictionInputs {
        study_instance_uid: case
            .study_instance_uid
            .as_ref()
            .map(|s| s.as_str().to_owned()),
        instances: images.iter().map(|(uid, _)| uid.clone()).collect(),
        notes: notes.iter().map(|n| n.note_id.clone()).collect(),
    };
    let pipeline = pipeline.clone();
    let span = tracing::Span::current();
    let output = tokio::task::spawn_blocking(move || {
        let _entered = span.enter();
        let decode_started = Instant::now();
        let (images, features): (Vec<ImageCandidate>, Vec<_>) = images
            .into_iter()
            .map(|(uid, bytes)| {
                let (candidate, manufacturer) = read_candidate(uid, bytes);
                let features =
                    crate::monitoring::inputs::features(&candidate.attributes, manufacturer);
                let uid = candidate.sop_instance_uid.clone();
                (candidate, (uid, features))
            })
            .unzip();
        let decode_ms = decode_started.elapsed().as_secs_f64() * 1e3;
        let mut output = pipeline.predict(&CaseInput { images, notes });
        output.timings_ms.insert("decode".into(), decode_ms);
        (output, features)
    })
    .await
    .map_err(|e| WorkerError::Task(e.to_string()))?;
    let (output, features) = output;
    // A job that outlived the stale limit was requeued and may have been
    // claimed again by another worker meanwhile: its result is that
    // worker's to store (attack: one job stored two versions, 9 min apart).
    if !still_ours(state, job).await? {
        tracing::warn!(job = %job.id, "the job was claimed again while it ran; its result is dropped");
        return Ok(JobOutcome::Lost);
    }
    let patient_ids: Vec<String> = case
        .patient_id
        .iter()
        .map(|p| p.as_str().to_owned())
        .collect();
    // A first job with no usable modality stores no version; a later one
    // supersedes the earlier versions (computed from inputs since left out
    // or unusable) with an abstaining one, so the case never shows them as
    // its latest.
    let supersedes = !output.modalities_available
        && state
            .repository
            .prediction_versions(case.id)
            .await?
            .latest_version()
            .is_some();
    if !output.modalities_available && !supersedes {
        let audit = AuditRecord::builder(
            AuditEventType::PatientRecord,
            "prediction-none",
            AuditAction::Update,
            worker_agent(worker_id),
        )
        .outcome_desc(no_modality_reason(&output))
        .entity(EntityKind::Case, case.id.to_string())
        .entity(EntityKind::Job, job.id.to_string())
        .patient_ids(patient_ids)
        .build();
        let ours = state
            .repository
            .complete_job(job.id, Some(CaseStatus::NoModality), Some(&audit))
            .await?;
        if ours {
            record_input(state, &output, case.id, None, &features).await;
        }
        return Ok(if ours {
            JobOutcome::NoModality
        } else {
            JobOutcome::Lost
        });
    }
    let mut new = new_prediction(&output, case.id, job.id, inputs)?;
    // Its SR and FHIR deliveries, queued in the same transaction (#17);
    // a version without a usable modality has no result to send.
    if output.modalities_available {
        new.deliveries = state
            .outbox
            .for_prediction(case.study_instance_uid.is_some());
    }
    let audit = AuditRecord::builder(
        AuditEventType::PatientRecord,
        "prediction-create",
        AuditAction::Create,
        worker_agent(worker_id),
    )
    .entity(EntityKind::Case, case.id.to_string())
    .entity(EntityKind::Prediction, new.id.to_string())
    .entities(
        case.study_instance_uid
            .iter()
            .map(|s| AuditEntity::new(EntityKind::Study, s.as_str())),
    )
    .entities(
        case.note_ids
            .iter()
            .map(|n| AuditEntity::new(EntityKind::Note, n.to_string())),
    )
    .patient_ids(patient_ids)
    .build();
    let stored: PredictionRecord = state.repository.insert_prediction(&new, &audit).await?;
    record_input(
        state,
        &output,
        case.id,
        Some(stored.prediction.id),
        &features,
    )
    .await;
    crate::outbox::wake(state);
    Ok(JobOutcome::Predicted {
        prediction_id: stored.prediction.id,
        version: stored.version,
        abstain: stored.prediction.abstain,
    })
}

/// Whether `job` is still running under this claim: the same worker and
/// the same attempt as when it was claimed.
async fn still_ours(state: &State, job: &JobRecord) -> Result<bool, WorkerError> {
    Ok(state.repository.job(job.id).await?.is_some_and(|now| {
        now.state == fusion_store::JobState::Running
            && now.attempts == job.attempts
            && now.claimed_by == job.claimed_by
    }))
}

/// The study's instances (decoded ones first, at most [`MAX_IMAGES`]) as
/// (SOP Instance UID, bytes), and the case's notes with text.
async fn gather(
    state: &State,
    case: &CaseRecord,
) -> Result<(Vec<(String, Result<Bytes, String>)>, Vec<NoteInput>), WorkerError> {
    let mut images = Vec::new();
    // The study's Patient ID: a note naming another patient is not used
    // (nor, without a study, one naming another than the case's).
    let study_patient = match &case.study_instance_uid {
        Some(uid) => state
            .repository
            .study(uid)
            .await?
            .and_then(|s| s.patient_id),
        None => None,
    };
    if let Some(study) = &case.study_instance_uid {
        let mut instances = state.repository.study_instances(study).await?;
        // Our own reports in the study are results, not input.
        instances.retain(|i| !crate::sr::load::is_sr_class(&i.sop_class_uid));
        // Stable: keeps series and instance order within each group.
        instances.sort_by_key(|i| match i.decode_status {
            DecodeStatus::Ok => 0,
            DecodeStatus::Unknown => 1,
            DecodeStatus::Failed => 2,
        });
        for instance in instances.into_iter().take(MAX_IMAGES) {
            let bytes = state
                .blobs
                .get(&instance.blob_key)
                .await
                .map_err(|e| format!("the stored bytes cannot be read: {e}"));
            images.push((instance.sop_instance_uid.to_string(), bytes));
        }
    }
    let mut notes = Vec::new();
    for id in &case.note_ids {
        let Some(record) = state.repository.note(*id).await? else {
            continue;
        };
        let Some(text) = record.note.text else {
            continue;
        };
        let labels: BTreeMap<String, String> = record
            .note
            .labels
            .iter()
            .map(|(o, l)| (o.as_str().to_owned(), l.as_str().to_owned()))
            .collect();
        // The study's patient (the PACS is authoritative), else the case's:
        // notes that raced into one note-only case from several patients
        // are never fused into one patient's prediction.
        let reference = study_patient
            .as_ref()
            .map(|p| (p, "study"))
            .or_else(|| case.patient_id.as_ref().map(|p| (p, "case")));
        let excluded = match (reference, &record.note.patient_id) {
            (Some((want, what)), Some(note)) if want != note => Some(format!(
                "the note names another Patient ID than the {what}; not used for this case"
            )),
            // Intake refuses such text; one stored before the limit existed
            // is left out rather than labelled and embedded without bound.
            _ if text.len() > MAX_TEXT_BYTES => Some(format!(
                "the note's text is over the {MAX_TEXT_BYTES} bytes that are analysed; \
                 not used for this case"
            )),
            _ => None,
        };
        // The labeller is deterministic and fast: the analysis the models
        // read is recomputed on the stored text (its labels are the stored
        // ones unless the labeller has changed since).
        let analysis = excluded.is_none().then(|| fusion_notes::analyze(&text));
        notes.push(NoteInput {
            note_id: id.to_string(),
            text,
            labels,
            excluded,
            analysis,
        });
    }
    Ok((images, notes))
}

/// Reads one instance for the image branch: header attributes for the
/// applicability gate, and frame 1's modality-LUT values. An instance that
/// cannot be read or decoded is still a candidate, with the reason.
pub fn image_candidate(sop_instance_uid: String, bytes: Result<Bytes, String>) -> ImageCandidate {
    read_candidate(sop_instance_uid, bytes).0
}

/// As [`image_candidate`], with the Manufacturer (0008,0070) for the drift
/// monitor.
fn read_candidate(
    sop_instance_uid: String,
    bytes: Result<Bytes, String>,
) -> (ImageCandidate, Option<String>) {
    let object = bytes.and_then(|b| fusion_imaging::read(&b).map_err(|e| e.to_string()));
    let object = match object {
        Ok(o) => o,
        Err(reason) => {
            let candidate = ImageCandidate {
                sop_instance_uid,
                attributes: GateAttributes::default(),
                pixels: Err(reason),
            };
            return (candidate, None);
        }
    };
    let attributes = fusion_imaging::gate::gate_attributes(&object);
    let manufacturer = fusion_imaging::gate::manufacturer(&object);
    let pixels = fusion_imaging::decode_pixels(&object)
        .map_err(|e| e.to_string())
        .and_then(|px| fusion_imaging::modality_values(&object, &px, 1).map_err(|e| e.to_string()))
        .map(|f| FrameValues {
            rows: f.rows,
            columns: f.columns,
            values: f.values,
        });
    let candidate = ImageCandidate {
        sop_instance_uid,
        attributes,
        pixels,
    };
    (candidate, manufacturer)
}

/// Records what the job's models read for the drift monitor; a failure is
/// logged, not raised (the prediction is stored).
async fn record_input(
    state: &State,
    output: &PredictionOutput,
    case_id: Uuid,
    prediction_id: Option<Uuid>,
    features: &[(String, fusion_store::InputFeatures)],
) {
    let row = crate::monitoring::inputs::model_input(output, case_id, prediction_id, features);
    if let Err(e) = state.repository.record_model_input(&row).await {
        tracing::warn!(case = %case_id, error = %e, "cannot record the model inputs");
    }
}

/// The prediction row for a pipeline output.
///
/// # Errors
///
/// [`WorkerError::Serialise`] (not expected for these types).
pub fn new_prediction(
    output: &PredictionOutput,
    case_id: Uuid,
    job_id: Uuid,
    inputs: PredictionInputs,
) -> Result<NewPrediction, WorkerError> {
    let (findings, refer) = summary(output);
    Ok(NewPrediction {
        id: Uuid::now_v7(),
        case_id,
        status: if output.abstain {
            PredictionStatus::Abstained
        } else {
            PredictionStatus::Predicted
        },
        packages: output.packages.clone(),
        branches: output.branches.clone(),
        fused: output.fused.clone(),
        abstain: output.abstain,
        abstain_reasons: output.abstain_reasons.clone(),
        timings: output.timings_ms.clone(),
        inputs,
        findings,
        refer,
        job_id: Some(job_id),
        deliveries: Vec::new(),
    })
}

/// The top findings (labels with evidence, most probable first) and whether
/// a clinician should look first: the prediction abstains, a label with
/// evidence is withheld (too uncertain or conflicting), or the service's
/// call on a label contradicts what the report states
/// ([`crate::calls::report_disagreements`]) or No Finding is called present
/// beside a finding ([`crate::calls::contradicting_no_finding`]).
pub fn summary(output: &PredictionOutput) -> (Vec<Finding>, bool) {
    let mut findings: Vec<Finding> = output
        .fused
        .iter()
        .filter(|(_, l)| !l.sources.is_empty())
        .map(|(label, l)| Finding {
            label: label.clone(),
            probability: l.opinion.projected_probability(),
        })
        .collect();
    findings.sort_by(|a, b| b.probability.total_cmp(&a.probability));
    findings.truncate(MAX_FINDINGS);
    let refer = output.abstain
        || output
            .fused
            .values()
            .any(|l| !l.sources.is_empty() && l.abstain.is_some())
        || !crate::calls::report_disagreements(&output.fused, &output.branches.text).is_empty()
        || !crate::calls::contradicting_no_finding(&output.fused, &output.branches.text).is_empty();
    (findings, refer)
}

fn no_modality_reason(output: &PredictionOutput) -> String {
    let reason = |r: &fusion_models::BranchReport| {
        r.reason
            .clone()
            .unwrap_or_else(|| format!("{:?}", r.status).to_lowercase())
    };
    format!(
        "no usable modality: image: {}; text: {}",
        reason(&output.branches.image),
        reason(&output.branches.text)
    )
}
