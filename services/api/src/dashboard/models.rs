//! `GET /models/view` and `GET /models/{name}/view`: the installed model
//! packages with what each states about itself — labels, calibration
//! (temperature, conformal q̂, base rate, decision threshold) and, for a
//! trained package, the figures measured on its validation split with one
//! reliability diagram per observation (15 equal-width bins, the ECE's;
//! Guo et al. 2017, §2). Observations no package calibrates are listed as
//! "not calibrated". The JSON of the same catalogue is `GET /models`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use fusion_models::catalogue::{LabelCard, PackageCard};
use fusion_models::metrics::reliability_svg;
use fusion_models::report_heads::HeadFigures;
use serde::Serialize;

use super::{Layout, PageError, html, message_page, render};
use crate::AppState;
use crate::auth::Principal;

#[derive(Serialize)]
struct FiguresView {
    n: usize,
    positives: usize,
    auroc: String,
    average_precision: String,
    ece: String,
    brier: String,
    precision: String,
    recall: String,
    f1: String,
    coverage: String,
    coverage_of_positives: String,
}

fn figures(f: &HeadFigures) -> FiguresView {
    let opt = |v: Option<f64>| v.map_or_else(|| "—".to_owned(), |v| format!("{v:.3}"));
    FiguresView {
        n: f.n,
        positives: f.positives,
        auroc: opt(f.auroc),
        average_precision: opt(f.average_precision),
        ece: format!("{:.3}", f.ece),
        brier: format!("{:.3}", f.brier),
        precision: format!("{:.3}", f.precision),
        recall: format!("{:.3}", f.recall),
        f1: format!("{:.3}", f.f1),
        coverage: opt(f.coverage),
        coverage_of_positives: opt(f.coverage_of_positives),
    }
}

#[derive(Serialize)]
struct LabelRow {
    name: String,
    calibration: String,
    calibrated: bool,
    base_rate: String,
    threshold: String,
    positives: String,
    validation: Option<FiguresView>,
    /// Our own SVG (numbers and an escaped title only).
    diagram: Option<String>,
}

/// Three significant digits: a threshold of 8.4e-5 must not read "0.000"
/// (README review).
fn significant(x: f64) -> String {
    if x == 0.0 || (0.001..1000.0).contains(&x.abs()) {
        format!("{x:.3}")
    } else {
        format!("{x:.2e}")
    }
}

fn label_row(l: &LabelCard) -> LabelRow {
    let name = l.observation.display_name().to_owned();
    let calibration = match (
        l.conformal_qhat,
        l.conformal_alpha,
        l.conformal_n,
        l.conformal_by_class,
    ) {
        (Some(_), Some(a), Some(_), Some(b)) => format!(
            "T {:.2} · {:.0} % conformal sets per class: present when p ≥ {} (q̂ {}, n = {}), absent when p ≤ {} (q̂ {}, n = {})",
            l.temperature,
            (1.0 - a) * 100.0,
            significant(1.0 - b.present_qhat),
            significant(b.present_qhat),
            b.present_n,
            significant(b.absent_qhat),
            significant(b.absent_qhat),
            b.absent_n
        ),
        (Some(q), Some(a), Some(n), None) => format!(
            "T {:.2} · {:.0} % conformal sets, q̂ {} (n = {n})",
            l.temperature,
            (1.0 - a) * 100.0,
            significant(q)
        ),
        _ if (l.temperature - 1.0).abs() > 1e-12 => {
            format!("T {:.2}, no conformal calibrator", l.temperature)
        }
        _ => "not calibrated".to_owned(),
    };
    LabelRow {
        diagram: l
            .validation_reliability
            .as_ref()
            .map(|r| reliability_svg(&format!("{name}: validation reliability"), &r.bins())),
        name,
        calibration,
        calibrated: l.calibrated,
        base_rate: l
            .base_rate
            .map_or_else(|| "—".to_owned(), |b| format!("{b:.3}")),
        threshold: l
            .decision_threshold
            .map_or_else(|| "—".to_owned(), |t| format!("{t:.3}")),
        positives: l
            .training_positives
            .map_or_else(|| "—".to_owned(), |p| p.to_string()),
        validation: l.validation.as_ref().map(figures),
    }
}

#[derive(Serialize)]
struct PackageView {
    name: String,
    version: String,
    modality: String,
    architecture: String,
    description: String,
    manifest_sha256: String,
    error: Option<String>,
    training: Option<String>,
    labels: Vec<LabelRow>,
    has_diagrams: bool,
}

fn package_view(p: &PackageCard) -> PackageView {
    let training = p.training.as_ref().map(|t| {
        let validation = match (&t.validation_split, t.validation_reports) {
            (Some(s), Some(n)) => format!("; figures on {s} ({n} reports, never fitted on)"),
            _ => "; no validation split".to_owned(),
        };
        format!(
            "trained on {} ({} split, {} reports) with label map {}, seed {}{validation}",
            t.data, t.split, t.reports, t.map, t.options.seed
        )
    });
    PackageView {
        name: p.name.clone(),
        version: p.version.clone(),
        modality: p.modality.clone(),
        architecture: p
            .architecture
            .and_then(|a| serde_json::to_value(a).ok())
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default(),
        description: p.description.clone(),
        manifest_sha256: p.manifest_sha256.clone().unwrap_or_default(),
        error: p.error.clone(),
        training,
        has_diagrams: p.labels.iter().any(|l| l.validation_reliability.is_some()),
        labels: p.labels.iter().map(label_row).collect(),
    }
}

#[derive(Serialize)]
struct ModelsPage {
    packages: Vec<PackageView>,
    not_calibrated: Vec<&'static str>,
    single: bool,
}

/// `GET /models/view`: every installed package.
pub(crate) async fn models_page(
    req: HttpRequest,
    principal: Principal,
    state: web::Data<AppState>,
) -> Result<HttpResponse, PageError> {
    let catalogue = &state.catalogue;
    let layout = Layout::signed_in(&req, &principal, "Models", "/models/view");
    let page = ModelsPage {
        packages: catalogue.packages.iter().map(package_view).collect(),
        not_calibrated: catalogue
            .not_calibrated
            .iter()
            .map(|o| o.display_name())
            .collect(),
        single: false,
    };
    Ok(html(StatusCode::OK, render("models.html", &layout, page)?))
}

/// `GET /models/{name}/view`: one package; 404 page when none is installed
/// under that name.
pub(crate) async fn model_page(
    req: HttpRequest,
    principal: Principal,
    state: web::Data<AppState>,
    name: web::Path<String>,
) -> Result<HttpResponse, PageError> {
    let catalogue = &state.catalogue;
    let Some(package) = catalogue.package(&name) else {
        let layout = Layout::signed_in(&req, &principal, "Model not found", "/models/view");
        return Ok(html(
            StatusCode::NOT_FOUND,
            message_page(
                &layout,
                "Model not found",
                "No model package of that name is installed.",
                None,
            )?,
        ));
    };
    let layout = Layout::signed_in(&req, &principal, &package.name, "/models/view");
    let page = ModelsPage {
        packages: vec![package_view(package)],
        not_calibrated: catalogue
            .not_calibrated
            .iter()
            .map(|o| o.display_name())
            .collect(),
        single: true,
    };
    Ok(html(StatusCode::OK, render("models.html", &layout, page)?))
}
