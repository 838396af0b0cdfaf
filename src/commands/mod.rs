//! One module per subcommand; this file holds the top-level parser and the dispatch.

mod analyze;
mod bench;
mod compare;
mod data;
mod demo;
mod errors;
mod evaluate;
mod forecast;
mod import;
mod jacobian;
mod probe;
mod study;
mod summary;
mod train;

use anyhow::Result;
use clap::{Parser, Subcommand};
use weatherlens_models::fused::Kernels;

use weatherlens::device::DeviceKind;

/// Probe the physics of AI weather models: build, train and dissect GraphCast-style emulators.
#[derive(Debug, Parser)]
#[command(name = "weatherlens", version, about)]
pub struct Cli {
    /// Compute backend.
    #[arg(long, global = true, value_enum, default_value_t = DeviceKind::Flex)]
    pub device: DeviceKind,
    /// `fused` (default) or `plain`: `plain` runs the model with burn's own ops (the reference implementation)
    /// instead of the fused CPU kernels; results agree to float round-off (benchmarks and checks).
    #[arg(long, global = true, default_value = "fused", value_parser = ["fused", "plain"])]
    pub kernels: String,
    /// More log output (-v info is the default; -vv debug).
    #[arg(short, long, global = true, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Only warnings and errors on stderr.
    #[arg(short, long, global = true)]
    pub quiet: bool,
    #[command(subcommand)]
    pub command: Command,
}

impl Cli {
    pub fn log_level(&self) -> &'static str {
        match (self.quiet, self.verbose) {
            (true, _) => "warn",
            (false, 0 | 1) => "info",
            (false, _) => "debug",
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The main job: built-in data -> train configs/demo.toml -> evaluate -> runs/demo/report.md.
    Demo(demo::DemoArgs),
    /// Build a config's model and print its size, graph and forward time.
    Summary(summary::SummaryArgs),
    /// Make, inspect and summarise data sets.
    Data(data::DataArgs),
    /// Train a model from a run config.
    Train(train::TrainArgs),
    /// Import a published model as a checkpoint folder (`import graphcast`).
    Import(import::ImportArgs),
    /// Forecast N 6-hour steps from an input file's first two times into a NetCDF file.
    Forecast(forecast::ForecastArgs),
    /// Forecast the test split and score against persistence, climatology and physics.
    Evaluate(evaluate::EvaluateArgs),
    /// Record X_i, v_i and X_{i+1} at the processor's hook points.
    Probe(probe::ProbeArgs),
    /// Velocity decay, straightness and spectral centroid of a recording.
    Analyze(analyze::AnalyzeArgs),
    /// Gradient-flow diagnostics: Jacobian asymmetry and interaction range of each processor step.
    Jacobian(jacobian::JacobianArgs),
    /// Alignment (CKA, CKNNA, mutual kNN) between two representations.
    Compare(compare::CompareArgs),
    /// Correlation of per-case forecast errors between models (from errors.csv files).
    Errors(errors::ErrorsArgs),
    /// Train, evaluate, probe and compare a list or grid of runs.
    Study(study::StudyArgs),
    /// Benchmarks that print figures.
    Bench(bench::BenchArgs),
}

/// What every command may need besides its own arguments.
pub struct Context {
    pub device: burn::prelude::Device,
    /// The `--device` flag it came from (passed on to jobs this process submits).
    pub device_kind: DeviceKind,
    pub kernels: Kernels,
    /// Show progress bars (not with `--quiet`).
    pub progress: bool,
}

pub fn run(cli: Cli) -> Result<()> {
    let context = Context {
        device: cli.device.device()?,
        device_kind: cli.device,
        kernels: cli.kernels.parse().map_err(anyhow::Error::msg)?,
        progress: !cli.quiet,
    };
    match cli.command {
        Command::Demo(args) => demo::run(args, &context),
        Command::Summary(args) => summary::run(args, &context),
        Command::Data(args) => data::run(args, &context),
        Command::Import(args) => import::run(args, &context),
        Command::Forecast(args) => forecast::run(args, &context),
        Command::Evaluate(args) => evaluate::run(args, &context),
        Command::Train(args) => train::run(args, &context),
        Command::Probe(args) => probe::run(args, &context),
        Command::Analyze(args) => analyze::run(args),
        Command::Jacobian(args) => jacobian::run(args, &context),
        Command::Compare(args) => compare::run(args),
        Command::Errors(args) => errors::run(args),
        Command::Study(args) => study::run(args, &context),
        Command::Bench(args) => bench::run(args, &context),
    }
}

/// Print `value` as the one JSON object on stdout (`--json` contract of DESIGN.md).
pub fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}
