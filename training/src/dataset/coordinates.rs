//! The coordinates of a gridded file and the naming conventions they come in.
//!
//! | convention | time | level | latitude | longitude |
//! |---|---|---|---|---|
//! | ERA5 from the CDS until 2024 | `time` | `level` (millibars) | `latitude` 90 -> -90 | `longitude` 0..360 |
//! | ERA5 from the new CDS (2024-) | `valid_time` (seconds since 1970) | `pressure_level` (hPa) | `latitude` | `longitude` |
//! | WeatherBench 5.625° | `time` | `level`, or a scalar `level` in single-level files | `lat` ascending | `lon` |

use super::cf_time::{self, CfTimeUnits};
use super::error::DatasetError;
use super::netcdf::NcFile;

/// Names accepted for each coordinate, most common first.
pub(super) const TIME_NAMES: &[&str] = &["time", "valid_time"];
pub(super) const LEVEL_NAMES: &[&str] = &["level", "pressure_level", "plev", "isobaricInhPa"];
pub(super) const LAT_NAMES: &[&str] = &["latitude", "lat"];
pub(super) const LON_NAMES: &[&str] = &["longitude", "lon"];

/// Which naming convention a file follows, for messages and metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Convention {
    /// `time`, `level`, `latitude`, `longitude`.
    Era5Cds,
    /// `valid_time`, `pressure_level`, `latitude`, `longitude`.
    Era5CdsNew,
    /// `time`, `level`, `lat`, `lon`.
    WeatherBench,
    /// Any other mix of the accepted names.
    Mixed,
}

/// The pressure levels of a file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LevelAxis {
    pub name: String,
    /// Levels in hPa, in file order.
    pub values_hpa: Vec<f64>,
    /// False for WeatherBench's scalar `level` coordinate in single-level files (`z500` files).
    pub is_dimension: bool,
}

/// Coordinates read from one file, in file order (not yet normalised).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FileCoordinates {
    pub convention: Convention,
    pub time_name: String,
    pub lat_name: String,
    pub lon_name: String,
    pub level: Option<LevelAxis>,
    /// Whole hours since 1970-01-01T00:00:00Z.
    pub time_hours: Vec<i64>,
    pub lat: Vec<f64>,
    pub lon: Vec<f64>,
}

fn find_name(file: &NcFile, candidates: &[&str]) -> Option<String> {
    candidates
        .iter()
        .find(|name| file.has_variable(name))
        .map(|name| name.to_string())
}

/// The first of `candidates` present in the file, or [`DatasetError::MissingVariable`] naming them all.
fn require_name(file: &NcFile, candidates: &[&str]) -> Result<String, DatasetError> {
    match find_name(file, candidates) {
        Some(name) => Ok(name),
        None => Err(DatasetError::MissingVariable {
            path: file.path().to_path_buf(),
            variable: candidates.join(" or "),
            available: file.variable_names()?,
        }),
    }
}

/// Reads a one-dimensional coordinate variable as f64.
fn read_axis(file: &NcFile, name: &str) -> Result<Vec<f64>, DatasetError> {
    let variable = file.variable(name)?;
    if variable.shape.len() != 1 {
        return Err(DatasetError::WrongDimensions {
            path: file.path().to_path_buf(),
            variable: name.to_string(),
            expected: format!("({name})"),
            found: variable.dims,
        });
    }
    variable.read_all_raw()
}

/// Reads the time axis, converting CF `units` (and `calendar`) to whole hours since 1970.
pub(crate) fn read_time_axis(file: &NcFile, name: &str) -> Result<Vec<i64>, DatasetError> {
    let bad = |detail: String| DatasetError::BadTime {
        path: file.path().to_path_buf(),
        variable: name.to_string(),
        detail,
    };
    let values = read_axis(file, name)?;
    let variable = file.variable(name)?;
    let units_text = variable
        .text_attr("units")?
        .ok_or_else(|| bad("has no `units` attribute".to_string()))?;
    let units = CfTimeUnits::parse(&units_text).map_err(|e| bad(e.0))?;
    cf_time::check_calendar(variable.text_attr("calendar")?.as_deref(), &units)
        .map_err(|e| bad(e.0))?;
    values
        .iter()
        .map(|&v| units.to_hours_since_epoch(v).map_err(|e| bad(e.0)))
        .collect()
}

/// Reads the level axis in hPa (`units = "Pa"` is divided by 100; millibars and hPa are the same).
fn read_level_axis(file: &NcFile, name: &str) -> Result<LevelAxis, DatasetError> {
    let variable = file.variable(name)?;
    let values = variable.read_all_raw()?;
    let to_hpa = match variable.text_attr("units")?.as_deref().map(str::trim) {
        Some("Pa") => 0.01,
        _ => 1.0,
    };
    Ok(LevelAxis {
        name: name.to_string(),
        values_hpa: values.iter().map(|v| v * to_hpa).collect(),
        is_dimension: variable.shape.len() == 1 && variable.is_dimension_scale()?,
    })
}

/// Finds and reads the coordinates of a gridded file.
pub(crate) fn read_coordinates(file: &NcFile) -> Result<FileCoordinates, DatasetError> {
    let time_name = require_name(file, TIME_NAMES)?;
    let lat_name = require_name(file, LAT_NAMES)?;
    let lon_name = require_name(file, LON_NAMES)?;
    let level = find_name(file, LEVEL_NAMES)
        .map(|name| read_level_axis(file, &name))
        .transpose()?;
    let level_name = level.as_ref().map(|l| l.name.as_str());
    let convention = match (time_name.as_str(), level_name, lat_name.as_str()) {
        ("time", None | Some("level"), "latitude") => Convention::Era5Cds,
        ("valid_time", None | Some("pressure_level"), "latitude") => Convention::Era5CdsNew,
        ("time", None | Some("level"), "lat") => Convention::WeatherBench,
        _ => Convention::Mixed,
    };
    Ok(FileCoordinates {
        convention,
        time_hours: read_time_axis(file, &time_name)?,
        lat: read_axis(file, &lat_name)?,
        lon: read_axis(file, &lon_name)?,
        time_name,
        lat_name,
        lon_name,
        level,
    })
}
