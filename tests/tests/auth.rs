//! Authentication and roles over HTTP: every route needs credentials, the
//! permission matrix is what it says, logins throttle and lock, API keys work
//! as Basic and Bearer credentials, cookie sessions need CSRF tokens.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;

use fusion_api::auth::{Permission, allows};
use fusion_api::route_table::{Access, table};
use fusion_schemas::Role;
use fusion_store::{AuditEventType, AuditFilter, AuditOutcome};
use fusion_tests::{TestApp, spawn_app};
use reqwest::Method;

/// A concrete path for a route pattern: each `{param}` becomes a value that
/// parses (a UID-shaped string) but names nothing.
fn concrete(pattern: &str) -> String {
    let mut out = String::new();
    let mut in_param = false;
    for c in pattern.chars() {
        match c {
            '{' => in_param = true,
            '}' => {
                in_param = false;
                out.push_str("1.2.3");
            }
            _ if in_param => {}
            _ => out.push(c),
        }
    }
    out
}

async fn call(app: &TestApp, method: &str, path: &str, auth: Option<&str>) -> reqwest::Response {
    let method = Method::from_bytes(method.as_bytes()).unwrap();
    let mut req = app.client.request(method, app.url(path));
    if let Some(token) = auth {
        req = req.bearer_auth(token);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn every_route_but_health_and_login_requires_authentication() {
    let app = spawn_app().await;
    let public: Vec<&str> = table()
        .iter()
        .filter(|r| r.access == Access::Public)
        .map(|r| r.path)
        .collect();
    // The probes, the API's OpenAPI description, the JSON login, and for
    // browsers the HTML login form and the dashboard's static CSS/JS (no
    // data) — nothing else.
    assert_eq!(
        public,
        [
            "/healthz",
            "/readyz",
            "/openapi.json",
            "/auth/login",
            "/static/{file}",
            "/login",
            "/login"
        ]
    );
    for route in table().iter().filter(|r| r.access != Access::Public) {
        let res = call(&app, route.method.as_str(), &concrete(route.path), None).await;
        assert_eq!(
            res.status(),
            401,
            "{} {} without credentials",
            route.method,
            route.path
        );
        assert!(res.headers().contains_key("www-authenticate"));
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["code"], "unauthenticated");
    }
    // A route that does not exist is not a way around authentication either.
    assert_eq!(
        call(&app, "GET", "/no/such/route", None).await.status(),
        401
    );
}

/// The matrix as the product defines it (README, compliance/hipaa-164-312.md).
fn expected_matrix() -> BTreeMap<(Role, Permission), bool> {
    use Permission as P;
    use Role as R;
    let grants: &[(Permission, &[Role])] = &[
        (P::StoreInstances, &[R::Integration]),
        (P::SubmitNotes, &[R::Integration]),
        (P::ReadOwnSubmissions, &[R::Integration]),
        (P::ReadImages, &[R::Clinician]),
        (P::ReadNotes, &[R::Clinician]),
        (P::ReadCases, &[R::Clinician]),
        (P::RunPredictions, &[R::Integration, R::Clinician]),
        (P::ReviewPredictions, &[R::Clinician]),
        (P::ReadAudit, &[R::Auditor]),
        (P::ManageIdentities, &[R::Admin]),
        (P::ManageModels, &[R::Admin]),
        (
            P::ReadSelf,
            &[R::Integration, R::Clinician, R::Auditor, R::Admin],
        ),
    ];
    let mut m = BTreeMap::new();
    for (p, roles) in grants {
        for r in Role::ALL {
            m.insert((r, *p), roles.contains(&r));
        }
    }
    m
}

#[test]
fn the_permission_matrix_is_as_specified_cell_by_cell() {
    let expected = expected_matrix();
    assert_eq!(expected.len(), Role::ALL.len() * Permission::ALL.len());
    for ((role, permission), want) in expected {
        assert_eq!(allows(role, permission), want, "{role} / {permission:?}");
    }
}

#[tokio::test]
async fn every_route_enforces_its_permission_for_every_role() {
    // Many logins from one address: lift the per-address throttle here.
    let app = fusion_tests::spawn_app_with(|s| s.login_attempts_per_minute = 1000).await;
    let mut tokens = Vec::new();
    for role in Role::ALL {
        tokens.push((role, app.session_for(&format!("user-{role}"), role).await));
    }
    // Logging out ends the session the other checks use: do it last.
    let mut routes: Vec<_> = table().iter().collect();
    routes.sort_by_key(|r| r.path == "/auth/logout" || r.path == "/logout");
    let mut fresh = 0;
    for route in routes {
        if route.path.ends_with("logout") {
            // Each logout ends the sessions: log in anew for it.
            fresh += 1;
            tokens.clear();
            for role in Role::ALL {
                let name = format!("user-{role}-{fresh}");
                tokens.push((role, app.session_for(&name, role).await));
            }
        }
        let needed = match route.access {
            Access::Any(needed) | Access::Page(needed) => needed,
            Access::Public => continue,
        };
        for (role, token) in &tokens {
            let res = call(
                &app,
                route.method.as_str(),
                &concrete(route.path),
                Some(token),
            )
            .await;
            let allowed = needed.iter().any(|p| allows(*role, *p));
            if allowed {
                assert_ne!(
                    res.status(),
                    403,
                    "{role} on {} {}",
                    route.method,
                    route.path
                );
                assert_ne!(
                    res.status(),
                    401,
                    "{role} on {} {}",
                    route.method,
                    route.path
                );
            } else {
                assert_eq!(
                    res.status(),
                    403,
                    "{role} on {} {}",
                    route.method,
                    route.path
                );
                if matches!(route.access, Access::Any(_)) {
                    let body: serde_json::Value = res.json().await.unwrap();
                    assert_eq!(body["code"], "forbidden");
                }
            }
        }
    }
}

#[tokio::test]
async fn login_gives_a_bearer_token_and_a_strict_cookie_and_logout_revokes_it() {
    let app = spawn_app().await;
    let password = app.add_user("dr.house", Role::Clinician).await;
    let res = app.login("dr.house", &password).await;
    assert_eq!(res.status(), 200);
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_owned();
    for attr in [
        "fusion_session=",
        "HttpOnly",
        "Secure",
        "SameSite=Strict",
        "Path=/",
    ] {
        assert!(cookie.contains(attr), "{attr} missing in {cookie}");
    }
    let body: serde_json::Value = res.json().await.unwrap();
    let token = body["token"].as_str().unwrap().to_owned();
    assert_eq!(token.len(), 43, "256-bit token, base64url");
    assert_eq!(body["role"], "clinician");

    let me = call(&app, "GET", "/auth/me", Some(&token)).await;
    assert_eq!(me.status(), 200);
    let me: serde_json::Value = me.json().await.unwrap();
    assert_eq!(me["name"], "dr.house");
    assert_eq!(me["kind"], "user");

    assert_eq!(
        call(&app, "POST", "/auth/logout", Some(&token))
            .await
            .status(),
        204
    );
    assert_eq!(
        call(&app, "GET", "/auth/me", Some(&token)).await.status(),
        401
    );

    // The session table holds the token's hash, never the token.
    let hashes: Vec<(String,)> = sqlx::query_as("SELECT token_hash FROM sessions")
        .fetch_all(&mut app.pg().admin_of_app().await)
        .await
        .unwrap();
    assert!(hashes.iter().all(|(h,)| h != &token && h.len() == 64));
}

#[tokio::test]
async fn failed_logins_look_alike_whether_or_not_the_user_exists() {
    let app = spawn_app().await;
    app.add_user("dr.cuddy", Role::Clinician).await;
    let wrong = app.login("dr.cuddy", "not-the-password").await;
    let unknown = app.login("dr.nobody", "not-the-password").await;
    assert_eq!(wrong.status(), 401);
    assert_eq!(unknown.status(), 401);
    let wrong: serde_json::Value = wrong.json().await.unwrap();
    let unknown: serde_json::Value = unknown.json().await.unwrap();
    assert_eq!(wrong, unknown);
    // Both failures are audited as serious failures of user authentication.
    let failures = app
        .state
        .repository
        .audit_events(&AuditFilter {
            outcome: Some(AuditOutcome::SeriousFailure),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let names: Vec<&str> = failures
        .iter()
        .map(|e| e.record.agent.name.as_str())
        .collect();
    assert_eq!(names, ["dr.cuddy", "dr.nobody"]);
    assert!(
        failures
            .iter()
            .all(|e| e.record.event_type.code() == "110114")
    );
}

#[tokio::test]
async fn repeated_failures_lock_the_account() {
    let app = spawn_app().await;
    let password = app.add_user("dr.wilson", Role::Clinician).await;
    for _ in 0..5 {
        assert_eq!(
            app.login("dr.wilson", "guess-guess-guess").await.status(),
            401
        );
    }
    // Locked: even the right password is refused, with the same answer.
    let res = app.login("dr.wilson", &password).await;
    assert_eq!(res.status(), 401);
    let user = app
        .state
        .repository
        .user_by_name("dr.wilson")
        .await
        .unwrap()
        .unwrap();
    assert!(user.locked_until.is_some());
    // An administrator's password reset lifts the lock.
    let new = secrecy::SecretString::from("a-brand-new-passphrase".to_owned());
    fusion_app::admin::reset_password(&app.state, &fusion_tests::operator(), "dr.wilson", &new)
        .await
        .unwrap();
    assert_eq!(
        app.login("dr.wilson", "a-brand-new-passphrase")
            .await
            .status(),
        200
    );
}

#[tokio::test]
async fn login_attempts_are_throttled_per_client_address() {
    let app = spawn_app().await;
    let mut statuses = Vec::new();
    for i in 0..12 {
        statuses.push(
            app.login(&format!("someone-{i}"), "x")
                .await
                .status()
                .as_u16(),
        );
    }
    assert_eq!(&statuses[..10], &[401; 10]);
    assert_eq!(&statuses[10..], &[429, 429]);
}

#[tokio::test]
async fn an_api_key_works_as_basic_and_as_bearer_credentials() {
    let app = spawn_app().await;
    let (id, secret) = app.api_key("orthanc", Role::Integration).await;
    let basic = app
        .client
        .get(app.url("/auth/me"))
        .basic_auth(&id, Some(&secret))
        .send()
        .await
        .unwrap();
    assert_eq!(basic.status(), 200);
    let me: serde_json::Value = basic.json().await.unwrap();
    assert_eq!(me["kind"], "api_key");
    assert_eq!(me["role"], "integration");
    assert_eq!(me["name"], "orthanc");
    let bearer = call(&app, "GET", "/auth/me", Some(&format!("{id}.{secret}"))).await;
    assert_eq!(bearer.status(), 200);

    // A wrong secret is refused and audited.
    let wrong = app
        .client
        .get(app.url("/auth/me"))
        .basic_auth(&id, Some("wrong-secret"))
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let failures = app
        .state
        .repository
        .audit_events(&AuditFilter {
            outcome: Some(AuditOutcome::SeriousFailure),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(failures.len(), 1);
    assert_eq!(
        failures[0].record.outcome_desc.as_deref(),
        Some("wrong API key secret")
    );
    assert_eq!(failures[0].record.entities[0].id, id);
    assert_eq!(
        failures[0].record.agent.address.as_deref(),
        Some("127.0.0.1")
    );

    // A revoked key stops working.
    fusion_app::admin::revoke_api_key(&app.state, &fusion_tests::operator(), &id)
        .await
        .unwrap();
    let revoked = app
        .client
        .get(app.url("/auth/me"))
        .basic_auth(&id, Some(&secret))
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 401);
}

#[tokio::test]
async fn an_idle_session_ends() {
    let app = spawn_app().await;
    let token = app.session_for("dr.chase", Role::Clinician).await;
    assert_eq!(
        call(&app, "GET", "/auth/me", Some(&token)).await.status(),
        200
    );
    // Two hours without a request (default idle timeout: 30 minutes).
    sqlx::query("UPDATE sessions SET last_seen_at = now() - interval '2 hours'")
        .execute(&mut app.pg().admin_of_app().await)
        .await
        .unwrap();
    assert_eq!(
        call(&app, "GET", "/auth/me", Some(&token)).await.status(),
        401
    );
}

#[tokio::test]
async fn a_cookie_session_needs_the_csrf_token_to_change_state() {
    let app = spawn_app().await;
    let password = app.add_user("dr.foreman", Role::Clinician).await;
    let client = reqwest::Client::builder()
        .cookie_store(true)
        .build()
        .unwrap();
    let res = client
        .post(app.url("/auth/login"))
        .json(&serde_json::json!({ "username": "dr.foreman", "password": password }))
        .send()
        .await
        .unwrap();
    let body: serde_json::Value = res.json().await.unwrap();
    let csrf = body["csrf_token"].as_str().unwrap().to_owned();
    // Reads work with the cookie alone.
    assert_eq!(
        client
            .get(app.url("/auth/me"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    // A state-changing request without the token is refused.
    let res = client.post(app.url("/auth/logout")).send().await.unwrap();
    assert_eq!(res.status(), 403);
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["code"], "csrf");
    let res = client
        .post(app.url("/auth/logout"))
        .header("X-CSRF-Token", "forged")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 403);
    // Both refusals are security alerts in the audit trail, naming the
    // route, never the token.
    let events = app
        .state
        .repository
        .audit_events(&AuditFilter::default())
        .await
        .unwrap();
    let refused: Vec<_> = events
        .iter()
        .filter(|e| {
            e.record.subtype == "access-denied"
                && e.record
                    .outcome_desc
                    .as_deref()
                    .is_some_and(|d| d.contains("CSRF"))
        })
        .collect();
    assert_eq!(refused.len(), 2, "{events:#?}");
    for e in refused {
        assert_eq!(e.record.event_type, AuditEventType::SecurityAlert);
        let desc = e.record.outcome_desc.as_deref().unwrap();
        assert!(desc.ends_with("POST /auth/logout"), "{desc}");
        assert!(!desc.contains("forged"), "{desc}");
    }
    // As a form field (HTML forms) it works, and so does the header.
    let res = client
        .post(app.url("/auth/logout"))
        .form(&[("csrf_token", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
}

/// Issue #14, finding 2: 40 wrong passwords at once from 40 addresses (so
/// the per-address throttle does not apply), and the right one 20 ms later
/// from a 41st. The lock must hold: the right password is refused, at most
/// `FUSION_LOCKOUT_FAILURES` passwords are checked against the account's hash
/// for the one lock, every attempt is audited and the lock is an audit event
/// of its own. Before the fix the lock was read, argon2 ran, then the failure
/// was counted: 30 to 40 passwords were checked per lock and the right one
/// was accepted in 2 of 3 runs.
#[tokio::test]
async fn the_lockout_holds_under_a_concurrent_burst_of_guesses() {
    let app = spawn_app().await;
    let password = app.add_user("dr.foreman", Role::Clinician).await;
    // Loopback is 127.0.0.0/8 on Linux: each client speaks from its own
    // address.
    let client_at = |i: u8| {
        reqwest::Client::builder()
            .local_address(std::net::IpAddr::from([127, 0, 0, i]))
            .build()
            .unwrap()
    };
    let login = |client: reqwest::Client, password: String| {
        let url = app.url("/auth/login");
        async move {
            client
                .post(url)
                .json(&serde_json::json!({ "username": "dr.foreman", "password": password }))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    let wrong: Vec<_> = (0..40u8)
        .map(|i| tokio::spawn(login(client_at(10 + i), format!("guess-{i}-0123456789"))))
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let right = login(client_at(60), password.clone()).await;
    let mut statuses = Vec::new();
    for w in wrong {
        statuses.push(w.await.unwrap());
    }

    let events = app
        .state
        .repository
        .audit_events(&AuditFilter::default())
        .await
        .unwrap();
    let logins: Vec<_> = events
        .iter()
        .filter(|e| e.record.subtype == "login")
        .collect();
    let reason = |r: &str| {
        logins
            .iter()
            .filter(|e| e.record.outcome_desc.as_deref() == Some(r))
            .count()
    };
    let successes = logins
        .iter()
        .filter(|e| e.record.outcome == AuditOutcome::Success)
        .count();
    // Checked against the account's own hash: the wrong ones that were
    // admitted, the right one if it was admitted (accepted, or refused
    // because the lock came while it was checked).
    let checked = reason("wrong password")
        + successes
        + reason("account locked while the password was checked");
    let locks = events
        .iter()
        .filter(|e| e.record.subtype == "account-lock")
        .count();
    println!(
        "burst: right password answered {right}; {checked} passwords checked against the \
         account's hash, {locks} lock event(s); {} of 41 attempts audited \
         (wrong {}, locked {}, throttled {})",
        logins.len(),
        reason("wrong password"),
        reason("account locked"),
        reason("throttled"),
    );
    assert_eq!(
        right, 401,
        "the right password was accepted during the burst"
    );
    assert!(statuses.iter().all(|s| *s == 401), "{statuses:?}");
    assert_eq!(locks, 1, "the lock is one audit event");
    assert!(
        checked <= app.settings.lockout_failures as usize,
        "{checked} passwords checked for one lock"
    );
    assert_eq!(logins.len(), 41, "every attempt is audited");
    let user = app
        .state
        .repository
        .user_by_name("dr.foreman")
        .await
        .unwrap()
        .unwrap();
    assert!(user.locked_until.is_some_and(|t| t > chrono::Utc::now()));
    // Still locked after the burst: the right password is refused without
    // being checked.
    assert_eq!(login(client_at(61), password).await, 401);
}

/// A NUL (which PostgreSQL text refuses) in a login name or a search key is
/// a refused attempt or a 400, never a 500; the login attempt is audited.
#[tokio::test]
async fn control_characters_in_names_and_search_keys_are_refused_not_500() {
    let app = spawn_app().await;
    let res = app
        .client
        .post(app.url("/auth/login"))
        .json(&serde_json::json!({"username": "victim\u{0}", "password": "x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 401);
    let events = app
        .state
        .repository
        .audit_events(&AuditFilter::default())
        .await
        .unwrap();
    assert!(
        events.iter().any(|e| e.record.subtype == "login"
            && e.record.outcome == AuditOutcome::SeriousFailure
            && e.record.agent.name == "victim\u{FFFD}"),
        "the attempt is audited with the NUL replaced"
    );
    let token = app.session_for("dr.nul", Role::Clinician).await;
    let res = app
        .client
        .get(app.url("/dicom-web/studies?PatientID=X%00Y"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    let body: serde_json::Value = res.json().await.unwrap();
    assert!(
        body["message"]
            .as_str()
            .unwrap()
            .contains("control character")
    );
}

/// The router matches the percent-decoded path, the gate reads the route
/// table by the raw one: `/%63ases` is `/cases` to the router and no route
/// to the table. The gate refuses what it cannot place (attack review,
/// HIGH: any credential reached every route that way).
#[tokio::test]
async fn a_percent_encoded_path_never_passes_the_permission_check() {
    let app = fusion_tests::spawn_app().await;
    let auditor = app.session_for("encoded-auditor", Role::Auditor).await;
    assert_eq!(
        call(&app, "GET", "/cases", Some(&auditor)).await.status(),
        403
    );
    for path in [
        "/%63ases",
        "/%61udit/events",
        "/%6detrics",
        "/%77orklist",
        "/%61dmin",
    ] {
        let res = call(&app, "GET", path, Some(&auditor)).await;
        assert_eq!(res.status(), 404, "{path}");
    }
    let (id, secret) = app.api_key("encoded-pacs", Role::Integration).await;
    let key = format!("{id}.{secret}");
    for path in ["/%61udit/verify", "/%63ases", "/%6eotes?patient_id=P1"] {
        let res = call(&app, "GET", path, Some(&key)).await;
        assert_eq!(res.status(), 404, "{path}");
    }
    // Without credentials it is still 401; a plain unknown path still 404.
    assert_eq!(call(&app, "GET", "/%63ases", None).await.status(), 401);
    assert_eq!(
        call(&app, "GET", "/no-such-page", Some(&auditor))
            .await
            .status(),
        404
    );
    // A known path with another method still reaches the router's 405.
    assert_eq!(
        call(&app, "DELETE", "/cases", Some(&auditor))
            .await
            .status(),
        405
    );
}

/// Review finding: an Authorization header the gate cannot read (no scheme,
/// an unknown scheme, Basic that is not base64 of `id:secret`) was answered
/// 401 like a request without credentials and left no trace. It is a failed
/// authentication attempt like a wrong secret: 401 `invalid_credentials`
/// and an audited serious failure naming what was wrong (never the value).
#[tokio::test]
async fn malformed_authorization_headers_are_refused_and_audited() {
    let app = spawn_app().await;
    let cases = [
        (
            "garbage-without-scheme",
            "malformed Authorization header: no scheme and credentials",
        ),
        (
            "Digest username=\"x\"",
            "unsupported Authorization scheme (Bearer or Basic)",
        ),
        (
            "Basic !!!not-base64!!!",
            "malformed Authorization header: Basic credentials are not base64 of id:secret",
        ),
        // base64("no-colon-here")
        (
            "Basic bm8tY29sb24taGVyZQ==",
            "malformed Authorization header: Basic credentials are not base64 of id:secret",
        ),
        // base64("dr.test\nFORGED line:whatever"): an id with a line break,
        // never written into the trail.
        (
            "Basic ZHIudGVzdApGT1JHRUQgbGluZTp3aGF0ZXZlcg==",
            "malformed API key id",
        ),
    ];
    for (value, _) in cases {
        let res = app
            .client
            .get(app.url("/cases"))
            .header("Authorization", value)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "{value}");
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["code"], "invalid_credentials", "{value}");
    }
    let failures = app
        .state
        .repository
        .audit_events(&AuditFilter {
            outcome: Some(AuditOutcome::SeriousFailure),
            ..AuditFilter::default()
        })
        .await
        .unwrap();
    let reasons: Vec<&str> = failures
        .iter()
        .map(|e| e.record.outcome_desc.as_deref().unwrap())
        .collect();
    let expected: Vec<&str> = cases.iter().map(|c| c.1).collect();
    assert_eq!(reasons, expected);
    for e in &failures {
        assert_eq!(e.record.subtype, "credential-check");
        assert_eq!(e.record.agent.address.as_deref(), Some("127.0.0.1"));
        let shown = format!("{:?}", e.record);
        assert!(!shown.contains("FORGED"), "{shown}");
        assert!(
            !shown.contains("bm8tY29sb24") && !shown.contains("not-base64"),
            "{shown}"
        );
    }
}
