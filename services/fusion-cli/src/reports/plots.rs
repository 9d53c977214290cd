//! Reliability diagrams as standalone SVG files: per observation, the mean
//! predicted probability against the observed rate in each of the 15
//! equal-width bins, the diagonal of perfect calibration, and the bin
//! counts as a histogram underneath (DeGroot & Fienberg 1983; Guo et al.
//! 2017, Fig. 1).

use std::path::Path;

use anyhow::Context;
use fusion_models::metrics::reliability_svg;

use super::eval::EvalReport;

/// Writes `reliability-<observation>.svg` for every observation of `report`
/// into `dir` (created if missing).
///
/// # Errors
/// The folder or a file cannot be written.
pub fn write_reliability(dir: &Path, report: &EvalReport) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for o in &report.observations {
        let title = format!(
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
        );
        let svg = reliability_svg(&title, &o.reliability);
        let path = dir.join(format!("reliability-{}.svg", o.observation.as_str()));
        std::fs::write(&path, svg).with_context(|| format!("cannot write {}", path.display()))?;
    }
    Ok(())
}
