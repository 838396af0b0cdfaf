//! `weatherlens forecast --checkpoint CKPT_DIR --inputs INPUTS.nc --steps N --out FORECAST.nc`: an
//! autoregressive forecast from the input file's first two times, written as NetCDF-4.

use std::path::PathBuf;

use anyhow::Result;
use clap::Args;
use weatherlens::stages::forecast::forecast;
use weatherlens::stages::loaded::load;

use super::Context;

#[derive(Debug, Args)]
pub struct ForecastArgs {
    /// An imported GraphCast folder, or a WeatherLens run or checkpoint folder.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Initial conditions (the first two times) and the valid times of the leads (GraphCast: with their
    /// forcings): GraphCast's example-batch layout or an ERA5 layout.
    #[arg(long)]
    pub inputs: PathBuf,
    /// 6-hour steps; the file must hold 2 + steps times.
    #[arg(long, default_value_t = 1)]
    pub steps: usize,
    /// The forecast file to write.
    #[arg(long)]
    pub out: PathBuf,
    /// Print what was written as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: ForecastArgs, context: &Context) -> Result<()> {
    let model = load(&args.checkpoint, &context.device, context.kernels)?;
    let summary = forecast(&model, &args.inputs, args.steps, &args.out)?;
    if args.json {
        return super::print_json(&summary);
    }
    println!(
        "{} steps ({} h) of {} batch member(s), {} variables -> {} (rollout {:.2} s)",
        summary.steps,
        summary.lead_hours.last().copied().unwrap_or(0),
        summary.batch,
        summary.variables.len(),
        summary.out.display(),
        summary.rollout_seconds
    );
    Ok(())
}
