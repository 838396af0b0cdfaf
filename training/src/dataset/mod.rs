//! One in-memory dataset type that every source (ERA5 and WeatherBench files, Zarr stores, the built-in
//! atmosphere) produces, the one reader core every stored format goes through, and the NetCDF-4 files
//! WeatherLens writes.
//!
//! * [`GriddedSource`]: a stored dataset — dimensions, variables with named dimensions, box reads — implemented
//!   by [`Netcdf4Source`] (NetCDF-4/HDF5), [`Netcdf3Source`] (classic and 64-bit offset) and [`ZarrSource`]
//!   (v2 and v3); [`open_source`] recognises the format from the content.
//! * [`Reader`]: the one decoding path over them — axes resolved by name (`axes`), series across files,
//!   unpacking and missing values (`decode`), orientation ([`Orientation`]) — read by time chunks.
//! * [`Era5Writer`] / [`write_era5`] write the ERA5 layout that `ncdump` and xarray read with named dimensions.
//! * [`inspect`] / [`stats`] back `data inspect --json` and `data stats --json`.

mod axes;
mod cf_time;
mod decode;
mod error;
mod grid;
mod hdf5_raw;
mod inspect;
mod known_variables;
#[cfg(test)]
mod layouts;
mod moments;
mod netcdf3;
mod netcdf4;
mod reader;
mod selection;
mod series;
mod source;
mod variable;
mod write;
mod zarr;

pub use axes::{AxisChoices, Convention};
pub use axes::{BatchTimes, batch_datetimes};
pub(crate) use axes::{LEVEL_NAMES, SpaceAxes, resolve_space, resolve_time};
pub use cf_time::{CfTimeUnits, TimeFormatError, iso8601, parse_iso8601_hours, uniform_step_hours};
pub use error::DatasetError;
pub use grid::{Orientation, OrientationError};
pub use inspect::{
    ChannelSummary, Inspection, STATS_DIFF_HOURS, Stats, TimeSummary, VariableSummary, inspect,
    inspect_with, stats, stats_with,
};
pub use known_variables::{KNOWN_VARIABLES, KnownVariable, short_name_of_weatherbench2};
pub use moments::Moments;
pub use netcdf3::Netcdf3Source;
pub use netcdf4::Netcdf4Source;
pub use reader::{Reader, VariableSelection, channel_name};
pub use source::{
    AttrValue, Dimension, GriddedSource, SourceFormat, ValueType, VariableInfo, input_files,
    open_source,
};
pub use variable::{NamedArray, read_decoded, read_variable};
pub use write::{Era5Writer, ForecastFile, ForecastVariable, write_era5, write_forecast};
pub use zarr::{ZarrSource, is_zarr_store};

/// One channel of a dataset: a variable at one level (or a surface variable).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Channel {
    /// Channel name used everywhere downstream, e.g. `z500`, `t850`, `u500` (short name + level in hPa).
    pub name: String,
    /// Variable short name in the file, e.g. `z`.
    pub variable: String,
    /// Pressure level in hPa, `None` for single-level variables.
    pub level: Option<f64>,
    /// CF units string, e.g. `m**2 s**-2`.
    pub units: String,
}

/// Gridded fields on a regular lat-lon grid.
///
/// `data`: [time, channel, lat, lon] row-major, f32, physical units (packing already undone).
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub channels: Vec<Channel>,
    /// Latitudes in degrees, in the order stored in `data`. Files read by [`Reader`] come out 90 -> -90;
    /// other producers may use either order ([`Orientation`] normalises).
    pub lat: Vec<f64>,
    /// Longitudes in degrees, in the order stored in `data` (ascending in [0, 360) from [`Reader`]).
    pub lon: Vec<f64>,
    /// Valid times as hours since 1970-01-01T00:00:00Z.
    pub time_hours: Vec<i64>,
    pub data: Vec<f32>,
}

impl Dataset {
    /// Number of values in one time slice: channels × lat × lon.
    pub fn frame_len(&self) -> usize {
        self.channels.len() * self.lat.len() * self.lon.len()
    }

    /// The fields at time index `t`: [channel, lat, lon].
    pub fn frame(&self, t: usize) -> &[f32] {
        let n = self.frame_len();
        &self.data[t * n..(t + 1) * n]
    }

    /// Number of times.
    pub fn time_count(&self) -> usize {
        self.time_hours.len()
    }

    /// Index of the channel called `name`.
    pub fn channel_index(&self, name: &str) -> Option<usize> {
        self.channels.iter().position(|c| c.name == name)
    }

    /// Checks that `data` has exactly times × channels × lat × lon values; the message says what differs.
    pub fn check_shape(&self) -> Result<(), String> {
        let expected = self.time_hours.len() * self.frame_len();
        if self.data.len() == expected {
            Ok(())
        } else {
            Err(format!(
                "data has {} values but {} times x {} channels x {} lat x {} lon = {expected}",
                self.data.len(),
                self.time_hours.len(),
                self.channels.len(),
                self.lat.len(),
                self.lon.len()
            ))
        }
    }
}

/// Path of a committed fixture written by `tests/fixtures/make_fixtures.py`.
#[cfg(test)]
pub(crate) fn fixture_path(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(name)
}

/// HDF5 1.10 locks files with `flock` on descriptors that child processes inherit: a tool started by one test
/// while another test writes a file would hold that file's write lock until it exits, and reopening the file
/// would then fail with "unable to lock file". Tests that write HDF5 files or start tools take turns.
#[cfg(test)]
pub(crate) fn take_turn() -> std::sync::MutexGuard<'static, ()> {
    static WRITE_OR_SPAWN: std::sync::Mutex<()> = std::sync::Mutex::new(());
    WRITE_OR_SPAWN
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
