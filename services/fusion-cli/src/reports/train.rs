//! `fusion train <csv> --map <toml> [--out DIR]`: fits report heads on the
//! `train` split of a site's labelled reports (frozen MiniLM embeddings and
//! the mention labeller's findings as features;
//! [`fusion_models::report_heads`]), writes a versioned model package, then
//! measures it on the validation split through the service's pipeline and
//! writes those figures into its manifest and model card. Nothing is fitted
//! on the validation split.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use fusion_models::package::{IntendedUse, ModelPackage};
use fusion_models::report_heads::features::FeatureSpec;
use fusion_models::report_heads::logistic::Design;
use fusion_models::report_heads::{
    PackageDraft, Prior, TrainOptions, Training, TrainingLabel, train_head, write_package,
};
use fusion_models::{AbstainPolicy, Pipeline, TextEncoder};
use fusion_notes::labelled::LabelMap;
use fusion_schemas::{NoteLabel, Observation};

use super::{EmbeddingCache, file_sha256};

/// Most ensemble members per observation `--members` accepts (16 is the
/// default; each member is a full fit).
const MAX_MEMBERS: usize = 256;

/// Arguments of `fusion train`.
#[derive(Debug, clap::Args)]
pub struct TrainArgs {
    /// The labelled CSV.
    pub csv: PathBuf,
    /// The label map (TOML).
    #[arg(long)]
    pub map: PathBuf,
    /// The split to fit on.
    #[arg(long, default_value = "train")]
    pub split: String,
    /// The split to measure on afterwards (skipped when absent from the CSV).
    #[arg(long, default_value = "validation")]
    pub validation_split: String,
    /// Where to write the package.
    #[arg(long, default_value = "models/packages/openi-report-heads")]
    pub out: PathBuf,
    /// Package name (the folder name of `--out` by default).
    #[arg(long)]
    pub name: Option<String>,
    /// Package version.
    #[arg(long, default_value = "1.0.0")]
    pub version: String,
    /// The encoder package the features come from.
    #[arg(long, default_value = "minilm-l6-v2")]
    pub encoder: String,
    /// Seed of the bootstrap resamples.
    #[arg(long, default_value_t = TrainOptions::default().seed)]
    pub seed: u64,
    /// Ensemble members per observation.
    #[arg(long, default_value_t = TrainOptions::default().members)]
    pub members: usize,
    /// Conformal miscoverage α.
    #[arg(long, default_value_t = TrainOptions::default().alpha)]
    pub alpha: f64,
    /// Replace a heads package at `--out` that was trained with another
    /// label map.
    #[arg(long)]
    pub force: bool,
    /// Feature layout version (1 or 2; see `report_heads::features`).
    #[arg(long, default_value_t = FeatureSpec::default().version)]
    pub features_version: u32,
    /// Folder of the sentence-embedding cache [default: ~/.cache/fusion/embeddings].
    #[arg(long, value_name = "DIR")]
    pub cache: Option<PathBuf>,
    /// The model packages folder holding the encoder [default:
    /// FUSION_MODELS_DIR or models/packages].
    #[arg(long, value_name = "DIR")]
    pub models: Option<PathBuf>,
}

/// Runs `fusion train`.
///
/// # Errors
/// Unreadable inputs, no encoder, too little data, or a package that cannot
/// be written.
#[allow(clippy::too_many_lines)] // one linear procedure, commented step by step
pub fn run(args: &TrainArgs, models_dir: &Path) -> anyhow::Result<ExitCode> {
    if !fusion_models::report_heads::features::SUPPORTED_VERSIONS.contains(&args.features_version) {
        bail!(
            "--features-version {}: this build computes versions {:?}",
            args.features_version,
            fusion_models::report_heads::features::SUPPORTED_VERSIONS
        );
    }
    if !(1..=MAX_MEMBERS).contains(&args.members) {
        bail!("--members {}: between 1 and {MAX_MEMBERS}", args.members);
    }
    if !(args.alpha > 0.0 && args.alpha < 1.0) {
        bail!("--alpha {}: must lie strictly between 0 and 1", args.alpha);
    }
    if args.out.exists() && !args.out.is_dir() {
        bail!("--out {} is not a package folder", args.out.display());
    }
    fusion_models::report_heads::check_writable(&args.out).map_err(anyhow::Error::msg)?;
    let map = LabelMap::read(&args.map)?;
    // Heads trained on another map are another site's (the shipped Open-i
    // package under the default --out): never replaced by accident.
    if let Ok(existing) = ModelPackage::read_manifest(&args.out)
        && let Some(trained) = &existing.training
        && trained.map != map.name
        && !args.force
    {
        bail!(
            "--out {} holds heads trained with the map {:?}, not {:?}: choose another --out, \
             or give --force to replace them",
            args.out.display(),
            trained.map,
            map.name
        );
    }
    let (reports, refused) = super::load(&args.csv, &map, Some(&args.split))?;
    if reports.is_empty() {
        bail!(
            "no report of split {:?} in {}",
            args.split,
            args.csv.display()
        );
    }
    eprintln!(
        "fusion: {} reports in split {:?} ({refused} refused by intake)",
        reports.len(),
        args.split
    );
    let encoder_dir = models_dir.join(&args.encoder);
    let encoder_package = ModelPackage::load(&encoder_dir)
        .with_context(|| format!("the encoder package {}", encoder_dir.display()))?;
    let device = fusion_models::select_device().unwrap_or(fusion_models::Device::Cpu);
    let encoder = TextEncoder::from_package(&encoder_package, &device)?;

    // 1. Sentence embeddings of every analysed sentence (cached).
    let sentences: Vec<Vec<&str>> = reports
        .iter()
        .map(|r| {
            r.analysis
                .sentences
                .iter()
                .filter_map(|s| s.slice(&r.text))
                .collect()
        })
        .collect();
    let flat: Vec<&str> = sentences.iter().flatten().copied().collect();
    let mut cache = EmbeddingCache::open(encoder_package.manifest_sha256(), args.cache.as_deref());
    let embedded = cache.embed(&encoder, &flat)?;
    let mut it = embedded.into_iter();
    let per_report: Vec<Vec<Option<_>>> = sentences
        .iter()
        .map(|s| it.by_ref().take(s.len()).map(Some).collect())
        .collect();

    // 2. Per mapped observation with enough gold: features and a head.
    let spec = FeatureSpec {
        version: args.features_version,
        ..FeatureSpec::default()
    };
    let options = TrainOptions {
        members: args.members,
        seed: args.seed,
        alpha: args.alpha,
        ..TrainOptions::default()
    };
    let mut heads = Vec::new();
    let mut labels = Vec::new();
    for (stream, o) in Observation::ALL.iter().enumerate() {
        if !map.observations.contains_key(o) {
            continue;
        }
        let rows: Vec<usize> = (0..reports.len())
            .filter(|&i| reports[i].report.gold.contains_key(o))
            .collect();
        let mut values = Vec::with_capacity(rows.len() * spec.width());
        for &i in &rows {
            let x = spec
                .features(&reports[i].analysis, &per_report[i], &[*o])
                .pop()
                .unwrap_or_default();
            values.extend(x);
        }
        let design = Design {
            width: spec.width(),
            values,
        };
        let gold: Vec<bool> = rows.iter().map(|&i| reports[i].report.gold[o]).collect();
        let started = std::time::Instant::now();
        match train_head(&design, &gold, &options, stream as u64) {
            Ok(head) => {
                eprintln!(
                    "fusion: {:<26} C {:>4} T {:.2} threshold {:.2} out-of-bag AUROC {} F1 {:.3} ({:.0} s)",
                    o.display_name(),
                    head.c,
                    head.temperature.temperature(),
                    head.decision_threshold,
                    head.oob
                        .auroc
                        .map_or_else(|| "—".to_owned(), |a| format!("{a:.3}")),
                    head.oob.f1,
                    started.elapsed().as_secs_f64()
                );
                labels.push(TrainingLabel {
                    observation: *o,
                    positives: head.oob.positives,
                    c: head.c,
                    out_of_bag: head.oob,
                    validation: None,
                    validation_reliability: None,
                    before: None,
                });
                heads.push((*o, head));
            }
            Err(e) => eprintln!(
                "fusion: {}: no head ({e}); the rules stay",
                o.display_name()
            ),
        }
    }
    if heads.is_empty() {
        bail!("no observation has enough gold to train a head");
    }

    // 3. Priors of the observations without a head: the labeller's rate of
    //    positive or uncertain labels on this split (no gold).
    let priors: Vec<Prior> = Observation::ALL
        .iter()
        .filter(|o| !heads.iter().any(|(h, _)| h == *o))
        .map(|&o| {
            let hits = reports
                .iter()
                .filter(|r| {
                    matches!(
                        r.analysis.labels.get(&o),
                        Some(NoteLabel::Positive | NoteLabel::Uncertain)
                    )
                })
                .count();
            Prior {
                observation: o,
                base_rate: hits as f64 / reports.len() as f64,
                source: format!(
                    "the mention labeller's positive or uncertain rate on `{}`; no gold",
                    args.split
                ),
            }
        })
        .collect();

    let data = args
        .csv
        .file_name()
        .map_or_else(String::new, |n| n.to_string_lossy().into_owned());
    let name = match &args.name {
        Some(n) => n.clone(),
        None => args
            .out
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .context("--out has no folder name; give --name")?,
    };
    let mut draft = PackageDraft {
        name,
        version: args.version.clone(),
        description: format!(
            "Report heads for {} observations on frozen all-MiniLM-L6-v2 embeddings and the mention labeller, trained on {} ({})",
            heads.len(),
            map.name,
            args.split
        ),
        encoder: encoder_package.manifest().name.clone(),
        encoder_manifest_sha256: encoder_package.manifest_sha256().to_owned(),
        spec,
        heads,
        training: Training {
            data: data.clone(),
            data_sha256: file_sha256(&args.csv)?,
            map: map.name.clone(),
            map_sha256: file_sha256(&args.map)?,
            split: args.split.clone(),
            reports: reports.len(),
            validation_split: None,
            validation_reports: None,
            options,
            labels,
            priors,
        },
        data_source: map.source.clone(),
        redistributable: map.redistributable,
        reproduce: reproduce_command(args),
        max_evidence: 100.0,
        abstain: AbstainPolicy::new(0.8, 0.5)?,
        intended_use: IntendedUse {
            summary: "Chest radiograph reports in English: per CheXpert observation, the probability \
                      that the site's coders would tag the report with it, calibrated on the site's \
                      labelled reports. Decision support; not validated for clinical use."
                .to_owned(),
            validated_for_clinical_use: false,
            modalities: Vec::new(),
            body_parts: Vec::new(),
            views: Vec::new(),
            age_years: None,
            photometric_interpretations: Vec::new(),
            languages: vec!["en".to_owned()],
            out_of_range_age: None,
        },
    };
    write_package(&args.out, &draft).map_err(anyhow::Error::msg)?;
    eprintln!("fusion: wrote {}", args.out.display());

    // 4. Figures on the validation split, through the service's pipeline
    //    with the new package beside its encoder.
    let (validation, v_refused) = super::load(&args.csv, &map, Some(&args.validation_split))?;
    if validation.is_empty() {
        eprintln!(
            "fusion: no report of split {:?}: the package carries out-of-bag figures only",
            args.validation_split
        );
        return Ok(ExitCode::SUCCESS);
    }
    let (with_dir, pipeline) = linked_pipeline(models_dir, &args.out, true)?;
    let folder = args
        .out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned());
    let own = pipeline
        .packages()
        .into_iter()
        .find(|p| p.name == draft.name || Some(&p.name) == folder.as_ref());
    if let Some(problem) = match &own {
        None => Some("not found".to_owned()),
        Some(p) if p.status != fusion_schemas::PackageStatus::Loaded => Some(format!(
            "{:?}: {}",
            p.status,
            p.reason.as_deref().unwrap_or_default()
        )),
        Some(_) => None,
    } {
        let _ = std::fs::remove_dir_all(&with_dir);
        bail!(
            "the package written to {} does not load beside the packages of {} ({problem}); \
             nothing was measured on {:?}",
            args.out.display(),
            models_dir.display(),
            args.validation_split
        );
    }
    let sha = draft.training.data_sha256.clone();
    let report = super::eval::evaluate(
        &validation,
        v_refused,
        &map,
        &pipeline,
        (&data, &sha),
        Some(&args.validation_split),
    );
    let _ = std::fs::remove_dir_all(&with_dir);
    for label in &mut draft.training.labels {
        if let Some(f) = report
            .observations
            .iter()
            .find(|f| f.observation == label.observation)
        {
            label.validation = Some(head_figures(f));
            label.validation_reliability =
                Some(fusion_models::metrics::Reliability::of(&f.reliability));
        }
    }
    // 5. "Before": the same split through the service without this package.
    match linked_pipeline(models_dir, &args.out, false) {
        Ok((dir, baseline)) => {
            let before = super::eval::evaluate(
                &validation,
                v_refused,
                &map,
                &baseline,
                (&data, &sha),
                Some(&args.validation_split),
            );
            let _ = std::fs::remove_dir_all(&dir);
            for label in &mut draft.training.labels {
                if let Some(f) = before
                    .observations
                    .iter()
                    .find(|f| f.observation == label.observation)
                {
                    label.before = Some(head_figures(f));
                }
            }
        }
        Err(e) => eprintln!("fusion: no before figures: {e}"),
    }
    draft.training.validation_split = Some(args.validation_split.clone());
    draft.training.validation_reports = Some(validation.len());
    write_package(&args.out, &draft).map_err(anyhow::Error::msg)?;
    print!("{report}");
    Ok(ExitCode::SUCCESS)
}

/// The pipeline of the packages of `models_dir` other than report heads,
/// plus `out` itself when `with_out`: a private temporary
/// folder of symbolic links, so `out` may lie anywhere. Returns the folder
/// (the caller removes it) and the pipeline.
fn linked_pipeline(
    models_dir: &Path,
    out: &Path,
    with_out: bool,
) -> anyhow::Result<(PathBuf, Pipeline)> {
    let dir = std::env::temp_dir().join(format!(
        "fusion-train-{}-{}",
        if with_out { "after" } else { "before" },
        std::process::id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir)?;
    let own = out.file_name();
    for entry in std::fs::read_dir(models_dir)? {
        let path = entry?.path();
        // Only one report-heads package runs at a time: the others (the
        // shipped one beside a site's own) are left out of both runs, so
        // "after" is this package and "before" is the rules.
        let other_heads = ModelPackage::read_manifest(&path)
            .is_ok_and(|m| m.architecture == fusion_models::package::Architecture::ReportHeads);
        if path.is_dir()
            && path.file_name() != own
            && path.join("manifest.toml").is_file()
            && !other_heads
        {
            let target = std::fs::canonicalize(&path)?;
            if let Some(name) = path.file_name() {
                std::os::unix::fs::symlink(target, dir.join(name))?;
            }
        }
    }
    if with_out {
        let name =
            own.ok_or_else(|| anyhow::anyhow!("--out {} has no folder name", out.display()))?;
        std::os::unix::fs::symlink(std::fs::canonicalize(out)?, dir.join(name))?;
    }
    let pipeline = Pipeline::load(&dir);
    Ok((dir, pipeline))
}

/// The command line that rebuilds the package, every option spelled out
/// (paths as given).
fn reproduce_command(args: &TrainArgs) -> String {
    let mut cmd = format!(
        "fusion train {} --map {} \\\n  --out {} --split {} --validation-split {} \\\n  \
         --encoder {} --features-version {} --seed {} --members {} --alpha {}",
        args.csv.display(),
        args.map.display(),
        args.out.display(),
        args.split,
        args.validation_split,
        args.encoder,
        args.features_version,
        args.seed,
        args.members,
        args.alpha
    );
    if let Some(name) = &args.name {
        cmd.push_str(&format!(" --name {name}"));
    }
    if args.version != "1.0.0" {
        cmd.push_str(&format!(" --version {}", args.version));
    }
    cmd
}

/// One observation's evaluation as the manifest records it: the service's
/// decision and the fused probability's figures.
fn head_figures(f: &super::eval::ObservationFigures) -> fusion_models::report_heads::HeadFigures {
    fusion_models::report_heads::HeadFigures {
        n: f.n,
        positives: f.support,
        auroc: f.auroc,
        average_precision: f.average_precision,
        ece: f.ece,
        brier: f.brier,
        precision: f.decision.precision,
        recall: f.decision.recall,
        f1: f.decision.f1,
        coverage: f.coverage,
        coverage_of_positives: f.coverage_of_positives,
    }
}
