//! Reading a checkpoint's `run.json` back, and the one rule for resuming a run from it.
//!
//! Every `run.json` is validated before use: its config, its normalisation against its data channels (one
//! statistic per channel, in order; every std positive and finite), its grid. An error names the file and
//! the problem.
//!
//! Resuming (`train --resume`), decided before anything is touched:
//! - a change of the model, the seed, the data source or any data setting refuses;
//! - changed statistics of the same data refuse unless `--accept-data-change` (checked after the data is read);
//! - a change of the optimiser, the schedule or the evaluation settings is accepted with a warning and
//!   recorded in `run.json` (`config_changes`), each with the step it took effect.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::checkpoint::{self, CheckpointError, RUN_FILE};
use crate::config::RunConfig;
use crate::trainer::RunState;

/// A setting changed on resume: `key` (dotted, e.g. `training.lr`) went `from` -> `to` at update `step`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConfigChange {
    pub step: usize,
    pub key: String,
    pub from: serde_json::Value,
    pub to: serde_json::Value,
}

/// Reads `run.json` of a checkpoint folder and checks that it can be used (see the module documentation).
pub fn load_state(checkpoint: &Path) -> Result<RunState, CheckpointError> {
    let state: RunState = checkpoint::load_run(checkpoint)?;
    validate(&state, &checkpoint.join(RUN_FILE))?;
    Ok(state)
}

/// Checks a run state read from `path` against itself: what later stages rely on.
pub fn validate(state: &RunState, path: &Path) -> Result<(), CheckpointError> {
    let invalid = |reason: String| CheckpointError::Invalid {
        path: path.to_path_buf(),
        reason,
    };
    state
        .config
        .validate(path)
        .map_err(|e| invalid(format!("config: {}", strip_path(&e.to_string(), path))))?;
    let data: Vec<&str> = state
        .data
        .channels
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    let stats: Vec<&str> = state
        .normalisation
        .channels
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    if data != stats {
        return Err(invalid(format!(
            "normalisation has {} channels ({}) but the data has {} ({}): one statistic per data channel, in order",
            stats.len(),
            stats.join(", "),
            data.len(),
            data.join(", ")
        )));
    }
    state
        .normalisation
        .validate()
        .map_err(|e| invalid(e.to_string()))?;
    if state.normalisation.dynamic_count() == 0 {
        return Err(invalid(
            "normalisation: every channel is static; the model predicts nothing".into(),
        ));
    }
    if state.data.lat.len() < 2 || state.data.lon.len() < 2 {
        return Err(invalid(format!(
            "data: a grid of {} x {} points",
            state.data.lat.len(),
            state.data.lon.len()
        )));
    }
    if let Some(change) = state.config_changes.iter().find(|c| c.step > state.step) {
        return Err(invalid(format!(
            "config_changes: `{}` changed at step {}, after the checkpoint's step {}",
            change.key, change.step, state.step
        )));
    }
    Ok(())
}

/// The settings that changed from `previous` (the checkpoint's config) to `current`, as changes taking effect
/// at `step`; `Err` with the reason when the change forbids resuming (model, seed or data).
pub fn resume_changes(
    previous: &RunConfig,
    current: &RunConfig,
    step: usize,
) -> Result<Vec<ConfigChange>, String> {
    let mut changes = Vec::new();
    diff(
        "",
        &to_json(previous),
        &to_json(current),
        &mut |key, from, to| {
            changes.push(ConfigChange {
                step,
                key,
                from: from.clone(),
                to: to.clone(),
            })
        },
    );
    let refused: Vec<String> = changes
        .iter()
        .filter(|c| {
            c.key == "seed"
                || c.key.starts_with("model.")
                || c.key == "model"
                || c.key.starts_with("data.")
                || c.key == "data"
        })
        .map(|c| format!("{} {} -> {}", c.key, c.from, c.to))
        .collect();
    if !refused.is_empty() {
        return Err(format!(
            "the model, the seed and the data must stay as the checkpoint has them; changed: {}. Start a new \
             run (another --out) for another model or data",
            refused.join(", ")
        ));
    }
    Ok(changes)
}

fn to_json(config: &RunConfig) -> serde_json::Value {
    serde_json::to_value(config).unwrap_or(serde_json::Value::Null)
}

/// Calls `changed(dotted key, old, new)` for every leaf that differs between `a` and `b`.
fn diff(
    prefix: &str,
    a: &serde_json::Value,
    b: &serde_json::Value,
    changed: &mut dyn FnMut(String, &serde_json::Value, &serde_json::Value),
) {
    use serde_json::Value;
    let key = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match (a, b) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, va) in a {
                diff(&key(k), va, b.get(k).unwrap_or(&Value::Null), changed);
            }
            for (k, vb) in b {
                if !a.contains_key(k) {
                    changed(key(k), &Value::Null, vb);
                }
            }
        }
        _ if a != b => changed(prefix.to_string(), a, b),
        _ => {}
    }
}

/// A config error already names the file it came from; inside a run.json error it is named once.
fn strip_path(message: &str, path: &Path) -> String {
    message
        .strip_prefix(&format!("{}: ", path.display()))
        .unwrap_or(message)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(edit: impl Fn(&mut RunConfig)) -> RunConfig {
        let mut config = RunConfig::parse(
            include_str!("../../tests/configs/tiny.toml"),
            Path::new("tiny.toml"),
        )
        .unwrap();
        edit(&mut config);
        config
    }

    #[test]
    fn optimiser_and_schedule_changes_are_recorded_with_their_step() {
        let old = config(|_| {});
        let new = config(|c| {
            c.training.lr = 1e-4;
            c.training.weight_decay = 0.0;
            c.training.rollout_start = 2;
        });
        let changes = resume_changes(&old, &new, 8).unwrap();
        let keys: Vec<&str> = changes.iter().map(|c| c.key.as_str()).collect();
        // In the order of the config's fields.
        assert_eq!(
            keys,
            [
                "training.lr",
                "training.weight_decay",
                "training.rollout_start"
            ]
        );
        assert!(changes.iter().all(|c| c.step == 8));
        assert_eq!(changes[0].from, serde_json::json!(3e-3));
        assert_eq!(changes[0].to, serde_json::json!(1e-4));
        assert!(resume_changes(&old, &old, 8).unwrap().is_empty());
    }

    #[test]
    fn model_seed_and_data_changes_refuse() {
        let old = config(|_| {});
        for (edit, key) in [
            (
                Box::new(|c: &mut RunConfig| c.model.latent_size = 8)
                    as Box<dyn Fn(&mut RunConfig)>,
                "model.latent_size",
            ),
            (Box::new(|c: &mut RunConfig| c.seed = 8), "seed"),
            (
                Box::new(|c: &mut RunConfig| c.data.synthetic.days = 30.0),
                "data.synthetic.days",
            ),
        ] {
            let reason = resume_changes(&old, &config(edit), 4).unwrap_err();
            assert!(reason.contains(key), "{reason}");
        }
    }
}
