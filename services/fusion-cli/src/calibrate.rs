//! `fusion calibrate <package-dir> <labelled.csv>`: fit per-label
//! temperature scaling (and split-conformal q̂ where n allows) on a labelled
//! set, print ECE (15 bins) and Brier score before and after, and write the
//! result into the package's manifest.toml
//! ([`fusion_models::pipeline::calibrate`]).
//!
//! The CSV has a header and the columns `path,observation,label`: the path of
//! a DICOM file (image package) or a UTF-8 note (text package), relative to
//! the working directory or to the CSV's folder; a snake_case CheXpert
//! observation; and 0 or 1.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use fusion_models::package::{Modality, ModelPackage, Observation};
use fusion_models::pipeline::FrameValues;
use fusion_models::pipeline::calibrate::{self, CalibrationInput};

/// Arguments of `fusion calibrate`.
#[derive(Debug, clap::Args)]
pub struct CalibrateArgs {
    /// The package folder (its manifest.toml is updated).
    pub package: PathBuf,
    /// The labelled CSV: path,observation,label.
    pub csv: PathBuf,
    /// Conformal coverage 1 − α.
    #[arg(long, default_value_t = 0.9)]
    pub coverage: f64,
    /// Print the results without writing the manifest.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(serde::Deserialize)]
struct Row {
    path: String,
    observation: Observation,
    label: u8,
}

/// Runs `fusion calibrate`.
///
/// # Errors
/// Unreadable CSV or input files, a package that does not load, or a fit or
/// manifest write that fails.
pub fn run(args: &CalibrateArgs) -> anyhow::Result<ExitCode> {
    let manifest = ModelPackage::read_manifest(&args.package)?;
    let base = args.csv.parent().map(Path::to_path_buf).unwrap_or_default();
    let mut reader = csv::Reader::from_path(&args.csv)
        .with_context(|| format!("cannot read {}", args.csv.display()))?;
    let mut cases = Vec::new();
    for (i, row) in reader.deserialize::<Row>().enumerate() {
        let line = i + 2;
        let row = row.with_context(|| format!("{}:{line}", args.csv.display()))?;
        let present = match row.label {
            0 => false,
            1 => true,
            other => bail!("{}:{line}: label {other} is not 0 or 1", args.csv.display()),
        };
        let mut path = PathBuf::from(&row.path);
        if !path.exists() && path.is_relative() {
            path = base.join(&row.path);
        }
        let input = match manifest.modality {
            Modality::Image => read_dicom(&path)
                .with_context(|| format!("{}:{line}: {}", args.csv.display(), path.display()))?,
            Modality::Text => {
                CalibrationInput::Note(std::fs::read_to_string(&path).with_context(|| {
                    format!("{}:{line}: {}", args.csv.display(), path.display())
                })?)
            }
        };
        cases.push((input, row.observation, present));
    }
    let results = calibrate::fit(&args.package, &cases, args.coverage)?;
    println!(
        "{:<20} {:>4} {:>8} {:>8} {:>9} {:>9} {:>9} {:>9}  conformal",
        "observation", "n", "T before", "T after", "ECE bef.", "ECE aft.", "Brier b.", "Brier a."
    );
    for r in &results {
        let conformal = r.conformal.map_or_else(
            || format!("n too small for {:.0}% coverage", args.coverage * 100.0),
            |c| format!("q̂ = {:.4} (α = {:.2}, n = {})", c.qhat(), c.alpha(), c.n()),
        );
        println!(
            "{:<20} {:>4} {:>8.4} {:>8.4} {:>9.4} {:>9.4} {:>9.4} {:>9.4}  {conformal}",
            r.observation.as_str(),
            r.n,
            r.temperature_before,
            r.temperature_after,
            r.ece_before,
            r.ece_after,
            r.brier_before,
            r.brier_after
        );
    }
    if args.dry_run {
        println!("dry run: manifest not written");
        return Ok(ExitCode::SUCCESS);
    }
    calibrate::write_manifest(&args.package, &results)?;
    let pkg = ModelPackage::load(&args.package)?;
    println!(
        "wrote {}; package verifies (manifest SHA-256 {})",
        args.package.join("manifest.toml").display(),
        pkg.manifest_sha256()
    );
    Ok(ExitCode::SUCCESS)
}

/// Frame 1 of a greyscale DICOM file as stored values (the percentile window
/// of the preprocessing makes a positive linear modality LUT irrelevant).
fn read_dicom(path: &Path) -> anyhow::Result<CalibrationInput> {
    let bytes = std::fs::read(path)?;
    let object = fusion_imaging::read(&bytes)?;
    let pixels = fusion_imaging::decode_pixels(&object)?;
    if pixels.samples_per_pixel != 1 {
        bail!("not a greyscale image ({})", pixels.photometric);
    }
    let range = pixels.frame_range(1).context("the image has no frame 1")?;
    #[allow(clippy::cast_possible_truncation)] // f32 precision is what the model reads
    let values = pixels
        .samples
        .to_f64(range)
        .into_iter()
        .map(|v| v as f32)
        .collect();
    Ok(CalibrationInput::Image {
        frame: FrameValues {
            rows: pixels.rows,
            columns: pixels.columns,
            values,
        },
        photometric_interpretation: pixels.photometric,
    })
}

/// Audits a package change made by `fusion calibrate` (DICOM 110113 Security
/// Alert, action U): the package's name, version and new manifest SHA-256,
/// with the operating-system user as the agent.
pub(crate) async fn audit_change(
    settings: &fusion_app::Settings,
    package: &Path,
) -> anyhow::Result<()> {
    let pkg = ModelPackage::load(package)?;
    let manifest = pkg.manifest();
    let state = fusion_app::connect_storage(settings).await?;
    let op = fusion_app::admin::Operator::current();
    let record = fusion_store::AuditRecord::builder(
        fusion_store::AuditEventType::SecurityAlert,
        "model-package-calibrate",
        fusion_store::AuditAction::Update,
        op.agent(),
    )
    .outcome_desc(format!(
        "calibration written; manifest SHA-256 {}",
        pkg.manifest_sha256()
    ))
    .entity(
        fusion_store::EntityKind::ModelPackage,
        format!("{}@{}", manifest.name, manifest.version),
    )
    .build();
    state.repository.append_audit(&record).await?;
    Ok(())
}
