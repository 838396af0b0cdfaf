//! Executing a study's runs: each run goes through the [`Stage`]s in order (train, evaluate, probe, controls =
//! the same probe at initialisation, analyze, jacobian), each stage the same function its subcommand calls
//! ([`crate::stages`]). A stage is done when its folder holds all its outputs ([`stages::is_complete`]: the
//! list of them written last, in a temporary folder renamed into place), so a re-run skips it; a failed run is
//! reported and the others go on. A run folder is locked by the process executing it.

use std::path::PathBuf;

use burn::prelude::Device;
use serde::{Deserialize, Serialize};
use weatherlens_models::fused::Kernels;
use weatherlens_models::lock::{FolderLock, Wait};
use weatherlens_training::checkpoint;
use weatherlens_training::restore::restore;
use weatherlens_training::run_state;
use weatherlens_training::trainer::{RUN_LOCK, TrainOptions};

use super::{PlannedRun, StudyProbe};
use crate::stages::jacobian::JacobianOptions;
use crate::stages::probe::CaptureOptions;
use crate::stages::{self, StageError};

/// The stages of one study run, in the order they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Train,
    Evaluate,
    Probe,
    /// The untrained control: the same probe of the architecture at initialisation (no training).
    Controls,
    Analyze,
    Jacobian,
}

impl Stage {
    /// The folder of the run holding this stage's outputs.
    pub fn folder(self) -> &'static str {
        match self {
            Stage::Train => "train",
            Stage::Evaluate => "evaluation",
            Stage::Probe => "probes",
            Stage::Controls => "untrained",
            Stage::Analyze => "analysis",
            Stage::Jacobian => "jacobian",
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self {
            Stage::Train => "train",
            Stage::Evaluate => "evaluate",
            Stage::Probe => "probe",
            Stage::Controls => "controls",
            Stage::Analyze => "analyze",
            Stage::Jacobian => "jacobian",
        };
        f.write_str(name)
    }
}

/// A stage that failed, with its error.
#[derive(Debug, thiserror::Error)]
#[error("{stage}: {error}")]
pub struct StageFailure {
    pub stage: Stage,
    #[source]
    pub error: Box<StageError>,
}

/// What happened to one run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunOutcome {
    pub name: String,
    pub dir: PathBuf,
    /// `None` when every stage succeeded; otherwise the failed stage and its error, in words.
    pub error: Option<String>,
    /// The stage that failed.
    pub failed_stage: Option<Stage>,
    /// Stages skipped because their outputs were already complete.
    pub skipped: Vec<Stage>,
}

/// How the stages of a study run.
#[derive(Debug, Clone)]
pub struct ExecuteOptions {
    pub probe: StudyProbe,
    pub kernels: Kernels,
    /// Show a progress bar while training.
    pub progress: bool,
}

/// Trains (or resumes, or skips), evaluates, probes, analyses and diagnoses one run, holding its folder's
/// lock (a second process on the same run gets an error naming the first).
pub fn execute(run: &PlannedRun, options: &ExecuteOptions, device: &Device) -> RunOutcome {
    let mut skipped = Vec::new();
    let result = lock_run(run).and_then(|_lock| stages_of(run, options, device, &mut skipped));
    let (error, failed_stage) = match result {
        Ok(()) => (None, None),
        Err(failure) => (Some(failure.to_string()), Some(failure.stage)),
    };
    RunOutcome {
        name: run.name.clone(),
        dir: run.dir.clone(),
        error,
        failed_stage,
        skipped,
    }
}

/// Locks the run's folder and removes the temporaries an interrupted process left in it.
fn lock_run(run: &PlannedRun) -> Result<FolderLock, StageFailure> {
    let fail = |error: StageError| StageFailure {
        stage: Stage::Train,
        error: Box::new(error),
    };
    let lock = FolderLock::acquire(&run.dir, RUN_LOCK, Wait::No)
        .map_err(|e| fail(StageError::Invalid(e.to_string())))?;
    weatherlens_models::files::remove_stale_temporaries(&run.dir).map_err(|e| fail(e.into()))?;
    Ok(lock)
}

fn stages_of(
    run: &PlannedRun,
    options: &ExecuteOptions,
    device: &Device,
    skipped: &mut Vec<Stage>,
) -> Result<(), StageFailure> {
    let at = |stage: Stage| {
        move |error: StageError| StageFailure {
            stage,
            error: Box::new(error),
        }
    };
    let folder = |stage: Stage| run.dir.join(stage.folder());
    let train_dir = folder(Stage::Train);
    let state = checkpoint::latest(&train_dir)
        .ok()
        .and_then(|c| run_state::load_state(&c).ok());
    let finished = state
        .as_ref()
        .is_some_and(|s| s.config == run.config && s.step == run.config.training.steps);
    let trained_now = !finished;
    if finished {
        skipped.push(Stage::Train);
    } else {
        let resume = state
            .as_ref()
            .is_some_and(|s| s.config == run.config)
            .then(|| train_dir.clone());
        if resume.is_none() && train_dir.exists() {
            // A run folder from another config: start over rather than mix checkpoints.
            std::fs::remove_dir_all(&train_dir).map_err(|e| {
                at(Stage::Train)(
                    weatherlens_models::files::FileError::new("removing", &train_dir, e).into(),
                )
            })?;
        }
        let progress =
            crate::progress::bar("train", run.config.training.steps as u64, options.progress);
        stages::train::train(
            &run.config,
            &TrainOptions {
                run_dir: train_dir.clone(),
                resume,
                progress,
                stop_at: None,
                kernels: options.kernels,
                accept_data_change: false,
            },
            device,
        )
        .map_err(at(Stage::Train))?;
    }
    // A later stage is redone when the model was (re)trained now, else reused when its folder is complete.
    let mut reuse = |stage: Stage| {
        let done = !trained_now && stages::is_complete(&folder(stage));
        if done {
            skipped.push(stage);
        }
        done
    };
    if !reuse(Stage::Evaluate) {
        stages::evaluate::evaluate(
            &train_dir,
            &folder(Stage::Evaluate),
            device,
            options.kernels,
        )
        .map_err(at(Stage::Evaluate))?;
    }
    let capture = CaptureOptions {
        samples: options.probe.samples,
        every_hours: options.probe.every_hours,
        ..CaptureOptions::default()
    };
    let probe_fresh = !reuse(Stage::Probe);
    let mut restored = None;
    if probe_fresh {
        let model =
            restore(&train_dir, device, options.kernels).map_err(|e| at(Stage::Probe)(e.into()))?;
        stages::probe::probe(&model, &capture, &folder(Stage::Probe)).map_err(at(Stage::Probe))?;
        restored = Some(model);
    }
    // The controls stage follows its recording: redone whenever the probe was.
    if probe_fresh || !reuse(Stage::Controls) {
        let model = match restored.take() {
            Some(model) => model,
            None => restore(&train_dir, device, options.kernels)
                .map_err(|e| at(Stage::Controls)(e.into()))?,
        };
        stages::probe::probe_untrained(&model, &capture, &folder(Stage::Controls))
            .map_err(at(Stage::Controls))?;
    }
    if probe_fresh || !reuse(Stage::Analyze) {
        stages::analyze::analyze(
            &folder(Stage::Probe),
            &folder(Stage::Analyze),
            options.probe.bootstrap,
        )
        .map_err(at(Stage::Analyze))?;
    }
    if !reuse(Stage::Jacobian) {
        let restored = restore(&train_dir, device, options.kernels)
            .map_err(|e| at(Stage::Jacobian)(e.into()))?;
        stages::jacobian::jacobian(
            &restored,
            &JacobianOptions::default(),
            &folder(Stage::Jacobian),
        )
        .map_err(at(Stage::Jacobian))?;
    }
    Ok(())
}

/// Executes every run, `parallel_runs` at a time, and returns their outcomes in plan order. Never stops at a
/// failed run.
pub fn execute_all(
    runs: &[PlannedRun],
    options: &ExecuteOptions,
    parallel_runs: usize,
    device: &Device,
) -> Vec<RunOutcome> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let outcomes = std::sync::Mutex::new(Vec::new());
    let options = ExecuteOptions {
        progress: options.progress && parallel_runs <= 1,
        ..options.clone()
    };
    std::thread::scope(|scope| {
        for _ in 0..parallel_runs.clamp(1, runs.len().max(1)) {
            scope.spawn(|| {
                loop {
                    let k = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some(run) = runs.get(k) else { break };
                    tracing::info!("study run `{}` ({} of {})", run.name, k + 1, runs.len());
                    let outcome = execute(run, &options, device);
                    if let Some(error) = &outcome.error {
                        tracing::error!("run `{}` failed: {error}", run.name);
                    }
                    outcomes
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push((k, outcome));
                }
            });
        }
    });
    let mut outcomes = outcomes.into_inner().unwrap_or_else(|p| p.into_inner());
    outcomes.sort_by_key(|(k, _)| *k);
    outcomes.into_iter().map(|(_, o)| o).collect()
}
