//! The data-layout fixtures of `tests/fixtures/layouts/` (written by netCDF4-python, xarray and zarr-python;
//! see its `make_layouts.py`) against the right answers its script computed independently (`expected.json`):
//! channels, static channels, time axis, grid, values at named points, `data stats` figures, `data inspect`'s
//! missing count, and for refusals the words the error must contain.

use std::path::PathBuf;

use serde_json::Value;

use super::axes::AxisChoices;
use super::reader::{MissingPolicy, Reader, VariableSelection};
use super::{Dataset, inspect, iso8601, stats_with};

fn layouts() -> PathBuf {
    super::fixture_path("layouts")
}

fn expected() -> &'static Value {
    static EXPECTED: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    EXPECTED.get_or_init(|| {
        let text = std::fs::read_to_string(layouts().join("expected.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    })
}

/// The expected.json entry of a fixture.
fn entry(key: &str) -> &'static Value {
    let entry = &expected()["fixtures"][key];
    assert!(entry.is_object(), "no expected.json entry {key}");
    entry
}

fn path_of(key: &str) -> PathBuf {
    layouts().join(key.trim_end_matches('/'))
}

fn tolerance(entry: &Value) -> f64 {
    entry["abs_tol"].as_f64().unwrap_or(1e-6)
}

fn close(found: Option<f64>, want: &Value, tol: f64, what: &str) {
    match (found, want.as_f64()) {
        (None, None) => {}
        (Some(found), Some(want)) => assert!(
            (found - want).abs() <= tol,
            "{what}: {found} but expected {want} (tolerance {tol})"
        ),
        (found, _) => panic!("{what}: {found:?} but expected {want}"),
    }
}

/// Checks the `data stats` figures of `stats` against an expected `{channel: {mean, std, ...}}` table.
fn check_stats(
    key: &str,
    stats: &super::Stats,
    want: &Value,
    tol: f64,
    time_count: usize,
    stored_static: &[(String, bool)],
) {
    let want = want.as_object().unwrap();
    let mut names: Vec<&str> = stats.channels.iter().map(|c| c.name.as_str()).collect();
    names.sort_unstable();
    let mut expected_names: Vec<&str> = want.keys().map(String::as_str).collect();
    expected_names.sort_unstable();
    assert_eq!(names, expected_names, "{key}: channels");
    for channel in &stats.channels {
        let w = &want[&channel.name];
        let what = |figure: &str| format!("{key} {} {figure}", channel.name);
        close(channel.mean, &w["mean"], tol, &what("mean"));
        close(channel.std, &w["std"], tol, &what("std"));
        close(channel.diff_std, &w["diff_std"], tol, &what("diff_std"));
        // A field stored without a time axis is repeated at every time (expected.json allows either count).
        let repeated = stored_static
            .iter()
            .any(|(name, is_static)| name == &channel.name && *is_static);
        let count = w["count"].as_u64().unwrap();
        let counts = if repeated {
            vec![count, count * time_count as u64]
        } else {
            vec![count]
        };
        assert!(
            counts.contains(&channel.count),
            "{}: count {} not in {counts:?}",
            what("count"),
            channel.count
        );
        assert_eq!(
            channel.missing,
            w["missing"].as_u64().unwrap(),
            "{}",
            what("missing")
        );
    }
}

/// Checks single values `{channel, time?, lat, lon, value}` (value null = missing) against data read with
/// missing values as NaN.
fn check_values(key: &str, reader: &Reader, data: &Dataset, values: &Value, tol: f64) {
    for point in values.as_array().into_iter().flatten() {
        let channel = point["channel"].as_str().unwrap();
        let c = data
            .channel_index(channel)
            .unwrap_or_else(|| panic!("{key}: no channel {channel}"));
        let t = match point["time"].as_str() {
            Some(time) => reader
                .time_hours()
                .iter()
                .position(|&h| iso8601(h) == time)
                .unwrap_or_else(|| panic!("{key}: no time {time}")),
            None => 0,
        };
        let lat = point["lat"].as_f64().unwrap();
        let lon = point["lon"].as_f64().unwrap().rem_euclid(360.0);
        let i = data.lat.iter().position(|&l| l == lat).unwrap();
        let j = data.lon.iter().position(|&l| l == lon).unwrap();
        let (n_lat, n_lon) = (data.lat.len(), data.lon.len());
        let found = f64::from(data.frame(t)[(c * n_lat + i) * n_lon + j]);
        let what = format!("{key}: {channel} at {point}");
        match point["value"].as_f64() {
            None => assert!(found.is_nan(), "{what}: {found}, expected missing"),
            Some(want) => assert!((found - want).abs() <= tol, "{what}: {found}"),
        }
    }
}

/// Opens `key` as WeatherLens reads it and checks everything expected.json says about it.
fn check_read_with(
    key: &str,
    selection: &[VariableSelection],
    choices: &AxisChoices,
    answers: &Value,
) {
    let entry = entry(key);
    let tol = tolerance(entry);
    let path = path_of(key);
    let reader =
        Reader::open_path(&path, selection, choices).unwrap_or_else(|e| panic!("{key}: {e}"));
    let resolution = &entry["resolution"];
    if resolution.is_object() {
        let mut names: Vec<String> = reader.channels().iter().map(|c| c.name.clone()).collect();
        names.sort();
        let mut want: Vec<String> = resolution["channels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect();
        want.sort();
        assert_eq!(names, want, "{key}: channels");
        let time = &resolution["time"];
        assert_eq!(
            reader.time_hours().len() as u64,
            time["count"].as_u64().unwrap(),
            "{key}: time count"
        );
        assert_eq!(
            iso8601(reader.time_hours()[0]),
            time["first"].as_str().unwrap(),
            "{key}: first time"
        );
        assert_eq!(
            iso8601(*reader.time_hours().last().unwrap()),
            time["last"].as_str().unwrap(),
            "{key}: last time"
        );
        assert_eq!(
            reader.time_step_hours(),
            time["step_hours"].as_i64(),
            "{key}: step"
        );
        let grid = |name: &str| -> Vec<f64> {
            resolution["grid"][name]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect()
        };
        assert_eq!(
            reader.lat(),
            grid("latitude").as_slice(),
            "{key}: latitudes"
        );
        assert_eq!(
            reader.lon(),
            grid("longitude").as_slice(),
            "{key}: longitudes"
        );
    }
    let data = reader
        .read_times_with(0..reader.time_hours().len(), MissingPolicy::AsNan)
        .unwrap();
    check_values(key, &reader, &data, &answers["values"], tol);
    let stats = stats_with(&path, selection, choices).unwrap_or_else(|e| panic!("{key}: {e}"));
    let stored_static: Vec<(String, bool)> = reader
        .channels()
        .iter()
        .zip(reader.stored_static())
        .map(|(c, s)| (c.name.clone(), s))
        .collect();
    if answers["stats"].is_object() {
        check_stats(
            key,
            &stats,
            &answers["stats"],
            tol,
            reader.time_hours().len(),
            &stored_static,
        );
    }
    if let Some(static_channels) = resolution["static_channels"].as_array() {
        let mut want: Vec<&str> = static_channels
            .iter()
            .map(|c| c.as_str().unwrap())
            .collect();
        want.sort_unstable();
        let mut found: Vec<&str> = stats
            .channels
            .iter()
            .filter(|c| c.is_static)
            .map(|c| c.name.as_str())
            .collect();
        found.sort_unstable();
        assert_eq!(found, want, "{key}: static channels");
    }
    if let Some(nan_count) = entry["inspect"]["nan_count"].as_u64()
        && path.is_file()
    {
        assert_eq!(
            inspect(&path).unwrap().nan_count,
            nan_count,
            "{key}: nan_count"
        );
    }
}

fn check_read(key: &str) {
    check_read_with(key, &[], &AxisChoices::default(), entry(key));
}

/// The error of reading `key` (with `selection` and `choices`) through `data stats`, which opens and reads
/// everything.
fn refusal(key: &str, selection: &[VariableSelection], choices: &AxisChoices) -> String {
    match stats_with(&path_of(key), selection, choices) {
        Ok(stats) => panic!("{key}: read, expected a refusal: {stats:?}"),
        Err(error) => error.to_string(),
    }
}

/// The error must contain every keyword and hint of expected.json (case-insensitive).
fn check_words(key: &str, message: &str) {
    let lower = message.to_lowercase();
    let error = &entry(key)["error"];
    for word in ["keywords", "hints"]
        .iter()
        .flat_map(|k| error[k].as_array().into_iter().flatten())
    {
        let word = word.as_str().unwrap();
        assert!(
            lower.contains(&word.to_lowercase()),
            "{key}: `{word}` not in: {message}"
        );
    }
}

fn check_refused(key: &str) {
    let message = refusal(key, &[], &AxisChoices::default());
    check_words(key, &message);
}

// Axis order and extra axes.

#[test]
fn fields_stored_longitude_before_latitude_are_read_by_dimension_name() {
    check_read("axes/era5_lon_lat_order.nc");
    check_read("axes/wb2_lon_lat_order.zarr");
}

#[test]
fn era5_and_era5t_expver_slots_merge_into_one_series() {
    check_read("axes/era5_expver.nc");
    check_refused("axes/era5_expver_both.nc");
}

#[test]
fn an_ensemble_axis_needs_a_member() {
    for key in ["axes/ens_number.nc", "axes/ens_number_first.nc"] {
        check_refused(key);
        for (member, answers) in entry(key)["by_member"].as_object().unwrap() {
            let choices = AxisChoices {
                member: Some(member.parse().unwrap()),
            };
            check_read_with(key, &[], &choices, answers);
        }
        let absent = refusal(key, &[], &AxisChoices { member: Some(7) });
        assert!(absent.contains("member 7"), "{absent}");
    }
}

#[test]
fn forecast_steps_flatten_to_valid_times_or_are_refused_when_they_repeat() {
    check_read("axes/cfgrib_time_step.nc");
    check_read("axes/forecast_scalar_time.nc");
    check_refused("axes/cfgrib_overlap.nc");
}

#[test]
fn a_graphcast_batch_of_one_is_dropped_and_a_longer_one_refused() {
    check_read("axes/graphcast_batch1.nc");
    check_refused("axes/graphcast_batch2.nc");
}

#[test]
fn an_unknown_axis_is_refused_naming_the_variable_and_its_dimensions() {
    let key = "axes/extra_height_axis.nc";
    check_refused(key);
    let asked = refusal(
        key,
        &[VariableSelection::new("ws", &[])],
        &AxisChoices::default(),
    );
    check_words(key, &asked);
    check_read_with(
        key,
        &[VariableSelection::new("t2m", &[])],
        &AxisChoices::default(),
        entry(key),
    );
}

#[test]
fn a_bounds_variable_is_not_a_field() {
    check_read("axes/time_bnds.nc");
}

// Series across files.

#[test]
fn consecutive_files_are_one_series_and_overlaps_or_gaps_are_named() {
    check_read("series/wb_consecutive/");
    check_refused("series/wb_overlap/");
    check_refused("series/wb_gap/");
    // One file of the series alone: six hourly times, so no 6-hour pair.
    let key = "series/wb_consecutive/";
    let file = "2m_temperature/2m_temperature_1979_5.625deg.nc";
    let one = &entry(key)["per_file"][file];
    let stats = super::stats(&path_of(key).join(file)).unwrap();
    let tol = tolerance(entry(key));
    check_stats(key, &stats, &one["stats"], tol, 6, &[]);
    assert!(
        stats.notes.iter().any(|n| n.contains("6 h")),
        "{:?}",
        stats.notes
    );
}

// Missing values.

#[test]
fn every_kind_of_missing_value_is_counted() {
    check_read("missing/fill_kinds.nc");
    check_read("missing/unlimited_default_fill.nc");
    check_read("missing/unlimited_default_fill_64bit.nc");
}

// Formats.

#[test]
fn netcdf3_classic_and_64bit_offset_are_read() {
    check_read("formats/era5_classic.nc");
    check_read("formats/era5_64bit_offset.nc");
}

#[test]
fn a_zip_saved_as_nc_is_named_as_a_zip_to_unzip() {
    let key = "formats/cds_download_zip.nc";
    let message = super::inspect(&path_of(key)).unwrap_err().to_string();
    check_words(key, &message);
    check_refused(key);
    check_read("formats/cds_unzipped/");
}

#[test]
fn a_filter_hdf5_cannot_load_is_named_with_its_id_and_the_plugin_path() {
    let key = "formats/zstd_compressed.nc";
    let available = hdf5::filters::Filter::user(32015, &[]).is_available();
    if available {
        // This HDF5 finds a zstd plugin: the values must then be right.
        check_read_with(key, &[], &AxisChoices::default(), &entry(key)["if_decoded"]);
    } else {
        check_refused(key);
        let message = super::inspect(&path_of(key)).unwrap_err().to_string();
        check_words(key, &message);
    }
}

// Static fields and zero spread.

#[test]
fn time_constant_fields_are_static_and_zero_spread_is_reported() {
    check_read("static/era5_static.nc");
    check_read("static/era5_dry.nc");
    check_read("static/hourly_accum_reset.nc");
}

// Statistics over 6 hours whatever the stored step.

#[test]
fn diff_std_is_over_six_hours_whatever_the_stored_step() {
    check_read("hourly/t2m_hourly.nc");
    check_read("hourly/t2m_12hourly.nc");
    let stats = super::stats(&path_of("hourly/t2m_12hourly.nc")).unwrap();
    assert!(
        stats
            .notes
            .iter()
            .any(|n| n.contains("12 h") && n.contains("6 h")),
        "{:?}",
        stats.notes
    );
}

// Data revisions and Zarr v3 beside NetCDF-4.

#[test]
fn revised_files_read_with_their_own_values() {
    check_read("revision/era5_v1.nc");
    check_read("revision/era5_v2.nc");
}

#[test]
fn zarr_v3_and_netcdf4_of_one_dataset_give_the_same_answers() {
    check_read("zarr_v3/era5_like.nc");
    check_read("zarr_v3/era5_like.zarr");
    let nc = super::stats(&path_of("zarr_v3/era5_like.nc")).unwrap();
    let zarr = super::stats(&path_of("zarr_v3/era5_like.zarr")).unwrap();
    for channel in &nc.channels {
        let other = zarr
            .channels
            .iter()
            .find(|c| c.name == channel.name)
            .unwrap();
        assert_eq!(
            (
                channel.mean,
                channel.std,
                channel.diff_std,
                channel.count,
                channel.missing
            ),
            (
                other.mean,
                other.std,
                other.diff_std,
                other.count,
                other.missing
            ),
            "{}",
            channel.name
        );
    }
    let nc = inspect(&path_of("zarr_v3/era5_like.nc")).unwrap();
    let zarr = inspect(&path_of("zarr_v3/era5_like.zarr")).unwrap();
    assert_eq!(
        (nc.nan_count, nc.time.clone()),
        (zarr.nan_count, zarr.time.clone())
    );
}

#[test]
fn inspect_shows_dimensions_and_variables_as_stored_in_stored_order() {
    for (key, entry) in expected()["fixtures"].as_object().unwrap() {
        let stored = &entry["stored"];
        let (Some(dims), Some(variables)) =
            (stored["dims"].as_object(), stored["variables"].as_object())
        else {
            continue;
        };
        let inspection = match inspect(&path_of(key)) {
            Ok(inspection) => inspection,
            // A file whose compression filter HDF5 cannot load is refused (tested above).
            Err(super::DatasetError::MissingFilter { .. }) => continue,
            Err(error) => panic!("{key}: {error}"),
        };
        let found: Vec<(&str, u64)> = inspection
            .dims
            .iter()
            .map(|(name, len)| (name.as_str(), *len as u64))
            .collect();
        let want: Vec<(&str, u64)> = dims
            .iter()
            .map(|(name, len)| (name.as_str(), len.as_u64().unwrap()))
            .collect();
        assert_eq!(found, want, "{key}: dims");
        let names: Vec<&str> = inspection
            .variables
            .iter()
            .map(|(n, _)| n.as_str())
            .collect();
        let want: Vec<&str> = variables.keys().map(String::as_str).collect();
        assert_eq!(names, want, "{key}: variables");
        for (name, summary) in &inspection.variables {
            let want: Vec<&str> = variables[name]["dims"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d.as_str().unwrap())
                .collect();
            assert_eq!(summary.dims, want, "{key}: dims of {name}");
        }
    }
}

#[test]
fn training_reads_stop_at_the_first_missing_value_saying_where() {
    for key in [
        "missing/unlimited_default_fill.nc",
        "missing/unlimited_default_fill_64bit.nc",
    ] {
        let reader = Reader::open_path(&path_of(key), &[], &AxisChoices::default()).unwrap();
        let message = reader.read_all().unwrap_err().to_string();
        for word in [
            "netCDF default fill value",
            "`tp`",
            "time index 2",
            "2020-01-01T12:00:00Z",
            "latitude 90",
            "longitude 0",
        ] {
            assert!(message.contains(word), "{key}: `{word}` not in {message}");
        }
    }
    let reader = Reader::open_path(
        &path_of("missing/fill_kinds.nc"),
        &[VariableSelection::new("q", &[850.0])],
        &AxisChoices::default(),
    )
    .unwrap();
    let message = reader.read_all().unwrap_err().to_string();
    assert!(
        message.contains("missing_value in `q` level 850 hPa at time index 2"),
        "{message}"
    );
}

/// Every fixture is covered by a test above.
#[test]
fn every_layout_fixture_is_tested() {
    let source = include_str!("layouts.rs");
    for key in expected()["fixtures"].as_object().unwrap().keys() {
        assert!(
            source.contains(&format!("\"{key}\"")),
            "{key} is not tested"
        );
    }
}
