//! Fusion: per label, image ⊕ text by the reduced Dempster's rule on a
//! shared prior, the conflict, abstention by the strictest policy of the
//! packages that contributed, and the union of the branches' conformal sets.

use std::collections::BTreeMap;

use super::{BranchReport, Branches, FusedLabel, Pipeline, PredictionOutput};
use crate::abstain::{AbstainPolicy, AbstainReason};
use crate::conformal::{BinaryClass, PredictionSet};
use crate::opinion::{Opinion, combine};
use crate::package::{Modality, Observation};

impl Pipeline {
    /// The prior of `observation` that every opinion about it is fused
    /// with: the report-heads package's base rate (the observation's
    /// prevalence in its training data) where one is installed, else 0.5.
    #[must_use]
    pub fn base_rate(&self, observation: Observation) -> f64 {
        self.text
            .as_ref()
            .ok()
            .and_then(|m| m.heads.as_ref())
            .map_or(crate::opinion::DEFAULT_BASE_RATE, |h| {
                h.heads.base_rate(observation)
            })
    }

    fn policy_of(&self, modality: Modality) -> Option<AbstainPolicy> {
        match modality {
            Modality::Image => self
                .image
                .as_ref()
                .ok()
                .map(|m| m.package.manifest().abstain),
            Modality::Text => self
                .text
                .as_ref()
                .ok()
                .map(|m| m.package.manifest().abstain),
        }
    }

    pub(super) fn fuse(&self, image: BranchReport, text: BranchReport) -> PredictionOutput {
        let strictest = |policies: &[AbstainPolicy]| -> AbstainPolicy {
            policies
                .iter()
                .copied()
                .reduce(|a, b| {
                    AbstainPolicy::new(
                        a.max_uncertainty().min(b.max_uncertainty()),
                        a.max_conflict().min(b.max_conflict()),
                    )
                    .unwrap_or(a)
                })
                .unwrap_or_default()
        };
        let loaded: Vec<AbstainPolicy> = [Modality::Image, Modality::Text]
            .into_iter()
            .filter_map(|m| self.policy_of(m))
            .collect();
        let modalities_available = image.status.contributed() || text.status.contributed();
        let mut fused = BTreeMap::new();
        let mut abstain_reasons = Vec::new();
        let mut any_evidence = false;
        for observation in Observation::ALL {
            let key = observation.as_str();
            let mut sources = Vec::new();
            let mut policies = Vec::new();
            let mut sets = Vec::new();
            let mut pick = |name: &str, modality: Modality, report: &BranchReport| {
                let o = report.opinions.get(key)?;
                if o.opinion.is_vacuous() {
                    return None;
                }
                sources.push(name.to_owned());
                policies.extend(self.policy_of(modality));
                sets.push(o.prediction_set);
                Some(o.opinion)
            };
            // Every opinion about a label shares its prior: the heads
            // package's base rate where it has one, else 0.5.
            let prior = self.base_rate(observation);
            let rebase = |o: Opinion| o.with_base_rate(prior).unwrap_or(o);
            let left = rebase(pick("image", Modality::Image, &image).unwrap_or_default());
            let right = rebase(pick("text", Modality::Text, &text).unwrap_or_default());
            let (opinion, conflict) = match combine(&left, &right) {
                Ok(c) => (c.opinion, c.conflict),
                Err(_) => (Opinion::vacuous(), 1.0),
            };
            let policy = if policies.is_empty() {
                strictest(&loaded)
            } else {
                strictest(&policies)
            };
            let abstain = policy.evaluate(&opinion, conflict);
            let prediction_set = if sets.is_empty() {
                None
            } else {
                sets.iter()
                    .try_fold(None, |acc: Option<PredictionSet>, s| {
                        let s = (*s)?;
                        Some(Some(match acc {
                            None => s,
                            Some(a) => union(a, s),
                        }))
                    })
                    .flatten()
            };
            if !sources.is_empty() {
                any_evidence = true;
                if let Some(reason) = &abstain {
                    abstain_reasons.push(format!("{key}: {}", describe(reason)));
                }
            }
            fused.insert(
                key.to_owned(),
                FusedLabel {
                    opinion,
                    conflict,
                    prediction_set,
                    sources,
                    abstain,
                },
            );
        }
        if !modalities_available {
            abstain_reasons.insert(
                0,
                format!(
                    "no usable modality: image {}, text {}",
                    status_text(&image),
                    status_text(&text)
                ),
            );
        } else if !any_evidence {
            abstain_reasons.insert(0, "no label has evidence from either branch".to_owned());
        }
        PredictionOutput {
            packages: self.packages(),
            branches: Branches { image, text },
            fused,
            abstain: !abstain_reasons.is_empty(),
            abstain_reasons,
            timings_ms: BTreeMap::new(),
            modalities_available,
        }
    }
}

fn status_text(r: &BranchReport) -> String {
    let status = serde_json::to_value(r.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    match &r.reason {
        Some(reason) => format!("{status} ({reason})"),
        None => status,
    }
}

fn describe(reason: &AbstainReason) -> String {
    match *reason {
        AbstainReason::HighUncertainty {
            uncertainty,
            max_uncertainty,
        } => format!("fused uncertainty {uncertainty:.2} exceeds {max_uncertainty:.2}"),
        AbstainReason::HighConflict {
            conflict,
            max_conflict,
        } => format!("conflict between image and text {conflict:.2} exceeds {max_conflict:.2}"),
        AbstainReason::HighUncertaintyAndConflict {
            uncertainty,
            max_uncertainty,
            conflict,
            max_conflict,
        } => format!(
            "fused uncertainty {uncertainty:.2} exceeds {max_uncertainty:.2} and conflict \
             {conflict:.2} exceeds {max_conflict:.2}"
        ),
    }
}

fn union(a: PredictionSet, b: PredictionSet) -> PredictionSet {
    let classes: Vec<BinaryClass> = [BinaryClass::Present, BinaryClass::Absent]
        .into_iter()
        .filter(|c| a.contains(*c) || b.contains(*c))
        .collect();
    PredictionSet::try_from(classes).unwrap_or(a)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn union_of_sets() {
        let p = PredictionSet::try_from(vec![BinaryClass::Present]).unwrap();
        let a = PredictionSet::try_from(vec![BinaryClass::Absent]).unwrap();
        let u = union(p, a);
        assert!(u.contains(BinaryClass::Present) && u.contains(BinaryClass::Absent));
    }
}
