//! Data, training and evaluation: datasets (ERA5 / WeatherBench NetCDF, the built-in shallow-water
//! atmosphere), normalisation, the GraphCast objective, the trainer, checkpoints and skill metrics.

pub mod bench;
pub mod dataset;
pub mod loss;
pub mod metrics;
pub mod schedule;
