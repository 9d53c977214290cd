//! Post-hoc calibration of a package on a labelled set (`fusion calibrate`):
//! run the package's model to get each case's binary logit, fit the
//! temperature per observation by minimum NLL ([`TemperatureScaler::fit`]),
//! report ECE (15 equal-width bins) and Brier score before (the manifest's
//! current temperature) and after, fit split-conformal q̂ at the requested
//! coverage when n allows a finite quantile, and write both into the
//! package's `manifest.toml`, keeping the rest of the file (comments and
//! layout) as it was.
//!
//! The conformal threshold is fitted on the same cases as the temperature;
//! with one fitted parameter the optimism is small, but a held-out split is
//! better where data allow.

use std::collections::BTreeMap;
use std::path::Path;

use toml_edit::{DocumentMut, InlineTable, Item, Table, value};

use crate::calibration::{ECE_BINS, TemperatureScaler, brier_score, expected_calibration_error};
use crate::conformal::{ConformalCalibrator, quantile_rank};
use crate::package::{MANIFEST_FILE, Manifest, Modality, ModelPackage, Observation};

use super::{FrameValues, Pipeline};

/// One labelled case's input.
#[derive(Debug, Clone, PartialEq)]
pub enum CalibrationInput {
    /// A frame of modality-LUT values with its Photometric Interpretation.
    Image {
        /// The frame.
        frame: FrameValues,
        /// `MONOCHROME1` or `MONOCHROME2`.
        photometric_interpretation: String,
    },
    /// A note's text.
    Note(String),
}

/// One observation's calibration result.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelCalibration {
    /// The observation.
    pub observation: Observation,
    /// Number of labelled cases n.
    pub n: usize,
    /// Temperature in the manifest before.
    pub temperature_before: f64,
    /// Fitted temperature.
    pub temperature_after: f64,
    /// ECE (15 bins) with the old temperature, in [0, 1].
    pub ece_before: f64,
    /// ECE with the fitted temperature.
    pub ece_after: f64,
    /// Brier score with the old temperature, in [0, 1].
    pub brier_before: f64,
    /// Brier score with the fitted temperature.
    pub brier_after: f64,
    /// Split-conformal threshold at the coverage, when n is enough
    /// (n ≥ ⌈(1 − α)(n + 1)⌉).
    pub conformal: Option<ConformalCalibrator>,
}

/// Why calibration failed.
#[derive(Debug, thiserror::Error)]
pub enum CalibrateError {
    /// The package could not be loaded or built.
    #[error("{0}")]
    Package(String),
    /// A case could not be run (names the case index, 0-based).
    #[error("case {index}: {message}")]
    Case {
        /// Index into the cases given.
        index: usize,
        /// What failed.
        message: String,
    },
    /// An observation the package does not predict.
    #[error("case {index}: the package has no output for {observation}")]
    UnknownObservation {
        /// Index into the cases given.
        index: usize,
        /// The observation.
        observation: Observation,
    },
    /// Fitting failed (no cases, bad numbers).
    #[error("{observation}: {message}")]
    Fit {
        /// The observation.
        observation: Observation,
        /// What failed.
        message: String,
    },
    /// `coverage` is not in (0, 1).
    #[error("coverage {0} is not in (0, 1)")]
    Coverage(f64),
    /// The manifest could not be read, edited or written.
    #[error("{0}")]
    Manifest(String),
}

/// Runs the package in `package_dir` on `cases` (input, observation,
/// present) and fits per-observation temperature and conformal thresholds
/// at `coverage` (e.g. 0.9). Does not write anything.
///
/// # Errors
/// [`CalibrateError`] naming the failing case or observation.
pub fn fit(
    package_dir: &Path,
    cases: &[(CalibrationInput, Observation, bool)],
    coverage: f64,
) -> Result<Vec<LabelCalibration>, CalibrateError> {
    if !(coverage > 0.0 && coverage < 1.0) {
        return Err(CalibrateError::Coverage(coverage));
    }
    let alpha = 1.0 - coverage;
    let manifest = ModelPackage::read_manifest(package_dir)
        .map_err(|e| CalibrateError::Package(e.to_string()))?;
    let pipeline = Pipeline::load_package(package_dir);
    if let Some(failed) = pipeline.packages().into_iter().find_map(|p| p.reason) {
        return Err(CalibrateError::Package(failed));
    }
    // Logits are computed once per distinct input.
    let mut pairs: BTreeMap<Observation, Vec<(f64, bool)>> = BTreeMap::new();
    let mut cache: Vec<(&CalibrationInput, Logits)> = Vec::new();
    for (index, (input, observation, present)) in cases.iter().enumerate() {
        let logits = if let Some((_, l)) = cache.iter().find(|(i, _)| *i == input) {
            l.clone()
        } else {
            let l = logits_of(&pipeline, &manifest, input)
                .map_err(|message| CalibrateError::Case { index, message })?;
            cache.push((input, l.clone()));
            l
        };
        let Some((_, logit)) = logits.iter().find(|(o, _)| o == observation) else {
            return Err(CalibrateError::UnknownObservation {
                index,
                observation: *observation,
            });
        };
        let Some(logit) = logit else {
            return Err(CalibrateError::Case {
                index,
                message: "the note has no sentence to score".to_owned(),
            });
        };
        pairs
            .entry(*observation)
            .or_default()
            .push((*logit, *present));
    }
    let mut out = Vec::new();
    for (observation, pairs) in pairs {
        let fit_err = |message: String| CalibrateError::Fit {
            observation,
            message,
        };
        let before = current_temperature(&manifest, observation);
        let after = TemperatureScaler::fit(&pairs).map_err(|e| fit_err(e.to_string()))?;
        let probs = |t: &TemperatureScaler| -> Vec<(f64, bool)> {
            pairs.iter().map(|&(z, y)| (t.probability(z), y)).collect()
        };
        let (pb, pa) = (probs(&before), probs(&after));
        let ece = |p: &[(f64, bool)]| expected_calibration_error(p, ECE_BINS);
        let conformal = match quantile_rank(pairs.len(), alpha) {
            Ok(Some(_)) => {
                // Class-conditional: each class's cases covered on their
                // own (see `crate::conformal`).
                Some(
                    ConformalCalibrator::fit_class_conditional(&pa, alpha)
                        .map_err(|e| fit_err(e.to_string()))?,
                )
            }
            Ok(None) => None,
            Err(e) => return Err(fit_err(e.to_string())),
        };
        out.push(LabelCalibration {
            observation,
            n: pairs.len(),
            temperature_before: before.temperature(),
            temperature_after: after.temperature(),
            ece_before: ece(&pb).map_err(|e| fit_err(e.to_string()))?,
            ece_after: ece(&pa).map_err(|e| fit_err(e.to_string()))?,
            brier_before: brier_score(&pb).map_err(|e| fit_err(e.to_string()))?,
            brier_after: brier_score(&pa).map_err(|e| fit_err(e.to_string()))?,
            conformal,
        });
    }
    Ok(out)
}

/// Per observation, the binary logit (`None`: nothing to score).
type Logits = Vec<(Observation, Option<f64>)>;

fn logits_of(
    pipeline: &Pipeline,
    manifest: &Manifest,
    input: &CalibrationInput,
) -> Result<Logits, String> {
    match (manifest.modality, input) {
        (
            Modality::Image,
            CalibrationInput::Image {
                frame,
                photometric_interpretation,
            },
        ) => Ok(pipeline
            .image_logits(frame, photometric_interpretation)?
            .into_iter()
            .map(|(o, z)| (o, Some(z)))
            .collect()),
        (Modality::Text, CalibrationInput::Note(text)) => Ok(pipeline
            .zero_shot_logits(text)?
            .into_iter()
            .map(|(o, s)| (o, s.map(|(z, _)| z)))
            .collect()),
        (m, _) => Err(format!("a {m} package needs {m} input")),
    }
}

fn current_temperature(manifest: &Manifest, observation: Observation) -> TemperatureScaler {
    match manifest.modality {
        Modality::Image => manifest
            .labels
            .iter()
            .find(|l| l.observation == observation)
            .map(|l| l.calibration)
            .unwrap_or_default(),
        Modality::Text => manifest
            .zero_shot
            .as_ref()
            .and_then(|z| z.labels.iter().find(|l| l.observation == observation))
            .map(|l| l.calibration)
            .unwrap_or_default(),
    }
}

fn set_calibration(table: &mut Table, result: &LabelCalibration) {
    let mut t = InlineTable::new();
    t.insert("temperature", result.temperature_after.into());
    table.insert("calibration", value(t));
    match result.conformal {
        Some(c) => {
            let mut t = InlineTable::new();
            t.insert("qhat", c.qhat().into());
            t.insert("alpha", c.alpha().into());
            t.insert("n", i64::try_from(c.n()).unwrap_or(i64::MAX).into());
            if let Some(b) = c.class_conditional() {
                for (name, class) in [("present", b.present), ("absent", b.absent)] {
                    let mut k = InlineTable::new();
                    k.insert("qhat", class.qhat.into());
                    k.insert("n", i64::try_from(class.n).unwrap_or(i64::MAX).into());
                    t.insert(name, toml_edit::Value::InlineTable(k));
                }
            }
            table.insert("conformal", value(t));
        }
        None => {
            table.remove("conformal");
        }
    }
}

/// Writes the fitted temperatures (and conformal thresholds, removing a
/// stale one where n was too small) into `package_dir/manifest.toml`,
/// keeping its other content, then re-reads and checks the manifest.
///
/// Image packages: `calibration` / `conformal` of the matching `[[labels]]`
/// entry. Text packages: the matching `[[zero_shot.labels]]` entry, added
/// when missing.
///
/// # Errors
/// [`CalibrateError::Manifest`] when the file cannot be read, parsed,
/// written or no longer validates.
pub fn write_manifest(
    package_dir: &Path,
    results: &[LabelCalibration],
) -> Result<(), CalibrateError> {
    let path = package_dir.join(MANIFEST_FILE);
    let bad = |m: String| CalibrateError::Manifest(format!("{}: {m}", path.display()));
    let text = std::fs::read_to_string(&path).map_err(|e| bad(e.to_string()))?;
    let mut doc: DocumentMut = text.parse().map_err(|e| bad(format!("{e}")))?;
    let modality = doc
        .get("modality")
        .and_then(Item::as_str)
        .ok_or_else(|| bad("no modality".to_owned()))?
        .to_owned();
    for r in results {
        let name = r.observation.as_str();
        if modality == "text"
            && let Some(z) = doc.get_mut("zero_shot").and_then(Item::as_table_like_mut)
            && z.get("labels").is_none()
        {
            z.insert(
                "labels",
                Item::ArrayOfTables(toml_edit::ArrayOfTables::new()),
            );
        }
        let labels = if modality == "image" {
            doc.get_mut("labels")
        } else {
            doc.get_mut("zero_shot")
                .and_then(Item::as_table_like_mut)
                .and_then(|z| z.get_mut("labels"))
        }
        .and_then(Item::as_array_of_tables_mut)
        .ok_or_else(|| bad("no labels to calibrate".to_owned()))?;
        let existing = labels
            .iter_mut()
            .find(|t| t.get("observation").and_then(Item::as_str) == Some(name));
        match existing {
            Some(t) => set_calibration(t, r),
            None if modality == "text" => {
                let mut t = Table::new();
                t.insert("observation", value(name));
                set_calibration(&mut t, r);
                labels.push(t);
            }
            None => return Err(bad(format!("no [[labels]] entry for {name}"))),
        }
    }
    let out = doc.to_string();
    Manifest::from_toml(&out, &path).map_err(|e| bad(e.to_string()))?;
    std::fs::write(&path, out).map_err(|e| bad(e.to_string()))
}
