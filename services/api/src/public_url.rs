//! The URL the service is reached at, for the links it hands out: the
//! RetrieveURL (0008,1190) of STOW-RS and QIDO-RS responses and the
//! BulkDataURI of WADO-RS metadata (PS3.18 §10.5.3, §10.6.3, §F.2.6) must
//! resolve for the client that reads them, also behind a reverse proxy that
//! adds a path prefix or terminates TLS (issue #15 item 10).
//!
//! In order of precedence:
//!
//! 1. `public_base_url` (`FUSION_PUBLIC_BASE_URL`), e.g.
//!    `https://pacs.example.org/fusion`: every link starts with it,
//!    whatever the request says.
//! 2. From a peer listed in `trusted_proxies` (`FUSION_TRUSTED_PROXIES`,
//!    IP addresses or CIDR blocks, comma-separated): `X-Forwarded-Proto`,
//!    `X-Forwarded-Host`, `X-Forwarded-Port` and `X-Forwarded-Prefix`
//!    (the de facto headers of nginx, Traefik, Spring and ASP.NET), or the
//!    `proto` and `host` of RFC 7239 `Forwarded`.
//! 3. Otherwise the request itself: `http` (`https` on a TLS listener) and
//!    its `Host` header (RFC 9110 §7.2), or the listener's address. Forwarded
//!    headers from anyone else are ignored, so a client cannot make the
//!    service hand others links to a host of its choosing.
//!
//! A client that omits the port from `Host` gets links without it (the
//! header is all it said); a configured `public_base_url` is the fix.

use std::net::IpAddr;
use std::str::FromStr;

use actix_web::HttpRequest;
use actix_web::http::header::{self, HeaderMap};
use actix_web::http::uri::Authority;
use ipnet::IpNet;

use fusion_app::SettingsError;

/// How the service names itself in the links it hands out (see the module
/// docs for the rules).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublicUrl {
    /// `scheme://host[:port][/prefix]`, no trailing slash.
    base: Option<String>,
    trusted: Vec<IpNet>,
}

fn invalid(message: String) -> SettingsError {
    SettingsError::Invalid(config::ConfigError::Message(message))
}

impl PublicUrl {
    /// From the settings: `base` is an absolute `http` or `https` URL
    /// without query or fragment (a path is the prefix); `trusted` lists IP
    /// addresses and CIDR blocks separated by commas or spaces (empty: none).
    ///
    /// # Errors
    ///
    /// [`SettingsError::Invalid`] naming `FUSION_PUBLIC_BASE_URL` or
    /// `FUSION_TRUSTED_PROXIES` when a value is malformed.
    pub fn new(base: Option<&str>, trusted: &str) -> Result<Self, SettingsError> {
        let base = match base.map(str::trim).filter(|b| !b.is_empty()) {
            None => None,
            Some(raw) => {
                let url = url::Url::parse(raw)
                    .map_err(|e| invalid(format!("FUSION_PUBLIC_BASE_URL is not a URL: {e}")))?;
                if !matches!(url.scheme(), "http" | "https")
                    || url.host_str().is_none()
                    || url.query().is_some()
                    || url.fragment().is_some()
                    || !url.username().is_empty()
                {
                    return Err(invalid(
                        "FUSION_PUBLIC_BASE_URL must be an http or https URL with a host and no \
                         query, fragment or user"
                            .into(),
                    ));
                }
                Some(url.as_str().trim_end_matches('/').to_owned())
            }
        };
        let trusted = trusted
            .split([',', ' '])
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(|t| {
                IpNet::from_str(t)
                    .or_else(|_| IpAddr::from_str(t).map(IpNet::from))
                    .map_err(|_| {
                        invalid(format!(
                            "FUSION_TRUSTED_PROXIES: {t:?} is not an IP address or CIDR block"
                        ))
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Self { base, trusted })
    }

    /// The base of the links for `req`: `scheme://host[:port][/prefix]`,
    /// without a trailing slash; callers append `/dicom-web/…`.
    pub fn origin(&self, req: &HttpRequest) -> String {
        if let Some(base) = &self.base {
            return base.clone();
        }
        let secure = req.app_config().secure();
        let own_host = || {
            req.headers()
                .get(header::HOST)
                .and_then(|v| v.to_str().ok())
                .and_then(authority)
                .or_else(|| req.uri().authority().and_then(|a| authority(a.as_str())))
                .unwrap_or_else(|| req.app_config().host().to_owned())
        };
        let from_proxy = req
            .peer_addr()
            .is_some_and(|peer| self.trusted.iter().any(|n| n.contains(&peer.ip())));
        if !from_proxy {
            let scheme = if secure { "https" } else { "http" };
            return format!("{scheme}://{}", own_host());
        }
        let h = req.headers();
        let forwarded = rfc7239(h);
        let scheme = first(h, "x-forwarded-proto")
            .or(forwarded.proto)
            .map(|p| p.to_ascii_lowercase())
            .filter(|p| p == "http" || p == "https")
            .unwrap_or_else(|| if secure { "https" } else { "http" }.to_owned());
        let mut host = first(h, "x-forwarded-host")
            .or(forwarded.host)
            .as_deref()
            .and_then(authority)
            .unwrap_or_else(own_host);
        if let Some(port) = first(h, "x-forwarded-port").and_then(|p| p.parse::<u16>().ok())
            && Authority::from_str(&host).is_ok_and(|a| a.port_u16().is_none())
            && !matches!((scheme.as_str(), port), ("http", 80) | ("https", 443))
        {
            host = format!("{host}:{port}");
        }
        let prefix = first(h, "x-forwarded-prefix")
            .and_then(|p| path_prefix(&p))
            .unwrap_or_default();
        format!("{scheme}://{host}{prefix}")
    }
}

/// The first value of a comma-separated header (the client-most proxy's).
fn first(headers: &HeaderMap, name: &str) -> Option<String> {
    let value = headers.get(name)?.to_str().ok()?;
    let first = value.split(',').next()?.trim();
    (!first.is_empty()).then(|| first.to_owned())
}

/// `host[:port]` when it is a bare authority (RFC 3986 §3.2, no user
/// information), else `None`.
fn authority(raw: &str) -> Option<String> {
    let a = Authority::from_str(raw.trim()).ok()?;
    (!a.as_str().contains('@') && !a.host().is_empty()).then(|| a.as_str().to_owned())
}

/// A path prefix `/a/b` from `X-Forwarded-Prefix`: segments of RFC 3986
/// `pchar`s only, no dot segments; the trailing slash dropped.
fn path_prefix(raw: &str) -> Option<String> {
    let trimmed = raw.trim().trim_end_matches('/');
    if trimmed.is_empty() {
        return None;
    }
    let ok = trimmed.starts_with('/')
        && trimmed[1..].split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@%".contains(&b))
        });
    ok.then(|| trimmed.to_owned())
}

/// `proto` and `host` of the first element of an RFC 7239 `Forwarded`
/// header.
#[derive(Default)]
struct Forwarded {
    proto: Option<String>,
    host: Option<String>,
}

fn rfc7239(headers: &HeaderMap) -> Forwarded {
    let mut out = Forwarded::default();
    let Some(value) = headers.get(header::FORWARDED).and_then(|v| v.to_str().ok()) else {
        return out;
    };
    let element = value.split(',').next().unwrap_or("");
    for pair in element.split(';') {
        let Some((name, v)) = pair.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"').to_owned();
        match name.trim().to_ascii_lowercase().as_str() {
            "proto" => out.proto = Some(v),
            "host" => out.host = Some(v),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use actix_web::test::TestRequest;

    use super::*;

    fn peer(ip: &str) -> std::net::SocketAddr {
        format!("{ip}:40000").parse().unwrap()
    }

    #[test]
    fn configured_base_wins_over_every_header() {
        let p = PublicUrl::new(Some("https://pacs.example.org/fusion/"), "10.0.0.0/8").unwrap();
        let req = TestRequest::default()
            .peer_addr(peer("10.1.2.3"))
            .insert_header(("Host", "internal:8080"))
            .insert_header(("X-Forwarded-Host", "other.example"))
            .to_http_request();
        assert_eq!(p.origin(&req), "https://pacs.example.org/fusion");
    }

    #[test]
    fn forwarded_headers_from_a_trusted_proxy() {
        let p = PublicUrl::new(None, "10.0.0.0/8, 192.168.1.7").unwrap();
        let req = TestRequest::default()
            .peer_addr(peer("192.168.1.7"))
            .insert_header(("Host", "internal:8080"))
            .insert_header(("X-Forwarded-Proto", "https"))
            .insert_header(("X-Forwarded-Host", "pacs.example.org"))
            .insert_header(("X-Forwarded-Port", "8443"))
            .insert_header(("X-Forwarded-Prefix", "/imaging/"))
            .to_http_request();
        assert_eq!(p.origin(&req), "https://pacs.example.org:8443/imaging");
        let req = TestRequest::default()
            .peer_addr(peer("10.9.9.9"))
            .insert_header(("Forwarded", "for=1.2.3.4;proto=https;host=\"h.example\""))
            .to_http_request();
        assert_eq!(p.origin(&req), "https://h.example");
    }

    #[test]
    fn forwarded_headers_from_anyone_else_are_ignored() {
        let p = PublicUrl::new(None, "10.0.0.0/8").unwrap();
        let req = TestRequest::default()
            .peer_addr(peer("203.0.113.5"))
            .insert_header(("Host", "svc.example:8080"))
            .insert_header(("X-Forwarded-Proto", "https"))
            .insert_header(("X-Forwarded-Host", "attacker.example"))
            .insert_header(("X-Forwarded-Prefix", "/x"))
            .to_http_request();
        assert_eq!(p.origin(&req), "http://svc.example:8080");
    }

    #[test]
    fn hostile_values_fall_back() {
        let p = PublicUrl::new(None, "127.0.0.1").unwrap();
        let req = TestRequest::default()
            .peer_addr(peer("127.0.0.1"))
            .insert_header(("Host", "svc:8080"))
            .insert_header(("X-Forwarded-Host", "a@b/c"))
            .insert_header(("X-Forwarded-Prefix", "/../admin"))
            .insert_header(("X-Forwarded-Proto", "javascript"))
            .to_http_request();
        assert_eq!(p.origin(&req), "http://svc:8080");
    }

    #[test]
    fn malformed_settings_name_their_key() {
        let e = PublicUrl::new(Some("ftp://x"), "").unwrap_err().to_string();
        assert!(e.contains("FUSION_PUBLIC_BASE_URL"), "{e}");
        let e = PublicUrl::new(None, "10.0.0.0/33").unwrap_err().to_string();
        assert!(e.contains("FUSION_TRUSTED_PROXIES"), "{e}");
    }
}
