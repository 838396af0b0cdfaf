//! `weatherlens evaluate --checkpoint DIR`: forecasts over the test split, scored against baselines.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use weatherlens::report::skill::skill_markdown;
use weatherlens::stages::evaluate::evaluate;
use weatherlens::stages::run_folder;

use super::Context;

#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// A run folder (its newest checkpoint is used) or a checkpoint folder.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Where scorecard.csv, errors.csv and the plots go (default: <run folder>/evaluation).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(args: EvaluateArgs, context: &Context) -> Result<()> {
    let out = args
        .out
        .unwrap_or_else(|| run_folder(&args.checkpoint).join("evaluation"));
    let evaluation = evaluate(&args.checkpoint, &out, &context.device, context.kernels)?;
    let headline = evaluation
        .scores
        .first()
        .map(|r| r.variable.clone())
        .unwrap_or_default();
    println!("{}", skill_markdown(&evaluation, &headline));
    tracing::info!(
        "wrote {} ({:.1} forecasts/s)",
        out.display(),
        evaluation.forecasts_per_second
    );
    Ok(())
}
