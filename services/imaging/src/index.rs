//! Index attributes and DICOM JSON (PS3.18 Annex F.2) of a parsed instance.
//!
//! [`index_attributes`] gives the [`InstanceAttributes`] the store keeps,
//! the QIDO-RS attributes as DICOM JSON among them;
//! [`metadata_json`] gives the whole data set for WADO-RS metadata, with bulk
//! data replaced by `BulkDataURI` (PS3.18 §F.2.6).
//!
//! Text is decoded per Specific Character Set (0008,0005), code extensions
//! included (see the `charset` module); JSON text is UTF-8.

use base64::Engine as _;
use dicom_core::header::Header as _;
use dicom_core::value::{PrimitiveValue, Value};
use dicom_core::{Tag, VR};
use dicom_dictionary_std::tags;
use dicom_object::{DefaultDicomObject, InMemDicomObject};
use fusion_schemas::{AccessionNumber, InstanceAttributes, PatientId};
use serde_json::{Map, Value as Json, json};

use crate::charset::{self, CharacterSets};
use crate::parse::DicomInstance;

/// Binary values longer than this many bytes become `BulkDataURI`s in
/// [`metadata_json`]; shorter ones are sent inline (`InlineBinary`).
pub const BULK_DATA_THRESHOLD: usize = 1024;

/// Why indexing failed. Indexing a [`DicomInstance`] only reads attributes that
/// [`crate::parse`] already validated, so the only failure is a base URI the
/// caller built wrongly.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    /// The bulk data base URI is empty.
    #[error("the bulk data base URI is empty")]
    EmptyBaseUri,
}

pub use crate::search_keys::QIDO_TAGS;

/// Extracts the index attributes of an instance.
pub fn index_attributes(instance: &DicomInstance) -> InstanceAttributes {
    let obj: &InMemDicomObject = instance.object();
    let text = |tag| first_text(obj, tag);
    let int = |tag| first_int(obj, tag);
    let rows = int(tags::ROWS);
    let frames = match obj.get(tags::NUMBER_OF_FRAMES) {
        Some(_) => int(tags::NUMBER_OF_FRAMES),
        None if obj.get(tags::PIXEL_DATA).is_some() || rows.is_some() => Some(1),
        None => None,
    };
    let attributes = qido_json(instance.object());
    let patient_name = attributes
        .get("00100010")
        .and_then(|a| a.get("Value"))
        .and_then(|v| v.get(0))
        .and_then(person_name_text);
    InstanceAttributes {
        study_instance_uid: instance.study_instance_uid().clone(),
        series_instance_uid: instance.series_instance_uid().clone(),
        sop_instance_uid: instance.sop_instance_uid().clone(),
        sop_class_uid: instance.sop_class_uid().to_owned(),
        transfer_syntax_uid: instance.transfer_syntax_uid().clone(),
        patient_id: text(tags::PATIENT_ID).and_then(|s| PatientId::parse(&s).ok()),
        patient_name,
        accession_number: text(tags::ACCESSION_NUMBER)
            .and_then(|s| AccessionNumber::parse(&s).ok()),
        study_date: text(tags::STUDY_DATE),
        study_description: attr_text(&attributes, "00081030"),
        study_time: text(tags::STUDY_TIME),
        study_id: attr_text(&attributes, "00200010"),
        referring_physician: attributes
            .get("00080090")
            .and_then(|a| a.get("Value"))
            .and_then(|v| v.get(0))
            .and_then(person_name_text),
        series_description: attr_text(&attributes, "0008103E"),
        modality: text(tags::MODALITY),
        body_part: text(tags::BODY_PART_EXAMINED),
        series_number: int(tags::SERIES_NUMBER),
        instance_number: int(tags::INSTANCE_NUMBER),
        rows,
        columns: int(tags::COLUMNS),
        frames,
        attributes,
    }
}

/// The QIDO-RS attributes ([`QIDO_TAGS`]) of an object (from
/// [`DicomInstance::object`] or [`crate::read`]) as a DICOM JSON
/// object (PS3.18 §F.2), keyed by tag as eight upper-case hex digits.
pub fn qido_json(object: &DefaultDicomObject) -> Json {
    let mut walker = Walker::new(None);
    Json::Object(walker.object(object, &CharacterSets::default(), "", Some(QIDO_TAGS)))
}

/// The whole data set (without the file meta group 0002 and group lengths) as
/// DICOM JSON (PS3.18 §F.2). Pixel data and binary values (OB, OD, OF, OL,
/// OV, OW, UN) longer than [`BULK_DATA_THRESHOLD`] bytes are replaced by a
/// `BulkDataURI` (PS3.18 §F.2.6): `{base}/{tag}` at top level and
/// `{base}/{sequence tag}/{item index from 0}/{tag}` inside sequences, tags as
/// eight upper-case hex digits.
///
/// # Errors
///
/// [`IndexError::EmptyBaseUri`] when `bulk_data_base_uri` is empty.
pub fn metadata_json(
    object: &DefaultDicomObject,
    bulk_data_base_uri: &str,
) -> Result<Json, IndexError> {
    let base = bulk_data_base_uri.trim_end_matches('/');
    if base.is_empty() {
        return Err(IndexError::EmptyBaseUri);
    }
    let mut walker = Walker::new(Some(base));
    Ok(Json::Object(walker.object(
        object,
        &CharacterSets::default(),
        "",
        None,
    )))
}

/// Walks a data set in tag order, tracking both the character set in scope
/// (PS3.5 §6.1.2.5.3: an item may declare its own) and the one dicom-rs
/// decoded with (the last declared, in document order).
struct Walker<'a> {
    bulk_base: Option<&'a str>,
    decoded_with: CharacterSets,
}

impl<'a> Walker<'a> {
    fn new(bulk_base: Option<&'a str>) -> Self {
        Self {
            bulk_base,
            decoded_with: CharacterSets::default(),
        }
    }

    fn object(
        &mut self,
        obj: &InMemDicomObject,
        inherited: &CharacterSets,
        path: &str,
        only: Option<&[Tag]>,
    ) -> Map<String, Json> {
        let mut effective = inherited.clone();
        if let Some(cs) = obj.get(tags::SPECIFIC_CHARACTER_SET)
            && let Value::Primitive(p) = cs.value()
        {
            effective = CharacterSets::from_values(p.to_multi_str().iter());
            self.decoded_with = effective.clone();
        }
        let mut out = Map::new();
        for elem in obj.iter() {
            let tag = elem.tag();
            if tag.group() == 0x0002 || tag.element() == 0x0000 {
                continue;
            }
            if only.is_some_and(|tags| !tags.contains(&tag)) {
                continue;
            }
            let key = format!("{:04X}{:04X}", tag.group(), tag.element());
            let vr = elem.vr();
            let mut attr = Map::new();
            if vr == VR::UN && dictionary_vr(tag) == Some(VR::UI) {
                // A UID written as UN (PS3.5 §6.2.2): its bytes are the
                // UID's text, padded with NUL; sent as the UI it is.
                attr.insert("vr".into(), Json::String("UI".into()));
                if let Some(uid) = crate::parse::uid_text(elem).filter(|u| !u.is_empty()) {
                    attr.insert("Value".into(), json!([uid]));
                }
                out.insert(key, Json::Object(attr));
                continue;
            }
            attr.insert("vr".into(), Json::String(vr.to_string().to_owned()));
            match elem.value() {
                Value::Sequence(seq) => {
                    let items: Vec<Json> = seq
                        .items()
                        .iter()
                        .enumerate()
                        .map(|(i, item)| {
                            let item_path = format!("{path}/{key}/{i}");
                            Json::Object(self.object(item, &effective, &item_path, None))
                        })
                        .collect();
                    if !items.is_empty() {
                        attr.insert("Value".into(), Json::Array(items));
                    }
                }
                Value::PixelSequence(_) => {
                    let Some(base) = self.bulk_base else { continue };
                    attr.insert(
                        "BulkDataURI".into(),
                        Json::String(format!("{base}{path}/{key}")),
                    );
                }
                Value::Primitive(p) => {
                    if is_binary(vr) {
                        let bytes = p.to_bytes();
                        if bytes.is_empty() {
                        } else if tag == tags::PIXEL_DATA || bytes.len() > BULK_DATA_THRESHOLD {
                            let Some(base) = self.bulk_base else { continue };
                            attr.insert(
                                "BulkDataURI".into(),
                                Json::String(format!("{base}{path}/{key}")),
                            );
                        } else {
                            attr.insert(
                                "InlineBinary".into(),
                                Json::String(
                                    base64::engine::general_purpose::STANDARD.encode(&bytes),
                                ),
                            );
                        }
                    } else if let Some(values) = self.values(vr, p, &effective) {
                        attr.insert("Value".into(), Json::Array(values));
                    }
                }
            }
            out.insert(key, Json::Object(attr));
        }
        out
    }

    /// The `Value` array of a non-binary primitive (PS3.18 §F.2.3), or `None`
    /// when the attribute is empty.
    fn values(&self, vr: VR, p: &PrimitiveValue, cs: &CharacterSets) -> Option<Vec<Json>> {
        if p.multiplicity() == 0 {
            return None;
        }
        let values: Vec<Json> = match p {
            PrimitiveValue::Tags(tags) => tags
                .iter()
                .map(|t| json!(format!("{:04X}{:04X}", t.group(), t.element())))
                .collect(),
            PrimitiveValue::U8(v) => v.iter().map(|x| json!(x)).collect(),
            PrimitiveValue::I16(v) => v.iter().map(|x| json!(x)).collect(),
            PrimitiveValue::U16(v) => v.iter().map(|x| json!(x)).collect(),
            PrimitiveValue::I32(v) => v.iter().map(|x| json!(x)).collect(),
            PrimitiveValue::U32(v) => v.iter().map(|x| json!(x)).collect(),
            PrimitiveValue::I64(v) => v.iter().map(|x| json!(x)).collect(),
            PrimitiveValue::U64(v) => v.iter().map(|x| json!(x)).collect(),
            PrimitiveValue::F32(v) => v.iter().map(|x| float(f64::from(*x))).collect(),
            PrimitiveValue::F64(v) => v.iter().map(|x| float(*x)).collect(),
            _ => p
                .to_multi_str()
                .iter()
                .map(|s| self.text_value(vr, s, cs))
                .collect(),
        };
        if values.len() == 1 && values[0].is_null() {
            return None;
        }
        Some(values)
    }

    fn text_value(&self, vr: VR, raw: &str, cs: &CharacterSets) -> Json {
        let text = if is_charset_text(vr) {
            charset::correct(raw, &self.decoded_with, cs, vr == VR::PN)
        } else {
            raw.to_owned()
        };
        let text = match vr {
            VR::UI => text.trim_end_matches(['\0', ' ']).to_owned(),
            VR::LT | VR::ST | VR::UT => text.trim_end_matches([' ', '\0']).to_owned(),
            _ => text.trim_matches([' ', '\0']).to_owned(),
        };
        if text.is_empty() {
            return Json::Null;
        }
        match vr {
            VR::PN => person_name(&text),
            VR::IS => text
                .parse::<i64>()
                .map(|n| json!(n))
                .unwrap_or(Json::String(text)),
            VR::DS => match text.parse::<f64>() {
                Ok(x) if x.is_finite() => float(x),
                _ => Json::String(text),
            },
            _ => Json::String(text),
        }
    }
}

/// A finite number, or null (JSON has no NaN or infinity).
fn float(x: f64) -> Json {
    serde_json::Number::from_f64(x).map_or(Json::Null, Json::Number)
}

/// PN as a DICOM JSON object (PS3.18 §F.2.2): the three component groups
/// separated by '=' become Alphabetic, Ideographic and Phonetic.
fn person_name(text: &str) -> Json {
    let mut obj = Map::new();
    for (group, key) in text
        .split('=')
        .zip(["Alphabetic", "Ideographic", "Phonetic"])
    {
        if !group.is_empty() {
            obj.insert(key.into(), Json::String(group.to_owned()));
        }
    }
    Json::Object(obj)
}

/// PN text back from its DICOM JSON object.
fn person_name_text(value: &Json) -> Option<String> {
    let groups: Vec<&str> = ["Alphabetic", "Ideographic", "Phonetic"]
        .iter()
        .map(|k| value.get(k).and_then(Json::as_str).unwrap_or(""))
        .collect();
    let text = groups.join("=");
    let text = text.trim_end_matches('=');
    (!text.is_empty()).then(|| text.to_owned())
}

fn attr_text(attributes: &Json, key: &str) -> Option<String> {
    attributes
        .get(key)?
        .get("Value")?
        .get(0)?
        .as_str()
        .map(str::to_owned)
}

/// The VR the standard data dictionary (PS3.6) gives `tag`, when exact.
fn dictionary_vr(tag: Tag) -> Option<VR> {
    use dicom_core::dictionary::{DataDictionary as _, DataDictionaryEntry as _, VirtualVr};
    match dicom_dictionary_std::StandardDataDictionary
        .by_tag(tag)?
        .vr()
    {
        VirtualVr::Exact(vr) => Some(vr),
        _ => None,
    }
}

fn is_binary(vr: VR) -> bool {
    matches!(
        vr,
        VR::OB | VR::OD | VR::OF | VR::OL | VR::OV | VR::OW | VR::UN
    )
}

/// Value representations whose text depends on Specific Character Set
/// (PS3.5 §6.1.2.3).
fn is_charset_text(vr: VR) -> bool {
    matches!(
        vr,
        VR::PN | VR::LO | VR::SH | VR::ST | VR::LT | VR::UT | VR::UC
    )
}

fn first_text(obj: &InMemDicomObject, tag: Tag) -> Option<String> {
    let elem = obj.get(tag)?;
    let Value::Primitive(p) = elem.value() else {
        return None;
    };
    let values = p.to_multi_str();
    let first = values.first()?.trim_matches([' ', '\0']);
    (!first.is_empty()).then(|| first.to_owned())
}

fn first_int(obj: &InMemDicomObject, tag: Tag) -> Option<i32> {
    let elem = obj.get(tag)?;
    match elem.value() {
        Value::Primitive(PrimitiveValue::U16(v)) => v.first().map(|x| i32::from(*x)),
        Value::Primitive(PrimitiveValue::I16(v)) => v.first().map(|x| i32::from(*x)),
        Value::Primitive(PrimitiveValue::I32(v)) => v.first().copied(),
        Value::Primitive(PrimitiveValue::U32(v)) => v.first().and_then(|x| i32::try_from(*x).ok()),
        _ => first_text(obj, tag)?.parse().ok(),
    }
}
