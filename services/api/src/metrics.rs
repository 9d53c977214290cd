//! HTTP request metrics: the middleware that records
//! `http.server.request.duration` (seconds, histogram; attributes
//! `http.request.method`, `http.route`, `http.response.status_code`, as the
//! OpenTelemetry HTTP semantic conventions name them) on the application's
//! [`fusion_app::metrics::Metrics`]. The instruments themselves, and those
//! the workers, the outbox and the monitor record, live in `fusion-app`.

use opentelemetry::KeyValue;

/// `http.request.method` as OpenTelemetry's HTTP semantic conventions give
/// it: one of the methods of RFC 9110 §9 and PATCH (RFC 5789), else
/// `_OTHER`, so a client inventing method names cannot grow the metrics.
fn known_method(method: &actix_web::http::Method) -> String {
    match method.as_str() {
        m @ ("GET" | "HEAD" | "POST" | "PUT" | "DELETE" | "CONNECT" | "OPTIONS" | "TRACE"
        | "PATCH") => m.to_owned(),
        _ => "_OTHER".to_owned(),
    }
}

/// Middleware: records `http.server.request.duration` for every request,
/// by method, route pattern (never the path as sent) and status.
pub(crate) async fn record_request(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    let started = std::time::Instant::now();
    let metrics = req
        .app_data::<actix_web::web::Data<crate::AppState>>()
        .map(|s| s.metrics.clone());
    let method = known_method(req.method());
    let res = next.call(req).await;
    if let Some(metrics) = metrics {
        let (status, route) = match &res {
            Ok(r) => (
                r.status().as_u16(),
                r.request()
                    .match_pattern()
                    .unwrap_or_else(|| "default".to_owned()),
            ),
            Err(e) => (
                e.as_response_error().status_code().as_u16(),
                "default".to_owned(),
            ),
        };
        metrics.http_duration.record(
            started.elapsed().as_secs_f64(),
            &[
                KeyValue::new("http.request.method", method),
                KeyValue::new("http.route", route),
                KeyValue::new("http.response.status_code", i64::from(status)),
            ],
        );
    }
    res
}

#[cfg(test)]
mod method_tests {
    use super::known_method;
    use actix_web::http::Method;

    #[test]
    fn invented_methods_are_other() {
        assert_eq!(known_method(&Method::GET), "GET");
        assert_eq!(known_method(&Method::PATCH), "PATCH");
        let invented = Method::from_bytes(b"M12345").unwrap();
        assert_eq!(known_method(&invented), "_OTHER");
    }
}
