//! `fusion models list|verify` and `fusion calibrate` as an operator runs
//! them, on the committed tiny package
//! (models/fusion-models/tests/fixtures/tiny-image) and catalogue DICOM files
//! (`scripts/fetch-test-data`).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const FUSION: &str = env!("CARGO_BIN_EXE_fusion");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .unwrap()
        .to_path_buf()
}

/// A data folder of this test process (the audit trail of `calibrate`).
fn data_dir() -> PathBuf {
    std::env::temp_dir().join(format!("fusion-cli-models-{}", std::process::id()))
}

fn fusion(args: &[&str]) -> Output {
    Command::new(FUSION)
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("FUSION_DATA_DIR", data_dir())
        .output()
        .unwrap()
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

/// A copy of the tiny package in `root/tiny-image`.
fn tiny_package(root: &Path) -> PathBuf {
    let src = repo().join("models/fusion-models/tests/fixtures/tiny-image");
    let dst = root.join("tiny-image");
    std::fs::create_dir_all(&dst).unwrap();
    for f in ["manifest.toml", "model.safetensors"] {
        std::fs::copy(src.join(f), dst.join(f)).unwrap();
    }
    dst
}

#[test]
fn list_and_verify() {
    let root = tempfile::tempdir().unwrap();
    let pkg = tiny_package(root.path());
    let o = fusion(&["models", "list", root.path().to_str().unwrap()]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert_eq!(out.trim(), "tiny-image\t1.0.0\timage\tok");

    let o = fusion(&["models", "verify", pkg.to_str().unwrap()]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert_eq!(
        out.trim(),
        "verified 1 package(s), 1 file(s), 144 bytes: every SHA-256 matches"
    );

    // Same size, different bytes: exit 1 naming the file and both hashes.
    let weights = pkg.join("model.safetensors");
    let mut bytes = std::fs::read(&weights).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&weights, &bytes).unwrap();
    let o = fusion(&["models", "verify", root.path().to_str().unwrap()]);
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}{err}");
    assert!(
        err.contains("model.safetensors: SHA-256 mismatch: manifest says "),
        "{err}"
    );
    assert!(err.contains(", file has "), "{err}");
    let o = fusion(&["models", "list", root.path().to_str().unwrap()]);
    assert!(text(&o).0.contains("\tfailed: "), "{:?}", text(&o));
}

#[test]
fn calibrate_round_trip() {
    let data = repo().join(".test-data/dicom");
    let files = [
        "pydicom-3.0.2/test_files/CT_small.dcm",
        "pydicom-3.0.2/test_files/MR_small.dcm",
        "pydicom-3.0.2/test_files/MR_small_bigendian.dcm",
        "pydicom-3.0.2/test_files/MR_small_RLE.dcm",
        "pydicom-3.0.2/test_files/JPEG2000.dcm",
        "pydicom-data-1.0.0/data_store/data/RG1_UNCR.dcm",
    ];
    for f in files {
        assert!(
            data.join(f).is_file(),
            "{f} is missing: run scripts/fetch-test-data"
        );
    }
    let root = tempfile::tempdir().unwrap();
    let pkg = tiny_package(root.path());
    let csv = root.path().join("labelled.csv");
    // 24 rows (each file 4 times, labels mixed): n = 24 allows a finite
    // 90% conformal quantile (⌈25 · 0.9⌉ = 23 ≤ 24).
    let mut rows = String::from("path,observation,label\n");
    for i in 0..24 {
        let f = data.join(files[i % files.len()]);
        rows.push_str(&format!(
            "{},pneumonia,{}\n",
            f.display(),
            u8::from(i % 3 == 0)
        ));
    }
    std::fs::write(&csv, rows).unwrap();
    let before = std::fs::read_to_string(pkg.join("manifest.toml")).unwrap();

    let o = fusion(&["calibrate", pkg.to_str().unwrap(), csv.to_str().unwrap()]);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}{err}");
    assert!(out.contains("pneumonia"), "{out}");
    assert!(out.contains("q̂ = "), "{out}");
    assert!(out.contains("package verifies"), "{out}");
    // The change is in the audit trail.
    let audit = fusion(&["audit", "export", "--format", "json"]);
    let (audit_out, _) = text(&audit);
    assert!(audit_out.contains("model-package-calibrate"), "{audit_out}");

    let after = std::fs::read_to_string(pkg.join("manifest.toml")).unwrap();
    assert_ne!(before, after);
    // The rest of the file is kept, comments included.
    assert!(after.starts_with("# A tiny hand-set image package"));
    assert!(after.contains("out_of_range_age = { action = \"discount\", trust = 0.2 }"));
    let doc: toml_edit::DocumentMut = after.parse().unwrap();
    let label = &doc["labels"][0];
    let t = label["calibration"]["temperature"].as_float().unwrap();
    assert!(t > 0.0 && (t - 1.0).abs() > 1e-6, "T = {t}");
    assert_eq!(label["conformal"]["n"].as_integer(), Some(24));
    assert!((label["conformal"]["alpha"].as_float().unwrap() - 0.1).abs() < 1e-12);
    // It still verifies, and a second run starts from the fitted T.
    let o = fusion(&["models", "verify", pkg.to_str().unwrap()]);
    assert!(o.status.success(), "{:?}", text(&o));
    let o = fusion(&[
        "calibrate",
        "--dry-run",
        pkg.to_str().unwrap(),
        csv.to_str().unwrap(),
    ]);
    let (out, _) = text(&o);
    assert!(o.status.success());
    assert!(out.contains(&format!("{t:>8.4}")), "{out}");

    // A label that is not 0/1 is refused with the line.
    std::fs::write(&csv, "path,observation,label\nx.dcm,pneumonia,2\n").unwrap();
    let o = fusion(&["calibrate", pkg.to_str().unwrap(), csv.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(
        text(&o).1.contains("labelled.csv:2: label 2 is not 0 or 1"),
        "{:?}",
        text(&o)
    );
}
