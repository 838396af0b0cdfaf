//! The WeatherLens application: every pipeline stage as one function ([`stages`]), the study that chains them
//! over many runs ([`study`]), every report and plot ([`report`]) and every benchmark ([`bench`]). The
//! `weatherlens` binary is a thin command line over these; the libraries below do the computing:
//!
//! ```text
//! weatherlens-models   geometry, graphs, SHT, the burn model and its hook points
//! weatherlens-training data readers, built-in atmosphere, normalisation, trainer, checkpoints, evaluation
//! weatherlens-probes   analysis only: recordings, velocity, spectra, alignment, Jacobians, statistics
//! ```

pub mod bench;
pub mod device;
pub mod output;
pub mod progress;
pub mod report;
pub mod stages;
pub mod study;
