//! Opening the data a run config names: existing NetCDF files, or the built-in atmosphere generated on
//! first use into the configured folder.

use std::path::{Path, PathBuf};

use crate::atmosphere::{AtmosphereError, simulate_with_progress};
use crate::config::{DataConfig, DataSource};
use crate::dataset::{DatasetError, GridReader, write_era5};

/// The file the built-in atmosphere writes inside `data.path`.
pub const SYNTHETIC_FILE: &str = "synthetic.nc";

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error("built-in atmosphere: {0}")]
    Atmosphere(#[from] AtmosphereError),
    #[error("{path}: {reason}")]
    Path { path: PathBuf, reason: String },
}

/// Generate the built-in data set into `config.path` unless it is already there. Returns the file and whether
/// it was generated now. `progress(done, total)` is called after each 6-hourly frame.
pub fn ensure_synthetic(
    config: &DataConfig,
    progress: impl FnMut(usize, usize),
) -> Result<(PathBuf, bool), DataError> {
    let file = config.path.join(SYNTHETIC_FILE);
    if file.is_file() {
        return Ok((file, false));
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
