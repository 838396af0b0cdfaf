//! The physics figures of one recording: velocity decay and path straightness, and the spectral centroid of
//! X_i and v_i by depth (`weatherlens analyze` writes them out).

use std::path::{Path, PathBuf};

use serde::Serialize;
use weatherlens_models::hooks::HookPoint;
use weatherlens_models::mesh::Multimesh;

use crate::record::{RecordingMeta, TENSORS_FILE, read_meta, read_tensor};
use crate::spectrum::{MeshSpectrum, centroid, mesh_truncation};
use crate::stats::spearman;
use crate::velocity::{LayerRecording, VelocityOptions, VelocityProfile, velocity_profile_at};

#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    #[error(transparent)]
    Record(#[from] crate::record::RecordError),
    #[error(transparent)]
    Velocity(#[from] crate::velocity::VelocityError),
    #[error(transparent)]
    Spectrum(#[from] crate::spectrum::SpectrumError),
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

/// Analyse the recording in `recording_dir`; `bootstrap_draws` resamples give the decay statistic's interval.
pub fn analyze(recording_dir: &Path, bootstrap_draws: usize) -> Result<Analysis, AnalysisError> {
    let meta = read_meta(recording_dir)?;
    let file = recording_dir.join(TENSORS_FILE);
    let bad = |reason: String| AnalysisError::Recording {
        path: file.clone(),
        reason,
    };
    let mut latents = Vec::new();
    let mut increments = Vec::new();
    let (mut samples, nodes, latent) = (0, meta.node_indices.len(), meta.latent_size);
    let mut recorded = meta.layers.clone();
    recorded.sort_unstable();
    if recorded.windows(2).any(|w| w[0] == w[1]) {
        return Err(bad(format!(
            "probes.json lists layer {:?} twice",
            recorded.windows(2).find(|w| w[0] == w[1]).map(|w| w[0])
        )));
    }
    for &layer in &recorded {
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
    let velocity = velocity_profile_at(
        &layers,
        &recorded,
        samples * nodes,
        latent,
        &VelocityOptions {
            bootstrap_draws,
            seed: 0,
        },
    )?;
    let whole_mesh = nodes == 10 * 4usize.pow(meta.mesh_level) + 2;
    let centroid = if whole_mesh {
        Some(centroids(&meta, &recorded, &latents, &increments, samples)?)
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
    Ok(analysis)
}

/// Spectral centroid of X_i and v_i per layer, averaging the channel-summed spectrum over samples.
fn centroids(
    meta: &RecordingMeta,
    layers: &[usize],
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
    for (k, &layer) in layers.iter().enumerate() {
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
