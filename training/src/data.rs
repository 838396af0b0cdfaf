//! Opening the data a run config names: existing NetCDF files (one, or a folder forming one series), a Zarr
//! store, or the built-in atmosphere generated on first use into the configured folder.

use std::path::{Path, PathBuf};

use weatherlens_models::files::{self, FileError};
use weatherlens_models::lock::{FolderLock, LockError, Wait};

use crate::atmosphere::{AtmosphereError, simulate_with_progress};
use crate::config::{DataConfig, DataSource, SyntheticConfig};
use crate::dataset::{
    AxisChoices, Dataset, DatasetError, Reader, input_files, is_zarr_store, write_era5,
};

/// The file the built-in atmosphere writes inside `data.path`.
pub const SYNTHETIC_FILE: &str = "synthetic.nc";
/// The settings it was made with, beside it: data made with other settings is made again.
pub const SYNTHETIC_SETTINGS: &str = "synthetic.json";
/// The lock file held while it is checked and made: runs sharing the data wait for the one making it.
pub const SYNTHETIC_LOCK: &str = "synthetic.lock";

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error("built-in atmosphere: {0}")]
    Atmosphere(#[from] AtmosphereError),
    #[error("{path}: {reason}")]
    Path { path: PathBuf, reason: String },
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    Lock(#[from] LockError),
}

/// The settings file's text for `synthetic`: what [`ensure_synthetic`] compares.
fn settings_text(synthetic: &SyntheticConfig, path: &Path) -> Result<String, DataError> {
    serde_json::to_string_pretty(synthetic).map_err(|e| DataError::Path {
        path: path.to_path_buf(),
        reason: e.to_string(),
    })
}

/// Whether `dir` holds the built-in data made with exactly `settings`.
fn made_with(dir: &Path, settings: &str) -> bool {
    dir.join(SYNTHETIC_FILE).is_file()
        && std::fs::read_to_string(dir.join(SYNTHETIC_SETTINGS))
            .ok()
            .as_deref()
            == Some(settings)
}

/// Generate the built-in data set into `config.path` unless it is already there, made with the same settings
/// (`synthetic.json` beside it). Returns the file and whether it was generated now. `progress(done, total)` is
/// called after each 6-hourly frame. Runs that share the folder and start together wait for the one making it
/// (a lock on `synthetic.lock`).
pub fn ensure_synthetic(
    config: &DataConfig,
    progress: impl FnMut(usize, usize),
) -> Result<(PathBuf, bool), DataError> {
    let file = config.path.join(SYNTHETIC_FILE);
    let settings = settings_text(&config.synthetic, &config.path.join(SYNTHETIC_SETTINGS))?;
    if made_with(&config.path, &settings) {
        return Ok((file, false));
    }
    let _lock = lock_data_folder(&config.path)?;
    if made_with(&config.path, &settings) {
        return Ok((file, false));
    }
    if file.is_file() {
        tracing::warn!(
            "{} was made with other settings (see {}): making it again",
            file.display(),
            config.path.join(SYNTHETIC_SETTINGS).display()
        );
    }
    make_synthetic_locked(&config.path, &config.synthetic, progress)?;
    Ok((file, true))
}

/// Simulate the built-in atmosphere with `synthetic` and write it into `dir` (`synthetic.nc` and
/// `synthetic.json`, as one unit), whatever is there: `data make-synthetic`. Returns the data file.
pub fn make_synthetic(
    dir: &Path,
    synthetic: &SyntheticConfig,
    progress: impl FnMut(usize, usize),
) -> Result<PathBuf, DataError> {
    let _lock = lock_data_folder(dir)?;
    make_synthetic_locked(dir, synthetic, progress)
}

/// Locks the built-in data's folder (waiting for another maker) and removes the temporaries an interrupted
/// maker left there (only its own: the folder may hold other files).
fn lock_data_folder(dir: &Path) -> Result<FolderLock, DataError> {
    let lock = FolderLock::acquire(dir, SYNTHETIC_LOCK, Wait::Yes)?;
    files::remove_stale_temporaries_of(
        dir,
        &[SYNTHETIC_FILE, SYNTHETIC_SETTINGS, files::WRITE_CHECK],
    )?;
    Ok(lock)
}

fn make_synthetic_locked(
    dir: &Path,
    synthetic: &SyntheticConfig,
    progress: impl FnMut(usize, usize),
) -> Result<PathBuf, DataError> {
    // Minutes of simulation must not end in a read-only folder.
    files::check_writable(dir)?;
    let dataset = simulate_with_progress(&synthetic.atmosphere, synthetic.days, progress)?;
    write_synthetic(dir, synthetic, &dataset)
}

/// Writes the built-in data set and the settings it was made with into `dir` as one unit: the old settings are
/// removed first and the new ones written last, so settings beside a data file always describe it, and a data
/// file without settings (an interrupted write) is made again by the next run.
fn write_synthetic(
    dir: &Path,
    synthetic: &SyntheticConfig,
    dataset: &Dataset,
) -> Result<PathBuf, DataError> {
    let file = dir.join(SYNTHETIC_FILE);
    let settings_path = dir.join(SYNTHETIC_SETTINGS);
    let settings = settings_text(synthetic, &settings_path)?;
    if settings_path.exists() {
        std::fs::remove_file(&settings_path).map_err(FileError::at("removing", &settings_path))?;
    }
    write_era5(&file, dataset)?;
    files::write_atomic(&settings_path, settings.as_bytes())?;
    Ok(file)
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
