//! The clinician review dashboard: server-rendered HTML pages for people,
//! beside the JSON API for machines.
//!
//! Templates are minijinja, embedded at compile time (`templates/`), HTML
//! auto-escaped; CSS and a little JavaScript are static files served from our
//! own origin (`/static/…?v=<hash>`), so the strict Content-Security-Policy
//! ([`security_headers`]) allows no inline script or style and the service
//! needs nothing from outside to run.
//!
//! Authentication is the API's: the same session cookie, set by the same
//! login logic (`routes::auth`). State-changing forms carry the session's
//! CSRF token in a hidden `csrf_token` field, which the pages copy from the
//! `fusion_csrf` cookie set at login (the server keeps only its hash), and
//! which the authentication middleware checks against that hash.

mod admin;
mod assets;
mod audit;
mod cases;
mod models;
mod monitoring;
mod session;

use actix_web::dev::ServiceRequest;
use actix_web::http::{StatusCode, header};
use actix_web::middleware::DefaultHeaders;
use actix_web::{HttpRequest, HttpResponse, ResponseError};
use fusion_schemas::Role;
use minijinja::value::Serde;
use minijinja::{Environment, UndefinedBehavior};
use serde::Serialize;

pub(crate) use admin::admin;
pub(crate) use assets::asset;
pub(crate) use audit::{audit_integrity, audit_trail};
pub(crate) use cases::{case_view, review_submit, worklist};
pub(crate) use models::{model_page, models_page};
pub(crate) use monitoring::monitoring_report;
pub(crate) use session::{HOME, home, login_form, login_submit, logout};

use crate::auth::{CSRF_COOKIE, Permission, Principal, allows};

/// The Content-Security-Policy of every response: our own scripts, styles
/// and images only; no framing, no form posts elsewhere, no `<base>`.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; \
     base-uri 'none'";

/// Security headers on every response (pages, the JSON API, errors): a
/// handler that sets one of them itself keeps its own. `Cache-Control:
/// no-store` keeps patient data out of browser and proxy caches; static
/// assets set their own (long, immutable) caching.
pub fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .add((header::REFERRER_POLICY, "no-referrer"))
        .add((header::CACHE_CONTROL, "no-store"))
}

/// The template set, parsed once, strict about undefined values: a name a
/// page's values do not define fails the render (a 500) instead of showing
/// as blank. A template that fails to parse is logged and then fails to
/// render. `every_template_renders` (tests/tests/dashboard_templates.rs)
/// renders every template through the real pages with stored data and
/// catches both first.
fn templates() -> &'static Environment<'static> {
    static ENV: std::sync::LazyLock<Environment<'static>> = std::sync::LazyLock::new(|| {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        for (name, source) in [
            ("base.html", include_str!("templates/base.html")),
            ("login.html", include_str!("templates/login.html")),
            ("message.html", include_str!("templates/message.html")),
            ("worklist.html", include_str!("templates/worklist.html")),
            ("case.html", include_str!("templates/case.html")),
            ("audit.html", include_str!("templates/audit.html")),
            ("integrity.html", include_str!("templates/integrity.html")),
            ("admin.html", include_str!("templates/admin.html")),
            ("models.html", include_str!("templates/models.html")),
            ("monitoring.html", include_str!("templates/monitoring.html")),
            (
                "monitoring_rows.html",
                include_str!("templates/monitoring_rows.html"),
            ),
        ] {
            if let Err(e) = env.add_template(name, source) {
                tracing::error!(template = name, error = %e, "dashboard template does not parse");
            }
        }
        env
    });
    &ENV
}

/// What every page's frame shows: who is signed in, the navigation their
/// role may use, the CSRF token for the sign-out form, asset URLs.
#[derive(Debug, Serialize)]
pub(crate) struct Layout {
    title: String,
    user: Option<UserView>,
    nav: Vec<NavItem>,
    csrf: String,
    css: &'static str,
    js: &'static str,
}

#[derive(Debug, Serialize)]
struct UserView {
    name: String,
    role: &'static str,
}

#[derive(Debug, Serialize)]
struct NavItem {
    href: &'static str,
    label: &'static str,
    current: bool,
}

/// The sections of the dashboard and who may see them.
const SECTIONS: [(&str, &str, &[Permission]); 5] = [
    ("/worklist", "Worklist", &[Permission::ReadCases]),
    (
        "/models/view",
        "Models",
        &[Permission::ReadCases, Permission::ReadAudit],
    ),
    (
        "/monitoring",
        "Monitoring",
        crate::auth::permissions::MONITORING,
    ),
    ("/audit", "Audit trail", &[Permission::ReadAudit]),
    ("/admin", "Administration", &[Permission::ManageIdentities]),
];

impl Layout {
    /// A page for a signed-in principal; `current` is the section's path.
    pub(crate) fn signed_in(
        req: &HttpRequest,
        principal: &Principal,
        title: &str,
        current: &str,
    ) -> Self {
        Self {
            title: title.to_owned(),
            user: Some(UserView {
                name: principal.name.clone(),
                role: principal.role.as_str(),
            }),
            nav: SECTIONS
                .iter()
                .filter(|(_, _, ps)| ps.iter().any(|p| principal.can(*p)))
                .map(|(href, label, _)| NavItem {
                    href,
                    label,
                    current: *href == current,
                })
                .collect(),
            csrf: csrf_token(req),
            css: assets::url("app.css"),
            js: assets::url("app.js"),
        }
    }

    /// A page for nobody signed in (the login page).
    pub(crate) fn anonymous(title: &str) -> Self {
        Self {
            title: title.to_owned(),
            user: None,
            nav: Vec::new(),
            csrf: String::new(),
            css: assets::url("app.css"),
            js: assets::url("app.js"),
        }
    }
}

/// The session's CSRF token as the browser holds it (the `fusion_csrf`
/// cookie), to be written into forms. Empty when absent: the form's post is
/// then refused by the middleware, as it should be.
fn csrf_token(req: &HttpRequest) -> String {
    req.cookie(CSRF_COOKIE)
        .map(|c| c.value().to_owned())
        .unwrap_or_default()
}

/// Why a page could not be served: logged in full, shown as a plain page.
#[derive(Debug, thiserror::Error)]
pub(crate) enum PageError {
    /// A template failed to render.
    #[error("cannot render page")]
    Template(#[from] minijinja::Error),
    /// Storage or anything else failed.
    #[error("cannot serve page")]
    Internal(#[source] anyhow::Error),
}

impl From<fusion_store::StoreError> for PageError {
    fn from(e: fusion_store::StoreError) -> Self {
        Self::Internal(e.into())
    }
}

impl From<crate::ApiError> for PageError {
    fn from(e: crate::ApiError) -> Self {
        Self::Internal(e.into())
    }
}

impl ResponseError for PageError {
    fn status_code(&self) -> StatusCode {
        StatusCode::INTERNAL_SERVER_ERROR
    }

    fn error_response(&self) -> HttpResponse {
        let cause: &dyn std::error::Error = match self {
            Self::Template(e) => e,
            Self::Internal(e) => e.as_ref(),
        };
        tracing::error!(error = %cause, "dashboard page failed");
        let body = message_page(
            &Layout::anonymous("Something went wrong"),
            "Something went wrong",
            "The page could not be shown. Try again; if it keeps happening, tell support \
             the time and the address of the page.",
            None,
        )
        .unwrap_or_else(|_| "Something went wrong.".to_owned());
        html(StatusCode::INTERNAL_SERVER_ERROR, body)
    }
}

/// A page's query string read leniently: a repeated parameter keeps its
/// first value, and a query that still does not fit `T` (a value of the
/// wrong kind) reads as `T::default()`, so a mangled link shows the page
/// rather than a JSON error. Pages then check the values they got and say
/// what they could not use.
pub(crate) fn page_query<T: serde::de::DeserializeOwned + Default>(req: &HttpRequest) -> T {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(req.query_string()).unwrap_or_default();
    let mut first: Vec<(String, String)> = Vec::with_capacity(pairs.len());
    for (k, v) in pairs {
        if !first.iter().any(|(seen, _)| *seen == k) {
            first.push((k, v));
        }
    }
    serde_urlencoded::to_string(&first)
        .ok()
        .and_then(|q| serde_urlencoded::from_str(&q).ok())
        .unwrap_or_default()
}

/// Renders template `name` with `layout` and the page's own values.
pub(crate) fn render(
    name: &str,
    layout: &Layout,
    page: impl Serialize,
) -> Result<String, minijinja::Error> {
    let ctx = minijinja::context! {
        layout => Serde(layout),
        ..minijinja::Value::from(Serde(page))
    };
    templates().get_template(name)?.render(ctx)
}

/// An HTML response. Pages may show patient data: never cached.
pub(crate) fn html(status: StatusCode, body: String) -> HttpResponse {
    HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-store"))
        .body(body)
}

/// A 303 See Other to `location` (after a form post, or to sign in).
pub(crate) fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

#[derive(Serialize)]
struct MessagePage<'a> {
    heading: &'a str,
    message: &'a str,
    detail: Option<&'a str>,
    home: bool,
}

fn message_page(
    layout: &Layout,
    heading: &str,
    message: &str,
    detail: Option<&str>,
) -> Result<String, minijinja::Error> {
    render(
        "message.html",
        layout,
        MessagePage {
            heading,
            message,
            detail,
            home: layout.user.is_some(),
        },
    )
}

/// Whether a request is a browser's asking for a page (`Accept` names
/// `text/html`); API clients asking for JSON keep JSON answers.
pub fn wants_html(req: &ServiceRequest) -> bool {
    req.headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

/// The redirect to the sign-in page for a browser without a (valid)
/// session; a GET remembers where it was going.
pub fn to_login(req: &HttpRequest) -> HttpResponse {
    if req.method() == actix_web::http::Method::GET {
        let target = req
            .uri()
            .path_and_query()
            .map(|pq| pq.as_str())
            .unwrap_or("/");
        if target != "/" {
            let query = serde_urlencoded::to_string([("next", target)]).unwrap_or_default();
            return see_other(&format!("/login?{query}"));
        }
    }
    see_other("/login")
}

/// Who may see a page needing any of `permissions`, in words.
fn audience(permissions: &[Permission]) -> String {
    let names: Vec<&str> = Role::ALL
        .into_iter()
        .filter(|r| permissions.iter().any(|p| allows(*r, *p)))
        .map(|r| match r {
            Role::Clinician => "clinicians",
            Role::Auditor => "auditors (compliance officers)",
            Role::Admin => "administrators",
            Role::Integration => "integration clients",
        })
        .collect();
    match names.as_slice() {
        [] => "nobody".to_owned(),
        [one] => (*one).to_owned(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// The 403 page for a signed-in principal whose role may not see a page.
pub fn forbidden_page(
    req: &HttpRequest,
    principal: &Principal,
    permissions: &[Permission],
) -> HttpResponse {
    let layout = Layout::signed_in(req, principal, "Not available for your role", "");
    let message = format!(
        "You are signed in as {} ({}). This page is for {}.",
        principal.name,
        principal.role,
        audience(permissions)
    );
    let detail = "If you need it for your work, ask an administrator. This refusal has \
                  been recorded in the audit trail.";
    let body = message_page(
        &layout,
        "Not available for your role",
        &message,
        Some(detail),
    )
    .unwrap_or_else(|_| message.clone());
    html(StatusCode::FORBIDDEN, body)
}

/// The 403 page for a form posted without the session's CSRF token (an
/// old tab, or a forged request).
pub fn csrf_page(req: &HttpRequest, principal: &Principal) -> HttpResponse {
    let layout = Layout::signed_in(req, principal, "Form expired", "");
    let message = "This form could not be accepted: it was not sent from a current page \
                   of this service. Go back, reload the page and try again.";
    let body =
        message_page(&layout, "Form expired", message, None).unwrap_or_else(|_| message.to_owned());
    html(StatusCode::FORBIDDEN, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_template_parses() {
        for name in [
            "base.html",
            "login.html",
            "message.html",
            "worklist.html",
            "case.html",
            "audit.html",
            "integrity.html",
            "admin.html",
            "monitoring.html",
            "monitoring_rows.html",
        ] {
            assert!(templates().get_template(name).is_ok(), "{name}");
        }
    }

    #[test]
    fn an_undefined_value_fails_the_render() {
        for source in [
            "{{ missing }}",
            "{% if missing %}x{% endif %}",
            "{{ layout.missing }}",
        ] {
            let rendered = templates().render_str(
                source,
                minijinja::context! { layout => minijinja::context! { title => "t" } },
            );
            assert!(rendered.is_err(), "{source}: {rendered:?}");
        }
    }

    #[test]
    fn audience_names_the_roles_in_words() {
        assert_eq!(
            audience(&[Permission::ReadAudit]),
            "auditors (compliance officers)"
        );
        assert_eq!(
            audience(&[Permission::ReadCases, Permission::ManageIdentities]),
            "clinicians and administrators"
        );
        assert_eq!(
            audience(&[Permission::ReadSelf]),
            "integration clients, clinicians, auditors (compliance officers) and administrators"
        );
    }

    #[test]
    fn a_message_page_escapes_what_it_is_given() {
        let html = message_page(
            &Layout::anonymous("x"),
            "<b>h</b>",
            "<script>alert(1)</script>",
            None,
        )
        .unwrap();
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("&lt;script&gt;"));
    }
}
