//! The instance pipeline shared by STOW-RS and `fusion ingest`: parse and
//! validate (dicom-rs), check the pixels decode, store the bytes durably in
//! the blob store, then index the instance and audit it in one transaction.
//! An instance is acknowledged only after both are done.
//!
//! Failure reasons follow PS3.18 Table I.2-2 / PS3.4 Table B.2-1 (see
//! [`FailureReason`]). An instance whose pixels cannot be decoded is still
//! stored and indexed, flagged `decode_status = failed` with the reason.

use bytes::Bytes;
use fusion_imaging::{FailureReason, PixelError};
use fusion_schemas::StudyInstanceUid;
use fusion_store::{
    AgentKind, AuditAction, AuditAgent, AuditEventType, AuditOutcome, DecodeStatus, EntityKind,
    NewInstance, PutOutcome,
};

use crate::State;
use crate::cases::{Actor, StudyKey};

/// Who sends the instances, for the audit trail and read-back.
#[derive(Debug, Clone)]
pub struct Submitter {
    /// Who acts: the audit agent, and over HTTP the request id and the
    /// stated purpose of use.
    pub actor: Actor,
    /// Recorded as `submitted_by` (API key or user id).
    pub id: String,
    /// The subtype of the 110104 event of each stored instance: `stow-rs`
    /// (STOW-RS, `fusion ingest`) or `sr-store` (our own SRs, issue #17).
    pub audit_subtype: &'static str,
}

/// What happened to one instance.
#[derive(Debug, Clone, PartialEq)]
pub enum InstanceOutcome {
    /// Newly stored and indexed.
    Stored(StoredInstance),
    /// Already stored with the same bytes: nothing changed.
    Duplicate(StoredInstance),
    /// Refused; nothing stored.
    Failed(FailedInstance),
}

/// Identifiers of a stored instance.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredInstance {
    /// Study Instance UID.
    pub study: String,
    /// Series Instance UID.
    pub series: String,
    /// SOP Instance UID.
    pub sop_instance: String,
    /// SOP Class UID.
    pub sop_class: String,
    /// Whether its pixels decode, and why not.
    pub decode: DecodeStatus,
    /// The decode failure, if any.
    pub decode_reason: Option<String>,
    /// What links the study to its case.
    pub study_key: StudyKey,
    /// Stored by this request (false for a duplicate of a stored instance).
    pub newly_stored: bool,
}

/// A study a request (or an import) touched, and whether it stored new
/// instances of it or only duplicates of stored ones.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TouchedStudy {
    /// The study and what links it to its case.
    pub key: StudyKey,
    /// At least one instance of it was newly stored.
    pub new_instances: bool,
}

impl From<&StoredInstance> for TouchedStudy {
    fn from(i: &StoredInstance) -> Self {
        Self {
            key: i.study_key.clone(),
            new_instances: i.newly_stored,
        }
    }
}

/// After a request (or an import) stored instances: links each distinct
/// study it touched to its case and queues a prediction
/// ([`crate::cases::link_study`]), once per study rather than once per
/// instance. A study touched by duplicates only is linked too (a re-send
/// after a crash between storing and linking is how it reaches its case,
/// issue #14 finding 3), but queues a prediction only when that link is new.
/// Failures are logged; the instances stay stored.
pub async fn link_studies(
    state: &State,
    touched: impl IntoIterator<Item = TouchedStudy>,
    submitter: &Submitter,
) {
    let mut distinct: std::collections::BTreeMap<StudyKey, bool> = Default::default();
    for t in touched {
        *distinct.entry(t.key).or_default() |= t.new_instances;
    }
    for (key, new_instances) in distinct {
        crate::cases::link_study(state, &key, new_instances, &submitter.actor).await;
    }
}

/// At start: links every committed study that no case names (its instances
/// were stored but the process stopped before it linked them) and queues
/// its prediction. Only studies first stored before `started` (this
/// process's start) are swept: a study arriving meanwhile is linked by its
/// own request, and sweeping it too would queue it twice. Returns how many
/// studies it linked.
///
/// # Errors
///
/// [`fusion_store::StoreError`] when the studies cannot be listed.
pub async fn link_orphan_studies(
    state: &State,
    started: chrono::DateTime<chrono::Utc>,
) -> Result<usize, fusion_store::StoreError> {
    let orphans = state.repository.studies_without_case(started).await?;
    let submitter = Submitter {
        audit_subtype: "stow-rs",
        actor: Actor::new(AuditAgent::new(AgentKind::System, "", "start-up sweep").not_requestor()),
        id: "system".into(),
    };
    let n = orphans.len();
    if n > 0 {
        tracing::warn!(studies = n, "linking studies stored without a case");
    }
    link_studies(
        state,
        orphans.into_iter().map(|o| TouchedStudy {
            key: StudyKey {
                study: o.study_instance_uid,
                accession: o.accession_number,
                patient: o.patient_id,
            },
            // Queues a prediction only where the link is new.
            new_instances: false,
        }),
        &submitter,
    )
    .await;
    Ok(n)
}

/// The detail of a refusal because the database could not be reached.
pub const DATABASE_UNAVAILABLE: &str = "the database is unavailable";
/// The detail of a refusal because the blob store could not be written.
pub const BLOB_STORE_UNAVAILABLE: &str = "the blob store is unavailable";

/// A refused instance.
#[derive(Debug, Clone, PartialEq)]
pub struct FailedInstance {
    /// SOP Class UID, when it could be read.
    pub sop_class: Option<String>,
    /// SOP Instance UID, when it could be read.
    pub sop_instance: Option<String>,
    /// The PS3.18 failure reason.
    pub reason: FailureReason,
    /// Why, in words (no PHI).
    pub detail: String,
}

impl FailedInstance {
    /// Whether the instance was refused because storage (the database or
    /// the blob store) could not be reached, not because of the instance:
    /// sending it again later may succeed.
    #[must_use]
    pub fn storage_unavailable(&self) -> bool {
        self.detail == DATABASE_UNAVAILABLE || self.detail == BLOB_STORE_UNAVAILABLE
    }

    /// A refusal of an instance whose UIDs are unknown.
    pub fn unidentified(reason: FailureReason, detail: impl Into<String>) -> Self {
        Self {
            sop_class: None,
            sop_instance: None,
            reason,
            detail: detail.into(),
        }
    }
}

/// Audits a refused instance as a failed transfer (issue #15 item 9): a
/// DICOM Instances Transferred event (DCM 110104, PS3.15 §A.5.3.5), subtype
/// `stow-rs`, action C, outcome 4 (minor failure: the input was refused) or
/// 12 (major failure: the service could not store it, Failure Reason A700
/// or 0110), its outcome description the Failure Reason (PS3.18 Table
/// I.2-2) in hexadecimal and the refusal in words (no value of the
/// instance), its entities the study and instance when they could be read.
/// `outcome` is [`AuditOutcome::MinorFailure`] for refused input and
/// [`AuditOutcome::MajorFailure`] when the service failed. A failure to
/// write the event is logged; the answer to the client stands.
pub async fn audit_refusal(
    state: &State,
    submitter: &Submitter,
    failed: &FailedInstance,
    study: Option<&str>,
    patient_ids: Vec<String>,
    outcome: AuditOutcome,
) {
    let mut record = submitter
        .actor
        .audit(
            AuditEventType::DicomInstancesTransferred,
            "stow-rs",
            AuditAction::Create,
        )
        .outcome(outcome)
        .outcome_desc(format!(
            "refused with Failure Reason {:04X}: {}",
            failed.reason.code(),
            failed.detail
        ))
        .patient_ids(patient_ids);
    if let Some(study) = study {
        record = record.entity(EntityKind::Study, study.to_owned());
    }
    if let Some(instance) = &failed.sop_instance {
        record = record.entity(EntityKind::Instance, instance.clone());
    }
    let record = record.build();
    if let Err(e) = state.repository.append_audit(&record).await {
        tracing::error!(error = %e, "cannot audit a refused instance");
    }
}

/// Parses, validates, decodes, stores and indexes one instance, and audits
/// it: the store audits what it stores and the refusals it decides
/// (conflict, another sender's study) in the same transaction; every other
/// refusal is audited here by [`audit_refusal`].
/// `expected_study` is the Study Instance UID of a `POST /studies/{uid}`;
/// an instance of another study fails alone (A900: PS3.18 has no status of
/// its own for this; A9xx is the "does not match" error class).
///
/// A refused instance's Failed SOP Sequence item carries its SOP Class and
/// Instance UIDs whenever they can be read, from the data set or the file
/// meta ([`fusion_imaging::sop_uids`]).
pub async fn store_instance(
    state: &State,
    bytes: Bytes,
    expected_study: Option<&StudyInstanceUid>,
    submitter: &Submitter,
) -> InstanceOutcome {
    let (outcome, audit) = store_unaudited(state, bytes, expected_study, submitter).await;
    if let (InstanceOutcome::Failed(f), Some((study, patients))) = (&outcome, audit) {
        // Out of Resources and Processing Failure are the service's own
        // failures here (blob store, database, parser crash).
        let outcome = match f.reason {
            FailureReason::OutOfResources | FailureReason::ProcessingFailure => {
                AuditOutcome::MajorFailure
            }
            _ => AuditOutcome::MinorFailure,
        };
        audit_refusal(state, submitter, f, study.as_deref(), patients, outcome).await;
    }
    outcome
}

/// A refusal [`store_instance`] still has to audit: the study and patients
/// it names, when known.
type Unaudited = Option<(Option<String>, Vec<String>)>;

fn failed(reason: FailureReason, detail: impl Into<String>) -> (InstanceOutcome, Unaudited) {
    (
        InstanceOutcome::Failed(FailedInstance::unidentified(reason, detail)),
        Some((None, Vec::new())),
    )
}

/// [`store_instance`] less the audit of the refusals the store did not
/// audit.
async fn store_unaudited(
    state: &State,
    bytes: Bytes,
    expected_study: Option<&StudyInstanceUid>,
    submitter: &Submitter,
) -> (InstanceOutcome, Unaudited) {
    let size = bytes.len();
    let parse_input = bytes.clone();
    let parsed = tokio::task::spawn_blocking(move || {
        // Only the failure reason, message and readable UIDs survive; keep
        // the Err small.
        let instance = fusion_imaging::parse(&parse_input).map_err(|e| {
            let (class, instance) = fusion_imaging::sop_uids(&parse_input);
            FailedInstance {
                sop_class: class,
                sop_instance: instance,
                reason: e.failure_reason(),
                detail: e.to_string(),
            }
        })?;
        let attrs = fusion_imaging::index_attributes(&instance);
        let decode = match fusion_imaging::decode_pixels(instance.object()) {
            Ok(_) => (DecodeStatus::Ok, None),
            Err(PixelError::NoPixelData) => (DecodeStatus::Unknown, None),
            Err(e) => (DecodeStatus::Failed, Some(e.to_string())),
        };
        Ok::<_, FailedInstance>((attrs, decode))
    })
    .await;
    let (attrs, (decode_status, decode_reason)) = match parsed {
        Ok(Ok(v)) => v,
        Ok(Err(f)) => return (InstanceOutcome::Failed(f), Some((None, Vec::new()))),
        Err(_) => return failed(FailureReason::ProcessingFailure, "the parser failed"),
    };
    let patient_ids: Vec<String> = attrs.patient_id.iter().map(|p| p.to_string()).collect();
    if let Some(expected) = expected_study
        && attrs.study_instance_uid != *expected
    {
        return (
            InstanceOutcome::Failed(FailedInstance {
                sop_class: Some(attrs.sop_class_uid.clone()),
                sop_instance: Some(attrs.sop_instance_uid.to_string()),
                reason: FailureReason::DataSetDoesNotMatchSopClass,
                detail: "the instance belongs to another study than the request URL names".into(),
            }),
            Some((Some(attrs.study_instance_uid.to_string()), patient_ids)),
        );
    }
    let stored = StoredInstance {
        study_key: StudyKey {
            study: attrs.study_instance_uid.clone(),
            accession: attrs.accession_number.clone(),
            patient: attrs.patient_id.clone(),
        },
        study: attrs.study_instance_uid.to_string(),
        series: attrs.series_instance_uid.to_string(),
        sop_instance: attrs.sop_instance_uid.to_string(),
        sop_class: attrs.sop_class_uid.clone(),
        decode: decode_status,
        decode_reason: decode_reason.clone(),
        newly_stored: false,
    };
    let blob_key = match state.blobs.put(bytes).await {
        Ok(k) => k,
        Err(e) => {
            tracing::error!(error = %e, "blob store refused an instance");
            return (
                InstanceOutcome::Failed(FailedInstance {
                    sop_class: Some(stored.sop_class),
                    sop_instance: Some(stored.sop_instance),
                    reason: FailureReason::OutOfResources,
                    detail: BLOB_STORE_UNAVAILABLE.into(),
                }),
                Some((Some(stored.study), patient_ids)),
            );
        }
    };
    let mut attrs = attrs;
    without_nul(&mut attrs);
    let new = NewInstance {
        instance: attrs,
        blob_key,
        size_bytes: i64::try_from(size).unwrap_or(i64::MAX),
        decode_status,
        decode_reason,
        submitted_by: Some(submitter.id.clone()),
    };
    let audit = submitter
        .actor
        .audit(
            AuditEventType::DicomInstancesTransferred,
            submitter.audit_subtype,
            AuditAction::Create,
        )
        .entity(EntityKind::Study, stored.study.clone())
        .entity(EntityKind::Instance, stored.sop_instance.clone())
        .patient_ids(patient_ids.clone())
        .build();
    match state.index_writer.put(new, audit).await {
        Ok(PutOutcome::Stored) => (
            InstanceOutcome::Stored(StoredInstance {
                newly_stored: true,
                ..stored
            }),
            None,
        ),
        Ok(PutOutcome::Duplicate) => (InstanceOutcome::Duplicate(stored), None),
        Ok(PutOutcome::ForeignStudy) => (
            InstanceOutcome::Failed(FailedInstance {
                sop_class: Some(stored.sop_class),
                sop_instance: Some(stored.sop_instance),
                reason: FailureReason::NotAuthorized,
                detail: "the study holds another sender's instances".into(),
            }),
            None,
        ),
        Ok(PutOutcome::PatientMismatch) => (
            InstanceOutcome::Failed(FailedInstance {
                sop_class: Some(stored.sop_class),
                sop_instance: Some(stored.sop_instance),
                reason: FailureReason::CannotUnderstand,
                detail: "the study is stored with another Patient ID".into(),
            }),
            None,
        ),
        Ok(PutOutcome::Conflict { .. }) => (
            InstanceOutcome::Failed(FailedInstance {
                sop_class: Some(stored.sop_class),
                sop_instance: Some(stored.sop_instance),
                reason: FailureReason::DuplicateSopInstance,
                detail: "this SOP Instance UID is already stored with different bytes".into(),
            }),
            None,
        ),
        Err(e) => {
            tracing::error!(error = %e, "cannot index an instance");
            (
                InstanceOutcome::Failed(FailedInstance {
                    sop_class: Some(stored.sop_class),
                    sop_instance: Some(stored.sop_instance),
                    reason: FailureReason::OutOfResources,
                    detail: DATABASE_UNAVAILABLE.into(),
                }),
                Some((Some(stored.study), patient_ids)),
            )
        }
    }
}

/// Removes NUL characters from the indexed text: DICOM pads with NUL and
/// some devices leave one inside a value (PS3.5 §6.2 allows it only as
/// padding of UI and OB values), and PostgreSQL cannot store NUL in text or
/// JSON. The stored bytes keep them; only the index loses them.
fn without_nul(attrs: &mut fusion_imaging::InstanceAttributes) {
    fn clean(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::String(s) if s.contains('\0') => s.retain(|c| c != '\0'),
            serde_json::Value::Array(items) => items.iter_mut().for_each(clean),
            serde_json::Value::Object(map) => map.values_mut().for_each(clean),
            _ => {}
        }
    }
    for text in [
        &mut attrs.patient_name,
        &mut attrs.study_description,
        &mut attrs.modality,
        &mut attrs.body_part,
        &mut attrs.study_date,
        &mut attrs.study_time,
        &mut attrs.study_id,
        &mut attrs.referring_physician,
        &mut attrs.series_description,
    ]
    .into_iter()
    .flatten()
    {
        text.retain(|c| c != '\0');
    }
    clean(&mut attrs.attributes);
}
