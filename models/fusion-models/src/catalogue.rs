//! The model catalogue: what every package under a models folder states
//! about itself — identity, the labels it predicts with their calibration
//! (temperature, split-conformal q̂, base rate, decision threshold) and, for a
//! trained package, the figures measured on data it was not fitted on — read
//! from the manifests, every listed file verified (size and SHA-256) as the
//! pipeline does at load, no weights loaded. It is what `GET /models` returns and what the dashboard's model
//! pages draw (reliability diagrams from [`crate::metrics::reliability_svg`]).
//!
//! "Calibrated" means a label has a split-conformal calibrator fitted on
//! labelled data (Angelopoulos & Bates 2021, §1) — temperature scaling alone
//! (Guo et al. 2017) with T = 1 is not calibration. Observations no package
//! calibrates are listed as such, so a reader never mistakes a rule-based
//! opinion for a measured one.

use std::path::Path;

use serde::Serialize;

use crate::package::{Architecture, Modality, ModelPackage, Observation};
use crate::pipeline::{PackageRef, PackageStatus};
use crate::report_heads::{HeadFigures, Training};

/// Class-conditional conformal thresholds of one label
/// ([`crate::conformal::ClassThresholds`]).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ClassConditionalCard {
    /// q̂ for "present" (scores 1 − p of the gold positives).
    pub present_qhat: f64,
    /// Gold positives behind it.
    pub present_n: usize,
    /// q̂ for "absent" (scores p of the gold negatives).
    pub absent_qhat: f64,
    /// Gold negatives behind it.
    pub absent_n: usize,
}

/// One label of a package, as its manifest states it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LabelCard {
    /// The observation.
    pub observation: Observation,
    /// Temperature T of its probability (1 = none fitted).
    pub temperature: f64,
    /// Split-conformal q̂ (nonconformity 1 − p of the gold class), when fitted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conformal_qhat: Option<f64>,
    /// Miscoverage α of that calibrator (0.1 = 90 % sets).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conformal_alpha: Option<f64>,
    /// Calibration examples n behind q̂.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conformal_n: Option<usize>,
    /// Class-conditional (Mondrian) thresholds, when fitted so: sets are
    /// built from these, not from the marginal q̂.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conformal_by_class: Option<ClassConditionalCard>,
    /// The base rate (prior) its opinions carry, when the package sets one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_rate: Option<f64>,
    /// The probability at or above which the package calls it present.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decision_threshold: Option<f64>,
    /// Whether it is calibrated (a conformal calibrator fitted on labelled
    /// data).
    pub calibrated: bool,
    /// Gold positives in the training split (trained packages).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub training_positives: Option<usize>,
    /// Out-of-bag figures on the training split (trained packages).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub out_of_bag: Option<HeadFigures>,
    /// Figures on the validation split, never fitted on (trained packages).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation: Option<HeadFigures>,
    /// The validation reliability diagram (15 equal-width bins).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub validation_reliability: Option<crate::metrics::Reliability>,
}

/// One package folder of the catalogue.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PackageCard {
    /// Package name (the folder name when the manifest is unreadable).
    pub name: String,
    /// Version (`""` when unreadable).
    pub version: String,
    /// `image`, `text`, or `unknown` when unreadable.
    pub modality: String,
    /// Which Rust module runs it (`xception`, `bert`, `report_heads`, …).
    pub architecture: Option<Architecture>,
    /// One line on what it does.
    pub description: String,
    /// SHA-256 of `manifest.toml` (64 hex digits), which pins every file.
    pub manifest_sha256: Option<String>,
    /// Why the package is unusable (manifest unreadable, or a file missing
    /// or failing its size or SHA-256), when it is; details go to the log.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The full reason behind `error` (file paths, hashes): for the
    /// operator's log, never served.
    #[serde(skip)]
    pub detail: Option<String>,
    /// Its labels (empty for an encoder).
    pub labels: Vec<LabelCard>,
    /// How a trained package was made: data, map, settings, figures.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub training: Option<Training>,
    /// The model card's file name, when the package has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model_card: Option<String>,
}

impl PackageCard {
    /// Whether its manifest was read and its files verified.
    #[must_use]
    pub fn readable(&self) -> bool {
        self.error.is_none()
    }
}

/// The packages under a models folder, and which observations none of them
/// calibrates.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Catalogue {
    /// Every package folder, sorted by name.
    pub packages: Vec<PackageCard>,
    /// Observations without a calibrated label in any verified package: their
    /// probabilities rest on rules and priors, not on measured data.
    pub not_calibrated: Vec<Observation>,
}

impl Catalogue {
    /// Reads every `*/manifest.toml` under `root`. Never fails: an unreadable
    /// folder gives an empty catalogue, an unreadable manifest a card with
    /// its `error`.
    #[must_use]
    pub fn read(root: &Path) -> Self {
        Self::read_with(root, &|dir| {
            crate::package::verify(dir).err().map(|e| {
                (
                    "files fail verification (missing, wrong size or SHA-256): run `fusion \
                     models verify` on this package"
                        .to_owned(),
                    e.to_string(),
                )
            })
        })
    }

    /// As [`Catalogue::read`], taking each package's state from the
    /// pipeline that loaded (and so verified) them, instead of hashing every
    /// file again: a failed package and one ignored because another of its
    /// modality is in use are both shown as not in use. A folder the
    /// pipeline does not name is verified here.
    #[must_use]
    pub fn read_loaded(root: &Path, loaded: &[PackageRef]) -> Self {
        Self::read_with(root, &|dir| {
            let name = ModelPackage::read_manifest(dir).map(|m| m.name).ok();
            match loaded.iter().find(|p| Some(&p.name) == name.as_ref()) {
                Some(p) => match p.status {
                    PackageStatus::Loaded => None,
                    PackageStatus::Failed => Some((
                        "failed to load: run `fusion models verify` on this package".to_owned(),
                        p.reason.clone().unwrap_or_default(),
                    )),
                    PackageStatus::Ignored => Some((
                        "ignored: another package of this modality is in use".to_owned(),
                        p.reason.clone().unwrap_or_default(),
                    )),
                },
                None => crate::package::verify(dir)
                    .err()
                    .map(|e| ("files fail verification".to_owned(), e.to_string())),
            }
        })
    }

    fn read_with(root: &Path, check: &dyn Fn(&Path) -> Option<(String, String)>) -> Self {
        let mut dirs: Vec<_> = std::fs::read_dir(root)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter(|p| p.join("manifest.toml").is_file())
                    .collect()
            })
            .unwrap_or_default();
        dirs.sort();
        let packages: Vec<PackageCard> = dirs.iter().map(|d| card(d, check)).collect();
        let not_calibrated = Observation::ALL
            .into_iter()
            .filter(|o| {
                !packages
                    .iter()
                    .filter(|p| p.readable())
                    .flat_map(|p| &p.labels)
                    .any(|l| l.observation == *o && l.calibrated)
            })
            .collect();
        Self {
            packages,
            not_calibrated,
        }
    }

    /// The package called `name`.
    #[must_use]
    pub fn package(&self, name: &str) -> Option<&PackageCard> {
        self.packages.iter().find(|p| p.name == name)
    }
}

/// One folder's card; `check` says why its files are not in use, if they
/// are not (shown, and full detail for the log).
fn card(dir: &Path, check: &dyn Fn(&Path) -> Option<(String, String)>) -> PackageCard {
    let folder = dir
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let (manifest, sha) = match ModelPackage::read_manifest_with_sha256(dir) {
        Ok(m) => m,
        Err(e) => {
            return PackageCard {
                name: folder,
                version: String::new(),
                modality: "unknown".to_owned(),
                architecture: None,
                description: String::new(),
                manifest_sha256: None,
                error: Some(
                    "manifest unreadable: run `fusion models verify` on this package".to_owned(),
                ),
                detail: Some(e.to_string()),
                labels: Vec::new(),
                training: None,
                model_card: None,
            };
        }
    };
    // A package whose files fail (or that the pipeline does not use) is
    // shown as not in use, and calibrates nothing.
    let (error, detail) = check(dir).unzip();
    let training = manifest.training.clone();
    let labels = manifest
        .labels
        .iter()
        .map(|l| {
            let record = training
                .as_ref()
                .and_then(|t| t.labels.iter().find(|r| r.observation == l.observation));
            LabelCard {
                observation: l.observation,
                temperature: l.calibration.temperature(),
                conformal_qhat: l.conformal.as_ref().map(|c| c.qhat()),
                conformal_alpha: l.conformal.as_ref().map(|c| c.alpha()),
                conformal_n: l.conformal.as_ref().map(|c| c.n()),
                conformal_by_class: l
                    .conformal
                    .as_ref()
                    .and_then(|c| c.class_conditional())
                    .map(|b| ClassConditionalCard {
                        present_qhat: b.present.qhat,
                        present_n: b.present.n,
                        absent_qhat: b.absent.qhat,
                        absent_n: b.absent.n,
                    }),
                base_rate: l.base_rate,
                decision_threshold: l.decision_threshold,
                calibrated: l.conformal.is_some(),
                training_positives: record.map(|r| r.positives),
                out_of_bag: record.map(|r| r.out_of_bag),
                validation: record.and_then(|r| r.validation),
                validation_reliability: record.and_then(|r| r.validation_reliability.clone()),
            }
        })
        .collect();
    let model_card = dir
        .join("MODEL_CARD.md")
        .is_file()
        .then(|| "MODEL_CARD.md".to_owned());
    PackageCard {
        name: manifest.name.clone(),
        version: manifest.version.clone(),
        modality: match manifest.modality {
            Modality::Image => "image",
            Modality::Text => "text",
        }
        .to_owned(),
        architecture: Some(manifest.architecture),
        description: manifest.description.clone(),
        manifest_sha256: Some(sha),
        error,
        detail,
        labels,
        training,
        model_card,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_shipped_packages_state_their_calibration() {
        let catalogue = Catalogue::read(&crate::package::default_packages_dir());
        let heads = catalogue
            .package("openi-report-heads")
            .expect("the shipped heads package");
        assert!(heads.readable());
        assert_eq!(heads.labels.len(), 10);
        let cardio = heads
            .labels
            .iter()
            .find(|l| l.observation == Observation::Cardiomegaly)
            .unwrap();
        assert!(cardio.calibrated && cardio.conformal_alpha == Some(0.1));
        let v = cardio.validation.expect("validation figures");
        assert!(v.n > 500 && v.auroc.unwrap() > 0.9);
        assert_eq!(
            cardio.validation_reliability.as_ref().unwrap().counts.len(),
            15
        );
        // No gold in the shipped map: no package calibrates these.
        for o in [Observation::Fracture, Observation::SupportDevices] {
            assert!(catalogue.not_calibrated.contains(&o), "{o}");
        }
        assert!(
            !catalogue
                .not_calibrated
                .contains(&Observation::Cardiomegaly)
        );
    }

    #[test]
    fn the_pipelines_verdicts_replace_hashing() {
        let heads = |status| PackageRef {
            name: "openi-report-heads".to_owned(),
            version: "1.0.0".to_owned(),
            modality: "text".to_owned(),
            manifest_sha256: None,
            status,
            reason: Some("another text package is in use".to_owned()),
        };
        let root = crate::package::default_packages_dir();
        let ignored = Catalogue::read_loaded(&root, &[heads(PackageStatus::Ignored)]);
        let card = ignored.package("openi-report-heads").unwrap();
        assert!(!card.readable());
        assert!(card.error.as_deref().unwrap().starts_with("ignored"));
        assert!(ignored.not_calibrated.contains(&Observation::Cardiomegaly));
        let loaded = Catalogue::read_loaded(&root, &[heads(PackageStatus::Loaded)]);
        assert!(loaded.package("openi-report-heads").unwrap().readable());
        assert!(!loaded.not_calibrated.contains(&Observation::Cardiomegaly));
    }

    #[test]
    fn an_unreadable_manifest_is_a_card_with_its_error() {
        let dir = std::env::temp_dir().join(format!("catalogue-{}", std::process::id()));
        let bad = dir.join("broken");
        std::fs::create_dir_all(&bad).unwrap();
        std::fs::write(bad.join("manifest.toml"), "name = [").unwrap();
        let catalogue = Catalogue::read(&dir);
        assert_eq!(catalogue.packages.len(), 1);
        assert_eq!(catalogue.packages[0].name, "broken");
        assert!(!catalogue.packages[0].readable());
        assert_eq!(catalogue.not_calibrated.len(), Observation::ALL.len());
        assert!(Catalogue::read(&dir.join("absent")).packages.is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
