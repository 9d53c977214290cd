//! Reliability diagrams as standalone SVG files: per observation, the mean
//! predicted probability against the observed rate in each of the 15
//! equal-width bins, the diagonal of perfect calibration, and the bin
//! counts as a histogram underneath (DeGroot & Fienberg 1983; Guo et al.
//! 2017, Fig. 1).

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Context;
use fusion_models::metrics::ReliabilityBin;

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

/// Escapes text for an SVG text node.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// One reliability diagram, 420 × 440 px.
#[must_use]
pub fn reliability_svg(title: &str, bins: &[ReliabilityBin]) -> String {
    let (x0, y0, size) = (50.0, 40.0, 300.0);
    let px = |p: f64| x0 + p * size;
    let py = |p: f64| y0 + size - p * size;
    let mut s = String::new();
    let _ = write!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="420" height="440" viewBox="0 0 420 440" font-family="sans-serif" font-size="11">
<title>{t}</title>
<rect width="420" height="440" fill="#fff"/>
<text x="10" y="20" font-size="12">{t}</text>
<rect x="{x0}" y="{y0}" width="{size}" height="{size}" fill="none" stroke="#888"/>
<line x1="{a}" y1="{b}" x2="{c}" y2="{d}" stroke="#bbb" stroke-dasharray="4 3"/>
"##,
        t = escape(title),
        a = px(0.0),
        b = py(0.0),
        c = px(1.0),
        d = py(1.0)
    );
    for k in 0..=5 {
        let v = f64::from(k) / 5.0;
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" text-anchor="middle">{v:.1}</text><text x="{}" y="{}" text-anchor="end">{v:.1}</text>"#,
            px(v),
            y0 + size + 14.0,
            x0 - 4.0,
            py(v) + 4.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{}" y="{}" text-anchor="middle">mean predicted probability</text><text transform="translate(14 {}) rotate(-90)" text-anchor="middle">observed rate</text>"#,
        px(0.5),
        y0 + size + 30.0,
        py(0.5)
    );
    // Histogram of counts under the axis (log-ish: sqrt scale).
    let max = bins.iter().map(|b| b.count).max().unwrap_or(0).max(1) as f64;
    for b in bins {
        let h = 40.0 * (b.count as f64 / max).sqrt();
        let _ = writeln!(
            s,
            r##"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="#9bb"><title>{} reports</title></rect>"##,
            px(b.lower) + 1.0,
            y0 + size + 40.0 + (40.0 - h),
            (b.upper - b.lower) * size - 2.0,
            b.count
        );
    }
    let points: Vec<String> = bins
        .iter()
        .filter(|b| b.count > 0)
        .map(|b| format!("{:.1},{:.1}", px(b.mean_probability), py(b.observed_rate)))
        .collect();
    if !points.is_empty() {
        let _ = writeln!(
            s,
            r##"<polyline points="{}" fill="none" stroke="#246" stroke-width="1.5"/>"##,
            points.join(" ")
        );
    }
    for b in bins.iter().filter(|b| b.count > 0) {
        let _ = writeln!(
            s,
            r##"<circle cx="{:.1}" cy="{:.1}" r="{:.1}" fill="#246"><title>{:.2}–{:.2}: {} reports, mean p {:.3}, observed {:.3}</title></circle>"##,
            px(b.mean_probability),
            py(b.observed_rate),
            2.0 + (b.count as f64).ln_1p(),
            b.lower,
            b.upper,
            b.count,
            b.mean_probability,
            b.observed_rate
        );
    }
    s.push_str("</svg>\n");
    s
}
