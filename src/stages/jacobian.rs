//! The jacobian stage: gradient-flow diagnostics of each processor step of a trained or imported model — how far v_i is
//! from a gradient field (Jacobian asymmetry) and how far its inputs reach on the sphere — at the states one
//! sample gives the processor. The estimators are [`weatherlens_probes::jacobian`]'s.

use std::path::Path;

use burn::prelude::*;
use serde::Serialize;
use weatherlens_probes::jacobian::{
    Asymmetry, AsymmetryOptions, InteractionRange, RangeOptions, interaction_range,
    jacobian_asymmetry, layer_function, processor_states,
};
use weatherlens_training::dataset::iso8601;
use weatherlens_training::restore::Restored;
use weatherlens_training::windows::{Split, Windows};

use super::loaded::{ImportedGraphCast, Network};
use super::{StageError, chosen_layers, initial_states};
use crate::report::jacobian::write_jacobian;

/// The processor's state entering every step for one sample of a restored model.
pub struct SampleStates {
    /// The sample's initial time (ISO 8601).
    pub time: String,
    /// (X_i, E_i) for i = 0..=L: node latents [1, mesh_nodes, latent] and edge latents
    /// [1, mesh_edges, latent] (message-passing processors only).
    pub states: Vec<(Tensor<3>, Option<Tensor<3>>)>,
}

/// The state entering every processor step for sample `sample` of `split` (its samples' initial times in
/// order), from the model input the emulator builds for a forecast step ([`Emulator::model_input`]), so these are
/// the states the trained model sees.
///
/// [`Emulator::model_input`]: weatherlens_training::emulator::Emulator::model_input
pub fn sample_states(
    restored: &Restored,
    split: Split,
    sample: usize,
) -> Result<SampleStates, StageError> {
    let dataset = &restored.dataset;
    let windows = Windows::new(&restored.state.config.data.windows, &dataset.time_hours)?;
    let anchors = windows.anchors(split);
    let &anchor = anchors.get(sample).ok_or_else(|| {
        StageError::Invalid(format!(
            "sample {sample} does not exist: the {split:?} split has {} samples",
            anchors.len()
        ))
    })?;
    let (previous, current) = initial_states(restored, &windows, &[anchor])?;
    let emulator = &restored.emulator;
    let input = emulator.model_input(previous, current);
    Ok(SampleStates {
        time: iso8601(dataset.time_hours[anchor]),
        states: processor_states(&emulator.model, &emulator.graph, input),
    })
}

/// What `weatherlens jacobian` computes.
#[derive(Debug, Clone)]
pub struct JacobianOptions {
    /// Processor layers (empty = all).
    pub layers: Vec<usize>,
    pub split: Split,
    /// Which sample of the split gives the states X_i.
    pub sample: usize,
    pub asymmetry: AsymmetryOptions,
    pub range: RangeOptions,
}

impl Default for JacobianOptions {
    fn default() -> Self {
        Self {
            layers: Vec::new(),
            split: Split::Test,
            sample: 0,
            asymmetry: AsymmetryOptions::default(),
            range: RangeOptions::default(),
        }
    }
}

/// Both diagnostics of one layer.
#[derive(Debug, Clone, Serialize)]
pub struct LayerJacobian {
    pub layer: usize,
    pub asymmetry: Asymmetry,
    pub range: InteractionRange,
}

/// Everything in `jacobian.json`.
#[derive(Debug, Clone, Serialize)]
pub struct JacobianReport {
    pub checkpoint: String,
    pub model: String,
    /// The split the sample came from; none when it came from an input file (an imported GraphCast).
    pub split: Option<Split>,
    pub sample_time: String,
    pub mesh_level: u32,
    pub nodes: usize,
    pub latent_size: usize,
    pub layers: Vec<LayerJacobian>,
}

/// Asymmetry and interaction range of the chosen processor layers of a restored model, at the states one
/// sample of `options.split` gives them.
pub fn diagnose(
    restored: &Restored,
    options: &JacobianOptions,
) -> Result<JacobianReport, StageError> {
    let sample = sample_states(restored, options.split, options.sample)?;
    diagnose_states(
        &Network::trained(restored),
        Some(options.split),
        sample,
        options,
    )
}

/// Asymmetry and interaction range of the chosen processor layers of an imported GraphCast, at the states the
/// first forecast step from `inputs` gives them for batch member `options.sample` (`options.split` does not
/// apply).
pub fn diagnose_graphcast(
    imported: &ImportedGraphCast,
    inputs: &Path,
    options: &JacobianOptions,
) -> Result<JacobianReport, StageError> {
    let file = imported.read_inputs(inputs, 0)?;
    let member = options.sample;
    if member >= file.batch() {
        return Err(StageError::Invalid(format!(
            "sample {member} does not exist: {} has {} batch members",
            inputs.display(),
            file.batch()
        )));
    }
    let on_grid = imported.on_grid(file.grid())?;
    let network = imported.network(&on_grid);
    let input = imported
        .task
        .initial_input_tensor(&file, imported.device())?
        .narrow(0, member, 1);
    let sample = SampleStates {
        time: iso8601(file.initial_times()[member]),
        states: processor_states(network.model, network.tensors, input),
    };
    diagnose_states(&network, None, sample, options)
}

/// Both diagnostics of the chosen layers of `network` at `sample`'s states; `split` the split it came from
/// (none for an input file).
fn diagnose_states(
    network: &Network,
    split: Option<Split>,
    sample: SampleStates,
    options: &JacobianOptions,
) -> Result<JacobianReport, StageError> {
    let config = network.config;
    let layers = chosen_layers(&options.layers, config.num_layers)?;
    let mesh = network.graph.multimesh();
    let mut rows = Vec::with_capacity(layers.len());
    for &layer in &layers {
        let started = std::time::Instant::now();
        let (x, edges) = &sample.states[layer];
        let v = layer_function(network.model, network.tensors, layer, edges.clone());
        let asymmetry = jacobian_asymmetry(&v, x, &options.asymmetry)?;
        let range = interaction_range(&v, x, mesh.node_lat(), mesh.node_lon(), &options.range)?;
        tracing::info!(
            "layer {layer}: asymmetry {:.4} ± {:.4}, {:.0} % range {:.1}°, reach {:.1}° ({:.1} s)",
            asymmetry.asymmetry,
            asymmetry.standard_error,
            100.0 * range.fraction,
            range.range_deg,
            range.reach_deg,
            started.elapsed().as_secs_f64()
        );
        rows.push(LayerJacobian {
            layer,
            asymmetry,
            range,
        });
    }
    Ok(JacobianReport {
        checkpoint: network.checkpoint.display().to_string(),
        model: network.label.clone(),
        split,
        sample_time: sample.time,
        mesh_level: config.mesh_level,
        nodes: mesh.num_nodes(),
        latent_size: config.latent_size,
        layers: rows,
    })
}

/// Diagnoses the chosen layers of a trained model and writes the outputs into `out_dir` as one unit.
pub fn jacobian(
    restored: &Restored,
    options: &JacobianOptions,
    out_dir: &Path,
) -> Result<JacobianReport, StageError> {
    let unit = super::output_unit(out_dir, "jacobian.json")?;
    let report = diagnose(restored, options)?;
    write_report(&report, unit)?;
    Ok(report)
}

/// Writes `report` (`jacobian.json`, CSVs, plots) into the stage output `unit` (from
/// [`super::output_unit`], taken before the diagnosis so that an unusable folder fails first) and commits it.
pub fn write_report(report: &JacobianReport, unit: super::StageOutput) -> Result<(), StageError> {
    write_jacobian(report, unit.path())?;
    unit.commit()
}
