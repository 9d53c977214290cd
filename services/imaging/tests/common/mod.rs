//! Shared helpers: the real DICOM files fetched by `scripts/fetch-test-data`
//! and their catalogue `tests/data/dicom-catalog.tsv`.
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use std::collections::HashMap;
use std::path::PathBuf;

/// The repository root (two levels above this crate).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// `.test-data/dicom`, or a panic telling how to fetch it.
pub fn data_dir() -> PathBuf {
    let dir = repo_root().join(".test-data/dicom");
    assert!(
        dir.join("pydicom-3.0.2/test_files/CT_small.dcm").is_file(),
        "the DICOM test files are missing from {}: run scripts/fetch-test-data from the repository root",
        dir.display()
    );
    dir
}

/// Reads one test file by its catalogue path.
pub fn read(file: &str) -> Vec<u8> {
    let path = data_dir().join(file);
    std::fs::read(&path).unwrap_or_else(|e| {
        panic!(
            "cannot read {}: {e}; run scripts/fetch-test-data",
            path.display()
        )
    })
}

/// One catalogue row, columns by name.
pub struct Row(pub HashMap<String, String>);

impl Row {
    pub fn get(&self, column: &str) -> &str {
        self.0.get(column).map(String::as_str).unwrap_or("")
    }
}

/// All rows of tests/data/dicom-catalog.tsv.
pub fn catalogue() -> Vec<Row> {
    let text = std::fs::read_to_string(repo_root().join("tests/data/dicom-catalog.tsv"))
        .expect("tests/data/dicom-catalog.tsv");
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header: Vec<&str> = lines.next().expect("header").split('\t').collect();
    lines
        .map(|line| {
            Row(header
                .iter()
                .zip(line.split('\t').chain(std::iter::repeat("")))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect())
        })
        .collect()
}
