//! Every dashboard template renders with real data (issue #13): the pages
//! are asked for through the running application, as a browser would, with
//! data stored the way the service stores it (a CR image over STOW-RS, a
//! report over `POST /notes`, a fused prediction from the installed model
//! packages, a review, the audit trail they leave). The template set is
//! strict about undefined values, so a page whose values lack a name its
//! template uses fails with a 500 here, not as a blank in production.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};

use fusion_schemas::Role;
use fusion_tests::TestApp;

const CR: &str = "pydicom-data-1.0.0/data_store/data/RG1_UNCR.dcm";

const REPORT: &str = "EXAMINATION: Chest radiograph, PA.\n\
INDICATION: Cough and fever.\n\
FINDINGS: Patchy airspace opacity in the right lower lobe. \
No pleural effusion. No pneumothorax.\n\
IMPRESSION: Possible early pneumonia.\n";

/// Stores catalogue file `file` over STOW-RS as integration key `key`;
/// returns its accession number.
async fn stow(app: &TestApp, key: &(String, String), file: &str) -> String {
    let bytes = fusion_tests::dicom::read(file);
    let boundary = "fusion-templates-boundary";
    let res = app
        .client
        .post(app.url("/dicom-web/studies"))
        .basic_auth(&key.0, Some(&key.1))
        .header(
            "Content-Type",
            fusion_tests::dicom::stow_content_type(boundary),
        )
        .body(fusion_tests::dicom::multipart(
            boundary,
            &[("application/dicom", &bytes)],
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "STOW of {file}");
    // Its accession number, as QIDO-RS answers it (PS3.18 JSON, 00080050).
    let studies: serde_json::Value = app
        .client
        .get(app.url("/dicom-web/studies"))
        .basic_auth(&key.0, Some(&key.1))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    studies[0]["00080050"]["Value"][0]
        .as_str()
        .expect("the study has an accession number")
        .to_owned()
}

/// A GET of `path` as a browser with session cookie `session`.
async fn page(app: &TestApp, session: Option<&str>, path: &str) -> (u16, String) {
    let mut req = app.client.get(app.url(path)).header("accept", "text/html");
    if let Some(s) = session {
        req = req.header("cookie", format!("fusion_session={s}"));
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    (status, res.text().await.unwrap())
}

/// JSON from `path` with bearer `token`.
async fn json(app: &TestApp, token: &str, path: &str) -> serde_json::Value {
    let res = app
        .client
        .get(app.url(path))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "GET {path}");
    res.json().await.unwrap()
}

/// Checks one rendered page (`got`: status and body) and notes that
/// `template` rendered for `what`.
fn check(
    rendered: &mut BTreeMap<&'static str, Vec<String>>,
    template: &'static str,
    what: String,
    got: (u16, String),
    status: u16,
) {
    let (code, body) = got;
    assert_eq!(code, status, "{what}: {body}");
    assert!(body.trim_end().ends_with("</html>"), "{what}: {body}");
    assert!(!body.contains("Something went wrong"), "{what}: {body}");
    rendered.entry(template).or_default().push(what);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_template_renders() {
    let models = fusion_tests::repo_root().join("models/packages");
    let app = fusion_tests::spawn_app_with(|s| {
        s.models_dir = models;
        s.workers = 1;
    })
    .await;
    let pacs = app.api_key("pacs", Role::Integration).await;
    let clinician = app.session_for("dr.pages", Role::Clinician).await;
    let auditor = app.session_for("auditor.pages", Role::Auditor).await;
    let admin = app.session_for("admin.pages", Role::Admin).await;

    // Which template each request renders, checked against the folder below.
    let mut rendered: BTreeMap<&str, Vec<String>> = BTreeMap::new();

    // Before any case: the empty states.
    let got = page(&app, Some(&clinician), "/worklist").await;
    check(
        &mut rendered,
        "worklist.html",
        "empty worklist".into(),
        got,
        200,
    );
    let got = page(&app, Some(&admin), "/monitoring").await;
    check(
        &mut rendered,
        "monitoring.html",
        "monitoring, no review yet".into(),
        got,
        200,
    );

    // A study, its report, the fused prediction, and a review of it.
    let accession = stow(&app, &pacs, CR).await;
    let res = app
        .client
        .post(app.url("/notes"))
        .basic_auth(&pacs.0, Some(&pacs.1))
        .query(&[
            ("accession_number", accession.as_str()),
            ("note_type", "18748-4"),
        ])
        .header("Content-Type", "text/plain; charset=utf-8")
        .body(REPORT)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    let case_id = loop {
        let list = json(
            &app,
            &clinician,
            &format!("/cases?accession_number={accession}"),
        )
        .await;
        if let Some(id) = list["cases"][0]["id"].as_str() {
            let case = json(&app, &clinician, &format!("/cases/{id}")).await;
            if case["latest_prediction"]["branches"]["text"]["status"] == "used" {
                break id.to_owned();
            }
        }
        assert!(std::time::Instant::now() < deadline, "no fused prediction");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    };
    let versions = json(&app, &clinician, &format!("/cases/{case_id}/predictions")).await;
    let prediction = &versions["predictions"][0];
    let prediction_id = prediction["id"].as_str().unwrap().to_owned();
    let observation = prediction["fused"]
        .as_object()
        .and_then(|f| f.keys().next().cloned())
        .unwrap();
    let res = app
        .client
        .post(app.url(&format!("/predictions/{prediction_id}/reviews")))
        .bearer_auth(&clinician)
        .json(&serde_json::json!({
            "decisions": { observation: { "decision": "amend", "value": "present" } },
            "comment": "Checked against the image.",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let review: serde_json::Value = res.json().await.unwrap();
    let review_id = review["id"].as_str().unwrap().to_owned();

    // A second case from a note alone, whose report asserts one finding
    // absent and nothing else (no image, no present or possible mention).
    let res = app
        .client
        .post(app.url("/notes"))
        .basic_auth(&pacs.0, Some(&pacs.1))
        .query(&[("accession_number", "TEXTONLY1"), ("note_type", "11506-3")])
        .header("Content-Type", "text/plain; charset=utf-8")
        .body("IMPRESSION: No pneumothorax.\n")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let text_case = loop {
        let list = json(&app, &clinician, "/cases?accession_number=TEXTONLY1").await;
        if list["cases"][0]["latest_prediction"].is_object() {
            break list["cases"][0]["id"].as_str().unwrap().to_owned();
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no text-only prediction"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    };
    let path = format!("/cases/{text_case}/view");
    let got = page(&app, Some(&clinician), &path).await;
    check(
        &mut rendered,
        "case.html",
        "a case from a note alone".into(),
        got,
        200,
    );

    // The clinician's pages, with data.
    for path in [
        "/worklist".to_owned(),
        "/worklist?status=reviewed&sort=status&order=asc".to_owned(),
        "/worklist?page=2".to_owned(),
        "/worklist?study_date_from=yesterday".to_owned(),
    ] {
        let got = page(&app, Some(&clinician), &path).await;
        check(&mut rendered, "worklist.html", path, got, 200);
    }
    for query in [
        String::new(),
        format!("?reviewed={review_id}"),
        "?version=99&review_error=stale".to_owned(),
        "?review_error=no_decision".to_owned(),
    ] {
        let path = format!("/cases/{case_id}/view{query}");
        let got = page(&app, Some(&clinician), &path).await;
        check(&mut rendered, "case.html", path, got, 200);
    }
    let got = page(&app, Some(&clinician), "/models/view").await;
    check(
        &mut rendered,
        "models.html",
        "/models/view".into(),
        got,
        200,
    );
    let catalogue = json(&app, &clinician, "/models").await;
    for card in catalogue["packages"].as_array().unwrap() {
        let path = format!("/models/{}/view", card["name"].as_str().unwrap());
        let got = page(&app, Some(&clinician), &path).await;
        check(&mut rendered, "models.html", path, got, 200);
    }

    // The auditor's and the administrator's pages.
    for (path, status) in [
        ("/audit", 200),
        ("/audit?outcome=4&action=R&page=2", 200),
        ("/audit?outcome=bogus", 400),
    ] {
        let got = page(&app, Some(&auditor), path).await;
        check(&mut rendered, "audit.html", path.into(), got, status);
    }
    let got = page(&app, Some(&auditor), "/audit/integrity").await;
    check(
        &mut rendered,
        "integrity.html",
        "/audit/integrity".into(),
        got,
        200,
    );
    let got = page(&app, Some(&admin), "/admin").await;
    check(&mut rendered, "admin.html", "/admin".into(), got, 200);
    let got = page(&app, Some(&auditor), "/monitoring").await;
    // The rows' table (monitoring_rows.html) is there once a review is.
    assert!(got.1.contains("Abstained found present"), "{}", got.1);
    check(
        &mut rendered,
        "monitoring_rows.html",
        "monitoring after a review".into(),
        got.clone(),
        200,
    );
    check(
        &mut rendered,
        "monitoring.html",
        "monitoring after a review".into(),
        got,
        200,
    );

    // Signing in, and the message pages: not found, not for this role, a
    // form without its CSRF token.
    for path in ["/login", "/login?next=%2Fworklist"] {
        let got = page(&app, None, path).await;
        check(&mut rendered, "login.html", path.into(), got, 200);
    }
    let res = app
        .client
        .post(app.url("/login"))
        .header("accept", "text/html")
        .form(&[
            ("username", "dr.pages"),
            ("password", "wrong"),
            ("next", "/"),
        ])
        .send()
        .await
        .unwrap();
    let got = (res.status().as_u16(), res.text().await.unwrap());
    check(
        &mut rendered,
        "login.html",
        "a refused sign-in".into(),
        got,
        401,
    );
    let path = format!("/cases/{}/view", uuid::Uuid::now_v7());
    let got = page(&app, Some(&clinician), &path).await;
    check(
        &mut rendered,
        "message.html",
        "an unknown case".into(),
        got,
        404,
    );
    let got = page(&app, Some(&clinician), "/admin").await;
    check(
        &mut rendered,
        "message.html",
        "a page not for this role".into(),
        got,
        403,
    );
    let res = app
        .client
        .post(app.url(&format!("/cases/{case_id}/review")))
        .header("accept", "text/html")
        .header("cookie", format!("fusion_session={clinician}"))
        .form(&[("prediction_id", prediction_id.as_str())])
        .send()
        .await
        .unwrap();
    let got = (res.status().as_u16(), res.text().await.unwrap());
    check(
        &mut rendered,
        "message.html",
        "a form without its CSRF token".into(),
        got,
        403,
    );

    // Every template in the folder was rendered by some page (base.html by
    // all of them).
    let folder = fusion_tests::repo_root().join("services/api/src/dashboard/templates");
    let files: BTreeSet<String> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".html") && n != "base.html")
        .collect();
    let covered: BTreeSet<String> = rendered.keys().map(|k| (*k).to_owned()).collect();
    assert_eq!(files, covered, "templates without a page in this test");
}
