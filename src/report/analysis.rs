//! The report of one recording's analysis: `analysis.json`, the velocity and centroid tables and plots, and a
//! `report.md` that says what the numbers show, each verdict with its size and the thresholds behind it.
//!
//! The `processor` stage's files are `velocity.csv`, `centroid.csv`, `velocity.png`, `centroid.png`; another
//! stage's carry its name (`velocity_<stage>.csv`, ...).

use std::fmt::Write as _;
use std::path::Path;

use weatherlens_models::files;
use weatherlens_probes::analysis::{Analysis, StageAnalysis, centroid_words, velocity_words};
use weatherlens_probes::trend::{SIGNIFICANCE, SIZE_BAND};

use super::ReportError;
use super::plot::{Curve, LinePlot, line_plot};
use crate::output::{write_csv, write_json};

/// Writes `analysis.json`, `velocity.csv`, `centroid.csv`, the plots `velocity` and `centroid` (PNG + SVG)
/// and `report.md` into `out_dir`, which must exist.
pub fn write_analysis(analysis: &Analysis, out_dir: &Path) -> Result<(), ReportError> {
    write_json(&out_dir.join("analysis.json"), analysis)?;
    write_stage(analysis, &analysis.processor, out_dir, "")?;
    for stage in &analysis.stages {
        write_stage(analysis, stage, out_dir, &format!("_{}", stage.stage))?;
    }
    files::write_atomic(
        &out_dir.join("report.md"),
        analysis_markdown(analysis).as_bytes(),
    )?;
    Ok(())
}

fn write_stage(
    analysis: &Analysis,
    stage: &StageAnalysis,
    out_dir: &Path,
    suffix: &str,
) -> Result<(), ReportError> {
    let velocity = &stage.velocity;
    write_csv(
        &out_dir.join(format!("velocity{suffix}.csv")),
        &velocity.layers,
    )?;
    let series = |pick: fn(&weatherlens_probes::velocity::VelocityRow) -> f64| -> Vec<(f64, f64)> {
        velocity
            .layers
            .iter()
            .map(|r| (r.layer as f64, pick(r)))
            .collect()
    };
    let (norm, q05, q95) = (
        series(|r| r.norm_mean),
        series(|r| r.norm_q05),
        series(|r| r.norm_q95),
    );
    let title_stage = if suffix.is_empty() {
        String::new()
    } else {
        format!(" (stage {})", stage.stage)
    };
    line_plot(
        &out_dir.join(format!("velocity{suffix}")),
        &LinePlot {
            title: &format!(
                "{}{title_stage}: increment size |v_i| by layer",
                analysis.model
            ),
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
    if let Some(c) = &stage.centroid {
        write_csv(&out_dir.join(format!("centroid{suffix}.csv")), &c.rows)?;
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
        if x.iter().chain(&v).any(|p| p.1.is_finite()) {
            line_plot(
                &out_dir.join(format!("centroid{suffix}")),
                &LinePlot {
                    title: &format!(
                        "{}{title_stage}: spectral centroid by depth",
                        analysis.model
                    ),
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
    }
    Ok(())
}

/// The analysis in words.
pub fn analysis_markdown(analysis: &Analysis) -> String {
    let mut md = String::new();
    let p = &analysis.processor;
    let _ = writeln!(
        md,
        "# Processor dynamics of {}\n\n{} samples × {} nodes, latent {} (`{}`).\n",
        analysis.model, analysis.samples, p.nodes, p.latent_size, analysis.recording
    );
    for warning in &analysis.warnings {
        let _ = writeln!(md, "- warning: {warning}");
    }
    stage_markdown(&mut md, p, "");
    for stage in &analysis.stages {
        let _ = writeln!(
            md,
            "\n# Stage `{}`\n\n{} nodes, latent {}.\n",
            stage.stage, stage.nodes, stage.latent_size
        );
        stage_markdown(&mut md, stage, "#");
    }
    md
}

fn stage_markdown(md: &mut String, stage: &StageAnalysis, level: &str) {
    let v = &stage.velocity;
    let _ = writeln!(
        md,
        "{level}## Velocity\n\n| layer | mean abs(v_i) | abs(v_i)/abs(X_i) | cos(v_i, v_i-1) |\n|---|---|---|---|"
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
    if stage.increments.iter().any(|i| i.contains('=')) {
        let _ = writeln!(
            md,
            "\nIncrements derived from consecutive states: {}.",
            stage
                .increments
                .iter()
                .filter(|i| i.contains('='))
                .cloned()
                .collect::<Vec<_>>()
                .join("; ")
        );
    }
    let ci = v
        .decay
        .ci
        .map_or("no bootstrap interval".to_string(), |[lo, hi]| {
            format!("row-bootstrap 95 % interval [{lo:.2}, {hi:.2}]")
        });
    let trend = &v.trend;
    let first_last = if trend.last_over_first.is_finite() {
        format!("{:.3}", trend.last_over_first)
    } else {
        "n/a".to_string()
    };
    let p_value = if v.decay.layer_p_value.is_finite() {
        format!("{:.3}", v.decay.layer_p_value)
    } else {
        "n/a".to_string()
    };
    let _ = writeln!(
        md,
        "\nSpearman ρ of mean |v_i| against depth: {:.2} (permutation p over the {} layers = {p_value}; {ci}); \
         |v_last| / |v_0| = {first_last}. Verdict: **{}** ({}). A verdict needs p < {SIGNIFICANCE} and \
         |v_last| / |v_0| outside [{}, {}]. Path straightness |X_L − X_0| / Σ|v_i| = {:.3} (1 = a straight path).\n",
        v.decay.spearman_rho,
        v.layers.len(),
        velocity_words(trend.direction),
        trend.reason,
        SIZE_BAND[0],
        SIZE_BAND[1],
        v.straightness
    );
    for note in &v.notes {
        let _ = writeln!(md, "- note: {note}");
    }
    if let Some(c) = &stage.centroid {
        let _ = writeln!(
            md,
            "{level}## Spectral centroid (T{}, {})\n\n| layer | centroid of X_i | centroid of v_i |\n|---|---|---|",
            c.truncation,
            match c.method {
                weatherlens_probes::spectrum::SpectrumMethod::Mesh { level } =>
                    format!("icosahedral mesh level {level}, recorded positions"),
                weatherlens_probes::spectrum::SpectrumMethod::Grid { n_lat, n_lon } =>
                    format!("{n_lat} × {n_lon} lat/lon grid, recorded positions"),
                weatherlens_probes::spectrum::SpectrumMethod::LeastSquares =>
                    "least squares at the recorded positions".to_string(),
            }
        );
        for row in &c.rows {
            let _ = writeln!(
                md,
                "| {} | {:.2} | {:.2} |",
                row.layer, row.centroid_x, row.centroid_v
            );
        }
        let _ = writeln!(
            md,
            "\nThe centroid of X_i {} (ρ = {:.2}; {}); that of v_i {} (ρ = {:.2}; {}). Same thresholds: p < \
             {SIGNIFICANCE} over the layers and last / first outside [{}, {}].",
            centroid_words(c.verdict_x.direction),
            c.trend_x,
            c.verdict_x.reason,
            centroid_words(c.verdict_v.direction),
            c.trend_v,
            c.verdict_v.reason,
            SIZE_BAND[0],
            SIZE_BAND[1],
        );
    } else {
        let _ = writeln!(
            md,
            "No spectral centroid: {}.",
            stage
                .centroid_skipped
                .as_deref()
                .unwrap_or("the nodes give no global spectrum")
        );
    }
}
