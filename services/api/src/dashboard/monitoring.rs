//! `GET /monitoring`: the model monitor's report, as JSON or, for a
//! browser, as a page for administrators and auditors — alerts with their evidence, per
//! package, observation and modality-presence group the window's and the
//! all-time figures, coverage against nominal and PSI per feature as bar
//! charts, and a reliability diagram per group with gold (the model pages'
//! SVG, 15 equal-width bins). Our own SVG: numbers and escaped names only.

use std::fmt::Write as _;

use actix_web::http::{StatusCode, header};
use actix_web::{HttpRequest, HttpResponse, web};
use fusion_models::metrics::reliability_svg;
use serde::Serialize;

use super::{Layout, PageError, html, render};
use crate::AppState;
use crate::auth::Principal;
use fusion_app::monitoring::MonitoringReport;
use fusion_app::monitoring::drift::PackageDrift;
use fusion_app::monitoring::outcomes::GroupStats;

/// `GET /monitoring`: evaluates the monitor (raising any new alert) and
/// answers its report as JSON, or as the page when the client asks for
/// `text/html`.
pub(crate) async fn monitoring_report(
    req: HttpRequest,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    state.refresh_operational().await;
    let report = fusion_app::watch::evaluate(&state).await?;
    let wants_html = req
        .headers()
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"));
    if wants_html {
        return monitoring_page(&req, &principal, &report);
    }
    Ok(HttpResponse::Ok().json(report))
}

#[derive(Serialize)]
struct Row {
    package: String,
    observation: &'static str,
    group: &'static str,
    n: usize,
    with_gold: usize,
    agreement: String,
    brier: String,
    ece: String,
    coverage: String,
    coverage_low: bool,
    abstention: String,
    abstained_positive: String,
}

fn opt(v: Option<f64>) -> String {
    v.map_or_else(|| "—".to_owned(), |v| format!("{v:.3}"))
}

fn row(g: &GroupStats, margin: f64) -> Row {
    Row {
        package: g.package.clone(),
        observation: g.observation.display_name(),
        group: g.group.as_str(),
        n: g.n,
        with_gold: g.with_gold,
        agreement: opt(g.agreement),
        brier: opt(g.calibration.as_ref().map(|c| c.brier)),
        ece: opt(g.calibration.as_ref().map(|c| c.ece)),
        coverage: g.coverage.map_or_else(
            || "—".to_owned(),
            |c| format!("{:.3} of {:.2} ({}/{})", c.rate, c.nominal, c.covered, c.n),
        ),
        coverage_low: g.coverage.is_some_and(|c| c.rate < c.nominal - margin),
        abstention: format!("{:.3} ({})", g.abstention_rate, g.abstained),
        abstained_positive: opt(g.abstained_positive_rate),
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Horizontal bars `(label, value, reference)` on a [0, `max`] scale, with
/// each bar's reference value as a tick (nominal coverage, PSI threshold).
fn bars_svg(title: &str, bars: &[(String, f64, f64)], max: f64, low_is_bad: bool) -> String {
    let (left, width, row_h) = (260.0, 300.0, 18.0);
    let height = 40.0 + row_h * bars.len() as f64 + 20.0;
    let x = |v: f64| left + (v / max).clamp(0.0, 1.0) * width;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="630" height="{height:.0}" viewBox="0 0 630 {height:.0}" font-family="sans-serif" font-size="11"><title>{t}</title><rect width="630" height="{height:.0}" fill="#fff"/><text x="10" y="18" font-size="12">{t}</text>"##,
        t = escape(title)
    );
    for (i, (label, value, reference)) in bars.iter().enumerate() {
        let y = 30.0 + row_h * i as f64;
        let bad = if low_is_bad {
            value < reference
        } else {
            value > reference
        };
        let colour = if bad { "#b33" } else { "#246" };
        let _ = writeln!(
            s,
            r##"<text x="{tx}" y="{ty:.1}" text-anchor="end">{l}</text><rect x="{left}" y="{y:.1}" width="{w:.1}" height="{h:.1}" fill="{colour}"><title>{l}: {value:.3}</title></rect><line x1="{rx:.1}" y1="{y0:.1}" x2="{rx:.1}" y2="{y1:.1}" stroke="#000" stroke-width="2"/><text x="{vx:.1}" y="{ty:.1}">{value:.3}</text>"##,
            tx = left - 6.0,
            ty = y + 12.0,
            l = escape(label),
            w = (x(*value) - left).max(0.5),
            h = row_h - 4.0,
            rx = x(*reference),
            y0 = y - 1.0,
            y1 = y + row_h - 3.0,
            vx = x(*value).max(x(*reference)) + 6.0,
        );
    }
    let axis_y = 30.0 + row_h * bars.len() as f64 + 4.0;
    let _ = writeln!(
        s,
        r##"<line x1="{left}" y1="{axis_y:.1}" x2="{r}" y2="{axis_y:.1}" stroke="#888"/><text x="{left}" y="{ly:.1}">0</text><text x="{r}" y="{ly:.1}" text-anchor="end">{max}</text></svg>"##,
        r = left + width,
        ly = axis_y + 12.0,
    );
    s
}

#[derive(Serialize)]
struct DriftView {
    package: String,
    branch: &'static str,
    jobs: usize,
    status: &'static str,
    max_psi: String,
    chart: Option<String>,
}

fn drift_view(p: &PackageDrift, threshold: f64) -> DriftView {
    let bars: Vec<(String, f64, f64)> = p
        .features
        .iter()
        .take(12)
        .map(|f| (f.feature.clone(), f.psi, threshold))
        .collect();
    let max = bars
        .iter()
        .map(|b| b.1)
        .fold(threshold * 2.0, f64::max)
        .min(10.0);
    DriftView {
        package: p.package.clone(),
        branch: p.branch,
        jobs: p.jobs,
        status: p.status,
        max_psi: format!("{:.3}", p.max_psi),
        chart: (!bars.is_empty()).then(|| {
            bars_svg(
                &format!(
                    "{}: PSI per feature (largest 12; tick = threshold)",
                    p.package
                ),
                &bars,
                (max * 10.0).ceil() / 10.0,
                false,
            )
        }),
    }
}

#[derive(Serialize)]
struct Diagram {
    /// Our own SVG.
    svg: String,
    /// The packages it measures.
    package: String,
}

#[derive(Serialize)]
struct AlertView {
    kind: &'static str,
    evidence: String,
}

#[derive(Serialize)]
struct MonitoringPage {
    generated_at: String,
    settings: String,
    alerts: Vec<AlertView>,
    window_reviews: usize,
    all_reviews: usize,
    window: Vec<Row>,
    all_time: Vec<Row>,
    coverage_chart: Option<String>,
    diagrams: Vec<Diagram>,
    drift: Vec<DriftView>,
}

/// Renders the report as the monitoring page.
pub(crate) fn monitoring_page(
    req: &HttpRequest,
    principal: &Principal,
    report: &MonitoringReport,
) -> Result<HttpResponse, PageError> {
    let s = &report.settings;
    let coverage: Vec<(String, f64, f64)> = report
        .window
        .groups
        .iter()
        .filter_map(|g| {
            let c = g.coverage?;
            Some((
                format!("{} ({})", g.observation.display_name(), g.group.as_str()),
                c.rate,
                c.nominal,
            ))
        })
        .collect();
    let diagrams = report
        .window
        .groups
        .iter()
        .filter_map(|g| {
            let c = g.calibration.as_ref()?;
            Some(Diagram {
                svg: reliability_svg(
                    &format!(
                        "{} ({}): n {}, ECE {:.3}, Brier {:.3}",
                        g.observation.display_name(),
                        g.group.as_str(),
                        c.n,
                        c.ece,
                        c.brier
                    ),
                    &c.reliability,
                ),
                package: g.package.clone(),
            })
        })
        .collect();
    let page = MonitoringPage {
        generated_at: report
            .generated_at
            .format("%Y-%m-%d %H:%M:%S UTC")
            .to_string(),
        settings: format!(
            "window: the last {} reviews within {} days; coverage alert below nominal − {:.2} \
             on ≥ {} sets; drift: newest {} jobs against the first {}, alert above PSI {:.2}",
            s.window_reviews,
            s.window_days,
            s.coverage_margin,
            s.coverage_min_reviews,
            s.drift_window,
            s.drift_reference,
            s.drift_threshold
        ),
        alerts: report
            .alerts
            .iter()
            .map(|a| AlertView {
                kind: a.kind.as_str(),
                evidence: a.evidence.clone(),
            })
            .collect(),
        window_reviews: report.window.reviews,
        all_reviews: report.all_time.reviews,
        window: report
            .window
            .groups
            .iter()
            .map(|g| row(g, s.coverage_margin))
            .collect(),
        all_time: report
            .all_time
            .groups
            .iter()
            .map(|g| row(g, s.coverage_margin))
            .collect(),
        coverage_chart: (!coverage.is_empty()).then(|| {
            bars_svg(
                "Conformal coverage in the window (tick = nominal)",
                &coverage,
                1.0,
                true,
            )
        }),
        diagrams,
        drift: report
            .drift
            .iter()
            .map(|p| drift_view(p, s.drift_threshold))
            .collect(),
    };
    let layout = Layout::signed_in(req, principal, "Model monitoring", "/monitoring");
    Ok(html(
        StatusCode::OK,
        render("monitoring.html", &layout, page)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bars_escape_labels_and_mark_the_bad_ones() {
        let svg = bars_svg(
            "t",
            &[("a<b".to_owned(), 0.5, 0.9), ("c".to_owned(), 0.95, 0.9)],
            1.0,
            true,
        );
        assert!(svg.contains("a&lt;b") && !svg.contains("a<b"));
        assert_eq!(svg.matches("#b33").count(), 1);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
    }
}
