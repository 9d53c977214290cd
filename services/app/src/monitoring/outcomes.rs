//! Reviewed predictions as labelled outcomes: each observation a clinician
//! decided on becomes a [`ReviewedLabel`] (the fused probability, the
//! service's call, the reviewer's gold, the conformal set, whether it
//! abstained), grouped by model package version, observation and
//! modality-presence group, and summarised as agreement, Brier score, ECE
//! with its reliability diagram, conformal coverage against nominal, and
//! abstention ([`GroupStats`]).
//!
//! Gold follows `reviews_export` (accept: the service's call; reject: its
//! opposite; amend: the value given; uncertain or no call: no gold). A
//! prediction reviewed twice counts once, by its newest review.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use fusion_models::Observation;
use fusion_models::conformal::BinaryClass;
use fusion_store::{PredictionRecord, ReviewRecord};
use serde::Serialize;

use super::math::{Calibration, Coverage, calibration};
use crate::reviews_export::gold_of;

/// Which modalities contributed to a fused label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Presence {
    /// Image and text.
    #[serde(rename = "image+text")]
    ImageAndText,
    /// Text only.
    #[serde(rename = "text")]
    TextOnly,
    /// Image only.
    #[serde(rename = "image")]
    ImageOnly,
}

impl Presence {
    /// `image+text`, `text` or `image`.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ImageAndText => "image+text",
            Self::TextOnly => "text",
            Self::ImageOnly => "image",
        }
    }

    fn of(sources: &[String]) -> Option<Self> {
        let image = sources.iter().any(|s| s == "image");
        let text = sources.iter().any(|s| s == "text");
        match (image, text) {
            (true, true) => Some(Self::ImageAndText),
            (false, true) => Some(Self::TextOnly),
            (true, false) => Some(Self::ImageOnly),
            (false, false) => None,
        }
    }
}

/// One observation of one reviewed prediction.
#[derive(Debug, Clone, PartialEq)]
pub struct ReviewedLabel {
    /// The contributing packages' `name@version`, joined by ` + `.
    pub package: String,
    /// The observation.
    pub observation: Observation,
    /// Which modalities contributed.
    pub group: Presence,
    /// Fused projected probability of "present", in [0, 1].
    pub probability: f64,
    /// The service's call; `None` when it abstained on this label.
    pub call: Option<bool>,
    /// The reviewer's gold; `None` when the review gives none.
    pub gold: Option<bool>,
    /// Whether the conformal set held the gold class, where both exist.
    pub covered: Option<bool>,
    /// The set's nominal coverage 1 − α, where a set exists.
    pub nominal: Option<f64>,
    /// Whether the label abstained.
    pub abstained: bool,
    /// When it was reviewed.
    pub reviewed_at: DateTime<Utc>,
}

/// The packages that contributed to a label: the branch reports' `package`
/// of each source, in source order.
fn contributing_packages(prediction: &PredictionRecord, sources: &[String]) -> Vec<String> {
    sources
        .iter()
        .filter_map(|s| {
            let branches = &prediction.prediction.branches;
            let report = match s.as_str() {
                "image" => &branches.image,
                "text" => &branches.text,
                _ => return None,
            };
            report.package.clone()
        })
        .collect()
}

/// The labelled outcomes of `reviews` (oldest first): one per observation
/// decided in the newest review of each prediction, for labels with
/// evidence. `nominal(package, observation)` gives the 1 − α a package's
/// sets were built for (the fused set is the union of the branches' sets,
/// so it covers at least the largest of theirs).
pub fn reviewed_labels(
    reviews: &[(ReviewRecord, PredictionRecord)],
    nominal: impl Fn(&str, Observation) -> Option<f64>,
) -> Vec<ReviewedLabel> {
    let mut newest: HashMap<uuid::Uuid, usize> = HashMap::new();
    for (i, (review, _)) in reviews.iter().enumerate() {
        newest.insert(review.review.prediction_id, i);
    }
    let mut out = Vec::new();
    for (i, (review, prediction)) in reviews.iter().enumerate() {
        if newest.get(&review.review.prediction_id) != Some(&i) {
            continue;
        }
        let Some(decisions) = review.review.decisions.as_object() else {
            continue;
        };
        for (key, decision) in decisions {
            let Some(observation) = Observation::ALL.into_iter().find(|o| o.as_str() == key) else {
                continue;
            };
            let Some(fused) = prediction.prediction.fused.get(key) else {
                continue;
            };
            let Some(group) = Presence::of(&fused.sources) else {
                continue;
            };
            let call = crate::calls::call_on(
                &prediction.prediction.fused,
                &prediction.prediction.branches.text,
                key,
            );
            let gold = gold_of(decision, call);
            let packages = contributing_packages(prediction, &fused.sources);
            let set_nominal = fused.prediction_set.and_then(|_| {
                packages
                    .iter()
                    .filter_map(|p| nominal(p, observation))
                    .reduce(f64::max)
            });
            let covered = match (fused.prediction_set, gold) {
                (Some(set), Some(g)) => Some(set.contains(if g {
                    BinaryClass::Present
                } else {
                    BinaryClass::Absent
                })),
                _ => None,
            };
            out.push(ReviewedLabel {
                package: packages.join(" + "),
                observation,
                group,
                probability: fused.opinion.projected_probability(),
                call,
                gold,
                covered,
                nominal: set_nominal,
                abstained: fused.abstain.is_some(),
                reviewed_at: review.created_at,
            });
        }
    }
    out
}

/// The figures of one (package, observation, group).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct GroupStats {
    /// The contributing packages' `name@version`, joined by ` + `.
    pub package: String,
    /// The observation, snake_case.
    pub observation: Observation,
    /// `image+text`, `text` or `image`.
    pub group: Presence,
    /// Reviewed labels.
    pub n: usize,
    /// Of them, with a gold.
    pub with_gold: usize,
    /// Share of calls the reviewer's gold agrees with; `None` without a
    /// call that has gold.
    pub agreement: Option<f64>,
    /// Brier score, ECE and reliability of the probabilities against gold.
    pub calibration: Option<Calibration>,
    /// Conformal coverage of the sets against gold.
    pub coverage: Option<Coverage>,
    /// Labels that abstained.
    pub abstained: usize,
    /// abstained / n.
    pub abstention_rate: f64,
    /// Of the abstained labels with gold, the share found present.
    pub abstained_positive_rate: Option<f64>,
}

/// Summarises `labels` per (package, observation, group), in that order.
/// `default_nominal` stands for a set whose package states no α.
#[must_use]
pub fn summarise(labels: &[ReviewedLabel], default_nominal: f64) -> Vec<GroupStats> {
    let mut groups: BTreeMap<(&str, Observation, Presence), Vec<&ReviewedLabel>> = BTreeMap::new();
    for l in labels {
        groups
            .entry((l.package.as_str(), l.observation, l.group))
            .or_default()
            .push(l);
    }
    groups
        .into_iter()
        .map(|((package, observation, group), ls)| {
            let pairs: Vec<(f64, bool)> = ls
                .iter()
                .filter_map(|l| l.gold.map(|g| (l.probability, g)))
                .collect();
            let judged: Vec<bool> = ls.iter().filter_map(|l| Some(l.call? == l.gold?)).collect();
            let nominal = ls
                .iter()
                .filter_map(|l| l.nominal)
                .reduce(f64::max)
                .unwrap_or(default_nominal);
            let abstained: Vec<&&ReviewedLabel> = ls.iter().filter(|l| l.abstained).collect();
            let abstained_gold: Vec<bool> = abstained.iter().filter_map(|l| l.gold).collect();
            GroupStats {
                package: package.to_owned(),
                observation,
                group,
                n: ls.len(),
                with_gold: pairs.len(),
                agreement: (!judged.is_empty())
                    .then(|| judged.iter().filter(|a| **a).count() as f64 / judged.len() as f64),
                calibration: calibration(&pairs),
                coverage: Coverage::of(ls.iter().filter_map(|l| l.covered), nominal),
                abstained: abstained.len(),
                abstention_rate: abstained.len() as f64 / ls.len() as f64,
                abstained_positive_rate: (!abstained_gold.is_empty()).then(|| {
                    abstained_gold.iter().filter(|g| **g).count() as f64
                        / abstained_gold.len() as f64
                }),
            }
        })
        .collect()
}

/// The reviews of the sliding window: the newest `last_reviews` of
/// `reviews` (oldest first) that were made at or after `since`.
#[must_use]
pub fn window(
    reviews: &[(ReviewRecord, PredictionRecord)],
    since: DateTime<Utc>,
    last_reviews: usize,
) -> &[(ReviewRecord, PredictionRecord)] {
    let recent = &reviews[reviews.len().saturating_sub(last_reviews)..];
    let first = recent.partition_point(|(r, _)| r.created_at < since);
    &recent[first..]
}
