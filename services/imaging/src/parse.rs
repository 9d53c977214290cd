//! Parsing DICOM bytes into a validated instance.
//!
//! Accepts the PS3.10 file format (§7.1: 128-byte preamble, "DICM", File Meta
//! Information group 0002, data set), the same without the preamble, and, as a
//! lenient extra, a bare data set without file meta: its encoding is guessed
//! from the first element (implicit VR little endian, explicit VR little or
//! big endian; PS3.5 §7.1). STOW-RS itself requires PS3.10 format
//! (PS3.18 §10.5.1); [`DicomInstance::has_file_meta`] tells the caller which it got.
//!
//! Validation follows what a Storage SCP needs before it can file an instance
//! (PS3.4 §B.2.3): SOP Class UID (0008,0016), SOP Instance UID (0008,0018),
//! Study Instance UID (0020,000D) and Series Instance UID (0020,000E) present
//! and well formed (PS3.5 §9.1), and a transfer syntax this service knows
//! (PS3.5 §10 and Annex A).
//!
//! Reading is bounded (the `bounds` module): a declared length longer than
//! the bytes left is refused before anything is allocated for it
//! ([`ParseError::DeclaredLength`]), and parsing takes at most
//! [`PARSE_MEMORY_FACTOR`] × the data set + 1 MiB of memory.

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_encoding::transfer_syntax::{Codec, TransferSyntax, TransferSyntaxIndex};
use dicom_object::{DefaultDicomObject, FileMetaTable, FileMetaTableBuilder, InMemDicomObject};
use dicom_transfer_syntax_registry::{TransferSyntaxRegistry, entries};
use fusion_schemas::{
    IdError, SeriesInstanceUid, SopInstanceUid, StudyInstanceUid, TransferSyntaxUid,
};

use crate::bounds::{self, MAX_INFLATE_RATIO, MAX_SEQUENCE_DEPTH, PARSE_MEMORY_FACTOR, Refusal};
use crate::stow::FailureReason;

/// Why bytes could not be accepted as a DICOM instance. One variant per step;
/// messages name the step and attribute, never a value.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    /// Fewer bytes than the smallest data element (8 bytes).
    #[error("the body is too short to be DICOM ({len} bytes)")]
    TooShort {
        /// Number of bytes received.
        len: usize,
    },
    /// The File Meta Information (PS3.10 §7.1) could not be read, e.g. a
    /// required element such as Transfer Syntax UID (0002,0010) is missing.
    #[error("cannot read the DICOM file meta information (PS3.10 §7.1)")]
    FileMeta(#[source] dicom_object::meta::Error),
    /// The Transfer Syntax UID in the file meta is not a valid UID.
    #[error("the Transfer Syntax UID (0002,0010) is not a valid UID")]
    InvalidTransferSyntax(#[source] IdError),
    /// The transfer syntax is not one this service can read (PS3.5 Annex A).
    #[error("transfer syntax {uid} is not supported")]
    UnsupportedTransferSyntax {
        /// The transfer syntax UID (a public identifier, not PHI).
        uid: String,
    },
    /// A data set without file meta whose encoding could not be recognised.
    #[error("no DICOM file meta information and the data set encoding is not recognisable")]
    UnrecognisedEncoding,
    /// The data set could not be decoded in its transfer syntax.
    #[error("cannot read the DICOM data set")]
    DataSet(#[source] dicom_object::ReadError),
    /// A required attribute is missing or empty.
    #[error("required attribute {name} {tag} is missing")]
    MissingAttribute {
        /// Attribute keyword, e.g. "SOPInstanceUID".
        name: &'static str,
        /// Tag as "(gggg,eeee)".
        tag: &'static str,
    },
    /// A required UID attribute is present but not a valid UID (PS3.5 §9.1).
    #[error("attribute {name} {tag} is not a valid UID")]
    InvalidUid {
        /// Attribute keyword.
        name: &'static str,
        /// Tag as "(gggg,eeee)".
        tag: &'static str,
        /// The rule the value breaks.
        #[source]
        source: IdError,
    },
    /// An element or item declares a value longer than the bytes that
    /// follow its header in the part (checked before anything is
    /// allocated for it).
    #[error(
        "element {tag} declares a {declared} byte value but only {available} bytes follow its header"
    )]
    DeclaredLength {
        /// The element as "(gggg,eeee)"; (FFFE,E000) for a sequence item or
        /// pixel data fragment.
        tag: String,
        /// The declared value length, bytes.
        declared: u64,
        /// Bytes left in the part after the header.
        available: u64,
    },
    /// The data set holds so many elements, items or values for its size
    /// that parsing it would take more than [`PARSE_MEMORY_FACTOR`] times
    /// its size in memory (plus 1 MiB).
    #[error(
        "the data set holds too many elements or values for its size: parsing it would take over {budget} bytes of memory ({factor} × its size + 1 MiB)"
    )]
    OverMemoryBudget {
        /// The budget, bytes.
        budget: u64,
        /// The multiple of the data set's size it is made of.
        factor: u64,
    },
    /// Sequences nest deeper than [`MAX_SEQUENCE_DEPTH`] levels.
    #[error("sequences nest deeper than {limit} levels")]
    NestedTooDeep {
        /// The limit, levels.
        limit: usize,
    },
    /// A deflated data set inflates past [`MAX_INFLATE_RATIO`] times its size.
    #[error("the deflated data set inflates past {limit} bytes ({ratio} × its size)")]
    InflatesTooFar {
        /// The limit, bytes.
        limit: u64,
        /// The ratio the limit is made of.
        ratio: usize,
    },
    /// A deflated data set is not a valid DEFLATE stream (RFC 1951).
    #[error("cannot inflate the deflated data set")]
    Inflate(#[source] std::io::Error),
    /// A bare data set (no file meta) could not be given a file meta table.
    #[error("cannot build file meta information for a data set without one")]
    BuildMeta(#[source] dicom_object::WithMetaError),
}

impl ParseError {
    /// The STOW-RS Failure Reason (0008,1197) for this error
    /// (PS3.18 Table I.2-2).
    pub fn failure_reason(&self) -> FailureReason {
        match self {
            Self::UnsupportedTransferSyntax { .. } => FailureReason::TransferSyntaxNotSupported,
            Self::MissingAttribute { .. } | Self::InvalidUid { .. } => {
                FailureReason::DataSetDoesNotMatchSopClass
            }
            Self::TooShort { .. }
            | Self::FileMeta(_)
            | Self::InvalidTransferSyntax(_)
            | Self::UnrecognisedEncoding
            | Self::DataSet(_)
            | Self::DeclaredLength { .. }
            | Self::NestedTooDeep { .. }
            | Self::OverMemoryBudget { .. }
            | Self::InflatesTooFar { .. }
            | Self::Inflate(_)
            | Self::BuildMeta(_) => FailureReason::CannotUnderstand,
        }
    }
}

impl From<Refusal> for ParseError {
    fn from(refusal: Refusal) -> Self {
        match refusal {
            Refusal::DeclaredLength {
                tag,
                declared,
                available,
            } => Self::DeclaredLength {
                tag: tag.to_string(),
                declared: u64::from(declared),
                available,
            },
            Refusal::OverBudget { budget } => Self::OverMemoryBudget {
                budget,
                factor: PARSE_MEMORY_FACTOR,
            },
            Refusal::TooDeep => Self::NestedTooDeep {
                limit: MAX_SEQUENCE_DEPTH,
            },
            Refusal::Inflated { limit } => Self::InflatesTooFar {
                limit,
                ratio: MAX_INFLATE_RATIO,
            },
        }
    }
}

/// A parsed, validated DICOM instance: the whole data set in memory (pixel
/// data included) and its identifying UIDs.
#[derive(Debug)]
pub struct DicomInstance {
    object: DefaultDicomObject,
    study_instance_uid: StudyInstanceUid,
    series_instance_uid: SeriesInstanceUid,
    sop_instance_uid: SopInstanceUid,
    sop_class_uid: String,
    transfer_syntax_uid: TransferSyntaxUid,
    has_file_meta: bool,
}

impl DicomInstance {
    /// Study Instance UID (0020,000D).
    pub fn study_instance_uid(&self) -> &StudyInstanceUid {
        &self.study_instance_uid
    }

    /// Series Instance UID (0020,000E).
    pub fn series_instance_uid(&self) -> &SeriesInstanceUid {
        &self.series_instance_uid
    }

    /// SOP Instance UID (0008,0018).
    pub fn sop_instance_uid(&self) -> &SopInstanceUid {
        &self.sop_instance_uid
    }

    /// SOP Class UID (0008,0016), validated as a UID (PS3.5 §9.1).
    pub fn sop_class_uid(&self) -> &str {
        &self.sop_class_uid
    }

    /// Transfer Syntax UID (0002,0010) of the data set; for a data set read
    /// without file meta, the encoding that was guessed.
    pub fn transfer_syntax_uid(&self) -> &TransferSyntaxUid {
        &self.transfer_syntax_uid
    }

    /// Whether the bytes carried File Meta Information (PS3.10 §7.1), as
    /// STOW-RS requires (PS3.18 §10.5.1).
    pub fn has_file_meta(&self) -> bool {
        self.has_file_meta
    }

    /// The dicom-rs object, for callers that need an attribute this crate
    /// does not extract.
    pub fn object(&self) -> &DefaultDicomObject {
        &self.object
    }
}

/// Parses DICOM bytes (PS3.10 file, with or without the 128-byte preamble, or
/// a bare data set) and validates the identifying attributes.
///
/// # Errors
///
/// A [`ParseError`] naming the step that failed; [`ParseError::failure_reason`]
/// maps it to the STOW-RS Failure Reason.
pub fn parse(bytes: &[u8]) -> Result<DicomInstance, ParseError> {
    let (object, has_file_meta) = read_object(bytes)?;
    validate(object, has_file_meta)
}

/// Reads DICOM bytes like [`parse`] but without validating the identifying
/// attributes: for tools that inspect files a PACS would refuse (pixel
/// decoding and rendering take the object this returns).
///
/// # Errors
///
/// [`ParseError`] for the reading steps (too short, file meta, transfer
/// syntax, data set).
pub fn read(bytes: &[u8]) -> Result<DefaultDicomObject, ParseError> {
    read_object(bytes).map(|(object, _)| object)
}

/// The SOP Class UID (0008,0016) and SOP Instance UID (0008,0018) of bytes
/// that [`parse`] refused, where they can still be read, for the Failed
/// SOP Sequence of a STOW-RS response (PS3.18 §10.5.3, Table 10.5.3-2:
/// ReferencedSOPClassUID and ReferencedSOPInstanceUID): from the data set
/// when it reads, otherwise from the File Meta Information's Media Storage
/// SOP Class and Instance UIDs (0002,0002), (0002,0003) (PS3.10 §7.1).
/// Each is `None` when absent or not a valid UID (PS3.5 §9.1), so that
/// nothing but a UID is echoed back. Reading is bounded as in [`parse`].
pub fn sop_uids(bytes: &[u8]) -> (Option<String>, Option<String>) {
    let valid = |uid: String| {
        SopInstanceUid::parse(&uid)
            .ok()
            .map(|u| u.as_str().to_owned())
    };
    if let Ok((object, _)) = read_object(bytes) {
        let class = object.get(tags::SOP_CLASS_UID).and_then(uid_text);
        let instance = object.get(tags::SOP_INSTANCE_UID).and_then(uid_text);
        let meta = object.meta();
        let class = class.and_then(valid).or_else(|| {
            valid(
                meta.media_storage_sop_class_uid()
                    .trim_end_matches(['\0', ' '])
                    .to_owned(),
            )
        });
        let instance = instance.and_then(valid).or_else(|| {
            valid(
                meta.media_storage_sop_instance_uid()
                    .trim_end_matches(['\0', ' '])
                    .to_owned(),
            )
        });
        return (class, instance);
    }
    let meta_at = if bytes.len() >= 132 && &bytes[128..132] == b"DICM" {
        128
    } else if bytes.len() >= 4 && &bytes[0..4] == b"DICM" {
        0
    } else {
        return (None, None);
    };
    let bytes = &bytes[meta_at..];
    if bounds::check_file_meta(bytes).is_err() {
        return (None, None);
    }
    match FileMetaTable::from_reader(bytes) {
        Ok(meta) => (
            valid(
                meta.media_storage_sop_class_uid()
                    .trim_end_matches(['\0', ' '])
                    .to_owned(),
            ),
            valid(
                meta.media_storage_sop_instance_uid()
                    .trim_end_matches(['\0', ' '])
                    .to_owned(),
            ),
        ),
        Err(_) => (None, None),
    }
}

fn read_object(bytes: &[u8]) -> Result<(DefaultDicomObject, bool), ParseError> {
    if bytes.len() < 8 {
        return Err(ParseError::TooShort { len: bytes.len() });
    }
    let meta_at = if bytes.len() >= 132 && &bytes[128..132] == b"DICM" {
        Some(128)
    } else if &bytes[0..4] == b"DICM" {
        Some(0)
    } else {
        None
    };
    Ok(match meta_at {
        Some(offset) => (read_with_meta(&bytes[offset..])?, true),
        None => (read_without_meta(bytes)?, false),
    })
}

/// Reads "DICM", the File Meta Information and the data set it describes.
fn read_with_meta(bytes: &[u8]) -> Result<DefaultDicomObject, ParseError> {
    // Walk the meta group's lengths before dicom-rs sizes buffers by them.
    let data_set_at = bounds::check_file_meta(bytes).map_err(ParseError::from)?;
    // Read the meta group first, so that an unknown transfer syntax is told
    // apart from a damaged data set.
    let mut meta = FileMetaTable::from_reader(bytes).map_err(ParseError::FileMeta)?;
    let ts = known_transfer_syntax(meta.transfer_syntax())?;
    let dataset = read_data_set(&bytes[data_set_at..], ts)?;
    // As dicom-rs' own file reader does: an empty Media Storage SOP Class or
    // Instance UID in the meta group is taken from the data set.
    if meta.media_storage_sop_class_uid().is_empty()
        && let Some(uid) = dataset.get(tags::SOP_CLASS_UID).and_then(uid_text)
    {
        meta.media_storage_sop_class_uid = uid;
    }
    if meta.media_storage_sop_instance_uid().is_empty()
        && let Some(uid) = dataset.get(tags::SOP_INSTANCE_UID).and_then(uid_text)
    {
        meta.media_storage_sop_instance_uid = uid;
    }
    Ok(dataset.with_exact_meta(meta))
}

/// Reads a data set in `ts` with every declared length bounded by the bytes
/// present ([`bounds`]); a deflated one is inflated first, to at most
/// [`bounds::MAX_INFLATE_RATIO`] times its size.
fn read_data_set(bytes: &[u8], ts: &TransferSyntax) -> Result<InMemDicomObject, ParseError> {
    let inflated;
    let bytes = match ts.codec() {
        Codec::Dataset(Some(adapter)) => {
            inflated = bounds::inflate(bytes, adapter.as_ref()).map_err(|e| match e {
                bounds::InflateError::TooLarge(refusal) => ParseError::from(refusal),
                bounds::InflateError::Stream(e) => ParseError::Inflate(e),
            })?;
            inflated.as_slice()
        }
        _ => bytes,
    };
    let refusal = bounds::RefusalCell::default();
    let decoder = bounds::Bounded::new(bytes, ts, refusal.clone()).map_err(|_| {
        ParseError::UnsupportedTransferSyntax {
            uid: ts.uid().to_owned(),
        }
    })?;
    InMemDicomObject::read_dataset(decoder).map_err(|e| match refusal.get() {
        Some(refusal) => ParseError::from(refusal),
        None => ParseError::DataSet(e),
    })
}

fn known_transfer_syntax(uid: &str) -> Result<&'static TransferSyntax, ParseError> {
    TransferSyntaxUid::parse(uid).map_err(ParseError::InvalidTransferSyntax)?;
    match TransferSyntaxRegistry.get(uid) {
        Some(ts) if !ts.is_unsupported() => Ok(ts),
        _ => Err(ParseError::UnsupportedTransferSyntax {
            uid: uid.trim_end_matches(['\0', ' ']).to_owned(),
        }),
    }
}

/// Guesses the encoding of a data set without file meta from its first
/// element header: a big endian group number puts its zero byte first, and an
/// explicit VR header has two upper-case letters after the tag (PS3.5 §7.1.2).
fn read_without_meta(bytes: &[u8]) -> Result<DefaultDicomObject, ParseError> {
    let big_endian = bytes[0] == 0 && bytes[1] != 0;
    let explicit = bytes[4].is_ascii_uppercase() && bytes[5].is_ascii_uppercase();
    let ts = match (big_endian, explicit) {
        (false, false) => entries::IMPLICIT_VR_LITTLE_ENDIAN.erased(),
        (false, true) => entries::EXPLICIT_VR_LITTLE_ENDIAN.erased(),
        (true, true) => entries::EXPLICIT_VR_BIG_ENDIAN.erased(),
        (true, false) => return Err(ParseError::UnrecognisedEncoding),
    };
    let dataset = read_data_set(bytes, &ts)?;
    // with_meta fills both SOP UIDs in from the data set; check them first
    // so that their absence gets its own error.
    let sop_class = required_uid(&dataset, tags::SOP_CLASS_UID, "SOPClassUID", "(0008,0016)")?;
    let sop_instance = required_uid(
        &dataset,
        tags::SOP_INSTANCE_UID,
        "SOPInstanceUID",
        "(0008,0018)",
    )?;
    dataset
        .with_meta(
            FileMetaTableBuilder::new()
                .transfer_syntax(ts.uid())
                .media_storage_sop_class_uid(sop_class)
                .media_storage_sop_instance_uid(sop_instance),
        )
        .map_err(ParseError::BuildMeta)
}

fn validate(object: DefaultDicomObject, has_file_meta: bool) -> Result<DicomInstance, ParseError> {
    let sop_class_uid = required_uid(&object, tags::SOP_CLASS_UID, "SOPClassUID", "(0008,0016)")?;
    // No SOP Class UID newtype in fusion-schemas: check the UID rules with the
    // SOP Instance UID parser, which applies the same PS3.5 §9.1 rules.
    let sop_class_uid = SopInstanceUid::parse(&sop_class_uid)
        .map_err(|source| ParseError::InvalidUid {
            name: "SOPClassUID",
            tag: "(0008,0016)",
            source,
        })?
        .as_str()
        .to_owned();
    let sop_instance_uid = parse_uid(
        &object,
        tags::SOP_INSTANCE_UID,
        "SOPInstanceUID",
        "(0008,0018)",
        SopInstanceUid::parse,
    )?;
    let study_instance_uid = parse_uid(
        &object,
        tags::STUDY_INSTANCE_UID,
        "StudyInstanceUID",
        "(0020,000D)",
        StudyInstanceUid::parse,
    )?;
    let series_instance_uid = parse_uid(
        &object,
        tags::SERIES_INSTANCE_UID,
        "SeriesInstanceUID",
        "(0020,000E)",
        SeriesInstanceUid::parse,
    )?;
    let ts = known_transfer_syntax(object.meta().transfer_syntax())?;
    let transfer_syntax_uid =
        TransferSyntaxUid::parse(ts.uid()).map_err(ParseError::InvalidTransferSyntax)?;
    Ok(DicomInstance {
        object,
        study_instance_uid,
        series_instance_uid,
        sop_instance_uid,
        sop_class_uid,
        transfer_syntax_uid,
        has_file_meta,
    })
}

fn required_uid(
    object: &InMemDicomObject,
    tag: Tag,
    name: &'static str,
    tag_text: &'static str,
) -> Result<String, ParseError> {
    let missing = || ParseError::MissingAttribute {
        name,
        tag: tag_text,
    };
    let value = object.get(tag).and_then(uid_text).ok_or_else(missing)?;
    if value.is_empty() {
        return Err(missing());
    }
    Ok(value)
}

/// The text of a UID element (VR UI, PS3.5 §9.1) without its trailing
/// padding (NUL, PS3.5 §6.2, or the space some writers use). An element
/// written as UN, as an implicit VR writer that did not know the tag, or a
/// converter that lost the VR, leaves (PS3.5 §6.2.2), holds the same bytes:
/// read as text too.
pub(crate) fn uid_text(element: &dicom_object::mem::InMemElement) -> Option<String> {
    let text = match (element.vr(), element.value()) {
        (dicom_core::VR::UN, dicom_core::value::Value::Primitive(p)) => {
            String::from_utf8(p.to_bytes().into_owned()).ok()?
        }
        _ => element.to_str().ok()?.into_owned(),
    };
    Some(text.trim_end_matches(['\0', ' ']).to_owned())
}

fn parse_uid<T>(
    object: &InMemDicomObject,
    tag: Tag,
    name: &'static str,
    tag_text: &'static str,
    parse: fn(&str) -> Result<T, IdError>,
) -> Result<T, ParseError> {
    let raw = required_uid(object, tag, name, tag_text)?;
    parse(&raw).map_err(|source| ParseError::InvalidUid {
        name,
        tag: tag_text,
        source,
    })
}
