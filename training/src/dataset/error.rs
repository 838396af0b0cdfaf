//! Everything that can go wrong reading or writing a gridded dataset file, each variant naming the file.

use std::path::PathBuf;

/// Errors from opening, reading, inspecting or writing NetCDF-4/HDF5, netCDF-3 and Zarr datasets.
///
/// Every variant carries the path of the file concerned so that a message printed by the CLI is enough to find
/// the problem without a debugger. Each message states its cause once.
#[derive(Debug, thiserror::Error)]
pub enum DatasetError {
    #[error("{path}: no such file")]
    MissingFile { path: PathBuf },

    /// A file-system error (its message is part of this one: not repeated as a source).
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },

    #[error("{path}: not a NetCDF file: {detail}")]
    NotNetcdf { path: PathBuf, detail: String },

    /// A ZIP archive under a NetCDF name: what the new CDS (2024-) delivers when a request spans several files.
    #[error(
        "{path}: a ZIP archive, not a NetCDF file (the new CDS delivers multi-file downloads zipped): unzip it \
         and read the files inside{}",
        if members.is_empty() { String::new() } else { format!(" ({})", members.join(", ")) }
    )]
    ZipArchive { path: PathBuf, members: Vec<String> },

    #[error(
        "{path}: truncated file: the HDF5 superblock says the file ends at byte {expected_bytes} \
         but it has only {actual_bytes} bytes (an interrupted download or copy?)"
    )]
    Truncated {
        path: PathBuf,
        expected_bytes: u64,
        actual_bytes: u64,
    },

    /// A netCDF-3 (classic or 64-bit offset) file whose header or data the netCDF-3 reader rejects.
    #[error("{path}: netCDF-3: {detail}")]
    Netcdf3 { path: PathBuf, detail: String },

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

    #[error("{path}: HDF5 library error while {action}: {error}")]
    Hdf5 {
        path: PathBuf,
        action: String,
        error: hdf5::Error,
    },

    /// A variable compressed with an HDF5 filter that the HDF5 library cannot load (zstd = 32015, blosc = 32001,
    /// ...): HDF5 loads such filters as plugins from `HDF5_PLUGIN_PATH`.
    #[error(
        "{path}: variable `{variable}` is compressed with HDF5 filter {filter_id} ({filter_name}), which this HDF5 \
         library cannot load: install the filter plugin (e.g. the one in Python's `hdf5plugin` package or Debian's \
         `hdf5-filter-plugin`) and set HDF5_PLUGIN_PATH to the folder holding it, or rewrite the file without that \
         filter"
    )]
    MissingFilter {
        path: PathBuf,
        variable: String,
        filter_id: i32,
        filter_name: String,
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

    /// A field whose dimensions cannot all be given a meaning (an axis that is neither time, level, latitude,
    /// longitude nor one WeatherLens resolves), with what would make it readable.
    #[error(
        "{path}: variable `{variable}` with dimensions ({}) is not read: {reason}",
        dims.join(", ")
    )]
    UnreadableVariable {
        path: PathBuf,
        variable: String,
        dims: Vec<String>,
        reason: String,
    },

    /// An axis of the file (not of one variable) that cannot be resolved: repeated valid times of a forecast
    /// file, a GraphCast batch of several members, ...
    #[error("{path}: axis `{axis}`: {detail}")]
    Axis {
        path: PathBuf,
        axis: String,
        detail: String,
    },

    /// ERA5 + ERA5T: more than one `expver` slot holds data at one time, so there is no one value to take.
    #[error(
        "{path}: `{variable}` has data in more than one `expver` slot at {} ({}): both versions hold that time, \
         so merging them is ambiguous; select one expver before reading (e.g. `ncks -d expver,0 IN OUT` or \
         xarray's `ds.sel(expver=...)`)",
        super::cf_time::iso8601(*time_hours),
        slots.join(" and ")
    )]
    ExpverOverlap {
        path: PathBuf,
        variable: String,
        time_hours: i64,
        /// The `expver` values (or indices) that hold data.
        slots: Vec<String>,
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
        /// `fill value`, `missing_value`, `netCDF default fill value`, `NaN`, `infinity` or
        /// `value beyond the f32 range`.
        what: &'static str,
    },

    /// A missing value (fill, `missing_value`, netCDF default fill, NaN, infinity) where a value is needed, read
    /// by named dimensions rather than as a channel.
    #[error(
        "{path}: {what} in `{variable}` at ({})",
        position.iter().map(|(dim, i)| format!("{dim} {i}")).collect::<Vec<_>>().join(", ")
    )]
    MissingValue {
        path: PathBuf,
        variable: String,
        /// Each dimension with the index along it.
        position: Vec<(String, usize)>,
        what: &'static str,
    },

    /// Writing an output as a unit (temporary file, rename) failed.
    #[error(transparent)]
    File(#[from] weatherlens_models::files::FileError),

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

    /// Two files of one series hold some of the same times.
    #[error(
        "{first} and {second} overlap: both hold {} .. {} ({count} times); files of one series must hold \
         consecutive, non-overlapping times",
        super::cf_time::iso8601(*from_hours),
        super::cf_time::iso8601(*to_hours)
    )]
    SeriesOverlap {
        first: PathBuf,
        second: PathBuf,
        from_hours: i64,
        to_hours: i64,
        count: usize,
    },

    /// Consecutive files of one series leave times out.
    #[error(
        "gap in the series: {before} ends at {} and {after} starts at {}, so {missing} times of the {step_hours} h \
         step ({} .. {}) are missing",
        super::cf_time::iso8601(*last_hours),
        super::cf_time::iso8601(*next_hours),
        super::cf_time::iso8601(*last_hours + *step_hours),
        super::cf_time::iso8601(*next_hours - *step_hours)
    )]
    SeriesGap {
        before: PathBuf,
        after: PathBuf,
        last_hours: i64,
        next_hours: i64,
        step_hours: i64,
        missing: i64,
    },

    /// Nothing readable was found or selected.
    #[error("{path}: no fields to read: {detail}")]
    NoFields { path: PathBuf, detail: String },

    /// A dataset or a selection that cannot be used as asked (the message says whether reading or writing).
    #[error("{path}: {detail}")]
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
        error: hdf5::Error,
    ) -> Self {
        Self::Hdf5 {
            path: path.to_path_buf(),
            action: action.into(),
            error,
        }
    }
}
