//! Reviews: `POST /predictions/{id}/reviews` records a clinician's
//! decision per observation (accept, reject, or amend to present, absent or
//! uncertain) and marks the case reviewed; `GET /predictions/{id}/reviews`
//! lists them.

use std::collections::BTreeMap;

use actix_web::{HttpResponse, web};
use chrono::{DateTime, Utc};
use fusion_store::{
    AuditAction, AuditEntity, AuditEventType, EntityKind, NewReview, PredictionRecord, ReviewRecord,
};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::{CasesError, existing_prediction, invalid, not_found, patients_of, read_audit};
use crate::auth::AuditContext;
use crate::{ApiError, AppState};

/// Longest review comment, characters.
pub const MAX_COMMENT_CHARS: usize = 4000;

/// A review as the API shows it.
#[derive(Debug, Serialize)]
struct ReviewView {
    id: Uuid,
    prediction_id: Uuid,
    case_id: Uuid,
    reviewer: String,
    decisions: serde_json::Value,
    comment: Option<String>,
    created_at: DateTime<Utc>,
}

impl From<ReviewRecord> for ReviewView {
    fn from(r: ReviewRecord) -> Self {
        Self {
            id: r.review.id,
            prediction_id: r.review.prediction_id,
            case_id: r.case_id,
            reviewer: r.review.reviewer,
            decisions: r.review.decisions,
            comment: r.review.comment,
            created_at: r.created_at,
        }
    }
}

/// A reviewer's decision on one observation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Decision {
    /// The prediction stands.
    Accept,
    /// The prediction is wrong; no replacement value.
    Reject,
    /// The prediction is replaced by `value`.
    Amend,
}

/// The value a reviewer amends an observation to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum AmendedValue {
    Present,
    Absent,
    Uncertain,
}

#[derive(Debug, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct DecisionBody {
    decision: Decision,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<AmendedValue>,
}

/// Body of `POST /predictions/{id}/reviews`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ReviewBody {
    /// A decision per observation, keyed by its snake_case name
    /// (`pleural_effusion`).
    decisions: BTreeMap<String, DecisionBody>,
    /// The reviewer's comment.
    comment: Option<String>,
}

impl DecisionBody {
    /// A decision; `value` only with [`Decision::Amend`] (checked when the
    /// review is parsed).
    pub(crate) fn new(decision: Decision, value: Option<AmendedValue>) -> Self {
        Self { decision, value }
    }
}

impl ReviewBody {
    /// A review: decisions keyed by snake_case observation, and a comment.
    pub(crate) fn new(decisions: BTreeMap<String, DecisionBody>, comment: Option<String>) -> Self {
        Self { decisions, comment }
    }

    /// Checks the decisions against the prediction's observations.
    fn parse(
        self,
        prediction: &PredictionRecord,
    ) -> Result<(serde_json::Value, Option<String>), CasesError> {
        if self.decisions.is_empty() {
            return Err(invalid(
                "invalid_review",
                "decisions must name at least one observation",
            ));
        }
        let known = &prediction.prediction.fused;
        for (observation, d) in &self.decisions {
            if !known.contains_key(observation) {
                return Err(invalid(
                    "unknown_observation",
                    format!("the prediction has no observation {observation:?}"),
                ));
            }
            match (d.decision, d.value) {
                (Decision::Amend, None) => {
                    return Err(invalid(
                        "invalid_review",
                        format!(
                            "{observation}: amend needs a value (present, absent or uncertain)"
                        ),
                    ));
                }
                (Decision::Accept | Decision::Reject, Some(_)) => {
                    return Err(invalid(
                        "invalid_review",
                        format!("{observation}: only amend takes a value"),
                    ));
                }
                _ => {}
            }
        }
        let comment = self
            .comment
            .map(|c| c.trim().to_owned())
            .filter(|c| !c.is_empty());
        if comment
            .as_ref()
            .is_some_and(|c| c.chars().count() > MAX_COMMENT_CHARS || c.contains('\0'))
        {
            return Err(invalid(
                "invalid_review",
                format!("comment: at most {MAX_COMMENT_CHARS} characters of text"),
            ));
        }
        let decisions = serde_json::to_value(&self.decisions)
            .map_err(|e| CasesError::Api(ApiError::Internal(e.into())))?;
        Ok((decisions, comment))
    }
}

/// Stores `body` as a review of prediction `prediction_id` by the caller,
/// with its audit event (110110 `review-create`, action C) in the same
/// transaction; the case becomes `reviewed`. Shared by the JSON API and the
/// dashboard's review form.
///
/// # Errors
///
/// 404 for an unknown prediction; 400 `invalid_review` /
/// `unknown_observation` for decisions that do not fit the prediction; 422
/// `superseded_version` for a version that is not the case's latest;
/// storage failures.
pub(crate) async fn create_review(
    state: &AppState,
    ctx: &AuditContext,
    prediction_id: &str,
    body: ReviewBody,
) -> Result<ReviewRecord, CasesError> {
    let (prediction, case) = existing_prediction(state, prediction_id).await?;
    let (decisions, comment) = body.parse(&prediction)?;
    // A review judges the case's current result: an older version is
    // history, and reviewing it would mark the case reviewed while its
    // latest version is not.
    let latest = state
        .repository
        .predictions_of_case(case.id)
        .await?
        .into_iter()
        .next()
        .map(|p| p.version);
    if latest != Some(prediction.version) {
        return Err(CasesError::Unprocessable {
            code: "superseded_version",
            message: format!(
                "version {} is not the case's latest (version {}): review the latest",
                prediction.version,
                latest.unwrap_or_default()
            ),
        });
    }
    let review = NewReview {
        id: Uuid::now_v7(),
        prediction_id: prediction.prediction.id,
        reviewer: ctx.principal.id.clone(),
        decisions,
        comment,
        // Its VERIFIED SR and FHIR deliveries, in the same transaction (#17).
        deliveries: state.outbox.for_review(case.study_instance_uid.is_some()),
    };
    let audit = ctx.record(
        AuditEventType::PatientRecord,
        "review-create",
        AuditAction::Create,
        vec![
            AuditEntity::new(EntityKind::Review, review.id.to_string()),
            AuditEntity::new(EntityKind::Prediction, prediction.prediction.id.to_string()),
            AuditEntity::new(EntityKind::Case, case.id.to_string()),
        ],
        patients_of(case.patient_id.as_ref()),
    );
    let stored = state
        .repository
        .put_review(&review, &audit)
        .await?
        .ok_or_else(|| not_found("prediction"))?;
    fusion_app::outbox::wake(state);
    Ok(stored)
}

/// `POST /predictions/{id}/reviews`: 201 with the review.
pub(crate) async fn review(
    state: web::Data<AppState>,
    ctx: AuditContext,
    path: web::Path<String>,
    body: web::Json<ReviewBody>,
) -> Result<HttpResponse, CasesError> {
    let stored = create_review(&state, &ctx, &path.into_inner(), body.into_inner()).await?;
    Ok(HttpResponse::Created()
        .insert_header((
            "location",
            format!("/predictions/{}/reviews", stored.review.prediction_id),
        ))
        .json(ReviewView::from(stored)))
}

/// `GET /predictions/{id}/reviews`.
pub(crate) async fn reviews(
    state: web::Data<AppState>,
    ctx: AuditContext,
    path: web::Path<String>,
) -> Result<HttpResponse, CasesError> {
    let (prediction, case) = existing_prediction(&state, &path.into_inner()).await?;
    let reviews = state
        .repository
        .reviews_of_prediction(prediction.prediction.id)
        .await?;
    let mut entities = vec![
        AuditEntity::new(EntityKind::Case, case.id.to_string()),
        AuditEntity::new(EntityKind::Prediction, prediction.prediction.id.to_string()),
    ];
    entities.extend(
        reviews
            .iter()
            .map(|r| AuditEntity::new(EntityKind::Review, r.review.id.to_string())),
    );
    let audit = read_audit(&ctx, "review-read", entities, case.patient_id.as_ref());
    state.repository.append_audit(&audit).await?;
    let body: Vec<ReviewView> = reviews.into_iter().map(ReviewView::from).collect();
    Ok(HttpResponse::Ok().json(serde_json::json!({
        "prediction_id": prediction.prediction.id,
        "reviews": body,
    })))
}
