//! The probe stage: run a restored model over chosen initial times with a [`ProbeRecorder`] attached.

use std::path::{Path, PathBuf};

use weatherlens_models::hooks::{HookPoint, Hooks};
use weatherlens_probes::record::{
    META_FILE, NodeSelection, ProbeRecorder, RecordingMeta, write_meta,
};
use weatherlens_training::dataset::iso8601;
use weatherlens_training::restore::Restored;
use weatherlens_training::windows::{Split, Windows};

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

/// Record X_i (`resid_pre`), v_i (`delta`) and X_{i+1} (`resid_post`) of the chosen layers for the chosen
/// samples and nodes into `out_dir`, which appears whole (tensors and description together) or not at all.
/// Returns the recording's description (also written as `probes.json`).
pub fn probe(
    restored: &Restored,
    options: &CaptureOptions,
    out_dir: &Path,
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
    let emulator = &restored.emulator;
    let unit = output_unit(out_dir, META_FILE)?;
    let recorder = ProbeRecorder::create(
        unit.path(),
        points.clone(),
        &node_indices,
        config.model.latent_size,
        anchors.len(),
        &emulator.device(),
    )?;
    let dataset = &restored.dataset;
    for chunk in anchors.chunks(options.batch_size.max(1)) {
        let (previous, current) = initial_states(restored, &windows, chunk)?;
        emulator.step(previous, current, &Hooks::none().with(&recorder));
        recorder.end_batch(chunk.len());
    }
    let recording_id = recorder.recording_id().to_string();
    recorder.finish()?;
    let meta = RecordingMeta {
        recording_id,
        model: model_label(&config.name, config.model.processor),
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
