//! What `data inspect FILE --json` and `data stats FILE --json` print, as library functions returning serde
//! structs that serialise to exactly the JSON of DESIGN.md ("Machine-readable CLI").

use std::path::Path;

use serde::Serialize;
use serde::ser::SerializeMap;

use super::cf_time;
use super::coordinates;
use super::error::DatasetError;
use super::moments::Moments;
use super::netcdf::NcFile;
use super::reader::{GridReader, MissingPolicy};

/// Values read at a time when streaming a variable or a file: bounds memory to ~128 MB of f64.
const VALUES_PER_CHUNK: usize = 16 * 1024 * 1024;

/// `data inspect --json`: `{"dims": {name: len}, "variables": {name: {"dims": [..], "units": ".."}},
/// "time": {"start", "end", "step_hours", "count"}, "nan_count": n}` plus `inf_count`.
///
/// `dims` and `variables` keep the file's order. `time` is null when the file has no time coordinate;
/// `step_hours` is null when there is one time or the steps are uneven. `nan_count` counts values of data
/// variables (numeric, not coordinates) that are NaN, `_FillValue` or `missing_value`; `inf_count` the infinities.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Inspection {
    #[serde(serialize_with = "ordered_map")]
    pub dims: Vec<(String, usize)>,
    #[serde(serialize_with = "ordered_map")]
    pub variables: Vec<(String, VariableSummary)>,
    pub time: Option<TimeSummary>,
    pub nan_count: u64,
    pub inf_count: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VariableSummary {
    pub dims: Vec<String>,
    /// The `units` attribute, empty when absent.
    pub units: String,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimeSummary {
    /// ISO 8601, e.g. `1979-01-01T00:00:00Z`.
    pub start: String,
    pub end: String,
    pub step_hours: Option<i64>,
    pub count: usize,
}

/// `data stats --json`: `{"channels": [{"name", "mean", "std", "diff_std"}, ..]}` plus `count` and `missing`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Stats {
    pub channels: Vec<ChannelSummary>,
}

/// Statistics of one channel over every time and grid point of the file, after unpacking and without fill values.
///
/// `std` is the population standard deviation; `diff_std` that of `x(t_{i+1}) - x(t_i)` over consecutive times
/// (pairs with a missing value skipped). Values are null when there is nothing to average.
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

/// Describes any NetCDF-4 file: dimensions, variables, time axis, count of missing values.
pub fn inspect(path: &Path) -> Result<Inspection, DatasetError> {
    let file = NcFile::open(path)?;
    let dims = file.dimensions()?;
    let mut variables = Vec::new();
    let (mut nan_count, mut inf_count) = (0_u64, 0_u64);
    for name in file.variable_names()? {
        let variable = file.variable(&name)?;
        let units = variable.text_attr("units")?.unwrap_or_default();
        if variable.is_numeric()? && !variable.is_dimension_scale()? && !variable.shape.is_empty() {
            let packing = variable.packing()?;
            // Chunks along the first axis, each of at most VALUES_PER_CHUNK values (at least one row).
            let row_len: usize = variable.shape[1..].iter().product();
            let rows_per_chunk = (VALUES_PER_CHUNK / row_len.max(1)).max(1);
            let mut start = vec![0; variable.shape.len()];
            let mut count = variable.shape.clone();
            for first_row in (0..variable.shape[0]).step_by(rows_per_chunk) {
                start[0] = first_row;
                count[0] = rows_per_chunk.min(variable.shape[0] - first_row);
                for raw in variable.read_raw(&start, &count)? {
                    match packing.classify(raw) {
                        Some("infinity") => inf_count += 1,
                        Some(_) => nan_count += 1,
                        None => {}
                    }
                }
            }
        }
        variables.push((
            name,
            VariableSummary {
                dims: variable.dims,
                units,
            },
        ));
    }
    let time_name = ["time", "valid_time"]
        .into_iter()
        .find(|n| file.has_variable(n));
    let time = match time_name {
        Some(name) => {
            let hours = coordinates::read_time_axis(&file, name)?;
            match (hours.first(), hours.last()) {
                (Some(&first), Some(&last)) => Some(TimeSummary {
                    start: cf_time::iso8601(first),
                    end: cf_time::iso8601(last),
                    step_hours: cf_time::uniform_step_hours(&hours).ok().flatten(),
                    count: hours.len(),
                }),
                _ => None,
            }
        }
        None => None,
    };
    Ok(Inspection {
        dims,
        variables,
        time,
        nan_count,
        inf_count,
    })
}

/// Mean, standard deviation and standard deviation of consecutive differences of every gridded channel
/// (every variable laid out (time, [level], lat, lon), each level a channel), streamed by time chunks.
pub fn stats(path: &Path) -> Result<Stats, DatasetError> {
    let reader = GridReader::open(&[path], &[])?;
    let channel_count = reader.channels().len();
    if channel_count == 0 {
        return Ok(Stats {
            channels: Vec::new(),
        });
    }
    let field_len = reader.lat().len() * reader.lon().len();
    let frame_len = reader.frame_len();
    let times_per_chunk = (VALUES_PER_CHUNK / frame_len.max(1)).max(1);
    let mut values = vec![Moments::default(); channel_count];
    let mut diffs = vec![Moments::default(); channel_count];
    let mut missing = vec![0_u64; channel_count];
    let mut previous: Option<Vec<f32>> = None;
    let time_count = reader.time_hours().len();
    for first in (0..time_count).step_by(times_per_chunk) {
        let chunk = reader.read_times_with(
            first..(first + times_per_chunk).min(time_count),
            MissingPolicy::AsNan,
        )?;
        for frame in chunk.data.chunks_exact(frame_len) {
            for c in 0..channel_count {
                let field = &frame[c * field_len..(c + 1) * field_len];
                values[c].push_finite(field.iter().map(|&v| f64::from(v)));
                missing[c] += field.iter().filter(|v| !v.is_finite()).count() as u64;
                if let Some(previous) = &previous {
                    let before = &previous[c * field_len..(c + 1) * field_len];
                    diffs[c].push_finite(
                        field
                            .iter()
                            .zip(before)
                            .map(|(&a, &b)| f64::from(a) - f64::from(b)),
                    );
                }
            }
            previous = Some(frame.to_vec());
        }
    }
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
        })
        .collect();
    Ok(Stats { channels })
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
            json["variables"]["z"],
            serde_json::json!({"dims": ["time", "level", "latitude", "longitude"], "units": "m**2 s**-2"})
        );
        assert_eq!(
            json["variables"]["t2m"]["dims"],
            serde_json::json!(["time", "latitude", "longitude"])
        );
        assert_eq!(
            json["time"],
            serde_json::json!({"start": "1979-01-01T00:00:00Z", "end": "1979-01-01T12:00:00Z", "step_hours": 6, "count": 3})
        );
        assert_eq!(json["nan_count"], 0);
        let keys: Vec<&String> = json.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 5, "{keys:?}");
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
