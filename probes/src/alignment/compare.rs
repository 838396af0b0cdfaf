//! The comparison `compare` reports: the four metrics with a permutation null and a subsample interval.

use rand::seq::SliceRandom;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use super::knn::RankedNeighbours;
use super::representation::preprocessed;
use super::{
    AlignmentError, CI_STREAM_OFFSET, DEFAULT_CI_SUBSAMPLE_FRACTION, DEFAULT_NEIGHBOURS, MetricSet,
    Preprocessing, Representation, Side, check_neighbour_count, check_pair, metrics_between,
    select_rows,
};
use crate::stats::{null_summary, stream_rng, subsample_interval};

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
/// ties among Y's inner products the tie order then follows Y's original sample order.
pub fn compare(
    x: &Representation,
    y: &Representation,
    options: &CompareOptions,
) -> Result<AlignmentReport, AlignmentError> {
    check_pair(x, y)?;
    check_neighbour_count(options.k, x.samples)?;
    let subsample_size = subsample_size(x.samples, options)?;
    let x_data = preprocessed(x, options.preprocessing)?;
    let y_data = preprocessed(y, options.preprocessing)?;
    let (n, k) = (x.samples, options.k);
    // Searching deeper than k lets most samples of an interval subsample find their neighbours in these lists:
    // about fraction × depth of a sample's candidates survive, on average 2k + 8·fraction.
    let depth = match subsample_size {
        Some(_) => {
            ((2.0 * k as f64 / options.ci_subsample_fraction).ceil() as usize + 8).min(n - 1)
        }
        None => k,
    };
    let (x_ranked, y_ranked) = rayon::join(
        || RankedNeighbours::search(&x_data, n, x.features, depth),
        || RankedNeighbours::search(&y_data, n, y.features, depth),
    );
    let (x_side, y_side) = rayon::join(
        || Side::new(&x_data, n, x.features, x_ranked.nearest(k)),
        || Side::new(&y_data, n, y.features, y_ranked.nearest(k)),
    );
    let metrics = metrics_between(&x_side, &y_side, k);

    let null = (options.null_draws > 0).then(|| {
        let draws: Vec<MetricSet<f64>> = (0..options.null_draws as u64)
            .into_par_iter()
            .map(|draw| {
                let mut permutation: Vec<usize> = (0..n).collect();
                permutation.shuffle(&mut stream_rng(options.seed, draw));
                metrics_between(&x_side, &y_side.permuted(&permutation), k)
            })
            .collect();
        summarise_per_metric(&metrics, &draws, |observed, values| {
            let (mean, p95, p_value) = null_summary(observed, values);
            NullSummary { mean, p95, p_value }
        })
    });

    let ci = subsample_size.map(|kept| {
        let draws: Vec<MetricSet<f64>> = (0..options.ci_draws as u64)
            .map(|draw| {
                let mut rng = stream_rng(options.seed, CI_STREAM_OFFSET + draw);
                let mut indices = rand::seq::index::sample(&mut rng, n, kept).into_vec();
                indices.sort_unstable();
                let (x_rows, y_rows) = (
                    select_rows(&x_data, x.features, &indices),
                    select_rows(&y_data, y.features, &indices),
                );
                let (x_sub, y_sub) = rayon::join(
                    || {
                        let neighbours =
                            x_ranked.within_subsample(k, &indices, &x_data, x.features);
                        Side::new(&x_rows, kept, x.features, neighbours)
                    },
                    || {
                        let neighbours =
                            y_ranked.within_subsample(k, &indices, &y_data, y.features);
                        Side::new(&y_rows, kept, y.features, neighbours)
                    },
                );
                metrics_between(&x_sub, &y_sub, k)
            })
            .collect();
        let scale = (kept as f64 / (n - kept) as f64).sqrt();
        summarise_per_metric(&metrics, &draws, |observed, values| {
            subsample_interval(observed, values, scale)
        })
    });

    Ok(AlignmentReport {
        n,
        options: *options,
        metrics,
        null,
        ci,
    })
}

/// Samples each interval subsample keeps, or None when no interval is asked for.
fn subsample_size(
    samples: usize,
    options: &CompareOptions,
) -> Result<Option<usize>, AlignmentError> {
    let fraction = options.ci_subsample_fraction;
    if !(fraction > 0.0 && fraction < 1.0) {
        return Err(AlignmentError::InvalidOption {
            option: "ci_subsample_fraction",
            value: fraction,
            expected: "a fraction in (0, 1)",
        });
    }
    if options.ci_draws == 0 {
        return Ok(None);
    }
    let kept = (fraction * samples as f64).round() as usize;
    if kept < 4 || kept <= options.k || kept >= samples {
        return Err(AlignmentError::InvalidOption {
            option: "ci_subsample_fraction",
            value: fraction,
            expected: "a fraction that keeps at least 4 and more than k samples, and fewer than all",
        });
    }
    Ok(Some(kept))
}

fn summarise_per_metric<T>(
    observed: &MetricSet<f64>,
    draws: &[MetricSet<f64>],
    summarise: impl Fn(f64, Vec<f64>) -> T,
) -> MetricSet<T> {
    MetricSet {
        cka_biased: summarise(
            observed.cka_biased,
            MetricSet::column(draws, |m| m.cka_biased),
        ),
        cka_unbiased: summarise(
            observed.cka_unbiased,
            MetricSet::column(draws, |m| m.cka_unbiased),
        ),
        cknna: summarise(observed.cknna, MetricSet::column(draws, |m| m.cknna)),
        mutual_knn: summarise(
            observed.mutual_knn,
            MetricSet::column(draws, |m| m.mutual_knn),
        ),
    }
}
