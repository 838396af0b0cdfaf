//! Speed of the spherical-harmonic transform on its alias-free Gaussian grid.

use std::time::Instant;

use serde::Serialize;
use weatherlens_models::sht::Sht;

use super::median;

/// Median times of one analysis and one synthesis.
#[derive(Debug, Clone, Serialize)]
pub struct ShtBenchmark {
    pub truncation: usize,
    pub n_lat: usize,
    pub n_lon: usize,
    /// Median wall time of one grid -> coefficients transform, milliseconds.
    pub analysis_ms: f64,
    /// Median wall time of one coefficients -> grid transform, milliseconds.
    pub synthesis_ms: f64,
    pub repeats: usize,
}

/// Analysis and synthesis times at T42 (64 × 128) and T85 (128 × 256), median of `repeats` each.
pub fn benchmark_sht(repeats: usize) -> Vec<ShtBenchmark> {
    [42, 85]
        .iter()
        .map(|&truncation| transform_times(truncation, repeats))
        .collect()
}

/// Times analysis and synthesis of a smooth field on the alias-free grid of `truncation`.
fn transform_times(truncation: usize, repeats: usize) -> ShtBenchmark {
    let sht = Sht::with_alias_free_grid(truncation);
    let grid: Vec<f64> = (0..sht.n_lat() * sht.n_lon())
        .map(|i| ((i % sht.n_lon()) as f64 * 0.1).sin() * sht.sin_lat()[i / sht.n_lon()])
        .collect();
    let repeats = repeats.max(1);
    let mut coeffs = sht.analyse(&grid);
    let analysis: Vec<f64> = (0..repeats)
        .map(|_| {
            let start = Instant::now();
            coeffs = sht.analyse(std::hint::black_box(&grid));
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    let synthesis: Vec<f64> = (0..repeats)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(sht.synthesise(std::hint::black_box(&coeffs)));
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ShtBenchmark {
        truncation,
        n_lat: sht.n_lat(),
        n_lon: sht.n_lon(),
        analysis_ms: median(&analysis),
        synthesis_ms: median(&synthesis),
        repeats,
    }
}
