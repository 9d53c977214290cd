//! Validation against the repository's JSON Schemas (`schemas/*.schema.json`,
//! draft 2020-12) by the `jsonschema` crate. The schemas refer only to their
//! own `$defs`, so nothing is fetched.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use serde_json::Value;

/// `schemas/<name>` parsed.
pub fn load(name: &str) -> Value {
    let text = std::fs::read_to_string(super::repo_root().join("schemas").join(name)).unwrap();
    serde_json::from_str(&text).unwrap()
}

/// Every violation of `schema` by `v`, as `instance path: message`, the
/// path a JSON Pointer (`/branches/image/status`; empty for the root).
pub fn errors(schema: &Value, v: &Value) -> Vec<String> {
    error_paths(schema, v)
        .into_iter()
        .map(|(path, message)| format!("{path}: {message}"))
        .collect()
}

/// Every violation of `schema` by `v`, as (instance path, message).
pub fn error_paths(schema: &Value, v: &Value) -> Vec<(String, String)> {
    let validator = jsonschema::draft202012::new(schema).expect("the schema compiles");
    validator
        .iter_errors(v)
        .map(|e| (e.instance_path().to_string(), e.to_string()))
        .collect()
}
