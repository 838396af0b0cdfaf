//! Opening the data a run config names: existing NetCDF files (one, or a folder forming one series), a Zarr
//! store, or the built-in atmosphere generated on first use into the configured folder.

use std::path::{Path, PathBuf};

use crate::atmosphere::{AtmosphereError, simulate_with_progress};
use crate::config::{DataConfig, DataSource};
use crate::dataset::{AxisChoices, DatasetError, Reader, input_files, is_zarr_store, write_era5};

/// The file the built-in atmosphere writes inside `data.path`.
pub const SYNTHETIC_FILE: &str = "synthetic.nc";
/// The settings it was made with, beside it: data made with other settings is made again.
pub const SYNTHETIC_SETTINGS: &str = "synthetic.json";
/// The lock file held while it is made.
pub const SYNTHETIC_LOCK: &str = "synthetic.lock";

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
    let made_with = || std::fs::read_to_string(&settings_path).ok();
    if file.is_file() && made_with().as_deref() == Some(settings.as_str()) {
        return Ok((file, false));
    }
    std::fs::create_dir_all(&config.path).map_err(|e| DataError::Path {
        path: config.path.clone(),
        reason: e.to_string(),
    })?;
    // Runs of a study share their data and may start together (threads, or Slurm tasks on several nodes of a
    // shared file system): one makes it while the others wait on this lock, then find it made.
    let lock_path = config.path.join(SYNTHETIC_LOCK);
    let lock = std::fs::File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .and_then(|lock| lock.lock().map(|()| lock))
        .map_err(|e| DataError::Path {
            path: lock_path.clone(),
            reason: format!("cannot lock: {e}"),
        })?;
    if file.is_file() && made_with().as_deref() == Some(settings.as_str()) {
        return Ok((file, false));
    }
    if file.is_file() {
        tracing::warn!(
            "{} was made with other settings (see {}): making it again",
            file.display(),
            settings_path.display()
        );
    }
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
    drop(lock);
    Ok((file, true))
}

/// The NetCDF files of `path`: the file itself, or the `.nc`/`.nc4` files anywhere below a folder, in path order.
pub fn netcdf_files(path: &Path) -> Result<Vec<PathBuf>, DataError> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    if is_zarr_path(path) {
        return Err(DataError::Path {
            path: path.to_path_buf(),
            reason: "a Zarr store, not NetCDF files: open it with `data::open`".to_string(),
        });
    }
    if !path.is_dir() {
        return Err(DataError::Path {
            path: path.to_path_buf(),
            reason: "no such file or folder".to_string(),
        });
    }
    Ok(input_files(path)?)
}

/// True when `path` should be read as a Zarr store: a folder holding Zarr metadata, or a path ending in `.zarr`
/// (so that a missing or broken store gets the Zarr reader's error rather than "no .nc files").
pub fn is_zarr_path(path: &Path) -> bool {
    is_zarr_store(path) || path.extension().is_some_and(|x| x == "zarr")
}

/// The axis choices of the `[data]` table (the ensemble member).
pub fn axis_choices(config: &DataConfig) -> AxisChoices {
    AxisChoices {
        member: config.member,
    }
}

/// Open the configured data (generating the built-in atmosphere first if needed): a NetCDF file (NetCDF-4 or
/// netCDF-3), a folder of them forming one series, or a Zarr store, all through the one [`Reader`].
pub fn open(config: &DataConfig) -> Result<Reader, DataError> {
    let choices = axis_choices(config);
    match config.source {
        DataSource::Synthetic => {
            let file = ensure_synthetic(config, |_, _| {})?.0;
            Ok(Reader::open_with(&[file], &config.variables, &choices)?)
        }
        DataSource::Netcdf => Ok(Reader::open_path(
            &config.path,
            &config.variables,
            &choices,
        )?),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dataset::SourceFormat;
    use crate::windows::FrameSource;

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
    fn runs_starting_together_make_the_built_in_data_once() {
        let dir = tempfile::tempdir().unwrap();
        let config: DataConfig = toml::from_str(&format!(
            r#"
            source = "synthetic"
            path = {path:?}
            synthetic = {{ days = 1, atmosphere = {{ spin_up_days = 0.5, truncation = 21, output_n_lat = 8, output_n_lon = 16 }} }}
            [windows]
            train = {{ start = "2000-01-01", end = "2000-01-02" }}
            val = {{ start = "2000-01-01", end = "2000-01-02" }}
            test = {{ start = "2000-01-01", end = "2000-01-02" }}
            "#,
            path = dir.path().join("data").display().to_string(),
        ))
        .unwrap();
        let made: Vec<bool> = std::thread::scope(|scope| {
            let handles: Vec<_> = (0..3)
                .map(|_| scope.spawn(|| ensure_synthetic(&config, |_, _| {}).unwrap().1))
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        });
        assert_eq!(made.iter().filter(|&&m| m).count(), 1, "{made:?}");
        assert!(!ensure_synthetic(&config, |_, _| {}).unwrap().1);
        assert!(open(&config).is_ok());
    }

    #[test]
    fn a_zarr_store_path_opens_as_a_zarr_source() {
        let store = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/wb2_small.zarr");
        let reader = open(&config(&store, r#"[{ variable = "z", levels = [500.0] }]"#)).unwrap();
        assert_eq!(reader.formats(), [SourceFormat::ZarrV2]);
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
