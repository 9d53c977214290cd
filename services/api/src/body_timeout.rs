//! An idle timeout on request bodies: a client that declares more bytes than
//! it sends (a `Content-Length` larger than the body, or a chunked body that
//! stops) would otherwise hold its connection, its worker slot and whatever
//! the handler has buffered for as long as it keeps the socket open. actix
//! bounds the time to read a request's head (`client_request_timeout`) but
//! not its body.
//!
//! Every request's payload is wrapped: when no body bytes arrive for the
//! configured time, the stream ends with [`PayloadError::Io`] (kind
//! `TimedOut`), which the extractors answer as a client error (400 for a
//! note) and STOW-RS as a body that broke off (the parts completed before
//! are stored, the cut one fails). The answer carries `Connection: close`
//! and the connection is closed, since the rest of the body was never read
//! (whether it was declared by `Content-Length` or sent chunked). Same idea as nginx's
//! `client_body_timeout` (default 60 s).

use std::cell::RefCell;
use std::pin::Pin;
use std::rc::Rc;
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::http::ConnectionType;

use actix_web::Error;
use actix_web::body::{BodySize, BoxBody, MessageBody};
use actix_web::dev::{Payload, ServiceRequest, ServiceResponse};
use actix_web::error::PayloadError;
use actix_web::middleware::Next;
use actix_web::web;
use futures::StreamExt;

use crate::AppState;

/// actix-http's `BoxedPayloadStream`, which actix-web does not re-export.
type BoxedPayloadStream =
    std::pin::Pin<Box<dyn futures::Stream<Item = Result<bytes::Bytes, PayloadError>>>>;

/// Wraps the request's payload in the idle timeout of
/// [`AppState::body_idle_timeout`] (none when it is zero).
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
    if idle.is_zero() {
        return Ok(next.call(req).await?.map_body(|_, body| WithUnread {
            body: BoxBody::new(body),
            _unread: None,
        }));
    }
    let parked: Parked = Rc::new(RefCell::new(None));
    let payload = req.parts_mut().1.take();
    req.set_payload(Payload::from(with_idle_timeout(
        payload,
        idle,
        parked.clone(),
    )));
    let mut res = next.call(req).await?;
    let unread = parked.borrow_mut().take();
    if unread.is_some() {
        // The rest of the body was never read: the connection cannot carry
        // another request.
        res.response_mut()
            .head_mut()
            .set_connection_type(ConnectionType::Close);
    }
    // The stalled payload rides along with the answer's body, so that actix
    // sees it unfinished (not dropped) when the answer is complete and closes
    // the connection; a dropped chunked payload it would drain instead, for
    // as long as the client cares to wait.
    Ok(res.map_body(|_, body| WithUnread {
        body: BoxBody::new(body),
        _unread: unread,
    }))
}

/// A response body that keeps a stalled request payload alive until the
/// response has been sent (see [`idle_timeout`]).
pub struct WithUnread {
    body: BoxBody,
    _unread: Option<Payload>,
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

/// Where the payload is kept once its idle timeout fired.
type Parked = Rc<RefCell<Option<Payload>>>;

/// `payload`, ending with a `TimedOut` error when `idle` passes between two
/// chunks (or before the first); the payload is then moved to `parked`.
fn with_idle_timeout(payload: Payload, idle: Duration, parked: Parked) -> BoxedPayloadStream {
    let stream = futures::stream::unfold(Some(payload), move |state| {
        let parked = parked.clone();
        async move {
            let mut payload = state?;
            match actix_web::rt::time::timeout(idle, payload.next()).await {
                Ok(Some(item)) => Some((item, Some(payload))),
                Ok(None) => None,
                Err(_) => {
                    tracing::info!(
                        idle_seconds = idle.as_secs_f64(),
                        "request body stalled; answered without it"
                    );
                    *parked.borrow_mut() = Some(payload);
                    let error = std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!(
                            "no request body bytes for {} s: the body is shorter than declared \
                             or stalled",
                            idle.as_secs()
                        ),
                    );
                    Some((Err(PayloadError::Io(error)), None))
                }
            }
        }
    });
    Box::pin(stream)
}
