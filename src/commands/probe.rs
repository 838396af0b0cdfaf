//! `weatherlens probe`: record X_i, v_i, X_{i+1} of a model's processor and the model's input fields at the
//! nodes — a trained model over samples of its data (with `--untrained`, the same architecture at
//! initialisation: the untrained control of alignment), an imported GraphCast over an input file (`--inputs`).

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use weatherlens::stages::loaded::{LoadedModel, load};
use weatherlens::stages::probe::{
    CaptureOptions, InputTimes, probe, probe_graphcast, probe_untrained,
};
use weatherlens::stages::run_folder;
use weatherlens_probes::record::NodeSelection;
use weatherlens_training::windows::Split;

use super::Context;

#[derive(Debug, Args)]
pub struct ProbeArgs {
    /// A run folder, a checkpoint folder or an imported GraphCast folder.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// For an imported GraphCast: the input file whose first two times start the recorded forecast step (one
    /// sample per batch member).
    #[arg(long)]
    pub inputs: Option<PathBuf>,
    /// With --inputs: one sample per window of two consecutive times (each followed by a third) instead.
    #[arg(long, requires = "inputs")]
    pub all_times: bool,
    /// Output folder (default: <run folder>/probes, or <run folder>/untrained with --untrained).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Record the run's architecture at initialisation (its config's seed, no training) on the same samples and
    /// inputs: the untrained control for `compare --untrained-a/-b` (an imported GraphCast: its architecture with
    /// WeatherLens's seeded initialisation, on the same --inputs).
    #[arg(long)]
    pub untrained: bool,
    /// Number of initial times to record (trained models).
    #[arg(long, default_value_t = 16)]
    pub samples: usize,
    /// Hours between recorded initial times (trained models).
    #[arg(long, default_value_t = 24)]
    pub every_hours: i64,
    /// Split the initial times come from: train, val or test (trained models).
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
    let model = load(&args.checkpoint, &context.device, context.kernels)?;
    let out = args.out.unwrap_or_else(|| {
        run_folder(&args.checkpoint).join(if args.untrained {
            "untrained"
        } else {
            "probes"
        })
    });
    let meta = match (&model, &args.inputs) {
        (LoadedModel::Trained(restored), None) if args.untrained => {
            probe_untrained(restored, &options, &out)?
        }
        (LoadedModel::Trained(restored), None) => probe(restored, &options, &out)?,
        (LoadedModel::GraphCast(imported), Some(inputs)) => {
            let times = if args.all_times {
                InputTimes::All
            } else {
                InputTimes::First
            };
            probe_graphcast(imported, inputs, times, &options, &out, args.untrained)?
        }
        (LoadedModel::Trained(_), Some(_)) => bail!(
            "--inputs: {} is a WeatherLens run, probed on samples of its own data (--split, --samples); \
             --inputs is for imported GraphCast checkpoints",
            args.checkpoint.display()
        ),
        (LoadedModel::GraphCast(_), None) => bail!(
            "{} is an imported GraphCast, which has no data of its own: give --inputs FILE (GraphCast's \
             example-batch or an ERA5 layout)",
            args.checkpoint.display()
        ),
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
