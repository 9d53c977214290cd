//! The JSON API's handlers, one file per resource or handler group. The
//! route table that registers them, with the access each requires, is
//! [`crate::route_table`].

pub(crate) mod audit;
pub(crate) mod auth;
pub(crate) mod cases;
pub(crate) mod dicomweb;
pub(crate) mod health;
pub(crate) mod models;
pub mod monitoring;
pub(crate) mod notes;
pub(crate) mod openapi;
pub(crate) mod results;

use actix_web::http::Method;

/// HEAD on every GET resource (RFC 9110 §9.3.2; PS3.18 §8.2 lists HEAD
/// for every retrieve and search resource): the request is routed as GET,
/// and the HTTP/1 codec, which remembers the method the client sent, sends
/// the status and headers (Content-Type, Content-Length) without the body.
/// Access is checked and audited as for GET.
pub(crate) async fn head_as_get(
    mut req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    if req.method() == Method::HEAD {
        req.head_mut().method = Method::GET;
    }
    next.call(req).await
}
