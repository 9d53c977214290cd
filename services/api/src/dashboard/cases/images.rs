//! The case page's images: one view per stored instance, with the address
//! the browser fetches it from (WADO-RS `/rendered`), a caption, window
//! presets, and why it cannot be drawn when its pixel data did not decode.

use fusion_store::{DecodeStatus, InstanceRecord};
use serde::Serialize;

/// Images shown per case view (a CT series may hold hundreds; the first
/// ones of each series are enough to orient, the viewer is elsewhere).
pub(super) const MAX_IMAGES: usize = 12;

#[derive(Debug, Serialize)]
pub(super) struct ImageView {
    sop_instance_uid: String,
    modality: String,
    caption: String,
    /// `/rendered` address asking for lossless PNG (frame 1 for
    /// multi-frame): the service's default rendering is JPEG, as PS3.18
    /// §8.7.4 makes it, and a reviewer reads the image losslessly.
    src: String,
    /// For frame stepping: the instance's address, frames appended by the
    /// script as `/frames/{n}/rendered`.
    base: String,
    frames: i32,
    renderable: bool,
    reason: Option<String>,
    presets: Vec<Preset>,
    used_by_model: bool,
}

/// A window preset (centre, width) in the modality's output units.
#[derive(Debug, Serialize)]
struct Preset {
    label: &'static str,
    value: &'static str,
}

/// Common CT windows in HU (centre, width).
const CT_PRESETS: [(&str, &str); 4] = [
    ("Lung (−600/1500 HU)", "-600,1500"),
    ("Mediastinum (40/400 HU)", "40,400"),
    ("Bone (400/1800 HU)", "400,1800"),
    ("Brain (40/80 HU)", "40,80"),
];

fn dicom_string(attributes: &serde_json::Value, tag: &str) -> Option<String> {
    attributes
        .get(tag)?
        .get("Value")?
        .get(0)?
        .as_str()
        .map(str::to_owned)
}

pub(super) fn image_view(i: &InstanceRecord, used: Option<&str>) -> ImageView {
    let modality = dicom_string(&i.attributes, "00080060").unwrap_or_default();
    let base = format!(
        "/dicom-web/studies/{}/series/{}/instances/{}",
        i.study_instance_uid.as_str(),
        i.series_instance_uid.as_str(),
        i.sop_instance_uid.as_str()
    );
    let frames = i.frames.unwrap_or(1).max(1);
    let src = if frames > 1 {
        format!("{base}/frames/1/rendered?accept=image/png")
    } else {
        format!("{base}/rendered?accept=image/png")
    };
    let number = dicom_string(&i.attributes, "00200013")
        .map(|n| format!("image {n}"))
        .unwrap_or_else(|| "image".to_owned());
    let series = dicom_string(&i.attributes, "0008103E")
        .or_else(|| dicom_string(&i.attributes, "00200011").map(|n| format!("series {n}")))
        .unwrap_or_default();
    let caption = [modality.as_str(), series.as_str(), number.as_str()]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" · ");
    let mut presets = vec![Preset {
        label: "From the file",
        value: "",
    }];
    if modality == "CT" {
        presets.extend(
            CT_PRESETS
                .iter()
                .map(|&(label, value)| Preset { label, value }),
        );
    }
    let (renderable, reason) = match i.decode_status {
        DecodeStatus::Failed => (
            false,
            Some(
                i.decode_reason
                    .clone()
                    .unwrap_or_else(|| "pixel data could not be decoded".to_owned()),
            ),
        ),
        DecodeStatus::Ok | DecodeStatus::Unknown => (true, None),
    };
    ImageView {
        used_by_model: used == Some(i.sop_instance_uid.as_str()),
        sop_instance_uid: i.sop_instance_uid.as_str().to_owned(),
        modality,
        caption,
        src,
        base,
        frames,
        renderable,
        reason,
        presets,
    }
}
