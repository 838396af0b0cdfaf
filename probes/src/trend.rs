//! A verdict on a quantity's trend over depth that needs both significance and size, so that a rank trend over
//! values that barely change (increments ending in a LayerNorm: |v_last|/|v_0| = 1.000, ρ = 0.81, p = 0.02) is
//! not called growth.
//!
//! Over the layers' values y_0..y_{L−1}: Spearman's ρ against depth with its exact permutation p-value
//! ([`rank_trend_p_value`]), and the size ratio r = y_last / y_0. The trend **falls** when p < [`SIGNIFICANCE`],
//! ρ < 0 and r < [`SIZE_BAND`]\[0\]; it **rises** when p < [`SIGNIFICANCE`], ρ > 0 and r > [`SIZE_BAND`]\[1\];
//! otherwise there is **no trend**, with the reason (not significant; significant but too small; ρ and r
//! disagree). It is **undetermined** with undefined values (y_0 = 0, NaN) and with fewer than 5 layers, where no
//! order of the values reaches p < 0.05 (the smallest two-sided p over L layers is 2/L!: 1/3 for 3, 1/12 for 4).

use serde::{Deserialize, Serialize};

use crate::stats::{rank_trend, rank_trend_p_value};

/// Largest permutation p-value that counts as a trend.
pub const SIGNIFICANCE: f64 = 0.05;
/// Size ratios y_last / y_0 inside this band are too small a change to call, whatever the p-value.
pub const SIZE_BAND: [f64; 2] = [0.9, 1.1];
/// Fewest layers a trend test is run on (with 2, every order has |ρ| = 1).
pub const MIN_LAYERS: usize = 3;

/// What the values do over depth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Falls,
    Rises,
    NoTrend,
    Undetermined,
}

/// A trend over depth with the figures behind its verdict.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Trend {
    /// Spearman ρ of the values against depth (NaN when undefined).
    pub rho: f64,
    /// Two-sided permutation p-value of ρ over the layers.
    pub p_value: f64,
    /// y_last / y_0 (NaN when y_0 = 0).
    pub last_over_first: f64,
    pub direction: Direction,
    /// Why, in words (with the thresholds).
    pub reason: String,
}

impl Trend {
    /// A verdict withheld, with the reason.
    pub fn undetermined(reason: impl Into<String>) -> Self {
        Self {
            rho: f64::NAN,
            p_value: f64::NAN,
            last_over_first: f64::NAN,
            direction: Direction::Undetermined,
            reason: reason.into(),
        }
    }
}

/// The trend of `values` (one per layer, in depth order); `seed` drives the permutation p-value beyond 8 layers.
pub fn trend(values: &[f64], seed: u64) -> Trend {
    if values.len() < MIN_LAYERS {
        return Trend::undetermined(format!(
            "{} layers: a trend over depth needs at least {MIN_LAYERS}",
            values.len()
        ));
    }
    if let Some(bad) = values.iter().position(|v| !v.is_finite()) {
        return Trend::undetermined(format!("the value at depth position {bad} is undefined"));
    }
    let smallest_p = 2.0 / (1..=values.len()).map(|k| k as f64).product::<f64>();
    let constant = values.iter().all(|&v| v == values[0]);
    if smallest_p >= SIGNIFICANCE && !constant {
        return Trend::undetermined(format!(
            "{} layers: no order of {} values reaches p < {SIGNIFICANCE} (the smallest permutation p is \
             2/{}! = {smallest_p:.3})",
            values.len(),
            values.len(),
            values.len()
        ));
    }
    let (first, last) = (values[0], values[values.len() - 1]);
    let last_over_first = if first != 0.0 { last / first } else { f64::NAN };
    let rho = rank_trend(values);
    let p_value = rank_trend_p_value(values, seed);
    let [low, high] = SIZE_BAND;
    let (direction, reason) = if !rho.is_finite() {
        (
            Direction::NoTrend,
            "the value is the same at every layer".to_string(),
        )
    } else if !last_over_first.is_finite() {
        return Trend {
            rho,
            p_value,
            last_over_first,
            direction: Direction::Undetermined,
            reason: "the first layer's value is 0, so the size of a change is undefined".into(),
        };
    } else if p_value >= SIGNIFICANCE {
        (
            Direction::NoTrend,
            format!("no significant rank trend (p = {p_value:.3} ≥ {SIGNIFICANCE})"),
        )
    } else if rho < 0.0 && last_over_first < low {
        (
            Direction::Falls,
            format!(
                "significant (p = {p_value:.3}) and large (last / first = {last_over_first:.3} < {low})"
            ),
        )
    } else if rho > 0.0 && last_over_first > high {
        (
            Direction::Rises,
            format!(
                "significant (p = {p_value:.3}) and large (last / first = {last_over_first:.3} > {high})"
            ),
        )
    } else if (low..=high).contains(&last_over_first) {
        (
            Direction::NoTrend,
            format!(
                "a significant rank trend (ρ = {rho:.2}, p = {p_value:.3}) but last / first = \
                 {last_over_first:.3} lies within [{low}, {high}]: too small a change to call"
            ),
        )
    } else {
        (
            Direction::NoTrend,
            format!(
                "the rank trend (ρ = {rho:.2}) and last / first = {last_over_first:.3} point in opposite \
                 directions"
            ),
        )
    };
    Trend {
        rho,
        p_value,
        last_over_first,
        direction,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_verdict_needs_significance_and_size() {
        // Halving at every layer: ρ = −1, p = 2/5! = 1/60, ratio 1/16.
        let halving = trend(&[16.0, 8.0, 4.0, 2.0, 1.0], 0);
        assert_eq!(halving.direction, Direction::Falls);
        assert!((halving.p_value - 2.0 / 120.0).abs() < 1e-12);
        assert_eq!(halving.last_over_first, 1.0 / 16.0);
        // Strictly increasing but by 0.01 % in all: significant, too small.
        let tiny = trend(&[1.0, 1.00001, 1.00002, 1.00003, 1.0001], 0);
        assert_eq!(tiny.direction, Direction::NoTrend);
        assert!(tiny.reason.contains("too small"), "{}", tiny.reason);
        let grows = trend(&[1.0, 2.0, 3.0, 4.0, 5.0], 0);
        assert_eq!(grows.direction, Direction::Rises);
        // Three or four layers can never reach p < 0.05.
        let three = trend(&[3.0, 2.0, 1.0], 0);
        assert_eq!(three.direction, Direction::Undetermined);
        assert!(three.reason.contains("2/3! = 0.333"), "{}", three.reason);
        assert_eq!(
            trend(&[4.0, 3.0, 2.0, 1.0], 0).direction,
            Direction::Undetermined
        );
        // Not significant: (1, 3, 2, 5, 4) has ρ = 0.8, p = 0.133.
        assert_eq!(
            trend(&[1.0, 3.0, 2.0, 5.0, 4.0], 0).direction,
            Direction::NoTrend
        );
        assert_eq!(trend(&[1.0, 2.0], 0).direction, Direction::Undetermined);
        assert_eq!(
            trend(&[0.0, 1.0, 2.0, 3.0, 4.0], 0).direction,
            Direction::Undetermined
        );
        assert_eq!(
            trend(&[1.0, f64::NAN, 2.0], 0).direction,
            Direction::Undetermined
        );
        let flat = trend(&[2.0, 2.0, 2.0, 2.0], 0);
        assert_eq!(flat.direction, Direction::NoTrend);
    }
}
