//! The comparison `compare` reports: the four metrics with a permutation null and a subsample interval.

use serde::{Deserialize, Serialize};

use super::controls::{ControlledPair, compare_panel};
use super::{
    AlignmentError, DEFAULT_CI_SUBSAMPLE_FRACTION, DEFAULT_NEIGHBOURS, MetricSet, Preprocessing,
    Representation, check_pair,
};

/// A metric's permutation null: the metric with Y's samples shuffled (the pairing with X destroyed).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct NullSummary {
    pub mean: f64,
    /// 95th percentile (linear interpolation between order statistics).
    pub p95: f64,
    /// (1 + #{null ≥ observed}) / (1 + draws): the permutation p-value (Phipson & Smyth 2010).
    pub p_value: f64,
}

/// Settings of [`compare`]; serialised into the report beside the figures they produced.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompareOptions {
    /// Neighbours per sample for mutual kNN and CKNNA.
    pub k: usize,
    /// Permutation-null draws (0: no null).
    pub null_draws: usize,
    /// Confidence-interval subsamples (0: no interval).
    pub ci_draws: usize,
    /// Fraction of the samples each interval subsample keeps, in (0, 1).
    pub ci_subsample_fraction: f64,
    pub seed: u64,
    pub preprocessing: Preprocessing,
}

impl Default for CompareOptions {
    fn default() -> Self {
        Self {
            k: DEFAULT_NEIGHBOURS,
            null_draws: 100,
            ci_draws: 50,
            ci_subsample_fraction: DEFAULT_CI_SUBSAMPLE_FRACTION,
            seed: 0,
            preprocessing: Preprocessing::None,
        }
    }
}

/// The output of `compare --json` (DESIGN.md): `{"n", "k", "metrics", "null", "ci"}` plus the other settings.
/// `null` and `ci` are JSON null when no draws were asked for; an undefined figure (a constant representation
/// makes CKA 0/0) is NaN, which serde_json writes as null.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlignmentReport {
    pub n: usize,
    #[serde(flatten)]
    pub options: CompareOptions,
    pub metrics: MetricSet<f64>,
    pub null: Option<MetricSet<NullSummary>>,
    /// 95 % interval [lo, hi] per metric from `ci_draws` subsamples of m = round(ci_subsample_fraction · n)
    /// samples drawn without replacement (a bootstrap would duplicate samples, and duplicates are each other's
    /// perfect neighbours). Delete-d jackknife (Shao & Wu 1989; the histogram form of Wu 1990): a subsample's
    /// spread is narrower than the sampling spread by sqrt((n − m)/m), so the interval runs between the 2.5 % and
    /// 97.5 % points of θ̂ + sqrt(m/(n − m))·(θ̂_s − θ̄_s). Deviations are taken from the subsample mean θ̄_s, not
    /// from θ̂, because at fixed k the kNN metrics drift with the sample count (smaller samples share more
    /// neighbours), and that drift, scaled up, would shift the interval off θ̂. Calibration checked by simulation
    /// (n = 400, d = 4): half-width / (1.96 × sampling sd) ≈ 0.97 for CKA, ≈ 1.0–1.2 for the kNN metrics.
    pub ci: Option<MetricSet<[f64; 2]>>,
}

/// All four metrics of (X = x, Y = y) after `options.preprocessing`, with a permutation null (Y's samples
/// shuffled, `null_draws` draws) and a subsample interval (`ci_draws` draws), reproducible from `options.seed`.
///
/// The null reuses Y's neighbour lists relabelled by the permutation instead of searching again; with exact
/// ties among Y's inner products the tie order then follows Y's original sample order. (The comparison of a
/// panel with controls, [`super::compare_panel`], with this one pair and no controls.)
pub fn compare(
    x: &Representation,
    y: &Representation,
    options: &CompareOptions,
) -> Result<AlignmentReport, AlignmentError> {
    check_pair(x, y)?;
    let pair = ControlledPair {
        x: 0,
        y: 1,
        ..ControlledPair::default()
    };
    let mut reports = compare_panel(&[*x, *y], None, &[pair], options)?;
    Ok(reports.remove(0).alignment)
}
