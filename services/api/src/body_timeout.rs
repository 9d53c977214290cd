//! Request bodies cannot hold a connection: an idle timeout while a body is
//! read, and no waiting for a body nobody reads.
//!
//! A client that declares more bytes than it sends (a `Content-Length`
//! larger than the body, or a chunked body that stops) would otherwise hold
//! its connection, its worker slot and whatever the handler has buffered for
//! as long as it keeps the socket open. actix bounds the time to read a
//! request's head (`client_request_timeout`) but not its body; and when a
//! handler answers without reading a chunked body (a 401, `/healthz`), actix
//! drains the rest for as long as the client sends it, or waits forever.
//!
//! Every request's payload is wrapped, outside every other middleware (the
//! gate reads CSRF form bodies itself):
//! * when no body bytes arrive for the configured time, the stream ends
//!   with [`PayloadError::Io`] (kind `TimedOut`), which the extractors
//!   answer as a client error (400 for a note) and STOW-RS as a body that
//!   broke off (the parts completed before are stored, the cut one fails);
//! * the payload itself is kept alive until the answer has been sent, so
//!   that actix sees a body not read to its end as unfinished (rather than
//!   dropped, which it would drain) and closes the connection after the
//!   answer, with `Connection: close`.
//!
//! Same idea as nginx's `client_body_timeout` (default 60 s).

use std::cell::{Cell, RefCell};
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::Error;
use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::http::ConnectionType;
use actix_web::middleware::Next;
use actix_web::web;
use futures::StreamExt;

use crate::AppState;

/// actix-http's `BoxedPayloadStream`, which actix-web does not re-export.
type BoxedPayloadStream = Pin<Box<dyn futures::Stream<Item = Result<bytes::Bytes, PayloadError>>>>;

/// The request's payload, shared by the stream the handler reads and the
/// answer that keeps it alive.
type SharedPayload = Rc<RefCell<Payload>>;

/// Wraps the request's payload in the idle timeout of
/// [`AppState::body_idle_timeout`] (none when it is zero) and keeps it alive
/// with the answer (see the module docs).
///
/// # Errors
///
/// Those of the wrapped service.
pub async fn idle_timeout(
    mut req: ServiceRequest,
    next: Next<impl MessageBody + 'static>,
) -> Result<ServiceResponse<WithUnread>, Error> {
    let idle = req
        .app_data::<web::Data<AppState>>()
        .map_or(Duration::ZERO, |s| s.body_idle_timeout);
    let shared: SharedPayload = Rc::new(RefCell::new(req.parts_mut().1.take()));
    let timed_out = Rc::new(Cell::new(false));
    req.set_payload(Payload::from(reader(
        shared.clone(),
        idle,
        timed_out.clone(),
    )));
    let mut res = next.call(req).await?;
    if timed_out.get() {
        // Said explicitly: the rest of the body was never read.
        res.response_mut()
            .head_mut()
            .set_connection_type(ConnectionType::Close);
    }
    Ok(res.map_body(|_, body| WithUnread {
        body: BoxBody::new(body),
        _payload: shared,
    }))
}

/// A response body that keeps the request's payload alive until the
/// response has been sent (see the module docs).
pub struct WithUnread {
    body: BoxBody,
    _payload: SharedPayload,
}

impl MessageBody for WithUnread {
    type Error = Box<dyn std::error::Error>;

    fn size(&self) -> BodySize {
        self.body.size()
    }

    fn poll_next(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<bytes::Bytes, Self::Error>>> {
        Pin::new(&mut self.body).poll_next(cx)
    }
}

/// The stream the handler reads: `shared`'s chunks, ending with a
/// `TimedOut` error when `idle` (unless zero) passes between two chunks or
/// before the first.
fn reader(shared: SharedPayload, idle: Duration, timed_out: Rc<Cell<bool>>) -> BoxedPayloadStream {
    let stream = futures::stream::unfold(Some(shared), move |state| {
        let timed_out = timed_out.clone();
        async move {
            let shared = state?;
            // The borrow lasts one poll, never across an await.
            let next = futures::future::poll_fn(|cx| shared.borrow_mut().poll_next_unpin(cx));
            let item = if idle.is_zero() {
                next.await
            } else {
                match actix_web::rt::time::timeout(idle, next).await {
                    Ok(item) => item,
                    Err(_) => {
                        timed_out.set(true);
                        tracing::info!(
                            idle_seconds = idle.as_secs_f64(),
                            "request body stalled; answered without it"
                        );
                        let error = std::io::Error::new(
                            std::io::ErrorKind::TimedOut,
                            format!(
                                "no request body bytes for {} s: the body is shorter than \
                                 declared or stalled",
                                idle.as_secs()
                            ),
                        );
                        return Some((Err(PayloadError::Io(error)), None));
                    }
                }
            };
            item.map(|item| (item, Some(shared)))
        }
    });
    Box::pin(stream)
}
