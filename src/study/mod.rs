//! `weatherlens study`: train -> evaluate -> probe -> analyze -> jacobian a list or grid of runs that differ
//! from one base run config, each into `runs/<study>/<run>/`, then compare them ([`crate::report::study`]).
//!
//! This file reads the study config and plans its runs; [`run`] executes them stage by stage.
//!
//! A study config names the base run config and the runs as TOML overrides of it:
//!
//! ```toml
//! name = "study-demo"
//! base = "demo.toml"                 # relative to this file
//! [[runs]]
//! name = "gnn"
//! [[runs]]
//! name = "shared"
//! overrides = { model = { processor = "shared" } }
//! [grid]                             # optional: the cartesian product, added to `runs`
//! "model.processor" = ["gnn", "transformer"]
//! seed = [1, 2]
//! ```
//!
//! Re-running skips finished steps and resumes unfinished training; a run that fails is reported and the
//! others go on. Each run records its outcome in its folder ([`outcome`]), so the report can be rebuilt from the
//! run folders alone; [`slurm`] runs the study as a Slurm job array (`study --dispatch slurm`) with an optional
//! `[slurm]` table of `#SBATCH` options.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub mod outcome;
mod run;
pub mod slurm;

pub use run::{ExecuteOptions, RunOutcome, Stage, StageFailure, execute, execute_all};
pub use slurm::SlurmConfig;

use serde::{Deserialize, Serialize};
use weatherlens_models::files::{self, FileError};
use weatherlens_training::config::{ConfigError, RunConfig};

/// Why a study config cannot be planned.
#[derive(Debug, thiserror::Error)]
pub enum StudyError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: run `{run}`: {source}")]
    RunConfig {
        path: PathBuf,
        run: String,
        source: ConfigError,
    },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error(transparent)]
    Slurm(#[from] slurm::SlurmError),
}

/// The study config file.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct StudyConfig {
    pub name: String,
    /// The run config every run starts from, relative to the study config's folder.
    pub base: PathBuf,
    /// Runs executed at once (each uses burn's shared thread pool; 1 is right for 2 cores).
    #[serde(default = "one")]
    pub parallel_runs: usize,
    #[serde(default)]
    pub runs: Vec<RunSpec>,
    /// Dotted key -> values; every combination becomes a run named after its values.
    #[serde(default)]
    pub grid: BTreeMap<String, Vec<toml::Value>>,
    #[serde(default)]
    pub probe: StudyProbe,
    /// `#SBATCH` options of the jobs of `study --dispatch slurm`.
    #[serde(default)]
    pub slurm: SlurmConfig,
}

fn one() -> usize {
    1
}

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    pub name: String,
    /// A partial run config merged over the base (tables merge key by key).
    #[serde(default)]
    pub overrides: toml::Table,
}

/// How each run is probed for the cross-model comparison.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StudyProbe {
    pub samples: usize,
    pub every_hours: i64,
    pub bootstrap: usize,
}

impl Default for StudyProbe {
    fn default() -> Self {
        Self {
            samples: 8,
            every_hours: 48,
            bootstrap: 200,
        }
    }
}

/// One run of a study, ready to execute.
#[derive(Debug, Clone)]
pub struct PlannedRun {
    pub name: String,
    pub config: RunConfig,
    pub dir: PathBuf,
}

/// Deep-merge `over` into `base` (tables merge, everything else replaces).
fn merge(base: &mut toml::Table, over: &toml::Table) {
    for (key, value) in over {
        match (base.get_mut(key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            _ => {
                base.insert(key.clone(), value.clone());
            }
        }
    }
}

/// `a.b.c = v` as the nested table `{a = {b = {c = v}}}`.
fn dotted(key: &str, value: toml::Value) -> toml::Table {
    let mut parts: Vec<&str> = key.split('.').collect();
    let last = parts.pop().unwrap_or(key);
    let mut table = toml::Table::new();
    table.insert(last.to_string(), value);
    for part in parts.into_iter().rev() {
        let mut outer = toml::Table::new();
        outer.insert(part.to_string(), toml::Value::Table(table));
        table = outer;
    }
    table
}

fn value_label(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl StudyConfig {
    pub fn load(path: &Path) -> Result<Self, StudyError> {
        let text = files::read_to_string(path)?;
        let config: Self = toml::from_str(&text).map_err(|e| StudyError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        config.slurm.validate(path)?;
        Ok(config)
    }

    /// The runs (explicit ones, then the grid's), each with its merged and validated run config.
    pub fn plan(&self, path: &Path, runs_root: &Path) -> Result<Vec<PlannedRun>, StudyError> {
        let folder = path.parent().unwrap_or(Path::new("."));
        let base_path = folder.join(&self.base);
        let base_text = files::read_to_string(&base_path)?;
        let base: toml::Table = toml::from_str(&base_text).map_err(|e| StudyError::Parse {
            path: base_path.clone(),
            message: e.to_string(),
        })?;
        let mut specs = self.runs.clone();
        let mut combos: Vec<(Vec<String>, toml::Table)> = vec![(Vec::new(), toml::Table::new())];
        for (key, values) in &self.grid {
            let mut next = Vec::new();
            for (labels, table) in &combos {
                for value in values {
                    let mut table = table.clone();
                    merge(&mut table, &dotted(key, value.clone()));
                    let mut labels = labels.clone();
                    labels.push(format!(
                        "{}-{}",
                        key.rsplit('.').next().unwrap_or(key),
                        value_label(value)
                    ));
                    next.push((labels, table));
                }
            }
            combos = next;
        }
        if !self.grid.is_empty() {
            specs.extend(combos.into_iter().map(|(labels, overrides)| RunSpec {
                name: labels.join("_"),
                overrides,
            }));
        }
        if specs.is_empty() {
            return Err(StudyError::Invalid {
                path: path.to_path_buf(),
                reason: "the study has no runs: add [[runs]] or a [grid]".into(),
            });
        }
        let mut planned = Vec::new();
        for spec in specs {
            if planned.iter().any(|p: &PlannedRun| p.name == spec.name) {
                return Err(StudyError::Invalid {
                    path: path.to_path_buf(),
                    reason: format!("two runs are named `{}`", spec.name),
                });
            }
            let mut table = base.clone();
            merge(&mut table, &spec.overrides);
            table.insert("name".into(), toml::Value::String(spec.name.clone()));
            let text = toml::to_string(&table).map_err(|e| StudyError::Parse {
                path: path.to_path_buf(),
                message: e.to_string(),
            })?;
            let config = RunConfig::parse(&text, path).map_err(|source| StudyError::RunConfig {
                path: path.to_path_buf(),
                run: spec.name.clone(),
                source,
            })?;
            planned.push(PlannedRun {
                dir: runs_root.join(&self.name).join(&spec.name),
                name: spec.name,
                config,
            });
        }
        Ok(planned)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = include_str!("../../tests/configs/tiny.toml");

    fn study(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tiny.toml"), BASE).unwrap();
        let path = dir.path().join("study.toml");
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn runs_and_grid_merge_over_the_base() {
        let (dir, path) = study(
            r#"
name = "s"
base = "tiny.toml"
[[runs]]
name = "plain"
[[runs]]
name = "shared"
overrides = { model = { processor = "shared" } }
[grid]
"model.num_layers" = [2, 4]
seed = [1, 2]
"#,
        );
        let config = StudyConfig::load(&path).unwrap();
        let runs = config.plan(&path, &dir.path().join("runs")).unwrap();
        let names: Vec<&str> = runs.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "plain",
                "shared",
                "num_layers-2_seed-1",
                "num_layers-2_seed-2",
                "num_layers-4_seed-1",
                "num_layers-4_seed-2"
            ]
        );
        assert_eq!(
            runs[1].config.model.processor,
            weatherlens_models::config::ProcessorKind::Shared
        );
        assert_eq!(
            runs[1].config.model.latent_size, 16,
            "untouched keys keep the base value"
        );
        assert_eq!(runs[5].config.model.num_layers, 4);
        assert_eq!(runs[5].config.seed, 2);
        assert_eq!(
            runs[5].config.data.windows.seed, 2,
            "the run seed drives the data order"
        );
        assert_eq!(runs[0].dir, dir.path().join("runs/s/plain"));
    }

    #[test]
    fn the_committed_configs_plan_and_validate() {
        let configs = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs");
        for study in ["study-demo.toml", "study-paper.toml"] {
            let path = configs.join(study);
            let runs = StudyConfig::load(&path)
                .unwrap()
                .plan(&path, Path::new("runs"))
                .unwrap();
            assert!(runs.len() >= 3, "{study}");
        }
        for run in ["demo", "gnn", "transformer", "shared", "selfloop", "paper"] {
            RunConfig::load(&configs.join(format!("{run}.toml"))).unwrap();
        }
    }

    #[test]
    fn a_bad_override_names_the_run_and_key() {
        let (dir, path) = study(
            r#"
name = "s"
base = "tiny.toml"
[[runs]]
name = "typo"
overrides = { model = { latnet = 3 } }
"#,
        );
        let err = StudyConfig::load(&path)
            .unwrap()
            .plan(&path, dir.path())
            .unwrap_err()
            .to_string();
        assert!(err.contains("typo") && err.contains("latnet"), "{err}");
    }
}
