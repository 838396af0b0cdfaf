//! Bringing a trained model back: its checkpoint, its run state, the data it was trained on and the emulator
//! built from them. Evaluation and probes start here.

use std::path::{Path, PathBuf};

use burn::prelude::*;
use weatherlens_models::fused::Kernels;
use weatherlens_models::graph::ModelGraph;
use weatherlens_models::grid::LatLonGrid;

use crate::checkpoint::{self, CheckpointError};
use crate::data::{self, DataError};
use crate::dataset::{Dataset, DatasetError};
use crate::emulator::Emulator;
use crate::run_state;
use crate::trainer::{self, RunState};

#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error("{path}: {reason}")]
    Mismatch { path: PathBuf, reason: String },
}

pub struct Restored {
    /// The checkpoint folder used.
    pub checkpoint: PathBuf,
    pub state: RunState,
    /// The run's data, read whole.
    pub dataset: Dataset,
    pub graph: ModelGraph,
    pub emulator: Emulator,
}

/// Load the newest checkpoint of `dir` (a run folder or a checkpoint folder) with its data on `device`; its
/// forward passes run `kernels`.
pub fn restore(dir: &Path, device: &Device, kernels: Kernels) -> Result<Restored, RestoreError> {
    let checkpoint = checkpoint::latest(dir)?;
    let state = run_state::load_state(&checkpoint)?;
    let config = &state.config;
    let dataset = data::open(&config.data)?.read_all()?;
    let mismatch = |reason: String| RestoreError::Mismatch {
        path: config.data.path.clone(),
        reason,
    };
    if dataset.channels != state.data.channels
        || dataset.lat != state.data.lat
        || dataset.lon != state.data.lon
    {
        return Err(mismatch(
            "the data's channels or grid differ from those the checkpoint was trained on".into(),
        ));
    }
    let grid = LatLonGrid::from_coordinates(dataset.lat.clone(), dataset.lon.clone())
        .map_err(|e| mismatch(e.to_string()))?;
    let graph = ModelGraph::for_model(&grid, &config.model).map_err(|e| mismatch(e.to_string()))?;
    let model = checkpoint::load_model(
        &checkpoint,
        trainer::build_model_for(config, &state.normalisation, device),
    )?;
    let emulator = Emulator::new(
        model,
        &config.model,
        &graph,
        state.normalisation.clone(),
        kernels,
        device,
    );
    Ok(Restored {
        checkpoint,
        state,
        dataset,
        graph,
        emulator,
    })
}
