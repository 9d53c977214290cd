//! WADO-RS retrieve of instances and metadata (PS3.18 §10.4): study, series
//! and instance resources as `multipart/related; type="application/dicom"`
//! with transfer syntax negotiation (§8.7.3.5.2), and their metadata as
//! DICOM JSON (§10.4.1.1.2, Annex F) with resolvable BulkDataURIs.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use fusion_imaging::EXPLICIT_VR_LITTLE_ENDIAN;
use fusion_schemas::{SeriesInstanceUid, SopInstanceUid, StudyInstanceUid};
use fusion_store::{
    AuditAction, AuditEntity, AuditEventType, DecodeStatus, EntityKind, InstanceQuery,
    InstanceRecord,
};
use futures::StreamExt;
use serde_json::Value;

use super::negotiate::{self, MediaRange};
use super::{Scope, base_url, dicom_json, instance_url, internal, own_only, study_patients};
use crate::auth::AuditContext;
use crate::{ApiError, AppState};

/// The instances a retrieve covers, after the caller's restriction; 404 when
/// none.
pub(super) async fn scope(
    state: &AppState,
    ctx: &AuditContext,
    study: &StudyInstanceUid,
    series: Option<&SeriesInstanceUid>,
    instance: Option<&SopInstanceUid>,
) -> Result<Vec<InstanceRecord>, ApiError> {
    let query = InstanceQuery {
        series_instance_uid: series.map(|s| s.to_string()),
        sop_instance_uids: instance.map(|i| vec![i.to_string()]).unwrap_or_default(),
        submitted_by: own_only(ctx),
        limit: i64::MAX,
        ..InstanceQuery::default()
    };
    let found = state
        .repository
        .search_instances(study, &query)
        .await
        .map_err(internal)?;
    if found.is_empty() {
        return Err(ApiError::NotFound(
            "no such study, series or instance".to_owned(),
        ));
    }
    Ok(found)
}

pub(super) async fn audit_retrieve(
    state: &AppState,
    ctx: &AuditContext,
    event_type: AuditEventType,
    subtype: &str,
    instances: &[InstanceRecord],
) -> Result<(), ApiError> {
    let Some(first) = instances.first() else {
        return Ok(());
    };
    let patients = study_patients(state, &first.study_instance_uid).await?;
    let mut entities = vec![AuditEntity::new(
        EntityKind::Study,
        first.study_instance_uid.to_string(),
    )];
    if instances.len() == 1 {
        entities.push(AuditEntity::new(
            EntityKind::Instance,
            first.sop_instance_uid.to_string(),
        ));
    }
    let record = ctx.record(
        event_type,
        subtype,
        AuditAction::Read,
        entities,
        patients.into_iter().collect(),
    );
    state
        .repository
        .append_audit(&record)
        .await
        .map_err(internal)?;
    Ok(())
}

/// The transfer syntax a retrieve of `application/dicom` sends.
#[derive(Debug, Clone, PartialEq, Eq)]
enum DicomSyntax {
    /// Each instance as stored (`transfer-syntax=*`, PS3.18 §8.7.3.5.2).
    AsStored,
    /// Explicit VR Little Endian: the default when the request names none
    /// (PS3.18 Table 8.7.3-2); compressed and other native instances are
    /// transcoded.
    ExplicitLittleEndian,
    /// A named compressed syntax: only instances stored in it.
    Named(String),
}

/// Whether an instance can be sent in Explicit VR Little Endian: native
/// instances are re-encoded, encapsulated ones decoded (not when their
/// decode failed at ingest).
fn transcodable(i: &InstanceRecord) -> bool {
    fusion_imaging::is_native(i.transfer_syntax_uid.as_ref())
        || i.decode_status != DecodeStatus::Failed
}

/// Picks the syntax from the Accept ranges (best first): the first range
/// of `multipart/related; type="application/dicom"` (or a wildcard) whose
/// transfer syntax every instance can be sent in; `Err` lists what is
/// available instead.
fn negotiate_dicom(
    ranges: &[MediaRange],
    instances: &[InstanceRecord],
) -> Result<DicomSyntax, Vec<String>> {
    for r in ranges {
        if !r.allows_multipart() {
            continue;
        }
        let pt = r.part_media_type();
        if !matches!(pt, "application/dicom" | "*/*" | "*" | "application/*") {
            continue;
        }
        let syntax = match r.transfer_syntax.as_deref() {
            Some("*") => DicomSyntax::AsStored,
            None => DicomSyntax::ExplicitLittleEndian,
            Some(ts) if ts == EXPLICIT_VR_LITTLE_ENDIAN => DicomSyntax::ExplicitLittleEndian,
            Some(ts) => DicomSyntax::Named(ts.to_owned()),
        };
        let ok = match &syntax {
            DicomSyntax::AsStored => true,
            DicomSyntax::ExplicitLittleEndian => instances.iter().all(transcodable),
            DicomSyntax::Named(ts) => instances
                .iter()
                .all(|i| i.transfer_syntax_uid.as_ref() == ts.as_str()),
        };
        if ok {
            return Ok(syntax);
        }
    }
    let mut available: Vec<String> = Vec::new();
    if instances.iter().all(transcodable) {
        available.push(format!(
            "multipart/related; type=\"application/dicom\"; transfer-syntax={EXPLICIT_VR_LITTLE_ENDIAN}"
        ));
    }
    let mut stored: Vec<&str> = instances
        .iter()
        .map(|i| i.transfer_syntax_uid.as_ref())
        .collect();
    stored.sort_unstable();
    stored.dedup();
    if let [only] = stored.as_slice() {
        let a = format!("multipart/related; type=\"application/dicom\"; transfer-syntax={only}");
        if !available.contains(&a) {
            available.push(a);
        }
    }
    available.push("multipart/related; type=\"application/dicom\"; transfer-syntax=*".into());
    Err(available)
}

/// WADO-RS retrieve of a study, series or instance (the path says which):
/// `GET /dicom-web/studies/{study}[/series/{series}[/instances/{instance}]]`
/// (PS3.18 §10.4.1.1.1).
///
/// Answers `multipart/related; type="application/dicom"`, one part per
/// instance, streamed, under a random 128-bit boundary per response; a part
/// that contains the boundary ends the stream with an error instead of
/// truncating it silently. Transfer syntax (PS3.18 §8.7.3.5.2): no
/// `transfer-syntax` parameter, or Explicit VR Little Endian, sends every
/// instance in Explicit VR Little Endian, transcoding the others (see
/// [`fusion_imaging::transcode_to_explicit_le`]); `transfer-syntax=*`
/// sends each as stored; a named syntax is served when every instance is
/// stored in it. Otherwise 406 with the media types available.
///
/// # Errors
///
/// 400 for a malformed UID, 404 when nothing is visible to the caller, 406
/// as above, 500 (without detail) when storage fails.
pub(crate) async fn retrieve(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuditContext,
    named: Scope,
) -> Result<HttpResponse, ApiError> {
    let Scope {
        study,
        series,
        instance,
    } = named;
    let ranges = negotiate::accept_ranges(&req);
    let instances = scope(&state, &ctx, &study, series.as_ref(), instance.as_ref()).await?;
    let syntax = match negotiate_dicom(&ranges, &instances) {
        Ok(s) => s,
        Err(available) => {
            let available: Vec<&str> = available.iter().map(String::as_str).collect();
            return Ok(negotiate::not_acceptable(
                "no acceptable media type and transfer syntax: see available",
                &available,
            ));
        }
    };
    audit_retrieve(
        &state,
        &ctx,
        AuditEventType::DicomInstancesTransferred,
        "wado-rs",
        &instances,
    )
    .await?;
    let boundary = negotiate::random_boundary()?;
    let blobs = state.blobs.clone();
    let closing = Bytes::from(format!("--{boundary}--\r\n"));
    let part_boundary = boundary.clone();
    // Stream the parts: a large study never sits in memory whole.
    let parts = futures::stream::iter(instances).then(move |i| {
        let blobs = blobs.clone();
        let boundary = part_boundary.clone();
        let syntax = syntax.clone();
        async move {
            let fail = |what: &str| {
                tracing::error!(step = what, "WADO-RS part failed; stream aborted");
                actix_web::error::ErrorInternalServerError("retrieve failed")
            };
            let _slot = super::decode_slots::acquire().await;
            let bytes = blobs.get(&i.blob_key).await.map_err(|_| fail("blob"))?;
            let stored_ts = i.transfer_syntax_uid.to_string();
            let (bytes, ts) = if syntax == DicomSyntax::ExplicitLittleEndian
                && stored_ts != EXPLICIT_VR_LITTLE_ENDIAN
            {
                let out = web::block(move || {
                    let object = fusion_imaging::read(&bytes).map_err(|e| e.to_string())?;
                    fusion_imaging::transcode_to_explicit_le(&object).map_err(|e| e.to_string())
                })
                .await
                .map_err(|_| fail("transcode"))?
                .map_err(|_| fail("transcode"))?;
                (Bytes::from(out), EXPLICIT_VR_LITTLE_ENDIAN.to_owned())
            } else {
                (bytes, stored_ts)
            };
            if negotiate::contains(&bytes, format!("--{boundary}").as_bytes()) {
                return Err(fail("boundary"));
            }
            let head = format!(
                "--{boundary}\r\nContent-Type: application/dicom; transfer-syntax={ts}\r\nContent-Length: {}\r\n\r\n",
                bytes.len()
            );
            let mut part = Vec::with_capacity(head.len() + bytes.len() + 2);
            part.extend_from_slice(head.as_bytes());
            part.extend_from_slice(&bytes);
            part.extend_from_slice(b"\r\n");
            Ok::<Bytes, actix_web::Error>(Bytes::from(part))
        }
    });
    let body = parts.chain(futures::stream::once(async move { Ok(closing) }));
    Ok(HttpResponse::Ok()
        .content_type(format!(
            "multipart/related; type=\"application/dicom\"; boundary={boundary}"
        ))
        .streaming(body))
}

/// WADO-RS metadata of a study, series or instance (PS3.18 §10.4.1.1.2):
/// `GET …/metadata` at each level, DICOM JSON (Annex F) with a BulkDataURI
/// for pixel data and large binary values, each of which resolves at
/// [`super::frames::bulk_data`]. Only `application/dicom+json` is served:
/// an Accept header that allows neither it nor `application/json` (such as
/// `application/dicom+xml`) is answered 406.
///
/// # Errors
///
/// 400 for a malformed UID, 404 when nothing is visible to the caller, 406
/// as above.
pub(crate) async fn metadata(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuditContext,
    named: Scope,
) -> Result<HttpResponse, ApiError> {
    if let Some(refusal) = negotiate::json_only(&req) {
        return Ok(refusal);
    }
    let Scope {
        study,
        series,
        instance,
    } = named;
    let instances = scope(&state, &ctx, &study, series.as_ref(), instance.as_ref()).await?;
    audit_retrieve(
        &state,
        &ctx,
        AuditEventType::DicomInstancesAccessed,
        "wado-rs-metadata",
        &instances,
    )
    .await?;
    let base = base_url(&req, &state);
    let mut out = Vec::with_capacity(instances.len());
    for i in instances {
        let bytes = state.blobs.get(&i.blob_key).await.map_err(internal)?;
        let bulk = format!("{}/bulk", instance_url(&base, &i));
        let json = web::block(move || {
            let object = fusion_imaging::read(&bytes)?;
            fusion_imaging::metadata_json(&object, &bulk).map_err(anyhow::Error::from)
        })
        .await
        .map_err(internal)?
        .map_err(internal)?;
        out.push(json);
    }
    Ok(dicom_json(StatusCode::OK, &Value::Array(out)))
}
