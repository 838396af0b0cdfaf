//! The built-in atmosphere: a forced-dissipative shallow-water model on the rotating sphere, its 6-hourly
//! output as a [`Dataset`](crate::dataset::Dataset), and a coarse-resolution copy of it used as the physics
//! ("NWP model") baseline.
//!
//! Why: the emulators and probes need data whose physics is known exactly, with weather-like chaos on the
//! scale of days, that any machine can make in minutes without downloading ERA5.
//!
//! Layout: [`config`] (the TOML-facing settings), [`dynamics`] (the spectral vorticity–divergence model and its
//! time stepping), [`forcing`] (jets, topography, tracer climate), [`stirring`] (the random vorticity forcing
//! that keeps the flow from settling into a repeating wave train), [`williamson`] (the standard test cases that
//! check the dynamics), [`frame`] (model state <-> dataset frame), [`simulate`] (spin-up and snapshots),
//! [`baseline`] (the physics baseline), [`bench`] (speed figures).

pub mod baseline;
pub mod config;
pub mod dynamics;
pub mod forcing;
pub mod frame;
pub mod simulate;
pub mod stirring;
pub mod williamson;

use std::path::PathBuf;

pub use baseline::PhysicsBaseline;
pub use config::{AtmosphereConfig, ForcingConfig, JetConfig, StirringConfig, TopographyWave};
pub use frame::channels;
pub use simulate::{simulate, simulate_with_progress};

/// Earth radius, m (Williamson et al. 1992, J. Comput. Phys. 102, 211–224).
pub const EARTH_RADIUS_M: f64 = 6.37122e6;
/// Earth rotation rate Ω, s⁻¹ (Williamson et al. 1992).
pub const EARTH_ROTATION_RATE: f64 = 7.292e-5;
/// Gravitational acceleration g, m s⁻² (Williamson et al. 1992).
pub const GRAVITY: f64 = 9.80616;
/// Seconds in a day.
pub const SECONDS_PER_DAY: f64 = 86_400.0;
/// Seconds between output snapshots (6 h, the ERA5/WeatherBench step).
pub const SNAPSHOT_INTERVAL_S: f64 = 21_600.0;

/// Failures of the built-in atmosphere a user can cause (bad settings, mismatched grids) or meet (a blow-up).
#[derive(Debug, thiserror::Error)]
pub enum AtmosphereError {
    #[error("{}atmosphere setting `{key}`: {reason}", source_prefix(.path))]
    InvalidConfig {
        path: Option<PathBuf>,
        key: String,
        reason: String,
    },
    #[error("cannot read atmosphere config {path}: {source}")]
    ReadConfig {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot parse atmosphere config {path}: {source}")]
    ParseConfig {
        path: PathBuf,
        source: Box<toml::de::Error>,
    },
    #[error("grid: {0}")]
    Transform(#[from] weatherlens_models::sht::ShtError),
    #[error("grid: {0}")]
    Grid(#[from] weatherlens_models::grid::GridError),
    #[error(
        "initial frame has {got} values, expected {expected} = {channels} channels × {n_lat} lat × {n_lon} lon"
    )]
    FrameSize {
        got: usize,
        expected: usize,
        channels: usize,
        n_lat: usize,
        n_lon: usize,
    },
    #[error("the simulated duration must be a positive number of days, got {days}")]
    InvalidDuration { days: f64 },
    #[error(
        "the model state became non-finite after {days:.2} simulated days (time step too long for the flow?)"
    )]
    NonFinite { days: f64 },
}

fn source_prefix(path: &Option<PathBuf>) -> String {
    path.as_ref()
        .map(|p| format!("{}: ", p.display()))
        .unwrap_or_default()
}
