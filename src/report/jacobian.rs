//! The report of the gradient-flow diagnostics: `jacobian.json`, `jacobian.csv`, `influence.csv`, the
//! asymmetry and influence plots, and `jacobian.md`.

use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;
use weatherlens_models::files;
use weatherlens_training::windows::Split;

use super::ReportError;
use super::plot::{Curve, LinePlot, line_plot};
use crate::output::{write_csv, write_json};
use crate::stages::jacobian::{JacobianReport, LayerJacobian};

/// One row of `jacobian.csv`.
#[derive(Debug, Clone, Serialize)]
pub struct JacobianRow {
    pub layer: usize,
    pub asymmetry: f64,
    pub asymmetry_se: f64,
    pub range_deg: f64,
    pub reach_deg: f64,
    pub self_share: f64,
    pub jacobian_frobenius: f64,
    pub fd_relative_error: f64,
}

/// One row of `influence.csv`.
#[derive(Debug, Clone, Serialize)]
pub struct InfluenceRow {
    pub layer: usize,
    pub distance_deg: f64,
    pub influence: f64,
    pub count: usize,
}

/// Writes `jacobian.json`, `jacobian.csv`, `influence.csv`, the plots `asymmetry.{png,svg}` and
/// `influence.{png,svg}`, and `jacobian.md` into `out_dir`.
/// (`out_dir` must exist.)
pub fn write_jacobian(report: &JacobianReport, out_dir: &Path) -> Result<(), ReportError> {
    write_json(&out_dir.join("jacobian.json"), report)?;
    let rows: Vec<JacobianRow> = report
        .layers
        .iter()
        .map(|l| JacobianRow {
            layer: l.layer,
            asymmetry: l.asymmetry.asymmetry,
            asymmetry_se: l.asymmetry.standard_error,
            range_deg: l.range.range_deg,
            reach_deg: l.range.reach_deg,
            self_share: l.range.self_share,
            jacobian_frobenius: l.asymmetry.jacobian_frobenius,
            fd_relative_error: l.asymmetry.fd_relative_error,
        })
        .collect();
    write_csv(&out_dir.join("jacobian.csv"), &rows)?;
    let influence: Vec<InfluenceRow> = report
        .layers
        .iter()
        .flat_map(|l| {
            l.range.bins.iter().map(|b| InfluenceRow {
                layer: l.layer,
                distance_deg: b.distance_deg,
                influence: b.influence,
                count: b.count,
            })
        })
        .collect();
    write_csv(&out_dir.join("influence.csv"), &influence)?;

    let points = |f: fn(&LayerJacobian) -> f64| -> Vec<(f64, f64)> {
        report
            .layers
            .iter()
            .map(|l| (l.layer as f64, f(l)))
            .collect()
    };
    let mean = points(|l| l.asymmetry.asymmetry);
    let low = points(|l| l.asymmetry.asymmetry - 2.0 * l.asymmetry.standard_error);
    let high = points(|l| l.asymmetry.asymmetry + 2.0 * l.asymmetry.standard_error);
    let uncorrelated = points(|_| std::f64::consts::SQRT_2);
    line_plot(
        &out_dir.join("asymmetry"),
        &LinePlot {
            title: &format!(
                "{}: Jacobian asymmetry of v_i (0 = gradient field, 2 = rotation)",
                report.model
            ),
            x_label: "layer i",
            y_label: "|J - J^T| / |J|",
            integer_x: true,
            curves: &[
                Curve {
                    name: "asymmetry",
                    points: &mean,
                },
                Curve {
                    name: "- 2 s.e.",
                    points: &low,
                },
                Curve {
                    name: "+ 2 s.e.",
                    points: &high,
                },
                Curve {
                    name: "sqrt 2: J_ij, J_ji uncorrelated",
                    points: &uncorrelated,
                },
            ],
        },
    )?;
    let names: Vec<String> = report
        .layers
        .iter()
        .map(|l| format!("layer {}", l.layer))
        .collect();
    // Past twice the farthest reach every bin is zero: leave those out so the near field is readable.
    let shown_deg = report
        .layers
        .iter()
        .map(|l| 2.0 * l.range.reach_deg)
        .fold(0.0, f64::max)
        .max(10.0);
    let profiles: Vec<Vec<(f64, f64)>> = report
        .layers
        .iter()
        .map(|l| {
            l.range
                .bins
                .iter()
                .filter(|b| b.distance_deg <= shown_deg)
                .map(|b| (b.distance_deg, b.influence))
                .collect()
        })
        .collect();
    let curves: Vec<Curve> = names
        .iter()
        .zip(&profiles)
        .map(|(name, points)| Curve { name, points })
        .collect();
    line_plot(
        &out_dir.join("influence"),
        &LinePlot {
            title: &format!("{}: influence of node m on v_i at node n", report.model),
            x_label: "great-circle distance n-m (degrees)",
            y_label: "mean |dv_i^n / dX^m|_F",
            curves: &curves,
            integer_x: false,
        },
    )?;
    files::write_atomic(
        &out_dir.join("jacobian.md"),
        jacobian_markdown(report).as_bytes(),
    )?;
    Ok(())
}

/// The diagnostics in words.
pub fn jacobian_markdown(report: &JacobianReport) -> String {
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Gradient-flow diagnostics of {}\n\nStates X_i of the {} at {}; mesh level {} ({} nodes), \
         latent {}.\n\nAsymmetry A = ‖J − Jᵀ‖_F / ‖J‖_F of J = ∂v_i/∂X_i (0: v_i is locally a gradient field; \
         √2 ≈ 1.41: J_ij and J_ji uncorrelated; 2: a pure rotation), from {} probe vectors. Range: the \
         distance within which {:.0} % of the summed influence ‖∂v_i^n/∂X^m‖_F on {} receiver nodes lies; reach: \
         the farthest node with any influence; self share: the part of the influence a node has on itself.\n",
        report.model,
        match report.split {
            Some(Split::Train) => "train split's sample",
            Some(Split::Val) => "val split's sample",
            Some(Split::Test) => "test split's sample",
            None => "input file's first forecast step",
        },
        report.sample_time,
        report.mesh_level,
        report.nodes,
        report.latent_size,
        report.layers.first().map_or(0, |l| l.asymmetry.probes),
        report
            .layers
            .first()
            .map_or(90.0, |l| 100.0 * l.range.fraction),
        report.layers.first().map_or(0, |l| l.range.receivers.len()),
    );
    let _ = writeln!(
        md,
        "| layer | asymmetry | ± s.e. | ‖J‖_F | range (°) | reach (°) | self share | FD error |\n\
         |---|---|---|---|---|---|---|---|"
    );
    for l in &report.layers {
        let _ = writeln!(
            md,
            "| {} | {:.4} | {:.4} | {:.3} | {:.1} | {:.1} | {:.3} | {:.1e} |",
            l.layer,
            l.asymmetry.asymmetry,
            l.asymmetry.standard_error,
            l.asymmetry.jacobian_frobenius,
            l.range.range_deg,
            l.range.reach_deg,
            l.range.self_share,
            l.asymmetry.fd_relative_error
        );
    }
    md
}
