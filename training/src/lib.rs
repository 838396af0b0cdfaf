//! Data, training and evaluation: datasets (ERA5 / WeatherBench NetCDF, the built-in shallow-water
//! atmosphere), normalisation, the GraphCast objective, the trainer, checkpoints and skill metrics.

pub mod atmosphere;
pub mod checkpoint;
pub mod config;
pub mod data;
pub mod dataset;
pub mod emulator;
pub mod evaluate;
pub mod graphcast;
pub mod loss;
pub mod metrics;
pub mod normalise;
pub mod parallel;
pub mod restore;
pub mod run_state;
pub mod schedule;
pub mod trainer;
pub mod windows;
