//! The service's text forward pass (`fusion_models::minilm`) leaves fused
//! predictions where `BertModel` put them: the same cases through two
//! pipelines on the shipped text packages (minilm-l6-v2 with its zero-shot
//! evidence, and the openi-report-heads on it), one per forward pass. Needs
//! `scripts/fetch-models --text-only`.
//!
//! The passes agree to f32 rounding (cosine ≥ 1 − 1e-6 on the embeddings,
//! tests/text_encoder.rs), not bit for bit: the products run in another
//! order (packed tokens, a fused Q/K/V matrix) and the erf, exp and
//! LayerNorm sums are computed differently. Every number must agree to
//! 1e-5 × max(1, |value|): probabilities, opinion masses and uncertainties
//! (all in [0, 1]) to 1e-5 absolute, evidence pseudo-counts (up to a few
//! hundred) to 1e-5 relative; labels, statuses and abstentions must be
//! identical. Measured: the largest difference is 5.3e-6, in a zero-shot
//! logit (a scale times the difference of two close cosines, so it
//! amplifies the embeddings' 1e-12-level disagreement); fused
//! probabilities differ less.
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

/// Walks two JSON trees: numbers within `tol` × max(1, |value|),
/// everything else equal; `timings_ms` skipped. Returns the largest
/// difference so scaled and where it is.
fn compare(a: &Value, b: &Value, path: &str, tol: f64) -> (f64, String) {
    let worst = |diffs: Vec<(f64, String)>| {
        diffs
            .into_iter()
            .fold((0.0, String::new()), |m, d| if d.0 > m.0 { d } else { m })
    };
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            let d = (x - y).abs() / x.abs().max(1.0);
            assert!(d <= tol, "{path}: {x} vs {y} (scaled |Δ| {d:e})");
            (d, format!("{path}: {x} vs {y}"))
        }
        (Value::Object(x), Value::Object(y)) => {
            assert_eq!(
                x.keys().collect::<Vec<_>>(),
                y.keys().collect::<Vec<_>>(),
                "{path}"
            );
            worst(
                x.iter()
                    .filter(|(k, _)| k.as_str() != "timings_ms")
                    .map(|(k, v)| compare(v, &y[k], &format!("{path}.{k}"), tol))
                    .collect(),
            )
        }
        (Value::Array(x), Value::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{path}");
            worst(
                x.iter()
                    .zip(y)
                    .enumerate()
                    .map(|(i, (v, w))| compare(v, w, &format!("{path}[{i}]"), tol))
                    .collect(),
            )
        }
        _ => {
            assert_eq!(a, b, "{path}");
            (0.0, String::new())
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
    let mut worst = (0.0_f64, String::new());
    let mut seen_head_evidence = false;
    for text in NOTES {
        // With an analysis the report heads give the opinions; without one,
        // the labeller's labels and the encoder's zero-shot evidence.
        for with_analysis in [true, false] {
            let input = case(text, with_analysis);
            let a = serde_json::to_value(fast.predict(&input)).unwrap();
            let b = serde_json::to_value(reference.predict(&input)).unwrap();
            assert_eq!(a["modalities_available"], Value::Bool(true));
            let d = compare(&a, &b, "prediction", 1e-5);
            if d.0 > worst.0 {
                worst = d;
            }
            seen_head_evidence |= a["branches"].to_string().contains("openi-report-heads");
        }
    }
    assert!(
        seen_head_evidence,
        "the text branch did not run the report heads"
    );
    eprintln!(
        "largest difference between the passes, scaled: {:.1e} ({})",
        worst.0, worst.1
    );
}

/// The service's pass against a recording of its own earlier output
/// (`fixtures/text_pass_predictions.json`, the same cases as above): a
/// change to the forward pass must leave fused predictions where they were.
/// The text branch's report and the fused results are compared;
/// `FUSION_RECORD_PREDICTIONS=1` rewrites the recording.
#[test]
fn fused_predictions_match_the_recording() {
    let dir = text_packages();
    let pipeline = Pipeline::load_with_text_pass(dir.path(), Some(ForwardPass::MiniLm));
    let got: Vec<Value> = NOTES
        .iter()
        .flat_map(|text| [true, false].map(|with_analysis| case(text, with_analysis)))
        .map(|input| {
            // What the text pass decides (the image branch's reason names
            // the temporary packages folder).
            let mut v = serde_json::to_value(pipeline.predict(&input)).unwrap();
            v["branches"]["text"]
                .as_object_mut()
                .unwrap()
                .remove("timings_ms");
            serde_json::json!({
                "text": v["branches"]["text"],
                "fused": v["fused"],
                "abstain": v["abstain"],
                "abstain_reasons": v["abstain_reasons"],
            })
        })
        .collect();
    let path = common::fixture("text_pass_predictions.json");
    if std::env::var_os("FUSION_RECORD_PREDICTIONS").is_some() {
        std::fs::write(&path, serde_json::to_string(&got).unwrap() + "\n").unwrap();
    }
    let want: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    assert_eq!(got.len(), want.len());
    let mut worst = (0.0_f64, String::new());
    for (a, b) in got.iter().zip(&want) {
        let d = compare(a, b, "prediction", RECORDING_TOLERANCE);
        if d.0 > worst.0 {
            worst = d;
        }
    }
    eprintln!(
        "largest difference from the recording, scaled: {:.1e} ({})",
        worst.0, worst.1
    );
}

/// How far a prediction may move from the recording, scaled as in
/// [`compare`]. On the machine that made the recording the pass repeats it
/// to the last bit (measured: 0); elsewhere gemm may pick other kernels at
/// run time (AVX2 rather than AVX-512), which sum in another order. So does
/// any change to the pass that reorders an f32 sum: a fused attention op
/// tried on 2026-12-06 moved fused opinion masses and probabilities by up to
/// 3.3e-7 and zero-shot logits (a scale times the difference of two close
/// cosines) by up to 5.4e-6, the size of the pass's distance from
/// `BertModel` above. Hence f32 rounding's 1e-5, as there; a real change
/// (a bias, the pooling, a label) moves predictions far more.
const RECORDING_TOLERANCE: f64 = 1e-5;

/// A normal report (NOTES[2]) mentions neither Lung Opacity nor an enlarged
/// cardiomediastinum as present: those observations have no trained head,
/// and the zero-shot prompts, which tell "the lungs are clear" poorly from
/// "there is lung opacity", add no evidence to an observation the labeller
/// found not mentioned. Each keeps its prior (the heads package's base rate),
/// far below a call; before, Lung Opacity scored 0.57 here.
#[test]
fn a_not_mentioned_finding_keeps_its_prior() {
    let dir = text_packages();
    let pipeline = Pipeline::load_with_text_pass(dir.path(), Some(ForwardPass::MiniLm));
    let input = case(NOTES[2], true);
    let label = &input.notes[0].labels;
    assert_eq!(label["lung_opacity"], "not_mentioned");
    let v = serde_json::to_value(pipeline.predict(&input)).unwrap();
    for key in ["lung_opacity", "fracture", "support_devices"] {
        let text = &v["branches"]["text"]["opinions"][key];
        assert!(text["zero_shot"].is_null(), "{key}: {text:#}");
        let opinion = &text["opinion"];
        assert_eq!(opinion["belief"], 0.0, "{key}: {text:#}");
        assert_eq!(opinion["uncertainty"], 1.0, "{key}: {text:#}");
        let p = text["probability"].as_f64().unwrap();
        let prior = opinion["base_rate"].as_f64().unwrap();
        assert!(
            (p - prior).abs() < 1e-12 && p < 0.3,
            "{key}: {p} vs prior {prior}"
        );
    }
}
