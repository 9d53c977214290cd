//! The candle Xception port against Keras on a real radiograph: the Rust
//! preprocessing must reproduce the Python fixture's 8-bit image exactly and
//! the logits must match Keras to 1e-4. Needs `scripts/fetch-models` (weights
//! converted by models/convert/convert_xception.py) and
//! `scripts/fetch-test-data` (RG1_UNCR.dcm).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::OnceLock;

use candle_core::{Device, Tensor};
use dicom_dictionary_std::tags;
use fusion_models::ModelPackage;
use fusion_models::image_branch;
use fusion_models::preprocess::{Photometric, preprocess_radiograph};
use fusion_models::xception::{FEATURES, XceptionClassifier};
use serde::Deserialize;

#[derive(Deserialize)]
struct Fixture {
    rows: usize,
    columns: usize,
    percentile_low: f64,
    percentile_high: f64,
    image_file: String,
    logits: Vec<f32>,
    features_first8: Vec<f32>,
    features_l2: f64,
    without_inversion: Logits,
}

#[derive(Deserialize)]
struct Logits {
    logits: Vec<f32>,
}

fn fixture() -> Fixture {
    let text = std::fs::read_to_string(common::fixture("xception_rg1_uncr.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// RG1_UNCR.dcm's stored pixel values as f32 `[rows, cols]` and its
/// photometric interpretation, read with dicom-object alone (the file is
/// uncompressed explicit VR little endian, 16 bits allocated).
fn radiograph() -> &'static (Vec<f32>, usize, usize, Photometric) {
    static CELL: OnceLock<(Vec<f32>, usize, usize, Photometric)> = OnceLock::new();
    CELL.get_or_init(|| {
        let path = common::repo_root()
            .join(".test-data/dicom/pydicom-data-1.0.0/data_store/data/RG1_UNCR.dcm");
        assert!(
            path.is_file(),
            "{} is missing: run scripts/fetch-test-data",
            path.display()
        );
        let obj = dicom_object::open_file(&path).unwrap();
        let rows = usize::from(obj.element(tags::ROWS).unwrap().to_int::<u16>().unwrap());
        let cols = usize::from(obj.element(tags::COLUMNS).unwrap().to_int::<u16>().unwrap());
        let bits = obj
            .element(tags::BITS_ALLOCATED)
            .unwrap()
            .to_int::<u16>()
            .unwrap();
        assert_eq!(bits, 16);
        let photometric = obj
            .element(tags::PHOTOMETRIC_INTERPRETATION)
            .unwrap()
            .to_str()
            .unwrap();
        let photometric = match photometric.trim() {
            "MONOCHROME1" => Photometric::Monochrome1,
            "MONOCHROME2" => Photometric::Monochrome2,
            other => panic!("unexpected photometric interpretation {other}"),
        };
        let bytes = obj.element(tags::PIXEL_DATA).unwrap().to_bytes().unwrap();
        let pixels: Vec<f32> = bytes[..rows * cols * 2]
            .chunks_exact(2)
            .map(|b| f32::from(u16::from_le_bytes([b[0], b[1]])))
            .collect();
        (pixels, rows, cols, photometric)
    })
}

fn package() -> &'static ModelPackage {
    static CELL: OnceLock<ModelPackage> = OnceLock::new();
    CELL.get_or_init(|| ModelPackage::load(common::fetched_package("pneumonia-xception")).unwrap())
}

fn model() -> &'static XceptionClassifier {
    static CELL: OnceLock<XceptionClassifier> = OnceLock::new();
    CELL.get_or_init(|| XceptionClassifier::from_package(package(), &Device::Cpu).unwrap())
}

fn input(photometric: Photometric) -> (Vec<u8>, f64, f64, Tensor) {
    let (pixels, rows, cols, _) = radiograph();
    let m = package().manifest();
    let (img, t) = preprocess_radiograph(
        pixels,
        *rows,
        *cols,
        photometric,
        m.preprocessing.as_ref().unwrap(),
        &m.input,
        &Device::Cpu,
    )
    .unwrap();
    (img.image, img.low, img.high, t)
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

#[test]
fn preprocessing_reproduces_the_python_image_exactly() {
    let f = fixture();
    let (_, rows, cols, photometric) = radiograph();
    assert_eq!((*rows, *cols), (f.rows, f.columns));
    assert_eq!(*photometric, Photometric::Monochrome1);
    let (image, low, high, tensor) = input(Photometric::Monochrome1);
    assert_eq!((low, high), (f.percentile_low, f.percentile_high));
    let want = std::fs::read(common::fixture(&f.image_file)).unwrap();
    assert_eq!(want.len(), 150 * 150);
    let differing = image.iter().zip(&want).filter(|(a, b)| a != b).count();
    assert_eq!(
        differing, 0,
        "{differing} of 22500 pixels differ from the Python fixture"
    );
    assert_eq!(tensor.dims(), &[1, 3, 150, 150]);
}

#[test]
fn logits_match_keras() {
    let f = fixture();
    let (_, _, _, x) = input(Photometric::Monochrome1);
    let features = model().backbone_features(&x).unwrap();
    assert_eq!(features.dims(), &[1, FEATURES]);
    let feats = features.flatten_all().unwrap().to_vec1::<f32>().unwrap();
    let l2 = feats
        .iter()
        .map(|v| f64::from(*v).powi(2))
        .sum::<f64>()
        .sqrt();
    eprintln!(
        "features[..8] max |Δ| {:.3e}; ‖f‖ {l2:.6} vs {:.6}",
        max_abs(&feats[..8], &f.features_first8),
        f.features_l2
    );
    assert!(max_abs(&feats[..8], &f.features_first8) < 1e-4);
    assert!((l2 - f.features_l2).abs() < 1e-3);
    let logits = model()
        .head(&features, None)
        .unwrap()
        .to_vec2::<f32>()
        .unwrap();
    eprintln!(
        "candle logits {:?}, Keras {:?}, max |Δ| {:.3e}",
        logits[0],
        f.logits,
        max_abs(&logits[0], &f.logits)
    );
    assert!(
        max_abs(&logits[0], &f.logits) < 1e-4,
        "{:?} vs {:?}",
        logits[0],
        f.logits
    );
    // forward = backbone + inference-mode head.
    let direct = model().forward(&x).unwrap().to_vec2::<f32>().unwrap();
    assert!(max_abs(&direct[0], &logits[0]) < 1e-6);
}

#[test]
fn missed_inversion_flips_the_prediction_as_in_keras() {
    let f = fixture();
    let (_, _, _, x) = input(Photometric::Monochrome2);
    let logits = model().forward(&x).unwrap().to_vec2::<f32>().unwrap();
    eprintln!(
        "without inversion: candle {:?}, Keras {:?}",
        logits[0], f.without_inversion.logits
    );
    assert!(max_abs(&logits[0], &f.without_inversion.logits) < 1e-4);
    assert!(
        logits[0][1] > logits[0][0],
        "P(pneumonia) should dominate without inversion"
    );
}

#[test]
fn mc_dropout_opinions_are_seeded() {
    let (_, _, _, x) = input(Photometric::Monochrome1);
    let m = package().manifest();
    let features = model().backbone_features(&x).unwrap();
    let a = image_branch::predict(model(), &features, m, 42).unwrap();
    let b = image_branch::predict(model(), &features, m, 42).unwrap();
    let c = image_branch::predict(model(), &features, m, 43).unwrap();
    assert_eq!(a, b);
    assert_ne!(a[0][0].mean, c[0][0].mean);
    let p = &a[0][0];
    eprintln!(
        "pneumonia: P {:.4}, MC mean {:.4}, var {:.3e}, T {}, evidence ({:.2}, {:.2}), u {:.4}",
        p.probability,
        p.mean,
        p.variance,
        p.passes,
        p.evidence.positive(),
        p.evidence.negative(),
        p.opinion.uncertainty()
    );
    assert_eq!(p.observation, fusion_models::Observation::Pneumonia);
    assert_eq!(p.passes, 20);
    // softmax(logits)[PNEUMONIA] with T = 1: 0.0539 (Keras).
    assert!((p.probability - 0.053_898).abs() < 1e-4);
    assert!(p.variance > 0.0 && p.variance < p.mean * (1.0 - p.mean));
    assert!(p.opinion.disbelief() > p.opinion.belief());
    // Batch composition does not change an image's result (shared masks).
    let two = Tensor::cat(&[&features, &features], 0).unwrap();
    let batched = image_branch::predict(model(), &two, m, 42).unwrap();
    assert_eq!(batched[0], a[0]);
    assert_eq!(batched[1], a[0]);
}
