//! Checkpoints: `model.safetensors` + `optimizer.bpk` (burnpack) + `run.json`, one folder per step.
//!
//! A checkpoint folder is written under a temporary name and renamed into place, so a crash never leaves a
//! half-written checkpoint where a resume would find it. Its files are byte-for-byte the same for the same
//! weights and optimiser state (no hash-map order, no timestamps), and follow the umask like other outputs.
//! Loading checks every tensor's name, shape and dtype against the model the config builds before touching
//! the model, and every optimiser state tensor against the parameter it belongs to, so a stale, foreign or
//! corrupt file gives an error that names it instead of a panic or a silently wrong model.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use burn::module::{Module, ModuleMapper, ModuleVisitor, Param, ParamId};
use burn::optim::ModuleOptimizer;
use burn::prelude::*;
use burn::store::{ModuleSnapshot, SafetensorsStore};
use serde::Serialize;
use serde::de::DeserializeOwned;
use weatherlens_models::files::{AtomicDir, FileError};

pub const MODEL_FILE: &str = "model.safetensors";
pub const OPTIMIZER_FILE: &str = "optimizer.bpk";
pub const RUN_FILE: &str = "run.json";
const PREFIX: &str = "checkpoint-";

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error(transparent)]
    File(#[from] FileError),
    #[error("{path}: not a readable safetensors file ({reason})")]
    Corrupt { path: PathBuf, reason: String },
    #[error("{path}: does not fit the model the config builds: {reason}")]
    Mismatch { path: PathBuf, reason: String },
    #[error("{path}: invalid run.json: {source}")]
    RunJson {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: {reason}")]
    Store { path: PathBuf, reason: String },
    #[error("{path}: no checkpoint folder (`{PREFIX}NNNNNNNN`) found")]
    NoCheckpoint { path: PathBuf },
    #[error(
        "{path}: missing: {} holds {MODEL_FILE} but no {RUN_FILE} (the config, normalisation and step a checkpoint \
         needs); it is not a complete checkpoint folder",
        path.parent().map_or_else(String::new, |p| p.display().to_string())
    )]
    MissingRunJson { path: PathBuf },
    #[error("{path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CheckpointError + '_ {
    move |source| FileError::new("accessing", path, source).into()
}

/// Give every parameter an id from its position in the module (0, 1, 2, ...).
///
/// burn draws parameter ids at random, and the optimiser keys its state by id; with positional ids a model
/// rebuilt from the same config finds its optimiser state again on resume.
pub fn canonical_param_ids<M: Module>(model: M) -> M {
    struct Renumber(u64);
    impl ModuleMapper for Renumber {
        fn map_float<const D: usize>(&mut self, mut param: Param<Tensor<D>>) -> Param<Tensor<D>> {
            param.id = ParamId::from(self.0);
            self.0 += 1;
            param
        }
    }
    model.map(&mut Renumber(0))
}

/// Folder name of the checkpoint at `step`.
pub fn folder_name(step: usize) -> String {
    format!("{PREFIX}{step:08}")
}

/// Write a checkpoint of `model` (and `optimizer`) at `step` into `run_dir`, then keep only the newest
/// `keep_last` checkpoints. Returns the checkpoint folder.
pub fn save<M: Module + ModuleSnapshot, R: Serialize>(
    run_dir: &Path,
    step: usize,
    model: &M,
    optimizer: Option<&ModuleOptimizer>,
    run: &R,
    keep_last: usize,
) -> Result<PathBuf, CheckpointError> {
    let final_dir = run_dir.join(folder_name(step));
    let unit = AtomicDir::create(&final_dir)?;
    let tmp_dir = unit.path();
    {
        let model_path = tmp_dir.join(MODEL_FILE);
        let store_error = |path: &Path, reason: String| CheckpointError::Store {
            path: path.to_path_buf(),
            reason,
        };
        // One metadata entry: burn's default three sit in a hash map whose order changes from run to run.
        let mut store = SafetensorsStore::from_bytes(None)
            .clear_metadata()
            .metadata("producer", "weatherlens");
        model
            .save_into(&mut store)
            .map_err(|e| store_error(&model_path, e.to_string()))?;
        let bytes = store
            .get_bytes()
            .map_err(|e| store_error(&model_path, e.to_string()))?;
        fs::write(&model_path, bytes).map_err(io(&model_path))?;
        if let Some(optimizer) = optimizer {
            let path = tmp_dir.join(OPTIMIZER_FILE);
            let bytes = optimizer_bytes(optimizer).map_err(|reason| store_error(&path, reason))?;
            fs::write(&path, bytes).map_err(io(&path))?;
        }
        let run_path = tmp_dir.join(RUN_FILE);
        let json = serde_json::to_vec_pretty(run).map_err(|source| CheckpointError::RunJson {
            path: run_path.clone(),
            source,
        })?;
        fs::write(&run_path, json).map_err(io(&run_path))?;
    }
    unit.commit()?;
    prune(run_dir, keep_last)?;
    Ok(final_dir)
}

/// The optimiser state as burnpack bytes, its tensors in name order: burn lists them in the order of a hash
/// map, which differs between two runs of the same training.
fn optimizer_bytes(optimizer: &ModuleOptimizer) -> Result<Vec<u8>, String> {
    let reader = burn_pack::Reader::from_bytes(optimizer.into_bytes().map_err(|e| e.to_string())?)
        .map_err(|e| e.to_string())?;
    let metadata = reader.metadata().clone();
    let scalars = reader.scalars().clone();
    let mut tensors = reader.into_tensors().map_err(|e| e.to_string())?;
    tensors.sort_by(|a, b| a.name.cmp(&b.name));
    let mut writer = burn_pack::Writer::new(tensors);
    for (key, value) in &metadata {
        writer = writer.with_metadata(key, value);
    }
    for (key, value) in &scalars {
        writer = writer.with_scalar(key, *value);
    }
    let bytes = writer.into_bytes().map_err(|e| e.to_string())?;
    Ok(bytes.to_vec())
}

/// Checkpoint folders in `run_dir`, oldest first, with their steps.
pub fn list(run_dir: &Path) -> Result<Vec<(usize, PathBuf)>, CheckpointError> {
    let mut found = Vec::new();
    for entry in fs::read_dir(run_dir).map_err(io(run_dir))? {
        let entry = entry.map_err(io(run_dir))?;
        let name = entry.file_name();
        let Some(step) = name
            .to_str()
            .and_then(|n| n.strip_prefix(PREFIX))
            .and_then(|s| s.parse::<usize>().ok())
        else {
            continue;
        };
        if entry.path().is_dir() {
            found.push((step, entry.path()));
        }
    }
    found.sort();
    Ok(found)
}

/// The newest checkpoint in `run_dir`; `dir` itself when it already is a checkpoint folder.
pub fn latest(dir: &Path) -> Result<PathBuf, CheckpointError> {
    if dir.join(RUN_FILE).is_file() {
        return Ok(dir.to_path_buf());
    }
    if dir.join(MODEL_FILE).is_file() {
        return Err(CheckpointError::MissingRunJson {
            path: dir.join(RUN_FILE),
        });
    }
    list(dir)?
        .pop()
        .map(|(_, path)| path)
        .ok_or_else(|| CheckpointError::NoCheckpoint {
            path: dir.to_path_buf(),
        })
}

fn prune(run_dir: &Path, keep_last: usize) -> Result<(), CheckpointError> {
    let all = list(run_dir)?;
    let excess = all.len().saturating_sub(keep_last.max(1));
    for (_, path) in all.into_iter().take(excess) {
        fs::remove_dir_all(&path).map_err(io(&path))?;
    }
    Ok(())
}

/// Read `run.json` of a checkpoint folder.
///
/// run.json files written before a model option existed are read with the value their model was trained
/// with ([`upgrade_run_json`]).
pub fn load_run<R: DeserializeOwned>(checkpoint: &Path) -> Result<R, CheckpointError> {
    let path = checkpoint.join(RUN_FILE);
    let bytes = fs::read(&path).map_err(io(&path))?;
    let mut json: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|source| CheckpointError::RunJson {
            path: path.clone(),
            source,
        })?;
    upgrade_run_json(&mut json);
    serde_json::from_value(json).map_err(|source| CheckpointError::RunJson { path, source })
}

/// Fills in model options a run.json predates with the behaviour its model was trained with: a `[model]`
/// without `aggregation` summed the updated edges (`updated_edges`), WeatherLens's rule before GraphCast's
/// became the default.
pub fn upgrade_run_json(json: &mut serde_json::Value) {
    if let Some(model) = json
        .get_mut("config")
        .and_then(|config| config.get_mut("model"))
        .and_then(|model| model.as_object_mut())
    {
        model
            .entry("aggregation")
            .or_insert_with(|| serde_json::Value::from("updated_edges"));
    }
}

/// Load the weights of a checkpoint folder into `model` (built from the same config), after checking that
/// the file holds exactly the model's tensors with the model's shapes.
pub fn load_model<M: Module + ModuleSnapshot>(
    checkpoint: &Path,
    mut model: M,
) -> Result<M, CheckpointError> {
    let path = checkpoint.join(MODEL_FILE);
    let bytes = fs::read(&path).map_err(io(&path))?;
    check_tensors(&path, &bytes, &model)?;
    let mut store = SafetensorsStore::from_bytes(Some(bytes));
    let result = model
        .load_from(&mut store)
        .map_err(|e| CheckpointError::Store {
            path: path.clone(),
            reason: e.to_string(),
        })?;
    if !result.errors.is_empty() || !result.missing.is_empty() {
        return Err(CheckpointError::Mismatch {
            path,
            reason: format!("missing {:?}, errors {:?}", result.missing, result.errors),
        });
    }
    Ok(model)
}

/// Load the optimiser state saved beside the weights, after checking that every state tensor belongs to a
/// parameter of `model` (ids must be canonical: [`canonical_param_ids`]) and has that parameter's shape: a
/// state file of another model (another latent size, another depth) is an error naming the file, not a panic
/// in the next optimiser step.
pub fn load_optimizer<M: Module>(
    checkpoint: &Path,
    optimizer: ModuleOptimizer,
    model: &M,
) -> Result<ModuleOptimizer, CheckpointError> {
    let path = checkpoint.join(OPTIMIZER_FILE);
    if !path.is_file() {
        return Err(FileError::new(
            "reading",
            &path,
            std::io::Error::new(std::io::ErrorKind::NotFound, "optimizer state missing"),
        )
        .into());
    }
    let bytes = burn_pack::Bytes::from_bytes_vec(fs::read(&path).map_err(io(&path))?);
    check_optimizer_state(&path, bytes.clone(), model)?;
    optimizer
        .from_bytes(bytes)
        .map_err(|e| CheckpointError::Store {
            path,
            reason: e.to_string(),
        })
}

/// Parameter id -> shape of every float parameter of `model`.
fn parameter_shapes<M: Module>(model: &M) -> BTreeMap<u64, Vec<usize>> {
    struct Shapes(BTreeMap<u64, Vec<usize>>);
    impl ModuleVisitor for Shapes {
        fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
            self.0.insert(param.id.val(), param.shape().to_vec());
        }
    }
    let mut shapes = Shapes(BTreeMap::new());
    model.visit(&mut shapes);
    shapes.0
}

/// Compare an optimiser state file's tensors (`<param id>.<field>`, each the shape of its parameter) and its
/// recorded parameter ranks with the parameters of `model`.
fn check_optimizer_state<M: Module>(
    path: &Path,
    bytes: burn_pack::Bytes,
    model: &M,
) -> Result<(), CheckpointError> {
    let corrupt = |reason: String| CheckpointError::Corrupt {
        path: path.to_path_buf(),
        reason,
    };
    let reader = burn_pack::Reader::from_bytes(bytes)
        .map_err(|e| corrupt(format!("not a burnpack optimiser state: {e}")))?;
    let shapes = parameter_shapes(model);
    let mut problems = Vec::new();
    for (name, value) in reader.scalars() {
        let Some((id, "__rank")) = name.split_once('.') else {
            continue;
        };
        let rank = usize::try_from(*value).ok();
        match id.parse::<u64>().ok().and_then(|id| shapes.get(&id)) {
            None => problems.push(format!(
                "state for parameter {id}, which the model does not have"
            )),
            Some(shape) if rank != Some(shape.len()) => problems.push(format!(
                "parameter {id} has rank {}, the state was saved for rank {rank:?}",
                shape.len()
            )),
            Some(_) => {}
        }
    }
    let tensors = reader
        .into_tensors()
        .map_err(|e| corrupt(format!("reading its tensors: {e}")))?;
    for tensor in &tensors {
        let shape = tensor.shape.to_vec();
        match tensor.param_id.and_then(|id| shapes.get(&id).map(|s| (id, s))) {
            None => problems.push(format!(
                "state tensor `{}` belongs to no parameter of the model",
                tensor.name
            )),
            Some((id, expected)) if *expected != shape => problems.push(format!(
                "state tensor `{}` has shape {shape:?}, parameter {id} of the model has {expected:?}",
                tensor.name
            )),
            Some(_) => {}
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    let count = problems.len();
    problems.truncate(3);
    Err(CheckpointError::Mismatch {
        path: path.to_path_buf(),
        reason: format!(
            "the optimiser state is not for this model: {}{}",
            problems.join("; "),
            if count > 3 {
                format!(" (and {} more)", count - 3)
            } else {
                String::new()
            }
        ),
    })
}

/// Compare the file's tensor names, shapes and dtypes with the model's.
fn check_tensors<M: ModuleSnapshot>(
    path: &Path,
    bytes: &[u8],
    model: &M,
) -> Result<(), CheckpointError> {
    let file =
        safetensors::SafeTensors::deserialize(bytes).map_err(|e| CheckpointError::Corrupt {
            path: path.to_path_buf(),
            reason: e.to_string(),
        })?;
    let in_file: BTreeMap<String, Vec<usize>> = file
        .tensors()
        .into_iter()
        .map(|(name, view)| (name, view.shape().to_vec()))
        .collect();
    let mut problems = Vec::new();
    let mut expected_names = Vec::new();
    for tensor in model.collect(None, None, false) {
        let shape = tensor.shape.to_vec();
        match in_file.get(&tensor.name) {
            None => problems.push(format!("tensor `{}` is missing", tensor.name)),
            Some(found) if *found != shape => problems.push(format!(
                "tensor `{}` has shape {found:?}, the model needs {shape:?}",
                tensor.name
            )),
            Some(_) => {}
        }
        expected_names.push(tensor.name);
    }
    for name in in_file.keys() {
        if !expected_names.contains(name) {
            problems.push(format!("unexpected tensor `{name}`"));
        }
    }
    for (name, view) in file.tensors() {
        if view.dtype() != safetensors::Dtype::F32 {
            problems.push(format!(
                "tensor `{name}` is {:?}, expected F32",
                view.dtype()
            ));
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        problems.truncate(5);
        Err(CheckpointError::Mismatch {
            path: path.to_path_buf(),
            reason: problems.join("; "),
        })
    }
}

#[cfg(test)]
mod tests {
    use burn::nn::{Linear, LinearConfig};
    use burn::optim::{AdamConfig, GradientsParams};

    use super::*;

    #[derive(Module, Debug)]
    struct Tiny {
        a: Linear,
        b: Linear,
    }

    fn tiny(width: usize, device: &Device) -> Tiny {
        canonical_param_ids(Tiny {
            a: LinearConfig::new(3, width).init(device),
            b: LinearConfig::new(width, 2).init(device),
        })
    }

    fn weights(model: &Tiny) -> Vec<f32> {
        model
            .a
            .weight
            .val()
            .into_data()
            .try_to_vec::<f32>()
            .unwrap()
    }

    #[test]
    fn round_trip_is_exact_and_old_checkpoints_are_pruned() {
        let device = Device::flex();
        let dir = tempfile::tempdir().unwrap();
        let model = tiny(4, &device);
        for step in [10, 20, 30] {
            save(
                dir.path(),
                step,
                &model,
                None,
                &serde_json::json!({"step": step}),
                2,
            )
            .unwrap();
        }
        let kept: Vec<usize> = list(dir.path())
            .unwrap()
            .into_iter()
            .map(|(s, _)| s)
            .collect();
        assert_eq!(kept, vec![20, 30]);
        let newest = latest(dir.path()).unwrap();
        let run: serde_json::Value = load_run(&newest).unwrap();
        assert_eq!(run["step"], 30);
        let loaded = load_model(&newest, tiny(4, &device)).unwrap();
        assert_eq!(weights(&loaded), weights(&model));
        // No temporary folder is left behind.
        assert!(
            fs::read_dir(dir.path()).unwrap().all(|e| !e
                .unwrap()
                .file_name()
                .to_string_lossy()
                .ends_with(".tmp"))
        );
    }

    #[test]
    fn wrong_shape_missing_and_truncated_files_are_clear_errors() {
        let device = Device::flex();
        let dir = tempfile::tempdir().unwrap();
        let saved = save(dir.path(), 1, &tiny(4, &device), None, &0, 3).unwrap();
        let err = load_model(&saved, tiny(5, &device))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("model.safetensors") && err.contains("shape"),
            "{err}"
        );

        let bytes = fs::read(saved.join(MODEL_FILE)).unwrap();
        fs::write(saved.join(MODEL_FILE), &bytes[..bytes.len() / 2]).unwrap();
        let err = load_model(&saved, tiny(4, &device)).unwrap_err();
        assert!(matches!(err, CheckpointError::Corrupt { .. }), "{err}");

        fs::remove_file(saved.join(MODEL_FILE)).unwrap();
        let err = load_model(&saved, tiny(4, &device))
            .unwrap_err()
            .to_string();
        assert!(err.contains("model.safetensors"), "{err}");
        assert!(matches!(
            latest(&dir.path().join("nothing-here")),
            Err(CheckpointError::File(_))
        ));
    }

    #[test]
    fn optimizer_state_survives_a_rebuild_of_the_model() {
        let device = Device::flex().autodiff();
        let dir = tempfile::tempdir().unwrap();
        let x = Tensor::<2>::ones([5, 3], &device);
        let step = |model: Tiny, optim: &mut ModuleOptimizer| {
            let loss = model
                .b
                .forward(model.a.forward(x.clone()))
                .powi_scalar(2)
                .mean();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            optim.step(1e-2, model, grads)
        };
        let mut optim = AdamConfig::new().init();
        let mut model = step(tiny(4, &device), &mut optim);
        let saved = save(dir.path(), 1, &model, Some(&optim), &0, 3).unwrap();
        // Continue uninterrupted ...
        model = step(model, &mut optim);
        // ... and from the checkpoint with a freshly built model and optimiser.
        let resumed = load_model(&saved, tiny(4, &device)).unwrap();
        let mut resumed_optim = load_optimizer(&saved, AdamConfig::new().init(), &resumed).unwrap();
        let resumed = step(resumed, &mut resumed_optim);
        assert_eq!(weights(&resumed), weights(&model));
    }

    #[test]
    fn a_run_json_without_aggregation_keeps_the_old_rule() {
        let mut old = serde_json::json!({"config": {"model": {"latent_size": 8}}, "step": 3});
        upgrade_run_json(&mut old);
        assert_eq!(old["config"]["model"]["aggregation"], "updated_edges");
        let mut new = serde_json::json!({"config": {"model": {"aggregation": "messages"}}});
        upgrade_run_json(&mut new);
        assert_eq!(new["config"]["model"]["aggregation"], "messages");
    }
}
