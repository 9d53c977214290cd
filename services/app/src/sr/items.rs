//! SR content items (PS3.3 §C.17.3, the SR Document Content Module) and the
//! coded concepts the report uses, built as dicom-rs data sets.
//!
//! Codes come from DICOM (`DCM`, PS3.16 Annex D), SNOMED CT (`SCT`), UMLS,
//! UCUM and RFC 5646, and, where no standard code fits (the fusion-specific
//! quantities and the CheXpert labels), from the local scheme
//! [`LOCAL_SCHEME`], declared in the Coding Scheme Identification Sequence
//! (0008,0110) as PS3.16 §8.2 requires of a private scheme.

use dicom_core::value::DataSetSequence;
use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::tags;
use dicom_object::InMemDicomObject;

/// The local coding scheme designator ("99" prefix: private, PS3.16 §8.2).
pub const LOCAL_SCHEME: &str = "99FUSION";

/// A coded concept: (CodeValue, CodingSchemeDesignator, CodeMeaning).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Code {
    /// Code Value (0008,0100), at most 16 characters (SH).
    pub value: &'static str,
    /// Coding Scheme Designator (0008,0102).
    pub scheme: &'static str,
    /// Code Meaning (0008,0104).
    pub meaning: &'static str,
}

const fn code(value: &'static str, scheme: &'static str, meaning: &'static str) -> Code {
    Code {
        value,
        scheme,
        meaning,
    }
}

const fn local(value: &'static str, meaning: &'static str) -> Code {
    code(value, LOCAL_SCHEME, meaning)
}

// TID 1500 and the templates it includes (PS3.16).
/// TID 1500 root concept.
pub const IMAGING_MEASUREMENT_REPORT: Code = code("126000", "DCM", "Imaging Measurement Report");
/// TID 1204 Language of Content Item and Descendants.
pub const LANGUAGE: Code = code("121049", "DCM", "Language of Content Item and Descendants");
/// English (RFC 5646).
pub const ENGLISH: Code = code("en", "RFC5646", "English");
/// TID 1002 Observer Type.
pub const OBSERVER_TYPE: Code = code("121005", "DCM", "Observer Type");
/// Observer type Device.
pub const DEVICE: Code = code("121007", "DCM", "Device");
/// TID 1004 Device Observer UID.
pub const DEVICE_OBSERVER_UID: Code = code("121012", "DCM", "Device Observer UID");
/// TID 1004 Device Observer Name.
pub const DEVICE_OBSERVER_NAME: Code = code("121013", "DCM", "Device Observer Name");
/// TID 1004 Device Observer Manufacturer.
pub const DEVICE_OBSERVER_MANUFACTURER: Code =
    code("121014", "DCM", "Device Observer Manufacturer");
/// TID 1500 Procedure reported.
pub const PROCEDURE_REPORTED: Code = code("121058", "DCM", "Procedure reported");
/// The procedure: a radiographic imaging procedure (SNOMED CT).
pub const RADIOGRAPHIC_PROCEDURE: Code = code("363680008", "SCT", "Radiographic imaging procedure");
/// TID 1600 Image Library.
pub const IMAGE_LIBRARY: Code = code("111028", "DCM", "Image Library");
/// TID 1600 Image Library Group.
pub const IMAGE_LIBRARY_GROUP: Code = code("126200", "DCM", "Image Library Group");
/// TID 1500 Imaging Measurements.
pub const IMAGING_MEASUREMENTS: Code = code("126010", "DCM", "Imaging Measurements");
/// TID 1501 Measurement Group.
pub const MEASUREMENT_GROUP: Code = code("125007", "DCM", "Measurement Group");
/// TID 4108 Tracking Identifier.
pub const TRACKING_IDENTIFIER: Code = code("112039", "DCM", "Tracking Identifier");
/// TID 4108 Tracking Unique Identifier.
pub const TRACKING_UID: Code = code("112040", "DCM", "Tracking Unique Identifier");
/// TID 1501 Finding.
pub const FINDING: Code = code("121071", "DCM", "Finding");
/// TID 1500 Qualitative Evaluations.
pub const QUALITATIVE_EVALUATIONS: Code = code("C0034375", "UMLS", "Qualitative Evaluations");
/// Summary (the text any viewer shows).
pub const SUMMARY: Code = code("121111", "DCM", "Summary");
/// TID 4019 Algorithm Name.
pub const ALGORITHM_NAME: Code = code("111001", "DCM", "Algorithm Name");
/// TID 4019 Algorithm Version.
pub const ALGORITHM_VERSION: Code = code("111003", "DCM", "Algorithm Version");
/// TID 4019 Algorithm Parameters.
pub const ALGORITHM_PARAMETERS: Code = code("111002", "DCM", "Algorithm Parameters");
/// CID 230 Yes.
pub const YES: Code = code("373066001", "SCT", "Yes");
/// CID 230 No.
pub const NO: Code = code("373067005", "SCT", "No");
/// UCUM unity: a probability or a mass of belief has no unit.
pub const NO_UNITS: Code = code("1", "UCUM", "no units");

// Local concepts: the fusion quantities (DESIGN.md "Fusion math").
/// P = b + a·u of the fused opinion.
pub const PROBABILITY: Code = local("PROB", "Fused probability of presence");
/// Belief mass b.
pub const BELIEF: Code = local("BELIEF", "Belief mass");
/// Disbelief mass d.
pub const DISBELIEF: Code = local("DISBELIEF", "Disbelief mass");
/// Uncertainty mass u.
pub const UNCERTAINTY: Code = local("UNCERTAINTY", "Uncertainty mass");
/// Base rate a.
pub const BASE_RATE: Code = local("BASERATE", "Base rate");
/// Conflict C between the modalities.
pub const CONFLICT: Code = local("CONFLICT", "Conflict between modalities");
/// A class in the split-conformal prediction set.
pub const CONFORMAL_SET: Code = local("CONFORMALSET", "Conformal prediction set");
/// Class "present".
pub const PRESENT: Code = local("PRESENT", "Present");
/// Class "absent".
pub const ABSENT: Code = local("ABSENT", "Absent");
/// Amended to "uncertain".
pub const UNCERTAIN: Code = local("UNCERTAIN", "Uncertain");
/// Whether the result is withheld.
pub const ABSTENTION: Code = local("ABSTENTION", "Abstention");
/// Why it is withheld.
pub const ABSTENTION_REASON: Code = local("ABSTENTIONWHY", "Abstention reason");
/// What the image branch contributed.
pub const IMAGE_CONTRIBUTION: Code = local("IMAGECONTRIB", "Image modality contribution");
/// What the text branch contributed.
pub const TEXT_CONTRIBUTION: Code = local("TEXTCONTRIB", "Text modality contribution");
/// The branch ran but has no model for this observation.
pub const NO_OPINION: Code = local("NOOPINION", "No opinion on this observation");
/// A branch's own probability.
pub const IMAGE_PROBABILITY: Code = local("IMAGEPROB", "Image branch probability");
/// A branch's own probability.
pub const TEXT_PROBABILITY: Code = local("TEXTPROB", "Text branch probability");
/// Why a branch was not used or was discounted.
pub const REASON: Code = local("REASON", "Reason");
/// A model package (TID 4019 inside).
pub const MODEL_PACKAGE: Code = local("MODELPACKAGE", "Model package");
/// SHA-256 of the package's manifest.
pub const MANIFEST_SHA256: Code = local("MANIFESTSHA256", "Manifest SHA-256");
/// The clinician's decision on one observation.
pub const REVIEW_DECISION: Code = local("REVIEWDECISION", "Clinician review decision");
/// The value a clinician amended the observation to.
pub const AMENDED_VALUE: Code = local("AMENDEDVALUE", "Amended value");
/// The clinician's comment.
pub const REVIEW_COMMENT: Code = local("REVIEWCOMMENT", "Clinician review comment");
/// Decision: the result stands.
pub const ACCEPT: Code = local("ACCEPT", "Accepted");
/// Decision: the result is wrong.
pub const REJECT: Code = local("REJECT", "Rejected");
/// Decision: the result is replaced.
pub const AMEND: Code = local("AMEND", "Amended");

/// The branch statuses as codes (`fusion_models::BranchStatus`).
pub fn branch_status(status: fusion_models::BranchStatus) -> Code {
    use fusion_models::BranchStatus as S;
    match status {
        S::Used => local("USED", "Used"),
        S::Discounted => local("DISCOUNTED", "Used, trust-discounted"),
        S::Missing => local("MISSING", "Missing"),
        S::Unusable => local("UNUSABLE", "Unusable"),
        S::NotApplicable => local("NOTAPPLICABLE", "Not applicable"),
        S::NoPackage => local("NOPACKAGE", "No model package"),
    }
}

/// The CheXpert observation as a local code (value at most 16 characters).
pub fn observation(o: fusion_schemas::Observation) -> Code {
    use fusion_schemas::Observation as O;
    let value = match o {
        O::NoFinding => "NOFINDING",
        O::EnlargedCardiomediastinum => "ENLCARDIOMED",
        O::Cardiomegaly => "CARDIOMEGALY",
        O::LungLesion => "LUNGLESION",
        O::LungOpacity => "LUNGOPACITY",
        O::Edema => "EDEMA",
        O::Consolidation => "CONSOLIDATION",
        O::Pneumonia => "PNEUMONIA",
        O::Atelectasis => "ATELECTASIS",
        O::Pneumothorax => "PNEUMOTHORAX",
        O::PleuralEffusion => "PLEURALEFFUSION",
        O::PleuralOther => "PLEURALOTHER",
        O::Fracture => "FRACTURE",
        O::SupportDevices => "SUPPORTDEVICES",
    };
    local(value, o.display_name())
}

/// A Code Sequence item (PS3.3 Table 8.8-1, basic coded entry attributes).
pub fn code_item(c: Code) -> InMemDicomObject {
    InMemDicomObject::from_element_iter([
        DataElement::new(tags::CODE_VALUE, VR::SH, PrimitiveValue::from(c.value)),
        DataElement::new(
            tags::CODING_SCHEME_DESIGNATOR,
            VR::SH,
            PrimitiveValue::from(c.scheme),
        ),
        DataElement::new(tags::CODE_MEANING, VR::LO, PrimitiveValue::from(c.meaning)),
    ])
}

/// A sequence element.
pub fn sequence(
    tag: dicom_core::Tag,
    items: Vec<InMemDicomObject>,
) -> DataElement<InMemDicomObject> {
    DataElement::new(tag, VR::SQ, DataSetSequence::from(items))
}

/// A text element.
pub fn text(tag: dicom_core::Tag, vr: VR, value: &str) -> DataElement<InMemDicomObject> {
    if value.is_empty() {
        DataElement::new(tag, vr, PrimitiveValue::Empty)
    } else {
        DataElement::new(tag, vr, PrimitiveValue::from(value))
    }
}

/// The relationship between a content item and its parent (PS3.3
/// §C.17.3.2.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rel {
    /// CONTAINS.
    Contains,
    /// HAS OBS CONTEXT.
    HasObsContext,
    /// HAS CONCEPT MOD.
    HasConceptMod,
    /// HAS PROPERTIES.
    HasProperties,
}

impl Rel {
    fn as_str(self) -> &'static str {
        match self {
            Self::Contains => "CONTAINS",
            Self::HasObsContext => "HAS OBS CONTEXT",
            Self::HasConceptMod => "HAS CONCEPT MOD",
            Self::HasProperties => "HAS PROPERTIES",
        }
    }
}

fn base(rel: Rel, value_type: &str, concept: Code) -> InMemDicomObject {
    InMemDicomObject::from_element_iter([
        DataElement::new(
            tags::RELATIONSHIP_TYPE,
            VR::CS,
            PrimitiveValue::from(rel.as_str()),
        ),
        DataElement::new(tags::VALUE_TYPE, VR::CS, PrimitiveValue::from(value_type)),
        sequence(tags::CONCEPT_NAME_CODE_SEQUENCE, vec![code_item(concept)]),
    ])
}

/// Adds `children` as the item's Content Sequence (none: nothing added).
pub fn with_children(
    mut item: InMemDicomObject,
    children: Vec<InMemDicomObject>,
) -> InMemDicomObject {
    if !children.is_empty() {
        item.put(sequence(tags::CONTENT_SEQUENCE, children));
    }
    item
}

/// A CONTAINER item (continuity SEPARATE) holding `children`.
pub fn container(rel: Rel, concept: Code, children: Vec<InMemDicomObject>) -> InMemDicomObject {
    let mut item = base(rel, "CONTAINER", concept);
    item.put(DataElement::new(
        tags::CONTINUITY_OF_CONTENT,
        VR::CS,
        PrimitiveValue::from("SEPARATE"),
    ));
    with_children(item, children)
}

/// A TEXT item (Text Value is UT: no length limit).
pub fn text_item(rel: Rel, concept: Code, value: &str) -> InMemDicomObject {
    let mut item = base(rel, "TEXT", concept);
    item.put(DataElement::new(
        tags::TEXT_VALUE,
        VR::UT,
        PrimitiveValue::from(value),
    ));
    item
}

/// A CODE item.
pub fn coded_item(rel: Rel, concept: Code, value: Code) -> InMemDicomObject {
    let mut item = base(rel, "CODE", concept);
    item.put(sequence(
        tags::CONCEPT_CODE_SEQUENCE,
        vec![code_item(value)],
    ));
    item
}

/// A UIDREF item.
pub fn uidref_item(rel: Rel, concept: Code, uid: &str) -> InMemDicomObject {
    let mut item = base(rel, "UIDREF", concept);
    item.put(DataElement::new(
        tags::UID,
        VR::UI,
        PrimitiveValue::from(uid),
    ));
    item
}

/// A NUM item with a dimensionless value in [0, 1] (Numeric Value is DS:
/// at most 16 characters, so six decimals).
pub fn num_item(rel: Rel, concept: Code, value: f64) -> InMemDicomObject {
    let mut item = base(rel, "NUM", concept);
    let measured = InMemDicomObject::from_element_iter([
        DataElement::new(
            tags::NUMERIC_VALUE,
            VR::DS,
            PrimitiveValue::from(format_ds(value)),
        ),
        sequence(
            tags::MEASUREMENT_UNITS_CODE_SEQUENCE,
            vec![code_item(NO_UNITS)],
        ),
    ]);
    item.put(sequence(tags::MEASURED_VALUE_SEQUENCE, vec![measured]));
    item
}

/// An IMAGE item referencing one instance.
pub fn image_item(rel: Rel, sop_class: &str, sop_instance: &str) -> InMemDicomObject {
    InMemDicomObject::from_element_iter([
        DataElement::new(
            tags::RELATIONSHIP_TYPE,
            VR::CS,
            PrimitiveValue::from(rel.as_str()),
        ),
        DataElement::new(tags::VALUE_TYPE, VR::CS, PrimitiveValue::from("IMAGE")),
        sequence(
            tags::REFERENCED_SOP_SEQUENCE,
            vec![InMemDicomObject::from_element_iter([
                DataElement::new(
                    tags::REFERENCED_SOP_CLASS_UID,
                    VR::UI,
                    PrimitiveValue::from(sop_class),
                ),
                DataElement::new(
                    tags::REFERENCED_SOP_INSTANCE_UID,
                    VR::UI,
                    PrimitiveValue::from(sop_instance),
                ),
            ])],
        ),
    ])
}

/// A value in [0, 1] (or any finite number) as a DS string of at most 16
/// characters: six decimals, a NaN or infinity written as 0.
pub fn format_ds(value: f64) -> String {
    if !value.is_finite() {
        return "0".to_owned();
    }
    let s = format!("{value:.6}");
    if s.len() <= 16 {
        s
    } else {
        format!("{value:.6e}")
    }
}
