//! Writes a trained report-heads package: `heads.safetensors`, a
//! `manifest.toml` that pins it by size and SHA-256, and `MODEL_CARD.md`
//! with the figures. The manifest is read back through
//! [`Manifest::from_toml`] before anything is written, so a package this
//! writes always loads.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::Path;

use fusion_schemas::Observation;
use sha2::{Digest, Sha256};

use super::{FeatureSpec, HeadFigures, TrainedHead, Training};
use crate::abstain::AbstainPolicy;
use crate::package::{
    Architecture, ClassOutput, EnsembleUncertainty, FileRole, InputSpec, IntendedUse, LabelSpec,
    MANIFEST_FILE, Manifest, Modality, NoteFeaturesInput, OutputSpec, PackageFile, SCHEMA_VERSION,
    Source, UncertaintyMethod,
};

/// The weights file of a report-heads package.
pub const WEIGHTS_FILE: &str = "heads.safetensors";
/// The model card written beside the manifest.
pub const MODEL_CARD_FILE: &str = "MODEL_CARD.md";

/// Everything a report-heads package holds.
#[derive(Debug, Clone)]
pub struct PackageDraft {
    /// Package name (lowercase, digits, `-`).
    pub name: String,
    /// Package version.
    pub version: String,
    /// One line.
    pub description: String,
    /// Encoder package name.
    pub encoder: String,
    /// Encoder manifest SHA-256.
    pub encoder_manifest_sha256: String,
    /// Feature layout.
    pub spec: FeatureSpec,
    /// The trained heads, in CheXpert order.
    pub heads: Vec<(Observation, TrainedHead)>,
    /// Training record (data, map, options, per-label figures, priors).
    pub training: Training,
    /// Evidence cap of the ensemble moments.
    pub max_evidence: f64,
    /// Abstention thresholds.
    pub abstain: AbstainPolicy,
    /// Intended use.
    pub intended_use: IntendedUse,
    /// Where the training data comes from and its terms (the label map's
    /// `source`), quoted in the model card.
    pub data_source: String,
    /// Whether the fitted parameters may leave the site (the label map's
    /// `redistributable`): sets the manifest's licence and
    /// `redistributable`.
    pub redistributable: bool,
    /// The `fusion train` command line that rebuilds the package, every
    /// option spelled out.
    pub reproduce: String,
}

/// Writes the package into `dir` (created if missing; existing package
/// files are replaced).
///
/// # Errors
/// A message when a tensor cannot be serialised, the manifest does not
/// validate, or a file cannot be written.
pub fn write_package(dir: &Path, draft: &PackageDraft) -> Result<Manifest, String> {
    let members = draft.heads.first().map_or(0, |(_, h)| h.members.len());
    if draft.heads.iter().any(|(_, h)| h.members.len() != members) {
        return Err("every head must have the same number of members".to_owned());
    }
    let width = draft.spec.width();
    let mut tensors: Vec<(String, Vec<u8>, Vec<usize>)> = Vec::new();
    for (o, head) in &draft.heads {
        let mut w = Vec::with_capacity(members * width * 4);
        for m in &head.members {
            if m.weights.iter().chain([&m.bias]).any(|v| !v.is_finite()) {
                return Err(format!("{o}: a member has a weight that is not finite"));
            }
            if m.weights.len() != width {
                return Err(format!(
                    "{o}: a member has {} weights, expected {width}",
                    m.weights.len()
                ));
            }
            // f32 storage: the heads are small and f32 keeps 7 digits, far
            // below the noise of the fit.
            m.weights
                .iter()
                .for_each(|v| w.extend_from_slice(&(*v as f32).to_le_bytes()));
        }
        let mut b = Vec::with_capacity(members * 4);
        head.members
            .iter()
            .for_each(|m| b.extend_from_slice(&(m.bias as f32).to_le_bytes()));
        tensors.push((format!("{}.weight", o.as_str()), w, vec![members, width]));
        tensors.push((format!("{}.bias", o.as_str()), b, vec![members]));
    }
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .map(|(name, data, shape)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)
                .map(|v| (name.clone(), v))
                .map_err(|e| format!("{name}: {e}"))
        })
        .collect::<Result<_, _>>()?;
    let metadata: Option<HashMap<String, String>> = None;
    let bytes = safetensors::serialize(views, metadata).map_err(|e| e.to_string())?;

    let labels = draft
        .heads
        .iter()
        .enumerate()
        .map(|(k, (o, h))| LabelSpec {
            observation: *o,
            output: k,
            calibration: h.temperature,
            conformal: h.conformal,
            base_rate: Some(h.prevalence),
            decision_threshold: Some(h.decision_threshold),
        })
        .collect();
    let manifest = Manifest {
        schema_version: SCHEMA_VERSION,
        name: draft.name.clone(),
        version: draft.version.clone(),
        description: draft.description.clone(),
        modality: Modality::Text,
        architecture: Architecture::ReportHeads,
        input: InputSpec::NoteFeatures(NoteFeaturesInput {
            encoder: draft.encoder.clone(),
            encoder_manifest_sha256: draft.encoder_manifest_sha256.clone(),
            features_version: draft.spec.version,
            hash_buckets: draft.spec.hash_buckets,
        }),
        preprocessing: None,
        output: OutputSpec::Sigmoid(ClassOutput {
            classes: draft
                .heads
                .iter()
                .map(|(o, _)| o.as_str().to_owned())
                .collect(),
        }),
        labels,
        uncertainty: UncertaintyMethod::Ensemble(EnsembleUncertainty {
            members,
            max_evidence: draft.max_evidence,
        }),
        abstain: draft.abstain,
        text_evidence: None,
        zero_shot: None,
        intended_use: draft.intended_use.clone(),
        source: Source {
            fetch: if draft.redistributable {
                format!(
                    "committed; rebuilt by `fusion train` (seed {})",
                    draft.training.options.seed
                )
            } else {
                format!(
                    "trained at the site by `fusion train` (seed {}); not for distribution",
                    draft.training.options.seed
                )
            },
            // Local files, not fetched from a registry.
            registry: "repository".to_owned(),
            package: format!("models/packages/{}", draft.name),
            wheel_sha256: None,
            upstream: None,
            licence: if draft.redistributable {
                "Apache-2.0 (parameters fitted by this project)".to_owned()
            } else {
                format!(
                    "site-internal: parameters fitted on the data of the label map {}, whose \
                     terms do not allow sharing them",
                    draft.training.map
                )
            },
            redistributable: draft.redistributable,
            attribution: Some(format!("fitted on {}", draft.training.data)),
            converted_from: None,
        },
        training: Some(draft.training.clone()),
        files: vec![PackageFile {
            path: WEIGHTS_FILE.to_owned(),
            role: FileRole::Weights,
            sha256: hex::encode(Sha256::digest(&bytes)),
            size: bytes.len() as u64,
        }],
    };
    let mut text = String::from(
        "# A report-heads text package written by `fusion train` (see MODEL_CARD.md).\n\
         # Rebuild it with the command in the model card rather than editing it by hand:\n\
         # every figure below was measured, not chosen.\n",
    );
    text.push_str(&toml::to_string_pretty(&manifest).map_err(|e| e.to_string())?);
    // Read it back exactly as the service will.
    let parsed = Manifest::from_toml(&text, &dir.join(MANIFEST_FILE)).map_err(|e| e.to_string())?;
    check_writable(dir)?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    // Each file is written beside its place and renamed over it (never
    // through a link that stands there), the manifest last: a kill leaves
    // whole files, and at worst new weights under the old manifest, which
    // `fusion models verify` names and a re-run repairs.
    let write = |name: &str, data: &[u8]| {
        let target = dir.join(name);
        let staged = dir.join(format!(".{name}.{}.partial", std::process::id()));
        std::fs::write(&staged, data)
            .and_then(|()| std::fs::rename(&staged, &target))
            .map_err(|e| {
                let _ = std::fs::remove_file(&staged);
                format!("{}: {e}", target.display())
            })
    };
    write(WEIGHTS_FILE, &bytes)?;
    write(MODEL_CARD_FILE, model_card(draft, &parsed).as_bytes())?;
    write(MANIFEST_FILE, text.as_bytes())?;
    Ok(parsed)
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_owned(), |x| format!("{x:.3}"))
}

fn figures_row(o: Observation, f: &HeadFigures) -> String {
    format!(
        "| {} | {} / {} | {:.3} | {:.3} | {:.3} | {} | {} | {:.3} | {:.3} | {} | {} |\n",
        o.display_name(),
        f.positives,
        f.n,
        f.precision,
        f.recall,
        f.f1,
        fmt_opt(f.auroc),
        fmt_opt(f.average_precision),
        f.ece,
        f.brier,
        fmt_opt(f.coverage),
        fmt_opt(f.coverage_of_positives)
    )
}

/// Whether [`write_package`] may write into `dir`: a folder that already
/// holds a package other than report heads (the encoder, an image model) or
/// a manifest that cannot be read is never written over, so `fusion train
/// --out models/packages/minilm-l6-v2` cannot destroy the encoder it trains
/// on.
///
/// # Errors
/// Why `dir` is refused.
pub fn check_writable(dir: &Path) -> Result<(), String> {
    let existing = dir.join(MANIFEST_FILE);
    let Ok(text) = std::fs::read_to_string(&existing) else {
        return if existing.exists() {
            Err(format!(
                "{} exists and cannot be read: not writing over it",
                existing.display()
            ))
        } else {
            Ok(())
        };
    };
    match Manifest::from_toml(&text, &existing) {
        Ok(m) if m.architecture == Architecture::ReportHeads => Ok(()),
        Ok(m) => Err(format!(
            "{} holds the package {} ({:?}), not report heads: not writing over it",
            dir.display(),
            m.name,
            m.architecture
        )),
        Err(e) => Err(format!(
            "{} holds a manifest that does not parse ({e}): not writing over it (if it is a \
             report-heads package a killed `fusion train` left behind, remove the folder and train \
             again)",
            dir.display()
        )),
    }
}

fn model_card(draft: &PackageDraft, manifest: &Manifest) -> String {
    let t = &draft.training;
    let mut s = String::new();
    let _ = writeln!(s, "# Model card: {} {}\n", manifest.name, manifest.version);
    let _ = writeln!(s, "{}\n", manifest.description);
    s.push_str("## What it is\n\n");
    let _ = writeln!(
        s,
        "Per observation, an ensemble of {} L2-regularised logistic heads, each fitted on a \
         stratified bootstrap resample, on frozen features of the analysed report: the mention \
         labeller's note label, counted mentions by assertion and section, the phrases used \
         (hashed into {} buckets), and the mean all-MiniLM-L6-v2 embedding of the sentences that \
         mention the observation and of the impression{} (feature layout version {}; \
         `fusion_models::report_heads::features`). The encoder is the package `{}` (manifest \
         SHA-256 `{}`), unchanged. Calibration: temperature scaling of the members' mean logit, \
         fitted out of bag; class-conditional (Mondrian) split-conformal q̂ at α = {}, one per \
         true class, from the out-of-bag probabilities, so the positives of a rare finding are \
         covered on their own (Vovk et al. 2005, §4.5); the \
         decision threshold is half the best out-of-bag F1 (F*/2, the F1-optimal threshold of a \
         calibrated probability; Lipton et al., ECML PKDD 2014). The text branch turns the calibrated \
         probability and the members' variance into a Beta opinion whose base rate is the \
         observation's prevalence in the training split, so its projected probability is the \
         calibrated probability.\n",
        t.options.members,
        draft.spec.hash_buckets,
        if draft.spec.version >= 2 {
            ", and of the findings' and impression's sentences in which the labeller found no \
             counted mention (incidental findings such as degenerative changes or an old \
             granuloma, which a site's \"normal\" may exclude), with their count and the count of \
             old mentions"
        } else {
            ""
        },
        draft.spec.version,
        draft.encoder,
        draft.encoder_manifest_sha256,
        t.options.alpha
    );
    s.push_str("## Training data\n\n");
    let _ = writeln!(
        s,
        "`{}` (SHA-256 `{}`), split `{}`: {} reports, read through the label map `{}` (SHA-256 \
         `{}`). Source, as the map states it: {} The report text is not part of this package; \
         only fitted parameters are{}. Seed {}, C chosen from {:?} by out-of-bag log-loss. The \
         out-of-bag figures below count the reports some member left out (a report drawn into \
         every bootstrap resample has no out-of-bag prediction), so their n can be a few below \
         the reports trained on.\n",
        t.data,
        t.data_sha256,
        t.split,
        t.reports,
        t.map,
        t.map_sha256,
        draft.data_source.trim(),
        if draft.redistributable {
            ""
        } else {
            ", and they were fitted on this site's data: keep the package inside the site"
        },
        t.options.seed,
        t.options.c_grid
    );
    let header = "| observation | positives / n | precision | recall | F1 | AUROC | AP | ECE | Brier | coverage | coverage of positives |\n\
                  | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n";
    if t.labels.iter().any(|l| l.validation.is_some()) {
        let _ = writeln!(
            s,
            "## Figures on the `{}` split (never fitted on; {} reports)\n\n\
             The decision is p ≥ the head's threshold; ECE over 15 equal-width bins; coverage of \
             the conformal sets against the nominal {:.0} %, over all reports and over the gold \
             positives alone.\n",
            t.validation_split.as_deref().unwrap_or("validation"),
            t.validation_reports.unwrap_or(0),
            100.0 * (1.0 - t.options.alpha)
        );
        s.push_str(header);
        for l in &t.labels {
            if let Some(v) = &l.validation {
                s.push_str(&figures_row(l.observation, v));
            }
        }
        s.push('\n');
    }
    if t.labels.iter().any(|l| l.before.is_some()) {
        let _ = writeln!(
            s,
            "## Before and after, on the `{}` split\n\n\
             Before: the service without this package (the mention labeller's rules decide; \
             the fused probability comes from rule-based evidence and the encoder's zero-shot \
             prompts, uncalibrated, base rate 0.5). After: with it.\n\n\
             | observation | F1 before | F1 after | AUROC before | AUROC after | ECE before | ECE after |\n\
             | --- | --- | --- | --- | --- | --- | --- |",
            t.validation_split.as_deref().unwrap_or("validation"),
        );
        for l in &t.labels {
            if let (Some(b), Some(a)) = (&l.before, &l.validation) {
                let _ = writeln!(
                    s,
                    "| {} | {:.3} | {:.3} | {} | {} | {:.3} | {:.3} |",
                    l.observation.display_name(),
                    b.f1,
                    a.f1,
                    fmt_opt(b.auroc),
                    fmt_opt(a.auroc),
                    b.ece,
                    a.ece
                );
            }
        }
        s.push('\n');
        let worse: Vec<String> = t
            .labels
            .iter()
            .filter_map(|l| {
                let (b, a) = (l.before.as_ref()?, l.validation.as_ref()?);
                (a.f1 < b.f1).then(|| {
                    format!(
                        "{} (F1 {:.3} → {:.3})",
                        l.observation.display_name(),
                        b.f1,
                        a.f1
                    )
                })
            })
            .collect();
        if !worse.is_empty() {
            let _ = writeln!(
                s,
                "**Where the head decides worse than the rules on this split:** {}. The \
                 service still reports the head's decision for these (the choice was made on the \
                 training split, not here); read their calls with this in mind.\n",
                worse.join(", ")
            );
        }
    }
    s.push_str("## Out-of-bag figures on the training split\n\n");
    s.push_str(header);
    for l in &t.labels {
        s.push_str(&figures_row(l.observation, &l.out_of_bag));
    }
    s.push_str("\n## Base rates\n\n| observation | base rate | source |\n| --- | --- | --- |\n");
    for (o, h) in &draft.heads {
        let _ = writeln!(
            s,
            "| {} | {:.4} | gold prevalence in `{}` |",
            o.display_name(),
            h.prevalence,
            t.split
        );
    }
    for p in &t.priors {
        let _ = writeln!(
            s,
            "| {} | {:.4} | {} |",
            p.observation.display_name(),
            p.base_rate,
            p.source
        );
    }
    s.push_str(
        "\n## Intended use and limits\n\n\
         Decision support for reading chest radiograph reports: per observation, a calibrated \
         probability that the report's coders would tag it. **Not validated for clinical use.** \
         The labels follow the conventions of the training data (see `models/maps/CONVENTIONS.md`): \
         another site's conventions differ, and its own reviewed reports should be used to retrain \
         and re-measure (`fusion export reviews`, `fusion train`, `fusion eval reports`). \
         Observations with few positives have wide uncertainty in every figure above. English only.\n\n\
         ## Reproduce\n\n```sh\n",
    );
    let _ = writeln!(s, "{}\n```", draft.reproduce);
    s
}
