//! `GET /audit`: the audit trail for compliance officers, filtered by
//! patient, agent, time range, action and outcome, newest first, in pages,
//! with links to the exports (`/audit/events?format=…`, same filters);
//! `GET /audit/integrity`: the hash chain walked, and the result.
//!
//! Both are themselves audited, like the JSON routes: viewing the trail is
//! Audit Log Used (110101), before the read, so the page lists its own view.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::{DateTime, NaiveDate, NaiveDateTime, SecondsFormat, Utc};
use fusion_store::{
    AuditAction, AuditEntity, AuditEventType, AuditFilter, AuditOutcome, EntityKind,
    StoredAuditEvent,
};
use serde::{Deserialize, Serialize};

use super::{Layout, PageError, html, render};
use crate::AppState;
use crate::auth::AuditContext;

/// Events per page.
const PER_PAGE: usize = 50;

/// The filter form as submitted (GET parameters), kept as typed so the form
/// shows it back.
#[derive(Debug, Default, Deserialize, Serialize)]
pub(crate) struct AuditQuery {
    #[serde(default)]
    patient: String,
    #[serde(default)]
    agent: String,
    #[serde(default)]
    from: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    outcome: String,
    #[serde(default, skip_serializing)]
    page: Option<String>,
}

/// A time typed into the form, as UTC: RFC 3339, or the `datetime-local`
/// forms `YYYY-MM-DDTHH:MM[:SS]`, or a date. For the end of a range
/// (`until`), a minute or a date counts whole: 10:05 means before 10:06.
fn parse_time(raw: &str, until: bool) -> Result<Option<DateTime<Utc>>, String> {
    let s = raw.trim();
    if s.is_empty() {
        return Ok(None);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    let s = s.replacen(' ', "T", 1);
    if let Ok(t) = NaiveDateTime::parse_from_str(&s, "%Y-%m-%dT%H:%M:%S") {
        return Ok(Some(t.and_utc()));
    }
    if let Ok(t) = NaiveDateTime::parse_from_str(&s, "%Y-%m-%dT%H:%M") {
        let extra = chrono::Duration::minutes(i64::from(until));
        return Ok(Some(t.and_utc() + extra));
    }
    if let Ok(d) = NaiveDate::parse_from_str(&s, "%Y-%m-%d") {
        let start = d.and_hms_opt(0, 0, 0).map(|t| t.and_utc());
        let extra = chrono::Duration::days(i64::from(until));
        return Ok(start.map(|t| t + extra));
    }
    Err(format!(
        "{raw:?} is not a time: use YYYY-MM-DD or YYYY-MM-DD HH:MM (UTC)"
    ))
}

/// The store filter for the form, or what is wrong with the form.
fn to_filter(q: &AuditQuery) -> Result<AuditFilter, String> {
    let trimmed = |s: &str| Some(s.trim().to_owned()).filter(|s| !s.is_empty());
    let from = parse_time(&q.from, false)?;
    let to = parse_time(&q.to, true)?;
    if let (Some(f), Some(t)) = (from, to)
        && f >= t
    {
        return Err("the start of the time range must come before its end".into());
    }
    let action = match q.action.trim() {
        "" => None,
        code => Some(AuditAction::from_code(code).ok_or("unknown action")?),
    };
    let outcome = match q.outcome.trim() {
        "" => None,
        code => Some(AuditOutcome::from_code(code).ok_or("unknown outcome")?),
    };
    Ok(AuditFilter {
        from,
        to,
        patient_id: trimmed(&q.patient),
        agent: trimmed(&q.agent),
        action,
        outcome,
        limit: None,
    })
}

fn action_label(a: AuditAction) -> &'static str {
    match a {
        AuditAction::Create => "Create",
        AuditAction::Read => "Read",
        AuditAction::Update => "Update",
        AuditAction::Delete => "Delete",
        AuditAction::Execute => "Execute",
    }
}

/// Outcome in words and the style class that colours it (the words carry
/// the meaning; colour only repeats it).
fn outcome_label(o: AuditOutcome) -> (&'static str, &'static str) {
    match o {
        AuditOutcome::Success => ("Success", "ok"),
        AuditOutcome::MinorFailure => ("Refused", "warn"),
        AuditOutcome::SeriousFailure => ("Serious failure", "bad"),
        AuditOutcome::MajorFailure => ("Service failure", "bad"),
    }
}

fn agent_kind_label(kind: &str) -> &str {
    match kind {
        "user" => "user",
        "api_key" => "API key",
        "anonymous" => "not signed in · name tried",
        "system" => "the service",
        "operator" => "operator (CLI)",
        other => other,
    }
}

#[derive(Serialize)]
struct EventRow {
    seq: i64,
    date: String,
    time: String,
    iso: String,
    type_display: &'static str,
    type_code: &'static str,
    subtype: String,
    action_code: &'static str,
    action_label: &'static str,
    outcome_label: &'static str,
    outcome_class: &'static str,
    outcome_desc: Option<String>,
    agent_name: String,
    agent_role: Option<String>,
    agent_kind: String,
    agent_address: Option<String>,
    patient_ids: Vec<String>,
    entities: Vec<EntityView>,
    purpose_of_use: Option<String>,
}

#[derive(Serialize)]
struct EntityView {
    kind: String,
    /// The identifier as shown: a UUID by its last 8 digits.
    short: String,
    /// The whole identifier (a tooltip when shortened).
    id: String,
}

/// A UUID as an ellipsis and its last 8 hex digits (the random part of a
/// UUIDv7, whose leading digits are a timestamp shared by records made in
/// the same minutes); anything else as it is.
fn shorten(id: &str) -> String {
    if uuid::Uuid::parse_str(id).is_ok() {
        format!("…{}", id.get(id.len().saturating_sub(8)..).unwrap_or(id))
    } else {
        id.to_owned()
    }
}

impl From<&StoredAuditEvent> for EventRow {
    fn from(e: &StoredAuditEvent) -> Self {
        let r = &e.record;
        let (outcome_label, outcome_class) = outcome_label(r.outcome);
        Self {
            seq: e.seq,
            date: e.recorded_at.format("%Y-%m-%d").to_string(),
            time: e.recorded_at.format("%H:%M:%S").to_string(),
            iso: e.recorded_at.to_rfc3339_opts(SecondsFormat::Secs, true),
            type_display: r.event_type.display(),
            type_code: r.event_type.code(),
            subtype: r.subtype.clone(),
            action_code: r.action.code(),
            action_label: action_label(r.action),
            outcome_label,
            outcome_class,
            outcome_desc: r.outcome_desc.clone(),
            agent_name: if r.agent.name.is_empty() {
                "anonymous".to_owned()
            } else {
                r.agent.name.clone()
            },
            agent_role: r.agent.role.clone(),
            agent_kind: agent_kind_label(&r.agent.kind).to_owned(),
            agent_address: r.agent.address.clone(),
            patient_ids: r.patient_ids.clone(),
            entities: r
                .entities
                .iter()
                .filter(|en| en.kind != "patient")
                .map(|en| EntityView {
                    kind: en.kind.replace('_', " "),
                    short: shorten(&en.id),
                    id: en.id.clone(),
                })
                .collect(),
            purpose_of_use: r.purpose_of_use.clone(),
        }
    }
}

#[derive(Serialize)]
struct Choice {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

fn choices(options: &[(&'static str, &'static str)], current: &str) -> Vec<Choice> {
    options
        .iter()
        .map(|(value, label)| Choice {
            value,
            label,
            selected: *value == current.trim(),
        })
        .collect()
}

#[derive(Serialize)]
struct Export {
    label: &'static str,
    hint: &'static str,
    href: String,
    file: &'static str,
}

#[derive(Serialize)]
struct AuditPage {
    q: AuditQuery,
    error: Option<String>,
    filtered: bool,
    /// The filters in force, in words ("user or key dr.grey").
    summary: Vec<String>,
    rows: Vec<EventRow>,
    total: usize,
    first: usize,
    last: usize,
    page: usize,
    pages: usize,
    newer: Option<String>,
    older: Option<String>,
    exports: Vec<Export>,
    actions: Vec<Choice>,
    outcomes: Vec<Choice>,
}

/// `/audit?…` for the same filters on another page.
fn page_href(q: &AuditQuery, page: usize) -> String {
    let mut pairs: Vec<(&str, String)> = [
        ("patient", &q.patient),
        ("agent", &q.agent),
        ("from", &q.from),
        ("to", &q.to),
        ("action", &q.action),
        ("outcome", &q.outcome),
    ]
    .into_iter()
    .filter(|(_, v)| !v.trim().is_empty())
    .map(|(k, v)| (k, v.trim().to_owned()))
    .collect();
    if page > 1 {
        pairs.push(("page", page.to_string()));
    }
    let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
    if query.is_empty() {
        "/audit".to_owned()
    } else {
        format!("/audit?{query}")
    }
}

/// The export route's query for `filter` in `format`.
fn export_href(filter: &AuditFilter, format: &str) -> String {
    let time = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Secs, true);
    let mut pairs: Vec<(&str, String)> = vec![("format", format.to_owned())];
    if let Some(p) = &filter.patient_id {
        pairs.push(("patient", p.clone()));
    }
    if let Some(a) = &filter.agent {
        pairs.push(("agent", a.clone()));
    }
    if let Some(t) = filter.from {
        pairs.push(("from", time(t)));
    }
    if let Some(t) = filter.to {
        pairs.push(("to", time(t)));
    }
    if let Some(a) = filter.action {
        pairs.push(("action", a.code().to_owned()));
    }
    if let Some(o) = filter.outcome {
        pairs.push(("outcome", o.code().to_owned()));
    }
    format!(
        "/audit/events?{}",
        serde_urlencoded::to_string(&pairs).unwrap_or_default()
    )
}

/// The filters in force, in words, for the results heading.
fn summarise(q: &AuditQuery) -> Vec<String> {
    let label = |options: &[(&str, &'static str)], code: &str| {
        options
            .iter()
            .find(|(v, _)| *v == code.trim())
            .map(|(_, l)| l.to_lowercase())
            .unwrap_or_else(|| code.trim().to_owned())
    };
    let mut out = Vec::new();
    for (name, value) in [
        ("patient", &q.patient),
        ("user or key", &q.agent),
        ("from", &q.from),
        ("until", &q.to),
    ] {
        if !value.trim().is_empty() {
            out.push(format!("{name} {}", value.trim()));
        }
    }
    if !q.action.trim().is_empty() {
        out.push(format!("action {}", label(&ACTIONS, &q.action)));
    }
    if !q.outcome.trim().is_empty() {
        out.push(format!("outcome {}", label(&OUTCOMES, &q.outcome)));
    }
    out
}

const ACTIONS: [(&str, &str); 6] = [
    ("", "Any action"),
    ("C", "Create"),
    ("R", "Read"),
    ("U", "Update"),
    ("D", "Delete"),
    ("E", "Execute"),
];

const OUTCOMES: [(&str, &str); 5] = [
    ("", "Any outcome"),
    ("0", "Success"),
    ("4", "Refused"),
    ("8", "Serious failure"),
    ("12", "Service failure"),
];

pub(crate) async fn audit_trail(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuditContext,
) -> Result<HttpResponse, PageError> {
    let q: AuditQuery = super::page_query(&req);
    let layout = Layout::signed_in(&req, &ctx.principal, "Audit trail", "/audit");
    let parsed = to_filter(&q);
    let (rows, total, page, pages, error, filter) = match parsed {
        Err(error) => (Vec::new(), 0, 1, 1, Some(error), AuditFilter::default()),
        Ok(filter) => {
            let record = ctx.record(
                AuditEventType::AuditLogUsed,
                "audit-view",
                AuditAction::Read,
                vec![AuditEntity::new(EntityKind::AuditLog, "audit_events")],
                filter.patient_id.iter().cloned().collect(),
            );
            state
                .repository
                .append_audit(&record)
                .await
                .map_err(|e| PageError::Internal(e.into()))?;
            // The store reads oldest first with no offset: read the matching
            // events and page them here, newest first. A keyset
            // (`before_seq`, descending) in `AuditFilter` would bound this.
            let mut events = state
                .repository
                .audit_events(&filter)
                .await
                .map_err(|e| PageError::Internal(e.into()))?;
            events.reverse();
            let total = events.len();
            let pages = total.div_ceil(PER_PAGE).max(1);
            let page = q
                .page
                .as_deref()
                .and_then(|p| p.trim().parse::<usize>().ok())
                .unwrap_or(1)
                .clamp(1, pages);
            let rows = events
                .iter()
                .skip((page - 1) * PER_PAGE)
                .take(PER_PAGE)
                .map(EventRow::from)
                .collect();
            (rows, total, page, pages, None, filter)
        }
    };
    let rows: Vec<EventRow> = rows;
    let first = if rows.is_empty() {
        0
    } else {
        (page - 1) * PER_PAGE + 1
    };
    let last = first + rows.len().saturating_sub(1);
    let exports = vec![
        Export {
            label: "FHIR Bundle",
            hint: "AuditEvent resources, JSON",
            href: export_href(&filter, "fhir"),
            file: "audit-events.fhir.json",
        },
        Export {
            label: "FHIR NDJSON",
            hint: "one AuditEvent per line",
            href: export_href(&filter, "ndjson"),
            file: "audit-events.ndjson",
        },
        Export {
            label: "CSV",
            hint: "for spreadsheets",
            href: export_href(&filter, "csv"),
            file: "audit-events.csv",
        },
    ];
    let summary = summarise(&q);
    let filtered = !summary.is_empty();
    let page_view = AuditPage {
        error: error.clone(),
        filtered,
        summary,
        rows,
        total,
        first,
        last,
        page,
        pages,
        newer: (page > 1).then(|| page_href(&q, page - 1)),
        older: (page < pages).then(|| page_href(&q, page + 1)),
        exports,
        actions: choices(&ACTIONS, &q.action),
        outcomes: choices(&OUTCOMES, &q.outcome),
        q,
    };
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    Ok(html(status, render("audit.html", &layout, page_view)?))
}

#[derive(Serialize)]
struct IntegrityPage {
    events: u64,
    head: Option<String>,
    broken_at: Option<i64>,
    problem: Option<String>,
    checked_at: String,
}

pub(crate) async fn audit_integrity(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuditContext,
) -> Result<HttpResponse, PageError> {
    let report = crate::routes::audit::verify_audited(&state, &ctx).await?;
    let layout = Layout::signed_in(&req, &ctx.principal, "Audit trail integrity", "/audit");
    let page = IntegrityPage {
        events: report.events,
        head: report.head,
        broken_at: report.first_break.as_ref().map(|b| b.seq),
        problem: report.first_break.map(|b| b.problem),
        checked_at: Utc::now().format("%Y-%m-%d %H:%M:%S UTC").to_string(),
    };
    Ok(html(
        StatusCode::OK,
        render("integrity.html", &layout, page)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_times_are_utc_and_an_end_minute_or_day_counts_whole() {
        let t = |s, until| parse_time(s, until).unwrap().unwrap().to_rfc3339();
        assert_eq!(t("2026-03-01T10:05", false), "2026-03-01T10:05:00+00:00");
        assert_eq!(t("2026-03-01T10:05", true), "2026-03-01T10:06:00+00:00");
        assert_eq!(t("2026-03-01 10:05:07", true), "2026-03-01T10:05:07+00:00");
        assert_eq!(t("2026-03-01", false), "2026-03-01T00:00:00+00:00");
        assert_eq!(t("2026-03-01", true), "2026-03-02T00:00:00+00:00");
        assert_eq!(
            t("2026-03-01T10:05:00+02:00", false),
            "2026-03-01T08:05:00+00:00"
        );
        assert_eq!(parse_time("  ", false), Ok(None));
        assert!(parse_time("yesterday", false).is_err());
    }

    #[test]
    fn a_backwards_range_is_refused() {
        let q = AuditQuery {
            from: "2026-03-02".into(),
            to: "2026-03-01".into(),
            ..AuditQuery::default()
        };
        assert!(to_filter(&q).is_err());
    }

    #[test]
    fn export_links_carry_the_filters() {
        let q = AuditQuery {
            patient: " P-1 ".into(),
            from: "2026-03-01".into(),
            outcome: "8".into(),
            ..AuditQuery::default()
        };
        let f = to_filter(&q).unwrap();
        assert_eq!(
            export_href(&f, "csv"),
            "/audit/events?format=csv&patient=P-1&from=2026-03-01T00%3A00%3A00Z&outcome=8"
        );
        assert_eq!(
            summarise(&q),
            ["patient P-1", "from 2026-03-01", "outcome serious failure"]
        );
        assert_eq!(shorten("01a22b38-0b4e-7104-9b94-ee5403c72200"), "…03c72200");
        assert_eq!(shorten("fk_c5ad67547995bd81"), "fk_c5ad67547995bd81");
        assert_eq!(
            page_href(&q, 2),
            "/audit?patient=P-1&from=2026-03-01&outcome=8&page=2"
        );
    }
}
