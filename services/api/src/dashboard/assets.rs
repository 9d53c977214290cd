//! `GET /static/{file}`: the dashboard's stylesheet and script, embedded at
//! compile time. Pages link them as `/static/<file>?v=<content hash>`, so a
//! browser may cache a version for good and a new build is fetched at once.

use actix_web::http::header;
use actix_web::{HttpResponse, web};
use sha2::{Digest, Sha256};

/// Every asset: name, media type, content.
const ASSETS: [(&str, &str, &str); 2] = [
    (
        "app.css",
        "text/css; charset=utf-8",
        include_str!("static/app.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("static/app.js"),
    ),
];

/// The first 16 hex digits of each asset's SHA-256, and the versioned URL.
fn versions() -> &'static [(&'static str, String, String)] {
    static V: std::sync::LazyLock<Vec<(&'static str, String, String)>> =
        std::sync::LazyLock::new(|| {
            ASSETS
                .iter()
                .map(|(name, _, body)| {
                    let hash = hex::encode(Sha256::digest(body.as_bytes()));
                    let short = hash.get(..16).unwrap_or(&hash).to_owned();
                    let url = format!("/static/{name}?v={short}");
                    (*name, short, url)
                })
                .collect()
        });
    &V
}

/// The versioned URL of asset `name` (`/static/app.css?v=…`).
pub(crate) fn url(name: &str) -> &'static str {
    versions()
        .iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, _, url)| url.as_str())
        .unwrap_or("/static/missing")
}

#[derive(serde::Deserialize)]
pub(crate) struct AssetQuery {
    v: Option<String>,
}

pub(crate) async fn asset(file: web::Path<String>, query: web::Query<AssetQuery>) -> HttpResponse {
    let file = file.into_inner();
    let Some((name, media_type, body)) = ASSETS.iter().find(|(n, _, _)| *n == file) else {
        return HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body("no such file");
    };
    let current = versions()
        .iter()
        .find(|(n, _, _)| n == name)
        .map(|(_, v, _)| v.as_str());
    // Only the exact version may be cached for good; anything else is
    // revalidated, so a stale `?v=` never pins an old file.
    let cache = if query.v.as_deref().is_some_and(|v| Some(v) == current) {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    HttpResponse::Ok()
        .content_type(*media_type)
        .insert_header((header::CACHE_CONTROL, cache))
        .body(*body)
}
