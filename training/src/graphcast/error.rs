//! What can go wrong between GraphCast's data files and its model tensors; every message names the file and
//! the variable, level or count at fault.

use std::path::PathBuf;

use crate::dataset::DatasetError;

/// Errors of [`super::GraphCastTask`]: statistics, input files, the rollout and the forecast file.
#[derive(Debug, thiserror::Error)]
pub enum GraphCastDataError {
    /// Opening or reading a file (the message names it).
    #[error(transparent)]
    Dataset(#[from] DatasetError),

    /// GraphCast leaves a variable missing from its statistics un-normalised (with a warning); WeatherLens
    /// refuses.
    #[error(
        "{path}: no statistics for `{variable}`{}{}",
        level.map(|l| format!(" at level {l} hPa")).unwrap_or_default(),
        if available.is_empty() { String::new() } else { format!(" (the file has {})", available.join(", ")) }
    )]
    MissingStatistic {
        path: PathBuf,
        variable: String,
        level: Option<i64>,
        /// The variables, or the levels of the variable, that the file has.
        available: Vec<String>,
    },

    /// A statistics file's variable that is neither a scalar nor a vector along its level coordinate.
    #[error("{path}: statistics of `{variable}`: {detail}")]
    BadStatistic {
        path: PathBuf,
        variable: String,
        detail: String,
    },

    /// The task configuration cannot be laid out (an input duration that is not a whole number of steps, ...).
    #[error("GraphCast task config: {0}")]
    Config(String),

    /// An input the task needs is not in the file under any of the names it may have.
    #[error(
        "{path}: no variable for GraphCast's `{variable}` (looked for {}; the file has {})",
        tried.join(", "),
        available.join(", ")
    )]
    MissingVariable {
        path: PathBuf,
        variable: String,
        tried: Vec<String>,
        available: Vec<String>,
    },

    #[error("{path}: `{variable}` has no level {level} hPa (levels in the file: {available:?})")]
    MissingLevel {
        path: PathBuf,
        variable: String,
        level: i64,
        available: Vec<f64>,
    },

    /// A stored variable whose dimensions or times cannot be used as GraphCast's.
    #[error("{path}: `{variable}`: {detail}")]
    BadVariable {
        path: PathBuf,
        variable: String,
        detail: String,
    },

    /// The file's time axis cannot carry GraphCast's inputs and forcings.
    #[error("{path}: {detail}")]
    Times { path: PathBuf, detail: String },

    /// Fewer times than the initial conditions plus one per step (the forcings of each lead come from the file's
    /// times).
    #[error(
        "{path}: {steps} steps need {needed} times ({inputs} initial conditions + 1 per step) but the file has {times}"
    )]
    TooFewTimes {
        path: PathBuf,
        steps: usize,
        inputs: usize,
        needed: usize,
        times: usize,
    },

    #[error("{path}: the grid: {detail}")]
    Grid { path: PathBuf, detail: String },

    /// The model function returned a tensor of another shape than [batch, grid points, output channels].
    #[error("the model output of step {step} has shape {found:?}, expected {expected:?}")]
    ModelOutput {
        step: usize,
        found: Vec<usize>,
        expected: Vec<usize>,
    },
}
