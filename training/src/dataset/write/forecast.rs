//! Forecasts as NetCDF-4 in GraphCast's example-batch layout, which xarray opens as GraphCast's own files:
//!
//! ```text
//! dimensions: batch, time, level (when a variable has levels), lat, lon
//! float <variable>(batch, time[, level], lat, lon)   coordinates = "datetime", units
//! int64 time(time)              lead time: units = "hours", dtype = "timedelta64[ns]" (xarray decodes a timedelta)
//! int64 datetime(batch, time)   valid time: "hours since 1970-01-01 00:00:00", proleptic_gregorian
//! int   level(level)            hPa
//! double lat(lat), lon(lon)     as the input file stores them (order and values)
//! ```
//!
//! `batch` has no coordinate variable (as in GraphCast's files). The file is written under a temporary name and
//! renamed when complete ([`weatherlens_models::files::AtomicFile`]).

use std::path::Path;

use hdf5::plist::dataset_create::AttrCreationOrder;
use hdf5::plist::file_create::LinkCreationOrder;
use weatherlens_models::files::AtomicFile;

use super::super::error::DatasetError;
use super::super::hdf5_raw;
use super::{Attachments, coordinate, dimension_without_variable, global_attributes, text};

/// One forecast variable.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ForecastVariable<'a> {
    pub name: &'a str,
    /// True for (batch, time, level, lat, lon), false for (batch, time, lat, lon).
    pub has_level: bool,
    /// CF units, when known.
    pub units: Option<&'a str>,
    /// [batch, time, (level), lat, lon] row-major, finite.
    pub values: &'a [f32],
}

/// What a forecast file holds.
#[derive(Debug, Clone, PartialEq)]
pub struct ForecastFile<'a> {
    /// Degrees, in the order of the values.
    pub lat: &'a [f64],
    pub lon: &'a [f64],
    /// Pressure levels in hPa, the level axis of every variable that has one (empty when none has).
    pub levels: &'a [i64],
    /// Lead times in hours (the `time` axis).
    pub lead_hours: &'a [i64],
    /// Valid times, hours since 1970-01-01T00:00:00Z: [batch, time] row-major.
    pub valid_hours: &'a [i64],
    pub batch: usize,
    pub variables: Vec<ForecastVariable<'a>>,
}

const RESERVED: [&str; 6] = ["batch", "time", "datetime", "level", "lat", "lon"];

impl ForecastFile<'_> {
    /// Checks names, shapes and values; the message says what is wrong.
    fn check(&self) -> Result<(), String> {
        let times = self.lead_hours.len();
        if self.batch == 0 || times == 0 || self.lat.is_empty() || self.lon.is_empty() {
            return Err("an empty batch, time, lat or lon axis".into());
        }
        if self.valid_hours.len() != self.batch * times {
            return Err(format!(
                "{} valid times for {} members x {times} times",
                self.valid_hours.len(),
                self.batch
            ));
        }
        if self.variables.is_empty() {
            return Err("no variables".into());
        }
        let field = self.lat.len() * self.lon.len();
        for (i, variable) in self.variables.iter().enumerate() {
            let name = variable.name;
            if name.is_empty() || name.contains('/') || RESERVED.contains(&name) {
                return Err(format!("`{name}` cannot be a variable name"));
            }
            if self.variables[..i].iter().any(|v| v.name == name) {
                return Err(format!("`{name}` appears twice"));
            }
            if variable.has_level && self.levels.is_empty() {
                return Err(format!(
                    "`{name}` has levels but the file has no level axis"
                ));
            }
            let levels = if variable.has_level {
                self.levels.len()
            } else {
                1
            };
            let expected = self.batch * times * levels * field;
            if variable.values.len() != expected {
                return Err(format!(
                    "`{name}` has {} values, expected {expected} (batch {} x time {times} x level {levels} x lat {} x \
                     lon {})",
                    variable.values.len(),
                    self.batch,
                    self.lat.len(),
                    self.lon.len()
                ));
            }
            if let Some(n) = variable.values.iter().position(|v| !v.is_finite()) {
                return Err(format!(
                    "`{name}` value {} at flat index {n} is not finite",
                    variable.values[n]
                ));
            }
        }
        if let Some(&level) = self.levels.iter().find(|l| i32::try_from(**l).is_err()) {
            return Err(format!("level {level} does not fit an int"));
        }
        Ok(())
    }
}

/// Writes `forecast` to `path` (see the module docs for the layout).
pub fn write_forecast(path: &Path, forecast: &ForecastFile) -> Result<(), DatasetError> {
    forecast
        .check()
        .map_err(|detail| DatasetError::InvalidDataset {
            path: path.to_path_buf(),
            detail: format!("cannot write this forecast: {detail}"),
        })?;
    let atomic = AtomicFile::create(path)?;
    let hdf5_error = |action: &'static str| move |e| DatasetError::hdf5(path, action, e);
    let file = hdf5::File::with_options()
        .with_fcpl(|p| p.link_creation_order(LinkCreationOrder::Indexed))
        .create(atomic.temp_path())
        .map_err(hdf5_error("creating the file"))?;
    write_contents(&file, forecast).map_err(hdf5_error("writing the forecast"))?;
    file.close().map_err(hdf5_error("closing the file"))?;
    atomic.commit()?;
    Ok(())
}

fn write_contents(file: &hdf5::File, forecast: &ForecastFile) -> hdf5::Result<()> {
    global_attributes(file)?;
    let batch = dimension_without_variable(file, "batch", forecast.batch)?;
    let time = coordinate(
        file,
        "time",
        forecast.lead_hours,
        &[
            ("long_name", "lead time"),
            ("units", "hours"),
            ("dtype", "timedelta64[ns]"),
        ],
    )?;
    let levels: Vec<i32> = forecast.levels.iter().map(|&l| l as i32).collect();
    let level = if levels.is_empty() {
        None
    } else {
        Some(coordinate(
            file,
            "level",
            &levels,
            &[("units", "hPa"), ("long_name", "pressure level")],
        )?)
    };
    let lat = coordinate(
        file,
        "lat",
        forecast.lat,
        &[("units", "degrees_north"), ("long_name", "latitude")],
    )?;
    let lon = coordinate(
        file,
        "lon",
        forecast.lon,
        &[("units", "degrees_east"), ("long_name", "longitude")],
    )?;
    let mut attachments = Attachments::default();
    let times = forecast.lead_hours.len();
    let datetime = file
        .new_dataset::<i64>()
        .attr_creation_order(AttrCreationOrder::Indexed)
        .shape([forecast.batch, times])
        .create("datetime")?;
    hdf5_raw::write_box(
        &datetime,
        &[0, 0],
        &[forecast.batch, times],
        forecast.valid_hours,
    )?;
    text(&datetime, "long_name", "valid time")?;
    text(&datetime, "units", "hours since 1970-01-01 00:00:00")?;
    text(&datetime, "calendar", "proleptic_gregorian")?;
    attachments.attach(file, &datetime, &[&batch, &time])?;
    let (n_lat, n_lon) = (forecast.lat.len(), forecast.lon.len());
    for variable in &forecast.variables {
        let (shape, scales): (Vec<usize>, Vec<&hdf5::Dataset>) = match (&level, variable.has_level)
        {
            (Some(level), true) => (
                vec![forecast.batch, times, levels.len(), n_lat, n_lon],
                vec![&batch, &time, level, &lat, &lon],
            ),
            _ => (
                vec![forecast.batch, times, n_lat, n_lon],
                vec![&batch, &time, &lat, &lon],
            ),
        };
        let dataset = file
            .new_dataset::<f32>()
            .attr_creation_order(AttrCreationOrder::Indexed)
            .shape(shape.clone())
            .create(variable.name)?;
        hdf5_raw::write_box(&dataset, &vec![0; shape.len()], &shape, variable.values)?;
        if let Some(units) = variable.units {
            text(&dataset, "units", units)?;
        }
        text(&dataset, "coordinates", "datetime")?;
        attachments.attach(file, &dataset, &scales)?;
    }
    attachments.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::{open_source, read_variable, take_turn};

    /// Two members, two leads, one level variable and one surface variable on a 3 × 4 grid (lat ascending, lon
    /// −180..180 as some inputs store them).
    fn sample<'a>(levelled: &'a [f32], surface: &'a [f32]) -> ForecastFile<'a> {
        ForecastFile {
            lat: &[-60.0, 0.0, 60.0],
            lon: &[-180.0, -90.0, 0.0, 90.0],
            levels: &[500, 850],
            lead_hours: &[6, 12],
            valid_hours: &[403_206, 403_212, 460_000, 460_006],
            batch: 2,
            variables: vec![
                ForecastVariable {
                    name: "geopotential",
                    has_level: true,
                    units: Some("m**2 s**-2"),
                    values: levelled,
                },
                ForecastVariable {
                    name: "2m_temperature",
                    has_level: false,
                    units: Some("K"),
                    values: surface,
                },
            ],
        }
    }

    fn values(n: usize, scale: f32) -> Vec<f32> {
        (0..n)
            .map(|i| scale * (1.0 + (i as f32 * 0.37).sin()))
            .collect()
    }

    #[test]
    fn a_forecast_reads_back_with_its_named_dimensions() {
        let _turn = take_turn();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("forecast.nc");
        let (levelled, surface) = (values(2 * 2 * 2 * 12, 5e4), values(2 * 2 * 12, 280.0));
        write_forecast(&path, &sample(&levelled, &surface)).unwrap();
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["forecast.nc"], "no temporary left");
        let source = open_source(&path).unwrap();
        let z = read_variable(source.as_ref(), "geopotential").unwrap();
        assert_eq!(z.dims, ["batch", "time", "level", "lat", "lon"]);
        assert_eq!(
            z.values,
            levelled.iter().map(|&v| f64::from(v)).collect::<Vec<_>>()
        );
        let t = read_variable(source.as_ref(), "2m_temperature").unwrap();
        assert_eq!(t.dims, ["batch", "time", "lat", "lon"]);
        let datetime = read_variable(source.as_ref(), "datetime").unwrap();
        assert_eq!(datetime.dims, ["batch", "time"]);
        assert_eq!(
            datetime.values,
            [403_206.0, 403_212.0, 460_000.0, 460_006.0]
        );
        assert_eq!(
            read_variable(source.as_ref(), "lon").unwrap().values,
            [-180.0, -90.0, 0.0, 90.0]
        );
        assert!(
            source.variable("batch").is_none(),
            "batch is a dimension only"
        );
        // The GraphCast batch layout reads as such: the valid times of every member.
        let times = crate::dataset::batch_datetimes(source.as_ref())
            .unwrap()
            .unwrap();
        assert_eq!(
            (times.members, times.member(1)),
            (2, &[460_000, 460_006][..])
        );
    }

    #[test]
    fn an_unwritable_forecast_is_refused_and_leaves_no_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.nc");
        let (levelled, surface) = (values(96, 1.0), values(47, 1.0));
        let error = write_forecast(&path, &sample(&levelled, &surface))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("`2m_temperature` has 47 values, expected 48"),
            "{error}"
        );
        let mut nan = values(48, 1.0);
        nan[5] = f32::NAN;
        let error = write_forecast(&path, &sample(&levelled, &nan))
            .unwrap_err()
            .to_string();
        assert!(error.contains("not finite"), "{error}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn ncdump_and_xarray_see_graphcast_s_layout() {
        let _turn = take_turn();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("forecast.nc");
        let (levelled, surface) = (values(96, 5e4), values(48, 280.0));
        write_forecast(&path, &sample(&levelled, &surface)).unwrap();
        let path_text = path.to_string_lossy().to_string();
        if let Some(output) = super::super::run_if_installed("ncdump", &["-h", &path_text]) {
            let header = String::from_utf8_lossy(&output.stdout);
            assert!(
                output.status.success(),
                "{}",
                String::from_utf8_lossy(&output.stderr)
            );
            for expected in [
                "batch = 2 ;",
                "float geopotential(batch, time, level, lat, lon) ;",
                "2m_temperature(batch, time, lat, lon) ;",
                "int64 datetime(batch, time) ;",
                "time:units = \"hours\" ;",
            ] {
                assert!(
                    header.contains(expected),
                    "`{expected}` missing from:\n{header}"
                );
            }
            assert!(
                !header.contains("phony_dim") && !header.contains("float batch"),
                "{header}"
            );
        }
        // xarray (when installed): time decodes as a timedelta, datetime as a coordinate of valid times.
        let script = "import sys, numpy as np, xarray as xr\n\
                      ds = xr.open_dataset(sys.argv[1])\n\
                      assert ds['geopotential'].dims == ('batch', 'time', 'level', 'lat', 'lon'), ds\n\
                      assert ds['time'].dtype.kind == 'm', ds['time']\n\
                      assert list(ds['time'].values.astype('timedelta64[h]').astype(int)) == [6, 12]\n\
                      assert 'datetime' in ds.coords and ds['datetime'].dtype.kind == 'M'\n\
                      assert str(ds['datetime'].values[1, 1])[:19] == '2022-06-23T22:00:00', ds['datetime'].values\n\
                      assert list(ds['level'].values) == [500, 850]\n\
                      print('ok')";
        match super::super::run_if_installed("python3", &["-c", "import xarray"]) {
            Some(probe) if probe.status.success() => {
                let checked =
                    super::super::run_if_installed("python3", &["-c", script, &path_text]).unwrap();
                assert!(
                    checked.status.success(),
                    "xarray check failed: {}",
                    String::from_utf8_lossy(&checked.stderr)
                );
            }
            _ => eprintln!("skipping the xarray check: xarray is not installed"),
        }
    }
}
