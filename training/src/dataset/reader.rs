//! [`GridReader`]: ERA5 and WeatherBench NetCDF-4 files opened for reading by time chunks.
//!
//! Opening reads only coordinates and attributes; [`GridReader::read_times`] reads the fields of a range of times,
//! so a file larger than memory can be streamed chunk by chunk. Every channel comes out unpacked
//! (`scale_factor`/`add_offset` applied), in [`super::grid::Orientation`]'s normalised grid (latitude 90 -> -90,
//! longitude ascending in [0, 360)), and checked: a fill value, `missing_value`, NaN or infinity is an error that
//! says where it is.

use std::ops::Range;
use std::path::{Path, PathBuf};

use super::cf_time;
use super::coordinates::{self, Convention, FileCoordinates};
use super::error::DatasetError;
use super::grid::Orientation;
use super::netcdf::{NcFile, NcVariable, Packing};
use super::{Channel, Dataset};

/// Which channels to read: a variable by short name and, for pressure-level variables, some of its levels.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VariableSelection {
    /// Short name in the file, e.g. `z`, `t2m`.
    pub variable: String,
    /// Pressure levels in hPa, in the order wanted; empty means every level the file has (or the single level).
    #[serde(default)]
    pub levels: Vec<f64>,
}

impl VariableSelection {
    pub fn new(variable: &str, levels: &[f64]) -> Self {
        Self {
            variable: variable.to_string(),
            levels: levels.to_vec(),
        }
    }

    /// One selection per channel, so that reading gives back exactly these channels in this order.
    pub fn for_channels(channels: &[Channel]) -> Vec<Self> {
        channels
            .iter()
            .map(|c| Self {
                variable: c.variable.clone(),
                levels: c.level.into_iter().collect(),
            })
            .collect()
    }
}

/// The name of a channel: the short name, followed by the level in hPa for pressure-level variables
/// (`z` at 500 hPa -> `z500`; `t2m` stays `t2m`).
pub fn channel_name(variable: &str, level_hpa: Option<f64>) -> String {
    match level_hpa {
        Some(level) => format!("{variable}{level}"),
        None => variable.to_string(),
    }
}

/// What to do with fill values, NaN and infinities while reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MissingPolicy {
    /// Stop with [`DatasetError::MissingData`] saying where (training data must be complete).
    Error,
    /// Store NaN (statistics skip them).
    AsNan,
}

/// Where one channel's values are in the files.
#[derive(Debug, Clone)]
struct ChannelSource {
    file: usize,
    /// The variable, kept open so that reading a frame does not reopen it.
    variable: NcVariable,
    /// Index along the variable's level dimension; `None` for 3-D (time, lat, lon) variables.
    level_index: Option<usize>,
    packing: Packing,
}

/// One or more NetCDF-4 files on the same time axis and grid, opened for chunked reading.
pub struct GridReader {
    files: Vec<NcFile>,
    sources: Vec<ChannelSource>,
    channels: Vec<Channel>,
    convention: Convention,
    /// Coordinates in file order, for error messages.
    file_lat: Vec<f64>,
    file_lon: Vec<f64>,
    orientation: Orientation,
    time_hours: Vec<i64>,
    time_step_hours: Option<i64>,
}

impl std::fmt::Debug for GridReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GridReader")
            .field("paths", &self.paths())
            .field(
                "channels",
                &self.channels.iter().map(|c| &c.name).collect::<Vec<_>>(),
            )
            .field("times", &self.time_hours.len())
            .field("lat", &self.orientation.lat.len())
            .field("lon", &self.orientation.lon.len())
            .finish()
    }
}

impl GridReader {
    /// Opens one ERA5 file (old or new CDS names) or several WeatherBench files (one variable per file) and
    /// resolves `selection` to channels, reading coordinates and attributes only.
    ///
    /// An empty `selection` takes every gridded variable (dimensions time, (level), lat, lon) of every file, with
    /// all its levels. All files must share the first file's time axis and grid. The time axis must be non-empty
    /// and evenly spaced.
    pub fn open(
        paths: &[impl AsRef<Path>],
        selection: &[VariableSelection],
    ) -> Result<Self, DatasetError> {
        let Some(first_path) = paths.first().map(AsRef::as_ref) else {
            return Err(DatasetError::MissingFile {
                path: PathBuf::new(),
            });
        };
        let mut files = Vec::with_capacity(paths.len());
        let mut coordinates: Vec<FileCoordinates> = Vec::with_capacity(paths.len());
        for path in paths {
            let file = NcFile::open(path.as_ref())?;
            let coords = coordinates::read_coordinates(&file)?;
            if let Some(reference) = coordinates.first() {
                check_same_grid(path.as_ref(), first_path, &coords, reference)?;
            }
            coordinates.push(coords);
            files.push(file);
        }
        let reference = &coordinates[0];
        if reference.time_hours.is_empty() {
            return Err(DatasetError::EmptyTimeAxis {
                path: first_path.to_path_buf(),
                variable: reference.time_name.clone(),
            });
        }
        let time_step_hours = cf_time::uniform_step_hours(&reference.time_hours).map_err(
            |(index, step_hours, first_step_hours)| DatasetError::NonUniformTimeStep {
                path: first_path.to_path_buf(),
                index,
                step_hours,
                first_step_hours,
            },
        )?;
        let orientation = Orientation::from_file_coordinates(&reference.lat, &reference.lon)
            .map_err(|e| DatasetError::BadCoordinate {
                path: first_path.to_path_buf(),
                coordinate: format!("{}/{}", reference.lat_name, reference.lon_name),
                detail: e.to_string(),
            })?;
        if let Some(change) = orientation.describe() {
            tracing::info!("{}: {change}", first_path.display());
        }

        let wanted = if selection.is_empty() {
            every_gridded_variable(&files, &coordinates)?
        } else {
            selection.to_vec()
        };
        let mut sources = Vec::new();
        let mut channels = Vec::new();
        for choice in &wanted {
            let file_index = find_variable(&files, &choice.variable)?;
            for (source, channel) in resolve(
                &files[file_index],
                file_index,
                &coordinates[file_index],
                choice,
            )? {
                if channels.iter().any(|c: &Channel| c.name == channel.name) {
                    return Err(DatasetError::InvalidDataset {
                        path: files[file_index].path().to_path_buf(),
                        detail: format!("channel `{}` is selected twice", channel.name),
                    });
                }
                sources.push(source);
                channels.push(channel);
            }
        }
        Ok(Self {
            convention: reference.convention,
            file_lat: reference.lat.clone(),
            file_lon: reference.lon.clone(),
            time_hours: reference.time_hours.clone(),
            files,
            sources,
            channels,
            orientation,
            time_step_hours,
        })
    }

    pub fn paths(&self) -> Vec<&Path> {
        self.files.iter().map(NcFile::path).collect()
    }

    pub fn channels(&self) -> &[Channel] {
        &self.channels
    }

    pub fn convention(&self) -> Convention {
        self.convention
    }

    /// Latitudes of the data returned, 90 -> -90.
    pub fn lat(&self) -> &[f64] {
        &self.orientation.lat
    }

    /// Longitudes of the data returned, ascending in [0, 360).
    pub fn lon(&self) -> &[f64] {
        &self.orientation.lon
    }

    /// How the file's grid was reoriented (see [`Orientation::describe`]).
    pub fn orientation(&self) -> &Orientation {
        &self.orientation
    }

    /// Valid times, hours since 1970-01-01T00:00:00Z.
    pub fn time_hours(&self) -> &[i64] {
        &self.time_hours
    }

    /// The time step in hours; `None` for a file with one time.
    pub fn time_step_hours(&self) -> Option<i64> {
        self.time_step_hours
    }

    /// Values in one time slice: channels × lat × lon.
    pub fn frame_len(&self) -> usize {
        self.channels.len() * self.orientation.lat.len() * self.orientation.lon.len()
    }

    /// Reads times `times` (indices along the time axis) of every channel.
    ///
    /// Returns a [`Dataset`] whose `data` is [times, channel, lat, lon].
    pub fn read_times(&self, times: Range<usize>) -> Result<Dataset, DatasetError> {
        self.read_times_with(times, MissingPolicy::Error)
    }

    /// Reads every time: only for files that fit in memory; see [`Self::chunks`] otherwise.
    pub fn read_all(&self) -> Result<Dataset, DatasetError> {
        self.read_times(0..self.time_hours.len())
    }

    /// Consecutive chunks of at most `times_per_chunk` times covering the whole time axis.
    pub fn chunks(
        &self,
        times_per_chunk: usize,
    ) -> impl Iterator<Item = Result<Dataset, DatasetError>> + '_ {
        let step = times_per_chunk.max(1);
        (0..self.time_hours.len()).step_by(step).map(move |start| {
            let end = (start + step).min(self.time_hours.len());
            self.read_times(start..end)
        })
    }

    pub(crate) fn read_times_with(
        &self,
        times: Range<usize>,
        policy: MissingPolicy,
    ) -> Result<Dataset, DatasetError> {
        let count = self.time_hours.len();
        if times.start > times.end || times.end > count {
            return Err(DatasetError::TimeRangeOutOfBounds {
                path: self.files[0].path().to_path_buf(),
                start: times.start,
                end: times.end,
                count,
            });
        }
        let (n_lat, n_lon) = (self.file_lat.len(), self.file_lon.len());
        let field_len = n_lat * n_lon;
        let n_times = times.len();
        let n_channels = self.channels.len();
        let mut data = vec![0.0_f32; n_times * n_channels * field_len];
        let mut unpacked = vec![0.0_f64; field_len];
        let mut oriented = vec![0.0_f64; field_len];
        for (c, (source, channel)) in self.sources.iter().zip(&self.channels).enumerate() {
            let file = &self.files[source.file];
            let variable = &source.variable;
            let (start, count) = match source.level_index {
                Some(level) => (
                    vec![times.start, level, 0, 0],
                    vec![n_times, 1, n_lat, n_lon],
                ),
                None => (vec![times.start, 0, 0], vec![n_times, n_lat, n_lon]),
            };
            let raw = variable.read_raw(&start, &count)?;
            for (k, field) in raw.chunks_exact(field_len).enumerate() {
                for (index, (&value, out)) in field.iter().zip(unpacked.iter_mut()).enumerate() {
                    let physical = source.packing.unpack(value);
                    let problem = source.packing.classify(value).or_else(|| {
                        let single = physical as f32;
                        single.is_infinite().then_some("value beyond the f32 range")
                    });
                    *out = match (problem, policy) {
                        (None, _) => physical,
                        (Some(_), MissingPolicy::AsNan) => f64::NAN,
                        (Some(what), MissingPolicy::Error) => {
                            let time_index = times.start + k;
                            return Err(DatasetError::MissingData {
                                path: file.path().to_path_buf(),
                                variable: variable.name.clone(),
                                level: channel.level,
                                time_index,
                                time_hours: self.time_hours[time_index],
                                lat: self.file_lat[index / n_lon],
                                lon: self.file_lon[index % n_lon],
                                what,
                            });
                        }
                    };
                }
                self.orientation.apply(&unpacked, &mut oriented);
                let offset = (k * n_channels + c) * field_len;
                for (out, &value) in data[offset..offset + field_len].iter_mut().zip(&oriented) {
                    *out = value as f32;
                }
            }
        }
        Ok(Dataset {
            channels: self.channels.clone(),
            lat: self.orientation.lat.clone(),
            lon: self.orientation.lon.clone(),
            time_hours: self.time_hours[times].to_vec(),
            data,
        })
    }
}

/// Later files must have exactly the first file's times and grid.
fn check_same_grid(
    path: &Path,
    first_path: &Path,
    coords: &FileCoordinates,
    reference: &FileCoordinates,
) -> Result<(), DatasetError> {
    let mismatch = |what: &str| DatasetError::GridMismatch {
        path: path.to_path_buf(),
        other: first_path.to_path_buf(),
        detail: format!("different {what}"),
    };
    if coords.time_hours != reference.time_hours {
        return Err(mismatch("times"));
    }
    if coords.lat != reference.lat || coords.lon != reference.lon {
        return Err(mismatch("latitudes or longitudes"));
    }
    Ok(())
}

/// The index of the first file holding `variable`.
fn find_variable(files: &[NcFile], variable: &str) -> Result<usize, DatasetError> {
    if let Some(index) = files.iter().position(|f| f.has_variable(variable)) {
        return Ok(index);
    }
    let mut available = Vec::new();
    for file in files {
        available.extend(file.variable_names()?);
    }
    Err(DatasetError::MissingVariable {
        path: files[0].path().to_path_buf(),
        variable: variable.to_string(),
        available,
    })
}

/// Every variable laid out (time, lat, lon) or (time, level, lat, lon), in file order.
fn every_gridded_variable(
    files: &[NcFile],
    coordinates: &[FileCoordinates],
) -> Result<Vec<VariableSelection>, DatasetError> {
    let mut selection = Vec::new();
    for (file, coords) in files.iter().zip(coordinates) {
        for name in file.variable_names()? {
            let variable = file.variable(&name)?;
            if variable.is_numeric()? && grid_layout(&variable.dims, coords).is_some() {
                selection.push(VariableSelection::new(&name, &[]));
            }
        }
    }
    Ok(selection)
}

/// `Some(true)` for (time, level, lat, lon), `Some(false)` for (time, lat, lon), `None` for anything else.
fn grid_layout(dims: &[String], coords: &FileCoordinates) -> Option<bool> {
    let level_dimension = coords
        .level
        .as_ref()
        .filter(|l| l.is_dimension)
        .map(|l| l.name.as_str());
    match dims {
        [t, y, x] => (*t == coords.time_name && *y == coords.lat_name && *x == coords.lon_name)
            .then_some(false),
        [t, l, y, x] => (*t == coords.time_name
            && Some(l.as_str()) == level_dimension
            && *y == coords.lat_name
            && *x == coords.lon_name)
            .then_some(true),
        _ => None,
    }
}

/// Turns one selection into channels with their sources.
fn resolve(
    file: &NcFile,
    file_index: usize,
    coords: &FileCoordinates,
    choice: &VariableSelection,
) -> Result<Vec<(ChannelSource, Channel)>, DatasetError> {
    let variable = file.variable(&choice.variable)?;
    let has_level_dim =
        grid_layout(&variable.dims, coords).ok_or_else(|| DatasetError::WrongDimensions {
            path: file.path().to_path_buf(),
            variable: choice.variable.clone(),
            expected: format!(
                "({time}, {lat}, {lon}) or ({time}, <level>, {lat}, {lon})",
                time = coords.time_name,
                lat = coords.lat_name,
                lon = coords.lon_name
            ),
            found: variable.dims.clone(),
        })?;
    if !variable.is_numeric()? {
        return Err(DatasetError::BadAttribute {
            path: file.path().to_path_buf(),
            variable: choice.variable.clone(),
            attribute: "type".to_string(),
            detail: "not a numeric variable".to_string(),
        });
    }
    let packing = variable.packing()?;
    let units = variable.text_attr("units")?.unwrap_or_default();
    let file_levels: Vec<f64> = coords
        .level
        .as_ref()
        .map(|l| l.values_hpa.clone())
        .unwrap_or_default();
    // A 3-D variable is single-level unless the file's level coordinate is a scalar (WeatherBench `z500` files)
    // that the variable lists in its `coordinates` attribute, as xarray writes scalar coordinates.
    let scalar_level = match &coords.level {
        Some(level) if !has_level_dim && !level.is_dimension => {
            let listed = variable
                .text_attr("coordinates")?
                .is_some_and(|c| c.split_whitespace().any(|n| n == level.name));
            listed.then(|| level.values_hpa.first().copied()).flatten()
        }
        _ => None,
    };
    let missing_level = |level: f64| DatasetError::MissingLevel {
        path: file.path().to_path_buf(),
        variable: choice.variable.clone(),
        level,
        available: if has_level_dim {
            file_levels.clone()
        } else {
            scalar_level.into_iter().collect()
        },
    };
    let same_level = |a: f64, b: f64| (a - b).abs() <= 1e-6 * a.abs().max(1.0);
    let make = |level_index: Option<usize>, level: Option<f64>| {
        (
            ChannelSource {
                file: file_index,
                variable: variable.clone(),
                level_index,
                packing: packing.clone(),
            },
            Channel {
                name: channel_name(&choice.variable, level),
                variable: choice.variable.clone(),
                level,
                units: units.clone(),
            },
        )
    };
    if has_level_dim {
        let indices: Vec<usize> = if choice.levels.is_empty() {
            (0..file_levels.len()).collect()
        } else {
            choice
                .levels
                .iter()
                .map(|&wanted| {
                    file_levels
                        .iter()
                        .position(|&l| same_level(l, wanted))
                        .ok_or_else(|| missing_level(wanted))
                })
                .collect::<Result<_, _>>()?
        };
        Ok(indices
            .into_iter()
            .map(|i| make(Some(i), Some(file_levels[i])))
            .collect())
    } else {
        for &wanted in &choice.levels {
            if !scalar_level.is_some_and(|l| same_level(l, wanted)) {
                return Err(missing_level(wanted));
            }
        }
        Ok(vec![make(None, scalar_level)])
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixture_path;
    use super::*;

    /// Value of channel `c` at (time k, row i, column j) of a dataset.
    fn at(dataset: &Dataset, k: usize, c: usize, i: usize, j: usize) -> f32 {
        let (n_lat, n_lon) = (dataset.lat.len(), dataset.lon.len());
        dataset.frame(k)[(c * n_lat + i) * n_lon + j]
    }

    #[test]
    fn old_era5_packed_ints_decode_to_the_script_values() {
        let reader = GridReader::open(
            &[fixture_path("era5_old_packed.nc")],
            &[
                VariableSelection::new("z", &[]),
                VariableSelection::new("t2m", &[]),
            ],
        )
        .unwrap();
        assert_eq!(reader.convention(), Convention::Era5Cds);
        let names: Vec<&str> = reader.channels().iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["z500", "z850", "t2m"]);
        assert_eq!(reader.channels()[0].units, "m**2 s**-2");
        assert_eq!(reader.channels()[1].level, Some(850.0));
        assert_eq!(reader.time_hours(), &[78_888, 78_894, 78_900]);
        assert_eq!(reader.time_step_hours(), Some(6));
        assert!(reader.orientation().is_identity());
        let dataset = reader.read_all().unwrap();
        assert_eq!(dataset.lat, vec![90.0, 0.0, -90.0]);
        assert_eq!(dataset.lon, vec![0.0, 90.0, 180.0, 270.0]);
        for k in 0..3 {
            for i in 0..3 {
                for j in 0..4 {
                    for l in 0..2 {
                        let raw = 1000 * k * k + 100 * l + 10 * i + j;
                        assert_eq!(
                            at(&dataset, k, l, i, j),
                            50_000.0 + 0.5 * raw as f32,
                            "z k{k} l{l} i{i} j{j}"
                        );
                    }
                    let raw = 100 * k + 10 * i + j;
                    assert!((at(&dataset, k, 2, i, j) - (250.0 + 0.01 * raw as f32)).abs() < 1e-4);
                }
            }
        }
        // The script's worked example: z500 at (k=2, i=1, j=3) = 52006.5.
        assert_eq!(at(&dataset, 2, 0, 1, 3), 52_006.5);
    }

    #[test]
    fn new_era5_names_ascending_latitude_and_signed_longitude_are_normalised() {
        let reader = GridReader::open(
            &[fixture_path("era5_new_names.nc")],
            &[
                VariableSelection::new("t", &[500.0, 850.0]),
                VariableSelection::new("u10", &[]),
            ],
        )
        .unwrap();
        assert_eq!(reader.convention(), Convention::Era5CdsNew);
        assert!(reader.orientation().lat_reversed && reader.orientation().lon_rewrapped);
        let dataset = reader.read_all().unwrap();
        let names: Vec<&str> = dataset.channels.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["t500", "t850", "u10"]);
        assert_eq!(dataset.time_hours, vec![473_352, 473_358, 473_364]);
        assert_eq!(dataset.lat, vec![45.0, -45.0]);
        assert_eq!(dataset.lon, vec![0.0, 90.0, 180.0, 270.0]);
        for k in 0..3 {
            for (i, &lat) in dataset.lat.iter().enumerate() {
                for (j, &lon) in dataset.lon.iter().enumerate() {
                    for (c, p) in [(0, 500.0), (1, 850.0)] {
                        let expected = 200.0 + 10.0 * k as f64 + p / 50.0 + lat / 4.0 + lon / 8.0;
                        assert_eq!(f64::from(at(&dataset, k, c, i, j)), expected);
                    }
                    let expected = 1.0 + k as f64 + lat / 4.0 + lon / 16.0;
                    assert_eq!(f64::from(at(&dataset, k, 2, i, j)), expected);
                }
            }
        }
    }

    #[test]
    fn empty_selection_takes_every_gridded_variable_in_file_order() {
        let reader = GridReader::open(&[fixture_path("era5_new_names.nc")], &[]).unwrap();
        let names: Vec<&str> = reader.channels().iter().map(|c| c.name.as_str()).collect();
        // `number` (scalar) and `expver` (strings) are not gridded; levels come in file order [850, 500].
        assert_eq!(names, ["t850", "t500", "u10"]);
    }

    #[test]
    fn chunks_put_together_equal_one_read() {
        let reader = GridReader::open(&[fixture_path("era5_old_packed.nc")], &[]).unwrap();
        let whole = reader.read_all().unwrap();
        let mut data = Vec::new();
        let mut times = Vec::new();
        for chunk in reader.chunks(2) {
            let chunk = chunk.unwrap();
            times.extend(chunk.time_hours);
            data.extend(chunk.data);
        }
        assert_eq!((times, data), (whole.time_hours, whole.data));
        assert!(matches!(
            reader.read_times(2..4),
            Err(DatasetError::TimeRangeOutOfBounds { count: 3, .. })
        ));
    }

    #[test]
    fn weatherbench_files_join_into_one_dataset() {
        let paths = [
            fixture_path("wb_geopotential_500.nc"),
            fixture_path("wb_temperature.nc"),
        ];
        let reader = GridReader::open(
            &paths,
            &[
                VariableSelection::new("z", &[]),
                VariableSelection::new("t", &[850.0]),
            ],
        )
        .unwrap();
        assert_eq!(reader.convention(), Convention::WeatherBench);
        assert_eq!(reader.time_step_hours(), Some(1));
        let dataset = reader.read_all().unwrap();
        let names: Vec<&str> = dataset.channels.iter().map(|c| c.name.as_str()).collect();
        assert_eq!(names, ["z500", "t850"]);
        assert_eq!(dataset.time_hours, vec![78_888, 78_889, 78_890]);
        assert_eq!(dataset.lat, vec![-70.3125, -75.9375, -81.5625, -87.1875]);
        assert_eq!(dataset.lon, vec![0.0, 5.625, 11.25, 16.875]);
        for k in 0..3 {
            for (i, &lat) in dataset.lat.iter().enumerate() {
                for (j, &lon) in dataset.lon.iter().enumerate() {
                    let z = 50_000.0 + 100.0 * k as f64 + lat + lon / 8.0;
                    assert_eq!(f64::from(at(&dataset, k, 0, i, j)), z);
                    let t = 250.0 + k as f64 + 8.5 + lat / 16.0;
                    assert!((f64::from(at(&dataset, k, 1, i, j)) - t).abs() < 1e-4);
                }
            }
        }
        let wrong_level = GridReader::open(&paths[..1], &[VariableSelection::new("z", &[850.0])]);
        assert!(
            matches!(wrong_level, Err(DatasetError::MissingLevel { level, .. }) if level == 850.0)
        );
    }

    fn missing_data(variable: &str) -> (String, Option<f64>, usize, String, f64, f64, String) {
        let reader = GridReader::open(
            &[fixture_path("era5_fill.nc")],
            &[VariableSelection::new(variable, &[])],
        )
        .unwrap();
        let error = reader.read_all().unwrap_err();
        let message = error.to_string();
        match error {
            DatasetError::MissingData {
                variable,
                level,
                time_index,
                time_hours,
                lat,
                lon,
                what,
                ..
            } => {
                let time = cf_time::iso8601(time_hours);
                assert!(
                    message.contains(&time) && message.contains("era5_fill.nc"),
                    "{message}"
                );
                (
                    variable,
                    level,
                    time_index,
                    time,
                    lat,
                    lon,
                    what.to_string(),
                )
            }
            other => panic!("expected MissingData for {variable}, got {other:?}"),
        }
    }

    #[test]
    fn fill_values_nan_and_missing_values_are_errors_that_say_where() {
        assert_eq!(
            missing_data("z"),
            (
                "z".into(),
                Some(500.0),
                1,
                "1979-01-01T06:00:00Z".into(),
                -90.0,
                270.0,
                "fill value".into()
            )
        );
        assert_eq!(
            missing_data("t"),
            (
                "t".into(),
                Some(850.0),
                2,
                "1979-01-01T12:00:00Z".into(),
                90.0,
                90.0,
                "NaN".into()
            )
        );
        assert_eq!(
            missing_data("q"),
            (
                "q".into(),
                Some(850.0),
                0,
                "1979-01-01T00:00:00Z".into(),
                0.0,
                180.0,
                "missing_value".into()
            )
        );
        let clean = GridReader::open(
            &[fixture_path("era5_fill.nc")],
            &[VariableSelection::new("t2m", &[])],
        )
        .unwrap();
        assert_eq!(at(&clean.read_all().unwrap(), 2, 0, 1, 1), 282.0);
    }

    #[test]
    fn each_bad_input_has_its_own_error() {
        let dir = tempfile::tempdir().unwrap();
        let good = std::fs::read(fixture_path("era5_old_packed.nc")).unwrap();
        let write = |name: &str, bytes: &[u8]| {
            let path = dir.path().join(name);
            std::fs::write(&path, bytes).unwrap();
            path
        };
        let open = |path: &std::path::Path| GridReader::open(&[path], &[]);

        let absent = dir.path().join("absent.nc");
        assert!(matches!(
            open(&absent),
            Err(DatasetError::MissingFile { .. })
        ));
        let text = write("notes.nc", b"this is not a NetCDF file");
        assert!(matches!(open(&text), Err(DatasetError::NotNetcdf { .. })));
        let empty = write("empty.nc", b"");
        assert!(matches!(open(&empty), Err(DatasetError::NotNetcdf { .. })));
        let classic = write("classic.nc", b"CDF\x01\0\0\0\0\0\0\0\0");
        assert!(
            matches!(open(&classic), Err(DatasetError::NotNetcdf { detail, .. }) if detail.contains("nccopy"))
        );
        let truncated = write("truncated.nc", &good[..good.len() / 2]);
        assert!(matches!(
            open(&truncated),
            Err(DatasetError::Truncated { expected_bytes, actual_bytes, .. })
                if expected_bytes == good.len() as u64 && actual_bytes == (good.len() / 2) as u64
        ));
        let cut_in_superblock = write("cut.nc", &good[..20]);
        assert!(matches!(
            open(&cut_in_superblock),
            Err(DatasetError::Truncated { .. })
        ));

        let packed = fixture_path("era5_old_packed.nc");
        let missing = GridReader::open(&[&packed], &[VariableSelection::new("q", &[])]);
        assert!(
            matches!(missing, Err(DatasetError::MissingVariable { variable, available, .. })
            if variable == "q" && available.contains(&"z".to_string()))
        );
        let no_level = GridReader::open(&[&packed], &[VariableSelection::new("z", &[300.0])]);
        assert!(
            matches!(no_level, Err(DatasetError::MissingLevel { available, .. }) if available == [500.0, 850.0])
        );
        let wrong_dims = GridReader::open(
            &[fixture_path("bad_dims.nc")],
            &[VariableSelection::new("z", &[])],
        );
        assert!(
            matches!(wrong_dims, Err(DatasetError::WrongDimensions { found, .. })
            if found == ["time", "longitude", "latitude"])
        );
        assert!(matches!(
            open(&fixture_path("empty_time.nc")),
            Err(DatasetError::EmptyTimeAxis { .. })
        ));
        assert!(matches!(
            open(&fixture_path("bad_time_step.nc")),
            Err(DatasetError::NonUniformTimeStep {
                index: 2,
                step_hours: 12,
                first_step_hours: 6,
                ..
            })
        ));
        let twice = GridReader::open(
            &[&packed],
            &[
                VariableSelection::new("z", &[500.0]),
                VariableSelection::new("z", &[]),
            ],
        );
        assert!(matches!(twice, Err(DatasetError::InvalidDataset { .. })));
        let mismatch = GridReader::open(
            &[fixture_path("wb_geopotential_500.nc"), packed.clone()],
            &[],
        );
        assert!(matches!(mismatch, Err(DatasetError::GridMismatch { .. })));
        // Every message names the file.
        let message = open(&truncated).unwrap_err().to_string();
        assert!(message.contains("truncated.nc"), "{message}");
    }
}
