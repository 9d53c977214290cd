//! The hash chain of the audit trail: each event's hash over the previous
//! hash and its own canonical JSON (RFC 8785), and the walk that verifies
//! the links and an anchor kept outside the database.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{AuditRecord, GENESIS_HASH, StoredAuditEvent, audit_time};

/// The canonical form hashed for an event: every field but `hash`.
#[derive(Serialize)]
struct Canonical<'a> {
    seq: i64,
    recorded_at: String,
    #[serde(flatten)]
    record: &'a AuditRecord,
    prev_hash: &'a str,
}

/// Computes an event's hash: SHA-256 over `prev_hash` (its hex text) then the
/// RFC 8785 canonical JSON of the event without `hash`.
///
/// # Errors
///
/// A serialisation error (not expected for these types).
pub fn chain_hash(
    seq: i64,
    recorded_at: DateTime<Utc>,
    record: &AuditRecord,
    prev_hash: &str,
) -> Result<String, serde_json::Error> {
    let canonical = serde_jcs::to_vec(&Canonical {
        seq,
        recorded_at: audit_time(recorded_at).to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        record,
        prev_hash,
    })?;
    let mut digest = Sha256::new();
    digest.update(prev_hash.as_bytes());
    digest.update(&canonical);
    Ok(hex::encode(digest.finalize()))
}

/// Where a chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainBreak {
    /// The first event whose link does not hold.
    pub seq: i64,
    /// What is wrong with it.
    pub problem: String,
}

/// The result of walking the chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainReport {
    /// Events checked.
    pub events: u64,
    /// The last event's hash (the chain head), if any.
    pub head: Option<String>,
    /// The first break, if any.
    pub first_break: Option<ChainBreak>,
}

/// A chain head kept outside the database: the hash of an event (and its
/// sequence number, when known) as `fusion audit verify` or the published
/// head printed it earlier. The hash chain alone cannot show that the newest
/// events were deleted, or that an event was edited and every later hash
/// recomputed (plain SHA-256 has no key): both leave a chain that links.
/// An anchor can: that event must still be in the chain with that hash
/// (issue #14, finding 5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainAnchor {
    /// The event's hash, 64 lower-case hex digits.
    pub hash: String,
    /// Its sequence number, when known.
    pub seq: Option<i64>,
}

/// Incremental chain verification, fed events in sequence order.
#[derive(Debug)]
pub struct ChainVerifier {
    expected_seq: i64,
    prev_hash: String,
    events: u64,
    first_break: Option<ChainBreak>,
    anchor: Option<ChainAnchor>,
    anchor_found: bool,
}

impl Default for ChainVerifier {
    fn default() -> Self {
        Self {
            expected_seq: 1,
            prev_hash: GENESIS_HASH.to_owned(),
            events: 0,
            first_break: None,
            anchor: None,
            anchor_found: false,
        }
    }
}

impl ChainVerifier {
    /// A verifier that also requires `anchor` to be in the chain: an event
    /// with its hash (at its sequence number, when given). Without it,
    /// [`ChainVerifier::finish`] reports a break.
    pub fn with_anchor(anchor: ChainAnchor) -> Self {
        Self {
            anchor: Some(ChainAnchor {
                hash: anchor.hash.trim().to_ascii_lowercase(),
                seq: anchor.seq,
            }),
            ..Self::default()
        }
    }

    /// Checks the next event: its sequence number follows, its `prev_hash`
    /// is the previous event's hash, and its `hash` recomputes.
    pub fn push(&mut self, event: &StoredAuditEvent) {
        self.events += 1;
        if self.first_break.is_none() {
            let problem = if event.seq != self.expected_seq {
                Some(format!(
                    "sequence gap: expected {}, found {}",
                    self.expected_seq, event.seq
                ))
            } else if event.prev_hash != self.prev_hash {
                Some("prev_hash does not match the previous event's hash".to_owned())
            } else {
                match chain_hash(
                    event.seq,
                    event.recorded_at,
                    &event.record,
                    &event.prev_hash,
                ) {
                    Ok(h) if h == event.hash => None,
                    Ok(_) => Some("hash does not match the event's content".to_owned()),
                    Err(e) => Some(format!("cannot canonicalise: {e}")),
                }
            };
            if let Some(problem) = problem {
                self.first_break = Some(ChainBreak {
                    seq: event.seq,
                    problem,
                });
            }
        }
        if let Some(anchor) = &self.anchor {
            match anchor.seq {
                Some(seq) if seq == event.seq => {
                    if event.hash == anchor.hash {
                        self.anchor_found = true;
                    } else if self.first_break.is_none() {
                        self.first_break = Some(ChainBreak {
                            seq,
                            problem: "the event's hash is not the expected head: \
                                      the trail was rewritten"
                                .to_owned(),
                        });
                    }
                }
                Some(_) => {}
                None => self.anchor_found |= event.hash == anchor.hash,
            }
        }
        self.expected_seq = event.seq + 1;
        self.prev_hash = event.hash.clone();
    }

    /// The report so far. With an anchor that never appeared, the break is
    /// at the anchor's sequence number (else after the last event read).
    pub fn finish(self) -> ChainReport {
        let mut first_break = self.first_break;
        if let Some(anchor) = &self.anchor
            && !self.anchor_found
            && first_break.is_none()
        {
            first_break = Some(ChainBreak {
                seq: anchor.seq.unwrap_or(self.expected_seq),
                problem: format!(
                    "the expected head {} is not in the chain (it ends at event {}): \
                     the trail was truncated or rewritten",
                    anchor.hash,
                    self.expected_seq - 1
                ),
            });
        }
        ChainReport {
            events: self.events,
            head: (self.events > 0).then_some(self.prev_hash),
            first_break,
        }
    }
}
