//! The route table: every route of the application, with the access it
//! requires, in one list. The table drives both registration and the
//! authentication gate ([`crate::gate`]), so a route cannot exist without a
//! stated access rule, and the tests walk the same table.
//!
//! It sits above what it lists: the JSON API's handlers ([`crate::routes`])
//! and the dashboard's pages ([`crate::dashboard`]); neither depends on it.

use actix_web::http::Method;
use actix_web::{Route, web};

use crate::auth::Permission;
use crate::auth::permissions::MONITORING;
use crate::routes::{
    audit, auth, cases, dicomweb, health, models, monitoring, notes, openapi, results,
};

/// What a route requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// No authentication (health probes, login).
    Public,
    /// An authenticated caller holding at least one of these permissions.
    Any(&'static [Permission]),
    /// A dashboard page: as [`Access::Any`], but a browser (`Accept:
    /// text/html`) without a session is sent to `/login`, and one without
    /// the permission gets an HTML 403 page.
    Page(&'static [Permission]),
}

/// One route: method, path pattern (actix syntax), access, handler.
pub struct RouteSpec {
    /// HTTP method.
    pub method: Method,
    /// Path pattern, e.g. `/dicom-web/studies/{study}`.
    pub path: &'static str,
    /// What it requires.
    pub access: Access,
    route: fn() -> Route,
}

fn spec(method: Method, path: &'static str, access: Access, route: fn() -> Route) -> RouteSpec {
    RouteSpec {
        method,
        path,
        access,
        route,
    }
}

use Access::{Any, Page, Public};
use Permission as P;

/// STOW-RS: integration clients (the PACS).
const STORE: Access = Any(&[P::StoreInstances]);
/// QIDO-RS and WADO-RS: clinicians, and integration clients for what they sent.
const READ_IMAGES: Access = Any(&[P::ReadImages, P::ReadOwnSubmissions]);

/// The model catalogue: clinicians and auditors.
const MODELS: &[Permission] = &[P::ReadCases, P::ReadAudit];

/// Every route of the application.
pub fn table() -> &'static [RouteSpec] {
    static TABLE: std::sync::LazyLock<Vec<RouteSpec>> = std::sync::LazyLock::new(build_table);
    &TABLE
}

fn build_table() -> Vec<RouteSpec> {
    vec![
        spec(Method::GET, "/healthz", Public, || {
            web::get().to(health::healthz)
        }),
        spec(Method::GET, "/readyz", Public, || {
            web::get().to(health::readyz)
        }),
        // The API's own description (OpenAPI 3.1): no data in it.
        spec(Method::GET, "/openapi.json", Public, || {
            web::get().to(openapi::document)
        }),
        spec(Method::POST, "/auth/login", Public, || {
            web::post().to(auth::login)
        }),
        spec(Method::POST, "/auth/logout", Any(&[P::ReadSelf]), || {
            web::post().to(auth::logout)
        }),
        spec(Method::GET, "/auth/me", Any(&[P::ReadSelf]), || {
            web::get().to(auth::me)
        }),
        spec(Method::GET, "/audit/events", Any(&[P::ReadAudit]), || {
            web::get().to(audit::events)
        }),
        spec(Method::GET, "/audit/verify", Any(&[P::ReadAudit]), || {
            web::get().to(audit::verify)
        }),
        // DICOMweb, PS3.18.
        spec(Method::POST, "/dicom-web/studies", STORE, || {
            web::post().to(dicomweb::stow)
        }),
        spec(Method::POST, "/dicom-web/studies/{study}", STORE, || {
            web::post().to(dicomweb::stow_study)
        }),
        spec(Method::GET, "/dicom-web/series", READ_IMAGES, || {
            web::get().to(dicomweb::search_all_series)
        }),
        spec(Method::GET, "/dicom-web/instances", READ_IMAGES, || {
            web::get().to(dicomweb::search_all_instances)
        }),
        spec(Method::GET, "/dicom-web/studies", READ_IMAGES, || {
            web::get().to(dicomweb::search_studies)
        }),
        spec(
            Method::GET,
            "/dicom-web/studies/{study}",
            READ_IMAGES,
            || web::get().to(dicomweb::retrieve),
        ),
        spec(
            Method::GET,
            "/dicom-web/studies/{study}/metadata",
            READ_IMAGES,
            || web::get().to(dicomweb::metadata),
        ),
        spec(
            Method::GET,
            "/dicom-web/studies/{study}/rendered",
            READ_IMAGES,
            || web::get().to(dicomweb::study_rendered),
        ),
        spec(
            Method::GET,
            "/dicom-web/studies/{study}/series",
            READ_IMAGES,
            || web::get().to(dicomweb::search_series),
        ),
        spec(
            Method::GET,
            "/dicom-web/studies/{study}/instances",
            READ_IMAGES,
            || web::get().to(dicomweb::search_study_instances),
        ),
        spec(
            Method::GET,
            "/dicom-web/studies/{study}/series/{series}",
            READ_IMAGES,
            || web::get().to(dicomweb::retrieve),
        ),
        spec(
            Method::GET,
            "/dicom-web/studies/{study}/series/{series}/metadata",
            READ_IMAGES,
            || web::get().to(dicomweb::metadata),
        ),
        spec(
            Method::GET,
            "/dicom-web/studies/{study}/series/{series}/rendered",
            READ_IMAGES,
            || web::get().to(dicomweb::series_rendered),
        ),
        spec(
            Method::GET,
            "/dicom-web/studies/{study}/series/{series}/instances",
            READ_IMAGES,
            || web::get().to(dicomweb::search_series_instances),
        ),
        spec(
            Method::GET,
            "/dicom-web/studies/{study}/series/{series}/instances/{instance}",
            READ_IMAGES,
            || web::get().to(dicomweb::retrieve),
        ),
        spec(
            Method::GET,
            "/dicom-web/studies/{study}/series/{series}/instances/{instance}/metadata",
            READ_IMAGES,
            || web::get().to(dicomweb::metadata),
        ),
        spec(
            Method::GET,
            "/dicom-web/studies/{study}/series/{series}/instances/{instance}/rendered",
            READ_IMAGES,
            || web::get().to(dicomweb::instance_rendered),
        ),
        spec(
            Method::GET,
            "/dicom-web/studies/{study}/series/{series}/instances/{instance}/frames/{frame}/rendered",
            READ_IMAGES,
            || web::get().to(dicomweb::frame_rendered),
        ),
        spec(
            Method::GET,
            "/dicom-web/studies/{study}/series/{series}/instances/{instance}/frames/{frames}",
            READ_IMAGES,
            || web::get().to(dicomweb::frames),
        ),
        spec(
            Method::GET,
            "/dicom-web/studies/{study}/series/{series}/instances/{instance}/bulk/{path:.*}",
            READ_IMAGES,
            || web::get().to(dicomweb::bulk_data),
        ),
        // The clinician review dashboard (server-rendered pages).
        spec(Method::GET, "/static/{file}", Public, || {
            web::get().to(crate::dashboard::asset)
        }),
        spec(Method::GET, "/login", Public, || {
            web::get().to(crate::dashboard::login_form)
        }),
        spec(Method::POST, "/login", Public, || {
            web::post().to(crate::dashboard::login_submit)
        }),
        spec(Method::POST, "/logout", Page(&[P::ReadSelf]), || {
            web::post().to(crate::dashboard::logout)
        }),
        spec(Method::GET, "/", Page(crate::dashboard::HOME), || {
            web::get().to(crate::dashboard::home)
        }),
        spec(Method::GET, "/worklist", Page(&[P::ReadCases]), || {
            web::get().to(crate::dashboard::worklist)
        }),
        spec(
            Method::GET,
            "/cases/{id}/view",
            Page(&[P::ReadCases]),
            || web::get().to(crate::dashboard::case_view),
        ),
        spec(
            Method::POST,
            "/cases/{id}/review",
            Page(&[P::ReviewPredictions]),
            || web::post().to(crate::dashboard::review_submit),
        ),
        spec(Method::GET, "/audit", Page(&[P::ReadAudit]), || {
            web::get().to(crate::dashboard::audit_trail)
        }),
        spec(
            Method::GET,
            "/audit/integrity",
            Page(&[P::ReadAudit]),
            || web::get().to(crate::dashboard::audit_integrity),
        ),
        spec(Method::GET, "/admin", Page(&[P::ManageIdentities]), || {
            web::get().to(crate::dashboard::admin)
        }),
        // The installed model packages and their measured figures: what a
        // clinician or an auditor needs to judge a probability.
        spec(Method::GET, "/models/view", Page(MODELS), || {
            web::get().to(crate::dashboard::models_page)
        }),
        spec(Method::GET, "/models/{name}/view", Page(MODELS), || {
            web::get().to(crate::dashboard::model_page)
        }),
        // The model monitor (issue #18): for administrators and auditors.
        spec(Method::GET, "/monitoring", Page(MONITORING), || {
            web::get().to(crate::dashboard::monitoring_report)
        }),
        spec(Method::GET, "/metrics", Any(MONITORING), || {
            web::get().to(monitoring::metrics)
        }),
        spec(Method::GET, "/models", Any(MODELS), || {
            web::get().to(models::list)
        }),
        spec(Method::GET, "/models/{name}", Any(MODELS), || {
            web::get().to(models::read)
        }),
        // Cases, predictions and reviews: integration clients may open
        // cases and ask for predictions; reading results is clinical.
        spec(Method::POST, "/cases", Any(&[P::RunPredictions]), || {
            web::post().to(cases::open)
        }),
        spec(Method::GET, "/cases", Any(&[P::ReadCases]), || {
            web::get().to(cases::list)
        }),
        spec(Method::GET, "/cases/{id}", Any(&[P::ReadCases]), || {
            web::get().to(cases::read)
        }),
        spec(
            Method::POST,
            "/cases/{id}/predictions",
            Any(&[P::RunPredictions]),
            || web::post().to(cases::request_prediction),
        ),
        spec(
            Method::GET,
            "/cases/{id}/predictions",
            Any(&[P::ReadCases]),
            || web::get().to(cases::case_predictions),
        ),
        // Results as they leave (issue #17): the FHIR R4 Bundle of the
        // latest version, and the outbox deliveries of the case.
        spec(
            Method::GET,
            "/cases/{id}/fhir",
            Any(&[P::ReadCases]),
            || web::get().to(results::fhir),
        ),
        spec(
            Method::GET,
            "/cases/{id}/deliveries",
            Any(&[P::ReadCases]),
            || web::get().to(results::deliveries),
        ),
        spec(
            Method::GET,
            "/predictions/{id}",
            Any(&[P::ReadCases]),
            || web::get().to(cases::read_prediction),
        ),
        spec(
            Method::POST,
            "/predictions/{id}/reviews",
            Any(&[P::ReviewPredictions]),
            || web::post().to(cases::review),
        ),
        spec(
            Method::GET,
            "/predictions/{id}/reviews",
            Any(&[P::ReadCases]),
            || web::get().to(cases::reviews),
        ),
        spec(Method::POST, "/notes", Any(&[P::SubmitNotes]), || {
            web::post().to(notes::submit)
        }),
        spec(Method::GET, "/notes", Any(&[P::ReadNotes]), || {
            web::get().to(notes::list)
        }),
        // Integration clients read back only their own notes: the handler
        // answers 404 for the others.
        spec(
            Method::GET,
            "/notes/{id}",
            Any(&[P::ReadNotes, P::ReadOwnSubmissions]),
            || web::get().to(notes::read),
        ),
    ]
}

/// The spec for a matched route pattern and method, if the table has one.
pub fn lookup(method: &Method, pattern: &str) -> Option<&'static RouteSpec> {
    let method = if *method == Method::HEAD {
        &Method::GET
    } else {
        method
    };
    table()
        .iter()
        .find(|s| s.method == *method && s.path == pattern)
}

/// Registers every route of the table, grouping methods by path.
pub(crate) fn configure(cfg: &mut web::ServiceConfig) {
    let table = table();
    let mut paths: Vec<&'static str> = Vec::new();
    for s in table {
        if !paths.contains(&s.path) {
            paths.push(s.path);
        }
    }
    for path in paths {
        let mut resource = web::resource(path);
        for s in table.iter().filter(|s| s.path == path) {
            resource = resource.route((s.route)());
        }
        cfg.service(resource);
    }
}
