//! `GET /cases/{id}/view`: the case page, assembled from its parts (images,
//! notes, prediction, versions, reviews and the review form).

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use fusion_store::{AuditAction, AuditEntity, AuditEventType, EntityKind, InstanceRecord};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::images::{ImageView, MAX_IMAGES, image_view};
use super::notes::{NoteView, note_view};
use super::prediction::{PredictionPage, prediction_page};
use super::review::{
    REVIEW_CHOICES, ReviewChoice, ReviewItem, decision_words, review_error, review_item,
};
use super::{StatusView, case_or_404, pretty_date, status_view};
use crate::AppState;
use crate::auth::{AuditContext, Permission};
use crate::dashboard::{Layout, PageError, html, render};
use crate::routes::cases::MAX_COMMENT_CHARS;

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
    /// Versions whose stored row cannot be read, newest first.
    unreadable_versions: Vec<i32>,
    /// Whether the newest version is one of them.
    latest_unreadable: bool,
    review_error: Option<&'static str>,
    max_comment: usize,
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
    let query: CaseQuery = crate::dashboard::page_query(&req);
    let case = match case_or_404(&req, &ctx.principal, &state, &id.into_inner()).await? {
        Ok(c) => c,
        Err(page) => return Ok(page),
    };
    // A version that does not read back is listed apart, never a 500: the
    // worklist sends the clinician here for exactly such a case.
    let all_versions = state.repository.prediction_versions(case.id).await?;
    for u in &all_versions.unreadable {
        tracing::error!(prediction = %u.id, version = u.version, reason = %u.reason, "a prediction version of a case cannot be read");
    }
    let latest_version = all_versions.latest_version();
    let unreadable_versions: Vec<i32> = all_versions.unreadable.iter().map(|u| u.version).collect();
    let latest_unreadable = latest_version.is_some_and(|v| unreadable_versions.contains(&v));
    let versions = all_versions.readable;
    let deliveries = state
        .repository
        .deliveries(&fusion_store::DeliveryFilter {
            case_id: Some(case.id),
            ..Default::default()
        })
        .await?;
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
    instances.retain(|i| !fusion_app::sr::load::is_sr_class(&i.sop_class_uid));
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
    let mut entities = vec![AuditEntity::new(EntityKind::Case, case.id.to_string())];
    entities.extend(
        shown.map(|p| AuditEntity::new(EntityKind::Prediction, p.prediction.id.to_string())),
    );
    entities.extend(
        notes
            .iter()
            .map(|n| AuditEntity::new(EntityKind::Note, n.note.id.to_string())),
    );
    entities.extend(
        case.study_instance_uid
            .iter()
            .map(|s| AuditEntity::new(EntityKind::Study, s.as_str())),
    );
    let patient_ids: Vec<String> = case
        .patient_id
        .iter()
        .map(|p| p.as_str().to_owned())
        .collect();
    entities.extend(
        patient_ids
            .iter()
            .map(|p| AuditEntity::new(EntityKind::Patient, p)),
    );
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
    // A version made from a note that has since left the case (another
    // patient's report, unlinked when the study's patient became the
    // case's) says so above everything else.
    if let (Some(page), Some(p)) = (prediction.as_mut(), shown) {
        let linked: Vec<String> = case.note_ids.iter().map(Uuid::to_string).collect();
        let skipped = &p.prediction.branches.text.skipped;
        page.from_removed_notes = p
            .prediction
            .inputs
            .notes
            .iter()
            .any(|n| !linked.contains(n) && !skipped.iter().any(|s| &s.id == n));
    }
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
                delivery: fusion_app::outbox::describe(&deliveries, v.prediction.id),
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
        unreadable_versions,
        latest_unreadable,
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
