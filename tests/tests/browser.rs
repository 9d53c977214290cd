//! The clinician review dashboard: in a real browser (headless Chromium over
//! WebDriver, `fusion_tests::browser`) for what people do, and over plain
//! HTTP for what browsers are told (headers, cookies, redirects, CSRF).
//!
//! Screenshots land in `$CARGO_TARGET_DIR/screenshots/` (or
//! `target/screenshots/`); each test prints their paths.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use fusion_schemas::Role;
use fusion_tests::browser::{Browser, WINDOW, png_size};
use fusion_tests::{TestApp, spawn_app};
use reqwest::header::{HeaderMap, HeaderValue};

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                   frame-ancestors 'none'; form-action 'self'; base-uri 'none'";

/// The text of every row of the audit table's column `n` (1-based).
async fn column(browser: &Browser, n: usize) -> Vec<String> {
    let cells = browser
        .client()
        .find_all(fantoccini::Locator::Css(&format!(
            "#audit-events tbody tr td:nth-child({n})"
        )))
        .await
        .unwrap();
    let mut out = Vec::new();
    for c in cells {
        out.push(c.text().await.unwrap());
    }
    out
}

#[tokio::test]
async fn clinicians_and_auditors_use_the_dashboard_in_a_browser() {
    let app = spawn_app().await;
    let clinician = app.add_user("dr.grey", Role::Clinician).await;
    let auditor = app.add_user("c.officer", Role::Auditor).await;
    let admin = app.add_user("it.admin", Role::Admin).await;
    let browser = Browser::start(&app.address).await;

    // Not signed in: a page sends the browser to the sign-in form, which
    // remembers where it was going.
    browser.goto("/worklist").await;
    assert_eq!(browser.path().await, "/login?next=%2Fworklist");
    assert_eq!(browser.text("h1").await, "Sign in");
    browser.screenshot("01-login").await;
    let a11y = browser.accessibility_violations().await;
    assert!(a11y.is_empty(), "sign-in page: {a11y:#?}");
    // The check does find problems: an image without a text alternative.
    browser
        .client()
        .execute(
            "const i = document.createElement('img'); i.src = '/static/none.png'; \
             document.querySelector('main').appendChild(i); return true",
            vec![],
        )
        .await
        .unwrap();
    let a11y = browser.accessibility_violations().await;
    assert!(
        a11y.iter().any(|v| v.starts_with("image-alt: ")),
        "{a11y:#?}"
    );
    browser.goto("/worklist").await;

    // A wrong password: the same form again, a generic message, nothing else.
    browser.fill("#username", "dr.grey").await;
    browser.fill("#password", "not-my-password").await;
    browser.click("#sign-in").await;
    let error = browser.text("#login-error").await;
    assert!(
        error.starts_with("Sign-in failed: the user name or password is wrong"),
        "{error}"
    );
    assert_eq!(
        browser
            .find("#username")
            .await
            .prop("value")
            .await
            .unwrap()
            .as_deref(),
        Some("dr.grey"),
        "the user name is kept, the password is not"
    );
    browser.screenshot("02-login-failed").await;

    // The clinician signs in and lands on the worklist they asked for.
    browser.fill("#password", &clinician).await;
    browser.click("#sign-in").await;
    assert_eq!(browser.path().await, "/worklist");
    assert_eq!(browser.text("h1").await, "Worklist");
    assert_eq!(browser.text("#results-heading").await, "No cases");
    assert!(browser.text(".who").await.contains("dr.grey"));
    let nav = browser.text(".mainnav").await;
    assert!(
        nav.contains("Worklist") && !nav.contains("Audit trail"),
        "{nav}"
    );
    let shot = browser.screenshot("03-worklist-clinician").await;
    assert_eq!(png_size(&shot), WINDOW);

    browser.goto("/cases/42/view").await;
    assert_eq!(browser.text("h1").await, "Case not found");

    // The audit trail is not for clinicians: a clear page, not a JSON error.
    browser.goto("/audit").await;
    assert_eq!(browser.text("h1").await, "Not available for your role");
    assert_eq!(
        browser.text("#message-text").await,
        "You are signed in as dr.grey (clinician). This page is for auditors (compliance officers)."
    );
    browser.screenshot("04-forbidden-clinician-audit").await;

    // Signing out ends the session: pages send the browser to sign in again.
    browser.sign_out().await;
    assert_eq!(browser.path().await, "/login?signed_out=1");
    assert!(browser.text(".notice-info").await.contains("signed out"));
    browser.goto("/worklist").await;
    assert!(browser.path().await.starts_with("/login"));

    // The auditor signs in; the start page is the audit trail.
    browser.sign_in("c.officer", &auditor).await;
    assert_eq!(browser.path().await, "/audit");
    let agents = column(&browser, 6).await;
    // Newest first: the auditor's own view, their login, the clinician's
    // logout, the refusal, the login, the failed login, ...
    assert!(agents[0].starts_with("c.officer"), "{agents:?}");
    assert!(
        agents.iter().filter(|a| a.starts_with("dr.grey")).count() >= 4,
        "{agents:?}"
    );
    let events = column(&browser, 3).await;
    assert!(events.iter().any(|e| e.contains("User Authentication")));
    assert!(events.iter().any(|e| e.contains("Security Alert")));
    let outcomes = column(&browser, 5).await;
    assert!(outcomes.iter().any(|o| o.starts_with("Serious failure")));
    assert!(outcomes.iter().any(|o| o.starts_with("Refused")));
    browser.screenshot_full("05-audit-auditor").await;

    // Filter by user: only the clinician's events, and the exports carry
    // the same filter.
    browser.fill("#f-agent", "dr.grey").await;
    browser.click("#apply-filters").await;
    assert_eq!(browser.path().await, "/audit?agent=dr.grey");
    let agents = column(&browser, 6).await;
    assert!(agents.len() >= 3, "{agents:?}");
    assert!(
        agents.iter().all(|a| a.starts_with("dr.grey")),
        "{agents:?}"
    );
    assert!(
        browser
            .text("#results-heading")
            .await
            .contains("filtered by user or key dr.grey")
    );
    let csv_href = browser
        .find(".exports a[download$='.csv']")
        .await
        .attr("href")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(csv_href, "/audit/events?format=csv&agent=dr.grey");
    browser.screenshot("06-audit-filtered").await;
    // The export link works with the browser's session.
    let csv = browser
        .client()
        .execute_async(
            "const [href, done] = arguments; \
             fetch(href).then(r => r.text()).then(done, e => done(String(e)));",
            vec![serde_json::json!(csv_href)],
        )
        .await
        .unwrap();
    let csv = csv.as_str().unwrap();
    assert!(csv.contains("dr.grey"), "{csv}");
    assert!(csv.contains("# chain_head="), "{csv}");

    // Verifying the chain.
    browser.click("#verify-chain").await;
    assert_eq!(browser.path().await, "/audit/integrity");
    assert!(browser.text("#verdict h2").await.starts_with("Intact"));
    browser.screenshot("07-audit-integrity").await;

    // The worklist is not for auditors.
    browser.goto("/worklist").await;
    assert_eq!(
        browser.text("#message-text").await,
        "You are signed in as c.officer (auditor). This page is for clinicians."
    );
    browser.screenshot("08-forbidden-auditor-worklist").await;
    browser.sign_out().await;
    assert_eq!(browser.path().await, "/login?signed_out=1");

    // The administrator's start page lists users and keys, no secrets.
    app.api_key("orthanc-main", Role::Integration).await;
    browser.sign_in("it.admin", &admin).await;
    assert_eq!(browser.path().await, "/admin");
    let users = browser.text("main").await;
    assert!(users.contains("dr.grey") && users.contains("orthanc-main"));
    assert!(!users.contains("argon2"), "no password hashes on the page");
    browser.screenshot("09-admin").await;
    browser.sign_out().await;

    browser.close().await;
}

/// The session and CSRF cookies a response sets, as `name=value` pairs and
/// their full `Set-Cookie` lines.
fn set_cookies(headers: &HeaderMap) -> Vec<String> {
    headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .collect()
}

fn cookie_value(lines: &[String], name: &str) -> String {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(&format!("{name}=")))
        .map(|rest| rest.split(';').next().unwrap().to_owned())
        .unwrap_or_else(|| panic!("no {name} cookie in {lines:?}"))
}

/// HTML as a person reads it: the few entities the templates' escaping
/// writes, decoded.
fn unescape(html: &str) -> String {
    html.replace("&#x2f;", "/")
        .replace("&quot;", "\"")
        .replace("&#x27;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

async fn form_login(
    app: &TestApp,
    client: &reqwest::Client,
    user: &str,
    pw: &str,
) -> reqwest::Response {
    client
        .post(app.url("/login"))
        .header("accept", "text/html")
        .form(&[("username", user), ("password", pw), ("next", "")])
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let app = spawn_app().await;
    let token = app.session_for("dr.bailey", Role::Clinician).await;
    let client = no_redirects();
    let login = client.get(app.url("/login")).send().await.unwrap();
    let api = client
        .get(app.url("/auth/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    let refused = client.get(app.url("/audit/events")).send().await.unwrap();
    for res in [&login, &api, &refused] {
        let h = res.headers();
        assert_eq!(h["content-security-policy"], CSP, "{}", res.url());
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert_eq!(h["cache-control"], "no-store");
    }
    assert!(
        login.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    // No inline script or style anywhere: the CSP would block it anyway.
    let html = unescape(&login.text().await.unwrap());
    assert!(html.contains("<html lang=\"en\">"));
    assert!(
        !html.contains("<script>") && !html.contains("style="),
        "{html}"
    );
    // The stylesheet is ours, versioned, cached for good.
    let css = html
        .split("href=\"")
        .find_map(|s| s.strip_prefix("/static/app.css?v="))
        .map(|s| s.split('"').next().unwrap().to_owned())
        .unwrap();
    let res = client
        .get(app.url(&format!("/static/app.css?v={css}")))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(res.headers()["content-type"], "text/css; charset=utf-8");
    assert_eq!(
        res.headers()["cache-control"],
        "public, max-age=31536000, immutable"
    );
    assert_eq!(res.headers()["x-content-type-options"], "nosniff");
    let stale = client
        .get(app.url("/static/app.css?v=old"))
        .send()
        .await
        .unwrap();
    assert_eq!(stale.headers()["cache-control"], "no-cache");
    // Only the embedded files: nothing else is reachable through it.
    for path in ["/static/Cargo.toml", "/static/..%2FCargo.toml"] {
        let res = client.get(app.url(path)).send().await.unwrap();
        assert_eq!(res.status(), 404, "{path}");
    }
}

#[tokio::test]
async fn browsers_are_sent_to_sign_in_and_api_clients_keep_json() {
    let app = spawn_app().await;
    let client = no_redirects();
    let page = client
        .get(app.url("/audit?patient=P-7"))
        .header("accept", "text/html,application/xhtml+xml")
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 303);
    assert_eq!(
        page.headers()["location"],
        "/login?next=%2Faudit%3Fpatient%3DP-7"
    );
    // The same page asked for by an API client: the API's 401.
    let api = client.get(app.url("/audit")).send().await.unwrap();
    assert_eq!(api.status(), 401);
    let body: serde_json::Value = api.json().await.unwrap();
    assert_eq!(body["code"], "unauthenticated");
    // A forged or expired cookie is the same as none.
    let forged = client
        .get(app.url("/worklist"))
        .header("accept", "text/html")
        .header("cookie", "fusion_session=forged")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 303);
    assert_eq!(forged.headers()["location"], "/login?next=%2Fworklist");
    // An integration client has no start page.
    let (id, secret) = app.api_key("orthanc", Role::Integration).await;
    let res = client
        .get(app.url("/"))
        .header("accept", "text/html")
        .basic_auth(&id, Some(&secret))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    let html = res.text().await.unwrap();
    assert!(html.contains("You are signed in as orthanc (integration). This page is for clinicians, auditors (compliance officers) and administrators."), "{html}");
}

#[tokio::test]
async fn form_login_sets_the_session_and_csrf_cookies_and_forms_echo_the_token() {
    let app = spawn_app().await;
    let password = app.add_user("dr.yang", Role::Clinician).await;
    let client = no_redirects();

    // Failures: the form again, 401, one message whether or not the user exists.
    for (user, pw) in [
        ("dr.yang", "wrong-password"),
        ("dr.nobody", "wrong-password"),
    ] {
        let res = form_login(&app, &client, user, pw).await;
        assert_eq!(res.status(), 401);
        assert!(res.headers().get("set-cookie").is_none());
        let html = res.text().await.unwrap();
        assert!(html.contains("Sign-in failed: the user name or password is wrong, or the account is disabled or locked."));
        assert!(!html.contains("wrong-password"));
    }
    // From another site: refused before the password is even checked.
    for (name, value) in [
        ("origin", "https://evil.example"),
        ("sec-fetch-site", "cross-site"),
    ] {
        let res = client
            .post(app.url("/login"))
            .header(name, value)
            .form(&[("username", "dr.yang"), ("password", password.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403, "{name}: {value}");
    }

    let res = form_login(&app, &client, "dr.yang", &password).await;
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/");
    let lines = set_cookies(res.headers());
    assert_eq!(lines.len(), 2, "{lines:?}");
    let session_line = lines
        .iter()
        .find(|l| l.starts_with("fusion_session="))
        .unwrap();
    let csrf_line = lines
        .iter()
        .find(|l| l.starts_with("fusion_csrf="))
        .unwrap();
    for attr in ["HttpOnly", "Secure", "SameSite=Strict", "Path=/"] {
        assert!(
            session_line.contains(attr),
            "{attr} missing in {session_line}"
        );
    }
    for attr in ["Secure", "SameSite=Strict", "Path=/"] {
        assert!(csrf_line.contains(attr), "{attr} missing in {csrf_line}");
    }
    assert!(
        !csrf_line.contains("HttpOnly"),
        "pages read it: {csrf_line}"
    );
    let session = cookie_value(&lines, "fusion_session");
    let csrf = cookie_value(&lines, "fusion_csrf");
    assert_eq!(csrf.len(), 43);
    let cookies =
        HeaderValue::from_str(&format!("fusion_session={session}; fusion_csrf={csrf}")).unwrap();

    // The start page sends a clinician to the worklist, whose sign-out form
    // carries the cookie's token.
    let home = client
        .get(app.url("/"))
        .header("accept", "text/html")
        .header("cookie", cookies.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(home.status(), 303);
    assert_eq!(home.headers()["location"], "/worklist");
    let page = client
        .get(app.url("/worklist"))
        .header("accept", "text/html")
        .header("cookie", cookies.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains(&format!(
            "<input type=\"hidden\" name=\"csrf_token\" value=\"{csrf}\">"
        )),
        "{html}"
    );

    // Without the token (a forged form), or with another one: refused.
    for body in [vec![], vec![("csrf_token", "forged")]] {
        let res = client
            .post(app.url("/logout"))
            .header("accept", "text/html")
            .header("cookie", cookies.clone())
            .form(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403);
        assert!(res.text().await.unwrap().contains("Form expired"));
    }
    // With it: signed out, both cookies removed, the session gone.
    let res = client
        .post(app.url("/logout"))
        .header("accept", "text/html")
        .header("cookie", cookies.clone())
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 303);
    assert_eq!(res.headers()["location"], "/login?signed_out=1");
    let removed = set_cookies(res.headers());
    assert!(
        removed.iter().any(|l| l.starts_with("fusion_session=;")),
        "{removed:?}"
    );
    assert!(
        removed.iter().any(|l| l.starts_with("fusion_csrf=;")),
        "{removed:?}"
    );
    let after = client
        .get(app.url("/worklist"))
        .header("accept", "text/html")
        .header("cookie", cookies)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 303);

    // The JSON login sets the same two cookies, the session's first.
    let res = app.login("dr.yang", &password).await;
    let lines = set_cookies(res.headers());
    assert!(lines[0].starts_with("fusion_session="), "{lines:?}");
    assert!(lines[1].starts_with("fusion_csrf="), "{lines:?}");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(
        body["csrf_token"].as_str().unwrap(),
        cookie_value(&lines, "fusion_csrf")
    );
}

#[tokio::test]
async fn the_audit_page_filters_pages_and_audits_itself() {
    let app = spawn_app().await;
    let token = app.session_for("c.auditor", Role::Auditor).await;
    let client = no_redirects();
    let get = |path: &str| {
        client
            .get(app.url(path))
            .header("accept", "text/html")
            .bearer_auth(&token)
            .send()
    };
    // 60 logins of one user: two pages of events.
    let pw = app.add_user("dr.many", Role::Clinician).await;
    for _ in 0..60 {
        fusion_app::admin::reset_password(
            &app.state,
            &fusion_tests::operator(),
            "dr.many",
            &secrecy::SecretString::from(pw.clone()),
        )
        .await
        .unwrap();
    }
    let first = get("/audit?agent=test-operator").await.unwrap();
    assert_eq!(first.status(), 200);
    assert_eq!(first.headers()["cache-control"], "no-store");
    let html = unescape(&first.text().await.unwrap());
    assert!(html.contains("Events 1–50 of 62"), "{html}");
    assert!(
        html.contains("href=\"/audit?agent=test-operator&page=2\""),
        "{html}"
    );
    let second = get("/audit?agent=test-operator&page=2")
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(second.contains("Events 51–62 of 62"), "{second}");

    // A bad time is explained, not a JSON error.
    let bad = get("/audit?from=yesterday").await.unwrap();
    assert_eq!(bad.status(), 400);
    assert!(bad.text().await.unwrap().contains("is not a time"));

    // Each view of the trail is itself an Audit Log Used event, naming the
    // patient it was filtered by.
    let res = get("/audit?patient=P-123").await.unwrap();
    assert_eq!(res.status(), 200);
    let events = app
        .state
        .repository
        .audit_events(&fusion_store::AuditFilter {
            patient_id: Some("P-123".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].record.subtype, "audit-view");
    assert_eq!(events[0].record.agent.name, "c.auditor");
}

/// An invented chest radiograph report: a positive, a negated and a hedged
/// finding.
const REVIEW_REPORT: &str = "EXAMINATION: Chest radiograph, PA.\n\
INDICATION: Cough and fever for three days.\n\
FINDINGS: Patchy airspace opacity in the right lower lobe. \
No pleural effusion. No pneumothorax. Heart size is normal.\n\
IMPRESSION: Right lower lobe opacity, possible early pneumonia; \
cannot exclude aspiration.\n";

const CR: &str = "pydicom-data-1.0.0/data_store/data/RG1_UNCR.dcm";

/// A form's fields, as `reqwest` sends them.
type Form = Vec<(&'static str, String)>;

/// Sends catalogue file `file` over STOW-RS as integration key `key`
/// (id, secret), asserting it is stored; returns its index attributes.
async fn stow_file(
    app: &TestApp,
    key: &(String, String),
    file: &str,
) -> fusion_imaging::InstanceAttributes {
    let bytes = fusion_tests::dicom::read(file);
    let boundary = "fusion-browser-boundary-42";
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
    fusion_imaging::index_attributes(&fusion_imaging::parse(&bytes).unwrap())
}

/// Sends [`REVIEW_REPORT`] as the report of `accession`, as the EHR would.
async fn post_report(app: &TestApp, key: &(String, String), accession: &str) {
    let res = app
        .client
        .post(app.url("/notes"))
        .basic_auth(&key.0, Some(&key.1))
        .query(&[("accession_number", accession), ("note_type", "18748-4")])
        .header("Content-Type", "text/plain; charset=utf-8")
        .body(REVIEW_REPORT)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
}

/// Polls `GET /cases?accession_number=` until the case's latest prediction
/// used the note; returns the case id.
async fn wait_for_fused_case(app: &TestApp, token: &str, accession: &str) -> String {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    loop {
        let list: serde_json::Value = app
            .client
            .get(app.url("/cases"))
            .query(&[("accession_number", accession)])
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(case) = list["cases"].as_array().and_then(|c| c.first()) {
            let id = case["id"].as_str().unwrap().to_owned();
            let full: serde_json::Value = app
                .client
                .get(app.url(&format!("/cases/{id}")))
                .bearer_auth(token)
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            if full["latest_prediction"]["branches"]["text"]["status"] == "used" {
                return id;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no fused prediction for {accession}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clinician_reviews_a_fused_case_in_the_browser() {
    let models = fusion_tests::repo_root().join("models/packages");
    assert!(
        models.join("pneumonia-xception/model.safetensors").exists(),
        "run scripts/fetch-models"
    );
    let app = fusion_tests::spawn_app_with(|s| {
        s.models_dir = models;
        s.workers = 1;
    })
    .await;
    let pacs = app.api_key("pacs", Role::Integration).await;
    let clinician = app.add_user("dr.grey", Role::Clinician).await;
    let auditor = app.add_user("c.officer", Role::Auditor).await;
    let api_token = app.session_for("dr.api", Role::Clinician).await;

    // The PACS sends the chest radiograph; the EHR its report.
    let attrs = stow_file(&app, &pacs, CR).await;
    let accession = attrs.accession_number.clone().unwrap().to_string();
    post_report(&app, &pacs, &accession).await;
    let case_id = wait_for_fused_case(&app, &api_token, &accession).await;

    let browser = Browser::start(&app.address).await;
    browser.sign_in("dr.grey", &clinician).await;
    assert_eq!(browser.path().await, "/worklist");

    // The worklist: the case, its status, its top findings with their fused
    // probability, and the refer flag when the models are unsure.
    let row = format!("tr[data-case-id='{case_id}']");
    assert_eq!(
        browser.text(&format!("{row} td:nth-child(2)")).await,
        accession
    );
    assert_eq!(
        browser.text(&format!("{row} .case-status")).await,
        "Predicted"
    );
    let findings = browser.text(&format!("{row} .findings")).await;
    assert!(findings.contains('%'), "{findings}");
    browser.screenshot("10-worklist-cases").await;
    let a11y = browser.accessibility_violations().await;
    assert!(a11y.is_empty(), "worklist: {a11y:#?}");

    // Filtering by a status the case does not have hides it.
    browser.goto("/worklist?status=reviewed").await;
    assert!(!browser.exists(&row).await);
    assert_eq!(
        browser.text("#results-heading").await,
        "No cases match these filters"
    );
    browser.goto("/worklist").await;

    // The case view.
    browser.click(&format!("{row} a.case-link")).await;
    assert_eq!(browser.path().await, format!("/cases/{case_id}/view"));
    // The radiograph, rendered by the service through WADO-RS /rendered.
    let loaded = browser
        .client()
        .execute(
            "const i = document.querySelector('img.dicom-image'); \
             return new Promise(r => { const f = () => i.complete && i.naturalWidth > 0 \
             ? r([i.naturalWidth, i.naturalHeight, i.getAttribute('src')]) : setTimeout(f, 100); f(); });",
            vec![],
        )
        .await
        .unwrap();
    let src = loaded[2].as_str().unwrap();
    assert!(
        src.starts_with(&format!(
            "/dicom-web/studies/{}/series/",
            attrs.study_instance_uid
        )) && src.ends_with("/rendered?accept=image/png"),
        "{src}"
    );
    assert!(loaded[0].as_u64().unwrap() > 100, "{loaded:?}");
    assert!(
        browser
            .text("#images .viewer-caption")
            .await
            .contains("used by the image model")
    );
    // The note, every mention highlighted by its assertion, with the trigger.
    let absent = browser.find("mark.m-absent").await;
    assert_eq!(absent.text().await.unwrap(), "pleural effusion");
    let tip = absent.attr("data-tip").await.unwrap().unwrap();
    assert!(
        tip.starts_with("Pleural Effusion: absent") && tip.contains("trigger “No”"),
        "{tip}"
    );
    assert!(browser.exists("mark.m-present").await);
    let possible = browser.find("mark.m-possible").await;
    assert!(
        possible
            .attr("data-tip")
            .await
            .unwrap()
            .unwrap()
            .contains("possible"),
    );
    assert!(browser.exists("strong.section-head").await);
    // Per label: fused probability, the uncertainty mass as a bar, the
    // two modalities side by side, conflict and set.
    let pneumonia = "tr.label-row[data-label='pneumonia']";
    let fused = browser.text(&format!("{pneumonia} .fused-p")).await;
    assert!(fused.ends_with('%'), "{fused}");
    let u_bar = browser
        .find(&format!("{pneumonia} svg.u-bar"))
        .await
        .attr("aria-label")
        .await
        .unwrap()
        .unwrap();
    assert!(u_bar.starts_with("Uncertainty mass 0."), "{u_bar}");
    let cells = browser.text(pneumonia).await;
    assert!(
        cells.contains("MC-dropout passes"),
        "image opinion shown: {cells}"
    );
    assert!(cells.contains("report: "), "text opinion shown: {cells}");
    // An adult's radiograph: the paediatric model's opinion is discounted,
    // and a badge says so.
    let image_badge = browser.text("li[data-branch='image']").await;
    assert!(
        image_badge.contains("Image: used, discounted"),
        "{image_badge}"
    );
    assert!(
        browser
            .text("#packages")
            .await
            .contains("pneumonia-xception")
    );
    assert!(browser.text("#versions").await.contains("v1"));
    browser.screenshot("11-case-view").await;
    let a11y = browser.accessibility_violations().await;
    assert!(a11y.is_empty(), "case view: {a11y:#?}");
    // Focus a mention (as the keyboard does) for its tooltip.
    browser
        .client()
        .execute(
            "document.querySelector('mark.m-absent').focus(); return true",
            vec![],
        )
        .await
        .unwrap();
    browser.screenshot_full("12-case-view-full").await;

    // The review: accept pneumonia, amend pleural effusion, with a comment.
    browser
        .find("#review-pneumonia option[value='accept']")
        .await
        .click()
        .await
        .unwrap();
    browser
        .find("#review-pleural_effusion option[value='amend:present']")
        .await
        .click()
        .await
        .unwrap();
    browser
        .fill(
            "#review-comment",
            "Small right effusion on the lateral view.",
        )
        .await;
    browser.click("#submit-review").await;
    assert!(
        browser
            .path()
            .await
            .starts_with(&format!("/cases/{case_id}/view?reviewed=")),
        "{}",
        browser.path().await
    );
    assert!(
        browser
            .text("#review-saved")
            .await
            .starts_with("Review saved")
    );
    let reviews = browser.text("#reviews").await;
    assert!(reviews.contains("dr.grey"), "{reviews}");
    assert!(reviews.contains("Pneumonia: accepted"), "{reviews}");
    assert!(
        reviews.contains("Pleural Effusion: amended to present"),
        "{reviews}"
    );
    assert!(reviews.contains("Small right effusion"), "{reviews}");
    assert_eq!(browser.text("#case-status").await, "Reviewed");
    browser.screenshot("13-case-reviewed").await;

    // The review in the browser makes a VERIFIED SR in the study (issue
    // #17), and the versions table says where the results went.
    let start = std::time::Instant::now();
    loop {
        let rows: serde_json::Value = app
            .client
            .get(app.url(&format!("/cases/{case_id}/deliveries")))
            .bearer_auth(&api_token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let verified = rows["deliveries"].as_array().unwrap().iter().any(|d| {
            d["target"] == "local" && d["state"] == "delivered" && !d["review_id"].is_null()
        });
        if verified {
            break;
        }
        assert!(start.elapsed().as_secs() < 120, "no VERIFIED SR: {rows:#}");
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    browser.goto(&format!("/cases/{case_id}/view")).await;
    let versions = browser.text("#versions").await;
    assert!(
        versions.contains("unverified: archive delivered; verified: archive delivered"),
        "{versions}"
    );

    // A form with no decision is refused with a clear message.
    browser.click("#submit-review").await;
    assert!(
        browser
            .text("#review-error")
            .await
            .starts_with("Choose a decision")
    );

    // Back on the worklist the case shows as reviewed.
    browser.goto("/worklist").await;
    assert_eq!(
        browser.text(&format!("{row} .case-status")).await,
        "Reviewed"
    );
    browser.screenshot("14-worklist-reviewed").await;
    browser.sign_out().await;

    // The auditor cannot open the case, and sees every step in the trail.
    browser.sign_in("c.officer", &auditor).await;
    browser.goto(&format!("/cases/{case_id}/view")).await;
    assert_eq!(browser.text("h1").await, "Not available for your role");
    browser.goto("/audit?agent=dr.grey").await;
    let subtypes = column(&browser, 3).await;
    let joined = subtypes.join(" | ");
    for step in ["review-create", "case-view", "case-search", "login"] {
        assert!(joined.contains(step), "{step} missing from {joined}");
    }
    browser.screenshot("15-audit-review").await;
    let a11y = browser.accessibility_violations().await;
    assert!(a11y.is_empty(), "audit trail: {a11y:#?}");
    browser.close().await;
}

/// The case id of the study `study_uid`, from `GET /cases`.
async fn case_of_study(app: &TestApp, token: &str, study_uid: &str) -> String {
    let list: serde_json::Value = app
        .client
        .get(app.url("/cases"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    list["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["study_instance_uid"] == study_uid)
        .unwrap_or_else(|| panic!("no case for {study_uid}: {list}"))["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Waits for the first image of the page to load; its natural size and
/// `src`.
async fn loaded_image(browser: &Browser) -> (u64, u64, String) {
    let v = browser
        .client()
        .execute_async(
            "const done = arguments[0]; const i = document.querySelector('img.dicom-image'); \
             const f = () => i.complete && i.naturalWidth > 0 \
               ? done([i.naturalWidth, i.naturalHeight, i.getAttribute('src')]) : setTimeout(f, 50); \
             f();",
            vec![],
        )
        .await
        .unwrap();
    (
        v[0].as_u64().unwrap(),
        v[1].as_u64().unwrap(),
        v[2].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn window_presets_and_frame_stepping_in_the_case_view() {
    let app = spawn_app().await;
    let pacs = app.api_key("pacs", Role::Integration).await;
    let clinician = app.add_user("dr.grey", Role::Clinician).await;
    let token = app.session_for("dr.api", Role::Clinician).await;
    let mut studies = Vec::new();
    for file in [
        "pydicom-3.0.2/test_files/CT_small.dcm",
        "pydicom-3.0.2/test_files/examples_ybr_color.dcm",
    ] {
        let attrs = stow_file(&app, &pacs, file).await;
        studies.push(attrs.study_instance_uid.to_string());
    }
    let ct_case = case_of_study(&app, &token, &studies[0]).await;
    let us_case = case_of_study(&app, &token, &studies[1]).await;

    let browser = Browser::start(&app.address).await;
    browser.sign_in("dr.grey", &clinician).await;

    // CT: the window from the file, then the lung preset, in HU.
    browser.goto(&format!("/cases/{ct_case}/view")).await;
    let (w, h, src) = loaded_image(&browser).await;
    assert_eq!((w, h), (128, 128));
    assert!(src.ends_with("/rendered?accept=image/png"), "{src}");
    browser
        .find("select.window-select option[value='-600,1500']")
        .await
        .click()
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let src = loop {
        let (_, _, src) = loaded_image(&browser).await;
        if src.contains("window=") || std::time::Instant::now() > deadline {
            break src;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(
        src.ends_with("/rendered?accept=image/png&window=-600%2C1500"),
        "{src}"
    );
    // No note yet: the page says so, and no prediction is made up.
    assert!(
        browser
            .text("#notes")
            .await
            .contains("No note has arrived for this case yet.")
    );

    // Ultrasound, 30 frames: frame stepping by button and by arrow key.
    browser.goto(&format!("/cases/{us_case}/view")).await;
    let (_, _, src) = loaded_image(&browser).await;
    assert!(
        src.ends_with("/frames/1/rendered?accept=image/png"),
        "{src}"
    );
    assert_eq!(browser.text(".frame-pos").await, "1 / 30");
    browser.find(".frame-next").await.click().await.unwrap();
    assert_eq!(browser.text(".frame-pos").await, "2 / 30");
    let (_, _, src) = loaded_image(&browser).await;
    assert!(
        src.ends_with("/frames/2/rendered?accept=image/png"),
        "{src}"
    );
    browser.find(".frame-prev").await.click().await.unwrap();
    browser.find(".frame-prev").await.click().await.unwrap();
    assert_eq!(browser.text(".frame-pos").await, "30 / 30", "wraps around");
    let alt = browser
        .find("img.dicom-image")
        .await
        .attr("alt")
        .await
        .unwrap()
        .unwrap();
    assert!(alt.ends_with("frame 30 of 30"), "{alt}");
    browser.screenshot("16-case-multiframe").await;
    let a11y = browser.accessibility_violations().await;
    assert!(a11y.is_empty(), "multi-frame case view: {a11y:#?}");
    browser.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_review_form_and_case_pages_refuse_bad_input_and_store_nothing() {
    let models = fusion_tests::repo_root().join("models/packages");
    let app = fusion_tests::spawn_app_with(|s| {
        s.models_dir = models;
        s.workers = 1;
    })
    .await;
    let pacs = app.api_key("pacs", Role::Integration).await;
    let token = app.session_for("dr.api", Role::Clinician).await;
    let password = app.add_user("dr.form", Role::Clinician).await;
    let attrs = stow_file(&app, &pacs, CR).await;
    let accession = attrs.accession_number.clone().unwrap().to_string();
    post_report(&app, &pacs, &accession).await;
    let case_id = wait_for_fused_case(&app, &token, &accession).await;
    let versions: serde_json::Value = app
        .client
        .get(app.url(&format!("/cases/{case_id}/predictions")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let versions = versions["predictions"].as_array().unwrap().clone();
    let latest = versions[0]["id"].as_str().unwrap().to_owned();

    let client = no_redirects();
    let res = form_login(&app, &client, "dr.form", &password).await;
    let lines = set_cookies(res.headers());
    let session = cookie_value(&lines, "fusion_session");
    let csrf = cookie_value(&lines, "fusion_csrf");
    let cookies = format!("fusion_session={session}; fusion_csrf={csrf}");
    let post = |path: String, form: Form| {
        let client = client.clone();
        let cookies = cookies.clone();
        let url = app.url(&path);
        async move {
            client
                .post(url)
                .header("accept", "text/html")
                .header("cookie", cookies)
                .form(&form)
                .send()
                .await
                .unwrap()
        }
    };
    let review_path = format!("/cases/{case_id}/review");
    let back = |code: &str| format!("/cases/{case_id}/view?review_error={code}");
    let long = "x".repeat(4001);
    let cases: Vec<(&str, Form, String)> = vec![
        (
            "no decision",
            vec![
                ("csrf_token", csrf.clone()),
                ("prediction_id", latest.clone()),
                ("d.pneumonia", String::new()),
            ],
            back("no_decision"),
        ),
        (
            "an unknown decision",
            vec![
                ("csrf_token", csrf.clone()),
                ("prediction_id", latest.clone()),
                ("d.pneumonia", "maybe".into()),
            ],
            back("invalid"),
        ),
        (
            "an unknown observation",
            vec![
                ("csrf_token", csrf.clone()),
                ("prediction_id", latest.clone()),
                ("d.flat_feet", "accept".into()),
            ],
            back("invalid"),
        ),
        (
            "no prediction id",
            vec![
                ("csrf_token", csrf.clone()),
                ("d.pneumonia", "accept".into()),
            ],
            back("invalid"),
        ),
        (
            "a field sent twice",
            vec![
                ("csrf_token", csrf.clone()),
                ("prediction_id", latest.clone()),
                ("d.edema", "accept".into()),
                ("d.edema", "reject".into()),
            ],
            back("invalid"),
        ),
        (
            "text that was not UTF-8",
            vec![
                ("csrf_token", csrf.clone()),
                ("prediction_id", latest.clone()),
                ("d.edema", "accept".into()),
                ("comment", "\u{FFFD}(\u{FFFD}".into()),
            ],
            back("invalid"),
        ),
        (
            "a comment over 4,000 characters",
            vec![
                ("csrf_token", csrf.clone()),
                ("prediction_id", latest.clone()),
                ("d.pneumonia", "accept".into()),
                ("comment", long.clone()),
            ],
            back("comment"),
        ),
    ];
    for (what, form, location) in cases {
        let res = post(review_path.clone(), form).await;
        assert_eq!(res.status(), 303, "{what}");
        assert_eq!(res.headers()["location"], location.as_str(), "{what}");
    }
    // An older version, or a prediction of another case: not this form's.
    if let Some(older) = versions.get(1) {
        let res = post(
            review_path.clone(),
            vec![
                ("csrf_token", csrf.clone()),
                ("prediction_id", older["id"].as_str().unwrap().to_owned()),
                ("d.pneumonia", "accept".into()),
            ],
        )
        .await;
        assert_eq!(res.headers()["location"], back("stale").as_str());
    }
    // Without the CSRF token: the 403 page.
    let res = post(
        review_path.clone(),
        vec![
            ("prediction_id", latest.clone()),
            ("d.pneumonia", "accept".into()),
        ],
    )
    .await;
    assert_eq!(res.status(), 403);
    assert!(res.text().await.unwrap().contains("Form expired"));
    // An unknown case: the 404 page.
    let res = post(
        "/cases/not-a-case/review".into(),
        vec![("csrf_token", csrf.clone())],
    )
    .await;
    assert_eq!(res.status(), 404);
    assert!(res.text().await.unwrap().contains("Case not found"));
    // Nothing of it was stored.
    let reviews: serde_json::Value = app
        .client
        .get(app.url(&format!("/predictions/{latest}/reviews")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(reviews["reviews"], serde_json::json!([]), "{reviews}");

    // Pages read odd queries leniently and say what they could not use.
    let get = |path: String| {
        let client = client.clone();
        let cookies = cookies.clone();
        let url = app.url(&path);
        async move {
            let res = client
                .get(url)
                .header("accept", "text/html")
                .header("cookie", cookies)
                .send()
                .await
                .unwrap();
            (res.status().as_u16(), unescape(&res.text().await.unwrap()))
        }
    };
    let (status, html) = get(format!("/cases/{case_id}/view?version=99")).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("This case has no prediction version 99; the latest is shown."),
        "{html}"
    );
    let (status, html) = get(format!("/cases/{case_id}/view?version=abc&reviewed=zz")).await;
    assert_eq!(status, 200);
    assert!(html.contains("no prediction version abc"));
    let (status, html) = get("/worklist?study_date_from=2026-13-45&page=abc".into()).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("query parameter study_date_from is not a date"),
        "{html}"
    );
    let (status, html) = get("/worklist?status=lost&page=-4".into()).await;
    assert_eq!(status, 200);
    assert!(
        html.contains("query parameter status is not valid"),
        "{html}"
    );
    // A repeated parameter keeps its first value; a banner cannot be
    // faked by a link.
    let (status, html) = get("/worklist?page=1&page=2&status=predicted&status=x".into()).await;
    assert_eq!(status, 200);
    assert!(!html.contains("is not valid"), "{html}");
    let (status, html) = get(format!(
        "/cases/{case_id}/view?reviewed={}&version=1&version=2",
        uuid::Uuid::now_v7()
    ))
    .await;
    assert_eq!(status, 200);
    assert!(!html.contains("Review saved"), "{html}");
    let (status, _) = get("/audit?from=x&from=y".into()).await;
    assert_eq!(
        status, 403,
        "a clinician's audit page is refused, not a 400"
    );
    let (status, html) = get("/worklist?page=999".into()).await;
    assert_eq!(status, 200);
    assert!(html.contains("No cases"), "{html}");
    let (status, _) = get("/cases/00000000-0000-0000-0000-000000000000/view".into()).await;
    assert_eq!(status, 404);
}
