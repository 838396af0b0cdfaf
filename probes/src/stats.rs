//! The statistics every analysis shares: quantiles and medians, rank and linear correlation, a permutation
//! test of a monotone trend, jackknife estimates, and seeded random streams and subsamples that give the same
//! draws whatever thread runs them.

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Reproducible random stream `stream` of `seed`, independent of the thread that draws it (ChaCha8's 2⁶⁴
/// streams per seed).
pub fn stream_rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// `count` distinct indices out of `0..total` drawn with `seed`, ascending (all of them if `count >= total`).
pub fn seeded_subsample(total: usize, count: usize, seed: u64) -> Vec<usize> {
    if count >= total {
        return (0..total).collect();
    }
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut picked = rand::seq::index::sample(&mut rng, total, count).into_vec();
    picked.sort_unstable();
    picked
}

/// One standard normal value by Box–Muller (two uniforms; the pair's second normal is dropped).
pub fn standard_normal(rng: &mut impl Rng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random::<f64>();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// `total` indices drawn with replacement (a bootstrap resample) from stream `draw` of `seed`.
pub fn bootstrap_indices(total: usize, seed: u64, draw: u64) -> Vec<usize> {
    let mut rng = stream_rng(seed, draw);
    (0..total).map(|_| rng.random_range(0..total)).collect()
}

/// The finite values, ascending (an undefined draw such as 0/0 carries no information).
pub fn sorted_finite(mut values: Vec<f64>) -> Vec<f64> {
    values.retain(|value| value.is_finite());
    values.sort_by(f64::total_cmp);
    values
}

/// The q-quantile of ascending `sorted` values by linear interpolation between order statistics (numpy's
/// default "linear", Hyndman & Fan 1996 type 7): position q·(n − 1). NaN for an empty slice.
pub fn quantile_sorted(sorted: &[f64], q: f64) -> f64 {
    let Some(last) = sorted.len().checked_sub(1) else {
        return f64::NAN;
    };
    let position = q.clamp(0.0, 1.0) * last as f64;
    let below = position.floor() as usize;
    let above = (below + 1).min(last);
    sorted[below] + (position - below as f64) * (sorted[above] - sorted[below])
}

/// The median of the finite values (the 0.5 quantile, type 7); NaN when there are none.
pub fn median(values: &[f64]) -> f64 {
    quantile_sorted(&sorted_finite(values.to_vec()), 0.5)
}

/// The arithmetic mean; NaN for no values.
pub fn mean(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len() as f64
}

/// Ranks 1..n, tied values sharing the mean of their ranks.
pub fn average_ranks(values: &[f64]) -> Vec<f64> {
    let mut order: Vec<usize> = (0..values.len()).collect();
    order.sort_by(|&a, &b| values[a].total_cmp(&values[b]));
    let mut ranks = vec![0.0; values.len()];
    let mut start = 0;
    while start < order.len() {
        let mut end = start + 1;
        while end < order.len() && values[order[end]] == values[order[start]] {
            end += 1;
        }
        let shared = (start + end + 1) as f64 / 2.0;
        order[start..end]
            .iter()
            .for_each(|&index| ranks[index] = shared);
        start = end;
    }
    ranks
}

/// Pearson's correlation coefficient of two equally long series (computed on centred values). NaN when the
/// lengths differ, either series is shorter than two, or either is constant.
pub fn pearson(x: &[f64], y: &[f64]) -> f64 {
    if x.len() != y.len() || x.len() < 2 {
        return f64::NAN;
    }
    let (mean_x, mean_y) = (mean(x), mean(y));
    let (mut xy, mut xx, mut yy) = (0.0, 0.0, 0.0);
    for (a, b) in x.iter().zip(y) {
        let (da, db) = (a - mean_x, b - mean_y);
        xy += da * db;
        xx += da * da;
        yy += db * db;
    }
    if xx == 0.0 || yy == 0.0 {
        f64::NAN
    } else {
        xy / (xx * yy).sqrt()
    }
}

/// Spearman's rank correlation: Pearson's r of the average ranks (ties share a rank). NaN when either side is
/// constant or has fewer than two values.
pub fn spearman(x: &[f64], y: &[f64]) -> f64 {
    pearson(&average_ranks(x), &average_ranks(y))
}

/// Spearman's ρ of `values` against their position 0, 1, 2, ... (a monotone trend).
pub fn rank_trend(values: &[f64]) -> f64 {
    let position: Vec<f64> = (0..values.len()).map(|i| i as f64).collect();
    spearman(&position, values)
}

/// Two-sided permutation p-value of Spearman's ρ between position and `values`: the share of orderings of
/// `values` whose |ρ| is at least the observed one (exact for up to 8 values, 20,000 seeded shuffles beyond).
/// NaN for fewer than 3 values or an undefined ρ (constant values).
pub fn rank_trend_p_value(values: &[f64], seed: u64) -> f64 {
    let n = values.len();
    if n < 3 {
        return f64::NAN;
    }
    let observed = rank_trend(values).abs();
    if !observed.is_finite() {
        return f64::NAN;
    }
    let tolerance = 1e-12;
    let mut order: Vec<f64> = values.to_vec();
    if n <= 8 {
        // Heap's algorithm over all n! orders.
        let (mut hits, mut total) = (0u64, 0u64);
        let mut counters = vec![0usize; n];
        let mut count = |order: &[f64]| {
            total += 1;
            if rank_trend(order).abs() >= observed - tolerance {
                hits += 1;
            }
        };
        count(&order);
        let mut i = 0;
        while i < n {
            if counters[i] < i {
                order.swap(if i % 2 == 0 { 0 } else { counters[i] }, i);
                count(&order);
                counters[i] += 1;
                i = 0;
            } else {
                counters[i] = 0;
                i += 1;
            }
        }
        hits as f64 / total as f64
    } else {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let draws = 20_000;
        let hits = (0..draws)
            .filter(|_| {
                order.shuffle(&mut rng);
                rank_trend(&order).abs() >= observed - tolerance
            })
            .count();
        (1 + hits) as f64 / (1 + draws) as f64
    }
}

/// The jackknife standard error from the leave-one-out estimates θ̂_(k):
/// sqrt((n − 1)/n · Σ_k (θ̂_(k) − θ̄)²) (Efron & Tibshirani 1993, eq. 11.5). NaN for fewer than two.
pub fn jackknife_standard_error(leave_one_out: &[f64]) -> f64 {
    let n = leave_one_out.len();
    if n < 2 {
        return f64::NAN;
    }
    let centre = mean(leave_one_out);
    let spread = leave_one_out
        .iter()
        .map(|value| (value - centre).powi(2))
        .sum::<f64>();
    (spread * (n - 1) as f64 / n as f64).sqrt()
}

/// A 95 % interval from subsample estimates θ̂_s of a statistic whose observed value is θ̂: the 2.5 % and
/// 97.5 % points of θ̂ + scale·(θ̂_s − θ̄_s), θ̄_s the subsamples' mean, where `scale` rescales the spread of a
/// subsample of m of n rows to the full sample (√(m/(n − m)) for a delete-(n − m) jackknife).
pub fn subsample_interval(observed: f64, subsamples: Vec<f64>, scale: f64) -> [f64; 2] {
    let values = sorted_finite(subsamples);
    let centre = mean(&values);
    let rescaled = |value: f64| observed + scale * (value - centre);
    [
        rescaled(quantile_sorted(&values, 0.025)),
        rescaled(quantile_sorted(&values, 0.975)),
    ]
}

/// Mean and 95th percentile of a null distribution's finite draws, and the one-sided permutation p-value
/// (1 + #{draw ≥ observed}) / (1 + draws) of `observed`.
pub fn null_summary(observed: f64, draws: Vec<f64>) -> (f64, f64, f64) {
    let values = sorted_finite(draws);
    let count = values.len() as f64;
    let at_least = values.iter().filter(|&&value| value >= observed).count() as f64;
    let p_value = if observed.is_finite() {
        (1.0 + at_least) / (1.0 + count)
    } else {
        f64::NAN
    };
    (mean(&values), quantile_sorted(&values, 0.95), p_value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_and_median_follow_numpy_linear() {
        let sorted = [1.0, 2.0, 4.0, 8.0];
        // numpy.quantile([1, 2, 4, 8], [0, 0.25, 0.5, 0.95, 1]) = [1, 1.75, 3, 7.4, 8]
        for (q, expected) in [
            (0.0, 1.0),
            (0.25, 1.75),
            (0.5, 3.0),
            (0.95, 7.4),
            (1.0, 8.0),
        ] {
            assert!(
                (quantile_sorted(&sorted, q) - expected).abs() < 1e-12,
                "q {q}"
            );
        }
        assert_eq!(median(&[3.0, f64::NAN, 1.0, 2.0]), 2.0);
        assert!(quantile_sorted(&[], 0.5).is_nan());
    }

    #[test]
    fn correlations_of_hand_computed_series() {
        // x = 1..5, y = 2x + 1: r = 1; y reversed: r = -1; ranks of a tie share their mean.
        let x = [1.0, 2.0, 3.0, 4.0, 5.0];
        let y: Vec<f64> = x.iter().map(|v| 2.0 * v + 1.0).collect();
        assert!((pearson(&x, &y) - 1.0).abs() < 1e-12);
        let reversed: Vec<f64> = y.iter().rev().copied().collect();
        assert!((pearson(&x, &reversed) + 1.0).abs() < 1e-12);
        assert_eq!(
            average_ranks(&[10.0, 20.0, 10.0, 30.0]),
            [1.5, 3.0, 1.5, 4.0]
        );
        // Spearman is invariant to monotone maps: exp(x) ranks like x.
        let exp: Vec<f64> = x.iter().map(|v| v.exp()).collect();
        assert!((spearman(&x, &exp) - 1.0).abs() < 1e-12);
        assert!(pearson(&x, &[1.0; 5]).is_nan());
        // r of (1, 2, 3) and (1, 3, 2): centred (-1, 0, 1)·(-1, 1, 0) = 1, norms √2·√2 -> 0.5.
        assert!((pearson(&[1.0, 2.0, 3.0], &[1.0, 3.0, 2.0]) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn trend_p_value_is_exact_for_small_n() {
        // A strictly increasing series of 4: only it and its reverse reach |ρ| = 1 among 24 orders.
        assert!((rank_trend_p_value(&[1.0, 2.0, 3.0, 4.0], 0) - 2.0 / 24.0).abs() < 1e-12);
        assert!(rank_trend_p_value(&[1.0, 1.0, 1.0], 0).is_nan());
        assert!(rank_trend_p_value(&[1.0, 2.0], 0).is_nan());
    }

    #[test]
    fn jackknife_of_the_mean_is_the_standard_error_of_the_mean() {
        // For the mean, leave-one-out estimates give exactly s/√n (s the sample standard deviation).
        let values = [2.0, 4.0, 4.0, 5.0, 7.0, 9.0];
        let n = values.len();
        let total: f64 = values.iter().sum();
        let leave_one_out: Vec<f64> = values
            .iter()
            .map(|v| (total - v) / (n - 1) as f64)
            .collect();
        let m = mean(&values);
        let s = (values.iter().map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1) as f64).sqrt();
        assert!((jackknife_standard_error(&leave_one_out) - s / (n as f64).sqrt()).abs() < 1e-12);
    }

    #[test]
    fn seeded_draws_repeat_and_subsamples_are_distinct_and_sorted() {
        let a = seeded_subsample(100, 10, 7);
        assert_eq!(a, seeded_subsample(100, 10, 7));
        assert!(a.windows(2).all(|w| w[0] < w[1]) && a.len() == 10);
        assert_eq!(seeded_subsample(5, 10, 7), [0, 1, 2, 3, 4]);
        assert_eq!(bootstrap_indices(50, 3, 9), bootstrap_indices(50, 3, 9));
        assert_ne!(bootstrap_indices(50, 3, 9), bootstrap_indices(50, 3, 10));
        let (null_mean, p95, p) = null_summary(0.9, vec![0.1, 0.2, f64::NAN, 0.3, 0.95]);
        assert!((null_mean - 0.3875).abs() < 1e-12 && p95 > 0.8);
        assert!((p - 2.0 / 5.0).abs() < 1e-12);
    }

    #[test]
    fn exact_rank_trend_p_values() {
        // A perfectly monotone sequence of 4: only 2 of the 24 orders reach |ρ| = 1.
        assert!((rank_trend_p_value(&[4.0, 3.0, 2.0, 1.0], 0) - 2.0 / 24.0).abs() < 1e-12);
        // Of 5 values: 2 of 120.
        assert!((rank_trend_p_value(&[5.0, 4.0, 3.0, 2.0, 1.0], 0) - 2.0 / 120.0).abs() < 1e-12);
        // ρ = 0 is reached by every order.
        // (1, 3, 2) has ρ = 0.5, and every order of 3 values has |ρ| >= 0.5.
        assert!((rank_trend_p_value(&[1.0, 3.0, 2.0], 0) - 1.0).abs() < 1e-12);
        // Beyond 8 values the Monte Carlo estimate of a monotone trend is tiny.
        let ten: Vec<f64> = (0..10).map(|i| -(i as f64)).collect();
        assert!(rank_trend_p_value(&ten, 1) < 0.001);
    }

    #[test]
    fn quantiles_of_a_known_vector() {
        // numpy.quantile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], [0.05, 0.5, 0.95]) = [1.45, 5.5, 9.55].
        let values: Vec<f64> = (1..=10).map(f64::from).collect();
        assert!((quantile_sorted(&values, 0.05) - 1.45).abs() < 1e-12);
        assert!((quantile_sorted(&values, 0.5) - 5.5).abs() < 1e-12);
        assert!((quantile_sorted(&values, 0.95) - 9.55).abs() < 1e-12);
        assert_eq!(quantile_sorted(&[7.0], 0.3), 7.0);
        assert!(quantile_sorted(&[], 0.5).is_nan());
    }

    #[test]
    fn spearman_with_ties_matches_the_hand_computation() {
        // x = (1, 2, 3, 4, 5) ranks (1..5); y = (10, 20, 20, 40, 30) ranks (1, 2.5, 2.5, 5, 4).
        // Centred ranks: x (−2, −1, 0, 1, 2), y (−2, −0.5, −0.5, 2, 1); Σxy = 4 + 0.5 + 0 + 2 + 2 = 8.5,
        // Σx² = 10, Σy² = 4 + 0.25 + 0.25 + 4 + 1 = 9.5, ρ = 8.5 / sqrt(95).
        let rho = spearman(&[1.0, 2.0, 3.0, 4.0, 5.0], &[10.0, 20.0, 20.0, 40.0, 30.0]);
        assert!((rho - 8.5 / 95f64.sqrt()).abs() < 1e-12, "{rho}");
        assert_eq!(
            average_ranks(&[3.0, 1.0, 3.0, 3.0]),
            vec![3.0, 1.0, 3.0, 3.0]
        );
        assert!(spearman(&[1.0, 2.0, 3.0], &[5.0, 5.0, 5.0]).is_nan());
    }
}
