//! The header attributes a model's applicability gate reads
//! ([`GateAttributes`]), and the Manufacturer the drift monitor groups by,
//! from a parsed object. Values are text as stored, trailing spaces and NULs
//! trimmed (PS3.5 §6.2 pads to even length); an absent or empty attribute is
//! `None`. Reading never fails: a malformed value reads as absent.

use dicom_core::Tag;
use dicom_dictionary_std::tags;
use dicom_object::DefaultDicomObject;
use fusion_schemas::GateAttributes;

/// The text of `tag` as stored, trailing and leading spaces and NULs
/// trimmed (PS3.5 §6.2 pads values to even length); `None` when absent or
/// not text. An empty value reads as `Some("")`.
pub fn element_text(object: &DefaultDicomObject, tag: Tag) -> Option<String> {
    object
        .element_opt(tag)
        .ok()
        .flatten()
        .and_then(|e| e.to_str().ok())
        .map(|s| {
            s.trim_matches(|c: char| c == '\0' || c.is_whitespace())
                .to_owned()
        })
}

/// [`element_text`], with an empty value read as absent.
fn text(object: &DefaultDicomObject, tag: Tag) -> Option<String> {
    element_text(object, tag).filter(|s| !s.is_empty())
}

/// The header attributes the applicability gate reads: Modality (0008,0060),
/// Body Part Examined (0018,0015), View Position (0018,5101), Photometric
/// Interpretation (0028,0004), Patient's Age (0010,1010), Patient's Birth
/// Date (0010,0030), Study Date (0008,0020) and Bits Stored (0028,0101).
pub fn gate_attributes(object: &DefaultDicomObject) -> GateAttributes {
    GateAttributes {
        modality: text(object, tags::MODALITY),
        body_part_examined: text(object, tags::BODY_PART_EXAMINED),
        view_position: text(object, tags::VIEW_POSITION),
        photometric_interpretation: text(object, tags::PHOTOMETRIC_INTERPRETATION),
        patient_age: text(object, tags::PATIENT_AGE),
        patient_birth_date: text(object, tags::PATIENT_BIRTH_DATE),
        study_date: text(object, tags::STUDY_DATE),
        bits_stored: object
            .element_opt(tags::BITS_STORED)
            .ok()
            .flatten()
            .and_then(|e| e.to_int::<u16>().ok()),
    }
}

/// Manufacturer (0008,0070), trimmed (kept empty when recorded empty, as the
/// drift monitor has always grouped it); `None` when absent.
pub fn manufacturer(object: &DefaultDicomObject) -> Option<String> {
    element_text(object, tags::MANUFACTURER)
}
