//! STOW-RS (PS3.18 §10.5): reading a `multipart/related;
//! type="application/dicom"` request body one part at a time, the failure and
//! warning reasons of PS3.18 Annex I.2, and the Store Instances Response as
//! DICOM JSON (PS3.18 §10.5.3 and Table 10.5.3-2).
//!
//! The reader is built on `multer` (RFC 2046 multipart), which copes with
//! quoted and unquoted parameters, boundaries longer than RFC 2046's 70
//! characters, a closing delimiter with or without a final CRLF, a chunked
//! body (any chunking of the byte stream) and parts without Content-Type.
//! A part with no header field at all is refused (see
//! [`StowError::PartWithoutHeaders`]).

use bytes::Bytes;
use futures::Stream;
use serde_json::{Map, Value as Json, json};

/// Default limit on a whole request body: 4 GiB.
pub const DEFAULT_MAX_TOTAL_BYTES: u64 = 4 << 30;
/// Default limit on one part (one DICOM instance): 2 GiB.
pub const DEFAULT_MAX_PART_BYTES: u64 = 2 << 30;

/// Size limits applied while reading a body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StowLimits {
    /// Most bytes in the whole body, delimiters and headers included.
    pub max_total_bytes: u64,
    /// Most bytes in one part's content.
    pub max_part_bytes: u64,
}

impl Default for StowLimits {
    fn default() -> Self {
        Self {
            max_total_bytes: DEFAULT_MAX_TOTAL_BYTES,
            max_part_bytes: DEFAULT_MAX_PART_BYTES,
        }
    }
}

/// Why a request body could not be read. Errors before the first part mean
/// a 415 or 400 for the whole request (PS3.18 §10.5.3); later ones end the
/// reading, with the parts already read still answered.
#[derive(Debug, thiserror::Error)]
pub enum StowError {
    /// The Content-Type is not `multipart/related`.
    #[error("the request is not multipart/related")]
    NotMultipartRelated,
    /// The `type` parameter names a media type other than application/dicom.
    #[error("multipart/related type {0} is not supported; only application/dicom is")]
    UnsupportedType(String),
    /// No `boundary` parameter.
    #[error("the multipart/related content type has no boundary")]
    NoBoundary,
    /// The body is longer than [`StowLimits::max_total_bytes`].
    #[error("the request body exceeds {limit} bytes")]
    BodyTooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// A part is longer than [`StowLimits::max_part_bytes`].
    #[error("a part exceeds {limit} bytes")]
    PartTooLarge {
        /// The limit, in bytes.
        limit: u64,
    },
    /// The body ended before the closing delimiter.
    #[error("the multipart body is truncated")]
    Truncated,
    /// Reading the underlying body stream failed.
    #[error("reading the request body failed: {}", innermost(.0))]
    Body(#[source] multer::Error),
    /// A part has no header fields at all. RFC 2046 allows it, but `multer`
    /// then takes the part's content and the next delimiter for headers, so
    /// reading stops rather than lose or merge instances. STOW-RS clients
    /// send Content-Type on every part (PS3.18 §10.5.1.2).
    #[error("part {index} has no header fields")]
    PartWithoutHeaders {
        /// 0-based position of the part.
        index: usize,
    },
    /// The multipart structure is malformed (bad part headers).
    #[error("the multipart body is malformed")]
    Malformed(#[source] multer::Error),
}

/// The innermost cause of a body-reading error (multer's own message,
/// "failed to read stream", hides it): a client gone, or the idle timeout.
fn innermost(e: &multer::Error) -> String {
    let mut cause: &dyn std::error::Error = e;
    while let Some(next) = cause.source() {
        cause = next;
    }
    cause.to_string()
}

/// One part of the body: normally one DICOM PS3.10 instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StowPart {
    /// 0-based position of the part in the body.
    pub index: usize,
    /// The part's Content-Type header, if any (lower-cased essence, without
    /// parameters). Absent means the body's `type`, application/dicom.
    pub content_type: Option<String>,
    /// The part's content.
    pub data: Bytes,
}

impl StowPart {
    /// Whether the part claims to be application/dicom (explicitly, or by
    /// having no Content-Type).
    pub fn is_application_dicom(&self) -> bool {
        self.content_type
            .as_deref()
            .is_none_or(|t| t == "application/dicom")
    }
}

/// Reads a STOW-RS body part by part, holding one part in memory at a time.
pub struct StowReader<'r> {
    multipart: multer::Multipart<'r>,
    limits: StowLimits,
}

impl std::fmt::Debug for StowReader<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StowReader")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// The parameters of a Content-Type header (RFC 9110 §8.3.1): values quoted
/// (with backslash escapes) or bare tokens; names are case-insensitive.
fn media_type_params(content_type: &str) -> (String, Vec<(String, String)>) {
    let (essence, mut rest) = match content_type.split_once(';') {
        Some((e, r)) => (e, r),
        None => (content_type, ""),
    };
    let mut params = Vec::new();
    loop {
        rest = rest.trim_start_matches([' ', '\t', ';']);
        let Some((name, after)) = rest.split_once('=') else {
            break;
        };
        let name = name.trim().to_ascii_lowercase();
        let after = after.trim_start();
        let (value, next) = if let Some(quoted) = after.strip_prefix('"') {
            let mut value = String::new();
            let mut chars = quoted.char_indices();
            let mut end = quoted.len();
            while let Some((i, c)) = chars.next() {
                match c {
                    '\\' => {
                        if let Some((_, escaped)) = chars.next() {
                            value.push(escaped);
                        }
                    }
                    '"' => {
                        end = i + 1;
                        break;
                    }
                    c => value.push(c),
                }
            }
            (value, &quoted[end..])
        } else {
            let end = after.find(';').unwrap_or(after.len());
            (after[..end].trim().to_owned(), &after[end..])
        };
        params.push((name, value));
        rest = next;
    }
    (essence.trim().to_ascii_lowercase(), params)
}

impl<'r> StowReader<'r> {
    /// Starts reading `body` as described by the request's `content_type`.
    ///
    /// # Errors
    ///
    /// [`StowError::NotMultipartRelated`], [`StowError::UnsupportedType`] or
    /// [`StowError::NoBoundary`] when the Content-Type does not describe a
    /// STOW-RS body of DICOM instances.
    pub fn new<S, O, E>(content_type: &str, body: S, limits: StowLimits) -> Result<Self, StowError>
    where
        S: Stream<Item = Result<O, E>> + Send + 'r,
        O: Into<Bytes> + 'static,
        E: Into<Box<dyn std::error::Error + Send + Sync>> + 'r,
    {
        let (essence, params) = media_type_params(content_type);
        if essence != "multipart/related" {
            return Err(StowError::NotMultipartRelated);
        }
        let param = |name: &str| {
            params
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
        };
        if let Some(t) = param("type")
            && !t.eq_ignore_ascii_case("application/dicom")
        {
            return Err(StowError::UnsupportedType(t.to_owned()));
        }
        let boundary = param("boundary")
            .filter(|b| !b.is_empty())
            .ok_or(StowError::NoBoundary)?;
        let constraints = multer::Constraints::new().size_limit(
            multer::SizeLimit::new()
                .whole_stream(limits.max_total_bytes)
                .per_field(limits.max_part_bytes),
        );
        Ok(Self {
            multipart: multer::Multipart::with_constraints(body, boundary.to_owned(), constraints),
            limits,
        })
    }

    /// The next part, or `None` after the closing delimiter.
    ///
    /// # Errors
    ///
    /// [`StowError`]: a limit passed, a truncated or malformed body, or a
    /// failing body stream.
    pub async fn next_part(&mut self) -> Result<Option<StowPart>, StowError> {
        let limits = self.limits;
        let map = move |e: multer::Error| match e {
            multer::Error::FieldSizeExceeded { .. } => StowError::PartTooLarge {
                limit: limits.max_part_bytes,
            },
            multer::Error::StreamSizeExceeded { .. } => StowError::BodyTooLarge {
                limit: limits.max_total_bytes,
            },
            multer::Error::IncompleteStream
            | multer::Error::IncompleteFieldData { .. }
            | multer::Error::IncompleteHeaders => StowError::Truncated,
            e @ multer::Error::StreamReadFailed(_) => StowError::Body(e),
            e => StowError::Malformed(e),
        };
        let Some((index, field)) = self.multipart.next_field_with_idx().await.map_err(map)? else {
            return Ok(None);
        };
        if field.headers().is_empty() {
            return Err(StowError::PartWithoutHeaders { index });
        }
        let content_type = field
            .content_type()
            .map(|m| m.essence_str().to_ascii_lowercase());
        let data = field.bytes().await.map_err(map)?;
        Ok(Some(StowPart {
            index,
            content_type,
            data,
        }))
    }
}

/// Failure Reason (0008,1197) values of PS3.18 Table I.2-2 ("Store Instances
/// Response Failure Reason Values"), which take the C-STORE statuses of
/// PS3.4 Table B.2-1 and the general statuses of PS3.7 Annex C.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FailureReason {
    /// A7xx, Refused: Out of Resources.
    OutOfResources,
    /// A9xx, Error: Data Set does not match SOP Class.
    DataSetDoesNotMatchSopClass,
    /// Cxxx, Error: Cannot understand.
    CannotUnderstand,
    /// C122, Referenced Transfer Syntax not supported.
    TransferSyntaxNotSupported,
    /// 0110, Processing failure.
    ProcessingFailure,
    /// 0122, Referenced SOP Class not supported.
    SopClassNotSupported,
    /// 0111, Duplicate SOP Instance (PS3.7 §C.4.2): the SOP Instance UID is
    /// already stored with other bytes (DESIGN.md "Storage").
    DuplicateSopInstance,
    /// 0124, Refused: Not Authorized (PS3.4 Table B.2-1): the instance
    /// names a study another sender stored.
    NotAuthorized,
}

impl FailureReason {
    /// The status code sent in FailureReason (0008,1197), US.
    pub fn code(self) -> u16 {
        match self {
            Self::OutOfResources => 0xA700,
            Self::DataSetDoesNotMatchSopClass => 0xA900,
            Self::CannotUnderstand => 0xC000,
            Self::TransferSyntaxNotSupported => 0xC122,
            Self::ProcessingFailure => 0x0110,
            Self::SopClassNotSupported => 0x0122,
            Self::DuplicateSopInstance => 0x0111,
            Self::NotAuthorized => 0x0124,
        }
    }
}

/// Warning Reason (0008,1196) values of PS3.18 Table I.2-1 (the C-STORE
/// warnings of PS3.4 Table B.2-1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WarningReason {
    /// B000, Coercion of Data Elements.
    CoercionOfDataElements,
    /// B006, Elements Discarded.
    ElementsDiscarded,
    /// B007, Data Set does not match SOP Class.
    DataSetDoesNotMatchSopClass,
}

impl WarningReason {
    /// The status code sent in WarningReason (0008,1196), US.
    pub fn code(self) -> u16 {
        match self {
            Self::CoercionOfDataElements => 0xB000,
            Self::ElementsDiscarded => 0xB006,
            Self::DataSetDoesNotMatchSopClass => 0xB007,
        }
    }
}

/// Builds the Store Instances Response (PS3.18 §10.5.3, Table 10.5.3-2) as
/// DICOM JSON.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StowResponse {
    retrieve_url: Option<String>,
    referenced: Vec<Json>,
    failed: Vec<Json>,
    warned: bool,
}

fn ui(value: &str) -> Json {
    json!({"vr": "UI", "Value": [value]})
}

fn ur(value: &str) -> Json {
    json!({"vr": "UR", "Value": [value]})
}

fn us(value: u16) -> Json {
    json!({"vr": "US", "Value": [value]})
}

impl StowResponse {
    /// A response whose top-level RetrieveURL (0008,1190) is the study's
    /// WADO-RS URL, when the request named one study.
    pub fn new(study_retrieve_url: Option<String>) -> Self {
        Self {
            retrieve_url: study_retrieve_url,
            ..Self::default()
        }
    }

    /// Records a stored instance: a ReferencedSOPSequence (0008,1199) item with
    /// ReferencedSOPClassUID (0008,1150), ReferencedSOPInstanceUID (0008,1155),
    /// RetrieveURL (0008,1190) and, if any, WarningReason (0008,1196).
    pub fn stored(
        &mut self,
        sop_class_uid: &str,
        sop_instance_uid: &str,
        retrieve_url: &str,
        warning: Option<WarningReason>,
    ) {
        let mut item = Map::new();
        item.insert("00081150".into(), ui(sop_class_uid));
        item.insert("00081155".into(), ui(sop_instance_uid));
        item.insert("00081190".into(), ur(retrieve_url));
        if let Some(w) = warning {
            item.insert("00081196".into(), us(w.code()));
            self.warned = true;
        }
        self.referenced.push(Json::Object(item));
    }

    /// Records an instance that was not stored: a FailedSOPSequence
    /// (0008,1198) item with the two referenced UIDs when known and
    /// FailureReason (0008,1197).
    pub fn failed(
        &mut self,
        sop_class_uid: Option<&str>,
        sop_instance_uid: Option<&str>,
        reason: FailureReason,
    ) {
        let mut item = Map::new();
        if let Some(uid) = sop_class_uid {
            item.insert("00081150".into(), ui(uid));
        }
        if let Some(uid) = sop_instance_uid {
            item.insert("00081155".into(), ui(uid));
        }
        item.insert("00081197".into(), us(reason.code()));
        self.failed.push(Json::Object(item));
    }

    /// The HTTP status of PS3.18 §10.5.3: 200 when every instance was stored
    /// without warnings, 202 when some failed or carry warnings, 409 when none
    /// was stored (including an empty request).
    pub fn http_status(&self) -> u16 {
        match (self.referenced.is_empty(), self.failed.is_empty()) {
            (true, _) => 409,
            (false, true) if !self.warned => 200,
            _ => 202,
        }
    }

    /// The response body (`application/dicom+json`).
    pub fn to_json(&self) -> Json {
        let mut out = Map::new();
        if let Some(url) = &self.retrieve_url {
            out.insert("00081190".into(), ur(url));
        }
        if !self.failed.is_empty() {
            out.insert("00081198".into(), json!({"vr": "SQ", "Value": self.failed}));
        }
        if !self.referenced.is_empty() {
            out.insert(
                "00081199".into(),
                json!({"vr": "SQ", "Value": self.referenced}),
            );
        }
        Json::Object(out)
    }
}
