//! Who acts: the audit agent of an action and, over HTTP, its request id and
//! stated purpose of use, from which every audit record the application
//! writes starts (IHE ATNA; DICOM PS3.15 Annex A.5 ActiveParticipant).

use fusion_store::{AuditAction, AuditAgent, AuditEventType, AuditRecord, AuditRecordBuilder};

/// Who acts, for the audit events an action records: the agent, and over
/// HTTP the request id and the stated purpose of use.
#[derive(Debug, Clone)]
pub struct Actor {
    /// The audit agent.
    pub agent: AuditAgent,
    /// The request id, when over HTTP.
    pub request_id: Option<String>,
    /// AuditEvent.purposeOfUse, when stated (HL7 v3 PurposeOfUse).
    pub purpose_of_use: Option<String>,
}

impl Actor {
    /// An actor outside any request: no request id, no purpose of use.
    pub fn new(agent: AuditAgent) -> Self {
        Self {
            agent,
            request_id: None,
            purpose_of_use: None,
        }
    }

    /// Starts the audit record of an event this actor causes: its agent,
    /// request id and purpose of use.
    pub fn audit(
        &self,
        event_type: AuditEventType,
        subtype: &str,
        action: AuditAction,
    ) -> AuditRecordBuilder {
        AuditRecord::builder(event_type, subtype, action, self.agent.clone())
            .purpose_of_use(self.purpose_of_use.clone())
            .request_id(self.request_id.clone())
    }
}
