//! `weatherlens import graphcast --params PARAMS.npz --stats STATS_DIR --out CKPT_DIR`: a published GraphCast
//! checkpoint as a WeatherLens checkpoint folder.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use weatherlens::stages::import::import_graphcast;

use super::Context;

#[derive(Debug, Args)]
pub struct ImportArgs {
    #[command(subcommand)]
    pub kind: ImportKind,
}

#[derive(Debug, Subcommand)]
pub enum ImportKind {
    /// DeepMind's GraphCast: a `params/*.npz` with the `stats/*.nc` published beside it.
    Graphcast(GraphcastArgs),
}

#[derive(Debug, Args)]
pub struct GraphcastArgs {
    /// The checkpoint, e.g. `GraphCast_small - ERA5 1979-2015 - resolution 1.0 - ....npz`.
    #[arg(long)]
    pub params: PathBuf,
    /// The folder holding mean_by_level.nc, stddev_by_level.nc and diffs_stddev_by_level.nc.
    #[arg(long)]
    pub stats: PathBuf,
    /// The checkpoint folder to write (must not exist).
    #[arg(long)]
    pub out: PathBuf,
    /// Print what was imported as one JSON object on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: ImportArgs, context: &Context) -> Result<()> {
    let ImportKind::Graphcast(args) = args.kind;
    let summary = import_graphcast(&args.params, &args.stats, &args.out, &context.device)?;
    if args.json {
        return super::print_json(&summary);
    }
    println!(
        "imported GraphCast (mesh {}, latent {}, {} processor steps, {} parameters, {} input / {} output channels) into {}",
        summary.mesh_size,
        summary.latent_size,
        summary.processor_steps,
        summary.parameters,
        summary.input_channels,
        summary.output_channels,
        summary.out.display()
    );
    Ok(())
}
