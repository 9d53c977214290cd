//! The clinician's pages: `GET /worklist`, `GET /cases/{id}/view` and the
//! review form's `POST /cases/{id}/review`.
//!
//! Pages read what the workers stored (cases, prediction versions, notes,
//! indexed instances); no page waits on inference. Images are fetched by the
//! browser from the WADO-RS `/rendered` path (PS3.18 §10.4.1.1.3), with the
//! same session. Every page view is audited like the JSON API's reads
//! (110110 Patient Record, action R; the worklist as a 110112 query).
//!
//! One file per part: `worklist.rs` (the list of cases), `view.rs` (the
//! case page, assembled from `images.rs`, `notes.rs`, `prediction.rs` and
//! the reviews of `review.rs`, which also takes the review form). This file
//! holds what they share: status words, observation names, dates and
//! percentages, and the case-or-404 lookup.

mod images;
mod notes;
mod prediction;
mod review;
mod view;
mod worklist;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse};
use fusion_notes::Observation;
use fusion_store::{CaseRecord, CaseStatus};
use serde::Serialize;
use uuid::Uuid;

use super::{Layout, PageError, html, message_page};
use crate::AppState;
use crate::auth::Principal;

pub(crate) use review::review_submit;
pub(crate) use view::case_view;
pub(crate) use worklist::worklist;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observation_names_and_order() {
        let keys = observation_keys();
        assert_eq!(keys.len(), 14);
        assert_eq!(keys[0], "no_finding");
        assert_eq!(observation_name("pleural_effusion"), "Pleural Effusion");
        assert_eq!(pretty_date(Some("20260115")), "2026-01-15");
    }
}
