//! `weatherlens train --config FILE [--resume DIR]`.

use std::path::PathBuf;

use anyhow::Result;
use burn::prelude::Device;
use clap::Args;
use weatherlens_training::config::RunConfig;
use weatherlens_training::trainer::{self, TrainOptions};

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
}

pub fn run(args: TrainArgs, device: &Device, quiet: bool) -> Result<()> {
    let config = RunConfig::load(&args.config)?;
    let run_dir = args
        .out
        .unwrap_or_else(|| PathBuf::from("runs").join(&config.name));
    let report = trainer::train(
        &config,
        &TrainOptions {
            run_dir,
            resume: args.resume,
            progress_bar: !quiet,
            stop_at: args.stop_at,
            accept_data_change: args.accept_data_change,
        },
        device,
    )?;
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
