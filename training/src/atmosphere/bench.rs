//! Figures for the CLI's `bench` command: transform speed and simulated days per wall-clock second.

use std::time::Instant;

use weatherlens_models::sht::{self, ShtBenchmark};

use super::AtmosphereError;
use super::config::AtmosphereConfig;
use super::simulate::simulate;

/// Throughput of [`simulate`] at one configuration.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SimulationBenchmark {
    pub truncation: usize,
    pub time_step_s: f64,
    /// Days integrated, spin-up included.
    pub simulated_days: f64,
    pub wall_s: f64,
    pub days_per_second: f64,
    /// Rayon worker threads available during the run.
    pub threads: usize,
}

/// Analysis and synthesis times at T42 (64 × 128) and T85 (128 × 256), median of `repeats` each.
pub fn benchmark_sht(repeats: usize) -> Vec<ShtBenchmark> {
    [42, 85]
        .iter()
        .map(|&truncation| sht::benchmark(truncation, repeats))
        .collect()
}

/// Times a whole [`simulate`] call (spin-up, stepping, snapshots) for `spin_up_days + days`.
pub fn benchmark_simulation(
    config: &AtmosphereConfig,
    days: f64,
) -> Result<SimulationBenchmark, AtmosphereError> {
    let start = Instant::now();
    simulate(config, days)?;
    let wall_s = start.elapsed().as_secs_f64();
    let simulated_days = config.spin_up_days + days;
    Ok(SimulationBenchmark {
        truncation: config.truncation,
        time_step_s: config.time_step_s,
        simulated_days,
        wall_s,
        days_per_second: simulated_days / wall_s,
        threads: rayon::current_num_threads(),
    })
}
