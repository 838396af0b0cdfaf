//! The training loop: GraphCast's objective (normalised residuals, cos-lat and channel weights), AdamW with
//! warm-up + cosine decay and gradient clipping, an autoregressive rollout curriculum, validation, metrics
//! (`metrics.csv`, `metrics.jsonl`), checkpoints, and resume.
//!
//! Reproducibility: the seed fixes the initial weights and the sample order of every epoch, and batch `b` of
//! epoch `e` depends on nothing else, so a resumed run replays exactly the batches the uninterrupted run saw.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use burn::grad_clipping::GradientClippingConfig;
use burn::optim::{AdamWConfig, GradientsParams, ModuleOptimizer};
use burn::prelude::*;
use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};
use weatherlens_models::files::{self, FileError};
use weatherlens_models::fused::Kernels;
use weatherlens_models::graph::{GraphError, ModelGraph};
use weatherlens_models::grid::{GridError, LatLonGrid};
use weatherlens_models::hooks::Hooks;
use weatherlens_models::lock::{FolderLock, LockError, Wait};
use weatherlens_models::model::WeatherModel;
use weatherlens_models::seed::seeded;

use crate::checkpoint::{self, CheckpointError};
use crate::config::RunConfig;
use crate::data::{self, DataError};
use crate::dataset::{Channel, Dataset, DatasetError, iso8601, parse_iso8601_hours};
use crate::emulator::Emulator;
use crate::loss::{loss_weights, weighted_mse};
use crate::normalise::{
    Climatology, NormalisationStats, NormaliseError, compute_statistics, find_static_channels,
};
use crate::parallel::Replicas;
use crate::run_state::{self, ConfigChange};
use crate::windows::{Batch, Split, WindowError, Windows};

pub const METRICS_CSV: &str = "metrics.csv";
pub const METRICS_JSONL: &str = "metrics.jsonl";
pub const CLIMATOLOGY_FILE: &str = "climatology.json";
/// The lock file of a run folder: one process writes a run at a time.
pub const RUN_LOCK: &str = "weatherlens.lock";

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Dataset(#[from] DatasetError),
    #[error("samples: {0}")]
    Windows(#[from] WindowError),
    #[error(transparent)]
    Normalise(#[from] NormaliseError),
    #[error("grid of the data: {0}")]
    Grid(#[from] GridError),
    #[error("graph: {0}")]
    Graph(#[from] GraphError),
    #[error(transparent)]
    Checkpoint(#[from] CheckpointError),
    #[error(transparent)]
    File(#[from] FileError),
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "training loss became {loss} at step {step}; stopped. The last good checkpoint is {last_checkpoint}"
    )]
    NonFiniteLoss {
        step: usize,
        loss: f64,
        last_checkpoint: String,
    },
    #[error("cannot resume from {path}: {reason}")]
    Resume { path: PathBuf, reason: String },
    #[error("{path}: {reason}")]
    RunFolder { path: PathBuf, reason: String },
    #[error(
        "cannot resume from {path}: the data changed since the checkpoint (a revised download?): the normalisation \
         statistics of the training period differ for {}. Resume with --accept-data-change to keep the \
         checkpoint's statistics and climatology, or start a new run",
        channels.join("; ")
    )]
    DataChanged {
        path: PathBuf,
        channels: Vec<String>,
    },
    #[error("the {split:?} split has no samples: check data.windows and the data's time range")]
    EmptySplit { split: Split },
    #[error("no device to train on")]
    NoDevice,
}

/// What `run.json` of a checkpoint holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunState {
    pub config: RunConfig,
    /// Updates done.
    pub step: usize,
    pub seed: u64,
    pub normalisation: NormalisationStats,
    pub data: DataDescription,
    pub optimizer_file: String,
    pub code_version: String,
    /// Settings changed on resume, each with the step it took effect ([`run_state::resume_changes`]);
    /// `config` holds the values in force now.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub config_changes: Vec<ConfigChange>,
}

/// The data a model was trained on: enough to rebuild its grid and check new data against it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataDescription {
    pub files: Vec<String>,
    pub channels: Vec<Channel>,
    pub lat: Vec<f64>,
    pub lon: Vec<f64>,
    pub first_time: String,
    pub last_time: String,
    pub step_hours: i64,
}

/// One row of `metrics.csv`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricsRow {
    pub step: usize,
    pub epoch: u64,
    pub lr: f64,
    pub rollout_steps: usize,
    pub train_loss: f64,
    /// Mean one-step validation loss; empty when not computed at this step.
    pub val_loss: Option<f64>,
    pub samples_per_s: f64,
}

pub struct TrainOptions {
    /// Where checkpoints, metrics and the climatology go.
    pub run_dir: PathBuf,
    /// A run folder or checkpoint folder to continue from.
    pub resume: Option<PathBuf>,
    /// Shows the steps done (hidden when nobody watches).
    pub progress: ProgressBar,
    /// Which implementation the model's forward and backward run.
    pub kernels: Kernels,
    /// Stop after this many updates in total (simulates an interruption in tests); `None` = `training.steps`.
    pub stop_at: Option<usize>,
    /// On resume, go on when the data's statistics differ from the checkpoint's (keeping the checkpoint's).
    pub accept_data_change: bool,
}

#[derive(Debug, Clone)]
pub struct TrainReport {
    pub steps: usize,
    pub last_checkpoint: PathBuf,
    pub final_train_loss: f64,
    pub final_val_loss: Option<f64>,
    pub seconds: f64,
}

/// Everything loaded once: the data in memory, its sample windows, the graph and the normalisation.
pub struct Prepared {
    pub dataset: Arc<Dataset>,
    pub windows: Windows,
    pub graph: ModelGraph,
    pub stats: NormalisationStats,
    pub climatology: Climatology,
    pub description: DataDescription,
}

/// Read the data of `config`, cut its windows, build the graph and (from the training split only) the
/// normalisation statistics and climatology.
pub fn prepare(config: &RunConfig) -> Result<Prepared, TrainError> {
    let reader = data::open(&config.data)?;
    let dataset = reader.read_all()?;
    let windows = Windows::new(&config.data.windows, &dataset.time_hours)?;
    for split in [Split::Train, Split::Val] {
        if windows.sample_count(split) == 0 {
            return Err(TrainError::EmptySplit { split });
        }
    }
    let train_range = time_index_range(&dataset.time_hours, &config.data.windows.train)?;
    let train_part = slice_times(&dataset, train_range);
    // Fields that are the same at every time (land-sea mask, orography) are static inputs, not targets.
    let static_channels = find_static_channels(&dataset);
    if !static_channels.is_empty() {
        tracing::info!(
            "static inputs (the same field at every time, not predicted): {}",
            static_channels.join(", ")
        );
    }
    let (stats, climatology) = compute_statistics(
        &train_part,
        config.data.windows.step_hours,
        &static_channels,
    )?;
    let zero_spread = stats.zero_spread_channels();
    if !zero_spread.is_empty() {
        tracing::warn!(
            "{}: their {}-hour differences have zero spread, so their increments are scaled by their std, not by \
             diff_std",
            zero_spread.join(", "),
            stats.diff_hours
        );
    }
    if stats.dynamic_count() == 0 {
        return Err(NormaliseError::Input(format!(
            "every channel is static ({}): there is nothing to predict",
            static_channels.join(", ")
        ))
        .into());
    }
    let grid = LatLonGrid::from_coordinates(dataset.lat.clone(), dataset.lon.clone())?;
    let graph = ModelGraph::for_model(&grid, &config.model)?;
    if let Some(warning) = mesh_coverage_warning(
        graph.mesh_nodes_without_grid_senders(),
        graph.num_mesh_nodes(),
        config.model.mesh_level,
        &grid,
    ) {
        tracing::warn!("{warning}");
    }
    let description = DataDescription {
        files: reader
            .paths()
            .iter()
            .map(|p| p.display().to_string())
            .collect(),
        channels: dataset.channels.clone(),
        lat: dataset.lat.clone(),
        lon: dataset.lon.clone(),
        first_time: dataset
            .time_hours
            .first()
            .map_or(String::new(), |&t| iso8601(t)),
        last_time: dataset
            .time_hours
            .last()
            .map_or(String::new(), |&t| iso8601(t)),
        step_hours: reader
            .time_step_hours()
            .unwrap_or(config.data.windows.step_hours),
    };
    Ok(Prepared {
        dataset: Arc::new(dataset),
        windows,
        graph,
        stats,
        climatology,
        description,
    })
}

/// The warning for mesh nodes that no grid point sends to, or `None` when every node receives. Either the mesh
/// is too fine for the grid's spacing, or the grid does not cover the globe and the nodes outside it receive
/// nothing.
pub fn mesh_coverage_warning(
    uncovered: usize,
    mesh_nodes: usize,
    mesh_level: u32,
    grid: &LatLonGrid,
) -> Option<String> {
    if uncovered == 0 {
        return None;
    }
    let share = 100.0 * uncovered as f64 / mesh_nodes.max(1) as f64;
    let why = match grid_extent(grid) {
        Some(extent) => format!(
            "the grid is not global ({extent}), while the mesh covers the whole sphere: its nodes outside \
             the grid get no data"
        ),
        None => format!(
            "mesh level {mesh_level} is too fine for this grid's spacing: lower model.mesh_level, or use finer data"
        ),
    };
    Some(format!(
        "{uncovered} of {mesh_nodes} mesh nodes ({share:.0} %) receive from no grid point: {why}"
    ))
}

/// The grid's extent in words when it does not cover the globe, else `None`.
fn grid_extent(grid: &LatLonGrid) -> Option<String> {
    let lat = grid.lat();
    let lon = grid.lon();
    let (lat_min, lat_max) = lat
        .iter()
        .fold((f64::MAX, f64::MIN), |(lo, hi), &v| (lo.min(v), hi.max(v)));
    let lat_step = if lat.len() > 1 {
        (lat_max - lat_min) / (lat.len() - 1) as f64
    } else {
        180.0
    };
    let lon_step = if lon.len() > 1 {
        (lon[lon.len() - 1] - lon[0]).abs() / (lon.len() - 1) as f64
    } else {
        360.0
    };
    // Global: rows reach within a spacing of both poles, columns go all the way round.
    let reaches_poles = lat_max + lat_step >= 90.0 - 1e-6 && lat_min - lat_step <= -90.0 + 1e-6;
    let goes_round = lon_step * lon.len() as f64 >= 360.0 - 1e-6;
    (!(reaches_poles && goes_round)).then(|| {
        format!(
            "latitudes {lat_min}..{lat_max}, {} longitudes {} apart",
            lon.len(),
            lon_step
        )
    })
}

/// Indices `[first, last]` of the times inside `range` = [start, end).
fn time_index_range(
    times: &[i64],
    range: &crate::windows::TimeRange,
) -> Result<std::ops::Range<usize>, TrainError> {
    let parse = |s: &str| {
        parse_iso8601_hours(s).map_err(|e| WindowError::Config {
            key: "data.windows.train".into(),
            detail: e.to_string(),
        })
    };
    let (start, end) = (parse(&range.start)?, parse(&range.end)?);
    let first = times.partition_point(|&t| t < start);
    let last = times.partition_point(|&t| t < end);
    Ok(first..last)
}

fn slice_times(dataset: &Dataset, range: std::ops::Range<usize>) -> Dataset {
    let n = dataset.frame_len();
    Dataset {
        channels: dataset.channels.clone(),
        lat: dataset.lat.clone(),
        lon: dataset.lon.clone(),
        time_hours: dataset.time_hours[range.clone()].to_vec(),
        data: dataset.data[range.start * n..range.end * n].to_vec(),
    }
}

/// Build the model of `config` with weights drawn from `config.seed` and positional parameter ids, every one
/// of `channels` predicted.
pub fn build_model(config: &RunConfig, channels: usize, device: &Device) -> WeatherModel {
    build_model_with_static(config, channels, 0, device)
}

/// Build the model for the channels of `stats`: input [previous dynamic, current dynamic, static], output the
/// dynamic channels.
pub fn build_model_for(
    config: &RunConfig,
    stats: &NormalisationStats,
    device: &Device,
) -> WeatherModel {
    let dynamic = stats.dynamic_count();
    build_model_with_static(config, dynamic, stats.channels.len() - dynamic, device)
}

/// The weights are drawn on the CPU whatever `device` is (each backend has its own random generator), so a seed
/// gives the same initial weights on every device; on another device they are drawn now and moved there.
fn build_model_with_static(
    config: &RunConfig,
    dynamic: usize,
    statics: usize,
    device: &Device,
) -> WeatherModel {
    let cpu = if device.is_autodiff() {
        Device::flex().autodiff()
    } else {
        Device::flex()
    };
    seeded(config.seed, &cpu, || {
        let model = checkpoint::canonical_param_ids(WeatherModel::new(
            &config.model,
            2 * dynamic + statics,
            dynamic,
            &cpu,
        ));
        if *device == cpu {
            model
        } else {
            // Forking a clone initialises the (lazy) parameters here, on the CPU, then moves them.
            model.clone().fork(device)
        }
    })
}

fn optimizer(config: &RunConfig) -> ModuleOptimizer {
    AdamWConfig::new()
        .with_epsilon(1e-8)
        .with_weight_decay(config.training.weight_decay as f32)
        .with_grad_clipping(Some(GradientClippingConfig::Norm(
            config.training.grad_clip as f32,
        )))
        .init()
}

/// The loss weights of GraphCast: cos(latitude) per grid point times the configured channel weight; static
/// channels weigh 0 (they are not predicted) and the others `channels / dynamic` times more, so that the loss
/// stays a mean over predicted channels.
fn weights(config: &RunConfig, prepared: &Prepared, device: &Device) -> Tensor<3> {
    let grid = prepared.graph.grid();
    let row_weights = grid.latitude_weights();
    let per_point: Vec<f64> = (0..grid.num_points())
        .map(|p| row_weights[p / grid.n_lon()])
        .collect();
    let per_channel: Vec<f64> = prepared
        .stats
        .channels
        .iter()
        .map(|c| {
            if c.is_static {
                return 0.0;
            }
            let all = prepared.stats.channels.len() as f64;
            let predicted = prepared.stats.dynamic_count().max(1) as f64;
            all / predicted
                * config
                    .data
                    .channel_weights
                    .get(&c.name)
                    .copied()
                    .unwrap_or(1.0)
        })
        .collect();
    loss_weights(&per_point, &per_channel, device)
}

/// Mean loss over `rollout` autoregressive steps of a batch, in residual units.
pub(crate) fn rollout_loss(
    emulator: &Emulator,
    batch: &Batch,
    rollout: usize,
    weights: &Tensor<3>,
) -> Tensor<1> {
    let n = batch.len();
    let inputs = emulator.states(&batch.inputs, 2 * n);
    let [_, points, channels] = inputs.dims();
    let inputs = inputs.reshape([n, 2, points, channels]);
    let targets = emulator
        .states(&batch.targets, n * batch.lead_steps)
        .reshape([n, batch.lead_steps, points, channels]);
    let mut previous = inputs
        .clone()
        .slice([0..n, 0..1])
        .reshape([n, points, channels]);
    let mut current = inputs.slice([0..n, 1..2]).reshape([n, points, channels]);
    let mut total: Option<Tensor<1>> = None;
    for k in 0..rollout {
        let next = emulator.step(previous, current.clone(), &Hooks::none());
        let truth = targets
            .clone()
            .slice([0..n, k..k + 1])
            .reshape([n, points, channels]);
        let error = emulator.in_residual_units(next.clone() - truth);
        let loss = weighted_mse(error.clone(), error.zeros_like(), weights);
        total = Some(match total {
            Some(t) => t + loss,
            None => loss,
        });
        previous = current;
        current = next;
    }
    total.expect("rollout >= 1") / rollout as f64
}

fn scalar(t: Tensor<1>) -> f64 {
    f64::from(t.into_scalar::<f32>())
}

/// Train `config` into `options.run_dir` on `device`.
pub fn train(
    config: &RunConfig,
    options: &TrainOptions,
    device: &Device,
) -> Result<TrainReport, TrainError> {
    train_on_devices(config, options, std::slice::from_ref(device))
}

/// Train `config` into `options.run_dir`, data-parallel over `devices` when there are several
/// ([`crate::parallel`]): the first holds the model and the optimiser, validates and checkpoints.
///
/// The run folder is locked for the whole training (a second writer gets [`LockError::Held`]), and
/// temporaries an interrupted writer left there are removed. A resume is checked against the checkpoint
/// ([`run_state`]) before the data is read or made. A fresh run refuses a folder that already holds
/// checkpoints (resume it, or choose another folder).
pub fn train_on_devices(
    config: &RunConfig,
    options: &TrainOptions,
    devices: &[Device],
) -> Result<TrainReport, TrainError> {
    let Some(device) = devices.first() else {
        return Err(TrainError::NoDevice);
    };
    let started = Instant::now();
    let run_dir = &options.run_dir;
    let _lock = lock_run_folder(run_dir)?;
    let resume = match &options.resume {
        Some(dir) => Some(plan_resume(dir, config)?),
        None => {
            if let Some((step, _)) = checkpoint::list(run_dir)?.pop() {
                return Err(TrainError::RunFolder {
                    path: run_dir.clone(),
                    reason: format!(
                        "the folder already holds checkpoints of a run (the newest at step {step}): continue it \
                         with --resume {}, or train into another folder",
                        run_dir.display()
                    ),
                });
            }
            None
        }
    };
    let mut prepared = prepare(config)?;
    let train_device = device.clone().autodiff();
    let mut model = build_model_for(config, &prepared.stats, &train_device);
    let mut optim = optimizer(config);
    let mut start_step = 0;
    let mut config_changes = Vec::new();

    if let Some(ResumePlan {
        checkpoint,
        state,
        changes,
    }) = resume
    {
        check_resumable(&state, &prepared, &checkpoint)?;
        // The checkpoint's statistics are authoritative: the model was trained in their units.
        let changed = state.normalisation.differences(&prepared.stats);
        if !changed.is_empty() {
            if !options.accept_data_change {
                return Err(TrainError::DataChanged {
                    path: checkpoint,
                    channels: changed,
                });
            }
            tracing::warn!(
                "the data changed since {} ({}): keeping the checkpoint's normalisation statistics and \
                 climatology (--accept-data-change)",
                checkpoint.display(),
                changed.join("; ")
            );
        }
        if state.normalisation.static_flags() != prepared.stats.static_flags() {
            model = build_model_for(config, &state.normalisation, &train_device);
        }
        prepared.stats = state.normalisation.clone();
        model = checkpoint::load_model(&checkpoint, model)?;
        optim = checkpoint::load_optimizer(&checkpoint, optim, &model)?;
        keep_climatology(&checkpoint, run_dir, &prepared.climatology)?;
        start_step = state.step;
        truncate_metrics(run_dir, start_step)?;
        for change in &changes {
            tracing::warn!(
                "resuming with {} = {} (was {}) from step {}: recorded in run.json",
                change.key,
                change.to,
                change.from,
                change.step
            );
        }
        config_changes = state.config_changes.clone();
        config_changes.extend(changes);
        tracing::info!(
            "resuming from {} at step {start_step}",
            checkpoint.display()
        );
    } else {
        remove_metrics(run_dir)?;
        prepared.climatology.save(&run_dir.join(CLIMATOLOGY_FILE))?;
    }

    let weights = weights(config, &prepared, &train_device);
    let mut emulator = Emulator::new(
        model,
        &config.model,
        &prepared.graph,
        prepared.stats.clone(),
        options.kernels,
        &train_device,
    );
    let mut replicas = (devices.len() > 1).then(|| {
        tracing::info!(
            "data-parallel training on {} devices: {devices:?}",
            devices.len()
        );
        let autodiff: Vec<Device> = devices.iter().map(|d| d.clone().autodiff()).collect();
        Replicas::new(
            &emulator.model,
            &config.model,
            &prepared.graph,
            &prepared.stats,
            options.kernels,
            &autodiff,
            &weights,
        )
    });
    let schedule = config.training.lr_schedule();
    let curriculum = config.training.curriculum(config.data.windows.lead_steps);
    let batch_size = config.data.windows.batch_size;
    let batches_per_epoch = prepared
        .windows
        .sample_count(Split::Train)
        .div_ceil(batch_size);
    let end_step = options
        .stop_at
        .unwrap_or(config.training.steps)
        .min(config.training.steps);
    let source: Arc<dyn crate::windows::FrameSource> = prepared.dataset.clone();

    let bar = &options.progress;
    bar.set_length(config.training.steps as u64);
    bar.set_position(start_step as u64);
    let mut last_checkpoint = checkpoint::latest(run_dir).ok();
    let mut last_train_loss = f64::NAN;
    let mut last_val_loss = None;
    let mut step = start_step;
    let mut window_started = Instant::now();
    while step < end_step {
        let epoch = (step / batches_per_epoch) as u64;
        let skip = step % batches_per_epoch;
        for batch in prepared
            .windows
            .batches(source.clone(), Split::Train, epoch)?
            .skip(skip)
        {
            if step >= end_step {
                break;
            }
            let batch = batch?;
            let rollout = curriculum.rollout_steps(step);
            let lr = schedule.lr(step);
            let (loss_value, grads) = match replicas.as_mut() {
                Some(replicas) => replicas.loss_and_grads(&emulator.model, &batch, rollout),
                None => {
                    let loss = rollout_loss(&emulator, &batch, rollout, &weights);
                    let grads = GradientsParams::from_grads(loss.backward(), &emulator.model);
                    (scalar(loss), grads)
                }
            };
            if !loss_value.is_finite() {
                return Err(TrainError::NonFiniteLoss {
                    step,
                    loss: loss_value,
                    last_checkpoint: last_checkpoint
                        .as_ref()
                        .map_or("none (no checkpoint written yet)".to_string(), |p| {
                            p.display().to_string()
                        }),
                });
            }
            emulator.model = optim.step(lr, emulator.model, grads);
            step += 1;
            last_train_loss = loss_value;
            let validate = step == end_step
                || (config.training.val_every > 0 && step % config.training.val_every == 0);
            let val_loss = if validate {
                let v = validation_loss(config, &emulator, &prepared, &weights, device)?;
                last_val_loss = Some(v);
                Some(v)
            } else {
                None
            };
            let elapsed = window_started.elapsed().as_secs_f64();
            window_started = Instant::now();
            append_metrics(
                run_dir,
                &MetricsRow {
                    step,
                    epoch,
                    lr,
                    rollout_steps: rollout,
                    train_loss: loss_value,
                    val_loss,
                    samples_per_s: batch.len() as f64 / elapsed.max(1e-9),
                },
            )?;
            bar.set_position(step as u64);
            bar.set_message(format!(
                "loss {loss_value:.4}{}",
                val_loss.map_or(String::new(), |v| format!(" val {v:.4}"))
            ));
            let checkpoint_now = step == end_step
                || (config.training.checkpoint_every > 0
                    && step % config.training.checkpoint_every == 0);
            if checkpoint_now {
                let state = RunState {
                    config: config.clone(),
                    step,
                    seed: config.seed,
                    normalisation: prepared.stats.clone(),
                    data: prepared.description.clone(),
                    optimizer_file: checkpoint::OPTIMIZER_FILE.to_string(),
                    code_version: env!("CARGO_PKG_VERSION").to_string(),
                    config_changes: config_changes.clone(),
                };
                last_checkpoint = Some(checkpoint::save(
                    run_dir,
                    step,
                    &emulator.model,
                    Some(&optim),
                    &state,
                    config.training.keep_last,
                )?);
            }
        }
    }
    bar.finish_and_clear();
    Ok(TrainReport {
        steps: step,
        last_checkpoint: last_checkpoint.unwrap_or_else(|| run_dir.clone()),
        final_train_loss: last_train_loss,
        final_val_loss: last_val_loss,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Mean one-step loss over the first `val_batches` validation batches (time order), without gradients.
fn validation_loss(
    config: &RunConfig,
    emulator: &Emulator,
    prepared: &Prepared,
    weights: &Tensor<3>,
    device: &Device,
) -> Result<f64, TrainError> {
    let model = emulator.model.valid();
    let plain = Emulator::new(
        model,
        &config.model,
        &prepared.graph,
        prepared.stats.clone(),
        emulator.graph.kernels,
        device,
    );
    let weights = Tensor::<3>::from_data(weights.to_data(), device);
    let source: Arc<dyn crate::windows::FrameSource> = prepared.dataset.clone();
    let (mut sum, mut count) = (0.0, 0usize);
    for batch in prepared
        .windows
        .batches(source, Split::Val, 0)?
        .take(config.training.val_batches.max(1))
    {
        sum += scalar(rollout_loss(&plain, &batch?, 1, &weights));
        count += 1;
    }
    Ok(sum / count.max(1) as f64)
}

/// On resume the run keeps the climatology it started with: the checkpoint's run folder's `climatology.json`,
/// copied into `run_dir` when that is another folder. Only when the checkpoint's run has none is one written from
/// the current data, and the log says so.
fn keep_climatology(
    checkpoint: &Path,
    run_dir: &Path,
    fresh: &Climatology,
) -> Result<(), TrainError> {
    let target = run_dir.join(CLIMATOLOGY_FILE);
    let original = checkpoint
        .parent()
        .map(|p| p.join(CLIMATOLOGY_FILE))
        .filter(|p| p.is_file());
    match original {
        Some(original) => {
            let same = fs::canonicalize(&original).ok() == fs::canonicalize(&target).ok();
            if !same {
                files::write_atomic(&target, &files::read(&original)?)?;
                tracing::info!(
                    "{}: copied from the checkpoint's run ({})",
                    target.display(),
                    original.display()
                );
            }
        }
        None => {
            tracing::warn!(
                "{}: the checkpoint's run has no climatology; writing one from the current data",
                target.display()
            );
            fresh.save(&target)?;
        }
    }
    Ok(())
}

/// A resume decided before anything is touched: the checkpoint, its validated state, and the settings that
/// change (accepted ones only).
struct ResumePlan {
    checkpoint: PathBuf,
    state: RunState,
    changes: Vec<ConfigChange>,
}

/// Locks `run_dir` (created if missing) for this process and removes the temporaries an interrupted writer
/// left in it.
fn lock_run_folder(run_dir: &Path) -> Result<FolderLock, TrainError> {
    let lock = FolderLock::acquire(run_dir, RUN_LOCK, Wait::No)?;
    let removed = files::remove_stale_temporaries(run_dir)?;
    if removed > 0 {
        tracing::info!(
            "{}: removed {removed} temporary files an interrupted run left",
            run_dir.display()
        );
    }
    Ok(lock)
}

/// The resume rule's first half ([`run_state`]): the checkpoint must be readable and valid, and its model, seed
/// and data settings those of `config`.
fn plan_resume(dir: &Path, config: &RunConfig) -> Result<ResumePlan, TrainError> {
    let checkpoint = checkpoint::latest(dir)?;
    let state = run_state::load_state(&checkpoint)?;
    let fail = |reason: String| TrainError::Resume {
        path: checkpoint.clone(),
        reason,
    };
    let changes = run_state::resume_changes(&state.config, config, state.step).map_err(&fail)?;
    if state.step > config.training.steps {
        return Err(fail(format!(
            "the checkpoint is at step {} but training.steps is {}",
            state.step, config.training.steps
        )));
    }
    Ok(ResumePlan {
        checkpoint,
        state,
        changes,
    })
}

/// The resume rule's second half: the data read now has the channels and grid the checkpoint was trained on.
fn check_resumable(
    state: &RunState,
    prepared: &Prepared,
    checkpoint: &Path,
) -> Result<(), TrainError> {
    if state.data.channels != prepared.description.channels
        || state.data.lat != prepared.description.lat
        || state.data.lon != prepared.description.lon
    {
        return Err(TrainError::Resume {
            path: checkpoint.to_path_buf(),
            reason: "the data's channels or grid differ from the checkpoint's".into(),
        });
    }
    Ok(())
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> TrainError + '_ {
    move |source| TrainError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn remove_metrics(run_dir: &Path) -> Result<(), TrainError> {
    for name in [METRICS_CSV, METRICS_JSONL] {
        let path = run_dir.join(name);
        if path.exists() {
            fs::remove_file(&path).map_err(io_error(&path))?;
        }
    }
    Ok(())
}

/// Read `metrics.csv` of a run folder.
pub fn read_metrics(run_dir: &Path) -> Result<Vec<MetricsRow>, TrainError> {
    let path = run_dir.join(METRICS_CSV);
    if !path.exists() {
        return Ok(Vec::new());
    }
    let text = files::read_to_string(&path)?;
    parse_metrics_csv(&path, &text)
}

fn metrics_error(path: &Path, reason: String) -> TrainError {
    TrainError::Io {
        path: path.to_path_buf(),
        source: std::io::Error::other(reason),
    }
}

fn parse_metrics_csv(path: &Path, text: &str) -> Result<Vec<MetricsRow>, TrainError> {
    csv::Reader::from_reader(text.as_bytes())
        .deserialize()
        .collect::<Result<Vec<MetricsRow>, _>>()
        .map_err(|e| metrics_error(path, e.to_string()))
}

/// The whole lines of `text`: a last line without its newline is the half of a row a killed process was
/// writing, and is dropped (with a warning naming `path`).
fn whole_lines<'a>(path: &Path, text: &'a str) -> &'a str {
    if text.is_empty() || text.ends_with('\n') {
        return text;
    }
    let end = text.rfind('\n').map_or(0, |i| i + 1);
    tracing::warn!(
        "{}: dropping an incomplete last line ({:?}) left by an interrupted run",
        path.display(),
        &text[end..]
    );
    &text[..end]
}

/// Keep only the rows up to `step` (a resumed run rewrites what came after its checkpoint). An incomplete last
/// row (a process killed while appending it) is dropped; any other unreadable row is an error naming the file.
fn truncate_metrics(run_dir: &Path, step: usize) -> Result<(), TrainError> {
    let csv_path = run_dir.join(METRICS_CSV);
    let mut rows = Vec::new();
    if csv_path.exists() {
        let text = files::read_to_string(&csv_path)?;
        rows = parse_metrics_csv(&csv_path, whole_lines(&csv_path, &text))?;
    }
    rows.retain(|r| r.step <= step);
    let json_path = run_dir.join(METRICS_JSONL);
    let mut json_rows = Vec::new();
    if json_path.exists() {
        let text = files::read_to_string(&json_path)?;
        for (number, line) in whole_lines(&json_path, &text).lines().enumerate() {
            let row: MetricsRow = serde_json::from_str(line)
                .map_err(|e| metrics_error(&json_path, format!("line {}: {e}", number + 1)))?;
            if row.step <= step {
                json_rows.push(row);
            }
        }
    }
    let (csv_text, json_text) = metrics_text(&rows, &json_rows, &csv_path, &json_path)?;
    files::write_atomic(&csv_path, csv_text.as_bytes())?;
    files::write_atomic(&json_path, json_text.as_bytes())?;
    Ok(())
}

fn metrics_text(
    rows: &[MetricsRow],
    json_rows: &[MetricsRow],
    csv_path: &Path,
    json_path: &Path,
) -> Result<(String, String), TrainError> {
    let mut csv_text = String::new();
    for (k, row) in rows.iter().enumerate() {
        csv_text.push_str(&csv_line(row, k == 0, csv_path)?);
    }
    let mut json_text = String::new();
    for row in json_rows {
        json_text.push_str(&json_line(row, json_path)?);
    }
    Ok((csv_text, json_text))
}

/// One CSV row (with the header line first when `header`).
fn csv_line(row: &MetricsRow, header: bool, path: &Path) -> Result<String, TrainError> {
    let mut writer = csv::WriterBuilder::new()
        .has_headers(header)
        .from_writer(Vec::new());
    writer
        .serialize(row)
        .map_err(|e| metrics_error(path, e.to_string()))?;
    let bytes = writer
        .into_inner()
        .map_err(|e| metrics_error(path, e.to_string()))?;
    String::from_utf8(bytes).map_err(|e| metrics_error(path, e.to_string()))
}

fn json_line(row: &MetricsRow, path: &Path) -> Result<String, TrainError> {
    serde_json::to_string(row)
        .map(|line| line + "\n")
        .map_err(|e| metrics_error(path, e.to_string()))
}

/// Appends one row to `metrics.csv` and `metrics.jsonl`, each as one write of a whole line.
fn append_metrics(run_dir: &Path, row: &MetricsRow) -> Result<(), TrainError> {
    let csv_path = run_dir.join(METRICS_CSV);
    let header = !csv_path.exists() || fs::metadata(&csv_path).is_ok_and(|m| m.len() == 0);
    files::append(&csv_path, csv_line(row, header, &csv_path)?.as_bytes())?;
    let json_path = run_dir.join(METRICS_JSONL);
    files::append(&json_path, json_line(row, &json_path)?.as_bytes())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mesh_coverage_warning_says_too_fine_or_not_global() {
        let global = LatLonGrid::from_coordinates(
            (0..8).map(|i| 78.75 - 22.5 * i as f64).collect(),
            (0..16).map(|j| 22.5 * j as f64).collect(),
        )
        .unwrap();
        assert_eq!(mesh_coverage_warning(0, 642, 3, &global), None);
        let message = mesh_coverage_warning(629, 642, 3, &global).unwrap();
        assert!(
            message.starts_with("629 of 642 mesh nodes (98 %)") && message.contains("too fine"),
            "{message}"
        );
        assert!(!message.contains("is fine"), "{message}");
        // Europe only: 30..70 N, 0..40 E.
        let regional = LatLonGrid::from_coordinates(
            (0..9).map(|i| 70.0 - 5.0 * i as f64).collect(),
            (0..9).map(|j| 5.0 * j as f64).collect(),
        )
        .unwrap();
        let message = mesh_coverage_warning(600, 642, 3, &regional).unwrap();
        assert!(
            message.contains("not global") && message.contains("latitudes 30..70"),
            "{message}"
        );
    }
}
