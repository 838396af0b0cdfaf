//! The train stage: a run config -> a run folder with checkpoints, `metrics.csv` and `metrics.jsonl`.

use weatherlens_training::config::RunConfig;
pub use weatherlens_training::trainer::{TrainOptions, TrainReport};

use super::StageError;
use burn::prelude::Device;

/// Trains (or resumes) `config` into `options.run_dir` on `device`.
pub fn train(
    config: &RunConfig,
    options: &TrainOptions,
    device: &Device,
) -> Result<TrainReport, StageError> {
    Ok(weatherlens_training::trainer::train(
        config, options, device,
    )?)
}
