//! The run config: one TOML file names the data, the model, the training schedule and the evaluation, plus
//! the one seed that fixes data order and initialisation. Unknown keys are errors that name the key and file.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use weatherlens_models::config::ModelConfig;

use crate::atmosphere::AtmosphereConfig;
use crate::dataset::VariableSelection;
use crate::schedule::{LrSchedule, RolloutCurriculum};
use crate::windows::WindowConfig;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {message}")]
    Parse { path: PathBuf, message: String },
    #[error("{path}: `{key}` {reason}")]
    Invalid {
        path: PathBuf,
        key: String,
        reason: String,
    },
}

/// A whole run: `weatherlens train --config FILE`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// Names the run folder (`runs/<name>`) and the model in reports.
    pub name: String,
    /// The one seed: weight initialisation and the order of training samples.
    pub seed: u64,
    pub data: DataConfig,
    #[serde(default)]
    pub model: ModelConfig,
    pub training: TrainingConfig,
    #[serde(default)]
    pub evaluation: EvaluationConfig,
}

/// Where the fields come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataSource {
    /// The built-in shallow-water atmosphere, generated into `path` when absent.
    Synthetic,
    /// Existing ERA5 / WeatherBench files at `path`: a NetCDF file (NetCDF-4 or netCDF-3), a folder of `.nc`
    /// files forming one series, or a Zarr store.
    Netcdf,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DataConfig {
    pub source: DataSource,
    /// A NetCDF file or a folder of them, relative to the working directory.
    pub path: PathBuf,
    /// Variables and levels to read; empty = every gridded variable in the files.
    #[serde(default)]
    pub variables: Vec<VariableSelection>,
    /// The ensemble member to read from files with a member axis (`number`), matched against its values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<i64>,
    /// Loss weight per channel name (e.g. `z500 = 1.0`); channels not named weigh 1.
    #[serde(default)]
    pub channel_weights: BTreeMap<String, f64>,
    /// Sample windows and the train / val / test split. Its `seed` is ignored: the run's `seed` is used.
    pub windows: WindowConfig,
    /// The built-in atmosphere (source = "synthetic"): its settings and how many days to simulate.
    #[serde(default)]
    pub synthetic: SyntheticConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SyntheticConfig {
    /// Days of 6-hourly output after spin-up.
    pub days: f64,
    pub atmosphere: AtmosphereConfig,
}

impl Default for SyntheticConfig {
    fn default() -> Self {
        Self {
            days: 730.0,
            atmosphere: AtmosphereConfig::default(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainingConfig {
    /// Optimiser updates in total.
    pub steps: usize,
    /// Peak learning rate, reached after `warmup_steps` (GraphCast: 1e-3).
    pub lr: f64,
    pub final_lr: f64,
    pub warmup_steps: usize,
    /// AdamW decoupled weight decay (GraphCast: 0.1).
    pub weight_decay: f64,
    /// Global gradient-norm clip (GraphCast: 32).
    pub grad_clip: f64,
    /// Autoregressive steps trained through: 1 until `rollout_start`, then one more every `rollout_every`
    /// updates, up to `data.windows.lead_steps`.
    pub rollout_start: usize,
    pub rollout_every: usize,
    /// Validation loss every this many updates (0 = only at the end), over this many batches.
    pub val_every: usize,
    pub val_batches: usize,
    /// Checkpoint every this many updates (and always at the end); keep the newest `keep_last`.
    pub checkpoint_every: usize,
    pub keep_last: usize,
    /// Data-parallel training: each batch is split in row shards, one per device, and their gradients are
    /// summed into one update ([`crate::parallel`]). Empty (the default) = the one device of `--device`.
    /// Changes nothing but round-off: a run may be resumed on other devices.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceName>,
}

impl Default for TrainingConfig {
    fn default() -> Self {
        Self {
            steps: 1000,
            lr: 1e-3,
            final_lr: 1e-5,
            warmup_steps: 50,
            weight_decay: 0.1,
            grad_clip: 32.0,
            rollout_start: usize::MAX,
            rollout_every: 100,
            val_every: 100,
            val_batches: 8,
            checkpoint_every: 250,
            keep_last: 3,
            devices: Vec::new(),
        }
    }
}

/// A compute device as a config or the command line names it: `flex` (the CPU), `wgpu` (the best adapter),
/// `wgpu:N` (the N-th discrete GPU), `wgpu:cpu` (a CPU adapter such as Mesa's lavapipe), `cuda` / `cuda:N`.
/// Which of them can be opened depends on the backends the binary was built with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DeviceName {
    Flex,
    /// `None`: the default adapter.
    Wgpu(Option<usize>),
    WgpuCpu,
    Cuda(usize),
}

impl std::str::FromStr for DeviceName {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        let index = |i: &str| {
            i.parse::<usize>()
                .map_err(|_| format!("`{name}`: `{i}` is not a device index"))
        };
        match name.split_once(':') {
            None if name == "flex" => Ok(DeviceName::Flex),
            None if name == "wgpu" => Ok(DeviceName::Wgpu(None)),
            None if name == "cuda" => Ok(DeviceName::Cuda(0)),
            Some(("wgpu", "cpu")) => Ok(DeviceName::WgpuCpu),
            Some(("wgpu", i)) => Ok(DeviceName::Wgpu(Some(index(i)?))),
            Some(("cuda", i)) => Ok(DeviceName::Cuda(index(i)?)),
            _ => Err(format!(
                "unknown device `{name}`: expected flex, wgpu, wgpu:N, wgpu:cpu, cuda or cuda:N"
            )),
        }
    }
}

impl TryFrom<String> for DeviceName {
    type Error = String;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        name.parse()
    }
}

impl From<DeviceName> for String {
    fn from(name: DeviceName) -> Self {
        name.to_string()
    }
}

impl std::fmt::Display for DeviceName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceName::Flex => f.write_str("flex"),
            DeviceName::Wgpu(None) => f.write_str("wgpu"),
            DeviceName::Wgpu(Some(i)) => write!(f, "wgpu:{i}"),
            DeviceName::WgpuCpu => f.write_str("wgpu:cpu"),
            DeviceName::Cuda(i) => write!(f, "cuda:{i}"),
        }
    }
}

impl TrainingConfig {
    pub fn lr_schedule(&self) -> LrSchedule {
        LrSchedule {
            peak: self.lr,
            final_lr: self.final_lr,
            warmup_steps: self.warmup_steps,
            total_steps: self.steps,
        }
    }

    pub fn curriculum(&self, max_steps: usize) -> RolloutCurriculum {
        RolloutCurriculum {
            start: self.rollout_start,
            every: self.rollout_every,
            max_steps,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvaluationConfig {
    /// Longest forecast lead, hours (WeatherBench scores day 3 and day 5).
    pub max_lead_hours: i64,
    /// Hours between successive forecast initial times in the test split.
    pub init_every_hours: i64,
    /// At most this many forecast cases (0 = all).
    pub max_cases: usize,
    /// Channel whose RMSE is the headline (the Z500 analogue).
    pub headline_channel: String,
}

impl Default for EvaluationConfig {
    fn default() -> Self {
        Self {
            max_lead_hours: 120,
            init_every_hours: 24,
            max_cases: 0,
            headline_channel: "z500".to_string(),
        }
    }
}

impl RunConfig {
    /// Read and check a TOML run config.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text, path)
    }

    /// Parse TOML `text` (`path` names it in errors) and validate it.
    pub fn parse(text: &str, path: &Path) -> Result<Self, ConfigError> {
        let mut config: RunConfig = toml::from_str(text).map_err(|e| ConfigError::Parse {
            path: path.to_path_buf(),
            message: e.to_string().trim_end().to_string(),
        })?;
        config.data.windows.seed = config.seed;
        config.validate(path)?;
        Ok(config)
    }

    /// Checks every value a later stage relies on; errors name `path` and the key.
    pub fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let invalid = |key: &str, reason: &str| ConfigError::Invalid {
            path: path.to_path_buf(),
            key: key.to_string(),
            reason: reason.to_string(),
        };
        self.model
            .validate()
            .map_err(|(key, reason)| invalid(&key, &reason))?;
        let t = &self.training;
        if t.steps == 0 {
            return Err(invalid("training.steps", "must be positive"));
        }
        if !(t.lr.is_finite() && t.lr > 0.0) {
            return Err(invalid("training.lr", "must be a positive number"));
        }
        if !(t.grad_clip.is_finite() && t.grad_clip > 0.0) {
            return Err(invalid("training.grad_clip", "must be a positive number"));
        }
        if self.data.windows.batch_size == 0 {
            return Err(invalid("data.windows.batch_size", "must be positive"));
        }
        for (name, w) in &self.data.channel_weights {
            if !(w.is_finite() && *w >= 0.0) {
                return Err(invalid(
                    &format!("data.channel_weights.{name}"),
                    "must be a non-negative number",
                ));
            }
        }
        let e = &self.evaluation;
        if e.max_lead_hours <= 0 || e.init_every_hours <= 0 {
            return Err(invalid(
                "evaluation",
                "max_lead_hours and init_every_hours must be positive",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) const MINIMAL: &str = r#"
name = "t"
seed = 1
[data]
source = "synthetic"
path = "data/x"
[data.windows]
train = { start = "2000-01-01", end = "2000-02-01" }
val = { start = "2000-02-01", end = "2000-02-10" }
test = { start = "2000-02-10", end = "2000-03-01" }
[training]
steps = 10
"#;

    fn parse(text: &str) -> Result<RunConfig, ConfigError> {
        RunConfig::parse(text, Path::new("configs/x.toml"))
    }

    #[test]
    fn minimal_config_gets_defaults_and_the_run_seed() {
        let config = parse(MINIMAL).unwrap();
        assert_eq!(config.data.windows.seed, 1);
        assert_eq!(config.model, ModelConfig::default());
        assert_eq!(config.training.grad_clip, 32.0);
    }

    #[test]
    fn unknown_key_names_key_and_file() {
        let err = parse(&MINIMAL.replace("steps = 10", "steps = 10\nstpes = 3"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("configs/x.toml") && err.contains("stpes"),
            "{err}"
        );
        let err = parse(&format!("{MINIMAL}\n[model]\nlatnet = 3\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("latnet"), "{err}");
    }

    #[test]
    fn wrong_type_and_bad_values_are_errors() {
        let err = parse(&MINIMAL.replace("steps = 10", "steps = \"ten\""))
            .unwrap_err()
            .to_string();
        assert!(err.contains("steps"), "{err}");
        let err = parse(&format!("{MINIMAL}\n[model]\nlatent_size = 0\n"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("model.latent_size"), "{err}");
    }

    #[test]
    fn an_ensemble_member_is_chosen_in_the_data_table() {
        let config =
            parse(&MINIMAL.replace("path = \"data/x\"", "path = \"data/x\"\nmember = 2")).unwrap();
        assert_eq!(config.data.member, Some(2));
        assert_eq!(parse(MINIMAL).unwrap().data.member, None);
        // Not written when absent, so run.json of runs without one is unchanged.
        let text = serde_json::to_string(&parse(MINIMAL).unwrap().data).unwrap();
        assert!(!text.contains("member"), "{text}");
    }

    #[test]
    fn devices_parse_print_and_name_a_bad_entry() {
        assert!(parse(MINIMAL).unwrap().training.devices.is_empty());
        let config = parse(&MINIMAL.replace(
            "steps = 10",
            "steps = 10\ndevices = [\"flex\", \"wgpu\", \"wgpu:1\", \"wgpu:cpu\", \"cuda\", \"cuda:3\"]",
        ))
        .unwrap();
        use DeviceName::*;
        let expected = [Flex, Wgpu(None), Wgpu(Some(1)), WgpuCpu, Cuda(0), Cuda(3)];
        assert_eq!(config.training.devices, expected);
        let names: Vec<String> = expected.iter().map(ToString::to_string).collect();
        assert_eq!(
            names,
            ["flex", "wgpu", "wgpu:1", "wgpu:cpu", "cuda:0", "cuda:3"]
        );
        for name in &names {
            assert_eq!(name.parse::<DeviceName>().unwrap().to_string(), *name);
        }
        // A config without devices serialises as before (old checkpoints' run.json compare equal).
        assert!(
            !toml::to_string(&parse(MINIMAL).unwrap())
                .unwrap()
                .contains("devices")
        );
        let err = parse(&MINIMAL.replace("steps = 10", "steps = 10\ndevices = [\"gpu\"]"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("configs/x.toml") && err.contains("unknown device `gpu`"),
            "{err}"
        );
        let err = parse(&MINIMAL.replace("steps = 10", "steps = 10\ndevices = [\"cuda:x\"]"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`x` is not a device index"), "{err}");
    }

    #[test]
    fn missing_file_is_an_error_naming_it() {
        let err = RunConfig::load(Path::new("no/such/config.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("no/such/config.toml"), "{err}");
    }
}
