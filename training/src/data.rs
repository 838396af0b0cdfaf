//! Opening the data a run config names: existing NetCDF files, or the built-in atmosphere generated on
//! first use into the configured folder.

use std::path::{Path, PathBuf};

use crate::atmosphere::{AtmosphereError, simulate_with_progress};
use crate::config::{DataConfig, DataSource};
use crate::dataset::{DatasetError, GridReader, write_era5};

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
    let settings = serde_json::to_string_pretty(&config.synthetic).map_err(|e| DataError::Path {
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

/// Open the configured data (generating the built-in atmosphere first if needed).
pub fn open(config: &DataConfig) -> Result<GridReader, DataError> {
    let files = match config.source {
        DataSource::Synthetic => vec![ensure_synthetic(config, |_, _| {})?.0],
        DataSource::Netcdf => netcdf_files(&config.path)?,
    };
    Ok(GridReader::open(&files, &config.variables)?)
}
