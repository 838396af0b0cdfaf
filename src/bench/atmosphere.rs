//! Simulated days per wall-clock second of the built-in atmosphere.

use std::time::Instant;

use weatherlens_training::atmosphere::{AtmosphereConfig, AtmosphereError, simulate};

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
