//! Writing a study's report: tables, figures, `report.json`, `report.md` and the single-file `report.html`.

use std::path::Path;

use serde::Serialize;
use weatherlens_models::files;
use weatherlens_probes::alignment::MetricSet;
use weatherlens_probes::inputs::Region;

use super::{StudyReport, html, markdown, region_label};
use crate::output::{write_csv, write_json};
use crate::report::ReportError;
use crate::report::plot::{Curve, HeatMap, LinePlot, heat_map, line_plot};
use crate::report::skill::rmse_plot;

/// Writes `report` into `out_dir` (which must exist): `scorecard.csv`, `alignment.csv`, `report.json`, the
/// RMSE, error-correlation, alignment, velocity and centroid figures, `report.md` and `report.html`.
pub fn render(report: &StudyReport, out_dir: &Path) -> Result<(), ReportError> {
    write_csv(&out_dir.join("scorecard.csv"), &report.scorecard)?;
    rmse_plot(
        &report.scorecard,
        &report.headline_channel,
        &out_dir.join("rmse"),
    )?;
    if !report.error_models.is_empty() {
        heat_map(
            &out_dir.join("error_correlation"),
            &HeatMap {
                title: &format!(
                    "{} RMSE at {} h: correlation over {} cases",
                    report.headline_channel, report.headline_lead_hours, report.error_cases
                ),
                row_labels: &report.error_models,
                column_labels: &report.error_models,
                values: &report.error_correlation,
                value_range: Some((-1.0, 1.0)),
            },
        )?;
    }
    alignment_maps(report, out_dir)?;
    for (stem, title, y_label, series) in [
        (
            "velocity",
            "relative increment |v_i| / |X_i| by layer",
            "|v_i| / |X_i|",
            &report.velocity_curves,
        ),
        (
            "centroid",
            "spectral centroid of v_i by layer",
            "mean total wavenumber",
            &report.centroid_curves,
        ),
    ] {
        let curves: Vec<Curve> = series
            .iter()
            .map(|(name, points)| Curve { name, points })
            .collect();
        if curves.iter().any(|c| !c.points.is_empty()) {
            line_plot(
                &out_dir.join(stem),
                &LinePlot {
                    title,
                    x_label: "layer i",
                    y_label,
                    curves: &curves,
                    integer_x: true,
                },
            )?;
        }
    }
    write_json(&out_dir.join("report.json"), report)?;
    write_csv(
        &out_dir.join("alignment.csv"),
        &report
            .alignment
            .iter()
            .map(|p| AlignmentRow {
                region: region_label(p.region).to_string(),
                a: p.a.clone(),
                b: p.b.clone(),
                n: p.n,
                cka_biased: p.metrics.cka_biased,
                cka_unbiased: p.metrics.cka_unbiased,
                cknna: p.metrics.cknna,
                mutual_knn: p.metrics.mutual_knn,
                cknna_null_p95: p.null.as_ref().map(|n| n.cknna.p95),
                cka_unbiased_null_p95: p.null.as_ref().map(|n| n.cka_unbiased.p95),
                seeds_only: p.seeds_only,
            })
            .collect::<Vec<_>>(),
    )?;
    let md = markdown(report);
    files::write_atomic(&out_dir.join("report.md"), md.as_bytes())?;
    files::write_atomic(&out_dir.join("report.html"), html(&md, out_dir).as_bytes())?;
    Ok(())
}

/// CKNNA and CKA heat maps between the models, one per region.
fn alignment_maps(report: &StudyReport, out_dir: &Path) -> Result<(), ReportError> {
    let mut names: Vec<String> = Vec::new();
    for pair in &report.alignment {
        if !names.contains(&pair.a) {
            names.push(pair.a.clone());
        }
    }
    if names.len() < 2 {
        return Ok(());
    }
    for region in [Region::Global, Region::Tropics, Region::NhMid] {
        for (metric, pick) in [
            (
                "cknna",
                (|m: &MetricSet<f64>| m.cknna) as fn(&MetricSet<f64>) -> f64,
            ),
            ("cka", |m: &MetricSet<f64>| m.cka_unbiased),
        ] {
            let values: Vec<f64> = names
                .iter()
                .flat_map(|a| names.iter().map(move |b| (a, b)))
                .map(|(a, b)| {
                    if a == b {
                        1.0
                    } else {
                        report
                            .alignment
                            .iter()
                            .find(|p| p.region == region && &p.a == a && &p.b == b)
                            .map_or(f64::NAN, |p| pick(&p.metrics))
                    }
                })
                .collect();
            heat_map(
                &out_dir.join(format!("{metric}_{}", region_label(region))),
                &HeatMap {
                    title: &format!(
                        "{metric} at the last processor layer ({})",
                        region_label(region)
                    ),
                    row_labels: &names,
                    column_labels: &names,
                    values: &values,
                    value_range: Some((0.0, 1.0)),
                },
            )?;
        }
    }
    Ok(())
}

#[derive(Serialize)]
struct AlignmentRow {
    region: String,
    a: String,
    b: String,
    n: usize,
    cka_biased: f64,
    cka_unbiased: f64,
    cknna: f64,
    mutual_knn: f64,
    cknna_null_p95: Option<f64>,
    cka_unbiased_null_p95: Option<f64>,
    seeds_only: bool,
}
