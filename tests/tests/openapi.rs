//! The OpenAPI 3.1 description (issue #15, item 15): `GET /openapi.json`
//! answers without credentials, is the checked-in `schemas/openapi.json`,
//! documents exactly the routes the application serves with the access the
//! route table gives them, and passes an independent validator
//! (openapi-spec-validator from PyPI).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeSet;

use fusion_api::openapi::template;
use fusion_api::route_table::{Access, table};
use fusion_tests::{repo_root, run_tool_async, spawn_app};
use serde_json::Value;

#[tokio::test]
async fn the_served_document_is_the_checked_in_one_and_covers_every_route() {
    let app = spawn_app().await;
    let res = app.get("/openapi.json").await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "application/json");
    let body = res.text().await.unwrap();
    let file = std::fs::read_to_string(repo_root().join("schemas/openapi.json")).unwrap();
    assert!(
        body == file,
        "schemas/openapi.json is not what the service serves: regenerate it (README, API description)"
    );

    let doc: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(doc["openapi"], "3.1.0");
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert(format!("{} {path}", method.to_ascii_uppercase()));
        }
    }
    let routed: BTreeSet<String> = table()
        .iter()
        .map(|r| format!("{} {}", r.method, template(r.path)))
        .collect();
    assert_eq!(documented, routed, "routes and operations differ");

    // Access as the route table says, route by route.
    for route in table() {
        let op = &doc["paths"][template(route.path)][route.method.as_str().to_ascii_lowercase()];
        match route.access {
            Access::Public => {
                assert_eq!(op["security"], serde_json::json!([]), "{}", route.path);
            }
            Access::Any(_) | Access::Page(_) => {
                let roles = op["x-fusion-roles"].as_array().unwrap();
                assert!(!roles.is_empty(), "{} {}", route.method, route.path);
                assert!(op["responses"]["401"].is_object(), "{}", route.path);
                assert!(op["responses"]["403"].is_object(), "{}", route.path);
            }
        }
        // Every JSON error answer refers to the error body (but /readyz's
        // 503, which is its Readiness report).
        for (status, response) in op["responses"].as_object().unwrap() {
            if status.starts_with('4') || status.starts_with('5') {
                let json = &response["content"]["application/json"]["schema"]["$ref"];
                let expected = if route.path == "/readyz" && status == "503" {
                    "#/components/schemas/Readiness"
                } else {
                    "#/components/schemas/ErrorBody"
                };
                if !json.is_null() {
                    assert_eq!(json, expected, "{} {}", route.method, route.path);
                }
            }
        }
    }
    let audit = &doc["paths"]["/audit/events"]["get"];
    assert_eq!(audit["x-fusion-roles"], serde_json::json!(["auditor"]));
    let params: Vec<&str> = audit["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        params,
        [
            "from", "to", "patient", "agent", "action", "outcome", "limit", "format"
        ]
    );

    // An independent validator.
    let path = app.data_dir.path().join("openapi.json");
    std::fs::write(&path, &body).unwrap();
    let (ok, out) = run_tool_async("validate_openapi.py", &[path.to_str().unwrap()]).await;
    assert!(ok, "{out}");
    assert_eq!(
        out.trim(),
        format!("valid OpenAPI 3.1.0, {} operations", routed.len())
    );
}
