//! `fusion eval reports <csv> --map <toml> [--split S] [--json] [--plots DIR]`:
//! every report through the service's note path and models pipeline
//! (text only, so the fused opinion is the text opinion), scored against
//! the report-level gold of the mapped observations.
//!
//! Per observation: support; the labeller's precision, recall and F1
//! (positive vs the rest, uncertain counted as positive); the decision the
//! service reports (a trained head's p ≥ its threshold where a head exists,
//! else the labeller) with its precision, recall and F1; AUROC, average
//! precision, ECE (15 equal-width bins) and Brier score of the fused
//! probability the dashboard shows; coverage of the fused conformal sets;
//! and the mean probability of reports that do not mention the observation
//! beside its prior. Macro and micro averages over every mapped observation
//! and over [`super::EIGHT`].

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use fusion_models::calibration::{ECE_BINS, brier_score, expected_calibration_error};
use fusion_models::conformal::BinaryClass;
use fusion_models::metrics::{Confusion, ReliabilityBin, auroc, average_precision, reliability};
use fusion_models::{CaseInput, NoteInput, Pipeline};
use fusion_notes::labelled::LabelMap;
use fusion_schemas::{NoteLabel, Observation};
use serde::Serialize;

use super::plots::{Diagram, write_reliability};
use super::uncertainty::{EceConsistency, Interval, ece_consistency, f1_intervals};
use super::{AnalysedReport, EIGHT};

/// Arguments of `fusion eval reports`.
#[derive(Debug, clap::Args)]
pub struct EvalReportsArgs {
    /// The labelled CSV.
    pub csv: PathBuf,
    /// The label map (TOML).
    #[arg(long)]
    pub map: PathBuf,
    /// Only reports of this split (e.g. `validation`).
    #[arg(long)]
    pub split: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// Write a reliability diagram per observation (SVG) into this folder.
    #[arg(long, value_name = "DIR")]
    pub plots: Option<PathBuf>,
    /// The model packages folder [default: FUSION_MODELS_DIR or models/packages].
    #[arg(long, value_name = "DIR")]
    pub models: Option<PathBuf>,
    /// Write every (report, observation) where the service's decision or
    /// the labeller disagrees with the gold as CSV (report ids, no text),
    /// for error analysis on a training split. An existing file is kept
    /// unless `--force`.
    #[arg(long, value_name = "FILE")]
    pub disagreements: Option<PathBuf>,
    /// Replace an existing `--disagreements` file (never an input).
    #[arg(long)]
    pub force: bool,
}

/// One (report, observation) where the decision or the labeller disagrees
/// with the gold.
#[derive(Debug, Clone, Serialize)]
pub struct Disagreement {
    /// The report's id in the CSV.
    pub report_id: String,
    /// The observation.
    pub observation: Observation,
    /// The gold.
    pub gold: bool,
    /// The labeller's label (uncertain counted as present).
    pub labeller: bool,
    /// The fused probability.
    pub probability: f64,
    /// The service's decision.
    pub decision: bool,
}

/// Precision, recall and F1 of one decision rule.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Scores {
    /// Counts.
    #[serde(flatten)]
    pub confusion: Confusion,
    /// Precision.
    pub precision: f64,
    /// Recall.
    pub recall: f64,
    /// F1.
    pub f1: f64,
}

impl Scores {
    fn of(confusion: Confusion) -> Self {
        Self {
            confusion,
            precision: confusion.precision(),
            recall: confusion.recall(),
            f1: confusion.f1(),
        }
    }
}

/// One observation's figures.
#[derive(Debug, Clone, Serialize)]
pub struct ObservationFigures {
    /// The observation.
    pub observation: Observation,
    /// Reports with gold for it.
    pub n: usize,
    /// Gold positives.
    pub support: usize,
    /// The labeller (positive or uncertain = present).
    pub labeller: Scores,
    /// `head` or `labeller`: what decides for the service.
    pub decided_by: String,
    /// The decision threshold on the probability (heads), if any.
    pub threshold: Option<f64>,
    /// The service's decision.
    pub decision: Scores,
    /// 95 % bootstrap interval of the decision's F1 (resampling reports).
    pub decision_f1_95: Option<Interval>,
    /// AUROC of the fused probability.
    pub auroc: Option<f64>,
    /// Average precision of the fused probability.
    pub average_precision: Option<f64>,
    /// ECE (15 bins) of the fused probability.
    pub ece: f64,
    /// The ECE chance alone gives a calibrated model on these cases.
    pub ece_chance: Option<EceConsistency>,
    /// Brier score of the fused probability.
    pub brier: f64,
    /// Fraction of reports whose fused conformal set holds the gold class
    /// (`None` when the observation has no calibrator).
    pub coverage: Option<f64>,
    /// Fraction of the gold positives whose fused conformal set holds
    /// "present" (class-conditional coverage; `None` without a positive or
    /// a calibrator).
    pub coverage_of_positives: Option<f64>,
    /// Mean conformal set size (0, 1 or 2 classes).
    pub mean_set_size: Option<f64>,
    /// Reports the labeller says do not mention the observation.
    pub not_mentioned: usize,
    /// Their mean fused probability.
    pub not_mentioned_mean_probability: Option<f64>,
    /// The prior the fusion uses for it.
    pub base_rate: f64,
    /// Whether a trained, calibrated head produced the probability.
    pub calibrated: bool,
    /// Reliability diagram of the fused probability.
    pub reliability: Vec<ReliabilityBin>,
}

/// Averages of F1 and AUROC.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Averages {
    /// Observations averaged.
    pub observations: usize,
    /// Macro F1 of the labeller.
    pub labeller_macro_f1: f64,
    /// Micro F1 of the labeller (pooled counts).
    pub labeller_micro_f1: f64,
    /// Macro F1 of the service's decision.
    pub decision_macro_f1: f64,
    /// Micro F1 of the service's decision.
    pub decision_micro_f1: f64,
    /// Macro AUROC of the fused probability (observations where defined).
    pub macro_auroc: f64,
    /// 95 % bootstrap interval of the decision's macro-F1.
    pub decision_macro_f1_95: Option<Interval>,
}

/// The whole evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct EvalReport {
    /// The CSV's file name.
    pub data: String,
    /// Its SHA-256.
    pub data_sha256: String,
    /// The map's name.
    pub map: String,
    /// The split, if one was chosen.
    pub split: Option<String>,
    /// Reports evaluated.
    pub reports: usize,
    /// Reports the intake refused (no text).
    pub refused: usize,
    /// The packages the pipeline loaded (`name@version` and status).
    pub packages: Vec<String>,
    /// Per observation, CheXpert order.
    pub observations: Vec<ObservationFigures>,
    /// Over every mapped observation.
    pub all: Averages,
    /// Over the eight findings of [`EIGHT`].
    pub eight: Averages,
    /// Every disagreement with the gold, CheXpert order then report order
    /// (not serialised: `--disagreements` writes them).
    #[serde(skip)]
    pub disagreements: Vec<Disagreement>,
}

/// Per-report outputs for one observation.
struct Row {
    report: usize,
    gold: bool,
    labeller: bool,
    mentioned: bool,
    probability: f64,
    decision: bool,
    set: Option<(bool, usize)>,
}

/// Runs the pipeline on every report and scores it.
#[must_use]
pub fn evaluate(
    reports: &[AnalysedReport],
    refused: usize,
    map: &LabelMap,
    pipeline: &Pipeline,
    data: (&str, &str),
    split: Option<&str>,
) -> EvalReport {
    let observations = map.mapped();
    let mut rows: BTreeMap<Observation, Vec<Row>> = BTreeMap::new();
    let mut decided_by: BTreeMap<Observation, (String, Option<f64>, bool)> = BTreeMap::new();
    let started = std::time::Instant::now();
    for (k, r) in reports.iter().enumerate() {
        let input = CaseInput {
            images: Vec::new(),
            notes: vec![NoteInput {
                note_id: r.report.id.clone(),
                text: r.text.clone(),
                labels: BTreeMap::new(),
                excluded: None,
                analysis: Some(r.analysis.clone()),
            }],
        };
        let out = pipeline.predict(&input);
        for &o in &observations {
            let Some(&gold) = r.report.gold.get(&o) else {
                continue;
            };
            let label = r
                .analysis
                .labels
                .get(&o)
                .copied()
                .unwrap_or(NoteLabel::NotMentioned);
            let labeller = matches!(label, NoteLabel::Positive | NoteLabel::Uncertain);
            let fused = out.fused.get(o.as_str());
            let probability =
                fused.map_or(pipeline.base_rate(o), |f| f.opinion.projected_probability());
            let head = out
                .branches
                .text
                .opinions
                .get(o.as_str())
                .and_then(|b| b.head.as_ref());
            let decision = match head {
                Some(h) => probability >= h.decision_threshold,
                None => labeller,
            };
            decided_by.entry(o).or_insert_with(|| match head {
                Some(h) => ("head".to_owned(), Some(h.decision_threshold), true),
                None => ("labeller".to_owned(), None, false),
            });
            let set = fused.and_then(|f| f.prediction_set).map(|s| {
                let truth = if gold {
                    BinaryClass::Present
                } else {
                    BinaryClass::Absent
                };
                (s.contains(truth), s.len())
            });
            rows.entry(o).or_default().push(Row {
                report: k,
                gold,
                labeller,
                mentioned: label != NoteLabel::NotMentioned,
                probability,
                decision,
                set,
            });
        }
        if (k + 1) % 100 == 0 {
            eprintln!(
                "fusion: {} / {} reports ({:.0} s)",
                k + 1,
                reports.len(),
                started.elapsed().as_secs_f64()
            );
        }
    }
    let mut figures: Vec<ObservationFigures> = observations
        .iter()
        .filter_map(|&o| {
            let rows = rows.get(&o)?;
            let pairs: Vec<(f64, bool)> = rows.iter().map(|r| (r.probability, r.gold)).collect();
            let sets: Vec<(bool, usize)> = rows.iter().filter_map(|r| r.set).collect();
            let not_mentioned: Vec<f64> = rows
                .iter()
                .filter(|r| !r.mentioned)
                .map(|r| r.probability)
                .collect();
            let (by, threshold, calibrated) =
                decided_by
                    .get(&o)
                    .cloned()
                    .unwrap_or(("labeller".to_owned(), None, false));
            Some(ObservationFigures {
                observation: o,
                n: rows.len(),
                support: rows.iter().filter(|r| r.gold).count(),
                labeller: Scores::of(Confusion::of(rows.iter().map(|r| (r.labeller, r.gold)))),
                decided_by: by,
                threshold,
                decision: Scores::of(Confusion::of(rows.iter().map(|r| (r.decision, r.gold)))),
                decision_f1_95: None,
                auroc: auroc(&pairs),
                average_precision: average_precision(&pairs),
                ece: expected_calibration_error(&pairs, ECE_BINS).unwrap_or(f64::NAN),
                ece_chance: ece_consistency(&pairs),
                brier: brier_score(&pairs).unwrap_or(f64::NAN),
                coverage: (sets.len() == rows.len() && !sets.is_empty())
                    .then(|| sets.iter().filter(|s| s.0).count() as f64 / sets.len() as f64),
                coverage_of_positives: {
                    let positives: Vec<bool> = rows
                        .iter()
                        .filter(|r| r.gold)
                        .filter_map(|r| r.set.map(|s| s.0))
                        .collect();
                    (sets.len() == rows.len() && !positives.is_empty()).then(|| {
                        positives.iter().filter(|&&c| c).count() as f64 / positives.len() as f64
                    })
                },
                mean_set_size: (sets.len() == rows.len() && !sets.is_empty())
                    .then(|| sets.iter().map(|s| s.1).sum::<usize>() as f64 / sets.len() as f64),
                not_mentioned: not_mentioned.len(),
                not_mentioned_mean_probability: (!not_mentioned.is_empty())
                    .then(|| not_mentioned.iter().sum::<f64>() / not_mentioned.len() as f64),
                base_rate: pipeline.base_rate(o),
                calibrated,
                reliability: reliability(&pairs),
            })
        })
        .collect();
    let average = |keep: &dyn Fn(Observation) -> bool| -> Averages {
        let chosen: Vec<&ObservationFigures> =
            figures.iter().filter(|f| keep(f.observation)).collect();
        let n = chosen.len().max(1) as f64;
        let pooled = |pick: &dyn Fn(&ObservationFigures) -> Confusion| {
            let mut c = Confusion::default();
            for f in &chosen {
                let x = pick(f);
                c.true_positive += x.true_positive;
                c.false_positive += x.false_positive;
                c.false_negative += x.false_negative;
                c.true_negative += x.true_negative;
            }
            c.f1()
        };
        let aurocs: Vec<f64> = chosen.iter().filter_map(|f| f.auroc).collect();
        Averages {
            observations: chosen.len(),
            labeller_macro_f1: chosen.iter().map(|f| f.labeller.f1).sum::<f64>() / n,
            labeller_micro_f1: pooled(&|f| f.labeller.confusion),
            decision_macro_f1: chosen.iter().map(|f| f.decision.f1).sum::<f64>() / n,
            decision_micro_f1: pooled(&|f| f.decision.confusion),
            macro_auroc: aurocs.iter().sum::<f64>() / aurocs.len().max(1) as f64,
            decision_macro_f1_95: None,
        }
    };
    // Bootstrap intervals over reports: every observation's rows indexed by
    // report, so one resample moves them all together.
    let decisions = |o: Observation| {
        let mut d = vec![None; reports.len()];
        for r in rows.get(&o).into_iter().flatten() {
            d[r.report] = Some((r.decision, r.gold));
        }
        d
    };
    let order: Vec<Observation> = figures.iter().map(|f| f.observation).collect();
    let interval_of = |keep: &dyn Fn(Observation) -> bool| {
        let chosen: Vec<_> = order
            .iter()
            .copied()
            .filter(|&o| keep(o))
            .map(decisions)
            .collect();
        f1_intervals(&chosen)
    };
    let mut all = average(&|_| true);
    let mut eight = average(&|o| EIGHT.contains(&o));
    eight.decision_macro_f1_95 = interval_of(&|o| EIGHT.contains(&o)).map(|(_, m)| m);
    if let Some((per, m)) = interval_of(&|_| true) {
        all.decision_macro_f1_95 = Some(m);
        for (f, i) in figures.iter_mut().zip(per) {
            f.decision_f1_95 = Some(i);
        }
    }
    let disagreements = observations
        .iter()
        .flat_map(|&o| rows.get(&o).into_iter().flatten().map(move |r| (o, r)))
        .filter(|(_, r)| r.decision != r.gold || r.labeller != r.gold)
        .map(|(o, r)| Disagreement {
            report_id: reports[r.report].report.id.clone(),
            observation: o,
            gold: r.gold,
            labeller: r.labeller,
            probability: r.probability,
            decision: r.decision,
        })
        .collect();
    EvalReport {
        disagreements,
        data: data.0.to_owned(),
        data_sha256: data.1.to_owned(),
        map: map.name.clone(),
        split: split.map(str::to_owned),
        reports: reports.len(),
        refused,
        packages: pipeline
            .packages()
            .iter()
            .map(|p| {
                let head = format!("{}@{} ({:?}", p.name, p.version, p.status).to_lowercase();
                match &p.reason {
                    Some(why) if p.status != fusion_schemas::PackageStatus::Loaded => {
                        format!("{head}: {why})")
                    }
                    _ => format!("{head})"),
                }
            })
            .collect(),
        all,
        eight,
        observations: figures,
    }
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "    —".to_owned(), |x| format!("{x:5.3}"))
}

impl std::fmt::Display for EvalReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "{} (SHA-256 {}…), map {}, split {}: {} reports ({} refused by intake)",
            self.data,
            &self.data_sha256[..12.min(self.data_sha256.len())],
            self.map,
            self.split.as_deref().unwrap_or("all"),
            self.reports,
            self.refused
        )?;
        writeln!(f, "packages: {}", self.packages.join(", "))?;
        writeln!(f)?;
        writeln!(
            f,
            "{:<26} {:>9} | {:>5} {:>5} {:>5} | {:<8} {:>5} {:>5} {:>5} | {:>5} {:>5} {:>5} {:>5} | {:>5} {:>5} {:>4} | {:>9}",
            "observation",
            "pos/n",
            "lab P",
            "lab R",
            "lab F",
            "decision",
            "P",
            "R",
            "F1",
            "AUROC",
            "AP",
            "ECE",
            "Brier",
            "cover",
            "cov+",
            "set",
            "nm p / a"
        )?;
        for o in &self.observations {
            writeln!(
                f,
                "{:<26} {:>4}/{:<4} | {:5.3} {:5.3} {:5.3} | {:<8} {:5.3} {:5.3} {:5.3} | {} {} {:5.3} {:5.3} | {} {} {} | {} / {:.3}{}",
                o.observation.display_name(),
                o.support,
                o.n,
                o.labeller.precision,
                o.labeller.recall,
                o.labeller.f1,
                o.decided_by,
                o.decision.precision,
                o.decision.recall,
                o.decision.f1,
                opt(o.auroc),
                opt(o.average_precision),
                o.ece,
                o.brier,
                opt(o.coverage),
                opt(o.coverage_of_positives),
                o.mean_set_size
                    .map_or_else(|| "   —".to_owned(), |s| format!("{s:4.2}")),
                o.not_mentioned_mean_probability
                    .map_or_else(|| "—".to_owned(), |p| format!("{p:.3}")),
                o.base_rate,
                if o.calibrated {
                    ""
                } else {
                    "  (not calibrated)"
                }
            )?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "{:<26} | {:>5} {:>15} | {:>5} {:>9} {:>6}",
            "how sure (95 %)", "F1", "interval", "ECE", "chance95", "p"
        )?;
        for o in &self.observations {
            let (lo, hi) = o
                .decision_f1_95
                .map_or((f64::NAN, f64::NAN), |i| (i.low, i.high));
            let (c95, p) = o
                .ece_chance
                .map_or((f64::NAN, f64::NAN), |c| (c.calibrated_p95, c.p_value));
            writeln!(
                f,
                "{:<26} | {:5.3} [{lo:5.3}, {hi:5.3}] | {:5.3} {c95:9.3} {p:6.3}",
                o.observation.display_name(),
                o.decision.f1,
                o.ece
            )?;
        }
        writeln!(f)?;
        for (name, a) in [
            ("all mapped", &self.all),
            ("the eight findings", &self.eight),
        ] {
            writeln!(
                f,
                "{name} ({}): labeller macro-F1 {:.3} micro-F1 {:.3}; decision macro-F1 {:.3} [95 % {}] micro-F1 {:.3}; macro AUROC {:.3}",
                a.observations,
                a.labeller_macro_f1,
                a.labeller_micro_f1,
                a.decision_macro_f1,
                a.decision_macro_f1_95
                    .map_or_else(|| "—".to_owned(), |i| format!("{:.3}–{:.3}", i.low, i.high)),
                a.decision_micro_f1,
                a.macro_auroc
            )?;
        }
        writeln!(
            f,
            "\nlab: the mention labeller (uncertain counted as present); decision: what the service reports \
             (a trained head's p ≥ its threshold, else the labeller); AUROC … Brier: the fused probability; \
             cover: conformal coverage (nominal 0.90), cov+: coverage of the gold positives alone, set: mean set size; nm p / a: mean probability of \
             reports that do not mention it / the prior. how sure: the decision's F1 with its 95 % \
             bootstrap interval over reports; the ECE beside the 95th percentile a perfectly calibrated \
             model reaches by chance on the same probabilities (chance95) and how often it reaches the \
             observed ECE (p; small means more than chance)."
        )
    }
}

/// Runs `fusion eval reports`.
///
/// # Errors
/// Unreadable CSV, map or plots folder.
pub fn run(args: &EvalReportsArgs, models_dir: &Path) -> anyhow::Result<ExitCode> {
    if let Some(path) = &args.disagreements {
        // The same file whatever the name: symbolic and hard links too.
        let same = |other: &Path| {
            use std::os::unix::fs::MetadataExt as _;
            std::fs::metadata(other)
                .ok()
                .zip(std::fs::metadata(path).ok())
                .is_some_and(|(a, b)| a.dev() == b.dev() && a.ino() == b.ino())
        };
        if same(&args.csv) || same(&args.map) {
            anyhow::bail!(
                "--disagreements {} is an input of this evaluation; nothing was written",
                path.display()
            );
        }
        if !args.force && std::fs::symlink_metadata(path).is_ok() {
            anyhow::bail!(
                "--disagreements {} exists: kept (give --force to replace it)",
                path.display()
            );
        }
    }
    let map = LabelMap::read(&args.map)?;
    let (reports, refused) = super::load(&args.csv, &map, args.split.as_deref())?;
    if reports.is_empty() {
        anyhow::bail!(
            "no report in {} for split {:?}",
            args.csv.display(),
            args.split.as_deref().unwrap_or("(all)")
        );
    }
    if !models_dir.is_dir() {
        anyhow::bail!(
            "the models folder {} does not exist: nothing to evaluate with",
            models_dir.display()
        );
    }
    let pipeline = Pipeline::load(models_dir);
    let sha = super::file_sha256(&args.csv)?;
    let name = args
        .csv
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let report = evaluate(
        &reports,
        refused,
        &map,
        &pipeline,
        (&name, &sha),
        args.split.as_deref(),
    );
    if let Some(dir) = &args.plots {
        let diagrams: Vec<Diagram<'_>> = report
            .observations
            .iter()
            .map(|o| Diagram {
                stem: o.observation.as_str(),
                title: format!(
                    "{} — {} positives / {} reports, ECE {:.3}{}",
                    o.observation.display_name(),
                    o.support,
                    o.n,
                    o.ece,
                    if o.calibrated {
                        ""
                    } else {
                        " (not calibrated)"
                    }
                ),
                bins: &o.reliability,
            })
            .collect();
        write_reliability(dir, &diagrams)?;
    }
    if let Some(path) = &args.disagreements {
        let mut out = csv::Writer::from_path(path)
            .map_err(|e| anyhow::anyhow!("writing {}: {e}", path.display()))?;
        for d in &report.disagreements {
            // A spreadsheet runs a cell that starts with = + - @ as a
            // formula (CSV injection, OWASP): such an id gets a leading '.
            let mut row = d.clone();
            if row
                .report_id
                .trim_start_matches(' ')
                .starts_with(['=', '+', '-', '@', '\t', '\r'])
            {
                row.report_id.insert(0, '\'');
            }
            out.serialize(&row)?;
        }
        out.flush()?;
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    Ok(ExitCode::SUCCESS)
}
