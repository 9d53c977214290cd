//! QIDO-RS (PS3.18 §10.6): study, series and instance searches, with the
//! match keys of Table 10.6.1-5 and its series and instance tables,
//! `limit`, `offset`, `includefield`, and the Warning headers of §8.3.4.4.

use std::collections::{BTreeSet, HashMap};
use std::sync::LazyLock;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use dicom_dictionary_std::tags;
use fusion_imaging::search_keys::{self, tag_key};
use fusion_schemas::{SeriesInstanceUid, StudyInstanceUid};
use fusion_store::{
    AuditAction, AuditEntity, AuditEventType, EntityKind, InstanceQuery, InstanceRecord,
    SeriesQuery, StudyQuery,
};
use serde_json::{Map, Value, json};

use super::{
    base_url, dicom_json, instance_url, internal, negotiate, own_only, parse_series, parse_study,
    study_patients,
};
use crate::auth::AuditContext;
use crate::{ApiError, AppState};

/// The most results one QIDO-RS response carries (PS3.18 §8.3.4.4): a
/// search without `limit` returns every match up to this many, and a
/// larger `limit` is lowered to it. When a limit cuts the result, the
/// response carries `Warning: 299 {host}: "There are additional results
/// that can be requested"` and the rest is reached with `offset`.
pub const MAX_RESULTS: i64 = 10_000;

/// The DICOM JSON keys (PS3.18 §F.2) of a list of tags, computed once.
macro_rules! keys_of {
    ($name:ident, $tags:path) => {
        static $name: LazyLock<Vec<String>> =
            LazyLock::new(|| $tags.iter().map(|t| tag_key(*t)).collect());
    };
}
keys_of!(STUDY_TAGS, search_keys::STUDY_RESULT);
keys_of!(STUDY_LEVEL, search_keys::STUDY_LEVEL);
keys_of!(SERIES_TAGS, search_keys::SERIES_RESULT);
keys_of!(INSTANCE_TAGS, search_keys::INSTANCE_RESULT);
keys_of!(STUDY_MATCH, search_keys::STUDY_MATCH);
keys_of!(SERIES_MATCH, search_keys::SERIES_MATCH);
keys_of!(INSTANCE_MATCH, search_keys::INSTANCE_MATCH);

/// The DICOM JSON key of one attribute.
fn k(tag: dicom_core::Tag) -> String {
    tag_key(tag)
}

/// A parsed QIDO-RS query string.
struct Qido {
    matches: HashMap<String, String>,
    /// Results asked for: `limit`, or [`MAX_RESULTS`], at most [`MAX_RESULTS`].
    limit: i64,
    offset: i64,
    include_all: bool,
    include: BTreeSet<String>,
    /// `includefield` values that name no attribute (answered with a
    /// Warning).
    ignored: Vec<String>,
    /// Query keys that name no attribute (answered with 400).
    unknown_keys: Vec<String>,
}

fn parse_qido(req: &HttpRequest) -> Result<Qido, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(req.query_string())
        .map_err(|e| ApiError::BadRequest(format!("invalid query string: {e}")))?;
    // No DICOM string VR allows a control character but the text VRs'
    // formatting ones (PS3.5 §6.2), and none is searchable: a NUL would
    // reach the database as text, which PostgreSQL refuses.
    if let Some((key, _)) = pairs
        .iter()
        .find(|(k, v)| k.chars().chain(v.chars()).any(|c| c.is_control()))
    {
        return Err(ApiError::BadRequest(format!(
            "search key {:?} holds a control character",
            key.chars().filter(|c| !c.is_control()).collect::<String>()
        )));
    }
    let mut q = Qido {
        matches: HashMap::new(),
        limit: MAX_RESULTS,
        offset: 0,
        include_all: false,
        include: BTreeSet::new(),
        ignored: Vec::new(),
        unknown_keys: Vec::new(),
    };
    for (key, value) in pairs {
        match key.as_str() {
            "limit" => {
                q.limit = value
                    .parse::<i64>()
                    .map_err(|_| ApiError::BadRequest("limit must be a whole number".into()))?
                    .clamp(1, MAX_RESULTS);
            }
            "offset" => {
                q.offset = value
                    .parse::<i64>()
                    .map_err(|_| ApiError::BadRequest("offset must be a whole number".into()))?
                    .max(0);
            }
            "includefield" => {
                for field in value.split(',').map(str::trim).filter(|f| !f.is_empty()) {
                    if field == "all" {
                        q.include_all = true;
                    } else if let Some(tag) = fusion_imaging::include_field_tag(field) {
                        q.include.insert(tag);
                    } else {
                        q.ignored.push(field.to_owned());
                    }
                }
            }
            "fuzzymatching" => {}
            // Universal matching (PS3.4 §C.2.2.2.3): `*` alone, like an
            // empty value, matches every value, empty and absent included.
            other => match fusion_imaging::search_key_tag(other) {
                Some(tag) if !value.is_empty() && value != "*" => {
                    q.matches.insert(tag, value);
                }
                Some(_) => {}
                None => q.unknown_keys.push(other.to_owned()),
            },
        }
    }
    Ok(q)
}

/// 400 for a match key this search does not apply (PS3.18 §8.3.4: an
/// unsupported key is never silently ignored, which would return every
/// record as if it matched).
fn check_keys(q: &Qido, supported: &[String]) -> Result<(), ApiError> {
    let mut unsupported: Vec<String> = q
        .matches
        .keys()
        .filter(|t| !supported.contains(t))
        .map(|t| fusion_imaging::search_keyword_of(t).map_or_else(|| t.clone(), str::to_owned))
        .chain(q.unknown_keys.iter().cloned())
        .collect();
    if unsupported.is_empty() {
        return Ok(());
    }
    unsupported.sort();
    let names: Vec<&str> = supported
        .iter()
        .filter_map(|t| fusion_imaging::search_keyword_of(t))
        .collect();
    Err(ApiError::BadRequest(format!(
        "matching on {} is not supported by this search; supported keys: {}",
        unsupported.join(", "),
        names.join(", ")
    )))
}

fn uid_list(value: &str) -> Vec<String> {
    value
        .split([',', '\\'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

/// A DA range `YYYYMMDD`, `A-B`, `-B` or `A-` (PS3.4 §C.2.2.2.5).
fn date_range(value: &str) -> Result<(Option<String>, Option<String>), ApiError> {
    let check = |d: &str| -> Result<Option<String>, ApiError> {
        if d.is_empty() {
            return Ok(None);
        }
        if d.len() == 8 && d.chars().all(|c| c.is_ascii_digit()) {
            Ok(Some(d.to_owned()))
        } else {
            Err(ApiError::BadRequest(format!(
                "StudyDate {value:?} is not a date (YYYYMMDD) or a range (YYYYMMDD-YYYYMMDD)"
            )))
        }
    };
    match value.split_once('-') {
        Some((a, b)) => Ok((check(a)?, check(b)?)),
        None => {
            let d = check(value)?;
            Ok((d.clone(), d))
        }
    }
}

/// A TM range `HHMMSS[.F]`, `A-B`, `-B` or `A-` (PS3.4 §C.2.2.2.5); a single
/// value matches the times it prefixes (`10` is 10:00:00 to 10:59:59.999999).
fn time_range(value: &str) -> Result<(Option<String>, Option<String>), ApiError> {
    let check = |t: &str| -> Result<Option<String>, ApiError> {
        if t.is_empty() {
            return Ok(None);
        }
        if t.len() <= 13 && t.chars().all(|c| c.is_ascii_digit() || c == '.') {
            Ok(Some(t.to_owned()))
        } else {
            Err(ApiError::BadRequest(format!(
                "StudyTime {value:?} is not a time (HHMMSS) or a range (HHMMSS-HHMMSS)"
            )))
        }
    };
    match value.split_once('-') {
        Some((a, b)) => Ok((check(a)?, check(b)?)),
        None => {
            let t = check(value)?;
            Ok((t.clone(), t))
        }
    }
}

/// The attributes of one result: the level's defaults, and what
/// `includefield` names (`all`: every stored attribute); with `level`, only
/// attributes of that level (PS3.18 §10.6.3.3: a study result carries the
/// Patient and Study attributes, never an instance's).
fn select(
    attributes: &Value,
    defaults: &[String],
    level: Option<&[String]>,
    q: &Qido,
) -> Map<String, Value> {
    let mut out = Map::new();
    if let Value::Object(all) = attributes {
        for (tag, value) in all {
            let at_level = level.is_none_or(|l| l.contains(tag));
            if defaults.contains(tag) || (at_level && (q.include_all || q.include.contains(tag))) {
                out.insert(tag.clone(), value.clone());
            }
        }
    }
    out
}

/// The Warning headers of a QIDO-RS response (PS3.18 §8.3.4.4 and
/// §6.7.1.2.2.1): unsupported keys that were ignored, and "There are
/// additional results that can be requested" when `more` (the limit cut the
/// result).
fn with_warning(mut res: HttpResponse, q: &Qido, more: bool, req: &HttpRequest) -> HttpResponse {
    let agent = req.connection_info().host().to_owned();
    let mut warnings = Vec::new();
    if !q.ignored.is_empty() {
        // At most ten names: a request naming thousands gets a short header.
        const NAMED: usize = 10;
        let mut names = q
            .ignored
            .iter()
            .take(NAMED)
            .cloned()
            .collect::<Vec<_>>()
            .join(", ");
        if q.ignored.len() > NAMED {
            names.push_str(&format!(" and {} more", q.ignored.len() - NAMED));
        }
        warnings.push(format!(
            "299 {agent} \"The fields {names} are not supported and were ignored\""
        ));
    }
    if more {
        warnings.push(format!(
            "299 {agent}: \"There are additional results that can be requested\""
        ));
    }
    for w in warnings {
        if let Ok(v) = header::HeaderValue::from_str(&w) {
            res.headers_mut().append(header::WARNING, v);
        }
    }
    res
}

/// Whether a page fetched with `limit + 1` rows holds more than `limit`;
/// drops the extra row.
fn cut<T>(rows: &mut Vec<T>, limit: i64) -> bool {
    let limit = usize::try_from(limit).unwrap_or(usize::MAX);
    let more = rows.len() > limit;
    rows.truncate(limit);
    more
}

async fn audit_query(
    state: &AppState,
    ctx: &AuditContext,
    subtype: &str,
    patients: BTreeSet<String>,
    entities: Vec<AuditEntity>,
) -> Result<(), ApiError> {
    let record = ctx.record(
        AuditEventType::Query,
        subtype,
        AuditAction::Execute,
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

/// `GET /dicom-web/studies`.
pub(crate) async fn search_studies(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuditContext,
) -> Result<HttpResponse, ApiError> {
    if let Some(refusal) = negotiate::json_only(&req) {
        return Ok(refusal);
    }
    let mut q = parse_qido(&req)?;
    check_keys(&q, &STUDY_MATCH)?;
    // An instance or series attribute named at study level is not
    // returned (PS3.18 §10.6.3.3): say so in the Warning header.
    let computed = [
        k(tags::MODALITIES_IN_STUDY),
        k(tags::RETRIEVE_URL),
        k(tags::NUMBER_OF_STUDY_RELATED_SERIES),
        k(tags::NUMBER_OF_STUDY_RELATED_INSTANCES),
    ];
    let elsewhere: Vec<String> = q
        .include
        .iter()
        .filter(|t| !STUDY_LEVEL.contains(t) && !computed.contains(t))
        .cloned()
        .collect();
    q.ignored.extend(elsewhere);
    let m = &q.matches;
    let (from, to) = match m.get(&k(tags::STUDY_DATE)) {
        Some(v) => date_range(v)?,
        None => (None, None),
    };
    let (time_from, time_to) = match m.get(&k(tags::STUDY_TIME)) {
        Some(v) => time_range(v)?,
        None => (None, None),
    };
    let query = StudyQuery {
        patient_id: m.get(&k(tags::PATIENT_ID)).cloned(),
        patient_name: m.get(&k(tags::PATIENT_NAME)).cloned(),
        accession_number: m.get(&k(tags::ACCESSION_NUMBER)).cloned(),
        study_description: m.get(&k(tags::STUDY_DESCRIPTION)).cloned(),
        study_id: m.get(&k(tags::STUDY_ID)).cloned(),
        referring_physician: m.get(&k(tags::REFERRING_PHYSICIAN_NAME)).cloned(),
        study_time_from: time_from,
        study_time_to: time_to,
        study_date_from: from,
        study_date_to: to,
        modality: m
            .get(&k(tags::MODALITIES_IN_STUDY))
            .or_else(|| m.get(&k(tags::MODALITY)))
            .cloned(),
        study_instance_uids: m
            .get(&k(tags::STUDY_INSTANCE_UID))
            .map(|v| uid_list(v))
            .unwrap_or_default(),
        submitted_by: own_only(&ctx),
        limit: q.limit + 1,
        offset: q.offset,
    };
    let mut studies = state
        .repository
        .search_studies(&query)
        .await
        .map_err(internal)?;
    let more = cut(&mut studies, q.limit);
    let base = base_url(&req, &state);
    let mut patients = BTreeSet::new();
    let results: Vec<Value> = studies
        .iter()
        .map(|s| {
            if let Some(p) = &s.patient_id {
                patients.insert(p.to_string());
            }
            let mut obj = select(&s.attributes, &STUDY_TAGS, Some(&STUDY_LEVEL), &q);
            obj.insert(
                k(tags::MODALITIES_IN_STUDY),
                json!({ "vr": "CS", "Value": s.modalities }),
            );
            obj.insert(
                k(tags::RETRIEVE_URL),
                json!({ "vr": "UR", "Value": [format!("{base}/studies/{}", s.study_instance_uid)] }),
            );
            obj.insert(
                k(tags::NUMBER_OF_STUDY_RELATED_SERIES),
                json!({ "vr": "IS", "Value": [s.series_count] }),
            );
            obj.insert(
                k(tags::NUMBER_OF_STUDY_RELATED_INSTANCES),
                json!({ "vr": "IS", "Value": [s.instance_count] }),
            );
            Value::Object(obj)
        })
        .collect();
    audit_query(&state, &ctx, "qido-rs-studies", patients, vec![]).await?;
    Ok(with_warning(
        dicom_json(StatusCode::OK, &Value::Array(results)),
        &q,
        more,
        &req,
    ))
}

/// `GET /dicom-web/studies/{study}/series`.
pub(crate) async fn search_series(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuditContext,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let study = parse_study(&path.into_inner())?;
    series_search(req, state, ctx, Some(study)).await
}

/// `GET /dicom-web/series`: the cross-study series search (PS3.18
/// §10.6.1, Table 10.6.1-2), with the series keys and StudyInstanceUID.
pub(crate) async fn search_all_series(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuditContext,
) -> Result<HttpResponse, ApiError> {
    series_search(req, state, ctx, None).await
}

/// The study a cross-study search names with a StudyInstanceUID key.
fn study_key(q: &Qido) -> Result<Option<StudyInstanceUid>, ApiError> {
    match q.matches.get(&k(tags::STUDY_INSTANCE_UID)) {
        Some(v) if uid_list(v).len() > 1 => Err(ApiError::BadRequest(
            "a cross-study search takes one StudyInstanceUID".into(),
        )),
        Some(v) => parse_study(v.trim()).map(Some),
        None => Ok(None),
    }
}

/// The patients of the studies `uids`, for the audit record.
async fn patients_of(
    state: &AppState,
    uids: impl IntoIterator<Item = StudyInstanceUid>,
) -> Result<BTreeSet<String>, ApiError> {
    let unique: BTreeSet<StudyInstanceUid> = uids.into_iter().collect();
    let mut patients = BTreeSet::new();
    for study in unique {
        patients.extend(study_patients(state, &study).await?);
    }
    Ok(patients)
}

async fn series_search(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuditContext,
    study: Option<StudyInstanceUid>,
) -> Result<HttpResponse, ApiError> {
    if let Some(refusal) = negotiate::json_only(&req) {
        return Ok(refusal);
    }
    let q = parse_qido(&req)?;
    let study = match study {
        Some(s) => {
            check_keys(&q, &SERIES_MATCH)?;
            Some(s)
        }
        None => {
            check_keys(
                &q,
                &[&SERIES_MATCH[..], &[k(tags::STUDY_INSTANCE_UID)]].concat(),
            )?;
            study_key(&q)?
        }
    };
    let m = &q.matches;
    let query = SeriesQuery {
        modality: m.get(&k(tags::MODALITY)).cloned(),
        series_instance_uids: m
            .get(&k(tags::SERIES_INSTANCE_UID))
            .map(|v| uid_list(v))
            .unwrap_or_default(),
        description: m.get(&k(tags::SERIES_DESCRIPTION)).cloned(),
        series_number: m
            .get(&k(tags::SERIES_NUMBER))
            .map(|v| {
                v.parse()
                    .map_err(|_| ApiError::BadRequest("SeriesNumber must be a number".into()))
            })
            .transpose()?,
        submitted_by: own_only(&ctx),
        limit: q.limit + 1,
        offset: q.offset,
    };
    let mut series = state
        .repository
        .search_series_in(study.as_ref(), &query)
        .await
        .map_err(internal)?;
    let more = cut(&mut series, q.limit);
    let base = base_url(&req, &state);
    let results: Vec<Value> = series
        .iter()
        .map(|s| {
            let mut obj = select(&s.attributes, &SERIES_TAGS, None, &q);
            obj.insert(
                k(tags::RETRIEVE_URL),
                json!({ "vr": "UR", "Value": [format!(
                    "{base}/studies/{}/series/{}", s.study_instance_uid, s.series_instance_uid
                )] }),
            );
            obj.insert(
                k(tags::NUMBER_OF_SERIES_RELATED_INSTANCES),
                json!({ "vr": "IS", "Value": [s.instance_count] }),
            );
            Value::Object(obj)
        })
        .collect();
    let patients = patients_of(&state, series.iter().map(|s| s.study_instance_uid.clone())).await?;
    audit_query(
        &state,
        &ctx,
        "qido-rs-series",
        patients,
        study
            .iter()
            .map(|s| AuditEntity::new(EntityKind::Study, s.to_string()))
            .collect(),
    )
    .await?;
    Ok(with_warning(
        dicom_json(StatusCode::OK, &Value::Array(results)),
        &q,
        more,
        &req,
    ))
}

fn instance_result(i: &InstanceRecord, base: &str, q: &Qido) -> Value {
    let mut obj = select(&i.attributes, &INSTANCE_TAGS, None, q);
    obj.insert(
        k(tags::RETRIEVE_URL),
        json!({ "vr": "UR", "Value": [instance_url(base, i)] }),
    );
    Value::Object(obj)
}

/// `GET /dicom-web/instances`: the cross-study instance search (PS3.18
/// §10.6.1, Table 10.6.1-2), with the instance keys, SeriesInstanceUID and
/// StudyInstanceUID.
pub(crate) async fn search_all_instances(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuditContext,
) -> Result<HttpResponse, ApiError> {
    search_instances_in(req, state, ctx, None, None).await
}

async fn search_instances_in(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuditContext,
    study: Option<StudyInstanceUid>,
    series: Option<SeriesInstanceUid>,
) -> Result<HttpResponse, ApiError> {
    if let Some(refusal) = negotiate::json_only(&req) {
        return Ok(refusal);
    }
    let q = parse_qido(&req)?;
    let study = match study {
        Some(s) => {
            check_keys(&q, &INSTANCE_MATCH)?;
            Some(s)
        }
        None => {
            check_keys(
                &q,
                &[&INSTANCE_MATCH[..], &[k(tags::STUDY_INSTANCE_UID)]].concat(),
            )?;
            study_key(&q)?
        }
    };
    let m = &q.matches;
    let query = InstanceQuery {
        series_instance_uid: series
            .map(|s| s.to_string())
            .or_else(|| m.get(&k(tags::SERIES_INSTANCE_UID)).cloned()),
        sop_instance_uids: m
            .get(&k(tags::SOP_INSTANCE_UID))
            .map(|v| uid_list(v))
            .unwrap_or_default(),
        sop_class_uids: m
            .get(&k(tags::SOP_CLASS_UID))
            .map(|v| uid_list(v))
            .unwrap_or_default(),
        instance_number: m
            .get(&k(tags::INSTANCE_NUMBER))
            .map(|v| {
                v.parse()
                    .map_err(|_| ApiError::BadRequest("InstanceNumber must be a number".into()))
            })
            .transpose()?,
        submitted_by: own_only(&ctx),
        limit: q.limit + 1,
        offset: q.offset,
    };
    let mut instances = state
        .repository
        .search_instances_in(study.as_ref(), &query)
        .await
        .map_err(internal)?;
    let more = cut(&mut instances, q.limit);
    let base = base_url(&req, &state);
    let results: Vec<Value> = instances
        .iter()
        .map(|i| instance_result(i, &base, &q))
        .collect();
    let patients = patients_of(
        &state,
        instances.iter().map(|i| i.study_instance_uid.clone()),
    )
    .await?;
    audit_query(
        &state,
        &ctx,
        "qido-rs-instances",
        patients,
        study
            .iter()
            .map(|s| AuditEntity::new(EntityKind::Study, s.to_string()))
            .collect(),
    )
    .await?;
    Ok(with_warning(
        dicom_json(StatusCode::OK, &Value::Array(results)),
        &q,
        more,
        &req,
    ))
}

/// `GET /dicom-web/studies/{study}/instances`.
pub(crate) async fn search_study_instances(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuditContext,
    path: web::Path<String>,
) -> Result<HttpResponse, ApiError> {
    let study = parse_study(&path.into_inner())?;
    search_instances_in(req, state, ctx, Some(study), None).await
}

/// `GET /dicom-web/studies/{study}/series/{series}/instances`.
pub(crate) async fn search_series_instances(
    req: HttpRequest,
    state: web::Data<AppState>,
    ctx: AuditContext,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, ApiError> {
    let (study, series) = path.into_inner();
    let study = parse_study(&study)?;
    let series = parse_series(&series)?;
    search_instances_in(req, state, ctx, Some(study), Some(series)).await
}
