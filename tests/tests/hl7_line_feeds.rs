//! HL7 v2 messages as hospital feeds send them (issue #15, item 13): report
//! text with bare line feeds inside OBX-5, and segments ended by CR (HL7
//! v2.5.1 §2.5, the standard), CRLF or LF. A line feed inside a field is
//! text, not a new segment: the note is stored with those lines, exactly as
//! two independent parsers from PyPI (`hl7`, `hl7apy`) split the
//! CR-terminated message. The escaped forms of a line break (`\X0A\`,
//! `\.br\`, §2.7.3 and §2.7.6) give the same text.
//!
//! Names and identifiers are invented.

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use fusion_schemas::Role;
use fusion_tests::{TestApp, run_tool_async, spawn_app};
use serde_json::Value;

/// The message with segment terminator `end`, and `lf` where the sender put a
/// line break inside OBX-5.
fn report(end: &str, lf: &str, n: u32) -> String {
    [
        format!(
            "MSH|^~\\&|RIS|GENERAL|FUSION|GENERAL|20240410091500||ORU^R01^ORU_R01|MSG-LF{n}|P|2.5.1"
        ),
        format!("PID|1||TP-41{n:02}^^^GENERAL^MR||Testpatient^Robin||19750203|U"),
        format!("OBR|1|PLC-41{n:02}|ACC-41{n:02}|36643-5^XR Chest 2V^LN|||20240410090000"),
        format!(
            "OBX|1|TX|18782-3^Radiology Study observation^LN||FINDINGS:{lf}No focal consolidation.{lf}No pleural effusion.||||||F"
        ),
        format!("OBX|2|TX|19005-8^Impression^LN||IMPRESSION:{lf}Normal chest.||||||F"),
    ]
    .join(end)
        + end
}

const TEXT: &str =
    "FINDINGS:\nNo focal consolidation.\nNo pleural effusion.\nIMPRESSION:\nNormal chest.";

async fn submit(app: &TestApp, key: &(String, String), body: String) -> (u16, Value) {
    let res = app
        .client
        .post(app.url("/notes"))
        .basic_auth(&key.0, Some(&key.1))
        .header("content-type", "application/hl7-v2")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap())
}

async fn stored_text(app: &TestApp, key: &(String, String), id: &str) -> String {
    let res = app
        .client
        .get(app.url(&format!("/notes/{id}")))
        .basic_auth(&key.0, Some(&key.1))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let note: Value = res.json().await.unwrap();
    note["text"].as_str().unwrap().to_owned()
}

/// What `hl7` and `hl7apy` make of a message (tests/tools/hl7_split_check.py).
async fn third_party_split(app: &TestApp, name: &str, message: &str) -> Value {
    let file = app.data_dir.path().join(name);
    std::fs::write(&file, message).unwrap();
    let (ok, out) = run_tool_async("hl7_split_check.py", &[file.to_str().unwrap()]).await;
    assert!(ok, "{out}");
    serde_json::from_str(out.trim()).unwrap()
}

#[tokio::test]
async fn a_line_feed_inside_a_field_is_text_in_every_segment_terminator() {
    let app = spawn_app().await;
    let key = app.api_key("ris-feed", Role::Integration).await;

    // The standard terminator, CR, with bare LFs in OBX-5: both PyPI parsers
    // see five segments and the line breaks inside OBX-5.
    let cr = report("\r", "\n", 1);
    let split = third_party_split(&app, "cr.hl7", &cr).await;
    for parser in ["hl7", "hl7apy"] {
        assert_eq!(
            split[parser]["segments"],
            serde_json::json!(["MSH", "PID", "OBR", "OBX", "OBX"]),
            "{parser}: {split}"
        );
        assert_eq!(
            split[parser]["obx5"],
            serde_json::json!([
                "FINDINGS:\nNo focal consolidation.\nNo pleural effusion.",
                "IMPRESSION:\nNormal chest."
            ]),
            "{parser}: {split}"
        );
    }

    // The service stores the same lines (before: 400 hl7_malformed, "segment
    // ID must be three upper-case letters or digits" at "No focal …").
    let (status, note) = submit(&app, &key, cr).await;
    assert_eq!(status, 201, "{note}");
    assert_eq!(note["source_format"], "hl7v2-oru");
    assert_eq!(note["patient_id"], "TP-4101");
    assert_eq!(note["accession_number"], "ACC-4101");
    assert_eq!(note["labels"]["pleural_effusion"], "negative", "{note}");
    assert_eq!(note["labels"]["consolidation"], "negative", "{note}");
    assert_eq!(
        stored_text(&app, &key, note["id"].as_str().unwrap()).await,
        TEXT
    );

    // CRLF and LF terminators (Windows engines, files through Unix tools):
    // the PyPI parsers refuse them (hl7apy) or misread them (hl7 keeps the
    // LF in the next segment's ID: "\nPID", and finds no OBX); the service
    // reads the same report.
    for (n, end) in [(2, "\r\n"), (3, "\n")] {
        let message = report(end, "\n", n);
        let split = third_party_split(&app, &format!("end{n}.hl7"), &message).await;
        for parser in ["hl7", "hl7apy"] {
            assert!(
                split[parser].get("error").is_some()
                    || split[parser]["segments"]
                        != serde_json::json!(["MSH", "PID", "OBR", "OBX", "OBX"]),
                "{end:?}: {split}"
            );
        }
        let (status, note) = submit(&app, &key, message).await;
        assert_eq!(status, 201, "{end:?}: {note}");
        assert_eq!(note["accession_number"], format!("ACC-41{n:02}"));
        assert_eq!(
            stored_text(&app, &key, note["id"].as_str().unwrap()).await,
            TEXT,
            "{end:?}"
        );
    }

    // The escaped line breaks of §2.7 give the same text.
    for (n, lf) in [(4, "\\X0A\\"), (5, "\\.br\\"), (6, "\\X0D0A\\")] {
        let (status, note) = submit(&app, &key, report("\r", lf, n)).await;
        assert_eq!(status, 201, "{lf}: {note}");
        assert_eq!(
            stored_text(&app, &key, note["id"].as_str().unwrap()).await,
            TEXT,
            "{lf}"
        );
    }

    // A line that is not a segment is still refused where CR says it is one.
    let (status, body) = submit(
        &app,
        &key,
        "MSH|^~\\&|RIS|GENERAL|FUSION|GENERAL|20240410091500||ORU^R01|MSG-LF7|P|2.5.1\rpid|1||TP-4107\r"
            .to_owned(),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["code"], "hl7_malformed");
}
