//! Axis resolution: what each dimension of a file means, found by *name* (never by position), and what to make
//! of the extra axes reanalysis files come with.
//!
//! | layout | time | resolved as |
//! |---|---|---|
//! | ERA5 from the CDS until 2024 | `time` | one series; `level` in millibars |
//! | ERA5 from the new CDS (2024-) | `valid_time` (seconds since 1970) | one series; `pressure_level` in hPa |
//! | WeatherBench 5.625° | `time`, `lat` ascending | scalar `level` of single-level files taken from `coordinates` |
//! | WeatherBench2 Zarr | `time`, fields (time, level, longitude, latitude) | any axis order |
//! | ERA5 + ERA5T (`expver` axis) | `time` | at each time, the one `expver` slot holding data |
//! | ensemble (`number` axis) | `time` or `valid_time` | member `[data] member = N`; without it, refused |
//! | cfgrib forecast: `time`, `step`, `valid_time(time, step)` | valid times | flattened when they form one series |
//! | one forecast: scalar `time`, `step` axis | `time + step` | one series |
//! | GraphCast example batch: `batch`, `time` a timedelta, `datetime(batch, time)` | `datetime` | batch of one dropped, more refused |
//!
//! Fields without a time axis (GraphCast's `land_sea_mask(lat, lon)`) are static. Any other axis is refused
//! with a message naming the variable, its dimensions and what would make it readable.

use super::cf_time::{self, CfTimeUnits};
use super::error::DatasetError;
use super::known_variables;
use super::source::{AttrValue, GriddedSource, VariableInfo};

/// Names accepted for each coordinate, most common first.
pub(crate) const TIME_NAMES: &[&str] = &["time", "valid_time"];
pub(crate) const LEVEL_NAMES: &[&str] = &["level", "pressure_level", "plev", "isobaricInhPa"];
pub(crate) const LAT_NAMES: &[&str] = &["latitude", "lat"];
pub(crate) const LON_NAMES: &[&str] = &["longitude", "lon"];
/// Ensemble-member axes (ECMWF's `number`, CF's `realization`).
pub(crate) const MEMBER_NAMES: &[&str] = &["number", "member", "realization", "ensemble_member"];
/// ERA5's experiment version: 1 = ERA5, 5 = ERA5T (preliminary).
pub(crate) const EXPVER: &str = "expver";
/// GraphCast's example-batch axis.
pub(crate) const BATCH: &str = "batch";

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

/// Choices for axes that have no one obvious reading.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AxisChoices {
    /// The ensemble member to read along `number` (matched against the coordinate's values, else an index).
    pub member: Option<i64>,
}

/// How one file's valid times are stored.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct TimeAxis {
    /// Dimensions indexing time: one of `time` / `valid_time` / `step`, or cfgrib's (`time`, `step`).
    pub dims: Vec<String>,
    /// Valid times, hours since 1970-01-01T00:00:00Z (ascending when flattened from forecasts).
    pub hours: Vec<i64>,
    /// For each valid time, its index along each of `dims`.
    pub index: Vec<Vec<usize>>,
    /// How the times were found, for `data inspect`.
    pub description: String,
}

/// The pressure levels of a file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LevelAxis {
    /// The coordinate variable.
    pub name: String,
    /// Its dimension (`None` for WeatherBench's scalar `level` in single-level files).
    pub dim: Option<String>,
    /// Levels in hPa, in file order.
    pub values_hpa: Vec<f64>,
}

/// The axes of one file, in file order (not yet normalised).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FileAxes {
    pub convention: Convention,
    /// `None`: no time coordinate, every field is static.
    pub time: Option<TimeAxis>,
    pub level: Option<LevelAxis>,
    /// Coordinate variables and the dimensions they label.
    pub lat_name: String,
    pub lon_name: String,
    pub lat_dim: String,
    pub lon_dim: String,
    pub lat: Vec<f64>,
    pub lon: Vec<f64>,
    /// GraphCast's batch dimension when it has one member (dropped).
    pub batch: Option<String>,
}

/// What a dimension of a field means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AxisRole {
    /// The i-th of [`TimeAxis::dims`].
    Time(usize),
    Level,
    Lat,
    Lon,
    /// Merged: at each time, the one slot holding data.
    Expver,
    /// Fixed at the chosen member.
    Member,
    /// Fixed at 0 (length 1).
    Batch,
}

/// How one field variable is read.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FieldLayout {
    /// The role of each stored dimension, in storage order.
    pub roles: Vec<AxisRole>,
    /// Index along the member axis, when there is one.
    pub member_index: Option<usize>,
    /// Levels of the channels: `(index along the level axis, level in hPa)`, or one `(None, level)` entry for a
    /// variable without a level axis (`level` = the scalar level it lists in `coordinates`, if any).
    pub levels: Vec<(Option<usize>, Option<f64>)>,
    /// The channels' short name (`geopotential` -> `z`).
    pub short_name: String,
}

impl FieldLayout {
    /// No time axis: the same field at every time.
    pub fn is_static(&self) -> bool {
        !self.roles.iter().any(|r| matches!(r, AxisRole::Time(_)))
    }

    /// Position of the dimension with role `role`.
    pub fn position(&self, role: AxisRole) -> Option<usize> {
        self.roles.iter().position(|&r| r == role)
    }

    /// The channel names this field gives.
    pub fn channel_names(&self) -> Vec<String> {
        self.levels
            .iter()
            .map(|&(_, level)| super::reader::channel_name(&self.short_name, level))
            .collect()
    }
}

/// The short name a variable's channels take: its own, or the short name of a WeatherBench2 / GraphCast long
/// name (`geopotential` -> `z`, `2m_temperature` -> `t2m`).
pub(crate) fn short_name(variable: &str) -> String {
    known_variables::short_name_of_weatherbench2(variable)
        .map_or_else(|| variable.to_string(), str::to_string)
}

/// A 1-D numeric variable named one of `names`.
fn find_axis<'a>(source: &'a dyn GriddedSource, names: &[&str]) -> Option<&'a VariableInfo> {
    names.iter().find_map(|name| source.variable(name))
}

/// Reads a one-dimensional coordinate as f64.
fn read_axis(
    source: &dyn GriddedSource,
    variable: &VariableInfo,
) -> Result<Vec<f64>, DatasetError> {
    if variable.dims.len() != 1 || !variable.value_type.is_numeric() {
        return Err(DatasetError::WrongDimensions {
            path: source.path().to_path_buf(),
            variable: variable.name.clone(),
            expected: format!("one numeric dimension ({})", variable.name),
            found: variable.dims.clone(),
        });
    }
    source.read_all(&variable.name)
}

/// A time coordinate the file stores in a way WeatherLens cannot read.
fn bad_time(source: &dyn GriddedSource, variable: &VariableInfo, detail: String) -> DatasetError {
    DatasetError::BadTime {
        path: source.path().to_path_buf(),
        variable: variable.name.clone(),
        detail,
    }
}

/// The CF `units` attribute of a time coordinate.
fn time_units<'a>(
    source: &dyn GriddedSource,
    variable: &'a VariableInfo,
) -> Result<&'a str, DatasetError> {
    variable
        .text_attr("units")
        .ok_or_else(|| bad_time(source, variable, "has no `units` attribute".to_string()))
}

/// Time instants of `variable` (CF `units` = `<unit> since <date>` and `calendar`) as whole hours since 1970,
/// in storage order.
fn read_instants(
    source: &dyn GriddedSource,
    variable: &VariableInfo,
) -> Result<Vec<i64>, DatasetError> {
    let bad = |detail: String| bad_time(source, variable, detail);
    let units_text = time_units(source, variable)?;
    let units = CfTimeUnits::parse(units_text).map_err(|e| bad(e.0))?;
    cf_time::check_calendar(variable.text_attr("calendar"), &units).map_err(|e| bad(e.0))?;
    source
        .read_all(&variable.name)?
        .iter()
        .map(|&v| units.to_hours_since_epoch(v).map_err(|e| bad(e.0)))
        .collect()
}

/// Durations of `variable` (CF `units` = `hours`, ...) in whole hours.
fn read_durations(
    source: &dyn GriddedSource,
    variable: &VariableInfo,
) -> Result<Vec<i64>, DatasetError> {
    let bad = |detail: String| bad_time(source, variable, detail);
    let units = time_units(source, variable)?;
    source
        .read_all(&variable.name)?
        .iter()
        .map(|&v| cf_time::duration_hours(units, v).map_err(|e| bad(e.0)))
        .collect()
}

fn has_instant_units(variable: &VariableInfo) -> bool {
    variable.value_type.is_numeric()
        && variable
            .text_attr("units")
            .is_some_and(cf_time::is_instant_units)
}

/// GraphCast's example-batch times: `datetime(batch, time)` instants, every batch member with its own dates.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchTimes {
    /// The first dimension of `datetime` (GraphCast: `batch`).
    pub batch_dim: String,
    /// The second (GraphCast: `time`, a timedelta coordinate).
    pub time_dim: String,
    pub members: usize,
    /// Valid times, hours since 1970-01-01T00:00:00Z: [members, times] row-major.
    pub hours: Vec<i64>,
}

impl BatchTimes {
    /// Number of times of each member.
    pub fn times(&self) -> usize {
        self.hours.len() / self.members.max(1)
    }

    /// The valid times of member `b`.
    pub fn member(&self, b: usize) -> &[i64] {
        let n = self.times();
        &self.hours[b * n..(b + 1) * n]
    }
}

/// The valid times of a file in GraphCast's example-batch layout (a two-dimensional `datetime` with CF instant
/// units), any number of members; `None` when the file has no such variable.
pub fn batch_datetimes(source: &dyn GriddedSource) -> Result<Option<BatchTimes>, DatasetError> {
    let Some(datetime) = source
        .variable("datetime")
        .filter(|v| v.dims.len() == 2 && has_instant_units(v))
    else {
        return Ok(None);
    };
    let hours = read_instants(source, datetime)?;
    if hours.is_empty() {
        return Err(DatasetError::EmptyTimeAxis {
            path: source.path().to_path_buf(),
            variable: datetime.name.clone(),
        });
    }
    Ok(Some(BatchTimes {
        batch_dim: datetime.dims[0].clone(),
        time_dim: datetime.dims[1].clone(),
        members: datetime.shape[0],
        hours,
    }))
}

/// Finds how the file stores time; `None` when it has no time coordinate at all.
pub(crate) fn resolve_time(
    source: &dyn GriddedSource,
) -> Result<Option<(TimeAxis, Option<String>)>, DatasetError> {
    let path = source.path();
    // cfgrib: valid_time(time, step), flattened when the valid times form one series.
    if let Some(valid) = source.variable("valid_time")
        && valid.dims.len() == 2
        && has_instant_units(valid)
    {
        return flatten_forecasts(source, valid).map(|axis| Some((axis, None)));
    }
    // A one-dimensional time coordinate: `time(time)`, `valid_time(valid_time)`, or `valid_time(step)` of one
    // forecast.
    for name in TIME_NAMES {
        if let Some(variable) = source.variable(name)
            && variable.dims.len() == 1
            && has_instant_units(variable)
        {
            let hours = read_instants(source, variable)?;
            if hours.is_empty() {
                return Err(DatasetError::EmptyTimeAxis {
                    path: path.to_path_buf(),
                    variable: name.to_string(),
                });
            }
            let dim = variable.dims[0].clone();
            let description = if &dim == name {
                format!("`{name}`: {} times", hours.len())
            } else {
                format!(
                    "`{name}({dim})`: the {} valid times of one forecast",
                    hours.len()
                )
            };
            return Ok(Some((
                TimeAxis {
                    index: (0..hours.len()).map(|k| vec![k]).collect(),
                    dims: vec![dim],
                    hours,
                    description,
                },
                None,
            )));
        }
    }
    // GraphCast's example batch: `time` a timedelta, `datetime(batch, time)` the valid times.
    if let Some(batch) = batch_datetimes(source)? {
        let BatchTimes {
            batch_dim: batch,
            time_dim,
            members,
            hours,
        } = batch;
        if members != 1 {
            let starts: Vec<String> = hours
                .chunks(hours.len() / members.max(1))
                .map(|member| {
                    member
                        .first()
                        .map_or_else(String::new, |&t| cf_time::iso8601(t))
                })
                .collect();
            return Err(DatasetError::Axis {
                path: path.to_path_buf(),
                axis: batch.clone(),
                detail: format!(
                    "`{batch}` has {members} members (starting {}): training reads one series, so a batch of \
                     more than one is not read; write one file per member (e.g. xarray `ds.isel({batch}=0)`)",
                    starts.join(", ")
                ),
            });
        }
        return Ok(Some((
            TimeAxis {
                index: (0..hours.len()).map(|k| vec![k]).collect(),
                dims: vec![time_dim.clone()],
                description: format!(
                    "`datetime({batch}, {time_dim})` (GraphCast layout, `{batch}` of 1 dropped): {} times",
                    hours.len()
                ),
                hours,
            },
            Some(batch),
        )));
    }
    // One forecast without valid_time: scalar `time` + `step`.
    if let (Some(reference), Some(step)) = (source.variable("time"), source.variable("step"))
        && reference.dims.is_empty()
        && has_instant_units(reference)
        && step.dims.len() == 1
    {
        let start = read_instants(source, reference)?
            .first()
            .copied()
            .ok_or_else(|| DatasetError::EmptyTimeAxis {
                path: path.to_path_buf(),
                variable: "time".to_string(),
            })?;
        let steps = read_durations(source, step)?;
        if steps.is_empty() {
            return Err(DatasetError::EmptyTimeAxis {
                path: path.to_path_buf(),
                variable: step.name.clone(),
            });
        }
        return Ok(Some((
            TimeAxis {
                index: (0..steps.len()).map(|k| vec![k]).collect(),
                hours: steps.iter().map(|s| start + s).collect(),
                description: format!(
                    "scalar `time` + `{}`: the {} valid times of one forecast",
                    step.name,
                    steps.len()
                ),
                dims: vec![step.dims[0].clone()],
            },
            None,
        )));
    }
    // A time coordinate that is not a time: say why rather than "no time".
    if let Some(variable) = find_axis(source, TIME_NAMES) {
        let detail = match variable.text_attr("units") {
            None => "has no `units` attribute".to_string(),
            Some(units) => format!(
                "units {units:?} are not `<unit> since <date>` and no `datetime` variable gives the valid times"
            ),
        };
        return Err(DatasetError::BadTime {
            path: path.to_path_buf(),
            variable: variable.name.clone(),
            detail,
        });
    }
    Ok(None)
}

/// cfgrib's forecast layout: `valid_time(time, step)`. The (time, step) pairs are taken in valid-time order; a
/// valid time reached by two forecasts is refused, naming it.
fn flatten_forecasts(
    source: &dyn GriddedSource,
    valid: &VariableInfo,
) -> Result<TimeAxis, DatasetError> {
    let path = source.path();
    let (first_dim, second_dim) = (&valid.dims[0], &valid.dims[1]);
    let columns = valid.shape[1];
    let hours = read_instants(source, valid)?;
    if hours.is_empty() {
        return Err(DatasetError::EmptyTimeAxis {
            path: path.to_path_buf(),
            variable: valid.name.clone(),
        });
    }
    let mut pairs: Vec<(i64, usize, usize)> = hours
        .iter()
        .enumerate()
        .map(|(n, &h)| (h, n / columns.max(1), n % columns.max(1)))
        .collect();
    pairs.sort_by_key(|&(h, i, j)| (h, i, j));
    // Labels of the forecasts for the message: `time 2020-01-01T00:00:00Z + step 6 h` when the coordinates read.
    let label_of = |i: usize, j: usize| -> String {
        let start = source
            .variable(first_dim)
            .filter(|v| has_instant_units(v))
            .and_then(|v| read_instants(source, v).ok())
            .and_then(|t| t.get(i).copied());
        let step = source
            .variable(second_dim)
            .and_then(|v| read_durations(source, v).ok())
            .and_then(|s| s.get(j).copied());
        match (start, step) {
            (Some(start), Some(step)) => format!(
                "{first_dim} {} + {second_dim} {step} h",
                cf_time::iso8601(start)
            ),
            _ => format!("{first_dim} index {i}, {second_dim} index {j}"),
        }
    };
    if let Some(pair) = pairs.windows(2).find(|w| w[0].0 == w[1].0) {
        let (a, b) = (pair[0], pair[1]);
        let repeated: Vec<String> = {
            let mut times: Vec<i64> = pairs
                .windows(2)
                .filter(|w| w[0].0 == w[1].0)
                .map(|w| w[0].0)
                .collect();
            times.dedup();
            times.into_iter().map(cf_time::iso8601).collect()
        };
        return Err(DatasetError::Axis {
            path: path.to_path_buf(),
            axis: valid.name.clone(),
            detail: format!(
                "valid time {} occurs twice ({} and {}); valid times reached more than once ({}) are not one \
                 series: keep one {second_dim} per valid time (e.g. xarray `ds.isel({second_dim}=0)`) or one \
                 forecast per file",
                cf_time::iso8601(a.0),
                label_of(a.1, a.2),
                label_of(b.1, b.2),
                repeated.join(", ")
            ),
        });
    }
    Ok(TimeAxis {
        description: format!(
            "`{}({first_dim}, {second_dim})`: {} forecasts x {columns} steps flattened to {} valid times",
            valid.name,
            valid.shape[0],
            pairs.len()
        ),
        index: pairs.iter().map(|&(_, i, j)| vec![i, j]).collect(),
        hours: pairs.iter().map(|&(h, _, _)| h).collect(),
        dims: vec![first_dim.clone(), second_dim.clone()],
    })
}

/// The horizontal and vertical axes of a file, in file order: what [`resolve_axes`] finds besides time.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct SpaceAxes {
    /// Coordinate variables and the dimensions they label.
    pub lat_name: String,
    pub lon_name: String,
    pub lat_dim: String,
    pub lon_dim: String,
    /// Degrees, as stored.
    pub lat: Vec<f64>,
    pub lon: Vec<f64>,
    pub level: Option<LevelAxis>,
}

/// Finds and reads the latitude, longitude and (when there is one) pressure-level coordinates of a file.
pub(crate) fn resolve_space(source: &dyn GriddedSource) -> Result<SpaceAxes, DatasetError> {
    let require = |names: &[&str]| {
        find_axis(source, names).ok_or_else(|| DatasetError::MissingVariable {
            path: source.path().to_path_buf(),
            variable: names.join(" or "),
            available: source.variables().iter().map(|v| v.name.clone()).collect(),
        })
    };
    let lat_variable = require(LAT_NAMES)?;
    let lon_variable = require(LON_NAMES)?;
    let lat = read_axis(source, lat_variable)?;
    let lon = read_axis(source, lon_variable)?;
    let level = match find_axis(source, LEVEL_NAMES) {
        Some(variable) if variable.dims.len() <= 1 && variable.value_type.is_numeric() => {
            let values = source.read_all(&variable.name)?;
            let to_hpa = match variable.text_attr("units").map(str::trim) {
                Some("Pa") => 0.01,
                _ => 1.0,
            };
            Some(LevelAxis {
                name: variable.name.clone(),
                dim: variable.dims.first().cloned(),
                values_hpa: values.iter().map(|v| v * to_hpa).collect(),
            })
        }
        _ => None,
    };
    Ok(SpaceAxes {
        lat_name: lat_variable.name.clone(),
        lon_name: lon_variable.name.clone(),
        lat_dim: lat_variable.dims[0].clone(),
        lon_dim: lon_variable.dims[0].clone(),
        lat,
        lon,
        level,
    })
}

/// Finds and reads the axes of a file.
pub(crate) fn resolve_axes(source: &dyn GriddedSource) -> Result<FileAxes, DatasetError> {
    let space = resolve_space(source)?;
    let (time, batch) = match resolve_time(source)? {
        Some((axis, batch)) => (Some(axis), batch),
        None => (None, None),
    };
    let time_name = time
        .as_ref()
        .map(|t| t.dims.last().cloned().unwrap_or_default());
    let convention = match (
        time_name.as_deref(),
        space.level.as_ref().map(|l| l.name.as_str()),
        space.lat_name.as_str(),
    ) {
        (Some("time"), None | Some("level"), "latitude") => Convention::Era5Cds,
        (Some("valid_time"), None | Some("pressure_level"), "latitude") => Convention::Era5CdsNew,
        (Some("time"), None | Some("level"), "lat") => Convention::WeatherBench,
        _ => Convention::Mixed,
    };
    Ok(FileAxes {
        convention,
        time,
        level: space.level,
        lat_name: space.lat_name,
        lon_name: space.lon_name,
        lat_dim: space.lat_dim,
        lon_dim: space.lon_dim,
        lat: space.lat,
        lon: space.lon,
        batch,
    })
}

impl FileAxes {
    /// A numeric variable on both grid axes that is not itself a coordinate: something to read as channels.
    pub fn is_field(&self, variable: &VariableInfo) -> bool {
        variable.value_type.is_numeric()
            && !variable.is_coordinate()
            && variable.dims.contains(&self.lat_dim)
            && variable.dims.contains(&self.lon_dim)
    }

    /// Gives every dimension of field `variable` a role, or says why it cannot be read and what would make it
    /// readable.
    pub fn field_layout(
        &self,
        source: &dyn GriddedSource,
        variable: &VariableInfo,
        choices: &AxisChoices,
    ) -> Result<FieldLayout, DatasetError> {
        let refuse = |reason: String| DatasetError::UnreadableVariable {
            path: source.path().to_path_buf(),
            variable: variable.name.clone(),
            dims: variable.dims.clone(),
            reason,
        };
        let time_dims: &[String] = self.time.as_ref().map_or(&[], |t| &t.dims);
        let level_dim = self.level.as_ref().and_then(|l| l.dim.as_deref());
        let mut roles = Vec::with_capacity(variable.dims.len());
        let mut member_index = None;
        for (dim, &len) in variable.dims.iter().zip(&variable.shape) {
            let role = if dim == &self.lat_dim {
                AxisRole::Lat
            } else if dim == &self.lon_dim {
                AxisRole::Lon
            } else if let Some(i) = time_dims.iter().position(|t| t == dim) {
                AxisRole::Time(i)
            } else if Some(dim.as_str()) == level_dim {
                AxisRole::Level
            } else if dim == EXPVER {
                AxisRole::Expver
            } else if MEMBER_NAMES.contains(&dim.as_str()) {
                member_index = Some(self.member_index(source, variable, dim, len, choices)?);
                AxisRole::Member
            } else if self.batch.as_deref() == Some(dim.as_str()) || dim == BATCH {
                if len != 1 {
                    return Err(refuse(format!(
                        "`{dim}` has {len} members; training reads one series, so write one file per member \
                         (e.g. xarray `ds.isel({dim}=0)`)"
                    )));
                }
                AxisRole::Batch
            } else {
                return Err(refuse(format!(
                    "`{dim}` (length {len}) is neither time, a pressure level, latitude, longitude nor an axis \
                     WeatherLens resolves (expver, number, batch); select one `{dim}` (e.g. `ncks -d {dim},0 IN OUT` \
                     or xarray `ds.isel({dim}=0)`) or leave `{}` out of [data] variables",
                    variable.name
                )));
            };
            if roles.contains(&role) {
                return Err(refuse(format!(
                    "two dimensions mean the same ({dim} and another)"
                )));
            }
            roles.push(role);
        }
        let used_time: Vec<usize> = roles
            .iter()
            .filter_map(|r| match r {
                AxisRole::Time(i) => Some(*i),
                _ => None,
            })
            .collect();
        if !used_time.is_empty() && used_time.len() != time_dims.len() {
            return Err(refuse(format!(
                "the file's valid times run along ({}) but this variable has only some of them",
                time_dims.join(", ")
            )));
        }
        let levels = if let Some(at) = roles.iter().position(|&r| r == AxisRole::Level) {
            let values = &self
                .level
                .as_ref()
                .map(|l| l.values_hpa.clone())
                .unwrap_or_default();
            if values.len() != variable.shape[at] {
                return Err(refuse(format!(
                    "its level axis has {} entries but the level coordinate {}",
                    variable.shape[at],
                    values.len()
                )));
            }
            values
                .iter()
                .enumerate()
                .map(|(i, &l)| (Some(i), Some(l)))
                .collect()
        } else {
            vec![(None, self.scalar_level_of(variable))]
        };
        Ok(FieldLayout {
            roles,
            member_index,
            levels,
            short_name: short_name(&variable.name),
        })
    }

    /// WeatherBench's single-level files: a scalar `level` coordinate that the variable lists in its
    /// `coordinates` attribute (as xarray writes scalar coordinates).
    fn scalar_level_of(&self, variable: &VariableInfo) -> Option<f64> {
        let level = self.level.as_ref().filter(|l| l.dim.is_none())?;
        let listed = variable
            .text_attr("coordinates")
            .is_some_and(|c| c.split_whitespace().any(|n| n == level.name));
        listed.then(|| level.values_hpa.first().copied()).flatten()
    }

    /// The index of the chosen member along `dim`; refused without a choice when there is more than one.
    fn member_index(
        &self,
        source: &dyn GriddedSource,
        variable: &VariableInfo,
        dim: &str,
        len: usize,
        choices: &AxisChoices,
    ) -> Result<usize, DatasetError> {
        let values: Vec<f64> = match source.variable(dim) {
            Some(coordinate)
                if coordinate.dims.len() == 1 && coordinate.value_type.is_numeric() =>
            {
                source.read_all(dim)?
            }
            _ => (0..len).map(|i| i as f64).collect(),
        };
        let listed = values
            .iter()
            .map(|v| format!("{v}"))
            .collect::<Vec<_>>()
            .join(", ");
        let refuse = |reason: String| DatasetError::UnreadableVariable {
            path: source.path().to_path_buf(),
            variable: variable.name.clone(),
            dims: variable.dims.clone(),
            reason,
        };
        match choices.member {
            None if len == 1 => Ok(0),
            None => Err(refuse(format!(
                "`{dim}` holds {len} ensemble members ({listed}); averaging or taking one silently would be \
                 wrong: choose a member with `[data] member = N` in the run config (or `--member N`)"
            ))),
            Some(member) => values
                .iter()
                .position(|&v| v == member as f64)
                .ok_or_else(|| {
                    refuse(format!(
                        "member {member} is not one of `{dim}`'s members ({listed})"
                    ))
                }),
        }
    }

    /// One line saying how WeatherLens reads `variable`, for `data inspect`.
    pub fn describe(
        &self,
        source: &dyn GriddedSource,
        variable: &VariableInfo,
        choices: &AxisChoices,
    ) -> String {
        if variable.is_coordinate() {
            return "coordinate".to_string();
        }
        if !variable.value_type.is_numeric() {
            return match source.check_readable(&variable.name) {
                Err(error) => format!("not readable: {error}"),
                Ok(()) => "not a field: not numeric".to_string(),
            };
        }
        if !self.is_field(variable) {
            return format!("not a field: no {}/{} axes", self.lat_dim, self.lon_dim);
        }
        let layout = match self.field_layout(source, variable, choices) {
            Ok(layout) => layout,
            Err(DatasetError::UnreadableVariable { reason, .. }) => {
                return format!("not read: {reason}");
            }
            Err(error) => return format!("not read: {error}"),
        };
        let mut parts = vec![format!(
            "channels {} from ({}) by dimension name",
            layout.channel_names().join(", "),
            variable.dims.join(", ")
        )];
        if layout.is_static() {
            parts.push("static: no time axis".to_string());
        }
        if layout.position(AxisRole::Expver).is_some() {
            parts.push(format!(
                "`{EXPVER}` merged: at each time, the one slot holding data (both holding data is refused)"
            ));
        }
        if let (Some(at), Some(index)) = (layout.position(AxisRole::Member), layout.member_index) {
            parts.push(format!("member index {index} of `{}`", variable.dims[at]));
        }
        if let Some(at) = layout.position(AxisRole::Batch) {
            parts.push(format!("`{}` of length 1 dropped", variable.dims[at]));
        }
        if let Some(AttrValue::Numbers(_)) = variable.attribute("scale_factor") {
            parts.push("unpacked with scale_factor/add_offset".to_string());
        }
        parts.join("; ")
    }
}
