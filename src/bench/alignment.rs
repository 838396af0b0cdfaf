//! Speed of the alignment metrics on random data (the target: n = 10,000, d = 256 in under 2 s on two cores).

use std::time::Instant;

use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use weatherlens_probes::alignment::{
    AlignmentError, HsicEstimator, Representation, alignment_metrics, cka, cknna,
};

/// Wall-clock seconds of the metrics on random data of the given size (uniform in [−1, 1), X and Y independent).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct AlignmentBenchmark {
    pub samples: usize,
    pub features: usize,
    pub k: usize,
    /// Rayon worker threads.
    pub threads: usize,
    /// [`cka`], biased and unbiased (two calls).
    pub cka_seconds: f64,
    /// [`cknna`] alone (both neighbour searches included).
    pub cknna_seconds: f64,
    /// [`alignment_metrics`]: the four metrics sharing one neighbour search per side.
    pub all_metrics_seconds: f64,
}

/// Times CKA, CKNNA and all four metrics at the given size; the target is n = 10,000, d = 256 in under 2 s on
/// two cores.
pub fn alignment_speed(
    samples: usize,
    features: usize,
    k: usize,
    seed: u64,
) -> Result<AlignmentBenchmark, AlignmentError> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut random =
        |count: usize| -> Vec<f64> { (0..count).map(|_| rng.random_range(-1.0..1.0)).collect() };
    let (x_data, y_data) = (random(samples * features), random(samples * features));
    let x = Representation::new("benchmark X", &x_data, samples, features)?;
    let y = Representation::new("benchmark Y", &y_data, samples, features)?;
    let start = Instant::now();
    cka(&x, &y, HsicEstimator::Biased)?;
    cka(&x, &y, HsicEstimator::Unbiased)?;
    let cka_seconds = start.elapsed().as_secs_f64();
    let start = Instant::now();
    cknna(&x, &y, k)?;
    let cknna_seconds = start.elapsed().as_secs_f64();
    let start = Instant::now();
    alignment_metrics(&x, &y, k)?;
    let all_metrics_seconds = start.elapsed().as_secs_f64();
    Ok(AlignmentBenchmark {
        samples,
        features,
        k,
        threads: rayon::current_num_threads(),
        cka_seconds,
        cknna_seconds,
        all_metrics_seconds,
    })
}
