//! One module per subcommand; this file holds the top-level parser and the dispatch.

mod bench;

use anyhow::Result;
use clap::{Parser, Subcommand};

use crate::device::DeviceKind;

/// Probe the physics of AI weather models: build, train and dissect GraphCast-style emulators.
#[derive(Debug, Parser)]
#[command(name = "weatherlens", version, about)]
pub struct Cli {
    /// Compute backend.
    #[arg(long, global = true, value_enum, default_value_t = DeviceKind::Flex)]
    pub device: DeviceKind,
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
    /// Benchmarks that print figures.
    Bench(bench::BenchArgs),
}

pub fn run(cli: Cli) -> Result<()> {
    let device = cli.device.device()?;
    match cli.command {
        Command::Bench(args) => bench::run(args, &device),
    }
}

/// Print `value` as the one JSON object on stdout (`--json` contract of DESIGN.md).
pub fn print_json<T: serde::Serialize>(value: &T) -> Result<()> {
    println!("{}", serde_json::to_string(value)?);
    Ok(())
}
