//! WADO-RS rendered resources (PS3.18 §10.4.1.1.3, §8.3.5.1): a frame
//! rendered to PNG with an optional linear window.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use fusion_imaging::{RenderOptions, Window};
use fusion_schemas::{SeriesInstanceUid, SopInstanceUid, StudyInstanceUid};
use fusion_store::{AuditEventType, DecodeStatus};

use super::wado::{audit_retrieve, scope};
use super::{internal, parse_series, parse_sop, parse_study, problem};
use crate::auth::AuditContext;
use crate::{ApiError, AppState};

/// `?window=center,width[,function]` (PS3.18 §8.3.5.1.2; only the linear
/// function is supported).
fn parse_window(req: &HttpRequest) -> Result<Option<Window>, ApiError> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    let Some((_, value)) = pairs.into_iter().find(|(k, _)| k == "window") else {
        return Ok(None);
    };
    let parts: Vec<&str> = value.split(',').map(str::trim).collect();
    let bad = || ApiError::BadRequest("window is center,width[,linear] with numbers".into());
    if parts.len() < 2 || parts.len() > 3 {
        return Err(bad());
    }
    if parts.len() == 3 && !parts[2].eq_ignore_ascii_case("linear") {
        return Err(ApiError::BadRequest(
            "only the linear window function is supported".into(),
        ));
    }
    let center: f64 = parts[0].parse().map_err(|_| bad())?;
    let width: f64 = parts[1].parse().map_err(|_| bad())?;
    if !center.is_finite() || !width.is_finite() || width < 1.0 {
        return Err(bad());
    }
    Ok(Some(Window { center, width }))
}

async fn rendered(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuditContext,
    study: StudyInstanceUid,
    series: SeriesInstanceUid,
    instance: SopInstanceUid,
    frame: u32,
) -> Result<HttpResponse, ApiError> {
    let accept = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("*/*");
    if !(accept.contains("image/png") || accept.contains("*/*") || accept.contains("image/*")) {
        return Ok(problem(
            StatusCode::NOT_ACCEPTABLE,
            "not_acceptable",
            "rendered images are sent as image/png",
        ));
    }
    let window = parse_window(&req)?;
    let instances = scope(&state, &ctx, &study, Some(&series), Some(&instance)).await?;
    let Some(record) = instances.into_iter().next() else {
        return Err(ApiError::NotFound("no such instance".into()));
    };
    if record.decode_status == DecodeStatus::Failed {
        return Ok(problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_renderable",
            format!(
                "the pixel data cannot be decoded: {}",
                record.decode_reason.as_deref().unwrap_or("unknown reason")
            ),
        ));
    }
    audit_retrieve(
        &state,
        &ctx,
        AuditEventType::DicomInstancesAccessed,
        "wado-rs-rendered",
        std::slice::from_ref(&record),
    )
    .await?;
    let bytes = state.blobs.get(&record.blob_key).await.map_err(internal)?;
    let png = web::block(move || {
        let object = fusion_imaging::read(&bytes)?;
        let pixels = fusion_imaging::decode_pixels(&object)?;
        let frame =
            fusion_imaging::render_frame(&object, &pixels, &RenderOptions { frame, window })?;
        Ok::<_, anyhow::Error>(frame.to_png()?)
    })
    .await
    .map_err(internal)?;
    match png {
        Ok(png) => Ok(HttpResponse::Ok().content_type("image/png").body(png)),
        Err(e) => Ok(problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_renderable",
            format!("cannot render this frame: {e}"),
        )),
    }
}

/// `GET /dicom-web/studies/{study}/series/{series}/instances/{instance}/rendered`.
pub(crate) async fn instance_rendered(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuditContext,
    path: web::Path<(String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (study, series, instance) = path.into_inner();
    rendered(
        req,
        state,
        ctx,
        parse_study(&study)?,
        parse_series(&series)?,
        parse_sop(&instance)?,
        1,
    )
    .await
}

/// `GET /dicom-web/studies/{study}/series/{series}/instances/{instance}/frames/{frame}/rendered`.
pub(crate) async fn frame_rendered(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuditContext,
    path: web::Path<(String, String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (study, series, instance, frame) = path.into_inner();
    let frame: u32 =
        frame.parse().ok().filter(|f| *f >= 1).ok_or_else(|| {
            ApiError::BadRequest("a frame number is a whole number from 1".into())
        })?;
    rendered(
        req,
        state,
        ctx,
        parse_study(&study)?,
        parse_series(&series)?,
        parse_sop(&instance)?,
        frame,
    )
    .await
}
