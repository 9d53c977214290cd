//! WADO-RS Retrieve Frames (PS3.18 §10.4.1.1.4, `…/frames/{list}`) and
//! bulk data (§10.4.1.1.5, the BulkDataURIs of the metadata), with media
//! type and transfer syntax negotiation (§8.7.3.3.2, §8.7.3.5.2, Table
//! 8.7.3-2).
//!
//! Pixel data goes out either as stored (the compressed media type of its
//! transfer syntax, `image/jls`, `image/jp2`, `image/jpeg`,
//! `image/dicom-rle`, …, one part per frame) or uncompressed as
//! `application/octet-stream` in Explicit VR Little Endian, decoding
//! compressed frames. The service never compresses: asking for a compressed
//! type the instance is not stored in is answered 406 with what is
//! available.

use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use fusion_imaging::{EXPLICIT_VR_LITTLE_ENDIAN, frame_media_type, is_native};
use fusion_store::{AuditEventType, DecodeStatus, InstanceRecord};

use super::negotiate::{self, MediaRange, Part};
use super::wado::{audit_retrieve, scope};
use super::{internal, parse_series, parse_sop, parse_study};
use crate::auth::AuditContext;
use crate::{ApiError, AppState};

/// How pixel data is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PixelForm {
    /// As stored: compressed frames in their own media type, native frames
    /// as `application/octet-stream`.
    Stored,
    /// Uncompressed `application/octet-stream`, little endian, decoded when
    /// stored compressed.
    Native,
}

/// Aliases clients send for the media types of Table 8.7.3-2.
fn same_media_type(asked: &str, stored: &str) -> bool {
    fn canonical(m: &str) -> &str {
        match m {
            "image/x-jls" => "image/jls",
            "image/x-dicom-rle" => "image/dicom-rle",
            other => other,
        }
    }
    asked == stored || canonical(asked) == canonical(stored)
}

/// Picks the form for an instance stored in `stored_ts` from the Accept
/// ranges, best first; `Err` lists the media types available.
///
/// - `type="*/*"` (dicomweb-client's default), no type, or no Accept
///   header: as stored, unless `transfer-syntax` names Explicit VR Little
///   Endian.
/// - `type="application/octet-stream"`: uncompressed, except with
///   `transfer-syntax=*` (the origin server's choice, what OHIF sends): as
///   stored, each part labelled with its own media type and syntax.
/// - a compressed type (`image/jls`, …, or `image/*`): as stored when it is
///   the stored type and the `transfer-syntax` parameter, if any, is `*` or
///   the stored syntax.
fn negotiate_pixels(
    ranges: &[MediaRange],
    stored_ts: &str,
    decodable: bool,
) -> Result<PixelForm, Vec<String>> {
    let native = is_native(stored_ts);
    let stored_type = frame_media_type(stored_ts).unwrap_or("application/octet-stream");
    let can_native = native || decodable;
    for r in ranges {
        if !r.allows_multipart() {
            continue;
        }
        let pt = r.part_media_type();
        let ts = r.transfer_syntax.as_deref();
        let wants_le = ts == Some(EXPLICIT_VR_LITTLE_ENDIAN);
        let stored_ok = ts.is_none() || ts == Some("*") || ts == Some(stored_ts);
        let form = match pt {
            "*/*" | "*" if wants_le && can_native => Some(PixelForm::Native),
            "*/*" | "*" if stored_ok => Some(PixelForm::Stored),
            "application/octet-stream" if ts == Some("*") => Some(PixelForm::Stored),
            "application/octet-stream" if (ts.is_none() || wants_le) && can_native => {
                Some(PixelForm::Native)
            }
            "application/octet-stream" if native && stored_ok => Some(PixelForm::Native),
            "image/*" if !native && stored_ok => Some(PixelForm::Stored),
            other if !native && same_media_type(other, stored_type) && stored_ok => {
                Some(PixelForm::Stored)
            }
            _ => None,
        };
        if let Some(form) = form {
            return Ok(form);
        }
    }
    let mut available = Vec::new();
    if !native {
        available.push(format!(
            "multipart/related; type=\"{stored_type}\"; transfer-syntax={stored_ts}"
        ));
    }
    if can_native {
        available.push(format!(
            "multipart/related; type=\"application/octet-stream\"; transfer-syntax={EXPLICIT_VR_LITTLE_ENDIAN}"
        ));
    }
    Err(available)
}

fn refuse(available: &[String]) -> HttpResponse {
    let available: Vec<&str> = available.iter().map(String::as_str).collect();
    negotiate::not_acceptable(
        "no acceptable media type and transfer syntax for this pixel data: see available",
        &available,
    )
}

/// The parts for frames in a form: `(multipart type, parts)`.
fn frame_parts(
    form: PixelForm,
    stored_ts: &str,
    frames: Vec<Vec<u8>>,
) -> (&'static str, Vec<Part>) {
    let (media, ts) = match form {
        PixelForm::Native => ("application/octet-stream", EXPLICIT_VR_LITTLE_ENDIAN),
        PixelForm::Stored => (
            frame_media_type(stored_ts).unwrap_or("application/octet-stream"),
            if is_native(stored_ts) {
                EXPLICIT_VR_LITTLE_ENDIAN
            } else {
                stored_ts
            },
        ),
    };
    let parts = frames
        .into_iter()
        .map(|f| Part {
            content_type: format!("{media}; transfer-syntax={ts}"),
            body: Bytes::from(f),
        })
        .collect();
    (media, parts)
}

/// A frame list `1,3,5` (PS3.18 §10.4.1.1.4: 1-based, comma-separated).
fn parse_frame_list(raw: &str) -> Result<Vec<u32>, ApiError> {
    let numbers: Result<Vec<u32>, _> = raw
        .split(',')
        .map(|n| n.trim().parse::<u32>().ok().filter(|&n| n >= 1).ok_or(()))
        .collect();
    match numbers {
        Ok(n) if !n.is_empty() => Ok(n),
        _ => Err(ApiError::BadRequest(
            "frames are a comma-separated list of numbers from 1".into(),
        )),
    }
}

async fn one_instance(
    state: &AppState,
    ctx: &AuditContext,
    path: &(String, String, String),
) -> Result<InstanceRecord, ApiError> {
    let (study, series, instance) = (
        parse_study(&path.0)?,
        parse_series(&path.1)?,
        parse_sop(&path.2)?,
    );
    scope(state, ctx, &study, Some(&series), Some(&instance))
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::NotFound("no such instance".into()))
}

/// What the blocking pixel work produced.
enum Extracted {
    Frames(Vec<Vec<u8>>),
    NoSuchFrame(String),
    Unusable(String),
}

fn extract(bytes: &[u8], numbers: &[u32], form: PixelForm) -> Result<Extracted, anyhow::Error> {
    let object = fusion_imaging::read(bytes)?;
    let result = match form {
        PixelForm::Stored => fusion_imaging::stored_frames(&object, numbers),
        PixelForm::Native => fusion_imaging::native_frames(&object, numbers).map(|n| n.frames),
    };
    Ok(match result {
        Ok(frames) => Extracted::Frames(frames),
        Err(e @ fusion_imaging::FrameError::NoSuchFrame { .. }) => {
            Extracted::NoSuchFrame(e.to_string())
        }
        Err(e) => Extracted::Unusable(e.to_string()),
    })
}

/// `GET /dicom-web/studies/{study}/series/{series}/instances/{instance}/frames/{frames}`:
/// WADO-RS Retrieve Frames (PS3.18 §10.4.1.1.4). `{frames}` is a
/// comma-separated list of 1-based frame numbers; the answer is
/// `multipart/related` with one part per frame in the order asked, each
/// with `Content-Type: {media type}; transfer-syntax={uid}`, under a random
/// boundary that occurs in no frame. Media types as negotiated (see the
/// module documentation and PS3.18 Table 8.7.3-2).
///
/// # Errors
///
/// 400 for a malformed UID or frame list, 404 for an unknown instance or a
/// frame beyond Number of Frames, 406 when no acceptable form exists (the
/// body lists `available`), 422 when the pixel data cannot be read or
/// decoded.
pub(crate) async fn frames(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuditContext,
    path: web::Path<(String, String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (study, series, instance, list) = path.into_inner();
    let numbers = parse_frame_list(&list)?;
    let record = one_instance(&state, &ctx, &(study, series, instance)).await?;
    let stored_ts = record.transfer_syntax_uid.to_string();
    let decodable = record.decode_status != DecodeStatus::Failed;
    let form = match negotiate_pixels(&negotiate::accept_ranges(&req), &stored_ts, decodable) {
        Ok(f) => f,
        Err(available) => return Ok(refuse(&available)),
    };
    audit_retrieve(
        &state,
        &ctx,
        AuditEventType::DicomInstancesTransferred,
        "wado-rs-frames",
        std::slice::from_ref(&record),
    )
    .await?;
    let _slot = super::decode_slots::acquire().await;
    let bytes = state.blobs.get(&record.blob_key).await.map_err(internal)?;
    let extracted = web::block(move || extract(&bytes, &numbers, form))
        .await
        .map_err(internal)?
        .map_err(internal)?;
    match extracted {
        Extracted::Frames(frames) => {
            let (media, parts) = frame_parts(form, &stored_ts, frames);
            negotiate::multipart_response(media, &parts)
        }
        Extracted::NoSuchFrame(message) => Err(ApiError::NotFound(message)),
        Extracted::Unusable(message) => Ok(super::problem(
            actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
            "pixel_data_unusable",
            message,
        )),
    }
}

/// A BulkDataURI path after `/bulk/`: `{tag}` at top level, or
/// `{sequence tag}/{item index from 0}/…/{tag}` inside sequences (as
/// [`fusion_imaging::metadata_json`] writes them).
fn parse_bulk_path(
    raw: &str,
) -> Result<(Vec<(dicom_core::Tag, usize)>, dicom_core::Tag), ApiError> {
    let bad = || {
        ApiError::BadRequest(
            "a bulk data path is {tag} or {tag}/{item}/…/{tag}, tags as 8 hex digits".into(),
        )
    };
    let tag = |s: &str| -> Result<dicom_core::Tag, ApiError> {
        if s.len() != 8 {
            return Err(bad());
        }
        let v = u32::from_str_radix(s, 16).map_err(|_| bad())?;
        Ok(dicom_core::Tag((v >> 16) as u16, (v & 0xFFFF) as u16))
    };
    let segments: Vec<&str> = raw.trim_matches('/').split('/').collect();
    if segments.len().is_multiple_of(2) {
        return Err(bad());
    }
    let mut items = Vec::new();
    for pair in segments[..segments.len() - 1].chunks(2) {
        items.push((tag(pair[0])?, pair[1].parse::<usize>().map_err(|_| bad())?));
    }
    Ok((items, tag(segments[segments.len() - 1])?))
}

/// The bulk data a path names: pixel data (handled as frames) or a binary
/// value in little endian order.
enum Bulk {
    PixelData,
    Value(Vec<u8>),
    Missing,
}

fn find_bulk(
    object: &dicom_object::DefaultDicomObject,
    items: &[(dicom_core::Tag, usize)],
    tag: dicom_core::Tag,
) -> Bulk {
    let mut current: &dicom_object::InMemDicomObject = object;
    for (seq, index) in items {
        let Some(item) = current
            .get(*seq)
            .and_then(|e| e.items())
            .and_then(|items| items.get(*index))
        else {
            return Bulk::Missing;
        };
        current = item;
    }
    if items.is_empty() && tag == dicom_dictionary_std::tags::PIXEL_DATA {
        return if current.get(tag).is_some() {
            Bulk::PixelData
        } else {
            Bulk::Missing
        };
    }
    match fusion_imaging::frames::element_le_bytes(current, tag) {
        Some(v) => Bulk::Value(v),
        None => Bulk::Missing,
    }
}

/// `GET …/instances/{instance}/bulk/{path}`: the value a BulkDataURI of the
/// metadata names (PS3.18 §10.4.1.1.5, §F.2.6), at top level or inside
/// sequence items. Pixel Data is negotiated like frames: as stored (one
/// part per frame, in the compressed media type, `type="*/*"` or
/// `transfer-syntax=*`) or uncompressed (`application/octet-stream`, one
/// part with every frame, decoded when compressed). Other values are one
/// `application/octet-stream` part, little endian. The boundary is drawn
/// per response and occurs in no part.
///
/// # Errors
///
/// 400 for a malformed path, 404 when the element is absent, 406 when no
/// acceptable form exists, 422 when pixel data cannot be read or decoded.
pub(crate) async fn bulk_data(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuditContext,
    path: web::Path<(String, String, String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (study, series, instance, tail) = path.into_inner();
    let (items, tag) = parse_bulk_path(&tail)?;
    let record = one_instance(&state, &ctx, &(study, series, instance)).await?;
    let stored_ts = record.transfer_syntax_uid.to_string();
    let decodable = record.decode_status != DecodeStatus::Failed;
    let ranges = negotiate::accept_ranges(&req);
    audit_retrieve(
        &state,
        &ctx,
        AuditEventType::DicomInstancesTransferred,
        "wado-rs-bulkdata",
        std::slice::from_ref(&record),
    )
    .await?;
    let _slot = super::decode_slots::acquire().await;
    let bytes = state.blobs.get(&record.blob_key).await.map_err(internal)?;
    let found = web::block(
        move || -> Result<(Bulk, Option<dicom_object::DefaultDicomObject>), anyhow::Error> {
            let object = fusion_imaging::read(&bytes)?;
            let bulk = find_bulk(&object, &items, tag);
            Ok(match bulk {
                Bulk::PixelData => (bulk, Some(object)),
                other => (other, None),
            })
        },
    )
    .await
    .map_err(internal)?
    .map_err(internal)?;
    match found {
        (Bulk::Missing, _) => Err(ApiError::NotFound("no such bulk data element".into())),
        (Bulk::Value(value), _) => {
            if !ranges.iter().any(|r| {
                r.allows_multipart()
                    && matches!(
                        r.part_media_type(),
                        "application/octet-stream" | "*/*" | "*" | "application/*"
                    )
            }) {
                return Ok(refuse(&[
                    "multipart/related; type=\"application/octet-stream\"".to_owned(),
                ]));
            }
            negotiate::multipart_response(
                "application/octet-stream",
                &[Part {
                    content_type: "application/octet-stream".into(),
                    body: Bytes::from(value),
                }],
            )
        }
        (Bulk::PixelData, object) => {
            let Some(object) = object else {
                return Err(ApiError::NotFound("no such bulk data element".into()));
            };
            let form = match negotiate_pixels(&ranges, &stored_ts, decodable) {
                Ok(f) => f,
                Err(available) => return Ok(refuse(&available)),
            };
            let all: Vec<u32> = (1..=fusion_imaging::frames::frame_count(&object)).collect();
            let result = web::block(move || match form {
                PixelForm::Stored if is_native(object.meta().transfer_syntax()) => {
                    fusion_imaging::stored_frames(&object, &all).map(|f| vec![f.concat()])
                }
                PixelForm::Stored => fusion_imaging::stored_frames(&object, &all),
                PixelForm::Native => {
                    fusion_imaging::native_frames(&object, &all).map(|n| vec![n.frames.concat()])
                }
            })
            .await
            .map_err(internal)?;
            match result {
                Ok(frames) => {
                    let (media, parts) = frame_parts(form, &stored_ts, frames);
                    negotiate::multipart_response(media, &parts)
                }
                Err(e) => Ok(super::problem(
                    actix_web::http::StatusCode::UNPROCESSABLE_ENTITY,
                    "pixel_data_unusable",
                    e.to_string(),
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn range(part: &str, ts: Option<&str>) -> MediaRange {
        MediaRange {
            media_type: "multipart/related".into(),
            part_type: Some(part.into()),
            transfer_syntax: ts.map(str::to_owned),
            q: 1.0,
        }
    }

    const JLS: &str = "1.2.840.10008.1.2.4.80";

    #[test]
    fn pixel_negotiation_follows_table_8_7_3_2() {
        let n = |r: MediaRange, ts: &str| negotiate_pixels(&[r], ts, true);
        assert_eq!(n(range("*/*", None), JLS), Ok(PixelForm::Stored));
        assert_eq!(n(range("image/jls", None), JLS), Ok(PixelForm::Stored));
        assert_eq!(
            n(range("image/x-jls", Some(JLS)), JLS),
            Ok(PixelForm::Stored)
        );
        assert_eq!(
            n(range("application/octet-stream", None), JLS),
            Ok(PixelForm::Native)
        );
        assert_eq!(
            n(range("application/octet-stream", Some("*")), JLS),
            Ok(PixelForm::Stored)
        );
        assert_eq!(
            n(range("*/*", Some(EXPLICIT_VR_LITTLE_ENDIAN)), JLS),
            Ok(PixelForm::Native)
        );
        // The service does not compress.
        let refused = n(range("image/jp2", None), JLS).unwrap_err();
        assert_eq!(refused.len(), 2, "{refused:?}");
        assert!(n(range("image/jls", None), EXPLICIT_VR_LITTLE_ENDIAN).is_err());
        // Undecodable: only as stored.
        assert!(negotiate_pixels(&[range("application/octet-stream", None)], JLS, false).is_err());
    }

    #[test]
    fn bulk_paths_name_top_level_and_nested_elements() {
        let (items, tag) = parse_bulk_path("7FE00010").unwrap();
        assert!(items.is_empty());
        assert_eq!(tag, dicom_dictionary_std::tags::PIXEL_DATA);
        let (items, _) = parse_bulk_path("00540016/0/00181072").unwrap();
        assert_eq!(items.len(), 1);
        assert!(parse_bulk_path("00540016/0").is_err());
        assert!(parse_bulk_path("7FE0001").is_err());
    }
}
