//! The FHIR R4 audit export against the specification's invariants (issue
//! #15, item 14), checked by Medplum's validator (@medplum/core
//! `validateResource`, which evaluates the FHIRPath constraints of the R4
//! StructureDefinitions) as well as by the pydantic models of
//! `fhir.resources`:
//!
//! - Bundle (FHIR R4 §2.36) bdl-1: `total` only on a searchset or history,
//!   so none on our `collection` (before: `"total": n`, refused by bdl-1);
//!   bdl-7: each `fullUrl` unique; bdl-8: no version-specific `fullUrl`;
//!   `fullUrl` an absolute URI, here `urn:uuid:` (§2.36.4.1);
//! - our extension and code-system URLs are `urn:oid:` under our own OID,
//!   not on an example domain (before: `https://fusion.example.org/fhir/…`).
//!
//! A negative control shows the validator does check invariants: the same
//! Bundle with a `total`, or with a duplicated entry, is refused with bdl-1
//! and bdl-7.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use fusion_app::audit_export::{CS_AUDIT_SUBTYPE, EXT_AUDIT_SEQ, OID_ROOT};
use fusion_schemas::Role;
use fusion_tests::{TestApp, repo_root, run_tool_async, spawn_app};
use serde_json::Value;

/// Runs tests/tools/validate_fhir_invariants.cjs on `files`: (success,
/// output).
async fn medplum_validate(files: &[&std::path::Path]) -> (bool, String) {
    let dir = repo_root().join(".test-data/medplum");
    assert!(
        dir.join("node_modules/@medplum/core/package.json").exists(),
        "run scripts/fetch-fhir-validator (scripts/setup does)"
    );
    let files: Vec<std::path::PathBuf> = files.iter().map(|f| f.to_path_buf()).collect();
    // Off the runtime: the app keeps serving on it meanwhile.
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("node")
            .arg(repo_root().join("tests/tools/validate_fhir_invariants.cjs"))
            .args(&files)
            .output()
            .expect("node (scripts/setup installs npm)")
    })
    .await
    .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Logins, a refused login, a key, a refused key, a note: events with
/// agents, patients and entities of every kind the export writes.
async fn activity(app: &TestApp) {
    let token = app.session_for("dr.grey", Role::Clinician).await;
    app.client
        .get(app.url("/auth/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(app.login("dr.grey", "wrong password!").await.status(), 401);
    let (id, secret) = app.api_key("ehr", Role::Integration).await;
    let res = app
        .client
        .post(app.url("/notes?patient_id=TP-5101&accession_number=ACC-5101"))
        .basic_auth(&id, Some(&secret))
        .header("content-type", "text/plain; charset=utf-8")
        .body("FINDINGS:\nNo pleural effusion.\n")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    app.client
        .get(app.url("/auth/me"))
        .basic_auth(&id, Some("not the secret"))
        .send()
        .await
        .unwrap();
}

async fn export(app: &TestApp, token: &str, format: &str) -> String {
    let res = app
        .client
        .get(app.url(&format!("/audit/events?format={format}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{format}");
    res.text().await.unwrap()
}

/// Every `url` of an extension and `system` of a coding, anywhere in `v`.
fn urls(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, x) in map {
                if let (true, Some(s)) = (matches!(k.as_str(), "url" | "system"), x.as_str()) {
                    out.push(s.to_owned());
                }
                urls(x, out);
            }
        }
        Value::Array(items) => items.iter().for_each(|x| urls(x, out)),
        _ => {}
    }
}

#[tokio::test]
async fn the_audit_bundle_and_ndjson_keep_the_fhir_r4_invariants() {
    let app = spawn_app().await;
    activity(&app).await;
    let auditor = app.session_for("compliance", Role::Auditor).await;
    let bundle_text = export(&app, &auditor, "fhir").await;
    let ndjson = export(&app, &auditor, "ndjson").await;
    let dir = app.data_dir.path();
    let (bundle_file, ndjson_file) = (dir.join("bundle.json"), dir.join("events.ndjson"));
    std::fs::write(&bundle_file, &bundle_text).unwrap();
    std::fs::write(&ndjson_file, &ndjson).unwrap();

    // Medplum: the Bundle, and each NDJSON line (AuditEvents, Parameters).
    let lines = ndjson.lines().filter(|l| !l.trim().is_empty()).count();
    let (ok, out) = medplum_validate(&[&bundle_file, &ndjson_file]).await;
    assert!(ok, "Medplum refused the export:\n{out}");
    assert_eq!(out.trim(), format!("valid {} resources", 1 + lines));
    // fhir.resources too.
    let (ok, out) = run_tool_async(
        "validate_fhir.py",
        &["bundle", bundle_file.to_str().unwrap()],
    )
    .await;
    assert!(ok, "{out}");

    let bundle: Value = serde_json::from_str(&bundle_text).unwrap();
    assert_eq!(bundle["type"], "collection");
    assert!(bundle.get("total").is_none(), "bdl-1: {bundle:#}");
    let entries = bundle["entry"].as_array().unwrap();
    assert!(entries.len() >= 8, "{bundle:#}");
    let mut full_urls: Vec<&str> = entries
        .iter()
        .map(|e| e["fullUrl"].as_str().unwrap())
        .collect();
    for u in &full_urls {
        let id = u.strip_prefix("urn:uuid:").unwrap();
        assert_eq!(uuid::Uuid::parse_str(id).unwrap().to_string(), id, "{u}");
    }
    full_urls.sort_unstable();
    full_urls.dedup();
    assert_eq!(full_urls.len(), entries.len(), "bdl-7: fullUrl unique");

    // Extension and code-system URLs: absolute, ours under our OID, none
    // on an example domain.
    let mut all = Vec::new();
    urls(&bundle, &mut all);
    for u in &all {
        assert!(!u.contains("example"), "{u}");
        assert!(
            u.starts_with("http://") || u.starts_with("https://") || u.starts_with("urn:"),
            "{u}"
        );
        if u.starts_with("urn:oid:2.25.") {
            assert!(u.starts_with(&format!("urn:oid:{OID_ROOT}.")), "{u}");
        }
    }
    let first = &entries[0]["resource"];
    assert_eq!(first["subtype"][0]["system"], CS_AUDIT_SUBTYPE);
    assert!(
        first["extension"]
            .as_array()
            .unwrap()
            .iter()
            .any(|x| x["url"] == EXT_AUDIT_SEQ && x["valueInteger"] == 1)
    );

    // The negative control: the validator checks the invariants.
    let mut with_total = bundle.clone();
    with_total["total"] = entries.len().into();
    let mut duplicated = bundle.clone();
    duplicated["entry"]
        .as_array_mut()
        .unwrap()
        .push(entries[0].clone());
    for (name, broken, rule) in [
        ("total.json", with_total, "bdl-1"),
        ("duplicated.json", duplicated, "bdl-7"),
    ] {
        let file = dir.join(name);
        std::fs::write(&file, serde_json::to_vec(&broken).unwrap()).unwrap();
        let (ok, out) = medplum_validate(&[&file]).await;
        assert!(!ok && out.contains(rule), "{rule}: {out}");
    }
}
