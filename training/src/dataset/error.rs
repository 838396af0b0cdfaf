//! Everything that can go wrong reading or writing a gridded dataset file, each variant naming the file.

use std::path::PathBuf;

/// Errors from opening, reading, inspecting or writing NetCDF4/HDF5 dataset files and reading Zarr stores.
///
/// Every variant carries the path of the file concerned so that a message printed by the CLI is enough to find
/// the problem without a debugger.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{path}: no such file")]
    MissingFile { path: PathBuf },

    #[error("{path}: cannot read or write the file: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("{path}: not a NetCDF4/HDF5 file: {detail}")]
    NotNetcdf { path: PathBuf, detail: String },

    #[error(
        "{path}: truncated file: the HDF5 superblock says the file ends at byte {expected_bytes} \
         but it has only {actual_bytes} bytes (an interrupted download or copy?)"
    )]
    Truncated {
        path: PathBuf,
        expected_bytes: u64,
        actual_bytes: u64,
    },

    #[error("{path}: not a Zarr store: {detail}")]
    NotZarr { path: PathBuf, detail: String },

    /// A Zarr array that cannot be opened or decoded: unsupported codec or data type, missing dimension names,
    /// a corrupt chunk.
    #[error("{path}: Zarr array `{array}`: {detail}")]
    Zarr {
        path: PathBuf,
        array: String,
        detail: String,
    },

    #[error("{path}: HDF5 library error while {action}: {source}")]
    Hdf5 {
        path: PathBuf,
        action: String,
        #[source]
        source: hdf5::Error,
    },

    #[error("{path}: no variable `{variable}` (variables in the file: {})", available.join(", "))]
    MissingVariable {
        path: PathBuf,
        variable: String,
        available: Vec<String>,
    },

    #[error(
        "{path}: variable `{variable}` has no level {level} hPa (levels in the file: {available:?})"
    )]
    MissingLevel {
        path: PathBuf,
        variable: String,
        level: f64,
        available: Vec<f64>,
    },

    #[error("{path}: variable `{variable}` has dimensions ({}), expected {expected}", found.join(", "))]
    WrongDimensions {
        path: PathBuf,
        variable: String,
        expected: String,
        found: Vec<String>,
    },

    #[error("{path}: coordinate `{coordinate}`: {detail}")]
    BadCoordinate {
        path: PathBuf,
        coordinate: String,
        detail: String,
    },

    #[error("{path}: attribute `{attribute}` of `{variable}`: {detail}")]
    BadAttribute {
        path: PathBuf,
        variable: String,
        attribute: String,
        detail: String,
    },

    #[error(
        "{path}: {what} in `{variable}`{} at time index {time_index} ({}), latitude {lat}, longitude {lon}",
        level.map(|l| format!(" level {l} hPa")).unwrap_or_default(),
        super::cf_time::iso8601(*time_hours)
    )]
    MissingData {
        path: PathBuf,
        variable: String,
        level: Option<f64>,
        /// Index along the file's time axis.
        time_index: usize,
        /// The same time, hours since 1970-01-01T00:00:00Z (printed as ISO 8601).
        time_hours: i64,
        /// Coordinates in degrees as stored in the file.
        lat: f64,
        lon: f64,
        /// `fill value`, `missing_value`, `NaN`, `infinity` or `value beyond the f32 range`.
        what: &'static str,
    },

    #[error("{path}: the time axis `{variable}` has length zero")]
    EmptyTimeAxis { path: PathBuf, variable: String },

    #[error(
        "{path}: time steps must be equal and positive: step {index} (from time index {index_before}) is \
         {step_hours} h but the first step is {first_step_hours} h",
        index_before = index - 1
    )]
    NonUniformTimeStep {
        path: PathBuf,
        index: usize,
        step_hours: i64,
        first_step_hours: i64,
    },

    #[error("{path}: time variable `{variable}`: {detail}")]
    BadTime {
        path: PathBuf,
        variable: String,
        detail: String,
    },

    #[error("{path}: does not match {other}: {detail}")]
    GridMismatch {
        path: PathBuf,
        other: PathBuf,
        detail: String,
    },

    #[error("{path}: cannot write this dataset: {detail}")]
    InvalidDataset { path: PathBuf, detail: String },

    #[error("{path}: time range {start}..{end} is outside the file's {count} times")]
    TimeRangeOutOfBounds {
        path: PathBuf,
        start: usize,
        end: usize,
        count: usize,
    },
}

impl DatasetError {
    /// Wraps an HDF5 library error with the file and what was being done.
    pub(crate) fn hdf5(
        path: &std::path::Path,
        action: impl Into<String>,
        source: hdf5::Error,
    ) -> Self {
        Self::Hdf5 {
            path: path.to_path_buf(),
            action: action.into(),
            source,
        }
    }
}
