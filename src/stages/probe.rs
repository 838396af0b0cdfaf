//! The probe stage: run a restored model over chosen initial times with a [`ProbeRecorder`] attached, recording
//! X_i, v_i, X_{i+1} of the processor and the model's input fields at the recorded nodes (`inputs`, the input
//! baseline of alignment); and the controls stage: the same recording of the same architecture at
//! initialisation (no training: one forward pass per batch), on the same inputs.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use weatherlens_models::hooks::{HookPoint, Hooks};
use weatherlens_probes::locations::NodeSet;
use weatherlens_probes::record::{
    META_FILE, NodeSelection, ProbeRecorder, RecordingMeta, write_meta,
};
use weatherlens_training::dataset::iso8601;
use weatherlens_training::emulator::Emulator;
use weatherlens_training::restore::Restored;
use weatherlens_training::trainer::build_model;
use weatherlens_training::windows::{Split, Windows};

use super::{StageError, chosen_layers, initial_states};

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
/// samples and nodes into `out_dir`, with the model's input fields at those nodes (`inputs`). Returns the
/// recording's description (also written as `probes.json`).
pub fn probe(
    restored: &Restored,
    options: &CaptureOptions,
    out_dir: &Path,
) -> Result<RecordingMeta, StageError> {
    record(restored, &restored.emulator, options, out_dir, None)
}

/// The untrained control: [`probe`] of the same architecture at initialisation (the run config's seed, the
/// weights training starts from), on the same samples, nodes and normalised inputs, into `out_dir`.
pub fn probe_untrained(
    restored: &Restored,
    options: &CaptureOptions,
    out_dir: &Path,
) -> Result<RecordingMeta, StageError> {
    let config = &restored.state.config;
    let device = restored.emulator.device();
    let model = build_model(config, restored.dataset.channels.len(), &device);
    let kernels = restored.emulator.graph.kernels;
    let emulator = Emulator::new(
        model,
        &config.model,
        &restored.graph,
        restored.state.normalisation.clone(),
        kernels,
        &device,
    );
    record(
        restored,
        &emulator,
        options,
        out_dir,
        Some(format!("untrained (initialisation, seed {})", config.seed)),
    )
}

fn record(
    restored: &Restored,
    emulator: &Emulator,
    options: &CaptureOptions,
    out_dir: &Path,
    untrained: Option<String>,
) -> Result<RecordingMeta, StageError> {
    let config = &restored.state.config;
    let layers = chosen_layers(&options.layers, config.model.num_layers)?;
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
        return Err(StageError::Invalid(format!(
            "the {:?} split has no samples to record",
            options.split
        )));
    }
    let multimesh = restored.graph.multimesh();
    let node_indices = options.nodes.indices(multimesh.node_lat());
    if node_indices.is_empty() {
        return Err(StageError::Invalid("the node selection is empty".into()));
    }
    // The input fields at each recorded node: those of the nearest grid point (nearest neighbour, no
    // interpolation), ties to the lower grid index.
    let grid = restored.graph.grid();
    let (grid_lat, grid_lon): (Vec<f64>, Vec<f64>) =
        (0..grid.num_points()).map(|p| grid.lat_lon(p)).unzip();
    let node_lat: Vec<f64> = node_indices
        .iter()
        .map(|&n| multimesh.node_lat()[n as usize])
        .collect();
    let node_lon: Vec<f64> = node_indices
        .iter()
        .map(|&n| multimesh.node_lon()[n as usize])
        .collect();
    let nearest = NodeSet::new("grid", &grid_lat, &grid_lon)
        .and_then(|grid| grid.nearest(&node_lat, &node_lon))
        .map_err(|e| StageError::Invalid(e.to_string()))?;
    let device = emulator.device();
    let nearest_index: Vec<i64> = nearest.iter().map(|n| n.node as i64).collect();
    let nearest_index = Tensor::<1, Int>::from_data(
        TensorData::new(nearest_index, [node_indices.len()]),
        &device,
    );
    // The static inputs of that grid point: [sin lat, cos lon, sin lon] (the encoder's grid node features).
    let features = restored.graph.grid_node_features();
    let per_point = features.len() / grid.num_points().max(1);
    let static_at_nodes: Vec<f32> = nearest
        .iter()
        .flat_map(|n| &features[n.node * per_point..(n.node + 1) * per_point])
        .copied()
        .collect();
    let state_channels = emulator.model_input_channels();
    let input_channels = state_channels + per_point;
    let recorder = ProbeRecorder::create_with_inputs(
        out_dir,
        points.clone(),
        &node_indices,
        config.model.latent_size,
        anchors.len(),
        Some(input_channels),
        &device,
    )?;
    let dataset = &restored.dataset;
    for chunk in anchors.chunks(options.batch_size.max(1)) {
        let (previous, current) = initial_states(restored, &windows, chunk)?;
        let states = emulator
            .model_input(previous.clone(), current.clone())
            .select(1, nearest_index.clone())
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .map_err(|e| StageError::Invalid(format!("model inputs: {e:?}")))?;
        let inputs: Vec<f32> = states
            .chunks(state_channels)
            .enumerate()
            .flat_map(|(row, state)| {
                let node = row % node_indices.len();
                state
                    .iter()
                    .chain(&static_at_nodes[node * per_point..(node + 1) * per_point])
                    .copied()
            })
            .collect();
        recorder.write_inputs(inputs, chunk.len())?;
        emulator.step(previous, current, &Hooks::none().with(&recorder));
        recorder.end_batch(chunk.len());
    }
    recorder.finish()?;
    let channel_names: Vec<String> = restored
        .state
        .normalisation
        .channels
        .iter()
        .map(|c| c.name.clone())
        .collect();
    let label = model_label(&config.name, config.model.processor);
    let meta = RecordingMeta {
        model: match &untrained {
            Some(words) => format!("{label}, {words}"),
            None => label,
        },
        checkpoint: restored.checkpoint.display().to_string(),
        hooks: points.iter().map(|p| p.to_string()).collect(),
        layers,
        sample_times: anchors
            .iter()
            .map(|&a| iso8601(dataset.time_hours[a]))
            .collect(),
        node_lat,
        node_lon,
        node_indices,
        latent_size: config.model.latent_size,
        mesh_level: config.model.mesh_level,
        inputs: Some(format!(
            "the model's input at the grid point nearest each node (nearest neighbour, not interpolated): the \
             normalised state at t − 6 h then at t ({} each), then the point's static features sin(lat), \
             cos(lon), sin(lon); {input_channels} channels",
            channel_names.join(", ")
        )),
    };
    write_meta(out_dir, &meta)?;
    Ok(meta)
}

/// A model's name for titles: the run name, with the processor kind when the name does not already say it
/// ("gnn", "deep (transformer)").
pub fn model_label(name: &str, processor: weatherlens_models::config::ProcessorKind) -> String {
    let kind = format!("{processor:?}").to_lowercase();
    if name.to_lowercase().contains(&kind) {
        name.to_string()
    } else {
        format!("{name} ({kind})")
    }
}

/// The folder of a recording: `dir` itself, or its `probes` subfolder.
pub fn recording_dir(dir: &Path) -> PathBuf {
    if dir.join(META_FILE).is_file() {
        dir.to_path_buf()
    } else {
        dir.join("probes")
    }
}
