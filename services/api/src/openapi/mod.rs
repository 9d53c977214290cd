//! The OpenAPI 3.1 description of the REST API (OpenAPI Specification 3.1.0,
//! issue #15 item 15), generated from the code with `utoipa` and served at
//! `GET /openapi.json`; the same document is checked in as
//! `schemas/openapi.json`, and a test fails when the two drift.
//!
//! Where each part comes from:
//!
//! - paths and methods: one [`Op`] per route of the route table
//!   ([`crate::route_table::table`]); the tests fail when a route has no
//!   operation or an operation no route ([`undocumented_routes`],
//!   [`unrouted_operations`]);
//! - access: from the route's [`Access`] itself, never restated: the
//!   `security` requirement, the roles that hold one of its permissions
//!   (`x-fusion-roles`, from [`crate::auth::permissions::allows`]) and the
//!   401 and 403 answers;
//! - path parameters: from the path pattern (`{study}`, `{id}`, …);
//! - query parameters and JSON bodies: derived (`IntoParams`, `ToSchema`)
//!   from the very types the handlers deserialise, so a field added to a
//!   handler's query or body changes the document;
//! - errors: every non-2xx answer names its stable `code`s and refers to the
//!   [`fusion_schemas::ErrorBody`] schema.
//!
//! The operations themselves are described in [`operations`] (JSON API and
//! dashboard pages) and [`dicomweb`] (PS3.18 resources). `HEAD` is accepted
//! on every `GET` resource (RFC 9110 §9.3.2) and is not listed separately.

mod dicomweb;
mod operations;

use std::collections::BTreeSet;

use actix_web::http::Method;
use utoipa::openapi::extensions::ExtensionsBuilder;
use utoipa::openapi::path::{HttpMethod, OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::tag::TagBuilder;
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, ObjectBuilder, OpenApi, OpenApiBuilder,
    PathItem, Paths, Ref, RefOr, Required, ResponseBuilder, Schema, Type,
};
use utoipa::{IntoParams, ToSchema};

use crate::auth::Permission;
use crate::auth::permissions::allows;
use crate::route_table::{Access, RouteSpec};

/// The security schemes an authenticated route accepts (`components.
/// securitySchemes`): a session token or an API key as `Authorization:
/// Bearer`, an API key as `Authorization: Basic`, a session cookie.
const SCHEMES: [&str; 3] = ["bearer", "basic", "session_cookie"];

/// The media type of JSON error bodies.
const JSON: &str = "application/json";

/// One documented operation: the route it describes (method and actix path
/// pattern, as in the route table) and what it takes and answers.
pub(crate) struct Op {
    method: Method,
    path: &'static str,
    tag: &'static str,
    summary: &'static str,
    description: Option<&'static str>,
    query: Vec<utoipa::openapi::path::Parameter>,
    body: Option<utoipa::openapi::request_body::RequestBody>,
    /// Success answers: status, description, media types (empty: no body),
    /// schema.
    answers: Vec<Answer>,
    /// Error answers: status and the error codes it carries, described.
    errors: Vec<(u16, &'static str)>,
}

/// A success answer: status, description, media types (none: no body), and
/// the schema of its body when typed.
type Answer = (u16, &'static str, Vec<&'static str>, Option<RefOr<Schema>>);

impl Op {
    fn new(method: Method, path: &'static str, tag: &'static str, summary: &'static str) -> Self {
        Self {
            method,
            path,
            tag,
            summary,
            description: None,
            query: Vec::new(),
            body: None,
            answers: Vec::new(),
            errors: Vec::new(),
        }
    }

    /// `GET path`.
    pub(crate) fn get(path: &'static str, tag: &'static str, summary: &'static str) -> Self {
        Self::new(Method::GET, path, tag, summary)
    }

    /// `POST path`.
    pub(crate) fn post(path: &'static str, tag: &'static str, summary: &'static str) -> Self {
        Self::new(Method::POST, path, tag, summary)
    }

    /// A longer description (CommonMark).
    pub(crate) fn describe(mut self, text: &'static str) -> Self {
        self.description = Some(text);
        self
    }

    /// The query parameters of a handler's query type.
    pub(crate) fn query_of<P: IntoParams>(mut self) -> Self {
        self.query
            .extend(P::into_params(|| Some(ParameterIn::Query)));
        self
    }

    /// One query parameter described by hand (standard-defined keys).
    pub(crate) fn query(
        mut self,
        name: &'static str,
        description: &'static str,
        required: bool,
    ) -> Self {
        self.query.push(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Query)
                .required(if required {
                    Required::True
                } else {
                    Required::False
                })
                .description(Some(description))
                .schema(Some(string()))
                .build(),
        );
        self
    }

    /// A JSON request body of type `T`.
    pub(crate) fn json_body<T: ToSchema>(mut self, description: &'static str) -> Self {
        self.body = Some(
            RequestBodyBuilder::new()
                .description(Some(description))
                .required(Some(Required::True))
                .content(
                    JSON,
                    ContentBuilder::new()
                        .schema(Some(schema_ref::<T>()))
                        .build(),
                )
                .build(),
        );
        self
    }

    /// A request body in one of `media_types`, opaque to the document.
    pub(crate) fn body(mut self, media_types: &[&'static str], description: &'static str) -> Self {
        let mut body = RequestBodyBuilder::new()
            .description(Some(description))
            .required(Some(Required::True));
        for m in media_types {
            body = body.content(
                *m,
                ContentBuilder::new()
                    .schema(Some(binary_or_text(m)))
                    .build(),
            );
        }
        self.body = Some(body.build());
        self
    }

    /// A success answer with a body in `media_types` (none: no body).
    pub(crate) fn answers(
        mut self,
        status: u16,
        description: &'static str,
        media_types: &[&'static str],
    ) -> Self {
        self.answers
            .push((status, description, media_types.to_vec(), None));
        self
    }

    /// A JSON success answer of schema `T`.
    pub(crate) fn answers_json<T: ToSchema>(
        mut self,
        status: u16,
        description: &'static str,
    ) -> Self {
        self.answers
            .push((status, description, vec![JSON], Some(schema_ref::<T>())));
        self
    }

    /// An error answer: `codes` describes its stable error codes.
    pub(crate) fn error(mut self, status: u16, codes: &'static str) -> Self {
        self.errors.push((status, codes));
        self
    }
}

fn string() -> Schema {
    ObjectBuilder::new().schema_type(Type::String).into()
}

fn binary_or_text(media_type: &str) -> RefOr<Schema> {
    let text = media_type.starts_with("text/") || media_type.contains("json");
    let mut s = ObjectBuilder::new().schema_type(if media_type.contains("json") {
        Type::Object
    } else {
        Type::String
    });
    if !text {
        s = s.content_media_type(media_type);
    }
    RefOr::T(s.into())
}

fn schema_ref<T: ToSchema>() -> RefOr<Schema> {
    RefOr::Ref(Ref::from_schema_name(T::name()))
}

/// The actix pattern as an OpenAPI path template: `{path:.*}` → `{path}`.
pub fn template(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut in_regex = false;
    for c in pattern.chars() {
        match c {
            ':' if out.ends_with(|p: char| p.is_ascii_alphanumeric() || p == '_')
                && out.rfind('{') > out.rfind('}') =>
            {
                in_regex = true;
            }
            '}' => {
                in_regex = false;
                out.push(c);
            }
            _ if in_regex => {}
            _ => out.push(c),
        }
    }
    out
}

/// What a path parameter holds, by its name in the route table.
fn path_parameter(name: &str) -> &'static str {
    match name {
        "study" => "Study Instance UID (DICOM UI, PS3.5 §9)",
        "series" => "Series Instance UID (DICOM UI, PS3.5 §9)",
        "instance" => "SOP Instance UID (DICOM UI, PS3.5 §9)",
        "frame" => "A frame number, from 1 (PS3.18 §8.3.5.1)",
        "frames" => "Frame numbers from 1, comma-separated (PS3.18 §10.4.1.1.4)",
        "path" => "The bulk data element's path as the metadata's BulkDataURI gives it",
        "id" => "The resource's id (a UUID)",
        "name" => "The model package's name",
        "file" => "The static file's name",
        _ => "Path parameter",
    }
}

fn http_method(m: &Method) -> HttpMethod {
    match *m {
        Method::POST => HttpMethod::Post,
        Method::PUT => HttpMethod::Put,
        Method::DELETE => HttpMethod::Delete,
        Method::PATCH => HttpMethod::Patch,
        Method::HEAD => HttpMethod::Head,
        _ => HttpMethod::Get,
    }
}

fn permissions(access: Access) -> &'static [Permission] {
    match access {
        Access::Public => &[],
        Access::Any(p) | Access::Page(p) => p,
    }
}

/// The roles holding at least one of `permissions`.
fn roles(permissions: &[Permission]) -> Vec<&'static str> {
    fusion_schemas::Role::ALL
        .iter()
        .filter(|r| permissions.iter().any(|p| allows(**r, *p)))
        .map(|r| r.as_str())
        .collect()
}

fn error_response(codes: &str) -> utoipa::openapi::Response {
    ResponseBuilder::new()
        .description(codes)
        .content(
            JSON,
            ContentBuilder::new()
                .schema(Some(schema_ref::<fusion_schemas::ErrorBody>()))
                .build(),
        )
        .build()
}

/// The operation of `op`, with its access from `spec` (when the route table
/// has the route).
fn operation(op: Op, spec: Option<&RouteSpec>) -> utoipa::openapi::path::Operation {
    let access = spec.map_or(Access::Public, |s| s.access);
    let mut b = OperationBuilder::new()
        .tag(op.tag)
        .summary(Some(op.summary))
        .description(op.description)
        .operation_id(Some(operation_id(&op.method, op.path)));
    for name in template(op.path)
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
    {
        b = b.parameter(
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .description(Some(path_parameter(name)))
                .schema(Some(string())),
        );
    }
    for p in op.query {
        b = b.parameter(p);
    }
    b = b.request_body(op.body);
    for (status, description, media, schema) in op.answers {
        let mut r = ResponseBuilder::new().description(description);
        for m in media {
            let s = schema.clone().unwrap_or_else(|| binary_or_text(m));
            r = r.content(m, ContentBuilder::new().schema(Some(s)).build());
        }
        b = b.response(status.to_string(), r.build());
    }
    let mut errors = op.errors;
    let perms = permissions(access);
    match access {
        Access::Public => {
            b = b.securities(Some(Vec::<SecurityRequirement>::new()));
        }
        Access::Any(_) | Access::Page(_) => {
            b = b.securities(Some(
                SCHEMES
                    .iter()
                    .map(|s| SecurityRequirement::new(*s, Vec::<String>::new())),
            ));
            errors.push((
                401,
                "`unauthenticated`, `invalid_credentials`: no, a wrong or an expired credential",
            ));
            errors.push((
                403,
                "`forbidden`: the caller's role lacks the permission; `csrf`: a cookie session's state-changing request without its CSRF token",
            ));
            // One extension only: utoipa keeps extensions in a HashMap, whose
            // order would change the document from run to run.
            let ext =
                ExtensionsBuilder::new().add("x-fusion-roles", serde_json::json!(roles(perms)));
            b = b.extensions(Some(ext.build()));
        }
    }
    errors.push((
        500,
        "`internal`: an opaque service failure; quote the X-Request-Id",
    ));
    errors.sort_by_key(|(s, _)| *s);
    errors.dedup_by_key(|(s, _)| *s);
    for (status, codes) in errors {
        b = b.response(status.to_string(), error_response(codes));
    }
    b.build()
}

/// A stable operation id: method and path, e.g. `get_cases_id_predictions`.
fn operation_id(method: &Method, path: &str) -> String {
    let mut id = method.as_str().to_ascii_lowercase();
    for seg in template(path).split('/').filter(|s| !s.is_empty()) {
        id.push('_');
        id.extend(
            seg.trim_matches(|c| c == '{' || c == '}')
                .chars()
                .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' }),
        );
    }
    if path == "/" {
        id.push_str("_root");
    }
    id
}

/// Every documented operation.
fn all_ops() -> Vec<Op> {
    let mut ops = operations::all();
    ops.extend(dicomweb::all());
    ops
}

/// The OpenAPI document of the whole API.
pub fn document() -> OpenApi {
    let table = crate::route_table::table();
    let mut paths = Paths::new();
    for op in all_ops() {
        let spec = table
            .iter()
            .find(|s| s.method == op.method && s.path == op.path);
        let (method, path) = (http_method(&op.method), template(op.path));
        let operation = operation(op, spec);
        let item = PathItem::new(method, operation);
        match paths.paths.get_mut(&path) {
            Some(existing) => existing.merge_operations(item),
            None => {
                paths.paths.insert(path, item);
            }
        }
    }
    let components = ComponentsBuilder::new()
        .schema_from::<fusion_schemas::ErrorBody>()
        .schema_from::<fusion_schemas::Readiness>()
        .schema_from::<fusion_schemas::CheckStatus>()
        .schema_from::<crate::routes::auth::LoginRequest>()
        .schema_from::<crate::routes::auth::LoginResponse>()
        .schema_from::<crate::routes::cases::OpenCase>()
        .schema_from::<crate::routes::cases::ReviewBody>()
        .schema_from::<crate::routes::cases::DecisionBody>()
        .schema_from::<crate::routes::cases::Decision>()
        .schema_from::<crate::routes::cases::AmendedValue>()
        .security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "A session token from POST /auth/login, or an API key as `<key id>.<secret>`",
                    ))
                    .build(),
            ),
        )
        .security_scheme(
            "basic",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Basic)
                    .description(Some("An API key: its id as user name, its secret as password"))
                    .build(),
            ),
        )
        .security_scheme(
            "session_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::auth::SESSION_COOKIE,
                "The dashboard's session cookie; state-changing requests also need the CSRF token",
            ))),
        )
        .build();
    let tags = [
        ("health", "Liveness and readiness probes"),
        ("auth", "Logins, sessions and who one is"),
        (
            "dicomweb",
            "DICOMweb, DICOM PS3.18: STOW-RS, QIDO-RS, WADO-RS",
        ),
        ("notes", "Clinical notes: text, FHIR R4, HL7 v2"),
        ("cases", "Cases, predictions and reviews"),
        ("models", "The installed model packages"),
        (
            "audit",
            "The audit trail: export (FHIR R4 AuditEvent) and verification",
        ),
        (
            "dashboard",
            "The clinician dashboard's server-rendered pages",
        ),
        ("api", "This description"),
    ]
    .map(|(name, text)| TagBuilder::new().name(name).description(Some(text)).build());
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("fusion")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "The clinical multimodal fusion service's REST API. Every route states its access: `security` and `x-fusion-roles` (the roles allowed). HEAD is accepted on every GET resource. Errors carry a JSON body with a stable `code` (schema ErrorBody).",
                ))
                .build(),
        )
        .paths(paths)
        .components(Some(components))
        .tags(Some(tags))
        .build()
}

/// [`document`] as pretty JSON with a final newline: the bytes of
/// `GET /openapi.json` and of the checked-in `schemas/openapi.json`.
///
/// # Errors
///
/// A serialisation error (none is expected: the document is plain data).
pub fn document_json() -> Result<String, serde_json::Error> {
    document().to_pretty_json().map(|mut s| {
        s.push('\n');
        s
    })
}

/// Routes of the route table with no operation in the document, as
/// `METHOD /template`.
pub fn undocumented_routes() -> Vec<String> {
    let doc = documented();
    crate::route_table::table()
        .iter()
        .map(|s| format!("{} {}", s.method, template(s.path)))
        .filter(|r| !doc.contains(r))
        .collect()
}

/// Operations of the document with no route in the route table.
pub fn unrouted_operations() -> Vec<String> {
    let routed: BTreeSet<String> = crate::route_table::table()
        .iter()
        .map(|s| format!("{} {}", s.method, template(s.path)))
        .collect();
    documented()
        .into_iter()
        .filter(|r| !routed.contains(r))
        .collect()
}

/// `METHOD /template` of every operation in the document.
fn documented() -> BTreeSet<String> {
    let doc = serde_json::to_value(document()).unwrap_or_default();
    let mut out = BTreeSet::new();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, item) in paths {
            for method in ["get", "post", "put", "delete", "patch", "head"] {
                if item.get(method).is_some() {
                    out.insert(format!("{} {path}", method.to_ascii_uppercase()));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_drop_actix_regexes() {
        assert_eq!(template("/a/{path:.*}"), "/a/{path}");
        assert_eq!(template("/a/{id}/b"), "/a/{id}/b");
        assert_eq!(
            operation_id(&Method::GET, "/cases/{id}/view"),
            "get_cases_id_view"
        );
    }

    /// The drift test of issue #15 item 15: every route has an operation
    /// and every operation a route.
    #[test]
    fn every_route_is_documented_and_every_operation_routed() {
        assert_eq!(undocumented_routes(), Vec::<String>::new());
        assert_eq!(unrouted_operations(), Vec::<String>::new());
    }

    /// The checked-in `schemas/openapi.json` is the generated document.
    /// `FUSION_WRITE_OPENAPI=1 cargo test … openapi` rewrites it.
    #[test]
    fn the_checked_in_document_is_the_generated_one() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/openapi.json");
        let generated = document_json().unwrap();
        if std::env::var_os("FUSION_WRITE_OPENAPI").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let checked_in = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            checked_in == generated,
            "schemas/openapi.json differs from the code's document: rerun with FUSION_WRITE_OPENAPI=1 and commit it"
        );
    }

    #[test]
    fn access_comes_from_the_route_table() {
        let doc = serde_json::to_value(document()).unwrap();
        let stow = &doc["paths"]["/dicom-web/studies"]["post"];
        assert_eq!(stow["x-fusion-roles"], serde_json::json!(["integration"]));
        assert!(stow["responses"]["401"].is_object());
        let audit = &doc["paths"]["/audit/events"]["get"];
        assert_eq!(audit["x-fusion-roles"], serde_json::json!(["auditor"]));
        let health = &doc["paths"]["/healthz"]["get"];
        assert_eq!(health["security"], serde_json::json!([]));
        assert!(health["responses"].get("401").is_none());
        let note = &doc["paths"]["/notes/{id}"]["get"];
        assert_eq!(
            note["x-fusion-roles"],
            serde_json::json!(["integration", "clinician"])
        );
        assert_eq!(doc["openapi"], "3.1.0");
    }
}
