//! `weatherlens bench ...`: figures for speed and memory (never asserted by tests).

use anyhow::Result;
use burn::prelude::Device;
use clap::{Args, Subcommand, ValueEnum};
use weatherlens_models::config::ProcessorKind;
use weatherlens_training::bench;

#[derive(Debug, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    what: BenchCommand,
}

#[derive(Debug, Subcommand)]
enum BenchCommand {
    /// The processor-only train step of DESIGN.md (forward + backward + Adam update).
    Processor {
        #[arg(long, default_value_t = 4)]
        mesh_level: u32,
        #[arg(long, default_value_t = 128)]
        latent: usize,
        #[arg(long, default_value_t = 8)]
        layers: usize,
        /// Timed steps after one warm-up step.
        #[arg(long, default_value_t = 5)]
        steps: usize,
        #[arg(long, value_enum, default_value_t = KindArg::Gnn)]
        kind: KindArg,
        /// Print one JSON object on stdout.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum KindArg {
    Gnn,
    Transformer,
    Shared,
}

impl From<KindArg> for ProcessorKind {
    fn from(kind: KindArg) -> Self {
        match kind {
            KindArg::Gnn => ProcessorKind::Gnn,
            KindArg::Transformer => ProcessorKind::Transformer,
            KindArg::Shared => ProcessorKind::Shared,
        }
    }
}

pub fn run(args: BenchArgs, device: &Device) -> Result<()> {
    match args.what {
        BenchCommand::Processor {
            mesh_level,
            latent,
            layers,
            steps,
            kind,
            json,
        } => {
            let result =
                bench::processor_step(mesh_level, latent, layers, steps, kind.into(), device)?;
            if json {
                super::print_json(&result)
            } else {
                println!(
                    "processor train step, R{mesh_level} D{latent} L{layers} ({} nodes, {} edges) on {}: \
                     {:.1} ms/step (median of {}), {:.1} GFLOP/s, peak RSS {}",
                    result.nodes,
                    result.edges,
                    result.backend,
                    result.ms_per_step,
                    result.steps,
                    result.gflops,
                    result
                        .peak_rss_mib
                        .map_or("n/a".to_string(), |m| format!("{m:.0} MiB"))
                );
                Ok(())
            }
        }
    }
}
