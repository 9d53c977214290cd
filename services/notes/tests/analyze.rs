//! End-to-end behaviour of `analyze` on invented reports.

use fusion_notes::{Assertion, NoteLabel, Observation, SectionKind, TriggerCategory, analyze};

fn label(text: &str, o: Observation) -> NoteLabel {
    analyze(text).labels[&o]
}

#[test]
fn every_observation_gets_a_label() {
    let a = analyze("");
    assert_eq!(a.labels.len(), 14);
    assert!(a.labels.values().all(|&l| l == NoteLabel::NotMentioned));
}

#[test]
fn labels_follow_present_possible_absent_order() {
    let text = "FINDINGS:\nThere is a moderate right effusion. No left effusion. \
                Possible early pneumonia. No pneumothorax or rib fracture.";
    let a = analyze(text);
    assert_eq!(a.labels[&Observation::PleuralEffusion], NoteLabel::Positive);
    assert_eq!(a.labels[&Observation::Pneumonia], NoteLabel::Uncertain);
    assert_eq!(a.labels[&Observation::Pneumothorax], NoteLabel::Negative);
    assert_eq!(a.labels[&Observation::Fracture], NoteLabel::Negative);
    assert_eq!(a.labels[&Observation::Edema], NoteLabel::NotMentioned);
    assert_eq!(a.labels[&Observation::NoFinding], NoteLabel::NotMentioned);
    let fracture = a
        .mentions
        .iter()
        .find(|m| m.observation == Observation::Fracture)
        .unwrap();
    assert_eq!(fracture.text, "rib fracture");
    assert_eq!(fracture.section, SectionKind::Findings);
    assert_eq!(fracture.trigger.as_ref().unwrap().text, "No");
}

#[test]
fn impression_overrides_findings() {
    let text = "FINDINGS: Patchy basilar opacity, possibly atelectasis.\n\
                IMPRESSION: Bibasilar atelectasis.";
    assert_eq!(label(text, Observation::Atelectasis), NoteLabel::Positive);
    let text = "FINDINGS: Bibasilar atelectasis.\nIMPRESSION: No atelectasis.";
    assert_eq!(label(text, Observation::Atelectasis), NoteLabel::Negative);
    // Not mentioned in the impression: the findings decide.
    let text = "FINDINGS: Mild cardiomegaly.\nIMPRESSION: Stable chest.";
    assert_eq!(label(text, Observation::Cardiomegaly), NoteLabel::Positive);
}

#[test]
fn numbered_impression_with_measurements() {
    let text = "IMPRESSION:\n1. Right upper lobe nodule measuring 1.2 cm. 2. No pneumothorax.\n3. Heart size is normal.";
    let a = analyze(text);
    let sentences: Vec<&str> = a.sentences.iter().map(|s| &text[s.start..s.end]).collect();
    assert_eq!(
        sentences,
        [
            "1. Right upper lobe nodule measuring 1.2 cm.",
            "2. No pneumothorax.",
            "3. Heart size is normal."
        ]
    );
    assert_eq!(a.labels[&Observation::LungLesion], NoteLabel::Positive);
    assert_eq!(a.labels[&Observation::Pneumothorax], NoteLabel::Negative);
    assert_eq!(a.labels[&Observation::Cardiomegaly], NoteLabel::Negative);
}

#[test]
fn no_finding_needs_a_normal_statement_or_a_negation() {
    let normal = "IMPRESSION: No acute cardiopulmonary process. ET tube in good position.";
    assert_eq!(label(normal, Observation::NoFinding), NoteLabel::Positive);
    assert_eq!(
        label(normal, Observation::SupportDevices),
        NoteLabel::Positive
    );
    let abnormal = "IMPRESSION: No acute cardiopulmonary process. Small left effusion.";
    assert_eq!(
        label(abnormal, Observation::NoFinding),
        NoteLabel::NotMentioned
    );
    assert_eq!(
        label("Seen by the team today.", Observation::NoFinding),
        NoteLabel::NotMentioned
    );
    assert_eq!(
        label("No pneumothorax.", Observation::NoFinding),
        NoteLabel::Positive
    );
}

#[test]
fn family_historical_and_indication_mentions_do_not_count() {
    let text = "INDICATION: Fever, r/o pneumonia.\nHPI: Mother had lung cancer. \
                History of rib fracture.\nFINDINGS: Lungs are clear.";
    let a = analyze(text);
    assert_eq!(a.labels[&Observation::Pneumonia], NoteLabel::NotMentioned);
    assert_eq!(a.labels[&Observation::LungLesion], NoteLabel::NotMentioned);
    assert_eq!(a.labels[&Observation::Fracture], NoteLabel::NotMentioned);
    let lesion = a
        .mentions
        .iter()
        .find(|m| m.observation == Observation::LungLesion)
        .unwrap();
    assert!(lesion.family);
    assert_eq!(
        lesion.trigger.as_ref().unwrap().category,
        TriggerCategory::Family
    );
    let fracture = a
        .mentions
        .iter()
        .find(|m| m.observation == Observation::Fracture)
        .unwrap();
    assert!(fracture.historical && fracture.assertion == Assertion::Present);
    let pneumonia = a
        .mentions
        .iter()
        .find(|m| m.observation == Observation::Pneumonia)
        .unwrap();
    // A request ("r/o") names what is asked about, not a finding.
    assert_eq!(
        (pneumonia.hypothetical, pneumonia.section),
        (true, SectionKind::Indication)
    );
}

#[test]
fn termination_and_backward_triggers_in_context() {
    let text = "IMPRESSION: No edema, but there is a new right lower lobe consolidation. \
                Pneumothorax is ruled out. Aspiration cannot be excluded.";
    let a = analyze(text);
    assert_eq!(a.labels[&Observation::Edema], NoteLabel::Negative);
    assert_eq!(a.labels[&Observation::Consolidation], NoteLabel::Positive);
    assert_eq!(a.labels[&Observation::Pneumothorax], NoteLabel::Negative);
    assert_eq!(a.labels[&Observation::Pneumonia], NoteLabel::Uncertain);
}

#[test]
fn pseudo_triggers_keep_findings_present() {
    let text = "FINDINGS: No change in the small bilateral effusions. No interval increase in pulmonary edema.";
    assert_eq!(
        label(text, Observation::PleuralEffusion),
        NoteLabel::Positive
    );
    assert_eq!(label(text, Observation::Edema), NoteLabel::Positive);
}

#[test]
fn analysis_serializes_with_snake_case_names() {
    let a = analyze("IMPRESSION: Possible small left pleural effusion.");
    let json = serde_json::to_value(&a).unwrap();
    assert_eq!(json["labels"]["pleural_effusion"], "uncertain");
    assert_eq!(json["labels"]["no_finding"], "not_mentioned");
    assert_eq!(json["mentions"][0]["assertion"], "possible");
    assert_eq!(json["mentions"][0]["section"], "impression");
    assert_eq!(json["mentions"][0]["trigger"]["category"], "possible");
    let back: fusion_notes::NoteAnalysis = serde_json::from_value(json).unwrap();
    assert_eq!(back, a);
}

/// The kinds of mistake found on a site's labelled reports, each with
/// invented sentences (never text of the labelled set).
mod kinds_of_mistake {
    use super::*;

    #[test]
    fn a_negation_before_a_verb_of_suggestion() {
        let text = "FINDINGS: No focal airspace opacity to suggest pneumonia. \
                    No pleural line to suggest a pneumothorax.";
        assert_eq!(label(text, Observation::Pneumonia), NoteLabel::Negative);
        assert_eq!(label(text, Observation::Pneumothorax), NoteLabel::Negative);
    }

    #[test]
    fn normality_stated_after_the_finding() {
        let text = "FINDINGS: Heart size and mediastinal contours are within normal limits. \
                    Pulmonary vascularity is normal.";
        let a = analyze(text);
        assert_eq!(a.labels[&Observation::Cardiomegaly], NoteLabel::Negative);
        assert_eq!(
            a.labels[&Observation::EnlargedCardiomediastinum],
            NoteLabel::Negative
        );
        assert_eq!(a.labels[&Observation::Edema], NoteLabel::Negative);
        let heart = a
            .mentions
            .iter()
            .find(|m| m.observation == Observation::Cardiomegaly)
            .unwrap();
        assert_eq!(heart.text, "Heart size");
        assert_eq!(heart.trigger.as_ref().unwrap().text, "within normal limits");
        // A bare structure without a statement of normality is no mention.
        let a = analyze("FINDINGS: The heart is seen on both views.");
        assert_eq!(
            a.labels[&Observation::Cardiomegaly],
            NoteLabel::NotMentioned
        );
        // Nor does normality reach across a word of abnormality.
        let a = analyze("FINDINGS: Heart size is mildly enlarged, mediastinum normal.");
        assert_eq!(a.labels[&Observation::Cardiomegaly], NoteLabel::Positive);
    }

    #[test]
    fn hedges_after_the_finding() {
        for text in [
            "IMPRESSION: Pneumonia is in the differential.",
            "IMPRESSION: Early pneumonia would be a consideration.",
            "IMPRESSION: Pneumonia cannot be entirely excluded.",
        ] {
            assert_eq!(
                label(text, Observation::Pneumonia),
                NoteLabel::Uncertain,
                "{text}"
            );
        }
    }

    #[test]
    fn recommendations_are_not_findings() {
        let text = "IMPRESSION: No acute process. Correlate clinically for pneumonia. \
                    Follow-up radiograph to exclude an effusion.";
        let a = analyze(text);
        assert_eq!(a.labels[&Observation::Pneumonia], NoteLabel::NotMentioned);
        assert_eq!(
            a.labels[&Observation::PleuralEffusion],
            NoteLabel::NotMentioned
        );
        assert_eq!(a.labels[&Observation::NoFinding], NoteLabel::Positive);
    }

    #[test]
    fn old_or_healed_findings_and_history() {
        let text = "FINDINGS: Residua of prior granulomatous disease with a calcified granuloma \
                    in the right upper lobe. Old healed left rib fractures.";
        let a = analyze(text);
        assert_eq!(a.labels[&Observation::LungLesion], NoteLabel::NotMentioned);
        assert_eq!(a.labels[&Observation::Fracture], NoteLabel::NotMentioned);
        assert_eq!(a.labels[&Observation::Pneumonia], NoteLabel::NotMentioned);
        assert!(a.mentions.iter().all(|m| m.historical));
        // A nodule that is not old still counts.
        assert_eq!(
            label(
                "FINDINGS: New 8 mm nodule in the left lower lobe.",
                Observation::LungLesion
            ),
            NoteLabel::Positive
        );
    }

    #[test]
    fn sentences_run_together_without_a_space() {
        let text = "IMPRESSION: 1.No effusion.2.Mild cardiomegaly.";
        let a = analyze(text);
        assert_eq!(a.labels[&Observation::PleuralEffusion], NoteLabel::Negative);
        assert_eq!(a.labels[&Observation::Cardiomegaly], NoteLabel::Positive);
    }

    #[test]
    fn terse_normal_wording() {
        let text = "FINDINGS: Heart size normal. Lungs are clear.";
        let a = analyze(text);
        assert_eq!(a.labels[&Observation::Cardiomegaly], NoteLabel::Negative);
        assert_eq!(a.labels[&Observation::NoFinding], NoteLabel::Positive);
        assert_eq!(
            label(
                "IMPRESSION: Normal heart. Clear lungs.",
                Observation::NoFinding
            ),
            NoteLabel::Positive
        );
    }

    #[test]
    fn borderline_heart_size_is_hedged_cardiomegaly() {
        for text in [
            "FINDINGS: The heart is borderline in size.",
            "IMPRESSION: Borderline heart size.",
            "FINDINGS: Heart size borderline enlarged.",
        ] {
            assert_eq!(
                label(text, Observation::Cardiomegaly),
                NoteLabel::Uncertain,
                "{text}"
            );
        }
        assert_eq!(
            label(
                "FINDINGS: Heart size is again mildly enlarged.",
                Observation::Cardiomegaly
            ),
            NoteLabel::Positive
        );
    }
}
