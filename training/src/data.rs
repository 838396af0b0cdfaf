//! Opening the data a run config names: existing NetCDF files, a Zarr store, or the built-in atmosphere
//! generated on first use into the configured folder.

use std::ops::Range;
use std::path::{Path, PathBuf};

use crate::atmosphere::{AtmosphereError, simulate_with_progress};
use crate::config::{DataConfig, DataSource};
use crate::dataset::{
    Channel, Dataset, DatasetError, GridReader, ZarrReader, is_zarr_store, write_era5,
};
use crate::windows::FrameSource;

/// The file the built-in atmosphere writes inside `data.path`.
pub const SYNTHETIC_FILE: &str = "synthetic.nc";
/// The settings it was made with, beside it: data made with other settings is made again.
pub const SYNTHETIC_SETTINGS: &str = "synthetic.json";

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error("built-in atmosphere: {0}")]
    Atmosphere(#[from] AtmosphereError),
    #[error("{path}: {reason}")]
    Path { path: PathBuf, reason: String },
}

/// Generate the built-in data set into `config.path` unless it is already there, made with the same settings
/// (`synthetic.json` beside it). Returns the file and whether it was generated now. `progress(done, total)` is
/// called after each 6-hourly frame.
pub fn ensure_synthetic(
    config: &DataConfig,
    progress: impl FnMut(usize, usize),
) -> Result<(PathBuf, bool), DataError> {
    let file = config.path.join(SYNTHETIC_FILE);
    let settings_path = config.path.join(SYNTHETIC_SETTINGS);
    let settings =
        serde_json::to_string_pretty(&config.synthetic).map_err(|e| DataError::Path {
            path: settings_path.clone(),
            reason: e.to_string(),
        })?;
    let made_with = std::fs::read_to_string(&settings_path).ok();
    if file.is_file() && made_with.as_deref() == Some(settings.as_str()) {
        return Ok((file, false));
    }
    if file.is_file() {
        tracing::warn!(
            "{} was made with other settings (see {}): making it again",
            file.display(),
            settings_path.display()
        );
    }
    std::fs::create_dir_all(&config.path).map_err(|e| DataError::Path {
        path: config.path.clone(),
        reason: e.to_string(),
    })?;
    let dataset = simulate_with_progress(
        &config.synthetic.atmosphere,
        config.synthetic.days,
        progress,
    )?;
    write_era5(&file, &dataset)?;
    let tmp = settings_path.with_extension("json.tmp");
    std::fs::write(&tmp, settings)
        .and_then(|_| std::fs::rename(&tmp, &settings_path))
        .map_err(|e| DataError::Path {
            path: settings_path.clone(),
            reason: e.to_string(),
        })?;
    Ok((file, true))
}

/// The NetCDF files of `path`: the file itself, or the `.nc`/`.nc4` files of a folder in name order.
pub fn netcdf_files(path: &Path) -> Result<Vec<PathBuf>, DataError> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    if is_zarr_store(path) {
        return Err(DataError::Path {
            path: path.to_path_buf(),
            reason: "a Zarr store, not NetCDF files: open it with `data::open`".to_string(),
        });
    }
    let entries = std::fs::read_dir(path).map_err(|e| DataError::Path {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "nc" || x == "nc4"))
        .collect();
    files.sort();
    if files.is_empty() {
        return Err(DataError::Path {
            path: path.to_path_buf(),
            reason: "no .nc files in this folder".to_string(),
        });
    }
    Ok(files)
}

/// True when `path` should be read as a Zarr store: a folder holding Zarr metadata, or a path ending in `.zarr`
/// (so that a missing or broken store gets the Zarr reader's error rather than "no .nc files").
pub fn is_zarr_path(path: &Path) -> bool {
    is_zarr_store(path) || path.extension().is_some_and(|x| x == "zarr")
}

/// Open the configured data (generating the built-in atmosphere first if needed). A `path` that is a Zarr store
/// ([`is_zarr_path`]) is read with [`ZarrReader`], anything else as NetCDF.
pub fn open(config: &DataConfig) -> Result<DataReader, DataError> {
    let files = match config.source {
        DataSource::Synthetic => vec![ensure_synthetic(config, |_, _| {})?.0],
        DataSource::Netcdf if is_zarr_path(&config.path) => {
            return Ok(DataReader::Zarr(ZarrReader::open(
                &config.path,
                &config.variables,
            )?));
        }
        DataSource::Netcdf => netcdf_files(&config.path)?,
    };
    Ok(DataReader::Netcdf(GridReader::open(
        &files,
        &config.variables,
    )?))
}

/// The configured data opened for reading by time chunks: NetCDF files or a Zarr store, with one interface.
#[derive(Debug)]
pub enum DataReader {
    Netcdf(GridReader),
    Zarr(ZarrReader),
}

impl DataReader {
    /// The files read: the NetCDF files, or the store folder.
    pub fn paths(&self) -> Vec<&Path> {
        match self {
            Self::Netcdf(reader) => reader.paths(),
            Self::Zarr(reader) => vec![reader.path()],
        }
    }

    pub fn channels(&self) -> &[Channel] {
        match self {
            Self::Netcdf(reader) => reader.channels(),
            Self::Zarr(reader) => reader.channels(),
        }
    }

    /// Latitudes of the data returned, 90 -> -90.
    pub fn lat(&self) -> &[f64] {
        match self {
            Self::Netcdf(reader) => reader.lat(),
            Self::Zarr(reader) => reader.lat(),
        }
    }

    /// Longitudes of the data returned, ascending in [0, 360).
    pub fn lon(&self) -> &[f64] {
        match self {
            Self::Netcdf(reader) => reader.lon(),
            Self::Zarr(reader) => reader.lon(),
        }
    }

    /// Valid times, hours since 1970-01-01T00:00:00Z.
    pub fn time_hours(&self) -> &[i64] {
        match self {
            Self::Netcdf(reader) => reader.time_hours(),
            Self::Zarr(reader) => reader.time_hours(),
        }
    }

    /// The time step in hours; `None` for data with one time.
    pub fn time_step_hours(&self) -> Option<i64> {
        match self {
            Self::Netcdf(reader) => reader.time_step_hours(),
            Self::Zarr(reader) => reader.time_step_hours(),
        }
    }

    /// Reads times `times`: a [`Dataset`] whose `data` is [times, channel, lat, lon].
    pub fn read_times(&self, times: Range<usize>) -> Result<Dataset, DatasetError> {
        match self {
            Self::Netcdf(reader) => reader.read_times(times),
            Self::Zarr(reader) => reader.read_times(times),
        }
    }

    /// Reads every time: only for data that fits in memory.
    pub fn read_all(&self) -> Result<Dataset, DatasetError> {
        self.read_times(0..self.time_hours().len())
    }
}

impl FrameSource for DataReader {
    fn time_hours(&self) -> &[i64] {
        DataReader::time_hours(self)
    }
    fn frame_len(&self) -> usize {
        self.channels().len() * self.lat().len() * self.lon().len()
    }
    fn read_frames(&self, times: Range<usize>) -> Result<Vec<f32>, DatasetError> {
        Ok(self.read_times(times)?.data)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `[data]` table naming `path` with `source = "netcdf"`.
    fn config(path: &Path, variables: &str) -> DataConfig {
        toml::from_str(&format!(
            r#"
            source = "netcdf"
            path = {path:?}
            variables = {variables}
            [windows]
            train = {{ start = "2020-01-01", end = "2020-01-02" }}
            val = {{ start = "2020-01-02", end = "2020-01-03" }}
            test = {{ start = "2020-01-03", end = "2020-01-04" }}
            "#,
            path = path.display().to_string(),
        ))
        .unwrap()
    }

    #[test]
    fn a_zarr_store_path_opens_with_the_zarr_reader() {
        let store = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/wb2_small.zarr");
        let reader = open(&config(&store, r#"[{ variable = "z", levels = [500.0] }]"#)).unwrap();
        assert!(matches!(reader, DataReader::Zarr(_)));
        assert_eq!(reader.paths(), [store.as_path()]);
        assert_eq!(reader.channels()[0].name, "z500");
        assert_eq!(reader.time_step_hours(), Some(6));
        let frames = reader.read_frames(0..2).unwrap();
        assert_eq!(frames.len(), 2 * FrameSource::frame_len(&reader));
        assert_eq!(frames, reader.read_all().unwrap().data[..frames.len()]);
        assert!(netcdf_files(&store).is_err());

        let missing = store.with_file_name("absent.zarr");
        assert!(matches!(
            open(&config(&missing, "[]")),
            Err(DataError::Dataset(DatasetError::MissingFile { .. }))
        ));
    }
}
