//! `GET /admin`: users and API keys at a glance, for administrators. No
//! secret and no hash is shown; changes go through `fusion user …` and
//! `fusion apikey …`, which audit them.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use chrono::Utc;
use serde::Serialize;

use super::{Layout, PageError, html, render};
use crate::AppState;
use crate::auth::Principal;

#[derive(Serialize)]
struct UserRow {
    username: String,
    role: &'static str,
    status: &'static str,
    status_class: &'static str,
    locked_until: Option<String>,
}

#[derive(Serialize)]
struct KeyRow {
    id: String,
    name: String,
    role: &'static str,
    created_by: String,
    created_at: String,
    expires_at: Option<String>,
    status: &'static str,
    status_class: &'static str,
}

#[derive(Serialize)]
struct AdminPage {
    users: Vec<UserRow>,
    keys: Vec<KeyRow>,
}

fn when(t: chrono::DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

pub(crate) async fn admin(
    req: HttpRequest,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let now = Utc::now();
    let users = state
        .repository
        .list_users()
        .await
        .map_err(|e| PageError::Internal(e.into()))?
        .into_iter()
        .map(|u| {
            let locked = u.locked_until.filter(|t| *t > now);
            let (status, status_class) = if u.disabled {
                ("Disabled", "muted")
            } else if locked.is_some() {
                ("Locked", "warn")
            } else {
                ("Active", "ok")
            };
            UserRow {
                username: u.username,
                role: u.role.as_str(),
                status,
                status_class,
                locked_until: locked.map(when),
            }
        })
        .collect();
    let keys = state
        .repository
        .list_api_keys()
        .await
        .map_err(|e| PageError::Internal(e.into()))?
        .into_iter()
        .map(|k| {
            let (status, status_class) = if k.revoked_at.is_some() {
                ("Revoked", "muted")
            } else if k.expires_at.is_some_and(|t| t <= now) {
                ("Expired", "muted")
            } else {
                ("Active", "ok")
            };
            KeyRow {
                id: k.id,
                name: k.name,
                role: k.role.as_str(),
                created_by: k.created_by.unwrap_or_default(),
                created_at: when(k.created_at),
                expires_at: k.expires_at.map(when),
                status,
                status_class,
            }
        })
        .collect();
    let layout = Layout::signed_in(&req, &principal, "Administration", "/admin");
    Ok(html(
        StatusCode::OK,
        render("admin.html", &layout, AdminPage { users, keys })?,
    ))
}
