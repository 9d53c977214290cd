//! The prediction pipeline on tiny hand-set packages (tests/common/tiny.rs):
//! every fused number is computed by hand with the reduced Dempster's rule.
//!
//! Image opinion (tiny-image, any in-scope image): P = 0.7, S = 10 →
//! (b, d, u) = (0.6, 0.2, 0.2). Text opinions: positive (0.8, 0, 0.2),
//! negative (0, 0.8, 0.2), uncertain (0.25, 0.25, 0.5).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use fusion_models::pipeline::{
    BranchStatus, CaseInput, FrameValues, GateAttributes, ImageCandidate, NoteInput, PackageStatus,
    Pipeline, PredictionOutput,
};
use fusion_models::{AbstainReason, Opinion};

const TOL: f64 = 1e-6;

fn pipeline() -> &'static Pipeline {
    static CELL: OnceLock<(tempfile::TempDir, Pipeline)> = OnceLock::new();
    &CELL
        .get_or_init(|| {
            let dir = common::tiny::packages();
            let p = Pipeline::load(dir.path());
            (dir, p)
        })
        .1
}

fn chest(uid: &str, age: &str) -> ImageCandidate {
    ImageCandidate {
        sop_instance_uid: uid.to_owned(),
        attributes: GateAttributes {
            modality: Some("CR".into()),
            body_part_examined: Some("CHEST".into()),
            view_position: Some("PA".into()),
            photometric_interpretation: Some("MONOCHROME2".into()),
            patient_age: Some(age.into()),
            bits_stored: Some(12),
            ..GateAttributes::default()
        },
        pixels: Ok(FrameValues {
            rows: 4,
            columns: 4,
            values: (0..16_u8).map(f32::from).collect(),
        }),
    }
}

fn note(id: &str, labels: &[(&str, &str)]) -> NoteInput {
    NoteInput {
        note_id: id.to_owned(),
        text: "Findings: see labels.".to_owned(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<BTreeMap<_, _>>(),
        excluded: None,
        analysis: None,
    }
}

fn assert_opinion(o: &Opinion, b: f64, d: f64, u: f64) {
    assert!(
        (o.belief() - b).abs() < TOL
            && (o.disbelief() - d).abs() < TOL
            && (o.uncertainty() - u).abs() < TOL,
        "got ({}, {}, {}), want ({b}, {d}, {u})",
        o.belief(),
        o.disbelief(),
        o.uncertainty()
    );
}

fn fused<'a>(out: &'a PredictionOutput, label: &str) -> &'a fusion_models::FusedLabel {
    &out.fused[label]
}

#[test]
fn packages_are_listed_loaded() {
    let packages = pipeline().packages();
    assert_eq!(packages.len(), 2);
    for p in &packages {
        assert_eq!(p.status, PackageStatus::Loaded, "{p:?}");
        assert_eq!(p.manifest_sha256.as_deref().map(str::len), Some(64));
    }
    assert_eq!(packages[0].name, "tiny-image");
    assert_eq!(packages[0].modality, "image");
    assert_eq!(packages[1].name, "tiny-text");
}

#[test]
fn both_branches_agreeing() {
    let out = pipeline().predict(&CaseInput {
        images: vec![chest("1.2.3", "003Y")],
        notes: vec![note(
            "n1",
            &[("pneumonia", "positive"), ("pleural_effusion", "negative")],
        )],
    });
    assert!(out.modalities_available);
    assert_eq!(out.branches.image.status, BranchStatus::Used);
    assert_eq!(out.branches.image.instance.as_deref(), Some("1.2.3"));
    assert_eq!(
        out.branches.image.package.as_deref(),
        Some("tiny-image@1.0.0")
    );
    assert_eq!(out.branches.text.status, BranchStatus::Used);
    assert_eq!(out.branches.text.note_ids, vec!["n1".to_owned()]);
    let img = &out.branches.image.opinions["pneumonia"];
    assert!((img.probability - 0.7).abs() < TOL);
    assert_eq!(img.variance, Some(0.0));
    assert_opinion(&img.opinion, 0.6, 0.2, 0.2);
    assert_opinion(
        &out.branches.text.opinions["pneumonia"].opinion,
        0.8,
        0.0,
        0.2,
    );

    // (0.6, 0.2, 0.2) ⊕ (0.8, 0, 0.2): C = 0.2·0.8 = 0.16;
    // b = (0.48 + 0.12 + 0.16)/0.84, d = 0.04/0.84, u = 0.04/0.84.
    let p = fused(&out, "pneumonia");
    assert!((p.conflict - 0.16).abs() < TOL);
    assert_opinion(&p.opinion, 0.76 / 0.84, 0.04 / 0.84, 0.04 / 0.84);
    assert_eq!(p.sources, vec!["image", "text"]);
    assert_eq!(p.abstain, None);
    assert_eq!(p.prediction_set, None);

    // Text only: the fused opinion is the text opinion exactly.
    let e = fused(&out, "pleural_effusion");
    assert_opinion(&e.opinion, 0.0, 0.8, 0.2);
    assert_eq!(e.conflict, 0.0);
    assert_eq!(e.sources, vec!["text"]);
    assert_eq!(e.abstain, None);

    // Not mentioned, no image opinion: vacuous, withheld, no source.
    let c = fused(&out, "cardiomegaly");
    assert!(c.opinion.is_vacuous());
    assert!(c.sources.is_empty());
    assert!(matches!(
        c.abstain,
        Some(AbstainReason::HighUncertainty { uncertainty, .. }) if uncertainty == 1.0
    ));
    assert!(!out.abstain, "{:?}", out.abstain_reasons);
    for step in ["preprocess", "backbone", "fusion", "total"] {
        assert!(out.timings_ms.contains_key(step), "{step}");
    }
}

#[test]
fn conflicting_branches_abstain_on_conflict() {
    let out = pipeline().predict(&CaseInput {
        images: vec![chest("1.2.3", "003Y")],
        notes: vec![note("n1", &[("pneumonia", "negative")])],
    });
    // (0.6, 0.2, 0.2) ⊕ (0, 0.8, 0.2): C = 0.6·0.8 = 0.48;
    // b = 0.12/0.52, d = (0.16 + 0.04 + 0.16)/0.52, u = 0.04/0.52.
    let p = fused(&out, "pneumonia");
    assert!((p.conflict - 0.48).abs() < TOL);
    assert_opinion(&p.opinion, 0.12 / 0.52, 0.36 / 0.52, 0.04 / 0.52);
    // Strictest of the two packages: max_conflict min(0.4, 0.5) = 0.4.
    match p.abstain {
        Some(AbstainReason::HighConflict {
            conflict,
            max_conflict,
        }) => {
            assert!((conflict - 0.48).abs() < TOL);
            assert_eq!(max_conflict, 0.4);
        }
        other => panic!("{other:?}"),
    }
    assert!(out.abstain);
    assert_eq!(out.abstain_reasons.len(), 1);
    assert!(
        out.abstain_reasons[0].starts_with("pneumonia: conflict between image and text 0.48"),
        "{:?}",
        out.abstain_reasons
    );
}

#[test]
fn image_missing_gives_the_text_opinion() {
    let out = pipeline().predict(&CaseInput {
        images: vec![],
        notes: vec![note("n1", &[("pneumonia", "positive")])],
    });
    assert_eq!(out.branches.image.status, BranchStatus::Missing);
    assert!(out.modalities_available);
    let p = fused(&out, "pneumonia");
    assert_opinion(&p.opinion, 0.8, 0.0, 0.2);
    assert_eq!(p.sources, vec!["text"]);
    assert_eq!(p.conflict, 0.0);
}

#[test]
fn note_missing_gives_the_image_opinion() {
    let out = pipeline().predict(&CaseInput {
        images: vec![chest("1.2.3", "002Y")],
        notes: vec![],
    });
    assert_eq!(out.branches.text.status, BranchStatus::Missing);
    assert_eq!(
        out.branches.text.reason.as_deref(),
        Some("no note in the case")
    );
    let p = fused(&out, "pneumonia");
    assert_opinion(&p.opinion, 0.6, 0.2, 0.2);
    assert_eq!(p.sources, vec!["image"]);
    // Every other label has no source at all.
    assert!(fused(&out, "edema").opinion.is_vacuous());
    assert!(!out.abstain, "{:?}", out.abstain_reasons);
}

#[test]
fn undecodable_image_is_unusable() {
    let mut image = chest("1.2.3", "003Y");
    image.pixels = Err("JPEG-LS support is not built in".into());
    let out = pipeline().predict(&CaseInput {
        images: vec![image],
        notes: vec![note("n1", &[("pneumonia", "uncertain")])],
    });
    assert_eq!(out.branches.image.status, BranchStatus::Unusable);
    assert_eq!(
        out.branches.image.reason.as_deref(),
        Some("pixel data could not be decoded: JPEG-LS support is not built in")
    );
    let p = fused(&out, "pneumonia");
    assert_opinion(&p.opinion, 0.25, 0.25, 0.5);
    assert_eq!(p.sources, vec!["text"]);
}

#[test]
fn ct_is_not_applicable() {
    let mut image = chest("1.2.3", "003Y");
    image.attributes.modality = Some("CT".into());
    let out = pipeline().predict(&CaseInput {
        images: vec![image],
        notes: vec![note("n1", &[("pneumonia", "positive")])],
    });
    assert_eq!(out.branches.image.status, BranchStatus::NotApplicable);
    assert_eq!(
        out.branches.image.reason.as_deref(),
        Some("Modality CT is not in the package's intended use (CR, DX)")
    );
    assert!(out.branches.image.opinions.is_empty());
    assert_opinion(&fused(&out, "pneumonia").opinion, 0.8, 0.0, 0.2);
}

#[test]
fn adult_is_discounted_with_the_reason() {
    let out = pipeline().predict(&CaseInput {
        images: vec![chest("1.2.3", "045Y")],
        notes: vec![note("n1", &[("pneumonia", "positive")])],
    });
    let image = &out.branches.image;
    assert_eq!(image.status, BranchStatus::Discounted);
    assert_eq!(image.trust, Some(0.2));
    assert_eq!(
        image.reason.as_deref(),
        Some(
            "patient age 45 years is outside the package's intended use of 1–5 years; \
             opinion discounted by 0.2"
        )
    );
    // (0.6, 0.2, 0.2) discounted by 0.2 → (0.12, 0.04, 0.84).
    assert_opinion(&image.opinions["pneumonia"].opinion, 0.12, 0.04, 0.84);
    // ⊕ (0.8, 0, 0.2): C = 0.04·0.8 = 0.032; b = (0.096 + 0.024 + 0.672)/0.968,
    // d = 0.008/0.968, u = 0.168/0.968.
    let p = fused(&out, "pneumonia");
    assert!((p.conflict - 0.032).abs() < TOL);
    assert_opinion(&p.opinion, 0.792 / 0.968, 0.008 / 0.968, 0.168 / 0.968);
    assert_eq!(p.sources, vec!["image", "text"]);
}

#[test]
fn both_missing_means_no_modality() {
    let out = pipeline().predict(&CaseInput::default());
    assert!(!out.modalities_available);
    assert!(out.abstain);
    assert!(out.abstain_reasons[0].starts_with("no usable modality: image missing"));
    // Also when what is there cannot be used: CT and an empty note.
    let mut ct = chest("1.2.3", "003Y");
    ct.attributes.modality = Some("CT".into());
    let mut empty = note("n1", &[("pneumonia", "positive")]);
    empty.text = "  \n".into();
    let out = pipeline().predict(&CaseInput {
        images: vec![ct],
        notes: vec![empty],
    });
    assert_eq!(out.branches.image.status, BranchStatus::NotApplicable);
    assert_eq!(out.branches.text.status, BranchStatus::Unusable);
    assert!(!out.modalities_available);
    assert!(out.fused.values().all(|f| f.opinion.is_vacuous()));
}

#[test]
fn first_applicable_image_is_chosen_and_others_explained() {
    let mut ct = chest("1.1", "003Y");
    ct.attributes.modality = Some("CT".into());
    let mut broken = chest("1.2", "003Y");
    broken.pixels = Err("truncated".into());
    let adult = chest("1.3", "045Y");
    let good = chest("1.4", "003Y");
    let later = chest("1.5", "004Y");
    let out = pipeline().predict(&CaseInput {
        images: vec![ct, broken, adult, good, later],
        notes: vec![],
    });
    let image = &out.branches.image;
    assert_eq!(image.status, BranchStatus::Used);
    assert_eq!(image.instance.as_deref(), Some("1.4"));
    let skipped: BTreeMap<_, _> = image
        .skipped
        .iter()
        .map(|s| (s.id.as_str(), s.reason.as_str()))
        .collect();
    assert_eq!(skipped.len(), 4);
    assert_eq!(
        skipped["1.1"],
        "Modality CT is not in the package's intended use (CR, DX)"
    );
    assert_eq!(skipped["1.2"], "pixel data could not be decoded: truncated");
    assert_eq!(skipped["1.3"], "another image of the case was used");
    assert_eq!(skipped["1.5"], "another image of the case was used");
}

#[test]
fn latest_mentioning_note_wins_per_label() {
    let out = pipeline().predict(&CaseInput {
        images: vec![],
        notes: vec![
            note("old", &[("pneumonia", "positive"), ("edema", "positive")]),
            note(
                "new",
                &[("edema", "negative"), ("pneumonia", "not_mentioned")],
            ),
        ],
    });
    let text = &out.branches.text;
    assert_eq!(text.note_ids, vec!["old".to_owned(), "new".to_owned()]);
    let pn = &text.opinions["pneumonia"];
    assert_eq!(pn.mention.as_ref().unwrap().note_id, "old");
    assert_opinion(&pn.opinion, 0.8, 0.0, 0.2);
    let ed = &text.opinions["edema"];
    assert_eq!(ed.mention.as_ref().unwrap().note_id, "new");
    assert_opinion(&ed.opinion, 0.0, 0.8, 0.2);
}

#[test]
fn unknown_label_strings_are_reported_not_fatal() {
    let out = pipeline().predict(&CaseInput {
        images: vec![],
        notes: vec![note("n1", &[("pneumonia", "maybe")])],
    });
    assert!(fused(&out, "pneumonia").opinion.is_vacuous());
    let reason = out.branches.text.reason.clone().unwrap();
    assert!(
        reason.contains("unknown label \"maybe\" for pneumonia"),
        "{reason}"
    );
}

#[test]
fn predictions_are_reproducible() {
    let case = CaseInput {
        images: vec![chest("1.2.3", "003Y")],
        notes: vec![note("n1", &[("pneumonia", "positive")])],
    };
    let mut a = pipeline().predict(&case);
    let mut b = pipeline().predict(&case);
    a.timings_ms.clear();
    b.timings_ms.clear();
    for r in [&mut a, &mut b] {
        r.branches.image.timings_ms.clear();
        r.branches.text.timings_ms.clear();
    }
    assert_eq!(a, b);
}

#[test]
fn broken_package_reports_no_package() {
    let dir = common::tiny::packages();
    // Corrupt the image weights after the manifest pinned them.
    std::fs::write(dir.path().join("tiny-image/model.safetensors"), b"tampered").unwrap();
    let p = Pipeline::load(dir.path());
    let image = p
        .packages()
        .into_iter()
        .find(|r| r.name == "tiny-image")
        .unwrap();
    assert_eq!(image.status, PackageStatus::Failed);
    assert!(image.reason.as_deref().unwrap().contains("size mismatch"));
    let out = p.predict(&CaseInput {
        images: vec![chest("1.2.3", "003Y")],
        notes: vec![note("n1", &[("pneumonia", "positive")])],
    });
    assert_eq!(out.branches.image.status, BranchStatus::NoPackage);
    assert!(
        out.branches
            .image
            .reason
            .as_deref()
            .unwrap()
            .starts_with("model package not installed: tiny-image: ")
    );
    assert_opinion(&fused(&out, "pneumonia").opinion, 0.8, 0.0, 0.2);
}

#[test]
fn bad_pixels_never_panic() {
    let mut short = chest("1.1", "003Y");
    short.pixels = Ok(FrameValues {
        rows: 4,
        columns: 4,
        values: vec![1.0; 3],
    });
    let mut nan = chest("1.2", "003Y");
    nan.pixels = Ok(FrameValues {
        rows: 1,
        columns: 2,
        values: vec![f32::NAN, 1.0],
    });
    let mut rgb = chest("1.3", "003Y");
    rgb.attributes.photometric_interpretation = Some("RGB".into());
    let out = pipeline().predict(&CaseInput {
        images: vec![short, nan, rgb],
        notes: vec![],
    });
    assert_eq!(out.branches.image.status, BranchStatus::NotApplicable);
    assert_eq!(out.branches.image.skipped.len(), 3);
    assert!(!out.modalities_available);
}

#[test]
fn output_matches_the_prediction_schema() {
    let schema = common::schema::load("prediction.schema.json");
    let cases = [
        CaseInput {
            images: vec![chest("1.2.3", "045Y")],
            notes: vec![note("n1", &[("pneumonia", "negative")])],
        },
        CaseInput::default(),
    ];
    for case in cases {
        let out = pipeline().predict(&case);
        let json = serde_json::to_value(&out).unwrap();
        assert_eq!(common::schema::errors(&schema, &json), Vec::<String>::new());
        // And it reads back.
        let back: PredictionOutput = serde_json::from_value(json).unwrap();
        assert_eq!(back, out);
    }
}

#[test]
fn the_prediction_schema_rejects_a_broken_document_at_its_paths() {
    let schema = common::schema::load("prediction.schema.json");
    let mut json = serde_json::to_value(pipeline().predict(&CaseInput::default())).unwrap();
    assert_eq!(common::schema::errors(&schema, &json), Vec::<String>::new());
    // An unknown branch status (1 error), and a fused entry under a name
    // that is no label (1) lacking its 5 required fields (5).
    json["branches"]["image"]["status"] = "maybe".into();
    json["fused"]["not_a_label"] = serde_json::json!({});
    let errors = common::schema::error_paths(&schema, &json);
    assert_eq!(errors.len(), 2 + 5, "{errors:?}");
    let paths: std::collections::BTreeSet<&str> = errors.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        ["/branches/image/status", "/fused", "/fused/not_a_label"].into(),
        "{errors:?}"
    );
}

#[test]
fn loading_an_empty_folder_is_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let p = Pipeline::load(dir.path());
    assert!(p.packages().is_empty());
    let out = p.predict(&CaseInput {
        images: vec![chest("1.2.3", "003Y")],
        notes: vec![],
    });
    assert_eq!(out.branches.image.status, BranchStatus::NoPackage);
    assert!(!out.modalities_available);
}
