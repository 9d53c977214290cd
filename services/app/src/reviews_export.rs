//! Reviews as labels: the clinicians' reviewed decisions written as a
//! labelled-reports CSV that `fusion train` and `fusion eval reports` read
//! with `models/maps/reviews.toml`, so a site can retrain and re-measure the
//! text heads on its own clinicians' decisions.
//!
//! One row per case whose prediction has a review and whose notes have text
//! (only the notes that reviewed version read: not another patient's note it
//! left out, nor one linked after the review):
//! `report_id` (the case id), `split` (`train` or `validation`, fixed per
//! case: validation when the first byte of SHA-256(case id) is below 52,
//! about 20 %), the note sections `indication`, `comparison`, `findings`,
//! `impression` (several notes of a case are joined per section), then one
//! column per observation (snake_case, CheXpert order) holding the newest
//! review's decision as gold:
//!
//! | review decision | gold |
//! |---|---|
//! | accept | the service's call (below) |
//! | reject | the opposite of the service's call |
//! | amend → present / absent | `1` / `0` |
//! | amend → uncertain, no decision, or no call to accept | empty (no gold) |
//!
//! The service's call on an observation: absent when the fused label
//! abstained (no call); else the trained head's decision (probability ≥ its
//! threshold) where a head contributed; else fused probability ≥ 0.5.
//!
//! Reading the notes exports PHI: the caller appends one audit event
//! (DICOM "Export", purpose HQUALIMP) naming every case, note and patient
//! before the file is written ([`ReviewExport::audit_record`]).

use std::collections::{BTreeMap, BTreeSet};

use fusion_models::Observation;
use fusion_schemas::{Section, SectionKind};
use fusion_store::{
    AuditAction, AuditAgent, AuditEntity, AuditEventType, AuditRecord, CaseFilter, CaseSort,
    EntityKind, PredictionRecord, Repository, ReviewRecord, StoreError,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

/// The text columns, in order.
pub const TEXT_COLUMNS: [&str; 4] = ["indication", "comparison", "findings", "impression"];

/// One exported case.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReviewRow {
    /// The case id.
    pub case_id: Uuid,
    /// `train` or `validation`.
    pub split: &'static str,
    /// Section texts, keyed as [`TEXT_COLUMNS`].
    pub sections: BTreeMap<&'static str, String>,
    /// Gold per observation: `Some(true)` present, `Some(false)` absent,
    /// `None` no gold.
    pub gold: BTreeMap<Observation, Option<bool>>,
}

/// What an export collected.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReviewExport {
    /// The rows, oldest case first.
    pub rows: Vec<ReviewRow>,
    /// Reviewed cases left out because no note of theirs has text.
    pub without_text: usize,
    /// Cases left out because a stored row of theirs cannot be read
    /// ([`StoreError::Corrupt`], logged by column and path): one bad row
    /// does not stop the export of the others.
    pub unreadable: usize,
    /// Notes read.
    pub notes: Vec<Uuid>,
    /// Patient IDs of the exported cases.
    pub patients: BTreeSet<String>,
}

/// The split of a case: fixed by its id, about one in five `validation`.
#[must_use]
pub fn split_of(case_id: Uuid) -> &'static str {
    if Sha256::digest(case_id.as_bytes())[0] < 52 {
        "validation"
    } else {
        "train"
    }
}

/// The service's call on one observation of a stored prediction (see the
/// module docs); `None` when it made none.
#[must_use]
pub fn service_call(prediction: &PredictionRecord, observation: Observation) -> Option<bool> {
    crate::calls::call_on(
        &prediction.prediction.fused,
        &prediction.prediction.branches.text,
        observation.as_str(),
    )
}

/// The gold a review gives one observation (see the module docs).
#[must_use]
pub fn gold_of(decision: &serde_json::Value, call: Option<bool>) -> Option<bool> {
    match decision.get("decision")?.as_str()? {
        "accept" => call,
        "reject" => call.map(|c| !c),
        "amend" => match decision.get("value")?.as_str()? {
            "present" => Some(true),
            "absent" => Some(false),
            _ => None,
        },
        _ => None,
    }
}

/// The notes the reviewed version read: its recorded inputs less those the
/// text branch skipped (another patient's, no text). Notes linked to the
/// case later, which the reviewer never judged, are not among them.
fn notes_used(prediction: &PredictionRecord) -> Vec<Uuid> {
    let p = &prediction.prediction;
    let skipped: BTreeSet<&str> = p
        .branches
        .text
        .skipped
        .iter()
        .map(|s| s.id.as_str())
        .collect();
    p.inputs
        .notes
        .iter()
        .map(String::as_str)
        .filter(|id| !skipped.contains(id))
        .filter_map(|id| Uuid::parse_str(id).ok())
        .collect()
}

fn column_of(kind: SectionKind) -> &'static str {
    match kind {
        SectionKind::Indication
        | SectionKind::ChiefComplaint
        | SectionKind::HistoryOfPresentIllness
        | SectionKind::PastHistory => "indication",
        SectionKind::Comparison => "comparison",
        SectionKind::Impression | SectionKind::Assessment | SectionKind::Plan => "impression",
        _ => "findings",
    }
}

/// Splits a note's text into the export's columns by its stored sections
/// (the whole text as findings when it has none).
fn sections_of(text: &str, sections: &[Section]) -> Vec<(&'static str, String)> {
    let parsed = sections;
    if parsed.is_empty() {
        return vec![("findings", text.trim().to_owned())];
    }
    parsed
        .iter()
        .filter_map(|s| {
            let body = text.get(s.body.start..s.body.end)?.trim();
            (!body.is_empty()).then(|| (column_of(s.kind), body.to_owned()))
        })
        .collect()
}

/// Collects every reviewed case with note text. Reads only; the caller
/// audits ([`ReviewExport::audit_record`]) before writing anything.
///
/// # Errors
/// [`StoreError`] when the database cannot be read.
pub async fn collect(repo: &dyn Repository) -> Result<ReviewExport, StoreError> {
    let mut export = ReviewExport::default();
    let mut seen = BTreeSet::new();
    let mut offset = 0;
    loop {
        let page = repo
            .list_cases(&CaseFilter {
                sort: CaseSort::Updated,
                ascending: true,
                limit: Some(1000),
                offset: Some(offset),
                ..CaseFilter::default()
            })
            .await?;
        if page.is_empty() {
            break;
        }
        offset += i64::try_from(page.len()).unwrap_or(i64::MAX);
        for summary in page {
            if seen.insert(summary.id) {
                match collect_case(repo, summary.id, &mut export).await {
                    Ok(()) => {}
                    Err(e @ StoreError::Corrupt(_)) => {
                        tracing::warn!(case = %summary.id, error = %e, "case left out of the export");
                        export.unreadable += 1;
                    }
                    Err(e) => return Err(e),
                }
            }
        }
    }
    Ok(export)
}

async fn collect_case(
    repo: &dyn Repository,
    case_id: Uuid,
    export: &mut ReviewExport,
) -> Result<(), StoreError> {
    let mut newest: Option<(ReviewRecord, PredictionRecord)> = None;
    for prediction in repo.predictions_of_case(case_id).await? {
        for review in repo.reviews_of_prediction(prediction.prediction.id).await? {
            if newest
                .as_ref()
                .is_none_or(|(r, _)| review.created_at >= r.created_at)
            {
                newest = Some((review, prediction.clone()));
            }
        }
    }
    let Some((review, prediction)) = newest else {
        return Ok(());
    };
    let Some(case) = repo.case(case_id).await? else {
        return Ok(());
    };
    let mut texts: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    let mut read = Vec::new();
    for note_id in notes_used(&prediction) {
        let Some(note) = repo.note(note_id).await? else {
            continue;
        };
        let Some(text) = note.note.text.as_deref() else {
            continue;
        };
        read.push(note_id);
        export
            .patients
            .extend(note.note.patient_id.as_ref().map(|p| p.as_str().to_owned()));
        for (column, body) in sections_of(text, &note.note.sections) {
            texts.entry(column).or_default().push(body);
        }
    }
    if read.is_empty() {
        export.without_text += 1;
        return Ok(());
    }
    let gold = Observation::ALL
        .into_iter()
        .map(|o| {
            let value = review
                .review
                .decisions
                .get(o.as_str())
                .and_then(|d| gold_of(d, service_call(&prediction, o)));
            (o, value)
        })
        .collect();
    export.notes.extend(read);
    export
        .patients
        .extend(case.patient_id.as_ref().map(|p| p.as_str().to_owned()));
    export.rows.push(ReviewRow {
        case_id,
        split: split_of(case_id),
        sections: texts.into_iter().map(|(k, v)| (k, v.join("\n"))).collect(),
        gold,
    });
    Ok(())
}

impl ReviewExport {
    /// The audit event of this export (DICOM "Export", action E, purpose
    /// HQUALIMP) by `agent`, naming every case, note and patient.
    #[must_use]
    pub fn audit_record(&self, agent: AuditAgent) -> AuditRecord {
        let mut entities: Vec<AuditEntity> = self
            .rows
            .iter()
            .map(|r| AuditEntity::new(EntityKind::Case, r.case_id.to_string()))
            .collect();
        entities.extend(
            self.notes
                .iter()
                .map(|n| AuditEntity::new(EntityKind::Note, n.to_string())),
        );
        AuditRecord::builder(
            AuditEventType::Export,
            "reviews-export",
            AuditAction::Execute,
            agent,
        )
        .outcome_desc(format!(
            "{} reviewed cases as labelled reports",
            self.rows.len()
        ))
        .entities(entities)
        .patient_ids(self.patients.iter().cloned().collect())
        .purpose_of_use(Some("HQUALIMP".to_owned()))
        .build()
    }

    /// Writes the CSV: `report_id,split,indication,comparison,findings,
    /// impression,` then the 14 observations (snake_case).
    ///
    /// # Errors
    /// [`csv::Error`] when writing fails.
    pub fn write_csv(&self, out: impl std::io::Write) -> Result<(), csv::Error> {
        let mut w = csv::Writer::from_writer(out);
        let mut header = vec!["report_id", "split"];
        header.extend(TEXT_COLUMNS);
        header.extend(Observation::ALL.iter().map(|o| o.as_str()));
        w.write_record(&header)?;
        for row in &self.rows {
            let mut record = vec![row.case_id.to_string(), row.split.to_owned()];
            record.extend(
                TEXT_COLUMNS
                    .iter()
                    .map(|c| row.sections.get(c).cloned().unwrap_or_default()),
            );
            record.extend(Observation::ALL.iter().map(
                |o| match row.gold.get(o).copied().flatten() {
                    Some(true) => "1".to_owned(),
                    Some(false) => "0".to_owned(),
                    None => String::new(),
                },
            ));
            w.write_record(&record)?;
        }
        w.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decisions_become_gold() {
        let accept = json!({"decision": "accept"});
        let reject = json!({"decision": "reject"});
        assert_eq!(gold_of(&accept, Some(true)), Some(true));
        assert_eq!(gold_of(&accept, Some(false)), Some(false));
        assert_eq!(gold_of(&accept, None), None);
        assert_eq!(gold_of(&reject, Some(true)), Some(false));
        assert_eq!(gold_of(&reject, None), None);
        let amend = |v: &str| json!({"decision": "amend", "value": v});
        assert_eq!(gold_of(&amend("present"), Some(false)), Some(true));
        assert_eq!(gold_of(&amend("absent"), Some(true)), Some(false));
        assert_eq!(gold_of(&amend("uncertain"), Some(true)), None);
        assert_eq!(gold_of(&json!({}), Some(true)), None);
    }

    #[test]
    fn the_split_is_fixed_per_case_and_about_one_in_five() {
        let ids: Vec<Uuid> = (0..2000u128).map(Uuid::from_u128).collect();
        let validation = ids.iter().filter(|i| split_of(**i) == "validation").count();
        assert!((300..500).contains(&validation), "{validation}");
        assert!(ids.iter().all(|i| split_of(*i) == split_of(*i)));
    }
}
