//! `weatherlens train --config FILE [--resume DIR]`.

use std::path::PathBuf;

use anyhow::{Context as _, Result};
use clap::Args;
use weatherlens::progress;
use weatherlens::stages::train::{TrainOptions, train};
use weatherlens_training::config::{DeviceName, RunConfig};

use super::Context;

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Run config (TOML).
    #[arg(long)]
    pub config: PathBuf,
    /// Run folder (default: runs/<name>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Continue from a run folder or checkpoint folder.
    #[arg(long)]
    pub resume: Option<PathBuf>,
    /// Stop after this many updates in total (the schedule still spans training.steps).
    #[arg(long)]
    pub stop_at: Option<usize>,
    /// On --resume, go on when the data's statistics differ from the checkpoint's (the checkpoint's are kept).
    #[arg(long)]
    pub accept_data_change: bool,
    /// Train data-parallel on these devices (comma-separated: flex, wgpu, wgpu:N, wgpu:cpu, cuda:N), instead of
    /// the config's `[training] devices`.
    #[arg(long, value_delimiter = ',')]
    pub devices: Option<Vec<DeviceName>>,
}

pub fn run(args: TrainArgs, context: &Context) -> Result<()> {
    let mut config = RunConfig::load(&args.config)?;
    if let Some(devices) = args.devices {
        config.training.devices = devices;
    }
    let run_dir = args
        .out
        .unwrap_or_else(|| PathBuf::from("runs").join(&config.name));
    let report = train(
        &config,
        &TrainOptions {
            run_dir,
            resume: args.resume,
            progress: progress::bar("train", config.training.steps as u64, context.progress),
            stop_at: args.stop_at,
            kernels: context.kernels,
            accept_data_change: args.accept_data_change,
        },
        &context.device,
    )
    .with_context(|| format!("training {}", args.config.display()))?;
    tracing::info!(
        "trained {} steps in {:.0} s: train loss {:.4}, val loss {}; checkpoint {}",
        report.steps,
        report.seconds,
        report.final_train_loss,
        report
            .final_val_loss
            .map_or("n/a".to_string(), |v| format!("{v:.4}")),
        report.last_checkpoint.display()
    );
    Ok(())
}
