//! Where results go: the outbox's destinations (the PACS that receives
//! DICOM SRs by STOW-RS, the FHIR endpoint) and its retry policy, read from
//! the settings; which deliveries a prediction version or a review makes.
//! The senders are [`crate::outbox`].

use std::time::Duration;

use fusion_store::DeliveryTarget;
use secrecy::SecretString;

/// Longest delay between attempts.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// A remote destination: base URL and credentials.
#[derive(Debug, Clone)]
pub struct Destination {
    /// Base URL: DICOMweb root (`…/dicom-web`) or FHIR base.
    pub url: url::Url,
    /// HTTP basic-auth user (DICOMweb).
    pub user: Option<String>,
    /// Basic-auth password, or the FHIR bearer token.
    pub secret: Option<SecretString>,
}

impl Destination {
    /// `scheme://host:port` of the destination: what the audit names
    /// (never the path, a query or credentials).
    pub fn address(&self) -> String {
        let host = self.url.host_str().unwrap_or("");
        match self.url.port_or_known_default() {
            Some(p) => format!("{}://{host}:{p}", self.url.scheme()),
            None => format!("{}://{host}", self.url.scheme()),
        }
    }
}

/// The outbox's part of the settings.
#[derive(Debug, Clone)]
pub struct OutboxSettings {
    /// The PACS receiving SRs, if configured.
    pub dicomweb: Option<Destination>,
    /// Send UNVERIFIED SRs too.
    pub send_unverified: bool,
    /// The FHIR endpoint, if configured.
    pub fhir: Option<Destination>,
    /// Attempts before a delivery fails.
    pub max_attempts: i32,
    /// First retry delay.
    pub backoff: Duration,
    /// Limit on one request.
    pub timeout: Duration,
    /// Sender tasks in this process.
    pub senders: usize,
}

impl Default for OutboxSettings {
    fn default() -> Self {
        Self {
            dicomweb: None,
            send_unverified: true,
            fhir: None,
            max_attempts: 8,
            backoff: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
            senders: 4,
        }
    }
}

/// Why the outbox settings are unusable.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct OutboxSettingsError(String);

impl OutboxSettings {
    /// Reads the outbox part of `settings`.
    ///
    /// # Errors
    ///
    /// [`OutboxSettingsError`] naming a URL that is not an `http(s)` URL.
    pub fn from_settings(settings: &crate::Settings) -> Result<Self, OutboxSettingsError> {
        let parse = |key: &str,
                     raw: &Option<String>|
         -> Result<Option<url::Url>, OutboxSettingsError> {
            match raw.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
                None => Ok(None),
                Some(s) => {
                    let u = url::Url::parse(s)
                        .map_err(|e| OutboxSettingsError(format!("{key} is not a URL: {e}")))?;
                    if !matches!(u.scheme(), "http" | "https") {
                        return Err(OutboxSettingsError(format!("{key} must be http or https")));
                    }
                    Ok(Some(u))
                }
            }
        };
        Ok(Self {
            dicomweb: parse("FUSION_SR_DESTINATION_URL", &settings.sr_destination_url)?.map(
                |url| Destination {
                    url,
                    user: settings.sr_destination_user.clone(),
                    secret: settings.sr_destination_password.clone(),
                },
            ),
            send_unverified: settings.sr_send_unverified,
            fhir: parse("FUSION_FHIR_ENDPOINT_URL", &settings.fhir_endpoint_url)?.map(|url| {
                Destination {
                    url,
                    user: None,
                    secret: settings.fhir_endpoint_token.clone(),
                }
            }),
            max_attempts: settings.outbox_max_attempts.max(1),
            backoff: Duration::from_secs(settings.outbox_backoff_seconds.max(1)),
            timeout: Duration::from_secs(settings.outbox_timeout_seconds.max(1)),
            senders: settings.outbox_senders,
        })
    }

    /// The deliveries of a new prediction version: its UNVERIFIED SR into
    /// the archive and (when unverified results go out) to the PACS, where
    /// the case has a study; FHIR where configured.
    pub fn for_prediction(&self, has_study: bool) -> Vec<DeliveryTarget> {
        let mut t = Vec::new();
        if has_study {
            t.push(DeliveryTarget::Local);
            if self.dicomweb.is_some() && self.send_unverified {
                t.push(DeliveryTarget::Dicomweb);
            }
        }
        if self.fhir.is_some() {
            t.push(DeliveryTarget::Fhir);
        }
        t
    }

    /// The deliveries of a review: its VERIFIED SR into the archive and to
    /// the PACS, where the case has a study; FHIR where configured.
    pub fn for_review(&self, has_study: bool) -> Vec<DeliveryTarget> {
        let mut t = Vec::new();
        if has_study {
            t.push(DeliveryTarget::Local);
            if self.dicomweb.is_some() {
                t.push(DeliveryTarget::Dicomweb);
            }
        }
        if self.fhir.is_some() {
            t.push(DeliveryTarget::Fhir);
        }
        t
    }

    /// The delay before attempt `attempts + 1`.
    pub fn backoff_after(&self, attempts: i32) -> Duration {
        let exp = u32::try_from(attempts.saturating_sub(1).clamp(0, 16)).unwrap_or(16);
        self.backoff.saturating_mul(1 << exp).min(MAX_BACKOFF)
    }
}
