//! Model packages: the shipped manifests parse, validate against
//! `schemas/model-package.schema.json` and agree with the Rust types key by
//! key; loading verifies checksums and refuses broken packages with typed
//! errors that name the file or key.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::path::{Path, PathBuf};

use fusion_models::package::{
    self, ClassOutput, FileRole, McDropout, Modality, ModelPackage, Observation, OutputSpec,
    PackageError, UncertaintyMethod, default_packages_dir,
};
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

const SHIPPED: [&str; 3] = ["minilm-l6-v2", "openi-report-heads", "pneumonia-xception"];

fn manifest_value(name: &str) -> Value {
    let text = fs::read_to_string(default_packages_dir().join(name).join("manifest.toml")).unwrap();
    toml::from_str(&text).unwrap()
}

fn schema() -> Value {
    let text =
        fs::read_to_string(common::repo_root().join("schemas/model-package.schema.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Parses a manifest given as JSON data through the Rust types (via TOML).
fn rust_accepts(v: &Value) -> Result<(), PackageError> {
    let text = toml::to_string(v).unwrap();
    package::Manifest::from_toml(&text, Path::new("manifest.toml")).map(|_| ())
}

/// Every violation of `schemas/model-package.schema.json` by `v`, as
/// `instance path: message` (the `jsonschema` crate, draft 2020-12).
fn schema_errors(v: &Value) -> Vec<String> {
    common::schema::errors(&schema(), v)
}

// ---- shipped manifests

#[test]
fn shipped_manifests_parse_and_validate_against_the_schema() {
    for name in SHIPPED {
        let v = manifest_value(name);
        assert_eq!(schema_errors(&v), Vec::<String>::new(), "{name}");
        let m = ModelPackage::read_manifest(default_packages_dir().join(name)).unwrap();
        assert_eq!(m.name, name);
        // Serialising the Rust manifest yields a document the schema accepts too.
        let round = serde_json::to_value(&m).unwrap();
        assert_eq!(
            schema_errors(&round),
            Vec::<String>::new(),
            "{name} round trip"
        );
    }
}

#[test]
fn pneumonia_manifest_says_what_the_model_card_says() {
    let m = ModelPackage::read_manifest(default_packages_dir().join("pneumonia-xception")).unwrap();
    assert_eq!(m.modality, Modality::Image);
    assert_eq!(
        m.output,
        OutputSpec::Softmax(ClassOutput {
            classes: vec!["NORMAL".into(), "PNEUMONIA".into()]
        })
    );
    assert_eq!(m.labels.len(), 1);
    assert_eq!(m.labels[0].observation, Observation::Pneumonia);
    assert_eq!(m.labels[0].output, 1);
    assert!(matches!(
        m.uncertainty,
        UncertaintyMethod::McDropout(McDropout { passes: 20, .. })
    ));
    let age = m.intended_use.age_years.unwrap();
    assert!(age.contains(3.0) && !age.contains(45.0));
    assert_eq!(m.intended_use.modalities, ["CR", "DX"]);
    assert_eq!(m.intended_use.views, ["PA", "AP"]);
    assert!(!m.intended_use.validated_for_clinical_use);
    assert!(!m.source.redistributable);
    assert_eq!(m.weights().unwrap().role, FileRole::Weights);
}

/// For every key of every object in the shipped manifests: the Rust types
/// require it exactly when the schema does, and both refuse an unknown key.
#[test]
fn schema_and_rust_types_agree_key_by_key() {
    fn paths(v: &Value, prefix: Vec<PathStep>, out: &mut Vec<Vec<PathStep>>) {
        match v {
            Value::Object(o) => {
                out.push(prefix.clone()); // the object itself: add an unknown key
                for (k, child) in o {
                    let mut p = prefix.clone();
                    p.push(PathStep::Key(k.clone()));
                    out.push(p.clone());
                    paths(child, p, out);
                }
            }
            Value::Array(a) => {
                if let Some(first) = a.first() {
                    let mut p = prefix;
                    p.push(PathStep::Index(0));
                    paths(first, p, out);
                }
            }
            _ => {}
        }
    }
    let mut checked = 0;
    for name in SHIPPED {
        let base = manifest_value(name);
        let mut all = Vec::new();
        paths(&base, Vec::new(), &mut all);
        for path in all {
            let mut v = base.clone();
            let what = match path.last() {
                Some(PathStep::Key(k)) => {
                    parent_object(&mut v, &path[..path.len() - 1]).remove(k);
                    format!("without {}", show(&path))
                }
                _ => {
                    let obj = parent_object(&mut v, &path);
                    obj.insert("unexpected_key".into(), json!(1));
                    format!("unknown key in {}", show(&path))
                }
            };
            let schema_ok = schema_errors(&v).is_empty();
            let rust = rust_accepts(&v);
            // The Rust checks are stricter than JSON Schema can express in a
            // few cross-field cases (e.g. an image package needs
            // `preprocessing`); those must still be refused by Rust.
            if schema_ok {
                assert!(
                    rust.is_ok() || matches!(rust, Err(PackageError::Invalid { .. })),
                    "{name} {what}: schema accepts, Rust refuses: {rust:?}"
                );
            } else {
                assert!(rust.is_err(), "{name} {what}: schema refuses, Rust accepts");
            }
            checked += 1;
        }
    }
    assert!(checked > 80, "only {checked} mutations checked");
}

#[derive(Clone, Debug)]
enum PathStep {
    Key(String),
    Index(usize),
}

fn show(path: &[PathStep]) -> String {
    path.iter()
        .map(|s| match s {
            PathStep::Key(k) => format!(".{k}"),
            PathStep::Index(i) => format!("[{i}]"),
        })
        .collect()
}

fn parent_object<'a>(v: &'a mut Value, path: &[PathStep]) -> &'a mut Map<String, Value> {
    let mut cur = v;
    for step in path {
        cur = match step {
            PathStep::Key(k) => cur.get_mut(k).unwrap(),
            PathStep::Index(i) => cur.get_mut(*i).unwrap(),
        };
    }
    cur.as_object_mut().unwrap()
}

#[test]
fn bad_values_are_refused_by_both_naming_the_key() {
    let base = manifest_value("pneumonia-xception");
    let cases = [
        ("files[0].sha256", "/files/0/sha256", json!("ABC")),
        ("files[0].path", "/files/0/path", json!("../escape.bin")),
        (
            "labels[0].observation",
            "/labels/0/observation",
            json!("Pneumonia"),
        ),
        ("labels[0].output", "/labels/0/output", json!("one")),
        ("uncertainty.passes", "/uncertainty/passes", json!(1)),
        ("abstain.max_conflict", "/abstain/max_conflict", json!(1.5)),
        ("name", "/name", json!("Pneumonia Xception")),
        ("schema_version", "/schema_version", json!(2)),
    ];
    for (key, pointer, bad) in cases {
        let mut v = base.clone();
        *v.pointer_mut(pointer).unwrap() = bad;
        // The schema refuses it at the key or at a section holding it.
        let errors = common::schema::error_paths(&schema(), &v);
        assert!(
            errors
                .iter()
                .any(|(path, _)| pointer.starts_with(path.as_str())),
            "schema: bad {key} not refused at {pointer}: {errors:?}"
        );
        let err = rust_accepts(&v).unwrap_err();
        let (PackageError::Malformed { key: k, .. } | PackageError::Invalid { key: k, .. }) = &err
        else {
            panic!("{key}: unexpected error {err:?}")
        };
        // serde reports the innermost key it was reading (`abstain` for a value
        // its own constructor refuses); our checks report the full path.
        assert!(
            key.starts_with(k.as_str()) || k.starts_with(key),
            "{key}: error names {k:?}: {err}"
        );
        eprintln!("{key}: {err}");
    }
    // An output index beyond the classes is a cross-field check (Rust only).
    let mut v = base;
    v["labels"][0]["output"] = json!(2);
    let err = rust_accepts(&v).unwrap_err();
    assert!(
        matches!(&err, PackageError::Invalid { key, .. } if key == "labels[0].output"),
        "{err}"
    );
}

// ---- loading and verification on a synthetic package

fn synthetic_package(dir: &Path) -> PathBuf {
    let pkg = dir.join("tiny");
    fs::create_dir_all(pkg.join("sub")).unwrap();
    fs::write(pkg.join("model.safetensors"), b"weights").unwrap();
    fs::write(pkg.join("sub/tokenizer.json"), b"{}").unwrap();
    let mut v = manifest_value("minilm-l6-v2");
    v["name"] = json!("tiny");
    v["input"]["tokenizer"] = json!("sub/tokenizer.json");
    let file = |path: &str, role: &str, bytes: &[u8]| json!({"path": path, "role": role, "sha256": hex::encode(Sha256::digest(bytes)), "size": bytes.len()});
    v["files"] = json!([
        file("model.safetensors", "weights", b"weights"),
        file("sub/tokenizer.json", "tokenizer", b"{}"),
    ]);
    fs::write(pkg.join("manifest.toml"), toml::to_string(&v).unwrap()).unwrap();
    pkg
}

#[test]
fn load_verifies_every_file() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = synthetic_package(tmp.path());
    let loaded = ModelPackage::load(&pkg).unwrap();
    assert_eq!(loaded.files().len(), 2);
    assert_eq!(loaded.manifest_sha256().len(), 64);
    assert_eq!(loaded.read_weights().unwrap(), b"weights");
    assert_eq!(package::verify(&pkg).unwrap(), loaded.files());
    assert!(matches!(
        loaded.read_verified("config.json"),
        Err(PackageError::Unlisted { .. })
    ));

    // Same size, different bytes: a checksum mismatch naming both hashes.
    fs::write(pkg.join("model.safetensors"), b"WEIGHTS").unwrap();
    let err = ModelPackage::load(&pkg).unwrap_err();
    let msg = err.to_string();
    let PackageError::ChecksumMismatch {
        path,
        expected,
        actual,
    } = &err
    else {
        panic!("{err:?}")
    };
    assert!(path.ends_with("model.safetensors"));
    assert_eq!(expected, &hex::encode(Sha256::digest(b"weights")));
    assert_eq!(actual, &hex::encode(Sha256::digest(b"WEIGHTS")));
    assert!(msg.contains(expected) && msg.contains(actual) && msg.contains("model.safetensors"));
    // The already-loaded package re-checks on read.
    assert!(matches!(
        loaded.read_weights(),
        Err(PackageError::ChecksumMismatch { .. })
    ));

    fs::write(pkg.join("model.safetensors"), b"weights!").unwrap();
    assert!(matches!(
        ModelPackage::load(&pkg),
        Err(PackageError::SizeMismatch {
            expected: 7,
            actual: 8,
            ..
        })
    ));

    fs::remove_file(pkg.join("sub/tokenizer.json")).unwrap();
    fs::write(pkg.join("model.safetensors"), b"weights").unwrap();
    let err = ModelPackage::load(&pkg).unwrap_err();
    assert!(matches!(err, PackageError::MissingFile { .. }), "{err:?}");
    assert!(
        err.to_string().contains("run scripts/fetch-models"),
        "{err}"
    );
    assert!(err.to_string().contains("tokenizer.json"), "{err}");
}

#[test]
fn malformed_manifests_name_the_key() {
    let tmp = tempfile::tempdir().unwrap();
    let pkg = synthetic_package(tmp.path());
    let text = fs::read_to_string(pkg.join("manifest.toml")).unwrap();

    fs::write(
        pkg.join("manifest.toml"),
        text.replace("max_tokens = 256", "max_tokens = \"many\""),
    )
    .unwrap();
    let err = ModelPackage::load(&pkg).unwrap_err();
    assert!(
        matches!(&err, PackageError::Malformed { key, .. } if key == "input.max_tokens"),
        "{err}"
    );

    fs::write(
        pkg.join("manifest.toml"),
        text.replace("[abstain]", "[abstain]\nmax_uncertanity = 0.3"),
    )
    .unwrap();
    let err = ModelPackage::load(&pkg).unwrap_err();
    assert!(err.to_string().contains("max_uncertanity"), "{err}");

    fs::write(pkg.join("manifest.toml"), "name = ").unwrap();
    assert!(matches!(
        ModelPackage::load(&pkg),
        Err(PackageError::Malformed { .. })
    ));

    fs::remove_file(pkg.join("manifest.toml")).unwrap();
    assert!(matches!(
        ModelPackage::load(&pkg),
        Err(PackageError::NoManifest { .. })
    ));
}

#[test]
fn list_finds_the_shipped_packages_and_reports_broken_ones() {
    let found = package::list(default_packages_dir()).unwrap();
    let names: Vec<String> = found
        .iter()
        .map(|p| p.manifest.as_ref().unwrap().name.clone())
        .collect();
    for name in SHIPPED {
        assert!(names.contains(&name.to_owned()), "{names:?}");
    }

    let tmp = tempfile::tempdir().unwrap();
    synthetic_package(tmp.path());
    fs::create_dir_all(tmp.path().join("broken")).unwrap();
    fs::write(
        tmp.path().join("broken/manifest.toml"),
        "schema_version = 1",
    )
    .unwrap();
    fs::create_dir_all(tmp.path().join("not-a-package")).unwrap();
    let found = package::list(tmp.path()).unwrap();
    assert_eq!(found.len(), 2);
    assert!(found[0].dir.ends_with("broken") && found[0].manifest.is_err());
    assert!(found[1].dir.ends_with("tiny") && found[1].manifest.is_ok());
}

#[test]
fn fetched_packages_verify() {
    for name in SHIPPED {
        let dir = common::fetched_package(name);
        let pkg = ModelPackage::load(&dir).unwrap();
        assert_eq!(pkg.files().len(), pkg.manifest().files.len());
    }
}

#[test]
fn fetch_script_pins_the_manifests_converted_weights() {
    let script = fs::read_to_string(common::repo_root().join("scripts/fetch-models")).unwrap();
    let m = ModelPackage::read_manifest(default_packages_dir().join("pneumonia-xception")).unwrap();
    let pin = format!(
        "XCEPTION_SAFETENSORS_SHA256={}",
        m.file("model.safetensors").unwrap().sha256
    );
    assert!(script.contains(&pin), "scripts/fetch-models lacks {pin}");
    // The source .keras hash is pinned in the fetch script and the converter.
    let keras = &m.source.converted_from.as_ref().unwrap().sha256;
    assert!(script.contains(keras.as_str()));
    let converter =
        fs::read_to_string(common::repo_root().join("models/convert/convert_xception.py")).unwrap();
    assert!(converter.contains(keras.as_str()));
}
