//! The root span of every HTTP request. Logging and trace export are set up
//! by [`fusion_app::telemetry::init`]; this is the one part that knows
//! actix-web.
//!
//! The span ([`RouteRootSpan`]) records the route pattern, never the path or
//! query a client sent (`/notes?patient_id=…`, QIDO `?PatientName=…`).

/// The root span of every HTTP request: method, route pattern
/// (`/dicom-web/studies/{study}`), request id, status, as
/// `tracing-actix-web`'s default but without `http.target`, the path and
/// query as sent, which carry Patient IDs, names and accession numbers
/// (issue #14, finding 4), and without the client's user agent.
pub struct RouteRootSpan;

impl tracing_actix_web::RootSpanBuilder for RouteRootSpan {
    fn on_request_start(request: &actix_web::dev::ServiceRequest) -> tracing::Span {
        use actix_web::HttpMessage as _;
        let route = request
            .match_pattern()
            .unwrap_or_else(|| "default".to_owned());
        let method = request.method().as_str().to_owned();
        let request_id = request
            .extensions()
            .get::<tracing_actix_web::RequestId>()
            .map(ToString::to_string)
            .unwrap_or_default();
        tracing::info_span!(
            "HTTP request",
            http.method = %method,
            http.route = %route,
            http.status_code = tracing::field::Empty,
            otel.name = %format!("{method} {route}"),
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            request_id = %request_id,
            exception.message = tracing::field::Empty,
            exception.details = tracing::field::Empty,
        )
    }

    /// Records the status, never the error's message: a 400's message may
    /// quote what the client sent (a malformed StudyDate, a Patient ID), and
    /// the client already has it in the body. A 5xx is logged once, by
    /// status and route, its cause having been logged where it happened.
    fn on_request_end<B: actix_web::body::MessageBody>(
        span: tracing::Span,
        outcome: &Result<actix_web::dev::ServiceResponse<B>, actix_web::Error>,
    ) {
        let status = match outcome {
            Ok(res) => res.response().status(),
            Err(e) => e.as_response_error().status_code(),
        };
        span.record("http.status_code", status.as_u16());
        if status.is_server_error() {
            span.record("otel.status_code", "ERROR");
            span.in_scope(|| tracing::error!(status = status.as_u16(), "request failed"));
        }
    }
}
