//! Tiny model packages whose outputs are computed by hand, written into a
//! temporary folder by the tests:
//!
//! * `tiny-image`: architecture `mean_logistic`, 4×4 grey input, softmax
//!   NORMAL/PNEUMONIA with weight (0, 0) and bias (0, ln(7/3)), so the
//!   binary logit is ln(7/3) whatever the image and P(pneumonia) = 0.7;
//!   uncertainty `none` with max_evidence 8 → S = 10, α = 7, β = 3,
//!   e = (6, 2) → opinion (0.6, 0.2, 0.2). Intended use CR/DX chest PA/AP,
//!   ages 1–5, older patients discounted to trust 0.2. Abstains at u > 0.5
//!   or C > 0.4.
//! * `tiny-text`: mention labels only (zero-shot disabled, so the encoder
//!   files are verified but never built: they are placeholders), weights
//!   positive 8, negative 8, uncertain 1 → (0.8, 0, 0.2), (0, 0.8, 0.2),
//!   (0.25, 0.25, 0.5).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::fs;
use std::path::Path;

use candle_core::{Device, Tensor};
use sha2::{Digest, Sha256};

fn file_entry(dir: &Path, path: &str, role: &str) -> String {
    let bytes = fs::read(dir.join(path)).unwrap();
    format!(
        "[[files]]\npath = \"{path}\"\nrole = \"{role}\"\nsha256 = \"{}\"\nsize = {}\n",
        hex::encode(Sha256::digest(&bytes)),
        bytes.len()
    )
}

const SOURCE: &str = r#"[source]
fetch = "written by the test"
registry = "pypi"
package = "none==0"
wheel_sha256 = "0000000000000000000000000000000000000000000000000000000000000000"
licence = "Apache-2.0"
redistributable = true
"#;

/// Writes `tiny-image` into `root/tiny-image` with the given bias for the
/// PNEUMONIA output (ln(7/3) for the hand-computed cases).
pub fn write_image_package(root: &Path, pneumonia_bias: f32) {
    let dir = root.join("tiny-image");
    fs::create_dir_all(&dir).unwrap();
    let mut tensors = HashMap::new();
    tensors.insert(
        "weight".to_owned(),
        Tensor::new(&[0.0_f32, 0.0], &Device::Cpu).unwrap(),
    );
    tensors.insert(
        "bias".to_owned(),
        Tensor::new(&[0.0_f32, pneumonia_bias], &Device::Cpu).unwrap(),
    );
    candle_core::safetensors::save(&tensors, dir.join("model.safetensors")).unwrap();
    let manifest = format!(
        r#"schema_version = 1
name = "tiny-image"
version = "1.0.0"
description = "mean-logistic test model"
modality = "image"
architecture = "mean_logistic"

[input]
kind = "image"
width = 4
height = 4
channels = 1
interpolation = "nearest"
normalisation = {{ mean = 0.0, std = 255.0 }}

[preprocessing]
lower_percentile = 0.0
upper_percentile = 100.0
invert_monochrome1 = true
bit_depth = 8
grey_to_rgb = false

[output]
kind = "softmax"
classes = ["NORMAL", "PNEUMONIA"]

[[labels]]
observation = "pneumonia"
output = 1

[uncertainty]
method = "none"
max_evidence = 8.0

[abstain]
max_uncertainty = 0.5
max_conflict = 0.4

[intended_use]
summary = "test"
validated_for_clinical_use = false
modalities = ["CR", "DX"]
body_parts = ["CHEST"]
views = ["PA", "AP"]
age_years = {{ min = 1.0, max = 5.0 }}
photometric_interpretations = ["MONOCHROME1", "MONOCHROME2"]
out_of_range_age = {{ action = "discount", trust = 0.2 }}

{SOURCE}
{}"#,
        file_entry(&dir, "model.safetensors", "weights")
    );
    fs::write(dir.join("manifest.toml"), manifest).unwrap();
}

/// Writes `tiny-text` into `root/tiny-text`.
pub fn write_text_package(root: &Path) {
    let dir = root.join("tiny-text");
    fs::create_dir_all(&dir).unwrap();
    // Placeholders: zero-shot is disabled, so no encoder is built from them.
    fs::write(dir.join("model.safetensors"), b"unused placeholder").unwrap();
    fs::write(dir.join("tokenizer.json"), b"{}").unwrap();
    let manifest = format!(
        r#"schema_version = 1
name = "tiny-text"
version = "1.0.0"
description = "mention labels only"
modality = "text"
architecture = "bert"

[input]
kind = "text"
tokenizer = "tokenizer.json"
max_tokens = 256
chunk_stride = 192

[output]
kind = "embedding"
dimension = 384
pooling = "mean"
normalize = true

[uncertainty]
method = "none"
max_evidence = 100.0

[abstain]
max_uncertainty = 0.8
max_conflict = 0.5

[text_evidence]
positive = 8.0
negative = 8.0
uncertain = 1.0

[zero_shot]
enabled = false
scale = 20.0
weight = 2.0
min_similarity = 0.5

[intended_use]
summary = "test"
validated_for_clinical_use = false
languages = ["en"]

{SOURCE}
{}
{}"#,
        file_entry(&dir, "model.safetensors", "weights"),
        file_entry(&dir, "tokenizer.json", "tokenizer")
    );
    fs::write(dir.join("manifest.toml"), manifest).unwrap();
}

/// Both tiny packages in a fresh temporary folder.
pub fn packages() -> tempfile::TempDir {
    let root = tempfile::tempdir().unwrap();
    write_image_package(root.path(), (7.0_f32 / 3.0).ln());
    write_text_package(root.path());
    root
}
