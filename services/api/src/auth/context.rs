//! [`AuditContext`]: what a handler needs to write an audit event for the
//! request it serves: the principal, the client address, the request id and
//! any stated purpose of use.

use actix_web::{FromRequest, HttpMessage, HttpRequest};
use fusion_store::{AuditAction, AuditEntity, AuditEventType, AuditRecord};

use super::{Principal, client_address, request_id};

/// Request-scoped audit information; extract it in a handler and call
/// [`AuditContext::record`] for each event the request causes.
#[derive(Debug, Clone)]
pub struct AuditContext {
    /// Who is calling.
    pub principal: Principal,
    /// The client's network address.
    pub address: Option<String>,
    /// The request id.
    pub request_id: Option<String>,
    /// From the `X-Purpose-Of-Use` header (e.g. `TREAT`, `HOPERAT`;
    /// HL7 v3 PurposeOfUse codes), when sent.
    pub purpose_of_use: Option<String>,
}

impl AuditContext {
    /// Who acts, for the application's operations that record their own
    /// audit events ([`fusion_app::cases::store_note`]).
    pub fn actor(&self) -> fusion_app::Actor {
        fusion_app::Actor {
            agent: self.principal.agent(self.address.clone()),
            request_id: self.request_id.clone(),
            purpose_of_use: self.purpose_of_use.clone(),
        }
    }

    /// A successful event of this request.
    pub fn record(
        &self,
        event_type: AuditEventType,
        subtype: &str,
        action: AuditAction,
        entities: Vec<AuditEntity>,
        patient_ids: Vec<String>,
    ) -> AuditRecord {
        self.actor()
            .audit(event_type, subtype, action)
            .entities(entities)
            .patient_ids(patient_ids)
            .build()
    }
}

impl FromRequest for AuditContext {
    type Error = actix_web::Error;
    type Future = std::future::Ready<Result<Self, Self::Error>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        let principal = req.extensions().get::<Principal>().cloned();
        std::future::ready(match principal {
            Some(principal) => Ok(Self {
                principal,
                address: client_address(req),
                request_id: request_id(req),
                purpose_of_use: req
                    .headers()
                    .get("x-purpose-of-use")
                    .and_then(|v| v.to_str().ok())
                    .map(|v| v.chars().take(64).collect()),
            }),
            None => Err(actix_web::error::ErrorUnauthorized("not authenticated")),
        })
    }
}
