//! The 14 CheXpert observations (Irvin et al., "CheXpert: A Large Chest
//! Radiograph Dataset with Uncertainty Labels and Expert Comparison", AAAI
//! 2019): the labels every part of the service speaks of, from the note
//! labeller to the model packages, the predictions and the reviews.

use serde::{Deserialize, Serialize};

/// The 14 CheXpert observations. Serde names are stable snake_case strings
/// (`pleural_effusion`); [`Observation::display_name`] is the CheXpert column
/// name for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Observation {
    /// No acute abnormality.
    NoFinding,
    /// Widened mediastinum or cardiomediastinal silhouette.
    EnlargedCardiomediastinum,
    /// Enlarged heart.
    Cardiomegaly,
    /// Nodule, mass or other focal lung lesion.
    LungLesion,
    /// Any pulmonary opacity.
    LungOpacity,
    /// Pulmonary edema or vascular congestion.
    Edema,
    /// Consolidation.
    Consolidation,
    /// Pneumonia or lung infection.
    Pneumonia,
    /// Atelectasis or collapse.
    Atelectasis,
    /// Pneumothorax.
    Pneumothorax,
    /// Pleural effusion.
    PleuralEffusion,
    /// Pleural disease other than effusion (thickening, plaques).
    PleuralOther,
    /// Fracture.
    Fracture,
    /// Tubes, lines, catheters, pacemakers and other devices.
    SupportDevices,
}

impl Observation {
    /// All observations in CheXpert order.
    pub const ALL: [Self; 14] = [
        Self::NoFinding,
        Self::EnlargedCardiomediastinum,
        Self::Cardiomegaly,
        Self::LungLesion,
        Self::LungOpacity,
        Self::Edema,
        Self::Consolidation,
        Self::Pneumonia,
        Self::Atelectasis,
        Self::Pneumothorax,
        Self::PleuralEffusion,
        Self::PleuralOther,
        Self::Fracture,
        Self::SupportDevices,
    ];

    /// The snake_case name used in manifests, stored JSON and the API
    /// (`pleural_effusion`); the serde name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::NoFinding => "no_finding",
            Self::EnlargedCardiomediastinum => "enlarged_cardiomediastinum",
            Self::Cardiomegaly => "cardiomegaly",
            Self::LungLesion => "lung_lesion",
            Self::LungOpacity => "lung_opacity",
            Self::Edema => "edema",
            Self::Consolidation => "consolidation",
            Self::Pneumonia => "pneumonia",
            Self::Atelectasis => "atelectasis",
            Self::Pneumothorax => "pneumothorax",
            Self::PleuralEffusion => "pleural_effusion",
            Self::PleuralOther => "pleural_other",
            Self::Fracture => "fracture",
            Self::SupportDevices => "support_devices",
        }
    }

    /// The observation named by its snake_case name, if any.
    #[must_use]
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|o| o.as_str() == name)
    }

    /// The CheXpert column name, e.g. `"Pleural Effusion"`.
    #[must_use]
    pub const fn display_name(self) -> &'static str {
        match self {
            Self::NoFinding => "No Finding",
            Self::EnlargedCardiomediastinum => "Enlarged Cardiomediastinum",
            Self::Cardiomegaly => "Cardiomegaly",
            Self::LungLesion => "Lung Lesion",
            Self::LungOpacity => "Lung Opacity",
            Self::Edema => "Edema",
            Self::Consolidation => "Consolidation",
            Self::Pneumonia => "Pneumonia",
            Self::Atelectasis => "Atelectasis",
            Self::Pneumothorax => "Pneumothorax",
            Self::PleuralEffusion => "Pleural Effusion",
            Self::PleuralOther => "Pleural Other",
            Self::Fracture => "Fracture",
            Self::SupportDevices => "Support Devices",
        }
    }
}

/// The snake_case name ([`Observation::as_str`]).
impl std::fmt::Display for Observation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for o in Observation::ALL {
            let json = serde_json::to_string(&o).unwrap();
            assert_eq!(json, format!("\"{}\"", o.as_str()));
            assert_eq!(Observation::parse(o.as_str()), Some(o));
        }
        assert_eq!(
            Observation::PleuralEffusion.display_name(),
            "Pleural Effusion"
        );
        assert_eq!(Observation::PleuralEffusion.to_string(), "pleural_effusion");
    }
}
