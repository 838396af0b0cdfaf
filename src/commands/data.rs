//! `weatherlens data ...`: make the built-in data set, inspect a file, per-channel statistics.

use std::path::PathBuf;

use anyhow::Result;
use clap::{Args, Subcommand};
use weatherlens_training::atmosphere::AtmosphereConfig;
use weatherlens_training::config::SyntheticConfig;
use weatherlens_training::data::make_synthetic;
use weatherlens_training::dataset::{self, AxisChoices, VariableSelection};

use weatherlens::progress;

use super::{Context, print_json};

#[derive(Debug, Args)]
pub struct DataArgs {
    #[command(subcommand)]
    what: DataCommand,
}

#[derive(Debug, Subcommand)]
enum DataCommand {
    /// Spin up the built-in shallow-water atmosphere and write 6-hourly fields (ERA5 layout NetCDF4).
    MakeSynthetic {
        /// Output folder: OUT/synthetic.nc and the settings it was made with, OUT/synthetic.json (a run config
        /// whose `[data.synthetic]` has the same settings uses the file as it is).
        #[arg(long)]
        out: PathBuf,
        /// Days of 6-hourly output after spin-up.
        #[arg(long, default_value_t = 730.0)]
        days: f64,
        /// Output grid spacing in degrees (5.625 = 32 x 64, WeatherBench's coarsest).
        #[arg(long, default_value_t = 5.625)]
        resolution: f64,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Settings of the atmosphere (TOML, the `AtmosphereConfig` fields); flags above override.
        #[arg(long)]
        config: Option<PathBuf>,
    },
    /// Dimensions, variables (and how WeatherLens reads each), time axis and missing-value count of a NetCDF-4,
    /// netCDF-3 file or Zarr store.
    Inspect {
        file: PathBuf,
        #[arg(long)]
        json: bool,
        /// The ensemble member to resolve a `number` axis to.
        #[arg(long)]
        member: Option<i64>,
    },
    /// Mean, std and std of 6-hour differences of every channel of a NetCDF-4, netCDF-3 file, a folder of them
    /// (one series) or a Zarr store.
    Stats {
        file: PathBuf,
        #[arg(long)]
        json: bool,
        /// Only these variables (repeat the flag; default: every field).
        #[arg(long = "variable")]
        variables: Vec<String>,
        /// The ensemble member to read along a `number` axis.
        #[arg(long)]
        member: Option<i64>,
    },
}

pub fn run(args: DataArgs, context: &Context) -> Result<()> {
    match args.what {
        DataCommand::MakeSynthetic {
            out,
            days,
            resolution,
            seed,
            config,
        } => {
            let mut atmosphere = match &config {
                Some(path) => AtmosphereConfig::load(path)?,
                None => AtmosphereConfig::default(),
            };
            let n_lat = (180.0 / resolution).round() as usize;
            anyhow::ensure!(
                resolution > 0.0 && n_lat >= 4 && (180.0 / resolution - n_lat as f64).abs() < 1e-9,
                "--resolution {resolution}: 180 must be a whole multiple of it (e.g. 5.625, 2.8125, 1.40625)"
            );
            atmosphere.output_n_lat = n_lat;
            atmosphere.output_n_lon = 2 * n_lat;
            atmosphere.seed = seed;
            let bar = progress::bar("simulate", (4.0 * days).round() as u64, context.progress);
            let synthetic = SyntheticConfig { days, atmosphere };
            let file = make_synthetic(&out, &synthetic, |done, _| bar.set_position(done as u64))?;
            bar.finish_and_clear();
            tracing::info!(
                "wrote {} ({} days, {} x {} grid) and its settings",
                file.display(),
                days,
                synthetic.atmosphere.output_n_lat,
                synthetic.atmosphere.output_n_lon
            );
            Ok(())
        }
        DataCommand::Inspect { file, json, member } => {
            let inspection = dataset::inspect_with(&file, &AxisChoices { member })?;
            if json {
                print_json(&inspection)
            } else {
                println!("{}", serde_json::to_string_pretty(&inspection)?);
                Ok(())
            }
        }
        DataCommand::Stats {
            file,
            json,
            variables,
            member,
        } => {
            let selection: Vec<VariableSelection> = variables
                .iter()
                .map(|v| VariableSelection::new(v, &[]))
                .collect();
            let stats = dataset::stats_with(&file, &selection, &AxisChoices { member })?;
            for note in &stats.notes {
                tracing::warn!("{}: {note}", file.display());
            }
            if json {
                print_json(&stats)
            } else {
                println!(
                    "{:<10} {:>14} {:>14} {:>14} {:>10}",
                    "channel", "mean", "std", "diff_std", "missing"
                );
                let show = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.6e}"));
                for c in &stats.channels {
                    println!(
                        "{:<10} {:>14} {:>14} {:>14} {:>10}{}",
                        c.name,
                        show(c.mean),
                        show(c.std),
                        show(c.diff_std),
                        c.missing,
                        if c.is_static { "  static" } else { "" }
                    );
                }
                Ok(())
            }
        }
    }
}
