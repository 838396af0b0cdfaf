//! The probe stage: run a model over chosen initial times with a [`ProbeRecorder`] attached — a trained model
//! over samples of its own data, an imported GraphCast over the windows of an input file; both through one
//! recording function on the model's [`Network`], which records X_i, v_i, X_{i+1} of the processor and the
//! model's input fields at the recorded nodes (`inputs`, the input baseline of alignment). The controls stage
//! ([`probe_untrained`]) records the same architecture at initialisation (no training: one forward pass per
//! batch) on the same inputs.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use weatherlens_models::hooks::{HookPoint, Hooks};
use weatherlens_models::model::WeatherModel;
use weatherlens_probes::locations::NodeSet;
use weatherlens_probes::record::{
    META_FILE, NodeSelection, ProbeRecorder, RecordingMeta, write_meta,
};
use weatherlens_training::dataset::iso8601;
use weatherlens_training::graphcast::GraphCastDataError;
use weatherlens_training::restore::Restored;
use weatherlens_training::trainer::build_model;
use weatherlens_training::windows::{Split, Windows};

use super::loaded::{ImportedGraphCast, Network};
use super::{StageError, chosen_layers, initial_states, output_unit};

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

/// Record X_i (`resid_pre`), v_i (`delta`) and X_{i+1} (`resid_post`) of the chosen layers of a trained model
/// for the chosen samples of its data and nodes into `out_dir`, with the model's input fields at those nodes
/// (`inputs`); the folder appears whole (tensors and description together) or not at all. Returns the
/// recording's description (also written as `probes.json`).
pub fn probe(
    restored: &Restored,
    options: &CaptureOptions,
    out_dir: &Path,
) -> Result<RecordingMeta, StageError> {
    probe_trained(restored, Network::trained(restored), options, out_dir)
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
    let untrained: WeatherModel = build_model(config, restored.dataset.channels.len(), &device);
    let trained = Network::trained(restored);
    let network = Network {
        label: format!(
            "{}, untrained (initialisation, seed {})",
            trained.label, config.seed
        ),
        model: &untrained,
        ..trained
    };
    probe_trained(restored, network, options, out_dir)
}

/// [`record`] of `network` (the trained model or its untrained control) on samples of `restored`'s data.
fn probe_trained(
    restored: &Restored,
    network: Network,
    options: &CaptureOptions,
    out_dir: &Path,
) -> Result<RecordingMeta, StageError> {
    let config = &restored.state.config;
    if options.samples == 0 {
        return Err(StageError::Invalid(
            "--samples 0: record at least one initial time".into(),
        ));
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
    anchors.truncate(options.samples);
    if anchors.is_empty() {
        return Err(StageError::Invalid(format!(
            "the {:?} split has no samples to record",
            options.split
        )));
    }
    if anchors.len() < options.samples {
        tracing::warn!(
            "recording {} samples, not {}: the {:?} split holds {} initial times {} h apart",
            anchors.len(),
            options.samples,
            options.split,
            anchors.len(),
            options.every_hours
        );
    }
    let times = anchors
        .iter()
        .map(|&a| iso8601(restored.dataset.time_hours[a]))
        .collect();
    let emulator = &restored.emulator;
    let batches = anchors.chunks(options.batch_size.max(1)).map(|chunk| {
        let (previous, current) = initial_states(restored, &windows, chunk)?;
        Ok(emulator.model_input(previous, current))
    });
    let channel_names: Vec<String> = restored
        .state
        .normalisation
        .channels
        .iter()
        .map(|c| c.name.clone())
        .collect();
    let inputs = format!(
        "the normalised state at t − 6 h then at t ({}; static channels once)",
        channel_names.join(", ")
    );
    record(&network, options, times, batches, &inputs, out_dir)
}

/// Which initial times of an input file an imported GraphCast is probed at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InputTimes {
    /// The first forecast step from the file's first two times: one sample per batch member.
    First,
    /// Every window of two consecutive times followed by a third (whose forcings the step takes): times
    /// (0, 1), (1, 2), ..., one sample per window and batch member, window-major.
    All,
}

/// Records the chosen layers and nodes of an imported GraphCast for the first forecast step from `inputs`
/// (or every window, [`InputTimes::All`]) into `out_dir`; each sample is named by its initial time (the second
/// time of its window). `options.split`, `every_hours`, `samples` and `batch_size` do not apply: a forward
/// pass takes one window for every batch member of the file.
///
/// `untrained`: record GraphCast's architecture at initialisation instead (WeatherLens's seeded initialisation,
/// seed 0, not GraphCast's own; the published weights are not used): the untrained control of alignment.
pub fn probe_graphcast(
    imported: &ImportedGraphCast,
    inputs: &Path,
    times: InputTimes,
    options: &CaptureOptions,
    out_dir: &Path,
    untrained: bool,
) -> Result<RecordingMeta, StageError> {
    let first = imported.read_inputs(inputs, 0)?;
    let frames = imported.task.layout().input_frames;
    let windows = match times {
        InputTimes::First => 1,
        InputTimes::All => first.times().saturating_sub(frames),
    };
    if first.times() < frames + 1 {
        return Err(GraphCastDataError::TooFewTimes {
            path: inputs.to_path_buf(),
            steps: 1,
            inputs: frames,
            needed: frames + 1,
            times: first.times(),
        }
        .into());
    }
    let sample_times = (0..windows)
        .flat_map(|w| (0..first.batch()).map(move |b| (w, b)))
        .map(|(w, b)| iso8601(first.datetimes(b)[w + frames - 1]))
        .collect();
    let on_grid = imported.on_grid(first.grid())?;
    let device = imported.device();
    let task = &imported.task;
    let batches = (0..windows).map(|w| {
        let window = if w == 0 {
            task.initial_input_tensor(&first, device)?
        } else {
            task.initial_input_tensor(&imported.read_inputs(inputs, w)?, device)?
        };
        Ok(window)
    });
    let inputs = format!(
        "GraphCast's normalised inputs and forcings ({})",
        task.input_channel_names().join(", ")
    );
    let initial = untrained.then(|| imported.untrained_model());
    let network = imported.network(&on_grid);
    let network = match &initial {
        Some(model) => Network {
            label: format!("{}, untrained (initialisation, seed 0)", network.label),
            model,
            ..network
        },
        None => network,
    };
    record(&network, options, sample_times, batches, &inputs, out_dir)
}

/// Runs `network` on each batch of model inputs ([batch, grid points, input channels]; `sample_times` names
/// their rows in order) with a [`ProbeRecorder`] attached, records the input fields at each recorded node
/// (those of the nearest grid point — nearest neighbour, not interpolated, ties to the lower grid index — then
/// the point's static features sin(lat), cos(lon), sin(lon); `input_channels` says what the model's input
/// channels are), and writes `probes.json`.
fn record(
    network: &Network,
    options: &CaptureOptions,
    sample_times: Vec<String>,
    batches: impl Iterator<Item = Result<Tensor<3>, StageError>>,
    input_channels: &str,
    out_dir: &Path,
) -> Result<RecordingMeta, StageError> {
    let config = network.config;
    let layers = chosen_layers(&options.layers, config.num_layers)?;
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
    let multimesh = network.graph.multimesh();
    let node_indices = options.nodes.indices(multimesh.node_lat());
    if node_indices.is_empty() {
        return Err(StageError::Invalid("the node selection is empty".into()));
    }
    let node_lat: Vec<f64> = node_indices
        .iter()
        .map(|&n| multimesh.node_lat()[n as usize])
        .collect();
    let node_lon: Vec<f64> = node_indices
        .iter()
        .map(|&n| multimesh.node_lon()[n as usize])
        .collect();
    let grid = network.graph.grid();
    let (grid_lat, grid_lon): (Vec<f64>, Vec<f64>) =
        (0..grid.num_points()).map(|p| grid.lat_lon(p)).unzip();
    let nearest = NodeSet::new("grid", &grid_lat, &grid_lon)
        .and_then(|grid| grid.nearest(&node_lat, &node_lon))
        .map_err(|e| StageError::Invalid(e.to_string()))?;
    let nearest_index: Vec<i64> = nearest.iter().map(|n| n.node as i64).collect();
    let nearest_index = Tensor::<1, Int>::from_data(
        TensorData::new(nearest_index, [node_indices.len()]),
        &network.device,
    );
    let features = network.graph.grid_node_features();
    let per_point = features.len() / grid.num_points().max(1);
    let static_at_nodes: Vec<f32> = nearest
        .iter()
        .flat_map(|n| &features[n.node * per_point..(n.node + 1) * per_point])
        .copied()
        .collect();
    let unit = output_unit(out_dir, META_FILE)?;
    let mut batches = batches;
    let first = batches
        .next()
        .transpose()?
        .ok_or_else(|| StageError::Invalid("no samples to record".into()))?;
    let model_channels = first.dims()[2];
    let recorded_channels = model_channels + per_point;
    let recorder = ProbeRecorder::create_with_inputs(
        unit.path(),
        points.clone(),
        &node_indices,
        config.latent_size,
        sample_times.len(),
        Some(recorded_channels),
        &network.device,
    )?;
    for input in std::iter::once(Ok(first)).chain(batches) {
        let input = input?;
        let batch = input.dims()[0];
        let at_nodes = input
            .clone()
            .select(1, nearest_index.clone())
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .map_err(|e| StageError::Invalid(format!("model inputs: {e:?}")))?;
        let values: Vec<f32> = at_nodes
            .chunks(model_channels)
            .enumerate()
            .flat_map(|(row, channels)| {
                let node = row % node_indices.len();
                channels
                    .iter()
                    .chain(&static_at_nodes[node * per_point..(node + 1) * per_point])
                    .copied()
            })
            .collect();
        recorder.write_inputs(values, batch)?;
        network
            .model
            .forward(network.tensors, input, &Hooks::none().with(&recorder));
        recorder.end_batch(batch);
    }
    let recording_id = recorder.recording_id().to_string();
    recorder.finish()?;
    let meta = RecordingMeta {
        recording_id,
        model: network.label.clone(),
        checkpoint: network.checkpoint.display().to_string(),
        hooks: points.iter().map(|p| p.to_string()).collect(),
        layers,
        sample_times,
        node_lat,
        node_lon,
        node_indices,
        latent_size: config.latent_size,
        mesh_level: config.mesh_level,
        inputs: Some(format!(
            "the model's input at the grid point nearest each node (nearest neighbour, not interpolated): \
             {input_channels}; then the point's static features sin(lat), cos(lon), sin(lon); \
             {recorded_channels} channels"
        )),
    };
    write_meta(unit.path(), &meta)?;
    unit.commit()?;
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
