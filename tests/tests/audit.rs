//! The audit trail over HTTP: exports in FHIR R4 (validated by an
//! independent implementation), NDJSON and CSV, each audited and ending with
//! the chain head; filters; and tamper evidence.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use fusion_schemas::Role;
use fusion_tests::{TestApp, run_tool, spawn_app};

async fn some_activity(app: &TestApp) {
    let token = app.session_for("dr.grey", Role::Clinician).await;
    app.client
        .get(app.url("/auth/me"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(app.login("dr.grey", "wrong password!").await.status(), 401);
    let (id, _) = app.api_key("orthanc", Role::Integration).await;
    app.client
        .get(app.url("/auth/me"))
        .basic_auth(&id, Some("not the secret"))
        .send()
        .await
        .unwrap();
}

async fn export(app: &TestApp, token: &str, query: &str) -> (String, String) {
    let res = app
        .client
        .get(app.url(&format!("/audit/events{query}")))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{query}");
    let head = res.headers()["x-audit-chain-head"]
        .to_str()
        .unwrap()
        .to_owned();
    (head, res.text().await.unwrap())
}

#[tokio::test]
async fn the_fhir_export_validates_lists_every_step_and_ends_with_the_chain_head() {
    let app = spawn_app().await;
    some_activity(&app).await;
    let auditor = app.session_for("compliance", Role::Auditor).await;
    let (head, body) = export(&app, &auditor, "?format=fhir").await;

    let file = app.data_dir.path().join("bundle.json");
    std::fs::write(&file, &body).unwrap();
    let (ok, out) = run_tool("validate_fhir.py", &["bundle", file.to_str().unwrap()]);
    assert!(ok, "FHIR validation failed: {out}");

    let bundle: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(bundle["resourceType"], "Bundle");
    assert_eq!(bundle["type"], "collection");
    assert_eq!(bundle["identifier"]["value"], head.as_str());
    let events: Vec<&serde_json::Value> = bundle["entry"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| &e["resource"])
        .collect();
    let summary: Vec<(String, String, String)> = events
        .iter()
        .map(|e| {
            (
                e["type"]["code"].as_str().unwrap().to_owned(),
                e["subtype"][0]["code"].as_str().unwrap().to_owned(),
                e["outcome"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("110113", "user-create", "0"),
        ("110114", "login", "0"),
        ("110114", "login", "8"),
        ("110113", "api-key-create", "0"),
        ("110114", "credential-check", "8"),
        ("110113", "user-create", "0"),
        ("110114", "login", "0"),
        ("110106", "audit-export", "0"),
    ];
    let expected: Vec<(String, String, String)> = expected
        .iter()
        .map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned()))
        .collect();
    assert_eq!(summary, expected);
    // The last event is this export, by the auditor, and its hash is the head.
    let last = events.last().unwrap();
    assert_eq!(last["agent"][0]["who"]["display"], "compliance");
    assert_eq!(last["agent"][0]["role"][0]["text"], "auditor");
    let hash_ext = last["extension"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["url"] == fusion_app::audit_export::EXT_AUDIT_HASH)
        .unwrap();
    assert_eq!(hash_ext["valueString"], head.as_str());
}

#[tokio::test]
async fn ndjson_and_csv_exports_end_with_the_chain_head() {
    let app = spawn_app().await;
    some_activity(&app).await;
    let auditor = app.session_for("compliance", Role::Auditor).await;

    let (head, ndjson) = export(&app, &auditor, "?format=ndjson").await;
    let file = app.data_dir.path().join("events.ndjson");
    std::fs::write(&file, &ndjson).unwrap();
    let (ok, out) = run_tool("validate_fhir.py", &["ndjson", file.to_str().unwrap()]);
    assert!(ok, "{out}");
    let last: serde_json::Value = serde_json::from_str(ndjson.lines().last().unwrap()).unwrap();
    assert_eq!(last["resourceType"], "Parameters");
    assert_eq!(last["parameter"][0]["valueString"], head.as_str());

    let (head, csv) = export(&app, &auditor, "?format=csv").await;
    let lines: Vec<&str> = csv.lines().collect();
    assert!(lines[0].starts_with("seq,recorded_at,type_code"));
    let n = lines.len() - 2;
    assert_eq!(
        *lines.last().unwrap(),
        format!("# chain_head={head} events={n}")
    );

    // Accept-header negotiation gives the Bundle.
    let res = app
        .client
        .get(app.url("/audit/events"))
        .bearer_auth(&auditor)
        .header("Accept", "application/fhir+json")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "application/fhir+json");
}

#[tokio::test]
async fn filters_select_by_agent_and_outcome() {
    let app = spawn_app().await;
    some_activity(&app).await;
    let auditor = app.session_for("compliance", Role::Auditor).await;
    let (_, body) = export(&app, &auditor, "?outcome=8").await;
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let subtypes: Vec<&str> = json["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["subtype"].as_str().unwrap())
        .collect();
    assert_eq!(subtypes, ["login", "credential-check"]);
    // By agent: dr.grey's login, and the failed login that named dr.grey.
    let (_, body) = export(&app, &auditor, "?agent=dr.grey&action=E").await;
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    let outcomes: Vec<&str> = json["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["outcome"].as_str().unwrap())
        .collect();
    assert_eq!(outcomes, ["0", "8"], "{body}");
    let res = app
        .client
        .get(app.url("/audit/events?format=xml"))
        .bearer_auth(&auditor)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
}

#[tokio::test]
async fn verify_finds_a_row_tampered_with_by_the_database_owner() {
    let app = spawn_app().await;
    some_activity(&app).await;
    let auditor = app.session_for("compliance", Role::Auditor).await;
    let verify = |token: String| {
        let app = &app;
        async move {
            let res = app
                .client
                .get(app.url("/audit/verify"))
                .bearer_auth(token)
                .send()
                .await
                .unwrap();
            assert_eq!(res.status(), 200);
            res.json::<serde_json::Value>().await.unwrap()
        }
    };
    let report = verify(auditor.clone()).await;
    assert!(report["first_break"].is_null(), "{report}");

    // The owner can bypass the append-only trigger; the chain still shows it.
    let mut owner = app.pg().admin_of_app().await;
    for sql in [
        "ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only",
        "UPDATE audit_events SET agent = jsonb_set(agent, '{name}', '\"mallory\"') WHERE seq = 3",
        "ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only",
    ] {
        sqlx::query(sql).execute(&mut owner).await.unwrap();
    }
    let report = verify(auditor).await;
    assert_eq!(report["first_break"]["seq"], 3, "{report}");
    assert_eq!(
        report["first_break"]["problem"],
        "hash does not match the event's content"
    );

    // Deleting a row is found too, as a gap.
    for sql in [
        "ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only",
        "UPDATE audit_events SET agent = jsonb_set(agent, '{name}', '\"dr.grey\"') WHERE seq = 3",
        "DELETE FROM audit_events WHERE seq = 5",
        "ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only",
    ] {
        sqlx::query(sql).execute(&mut owner).await.unwrap();
    }
    let report = fusion_store::verify_chain(app.state.repository.as_ref())
        .await
        .unwrap();
    let b = report.first_break.unwrap();
    assert_eq!(b.seq, 6);
    assert!(b.problem.starts_with("sequence gap"), "{}", b.problem);
}

/// compliance/deployment.md: with the documented grants, the service's own
/// database role writes audit events but cannot change or delete them, even
/// with the trigger out of the way.
#[tokio::test]
async fn the_documented_app_role_may_only_insert_audit_events() {
    let app = spawn_app().await;
    some_activity(&app).await;
    let role = format!("fusion_app_{}", uuid::Uuid::new_v4().simple());
    let db = &app.pg().name;
    let mut owner = app.pg().admin_of_app().await;
    for sql in [
        format!("CREATE ROLE {role} LOGIN"),
        format!("GRANT CONNECT ON DATABASE \"{db}\" TO {role}"),
        format!("GRANT USAGE ON SCHEMA public TO {role}"),
        format!("GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}"),
        format!("REVOKE UPDATE, DELETE, TRUNCATE ON audit_events FROM {role}"),
        format!("GRANT SELECT, INSERT ON audit_events TO {role}"),
        "ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only".to_owned(),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut owner)
            .await
            .unwrap();
    }
    // The service works under that role (no migrations at start).
    let url = app.pg().url.replace("postgres@", &format!("{role}@"));
    let dir = tempfile::tempdir().unwrap();
    let env = vec![
        ("DATABASE_URL".to_owned(), url.clone()),
        (
            "FUSION_DATA_DIR".to_owned(),
            dir.path().display().to_string(),
        ),
        ("FUSION_MIGRATE_ON_START".to_owned(), "false".to_owned()),
    ];
    let settings = fusion_app::Settings::load_from(
        &fusion_app::config::Overrides {
            bind: Some("127.0.0.1:0".parse().unwrap()),
            ..Default::default()
        },
        env,
    )
    .unwrap();
    let state = fusion_app::connect_storage(&settings).await.unwrap();
    fusion_app::admin::add_user(
        &state,
        &fusion_tests::operator(),
        "dr.under-app-role",
        Role::Clinician,
        &secrecy::SecretString::from("a-long-enough-password".to_owned()),
    )
    .await
    .unwrap();
    use sqlx::Connection;
    let mut as_app = sqlx::PgConnection::connect(&url).await.unwrap();
    for sql in [
        "UPDATE audit_events SET outcome = '0'",
        "DELETE FROM audit_events",
    ] {
        let err = sqlx::query(sql)
            .execute(&mut as_app)
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("permission denied"), "{sql}: {err}");
    }
    sqlx::query("ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only")
        .execute(&mut owner)
        .await
        .unwrap();
    drop(as_app);
    drop(state);
    let report = fusion_store::verify_chain(app.state.repository.as_ref())
        .await
        .unwrap();
    assert!(report.first_break.is_none());
    // Roles are cluster-wide: remove ours.
    for sql in [
        format!("REASSIGN OWNED BY {role} TO postgres"),
        format!("DROP OWNED BY {role}"),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut owner)
            .await
            .unwrap();
    }
    let mut server = app.pg().admin().await;
    let _ = sqlx::query(sqlx::AssertSqlSafe(format!("DROP ROLE IF EXISTS {role}")))
        .execute(&mut server)
        .await;
}

/// Rewrites the trail from `from_seq` on as a database owner who knows the
/// (keyless) hash: each event's `prev_hash` and `hash` recomputed so the
/// chain links again.
async fn rechain_from(app: &TestApp, owner: &mut sqlx::PgConnection, from_seq: i64) {
    let events = app.state.repository.audit_after(0, 10_000).await.unwrap();
    let mut prev = events
        .iter()
        .find(|e| e.seq == from_seq - 1)
        .map(|e| e.hash.clone())
        .unwrap();
    sqlx::query("ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only")
        .execute(&mut *owner)
        .await
        .unwrap();
    for e in events.iter().filter(|e| e.seq >= from_seq) {
        let hash = fusion_store::audit::chain_hash(e.seq, e.recorded_at, &e.record, &prev).unwrap();
        sqlx::query("UPDATE audit_events SET prev_hash = $1, hash = $2 WHERE seq = $3")
            .bind(&prev)
            .bind(&hash)
            .bind(e.seq)
            .execute(&mut *owner)
            .await
            .unwrap();
        prev = hash;
    }
    sqlx::query("ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only")
        .execute(&mut *owner)
        .await
        .unwrap();
}

/// Activity after a head was taken: a failed login and a new key.
async fn more_activity(app: &TestApp, name: &str) {
    assert_eq!(app.login(name, "wrong password!").await.status(), 401);
    app.api_key(name, Role::Integration).await;
}

/// Issue #14, finding 5: deleting the newest events, or editing one and
/// recomputing every later hash, leaves a chain that links, so a check of
/// the chain alone says "intact" (shown first). A head kept outside the
/// database (`expect_head`, `expect_seq`) finds both.
#[tokio::test]
async fn an_expected_head_finds_a_truncated_or_rewritten_tail() {
    let app = spawn_app().await;
    some_activity(&app).await;
    let auditor = app.session_for("compliance", Role::Auditor).await;
    let verify = |query: String| {
        let app = &app;
        let auditor = auditor.clone();
        async move {
            let res = app
                .client
                .get(app.url(&format!("/audit/verify{query}")))
                .bearer_auth(auditor)
                .send()
                .await
                .unwrap();
            let status = res.status().as_u16();
            (status, res.json::<serde_json::Value>().await.unwrap())
        }
    };
    // The head as an auditor would publish it (the verify call itself then
    // appends one more event).
    let (_, report) = verify(String::new()).await;
    assert!(report["first_break"].is_null(), "{report}");
    let head = report["head"].as_str().unwrap().to_owned();
    let seq = report["events"].as_i64().unwrap();
    more_activity(&app, "later").await;
    let anchored = format!("?expect_head={head}&expect_seq={seq}");
    let (status, report) = verify(anchored.clone()).await;
    assert_eq!(status, 200);
    assert!(report["first_break"].is_null(), "{report}");
    let (_, report) = verify(format!("?expect_head={head}")).await;
    assert!(report["first_break"].is_null(), "{report}");
    let (status, _) = verify("?expect_head=zz".to_owned()).await;
    assert_eq!(status, 400);

    // Rewrite: event 3 edited, every later hash recomputed.
    let mut owner = app.pg().admin_of_app().await;
    for sql in [
        "ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only",
        "UPDATE audit_events SET agent = jsonb_set(agent, '{name}', '\"mallory\"') WHERE seq = 3",
        "ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only",
    ] {
        sqlx::query(sql).execute(&mut owner).await.unwrap();
    }
    rechain_from(&app, &mut owner, 3).await;
    let plain = fusion_store::verify_chain(app.state.repository.as_ref())
        .await
        .unwrap();
    assert!(plain.first_break.is_none(), "the chain alone cannot see it");
    let (_, report) = verify(anchored.clone()).await;
    assert_eq!(report["first_break"]["seq"], seq, "{report}");
    assert!(
        report["first_break"]["problem"]
            .as_str()
            .unwrap()
            .contains("rewritten"),
        "{report}"
    );
    let (_, report) = verify(format!("?expect_head={head}")).await;
    assert!(!report["first_break"].is_null(), "{report}");

    // Truncation, on a trail of its own: the newest events from one before
    // the anchor on deleted.
    let app = spawn_app().await;
    some_activity(&app).await;
    let report = fusion_store::verify_chain(app.state.repository.as_ref())
        .await
        .unwrap();
    let (head, seq) = (report.head.unwrap(), report.events as i64);
    more_activity(&app, "later").await;
    let anchor = fusion_store::ChainAnchor {
        hash: head,
        seq: Some(seq),
    };
    let mut owner = app.pg().admin_of_app().await;
    for sql in [
        "ALTER TABLE audit_events DISABLE TRIGGER audit_events_append_only".to_owned(),
        format!("DELETE FROM audit_events WHERE seq >= {}", seq - 1),
        "ALTER TABLE audit_events ENABLE TRIGGER audit_events_append_only".to_owned(),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(&mut owner)
            .await
            .unwrap();
    }
    let plain = fusion_store::verify_chain(app.state.repository.as_ref())
        .await
        .unwrap();
    assert!(plain.first_break.is_none(), "the chain alone cannot see it");
    let report = fusion_store::verify_chain_against(app.state.repository.as_ref(), Some(anchor))
        .await
        .unwrap();
    let b = report.first_break.unwrap();
    assert_eq!(b.seq, seq);
    assert!(b.problem.contains("truncated"), "{}", b.problem);
}
