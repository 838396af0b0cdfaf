//! Everything between GraphCast's data files and its model's tensors: statistics, the channel layout, forcings
//! (year/day progress, TOA solar radiation), normalisation, de-normalisation, the autoregressive rollout and the
//! forecast file. The model itself (checkpoint, parameters, graphs) is `weatherlens_models::graphcast`'s.
//!
//! ```text
//! let checkpoint = GraphCastCheckpoint::read("params.npz")?;         // weatherlens_models::graphcast
//! let task = GraphCastTask::new(&checkpoint.task, "stats/")?;          // statistics + channel layout
//! let inputs = task.read_inputs("example_batch.nc")?;                  // grid, times, initial conditions
//! // graphs on inputs.grid() and the model: as models/tests/graphcast_forward.rs builds them
//! let forecast = task.rollout(&inputs, steps, &device, |x| model.forward(&graph_tensors, x, &hooks))?;
//! forecast.write_netcdf("forecast.nc")?;
//! ```
//!
//! * [`stats`]: `mean_by_level.nc`, `stddev_by_level.nc`, `diffs_stddev_by_level.nc`, by name and level value;
//! * [`channels`]: which value each input and output channel holds, with the fixtures' channel names;
//! * [`names`]: GraphCast's variable lists and the ERA5 short names read for them;
//! * [`progress`], [`solar`]: the forcings GraphCast derives from the valid times;
//! * [`inputs`]: reading a GraphCast example batch or an ERA5-layout file;
//! * [`rollout`]: one step's model input, de-normalisation, the rollout and the [`Forecast`].

pub mod channels;
mod error;
pub mod inputs;
pub mod names;
pub mod progress;
pub mod rollout;
pub mod solar;
pub mod stats;
#[cfg(test)]
mod tests;

use std::path::Path;

use weatherlens_models::graphcast::GraphCastTaskConfig;

pub use channels::{ChannelLayout, InputChannel, InputKind, OutputChannel, STEP_HOURS};
pub use error::GraphCastDataError;
pub use inputs::GraphCastInputs;
pub use rollout::{Forecast, ForecastVariable};
pub use stats::Statistics;

/// A GraphCast task (its `task_config`) with its normalisation statistics: reads input files and turns them
/// into model inputs, and model outputs into forecasts.
#[derive(Debug, Clone)]
pub struct GraphCastTask {
    config: GraphCastTaskConfig,
    layout: ChannelLayout,
    /// Inputs carried from step to step (neither static nor forcings), sorted.
    states: Vec<String>,
    statics: Vec<String>,
    /// Forcings read from the file (all but the generated progress features), sorted.
    file_forcings: Vec<String>,
}

impl GraphCastTask {
    /// The task of `config` with the statistics of the folder `stats_dir` (see [`Statistics::read`]).
    pub fn new(config: &GraphCastTaskConfig, stats_dir: &Path) -> Result<Self, GraphCastDataError> {
        Self::with_statistics(config, &Statistics::read(stats_dir)?)
    }

    /// The task of `config` with `stats`. Every input must be static, a forcing or a target (so that the rollout
    /// can carry it), and forcings must be single-level.
    pub fn with_statistics(
        config: &GraphCastTaskConfig,
        stats: &Statistics,
    ) -> Result<Self, GraphCastDataError> {
        let layout = ChannelLayout::new(config, stats)?;
        let is_forcing = |v: &String| config.forcing_variables.contains(v);
        let mut states = Vec::new();
        let mut statics = Vec::new();
        for variable in &config.input_variables {
            if names::is_static(variable) {
                statics.push(variable.clone());
            } else if !is_forcing(variable) {
                if !config.target_variables.contains(variable) {
                    return Err(GraphCastDataError::Config(format!(
                        "input `{variable}` is neither static, a forcing nor a target: a rollout cannot carry it"
                    )));
                }
                states.push(variable.clone());
            }
        }
        if let Some(v) = config
            .forcing_variables
            .iter()
            .find(|v| names::is_atmospheric(v))
        {
            return Err(GraphCastDataError::Config(format!(
                "forcing `{v}` has pressure levels; GraphCast's forcings are single-level"
            )));
        }
        let mut file_forcings: Vec<String> = config
            .forcing_variables
            .iter()
            .filter(|v| !names::PROGRESS.contains(&v.as_str()))
            .cloned()
            .collect();
        for list in [&mut states, &mut statics, &mut file_forcings] {
            list.sort();
            list.dedup();
        }
        Ok(Self {
            config: config.clone(),
            layout,
            states,
            statics,
            file_forcings,
        })
    }

    pub fn config(&self) -> &GraphCastTaskConfig {
        &self.config
    }

    /// Every channel with its source and statistics.
    pub fn layout(&self) -> &ChannelLayout {
        &self.layout
    }

    /// Input channel names in model order, e.g. `2m_temperature[time=-6h]`, `land_sea_mask`.
    pub fn input_channel_names(&self) -> Vec<&str> {
        self.layout.inputs.iter().map(|c| c.name.as_str()).collect()
    }

    /// Output channel names in model order, e.g. `geopotential[time=+6h,level=500]`.
    pub fn output_channel_names(&self) -> Vec<&str> {
        self.layout
            .outputs
            .iter()
            .map(|c| c.name.as_str())
            .collect()
    }

    /// Reads the initial conditions, static fields and forcings of `path` (see [`inputs`]).
    pub fn read_inputs(&self, path: &Path) -> Result<GraphCastInputs, GraphCastDataError> {
        self.read_inputs_from(path, 0)
    }

    /// [`Self::read_inputs`] of the file as if it began at its time `first_time` (from 0, in time order): the
    /// initial conditions are times `first_time ..` and the forcings of lead k those of time
    /// `first_time + input_frames + k − 1`. A sliding window over a long file (one forecast per initial time).
    pub fn read_inputs_from(
        &self,
        path: &Path,
        first_time: usize,
    ) -> Result<GraphCastInputs, GraphCastDataError> {
        GraphCastInputs::read(
            path,
            &inputs::Wanted {
                states: &self.states,
                statics: &self.statics,
                file_forcings: &self.file_forcings,
                levels: &self.config.pressure_levels,
                input_frames: self.layout.input_frames,
                first_time,
            },
        )
    }

    /// Every forcing variable's name.
    fn forcing_names(&self) -> Vec<String> {
        let mut names = self.config.forcing_variables.clone();
        names.sort();
        names.dedup();
        names
    }
}
