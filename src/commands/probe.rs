//! `weatherlens probe`: record X_i, v_i, X_{i+1} of a trained model's processor (and the model's input fields
//! at the nodes); with `--untrained`, the same architecture at initialisation (the untrained control of
//! alignment).

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use weatherlens::stages::probe::{CaptureOptions, probe, probe_untrained};
use weatherlens::stages::run_folder;
use weatherlens_probes::record::NodeSelection;
use weatherlens_training::restore::restore;
use weatherlens_training::windows::Split;

use super::Context;

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// A run folder or checkpoint folder.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// Output folder (default: <run folder>/probes, or <run folder>/untrained with --untrained).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Record the run's architecture at initialisation (its config's seed, no training) on the same samples and
    /// inputs: the untrained control for `compare --untrained-a/-b`.
    #[arg(long)]
    pub untrained: bool,
    /// Number of initial times to record.
    #[arg(long, default_value_t = 16)]
    pub samples: usize,
    /// Hours between recorded initial times.
    #[arg(long, default_value_t = 24)]
    pub every_hours: i64,
    /// Split the initial times come from: train, val or test.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Layers to record: `all` or a comma list like `0,3,7`.
    #[arg(long, default_value = "all")]
    pub layers: String,
    /// Nodes to keep: `all`, `band:LAT_MIN:LAT_MAX` or `random:COUNT[:SEED]`.
    #[arg(long, default_value = "all")]
    pub nodes: String,
}

fn parse_nodes(spec: &str) -> Result<NodeSelection> {
    let parts: Vec<&str> = spec.split(':').collect();
    Ok(match parts.as_slice() {
        ["all"] => NodeSelection::All,
        ["band", lo, hi] => NodeSelection::Band {
            lat_min: lo.parse()?,
            lat_max: hi.parse()?,
        },
        ["random", count] => NodeSelection::Random {
            count: count.parse()?,
            seed: 0,
        },
        ["random", count, seed] => NodeSelection::Random {
            count: count.parse()?,
            seed: seed.parse()?,
        },
        _ => bail!("--nodes {spec}: expected all, band:LAT_MIN:LAT_MAX or random:COUNT[:SEED]"),
    })
}

/// `all` (empty: every layer) or a comma list like `0,3,7`.
pub fn parse_layers(spec: &str) -> Result<Vec<usize>> {
    if spec == "all" {
        return Ok(Vec::new());
    }
    spec.split(',')
        .map(|l| l.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|e| anyhow::anyhow!("--layers {spec}: {e}"))
}

pub fn parse_split(split: &str) -> Result<Split> {
    Ok(match split {
        "train" => Split::Train,
        "val" => Split::Val,
        "test" => Split::Test,
        other => bail!("--split {other}: expected train, val or test"),
    })
}

pub fn run(args: ProbeArgs, context: &Context) -> Result<()> {
    let options = CaptureOptions {
        layers: parse_layers(&args.layers)?,
        nodes: parse_nodes(&args.nodes)?,
        split: parse_split(&args.split)?,
        every_hours: args.every_hours,
        samples: args.samples,
        ..CaptureOptions::default()
    };
    let restored = restore(&args.checkpoint, &context.device, context.kernels)?;
    let out = args.out.unwrap_or_else(|| {
        run_folder(&args.checkpoint).join(if args.untrained {
            "untrained"
        } else {
            "probes"
        })
    });
    let meta = if args.untrained {
        probe_untrained(&restored, &options, &out)?
    } else {
        probe(&restored, &options, &out)?
    };
    tracing::info!(
        "recorded {} hook points x {} samples x {} nodes into {}",
        meta.hooks.len(),
        meta.sample_times.len(),
        meta.node_indices.len(),
        out.display()
    );
    Ok(())
}
