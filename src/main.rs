//! `weatherlens`: the command line over the models, training and probes crates. Only argument parsing and
//! wiring live here; every computation is a library call.

mod commands;
mod device;

use clap::Parser;

/// A pooling allocator: burn's large temporary buffers are reused instead of being returned to the OS and
/// faulted in again (page faults were half the CPU time of a mesh-level-5 step with glibc malloc).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    let cli = commands::Cli::parse();
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(cli.log_level()));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .init();
    if let Err(error) = commands::run(cli) {
        eprintln!("error: {error:#}");
        std::process::exit(1);
    }
}
