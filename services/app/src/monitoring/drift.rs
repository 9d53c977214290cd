//! Input drift without labels: per package, the distribution of what its
//! models read in the newest `window` inference jobs against a reference
//! window of its first `reference` jobs, as a population stability index
//! per feature ([`super::math::psi`]).
//!
//! An image package is watched on the header attributes the applicability
//! gate reads (modality, body part, view position, age band, photometric
//! interpretation, manufacturer) and on its scores per observation; a text
//! package on its scores. Scores are binned in tenths, and a job where the
//! branch gave no score for an observation (the image was out of scope, the
//! note missing) counts in a `none` category, so a stream of inputs the
//! branch cannot use shows as a shift too. Jobs without an image package
//! are watched under `no image package`: a stream of studies the service
//! cannot read at all still shows.

use std::collections::BTreeMap;

use fusion_models::Observation;
use fusion_store::ModelInputRecord;
use serde::Serialize;

use super::math::{psi, score_bin, shares};

/// The package key of jobs that ran without an image package.
pub const NO_IMAGE_PACKAGE: &str = "no image package";

/// The windows compared and the threshold that raises an alert.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DriftSettings {
    /// Jobs in the reference window: a package's first jobs.
    pub reference: usize,
    /// Jobs in the current window: a package's newest jobs.
    pub window: usize,
    /// PSI above which a feature has drifted.
    pub threshold: f64,
}

/// One feature's shift.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeatureDrift {
    /// `modality`, `body_part`, …, or `score:<branch>:<observation>`.
    pub feature: String,
    /// Population stability index, ≥ 0.
    pub psi: f64,
    /// Whether it passes the threshold.
    pub drifted: bool,
    /// Shares per category in the reference window.
    pub reference: BTreeMap<String, f64>,
    /// Shares per category in the current window.
    pub current: BTreeMap<String, f64>,
}

/// One package's input drift.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PackageDrift {
    /// `name@version`, or [`NO_IMAGE_PACKAGE`].
    pub package: String,
    /// `image` or `text`.
    pub branch: &'static str,
    /// Jobs recorded for it.
    pub jobs: usize,
    /// `collecting` until it has `reference + window` jobs, then `stable`
    /// or `drift`.
    pub status: &'static str,
    /// The largest PSI among its features (0 while collecting).
    pub max_psi: f64,
    /// Features, largest PSI first (empty while collecting).
    pub features: Vec<FeatureDrift>,
}

type Extract = fn(&ModelInputRecord) -> Option<String>;

const GATE_FEATURES: [(&str, Extract); 6] = [
    ("modality", |r| r.input.features.modality.clone()),
    ("body_part", |r| r.input.features.body_part.clone()),
    ("view_position", |r| r.input.features.view_position.clone()),
    ("age_band", |r| r.input.features.age_band.clone()),
    ("photometric_interpretation", |r| {
        r.input.features.photometric_interpretation.clone()
    }),
    ("manufacturer", |r| r.input.features.manufacturer.clone()),
];

fn score_of(r: &ModelInputRecord, branch: &str, o: Observation) -> String {
    r.input
        .scores
        .pointer(&format!("/{branch}/{}", o.as_str()))
        .and_then(serde_json::Value::as_f64)
        .map_or_else(|| "none".to_owned(), score_bin)
}

fn compare(
    feature: String,
    reference: &[&ModelInputRecord],
    current: &[&ModelInputRecord],
    value: impl Fn(&ModelInputRecord) -> Option<String>,
    threshold: f64,
) -> FeatureDrift {
    let r: Vec<Option<String>> = reference.iter().map(|x| value(x)).collect();
    let c: Vec<Option<String>> = current.iter().map(|x| value(x)).collect();
    let reference = shares(r.iter().map(Option::as_deref));
    let current = shares(c.iter().map(Option::as_deref));
    let psi = psi(&reference, &current);
    FeatureDrift {
        feature,
        psi,
        drifted: psi > threshold,
        reference,
        current,
    }
}

fn package_drift(
    package: String,
    branch: &'static str,
    jobs: &[&ModelInputRecord],
    settings: DriftSettings,
) -> PackageDrift {
    let n = jobs.len();
    if n < settings.reference + settings.window || settings.window == 0 {
        return PackageDrift {
            package,
            branch,
            jobs: n,
            status: "collecting",
            max_psi: 0.0,
            features: Vec::new(),
        };
    }
    let reference = &jobs[..settings.reference];
    let current = &jobs[n - settings.window..];
    let mut features = Vec::new();
    if branch == "image" {
        for (name, extract) in GATE_FEATURES {
            features.push(compare(
                name.to_owned(),
                reference,
                current,
                extract,
                settings.threshold,
            ));
        }
    }
    for o in Observation::ALL {
        features.push(compare(
            format!("score:{branch}:{}", o.as_str()),
            reference,
            current,
            |r| Some(score_of(r, branch, o)),
            settings.threshold,
        ));
    }
    features.sort_by(|a, b| b.psi.total_cmp(&a.psi));
    let max_psi = features.first().map_or(0.0, |f| f.psi);
    PackageDrift {
        package,
        branch,
        jobs: n,
        status: if max_psi > settings.threshold {
            "drift"
        } else {
            "stable"
        },
        max_psi,
        features,
    }
}

/// The drift of every package seen in `inputs` (oldest first): image
/// packages (and [`NO_IMAGE_PACKAGE`]) first, then text packages, each by
/// name.
#[must_use]
pub fn drift(inputs: &[ModelInputRecord], settings: DriftSettings) -> Vec<PackageDrift> {
    let mut image: BTreeMap<String, Vec<&ModelInputRecord>> = BTreeMap::new();
    let mut text: BTreeMap<String, Vec<&ModelInputRecord>> = BTreeMap::new();
    for r in inputs {
        let key = r
            .input
            .image_package
            .clone()
            .unwrap_or_else(|| NO_IMAGE_PACKAGE.to_owned());
        image.entry(key).or_default().push(r);
        if let Some(p) = &r.input.text_package {
            text.entry(p.clone()).or_default().push(r);
        }
    }
    let mut out: Vec<PackageDrift> = image
        .into_iter()
        .map(|(p, jobs)| package_drift(p, "image", &jobs, settings))
        .collect();
    out.extend(
        text.into_iter()
            .map(|(p, jobs)| package_drift(p, "text", &jobs, settings)),
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use fusion_store::{InputFeatures, NewModelInput};

    fn job(modality: &str, p: f64) -> ModelInputRecord {
        ModelInputRecord {
            input: NewModelInput {
                id: uuid::Uuid::now_v7(),
                case_id: uuid::Uuid::nil(),
                prediction_id: None,
                image_package: Some("img@1".to_owned()),
                text_package: Some("txt@1".to_owned()),
                features: InputFeatures {
                    modality: Some(modality.to_owned()),
                    ..InputFeatures::default()
                },
                scores: serde_json::json!({"image": {"pneumonia": p}, "text": {}}),
            },
            recorded_at: chrono::Utc::now(),
        }
    }

    #[test]
    fn collects_then_compares_the_first_jobs_with_the_newest() {
        let settings = DriftSettings {
            reference: 4,
            window: 2,
            threshold: 0.25,
        };
        let mut jobs: Vec<ModelInputRecord> = (0..5).map(|_| job("CR", 0.15)).collect();
        let d = drift(&jobs, settings);
        assert_eq!(
            (d[0].package.as_str(), d[0].status),
            ("img@1", "collecting")
        );
        assert_eq!((d[1].package.as_str(), d[1].branch), ("txt@1", "text"));
        // Sixth job: reference = jobs 1–4 (CR, 0.1–0.2), window = jobs 5–6.
        jobs.push(job("DX", 0.15));
        let d = drift(&jobs, settings);
        let image = &d[0];
        assert_eq!(image.status, "drift");
        let modality = image.features.iter().find(|f| f.feature == "modality");
        // Reference CR 1; window CR ½, DX ½.
        let expected = -0.5 * 0.5_f64.ln() + (0.5 - 1e-4) * (0.5_f64 / 1e-4).ln();
        assert!((modality.map_or(0.0, |f| f.psi) - expected).abs() < 1e-12);
        let score = image
            .features
            .iter()
            .find(|f| f.feature == "score:image:pneumonia");
        assert_eq!(score.map(|f| f.psi), Some(0.0), "same bin 0.1-0.2");
        // The text branch gave no score: `none` throughout, stable.
        assert_eq!(d[1].status, "stable");
        assert_eq!(d[1].max_psi, 0.0);
    }
}
