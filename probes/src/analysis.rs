//! `weatherlens analyze REC`: the physics figures of one recording — velocity decay and path straightness,
//! spectral centroid of X_i and v_i by depth — written as `analysis.json`, `velocity.csv`, `centroid.csv`,
//! `spectra.csv`, PNG + SVG plots and a `report.md` that says what the numbers show.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use serde::Serialize;
use weatherlens_models::hooks::HookPoint;
use weatherlens_models::mesh::Multimesh;

use crate::plot::{Curve, LinePlot, line_plot};
use crate::record::{RecordingMeta, TENSORS_FILE, read_meta, read_tensor};
use crate::spectrum::{MeshSpectrum, centroid, mesh_truncation};
use crate::velocity::{
    LayerRecording, VelocityOptions, VelocityProfile, spearman, velocity_profile,
};

#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    #[error(transparent)]
    Record(#[from] crate::record::RecordError),
    #[error(transparent)]
    Velocity(#[from] crate::velocity::VelocityError),
    #[error(transparent)]
    Spectrum(#[from] crate::spectrum::SpectrumError),
    #[error(transparent)]
    Plot(#[from] crate::plot::PlotError),
    #[error("{path}: {reason}")]
    Output { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    Recording { path: PathBuf, reason: String },
}

/// One row of `centroid.csv`.
#[derive(Debug, Clone, Serialize)]
pub struct CentroidRow {
    pub layer: usize,
    /// Variance-weighted mean total wavenumber of X_i (summed over latent channels, averaged over samples).
    pub centroid_x: f64,
    /// The same for the increment v_i.
    pub centroid_v: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct CentroidSummary {
    pub truncation: usize,
    pub rows: Vec<CentroidRow>,
    /// Spearman ρ of the centroid against depth, for X and for v (negative: larger scales with depth).
    pub trend_x: f64,
    pub trend_v: f64,
}

/// Everything in `analysis.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Analysis {
    pub recording: String,
    pub model: String,
    pub samples: usize,
    pub nodes: usize,
    pub latent_size: usize,
    pub velocity: VelocityProfile,
    /// `None` when the recording holds only some of the mesh nodes (a spectrum needs the whole sphere).
    pub centroid: Option<CentroidSummary>,
}

/// Analyse the recording in `recording_dir`, writing the outputs into `out_dir`.
pub fn analyze(
    recording_dir: &Path,
    out_dir: &Path,
    bootstrap_draws: usize,
) -> Result<Analysis, AnalysisError> {
    let meta = read_meta(recording_dir)?;
    let file = recording_dir.join(TENSORS_FILE);
    let bad = |reason: String| AnalysisError::Recording {
        path: file.clone(),
        reason,
    };
    let mut latents = Vec::new();
    let mut increments = Vec::new();
    let (mut samples, nodes, latent) = (0, meta.node_indices.len(), meta.latent_size);
    for &layer in &meta.layers {
        let (x, shape) = read_tensor(&file, &HookPoint::ResidPre(layer).to_string())?;
        let (v, _) = read_tensor(&file, &HookPoint::Delta(layer).to_string())?;
        if shape.len() != 3 || shape[1] != nodes || shape[2] != latent {
            return Err(bad(format!(
                "layer {layer}: shape {shape:?} does not match probes.json"
            )));
        }
        samples = shape[0];
        latents.push(x);
        increments.push(v);
    }
    if latents.is_empty() {
        return Err(bad("the recording holds no processor layer".into()));
    }
    let layers: Vec<LayerRecording<f64>> = latents
        .iter()
        .zip(&increments)
        .map(|(x, v)| LayerRecording {
            latents: x,
            increments: v,
        })
        .collect();
    let velocity = velocity_profile(
        &layers,
        samples * nodes,
        latent,
        &VelocityOptions {
            bootstrap_draws,
            seed: 0,
        },
    )?;
    let whole_mesh = nodes == 10 * 4usize.pow(meta.mesh_level) + 2;
    let centroid = if whole_mesh {
        Some(centroids(&meta, &latents, &increments, samples)?)
    } else {
        None
    };
    let analysis = Analysis {
        recording: recording_dir.display().to_string(),
        model: meta.model.clone(),
        samples,
        nodes,
        latent_size: latent,
        velocity,
        centroid,
    };
    write_outputs(&analysis, &meta, out_dir)?;
    Ok(analysis)
}

/// Spectral centroid of X_i and v_i per layer, averaging the channel-summed spectrum over samples.
fn centroids(
    meta: &RecordingMeta,
    latents: &[Vec<f64>],
    increments: &[Vec<f64>],
    samples: usize,
) -> Result<CentroidSummary, AnalysisError> {
    let mesh = Multimesh::new(meta.mesh_level).map_err(|e| AnalysisError::Recording {
        path: PathBuf::from(&meta.checkpoint),
        reason: e.to_string(),
    })?;
    let truncation = mesh_truncation(mesh.num_nodes());
    let spectrum = MeshSpectrum::new(&mesh, truncation)?;
    let per_sample = meta.node_indices.len() * meta.latent_size;
    let mean_power = |values: &[f64]| -> Result<Vec<f64>, AnalysisError> {
        let mut total = vec![0.0; truncation + 1];
        for s in 0..samples {
            let field: Vec<f32> = values[s * per_sample..(s + 1) * per_sample]
                .iter()
                .map(|&v| v as f32)
                .collect();
            for (t, p) in total
                .iter_mut()
                .zip(spectrum.power(&field, meta.latent_size)?)
            {
                *t += p / samples as f64;
            }
        }
        Ok(total)
    };
    let mut rows = Vec::new();
    for (k, &layer) in meta.layers.iter().enumerate() {
        rows.push(CentroidRow {
            layer,
            centroid_x: centroid(&mean_power(&latents[k])?),
            centroid_v: centroid(&mean_power(&increments[k])?),
        });
    }
    let depth: Vec<f64> = rows.iter().map(|r| r.layer as f64).collect();
    let trend_x = spearman(
        &depth,
        &rows.iter().map(|r| r.centroid_x).collect::<Vec<_>>(),
    );
    let trend_v = spearman(
        &depth,
        &rows.iter().map(|r| r.centroid_v).collect::<Vec<_>>(),
    );
    Ok(CentroidSummary {
        truncation,
        rows,
        trend_x,
        trend_v,
    })
}

fn write_file(path: &Path, contents: &[u8]) -> Result<(), AnalysisError> {
    crate::output::write_atomic(path, contents).map_err(|e| AnalysisError::Output {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

fn csv_bytes<T: Serialize>(rows: &[T]) -> Vec<u8> {
    // Plain structs of numbers always serialise.
    crate::output::csv_bytes(rows).unwrap_or_default()
}

fn write_outputs(
    analysis: &Analysis,
    meta: &RecordingMeta,
    out_dir: &Path,
) -> Result<(), AnalysisError> {
    std::fs::create_dir_all(out_dir).map_err(|e| AnalysisError::Output {
        path: out_dir.to_path_buf(),
        reason: e.to_string(),
    })?;
    let json = serde_json::to_vec_pretty(analysis).map_err(|e| AnalysisError::Output {
        path: out_dir.join("analysis.json"),
        reason: e.to_string(),
    })?;
    write_file(&out_dir.join("analysis.json"), &json)?;
    write_file(
        &out_dir.join("velocity.csv"),
        &csv_bytes(&analysis.velocity.layers),
    )?;
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
            title: &format!("{}: increment size |v_i| by layer", meta.model),
            x_label: "layer i",
            y_label: "|v_i|",
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
        write_file(&out_dir.join("centroid.csv"), &csv_bytes(&c.rows))?;
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
                title: &format!("{}: spectral centroid by depth", meta.model),
                x_label: "layer i",
                y_label: "mean total wavenumber",
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
    write_file(
        &out_dir.join("report.md"),
        report_markdown(analysis).as_bytes(),
    )
}

/// The analysis in words.
pub fn report_markdown(analysis: &Analysis) -> String {
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
    let p = v.decay.layer_p_value;
    let verdict = if p < 0.05 && v.decay.spearman_rho < 0.0 {
        "the increments **shrink with depth**: consistent with velocity decay toward an equilibrium"
    } else if p < 0.05 {
        "the increments **grow with depth**: no velocity decay"
    } else {
        "no significant monotone trend of the increment size over the layers"
    };
    let first_last = match (v.layers.first(), v.layers.last()) {
        (Some(a), Some(b)) if a.norm_mean > 0.0 => format!("{:.3}", b.norm_mean / a.norm_mean),
        _ => "n/a".to_string(),
    };
    let _ = writeln!(
        md,
        "\nSpearman ρ of mean |v_i| against depth: {:.2} (permutation p over the {} layers = {p:.3}; {ci}); \
         |v_last| / |v_0| = {first_last}; {verdict}. Path straightness |X_L − X_0| / Σ|v_i| = {:.3} \
         (1 = a straight path).\n",
        v.decay.spearman_rho,
        v.layers.len(),
        v.straightness
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
