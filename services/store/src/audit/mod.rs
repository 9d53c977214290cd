//! The audit trail: FHIR R4 AuditEvent fields with DICOM PS3.15 Annex A.5 /
//! IHE ATNA event codes, stored insert-only and hash chained.
//!
//! Each stored event's `hash` is SHA-256 over the previous event's hash (hex)
//! followed by the event's own canonical JSON (RFC 8785, JSON Canonicalization
//! Scheme) without its `hash` field. Editing, deleting or re-ordering any row
//! breaks every later link, which [`verify_chain`] reports by sequence number.

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};

mod chain;

pub use chain::{ChainAnchor, ChainBreak, ChainReport, ChainVerifier, chain_hash};

/// `prev_hash` of the first event.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Event types: DICOM PS3.16 CID 400 "Audit Event ID" codes (scheme DCM,
/// `http://dicom.nema.org/resources/ontology/DCM`) used by IHE ATNA.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditEventType {
    /// 110100 Application Activity (start, stop, first admin created).
    ApplicationActivity,
    /// 110101 Audit Log Used (audit read or verified).
    AuditLogUsed,
    /// 110103 DICOM Instances Accessed (created, read, modified, deleted).
    DicomInstancesAccessed,
    /// 110104 DICOM Instances Transferred (STOW-RS, WADO-RS retrieve).
    DicomInstancesTransferred,
    /// 110106 Export (audit export, bulk data leaving the system).
    Export,
    /// 110107 Import (notes received, `fusion ingest`).
    Import,
    /// 110110 Patient Record (notes, cases, predictions, reviews).
    PatientRecord,
    /// 110112 Query (QIDO-RS, list endpoints).
    Query,
    /// 110113 Security Alert (configuration and policy changes: keys, users,
    /// model packages).
    SecurityAlert,
    /// 110114 User Authentication (login, logout, failed credentials).
    UserAuthentication,
}

impl AuditEventType {
    /// The DCM code.
    pub fn code(self) -> &'static str {
        match self {
            Self::ApplicationActivity => "110100",
            Self::AuditLogUsed => "110101",
            Self::DicomInstancesAccessed => "110103",
            Self::DicomInstancesTransferred => "110104",
            Self::Export => "110106",
            Self::Import => "110107",
            Self::PatientRecord => "110110",
            Self::Query => "110112",
            Self::SecurityAlert => "110113",
            Self::UserAuthentication => "110114",
        }
    }

    /// The code's display name in PS3.16.
    pub fn display(self) -> &'static str {
        match self {
            Self::ApplicationActivity => "Application Activity",
            Self::AuditLogUsed => "Audit Log Used",
            Self::DicomInstancesAccessed => "DICOM Instances Accessed",
            Self::DicomInstancesTransferred => "DICOM Instances Transferred",
            Self::Export => "Export",
            Self::Import => "Import",
            Self::PatientRecord => "Patient Record",
            Self::Query => "Query",
            Self::SecurityAlert => "Security Alert",
            Self::UserAuthentication => "User Authentication",
        }
    }

    /// Parses a DCM code back.
    pub fn from_code(code: &str) -> Option<Self> {
        ALL_EVENT_TYPES.iter().copied().find(|t| t.code() == code)
    }
}

/// Every event type, for catalogues and tests.
pub const ALL_EVENT_TYPES: [AuditEventType; 10] = [
    AuditEventType::ApplicationActivity,
    AuditEventType::AuditLogUsed,
    AuditEventType::DicomInstancesAccessed,
    AuditEventType::DicomInstancesTransferred,
    AuditEventType::Export,
    AuditEventType::Import,
    AuditEventType::PatientRecord,
    AuditEventType::Query,
    AuditEventType::SecurityAlert,
    AuditEventType::UserAuthentication,
];

/// FHIR R4 AuditEvent.action (value set `audit-event-action`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AuditAction {
    /// Create.
    #[serde(rename = "C")]
    Create,
    /// Read/view/print.
    #[serde(rename = "R")]
    Read,
    /// Update.
    #[serde(rename = "U")]
    Update,
    /// Delete.
    #[serde(rename = "D")]
    Delete,
    /// Execute (login, logout, queries, exports, verification).
    #[serde(rename = "E")]
    Execute,
}

impl AuditAction {
    /// The one-letter code.
    pub fn code(self) -> &'static str {
        match self {
            Self::Create => "C",
            Self::Read => "R",
            Self::Update => "U",
            Self::Delete => "D",
            Self::Execute => "E",
        }
    }

    /// Parses the one-letter code.
    pub fn from_code(code: &str) -> Option<Self> {
        match code {
            "C" => Some(Self::Create),
            "R" => Some(Self::Read),
            "U" => Some(Self::Update),
            "D" => Some(Self::Delete),
            "E" => Some(Self::Execute),
            _ => None,
        }
    }
}

/// FHIR R4 AuditEvent.outcome (value set `audit-event-outcome`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AuditOutcome {
    /// 0: success.
    #[serde(rename = "0")]
    Success,
    /// 4: minor failure (the request was refused: bad input, not allowed).
    #[serde(rename = "4")]
    MinorFailure,
    /// 8: serious failure (failed authentication, integrity failure).
    #[serde(rename = "8")]
    SeriousFailure,
    /// 12: major failure (the service failed).
    #[serde(rename = "12")]
    MajorFailure,
}

impl AuditOutcome {
    /// The numeric code as text.
    pub fn code(self) -> &'static str {
        match self {
            Self::Success => "0",
            Self::MinorFailure => "4",
            Self::SeriousFailure => "8",
            Self::MajorFailure => "12",
        }
    }

    /// Parses the code.
    pub fn from_code(code: &str) -> Option<Self> {
        match code {
            "0" => Some(Self::Success),
            "4" => Some(Self::MinorFailure),
            "8" => Some(Self::SeriousFailure),
            "12" => Some(Self::MajorFailure),
            _ => None,
        }
    }
}

/// Who acted (AuditEvent.agent): a user, an API key, or an unauthenticated
/// caller (failed logins).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditAgent {
    /// `user`, `api_key`, `anonymous` or `system` (the service itself).
    pub kind: String,
    /// Our identifier of the agent (user id, key id); empty when anonymous.
    pub id: String,
    /// The user name or key label, or the name tried in a failed login.
    pub name: String,
    /// The agent's role when authenticated.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<String>,
    /// The client's network address (AuditEvent.agent.network.address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<String>,
    /// Whether this agent initiated the event (AuditEvent.agent.requestor).
    pub requestor: bool,
}

/// The kinds of agent (AuditEvent.agent), as stored in
/// [`AuditAgent::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AgentKind {
    /// A signed-in user (`user`).
    User,
    /// An integration client's API key (`api_key`).
    ApiKey,
    /// An unauthenticated caller: a failed login or credential (`anonymous`).
    Anonymous,
    /// The service itself: a worker, a sweep, a policy (`system`).
    System,
    /// An operator at the command line (`operator`).
    Operator,
    /// A destination results are delivered to: a PACS, an EHR
    /// (`destination`).
    Destination,
}

impl AgentKind {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::ApiKey => "api_key",
            Self::Anonymous => "anonymous",
            Self::System => "system",
            Self::Operator => "operator",
            Self::Destination => "destination",
        }
    }
}

impl AuditAgent {
    /// An agent of `kind` that initiated the event, with no role and no
    /// network address (add them with [`AuditAgent::role`] and
    /// [`AuditAgent::address`]).
    pub fn new(kind: AgentKind, id: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            kind: kind.as_str().to_owned(),
            id: id.into(),
            name: name.into(),
            role: None,
            address: None,
            requestor: true,
        }
    }

    /// The service itself, for events it raises on its own.
    pub fn system() -> Self {
        Self::new(AgentKind::System, "fusion", "fusion")
    }

    /// An operator at the command line, named by their login name, in the
    /// role `operator`.
    pub fn operator(name: &str) -> Self {
        Self::new(AgentKind::Operator, name, name).role("operator")
    }

    /// With the agent's role.
    #[must_use]
    pub fn role(mut self, role: impl Into<String>) -> Self {
        self.role = Some(role.into());
        self
    }

    /// With the client's network address, when known.
    #[must_use]
    pub fn address(mut self, address: Option<String>) -> Self {
        self.address = address;
        self
    }

    /// As an agent that took part in the event but did not initiate it
    /// (AuditEvent.agent.requestor false).
    #[must_use]
    pub fn not_requestor(mut self) -> Self {
        self.requestor = false;
        self
    }
}

/// What was acted on (AuditEvent.entity).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditEntity {
    /// An [`EntityKind`]'s stored text: `patient`, `study`, `series`,
    /// `instance`, `note`, `case`, `prediction`, `review`, `job`,
    /// `delivery`, `user`, `api_key`, `session`, `model_package`,
    /// `model-package` (monitoring alerts), `audit_log`, `blob_store`.
    pub kind: String,
    /// Its identifier (a UID, a UUID, a name). Never free text from a note.
    pub id: String,
}

/// The kinds of entity an event acts on (AuditEvent.entity), as stored in
/// [`AuditEntity::kind`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EntityKind {
    /// A patient, by Patient ID (`patient`).
    Patient,
    /// A study, by Study Instance UID (`study`).
    Study,
    /// A series, by Series Instance UID (`series`).
    Series,
    /// An instance, by SOP Instance UID (`instance`).
    Instance,
    /// A clinical note, by id (`note`).
    Note,
    /// A case (`case`).
    Case,
    /// A prediction (`prediction`).
    Prediction,
    /// A review (`review`).
    Review,
    /// An inference job (`job`).
    Job,
    /// An outbox delivery (`delivery`).
    Delivery,
    /// A user account (`user`), by username.
    User,
    /// An API key (`api_key`).
    ApiKey,
    /// A session (`session`).
    Session,
    /// A model package, as `name@version` (`model_package`).
    ModelPackage,
    /// The model packages a monitoring alert is about, `name@version`
    /// joined by ` + ` (`model-package`: the monitor's events have always
    /// been stored with the hyphen, and stay so).
    MonitoredPackages,
    /// The audit trail itself (`audit_log`).
    AuditLog,
    /// The blob store (`blob_store`).
    BlobStore,
}

impl EntityKind {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Patient => "patient",
            Self::Study => "study",
            Self::Series => "series",
            Self::Instance => "instance",
            Self::Note => "note",
            Self::Case => "case",
            Self::Prediction => "prediction",
            Self::Review => "review",
            Self::Job => "job",
            Self::Delivery => "delivery",
            Self::User => "user",
            Self::ApiKey => "api_key",
            Self::Session => "session",
            Self::ModelPackage => "model_package",
            Self::MonitoredPackages => "model-package",
            Self::AuditLog => "audit_log",
            Self::BlobStore => "blob_store",
        }
    }
}

impl AuditEntity {
    /// An entity of `kind` with identifier `id`.
    pub fn new(kind: EntityKind, id: impl Into<String>) -> Self {
        Self {
            kind: kind.as_str().to_owned(),
            id: id.into(),
        }
    }
}

/// An event as a handler records it; the store adds sequence, time and hashes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// AuditEvent.type.
    pub event_type: AuditEventType,
    /// AuditEvent.subtype: the operation, e.g. `stow-rs`, `qido-rs`,
    /// `login`, `note-create` (our own code system).
    pub subtype: String,
    /// AuditEvent.action.
    pub action: AuditAction,
    /// AuditEvent.outcome.
    pub outcome: AuditOutcome,
    /// AuditEvent.outcomeDesc: why a failure failed (no PHI, no secrets).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome_desc: Option<String>,
    /// AuditEvent.agent.
    pub agent: AuditAgent,
    /// AuditEvent.entity.
    pub entities: Vec<AuditEntity>,
    /// The Patient IDs the event touches (for "who saw which patient").
    pub patient_ids: Vec<String>,
    /// AuditEvent.purposeOfUse, when the caller stated one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purpose_of_use: Option<String>,
    /// The request id (also in logs and spans).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl AuditRecord {
    /// Starts a record of a successful event of `event_type`, operation
    /// `subtype` (our own code system: `stow-rs`, `login`, …) and `action`,
    /// by `agent`; add what it acted on and finish with
    /// [`AuditRecordBuilder::build`].
    pub fn builder(
        event_type: AuditEventType,
        subtype: &str,
        action: AuditAction,
        agent: AuditAgent,
    ) -> AuditRecordBuilder {
        AuditRecordBuilder(Self {
            event_type,
            subtype: subtype.to_owned(),
            action,
            outcome: AuditOutcome::Success,
            outcome_desc: None,
            agent,
            entities: Vec::new(),
            patient_ids: Vec::new(),
            purpose_of_use: None,
            request_id: None,
        })
    }
}

/// Builds an [`AuditRecord`]: the event, its agent and what it acted on;
/// outcome success unless set, no entities, patients, purpose of use or
/// request id unless added.
#[derive(Debug, Clone)]
#[must_use]
pub struct AuditRecordBuilder(AuditRecord);

impl AuditRecordBuilder {
    /// With this outcome.
    pub fn outcome(mut self, outcome: AuditOutcome) -> Self {
        self.0.outcome = outcome;
        self
    }

    /// With AuditEvent.outcomeDesc: why a failure failed (no PHI, no
    /// secrets).
    pub fn outcome_desc(mut self, desc: impl Into<String>) -> Self {
        self.0.outcome_desc = Some(desc.into());
        self
    }

    /// Adds an entity of `kind` with identifier `id`.
    pub fn entity(mut self, kind: EntityKind, id: impl Into<String>) -> Self {
        self.0.entities.push(AuditEntity::new(kind, id));
        self
    }

    /// Adds entities.
    pub fn entities(mut self, entities: impl IntoIterator<Item = AuditEntity>) -> Self {
        self.0.entities.extend(entities);
        self
    }

    /// With the Patient IDs the event touches.
    pub fn patient_ids(mut self, patient_ids: Vec<String>) -> Self {
        self.0.patient_ids = patient_ids;
        self
    }

    /// With AuditEvent.purposeOfUse, when the caller stated one.
    pub fn purpose_of_use(mut self, purpose: Option<String>) -> Self {
        self.0.purpose_of_use = purpose;
        self
    }

    /// With the request id, when over HTTP.
    pub fn request_id(mut self, request_id: Option<String>) -> Self {
        self.0.request_id = request_id;
        self
    }

    /// The record.
    #[must_use]
    pub fn build(self) -> AuditRecord {
        self.0
    }
}

/// A stored event: the record plus its place in the chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredAuditEvent {
    /// Position in the chain, from 1, without gaps.
    pub seq: i64,
    /// AuditEvent.recorded, truncated to microseconds (what both databases keep).
    pub recorded_at: DateTime<Utc>,
    /// The event.
    #[serde(flatten)]
    pub record: AuditRecord,
    /// The previous event's hash ([`GENESIS_HASH`] for the first).
    pub prev_hash: String,
    /// SHA-256 of `prev_hash` and this event's canonical JSON.
    pub hash: String,
}

/// The time as stored: truncated to microseconds, so the hash computed at
/// write time is the hash recomputed from the row.
pub fn audit_time(t: DateTime<Utc>) -> DateTime<Utc> {
    t.trunc_subsecs(6)
}

/// Filters for reading the trail (all optional, combined with AND).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AuditFilter {
    /// Recorded at or after.
    pub from: Option<DateTime<Utc>>,
    /// Recorded before.
    pub to: Option<DateTime<Utc>>,
    /// Names this Patient ID.
    pub patient_id: Option<String>,
    /// Agent id or name equals.
    pub agent: Option<String>,
    /// Action code.
    pub action: Option<AuditAction>,
    /// Outcome code.
    pub outcome: Option<AuditOutcome>,
    /// Most events to return (oldest first).
    pub limit: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> AuditRecord {
        AuditRecord {
            event_type: AuditEventType::UserAuthentication,
            subtype: "login".into(),
            action: AuditAction::Execute,
            outcome: AuditOutcome::Success,
            outcome_desc: None,
            agent: AuditAgent {
                kind: "user".into(),
                id: "u1".into(),
                name: "alice".into(),
                role: Some("clinician".into()),
                address: Some("127.0.0.1".into()),
                requestor: true,
            },
            entities: vec![AuditEntity::new(EntityKind::Session, "s1")],
            patient_ids: vec![],
            purpose_of_use: None,
            request_id: Some("r1".into()),
        }
    }

    #[test]
    fn the_builder_makes_the_same_record_as_the_literal() {
        let agent = AuditAgent::new(AgentKind::User, "u1", "alice")
            .role("clinician")
            .address(Some("127.0.0.1".into()));
        let built = AuditRecord::builder(
            AuditEventType::UserAuthentication,
            "login",
            AuditAction::Execute,
            agent,
        )
        .entity(EntityKind::Session, "s1")
        .request_id(Some("r1".into()))
        .build();
        assert_eq!(built, record());
        assert_eq!(AuditAgent::system().kind, "system");
        assert!(AuditAgent::system().requestor);
        let op = AuditAgent::operator("ops");
        assert_eq!(
            (op.kind.as_str(), op.id.as_str(), op.role.as_deref()),
            ("operator", "ops", Some("operator"))
        );
    }

    #[test]
    fn hash_is_stable_and_depends_on_every_field() {
        let t = DateTime::parse_from_rfc3339("2026-11-30T10:00:00.123456789Z")
            .unwrap()
            .with_timezone(&Utc);
        let h = chain_hash(1, t, &record(), GENESIS_HASH).unwrap();
        assert_eq!(h.len(), 64);
        // Sub-microsecond digits are not stored, so they cannot matter.
        let t2 = DateTime::parse_from_rfc3339("2026-11-30T10:00:00.123456Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(h, chain_hash(1, t2, &record(), GENESIS_HASH).unwrap());
        let mut changed = record();
        changed.outcome = AuditOutcome::SeriousFailure;
        assert_ne!(h, chain_hash(1, t, &changed, GENESIS_HASH).unwrap());
        assert_ne!(h, chain_hash(2, t, &record(), GENESIS_HASH).unwrap());
    }

    #[test]
    fn verifier_names_the_first_broken_event() {
        let t = audit_time(Utc::now());
        let mut events = Vec::new();
        let mut prev = GENESIS_HASH.to_owned();
        for seq in 1..=4 {
            let hash = chain_hash(seq, t, &record(), &prev).unwrap();
            events.push(StoredAuditEvent {
                seq,
                recorded_at: t,
                record: record(),
                prev_hash: prev.clone(),
                hash: hash.clone(),
            });
            prev = hash;
        }
        let mut ok = ChainVerifier::default();
        events.iter().for_each(|e| ok.push(e));
        let report = ok.finish();
        assert_eq!(report.events, 4);
        assert!(report.first_break.is_none());
        assert_eq!(report.head.as_deref(), Some(prev.as_str()));

        events[2].record.agent.name = "mallory".into();
        let mut bad = ChainVerifier::default();
        events.iter().for_each(|e| bad.push(e));
        let report = bad.finish();
        assert_eq!(report.first_break.unwrap().seq, 3);
    }

    #[test]
    fn codes_round_trip() {
        for t in ALL_EVENT_TYPES {
            assert_eq!(AuditEventType::from_code(t.code()), Some(t));
        }
        assert_eq!(AuditAction::from_code("E"), Some(AuditAction::Execute));
        assert_eq!(
            AuditOutcome::from_code("12"),
            Some(AuditOutcome::MajorFailure)
        );
    }
}
