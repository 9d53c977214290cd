//! The service's call on each fused label, and where that call contradicts
//! what the report itself states.
//!
//! The call is what a review's "accept" confirms and what the worklist
//! counts: none when the fused label abstained or has no evidence; else the
//! trained report head's decision (calibrated probability ≥ its threshold)
//! where a head contributed; else fused projected probability ≥ 0.5.
//!
//! A trained head reads the mention labeller's assertion as one feature
//! among many, so its calibrated call can go against a definite statement of
//! the report: a pneumothorax the report states, called absent at 38 %
//! because such reports are rare in training. That is the calibrated answer
//! to "would the site's coders tag this report", and it is also a case a
//! clinician must look at: the report and the model disagree. Such labels
//! are flagged (the prediction's `refer`), never silently overruled in
//! either direction. Hedged mentions (uncertain) are not a statement and
//! raise no flag. Calls that contradict each other (No Finding present
//! beside a finding called present) are flagged the same way.

use std::collections::BTreeMap;

use fusion_models::{BranchOpinion, BranchReport, FusedLabel, NoteLabel, Observation};

/// A prediction's fused labels, keyed by snake_case observation.
pub type FusedLabels = BTreeMap<String, FusedLabel>;

/// The service's call on a fused label, given the trained head's decision
/// where a head contributed: `None` when the label abstained or has no
/// evidence, else the head's decision, else projected probability ≥ 0.5.
#[must_use]
pub fn call_of(fused: &FusedLabel, head_present: Option<bool>) -> Option<bool> {
    if fused.abstain.is_some() || fused.sources.is_empty() {
        return None;
    }
    Some(head_present.unwrap_or(fused.opinion.projected_probability() >= 0.5))
}

/// How the service's call contradicts the report's own assertion.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportDisagreement {
    /// The report states the finding (labeller: positive); the service
    /// calls it absent.
    StatedCalledAbsent,
    /// The report negates the finding (labeller: negative); the service
    /// calls it present.
    NegatedCalledPresent,
}

impl ReportDisagreement {
    /// Words for clinicians, e.g. "the report states it; called absent".
    #[must_use]
    pub const fn describe(self) -> &'static str {
        match self {
            Self::StatedCalledAbsent => "the report states it, the service calls it absent",
            Self::NegatedCalledPresent => "the report negates it, the service calls it present",
        }
    }
}

/// Whether the call on one label contradicts the report: `text` is the text
/// branch's opinion on it (its `mention` holds the labeller's assertion),
/// `call` the service's call ([`call_of`]).
#[must_use]
pub fn report_disagreement(
    text: Option<&BranchOpinion>,
    call: Option<bool>,
) -> Option<ReportDisagreement> {
    let label = text?.mention.as_ref()?.label;
    match (label, call?) {
        (NoteLabel::Positive, false) => Some(ReportDisagreement::StatedCalledAbsent),
        (NoteLabel::Negative, true) => Some(ReportDisagreement::NegatedCalledPresent),
        _ => None,
    }
}

/// The call on the label `key` (snake_case observation) of a prediction:
/// its fused labels and its text branch's report.
#[must_use]
pub fn call_on(fused: &FusedLabels, text: &BranchReport, key: &str) -> Option<bool> {
    let label = fused.get(key)?;
    let head = text
        .opinions
        .get(key)
        .and_then(|o| o.head.as_ref())
        .map(|h| h.present);
    call_of(label, head)
}

/// Findings called present beside a No Finding also called present: the
/// calls contradict each other (No Finding means no finding; support devices
/// are not findings, CheXpert's convention). Each such observation's key, in
/// observation-key order; empty when No Finding is not called present.
#[must_use]
pub fn contradicting_no_finding(fused: &FusedLabels, text: &BranchReport) -> Vec<String> {
    const NO_FINDING: &str = "no_finding";
    if call_on(fused, text, NO_FINDING) != Some(true) {
        return Vec::new();
    }
    fused
        .keys()
        .filter(|k| k.as_str() != NO_FINDING && k.as_str() != "support_devices")
        .filter(|k| call_on(fused, text, k) == Some(true))
        .cloned()
        .collect()
}

/// Why a prediction is flagged for a full read beyond abstention, as
/// sentences for clinicians, the SR and the FHIR conclusion: each report
/// disagreement ("Edema: the report states it, the service calls it
/// absent"), then No Finding beside findings ("No Finding is called present
/// beside Consolidation").
#[must_use]
pub fn refer_reasons(fused: &FusedLabels, text: &BranchReport) -> Vec<String> {
    let name = |k: &str| {
        Observation::parse(k).map_or(k.replace('_', " "), |o| o.display_name().to_owned())
    };
    let mut reasons: Vec<String> = report_disagreements(fused, text)
        .into_iter()
        .map(|(k, d)| format!("{}: {}", name(&k), d.describe()))
        .collect();
    let beside = contradicting_no_finding(fused, text);
    if !beside.is_empty() {
        let names: Vec<String> = beside.iter().map(|k| name(k)).collect();
        reasons.push(format!(
            "No Finding is called present beside {}",
            names.join(", ")
        ));
    }
    reasons
}

/// Every label of a prediction whose call contradicts the report, as
/// (snake_case observation, how), in observation-key order.
#[must_use]
pub fn report_disagreements(
    fused: &FusedLabels,
    text: &BranchReport,
) -> Vec<(String, ReportDisagreement)> {
    fused
        .keys()
        .filter_map(|key| {
            report_disagreement(text.opinions.get(key), call_on(fused, text, key))
                .map(|d| (key.clone(), d))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use fusion_models::{Evidence, Opinion};
    use fusion_schemas::prediction::{HeadSource, MentionSource};

    use super::*;

    /// A text opinion at projected probability `p` (base rate 0.05) whose
    /// mention label is `label`, with a head at threshold 0.48 when `head`.
    fn text(label: NoteLabel, p: f64, head: bool) -> BranchOpinion {
        let opinion = Opinion::new(p * 0.9, (1.0 - p) * 0.9, 0.1, 0.05).unwrap();
        BranchOpinion {
            opinion,
            probability: opinion.projected_probability(),
            mean: None,
            variance: None,
            passes: None,
            evidence: Evidence::new(0.0, 0.0).unwrap(),
            trust: None,
            mention: Some(MentionSource {
                note_id: "n1".to_owned(),
                label,
                evidence: Evidence::new(0.0, 0.0).unwrap(),
            }),
            zero_shot: None,
            prediction_set: None,
            head: head.then(|| HeadSource {
                package: "heads@1".to_owned(),
                note_id: "n1".to_owned(),
                logit: 0.0,
                temperature: 1.0,
                members: 16,
                decision_threshold: 0.48,
                present: opinion.projected_probability() >= 0.48,
            }),
        }
    }

    fn fused(o: &BranchOpinion) -> FusedLabel {
        FusedLabel {
            opinion: o.opinion,
            conflict: 0.0,
            prediction_set: None,
            sources: vec!["text".to_owned()],
            abstain: None,
        }
    }

    fn disagreement(label: NoteLabel, p: f64) -> Option<ReportDisagreement> {
        let t = text(label, p, true);
        let call = call_of(&fused(&t), t.head.as_ref().map(|h| h.present));
        report_disagreement(Some(&t), call)
    }

    #[test]
    fn a_stated_finding_called_absent_is_a_disagreement() {
        // p = 0.9·0.38 + 0.1·0.05 = 0.347 < 0.48: called absent.
        assert_eq!(
            disagreement(NoteLabel::Positive, 0.38),
            Some(ReportDisagreement::StatedCalledAbsent)
        );
        // p = 0.9·0.9 + 0.005 = 0.815 ≥ 0.48: called present, agrees.
        assert_eq!(disagreement(NoteLabel::Positive, 0.9), None);
    }

    #[test]
    fn a_negated_finding_called_present_is_a_disagreement() {
        assert_eq!(
            disagreement(NoteLabel::Negative, 0.9),
            Some(ReportDisagreement::NegatedCalledPresent)
        );
        assert_eq!(disagreement(NoteLabel::Negative, 0.1), None);
    }

    #[test]
    fn hedged_or_unmentioned_findings_and_abstentions_raise_no_flag() {
        for p in [0.1, 0.9] {
            assert_eq!(disagreement(NoteLabel::Uncertain, p), None);
            assert_eq!(disagreement(NoteLabel::NotMentioned, p), None);
        }
        // An abstained label makes no call, so it cannot contradict.
        let t = text(NoteLabel::Positive, 0.38, true);
        let mut f = fused(&t);
        f.abstain = Some(fusion_models::AbstainReason::HighUncertainty {
            uncertainty: 0.9,
            max_uncertainty: 0.8,
        });
        let call = call_of(&f, t.head.as_ref().map(|h| h.present));
        assert_eq!(call, None);
        assert_eq!(report_disagreement(Some(&t), call), None);
        // Without a head the call is p ≥ 0.5.
        let t = text(NoteLabel::Positive, 0.38, false);
        let call = call_of(&fused(&t), None);
        assert_eq!(call, Some(false));
        assert_eq!(
            report_disagreement(Some(&t), call),
            Some(ReportDisagreement::StatedCalledAbsent)
        );
    }

    #[test]
    fn no_finding_called_beside_a_finding_is_a_contradiction() {
        let mut text_report = BranchReport::empty(fusion_models::BranchStatus::Used, "");
        let mut fused_labels = FusedLabels::new();
        let mut add = |key: &str, label: NoteLabel, p: f64| {
            let t = text(label, p, true);
            fused_labels.insert(key.to_owned(), fused(&t));
            text_report.opinions.insert(key.to_owned(), t);
        };
        add("no_finding", NoteLabel::NotMentioned, 0.9);
        add("support_devices", NoteLabel::Positive, 0.9);
        add("cardiomegaly", NoteLabel::Negative, 0.1);
        // No Finding with only a device and an absent finding: consistent.
        assert!(contradicting_no_finding(&fused_labels, &text_report).is_empty());
        let t = text(NoteLabel::Positive, 0.9, true);
        fused_labels.insert("consolidation".to_owned(), fused(&t));
        text_report.opinions.insert("consolidation".to_owned(), t);
        assert_eq!(
            contradicting_no_finding(&fused_labels, &text_report),
            ["consolidation"]
        );
        // No Finding called absent: nothing to contradict.
        let t = text(NoteLabel::NotMentioned, 0.1, true);
        fused_labels.insert("no_finding".to_owned(), fused(&t));
        text_report.opinions.insert("no_finding".to_owned(), t);
        assert!(contradicting_no_finding(&fused_labels, &text_report).is_empty());
    }
}
