//! STOW-RS (PS3.18 §10.5): `POST /dicom-web/studies[/{study}]`.
//!
//! Reads `multipart/related; type="application/dicom"` as a stream, part by
//! part; each instance is stored or refused on its own (see
//! [`fusion_app::ingest`]), and the answer is the Store Instances Response of
//! §10.5.3.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use bytes::Bytes;
use fusion_imaging::{StowLimits, StowReader, StowResponse};
use fusion_schemas::StudyInstanceUid;
use fusion_store::AuditOutcome;
use futures::{SinkExt, StreamExt};

use super::{base_url, dicom_json, parse_study, problem};
use crate::auth::AuditContext;
use crate::{ApiError, AppState};
use fusion_app::ingest::{
    FailedInstance, InstanceOutcome, Submitter, audit_refusal, store_instance,
};

/// Instances of one STOW-RS request in flight at once: parsed on blocking
/// threads, their blobs fsynced concurrently, their index rows group
/// committed by [`fusion_app::index_writer`].
const STOW_CONCURRENCY: usize = 16;

/// `POST /dicom-web/studies`.
pub(crate) async fn stow(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuditContext,
    payload: web::Payload,
) -> Result<HttpResponse, ApiError> {
    stow_into(req, state, ctx, payload, None).await
}

/// `POST /dicom-web/studies/{study}`.
pub(crate) async fn stow_study(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuditContext,
    payload: web::Payload,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let study = parse_study(&path.into_inner())?;
    stow_into(req, state, ctx, payload, Some(study)).await
}

async fn stow_into(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuditContext,
    mut payload: web::Payload,
    study: Option<StudyInstanceUid>,
) -> Result<HttpResponse, ApiError> {
    let content_type = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    // PS3.18 §10.5.1: the type parameter is required (Orthanc refuses its
    // absence with 415 too).
    let has_type = content_type
        .split(';')
        .skip(1)
        .any(|p| p.trim().to_ascii_lowercase().starts_with("type="));
    if !has_type {
        return Ok(problem(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send multipart/related; type=\"application/dicom\"",
        ));
    }
    let limits = StowLimits {
        max_total_bytes: state.stow_max_bytes,
        ..StowLimits::default()
    };
    if let Some(len) = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && len > limits.max_total_bytes
    {
        return Ok(problem(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!(
                "the body exceeds the limit of {} bytes",
                limits.max_total_bytes
            ),
        ));
    }
    // actix's payload is tied to its worker thread; multer wants a `Send`
    // stream: relay the chunks through a bounded channel (backpressure kept).
    // The relay also enforces the body limit: it forwards bytes up to the
    // limit and then ends the stream, so every part completed before the cut
    // is stored and the cut one fails as Out of Resources, whatever way the
    // multipart parser buffers ahead.
    let (mut tx, rx) = futures::channel::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    let exceeded = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let relay_exceeded = exceeded.clone();
    let max_total = limits.max_total_bytes;
    let stow_bytes = state.metrics.stow_bytes.clone();
    actix_web::rt::spawn(async move {
        let mut total: u64 = 0;
        let mut discarded: u64 = 0;
        while let Some(chunk) = payload.next().await {
            let chunk = match chunk {
                Ok(chunk) => chunk,
                Err(e) => {
                    // The cause (a client gone, or the idle timeout of
                    // crate::body_timeout) goes into the refusal and the log.
                    let _ = tx
                        .send(Err(std::io::Error::other(format!(
                            "the request body broke off ({e})"
                        ))))
                        .await;
                    break;
                }
            };
            if relay_exceeded.load(std::sync::atomic::Ordering::Relaxed) {
                // Drain a little so the client reads our answer; then stop.
                discarded += chunk.len() as u64;
                if discarded > 64 << 20 {
                    break;
                }
                continue;
            }
            let len = chunk.len() as u64;
            if total + len > max_total {
                let keep = usize::try_from(max_total - total).unwrap_or(0);
                if keep > 0 {
                    let _ = tx.send(Ok(chunk.slice(..keep))).await;
                }
                relay_exceeded.store(true, std::sync::atomic::Ordering::Relaxed);
                tx.close_channel();
                continue;
            }
            total += len;
            stow_bytes.add(len, &[]);
            if tx.send(Ok(chunk)).await.is_err() {
                break;
            }
        }
    });
    let limits = StowLimits {
        max_total_bytes: u64::MAX,
        ..limits
    };
    let mut reader = match StowReader::new(&content_type, rx, limits) {
        Ok(r) => r,
        Err(
            e @ (fusion_imaging::StowError::NotMultipartRelated
            | fusion_imaging::StowError::UnsupportedType(_)),
        ) => {
            return Ok(problem(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "unsupported_media_type",
                format!("{e}: send multipart/related; type=\"application/dicom\""),
            ));
        }
        Err(e) => {
            return Ok(problem(
                StatusCode::BAD_REQUEST,
                "bad_request",
                e.to_string(),
            ));
        }
    };
    let base = base_url(&req, &state);
    let submitter = Submitter {
        audit_subtype: "stow-rs",
        actor: ctx.actor(),
        id: ctx.principal.id.clone(),
    };
    let mut response = StowResponse::new(study.as_ref().map(|s| format!("{base}/studies/{s}")));
    let (mut stored, mut refused) = (0usize, 0usize);
    let mut touched = Vec::new();
    // Instances are stored concurrently (their blob fsyncs and transactions
    // overlap) while the body is still being read; answers keep the order of
    // the parts.
    let mut in_flight = futures::stream::FuturesOrdered::new();
    let stow_instances = state.metrics.stow_instances.clone();
    let mut record_outcome = |outcome: InstanceOutcome, response: &mut StowResponse| match outcome {
        InstanceOutcome::Stored(i) | InstanceOutcome::Duplicate(i) => {
            touched.push(fusion_app::ingest::TouchedStudy::from(&i));
            let url = format!(
                "{base}/studies/{}/series/{}/instances/{}",
                i.study, i.series, i.sop_instance
            );
            response.stored(&i.sop_class, &i.sop_instance, &url, None);
            stored += 1;
        }
        InstanceOutcome::Failed(f) => {
            tracing::info!(reason = %format!("{:04X}", f.reason.code()), detail = %f.detail, "instance refused");
            response.failed(f.sop_class.as_deref(), f.sop_instance.as_deref(), f.reason);
            refused += 1;
        }
    };
    let mut record = |outcome: InstanceOutcome, response: &mut StowResponse| {
        let label = match &outcome {
            InstanceOutcome::Stored(_) => "stored",
            InstanceOutcome::Duplicate(_) => "duplicate",
            InstanceOutcome::Failed(_) => "failed",
        };
        stow_instances.add(1, &[opentelemetry::KeyValue::new("outcome", label)]);
        record_outcome(outcome, response);
    };
    loop {
        let part = match reader.next_part().await {
            Ok(Some(part)) => part,
            Ok(None) => break,
            Err(e) => {
                // The body broke off or is malformed: what came before stays
                // stored; the rest is one failure.
                let too_large = exceeded.load(std::sync::atomic::Ordering::Relaxed)
                    || matches!(
                        e,
                        fusion_imaging::StowError::BodyTooLarge { .. }
                            | fusion_imaging::StowError::PartTooLarge { .. }
                    );
                let reason = if too_large {
                    fusion_imaging::FailureReason::OutOfResources
                } else {
                    fusion_imaging::FailureReason::CannotUnderstand
                };
                tracing::warn!(error = %e, "STOW-RS body ended abnormally");
                while let Some(outcome) = in_flight.next().await {
                    record(outcome, &mut response);
                }
                let failed = FailedInstance::unidentified(reason, e.to_string());
                audit_refusal(
                    &state,
                    &submitter,
                    &failed,
                    None,
                    Vec::new(),
                    AuditOutcome::MinorFailure,
                )
                .await;
                record(InstanceOutcome::Failed(failed), &mut response);
                break;
            }
        };
        let state = state.clone();
        let study = study.clone();
        let submitter = submitter.clone();
        in_flight.push_back(async move {
            if !part.is_application_dicom() {
                let failed = FailedInstance::unidentified(
                    fusion_imaging::FailureReason::CannotUnderstand,
                    "the part is not application/dicom",
                );
                audit_refusal(
                    &state,
                    &submitter,
                    &failed,
                    None,
                    Vec::new(),
                    AuditOutcome::MinorFailure,
                )
                .await;
                return InstanceOutcome::Failed(failed);
            }
            store_instance(&state, part.data, study.as_ref(), &submitter).await
        });
        while in_flight.len() >= STOW_CONCURRENCY {
            if let Some(outcome) = in_flight.next().await {
                record(outcome, &mut response);
            }
        }
    }
    while let Some(outcome) = in_flight.next().await {
        record(outcome, &mut response);
    }
    tracing::info!(stored, refused, "STOW-RS done");
    // Each study the request touched, duplicates included, is linked to its
    // case and its prediction queued once, after its instances are stored.
    fusion_app::ingest::link_studies(&state, touched, &submitter).await;
    if stored == 0 && refused == 0 {
        return Ok(problem(
            StatusCode::BAD_REQUEST,
            "no_instances",
            "the multipart/related body holds no part",
        ));
    }
    let status = StatusCode::from_u16(response.http_status()).unwrap_or(StatusCode::OK);
    Ok(dicom_json(status, &response.to_json()))
}
