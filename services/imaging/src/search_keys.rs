//! The attributes QIDO-RS searches by (PS3.18 §10.6.1.2, Table 10.6.1-5 and
//! its series and instance tables) and the tags of `includefield` values
//! (§8.3.4.3), named by keyword or by tag. Keywords resolve through the
//! PS3.6 data dictionary of `dicom-dictionary-std`; tags are written as
//! eight upper-case hex digits, as DICOM JSON keys them (PS3.18 §F.2).

use dicom_core::Tag;
use dicom_core::dictionary::{DataDictionary as _, DataDictionaryEntry as _};
use dicom_dictionary_std::StandardDataDictionary;
use dicom_dictionary_std::tags;

/// Attributes QIDO-RS returns by default at study, series and instance level
/// (PS3.18 Tables 10.6.3-3, -4 and -5), plus Study Description and Body Part
/// Examined. Modalities in Study (0008,0061), the related counts and Retrieve
/// URL (0008,1190) are computed by the route from the index.
pub const QIDO_TAGS: &[Tag] = &[
    tags::SOP_CLASS_UID,
    tags::SOP_INSTANCE_UID,
    tags::STUDY_DATE,
    tags::STUDY_TIME,
    tags::ACCESSION_NUMBER,
    tags::INSTANCE_AVAILABILITY,
    tags::MODALITY,
    tags::REFERRING_PHYSICIAN_NAME,
    tags::TIMEZONE_OFFSET_FROM_UTC,
    tags::STUDY_DESCRIPTION,
    tags::SERIES_DESCRIPTION,
    tags::PATIENT_NAME,
    tags::PATIENT_ID,
    tags::PATIENT_BIRTH_DATE,
    tags::PATIENT_SEX,
    tags::BODY_PART_EXAMINED,
    tags::STUDY_INSTANCE_UID,
    tags::SERIES_INSTANCE_UID,
    tags::STUDY_ID,
    tags::SERIES_NUMBER,
    tags::INSTANCE_NUMBER,
    tags::NUMBER_OF_FRAMES,
    tags::ROWS,
    tags::COLUMNS,
    tags::BITS_ALLOCATED,
    tags::PERFORMED_PROCEDURE_STEP_START_DATE,
    tags::PERFORMED_PROCEDURE_STEP_START_TIME,
];

/// Default study result attributes (PS3.18 Table 10.6.3-3), from the index.
pub const STUDY_RESULT: &[Tag] = &[
    tags::SPECIFIC_CHARACTER_SET,
    tags::STUDY_DATE,
    tags::STUDY_TIME,
    tags::ACCESSION_NUMBER,
    tags::REFERRING_PHYSICIAN_NAME,
    tags::STUDY_DESCRIPTION,
    tags::PATIENT_NAME,
    tags::PATIENT_ID,
    tags::PATIENT_BIRTH_DATE,
    tags::PATIENT_SEX,
    tags::STUDY_INSTANCE_UID,
    tags::STUDY_ID,
];

/// The Patient and Study attributes a study result may carry (PS3.18
/// §10.6.3.3, Table 10.6.3-3, from the Patient and General Study modules of
/// PS3.3 §C.7.1.1 and §C.7.2.1, and the Timezone Offset From UTC of the SOP
/// Common module that the standard lists at every level), as far as the
/// index holds them; `includefield=all` returns these plus the computed
/// ModalitiesInStudy, NumberOfStudyRelatedSeries, NumberOfStudyRelatedInstances
/// and RetrieveURL.
pub const STUDY_LEVEL: &[Tag] = &[
    tags::SPECIFIC_CHARACTER_SET,
    tags::STUDY_DATE,
    tags::STUDY_TIME,
    tags::ACCESSION_NUMBER,
    tags::INSTANCE_AVAILABILITY,
    tags::REFERRING_PHYSICIAN_NAME,
    tags::TIMEZONE_OFFSET_FROM_UTC,
    tags::STUDY_DESCRIPTION,
    tags::PATIENT_NAME,
    tags::PATIENT_ID,
    tags::PATIENT_BIRTH_DATE,
    tags::PATIENT_SEX,
    tags::STUDY_INSTANCE_UID,
    tags::STUDY_ID,
];

/// Default series result attributes (PS3.18 Table 10.6.3-4).
pub const SERIES_RESULT: &[Tag] = &[
    tags::SPECIFIC_CHARACTER_SET,
    tags::MODALITY,
    tags::SERIES_DESCRIPTION,
    tags::STUDY_INSTANCE_UID,
    tags::SERIES_INSTANCE_UID,
    tags::SERIES_NUMBER,
    tags::BODY_PART_EXAMINED,
];

/// Default instance result attributes (PS3.18 Table 10.6.3-5).
pub const INSTANCE_RESULT: &[Tag] = &[
    tags::SPECIFIC_CHARACTER_SET,
    tags::SOP_CLASS_UID,
    tags::SOP_INSTANCE_UID,
    tags::STUDY_INSTANCE_UID,
    tags::SERIES_INSTANCE_UID,
    tags::INSTANCE_NUMBER,
    tags::NUMBER_OF_FRAMES,
    tags::ROWS,
    tags::COLUMNS,
    tags::BITS_ALLOCATED,
];

/// Match keys of the study search (PS3.18 Table 10.6.1-5): PatientID,
/// PatientName, AccessionNumber, StudyDescription, StudyDate, StudyTime,
/// StudyID, ReferringPhysicianName, ModalitiesInStudy (and Modality),
/// StudyInstanceUID.
pub const STUDY_MATCH: &[Tag] = &[
    tags::PATIENT_ID,
    tags::PATIENT_NAME,
    tags::ACCESSION_NUMBER,
    tags::STUDY_DESCRIPTION,
    tags::STUDY_DATE,
    tags::STUDY_TIME,
    tags::STUDY_ID,
    tags::REFERRING_PHYSICIAN_NAME,
    tags::MODALITIES_IN_STUDY,
    tags::MODALITY,
    tags::STUDY_INSTANCE_UID,
];

/// Match keys of the series search (Table 10.6.1-6 less the performed
/// procedure step keys): Modality, SeriesInstanceUID, SeriesNumber,
/// SeriesDescription.
pub const SERIES_MATCH: &[Tag] = &[
    tags::MODALITY,
    tags::SERIES_INSTANCE_UID,
    tags::SERIES_NUMBER,
    tags::SERIES_DESCRIPTION,
];

/// Match keys of the instance search: SeriesInstanceUID, SOPInstanceUID,
/// SOPClassUID, InstanceNumber.
pub const INSTANCE_MATCH: &[Tag] = &[
    tags::SERIES_INSTANCE_UID,
    tags::SOP_INSTANCE_UID,
    tags::SOP_CLASS_UID,
    tags::INSTANCE_NUMBER,
];

/// The attribute keywords accepted as QIDO-RS query keys. A search key may
/// also name any attribute by its tag (`00100020`); the search routes then
/// refuse those they cannot match on.
pub const SEARCH_KEYWORDS: &[&str] = &[
    "PatientID",
    "PatientName",
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "StudyDate",
    "StudyTime",
    "StudyDescription",
    "ReferringPhysicianName",
    "ModalitiesInStudy",
    "StudyInstanceUID",
    "StudyID",
    "Modality",
    "SeriesDescription",
    "SeriesInstanceUID",
    "SeriesNumber",
    "SOPInstanceUID",
    "SOPClassUID",
    "InstanceNumber",
    "Rows",
    "Columns",
    "NumberOfFrames",
    "BodyPartExamined",
];

/// A tag as DICOM JSON keys it: eight upper-case hex digits, `00100020`.
#[must_use]
pub fn tag_key(tag: Tag) -> String {
    format!("{:04X}{:04X}", tag.group(), tag.element())
}

/// The tag of a QIDO-RS search key: eight hex digits (any case), or one of
/// [`SEARCH_KEYWORDS`]. `None` for anything else.
#[must_use]
pub fn search_key_tag(key: &str) -> Option<String> {
    if key.len() == 8 && key.chars().all(|c| c.is_ascii_hexdigit()) {
        return Some(key.to_ascii_uppercase());
    }
    if !SEARCH_KEYWORDS.contains(&key) {
        return None;
    }
    dictionary_tag(key)
}

/// The keyword of [`SEARCH_KEYWORDS`] that names `tag` (eight upper-case
/// hex digits), if one does.
#[must_use]
pub fn search_keyword_of(tag: &str) -> Option<&'static str> {
    SEARCH_KEYWORDS
        .iter()
        .copied()
        .find(|k| dictionary_tag(k).as_deref() == Some(tag))
}

/// The tag of an `includefield` value: a search key ([`search_key_tag`]) or
/// any keyword of the PS3.6 data dictionary.
#[must_use]
pub fn include_field_tag(field: &str) -> Option<String> {
    search_key_tag(field).or_else(|| dictionary_tag(field))
}

/// The tag the data dictionary gives a keyword (the first of a range).
fn dictionary_tag(keyword: &str) -> Option<String> {
    let tag = StandardDataDictionary.by_name(keyword)?.tag_range().inner();
    Some(tag_key(tag))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_qido_lists_are_the_tags_of_ps3_18() {
        for (list, keys) in [
            (
                STUDY_RESULT,
                &[
                    "00080005", "00080020", "00080030", "00080050", "00080090", "00081030",
                    "00100010", "00100020", "00100030", "00100040", "0020000D", "00200010",
                ][..],
            ),
            (
                STUDY_LEVEL,
                &[
                    "00080005", "00080020", "00080030", "00080050", "00080056", "00080090",
                    "00080201", "00081030", "00100010", "00100020", "00100030", "00100040",
                    "0020000D", "00200010",
                ][..],
            ),
            (
                SERIES_RESULT,
                &[
                    "00080005", "00080060", "0008103E", "0020000D", "0020000E", "00200011",
                    "00180015",
                ][..],
            ),
            (
                INSTANCE_RESULT,
                &[
                    "00080005", "00080016", "00080018", "0020000D", "0020000E", "00200013",
                    "00280008", "00280010", "00280011", "00280100",
                ][..],
            ),
            (
                STUDY_MATCH,
                &[
                    "00100020", "00100010", "00080050", "00081030", "00080020", "00080030",
                    "00200010", "00080090", "00080061", "00080060", "0020000D",
                ][..],
            ),
            (
                SERIES_MATCH,
                &["00080060", "0020000E", "00200011", "0008103E"][..],
            ),
            (
                INSTANCE_MATCH,
                &["0020000E", "00080018", "00080016", "00200013"][..],
            ),
        ] {
            let got: Vec<String> = list.iter().map(|t| tag_key(*t)).collect();
            assert_eq!(got, keys);
        }
    }

    /// The tags the QIDO-RS routes matched these keywords to before the
    /// dictionary did (PS3.6 Table 6-1).
    #[test]
    fn every_search_keyword_has_its_standard_tag() {
        let expected = [
            ("PatientID", "00100020"),
            ("PatientName", "00100010"),
            ("PatientBirthDate", "00100030"),
            ("PatientSex", "00100040"),
            ("AccessionNumber", "00080050"),
            ("StudyDate", "00080020"),
            ("StudyTime", "00080030"),
            ("StudyDescription", "00081030"),
            ("ReferringPhysicianName", "00080090"),
            ("ModalitiesInStudy", "00080061"),
            ("StudyInstanceUID", "0020000D"),
            ("StudyID", "00200010"),
            ("Modality", "00080060"),
            ("SeriesDescription", "0008103E"),
            ("SeriesInstanceUID", "0020000E"),
            ("SeriesNumber", "00200011"),
            ("SOPInstanceUID", "00080018"),
            ("SOPClassUID", "00080016"),
            ("InstanceNumber", "00200013"),
            ("Rows", "00280010"),
            ("Columns", "00280011"),
            ("NumberOfFrames", "00280008"),
            ("BodyPartExamined", "00180015"),
        ];
        assert_eq!(SEARCH_KEYWORDS.len(), expected.len());
        for (keyword, tag) in expected {
            assert_eq!(search_key_tag(keyword).as_deref(), Some(tag), "{keyword}");
            assert_eq!(search_keyword_of(tag), Some(keyword));
        }
        assert_eq!(search_keyword_of("00185101"), None);
    }

    #[test]
    fn tags_are_accepted_in_any_case_and_other_keywords_only_as_include_fields() {
        assert_eq!(search_key_tag("0008103e").as_deref(), Some("0008103E"));
        assert_eq!(search_key_tag("ViewPosition"), None);
        assert_eq!(
            include_field_tag("ViewPosition").as_deref(),
            Some("00185101")
        );
        assert_eq!(search_key_tag("NoSuchKeyword"), None);
        assert_eq!(include_field_tag("NoSuchKeyword"), None);
        assert_eq!(search_key_tag("0010002"), None);
    }
}
