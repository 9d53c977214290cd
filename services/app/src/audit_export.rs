//! Audit trail export: FHIR R4 AuditEvent resources (as a `Bundle` of type
//! `collection`, or NDJSON, one resource per line) and CSV.
//!
//! Every export ends with the chain head, the hash of the newest event when
//! the export was made, so an exported file can later be checked against the
//! live chain (`fusion audit verify` prints the head): in a Bundle as its
//! `identifier` (system `urn:fusion:audit-chain-head`), in NDJSON as a final
//! `Parameters` resource, in CSV as a final `# chain_head=…` line. Each
//! AuditEvent carries its sequence number, hash and previous hash as
//! extensions.
//!
//! The Bundle keeps the FHIR R4 invariants (Bundle, §2.36): bdl-1, no
//! `total` on a `collection` (it is for `searchset` and `history` only);
//! bdl-7, a `fullUrl` unique in the Bundle (a `urn:uuid:` derived from the
//! event's chain hash); bdl-8, no version-specific `fullUrl`. The tests run
//! Medplum's validator, which evaluates the invariants, on every export
//! format (tests/tests/fhir_invariants.rs).
//!
//! Our own extensions and code system are named under an OID of our own:
//! [`OID_ROOT`], a UUID-derived OID of the `2.25` arc (ITU-T X.667 |
//! ISO/IEC 9834-8 §6.3), unique without registration and on nobody's
//! domain, as `urn:oid:` URIs (RFC 3001), which FHIR R4 accepts for
//! `Extension.url` (§2.13.0.1, an absolute URI) and for a `Coding.system`
//! without a URL (Terminologies, §4.2.1.0.1 "urn:oid:").

use fusion_store::{AuditRecord, StoredAuditEvent};
use serde_json::{Value, json};

/// The OID under which the service names its FHIR extensions (`.1.n`) and
/// code systems (`.2.n`): `2.25.` and the integer of the UUID
/// d0f64a0d-4303-4956-99d6-f7ae32a28ddd (ITU-T X.667 §6.3).
pub const OID_ROOT: &str = "2.25.277758230099478320835405654623537761757";

/// Extension `audit-seq` (valueInteger): the event's position in the hash
/// chain, from 1.
pub const EXT_AUDIT_SEQ: &str = "urn:oid:2.25.277758230099478320835405654623537761757.1.1";
/// Extension `audit-hash` (valueString): the event's SHA-256 chain hash, hex.
pub const EXT_AUDIT_HASH: &str = "urn:oid:2.25.277758230099478320835405654623537761757.1.2";
/// Extension `audit-prev-hash` (valueString): the previous event's hash.
pub const EXT_AUDIT_PREV_HASH: &str = "urn:oid:2.25.277758230099478320835405654623537761757.1.3";
/// Extension `request-id` (valueString): the HTTP request's `X-Request-Id`.
pub const EXT_REQUEST_ID: &str = "urn:oid:2.25.277758230099478320835405654623537761757.1.4";
/// Code system of `AuditEvent.subtype`: the service's operation names
/// (`stow-rs`, `note-create`, `login`, …; compliance/audit-events.md).
pub const CS_AUDIT_SUBTYPE: &str = "urn:oid:2.25.277758230099478320835405654623537761757.2.1";

/// An export format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExportFormat {
    /// Our own JSON: the stored events as they are.
    Json,
    /// FHIR R4 Bundle of AuditEvent.
    FhirBundle,
    /// FHIR R4 AuditEvent, one per line (NDJSON).
    Ndjson,
    /// CSV, one event per row.
    Csv,
}

impl ExportFormat {
    /// Parses `json`, `fhir`, `ndjson` or `csv`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "json" => Some(Self::Json),
            "fhir" | "fhir+json" | "bundle" => Some(Self::FhirBundle),
            "ndjson" => Some(Self::Ndjson),
            "csv" => Some(Self::Csv),
            _ => None,
        }
    }

    /// The media type of the export.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::FhirBundle => "application/fhir+json",
            Self::Ndjson => "application/fhir+ndjson",
            Self::Csv => "text/csv; charset=utf-8",
        }
    }
}

/// Errors while exporting.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// JSON serialisation failed.
    #[error("cannot serialise the export: {0}")]
    Json(#[from] serde_json::Error),
    /// CSV writing failed.
    #[error("cannot write CSV: {0}")]
    Csv(#[from] csv::Error),
}

fn coding(system: &str, code: &str, display: Option<&str>) -> Value {
    let mut c = json!({ "system": system, "code": code });
    if let Some(d) = display {
        c["display"] = json!(d);
    }
    c
}

fn agent_type(kind: &str) -> Value {
    // HL7 extra-security-role-type: a person, or a system acting on its own.
    let (code, display) = match kind {
        "user" => ("humanuser", "human user"),
        _ => ("dataprocessor", "data processor"),
    };
    json!({ "coding": [coding(
        "http://terminology.hl7.org/CodeSystem/extra-security-role-type",
        code,
        Some(display),
    )] })
}

fn entity(kind: &str, id: &str, record: &AuditRecord) -> Value {
    // audit-entity-type: 1 Person, 2 System Object; object-role: 1 Patient,
    // 4 Domain Resource, 3 Report.
    let (etype, edisplay, role, rdisplay) = match kind {
        "patient" => ("1", "Person", "1", "Patient"),
        "user" => ("1", "Person", "6", "User"),
        "note" | "prediction" | "review" => ("2", "System Object", "3", "Report"),
        _ => ("2", "System Object", "4", "Domain Resource"),
    };
    let _ = record;
    json!({
        "what": { "identifier": { "system": format!("urn:fusion:{kind}"), "value": id } },
        "type": coding("http://terminology.hl7.org/CodeSystem/audit-entity-type", etype, Some(edisplay)),
        "role": coding("http://terminology.hl7.org/CodeSystem/object-role", role, Some(rdisplay)),
    })
}

/// One stored event as a FHIR R4 AuditEvent resource.
pub fn to_fhir(event: &StoredAuditEvent) -> Value {
    let r = &event.record;
    // FHIR forbids empty strings: an anonymous agent (a failed login) has
    // no identifier, only the name it tried.
    let mut who = serde_json::Map::new();
    if !r.agent.id.is_empty() {
        who.insert(
            "identifier".into(),
            json!({ "system": format!("urn:fusion:{}", r.agent.kind), "value": r.agent.id }),
        );
    }
    who.insert(
        "display".into(),
        json!(if r.agent.name.is_empty() {
            "anonymous"
        } else {
            r.agent.name.as_str()
        }),
    );
    let mut agent = json!({
        "type": agent_type(&r.agent.kind),
        "who": who,
        "requestor": r.agent.requestor,
    });
    if let Some(role) = &r.agent.role {
        agent["role"] = json!([{ "text": role }]);
    }
    if let Some(address) = &r.agent.address {
        // network type 2: IP address.
        agent["network"] = json!({ "address": address, "type": "2" });
    }
    let mut entities: Vec<Value> = r
        .patient_ids
        .iter()
        .map(|p| entity("patient", p, r))
        .collect();
    entities.extend(r.entities.iter().map(|e| entity(&e.kind, &e.id, r)));
    let mut extension = vec![
        json!({ "url": EXT_AUDIT_SEQ, "valueInteger": event.seq }),
        json!({ "url": EXT_AUDIT_HASH, "valueString": event.hash }),
        json!({ "url": EXT_AUDIT_PREV_HASH, "valueString": event.prev_hash }),
    ];
    if let Some(rid) = &r.request_id {
        extension.push(json!({ "url": EXT_REQUEST_ID, "valueString": rid }));
    }
    let mut resource = json!({
        "resourceType": "AuditEvent",
        "id": format!("audit-{}", event.seq),
        "extension": extension,
        "type": coding(
            "http://dicom.nema.org/resources/ontology/DCM",
            r.event_type.code(),
            Some(r.event_type.display()),
        ),
        "subtype": [coding(CS_AUDIT_SUBTYPE, &r.subtype, None)],
        "action": r.action.code(),
        "recorded": event.recorded_at.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "outcome": r.outcome.code(),
        "agent": [agent],
        "source": {
            "site": "fusion",
            "observer": { "display": "fusion" },
            "type": [coding(
                "http://terminology.hl7.org/CodeSystem/security-source-type",
                "4",
                Some("Application Server"),
            )],
        },
    });
    if let Some(desc) = &r.outcome_desc {
        resource["outcomeDesc"] = json!(desc);
    }
    if let Some(purpose) = &r.purpose_of_use {
        resource["purposeOfEvent"] = json!([{ "coding": [coding(
            "http://terminology.hl7.org/CodeSystem/v3-ActReason",
            purpose,
            None,
        )] }]);
    }
    if !entities.is_empty() {
        resource["entity"] = json!(entities);
    }
    resource
}

/// Renders `events` in `format`, ending with the chain `head`.
///
/// # Errors
///
/// [`ExportError`] when serialisation fails.
pub fn render(
    events: &[StoredAuditEvent],
    format: ExportFormat,
    head: Option<&str>,
) -> Result<Vec<u8>, ExportError> {
    let head = head.unwrap_or(fusion_store::audit::GENESIS_HASH);
    match format {
        ExportFormat::Json => Ok(serde_json::to_vec_pretty(&json!({
            "events": events,
            "chain_head": head,
        }))?),
        ExportFormat::FhirBundle => {
            let entries: Vec<Value> = events
                .iter()
                .map(|e| {
                    json!({
                        "fullUrl": format!("urn:uuid:{}", uuid_for(e)),
                        "resource": to_fhir(e),
                    })
                })
                .collect();
            Ok(serde_json::to_vec_pretty(&json!({
                "resourceType": "Bundle",
                "identifier": { "system": "urn:fusion:audit-chain-head", "value": head },
                "type": "collection",
                "timestamp": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                // No `total`: bdl-1 allows it on a searchset or history only.
                "entry": entries,
            }))?)
        }
        ExportFormat::Ndjson => {
            let mut out = Vec::new();
            for e in events {
                serde_json::to_writer(&mut out, &to_fhir(e))?;
                out.push(b'\n');
            }
            serde_json::to_writer(
                &mut out,
                &json!({
                    "resourceType": "Parameters",
                    "parameter": [
                        { "name": "audit-chain-head", "valueString": head },
                        { "name": "events", "valueInteger": events.len() },
                    ],
                }),
            )?;
            out.push(b'\n');
            Ok(out)
        }
        ExportFormat::Csv => {
            let mut w = csv::Writer::from_writer(Vec::new());
            w.write_record([
                "seq",
                "recorded_at",
                "type_code",
                "type_display",
                "subtype",
                "action",
                "outcome",
                "outcome_desc",
                "agent_kind",
                "agent_id",
                "agent_name",
                "agent_role",
                "agent_address",
                "entities",
                "patient_ids",
                "purpose_of_use",
                "request_id",
                "prev_hash",
                "hash",
            ])?;
            for e in events {
                let r = &e.record;
                let entities: Vec<String> = r
                    .entities
                    .iter()
                    .map(|x| format!("{}:{}", x.kind, x.id))
                    .collect();
                w.write_record(
                    [
                        e.seq.to_string(),
                        e.recorded_at
                            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                        r.event_type.code().to_owned(),
                        r.event_type.display().to_owned(),
                        r.subtype.clone(),
                        r.action.code().to_owned(),
                        r.outcome.code().to_owned(),
                        r.outcome_desc.clone().unwrap_or_default(),
                        r.agent.kind.clone(),
                        r.agent.id.clone(),
                        r.agent.name.clone(),
                        r.agent.role.clone().unwrap_or_default(),
                        r.agent.address.clone().unwrap_or_default(),
                        entities.join(";"),
                        r.patient_ids.join(";"),
                        r.purpose_of_use.clone().unwrap_or_default(),
                        r.request_id.clone().unwrap_or_default(),
                        e.prev_hash.clone(),
                        e.hash.clone(),
                    ]
                    .map(|cell| spreadsheet_safe(&cell)),
                )?;
            }
            let mut out = w
                .into_inner()
                .map_err(|e| csv::Error::from(e.into_error()))?;
            out.extend_from_slice(
                format!("# chain_head={head} events={}\n", events.len()).as_bytes(),
            );
            Ok(out)
        }
    }
}

/// A CSV cell that a spreadsheet shows as text: a value starting with `=`,
/// `+`, `-`, `@`, a tab or a carriage return (which Excel, LibreOffice and
/// Sheets would run as a formula: OWASP "CSV Injection") gets a leading
/// `'`. Audit values come partly from outside (a failed login's user name,
/// a refused key id), so they are never trusted. The hash chain is over the
/// stored JSON, not the CSV, and still verifies.
fn spreadsheet_safe(cell: &str) -> String {
    match cell.chars().next() {
        Some('=' | '+' | '-' | '@' | '\t' | '\r') => format!("'{cell}"),
        _ => cell.to_owned(),
    }
}

/// A stable UUID for an event's `fullUrl`, derived from its hash.
fn uuid_for(e: &StoredAuditEvent) -> uuid::Uuid {
    let mut bytes = [0u8; 16];
    if let Ok(raw) = hex::decode(&e.hash[..32.min(e.hash.len())]) {
        let n = raw.len().min(16);
        bytes[..n].copy_from_slice(&raw[..n]);
    }
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn our_urls_are_under_our_oid() {
        for url in [
            EXT_AUDIT_SEQ,
            EXT_AUDIT_HASH,
            EXT_AUDIT_PREV_HASH,
            EXT_REQUEST_ID,
            CS_AUDIT_SUBTYPE,
        ] {
            let oid = url.strip_prefix("urn:oid:").unwrap();
            let arcs = oid.strip_prefix(OID_ROOT).unwrap();
            assert!(arcs.starts_with(".1.") || arcs.starts_with(".2."), "{url}");
            // RFC 3001: digits and dots, no leading zero in an arc.
            assert!(oid.split('.').all(|a| !a.is_empty()
                && a.bytes().all(|b| b.is_ascii_digit())
                && (a == "0" || !a.starts_with('0'))));
        }
        let uuid: u128 = OID_ROOT["2.25.".len()..].parse().unwrap();
        assert_eq!(
            uuid::Uuid::from_u128(uuid).to_string(),
            "d0f64a0d-4303-4956-99d6-f7ae32a28ddd"
        );
    }

    #[test]
    fn csv_cells_that_spreadsheets_would_run_are_quoted() {
        assert_eq!(spreadsheet_safe("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(spreadsheet_safe("+1"), "'+1");
        assert_eq!(spreadsheet_safe("-2+3"), "'-2+3");
        assert_eq!(spreadsheet_safe("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(spreadsheet_safe("\tx"), "'\tx");
        assert_eq!(spreadsheet_safe("dr.grey"), "dr.grey");
        assert_eq!(spreadsheet_safe(""), "");
    }
}
