//! Reliability diagrams as standalone SVG files: per observation, the mean
//! predicted probability against the observed rate in each of the 15
//! equal-width bins, the diagonal of perfect calibration, and the bin
//! counts as a histogram underneath (DeGroot & Fienberg 1983; Guo et al.
//! 2017, Fig. 1).

use std::path::Path;

use anyhow::Context;
use fusion_models::metrics::{ReliabilityBin, reliability_svg};

/// One diagram to draw: the file's stem (`reliability-<stem>.svg`), the
/// title above the plot, and the 15 bins.
pub struct Diagram<'a> {
    /// The observation's snake-case name, e.g. `pleural_effusion`.
    pub stem: &'a str,
    /// The title drawn above the plot.
    pub title: String,
    /// The reliability bins, 15 equal-width bins over [0, 1].
    pub bins: &'a [ReliabilityBin],
}

/// Writes `reliability-<stem>.svg` for every diagram into `dir` (created if
/// missing).
///
/// # Errors
/// The folder or a file cannot be written.
pub fn write_reliability(dir: &Path, diagrams: &[Diagram<'_>]) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for d in diagrams {
        let svg = reliability_svg(&d.title, d.bins);
        let path = dir.join(format!("reliability-{}.svg", d.stem));
        std::fs::write(&path, svg).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}
