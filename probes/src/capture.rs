//! `weatherlens probe`: run a restored model over chosen initial times with a [`ProbeRecorder`] attached.

use std::path::{Path, PathBuf};

use weatherlens_models::hooks::{HookPoint, Hooks};
use weatherlens_training::dataset::iso8601;
use weatherlens_training::restore::Restored;
use weatherlens_training::windows::{FrameSource, Split, WindowError, Windows};

use crate::record::{NodeSelection, ProbeRecorder, RecordError, RecordingMeta, write_meta};

#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error("samples: {0}")]
    Windows(#[from] WindowError),
    #[error("data: {0}")]
    Data(String),
    #[error("{0}")]
    Invalid(String),
}

/// What to record.
#[derive(Debug, Clone)]
pub struct CaptureOptions {
    /// Processor layers (empty = all).
    pub layers: Vec<usize>,
    /// Also record `encoder.out` and the edge increments.
    pub extra_points: bool,
    pub nodes: NodeSelection,
    /// Initial times come from this split, `every_hours` apart, at most `samples` of them.
    pub split: Split,
    pub every_hours: i64,
    pub samples: usize,
    /// Forward passes of this many samples at a time.
    pub batch_size: usize,
}

impl Default for CaptureOptions {
    fn default() -> Self {
        Self {
            layers: Vec::new(),
            extra_points: false,
            nodes: NodeSelection::All,
            split: Split::Test,
            every_hours: 24,
            samples: 16,
            batch_size: 4,
        }
    }
}

/// Record X_i (`resid_pre`), v_i (`delta`) and X_{i+1} (`resid_post`) of the chosen layers for the chosen
/// samples and nodes into `out_dir`. Returns the recording's description (also written as `probes.json`).
pub fn capture(
    restored: &Restored,
    options: &CaptureOptions,
    out_dir: &Path,
) -> Result<RecordingMeta, CaptureError> {
    let config = &restored.state.config;
    let layers =
        chosen_layers(&options.layers, config.model.num_layers).map_err(CaptureError::Invalid)?;
    let mut points: Vec<HookPoint> = layers
        .iter()
        .flat_map(|&i| {
            [
                HookPoint::ResidPre(i),
                HookPoint::Delta(i),
                HookPoint::ResidPost(i),
            ]
        })
        .collect();
    if options.extra_points {
        points.insert(0, HookPoint::EncoderOut);
    }
    let windows = Windows::new(&config.data.windows, &restored.dataset.time_hours)?;
    let mut anchors: Vec<usize> = Vec::new();
    for &anchor in windows.anchors(options.split) {
        let t = restored.dataset.time_hours[anchor];
        if anchors
            .last()
            .is_none_or(|&last| t - restored.dataset.time_hours[last] >= options.every_hours)
        {
            anchors.push(anchor);
        }
    }
    anchors.truncate(options.samples.max(1));
    if anchors.is_empty() {
        return Err(CaptureError::Invalid(format!(
            "the {:?} split has no samples to record",
            options.split
        )));
    }
    let multimesh = restored.graph.multimesh();
    let node_indices = options.nodes.indices(multimesh.node_lat());
    if node_indices.is_empty() {
        return Err(CaptureError::Invalid("the node selection is empty".into()));
    }
    let emulator = &restored.emulator;
    let recorder = ProbeRecorder::create(
        out_dir,
        points.clone(),
        &node_indices,
        config.model.latent_size,
        anchors.len(),
        &emulator.device(),
    )?;
    let dataset = &restored.dataset;
    for chunk in anchors.chunks(options.batch_size.max(1)) {
        let mut frames = Vec::with_capacity(chunk.len() * 2 * dataset.frame_len());
        for &anchor in chunk {
            let ([before, now], _) = windows.sample_times(anchor);
            for t in [before, now] {
                frames.extend(
                    dataset
                        .read_frames(t..t + 1)
                        .map_err(|e| CaptureError::Data(e.to_string()))?,
                );
            }
        }
        let n = chunk.len();
        let states = emulator.states(&frames, 2 * n);
        let [_, grid_points, channels] = states.dims();
        let states = states.reshape([n, 2, grid_points, channels]);
        let previous = states
            .clone()
            .slice([0..n, 0..1])
            .reshape([n, grid_points, channels]);
        let current = states
            .slice([0..n, 1..2])
            .reshape([n, grid_points, channels]);
        emulator.step(previous, current, &Hooks::none().with(&recorder));
        recorder.end_batch(n);
    }
    recorder.finish()?;
    let meta = RecordingMeta {
        model: format!("{} ({:?})", config.name, config.model.processor),
        checkpoint: restored.checkpoint.display().to_string(),
        hooks: points.iter().map(|p| p.to_string()).collect(),
        layers,
        sample_times: anchors
            .iter()
            .map(|&a| iso8601(dataset.time_hours[a]))
            .collect(),
        node_lat: node_indices
            .iter()
            .map(|&n| multimesh.node_lat()[n as usize])
            .collect(),
        node_lon: node_indices
            .iter()
            .map(|&n| multimesh.node_lon()[n as usize])
            .collect(),
        node_indices,
        latent_size: config.model.latent_size,
        mesh_level: config.model.mesh_level,
    };
    write_meta(out_dir, &meta)?;
    Ok(meta)
}

/// The processor layers `requested` (empty = all of `num_layers`), or an error naming one that does not exist.
pub fn chosen_layers(requested: &[usize], num_layers: usize) -> Result<Vec<usize>, String> {
    if let Some(&bad) = requested.iter().find(|&&l| l >= num_layers) {
        return Err(format!(
            "layer {bad} does not exist: the model has {num_layers} layers (0..{})",
            num_layers.saturating_sub(1)
        ));
    }
    Ok(if requested.is_empty() {
        (0..num_layers).collect()
    } else {
        requested.to_vec()
    })
}

/// The folder of a recording: `dir` itself, or its `probes` subfolder.
pub fn recording_dir(dir: &Path) -> PathBuf {
    if dir.join(crate::record::META_FILE).is_file() {
        dir.to_path_buf()
    } else {
        dir.join("probes")
    }
}
