//! The report of one recording's analysis: `analysis.json`, the velocity and centroid tables and plots, and a
//! `report.md` that says what the numbers show.

use std::fmt::Write as _;
use std::path::Path;

use weatherlens_models::files;
use weatherlens_probes::analysis::Analysis;

use super::ReportError;
use super::plot::{Curve, LinePlot, line_plot};
use crate::output::{write_csv, write_json};

/// Writes `analysis.json`, `velocity.csv`, `centroid.csv`, the plots `velocity` and `centroid` (PNG + SVG)
/// and `report.md` into `out_dir`, which must exist.
pub fn write_analysis(analysis: &Analysis, out_dir: &Path) -> Result<(), ReportError> {
    write_json(&out_dir.join("analysis.json"), analysis)?;
    write_csv(&out_dir.join("velocity.csv"), &analysis.velocity.layers)?;
    let norm: Vec<(f64, f64)> = analysis
        .velocity
        .layers
        .iter()
        .map(|r| (r.layer as f64, r.norm_mean))
        .collect();
    let q05: Vec<(f64, f64)> = analysis
        .velocity
        .layers
        .iter()
        .map(|r| (r.layer as f64, r.norm_q05))
        .collect();
    let q95: Vec<(f64, f64)> = analysis
        .velocity
        .layers
        .iter()
        .map(|r| (r.layer as f64, r.norm_q95))
        .collect();
    line_plot(
        &out_dir.join("velocity"),
        &LinePlot {
            title: &format!("{}: increment size |v_i| by layer", analysis.model),
            x_label: "layer i",
            y_label: "|v_i|",
            integer_x: true,
            curves: &[
                Curve {
                    name: "mean",
                    points: &norm,
                },
                Curve {
                    name: "5 %",
                    points: &q05,
                },
                Curve {
                    name: "95 %",
                    points: &q95,
                },
            ],
        },
    )?;
    if let Some(c) = &analysis.centroid {
        write_csv(&out_dir.join("centroid.csv"), &c.rows)?;
        let x: Vec<(f64, f64)> = c
            .rows
            .iter()
            .map(|r| (r.layer as f64, r.centroid_x))
            .collect();
        let v: Vec<(f64, f64)> = c
            .rows
            .iter()
            .map(|r| (r.layer as f64, r.centroid_v))
            .collect();
        line_plot(
            &out_dir.join("centroid"),
            &LinePlot {
                title: &format!("{}: spectral centroid by depth", analysis.model),
                x_label: "layer i",
                y_label: "mean total wavenumber",
                integer_x: true,
                curves: &[
                    Curve {
                        name: "X_i",
                        points: &x,
                    },
                    Curve {
                        name: "v_i",
                        points: &v,
                    },
                ],
            },
        )?;
    }
    files::write_atomic(
        &out_dir.join("report.md"),
        analysis_markdown(analysis).as_bytes(),
    )?;
    Ok(())
}

/// The analysis in words.
pub fn analysis_markdown(analysis: &Analysis) -> String {
    let mut md = String::new();
    let v = &analysis.velocity;
    let _ = writeln!(
        md,
        "# Processor dynamics of {}\n\n{} samples × {} mesh nodes, latent {}.\n",
        analysis.model, analysis.samples, analysis.nodes, analysis.latent_size
    );
    let _ = writeln!(
        md,
        "## Velocity\n\n| layer | mean abs(v_i) | abs(v_i)/abs(X_i) | cos(v_i, v_i-1) |\n|---|---|---|---|"
    );
    for row in &v.layers {
        let _ = writeln!(
            md,
            "| {} | {:.4} | {:.4} | {} |",
            row.layer,
            row.norm_mean,
            row.rel_mean,
            row.cos_prev.map_or("".to_string(), |c| format!("{c:.3}"))
        );
    }
    let ci = v
        .decay
        .ci
        .map_or("no bootstrap interval".to_string(), |[lo, hi]| {
            format!("row-bootstrap 95 % interval [{lo:.2}, {hi:.2}]")
        });
    let significant = v.decay.layer_p_value.is_some_and(|p| p < 0.05);
    let verdict = if significant && v.decay.spearman_rho < 0.0 {
        "the increments **shrink with depth**: consistent with velocity decay toward an equilibrium"
    } else if significant {
        "the increments **grow with depth**: no velocity decay"
    } else if v.decay.layer_p_value.is_none() {
        "too few layers recorded to test a trend (3 or more are needed)"
    } else {
        "no significant monotone trend of the increment size over the layers"
    };
    let p = v
        .decay
        .layer_p_value
        .map_or("n/a".to_string(), |p| format!("{p:.3}"));
    let straightness = v.straightness.map_or(
        "n/a (the recorded layers are not consecutive)".to_string(),
        |s| format!("{s:.3}"),
    );
    let first_last = match (v.layers.first(), v.layers.last()) {
        (Some(a), Some(b)) if a.norm_mean > 0.0 => format!("{:.3}", b.norm_mean / a.norm_mean),
        _ => "n/a".to_string(),
    };
    let _ = writeln!(
        md,
        "\nSpearman ρ of mean |v_i| against depth: {:.2} (permutation p over the {} layers = {p}; {ci}); \
         |v_last| / |v_first| = {first_last}; {verdict}. Path straightness |X_L − X_0| / Σ|v_i| = {straightness} \
         (1 = a straight path).\n",
        v.decay.spearman_rho,
        v.layers.len(),
    );
    if let Some(c) = &analysis.centroid {
        let _ = writeln!(
            md,
            "## Spectral centroid (T{})\n\n| layer | centroid of X_i | centroid of v_i |\n|---|---|---|",
            c.truncation
        );
        for row in &c.rows {
            let _ = writeln!(
                md,
                "| {} | {:.2} | {:.2} |",
                row.layer, row.centroid_x, row.centroid_v
            );
        }
        let words = |rho: f64| {
            if rho <= -0.5 {
                "moves to larger scales (lower wavenumber) with depth"
            } else if rho >= 0.5 {
                "moves to smaller scales (higher wavenumber) with depth"
            } else {
                "shows no clear trend with depth"
            }
        };
        let _ = writeln!(
            md,
            "\nThe centroid of X_i {} (Spearman ρ = {:.2}); that of v_i {} (ρ = {:.2}). With {} layers these \
             rank correlations are descriptive, not tests.",
            words(c.trend_x),
            c.trend_x,
            words(c.trend_v),
            c.trend_v,
            c.rows.len()
        );
    } else {
        let _ = writeln!(
            md,
            "No spectral centroid: the recording holds only part of the mesh."
        );
    }
    md
}
