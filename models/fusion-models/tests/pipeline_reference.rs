//! The pipeline on the shipped packages (pneumonia-xception, minilm-l6-v2):
//! the pydicom-data chest radiograph RG1_UNCR.dcm (an adult PA film, so the
//! pediatric image model is trust-discounted) with an invented chest
//! radiograph report. Needs `scripts/fetch-models` and
//! `scripts/fetch-test-data`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use dicom_dictionary_std::tags;
use fusion_models::package::default_packages_dir;
use fusion_models::pipeline::{
    BranchStatus, CaseInput, FrameValues, GateAttributes, ImageCandidate, NoteInput, PackageStatus,
    Pipeline,
};

/// Invented for this test (not from a patient record).
const NOTE: &str = "EXAMINATION: Chest radiograph, PA view.\n\
    INDICATION: Cough and fever for three days.\n\
    FINDINGS: The heart size is normal. No pleural effusion. No pneumothorax. \
    Patchy opacity in the right lower lobe.\n\
    IMPRESSION: Possible right lower lobe pneumonia.";

fn pipeline() -> &'static Pipeline {
    static CELL: OnceLock<Pipeline> = OnceLock::new();
    CELL.get_or_init(|| {
        common::fetched_package("pneumonia-xception");
        common::fetched_package("minilm-l6-v2");
        Pipeline::load(&default_packages_dir())
    })
}

fn text_of(obj: &dicom_object::DefaultDicomObject, tag: dicom_object::Tag) -> Option<String> {
    obj.element(tag)
        .ok()
        .and_then(|e| e.to_str().ok())
        .map(|s| s.trim_matches([' ', '\0']).to_owned())
        .filter(|s| !s.is_empty())
}

/// RG1_UNCR.dcm as the HTTP side would hand it over: header attributes and
/// frame 1's values (no modality LUT in this file, so stored values).
fn rg1_uncr() -> ImageCandidate {
    let path = common::repo_root()
        .join(".test-data/dicom/pydicom-data-1.0.0/data_store/data/RG1_UNCR.dcm");
    assert!(
        path.is_file(),
        "{} is missing: run scripts/fetch-test-data",
        path.display()
    );
    let obj = dicom_object::open_file(&path).unwrap();
    let rows = obj.element(tags::ROWS).unwrap().to_int::<u16>().unwrap();
    let cols = obj.element(tags::COLUMNS).unwrap().to_int::<u16>().unwrap();
    let bytes = obj.element(tags::PIXEL_DATA).unwrap().to_bytes().unwrap();
    let n = usize::from(rows) * usize::from(cols);
    let values = bytes[..n * 2]
        .chunks_exact(2)
        .map(|b| f32::from(u16::from_le_bytes([b[0], b[1]])))
        .collect();
    ImageCandidate {
        sop_instance_uid: text_of(&obj, tags::SOP_INSTANCE_UID).unwrap(),
        attributes: GateAttributes {
            modality: text_of(&obj, tags::MODALITY),
            body_part_examined: text_of(&obj, tags::BODY_PART_EXAMINED),
            view_position: text_of(&obj, tags::VIEW_POSITION),
            photometric_interpretation: text_of(&obj, tags::PHOTOMETRIC_INTERPRETATION),
            patient_age: text_of(&obj, tags::PATIENT_AGE),
            patient_birth_date: text_of(&obj, tags::PATIENT_BIRTH_DATE),
            study_date: text_of(&obj, tags::STUDY_DATE),
            bits_stored: obj
                .element(tags::BITS_STORED)
                .ok()
                .and_then(|e| e.to_int::<u16>().ok()),
        },
        pixels: Ok(FrameValues {
            rows: u32::from(rows),
            columns: u32::from(cols),
            values,
        }),
    }
}

fn note() -> NoteInput {
    // The mention labeller's output for NOTE (services/notes), as the caller
    // would pass it.
    let labels = [
        ("cardiomegaly", "negative"),
        ("pleural_effusion", "negative"),
        ("pneumothorax", "negative"),
        ("lung_opacity", "positive"),
        ("pneumonia", "uncertain"),
    ];
    NoteInput {
        note_id: "note-1".into(),
        text: NOTE.into(),
        labels: labels
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect::<BTreeMap<_, _>>(),
        excluded: None,
        analysis: None,
    }
}

#[test]
fn adult_chest_film_with_report() {
    let p = pipeline();
    for r in p.packages() {
        assert_eq!(r.status, PackageStatus::Loaded, "{r:?}");
    }
    let image = rg1_uncr();
    eprintln!("RG1_UNCR header: {:?}", image.attributes);
    let out = p.predict(&CaseInput {
        images: vec![image],
        notes: vec![note()],
    });
    eprintln!(
        "{}",
        serde_json::to_string_pretty(&out.branches.image).unwrap()
    );
    for (k, o) in &out.branches.text.opinions {
        eprintln!(
            "text {k}: mention {:?}, zero-shot {:?}, opinion ({:.3}, {:.3}, {:.3})",
            o.mention.as_ref().map(|m| m.label),
            o.zero_shot.as_ref().map(|z| (
                &z.sentence,
                (z.similarity_present * 1000.0).round() / 1000.0,
                (z.similarity_absent * 1000.0).round() / 1000.0,
                z.evidence
            )),
            o.opinion.belief(),
            o.opinion.disbelief(),
            o.opinion.uncertainty()
        );
    }
    eprintln!("timings {:?}", out.timings_ms);
    assert!(out.modalities_available);

    // The image branch: used, but discounted (adult outside 1–5 years).
    let img = &out.branches.image;
    assert_eq!(img.status, BranchStatus::Discounted, "{:?}", img.reason);
    assert_eq!(img.trust, Some(0.2));
    let reason = img.reason.as_deref().unwrap();
    assert!(
        reason.contains("outside the package's intended use of 1–5 years")
            && reason.contains("discounted by 0.2"),
        "{reason}"
    );
    assert_eq!(
        img.package.as_deref(),
        Some("pneumonia-xception@0.3.0+candle.1")
    );
    let pn = &img.opinions["pneumonia"];
    assert_eq!(pn.passes, Some(20));
    // softmax(logits)[PNEUMONIA] with T = 1: 0.0539 (Keras, see xception_parity).
    assert!((pn.probability - 0.053_898).abs() < 1e-3);
    assert!(
        pn.opinion.uncertainty() >= 0.8 - 1e-9,
        "discounted: u ≥ 1 − 0.2"
    );
    assert_eq!(
        img.opinions.len(),
        1,
        "the image model speaks to pneumonia only"
    );

    // Pneumonia is fused from both; everything else is text only.
    let fused = &out.fused["pneumonia"];
    assert_eq!(fused.sources, vec!["image", "text"]);
    let text_pn = out.branches.text.opinions["pneumonia"].opinion;
    let expected = fusion_models::combine(&pn.opinion, &text_pn).unwrap();
    assert_eq!(fused.opinion, expected.opinion);
    assert_eq!(fused.conflict, expected.conflict);
    for (label, f) in &out.fused {
        if label == "pneumonia" {
            continue;
        }
        assert!(!f.sources.contains(&"image".to_owned()), "{label}");
        let text = out.branches.text.opinions[label].opinion;
        assert_eq!(
            f.opinion, text,
            "{label}: fused must equal the text opinion"
        );
    }
    // Negated findings lean absent, asserted ones present.
    for label in ["pleural_effusion", "pneumothorax", "cardiomegaly"] {
        let o = out.fused[label].opinion;
        assert!(o.projected_probability() < 0.2, "{label}: {o:?}");
    }
    assert!(out.fused["lung_opacity"].opinion.projected_probability() > 0.8);
    assert!(out.timings_ms["text_encoder"] > 0.0);
    assert!(out.timings_ms["backbone"] > 0.0);

    // A real output validates against the schema.
    let schema = common::schema::load("prediction.schema.json");
    let json = serde_json::to_value(&out).unwrap();
    assert_eq!(common::schema::errors(&schema, &json), Vec::<String>::new());
}
