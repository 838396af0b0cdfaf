//! The train stage: a run config -> a run folder with checkpoints, `metrics.csv` and `metrics.jsonl`.

use weatherlens_training::config::RunConfig;
pub use weatherlens_training::trainer::{TrainOptions, TrainReport};

use super::StageError;
use crate::device::training_devices;
use burn::prelude::Device;

/// Trains (or resumes) `config` into `options.run_dir` on the devices of its `[training] devices`
/// (data-parallel when there are several), or on `device` when it names none.
pub fn train(
    config: &RunConfig,
    options: &TrainOptions,
    device: &Device,
) -> Result<TrainReport, StageError> {
    let devices = training_devices(&config.training.devices, device)
        .map_err(|e| StageError::Invalid(format!("training.devices: {e}")))?;
    Ok(weatherlens_training::trainer::train_on_devices(
        config, options, &devices,
    )?)
}
