//! Writing a [`Dataset`] as NetCDF-4 in the ERA5 (CDS) layout.
//!
//! Layout: dimensions `time`, `level` (only when some channel has a level), `latitude` (90 -> -90), `longitude`
//! (ascending in [0, 360)); one f32 variable per short name, (time, level, latitude, longitude) for pressure-level
//! variables and (time, latitude, longitude) otherwise, with CF `units`, `long_name` and `standard_name`; `time` as
//! int64 "hours since 1970-01-01 00:00:00", calendar "standard".
//!
//! Dimension scales as NetCDF-4 stores them: see [`super`].
//!
//! The file is written under a temporary name in the same directory and renamed when complete
//! ([`weatherlens_models::files::AtomicFile`]), so a reader never sees a half-written file; a writer dropped
//! before [`Era5Writer::finish`] removes its temporary file.

use std::path::{Path, PathBuf};

use hdf5::plist::dataset_create::AttrCreationOrder;
use hdf5::plist::file_create::LinkCreationOrder;

use weatherlens_models::files::{AtomicFile, FileError};

use super::super::error::DatasetError;
use super::super::grid::Orientation;
use super::super::hdf5_raw;
use super::super::known_variables;
use super::super::reader::channel_name;
use super::super::{Channel, Dataset};
use super::{Attachments, coordinate, global_attributes, text};

const TIME: &str = "time";
const LEVEL: &str = "level";
const LATITUDE: &str = "latitude";
const LONGITUDE: &str = "longitude";
const TIME_UNITS: &str = "hours since 1970-01-01 00:00:00";

/// A variable of the file: one short name, holding one or more channels.
struct VariablePlan {
    name: String,
    units: String,
    has_level: bool,
}

/// Where each channel goes: its variable and level index.
struct ChannelTarget {
    dataset: hdf5::Dataset,
    level_index: Option<usize>,
}

/// Writes an ERA5-layout file time chunk by time chunk (for data that does not fit in memory at once).
pub struct Era5Writer {
    final_path: PathBuf,
    file: Option<hdf5::File>,
    /// The temporary file HDF5 writes, renamed onto `final_path` by [`Self::finish`]; removed when dropped.
    temp: Option<AtomicFile>,
    targets: Vec<ChannelTarget>,
    orientation: Orientation,
    channel_count: usize,
    time_hours: Vec<i64>,
    written: Vec<bool>,
}

impl Era5Writer {
    /// Creates the file (under a temporary name) with its coordinates and empty variables.
    ///
    /// `lat` and `lon` describe the order of the frames later passed to [`Self::write_times`]; the file is always
    /// written 90 -> -90 and 0 -> 360. Channel names must be `<variable><level>` (see [`channel_name`]), all
    /// pressure-level variables must share the same levels, and `time_hours` must increase.
    pub fn create(
        path: &Path,
        channels: &[Channel],
        lat: &[f64],
        lon: &[f64],
        time_hours: &[i64],
    ) -> Result<Self, DatasetError> {
        let invalid = |detail: String| DatasetError::InvalidDataset {
            path: path.to_path_buf(),
            detail: format!("cannot write this dataset: {detail}"),
        };
        let (variables, levels) = plan_variables(channels).map_err(invalid)?;
        if time_hours.windows(2).any(|w| w[1] <= w[0]) {
            return Err(invalid("times must increase".to_string()));
        }
        let orientation =
            Orientation::from_file_coordinates(lat, lon).map_err(|e| invalid(e.to_string()))?;
        if path.file_name().is_none() {
            return Err(invalid("the path has no file name".to_string()));
        }
        let temp = AtomicFile::create(path).map_err(file_error)?;
        let temp_path = temp.temp_path().to_path_buf();
        let hdf5_error = |action: &str| {
            let action = action.to_string();
            move |e| DatasetError::hdf5(path, action, e)
        };
        let file = hdf5::File::with_options()
            .with_fcpl(|p| p.link_creation_order(LinkCreationOrder::Indexed))
            .create(&temp_path)
            .map_err(hdf5_error("creating the file"))?;
        let mut writer = Self {
            final_path: path.to_path_buf(),
            file: None,
            temp: Some(temp),
            targets: Vec::new(),
            orientation,
            channel_count: channels.len(),
            time_hours: time_hours.to_vec(),
            written: vec![false; time_hours.len()],
        };
        // From here on, dropping `writer` on an error removes the temporary file.
        let layout = write_layout(&file, &variables, &levels, &writer.orientation, time_hours)
            .map_err(hdf5_error("writing coordinates and variables"))?;
        writer.targets = channels
            .iter()
            .map(|channel| {
                let variable = variables
                    .iter()
                    .position(|v| v.name == channel.variable)
                    .unwrap_or(0);
                let level_index = channel
                    .level
                    .and_then(|level| levels.iter().position(|&l| l.to_bits() == level.to_bits()));
                ChannelTarget {
                    dataset: layout[variable].clone(),
                    level_index,
                }
            })
            .collect();
        writer.file = Some(file);
        Ok(writer)
    }

    /// Writes frames for times `first_time .. first_time + n`.
    ///
    /// frames: [n, channel, lat, lon] row-major, lat/lon in the order given to [`Self::create`]; every value must be
    /// finite.
    pub fn write_times(&mut self, first_time: usize, frames: &[f32]) -> Result<(), DatasetError> {
        let field_len = self.orientation.lat.len() * self.orientation.lon.len();
        let frame_len = self.channel_count * field_len;
        let invalid = |detail: String| DatasetError::InvalidDataset {
            path: self.final_path.clone(),
            detail: format!("cannot write this dataset: {detail}"),
        };
        if frame_len == 0 || !frames.len().is_multiple_of(frame_len) {
            return Err(invalid(format!(
                "{} values is not a whole number of {frame_len}-value frames",
                frames.len()
            )));
        }
        let count = frames.len() / frame_len;
        if first_time + count > self.time_hours.len() {
            return Err(invalid(format!(
                "times {first_time}..{} are beyond the {} times of the file",
                first_time + count,
                self.time_hours.len()
            )));
        }
        if let Some(index) = frames.iter().position(|v| !v.is_finite()) {
            let (k, rest) = (index / frame_len, index % frame_len);
            let (c, point) = (rest / field_len, rest % field_len);
            let n_lon = self.orientation.lon.len();
            return Err(invalid(format!(
                "value {} at time index {}, channel {c}, grid point ({}, {}) is not finite",
                frames[index],
                first_time + k,
                point / n_lon,
                point % n_lon
            )));
        }
        let (n_lat, n_lon) = (self.orientation.lat.len(), self.orientation.lon.len());
        let mut block = vec![0.0_f32; count * field_len];
        for (c, target) in self.targets.iter().enumerate() {
            for k in 0..count {
                let offset = (k * self.channel_count + c) * field_len;
                self.orientation.apply(
                    &frames[offset..offset + field_len],
                    &mut block[k * field_len..(k + 1) * field_len],
                );
            }
            let (start, shape) = match target.level_index {
                Some(level) => (vec![first_time, level, 0, 0], vec![count, 1, n_lat, n_lon]),
                None => (vec![first_time, 0, 0], vec![count, n_lat, n_lon]),
            };
            hdf5_raw::write_box(&target.dataset, &start, &shape, &block)
                .map_err(|e| DatasetError::hdf5(&self.final_path, "writing values", e))?;
        }
        self.written[first_time..first_time + count]
            .iter_mut()
            .for_each(|w| *w = true);
        Ok(())
    }

    /// Closes the file and renames it to its final name; every time must have been written.
    pub fn finish(mut self) -> Result<(), DatasetError> {
        if let Some(missing) = self.written.iter().position(|w| !w) {
            return Err(DatasetError::InvalidDataset {
                path: self.final_path.clone(),
                detail: format!(
                    "cannot write this dataset: time index {missing} was never written"
                ),
            });
        }
        self.targets.clear();
        if let Some(file) = self.file.take() {
            file.close()
                .map_err(|e| DatasetError::hdf5(&self.final_path, "closing the file", e))?;
        }
        match self.temp.take() {
            Some(temp) => temp.commit().map_err(file_error),
            None => Ok(()),
        }
    }
}

/// A file-system error of the temporary file as a dataset error naming the file.
fn file_error(error: FileError) -> DatasetError {
    DatasetError::Io {
        path: error.path,
        error: std::io::Error::new(
            error.source.kind(),
            format!("{}: {}", error.action, error.source),
        ),
    }
}

impl Drop for Era5Writer {
    fn drop(&mut self) {
        self.targets.clear();
        if let Some(file) = self.file.take() {
            // The file is being abandoned: a failure to close it changes nothing for the caller.
            let _ = file.close();
        }
        // Dropping an uncommitted temporary removes it.
        self.temp.take();
    }
}

/// Writes a whole in-memory dataset (see [`Era5Writer::create`] for what is required of it).
pub fn write_era5(path: &Path, dataset: &Dataset) -> Result<(), DatasetError> {
    dataset
        .check_shape()
        .map_err(|detail| DatasetError::InvalidDataset {
            path: path.to_path_buf(),
            detail: format!("cannot write this dataset: {detail}"),
        })?;
    let mut writer = Era5Writer::create(
        path,
        &dataset.channels,
        &dataset.lat,
        &dataset.lon,
        &dataset.time_hours,
    )?;
    writer.write_times(0, &dataset.data)?;
    writer.finish()
}

/// Groups channels into file variables and collects the shared pressure levels (in order of first appearance).
fn plan_variables(channels: &[Channel]) -> Result<(Vec<VariablePlan>, Vec<f64>), String> {
    if channels.is_empty() {
        return Err("no channels".to_string());
    }
    let mut variables: Vec<VariablePlan> = Vec::new();
    let mut levels: Vec<f64> = Vec::new();
    for (i, channel) in channels.iter().enumerate() {
        let name = &channel.variable;
        if name.is_empty()
            || name.contains('/')
            || name == "."
            || [TIME, LEVEL, LATITUDE, LONGITUDE].contains(&name.as_str())
        {
            return Err(format!("`{name}` cannot be a variable name"));
        }
        if channel.name != channel_name(name, channel.level) {
            return Err(format!(
                "channel `{}` should be called `{}` (variable + level), the name the file gives back",
                channel.name,
                channel_name(name, channel.level)
            ));
        }
        if channels[..i].iter().any(|c| c.name == channel.name) {
            return Err(format!("channel `{}` appears twice", channel.name));
        }
        if let Some(level) = channel.level {
            if !level.is_finite() {
                return Err(format!("channel `{}` has level {level}", channel.name));
            }
            if !levels.iter().any(|l| l.to_bits() == level.to_bits()) {
                levels.push(level);
            }
        }
        match variables.iter().find(|v| v.name == *name) {
            Some(v) if v.has_level != channel.level.is_some() => {
                return Err(format!(
                    "variable `{name}` has channels both with and without a level"
                ));
            }
            Some(v) if v.units != channel.units => {
                return Err(format!(
                    "variable `{name}` has channels with different units"
                ));
            }
            Some(_) => {}
            None => variables.push(VariablePlan {
                name: name.clone(),
                units: channel.units.clone(),
                has_level: channel.level.is_some(),
            }),
        }
    }
    for variable in variables.iter().filter(|v| v.has_level) {
        let count = channels
            .iter()
            .filter(|c| c.variable == variable.name)
            .count();
        if count != levels.len() {
            return Err(format!(
                "variable `{}` has {count} levels but the file's level axis has {} ({levels:?}): the ERA5 layout \
                 needs every pressure-level variable on every level",
                variable.name,
                levels.len()
            ));
        }
    }
    Ok((variables, levels))
}

/// Writes global attributes, coordinates and empty variables with their dimension-scale attachments.
///
/// Returns the variables' datasets in the order of `variables`.
fn write_layout(
    file: &hdf5::File,
    variables: &[VariablePlan],
    levels: &[f64],
    orientation: &Orientation,
    time_hours: &[i64],
) -> hdf5::Result<Vec<hdf5::Dataset>> {
    global_attributes(file)?;

    let time = coordinate(
        file,
        TIME,
        time_hours,
        &[
            ("units", TIME_UNITS),
            ("calendar", "standard"),
            ("long_name", "time"),
            ("standard_name", "time"),
            ("axis", "T"),
        ],
    )?;
    let level = if levels.is_empty() {
        None
    } else {
        Some(coordinate(
            file,
            LEVEL,
            levels,
            &[
                ("units", "hPa"),
                ("long_name", "pressure level"),
                ("standard_name", "air_pressure"),
                ("positive", "down"),
                ("axis", "Z"),
            ],
        )?)
    };
    let latitude = coordinate(
        file,
        LATITUDE,
        &orientation.lat,
        &[
            ("units", "degrees_north"),
            ("long_name", "latitude"),
            ("standard_name", "latitude"),
            ("axis", "Y"),
        ],
    )?;
    let longitude = coordinate(
        file,
        LONGITUDE,
        &orientation.lon,
        &[
            ("units", "degrees_east"),
            ("long_name", "longitude"),
            ("standard_name", "longitude"),
            ("axis", "X"),
        ],
    )?;

    let (n_lat, n_lon) = (orientation.lat.len(), orientation.lon.len());
    let mut datasets = Vec::with_capacity(variables.len());
    let mut attachments = Attachments::default();
    for variable in variables {
        let (shape, scales): (Vec<usize>, Vec<&hdf5::Dataset>) = match (&level, variable.has_level)
        {
            (Some(level), true) => (
                vec![time_hours.len(), levels.len(), n_lat, n_lon],
                vec![&time, level, &latitude, &longitude],
            ),
            _ => (
                vec![time_hours.len(), n_lat, n_lon],
                vec![&time, &latitude, &longitude],
            ),
        };
        let dataset = file
            .new_dataset::<f32>()
            .attr_creation_order(AttrCreationOrder::Indexed)
            .shape(shape)
            .create(variable.name.as_str())?;
        let known = known_variables::lookup(&variable.name);
        let units = if variable.units.is_empty() {
            known.map_or("", |k| k.units)
        } else {
            variable.units.as_str()
        };
        if !units.is_empty() {
            text(&dataset, "units", units)?;
        }
        if let Some(known) = known {
            text(&dataset, "long_name", known.long_name)?;
            if let Some(standard_name) = known.standard_name {
                text(&dataset, "standard_name", standard_name)?;
            }
        }
        attachments.attach(file, &dataset, &scales)?;
        datasets.push(dataset);
    }
    attachments.finish()?;
    Ok(datasets)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::{Reader, VariableSelection, take_turn};

    /// Runs a tool when it is installed; `None` (and a note on stderr) when it is not.
    fn run_if_installed(program: &str, args: &[&str]) -> Option<std::process::Output> {
        super::super::run_if_installed(program, args)
    }

    fn channel(variable: &str, level: Option<f64>, units: &str) -> Channel {
        Channel {
            name: channel_name(variable, level),
            variable: variable.into(),
            level,
            units: units.into(),
        }
    }

    /// z and t at 500 and 850 hPa plus t2m on a 3 × 3 grid, four 6-hourly times, with values that use every bit
    /// of an f32 mantissa.
    fn sample(lat: Vec<f64>, lon: Vec<f64>) -> Dataset {
        let channels = vec![
            channel("z", Some(500.0), "m**2 s**-2"),
            channel("t", Some(500.0), "K"),
            channel("z", Some(850.0), "m**2 s**-2"),
            channel("t", Some(850.0), "K"),
            channel("t2m", None, "K"),
        ];
        let len = 4 * channels.len() * lat.len() * lon.len();
        let data = (0..len)
            .map(|n| 5.0e4 * (1.0 + (n as f64 * 0.731).sin()) as f32 / 3.0)
            .collect();
        Dataset {
            channels,
            lat,
            lon,
            time_hours: vec![420_000, 420_006, 420_012, 420_018],
            data,
        }
    }

    #[test]
    fn written_then_read_is_exactly_equal() {
        let _turn = take_turn();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sample.nc");
        let dataset = sample(vec![60.0, 0.0, -60.0], vec![0.0, 120.0, 240.0]);
        write_era5(&path, &dataset).unwrap();
        let entries: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(
            entries,
            vec![std::ffi::OsString::from("sample.nc")],
            "no temporary file left behind"
        );
        let reader = Reader::open(
            &[&path],
            &VariableSelection::for_channels(&dataset.channels),
        )
        .unwrap();
        assert_eq!(reader.read_all().unwrap(), dataset);
        // Read without a selection, variables come in file order: z500, z850, t500, t850, t2m.
        let all = Reader::open(&[&path], &[]).unwrap();
        let names: Vec<&str> = all.channels().iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["z500", "z850", "t500", "t850", "t2m"]);
    }

    #[test]
    fn other_orientations_are_written_north_first_from_zero_longitude() {
        let _turn = take_turn();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("flipped.nc");
        let flipped = sample(vec![-60.0, 0.0, 60.0], vec![-120.0, 0.0, 120.0]);
        write_era5(&path, &flipped).unwrap();
        let back = Reader::open(
            &[&path],
            &VariableSelection::for_channels(&flipped.channels),
        )
        .unwrap()
        .read_all()
        .unwrap();
        assert_eq!(back.lat, vec![60.0, 0.0, -60.0]);
        assert_eq!(back.lon, vec![0.0, 120.0, 240.0]);
        // Output (row i, column j) comes from input row 2 - i and column (j + 1) % 3 (0°, 120°, 240° = -120°).
        for k in 0..4 {
            for c in 0..5 {
                for i in 0..3 {
                    for j in 0..3 {
                        let out = back.frame(k)[(c * 3 + i) * 3 + j];
                        let input = flipped.frame(k)[(c * 3 + (2 - i)) * 3 + (j + 1) % 3];
                        assert_eq!(out, input);
                    }
                }
            }
        }
    }

    #[test]
    fn streaming_in_chunks_writes_the_same_file_contents() {
        let _turn = take_turn();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chunks.nc");
        let dataset = sample(vec![60.0, 0.0, -60.0], vec![0.0, 120.0, 240.0]);
        let mut writer = Era5Writer::create(
            &path,
            &dataset.channels,
            &dataset.lat,
            &dataset.lon,
            &dataset.time_hours,
        )
        .unwrap();
        let n = dataset.frame_len();
        writer.write_times(3, &dataset.data[3 * n..]).unwrap();
        writer.write_times(0, &dataset.data[..3 * n]).unwrap();
        writer.finish().unwrap();
        let reader = Reader::open(
            &[&path],
            &VariableSelection::for_channels(&dataset.channels),
        )
        .unwrap();
        assert_eq!(reader.read_all().unwrap(), dataset);
    }

    #[test]
    fn unwritable_datasets_are_refused_and_leave_no_file() {
        let _turn = take_turn();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.nc");
        let good = sample(vec![60.0, 0.0, -60.0], vec![0.0, 120.0, 240.0]);
        let refused = |dataset: &Dataset| {
            matches!(
                write_era5(&path, dataset),
                Err(DatasetError::InvalidDataset { .. })
            )
        };

        let mut uneven_levels = good.clone();
        uneven_levels.channels[3] = channel("t", Some(700.0), "K");
        assert!(refused(&uneven_levels));
        let mut misnamed = good.clone();
        misnamed.channels[0].name = "geopotential".into();
        assert!(refused(&misnamed));
        let mut with_nan = good.clone();
        with_nan.data[7] = f32::NAN;
        assert!(refused(&with_nan));
        let mut short = good.clone();
        short.data.pop();
        assert!(refused(&short));
        let mut reserved = good.clone();
        reserved.channels[4] = channel("latitude", None, "");
        assert!(refused(&reserved));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);

        // A writer abandoned half-way removes its temporary file.
        let mut writer = Era5Writer::create(
            &path,
            &good.channels,
            &good.lat,
            &good.lon,
            &good.time_hours,
        )
        .unwrap();
        writer.write_times(0, good.frame(0)).unwrap();
        assert!(matches!(
            writer.finish(),
            Err(DatasetError::InvalidDataset { .. })
        ));
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn ncdump_and_xarray_see_named_dimensions() {
        let _turn = take_turn();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("era5.nc");
        write_era5(
            &path,
            &sample(vec![60.0, 0.0, -60.0], vec![0.0, 120.0, 240.0]),
        )
        .unwrap();
        let path_text = path.to_string_lossy().to_string();
        if let Some(output) = run_if_installed("ncdump", &["-h", &path_text]) {
            let header = String::from_utf8_lossy(&output.stdout);
            assert!(
                output.status.success(),
                "ncdump failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
            for expected in [
                "time = 4 ;",
                "level = 2 ;",
                "latitude = 3 ;",
                "longitude = 3 ;",
                "float z(time, level, latitude, longitude) ;",
                "float t2m(time, latitude, longitude) ;",
                "z:standard_name = \"geopotential\" ;",
                "time:units = \"hours since 1970-01-01 00:00:00\" ;",
            ] {
                assert!(
                    header.contains(expected),
                    "`{expected}` missing from ncdump -h:\n{header}"
                );
            }
            assert!(!header.contains("phony_dim"), "{header}");
        }
        let script = "import sys, xarray as xr\n\
                      ds = xr.open_dataset(sys.argv[1])\n\
                      assert ds['z'].dims == ('time', 'level', 'latitude', 'longitude'), ds['z'].dims\n\
                      assert ds['t2m'].dims == ('time', 'latitude', 'longitude'), ds['t2m'].dims\n\
                      assert str(ds['time'].values[0])[:19] == '2017-11-30T00:00:00', ds['time'].values\n\
                      assert list(ds['level'].values) == [500.0, 850.0]\n\
                      print('ok')";
        if let Some(output) = run_if_installed("python3", &["-c", "import xarray"]) {
            if output.status.success() {
                let checked = run_if_installed("python3", &["-c", script, &path_text]).unwrap();
                assert!(
                    checked.status.success(),
                    "xarray check failed: {}",
                    String::from_utf8_lossy(&checked.stderr)
                );
            } else {
                eprintln!("skipping the xarray check: xarray is not installed");
            }
        }
    }
}
