//! The clinician's pages: `GET /worklist`, `GET /cases/{id}/view` and the
//! review form's `POST /cases/{id}/review`.
//!
//! Pages read what the workers stored (cases, prediction versions, notes,
//! indexed instances); no page waits on inference. Images are fetched by the
//! browser from the WADO-RS `/rendered` path (PS3.18 §10.4.1.1.3), with the
//! same session. Every page view is audited like the JSON API's reads
//! (110110 Patient Record, action R; the worklist as a 110112 query).

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use fusion_models::{
    AbstainReason, BranchOpinion, BranchReport, BranchStatus, FusedLabel, Opinion,
};
use fusion_notes::{Mention, Observation, Section};
use fusion_store::{
    AuditAction, AuditEntity, AuditEventType, CaseRecord, CaseStatus, CaseSummary, DecodeStatus,
    InstanceRecord, NoteRecord, PredictionRecord, ReviewRecord,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{Layout, PageError, html, message_page, render, see_other};
use crate::AppState;
use crate::auth::{AuditContext, Permission, Principal};
use crate::routes::cases::{
    AmendedValue, CasesError, Decision, DecisionBody, ListQuery, MAX_COMMENT_CHARS, ReviewBody,
    create_review,
};

/// Cases per worklist page.
const PER_PAGE: i64 = 25;
/// Fused probability from which the worklist lists a finding as likely
/// present.
const LIKELY: f64 = 0.5;
/// Mentions highlighted per note (a 10 MB note can hold a hundred thousand).
const MAX_MARKED: usize = 2000;
/// Images shown per case view (a CT series may hold hundreds; the first
/// ones of each series are enough to orient, the viewer is elsewhere).
const MAX_IMAGES: usize = 12;

// ------------------------------------------------------------------ shared views

/// Words for a case status, and the pill colour that goes with them.
fn status_view(status: CaseStatus) -> StatusView {
    let (label, tone) = match status {
        CaseStatus::AwaitingImage => ("Awaiting image", "muted"),
        CaseStatus::AwaitingNote => ("Awaiting note", "muted"),
        CaseStatus::Queued => ("Running models", "muted"),
        CaseStatus::Predicted => ("Predicted", "ok"),
        CaseStatus::Abstained => ("Abstained", "warn"),
        CaseStatus::NoModality => ("Nothing usable", "bad"),
        CaseStatus::Reviewed => ("Reviewed", "ok"),
    };
    StatusView {
        value: status.as_str(),
        label,
        tone,
    }
}

#[derive(Debug, Serialize)]
struct StatusView {
    value: &'static str,
    label: &'static str,
    tone: &'static str,
}

/// An observation's CheXpert name from its snake_case key, e.g.
/// `pleural_effusion` → "Pleural Effusion".
fn observation_name(key: &str) -> String {
    serde_json::from_value::<Observation>(serde_json::Value::String(key.to_owned()))
        .map(|o| o.display_name().to_owned())
        .unwrap_or_else(|_| key.replace('_', " "))
}

/// The snake_case keys of the 14 observations, in CheXpert order.
fn observation_keys() -> Vec<String> {
    Observation::ALL
        .iter()
        .filter_map(|o| match serde_json::to_value(o) {
            Ok(serde_json::Value::String(s)) => Some(s),
            _ => None,
        })
        .collect()
}

/// `YYYYMMDD` as `YYYY-MM-DD`; anything else as it is.
fn pretty_date(da: Option<&str>) -> String {
    match da {
        Some(d) if d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit()) => {
            format!("{}-{}-{}", &d[..4], &d[4..6], &d[6..])
        }
        Some(d) => d.to_owned(),
        None => String::new(),
    }
}

/// A probability as a whole percentage, e.g. `0.873` → `87%`.
fn percent(p: f64) -> String {
    if p.is_finite() {
        format!("{:.0}%", (p * 100.0).clamp(0.0, 100.0))
    } else {
        "–".to_owned()
    }
}

/// A value in [0, 1] as an SVG width in a 100-wide viewBox (CSP forbids
/// inline styles, so bars are drawn with SVG attributes).
fn width(v: f64) -> String {
    if v.is_finite() {
        format!("{:.1}", (v * 100.0).clamp(0.0, 100.0))
    } else {
        "0".to_owned()
    }
}

// ------------------------------------------------------------------ worklist

/// Query of `GET /worklist`: the JSON list's filters, and a page number.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct WorklistQuery {
    #[serde(default)]
    status: String,
    #[serde(default)]
    patient_id: String,
    #[serde(default)]
    accession_number: String,
    #[serde(default)]
    study_date_from: String,
    #[serde(default)]
    study_date_to: String,
    #[serde(default)]
    sort: String,
    #[serde(default)]
    order: String,
    /// 1-based; anything unreadable is page 1.
    #[serde(default)]
    page: String,
}

fn non_empty(s: &str) -> Option<String> {
    let t = s.trim();
    (!t.is_empty()).then(|| t.to_owned())
}

impl WorklistQuery {
    fn page(&self) -> i64 {
        self.page
            .trim()
            .parse::<i64>()
            .unwrap_or(1)
            .clamp(1, 10_000)
    }

    fn list_query(&self) -> ListQuery {
        ListQuery {
            status: non_empty(&self.status),
            patient_id: non_empty(&self.patient_id),
            accession_number: non_empty(&self.accession_number),
            study_date_from: non_empty(&self.study_date_from),
            study_date_to: non_empty(&self.study_date_to),
            sort: non_empty(&self.sort),
            order: non_empty(&self.order),
            // One more than a page, to know whether a next page exists.
            limit: Some(PER_PAGE + 1),
            offset: Some((self.page() - 1) * PER_PAGE),
        }
    }

    /// This query's address with `changes` applied (`page` reset unless
    /// named), for sort links and the pager.
    fn href(&self, changes: &[(&str, String)]) -> String {
        let mut pairs: Vec<(&str, String)> = vec![
            ("status", self.status.clone()),
            ("patient_id", self.patient_id.clone()),
            ("accession_number", self.accession_number.clone()),
            ("study_date_from", self.study_date_from.clone()),
            ("study_date_to", self.study_date_to.clone()),
            ("sort", self.sort.clone()),
            ("order", self.order.clone()),
        ];
        for (k, v) in changes {
            if let Some(p) = pairs.iter_mut().find(|(name, _)| name == k) {
                p.1.clone_from(v);
            } else {
                pairs.push((k, v.clone()));
            }
        }
        pairs.retain(|(_, v)| !v.trim().is_empty());
        let query = serde_urlencoded::to_string(&pairs).unwrap_or_default();
        if query.is_empty() {
            "/worklist".to_owned()
        } else {
            format!("/worklist?{query}")
        }
    }

    fn filtered(&self) -> bool {
        [
            &self.status,
            &self.patient_id,
            &self.accession_number,
            &self.study_date_from,
            &self.study_date_to,
        ]
        .iter()
        .any(|v| !v.trim().is_empty())
    }
}

#[derive(Debug, Serialize)]
struct Choice {
    value: &'static str,
    label: &'static str,
    selected: bool,
}

#[derive(Debug, Serialize)]
struct SortLink {
    href: String,
    /// `ascending`, `descending` or `none` (for `aria-sort`).
    state: &'static str,
}

#[derive(Debug, Serialize)]
struct FindingView {
    label: String,
    probability: String,
    width: String,
}

#[derive(Debug, Serialize)]
struct WorklistRow {
    id: Uuid,
    href: String,
    patient_id: String,
    accession_number: String,
    study_date: String,
    status: StatusView,
    findings: Vec<FindingView>,
    refer: bool,
    abstain: bool,
    version: Option<i32>,
    updated_at: String,
    updated_iso: String,
}

impl From<CaseSummary> for WorklistRow {
    fn from(s: CaseSummary) -> Self {
        let (findings, refer, abstain, version) = match s.latest_prediction {
            Some(p) => (
                p.findings
                    .iter()
                    .filter(|f| f.probability >= LIKELY)
                    .take(3)
                    .map(|f| FindingView {
                        label: observation_name(&f.label),
                        probability: percent(f.probability),
                        width: width(f.probability),
                    })
                    .collect(),
                p.refer,
                p.abstain,
                Some(p.version),
            ),
            None => (Vec::new(), false, false, None),
        };
        Self {
            id: s.id,
            href: format!("/cases/{}/view", s.id),
            patient_id: s
                .patient_id
                .map(|p| p.as_str().to_owned())
                .unwrap_or_default(),
            accession_number: s
                .accession_number
                .map(|a| a.as_str().to_owned())
                .unwrap_or_default(),
            study_date: pretty_date(s.study_date.as_deref()),
            status: status_view(s.status),
            findings,
            refer,
            abstain,
            version,
            updated_at: s.updated_at.format("%Y-%m-%d %H:%M").to_string(),
            updated_iso: s.updated_at.to_rfc3339(),
        }
    }
}

#[derive(Debug, Serialize)]
struct QueryEcho {
    patient_id: String,
    accession_number: String,
    study_date_from: String,
    study_date_to: String,
}

#[derive(Debug, Serialize)]
struct WorklistPage {
    rows: Vec<WorklistRow>,
    q: QueryEcho,
    statuses: Vec<Choice>,
    sorts: BTreeMap<&'static str, SortLink>,
    filtered: bool,
    error: Option<String>,
    page: i64,
    first: i64,
    last: i64,
    prev: Option<String>,
    next: Option<String>,
}

/// `GET /worklist`: cases with their status, top findings and refer flag;
/// filters, sorting by column, 25 a page.
pub(crate) async fn worklist(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuditContext,
) -> Result<HttpResponse, PageError> {
    let q: WorklistQuery = super::page_query(&req);
    let layout = Layout::signed_in(&req, &ctx.principal, "Worklist", "/worklist");
    let (rows, error) = match q.list_query().parse() {
        Ok(filter) => {
            let cases = state.repository.list_cases(&filter).await?;
            let mut patients: Vec<String> = cases
                .iter()
                .filter_map(|c| c.patient_id.as_ref().map(|p| p.as_str().to_owned()))
                .collect();
            patients.sort();
            patients.dedup();
            let audit = ctx.record(
                AuditEventType::Query,
                "case-search",
                AuditAction::Execute,
                cases
                    .iter()
                    .map(|c| AuditEntity::new("case", c.id.to_string()))
                    .collect(),
                patients,
            );
            state.repository.append_audit(&audit).await?;
            (cases, None)
        }
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let more = rows.len() as i64 > PER_PAGE;
    let rows: Vec<WorklistRow> = rows
        .into_iter()
        .take(PER_PAGE as usize)
        .map(WorklistRow::from)
        .collect();
    let page = q.page();
    let first = (page - 1) * PER_PAGE + 1;
    let last = first + rows.len() as i64 - 1;
    let statuses = std::iter::once(Choice {
        value: "",
        label: "Any status",
        selected: q.status.trim().is_empty(),
    })
    .chain(CaseStatus::ALL.into_iter().map(|s| {
        let v = status_view(s);
        Choice {
            value: v.value,
            label: v.label,
            selected: q.status == v.value,
        }
    }))
    .collect();
    let mut sorts = BTreeMap::new();
    let current = match q.sort.as_str() {
        "" => "updated",
        s => s,
    };
    for (key, default_asc) in [("updated", false), ("study_date", false), ("status", true)] {
        let active = current == key;
        let ascending = match q.order.as_str() {
            "asc" => true,
            "desc" => false,
            _ => default_asc,
        };
        let next_order = if active && ascending == default_asc {
            if default_asc { "desc" } else { "asc" }
        } else if default_asc {
            "asc"
        } else {
            "desc"
        };
        sorts.insert(
            key,
            SortLink {
                href: q.href(&[("sort", key.to_owned()), ("order", next_order.to_owned())]),
                state: match (active, ascending) {
                    (false, _) => "none",
                    (true, true) => "ascending",
                    (true, false) => "descending",
                },
            },
        );
    }
    let page_view = WorklistPage {
        prev: (page > 1).then(|| q.href(&[("page", (page - 1).to_string())])),
        next: more.then(|| q.href(&[("page", (page + 1).to_string())])),
        q: QueryEcho {
            patient_id: q.patient_id.clone(),
            accession_number: q.accession_number.clone(),
            study_date_from: q.study_date_from.clone(),
            study_date_to: q.study_date_to.clone(),
        },
        filtered: q.filtered(),
        statuses,
        sorts,
        error,
        page,
        first,
        last,
        rows,
    };
    Ok(html(
        StatusCode::OK,
        render("worklist.html", &layout, page_view)?,
    ))
}

// ------------------------------------------------------------------ case view

/// Query of `GET /cases/{id}/view`.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct CaseQuery {
    /// The prediction version to show (default: the latest).
    version: Option<String>,
    /// Set after a review was saved.
    reviewed: Option<String>,
    /// Why the last review form was refused (a code from [`review_error`]).
    review_error: Option<String>,
}

/// The words for a refused review form, by code.
fn review_error(code: &str) -> Option<&'static str> {
    Some(match code {
        "no_decision" => "Choose a decision for at least one finding before saving the review.",
        "stale" => {
            "A newer prediction arrived while you were reviewing. Your review was not saved; \
             look at the new version and review again."
        }
        "comment" => "The comment is too long (at most 4,000 characters).",
        "invalid" => "The review could not be read. Reload the page and try again.",
        _ => return None,
    })
}

#[derive(Debug, Serialize)]
struct ImageView {
    sop_instance_uid: String,
    modality: String,
    caption: String,
    /// `/rendered` address asking for lossless PNG (frame 1 for
    /// multi-frame): the service's default rendering is JPEG, as PS3.18
    /// §8.7.4 makes it, and a reviewer reads the image losslessly.
    src: String,
    /// For frame stepping: the instance's address, frames appended by the
    /// script as `/frames/{n}/rendered`.
    base: String,
    frames: i32,
    renderable: bool,
    reason: Option<String>,
    presets: Vec<Preset>,
    used_by_model: bool,
}

/// A window preset (centre, width) in the modality's output units.
#[derive(Debug, Serialize)]
struct Preset {
    label: &'static str,
    value: &'static str,
}

/// Common CT windows in HU (centre, width).
const CT_PRESETS: [(&str, &str); 4] = [
    ("Lung (−600/1500 HU)", "-600,1500"),
    ("Mediastinum (40/400 HU)", "40,400"),
    ("Bone (400/1800 HU)", "400,1800"),
    ("Brain (40/80 HU)", "40,80"),
];

fn dicom_string(attributes: &serde_json::Value, tag: &str) -> Option<String> {
    attributes
        .get(tag)?
        .get("Value")?
        .get(0)?
        .as_str()
        .map(str::to_owned)
}

fn image_view(i: &InstanceRecord, used: Option<&str>) -> ImageView {
    let modality = dicom_string(&i.attributes, "00080060").unwrap_or_default();
    let base = format!(
        "/dicom-web/studies/{}/series/{}/instances/{}",
        i.study_instance_uid.as_str(),
        i.series_instance_uid.as_str(),
        i.sop_instance_uid.as_str()
    );
    let frames = i.frames.unwrap_or(1).max(1);
    let src = if frames > 1 {
        format!("{base}/frames/1/rendered?accept=image/png")
    } else {
        format!("{base}/rendered?accept=image/png")
    };
    let number = dicom_string(&i.attributes, "00200013")
        .map(|n| format!("image {n}"))
        .unwrap_or_else(|| "image".to_owned());
    let series = dicom_string(&i.attributes, "0008103E")
        .or_else(|| dicom_string(&i.attributes, "00200011").map(|n| format!("series {n}")))
        .unwrap_or_default();
    let caption = [modality.as_str(), series.as_str(), number.as_str()]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" · ");
    let mut presets = vec![Preset {
        label: "From the file",
        value: "",
    }];
    if modality == "CT" {
        presets.extend(
            CT_PRESETS
                .iter()
                .map(|&(label, value)| Preset { label, value }),
        );
    }
    let (renderable, reason) = match i.decode_status {
        DecodeStatus::Failed => (
            false,
            Some(
                i.decode_reason
                    .clone()
                    .unwrap_or_else(|| "pixel data could not be decoded".to_owned()),
            ),
        ),
        DecodeStatus::Ok | DecodeStatus::Unknown => (true, None),
    };
    ImageView {
        used_by_model: used == Some(i.sop_instance_uid.as_str()),
        sop_instance_uid: i.sop_instance_uid.as_str().to_owned(),
        modality,
        caption,
        src,
        base,
        frames,
        renderable,
        reason,
        presets,
    }
}

/// One piece of a note's text: plain, a section header, or a mention.
#[derive(Debug, Serialize)]
struct Piece {
    kind: &'static str,
    text: String,
    /// `present`, `absent` or `possible` (mentions).
    assertion: Option<&'static str>,
    /// The tooltip: observation, assertion, trigger, section.
    tip: Option<String>,
    /// The canonical section name (headers).
    section: Option<String>,
}

#[derive(Debug, Serialize)]
struct NoteView {
    id: Uuid,
    title: String,
    source_format: String,
    authored_at: Option<String>,
    status: String,
    pieces: Vec<Piece>,
    counts: BTreeMap<&'static str, usize>,
    /// Mentions beyond [`MAX_MARKED`], shown unhighlighted.
    unmarked: usize,
    no_text_reason: Option<String>,
}

fn words(snake: &str) -> String {
    let spaced = snake.replace('_', " ");
    let mut chars = spaced.chars();
    match chars.next() {
        Some(c) => c.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

fn assertion_name(m: &Mention) -> &'static str {
    match m.assertion {
        fusion_notes::Assertion::Present => "present",
        fusion_notes::Assertion::Absent => "absent",
        fusion_notes::Assertion::Possible => "possible",
    }
}

fn mention_tip(m: &Mention) -> String {
    let observation = m.observation.display_name();
    let assertion = match m.assertion {
        fusion_notes::Assertion::Present => "present",
        fusion_notes::Assertion::Absent => "absent (negated)",
        fusion_notes::Assertion::Possible => "possible (hedged)",
    };
    let mut tip = format!("{observation}: {assertion}");
    match &m.trigger {
        Some(t) => {
            let category = serde_json::to_value(t.category)
                .ok()
                .and_then(|v| v.as_str().map(words))
                .unwrap_or_default();
            tip.push_str(&format!(
                " · trigger “{}” ({})",
                t.text,
                category.to_lowercase()
            ));
        }
        None => tip.push_str(" · no trigger"),
    }
    let flags: Vec<&str> = [
        (m.historical, "historical"),
        (m.hypothetical, "hypothetical"),
        (m.family, "family member"),
    ]
    .into_iter()
    .filter_map(|(on, w)| on.then_some(w))
    .collect();
    if !flags.is_empty() {
        tip.push_str(&format!(" · {}", flags.join(", ")));
    }
    let section = serde_json::to_value(m.section)
        .ok()
        .and_then(|v| v.as_str().map(words))
        .unwrap_or_default();
    tip.push_str(&format!(" · section {section}"));
    tip
}

/// Splits `text` into plain pieces, section headers and mentions, by their
/// byte spans (spans that do not fall on character boundaries, overlap, or
/// run past the end are shown as plain text).
fn pieces(text: &str, sections: &[Section], mentions: &[Mention]) -> Vec<Piece> {
    struct Mark<'a> {
        start: usize,
        end: usize,
        mention: Option<&'a Mention>,
        section: Option<&'a Section>,
    }
    let mut marks: Vec<Mark<'_>> = sections
        .iter()
        .filter_map(|s| {
            s.header.map(|h| Mark {
                start: h.start,
                end: h.end,
                mention: None,
                section: Some(s),
            })
        })
        .chain(mentions.iter().map(|m| Mark {
            start: m.span.start,
            end: m.span.end,
            mention: Some(m),
            section: None,
        }))
        .collect();
    marks.sort_by_key(|m| (m.start, std::cmp::Reverse(m.end)));
    let mut out = Vec::new();
    let mut at = 0;
    for mark in marks {
        if mark.start < at || mark.end <= mark.start || text.get(mark.start..mark.end).is_none() {
            continue;
        }
        if let Some(plain) = text.get(at..mark.start) {
            if !plain.is_empty() {
                out.push(Piece {
                    kind: "text",
                    text: plain.to_owned(),
                    assertion: None,
                    tip: None,
                    section: None,
                });
            }
        } else {
            continue;
        }
        let body = text[mark.start..mark.end].to_owned();
        match (mark.mention, mark.section) {
            (Some(m), _) => out.push(Piece {
                kind: "mention",
                text: body,
                assertion: Some(assertion_name(m)),
                tip: Some(mention_tip(m)),
                section: None,
            }),
            (None, Some(s)) => out.push(Piece {
                kind: "header",
                text: body,
                assertion: None,
                tip: None,
                section: serde_json::to_value(s.kind)
                    .ok()
                    .and_then(|v| v.as_str().map(words)),
            }),
            (None, None) => {}
        }
        at = mark.end;
    }
    if let Some(rest) = text.get(at..)
        && !rest.is_empty()
    {
        out.push(Piece {
            kind: "text",
            text: rest.to_owned(),
            assertion: None,
            tip: None,
            section: None,
        });
    }
    out
}

/// A document type code's name: the LOINC document codes EHRs send most
/// (LOINC Document Ontology), else the code itself.
fn note_type_name(code: &str) -> String {
    let name = match code {
        "18748-4" => "Diagnostic imaging study",
        "18782-3" => "Radiology study observation",
        "68604-8" => "Radiology diagnostic study note",
        "11506-3" => "Progress note",
        "11488-4" => "Consult note",
        "34117-2" => "History and physical note",
        "18842-5" => "Discharge summary",
        "34111-5" => "Emergency department note",
        "28570-0" => "Procedure note",
        _ => return code.to_owned(),
    };
    format!("{name} (LOINC {code})")
}

fn note_view(n: &NoteRecord) -> NoteView {
    let note = &n.note;
    let sections: Vec<Section> = serde_json::from_value(note.sections.clone()).unwrap_or_default();
    let mentions: Vec<Mention> = serde_json::from_value(note.mentions.clone()).unwrap_or_default();
    let mut counts = BTreeMap::new();
    for m in &mentions {
        *counts.entry(assertion_name(m)).or_insert(0) += 1;
    }
    let text = note.text.clone().unwrap_or_default();
    // A very long note keeps the page usable: the first mentions are
    // highlighted, the rest shown as plain text, and the page says so.
    let marked = mentions.len().min(MAX_MARKED);
    let title = note
        .note_type
        .as_ref()
        .and_then(|t| {
            t.display
                .clone()
                .or_else(|| t.code.as_deref().map(note_type_name))
        })
        .unwrap_or_else(|| "Clinical note".to_owned());
    let source_format = match note.source_format.as_str() {
        "text" | "text/plain" => "plain text".to_owned(),
        other => words(other),
    };
    NoteView {
        id: note.id,
        title,
        source_format,
        authored_at: note
            .authored_at
            .map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string()),
        status: serde_json::to_value(note.status)
            .ok()
            .and_then(|v| v.as_str().map(words))
            .unwrap_or_default(),
        pieces: pieces(&text, &sections, &mentions[..marked]),
        unmarked: mentions.len() - marked,
        counts,
        no_text_reason: note.no_text_reason.as_ref().map(|r| {
            r.get("message")
                .and_then(|m| m.as_str())
                .map(str::to_owned)
                .unwrap_or_else(|| r.to_string())
        }),
    }
}

/// An opinion as the page draws it: the three masses as bar widths and
/// numbers, and the projected probability.
#[derive(Debug, Serialize)]
struct OpinionView {
    probability: String,
    belief: String,
    disbelief: String,
    uncertainty: String,
    w_belief: String,
    w_disbelief: String,
    w_uncertainty: String,
    x_uncertainty: String,
    x_disbelief: String,
}

fn opinion_view(o: &Opinion) -> OpinionView {
    let (b, d, u) = (o.belief(), o.disbelief(), o.uncertainty());
    OpinionView {
        probability: percent(o.projected_probability()),
        belief: format!("{b:.2}"),
        disbelief: format!("{d:.2}"),
        uncertainty: format!("{u:.2}"),
        w_belief: width(b),
        w_uncertainty: width(u),
        w_disbelief: width(d),
        x_uncertainty: width(b),
        x_disbelief: width(b + u),
    }
}

/// One branch's opinion on a label, for the side-by-side columns.
#[derive(Debug, Serialize)]
struct BranchCell {
    /// The branch's own probability of "present": the image model's
    /// calibrated output, the text opinion's projected probability.
    probability: String,
    /// Its opinion as it enters fusion (after any trust discount).
    opinion: OpinionView,
    /// What it rests on, in words.
    basis: String,
    trust: Option<String>,
}

fn branch_cell(o: &BranchOpinion, branch: &str) -> BranchCell {
    let basis = if branch == "image" {
        match (o.variance, o.passes) {
            (Some(var), Some(passes)) if passes > 1 => {
                format!("{passes} MC-dropout passes, sd {:.2}", var.max(0.0).sqrt())
            }
            _ => "one pass".to_owned(),
        }
    } else {
        let mut parts = Vec::new();
        if let Some(m) = &o.mention {
            let label = match m.label {
                fusion_models::NoteLabel::Positive => "positive",
                fusion_models::NoteLabel::Negative => "negative",
                fusion_models::NoteLabel::Uncertain => "uncertain",
                fusion_models::NoteLabel::NotMentioned => "not mentioned",
            };
            parts.push(format!("report: {label}"));
        }
        if let Some(z) = &o.zero_shot
            && z.evidence.positive() + z.evidence.negative() > 0.0
        {
            parts.push(format!("encoder {:.2}", z.probability));
        }
        if parts.is_empty() {
            "—".to_owned()
        } else {
            parts.join(" · ")
        }
    };
    BranchCell {
        probability: percent(o.probability),
        opinion: opinion_view(&o.opinion),
        basis,
        trust: o.trust.map(|t| format!("{t:.2}")),
    }
}

#[derive(Debug, Serialize)]
struct LabelView {
    key: String,
    name: String,
    fused: OpinionView,
    conflict: String,
    high_conflict: bool,
    prediction_set: String,
    /// What the set means (the cell's tooltip).
    set_meaning: &'static str,
    /// The service's call, what a review's "accept" confirms:
    /// `present`, `absent`, or none (abstained).
    call: Option<&'static str>,
    abstain: Option<String>,
    image: Option<BranchCell>,
    text: Option<BranchCell>,
    sources: String,
    review: Option<String>,
}

fn abstain_words(r: &AbstainReason) -> String {
    match r {
        AbstainReason::HighUncertainty {
            uncertainty,
            max_uncertainty,
        } => format!("uncertainty {uncertainty:.2} above {max_uncertainty:.2}"),
        AbstainReason::HighConflict {
            conflict,
            max_conflict,
        } => format!("conflict {conflict:.2} above {max_conflict:.2}"),
        AbstainReason::HighUncertaintyAndConflict {
            uncertainty,
            max_uncertainty,
            conflict,
            max_conflict,
        } => format!(
            "uncertainty {uncertainty:.2} above {max_uncertainty:.2} and conflict {conflict:.2} \
             above {max_conflict:.2}"
        ),
    }
}

/// The SET column: the split-conformal prediction set at the calibrator's
/// level (90 % for the shipped packages; Angelopoulos & Bates 2021, §1) and
/// what it means, for the cell's text and its tooltip. `text_has_set`: the
/// text branch alone had a set (the fused label has none when another
/// contributing branch has no calibrator).
fn set_words(label: &FusedLabel, text_has_set: bool) -> (String, &'static str) {
    match &label.prediction_set {
        None if text_has_set => (
            "not calibrated".to_owned(),
            "The image model has no conformal calibrator, so the fused result has no set; \
             the text branch's own set is in its column's detail",
        ),
        None => (
            "not calibrated".to_owned(),
            "No conformal calibrator: no labelled data measured this observation's \
             probability (see Models)",
        ),
        Some(set) => {
            let classes: Vec<String> = set
                .classes()
                .filter_map(|c| serde_json::to_value(c).ok())
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect();
            match classes.len() {
                0 => (
                    "∅ (neither)".to_owned(),
                    "Empty set: the model is less sure here than on 90 % of its calibration \
                     reports (the probability lies between q̂ and 1 − q̂; for rare findings q̂ \
                     is small), so neither answer is certain enough: treat as uncertain",
                ),
                1 => (
                    format!("{{{}}}", classes[0]),
                    "One answer: at the calibrated level (90 %) only this one is plausible",
                ),
                _ => (
                    format!("{{{}}}", classes.join(", ")),
                    "Both answers plausible at the calibrated level (90 %): undecided",
                ),
            }
        }
    }
}

#[derive(Debug, Serialize)]
struct BranchBadge {
    name: &'static str,
    status: &'static str,
    tone: &'static str,
    reason: Option<String>,
    package: Option<String>,
    skipped: Vec<String>,
}

fn branch_badge(name: &'static str, r: &BranchReport) -> BranchBadge {
    let (status, tone) = match r.status {
        BranchStatus::Used => ("used", "ok"),
        BranchStatus::Discounted => ("used, discounted", "warn"),
        BranchStatus::Missing => ("missing", "muted"),
        BranchStatus::Unusable => ("unusable", "bad"),
        BranchStatus::NotApplicable => ("not applicable", "muted"),
        BranchStatus::NoPackage => ("no model installed", "bad"),
    };
    BranchBadge {
        name,
        status,
        tone,
        reason: r.reason.clone(),
        package: r.package.clone(),
        skipped: r
            .skipped
            .iter()
            .map(|s| format!("{}: {}", s.id, s.reason))
            .collect(),
    }
}

#[derive(Debug, Serialize)]
struct PackageView {
    name: String,
    version: String,
    modality: String,
    status: String,
    reason: Option<String>,
    manifest: String,
}

#[derive(Debug, Serialize)]
struct VersionView {
    version: i32,
    href: String,
    created_at: String,
    created_iso: String,
    status: String,
    current: bool,
    /// Where its SR and FHIR deliveries stand (issue #17).
    delivery: String,
}

#[derive(Debug, Serialize)]
struct ReviewItem {
    reviewer: String,
    created_at: String,
    created_iso: String,
    comment: Option<String>,
    decisions: Vec<(String, String)>,
}

#[derive(Debug, Serialize)]
struct ReviewChoice {
    value: &'static str,
    label: &'static str,
}

/// The review form's options per finding; `amend:<value>` amends.
const REVIEW_CHOICES: [(&str, &str); 6] = [
    ("", "No decision"),
    ("accept", "Accept"),
    ("reject", "Reject"),
    ("amend:present", "Amend to present"),
    ("amend:absent", "Amend to absent"),
    ("amend:uncertain", "Amend to uncertain"),
];

#[derive(Debug, Serialize)]
struct PredictionPage {
    id: Uuid,
    version: i32,
    latest: bool,
    created_at: String,
    created_iso: String,
    abstain: bool,
    abstain_reasons: Vec<String>,
    refer: bool,
    branches: Vec<BranchBadge>,
    labels: Vec<LabelView>,
    quiet_labels: Vec<LabelView>,
    packages: Vec<PackageView>,
    total_ms: Option<String>,
}

#[derive(Debug, Serialize)]
struct CasePage {
    case_id: Uuid,
    status: StatusView,
    patient_id: String,
    patient_name: String,
    accession_number: String,
    study_instance_uid: String,
    study_date: String,
    study_description: String,
    modalities: String,
    image_count: i64,
    images: Vec<ImageView>,
    notes: Vec<NoteView>,
    prediction: Option<PredictionPage>,
    versions: Vec<VersionView>,
    reviews: Vec<ReviewItem>,
    review_choices: Vec<ReviewChoice>,
    can_review: bool,
    saved: bool,
    /// A `?version=` the case does not have (as asked, at most 12 characters).
    missing_version: Option<String>,
    review_error: Option<&'static str>,
    max_comment: usize,
}

fn prediction_page(p: &PredictionRecord, latest: bool) -> PredictionPage {
    let pred = &p.prediction;
    let branches = &pred.branches;
    let fused = &pred.fused;
    let mut labels = Vec::new();
    let mut quiet = Vec::new();
    for key in observation_keys() {
        let Some(f) = fused.get(&key) else { continue };
        let image = branches
            .image
            .opinions
            .get(&key)
            .filter(|o| !o.opinion.is_vacuous())
            .map(|o| branch_cell(o, "image"));
        let text = branches
            .text
            .opinions
            .get(&key)
            .filter(|o| !o.opinion.is_vacuous())
            .map(|o| branch_cell(o, "text"));
        let text_opinion = branches.text.opinions.get(&key);
        let (prediction_set, set_meaning) =
            set_words(f, text_opinion.is_some_and(|o| o.prediction_set.is_some()));
        let head = text_opinion
            .and_then(|o| o.head.as_ref())
            .map(|h| h.present);
        let call = crate::reviews_export::call_of(f, head)
            .map(|present| if present { "present" } else { "absent" });
        let view = LabelView {
            name: observation_name(&key),
            fused: opinion_view(&f.opinion),
            conflict: format!("{:.2}", f.conflict),
            high_conflict: f.conflict > 0.3,
            prediction_set,
            set_meaning,
            call,
            abstain: f.abstain.as_ref().map(abstain_words),
            image,
            text,
            sources: if f.sources.is_empty() {
                "none".to_owned()
            } else {
                f.sources.join(" + ")
            },
            review: None,
            key,
        };
        if f.sources.is_empty() {
            quiet.push(view);
        } else {
            labels.push(view);
        }
    }
    let total_ms = pred
        .timings
        .get("total")
        .or_else(|| pred.timings.get("total_ms"))
        .map(|t| format!("{t:.0} ms"));
    PredictionPage {
        id: pred.id,
        version: p.version,
        latest,
        created_at: p.created_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        created_iso: p.created_at.to_rfc3339(),
        abstain: pred.abstain,
        abstain_reasons: pred.abstain_reasons.clone(),
        refer: pred.refer,
        branches: vec![
            branch_badge("Image", &branches.image),
            branch_badge("Text", &branches.text),
        ],
        labels,
        quiet_labels: quiet,
        packages: pred
            .packages
            .iter()
            .cloned()
            .map(|p| PackageView {
                status: serde_json::to_value(p.status)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                manifest: p
                    .manifest_sha256
                    .as_deref()
                    .map(|h| h.chars().take(12).collect())
                    .unwrap_or_default(),
                name: p.name,
                version: p.version,
                modality: p.modality,
                reason: p.reason,
            })
            .collect(),
        total_ms,
    }
}

fn decision_words(d: &serde_json::Value) -> String {
    let decision = d.get("decision").and_then(|v| v.as_str()).unwrap_or("");
    match (decision, d.get("value").and_then(|v| v.as_str())) {
        ("amend", Some(v)) => format!("amended to {v}"),
        ("accept", _) => "accepted".to_owned(),
        ("reject", _) => "rejected".to_owned(),
        (other, _) => other.to_owned(),
    }
}

fn review_item(r: &ReviewRecord, names: &BTreeMap<String, String>) -> ReviewItem {
    let decisions = r
        .review
        .decisions
        .as_object()
        .map(|o| {
            o.iter()
                .map(|(k, v)| (observation_name(k), decision_words(v)))
                .collect()
        })
        .unwrap_or_default();
    ReviewItem {
        reviewer: names
            .get(&r.review.reviewer)
            .cloned()
            .unwrap_or_else(|| r.review.reviewer.clone()),
        created_at: r.created_at.format("%Y-%m-%d %H:%M UTC").to_string(),
        created_iso: r.created_at.to_rfc3339(),
        comment: r.review.comment.clone(),
        decisions,
    }
}

/// The case, or the 404 page.
async fn case_or_404(
    req: &HttpRequest,
    principal: &Principal,
    state: &AppState,
    raw: &str,
) -> Result<Result<CaseRecord, HttpResponse>, PageError> {
    let found = match Uuid::parse_str(raw) {
        Ok(id) => state.repository.case(id).await?,
        Err(_) => None,
    };
    Ok(found.ok_or_else(|| {
        let layout = Layout::signed_in(req, principal, "Case not found", "/worklist");
        let body = message_page(
            &layout,
            "Case not found",
            "There is no case at this address. It may have been mistyped; open cases from the \
             worklist.",
            None,
        )
        .unwrap_or_else(|_| "Case not found.".to_owned());
        html(StatusCode::NOT_FOUND, body)
    }))
}

/// `GET /cases/{id}/view`: the study's images, the notes with their
/// highlighted mentions, the fused result per label with its uncertainty,
/// the branches side by side, packages, versions, reviews and the review
/// form.
pub(crate) async fn case_view(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuditContext,
    id: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let query: CaseQuery = super::page_query(&req);
    let case = match case_or_404(&req, &ctx.principal, &state, &id.into_inner()).await? {
        Ok(c) => c,
        Err(page) => return Ok(page),
    };
    let versions = state.repository.predictions_of_case(case.id).await?;
    let deliveries = state
        .repository
        .deliveries(&fusion_store::DeliveryFilter {
            case_id: Some(case.id),
            ..Default::default()
        })
        .await?;
    let latest_version = versions.first().map(|p| p.version);
    // An unknown version number falls back to the latest, and says so.
    let wanted = query
        .version
        .as_deref()
        .map(str::trim)
        .filter(|v| !v.is_empty());
    let asked = wanted.and_then(|v| versions.iter().find(|p| p.version.to_string() == v));
    let missing_version = wanted
        .filter(|_| asked.is_none())
        .map(|v| v.chars().take(12).collect::<String>());
    let shown = asked.or_else(|| versions.first());
    let study = match &case.study_instance_uid {
        Some(uid) => state.repository.study(uid).await?,
        None => None,
    };
    let mut instances = match &case.study_instance_uid {
        Some(uid) => state.repository.study_instances(uid).await?,
        None => Vec::new(),
    };
    // Our own SRs are results, listed with the versions, not images.
    instances.retain(|i| !crate::sr::load::is_sr_class(&i.sop_class_uid));
    let mut notes = Vec::new();
    for note_id in &case.note_ids {
        if let Some(n) = state.repository.note(*note_id).await? {
            notes.push(n);
        }
    }
    let reviews = match shown {
        Some(p) => {
            state
                .repository
                .reviews_of_prediction(p.prediction.id)
                .await?
        }
        None => Vec::new(),
    };
    let mut entities = vec![AuditEntity::new("case", case.id.to_string())];
    entities.extend(shown.map(|p| AuditEntity::new("prediction", p.prediction.id.to_string())));
    entities.extend(
        notes
            .iter()
            .map(|n| AuditEntity::new("note", n.note.id.to_string())),
    );
    entities.extend(
        case.study_instance_uid
            .iter()
            .map(|s| AuditEntity::new("study", s.as_str())),
    );
    let patient_ids: Vec<String> = case
        .patient_id
        .iter()
        .map(|p| p.as_str().to_owned())
        .collect();
    entities.extend(patient_ids.iter().map(|p| AuditEntity::new("patient", p)));
    let audit = ctx.record(
        AuditEventType::PatientRecord,
        "case-view",
        AuditAction::Read,
        entities,
        patient_ids,
    );
    state.repository.append_audit(&audit).await?;

    let used_instance = shown.and_then(|p| p.prediction.branches.image.instance.clone());
    // The image the model used first, then one per series, then the rest.
    let mut ordered: Vec<&InstanceRecord> = instances.iter().collect();
    ordered.sort_by_key(|i| used_instance.as_deref() != Some(i.sop_instance_uid.as_str()));
    let images: Vec<ImageView> = ordered
        .into_iter()
        .take(MAX_IMAGES)
        .map(|i| image_view(i, used_instance.as_deref()))
        .collect();

    let mut prediction = shown.map(|p| prediction_page(p, Some(p.version) == latest_version));
    let mut names = BTreeMap::new();
    for r in &reviews {
        if let Ok(uid) = Uuid::parse_str(&r.review.reviewer)
            && let Some(u) = state.repository.user_by_id(uid).await?
        {
            names.insert(r.review.reviewer.clone(), u.username.clone());
        }
    }
    // The newest review's decision per label, shown beside each label.
    if let (Some(p), Some(newest)) = (prediction.as_mut(), reviews.first())
        && let Some(obj) = newest.review.decisions.as_object()
    {
        for l in p.labels.iter_mut().chain(p.quiet_labels.iter_mut()) {
            l.review = obj.get(&l.key).map(decision_words);
        }
    }
    let page = CasePage {
        case_id: case.id,
        status: status_view(case.status),
        // The study's Patient ID beside the study's patient name; the
        // case's (from a note) when there is no study yet.
        patient_id: study
            .as_ref()
            .and_then(|s| s.patient_id.as_ref())
            .or(case.patient_id.as_ref())
            .map(|p| p.as_str().to_owned())
            .unwrap_or_default(),
        patient_name: study
            .as_ref()
            .and_then(|s| s.patient_name.clone())
            .map(|n| n.replace('^', " ").trim().to_owned())
            .unwrap_or_default(),
        accession_number: case
            .accession_number
            .as_ref()
            .map(|a| a.as_str().to_owned())
            .unwrap_or_default(),
        study_instance_uid: case
            .study_instance_uid
            .as_ref()
            .map(|s| s.as_str().to_owned())
            .unwrap_or_default(),
        study_date: pretty_date(case.study_date.as_deref()),
        study_description: study
            .as_ref()
            .and_then(|s| s.description.clone())
            .unwrap_or_default(),
        modalities: study
            .as_ref()
            .map(|s| s.modalities.join(", "))
            .unwrap_or_default(),
        // The study's instances less our SRs.
        image_count: i64::try_from(instances.len()).unwrap_or(i64::MAX),
        images,
        notes: notes.iter().map(note_view).collect(),
        versions: versions
            .iter()
            .map(|v| VersionView {
                version: v.version,
                href: format!("/cases/{}/view?version={}", case.id, v.version),
                created_at: v.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                created_iso: v.created_at.to_rfc3339(),
                status: if v.prediction.abstain {
                    "abstained".to_owned()
                } else {
                    "issued".to_owned()
                },
                current: Some(v.version) == shown.map(|s| s.version),
                delivery: crate::outbox::describe(&deliveries, v.prediction.id),
            })
            .collect(),
        reviews: reviews.iter().map(|r| review_item(r, &names)).collect(),
        review_choices: REVIEW_CHOICES
            .iter()
            .map(|&(value, label)| ReviewChoice { value, label })
            .collect(),
        can_review: ctx.principal.can(Permission::ReviewPredictions)
            && prediction.as_ref().is_some_and(|p| p.latest),
        // The banner only for a review of this version that exists (a link
        // cannot fake it).
        saved: query
            .reviewed
            .as_deref()
            .and_then(|r| Uuid::parse_str(r).ok())
            .is_some_and(|id| reviews.iter().any(|r| r.review.id == id)),
        missing_version,
        review_error: query.review_error.as_deref().and_then(review_error),
        max_comment: MAX_COMMENT_CHARS,
        prediction,
    };
    let title = if page.accession_number.is_empty() {
        "Case".to_owned()
    } else {
        format!("Case {}", page.accession_number)
    };
    let layout = Layout::signed_in(&req, &ctx.principal, &title, "/worklist");
    Ok(html(StatusCode::OK, render("case.html", &layout, page)?))
}

// ------------------------------------------------------------------ review form

/// `POST /cases/{id}/review` (form): `prediction_id`, one `d.<observation>`
/// per finding (see [`REVIEW_CHOICES`]), `comment`; the CSRF token is
/// checked by the middleware. Stores the review through the same path as
/// `POST /predictions/{id}/reviews` and goes back to the case (303).
pub(crate) async fn review_submit(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuditContext,
    id: web::Path<String>,
    form: web::Bytes,
) -> Result<HttpResponse, PageError> {
    let case = match case_or_404(&req, &ctx.principal, &state, &id.into_inner()).await? {
        Ok(c) => c,
        Err(page) => return Ok(page),
    };
    let back = |q: &str| see_other(&format!("/cases/{}/view?{q}", case.id));
    let Ok(fields) = serde_urlencoded::from_bytes::<Vec<(String, String)>>(&form) else {
        return Ok(back("review_error=invalid"));
    };
    // A field sent twice, or text that was not UTF-8 (decoded to U+FFFD),
    // is refused rather than silently resolved.
    let mut names = std::collections::BTreeSet::new();
    if fields
        .iter()
        .any(|(name, value)| !names.insert(name.clone()) || value.contains('\u{FFFD}'))
    {
        return Ok(back("review_error=invalid"));
    }
    let mut prediction_id = None;
    let mut comment = None;
    let mut decisions = BTreeMap::new();
    for (name, value) in fields {
        match name.as_str() {
            "prediction_id" => prediction_id = Some(value),
            "comment" => comment = Some(value),
            _ => {
                let Some(key) = name.strip_prefix("d.") else {
                    continue;
                };
                let decision = match value.as_str() {
                    "" => continue,
                    "accept" => DecisionBody::new(Decision::Accept, None),
                    "reject" => DecisionBody::new(Decision::Reject, None),
                    "amend:present" => {
                        DecisionBody::new(Decision::Amend, Some(AmendedValue::Present))
                    }
                    "amend:absent" => {
                        DecisionBody::new(Decision::Amend, Some(AmendedValue::Absent))
                    }
                    "amend:uncertain" => {
                        DecisionBody::new(Decision::Amend, Some(AmendedValue::Uncertain))
                    }
                    _ => return Ok(back("review_error=invalid")),
                };
                decisions.insert(key.to_owned(), decision);
            }
        }
    }
    let Some(prediction_id) = prediction_id else {
        return Ok(back("review_error=invalid"));
    };
    if decisions.is_empty() {
        return Ok(back("review_error=no_decision"));
    }
    if comment
        .as_ref()
        .is_some_and(|c| c.chars().count() > MAX_COMMENT_CHARS)
    {
        return Ok(back("review_error=comment"));
    }
    // Only the latest version of this case may be reviewed from the form.
    let latest = state
        .repository
        .predictions_of_case(case.id)
        .await?
        .into_iter()
        .next();
    if latest.as_ref().map(|p| p.prediction.id.to_string()) != Some(prediction_id.clone()) {
        return Ok(back("review_error=stale"));
    }
    match create_review(
        &state,
        &ctx,
        &prediction_id,
        ReviewBody::new(decisions, comment),
    )
    .await
    {
        Ok(stored) => Ok(see_other(&format!(
            "/cases/{}/view?reviewed={}#reviews",
            case.id, stored.review.id
        ))),
        Err(CasesError::Unprocessable {
            code: "superseded_version",
            ..
        }) => Ok(back("review_error=stale")),
        Err(CasesError::Invalid { .. } | CasesError::Unprocessable { .. }) => {
            Ok(back("review_error=invalid"))
        }
        Err(CasesError::Api(e)) => Err(PageError::from(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use fusion_notes::analyze;

    #[test]
    fn pieces_cover_the_text_exactly_and_mark_every_mention() {
        let text = "FINDINGS: No pneumothorax. Possible right lower lobe consolidation.\n\
                    IMPRESSION: Cardiomegaly.";
        let a = analyze(text);
        let p = pieces(text, &a.sections, &a.mentions);
        let joined: String = p.iter().map(|x| x.text.as_str()).collect();
        assert_eq!(joined, text);
        let marked: Vec<(&str, &str)> = p
            .iter()
            .filter(|x| x.kind == "mention")
            .map(|x| (x.text.as_str(), x.assertion.unwrap_or("")))
            .collect();
        assert!(marked.contains(&("pneumothorax", "absent")), "{marked:?}");
        assert!(marked.contains(&("Cardiomegaly", "present")), "{marked:?}");
        assert!(
            marked
                .iter()
                .any(|(t, a)| t.contains("consolidation") && *a == "possible"),
            "{marked:?}"
        );
        let headers: Vec<&str> = p
            .iter()
            .filter(|x| x.kind == "header")
            .map(|x| x.text.as_str())
            .collect();
        assert_eq!(headers.len(), 2, "{headers:?}");
        let tip = p
            .iter()
            .find(|x| x.text == "pneumothorax")
            .and_then(|x| x.tip.clone())
            .unwrap();
        assert!(tip.starts_with("Pneumothorax: absent"), "{tip}");
        assert!(tip.contains("trigger “No”"), "{tip}");
    }

    #[test]
    fn broken_spans_are_shown_as_plain_text() {
        let text = "héllo";
        let a = analyze("No effusion.");
        // Spans of another text: out of range or inside a character.
        let p = pieces(text, &a.sections, &a.mentions);
        let joined: String = p.iter().map(|x| x.text.as_str()).collect();
        assert_eq!(joined, text);
    }

    #[test]
    fn worklist_links_keep_filters_and_reset_the_page() {
        let q = WorklistQuery {
            status: "predicted".into(),
            patient_id: "P 1".into(),
            page: "3".into(),
            ..WorklistQuery::default()
        };
        assert_eq!(
            q.href(&[("sort", "status".into()), ("order", "asc".into())]),
            "/worklist?status=predicted&patient_id=P+1&sort=status&order=asc"
        );
        assert_eq!(
            q.href(&[("page", "4".into())]),
            "/worklist?status=predicted&patient_id=P+1&page=4"
        );
        assert_eq!(q.list_query().offset, Some(50));
    }

    #[test]
    fn observation_names_and_order() {
        let keys = observation_keys();
        assert_eq!(keys.len(), 14);
        assert_eq!(keys[0], "no_finding");
        assert_eq!(observation_name("pleural_effusion"), "Pleural Effusion");
        assert_eq!(pretty_date(Some("20260115")), "2026-01-15");
    }
}
