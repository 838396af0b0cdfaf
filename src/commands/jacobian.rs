//! `weatherlens jacobian --checkpoint DIR`: gradient-flow diagnostics of each processor step of a trained model
//! — how far v_i is from a gradient field (Jacobian asymmetry) and how far its inputs reach on the sphere.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use weatherlens::report::jacobian::jacobian_markdown;
use weatherlens::stages::jacobian::{JacobianOptions, diagnose, diagnose_graphcast, write_report};
use weatherlens::stages::loaded::{LoadedModel, load};
use weatherlens::stages::{output_unit, run_folder};
use weatherlens_probes::jacobian::{AsymmetryOptions, ProbeDistribution, RangeOptions};

use super::Context;
use super::probe::{parse_layers, parse_split};

#[derive(Debug, Args)]
pub struct JacobianArgs {
    /// A run folder (its newest checkpoint is used), a checkpoint folder or an imported GraphCast folder.
    #[arg(long)]
    pub checkpoint: PathBuf,
    /// For an imported GraphCast: the input file whose first forecast step gives the states X_i (--sample
    /// picks the batch member).
    #[arg(long)]
    pub inputs: Option<PathBuf>,
    /// Layers to diagnose: `all` or a comma list like `0,3,7`.
    #[arg(long, default_value = "all")]
    pub layers: String,
    /// Probe vectors for the asymmetry estimate (at least 2).
    #[arg(long, default_value_t = 8)]
    pub probes: usize,
    /// Receiver nodes the influence profile is averaged over.
    #[arg(long, default_value_t = 4)]
    pub receivers: usize,
    /// Split the sample giving the states X_i comes from: train, val or test.
    #[arg(long, default_value = "test")]
    pub split: String,
    /// Which sample of the split (0 = the first initial time).
    #[arg(long, default_value_t = 0)]
    pub sample: usize,
    /// Width of the distance bins of influence.csv, degrees.
    #[arg(long, default_value_t = 2.5)]
    pub bin_deg: f64,
    /// Seed for the probe vectors and the receiver nodes.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output folder (default: <run folder>/jacobian).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Print jacobian.json on stdout.
    #[arg(long)]
    pub json: bool,
}

pub fn run(args: JacobianArgs, context: &Context) -> Result<()> {
    if args.probes < 2 {
        bail!("--probes {}: at least 2 are needed", args.probes);
    }
    if args.receivers == 0 {
        bail!("--receivers 0: at least 1 is needed");
    }
    let options = JacobianOptions {
        layers: parse_layers(&args.layers)?,
        split: parse_split(&args.split)?,
        sample: args.sample,
        asymmetry: AsymmetryOptions {
            probes: args.probes,
            distribution: ProbeDistribution::Rademacher,
            seed: args.seed,
            ..AsymmetryOptions::default()
        },
        range: RangeOptions {
            receivers: args.receivers,
            seed: args.seed,
            bin_deg: args.bin_deg,
            ..RangeOptions::default()
        },
    };
    let model = load(&args.checkpoint, &context.device, context.kernels)?;
    let out = args
        .out
        .unwrap_or_else(|| run_folder(&args.checkpoint).join("jacobian"));
    let unit = output_unit(&out, "jacobian.json")?;
    let report = match (&model, &args.inputs) {
        (LoadedModel::Trained(restored), None) => diagnose(restored, &options)?,
        (LoadedModel::GraphCast(imported), Some(inputs)) => {
            diagnose_graphcast(imported, inputs, &options)?
        }
        (LoadedModel::Trained(_), Some(_)) => bail!(
            "--inputs: {} is a WeatherLens run, diagnosed on a sample of its own data (--split, --sample); \
             --inputs is for imported GraphCast checkpoints",
            args.checkpoint.display()
        ),
        (LoadedModel::GraphCast(_), None) => bail!(
            "{} is an imported GraphCast, which has no data of its own: give --inputs FILE",
            args.checkpoint.display()
        ),
    };
    write_report(&report, unit)?;
    if args.json {
        super::print_json(&report)
    } else {
        println!("{}", jacobian_markdown(&report));
        tracing::info!("wrote {}", out.display());
        Ok(())
    }
}
