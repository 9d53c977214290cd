//! The case page's prediction: the fused result per label with its
//! uncertainty, conflict and conformal set, the image and text branches side
//! by side, the branches' status and the model packages used.

use fusion_models::{
    AbstainReason, BinaryClass, BranchOpinion, BranchReport, BranchStatus, FusedLabel, Opinion,
};
use fusion_store::PredictionRecord;
use serde::Serialize;
use uuid::Uuid;

use super::{observation_keys, observation_name, percent, width};

/// An opinion as the page draws it: the three masses as bar widths and
/// numbers, and the projected probability.
#[derive(Debug, Serialize)]
struct OpinionView {
    probability: String,
    belief: String,
    disbelief: String,
    uncertainty: String,
    w_belief: String,
    w_disbelief: String,
    w_uncertainty: String,
    x_uncertainty: String,
    x_disbelief: String,
}

fn opinion_view(o: &Opinion) -> OpinionView {
    let (b, d, u) = (o.belief(), o.disbelief(), o.uncertainty());
    OpinionView {
        probability: percent(o.projected_probability()),
        belief: format!("{b:.2}"),
        disbelief: format!("{d:.2}"),
        uncertainty: format!("{u:.2}"),
        w_belief: width(b),
        w_uncertainty: width(u),
        w_disbelief: width(d),
        x_uncertainty: width(b),
        x_disbelief: width(b + u),
    }
}

/// One branch's opinion on a label, for the side-by-side columns.
#[derive(Debug, Serialize)]
struct BranchCell {
    /// The branch's own probability of "present": the image model's
    /// calibrated output, the text opinion's projected probability.
    probability: String,
    /// Its opinion as it enters fusion (after any trust discount).
    opinion: OpinionView,
    /// What it rests on, in words.
    basis: String,
    trust: Option<String>,
}

fn branch_cell(o: &BranchOpinion, branch: &str) -> BranchCell {
    let basis = if branch == "image" {
        match (o.variance, o.passes) {
            (Some(var), Some(passes)) if passes > 1 => {
                format!("{passes} MC-dropout passes, sd {:.2}", var.max(0.0).sqrt())
            }
            _ => "one pass".to_owned(),
        }
    } else {
        let mut parts = Vec::new();
        if let Some(m) = &o.mention {
            let label = match m.label {
                fusion_models::NoteLabel::Positive => "positive",
                fusion_models::NoteLabel::Negative => "negative",
                fusion_models::NoteLabel::Uncertain => "uncertain",
                fusion_models::NoteLabel::NotMentioned => "not mentioned",
            };
            parts.push(format!("report: {label}"));
        }
        if let Some(z) = &o.zero_shot
            && z.evidence.positive() + z.evidence.negative() > 0.0
        {
            parts.push(format!("encoder {:.2}", z.probability));
        }
        if parts.is_empty() {
            "—".to_owned()
        } else {
            parts.join(" · ")
        }
    };
    BranchCell {
        probability: percent(o.probability),
        opinion: opinion_view(&o.opinion),
        basis,
        trust: o.trust.map(|t| format!("{t:.2}")),
    }
}

#[derive(Debug, Serialize)]
pub(super) struct LabelView {
    pub(super) key: String,
    name: String,
    fused: OpinionView,
    conflict: String,
    high_conflict: bool,
    prediction_set: String,
    /// What the set means (the cell's tooltip).
    set_meaning: &'static str,
    /// The service's call, what a review's "accept" confirms:
    /// `present`, `absent`, or none (abstained).
    call: Option<&'static str>,
    /// Where the call contradicts the report's own statement.
    disagreement: Option<&'static str>,
    abstain: Option<String>,
    image: Option<BranchCell>,
    text: Option<BranchCell>,
    sources: String,
    pub(super) review: Option<String>,
}

fn abstain_words(r: &AbstainReason) -> String {
    match r {
        AbstainReason::HighUncertainty {
            uncertainty,
            max_uncertainty,
        } => format!("uncertainty {uncertainty:.2} above {max_uncertainty:.2}"),
        AbstainReason::HighConflict {
            conflict,
            max_conflict,
        } => format!("conflict {conflict:.2} above {max_conflict:.2}"),
        AbstainReason::HighUncertaintyAndConflict {
            uncertainty,
            max_uncertainty,
            conflict,
            max_conflict,
        } => format!(
            "uncertainty {uncertainty:.2} above {max_uncertainty:.2} and conflict {conflict:.2} \
             above {max_conflict:.2}"
        ),
    }
}

/// The SET column: the split-conformal prediction set at the calibrator's
/// level (90 % for the shipped packages; Angelopoulos & Bates 2021, §1) and
/// what it means, for the cell's text and its tooltip. `text_has_set`: the
/// text branch alone had a set (the fused label has none when another
/// contributing branch has no calibrator).
fn set_words(label: &FusedLabel, text_has_set: bool) -> (String, &'static str) {
    match &label.prediction_set {
        None if text_has_set => (
            "not calibrated".to_owned(),
            "The image model has no conformal calibrator, so the fused result has no set; \
             the text branch's own set is in its column's detail",
        ),
        None => (
            "not calibrated".to_owned(),
            "No conformal calibrator: no labelled data measured this observation's \
             probability (see Models)",
        ),
        Some(set) => {
            let classes: Vec<String> = set
                .classes()
                .filter_map(|c| serde_json::to_value(c).ok())
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect();
            match classes.len() {
                0 => (
                    "∅ (neither)".to_owned(),
                    "Empty set: the probability is higher than 90 % of the calibration \
                     reports without this finding got, and lower than 90 % of those with it \
                     got, so the report is atypical of both at that level. Not a call: for a \
                     rare finding this happens at a probability of a few percent too (a \
                     negated or unmentioned finding); read it with the probability and the call",
                ),
                1 if set.contains(BinaryClass::Present) => (
                    format!("{{{}}}", classes[0]),
                    "Absent ruled out at the 90 % level: the probability is higher than 90 % of \
                     the calibration reports without this finding got, and not below what 90 % \
                     of those with it got. Not a call: for a rare finding this happens at a low \
                     probability too; read it with the probability and the call",
                ),
                1 => (
                    format!("{{{}}}", classes[0]),
                    "Present ruled out at the 90 % level: the probability is lower than 90 % of \
                     the calibration reports with this finding got, and not above what 90 % of \
                     those without it got",
                ),
                _ => (
                    format!("{{{}}}", classes.join(", ")),
                    "Neither answer ruled out at the 90 % level: the probability is typical of \
                     reports with this finding and of reports without it: undecided",
                ),
            }
        }
    }
}

#[derive(Debug, Serialize)]
struct BranchBadge {
    name: &'static str,
    status: &'static str,
    tone: &'static str,
    reason: Option<String>,
    package: Option<String>,
    skipped: Vec<String>,
}

fn branch_badge(name: &'static str, r: &BranchReport) -> BranchBadge {
    let (status, tone) = match r.status {
        BranchStatus::Used => ("used", "ok"),
        BranchStatus::Discounted => ("used, discounted", "warn"),
        BranchStatus::Missing => ("missing", "muted"),
        BranchStatus::Unusable => ("unusable", "bad"),
        BranchStatus::NotApplicable => ("not applicable", "muted"),
        BranchStatus::NoPackage => ("no model installed", "bad"),
    };
    BranchBadge {
        name,
        status,
        tone,
        reason: r.reason.clone(),
        package: r.package.clone(),
        skipped: r
            .skipped
            .iter()
            .map(|s| format!("{}: {}", s.id, s.reason))
            .collect(),
    }
}

#[derive(Debug, Serialize)]
struct PackageView {
    name: String,
    version: String,
    modality: String,
    status: String,
    reason: Option<String>,
    manifest: String,
}

#[derive(Debug, Serialize)]
pub(super) struct PredictionPage {
    id: Uuid,
    version: i32,
    pub(super) latest: bool,
    /// Made from a note no longer linked to the case (another patient's
    /// report, removed when the case became its study's patient's).
    pub(super) from_removed_notes: bool,
    created_at: String,
    created_iso: String,
    abstain: bool,
    abstain_reasons: Vec<String>,
    refer: bool,
    /// "Pneumothorax: the report states it, …", one per contradicted label.
    disagreements: Vec<String>,
    branches: Vec<BranchBadge>,
    pub(super) labels: Vec<LabelView>,
    pub(super) quiet_labels: Vec<LabelView>,
    packages: Vec<PackageView>,
    total_ms: Option<String>,
}

pub(super) fn prediction_page(p: &PredictionRecord, latest: bool) -> PredictionPage {
    let pred = &p.prediction;
    let branches = &pred.branches;
    let fused = &pred.fused;
    let mut labels = Vec::new();
    let mut quiet = Vec::new();
    for key in observation_keys() {
        let Some(f) = fused.get(&key) else { continue };
        let image = branches
            .image
            .opinions
            .get(&key)
            .filter(|o| !o.opinion.is_vacuous())
            .map(|o| branch_cell(o, "image"));
        let text = branches
            .text
            .opinions
            .get(&key)
            .filter(|o| !o.opinion.is_vacuous())
            .map(|o| branch_cell(o, "text"));
        let text_opinion = branches.text.opinions.get(&key);
        let (prediction_set, set_meaning) =
            set_words(f, text_opinion.is_some_and(|o| o.prediction_set.is_some()));
        let service_call = fusion_app::calls::call_on(fused, &branches.text, &key);
        let disagreement = fusion_app::calls::report_disagreement(text_opinion, service_call)
            .map(|d| d.describe());
        let call = service_call.map(|present| if present { "present" } else { "absent" });
        let view = LabelView {
            name: observation_name(&key),
            fused: opinion_view(&f.opinion),
            conflict: format!("{:.2}", f.conflict),
            high_conflict: f.conflict > 0.3,
            prediction_set,
            set_meaning,
            call,
            disagreement,
            abstain: f.abstain.as_ref().map(abstain_words),
            image,
            text,
            sources: if f.sources.is_empty() {
                "none".to_owned()
            } else {
                f.sources.join(" + ")
            },
            review: None,
            key,
        };
        if f.sources.is_empty() {
            quiet.push(view);
        } else {
            labels.push(view);
        }
    }
    let total_ms = pred
        .timings
        .get("total")
        .or_else(|| pred.timings.get("total_ms"))
        .map(|t| format!("{t:.0} ms"));
    PredictionPage {
        id: pred.id,
        version: p.version,
        latest,
        from_removed_notes: false,
        created_at: p.created_at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
        created_iso: p.created_at.to_rfc3339(),
        abstain: pred.abstain,
        abstain_reasons: pred.abstain_reasons.clone(),
        refer: pred.refer,
        disagreements: fusion_app::calls::refer_reasons(fused, &branches.text),
        branches: vec![
            branch_badge("Image", &branches.image),
            branch_badge("Text", &branches.text),
        ],
        labels,
        quiet_labels: quiet,
        packages: pred
            .packages
            .iter()
            .cloned()
            .map(|p| PackageView {
                status: serde_json::to_value(p.status)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
                manifest: p
                    .manifest_sha256
                    .as_deref()
                    .map(|h| h.chars().take(12).collect())
                    .unwrap_or_default(),
                name: p.name,
                version: p.version,
                modality: p.modality,
                reason: p.reason,
            })
            .collect(),
        total_ms,
    }
}
