//! The report's content tree (the TID 1500 subset drawn in [`super`]) and
//! its text summary.

use dicom_object::InMemDicomObject;
use fusion_models::{AbstainReason, BinaryClass, BranchReport, FusedLabel};
use fusion_schemas::Observation;

use super::items::{self as it, Rel};
use super::{SrInput, derived_uid};

/// The root container's children, in the order the module docs draw.
pub fn tree(input: &SrInput) -> Vec<InMemDicomObject> {
    let mut root = vec![
        it::coded_item(Rel::HasConceptMod, it::LANGUAGE, it::ENGLISH),
        it::coded_item(Rel::HasObsContext, it::OBSERVER_TYPE, it::DEVICE),
        it::uidref_item(
            Rel::HasObsContext,
            it::DEVICE_OBSERVER_UID,
            &super::device_uid(),
        ),
        it::text_item(
            Rel::HasObsContext,
            it::DEVICE_OBSERVER_NAME,
            "clinical multimodal fusion",
        ),
        it::text_item(
            Rel::HasObsContext,
            it::DEVICE_OBSERVER_MANUFACTURER,
            "fusion project",
        ),
        it::coded_item(
            Rel::HasConceptMod,
            it::PROCEDURE_REPORTED,
            it::RADIOGRAPHIC_PROCEDURE,
        ),
    ];
    if let Some(image) = &input.image_used {
        root.push(it::container(
            Rel::Contains,
            it::IMAGE_LIBRARY,
            vec![it::container(
                Rel::Contains,
                it::IMAGE_LIBRARY_GROUP,
                vec![it::image_item(
                    Rel::Contains,
                    &image.sop_class,
                    &image.sop_instance,
                )],
            )],
        ));
    }
    let groups = input
        .output
        .fused
        .iter()
        .filter_map(|(label, fused)| {
            Observation::parse(label).map(|o| measurement_group(input, o, fused))
        })
        .collect();
    root.push(it::container(
        Rel::Contains,
        it::IMAGING_MEASUREMENTS,
        groups,
    ));
    root.push(it::container(
        Rel::Contains,
        it::QUALITATIVE_EVALUATIONS,
        evaluations(input),
    ));
    root
}

/// TID 1501-style group for one observation.
fn measurement_group(input: &SrInput, o: Observation, fused: &FusedLabel) -> InMemDicomObject {
    let label = o.as_str();
    let op = &fused.opinion;
    let mut items = vec![
        it::text_item(Rel::Contains, it::TRACKING_IDENTIFIER, o.display_name()),
        it::uidref_item(
            Rel::Contains,
            it::TRACKING_UID,
            &derived_uid(&format!("fusion-track:{}:{label}", input.prediction_id)),
        ),
        it::coded_item(Rel::Contains, it::FINDING, it::observation(o)),
        it::num_item(Rel::Contains, it::PROBABILITY, op.projected_probability()),
        it::num_item(Rel::Contains, it::BELIEF, op.belief()),
        it::num_item(Rel::Contains, it::DISBELIEF, op.disbelief()),
        it::num_item(Rel::Contains, it::UNCERTAINTY, op.uncertainty()),
        it::num_item(Rel::Contains, it::BASE_RATE, op.base_rate()),
        it::num_item(Rel::Contains, it::CONFLICT, fused.conflict),
    ];
    let branches = &input.output.branches;
    for (report, concept) in [
        (&branches.image, it::IMAGE_PROBABILITY),
        (&branches.text, it::TEXT_PROBABILITY),
    ] {
        if let Some(b) = report.opinions.get(label) {
            items.push(it::num_item(Rel::Contains, concept, b.probability));
        }
    }
    if let Some(set) = &fused.prediction_set {
        for class in set.classes() {
            let value = match class {
                BinaryClass::Present => it::PRESENT,
                BinaryClass::Absent => it::ABSENT,
            };
            items.push(it::coded_item(Rel::Contains, it::CONFORMAL_SET, value));
        }
    }
    items.push(abstention(
        fused
            .abstain
            .as_ref()
            .map(abstain_text)
            .into_iter()
            .collect(),
    ));
    for (concept, report) in [
        (it::IMAGE_CONTRIBUTION, &branches.image),
        (it::TEXT_CONTRIBUTION, &branches.text),
    ] {
        // A branch that ran but has no model for this observation.
        if report.status.contributed() && !report.opinions.contains_key(label) {
            items.push(it::coded_item(Rel::Contains, concept, it::NO_OPINION));
        } else {
            items.push(contribution(concept, report));
        }
    }
    // TID 4019 Algorithm Identification of the packages that spoke to it
    // (`name@version`, several joined by " + ").
    for report in [&branches.image, &branches.text] {
        if report.opinions.contains_key(label)
            && let Some(packages) = &report.package
        {
            for package in packages.split(" + ") {
                let (name, version) = package.split_once('@').unwrap_or((package, ""));
                items.push(it::text_item(Rel::HasConceptMod, it::ALGORITHM_NAME, name));
                items.push(it::text_item(
                    Rel::HasConceptMod,
                    it::ALGORITHM_VERSION,
                    if version.is_empty() {
                        "unknown"
                    } else {
                        version
                    },
                ));
            }
        }
    }
    if let Some(review) = &input.review
        && let Some((decision, value)) = review.decisions.get(label)
    {
        let code = match decision.as_str() {
            "accept" => it::ACCEPT,
            "reject" => it::REJECT,
            _ => it::AMEND,
        };
        let amended = value.as_deref().map(|v| {
            let v = match v {
                "present" => it::PRESENT,
                "absent" => it::ABSENT,
                _ => it::UNCERTAIN,
            };
            it::coded_item(Rel::HasProperties, it::AMENDED_VALUE, v)
        });
        items.push(it::with_children(
            it::coded_item(Rel::Contains, it::REVIEW_DECISION, code),
            amended.into_iter().collect(),
        ));
    }
    it::container(Rel::Contains, it::MEASUREMENT_GROUP, items)
}

/// The case-level qualitative evaluations.
fn evaluations(input: &SrInput) -> Vec<InMemDicomObject> {
    let out = &input.output;
    let mut items = vec![
        it::text_item(Rel::Contains, it::SUMMARY, &summary(input)),
        abstention(if out.abstain {
            out.abstain_reasons.clone()
        } else {
            Vec::new()
        }),
        contribution(it::IMAGE_CONTRIBUTION, &out.branches.image),
        contribution(it::TEXT_CONTRIBUTION, &out.branches.text),
    ];
    for p in out
        .packages
        .iter()
        .filter(|p| p.status == fusion_models::PackageStatus::Loaded)
    {
        let mut package = vec![
            it::text_item(Rel::Contains, it::ALGORITHM_NAME, &p.name),
            it::text_item(Rel::Contains, it::ALGORITHM_VERSION, &p.version),
        ];
        if let Some(sha) = &p.manifest_sha256 {
            package.push(it::text_item(Rel::Contains, it::MANIFEST_SHA256, sha));
        }
        package.push(it::text_item(
            Rel::Contains,
            it::ALGORITHM_PARAMETERS,
            &format!("modality={}", p.modality),
        ));
        items.push(it::container(Rel::Contains, it::MODEL_PACKAGE, package));
    }
    if let Some(comment) = input.review.as_ref().and_then(|r| r.comment.as_deref()) {
        items.push(it::text_item(Rel::Contains, it::REVIEW_COMMENT, comment));
    }
    items
}

/// CODE Abstention = Yes/No, with one TEXT reason per reason.
fn abstention(reasons: Vec<String>) -> InMemDicomObject {
    let value = if reasons.is_empty() { it::NO } else { it::YES };
    it::with_children(
        it::coded_item(Rel::Contains, it::ABSTENTION, value),
        reasons
            .iter()
            .map(|r| it::text_item(Rel::HasProperties, it::ABSTENTION_REASON, r))
            .collect(),
    )
}

/// CODE contribution = the branch status, with its reason.
fn contribution(concept: it::Code, report: &BranchReport) -> InMemDicomObject {
    it::with_children(
        it::coded_item(Rel::Contains, concept, it::branch_status(report.status)),
        report
            .reason
            .iter()
            .map(|r| it::text_item(Rel::HasProperties, it::REASON, r))
            .collect(),
    )
}

/// An abstention reason in words.
pub fn abstain_text(reason: &AbstainReason) -> String {
    match reason {
        AbstainReason::HighUncertainty {
            uncertainty,
            max_uncertainty,
        } => format!("fused uncertainty {uncertainty:.2} exceeds {max_uncertainty:.2}"),
        AbstainReason::HighConflict {
            conflict,
            max_conflict,
        } => format!("conflict between modalities {conflict:.2} exceeds {max_conflict:.2}"),
        AbstainReason::HighUncertaintyAndConflict {
            uncertainty,
            max_uncertainty,
            conflict,
            max_conflict,
        } => format!(
            "fused uncertainty {uncertainty:.2} exceeds {max_uncertainty:.2} and conflict {conflict:.2} exceeds {max_conflict:.2}"
        ),
    }
}

fn status_words(report: &BranchReport) -> String {
    let status = it::branch_status(report.status).meaning.to_lowercase();
    match &report.reason {
        Some(r) => format!("{status} ({r})"),
        None => status,
    }
}

/// The text summary any SR viewer shows: status, findings with evidence
/// (most probable first), abstention, modalities and models.
pub fn summary(input: &SrInput) -> String {
    let out = &input.output;
    let mut s = match &input.review {
        None => format!(
            "AI result, version {}: UNVERIFIED, not yet reviewed by a clinician.",
            input.version
        ),
        Some(r) => format!(
            "AI result, version {}: VERIFIED by {} on {}.",
            input.version,
            r.reviewer,
            r.reviewed_at.format("%Y-%m-%d %H:%M UTC")
        ),
    };
    let mut findings: Vec<(&String, &FusedLabel)> = out
        .fused
        .iter()
        .filter(|(_, l)| !l.sources.is_empty())
        .collect();
    findings.sort_by(|a, b| {
        b.1.opinion
            .projected_probability()
            .total_cmp(&a.1.opinion.projected_probability())
    });
    if findings.is_empty() {
        s.push_str(" No observation has evidence.");
    } else {
        s.push_str(" Findings (probability of presence, uncertainty):");
        for (label, l) in findings {
            let name = Observation::parse(label).map_or(label.as_str(), |o| o.display_name());
            s.push_str(&format!(
                " {name} {:.2} (u {:.2}",
                l.opinion.projected_probability(),
                l.opinion.uncertainty()
            ));
            if let Some(set) = &l.prediction_set {
                let classes: Vec<&str> = set
                    .classes()
                    .map(|c| match c {
                        BinaryClass::Present => "present",
                        BinaryClass::Absent => "absent",
                    })
                    .collect();
                if classes.is_empty() {
                    // As the dashboard writes it: neither class reached the
                    // conformal threshold.
                    s.push_str(", set ∅ (neither)");
                } else {
                    s.push_str(&format!(", set {{{}}}", classes.join(", ")));
                }
            }
            if let Some(review) = &input.review
                && let Some((decision, value)) = review.decisions.get(label.as_str())
            {
                s.push_str(&format!(", clinician: {decision}"));
                if let Some(v) = value {
                    s.push_str(&format!(" to {v}"));
                }
            }
            s.push_str(");");
        }
    }
    if out.abstain {
        s.push_str(&format!(
            " The result is withheld: {}.",
            out.abstain_reasons.join("; ")
        ));
    }
    // What the dashboard flags, so the PACS and the EHR see it too.
    let flags = crate::calls::refer_reasons(&out.fused, &out.branches.text);
    if !flags.is_empty() {
        s.push_str(&format!(" Refer for a full read: {}.", flags.join("; ")));
    }
    s.push_str(&format!(
        " Image: {}. Text: {}.",
        status_words(&out.branches.image),
        status_words(&out.branches.text)
    ));
    let models: Vec<String> = out
        .packages
        .iter()
        .filter(|p| p.status == fusion_models::PackageStatus::Loaded)
        .map(|p| format!("{} {}", p.name, p.version))
        .collect();
    if !models.is_empty() {
        s.push_str(&format!(" Models: {}.", models.join(", ")));
    }
    s.push_str(" Decision support only; not for primary diagnosis.");
    s
}
