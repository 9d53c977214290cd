//! Signing in and out with a form, and the start page that sends each role
//! to its own section.
//!
//! `POST /login` takes the same path as the JSON `POST /auth/login`
//! (`routes::auth::attempt_login`): throttled per address, locking after
//! repeated failures, audited, and setting the same two cookies.

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use serde::{Deserialize, Serialize};

use super::{Layout, PageError, html, render, see_other};
use crate::AppState;
use crate::auth::{AuditContext, Permission, Principal};
use crate::routes::auth::{
    LoginOutcome, attempt_login, end_session, removal_cookies, session_cookies,
};

/// Who may use the start page: any role with a section of its own.
pub(crate) const HOME: &[Permission] = &[
    Permission::ReadCases,
    Permission::ReadAudit,
    Permission::ManageIdentities,
];

/// `next` only ever leads to a path of this service: it starts with one `/`
/// (not `//`, which a browser reads as another host), has no backslash (which
/// some read as `/`) and no control characters.
fn safe_next(next: &str) -> Option<&str> {
    let ok = next.starts_with('/')
        && !next.starts_with("//")
        && !next.contains('\\')
        && !next.chars().any(char::is_control)
        && next.len() <= 2048;
    ok.then_some(next)
}

#[derive(Deserialize)]
pub(crate) struct LoginQuery {
    next: Option<String>,
    signed_out: Option<String>,
}

#[derive(Serialize)]
struct LoginPage<'a> {
    username: &'a str,
    next: &'a str,
    error: Option<&'a str>,
    notice: Option<&'a str>,
}

fn login_page(status: StatusCode, page: &LoginPage<'_>) -> Result<HttpResponse, PageError> {
    let body = render("login.html", &Layout::anonymous("Sign in"), page)?;
    Ok(html(status, body))
}

pub(crate) async fn login_form(query: web::Query<LoginQuery>) -> Result<HttpResponse, PageError> {
    let next = query.next.as_deref().and_then(safe_next).unwrap_or("");
    login_page(
        StatusCode::OK,
        &LoginPage {
            username: "",
            next,
            error: None,
            notice: query
                .signed_out
                .as_ref()
                .map(|_| "You have signed out. Close the browser if this is a shared computer."),
        },
    )
}

/// The sign-in form as posted.
#[derive(Deserialize)]
pub(crate) struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
    #[serde(default)]
    next: String,
}

/// Whether a form post comes from a page of ours, refusing login CSRF
/// (signing a victim in as the attacker from another site). Browsers say
/// where a request comes from in `Sec-Fetch-Site`; older ones only in
/// `Origin`, which under our `Referrer-Policy: no-referrer` is `null` even
/// for our own pages, so only a real origin is compared. A request with
/// neither (not a browser) has no victim to confuse.
fn same_origin(req: &HttpRequest) -> bool {
    let header = |name| req.headers().get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = header("sec-fetch-site") {
        return matches!(site, "same-origin" | "none");
    }
    match header("origin") {
        None | Some("null") => true,
        Some(origin) => {
            let host = req.connection_info().host().to_owned();
            origin
                .split_once("://")
                .is_some_and(|(_, rest)| rest.eq_ignore_ascii_case(&host))
        }
    }
}

pub(crate) async fn login_submit(
    req: HttpRequest,
    state: web::Data<AppState>,
    form: web::Form<LoginForm>,
) -> Result<HttpResponse, PageError> {
    let LoginForm {
        username,
        password,
        next,
    } = form.into_inner();
    let next = safe_next(&next).unwrap_or("");
    let refused = |status, error| {
        login_page(
            status,
            &LoginPage {
                username: &username,
                next,
                error: Some(error),
                notice: None,
            },
        )
    };
    if !same_origin(&req) {
        return refused(
            StatusCode::FORBIDDEN,
            "This sign-in form was sent from another site. Open this page directly and sign in again.",
        );
    }
    if username.is_empty() || password.is_empty() {
        return refused(
            StatusCode::BAD_REQUEST,
            "Enter your user name and password.",
        );
    }
    match attempt_login(&req, &state, &username, &password).await? {
        LoginOutcome::Success(session) => {
            let mut res = HttpResponse::SeeOther();
            for cookie in session_cookies(&state, &session) {
                res.cookie(cookie);
            }
            let target = if next.is_empty() { "/" } else { next };
            Ok(res.insert_header((header::LOCATION, target)).finish())
        }
        LoginOutcome::Throttled => {
            let mut res = refused(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many sign-in attempts from this computer. Wait a minute, then try again.",
            )?;
            res.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from_static("60"));
            Ok(res)
        }
        LoginOutcome::Refused => refused(
            StatusCode::UNAUTHORIZED,
            "Sign-in failed: the user name or password is wrong, or the account is disabled \
             or locked.",
        ),
    }
}

pub(crate) async fn logout(
    state: web::Data<AppState>,
    ctx: AuditContext,
) -> Result<HttpResponse, PageError> {
    end_session(&state, &ctx).await?;
    let mut res = HttpResponse::SeeOther();
    for cookie in removal_cookies() {
        res.cookie(cookie);
    }
    Ok(res
        .insert_header((header::LOCATION, "/login?signed_out=1"))
        .finish())
}

/// `GET /`: each role's own section.
pub(crate) async fn home(principal: Principal) -> HttpResponse {
    let target = if principal.can(Permission::ReadCases) {
        "/worklist"
    } else if principal.can(Permission::ReadAudit) {
        "/audit"
    } else {
        "/admin"
    };
    see_other(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_stays_on_this_service() {
        assert_eq!(safe_next("/audit?patient=P1"), Some("/audit?patient=P1"));
        assert_eq!(safe_next("//evil.example/"), None);
        assert_eq!(safe_next("/\\evil.example/"), None);
        assert_eq!(safe_next("https://evil.example/"), None);
        assert_eq!(safe_next("/a\nb"), None);
        assert_eq!(safe_next(""), None);
    }
}
