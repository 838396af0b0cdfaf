//! Writing a study's report: tables, figures, `report.json`, `report.md` and the single-file `report.html`.

use std::path::Path;

use serde::Serialize;
use weatherlens_models::files;
use weatherlens_probes::alignment::{Controls, Excess, ExcessVerdict, MetricSet};
use weatherlens_probes::inputs::Region;
use weatherlens_probes::local_alignment::LocalAlignment;

use super::markdown::file_part;
use super::{StudyReport, html, markdown, region_label};
use crate::output::{write_csv, write_json};
use crate::report::ReportError;
use crate::report::plot::{Curve, HeatMap, LinePlot, PointMap, heat_map, line_plot, point_map};
use crate::report::skill::rmse_plot;

/// Writes `report` into `out_dir` (which must exist): `scorecard.csv`, `alignment.csv` (pooled figures with their
/// controls and excess), `local_alignment.csv` and `locations_<x>_<y>.csv` (per-location), `report.json`, the
/// RMSE, error-correlation, alignment (heat maps and per-location maps), velocity and centroid figures,
/// `report.md` and `report.html`.
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
            .map(|p| {
                let excess = |pick: fn(&MetricSet<Excess>) -> &Excess| p.excess.as_ref().map(pick);
                let (cknna_excess, cka_excess) =
                    (excess(|e| &e.cknna), excess(|e| &e.cka_unbiased));
                AlignmentRow {
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
                    cknna_untrained: p.controls.untrained.as_ref().map(|m| m.cknna),
                    cknna_input_a: p.controls.input_x.as_ref().map(|m| m.cknna),
                    cknna_input_b: p.controls.input_y.as_ref().map(|m| m.cknna),
                    cknna_excess: cknna_excess.map(|e| e.value),
                    cknna_excess_lo: cknna_excess.and_then(|e| e.ci.map(|c| c[0])),
                    cknna_excess_hi: cknna_excess.and_then(|e| e.ci.map(|c| c[1])),
                    cknna_verdict: cknna_excess.map(|e| verdict_name(e.verdict)),
                    cka_unbiased_untrained: p.controls.untrained.as_ref().map(|m| m.cka_unbiased),
                    cka_unbiased_input_a: p.controls.input_x.as_ref().map(|m| m.cka_unbiased),
                    cka_unbiased_input_b: p.controls.input_y.as_ref().map(|m| m.cka_unbiased),
                    cka_unbiased_excess: cka_excess.map(|e| e.value),
                    cka_unbiased_excess_lo: cka_excess.and_then(|e| e.ci.map(|c| c[0])),
                    cka_unbiased_excess_hi: cka_excess.and_then(|e| e.ci.map(|c| c[1])),
                    cka_unbiased_verdict: cka_excess.map(|e| verdict_name(e.verdict)),
                }
            })
            .collect::<Vec<_>>(),
    )?;
    if let Some(local) = &report.local_alignment {
        write_local_alignment(local, out_dir)?;
    }
    let md = markdown(report);
    files::write_atomic(&out_dir.join("report.md"), md.as_bytes())?;
    files::write_atomic(&out_dir.join("report.html"), html(&md, out_dir).as_bytes())?;
    Ok(())
}

/// CKNNA and CKA heat maps between the models, one per region.
fn alignment_maps(report: &StudyReport, out_dir: &Path) -> Result<(), ReportError> {
    let mut names: Vec<String> = Vec::new();
    for pair in &report.alignment {
        for name in [&pair.a, &pair.b] {
            if !names.contains(name) {
                names.push(name.clone());
            }
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
                            .find(|p| {
                                p.region == region
                                    && ((&p.a == a && &p.b == b) || (&p.a == b && &p.b == a))
                            })
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

fn verdict_name(verdict: ExcessVerdict) -> &'static str {
    match verdict {
        ExcessVerdict::AboveControls => "above_controls",
        ExcessVerdict::NotAboveControls => "not_above_controls",
        ExcessVerdict::Undetermined => "undetermined",
    }
}

/// `local_alignment.csv` (every group summary), and per pair `locations_<x>_<y>.csv` and the map
/// `cknna_map_<x>_<y>` (PNG + SVG).
pub fn write_local_alignment(local: &LocalAlignment, out_dir: &Path) -> Result<(), ReportError> {
    let mut summaries = Vec::new();
    for pair in &local.pairs {
        for s in &pair.summaries {
            for (metric, m) in [
                ("cka_biased", &s.metrics.cka_biased),
                ("cka_unbiased", &s.metrics.cka_unbiased),
                ("cknna", &s.metrics.cknna),
                ("mutual_knn", &s.metrics.mutual_knn),
            ] {
                summaries.push(LocalSummaryRow {
                    x: pair.x.clone(),
                    y: pair.y.clone(),
                    group: s.group.label().to_string(),
                    locations: s.locations,
                    times: s.times,
                    metric: metric.to_string(),
                    mean: m.mean,
                    untrained: m.untrained,
                    input_x: m.input_x,
                    input_y: m.input_y,
                    excess: m.excess,
                    excess_lo: m.excess_ci.map(|c| c[0]),
                    excess_hi: m.excess_ci.map(|c| c[1]),
                    verdict: m.verdict.map(verdict_name),
                });
            }
        }
        let rows: Vec<LocationRow> = pair
            .locations
            .iter()
            .map(|l| {
                let control = |pick: fn(&Controls) -> Option<&MetricSet<f64>>,
                               metric: fn(&MetricSet<f64>) -> f64| {
                    pick(&l.controls).map(metric)
                };
                LocationRow {
                    point: l.point,
                    lat: l.lat,
                    lon: l.lon,
                    n: l.n,
                    cknna: l.metrics.cknna,
                    cknna_untrained: control(|c| c.untrained.as_ref(), |m| m.cknna),
                    cknna_input_x: control(|c| c.input_x.as_ref(), |m| m.cknna),
                    cknna_input_y: control(|c| c.input_y.as_ref(), |m| m.cknna),
                    cknna_excess: l.excess.as_ref().map(|e| e.cknna),
                    cka_unbiased: l.metrics.cka_unbiased,
                    cka_unbiased_untrained: control(|c| c.untrained.as_ref(), |m| m.cka_unbiased),
                    cka_unbiased_input_x: control(|c| c.input_x.as_ref(), |m| m.cka_unbiased),
                    cka_unbiased_input_y: control(|c| c.input_y.as_ref(), |m| m.cka_unbiased),
                    cka_unbiased_excess: l.excess.as_ref().map(|e| e.cka_unbiased),
                    mutual_knn: l.metrics.mutual_knn,
                    warnings: l.warnings.len(),
                }
            })
            .collect();
        let stem = format!("{}_{}", file_part(&pair.x), file_part(&pair.y));
        write_csv(&out_dir.join(format!("locations_{stem}.csv")), &rows)?;
        let lat: Vec<f64> = pair.locations.iter().map(|l| l.lat).collect();
        let lon: Vec<f64> = pair.locations.iter().map(|l| l.lon).collect();
        let values: Vec<f64> = pair.locations.iter().map(|l| l.metrics.cknna).collect();
        point_map(
            &out_dir.join(format!("cknna_map_{stem}")),
            &PointMap {
                title: &format!(
                    "CKNNA({}, {}) per location (rows = {} times, k = {})",
                    pair.x, pair.y, local.times, local.k
                ),
                lat: &lat,
                lon: &lon,
                values: &values,
                value_range: Some((0.0, 1.0)),
            },
        )?;
    }
    write_csv(&out_dir.join("local_alignment.csv"), &summaries)?;
    Ok(())
}

#[derive(Serialize)]
struct LocalSummaryRow {
    x: String,
    y: String,
    group: String,
    locations: usize,
    times: usize,
    metric: String,
    mean: f64,
    untrained: Option<f64>,
    input_x: Option<f64>,
    input_y: Option<f64>,
    excess: Option<f64>,
    excess_lo: Option<f64>,
    excess_hi: Option<f64>,
    verdict: Option<&'static str>,
}

#[derive(Serialize)]
struct LocationRow {
    point: usize,
    lat: f64,
    lon: f64,
    n: usize,
    cknna: f64,
    cknna_untrained: Option<f64>,
    cknna_input_x: Option<f64>,
    cknna_input_y: Option<f64>,
    cknna_excess: Option<f64>,
    cka_unbiased: f64,
    cka_unbiased_untrained: Option<f64>,
    cka_unbiased_input_x: Option<f64>,
    cka_unbiased_input_y: Option<f64>,
    cka_unbiased_excess: Option<f64>,
    mutual_knn: f64,
    warnings: usize,
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
    cknna_untrained: Option<f64>,
    cknna_input_a: Option<f64>,
    cknna_input_b: Option<f64>,
    cknna_excess: Option<f64>,
    cknna_excess_lo: Option<f64>,
    cknna_excess_hi: Option<f64>,
    cknna_verdict: Option<&'static str>,
    cka_unbiased_untrained: Option<f64>,
    cka_unbiased_input_a: Option<f64>,
    cka_unbiased_input_b: Option<f64>,
    cka_unbiased_excess: Option<f64>,
    cka_unbiased_excess_lo: Option<f64>,
    cka_unbiased_excess_hi: Option<f64>,
    cka_unbiased_verdict: Option<&'static str>,
}
