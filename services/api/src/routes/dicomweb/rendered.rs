//! WADO-RS rendered resources (PS3.18 §10.4.1.1.3, query parameters of
//! §8.3.5.1): an instance or a frame rendered to an image, and a series or
//! study rendered as one image per instance.
//!
//! Media types (PS3.18 §8.7.4, Table 8.7.4-1): `image/jpeg`, the
//! standard's default, when the Accept header names it, a wildcard, or
//! nothing; `image/png` and `image/gif` (one image, the frame asked for)
//! when asked for. The `accept` query parameter
//! (§8.3.3.1) replaces the header when given (`?accept=image/png` in an
//! `<img src>`). Other rendered types (`image/jp2`, animated GIF, video,
//! PDF, text) answer 406 with those available.
//!
//! Parameters: `window=center,width[,linear]` (§8.3.5.1.2),
//! `viewport=vw,vh[,sx,sy,sw,sh]` (§8.3.5.1.3, see
//! [`fusion_imaging::Viewport`]) and `quality=1..100` (§8.3.5.1.4, JPEG
//! only; default [`DEFAULT_QUALITY`]). Annotation and ICC profiles are not
//! supported: `annotation` and `iccprofile` other than `no` answer 400, as
//! does any other parameter, so nothing is silently ignored.
//!
//! A series or study (`…/series/{series}/rendered`, `…/studies/{study}/rendered`)
//! answers `multipart/related; type="image/jpeg"` (or PNG, GIF), one
//! part per instance with pixel data, its first frame, in the order of the
//! index (series, then instance number), under a random boundary; instances
//! without pixel data (SR, presentation states) or that do not decode are
//! left out (so is one that fails to render, e.g. a viewport outside it),
//! and none left is a 422. An Accept header that allows a single
//! image only (`image/jpeg`) is served when the series or study holds
//! exactly one renderable instance, and answered 406 otherwise.
//!
//! Instances whose pixel data failed to decode at ingest (JPEG-LS in a build
//! without the `jpeg-ls` feature, damaged data) answer 422 with the reason.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use fusion_imaging::{RenderOptions, RenderedFrame, Viewport, Window};
use fusion_schemas::{SeriesInstanceUid, SopInstanceUid, StudyInstanceUid};
use fusion_store::{AuditEventType, DecodeStatus, InstanceRecord};
use futures::StreamExt;

use super::negotiate::{self, MediaRange};
use super::wado::{audit_retrieve, scope};
use super::{internal, parse_series, parse_sop, parse_study, problem};
use crate::auth::AuditContext;
use crate::{ApiError, AppState};

/// JPEG quality when the request gives none (PS3.18 leaves it to the
/// origin server): 90, visually lossless for review at screen size.
pub const DEFAULT_QUALITY: u8 = 90;

/// A rendered image's encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Format {
    Jpeg,
    Png,
    Gif,
}

impl Format {
    fn media_type(self) -> &'static str {
        match self {
            Self::Jpeg => "image/jpeg",
            Self::Png => "image/png",
            Self::Gif => "image/gif",
        }
    }

    /// The format a bare (non-multipart) media type asks for.
    fn of(media_type: &str) -> Option<Self> {
        match media_type {
            "image/jpeg" | "image/*" | "*/*" | "*" => Some(Self::Jpeg),
            "image/png" => Some(Self::Png),
            "image/gif" => Some(Self::Gif),
            _ => None,
        }
    }
}

/// The rendering parameters of PS3.18 §8.3.5.1.
#[derive(Debug, Clone, Copy)]
struct Params {
    window: Option<Window>,
    viewport: Option<Viewport>,
    quality: u8,
}

/// The media ranges asked for: the `accept` query parameter when given
/// (PS3.18 §8.3.3.1, for a browser's `<img>`, which cannot set the
/// header), else the Accept header.
fn ranges(req: &HttpRequest) -> Vec<MediaRange> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    match pairs.iter().find(|(k, _)| k == "accept") {
        Some((_, value)) => negotiate::parse_accept(value),
        None => negotiate::accept_ranges(req),
    }
}

/// `window=center,width[,function]` (PS3.18 §8.3.5.1.2; only the linear
/// function is supported).
fn parse_window(value: &str) -> Result<Window, ApiError> {
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
    Ok(Window { center, width })
}

fn parse_params(req: &HttpRequest) -> Result<Params, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(req.query_string())
        .map_err(|e| ApiError::BadRequest(format!("invalid query string: {e}")))?;
    let mut params = Params {
        window: None,
        viewport: None,
        quality: DEFAULT_QUALITY,
    };
    for (key, value) in pairs {
        match key.as_str() {
            "window" => params.window = Some(parse_window(&value)?),
            "viewport" => {
                params.viewport =
                    Some(Viewport::parse(&value).map_err(|e| ApiError::BadRequest(e.to_string()))?);
            }
            "quality" => {
                params.quality = value
                    .trim()
                    .parse::<u8>()
                    .ok()
                    .filter(|q| (1..=100).contains(q))
                    .ok_or_else(|| {
                        ApiError::BadRequest("quality is a whole number from 1 to 100".into())
                    })?;
            }
            "annotation" | "iccprofile" if value.eq_ignore_ascii_case("no") => {}
            "accept" => {}
            other => {
                return Err(ApiError::BadRequest(format!(
                    "rendered resources take window, viewport and quality; {other:?} is not supported"
                )));
            }
        }
    }
    Ok(params)
}

fn not_acceptable(single: bool) -> HttpResponse {
    let available: &[&str] = if single {
        &["image/jpeg", "image/png", "image/gif"]
    } else {
        &[
            "multipart/related; type=\"image/jpeg\"",
            "multipart/related; type=\"image/png\"",
            "multipart/related; type=\"image/gif\"",
        ]
    };
    negotiate::not_acceptable("rendered images are sent as JPEG, PNG or GIF", available)
}

/// The format of a single rendered image from the Accept ranges, best
/// first.
fn single_format(ranges: &[MediaRange]) -> Option<Format> {
    ranges.iter().find_map(|r| Format::of(&r.media_type))
}

/// The part format of a multipart rendered response.
fn multipart_format(ranges: &[MediaRange]) -> Option<Format> {
    ranges
        .iter()
        .filter(|r| r.allows_multipart())
        .find_map(|r| Format::of(r.part_media_type()))
}

/// Renders frame `frame` (from 1) of the stored instance `bytes`.
fn render(bytes: &[u8], frame: u32, params: &Params, format: Format) -> anyhow::Result<Vec<u8>> {
    let object = fusion_imaging::read(bytes)?;
    let pixels = fusion_imaging::decode_pixels(&object)?;
    let options = RenderOptions {
        frame,
        window: params.window,
    };
    let mut image: RenderedFrame = fusion_imaging::render_frame(&object, &pixels, &options)?;
    if let Some(viewport) = &params.viewport {
        image = viewport.apply(&image)?;
    }
    Ok(match format {
        Format::Jpeg => image.to_jpeg(params.quality)?,
        Format::Png => image.to_png()?,
        Format::Gif => image.to_gif()?,
    })
}

fn not_renderable(record: &InstanceRecord) -> HttpResponse {
    problem(
        StatusCode::UNPROCESSABLE_ENTITY,
        "not_renderable",
        format!(
            "the pixel data cannot be decoded: {}",
            record.decode_reason.as_deref().unwrap_or("unknown reason")
        ),
    )
}

/// Renders one frame of one instance.
async fn rendered(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuditContext,
    study: StudyInstanceUid,
    series: SeriesInstanceUid,
    instance: SopInstanceUid,
    frame: u32,
) -> Result<HttpResponse, ApiError> {
    let Some(format) = single_format(&ranges(&req)) else {
        return Ok(not_acceptable(true));
    };
    let params = parse_params(&req)?;
    let instances = scope(&state, &ctx, &study, Some(&series), Some(&instance)).await?;
    let Some(record) = instances.into_iter().next() else {
        return Err(ApiError::NotFound("no such instance".into()));
    };
    if record.decode_status == DecodeStatus::Failed {
        return Ok(not_renderable(&record));
    }
    audit_retrieve(
        &state,
        &ctx,
        AuditEventType::DicomInstancesAccessed,
        "wado-rs-rendered",
        std::slice::from_ref(&record),
    )
    .await?;
    let _slot = super::decode_slots::acquire().await;
    let bytes = state.blobs.get(&record.blob_key).await.map_err(internal)?;
    let image = web::block(move || render(&bytes, frame, &params, format))
        .await
        .map_err(internal)?;
    match image {
        Ok(image) => Ok(HttpResponse::Ok()
            .content_type(format.media_type())
            .body(image)),
        Err(e) => Ok(problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_renderable",
            format!("cannot render this frame: {e}"),
        )),
    }
}

/// `GET /dicom-web/studies/{study}/series/{series}/instances/{instance}/rendered`:
/// the instance's first frame (PS3.18 §10.4.1.1.3).
///
/// # Errors
///
/// 400 for a malformed UID or parameter, 404 when the instance is not
/// visible to the caller, 406 for a media type other than JPEG, PNG or GIF, 422
/// when its pixel data does not decode.
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

/// `GET /dicom-web/studies/{study}/series/{series}/instances/{instance}/frames/{frame}/rendered`
/// (PS3.18 §10.4.1.1.3): one frame, numbered from 1.
///
/// # Errors
///
/// As [`instance_rendered`]; a frame beyond Number of Frames is a 422.
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

/// `GET /dicom-web/studies/{study}/rendered`: every renderable instance
/// of the study (see the module docs).
///
/// # Errors
///
/// 400 for a malformed UID or parameter, 404 when nothing is visible to
/// the caller, 406 as in the module docs, 422 when no instance renders.
pub(crate) async fn study_rendered(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuditContext,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let study = parse_study(&path.into_inner())?;
    many_rendered(req, state, ctx, study, None).await
}

/// `GET /dicom-web/studies/{study}/series/{series}/rendered`: every
/// renderable instance of the series (see the module docs).
///
/// # Errors
///
/// As [`study_rendered`].
pub(crate) async fn series_rendered(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuditContext,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (study, series) = path.into_inner();
    let (study, series) = (parse_study(&study)?, parse_series(&series)?);
    many_rendered(req, state, ctx, study, Some(series)).await
}

async fn many_rendered(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuditContext,
    study: StudyInstanceUid,
    series: Option<SeriesInstanceUid>,
) -> Result<HttpResponse, ApiError> {
    let ranges = ranges(&req);
    let multipart = multipart_format(&ranges);
    let single = single_format(&ranges);
    if multipart.is_none() && single.is_none() {
        return Ok(not_acceptable(false));
    }
    let params = parse_params(&req)?;
    let instances = scope(&state, &ctx, &study, series.as_ref(), None).await?;
    // Decode status Unknown: no pixel data (SR, presentation states).
    let renderable: Vec<InstanceRecord> = instances
        .into_iter()
        .filter(|i| i.decode_status == DecodeStatus::Ok)
        .collect();
    let format = match (multipart, single) {
        (Some(f), _) => f,
        (None, Some(_)) if renderable.len() == 1 => {
            let record = &renderable[0];
            let (series, instance) = (
                record.series_instance_uid.clone(),
                record.sop_instance_uid.clone(),
            );
            return rendered(req, state, ctx, study, series, instance, 1).await;
        }
        _ => return Ok(not_acceptable(false)),
    };
    if renderable.is_empty() {
        return Ok(problem(
            StatusCode::UNPROCESSABLE_ENTITY,
            "not_renderable",
            "no instance here has pixel data that decodes",
        ));
    }
    audit_retrieve(
        &state,
        &ctx,
        AuditEventType::DicomInstancesAccessed,
        "wado-rs-rendered",
        &renderable,
    )
    .await?;
    let boundary = negotiate::random_boundary()?;
    let part_boundary = boundary.clone();
    let closing = Bytes::from(format!("--{boundary}--\r\n"));
    let blobs = state.blobs.clone();
    // Streamed, an instance at a time: a study never sits in memory whole.
    let parts = futures::stream::iter(renderable).then(move |record| {
        let blobs = blobs.clone();
        let boundary = part_boundary.clone();
        async move {
            let fail = |what: &str| {
                tracing::error!(step = what, "rendered part failed; stream aborted");
                actix_web::error::ErrorInternalServerError("rendering failed")
            };
            let _slot = super::decode_slots::acquire().await;
            let bytes = blobs
                .get(&record.blob_key)
                .await
                .map_err(|_| fail("blob"))?;
            let image = match web::block(move || render(&bytes, 1, &params, format))
                .await
                .map_err(|_| fail("render"))?
            {
                Ok(image) => image,
                Err(e) => {
                    // Left out, as an instance that does not decode is.
                    tracing::warn!(error = %e, "an instance of a rendered series did not render");
                    return Ok(Bytes::new());
                }
            };
            if negotiate::contains(&image, format!("--{boundary}").as_bytes()) {
                return Err(fail("boundary"));
            }
            let head = format!(
                "--{boundary}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n",
                format.media_type(),
                image.len()
            );
            let mut part = Vec::with_capacity(head.len() + image.len() + 2);
            part.extend_from_slice(head.as_bytes());
            part.extend_from_slice(&image);
            part.extend_from_slice(b"\r\n");
            Ok::<Bytes, actix_web::Error>(Bytes::from(part))
        }
    });
    let body = parts.chain(futures::stream::once(async move { Ok(closing) }));
    Ok(HttpResponse::Ok()
        .content_type(format!(
            "multipart/related; type=\"{}\"; boundary={boundary}",
            format.media_type()
        ))
        .streaming(body))
}
