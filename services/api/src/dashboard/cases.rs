//! `GET /worklist` and `GET /cases/{id}/view`: the clinician's pages. For
//! now they render the frame and an empty state; they fill in once cases and
//! predictions are stored (the JSON API's `/cases`).

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use serde::Serialize;

use super::{Layout, PageError, html, render};
use crate::auth::Principal;

#[derive(Serialize)]
struct Empty {}

pub(crate) async fn worklist(
    req: HttpRequest,
    principal: Principal,
) -> Result<HttpResponse, PageError> {
    let layout = Layout::signed_in(&req, &principal, "Worklist", "/worklist");
    Ok(html(
        StatusCode::OK,
        render("worklist.html", &layout, Empty {})?,
    ))
}

#[derive(Serialize)]
struct CasePage {
    case_id: String,
}

pub(crate) async fn case_view(
    req: HttpRequest,
    principal: Principal,
    id: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let layout = Layout::signed_in(&req, &principal, "Case", "/worklist");
    let case_id: String = id.into_inner().chars().take(128).collect();
    Ok(html(
        StatusCode::OK,
        render("case.html", &layout, CasePage { case_id })?,
    ))
}
