//! GraphCast's normalisation statistics: `mean_by_level.nc`, `stddev_by_level.nc` and
//! `diffs_stddev_by_level.nc` (the files published beside the checkpoints, `stats/` of DeepMind's bucket), each
//! a variable per GraphCast name, 0-d for surface variables and along `level` for atmospheric ones.
//!
//! Levels are matched by VALUE (the files hold 37 or 13 levels; a task uses some of them, in its own order).
//! GraphCast leaves a variable missing from a file un-normalised with a warning (`normalization.py`
//! `normalize`); here a missing variable or level is an error naming the file, the variable and the level.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::error::GraphCastDataError;
use crate::dataset::{self, open_source};

/// File names of the three statistics in a statistics folder.
pub const MEAN_FILE: &str = "mean_by_level.nc";
pub const STDDEV_FILE: &str = "stddev_by_level.nc";
pub const DIFFS_STDDEV_FILE: &str = "diffs_stddev_by_level.nc";

/// The values of one statistics file.
#[derive(Debug, Clone, PartialEq)]
pub struct StatisticsFile {
    pub path: PathBuf,
    /// Per variable: one value, or (level in hPa, value) pairs.
    variables: BTreeMap<String, Statistic>,
}

#[derive(Debug, Clone, PartialEq)]
enum Statistic {
    Scalar(f64),
    ByLevel(Vec<(f64, f64)>),
}

impl StatisticsFile {
    /// Reads every numeric variable of `path` that is a scalar or lies along the level coordinate.
    pub fn read(path: &Path) -> Result<Self, GraphCastDataError> {
        let source = open_source(path)?;
        let source = source.as_ref();
        let level_names = dataset::LEVEL_NAMES;
        let levels = match level_names.iter().find_map(|n| source.variable(n)) {
            Some(level) => Some((
                level.dims.first().cloned().unwrap_or_default(),
                dataset::read_variable(source, &level.name.clone())?.values,
            )),
            None => None,
        };
        let mut variables = BTreeMap::new();
        for info in source.variables() {
            if !info.value_type.is_numeric() || info.is_coordinate() {
                continue;
            }
            let bad = |detail: String| GraphCastDataError::BadStatistic {
                path: path.to_path_buf(),
                variable: info.name.clone(),
                detail,
            };
            let values = dataset::read_variable(source, &info.name)?.values;
            let statistic = match (info.dims.as_slice(), &levels) {
                ([], _) => Statistic::Scalar(values[0]),
                ([dim], Some((level_dim, level_values))) if dim == level_dim => {
                    Statistic::ByLevel(level_values.iter().copied().zip(values).collect())
                }
                (dims, _) => {
                    return Err(bad(format!(
                        "dimensions ({}) are neither none nor the level coordinate",
                        dims.join(", ")
                    )));
                }
            };
            variables.insert(info.name.clone(), statistic);
        }
        Ok(Self {
            path: path.to_path_buf(),
            variables,
        })
    }

    /// The statistic of `variable` at `level` (hPa; `None` for a surface variable), as the f32 GraphCast casts
    /// it to. A scalar statistic holds for every level (xarray broadcasts it).
    pub fn get(&self, variable: &str, level: Option<i64>) -> Result<f32, GraphCastDataError> {
        let missing = |available: Vec<String>| GraphCastDataError::MissingStatistic {
            path: self.path.clone(),
            variable: variable.to_string(),
            level,
            available,
        };
        match (self.variables.get(variable), level) {
            (None, _) => Err(missing(self.variables.keys().cloned().collect())),
            (Some(Statistic::Scalar(value)), _) => Ok(*value as f32),
            (Some(Statistic::ByLevel(values)), Some(level)) => values
                .iter()
                .find(|(l, _)| (*l - level as f64).abs() < 1e-6)
                .map(|&(_, value)| value as f32)
                .ok_or_else(|| missing(values.iter().map(|(l, _)| format!("{l}")).collect())),
            (Some(Statistic::ByLevel(_)), None) => Err(GraphCastDataError::BadStatistic {
                path: self.path.clone(),
                variable: variable.to_string(),
                detail: "given by level, but the variable has no levels".into(),
            }),
        }
    }
}

/// The three statistics files of a folder.
#[derive(Debug, Clone, PartialEq)]
pub struct Statistics {
    /// `mean_by_level`: subtracted from inputs and forcings; added back to predictions of non-input targets.
    pub mean: StatisticsFile,
    /// `stddev_by_level`: divides inputs and forcings; scales predictions of non-input targets.
    pub stddev: StatisticsFile,
    /// `diffs_stddev_by_level`: scales the predicted residual of targets that are also inputs.
    pub diffs_stddev: StatisticsFile,
}

impl Statistics {
    /// Reads [`MEAN_FILE`], [`STDDEV_FILE`] and [`DIFFS_STDDEV_FILE`] from `folder`.
    pub fn read(folder: &Path) -> Result<Self, GraphCastDataError> {
        Ok(Self {
            mean: StatisticsFile::read(&folder.join(MEAN_FILE))?,
            stddev: StatisticsFile::read(&folder.join(STDDEV_FILE))?,
            diffs_stddev: StatisticsFile::read(&folder.join(DIFFS_STDDEV_FILE))?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats_dir() -> PathBuf {
        crate::dataset::fixture_path("graphcast/stats")
    }

    #[test]
    fn statistics_are_found_by_name_and_level_value() {
        let stats = Statistics::read(&stats_dir()).unwrap();
        let z500 = stats.mean.get("geopotential", Some(500)).unwrap();
        let z1000 = stats.mean.get("geopotential", Some(1000)).unwrap();
        assert!(z500 > z1000 && z1000 > 0.0, "{z500} {z1000}");
        assert!(stats.stddev.get("2m_temperature", None).unwrap() > 0.0);
        assert!(stats.diffs_stddev.get("temperature", Some(850)).unwrap() > 0.0);
    }

    #[test]
    fn a_missing_variable_or_level_names_the_file_variable_and_level() {
        let stats = Statistics::read(&stats_dir()).unwrap();
        let error = stats
            .mean
            .get("geopotential", Some(975))
            .unwrap_err()
            .to_string();
        assert!(
            error.contains("mean_by_level.nc")
                && error.contains("`geopotential`")
                && error.contains("975"),
            "{error}"
        );
        let error = stats.stddev.get("ozone", None).unwrap_err().to_string();
        assert!(
            error.contains("stddev_by_level.nc") && error.contains("`ozone`"),
            "{error}"
        );
        let missing = Statistics::read(Path::new("/nonexistent/stats"))
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("/nonexistent/stats/mean_by_level.nc"),
            "{missing}"
        );
    }
}
