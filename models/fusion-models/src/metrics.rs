//! Discrimination and classification metrics of one label's probabilities
//! against 0/1 gold: AUROC (Hanley & McNeil, Radiology 1982: the probability
//! that a random positive scores above a random negative, ties counting ½),
//! average precision (the area under the precision–recall step curve, as
//! scikit-learn's `average_precision_score`), and precision, recall and F1 at
//! a threshold; plus the reliability diagram behind the ECE of
//! [`crate::calibration`].

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::calibration::ECE_BINS;

/// Area under the ROC curve of `(p, gold)` pairs, ties counting ½; `None`
/// when one class is absent (undefined).
#[must_use]
pub fn auroc(pairs: &[(f64, bool)]) -> Option<f64> {
    let mut sorted: Vec<(f64, bool)> = pairs.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let positives = sorted.iter().filter(|p| p.1).count();
    let negatives = sorted.len() - positives;
    if positives == 0 || negatives == 0 {
        return None;
    }
    // Mann–Whitney U with mid-ranks for ties.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j < sorted.len() && sorted[j].0 == sorted[i].0 {
            j += 1;
        }
        // Ranks i+1 ..= j share their mean.
        let mid = (i + 1 + j) as f64 / 2.0;
        rank_sum += mid * sorted[i..j].iter().filter(|p| p.1).count() as f64;
        i = j;
    }
    let (np, nn) = (positives as f64, negatives as f64);
    Some((rank_sum - np * (np + 1.0) / 2.0) / (np * nn))
}

/// Average precision Σₖ (Rₖ − Rₖ₋₁)·Pₖ over the distinct thresholds from
/// the highest score down; `None` without a positive.
#[must_use]
pub fn average_precision(pairs: &[(f64, bool)]) -> Option<f64> {
    let mut sorted: Vec<(f64, bool)> = pairs.to_vec();
    sorted.sort_by(|a, b| b.0.total_cmp(&a.0));
    let positives = sorted.iter().filter(|p| p.1).count();
    if positives == 0 {
        return None;
    }
    let (mut tp, mut ap, mut last_recall) = (0_usize, 0.0, 0.0);
    let mut i = 0;
    while i < sorted.len() {
        let mut j = i;
        while j < sorted.len() && sorted[j].0 == sorted[i].0 {
            tp += usize::from(sorted[j].1);
            j += 1;
        }
        let recall = tp as f64 / positives as f64;
        let precision = tp as f64 / j as f64;
        ap += (recall - last_recall) * precision;
        last_recall = recall;
        i = j;
    }
    Some(ap)
}

/// Counts of a binary decision against gold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Confusion {
    /// Decided present, gold present.
    pub true_positive: usize,
    /// Decided present, gold absent.
    pub false_positive: usize,
    /// Decided absent, gold present.
    pub false_negative: usize,
    /// Decided absent, gold absent.
    pub true_negative: usize,
}

impl Confusion {
    /// Tallies `(decided present, gold present)` pairs.
    #[must_use]
    pub fn of(decisions: impl IntoIterator<Item = (bool, bool)>) -> Self {
        let mut c = Self::default();
        for (decided, gold) in decisions {
            match (decided, gold) {
                (true, true) => c.true_positive += 1,
                (true, false) => c.false_positive += 1,
                (false, true) => c.false_negative += 1,
                (false, false) => c.true_negative += 1,
            }
        }
        c
    }

    /// TP / (TP + FP); 0 when nothing was decided present.
    #[must_use]
    pub fn precision(&self) -> f64 {
        ratio(self.true_positive, self.true_positive + self.false_positive)
    }

    /// TP / (TP + FN); 0 when nothing is gold present.
    #[must_use]
    pub fn recall(&self) -> f64 {
        ratio(self.true_positive, self.true_positive + self.false_negative)
    }

    /// Harmonic mean of precision and recall, 2TP / (2TP + FP + FN); 0 when
    /// both are 0.
    #[must_use]
    pub fn f1(&self) -> f64 {
        ratio(
            2 * self.true_positive,
            2 * self.true_positive + self.false_positive + self.false_negative,
        )
    }
}

fn ratio(a: usize, b: usize) -> f64 {
    if b == 0 { 0.0 } else { a as f64 / b as f64 }
}

/// One bin of a reliability diagram.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ReliabilityBin {
    /// Lower edge of the bin, in [0, 1).
    pub lower: f64,
    /// Upper edge.
    pub upper: f64,
    /// Cases in the bin.
    pub count: usize,
    /// Mean predicted probability (0 when empty).
    pub mean_probability: f64,
    /// Fraction of gold positives (0 when empty).
    pub observed_rate: f64,
}

/// A reliability diagram in the compact form stored in manifests: per bin
/// (k = 0 … 14, bin k covers [k/15, (k+1)/15)), the count, the mean
/// predicted probability and the observed rate (0 when the bin is empty).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reliability {
    /// Cases per bin.
    pub counts: Vec<usize>,
    /// Mean predicted probability per bin.
    pub mean_probability: Vec<f64>,
    /// Fraction of gold positives per bin.
    pub observed_rate: Vec<f64>,
}

impl Reliability {
    /// The compact form of `bins`.
    #[must_use]
    pub fn of(bins: &[ReliabilityBin]) -> Self {
        Self {
            counts: bins.iter().map(|b| b.count).collect(),
            mean_probability: bins.iter().map(|b| b.mean_probability).collect(),
            observed_rate: bins.iter().map(|b| b.observed_rate).collect(),
        }
    }

    /// The bins back (equal width over [0, 1]).
    #[must_use]
    pub fn bins(&self) -> Vec<ReliabilityBin> {
        let n = self.counts.len().max(1) as f64;
        self.counts
            .iter()
            .zip(&self.mean_probability)
            .zip(&self.observed_rate)
            .enumerate()
            .map(
                |(k, ((&count, &mean_probability), &observed_rate))| ReliabilityBin {
                    lower: k as f64 / n,
                    upper: (k + 1) as f64 / n,
                    count,
                    mean_probability,
                    observed_rate,
                },
            )
            .collect()
    }
}

/// The reliability diagram of `(p, gold)` pairs with [`ECE_BINS`]
/// equal-width bins, binned as [`crate::calibration::expected_calibration_error`]
/// bins them (bin k = min(⌊p·15⌋, 14)).
#[must_use]
pub fn reliability(pairs: &[(f64, bool)]) -> Vec<ReliabilityBin> {
    let bins = ECE_BINS;
    let mut acc = vec![(0_usize, 0.0_f64, 0_usize); bins];
    for &(p, y) in pairs {
        if !(0.0..=1.0).contains(&p) {
            continue;
        }
        let k = ((p * bins as f64) as usize).min(bins - 1);
        acc[k].0 += 1;
        acc[k].1 += p;
        acc[k].2 += usize::from(y);
    }
    acc.iter()
        .enumerate()
        .map(|(k, &(count, sum_p, pos))| ReliabilityBin {
            lower: k as f64 / bins as f64,
            upper: (k + 1) as f64 / bins as f64,
            count,
            mean_probability: if count == 0 {
                0.0
            } else {
                sum_p / count as f64
            },
            observed_rate: ratio(pos, count),
        })
        .collect()
}

/// Escapes text for an SVG text node.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A reliability diagram as a standalone SVG document, 420 × 440 px: the
/// mean predicted probability against the observed rate per bin, the
/// diagonal of perfect calibration, and the bin counts as a histogram
/// (square-root scale) underneath (DeGroot & Fienberg 1983; Guo et al.
/// 2017, Fig. 1). `title` is escaped.
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auroc_by_hand() {
        // Positives 0.9, 0.4; negatives 0.5, 0.1: pairs won 3 of 4.
        let pairs = [(0.9, true), (0.4, true), (0.5, false), (0.1, false)];
        assert_eq!(auroc(&pairs), Some(0.75));
        // A tie counts half: positive 0.5 vs negative 0.5.
        assert_eq!(auroc(&[(0.5, true), (0.5, false)]), Some(0.5));
        assert_eq!(auroc(&[(0.5, true)]), None);
    }

    #[test]
    fn average_precision_by_hand() {
        // Ranked: 0.9 P, 0.5 N, 0.4 P, 0.1 N → AP = ½·1 + ½·(2/3).
        let pairs = [(0.9, true), (0.4, true), (0.5, false), (0.1, false)];
        let ap = average_precision(&pairs).unwrap();
        assert!((ap - (0.5 + 1.0 / 3.0)).abs() < 1e-12);
        assert_eq!(average_precision(&[(0.3, false)]), None);
    }

    #[test]
    fn confusion_and_f1() {
        let c = Confusion::of([
            (true, true),
            (true, false),
            (false, true),
            (false, false),
            (true, true),
        ]);
        assert_eq!(
            (
                c.true_positive,
                c.false_positive,
                c.false_negative,
                c.true_negative
            ),
            (2, 1, 1, 1)
        );
        assert!((c.precision() - 2.0 / 3.0).abs() < 1e-12);
        assert!((c.f1() - 4.0 / 6.0).abs() < 1e-12);
        assert_eq!(Confusion::default().f1(), 0.0);
    }

    #[test]
    fn reliability_svg_draws_each_filled_bin_and_escapes_the_title() {
        let bins = reliability(&[(0.05, false), (0.95, true), (0.97, true)]);
        let svg = reliability_svg("a < b & c", &bins);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains("a &lt; b &amp; c"));
        assert_eq!(svg.matches("<circle").count(), 2);
        assert_eq!(Reliability::of(&bins).bins(), bins);
    }

    #[test]
    fn reliability_bins_like_the_ece() {
        let bins = reliability(&[(0.0, false), (0.99, true), (1.0, true), (0.5, false)]);
        assert_eq!(bins.len(), 15);
        assert_eq!(bins[0].count, 1);
        assert_eq!(bins[14].count, 2);
        assert_eq!(bins[14].observed_rate, 1.0);
        assert_eq!(bins[7].count, 1);
    }
}
