//! `weatherlens evaluate --checkpoint DIR`: forecasts over the test split, scored against baselines.

use std::path::{Path, PathBuf};

use anyhow::Result;
use burn::prelude::Device;
use clap::Args;
use weatherlens_probes::report;
use weatherlens_training::evaluate::{self, Evaluation};

#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// A run folder (its newest checkpoint is used) or a checkpoint folder.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Where scorecard.csv, errors.csv and the plots go (default: <run folder>/evaluation).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Evaluate, write the tables and plots, and return the evaluation and its folder.
pub fn evaluate_into(
    checkpoint: &Path,
    out: Option<PathBuf>,
    device: &Device,
) -> Result<(Evaluation, PathBuf)> {
    let evaluation = evaluate::evaluate(checkpoint, device)?;
    let out = out.unwrap_or_else(|| run_folder(checkpoint).join("evaluation"));
    evaluate::write_tables(&evaluation, &out)?;
    report::scorecard_plots(&evaluation, &out)?;
    Ok((evaluation, out))
}

/// The run folder of a run or checkpoint folder.
pub fn run_folder(path: &Path) -> PathBuf {
    let is_checkpoint = path
        .file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.starts_with("checkpoint-"));
    match (is_checkpoint, path.parent()) {
        (true, Some(parent)) => parent.to_path_buf(),
        _ => path.to_path_buf(),
    }
}

pub fn run(args: EvaluateArgs, device: &Device) -> Result<()> {
    let (evaluation, out) = evaluate_into(&args.checkpoint, args.out, device)?;
    let headline = evaluation
        .scores
        .first()
        .map(|r| r.variable.clone())
        .unwrap_or_default();
    println!("{}", report::skill_markdown(&evaluation, &headline));
    tracing::info!(
        "wrote {} ({:.1} forecasts/s)",
        out.display(),
        evaluation.forecasts_per_second
    );
    Ok(())
}
