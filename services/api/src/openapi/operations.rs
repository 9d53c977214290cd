//! The operations of the JSON API (health, auth, notes, cases, models,
//! audit) and of the dashboard's pages, for [`super::document`]. Query
//! parameters and JSON bodies come from the handlers' own types; answers
//! and error codes are those the handlers and their error enums give.

use super::Op;
use crate::routes::{audit, auth, cases, notes};

/// The media types `POST /notes` takes.
const NOTE_TYPES: &[&str] = &[
    "text/plain",
    "application/fhir+json",
    "application/hl7-v2",
    "x-application/hl7-v2+er7",
];

const HTML: &[&str] = &["text/html"];
const JSON: &[&str] = &["application/json"];

/// Every operation outside DICOMweb.
pub(super) fn all() -> Vec<Op> {
    let mut ops = api();
    ops.extend(pages());
    ops
}

fn api() -> Vec<Op> {
    vec![
        Op::get("/healthz", "health", "Liveness")
            .describe("200 while the process serves requests; touches nothing else.")
            .answers(200, "`{\"status\": \"ok\"}`", JSON),
        Op::get("/readyz", "health", "Readiness")
            .describe("Probes the database and the blob store, each for at most 2 s.")
            .answers_json::<fusion_schemas::Readiness>(200, "Both dependencies answer")
            .answers_json::<fusion_schemas::Readiness>(503, "A dependency does not answer; `reason` says which and why"),
        Op::get("/openapi.json", "api", "This OpenAPI 3.1 document")
            .answers(200, "The document (also checked in as schemas/openapi.json)", JSON),
        Op::post("/auth/login", "auth", "Sign in with a user name and password")
            .describe("Answers a session token (also set as the `fusion_session` cookie with its CSRF token). Argon2id-checked; failed attempts are rate limited per client and lock the account after repeated failures.")
            .json_body::<auth::LoginRequest>("The credentials")
            .answers_json::<auth::LoginResponse>(200, "Signed in")
            .error(400, "`bad_request`: a malformed JSON body")
            .error(401, "`invalid_credentials`: wrong user name or password, or the account is disabled or locked")
            .error(429, "`too_many_attempts`: too many attempts from this client; `Retry-After` says when to retry"),
        Op::post("/auth/logout", "auth", "End the caller's session")
            .answers(204, "The session is revoked", &[]),
        Op::get("/auth/me", "auth", "Who the caller is")
            .answers(200, "`{kind, id, name, role}` of the authenticated user or key", JSON),
        Op::get("/audit/events", "audit", "Export the audit trail")
            .describe("Filtered events in chain order as our JSON, a FHIR R4 Bundle (type `collection`) of AuditEvent, FHIR NDJSON or CSV (`format`, else the `Accept` header). Every export is itself audited and ends with the chain head (`X-Audit-Chain-Head`).")
            .query_of::<audit::EventsQuery>()
            .answers(200, "The events; header `X-Audit-Chain-Head`", &["application/json", "application/fhir+json", "application/fhir+ndjson", "text/csv"])
            .error(400, "`bad_request`: an unknown format, action or outcome, or a malformed time"),
        Op::get("/audit/verify", "audit", "Verify the audit hash chain")
            .describe("Walks the whole chain; with `expect_head` (and `expect_seq`), also reports a trail truncated or rewritten before that head.")
            .query_of::<audit::VerifyQuery>()
            .answers(200, "`{events, head, first_break}`; `first_break` is null when the chain is intact", JSON)
            .error(400, "`bad_request`: a malformed `expect_head` or `expect_seq`"),
        Op::get("/models", "models", "The installed model packages")
            .answers(200, "Packages with their labels, calibration and validation figures, and `not_calibrated`", JSON),
        Op::get("/models/{name}", "models", "One installed model package")
            .answers(200, "The package", JSON)
            .error(404, "`not_found`: no package of that name is installed"),
        Op::post("/notes", "notes", "Submit a clinical note")
            .describe("Plain text (metadata in the query), a FHIR R4 DocumentReference or DiagnosticReport, or an HL7 v2 ORU^R01 / MDM^T02 (ER7; a line feed inside a field is text). The note is decoded, sectioned and labelled, and stored with an audit event.")
            .query_of::<notes::SubmitQuery>()
            .body(NOTE_TYPES, "The note, at most 10 MiB, whose text is at most 64 KiB")
            .answers(201, "`{id, status, patient_id, accession_number, study_instance_uid, source_format, sections, mentions, labels}`; `Location: /notes/{id}`", JSON)
            .error(400, "The intake's code: `empty_body`, `not_utf8`, `invalid_encoding`, `unsupported_charset`, `utf16_without_bom`, `binary_content`, `fhir_malformed`, `fhir_bundle`, `fhir_unsupported_resource`, `fhir_bad_base64`, `fhir_not_usable`, `hl7_no_msh`, `hl7_malformed`, `hl7_unsupported_message`, `invalid_identifier`, `invalid_datetime`; or `invalid_parameter`, `metadata_conflict`, `bad_request`")
            .error(409, "`patient_mismatch`: the note's patient differs from the patient of the study or case it names")
            .error(413, "`too_large`: a body over 10 MiB; `text_too_long`: decoded text over 64 KiB (65,536 bytes of UTF-8)")
            .error(415, "`unsupported_media_type`"),
        Op::get("/notes", "notes", "List note summaries")
            .query_of::<notes::ListQuery>()
            .answers(200, "`{notes: [...]}`, newest first", JSON)
            .error(400, "`bad_request`: no identifier given, or a malformed one"),
        Op::get("/notes/{id}", "notes", "Read a note")
            .describe("Clinicians read any note; an integration client only the notes it sent (others answer 404).")
            .answers(200, "The note with its text, sections, mentions and labels", JSON)
            .error(404, "`not_found`"),
        Op::post("/cases", "cases", "Open (or find) the case of a study or accession")
            .json_body::<cases::OpenCase>("The case key and notes to join")
            .answers(201, "The new case", JSON)
            .answers(200, "The existing case", JSON)
            .error(400, "`case_key_required`, `invalid_accession_number`, `invalid_study_instance_uid`, `too_many_notes`, `unknown_note`, `bad_request`"),
        Op::get("/cases", "cases", "List cases")
            .query_of::<cases::ListQuery>()
            .answers(200, "`{cases: [...], limit, offset}`", JSON)
            .error(400, "`bad_request`, `invalid_parameter`"),
        Op::get("/cases/{id}", "cases", "Read a case")
            .answers(200, "The case with its study, notes and latest prediction", JSON)
            .error(404, "`not_found`"),
        Op::post("/cases/{id}/predictions", "cases", "Request a new prediction of a case")
            .answers(202, "`{job_id, case_id, status: \"queued\"}`; `Location` names the prediction list", JSON)
            .error(404, "`not_found`")
            .error(422, "`no_modality`: neither an image nor a note text to predict from"),
        Op::get("/cases/{id}/predictions", "cases", "Every prediction version of a case")
            .answers(200, "`{predictions: [...]}`, newest first", JSON)
            .error(404, "`not_found`"),
        Op::get("/cases/{id}/fhir", "cases", "The case's latest result as FHIR R4")
            .describe("A FHIR R4 Bundle (type `collection`) of the latest prediction version with its latest review, as delivered to the EHR. Audited as a read.")
            .answers(200, "The Bundle", &["application/fhir+json"])
            .error(404, "`not_found`: no such case, or no prediction yet"),
        Op::get("/cases/{id}/deliveries", "cases", "Where the case's result deliveries stand")
            .describe("The outbox rows of the case, newest first: target (DICOM SR to the PACS, FHIR to the EHR), state, attempts, the destination's last answer, the SR's SOP Instance UID. Audited as a read.")
            .answers(200, "The deliveries", JSON)
            .error(404, "`not_found`"),
        Op::get("/monitoring", "models", "The model monitor's report")
            .describe("JSON, or the dashboard page for a browser (`Accept: text/html`).")
            .answers(200, "The report", &["application/json", "text/html"]),
        Op::get("/metrics", "models", "Operational metrics")
            .answers(200, "Prometheus text exposition format", &["text/plain"]),
        Op::get("/predictions/{id}", "cases", "Read a prediction")
            .describe("Per-label opinions of each modality, the fused opinion (belief, disbelief, uncertainty, base rate), conflict, conformal set, abstention and the model package versions.")
            .answers(200, "The prediction", JSON)
            .error(404, "`not_found`"),
        Op::post("/predictions/{id}/reviews", "cases", "Review a prediction")
            .json_body::<cases::ReviewBody>("A decision per observation, and a comment")
            .answers(201, "The stored review", JSON)
            .error(400, "`invalid_review`, `unknown_observation`, `bad_request`")
            .error(404, "`not_found`")
            .error(422, "`superseded_version`: a newer prediction version exists; review that one"),
        Op::get("/predictions/{id}/reviews", "cases", "The reviews of a prediction")
            .answers(200, "`{reviews: [...]}`", JSON)
            .error(404, "`not_found`"),
    ]
}

fn pages() -> Vec<Op> {
    let page = |path, summary| {
        Op::get(path, "dashboard", summary)
            .describe("A server-rendered HTML page. A browser without a session is redirected (303) to `/login`.")
            .answers(200, "The page", HTML)
            .answers(303, "No session: to `/login?next=…`", &[])
    };
    vec![
        Op::get(
            "/static/{file}",
            "dashboard",
            "The dashboard's CSS and scripts",
        )
        .query(
            "v",
            "Cache-busting version; an asset asked with its current version is cached for a year",
            false,
        )
        .answers(200, "The file", &["text/css", "text/javascript"])
        .error(404, "`not_found`"),
        Op::get("/login", "dashboard", "The sign-in form")
            .query("next", "A local path to return to after signing in", false)
            .query(
                "signed_out",
                "Set after signing out: the page says so",
                false,
            )
            .answers(200, "The form", HTML),
        Op::post("/login", "dashboard", "Sign in from the form")
            .body(
                &["application/x-www-form-urlencoded"],
                "`username`, `password`, `next`",
            )
            .answers(
                303,
                "Signed in: to `next` or `/`, with the session and CSRF cookies",
                &[],
            )
            .answers(401, "The form again, with the error", HTML)
            .answers(
                403,
                "The post did not come from our page (login CSRF)",
                HTML,
            )
            .answers(429, "Too many attempts", HTML),
        Op::post("/logout", "dashboard", "Sign out from the dashboard")
            .body(&["application/x-www-form-urlencoded"], "`csrf_token`")
            .answers(303, "To `/login?signed_out=1`", &[]),
        page("/", "Home: the links the caller's role may follow"),
        page("/worklist", "The worklist of cases")
            .query("status", "Case status", false)
            .query("patient_id", "Patient ID", false)
            .query("accession_number", "Accession number", false)
            .query("study_date_from", "Study date from (YYYY-MM-DD)", false)
            .query("study_date_to", "Study date to (YYYY-MM-DD)", false)
            .query("sort", "`study_date`, `updated` or `status`", false)
            .query("order", "`asc` or `desc`", false)
            .query("page", "1-based page", false),
        page(
            "/cases/{id}/view",
            "A case: images, notes, predictions, and the review form",
        )
        .query(
            "version",
            "The prediction version to show (default the latest)",
            false,
        )
        .error(404, "`not_found`"),
        Op::post("/cases/{id}/review", "dashboard", "Submit the review form")
            .body(
                &["application/x-www-form-urlencoded"],
                "A decision per observation, a comment, `csrf_token`",
            )
            .answers(
                303,
                "Back to the case, with `reviewed` or `review_error`",
                &[],
            )
            .error(404, "`not_found`"),
        page("/audit", "The audit trail, filtered")
            .query("patient", "Patient ID", false)
            .query("agent", "User or key", false)
            .query("from", "From (RFC 3339 or a date)", false)
            .query("to", "To (RFC 3339 or a date)", false)
            .query("action", "C, R, U, D or E", false)
            .query("outcome", "0, 4, 8 or 12", false)
            .query("page", "1-based page", false),
        page("/audit/integrity", "The hash chain's verification"),
        page("/admin", "Users and API keys"),
        page(
            "/models/view",
            "The installed model packages and their measured figures",
        ),
        page("/models/{name}/view", "One model package").error(404, "`not_found`"),
    ]
}
