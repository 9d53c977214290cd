//! What an inference job's models read, recorded for the drift monitor:
//! the applicability gate's header attributes of the image the branch used
//! (else of the first candidate), the manufacturer, and each branch's
//! probability per observation. Identifiers, dates and free text are left
//! out; the age is kept as a band.

use fusion_models::{GateAttributes, PackageRef, PackageStatus, PredictionOutput};
use fusion_store::{InputFeatures, NewModelInput};
use uuid::Uuid;

/// The band of a Patient's Age (0010,1010) AS value (`nnnD`, `nnnW`,
/// `nnnM` or `nnnY`): `0-17`, `18-39`, `40-64`, `65+`; `None` when it does
/// not parse.
#[must_use]
pub fn age_band(age: &str) -> Option<String> {
    let age = age.trim();
    let (digits, unit) = age.split_at(age.len().checked_sub(1)?);
    let n: u32 = digits.parse().ok()?;
    let years = match unit {
        "Y" | "y" => n,
        "M" | "m" => n / 12,
        "W" | "w" => n / 52,
        "D" | "d" => n / 365,
        _ => return None,
    };
    Some(
        match years {
            0..=17 => "0-17",
            18..=39 => "18-39",
            40..=64 => "40-64",
            _ => "65+",
        }
        .to_owned(),
    )
}

/// The monitored features of one image's header.
#[must_use]
pub fn features(attributes: &GateAttributes, manufacturer: Option<String>) -> InputFeatures {
    let upper = |v: &Option<String>| v.as_ref().map(|s| s.trim().to_ascii_uppercase());
    InputFeatures {
        modality: upper(&attributes.modality),
        body_part: upper(&attributes.body_part_examined),
        view_position: upper(&attributes.view_position),
        age_band: attributes.patient_age.as_deref().and_then(age_band),
        photometric_interpretation: upper(&attributes.photometric_interpretation),
        manufacturer: manufacturer
            .map(|m| m.trim().to_owned())
            .filter(|m| !m.is_empty()),
    }
}

fn loaded(packages: &[PackageRef], modality: &str) -> Option<String> {
    packages
        .iter()
        .find(|p| p.modality == modality && p.status == PackageStatus::Loaded)
        .map(|p| format!("{}@{}", p.name, p.version))
}

/// The row recording one job: `candidates` are the images offered to the
/// image branch as (SOP Instance UID, features), in order.
#[must_use]
pub fn model_input(
    output: &PredictionOutput,
    case_id: Uuid,
    prediction_id: Option<Uuid>,
    candidates: &[(String, InputFeatures)],
) -> NewModelInput {
    let used = output.branches.image.instance.as_deref();
    let features = candidates
        .iter()
        .find(|(uid, _)| Some(uid.as_str()) == used)
        .or_else(|| candidates.first())
        .map(|(_, f)| f.clone())
        .unwrap_or_default();
    let scores = |report: &fusion_models::BranchReport| -> serde_json::Value {
        report
            .opinions
            .iter()
            .map(|(k, o)| (k.clone(), serde_json::json!(o.probability)))
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    NewModelInput {
        id: Uuid::now_v7(),
        case_id,
        prediction_id,
        image_package: loaded(&output.packages, "image"),
        text_package: loaded(&output.packages, "text"),
        features,
        scores: serde_json::json!({
            "image": scores(&output.branches.image),
            "text": scores(&output.branches.text),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages_become_bands() {
        assert_eq!(age_band("045Y").as_deref(), Some("40-64"));
        assert_eq!(age_band("017Y").as_deref(), Some("0-17"));
        assert_eq!(age_band("018Y").as_deref(), Some("18-39"));
        assert_eq!(age_band("070Y").as_deref(), Some("65+"));
        assert_eq!(age_band("006M").as_deref(), Some("0-17"));
        assert_eq!(age_band("Y"), None);
        assert_eq!(age_band("45"), None);
        assert_eq!(age_band(""), None);
    }
}
