//! The service's text forward pass (`fusion_models::minilm`) leaves fused
//! predictions where `BertModel` put them: the same cases through two
//! pipelines on the shipped text packages (minilm-l6-v2 with its zero-shot
//! evidence, and the openi-report-heads on it), one per forward pass. Needs
//! `scripts/fetch-models --text-only`.
//!
//! The passes agree to f32 rounding (cosine ≥ 1 − 1e-6 on the embeddings,
//! tests/text_encoder.rs), not bit for bit: the products run in another
//! order (packed tokens, a fused Q/K/V matrix) and the erf, exp and
//! LayerNorm sums are computed differently. Every probability, opinion mass
//! and uncertainty must agree to 1e-5; labels, statuses and abstentions
//! must be identical.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;

use fusion_models::ForwardPass;
use fusion_models::pipeline::{CaseInput, NoteInput, PackageStatus, Pipeline};
use serde_json::Value;

/// Invented reports (not from patient records).
const NOTES: [&str; 4] = [
    "FINDINGS: The heart size is normal. No pleural effusion. No pneumothorax. Patchy \
     opacity in the right lower lobe.\nIMPRESSION: Possible right lower lobe pneumonia.",
    "FINDINGS: Mild cardiomegaly. Small bilateral pleural effusions with bibasilar \
     atelectasis. Perihilar haziness suggests early interstitial oedema.\nIMPRESSION: \
     Findings consistent with congestive heart failure.",
    "FINDINGS: The lungs are clear. No focal consolidation, effusion or pneumothorax. \
     The cardiomediastinal silhouette is within normal limits.\nIMPRESSION: No acute \
     cardiopulmonary process.",
    "Right internal jugular line terminates in the superior vena cava. Endotracheal tube \
     tip lies 4 cm above the carina. Left basilar opacity may represent atelectasis or \
     pneumonia; a small left effusion cannot be excluded.",
];

fn text_packages() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for name in ["minilm-l6-v2", "openi-report-heads"] {
        std::os::unix::fs::symlink(common::fetched_package(name), dir.path().join(name)).unwrap();
    }
    dir
}

fn case(text: &str, with_analysis: bool) -> CaseInput {
    let analysis = fusion_notes::mentions::analyze(text);
    let labels = analysis
        .labels
        .iter()
        .map(|(o, l)| {
            let value = serde_json::to_value(l).unwrap();
            (
                serde_json::to_value(o)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_owned(),
                value.as_str().unwrap().to_owned(),
            )
        })
        .collect::<BTreeMap<_, _>>();
    CaseInput {
        images: Vec::new(),
        notes: vec![NoteInput {
            note_id: "n1".to_owned(),
            text: text.to_owned(),
            labels,
            excluded: None,
            analysis: with_analysis.then_some(analysis),
        }],
    }
}

/// Walks two JSON trees: numbers within `tol`, everything else equal;
/// `timings_ms` skipped. Returns the largest numeric difference.
fn compare(a: &Value, b: &Value, path: &str, tol: f64) -> f64 {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            let d = (x - y).abs();
            assert!(d <= tol, "{path}: {x} vs {y} (|Δ| {d:e})");
            d
        }
        (Value::Object(x), Value::Object(y)) => {
            assert_eq!(
                x.keys().collect::<Vec<_>>(),
                y.keys().collect::<Vec<_>>(),
                "{path}"
            );
            x.iter()
                .filter(|(k, _)| k.as_str() != "timings_ms")
                .map(|(k, v)| compare(v, &y[k], &format!("{path}.{k}"), tol))
                .fold(0.0, f64::max)
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{path}");
            x.iter()
                .zip(y)
                .enumerate()
                .map(|(i, (v, w))| compare(v, w, &format!("{path}[{i}]"), tol))
                .fold(0.0, f64::max)
        }
        _ => {
            assert_eq!(a, b, "{path}");
            0.0
        }
    }
}

#[test]
fn fused_predictions_are_unchanged_by_the_forward_pass() {
    let dir = text_packages();
    let fast = Pipeline::load_with_text_pass(dir.path(), Some(ForwardPass::MiniLm));
    let reference = Pipeline::load_with_text_pass(dir.path(), Some(ForwardPass::BertReference));
    for p in [&fast, &reference] {
        for package in p.packages() {
            assert_eq!(package.status, PackageStatus::Loaded, "{package:?}");
        }
    }
    let mut worst = 0.0_f64;
    let mut seen_head_evidence = false;
    for text in NOTES {
        // With an analysis the report heads give the opinions; without one,
        // the labeller's labels and the encoder's zero-shot evidence.
        for with_analysis in [true, false] {
            let input = case(text, with_analysis);
            let a = serde_json::to_value(fast.predict(&input)).unwrap();
            let b = serde_json::to_value(reference.predict(&input)).unwrap();
            assert_eq!(a["modalities_available"], Value::Bool(true));
            worst = worst.max(compare(&a, &b, "prediction", 1e-5));
            seen_head_evidence |= a["branches"].to_string().contains("openi-report-heads");
        }
    }
    assert!(
        seen_head_evidence,
        "the text branch did not run the report heads"
    );
    eprintln!("largest difference between the passes: {worst:.1e}");
}
