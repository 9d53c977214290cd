//! Content negotiation of WADO-RS (PS3.18 §8.7: Accept header, media type
//! parameters `type` and `transfer-syntax`, §8.7.3.5.2 defaults) and
//! multipart/related bodies (RFC 2387, PS3.18 §8.7.1.2) with a boundary
//! drawn per response that does not occur in any part.

use actix_web::HttpRequest;
use actix_web::HttpResponse;
use actix_web::http::{StatusCode, header};
use bytes::Bytes;

use crate::ApiError;

/// One media range of an Accept header: `multipart/related` ranges carry
/// their `type` parameter in `part_type`; `transfer_syntax` is the
/// `transfer-syntax` parameter (`*` for any).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct MediaRange {
    /// The media type, lower case (`multipart/related`, `image/jls`, `*/*`).
    pub media_type: String,
    /// The `type` parameter, lower case and unquoted.
    pub part_type: Option<String>,
    /// The `transfer-syntax` parameter, unquoted.
    pub transfer_syntax: Option<String>,
    /// Quality (RFC 9110 §12.4.2), 0–1.
    pub q: f32,
}

impl MediaRange {
    /// The media type a part is asked in: the `type` parameter of a
    /// multipart range (`*/*` when absent), else the range itself.
    pub fn part_media_type(&self) -> &str {
        if self.media_type == "multipart/related" || self.media_type == "multipart/*" {
            self.part_type.as_deref().unwrap_or("*/*")
        } else {
            &self.media_type
        }
    }

    /// Whether the range is a multipart one (or a wildcard that allows it).
    pub fn allows_multipart(&self) -> bool {
        matches!(
            self.media_type.as_str(),
            "multipart/related" | "multipart/*" | "*/*" | "*"
        )
    }
}

/// The Accept header's ranges, best first (by `q`, then header order);
/// `*/*` when there is no Accept header. Ranges with `q=0` are dropped.
pub(crate) fn accept_ranges(req: &HttpRequest) -> Vec<MediaRange> {
    let Some(accept) = req
        .headers()
        .get_all(header::ACCEPT)
        .filter_map(|v| v.to_str().ok())
        .map(str::to_owned)
        .reduce(|a, b| format!("{a},{b}"))
    else {
        return vec![MediaRange {
            media_type: "*/*".into(),
            part_type: None,
            transfer_syntax: None,
            q: 1.0,
        }];
    };
    parse_accept(&accept)
}

/// The media ranges of an Accept header value (RFC 9110 §12.5.1), or of
/// the `accept` query parameter that stands for it where a user agent
/// cannot set the header (PS3.18 §8.3.3.1), best first.
pub(crate) fn parse_accept(accept: &str) -> Vec<MediaRange> {
    let mut ranges: Vec<MediaRange> = split_unquoted(accept, ',')
        .into_iter()
        .filter(|r| !r.trim().is_empty())
        .map(|r| {
            let mut params = split_unquoted(r, ';').into_iter();
            let media_type = params.next().unwrap_or("").trim().to_ascii_lowercase();
            let mut range = MediaRange {
                media_type,
                part_type: None,
                transfer_syntax: None,
                q: 1.0,
            };
            for p in params {
                let (k, v) = p.split_once('=').unwrap_or((p, ""));
                let v = v.trim().trim_matches('"').trim();
                match k.trim().to_ascii_lowercase().as_str() {
                    "type" => range.part_type = Some(v.to_ascii_lowercase()),
                    "transfer-syntax" => range.transfer_syntax = Some(v.to_owned()),
                    "q" => range.q = v.parse().unwrap_or(1.0),
                    _ => {}
                }
            }
            range
        })
        .filter(|r| r.q > 0.0)
        .collect();
    // Stable: equal q keeps header order.
    ranges.sort_by(|a, b| b.q.total_cmp(&a.q));
    ranges
}

fn split_unquoted(s: &str, sep: char) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut quoted) = (0, false);
    for (i, c) in s.char_indices() {
        if c == '"' {
            quoted = !quoted;
        } else if c == sep && !quoted {
            out.push(&s[start..i]);
            start = i + 1;
        }
    }
    out.push(&s[start..]);
    out
}

/// Whether a response of `media_type` (e.g. `application/dicom+json`)
/// satisfies at least one range (wildcards `*/*` and `application/*`
/// included).
pub(crate) fn accepts(ranges: &[MediaRange], media_type: &str) -> bool {
    let top = media_type.split('/').next().unwrap_or("");
    ranges.iter().any(|r| {
        r.media_type == media_type
            || r.media_type == "*/*"
            || r.media_type == "*"
            || r.media_type == format!("{top}/*")
    })
}

/// 406 when the Accept header allows neither DICOM JSON nor JSON: the
/// service answers QIDO-RS and metadata in `application/dicom+json` only
/// (PS3.18 §8.7.3.2; `application/dicom+xml` is not served).
pub(crate) fn json_only(req: &HttpRequest) -> Option<HttpResponse> {
    let ranges = accept_ranges(req);
    if accepts(&ranges, "application/dicom+json") || accepts(&ranges, "application/json") {
        return None;
    }
    Some(not_acceptable(
        "this resource is served as application/dicom+json only (application/dicom+xml is not supported)",
        &["application/dicom+json"],
    ))
}

/// A 406 answer naming the media types that are available (PS3.18
/// §8.7.5: the origin server answers 406 when it cannot produce an
/// acceptable media type).
pub(crate) fn not_acceptable(message: &str, available: &[&str]) -> HttpResponse {
    HttpResponse::build(StatusCode::NOT_ACCEPTABLE).json(serde_json::json!({
        "code": "not_acceptable",
        "message": message,
        "available": available,
    }))
}

/// A boundary (RFC 2046 §5.1.1: at most 70 characters) drawn at random for
/// one response, drawn again while `--boundary` occurs in any part.
pub(crate) fn boundary_for(parts: &[&[u8]]) -> Result<String, ApiError> {
    boundary_avoiding(parts, random_boundary)
}

/// The first boundary from `draw` whose delimiter (`--` and the boundary)
/// occurs in none of `parts`.
fn boundary_avoiding(
    parts: &[&[u8]],
    mut draw: impl FnMut() -> Result<String, ApiError>,
) -> Result<String, ApiError> {
    loop {
        let boundary = draw()?;
        let delimiter = format!("--{boundary}");
        if !parts.iter().any(|p| contains(p, delimiter.as_bytes())) {
            return Ok(boundary);
        }
    }
}

/// A fresh random boundary: `fusion-` and 32 hex digits (128 bits).
pub(crate) fn random_boundary() -> Result<String, ApiError> {
    Ok(format!(
        "fusion-{}",
        hex::encode(
            crate::auth::secrets::random_bytes::<16>()
                .map_err(|e| ApiError::Internal(anyhow::Error::from(e)))?
        )
    ))
}

/// Whether `needle` occurs in `haystack`.
pub(crate) fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    memchr::memmem::find(haystack, needle).is_some()
}

/// One part of a multipart/related body.
pub(crate) struct Part {
    /// The part's Content-Type.
    pub content_type: String,
    /// The part's bytes.
    pub body: Bytes,
}

/// A `multipart/related; type="{part_type}"` response with the parts, each
/// with its Content-Type and Content-Length, under a boundary that none of
/// them contains (PS3.18 §8.7.1.2).
pub(crate) fn multipart_response(
    part_type: &str,
    parts: &[Part],
) -> Result<HttpResponse, ApiError> {
    let bodies: Vec<&[u8]> = parts.iter().map(|p| p.body.as_ref()).collect();
    let boundary = boundary_for(&bodies)?;
    let size: usize = parts.iter().map(|p| p.body.len() + 200).sum();
    let mut body = Vec::with_capacity(size);
    for p in parts {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Type: {}\r\nContent-Length: {}\r\n\r\n",
                p.content_type,
                p.body.len()
            )
            .as_bytes(),
        );
        body.extend_from_slice(&p.body);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    Ok(HttpResponse::Ok()
        .content_type(format!(
            "multipart/related; type=\"{part_type}\"; boundary={boundary}"
        ))
        .body(body))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn accept_is_parsed_with_quoted_parameters_and_quality() {
        let req = actix_web::test::TestRequest::default()
            .insert_header((
                header::ACCEPT,
                "multipart/related; type=\"image/jls\"; transfer-syntax=1.2.840.10008.1.2.4.80; q=0.5, multipart/related; type=application/octet-stream",
            ))
            .to_http_request();
        let r = accept_ranges(&req);
        assert_eq!(r.len(), 2);
        assert_eq!(r[0].part_media_type(), "application/octet-stream");
        assert_eq!(r[1].part_media_type(), "image/jls");
        assert_eq!(
            r[1].transfer_syntax.as_deref(),
            Some("1.2.840.10008.1.2.4.80")
        );
    }

    #[test]
    fn a_boundary_never_occurs_in_a_part() {
        let b = boundary_for(&[b"abc"]).unwrap();
        assert!(b.len() <= 70);
        assert_ne!(b, boundary_for(&[b"abc"]).unwrap());
        // A drawn boundary found in a part is drawn again.
        let mut draws = ["fusion-bulk", "fusion-bulk2", "other"].into_iter();
        let part: &[u8] = b"pixels\r\n--fusion-bulk--\r\n--fusion-bulk2";
        let chosen = boundary_avoiding(&[part], || Ok(draws.next().unwrap().to_owned())).unwrap();
        assert_eq!(chosen, "other");
    }
}
