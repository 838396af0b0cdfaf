//! The import stage: a published GraphCast checkpoint (DeepMind's `params/*.npz` with the `stats/*.nc` beside
//! it) as a WeatherLens checkpoint folder, which [`super::loaded`] opens for `forecast`, `probe` and `jacobian`:
//!
//! ```text
//! CKPT_DIR/model.safetensors   the parameters under the WeatherLens model's names (f32)
//! CKPT_DIR/graphcast.json      ImportedDescription: GraphCast's model and task configs, the WeatherLens model
//!                              config they build, every input and output channel with its statistics
//! CKPT_DIR/stats/              mean_by_level.nc, stddev_by_level.nc, diffs_stddev_by_level.nc (copies)
//! ```
//!
//! Everything is read and checked before anything is written (the archive, the parameters against the model
//! config, the statistics of every channel, the channel counts against the parameters' shapes), and the folder
//! is written under a temporary name and renamed into place, so it appears whole or not at all.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use weatherlens_models::config::ModelConfig;
use weatherlens_models::files::{self, AtomicDir};
use weatherlens_models::graphcast::{
    GraphCastCheckpoint, GraphCastModelConfig, GraphCastTaskConfig, ImportedModel,
};
use weatherlens_training::graphcast::stats::{DIFFS_STDDEV_FILE, MEAN_FILE, STDDEV_FILE};
use weatherlens_training::graphcast::{GraphCastTask, InputKind, Statistics};

use super::StageError;
use crate::output::write_json;

/// The description file that marks a folder as an imported GraphCast.
pub const DESCRIPTION_FILE: &str = "graphcast.json";
/// The folder of the copied statistics inside an imported checkpoint.
pub const STATS_DIR: &str = "stats";
/// The statistics files an import copies.
pub const STATS_FILES: [&str; 3] = [MEAN_FILE, STDDEV_FILE, DIFFS_STDDEV_FILE];
/// `format` of [`ImportedDescription`].
pub const FORMAT: &str = "weatherlens-graphcast-import/1";

/// One model channel as the description lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelEntry {
    /// e.g. `geopotential[time=-6h,level=500]`.
    pub name: String,
    /// GraphCast's variable name.
    pub variable: String,
    /// Pressure level, hPa.
    pub level: Option<i64>,
    /// Inputs: `input` (at a time of the window), `static` or `forcing`; outputs: `residual` (the prediction adds
    /// the last input frame) or `direct`.
    pub kind: String,
    /// Inputs: normalisation `(x − mean) / stddev`; outputs: `prediction = output · scale + (last frame or
    /// offset)`.
    pub mean_or_offset: f32,
    pub stddev_or_scale: f32,
}

/// `graphcast.json`: what an imported GraphCast is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportedDescription {
    /// [`FORMAT`].
    pub format: String,
    /// The `.npz` it was imported from.
    pub source: String,
    /// The checkpoint's own `description` and `license` strings.
    pub description: String,
    pub license: String,
    /// GraphCast's `model_config` and `task_config` as the checkpoint holds them.
    pub graphcast_model_config: GraphCastModelConfig,
    pub task_config: GraphCastTaskConfig,
    /// The WeatherLens model config that computes the same network.
    pub model: ModelConfig,
    /// Number of parameters (f32 values).
    pub parameters: usize,
    /// Input channels in model order, with their normalisation.
    pub inputs: Vec<ChannelEntry>,
    /// Output channels in model order, with their de-normalisation.
    pub outputs: Vec<ChannelEntry>,
}

/// What was imported, for the command's output.
#[derive(Debug, Clone, Serialize)]
pub struct ImportSummary {
    pub out: PathBuf,
    pub mesh_size: u32,
    pub latent_size: usize,
    pub processor_steps: usize,
    pub parameters: usize,
    pub input_channels: usize,
    pub output_channels: usize,
}

/// The model, the task and the description of a checkpoint at `params` with statistics in `stats_dir`, all
/// checked against each other (nothing written).
pub fn read_graphcast(
    params: &Path,
    stats_dir: &Path,
) -> Result<(ImportedModel, GraphCastTask, ImportedDescription), StageError> {
    let checkpoint = GraphCastCheckpoint::read(params)?;
    let imported = ImportedModel::from_checkpoint(&checkpoint)?;
    let statistics = Statistics::read(stats_dir)?;
    let task = GraphCastTask::with_statistics(&checkpoint.task, &statistics)?;
    let layout = task.layout();
    let counts = [
        ("input", imported.input_channels, layout.inputs.len()),
        ("output", imported.output_channels, layout.outputs.len()),
    ];
    for (what, in_params, in_task) in counts {
        if in_params != in_task {
            return Err(StageError::Invalid(format!(
                "{}: the parameters take {in_params} {what} channels but its task_config lays out {in_task}: \
                 params and task config do not belong together",
                params.display()
            )));
        }
    }
    let inputs = layout
        .inputs
        .iter()
        .map(|c| ChannelEntry {
            name: c.name.clone(),
            variable: c.variable.clone(),
            level: c.level,
            kind: match c.kind {
                InputKind::Input { .. } => "input",
                InputKind::Static => "static",
                InputKind::Forcing => "forcing",
            }
            .into(),
            mean_or_offset: c.mean,
            stddev_or_scale: c.stddev,
        })
        .collect();
    let outputs = layout
        .outputs
        .iter()
        .map(|c| ChannelEntry {
            name: c.name.clone(),
            variable: c.variable.clone(),
            level: c.level,
            kind: if c.residual { "residual" } else { "direct" }.into(),
            mean_or_offset: c.offset,
            stddev_or_scale: c.scale,
        })
        .collect();
    let description = ImportedDescription {
        format: FORMAT.into(),
        source: params.display().to_string(),
        description: checkpoint.description.clone(),
        license: checkpoint.license.clone(),
        graphcast_model_config: checkpoint.model.clone(),
        task_config: checkpoint.task.clone(),
        model: imported.config.clone(),
        parameters: imported.tensors.iter().map(|(_, a)| a.values.len()).sum(),
        inputs,
        outputs,
    };
    Ok((imported, task, description))
}

/// Imports the GraphCast checkpoint `params` with the statistics folder `stats_dir` into the new folder `out`
/// (refused when it exists). The parameters are loaded into the WeatherLens model on `device` once as a check.
pub fn import_graphcast(
    params: &Path,
    stats_dir: &Path,
    out: &Path,
    device: &burn::prelude::Device,
) -> Result<ImportSummary, StageError> {
    if out.exists() {
        return Err(StageError::Invalid(format!(
            "{}: already exists; an import writes a new folder (remove it or choose another --out)",
            out.display()
        )));
    }
    let (imported, _task, description) = read_graphcast(params, stats_dir)?;
    imported
        .build(device)
        .map_err(|reason| StageError::Invalid(format!("{}: {reason}", params.display())))?;
    let unit = AtomicDir::create(out)?;
    files::write_atomic(
        &unit
            .path()
            .join(weatherlens_training::checkpoint::MODEL_FILE),
        &imported.safetensors_bytes(),
    )?;
    write_json(&unit.path().join(DESCRIPTION_FILE), &description)?;
    let stats_out = unit.path().join(STATS_DIR);
    files::create_dir_all(&stats_out)?;
    for name in STATS_FILES {
        let bytes = files::read(&stats_dir.join(name))?;
        files::write_atomic(&stats_out.join(name), &bytes)?;
    }
    unit.commit()?;
    Ok(ImportSummary {
        out: out.to_path_buf(),
        mesh_size: description.graphcast_model_config.mesh_size,
        latent_size: description.model.latent_size,
        processor_steps: description.model.num_layers,
        parameters: description.parameters,
        input_channels: description.inputs.len(),
        output_channels: description.outputs.len(),
    })
}

/// Whether `dir` is an imported GraphCast (holds [`DESCRIPTION_FILE`]).
pub fn is_imported(dir: &Path) -> bool {
    dir.join(DESCRIPTION_FILE).is_file()
}

/// Reads `dir/graphcast.json`.
pub fn read_description(dir: &Path) -> Result<ImportedDescription, StageError> {
    let path = dir.join(DESCRIPTION_FILE);
    let text = files::read_to_string(&path)?;
    let description: ImportedDescription = serde_json::from_str(&text)
        .map_err(|e| StageError::Invalid(format!("{}: {e}", path.display())))?;
    if description.format != FORMAT {
        return Err(StageError::Invalid(format!(
            "{}: format `{}`, this version reads `{FORMAT}`",
            path.display(),
            description.format
        )));
    }
    Ok(description)
}
