//! What `data inspect FILE --json` and `data stats FILE --json` print, as library functions returning serde
//! structs that serialise to the JSON of DESIGN.md ("Machine-readable CLI"), with fields added after the
//! contract's.
//!
//! Both read every format [`super::open_source`] reads (NetCDF-4, netCDF-3, Zarr); `stats` also reads a folder of
//! files as one series.

use std::collections::VecDeque;
use std::path::Path;

use serde::Serialize;
use serde::ser::SerializeMap;

use super::axes::{AxisChoices, resolve_axes};
use super::cf_time;
use super::decode::Decoding;
use super::error::DatasetError;
use super::moments::Moments;
use super::reader::{MissingPolicy, Reader, VariableSelection};
use super::source::{GriddedSource, SourceFormat, open_source};

/// Values read at a time when streaming a variable or a file: bounds memory to ~128 MB of f64.
const VALUES_PER_CHUNK: usize = 16 * 1024 * 1024;

/// The interval of the differences behind `diff_std`: the 6-hour model step, whatever the stored step.
pub const STATS_DIFF_HOURS: i64 = 6;

/// `data inspect --json`: `{"dims": {name: len}, "variables": {name: {"dims": [..], "units": "..", "resolved":
/// "..", "missing": n}}, "time": {"start", "end", "step_hours", "count"}, "nan_count": n}` plus `inf_count`,
/// `format` and `time_axis`.
///
/// `dims` and `variables` are as stored, in stored order. `time` is the valid times as WeatherLens resolves them
/// (null when the file has no time coordinate or it cannot be resolved; `time_axis` says which and why);
/// `step_hours` is null when there is one time or the steps are uneven. `nan_count` counts values of numeric
/// variables that are not coordinates that are missing by any netCDF rule — NaN, `_FillValue`,
/// `missing_value`, or the netCDF default fill of a variable without `_FillValue` — as stored (before any
/// merging); `inf_count` the infinities.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Inspection {
    #[serde(serialize_with = "ordered_map")]
    pub dims: Vec<(String, usize)>,
    #[serde(serialize_with = "ordered_map")]
    pub variables: Vec<(String, VariableSummary)>,
    pub time: Option<TimeSummary>,
    pub nan_count: u64,
    pub inf_count: u64,
    pub format: SourceFormat,
    /// How the valid times were found, or why they could not be.
    pub time_axis: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VariableSummary {
    pub dims: Vec<String>,
    /// The `units` attribute, empty when absent.
    pub units: String,
    /// How WeatherLens reads it: coordinate, channels and how its axes are taken, or why it is not read.
    pub resolved: String,
    /// Missing values as stored (counted for numeric variables that are not coordinates).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missing: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimeSummary {
    /// ISO 8601, e.g. `1979-01-01T00:00:00Z`.
    pub start: String,
    pub end: String,
    pub step_hours: Option<i64>,
    pub count: usize,
}

impl TimeSummary {
    fn of(hours: &[i64]) -> Option<Self> {
        match (hours.first(), hours.last()) {
            (Some(&first), Some(&last)) => Some(Self {
                start: cf_time::iso8601(first),
                end: cf_time::iso8601(last),
                step_hours: cf_time::uniform_step_hours(hours).ok().flatten(),
                count: hours.len(),
            }),
            _ => None,
        }
    }
}

/// `data stats --json`: `{"channels": [{"name", "mean", "std", "diff_std"}, ..]}` plus per channel `count`,
/// `missing`, `variable` and `static`, and `diff_hours`, `time` and `notes`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    pub channels: Vec<ChannelSummary>,
    /// The interval of the differences behind `diff_std` (6 h).
    pub diff_hours: i64,
    pub time: Option<TimeSummary>,
    /// Why a figure is null, and other things worth knowing about the numbers.
    pub notes: Vec<String>,
}

/// Statistics of one channel over every time and grid point, after unpacking and without missing values.
///
/// `std` is the population standard deviation; `diff_std` that of `x(t + 6 h) - x(t)` over every pair of times
/// 6 h apart, whatever the stored step (pairs with a missing value skipped; null when no two times are 6 h
/// apart). Values are null when there is nothing to average.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ChannelSummary {
    pub name: String,
    pub mean: Option<f64>,
    pub std: Option<f64>,
    pub diff_std: Option<f64>,
    /// Values used.
    pub count: u64,
    /// Values skipped as fill, missing, NaN or infinite.
    pub missing: u64,
    /// The stored variable.
    pub variable: String,
    /// The same field at every time (stored without a time axis, or time-constant): a static input.
    #[serde(rename = "static")]
    pub is_static: bool,
}

fn ordered_map<S: serde::Serializer, V: Serialize>(
    entries: &[(String, V)],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    let mut map = serializer.serialize_map(Some(entries.len()))?;
    for (key, value) in entries {
        map.serialize_entry(key, value)?;
    }
    map.end()
}

/// Describes any NetCDF-4, netCDF-3 file or Zarr store: dimensions, variables and how they are read, time
/// axis, count of missing values.
pub fn inspect(path: &Path) -> Result<Inspection, DatasetError> {
    inspect_with(path, &AxisChoices::default())
}

/// [`inspect`] with axis choices (an ensemble member) that change how variables resolve.
pub fn inspect_with(path: &Path, choices: &AxisChoices) -> Result<Inspection, DatasetError> {
    let source = open_source(path)?;
    let source = source.as_ref();
    if source.variables().is_empty() {
        return Err(DatasetError::NoFields {
            path: path.to_path_buf(),
            detail: "the file holds no variables".to_string(),
        });
    }
    let axes = resolve_axes(source);
    let mut variables = Vec::new();
    let (mut nan_count, mut inf_count) = (0_u64, 0_u64);
    for variable in source.variables() {
        let units = variable.text_attr("units").unwrap_or_default().to_string();
        let resolved = match &axes {
            Ok(axes) => axes.describe(source, variable, choices),
            Err(_) if variable.is_coordinate() => "coordinate".to_string(),
            Err(_) => "not read: the file's axes are not resolved (see time_axis)".to_string(),
        };
        let counted = variable.value_type.is_numeric()
            && !variable.is_coordinate()
            && !variable.shape.is_empty();
        let missing = if counted {
            let (missing, infinite) = count_missing(source, &variable.name)?;
            nan_count += missing;
            inf_count += infinite;
            Some(missing + infinite)
        } else {
            None
        };
        variables.push((
            variable.name.clone(),
            VariableSummary {
                dims: variable.dims.clone(),
                units,
                resolved,
                missing,
            },
        ));
    }
    let (time, time_axis) = match &axes {
        Ok(axes) => match &axes.time {
            Some(time) => (TimeSummary::of(&time.hours), time.description.clone()),
            None => (
                None,
                "no time coordinate: every field is static".to_string(),
            ),
        },
        Err(error) => (None, format!("not resolved: {error}")),
    };
    Ok(Inspection {
        dims: source
            .dimensions()
            .iter()
            .map(|d| (d.name.clone(), d.len))
            .collect(),
        variables,
        time,
        nan_count,
        inf_count,
        format: source.format(),
        time_axis,
    })
}

/// Missing values (fill, `missing_value`, default fill, NaN) and infinities of a variable as stored, streamed
/// along its first axis.
fn count_missing(source: &dyn GriddedSource, name: &str) -> Result<(u64, u64), DatasetError> {
    source.check_readable(name)?;
    let variable = source.require(name)?;
    let decoding = Decoding::of(source, variable)?;
    let row_len: usize = variable.shape[1..].iter().product();
    let rows_per_chunk = (VALUES_PER_CHUNK / row_len.max(1)).max(1);
    let mut start = vec![0; variable.shape.len()];
    let mut count = variable.shape.clone();
    let (mut missing, mut infinite) = (0_u64, 0_u64);
    for first_row in (0..variable.shape[0]).step_by(rows_per_chunk) {
        start[0] = first_row;
        count[0] = rows_per_chunk.min(variable.shape[0] - first_row);
        for raw in source.read(name, &start, &count)? {
            match decoding.classify(raw) {
                Some("infinity") => infinite += 1,
                Some(_) => missing += 1,
                None => {}
            }
        }
    }
    Ok((missing, infinite))
}

/// Mean, standard deviation and standard deviation of 6-hour differences of every field of a file, a folder of
/// files (one series) or a Zarr store (each level a channel), streamed by time chunks.
pub fn stats(path: &Path) -> Result<Stats, DatasetError> {
    stats_with(path, &[], &AxisChoices::default())
}

/// [`stats`] of the selected variables (all when empty), with axis choices (an ensemble member).
pub fn stats_with(
    path: &Path,
    selection: &[VariableSelection],
    choices: &AxisChoices,
) -> Result<Stats, DatasetError> {
    let reader = Reader::open_path(path, selection, choices)?;
    let channel_count = reader.channels().len();
    let field_len = reader.lat().len() * reader.lon().len();
    let frame_len = reader.frame_len();
    let time_count = reader.time_hours().len();
    let mut notes = Vec::new();
    let lag = match reader.time_step_hours() {
        Some(step) if STATS_DIFF_HOURS % step == 0 => Some((STATS_DIFF_HOURS / step) as usize),
        Some(step) => {
            notes.push(format!(
                "the time step is {step} h, so no two times are {STATS_DIFF_HOURS} h apart: diff_std (the std of \
                 {STATS_DIFF_HOURS}-hour differences) is null; a {step}-hour difference is not presented as one"
            ));
            None
        }
        None => {
            notes.push(format!(
                "one time: no {STATS_DIFF_HOURS}-hour differences, diff_std is null"
            ));
            None
        }
    };
    if let Some(lag) = lag
        && time_count <= lag
    {
        notes.push(format!(
            "{time_count} times span less than {STATS_DIFF_HOURS} h: no {STATS_DIFF_HOURS}-hour differences, \
             diff_std is null"
        ));
    }
    let times_per_chunk = (VALUES_PER_CHUNK / frame_len.max(1)).max(1);
    let mut values = vec![Moments::default(); channel_count];
    let mut diffs = vec![Moments::default(); channel_count];
    let mut missing = vec![0_u64; channel_count];
    let mut constant = vec![time_count > 1; channel_count];
    let mut first_frame: Option<Vec<f32>> = None;
    let mut history: VecDeque<Vec<f32>> = VecDeque::new();
    for first in (0..time_count).step_by(times_per_chunk) {
        let chunk = reader.read_times_with(
            first..(first + times_per_chunk).min(time_count),
            MissingPolicy::AsNan,
        )?;
        for frame in chunk.data.chunks_exact(frame_len) {
            for c in 0..channel_count {
                let span = c * field_len..(c + 1) * field_len;
                let field = &frame[span.clone()];
                values[c].push_finite(field.iter().map(|&v| f64::from(v)));
                missing[c] += field.iter().filter(|v| !v.is_finite()).count() as u64;
                if let Some(lag) = lag
                    && history.len() == lag
                {
                    let before = &history[0][span.clone()];
                    diffs[c].push_finite(
                        field
                            .iter()
                            .zip(before)
                            .map(|(&a, &b)| f64::from(a) - f64::from(b)),
                    );
                }
                if let Some(first_frame) = &first_frame
                    && constant[c]
                {
                    constant[c] = first_frame[span]
                        .iter()
                        .zip(field)
                        .all(|(a, b)| a.to_bits() == b.to_bits());
                }
            }
            if first_frame.is_none() {
                first_frame = Some(frame.to_vec());
            }
            if let Some(lag) = lag {
                history.push_back(frame.to_vec());
                if history.len() > lag {
                    history.pop_front();
                }
            }
        }
    }
    let stored_static = reader.stored_static();
    let stored_variables = reader.stored_variables();
    let channels = reader
        .channels()
        .iter()
        .enumerate()
        .map(|(c, channel)| ChannelSummary {
            name: channel.name.clone(),
            mean: values[c].mean(),
            std: values[c].std(),
            diff_std: diffs[c].std(),
            count: values[c].count(),
            missing: missing[c],
            variable: stored_variables[c].to_string(),
            is_static: stored_static[c] || constant[c],
        })
        .collect();
    Ok(Stats {
        channels,
        diff_hours: STATS_DIFF_HOURS,
        time: TimeSummary::of(reader.time_hours()),
        notes,
    })
}

#[cfg(test)]
mod tests {
    use super::super::fixture_path;
    use super::*;

    #[test]
    fn inspect_reports_dims_variables_and_time_in_the_design_json() {
        let inspection = inspect(&fixture_path("era5_old_packed.nc")).unwrap();
        let json = serde_json::to_value(&inspection).unwrap();
        assert_eq!(
            json["dims"],
            serde_json::json!({"time": 3, "level": 2, "latitude": 3, "longitude": 4})
        );
        assert_eq!(
            json["variables"]["z"]["dims"],
            serde_json::json!(["time", "level", "latitude", "longitude"])
        );
        assert_eq!(json["variables"]["z"]["units"], "m**2 s**-2");
        assert_eq!(
            json["variables"]["z"]["resolved"],
            "channels z500, z850 from (time, level, latitude, longitude) by dimension name; unpacked with \
             scale_factor/add_offset"
        );
        assert_eq!(json["variables"]["time"]["resolved"], "coordinate");
        assert_eq!(
            json["variables"]["t2m"]["dims"],
            serde_json::json!(["time", "latitude", "longitude"])
        );
        assert_eq!(
            json["time"],
            serde_json::json!({"start": "1979-01-01T00:00:00Z", "end": "1979-01-01T12:00:00Z", "step_hours": 6, "count": 3})
        );
        assert_eq!(json["nan_count"], 0);
        // The contract's keys, then the added ones.
        let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
        assert_eq!(
            keys,
            [
                "dims",
                "variables",
                "time",
                "nan_count",
                "inf_count",
                "format",
                "time_axis"
            ],
            "{keys:?}"
        );
        assert_eq!(json["format"], "NETCDF4");
        // dims keep the file's order in the text.
        let text = serde_json::to_string(&inspection).unwrap();
        assert!(
            text.starts_with("{\"dims\":{\"time\":3,\"level\":2,\"latitude\":3,\"longitude\":4}"),
            "{text}"
        );
    }

    #[test]
    fn inspect_counts_fill_missing_and_nan_values() {
        // One fill value in z, one NaN in t, one missing_value in q.
        let inspection = inspect(&fixture_path("era5_fill.nc")).unwrap();
        assert_eq!((inspection.nan_count, inspection.inf_count), (3, 0));
    }

    #[test]
    fn inspect_lists_non_gridded_variables_and_empty_time() {
        let new = inspect(&fixture_path("era5_new_names.nc")).unwrap();
        let dims_of = |name: &str| {
            new.variables
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.dims.clone())
        };
        assert_eq!(dims_of("expver"), Some(vec!["valid_time".to_string()]));
        assert_eq!(dims_of("number"), Some(vec![]));
        assert_eq!(
            new.time.as_ref().map(|t| t.start.as_str()),
            Some("2024-01-01T00:00:00Z")
        );
        let empty = inspect(&fixture_path("empty_time.nc")).unwrap();
        assert_eq!(empty.time, None);
        assert!(matches!(
            inspect(&fixture_path("absent.nc")),
            Err(DatasetError::MissingFile { .. })
        ));
    }

    /// Mean and population std of the values, computed directly.
    fn mean_std(values: &[f64]) -> (f64, f64) {
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / values.len() as f64;
        (mean, var.sqrt())
    }

    #[test]
    fn stats_match_the_script_formulas() {
        let stats = stats(&fixture_path("era5_old_packed.nc")).unwrap();
        let json = serde_json::to_value(&stats).unwrap();
        assert_eq!(json["channels"][0]["name"], "z500");
        let z500: Vec<f64> = (0..3)
            .flat_map(|k| {
                (0..3).flat_map(move |i| {
                    (0..4).map(move |j| 50_000.0 + 0.5 * (1000 * k * k + 10 * i + j) as f64)
                })
            })
            .collect();
        let (mean, std) = mean_std(&z500);
        let z = &stats.channels[0];
        assert!((z.mean.unwrap() - mean).abs() < 1e-9 && (z.std.unwrap() - std).abs() < 1e-9);
        // Every point changes by 500 then 1500: mean 1000, std 500.
        assert!((z.diff_std.unwrap() - 500.0).abs() < 1e-9);
        assert_eq!((z.count, z.missing), (36, 0));
        let names: Vec<&str> = stats.channels.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["z500", "z850", "t2m"]);
    }

    #[test]
    fn stats_leave_out_fill_values() {
        let stats = stats(&fixture_path("era5_fill.nc")).unwrap();
        let z500 = &stats.channels[0];
        assert_eq!(
            (z500.name.as_str(), z500.count, z500.missing),
            ("z500", 35, 1)
        );
        let values: Vec<f64> = (0..3)
            .flat_map(|k| (0..3).flat_map(move |i| (0..4).map(move |j| (k, i, j))))
            .filter(|&(k, i, j)| (k, i, j) != (1, 2, 3))
            .map(|(k, i, j)| 50_000.0 + 0.5 * (1000 * k * k + 10 * i + j) as f64)
            .collect();
        let (mean, std) = mean_std(&values);
        assert!((z500.mean.unwrap() - mean).abs() < 1e-9 && (z500.std.unwrap() - std).abs() < 1e-9);
        // The two differences touching the fill value are skipped; 11 of 500 (t0 -> t1) and 11 of 1500
        // (t1 -> t2) remain: mean 1000, std 500.
        assert!((z500.diff_std.unwrap() - 500.0).abs() < 1e-9);
        // t2m = 280, 281, 282 at each of 12 points: mean 281, variance 2/3, differences all 1.
        let t2m = stats.channels.iter().find(|c| c.name == "t2m").unwrap();
        assert!((t2m.mean.unwrap() - 281.0).abs() < 1e-9);
        assert!((t2m.std.unwrap() - (2.0_f64 / 3.0).sqrt()).abs() < 1e-9);
        assert!(t2m.diff_std.unwrap().abs() < 1e-9);
    }
}
