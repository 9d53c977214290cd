//! Reviews on the case page: the reviews of the version shown, the review
//! form's choices and refusals, and `POST /cases/{id}/review`, which stores
//! a review through the JSON API's path.

use std::collections::BTreeMap;

use actix_web::{HttpRequest, HttpResponse, web};
use fusion_store::ReviewRecord;
use serde::Serialize;

use super::{case_or_404, observation_name};
use crate::AppState;
use crate::auth::AuditContext;
use crate::dashboard::{PageError, see_other};
use crate::routes::cases::{
    AmendedValue, CasesError, Decision, DecisionBody, MAX_COMMENT_CHARS, ReviewBody, create_review,
};

/// The words for a refused review form, by code.
pub(super) fn review_error(code: &str) -> Option<&'static str> {
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
pub(super) struct ReviewItem {
    reviewer: String,
    created_at: String,
    created_iso: String,
    comment: Option<String>,
    decisions: Vec<(String, String)>,
}

#[derive(Debug, Serialize)]
pub(super) struct ReviewChoice {
    pub(super) value: &'static str,
    pub(super) label: &'static str,
}

/// The review form's options per finding; `amend:<value>` amends.
pub(super) const REVIEW_CHOICES: [(&str, &str); 6] = [
    ("", "No decision"),
    ("accept", "Accept"),
    ("reject", "Reject"),
    ("amend:present", "Amend to present"),
    ("amend:absent", "Amend to absent"),
    ("amend:uncertain", "Amend to uncertain"),
];

pub(super) fn decision_words(d: &serde_json::Value) -> String {
    let decision = d.get("decision").and_then(|v| v.as_str()).unwrap_or("");
    match (decision, d.get("value").and_then(|v| v.as_str())) {
        ("amend", Some(v)) => format!("amended to {v}"),
        ("accept", _) => "accepted".to_owned(),
        ("reject", _) => "rejected".to_owned(),
        (other, _) => other.to_owned(),
    }
}

pub(super) fn review_item(r: &ReviewRecord, names: &BTreeMap<String, String>) -> ReviewItem {
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
        Err(
            CasesError::Invalid { .. }
            | CasesError::Unprocessable { .. }
            | CasesError::Conflict { .. },
        ) => Ok(back("review_error=invalid")),
        Err(CasesError::Api(e)) => Err(PageError::from(e)),
    }
}
