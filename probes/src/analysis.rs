//! The physics figures of one recording (any model's: a plain recording or a recording folder): velocity decay
//! and path straightness, and the spectral centroid of X_i and v_i by depth, each with a verdict that needs
//! significance and size ([`crate::trend`]). `weatherlens analyze` writes them out.
//!
//! Every stage with layers is analysed on its own node set (the `processor` stage at the top level of
//! [`Analysis`], the others in [`Analysis::stages`]); layers whose increment the recording does not determine are
//! skipped and named. Increments are read as recorded or derived as docs/recording.md says.

use std::path::Path;

use serde::Serialize;

use crate::recording::{Recording, RecordingError, Source};
use crate::spectrum::{NodeSpectrum, SpectrumMethod, centroid};
use crate::stats::{seeded_subsample, spearman};
use crate::trend::{Direction, Trend, trend};
use crate::velocity::{LayerRecording, VelocityOptions, VelocityProfile, velocity_profile};

#[derive(Debug, thiserror::Error)]
pub enum AnalysisError {
    #[error(transparent)]
    Recording(#[from] RecordingError),
    #[error(transparent)]
    Velocity(#[from] crate::velocity::VelocityError),
    #[error(transparent)]
    Spectrum(#[from] crate::spectrum::SpectrumError),
    #[error("{path}: {reason}")]
    Invalid { path: String, reason: String },
}

/// Settings of [`analyze`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AnalyzeOptions {
    /// Bootstrap resamples for the decay statistic's interval.
    pub bootstrap_draws: usize,
    /// At most this many (sample, node) rows enter the velocity figures (a seeded subsample beyond).
    pub max_rows: usize,
    /// At most this many samples enter the centroid (a seeded subsample beyond).
    pub max_centroid_samples: usize,
    pub seed: u64,
}

impl Default for AnalyzeOptions {
    fn default() -> Self {
        Self {
            bootstrap_draws: 200,
            max_rows: 200_000,
            max_centroid_samples: 64,
            seed: 0,
        }
    }
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
    /// How the spectrum was taken from the recorded node positions.
    pub method: SpectrumMethod,
    /// Samples averaged.
    pub samples_used: usize,
    pub rows: Vec<CentroidRow>,
    /// Spearman ρ of the centroid against depth, for X and for v (negative: larger scales with depth).
    pub trend_x: f64,
    pub trend_v: f64,
    /// Verdicts (significance and size): `falls` = towards larger scales with depth.
    pub verdict_x: Trend,
    pub verdict_v: Trend,
}

/// The analysis of one stage.
#[derive(Debug, Clone, Serialize)]
pub struct StageAnalysis {
    pub stage: String,
    pub nodes: usize,
    pub latent_size: usize,
    /// Layers analysed (their increment is known), ascending.
    pub layers: Vec<usize>,
    /// Layers recorded without a determined increment (no delta, resid_post or next layer), skipped.
    pub skipped_layers: Vec<usize>,
    /// How each increment was obtained, e.g. `processor.0.delta = processor.1.resid_pre − processor.0.resid_pre`.
    pub increments: Vec<String>,
    /// Rows (sample, node) the velocity figures use, of samples × nodes.
    pub rows_used: usize,
    pub velocity: VelocityProfile,
    /// None when the nodes give no global spectrum (`centroid_skipped` says why).
    pub centroid: Option<CentroidSummary>,
    pub centroid_skipped: Option<String>,
}

/// Everything in `analysis.json`: the `processor` stage's figures at the top level, other stages beside.
#[derive(Debug, Clone, Serialize)]
pub struct Analysis {
    pub recording: String,
    pub model: String,
    pub samples: usize,
    #[serde(flatten)]
    pub processor: StageAnalysis,
    pub stages: Vec<StageAnalysis>,
    pub warnings: Vec<String>,
}

/// Analyses the recording at `path` (a plain recording file or a recording folder).
pub fn analyze(path: &Path, options: &AnalyzeOptions) -> Result<Analysis, AnalysisError> {
    let recording = Recording::open(path)?;
    let mut warnings = recording.warnings().to_vec();
    let processor = analyze_stage(&recording, "processor", options)?;
    let mut stages = Vec::new();
    for stage in recording.stages() {
        if stage.name == "processor" || stage.layers.is_empty() {
            continue;
        }
        match analyze_stage(&recording, &stage.name, options) {
            Ok(result) => stages.push(result),
            Err(error) => warnings.push(format!("stage `{}` not analysed: {error}", stage.name)),
        }
    }
    Ok(Analysis {
        recording: path.display().to_string(),
        model: recording.label().to_string(),
        samples: recording.samples(),
        processor,
        stages,
        warnings,
    })
}

/// Velocity and centroid of one stage.
pub fn analyze_stage(
    recording: &Recording,
    stage_name: &str,
    options: &AnalyzeOptions,
) -> Result<StageAnalysis, AnalysisError> {
    let invalid = |reason: String| AnalysisError::Invalid {
        path: recording.path().display().to_string(),
        reason,
    };
    let stage = recording
        .stage(stage_name)
        .ok_or_else(|| invalid(format!("no stage `{stage_name}`")))?;
    let mut pairs: Vec<(usize, Source, Source)> = Vec::new();
    let mut skipped_layers = Vec::new();
    for &layer in &stage.layers {
        match recording.increment(stage_name, layer) {
            Some(v) => pairs.push((layer, recording.state(stage_name, layer)?, v)),
            None => skipped_layers.push(layer),
        }
    }
    if pairs.is_empty() {
        return Err(invalid(format!(
            "stage `{stage_name}`: no layer has a known increment (record delta, resid_post or consecutive \
             layers)"
        )));
    }
    let (samples, nodes) = (recording.samples(), stage.nodes());
    let latent = pairs[0].1.width;
    let total_rows = samples * nodes;
    let rows: Vec<(usize, usize)> = if total_rows > options.max_rows {
        seeded_subsample(total_rows, options.max_rows, options.seed)
            .into_iter()
            .map(|r| (r / nodes, r % nodes))
            .collect()
    } else {
        (0..samples)
            .flat_map(|s| (0..nodes).map(move |n| (s, n)))
            .collect()
    };
    let mut latents = Vec::with_capacity(pairs.len());
    let mut increments = Vec::with_capacity(pairs.len());
    for (_, x, v) in &pairs {
        latents.push(recording.read_rows(x, &rows)?);
        increments.push(recording.read_rows(v, &rows)?);
    }
    let layer_views: Vec<LayerRecording<f64>> = latents
        .iter()
        .zip(&increments)
        .map(|(x, v)| LayerRecording {
            latents: x,
            increments: v,
        })
        .collect();
    let mut velocity = velocity_profile(
        &layer_views,
        rows.len(),
        latent,
        &VelocityOptions {
            bootstrap_draws: options.bootstrap_draws,
            seed: options.seed,
        },
    )?;
    drop((latents, increments));
    for (row, (layer, _, _)) in velocity.layers.iter_mut().zip(&pairs) {
        row.layer = *layer;
    }
    if !skipped_layers.is_empty() {
        velocity.notes.push(format!(
            "layers {skipped_layers:?} are recorded without a known increment and are left out"
        ));
    }
    let (centroid, centroid_skipped) = match centroids(recording, stage, &pairs, options) {
        Ok(summary) => (Some(summary), None),
        Err(AnalysisError::Spectrum(error)) => (None, Some(error.to_string())),
        Err(error) => return Err(error),
    };
    Ok(StageAnalysis {
        stage: stage_name.to_string(),
        nodes,
        latent_size: latent,
        layers: pairs.iter().map(|p| p.0).collect(),
        skipped_layers,
        increments: pairs.iter().map(|p| p.2.describe()).collect(),
        rows_used: rows.len(),
        velocity,
        centroid,
        centroid_skipped,
    })
}

/// Spectral centroid of X_i and v_i per layer, averaging the channel-summed spectrum over samples.
fn centroids(
    recording: &Recording,
    stage: &crate::recording::Stage,
    pairs: &[(usize, Source, Source)],
    options: &AnalyzeOptions,
) -> Result<CentroidSummary, AnalysisError> {
    let spectrum = NodeSpectrum::new(&stage.node_lat, &stage.node_lon)?;
    let truncation = spectrum.truncation();
    let samples = seeded_subsample(
        recording.samples(),
        options.max_centroid_samples.max(1),
        options.seed,
    );
    let mean_power = |source: &Source| -> Result<Vec<f64>, AnalysisError> {
        let mut total = vec![0.0; truncation + 1];
        let per_sample = source.nodes * source.width;
        for &s in &samples {
            let values = recording.read_samples(source, &[s])?;
            debug_assert_eq!(values.len(), per_sample);
            for (t, p) in total.iter_mut().zip(spectrum.power(&values, source.width)?) {
                *t += p / samples.len() as f64;
            }
        }
        Ok(total)
    };
    let mut rows = Vec::new();
    for (layer, x, v) in pairs {
        rows.push(CentroidRow {
            layer: *layer,
            centroid_x: centroid(&mean_power(x)?),
            centroid_v: centroid(&mean_power(v)?),
        });
    }
    let depth: Vec<f64> = rows.iter().map(|r| r.layer as f64).collect();
    let xs: Vec<f64> = rows.iter().map(|r| r.centroid_x).collect();
    let vs: Vec<f64> = rows.iter().map(|r| r.centroid_v).collect();
    Ok(CentroidSummary {
        truncation,
        method: spectrum.method(),
        samples_used: samples.len(),
        trend_x: spearman(&depth, &xs),
        trend_v: spearman(&depth, &vs),
        verdict_x: trend(&xs, options.seed),
        verdict_v: trend(&vs, options.seed),
        rows,
    })
}

/// The velocity verdict in words: "decays", "grows", "no clear trend" or "undetermined".
pub fn velocity_words(direction: Direction) -> &'static str {
    match direction {
        Direction::Falls => "decays",
        Direction::Rises => "grows",
        Direction::NoTrend => "no clear trend",
        Direction::Undetermined => "undetermined",
    }
}

/// The centroid verdict in words.
pub fn centroid_words(direction: Direction) -> &'static str {
    match direction {
        Direction::Falls => "moves to larger scales (lower wavenumber) with depth",
        Direction::Rises => "moves to smaller scales (higher wavenumber) with depth",
        Direction::NoTrend => "shows no clear trend with depth",
        Direction::Undetermined => "is undetermined",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recording::tests::{f32_bytes, f64_bytes, tensor, write};

    /// A plain recording of 5 layers on a shuffled level-3 mesh: X_i = (i + 1)·Y_1 in every channel, v_i = 2^{−i}·Y_2 plus
    /// a layer-independent part, where Y_1 = sin φ and Y_2 = cos φ sin φ cos λ (degree 1 and 2 fields).
    fn write_harmonic_recording(path: &Path) {
        use weatherlens_models::mesh::Multimesh;
        let mesh = Multimesh::new(3).unwrap();
        let n = mesh.num_nodes();
        let order = {
            use rand::seq::SliceRandom;
            let mut order: Vec<usize> = (0..n).collect();
            order.shuffle(&mut crate::stats::stream_rng(11, 0));
            order
        };
        let lat: Vec<f64> = order.iter().map(|&k| mesh.node_lat()[k]).collect();
        let lon: Vec<f64> = order.iter().map(|&k| mesh.node_lon()[k]).collect();
        let (samples, latent, layers) = (2, 2, 5);
        let field = |f: &dyn Fn(f64, f64) -> f64, scale: f64| -> Vec<f64> {
            (0..samples)
                .flat_map(|_| {
                    lat.iter().zip(&lon).flat_map(|(&la, &lo)| {
                        let value = scale * f(la.to_radians(), lo.to_radians());
                        std::iter::repeat_n(value, latent)
                    })
                })
                .collect()
        };
        let y1 = |la: f64, _: f64| la.sin();
        let y2 = |la: f64, lo: f64| la.cos() * la.sin() * lo.cos();
        let mut tensors = vec![
            tensor("node_lat", "F64", &[n], f64_bytes(&lat)),
            tensor("node_lon", "F64", &[n], f64_bytes(&lon)),
        ];
        for i in 0..layers {
            tensors.push(tensor(
                &format!("processor.{i}.resid_pre"),
                "F32",
                &[samples, n, latent],
                f32_bytes(&field(&y1, (i + 1) as f64)),
            ));
            tensors.push(tensor(
                &format!("processor.{i}.delta"),
                "F32",
                &[samples, n, latent],
                f32_bytes(&field(&y2, 0.5f64.powi(i))),
            ));
        }
        write(path, &tensors, None);
    }

    #[test]
    fn a_shuffled_mesh_recording_has_the_centroids_and_verdicts_of_its_fields() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("harmonic.safetensors");
        write_harmonic_recording(&path);
        let analysis = analyze(&path, &AnalyzeOptions::default()).unwrap();
        let centroid = analysis.processor.centroid.as_ref().unwrap();
        assert_eq!(centroid.method, SpectrumMethod::Mesh { level: 3 });
        for row in &centroid.rows {
            assert!((row.centroid_x - 1.0).abs() < 0.05, "{row:?}");
            assert!((row.centroid_v - 2.0).abs() < 0.1, "{row:?}");
        }
        // Increments halve at every layer: decay, with size (5 layers: the smallest p is 2/5! < 0.05).
        assert_eq!(
            analysis.processor.velocity.trend.direction,
            Direction::Falls
        );
        assert!((analysis.processor.velocity.trend.last_over_first - 0.0625).abs() < 1e-6);
        // The centroid stays put: no trend (constant up to interpolation rounding), never "moves".
        assert_ne!(centroid.verdict_x.direction, Direction::Falls);
        assert_ne!(centroid.verdict_x.direction, Direction::Rises);
        assert_eq!(analysis.processor.layers, [0, 1, 2, 3, 4]);
        assert_eq!(analysis.processor.velocity.layers[4].layer, 4);
    }
}
