//! Representational alignment between two recordings of the same samples, as published: linear CKA with the
//! biased and the unbiased HSIC (Kornblith et al. 2019; Song et al. 2012), mutual k-nearest neighbours and CKNNA
//! (Huh et al. 2024, code `platonic-rep/metrics.py`), each with a permutation null and a subsample confidence
//! interval, plus the layer-by-layer CKA matrix.
//!
//! Every metric sees the raw rows: K = X Xᵀ and L = Y Yᵀ (REFERENCE.md, "Alignment metrics as published"). The
//! platonic pipeline's outlier clipping and row normalisation is [`Preprocessing::ClipAndNormalise`], off by default;
//! [`compare`] records which one was used. Everything is computed in f64, because HSIC is a difference of large
//! sums.
//!
//! Cost: CKA never forms K whole. It centres the columns (HSIC of linear kernels does not change under a translation of
//! the rows; the unbiased estimator neither, checked in the tests) and needs only ‖Xcᵀ Yc‖²_F and the row norms,
//! O(n·dx·dy), or O(n²·(dx + dy)) in row blocks of the centred Gram matrices when the features outnumber the samples.
//! The kNN metrics need each row's k largest inner products; K is computed once per pair of square tiles (it is
//! symmetric, so half the products of a full Gram matrix) and never held whole: O(n²·d) time, O(n·k) memory.

use std::borrow::Cow;
use std::time::Instant;

use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use weatherlens_models::fused::matmul::{self, View};

use crate::velocity::quantile_sorted;

/// Quantile of |x| at which the platonic pipeline clips outliers (Huh et al. 2024, `measure_alignment.py`,
/// `prepare_features(q=0.95)`).
pub const PLATONIC_CLIP_QUANTILE: f64 = 0.95;
/// Neighbours per sample for mutual kNN and CKNNA (Huh et al. 2024 and the seed's figures use k = 10).
pub const DEFAULT_NEIGHBOURS: usize = 10;
/// Fraction of the samples that each confidence-interval subsample keeps (drawn without replacement).
pub const DEFAULT_CI_SUBSAMPLE_FRACTION: f64 = 0.8;
/// Floor on a row's norm before dividing by it, as `torch.nn.functional.normalize` (eps = 1e-12).
const ROW_NORM_FLOOR: f64 = 1e-12;
/// Side of the square tiles of K in the neighbour search: a tile (512 KiB) stays in a core's L2 cache.
const TILE: usize = 256;
/// Upper bound on the values of one row block of a Gram matrix in the samples-space CKA route (64 MiB).
const GRAM_BLOCK_VALUES: usize = 1 << 23;
/// Random stream of the confidence-interval subsamples; null draw `i` uses stream `i`.
const CI_STREAM_OFFSET: u64 = 1 << 32;

/// What a caller can get wrong; names are those given to [`Representation::new`] (a file and tensor, say).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AlignmentError {
    #[error(
        "{name}: {len} values do not form [samples = {samples}, features = {features}] (need samples × features values, features ≥ 1)"
    )]
    Shape {
        name: String,
        len: usize,
        samples: usize,
        features: usize,
    },
    #[error("{name}: non-finite value {value} at sample {sample}, feature {feature}")]
    NonFinite {
        name: String,
        sample: usize,
        feature: usize,
        value: f64,
    },
    #[error("sample counts differ: {x_name} has {x_samples} samples, {y_name} has {y_samples}")]
    SampleCountMismatch {
        x_name: String,
        x_samples: usize,
        y_name: String,
        y_samples: usize,
    },
    #[error("{samples} samples: at least 4 are needed (the unbiased HSIC divides by n(n − 3))")]
    TooFewSamples { samples: usize },
    #[error(
        "k = {k} neighbours with {samples} samples: need 1 ≤ k < samples (a sample is not its own neighbour)"
    )]
    NeighbourCount { k: usize, samples: usize },
    #[error("kernel matrix has {len} values, expected samples² = {samples}²")]
    KernelShape { len: usize, samples: usize },
    #[error("option {option} = {value}: expected {expected}")]
    InvalidOption {
        option: &'static str,
        value: f64,
        expected: &'static str,
    },
    #[error("the {side} list of representations for the CKA matrix is empty")]
    EmptyLayerList { side: &'static str },
}

/// One recording of n samples: `data` is [samples, features] row-major, one row per sample.
#[derive(Debug, Clone, Copy)]
pub struct Representation<'a> {
    name: &'a str,
    data: &'a [f64],
    samples: usize,
    features: usize,
}

impl<'a> Representation<'a> {
    /// data: [samples, features] row-major. Checks the shape and that every value is finite; `name` says where the
    /// data came from and appears in every error about it.
    pub fn new(
        name: &'a str,
        data: &'a [f64],
        samples: usize,
        features: usize,
    ) -> Result<Self, AlignmentError> {
        if features == 0 || samples.checked_mul(features) != Some(data.len()) {
            return Err(AlignmentError::Shape {
                name: name.to_owned(),
                len: data.len(),
                samples,
                features,
            });
        }
        if let Some(position) = data.iter().position(|value| !value.is_finite()) {
            return Err(AlignmentError::NonFinite {
                name: name.to_owned(),
                sample: position / features,
                feature: position % features,
                value: data[position],
            });
        }
        Ok(Self {
            name,
            data,
            samples,
            features,
        })
    }

    pub fn name(&self) -> &'a str {
        self.name
    }

    /// [samples, features] row-major.
    pub fn data(&self) -> &'a [f64] {
        self.data
    }

    pub fn samples(&self) -> usize {
        self.samples
    }

    pub fn features(&self) -> usize {
        self.features
    }
}

/// Which HSIC estimator a CKA uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HsicEstimator {
    /// tr(K H L H), H = I − 11ᵀ/n (Gretton et al. 2005; the CKA of Kornblith et al. 2019).
    Biased,
    /// Song et al. 2012 eq. 5 (unbiased for any n ≥ 4).
    Unbiased,
}

/// A data step applied before any metric, recorded in [`AlignmentReport`].
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Preprocessing {
    /// The raw rows (the published metric definitions).
    #[default]
    None,
    /// The platonic-representation pipeline (Huh et al. 2024, `measure_alignment.py` with its default
    /// `exact=False`, then `compute_score`'s row normalisation): clip every value to ±c, where c is the mean over
    /// samples of each sample's `quantile` of |x| (linear interpolation, as `torch.quantile`), then divide each row
    /// by max(‖row‖₂, 1e-12). quantile = 1 skips the clipping, as their `remove_outliers` does.
    ClipAndNormalise { quantile: f64 },
}

/// Applies `preprocessing` to x and returns the result, [samples, features] row-major.
pub fn preprocess(
    x: &Representation,
    preprocessing: Preprocessing,
) -> Result<Vec<f64>, AlignmentError> {
    Ok(preprocessed(x, preprocessing)?.into_owned())
}

fn preprocessed<'a>(
    x: &Representation<'a>,
    preprocessing: Preprocessing,
) -> Result<Cow<'a, [f64]>, AlignmentError> {
    let Preprocessing::ClipAndNormalise { quantile } = preprocessing else {
        return Ok(Cow::Borrowed(x.data));
    };
    if !(quantile > 0.0 && quantile <= 1.0) {
        return Err(AlignmentError::InvalidOption {
            option: "preprocessing.quantile",
            value: quantile,
            expected: "a quantile in (0, 1]",
        });
    }
    let mut data = x.data.to_vec();
    if quantile < 1.0 {
        let row_quantiles: Vec<f64> = x
            .data
            .par_chunks(x.features)
            .map(|row| {
                let mut magnitudes: Vec<f64> = row.iter().map(|value| value.abs()).collect();
                magnitudes.sort_by(f64::total_cmp);
                quantile_sorted(&magnitudes, quantile)
            })
            .collect();
        let clip = row_quantiles.iter().sum::<f64>() / x.samples as f64;
        data.par_iter_mut()
            .for_each(|value| *value = value.clamp(-clip, clip));
    }
    data.par_chunks_mut(x.features).for_each(|row| {
        let norm = row
            .iter()
            .map(|value| value * value)
            .sum::<f64>()
            .sqrt()
            .max(ROW_NORM_FLOOR);
        row.iter_mut().for_each(|value| *value /= norm);
    });
    Ok(Cow::Owned(data))
}

/// Biased HSIC of two kernel matrices: tr(K H L H) with H = I − 11ᵀ/n, without the 1/(n − 1)² factor (as
/// `platonic-rep/metrics.py`; CKA does not see it). Computed as Σ_ij (HKH)_ij L_ji.
///
/// k, l: [samples, samples] row-major; samples ≥ 4 (as everywhere in this module).
pub fn hsic_biased(k: &[f64], l: &[f64], samples: usize) -> Result<f64, AlignmentError> {
    check_kernel(k, samples)?;
    check_kernel(l, samples)?;
    check_sample_count(samples)?;
    let n = samples as f64;
    let row_means: Vec<f64> = k
        .chunks(samples)
        .map(|row| row.iter().sum::<f64>() / n)
        .collect();
    let mut column_means = vec![0.0; samples];
    for row in k.chunks(samples) {
        column_means
            .iter_mut()
            .zip(row)
            .for_each(|(mean, value)| *mean += value / n);
    }
    let grand_mean = row_means.iter().sum::<f64>() / n;
    let mut trace = 0.0;
    for i in 0..samples {
        for j in 0..samples {
            let centred = k[i * samples + j] - row_means[i] - column_means[j] + grand_mean;
            trace += centred * l[j * samples + i];
        }
    }
    Ok(trace)
}

/// Unbiased HSIC (Song et al. 2012 eq. 5) of two kernel matrices, with K̃, L̃ = K, L with zeroed diagonals:
/// [tr(K̃L̃) + (1ᵀK̃1)(1ᵀL̃1)/((n−1)(n−2)) − 2/(n−2)·1ᵀK̃L̃1] / (n(n−3)). Here tr(K̃L̃) = Σ_ij K̃_ij L̃_ji, as
/// `torch.sum(K_tilde * L_tilde.T)` in `platonic-rep/metrics.py`, which matters for the non-symmetric matrices
/// of CKNNA.
///
/// k, l: [samples, samples] row-major; samples ≥ 4.
pub fn hsic_unbiased(k: &[f64], l: &[f64], samples: usize) -> Result<f64, AlignmentError> {
    check_kernel(k, samples)?;
    check_kernel(l, samples)?;
    check_sample_count(samples)?;
    let entries = (0..samples).flat_map(|i| {
        (0..samples).filter(move |&j| j != i).map(move |j| {
            (
                i,
                j,
                k[i * samples + j],
                l[i * samples + j],
                l[j * samples + i],
            )
        })
    });
    let sums = KernelSums::from_entries(samples, entries);
    Ok(sums.hsic_unbiased(samples))
}

fn check_kernel(matrix: &[f64], samples: usize) -> Result<(), AlignmentError> {
    if samples.checked_mul(samples) != Some(matrix.len()) {
        return Err(AlignmentError::KernelShape {
            len: matrix.len(),
            samples,
        });
    }
    Ok(())
}

fn check_sample_count(samples: usize) -> Result<(), AlignmentError> {
    if samples < 4 {
        return Err(AlignmentError::TooFewSamples { samples });
    }
    Ok(())
}

/// The sums the unbiased HSIC is built from, for kernels K̃, L̃ with zero diagonals.
#[derive(Debug, Default, Clone, Copy)]
struct KernelSums {
    /// tr(K̃L̃) = Σ_ij K̃_ij L̃_ji
    trace: f64,
    /// 1ᵀK̃1
    sum_k: f64,
    /// 1ᵀL̃1
    sum_l: f64,
    /// 1ᵀK̃L̃1
    sum_kl: f64,
}

impl KernelSums {
    /// The sums over the listed off-diagonal entries (i, j, K̃_ij, L̃_ij, L̃_ji); unlisted entries are zero.
    /// 1ᵀK̃L̃1 = Σ_j (Σ_i K̃_ij)(Σ_m L̃_jm).
    fn from_entries(
        samples: usize,
        entries: impl Iterator<Item = (usize, usize, f64, f64, f64)>,
    ) -> Self {
        let mut sums = Self::default();
        let (mut column_sums_k, mut row_sums_l) = (vec![0.0; samples], vec![0.0; samples]);
        for (i, j, k_ij, l_ij, l_ji) in entries {
            sums.trace += k_ij * l_ji;
            sums.sum_k += k_ij;
            sums.sum_l += l_ij;
            column_sums_k[j] += k_ij;
            row_sums_l[i] += l_ij;
        }
        sums.sum_kl = column_sums_k
            .iter()
            .zip(&row_sums_l)
            .map(|(a, b)| a * b)
            .sum();
        sums
    }

    /// Song et al. 2012 eq. 5.
    fn hsic_unbiased(&self, samples: usize) -> f64 {
        let n = samples as f64;
        (self.trace + self.sum_k * self.sum_l / ((n - 1.0) * (n - 2.0))
            - 2.0 / (n - 2.0) * self.sum_kl)
            / (n * (n - 3.0))
    }
}

/// The four metrics, or anything else kept per metric (a null summary, an interval).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct MetricSet<T> {
    /// HSIC_b(K, L) / sqrt(HSIC_b(K, K)·HSIC_b(L, L)), ε = 0.
    pub cka_biased: T,
    /// HSIC_u(K, L) / sqrt(HSIC_u(K, K)·HSIC_u(L, L)), ε = 0.
    pub cka_unbiased: T,
    /// sim(K, L) / sqrt(sim(K, K)·sim(L, L)), sim(A, B) = HSIC_u(M ⊙ A, M ⊙ B), M = M_K ⊙ M_L.
    pub cknna: T,
    /// (1/n) Σ_i |N_X(i) ∩ N_Y(i)| / k.
    pub mutual_knn: T,
}

impl MetricSet<f64> {
    /// One metric's values across draws.
    fn column(draws: &[MetricSet<f64>], metric: fn(&MetricSet<f64>) -> f64) -> Vec<f64> {
        draws.iter().map(metric).collect()
    }
}

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

/// Linear CKA of x and y with the given HSIC estimator: HSIC(K, L) / sqrt(HSIC(K, K)·HSIC(L, L)), ε = 0.
/// Symmetric in its arguments; invariant to orthogonal transforms and isotropic scaling of either side.
/// NaN when a side is constant (its HSIC(K, K) is 0).
pub fn cka(
    x: &Representation,
    y: &Representation,
    estimator: HsicEstimator,
) -> Result<f64, AlignmentError> {
    check_pair(x, y)?;
    let (x_centred, y_centred) = rayon::join(
        || Centred::new(x.data, x.samples, x.features),
        || Centred::new(y.data, y.samples, y.features),
    );
    let cross = cross_trace(&x_centred, &y_centred);
    Ok(cka_centred(
        cross,
        &x_centred.stats,
        &y_centred.stats,
        estimator,
    ))
}

/// Mutual kNN (Huh et al. 2024): neighbours by inner product, largest first, self excluded, ties to the lower
/// index; (1/n) Σ_i |N_X(i) ∩ N_Y(i)| / k. About k/(n − 1) on independent data.
pub fn mutual_knn(x: &Representation, y: &Representation, k: usize) -> Result<f64, AlignmentError> {
    check_pair(x, y)?;
    check_neighbour_count(k, x.samples)?;
    let (x_neighbours, y_neighbours) = rayon::join(
        || Neighbours::new(x.data, x.samples, x.features, k),
        || Neighbours::new(y.data, y.samples, y.features, k),
    );
    Ok(MaskedKernels::intersect(&x_neighbours, &y_neighbours).mutual_knn(k))
}

/// CKNNA (Huh et al. 2024): directed kNN masks M_K, M_L from K and L (self excluded, ties to the lower index),
/// M = M_K ⊙ M_L (not symmetrised), sim(A, B) = HSIC_u(M ⊙ A, M ⊙ B) with A, B in that order, and
/// CKNNA = sim(K, L) / sqrt(sim(K, K)·sim(L, L)), ε = 0. M ⊙ K is not symmetric, so CKNNA(X, Y) ≠ CKNNA(Y, X):
/// x is X and y is Y.
pub fn cknna(x: &Representation, y: &Representation, k: usize) -> Result<f64, AlignmentError> {
    check_pair(x, y)?;
    check_neighbour_count(k, x.samples)?;
    let (x_neighbours, y_neighbours) = rayon::join(
        || Neighbours::new(x.data, x.samples, x.features, k),
        || Neighbours::new(y.data, y.samples, y.features, k),
    );
    let self_similarity =
        |neighbours: &Neighbours| MaskedKernels::intersect(neighbours, neighbours).hsic_unbiased();
    let cross = MaskedKernels::intersect(&x_neighbours, &y_neighbours).hsic_unbiased();
    Ok(cross / (self_similarity(&x_neighbours) * self_similarity(&y_neighbours)).sqrt())
}

/// The four metrics at once, sharing the neighbour search and the centring.
pub fn alignment_metrics(
    x: &Representation,
    y: &Representation,
    k: usize,
) -> Result<MetricSet<f64>, AlignmentError> {
    check_pair(x, y)?;
    check_neighbour_count(k, x.samples)?;
    let side = |r: &Representation| {
        Side::new(
            r.data,
            r.samples,
            r.features,
            Neighbours::new(r.data, r.samples, r.features, k),
        )
    };
    let (x_side, y_side) = rayon::join(|| side(x), || side(y));
    Ok(metrics_between(&x_side, &y_side, k))
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
        summarise_per_metric(&metrics, &draws, summarise_null)
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
            jackknife_interval(observed, values, scale)
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

/// Layer-by-layer CKA: entry (i, j) is `CKA(xs[i], ys[j])`, [xs.len(), ys.len()] row-major. Every representation
/// needs the same sample count; features may differ from layer to layer.
pub fn cka_matrix(
    xs: &[Representation],
    ys: &[Representation],
    estimator: HsicEstimator,
) -> Result<Vec<f64>, AlignmentError> {
    let first = xs
        .first()
        .ok_or(AlignmentError::EmptyLayerList { side: "first" })?;
    if ys.is_empty() {
        return Err(AlignmentError::EmptyLayerList { side: "second" });
    }
    for other in xs.iter().chain(ys) {
        check_pair(first, other)?;
    }
    // Only one centred copy of each side is alive at a time (a layer's recording can be large); the second
    // side's kernel stats are kept, and its centred rows recomputed per pair (O(n·d), small beside the product).
    let y_stats: Vec<KernelStats> = ys
        .iter()
        .map(|layer| Centred::new(layer.data, layer.samples, layer.features).stats)
        .collect();
    let mut matrix = Vec::with_capacity(xs.len() * ys.len());
    for x in xs {
        let x_centred = Centred::new(x.data, x.samples, x.features);
        for (y, y_stat) in ys.iter().zip(&y_stats) {
            let y_centred = Centred::new(y.data, y.samples, y.features);
            let cross = cross_trace(&x_centred, &y_centred);
            matrix.push(cka_centred(cross, &x_centred.stats, y_stat, estimator));
        }
    }
    Ok(matrix)
}

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
pub fn benchmark_alignment(
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

fn check_pair(x: &Representation, y: &Representation) -> Result<(), AlignmentError> {
    if x.samples != y.samples {
        return Err(AlignmentError::SampleCountMismatch {
            x_name: x.name.to_owned(),
            x_samples: x.samples,
            y_name: y.name.to_owned(),
            y_samples: y.samples,
        });
    }
    check_sample_count(x.samples)
}

fn check_neighbour_count(k: usize, samples: usize) -> Result<(), AlignmentError> {
    if k == 0 || k >= samples {
        return Err(AlignmentError::NeighbourCount { k, samples });
    }
    Ok(())
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

/// Reproducible random stream `stream` of `seed`, independent of the thread that draws it.
fn stream_rng(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// rows of data ([samples, features]) at `indices`, in that order: [indices.len(), features].
fn select_rows(data: &[f64], features: usize, indices: &[usize]) -> Vec<f64> {
    indices
        .iter()
        .flat_map(|&row| &data[row * features..(row + 1) * features])
        .copied()
        .collect()
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

/// Sorted finite values (an undefined draw, 0/0, carries no information about the null).
fn sorted_finite(mut values: Vec<f64>) -> Vec<f64> {
    values.retain(|value| value.is_finite());
    values.sort_by(f64::total_cmp);
    values
}

fn summarise_null(observed: f64, values: Vec<f64>) -> NullSummary {
    let values = sorted_finite(values);
    let draws = values.len() as f64;
    let at_least_observed = values.iter().filter(|&&value| value >= observed).count() as f64;
    NullSummary {
        mean: values.iter().sum::<f64>() / draws,
        p95: quantile_sorted(&values, 0.95),
        p_value: if observed.is_finite() {
            (1.0 + at_least_observed) / (1.0 + draws)
        } else {
            f64::NAN
        },
    }
}

/// θ̂ + scale·(θ̂_s − θ̄_s) at the 2.5 % and 97.5 % points, θ̄_s the mean over subsamples.
fn jackknife_interval(observed: f64, values: Vec<f64>, scale: f64) -> [f64; 2] {
    let values = sorted_finite(values);
    let subsample_mean = values.iter().sum::<f64>() / values.len() as f64;
    let rescaled = |value: f64| observed + scale * (value - subsample_mean);
    [
        rescaled(quantile_sorted(&values, 0.025)),
        rescaled(quantile_sorted(&values, 0.975)),
    ]
}

/// The four metrics between two prepared sides.
fn metrics_between(x: &Side, y: &Side, k: usize) -> MetricSet<f64> {
    let cross = cross_trace(&x.centred, &y.centred);
    let masked = MaskedKernels::intersect(&x.neighbours, &y.neighbours);
    MetricSet {
        cka_biased: cka_centred(
            cross,
            &x.centred.stats,
            &y.centred.stats,
            HsicEstimator::Biased,
        ),
        cka_unbiased: cka_centred(
            cross,
            &x.centred.stats,
            &y.centred.stats,
            HsicEstimator::Unbiased,
        ),
        cknna: masked.hsic_unbiased() / (x.self_similarity * y.self_similarity).sqrt(),
        mutual_knn: masked.mutual_knn(k),
    }
}

/// What the metrics need from one representation, computed once and reused by the permutation null.
struct Side {
    centred: Centred,
    /// Of the raw rows.
    neighbours: Neighbours,
    /// sim(K, K) = HSIC_u(M_K ⊙ K, M_K ⊙ K).
    self_similarity: f64,
}

impl Side {
    /// data: [samples, features] row-major; `neighbours` were found on the same data.
    fn new(data: &[f64], samples: usize, features: usize, neighbours: Neighbours) -> Self {
        let centred = Centred::new(data, samples, features);
        let self_similarity = MaskedKernels::intersect(&neighbours, &neighbours).hsic_unbiased();
        Self {
            centred,
            neighbours,
            self_similarity,
        }
    }

    /// The same side with sample i replaced by sample `permutation[i]`.
    fn permuted(&self, permutation: &[usize]) -> Self {
        Self {
            centred: self.centred.permuted(permutation),
            neighbours: self.neighbours.permuted(permutation),
            self_similarity: self.self_similarity,
        }
    }
}

/// Summary of a centred linear kernel Kc = Xc Xcᵀ that the HSIC estimators need besides the cross trace.
#[derive(Debug, Clone)]
struct KernelStats {
    /// diag(Kc): ‖x_i − x̄‖², one per sample.
    squared_norms: Vec<f64>,
    /// tr(Kc Kc) = ‖Xcᵀ Xc‖²_F.
    self_trace: f64,
}

/// A representation with its columns centred (x_i − x̄).
struct Centred {
    /// [samples, features] row-major.
    data: Vec<f64>,
    samples: usize,
    features: usize,
    stats: KernelStats,
}

impl Centred {
    /// data: [samples, features] row-major.
    fn new(data: &[f64], samples: usize, features: usize) -> Self {
        let mut means = vec![0.0; features];
        for row in data.chunks(features) {
            means
                .iter_mut()
                .zip(row)
                .for_each(|(mean, value)| *mean += value);
        }
        means.iter_mut().for_each(|mean| *mean /= samples as f64);
        let mut centred = data.to_vec();
        centred
            .par_chunks_mut(features)
            .for_each(|row| row.iter_mut().zip(&means).for_each(|(v, m)| *v -= m));
        let squared_norms = centred
            .chunks(features)
            .map(|row| row.iter().map(|v| v * v).sum())
            .collect();
        let mut result = Self {
            data: centred,
            samples,
            features,
            stats: KernelStats {
                squared_norms,
                self_trace: 0.0,
            },
        };
        result.stats.self_trace = cross_trace(&result, &result);
        result
    }

    /// Rows reordered: row i becomes row `permutation[i]`. Kc is permuted alike, so tr(Kc Kc) is unchanged.
    fn permuted(&self, permutation: &[usize]) -> Self {
        Self {
            data: select_rows(&self.data, self.features, permutation),
            samples: self.samples,
            features: self.features,
            stats: KernelStats {
                squared_norms: permutation
                    .iter()
                    .map(|&row| self.stats.squared_norms[row])
                    .collect(),
                self_trace: self.stats.self_trace,
            },
        }
    }
}

/// tr(Kc Lc) = ‖Xcᵀ Yc‖²_F, through the cheaper of the feature space (Xcᵀ Yc: [dx, dy], cost n·dx·dy) and the
/// sample space (row blocks of Kc and Lc, cost n²·(dx + dy)).
fn cross_trace(x: &Centred, y: &Centred) -> f64 {
    let (n, dx, dy) = (x.samples, x.features, y.features);
    if (dx as f64) * (dy as f64) <= (n as f64) * ((dx + dy) as f64) {
        let mut cross = vec![0.0; dx * dy];
        let x_view = View::row_major(&x.data, n, dx);
        multiply(
            x_view.transposed(),
            View::row_major(&y.data, n, dy),
            &mut cross,
            true,
        );
        return cross.iter().map(|value| value * value).sum();
    }
    let block = (GRAM_BLOCK_VALUES / n).clamp(1, n);
    let (mut k_block, mut l_block) = (vec![0.0; block * n], vec![0.0; block * n]);
    let mut trace = 0.0;
    for start in (0..n).step_by(block) {
        let rows = block.min(n - start);
        let (x_all, y_all) = (
            View::row_major(&x.data, n, dx),
            View::row_major(&y.data, n, dy),
        );
        multiply(
            x_all.row_range(start, rows),
            x_all.transposed(),
            &mut k_block[..rows * n],
            true,
        );
        multiply(
            y_all.row_range(start, rows),
            y_all.transposed(),
            &mut l_block[..rows * n],
            true,
        );
        trace += k_block[..rows * n]
            .iter()
            .zip(&l_block[..rows * n])
            .map(|(a, b)| a * b)
            .sum::<f64>();
    }
    trace
}

/// CKA from tr(Kc Lc) and the kernels' stats. Biased: HSIC = tr(Kc Lc), since H Kc H = Kc for centred columns.
/// Unbiased: with K̃ = Kc − diag(Kc), Kc 1 = 0 gives tr(K̃L̃) = tr(Kc Lc) − Σ_i Kc_ii Lc_ii, 1ᵀK̃1 = −Σ_i Kc_ii,
/// 1ᵀK̃L̃1 = Σ_i Kc_ii Lc_ii, into Song et al. 2012 eq. 5.
fn cka_centred(cross: f64, x: &KernelStats, y: &KernelStats, estimator: HsicEstimator) -> f64 {
    let hsic = |trace: f64, a: &KernelStats, b: &KernelStats| match estimator {
        HsicEstimator::Biased => trace,
        HsicEstimator::Unbiased => {
            let diagonal_product: f64 = a
                .squared_norms
                .iter()
                .zip(&b.squared_norms)
                .map(|(p, q)| p * q)
                .sum();
            KernelSums {
                trace: trace - diagonal_product,
                sum_k: -a.squared_norms.iter().sum::<f64>(),
                sum_l: -b.squared_norms.iter().sum::<f64>(),
                sum_kl: diagonal_product,
            }
            .hsic_unbiased(a.squared_norms.len())
        }
    };
    hsic(cross, x, y) / (hsic(x.self_trace, x, x) * hsic(y.self_trace, y, y)).sqrt()
}

/// Each sample's k largest inner products with the other samples (self excluded, ties to the lower index).
#[derive(Debug, Clone, PartialEq)]
struct Neighbours {
    k: usize,
    /// [samples, k], ascending within a row.
    indices: Vec<usize>,
    /// [samples, k]: K_ij for the j in `indices`.
    values: Vec<f64>,
}

/// Each sample's `depth` best candidates in rank order (larger inner product first, ties to the lower index,
/// self excluded). A depth beyond k lets a subsample find its k nearest neighbours without a new search.
struct RankedNeighbours {
    depth: usize,
    /// [samples, depth], best first.
    indices: Vec<usize>,
    /// [samples, depth]: K_ij for the j in `indices`.
    values: Vec<f64>,
}

impl RankedNeighbours {
    /// data: [samples, features] row-major; depth < samples. K is computed tile by tile, each pair of tiles once:
    /// a tile's rows offer their candidates to the rows of its row block, its columns to the rows of its column
    /// block. Rounds of disjoint tile pairs (see [`tile_rounds`]) let the pairs of a round run in parallel
    /// without sharing a row.
    fn search(data: &[f64], samples: usize, features: usize, depth: usize) -> Self {
        let blocks = samples.div_ceil(TILE);
        let block_rows = |block: usize| TILE.min(samples - block * TILE);
        let mut candidates: Vec<Vec<RowCandidates>> = (0..blocks)
            .map(|block| {
                (0..block_rows(block))
                    .map(|_| RowCandidates::new(depth))
                    .collect()
            })
            .collect();
        let all = View::row_major(data, samples, features);
        for round in tile_rounds(blocks) {
            let mut tasks: Vec<_> = round
                .into_iter()
                .map(|(first, second)| {
                    let first_rows = std::mem::take(&mut candidates[first]);
                    let second_rows =
                        (first != second).then(|| std::mem::take(&mut candidates[second]));
                    (first, second, first_rows, second_rows)
                })
                .collect();
            tasks
                .par_iter_mut()
                .for_each(|(first, second, first_rows, second_rows)| {
                    let (rows, columns) = (block_rows(*first), block_rows(*second));
                    let mut tile = vec![0.0; rows * columns];
                    let row_view = all.row_range(*first * TILE, rows);
                    multiply(
                        row_view,
                        all.row_range(*second * TILE, columns).transposed(),
                        &mut tile,
                        false,
                    );
                    for (r, tile_row) in tile.chunks(columns).enumerate() {
                        for (c, &value) in tile_row.iter().enumerate() {
                            if first != second || r != c {
                                first_rows[r].offer(value, *second * TILE + c);
                            }
                        }
                    }
                    if let Some(second_rows) = second_rows {
                        for (r, tile_row) in tile.chunks(columns).enumerate() {
                            for (candidates, &value) in second_rows.iter_mut().zip(tile_row) {
                                candidates.offer(value, *first * TILE + r);
                            }
                        }
                    }
                });
            for (first, second, first_rows, second_rows) in tasks {
                candidates[first] = first_rows;
                if let Some(second_rows) = second_rows {
                    candidates[second] = second_rows;
                }
            }
        }
        let mut indices = Vec::with_capacity(samples * depth);
        let mut values = Vec::with_capacity(samples * depth);
        for row in candidates.into_iter().flatten() {
            for (value, index) in row.into_ranked() {
                indices.push(index);
                values.push(value);
            }
        }
        Self {
            depth,
            indices,
            values,
        }
    }

    /// The k nearest of every sample (k ≤ depth).
    fn nearest(&self, k: usize) -> Neighbours {
        let rows = self
            .indices
            .chunks(self.depth)
            .zip(self.values.chunks(self.depth));
        Neighbours::from_rows(
            k,
            rows.map(|(indices, values)| {
                indices.iter().copied().zip(values.iter().copied()).take(k)
            }),
        )
    }

    /// The k nearest neighbours within the subsample of rows `kept` (ascending original indices), numbered by
    /// position in `kept`. A sample's k nearest in the subsample are its first k ranked candidates that were
    /// kept, provided k of them were (anything outside the list ranks after all of it); a sample with fewer kept
    /// candidates is searched directly against the subsample. data: [samples, features] row-major, the data
    /// this search ran on.
    fn within_subsample(
        &self,
        k: usize,
        kept: &[usize],
        data: &[f64],
        features: usize,
    ) -> Neighbours {
        let mut position = vec![usize::MAX; self.indices.len() / self.depth];
        kept.iter()
            .enumerate()
            .for_each(|(new, &old)| position[old] = new);
        let row = |i: usize| &data[i * features..(i + 1) * features];
        let rows: Vec<Vec<(usize, f64)>> = kept
            .par_iter()
            .enumerate()
            .map(|(new_i, &old_i)| {
                let ranked = old_i * self.depth..(old_i + 1) * self.depth;
                let survivors: Vec<(usize, f64)> = self.indices[ranked.clone()]
                    .iter()
                    .zip(&self.values[ranked])
                    .filter(|&(&j, _)| position[j] != usize::MAX)
                    .map(|(&j, &value)| (position[j], value))
                    .take(k)
                    .collect();
                if survivors.len() == k {
                    return survivors;
                }
                let mut direct = RowCandidates::new(k);
                for (new_j, &old_j) in kept.iter().enumerate().filter(|&(new_j, _)| new_j != new_i)
                {
                    direct.offer(
                        row(old_i).iter().zip(row(old_j)).map(|(a, b)| a * b).sum(),
                        new_j,
                    );
                }
                direct
                    .into_ranked()
                    .into_iter()
                    .map(|(value, index)| (index, value))
                    .collect()
            })
            .collect();
        Neighbours::from_rows(k, rows.into_iter().map(|row| row.into_iter()))
    }
}

impl Neighbours {
    /// data: [samples, features] row-major.
    fn new(data: &[f64], samples: usize, features: usize, k: usize) -> Self {
        RankedNeighbours::search(data, samples, features, k).nearest(k)
    }

    /// From each row's k (index, value) pairs in any order.
    fn from_rows<R: Iterator<Item = (usize, f64)>>(
        k: usize,
        rows: impl Iterator<Item = R>,
    ) -> Self {
        let (mut indices, mut values) = (Vec::new(), Vec::new());
        let mut row: Vec<(usize, f64)> = Vec::with_capacity(k);
        for entries in rows {
            row.clear();
            row.extend(entries);
            row.sort_unstable_by_key(|&(index, _)| index);
            indices.extend(row.iter().map(|&(index, _)| index));
            values.extend(row.iter().map(|&(_, value)| value));
        }
        Self { k, indices, values }
    }

    fn samples(&self) -> usize {
        self.indices.len() / self.k
    }

    /// The lists of Y' with Y'_i = `Y[permutation[i]]`: N_Y'(i) = permutation⁻¹(N_Y(`permutation[i]`)), same values.
    fn permuted(&self, permutation: &[usize]) -> Self {
        let mut inverse = vec![0; permutation.len()];
        permutation
            .iter()
            .enumerate()
            .for_each(|(new, &old)| inverse[old] = new);
        let rows = permutation.iter().map(|&old| {
            let range = old * self.k..(old + 1) * self.k;
            self.indices[range.clone()]
                .iter()
                .map(|&j| inverse[j])
                .zip(self.values[range].iter().copied())
        });
        Self::from_rows(self.k, rows)
    }
}

/// The k best (value, index) candidates of one row so far, best = larger value, then lower index. Candidates
/// ranked after the k-th best of the last cut are dropped on arrival (one comparison for nearly all of the n
/// offers); the buffer is cut back to k when it fills.
struct RowCandidates {
    k: usize,
    kept: Vec<(f64, usize)>,
    /// The k-th best after the last cut (−∞ before the first): a newcomer must rank before it.
    bar: (f64, usize),
}

impl RowCandidates {
    fn new(k: usize) -> Self {
        Self {
            k,
            kept: Vec::with_capacity(2 * k + 16),
            bar: (f64::NEG_INFINITY, 0),
        }
    }

    #[inline]
    fn offer(&mut self, value: f64, index: usize) {
        if value < self.bar.0 || (value == self.bar.0 && index > self.bar.1) {
            return;
        }
        self.kept.push((value, index));
        if self.kept.len() == self.kept.capacity() {
            self.cut();
        }
    }

    fn cut(&mut self) {
        if self.kept.len() > self.k {
            self.kept.select_nth_unstable_by(self.k - 1, rank_order);
            self.kept.truncate(self.k);
            self.bar = self.kept[self.k - 1];
        }
    }

    /// The k best, best first.
    fn into_ranked(mut self) -> Vec<(f64, usize)> {
        self.cut();
        self.kept.sort_unstable_by(rank_order);
        self.kept
    }
}

/// Larger value first, ties to the lower index. −0 and +0 tie (unlike f64::total_cmp).
fn ranks_before(a: (f64, usize), b: (f64, usize)) -> bool {
    a.0 > b.0 || (a.0 == b.0 && a.1 < b.1)
}

fn rank_order(a: &(f64, usize), b: &(f64, usize)) -> std::cmp::Ordering {
    if ranks_before(*a, *b) {
        std::cmp::Ordering::Less
    } else if ranks_before(*b, *a) {
        std::cmp::Ordering::Greater
    } else {
        std::cmp::Ordering::Equal
    }
}

/// Every pair of tile blocks (i ≤ j) exactly once, grouped in rounds whose pairs share no block: first the
/// diagonal pairs, then the round-robin (circle method) schedule of the off-diagonal pairs.
fn tile_rounds(blocks: usize) -> Vec<Vec<(usize, usize)>> {
    let mut rounds = vec![(0..blocks).map(|block| (block, block)).collect::<Vec<_>>()];
    let slots = blocks + blocks % 2;
    for round in 0..slots.saturating_sub(1) {
        let fixed = (slots - 1, round);
        let pairs = std::iter::once(fixed).chain((1..slots / 2).map(|i| {
            (
                (round + i) % (slots - 1),
                (round + slots - 1 - i) % (slots - 1),
            )
        }));
        let pairs: Vec<_> = pairs
            .filter(|&(a, b)| a < blocks && b < blocks)
            .map(|(a, b)| (a.min(b), a.max(b)))
            .collect();
        if !pairs.is_empty() {
            rounds.push(pairs);
        }
    }
    rounds
}

/// M ⊙ K and M ⊙ L for M = M_K ⊙ M_L: row i keeps the j that are neighbours of i in both X and Y, in compressed
/// rows (ascending j). The diagonal is zero because no sample is its own neighbour.
struct MaskedKernels {
    /// [samples + 1]
    row_starts: Vec<usize>,
    columns: Vec<usize>,
    /// K_ij at the kept entries.
    k_values: Vec<f64>,
    /// L_ij at the kept entries.
    l_values: Vec<f64>,
}

impl MaskedKernels {
    fn intersect(x: &Neighbours, y: &Neighbours) -> Self {
        let samples = x.samples();
        let mut masked = Self {
            row_starts: vec![0],
            columns: Vec::new(),
            k_values: Vec::new(),
            l_values: Vec::new(),
        };
        for i in 0..samples {
            let (x_row, y_row) = (i * x.k..(i + 1) * x.k, i * y.k..(i + 1) * y.k);
            let (mut a, mut b) = (x_row.start, y_row.start);
            while a < x_row.end && b < y_row.end {
                match x.indices[a].cmp(&y.indices[b]) {
                    std::cmp::Ordering::Less => a += 1,
                    std::cmp::Ordering::Greater => b += 1,
                    std::cmp::Ordering::Equal => {
                        masked.columns.push(x.indices[a]);
                        masked.k_values.push(x.values[a]);
                        masked.l_values.push(y.values[b]);
                        a += 1;
                        b += 1;
                    }
                }
            }
            masked.row_starts.push(masked.columns.len());
        }
        masked
    }

    fn samples(&self) -> usize {
        self.row_starts.len() - 1
    }

    /// (1/n) Σ_i |M(i)| / k.
    fn mutual_knn(&self, k: usize) -> f64 {
        self.columns.len() as f64 / (self.samples() * k) as f64
    }

    /// (M ⊙ L)_ij, zero off the mask.
    fn l_at(&self, i: usize, j: usize) -> f64 {
        let row = self.row_starts[i]..self.row_starts[i + 1];
        self.columns[row.clone()]
            .binary_search(&j)
            .map_or(0.0, |offset| self.l_values[row.start + offset])
    }

    /// HSIC_u(M ⊙ K, M ⊙ L) (Song et al. 2012 eq. 5 with A = M ⊙ K, B = M ⊙ L): tr(AB) = Σ_ij A_ij B_ji,
    /// 1ᵀAB1 = Σ_j (Σ_i A_ij)(Σ_m B_jm).
    fn hsic_unbiased(&self) -> f64 {
        let samples = self.samples();
        let entries = (0..samples).flat_map(|i| {
            (self.row_starts[i]..self.row_starts[i + 1]).map(move |entry| {
                let j = self.columns[entry];
                (
                    i,
                    j,
                    self.k_values[entry],
                    self.l_values[entry],
                    self.l_at(j, i),
                )
            })
        });
        let sums = KernelSums::from_entries(samples, entries);
        sums.hsic_unbiased(samples)
    }
}

/// `out = lhs · rhs` through the shared gemm wrapper.
fn multiply(lhs: View<f64>, rhs: View<f64>, out: &mut [f64], parallel: bool) {
    matmul::multiply(lhs, rhs, out, false, parallel);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Standard normal values (Box–Muller), [count].
    fn gaussian(count: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
        (0..count)
            .map(|_| {
                let (u, v): (f64, f64) = (rng.random::<f64>().max(f64::MIN_POSITIVE), rng.random());
                (-2.0 * u.ln()).sqrt() * (std::f64::consts::TAU * v).cos()
            })
            .collect()
    }

    fn rep<'a>(data: &'a [f64], samples: usize) -> Representation<'a> {
        Representation::new("test", data, samples, data.len() / samples).expect("valid test data")
    }

    /// x · q for q: [features, features] row-major.
    fn times(x: &[f64], features: usize, q: &[f64]) -> Vec<f64> {
        x.chunks(features)
            .flat_map(|row| {
                (0..features)
                    .map(move |c| (0..features).map(|r| row[r] * q[r * features + c]).sum())
            })
            .collect()
    }

    /// A random orthogonal matrix: Gram–Schmidt on Gaussian columns, [features, features] row-major.
    fn orthogonal(features: usize, rng: &mut ChaCha8Rng) -> Vec<f64> {
        let mut columns: Vec<Vec<f64>> = Vec::new();
        while columns.len() < features {
            let mut v = gaussian(features, rng);
            for u in &columns {
                let dot: f64 = v.iter().zip(u).map(|(a, b)| a * b).sum();
                v.iter_mut().zip(u).for_each(|(a, b)| *a -= dot * b);
            }
            let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
            columns.push(v.iter().map(|a| a / norm).collect());
        }
        (0..features * features)
            .map(|index| columns[index % features][index / features])
            .collect()
    }

    /// K = X Xᵀ written out directly: [samples, samples].
    fn gram(x: &[f64], samples: usize) -> Vec<f64> {
        let features = x.len() / samples;
        let row = |i: usize| &x[i * features..(i + 1) * features];
        (0..samples * samples)
            .map(|index| {
                row(index / samples)
                    .iter()
                    .zip(row(index % samples))
                    .map(|(a, b)| a * b)
                    .sum()
            })
            .collect()
    }

    /// Written by tests/fixtures/alignment_reference.py: dense numpy from the published formulas.
    const REFERENCE_FIXTURE: &str = include_str!("../../tests/fixtures/alignment_reference.json");

    #[test]
    fn metrics_agree_with_the_independent_numpy_reference() {
        let fixture: serde_json::Value = serde_json::from_str(REFERENCE_FIXTURE).unwrap();
        let number = |value: &serde_json::Value| value.as_f64().expect("a number");
        let samples = fixture["samples"].as_u64().unwrap() as usize;
        let vector = |key: &str| {
            fixture[key]
                .as_array()
                .unwrap()
                .iter()
                .map(number)
                .collect::<Vec<f64>>()
        };
        let (x_raw, y_raw) = (vector("x"), vector("y"));
        let quantile = number(&fixture["clip_quantile"]);
        for (set, preprocessing) in [
            ("raw", Preprocessing::None),
            ("platonic", Preprocessing::ClipAndNormalise { quantile }),
        ] {
            let expected = |key: &str| number(&fixture[set][key]);
            let x_data = preprocess(&rep(&x_raw, samples), preprocessing).unwrap();
            let y_data = preprocess(&rep(&y_raw, samples), preprocessing).unwrap();
            let (x, y) = (rep(&x_data, samples), rep(&y_data, samples));
            let (k_matrix, l_matrix) = (gram(&x_data, samples), gram(&y_data, samples));
            let close = |got: f64, key: &str| {
                let want = expected(key);
                assert!(
                    (got - want).abs() <= 1e-9 * want.abs().max(1.0),
                    "{set} {key}: {got} vs {want}"
                );
            };
            close(
                hsic_biased(&k_matrix, &l_matrix, samples).unwrap(),
                "hsic_biased",
            );
            close(
                hsic_unbiased(&k_matrix, &l_matrix, samples).unwrap(),
                "hsic_unbiased",
            );
            close(cka(&x, &y, HsicEstimator::Biased).unwrap(), "cka_biased");
            close(
                cka(&x, &y, HsicEstimator::Unbiased).unwrap(),
                "cka_unbiased",
            );
            for k in fixture["neighbours"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k.as_u64().unwrap() as usize)
            {
                close(mutual_knn(&x, &y, k).unwrap(), &format!("mutual_knn_k{k}"));
                close(cknna(&x, &y, k).unwrap(), &format!("cknna_xy_k{k}"));
                close(cknna(&y, &x, k).unwrap(), &format!("cknna_yx_k{k}"));
            }
            let options = CompareOptions {
                null_draws: 0,
                ci_draws: 0,
                preprocessing,
                ..CompareOptions::default()
            };
            let report = compare(&rep(&x_raw, samples), &rep(&y_raw, samples), &options).unwrap();
            close(report.metrics.cka_biased, "cka_biased");
            close(report.metrics.cka_unbiased, "cka_unbiased");
            close(report.metrics.cknna, "cknna_xy_k10");
            close(report.metrics.mutual_knn, "mutual_knn_k10");
            assert_eq!((report.null, report.ci), (None, None));
        }
    }

    #[test]
    fn biased_hsic_of_a_four_sample_case_matches_the_hand_computation() {
        // K = diag(1, 2, 3, 4) and L = I. H K H has diagonal entries K_ii − 2·K_ii/n + tr(K)/n²
        // = K_ii/2 + 10/16, so tr(HKH·L) = 10/2 + 4·10/16 = 7.5.
        let mut k = vec![0.0; 16];
        let mut l = vec![0.0; 16];
        for i in 0..4 {
            k[i * 5] = (i + 1) as f64;
            l[i * 5] = 1.0;
        }
        assert!((hsic_biased(&k, &l, 4).expect("4 × 4") - 7.5).abs() < 1e-12);
        // With K = L = 11ᵀ everything is constant, H 1 = 0 and HSIC is 0.
        assert!(hsic_biased(&[1.0; 16], &[1.0; 16], 4).expect("4 × 4").abs() < 1e-12);
    }

    #[test]
    fn unbiased_hsic_of_a_four_sample_case_matches_the_hand_computation() {
        // K̃ = L̃ = 11ᵀ − I (n = 4): tr(K̃L̃) = 12, 1ᵀK̃1 = 12, K̃1 = 3·1 so 1ᵀK̃L̃1 = 36;
        // [12 + 144/6 − 2/2·36] / (4·1) = (12 + 24 − 36) / 4 = 0.
        let ones_off_diagonal: Vec<f64> = (0..16)
            .map(|i| if i % 5 == 0 { 7.0 } else { 1.0 })
            .collect();
        let value = hsic_unbiased(&ones_off_diagonal, &ones_off_diagonal, 4).expect("4 × 4");
        assert!(value.abs() < 1e-12, "{value}");
        // K̃ with a single pair (0,1) = (1,0) = 1 and L̃ = K̃: tr = 2, sums = 2, K̃1 = (1,1,0,0), 1ᵀK̃L̃1 = 2;
        // [2 + 4/6 − 2] / 4 = 1/6.
        let mut pair = vec![0.0; 16];
        pair[1] = 1.0;
        pair[4] = 1.0;
        let value = hsic_unbiased(&pair, &pair, 4).expect("4 × 4");
        assert!((value - 1.0 / 6.0).abs() < 1e-12, "{value}");
    }

    #[test]
    fn feature_space_cka_equals_the_kernel_formulas_and_both_routes_agree() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (samples, dx, dy) = (30, 4, 7);
        let x: Vec<f64> = gaussian(samples * dx, &mut rng)
            .iter()
            .map(|v| v + 3.0)
            .collect();
        let y = gaussian(samples * dy, &mut rng);
        let (k, l) = (gram(&x, samples), gram(&y, samples));
        for (estimator, hsic) in [
            (
                HsicEstimator::Biased,
                hsic_biased as fn(&[f64], &[f64], usize) -> Result<f64, AlignmentError>,
            ),
            (HsicEstimator::Unbiased, hsic_unbiased),
        ] {
            let expected = hsic(&k, &l, samples).unwrap()
                / (hsic(&k, &k, samples).unwrap() * hsic(&l, &l, samples).unwrap()).sqrt();
            let got = cka(&rep(&x, samples), &rep(&y, samples), estimator).unwrap();
            assert!(
                (got - expected).abs() < 1e-12,
                "{estimator:?}: {got} vs {expected}"
            );
        }
        // Features outnumbering samples take the sample-space route; it must give the same trace.
        let wide_x = gaussian(6 * 40, &mut rng);
        let wide_y = gaussian(6 * 50, &mut rng);
        let (cx, cy) = (Centred::new(&wide_x, 6, 40), Centred::new(&wide_y, 6, 50));
        let mut cross = vec![0.0; 40 * 50];
        multiply(
            View::row_major(&cx.data, 6, 40).transposed(),
            View::row_major(&cy.data, 6, 50),
            &mut cross,
            false,
        );
        let feature_space: f64 = cross.iter().map(|v| v * v).sum();
        assert!((cross_trace(&cx, &cy) - feature_space).abs() < 1e-9 * feature_space);
    }

    #[test]
    fn unbiased_hsic_does_not_change_when_rows_are_translated() {
        // The centring inside `cka` relies on this.
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let (x, y) = (gaussian(12 * 3, &mut rng), gaussian(12 * 2, &mut rng));
        let shifted: Vec<f64> = x
            .iter()
            .enumerate()
            .map(|(i, v)| v + [5.0, -2.0, 9.0][i % 3])
            .collect();
        let plain = hsic_unbiased(&gram(&x, 12), &gram(&y, 12), 12).unwrap();
        let moved = hsic_unbiased(&gram(&shifted, 12), &gram(&y, 12), 12).unwrap();
        assert!(
            (plain - moved).abs() < 1e-10 * plain.abs().max(1.0),
            "{plain} vs {moved}"
        );
    }

    #[test]
    fn cka_of_a_representation_with_itself_is_one_and_cka_is_symmetric() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let (x, y) = (gaussian(50 * 6, &mut rng), gaussian(50 * 3, &mut rng));
        for estimator in [HsicEstimator::Biased, HsicEstimator::Unbiased] {
            let same = cka(&rep(&x, 50), &rep(&x, 50), estimator).unwrap();
            assert!((same - 1.0).abs() < 1e-12, "{estimator:?}: {same}");
            let xy = cka(&rep(&x, 50), &rep(&y, 50), estimator).unwrap();
            let yx = cka(&rep(&y, 50), &rep(&x, 50), estimator).unwrap();
            assert!((xy - yx).abs() < 1e-12, "{estimator:?}: {xy} vs {yx}");
        }
    }

    #[test]
    fn cka_is_invariant_to_orthogonal_transforms_and_isotropic_scaling() {
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let (x, y) = (gaussian(40 * 5, &mut rng), gaussian(40 * 5, &mut rng));
        let y_related: Vec<f64> = y.iter().zip(&x).map(|(a, b)| a + 2.0 * b).collect();
        let rotated: Vec<f64> = times(&x, 5, &orthogonal(5, &mut rng))
            .iter()
            .map(|v| 3.7 * v)
            .collect();
        for estimator in [HsicEstimator::Biased, HsicEstimator::Unbiased] {
            let before = cka(&rep(&x, 40), &rep(&y_related, 40), estimator).unwrap();
            let after = cka(&rep(&rotated, 40), &rep(&y_related, 40), estimator).unwrap();
            assert!(
                (before - after).abs() < 1e-12,
                "{estimator:?}: {before} vs {after}"
            );
            assert!(before > 0.5, "related data should align: {before}");
        }
    }

    #[test]
    fn cknna_of_a_representation_with_itself_is_one() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let x = gaussian(300 * 8, &mut rng);
        let value = cknna(&rep(&x, 300), &rep(&x, 300), 10).unwrap();
        assert!((value - 1.0).abs() < 1e-12, "{value}");
        assert!((mutual_knn(&rep(&x, 300), &rep(&x, 300), 10).unwrap() - 1.0).abs() < 1e-15);
    }

    #[test]
    fn tiled_neighbour_search_equals_a_full_sort_with_ties_to_the_lower_index() {
        // 600 samples span three tiles; integer features make many exactly tied inner products.
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let (samples, features, k) = (600, 3, 7);
        let x: Vec<f64> = (0..samples * features)
            .map(|_| rng.random_range(-2..=2) as f64)
            .collect();
        let found = Neighbours::new(&x, samples, features, k);
        let row = |i: usize| &x[i * features..(i + 1) * features];
        for i in 0..samples {
            let mut all: Vec<(f64, usize)> = (0..samples)
                .filter(|&j| j != i)
                .map(|j| (row(i).iter().zip(row(j)).map(|(a, b)| a * b).sum(), j))
                .collect();
            // partial_cmp, not total_cmp: −0 and +0 tie (sums that cancel come out with either sign).
            all.sort_by(|a, b| b.0.partial_cmp(&a.0).expect("finite").then(a.1.cmp(&b.1)));
            let mut expected: Vec<usize> = all[..k].iter().map(|&(_, j)| j).collect();
            expected.sort_unstable();
            assert_eq!(&found.indices[i * k..(i + 1) * k], &expected[..], "row {i}");
        }
    }

    #[test]
    fn subsample_neighbours_from_deeper_lists_equal_a_fresh_search_on_the_subsample() {
        // Integer features for ties; depth 9 with k = 4 leaves some samples short of kept candidates, which
        // exercises the direct search as well.
        let mut rng = ChaCha8Rng::seed_from_u64(14);
        let (samples, features, k) = (500, 3, 4);
        let x: Vec<f64> = (0..samples * features)
            .map(|_| rng.random_range(-3..=3) as f64)
            .collect();
        let ranked = RankedNeighbours::search(&x, samples, features, 9);
        assert_eq!(ranked.nearest(k), Neighbours::new(&x, samples, features, k));
        for fraction in [0.8, 0.3] {
            let kept_count = (fraction * samples as f64) as usize;
            let mut kept = rand::seq::index::sample(&mut rng, samples, kept_count).into_vec();
            kept.sort_unstable();
            let rows = select_rows(&x, features, &kept);
            let fresh = Neighbours::new(&rows, kept_count, features, k);
            assert_eq!(
                ranked.within_subsample(k, &kept, &x, features).indices,
                fresh.indices
            );
        }
    }

    #[test]
    fn tile_rounds_cover_every_pair_once_without_sharing_a_block_within_a_round() {
        for blocks in 1..10 {
            let rounds = tile_rounds(blocks);
            let mut seen = std::collections::BTreeSet::new();
            for round in &rounds {
                let mut used = std::collections::BTreeSet::new();
                for &(a, b) in round {
                    assert!(a <= b && b < blocks);
                    assert!(
                        seen.insert((a, b)),
                        "pair ({a}, {b}) twice for {blocks} blocks"
                    );
                    assert!(
                        used.insert(a) && (a == b || used.insert(b)),
                        "block shared in a round"
                    );
                }
            }
            assert_eq!(seen.len(), blocks * (blocks + 1) / 2);
        }
    }

    #[test]
    fn cknna_depends_on_the_argument_order_and_matches_the_dense_definition() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let samples = 60;
        let x = gaussian(samples * 4, &mut rng);
        let y: Vec<f64> = gaussian(samples * 4, &mut rng)
            .iter()
            .zip(&x)
            .map(|(noise, signal)| noise + signal)
            .collect();
        let (k_matrix, l_matrix) = (gram(&x, samples), gram(&y, samples));
        let mask = |matrix: &[f64]| -> Vec<bool> {
            let mut mask = vec![false; samples * samples];
            for i in 0..samples {
                let mut order: Vec<usize> = (0..samples).filter(|&j| j != i).collect();
                order.sort_by(|&a, &b| {
                    let (value_a, value_b) = (matrix[i * samples + a], matrix[i * samples + b]);
                    value_b
                        .partial_cmp(&value_a)
                        .expect("finite")
                        .then(a.cmp(&b))
                });
                order[..5]
                    .iter()
                    .for_each(|&j| mask[i * samples + j] = true);
            }
            mask
        };
        let similarity = |a: &[f64], b: &[f64]| {
            let (mask_a, mask_b) = (mask(a), mask(b));
            let masked = |m: &[f64]| -> Vec<f64> {
                (0..m.len())
                    .map(|i| if mask_a[i] && mask_b[i] { m[i] } else { 0.0 })
                    .collect()
            };
            hsic_unbiased(&masked(a), &masked(b), samples).unwrap()
        };
        let dense = similarity(&k_matrix, &l_matrix)
            / (similarity(&k_matrix, &k_matrix) * similarity(&l_matrix, &l_matrix)).sqrt();
        let xy = cknna(&rep(&x, samples), &rep(&y, samples), 5).unwrap();
        let yx = cknna(&rep(&y, samples), &rep(&x, samples), 5).unwrap();
        assert!((xy - dense).abs() < 1e-12, "{xy} vs {dense}");
        assert!((xy - yx).abs() > 1e-9, "CKNNA(X, Y) = CKNNA(Y, X) = {xy}");
    }

    #[test]
    fn mutual_knn_on_independent_data_is_near_chance() {
        let mut rng = ChaCha8Rng::seed_from_u64(10);
        let (samples, k) = (1000, 10);
        let (x, y) = (
            gaussian(samples * 8, &mut rng),
            gaussian(samples * 8, &mut rng),
        );
        let value = mutual_knn(&rep(&x, samples), &rep(&y, samples), k).unwrap();
        let chance = k as f64 / (samples - 1) as f64;
        // The count of shared neighbours is about Binomial(n·k, k/(n−1)): sd of the mean ≈ sqrt(chance/(n·k)).
        let standard_error = (chance / (samples * k) as f64).sqrt();
        assert!(
            (value - chance).abs() < 5.0 * standard_error,
            "{value} vs chance {chance}"
        );
    }

    #[test]
    fn independent_noise_lies_within_its_permutation_null() {
        let (samples, trials) = (80, 40);
        let options = CompareOptions {
            null_draws: 99,
            ci_draws: 0,
            k: 5,
            ..CompareOptions::default()
        };
        let mut above = MetricSet {
            cka_biased: 0,
            cka_unbiased: 0,
            cknna: 0,
            mutual_knn: 0,
        };
        for trial in 0..trials {
            let mut rng = ChaCha8Rng::seed_from_u64(100 + trial);
            let (x, y) = (
                gaussian(samples * 6, &mut rng),
                gaussian(samples * 6, &mut rng),
            );
            let options = CompareOptions {
                seed: trial,
                ..options
            };
            let report = compare(&rep(&x, samples), &rep(&y, samples), &options).unwrap();
            let null = report.null.expect("null asked for");
            above.cka_biased += usize::from(report.metrics.cka_biased > null.cka_biased.p95);
            above.cka_unbiased += usize::from(report.metrics.cka_unbiased > null.cka_unbiased.p95);
            above.cknna += usize::from(report.metrics.cknna > null.cknna.p95);
            above.mutual_knn += usize::from(report.metrics.mutual_knn > null.mutual_knn.p95);
        }
        // About 5 % of 40 trials lie above p95 under independence (Binomial(40, 0.05): mean 2, P(≥ 8) ≈ 1e-3).
        let counts = [
            above.cka_biased,
            above.cka_unbiased,
            above.cknna,
            above.mutual_knn,
        ];
        assert!(
            counts.iter().all(|&count| count < 8),
            "of {trials} above p95: {above:?}"
        );
    }

    #[test]
    fn compare_reports_a_significant_null_and_an_interval_around_related_data() {
        let mut rng = ChaCha8Rng::seed_from_u64(11);
        let samples = 200;
        let x = gaussian(samples * 5, &mut rng);
        let y: Vec<f64> = gaussian(samples * 5, &mut rng)
            .iter()
            .zip(&x)
            .map(|(noise, signal)| 0.5 * noise + signal)
            .collect();
        let options = CompareOptions {
            null_draws: 50,
            ci_draws: 20,
            ..CompareOptions::default()
        };
        let report = compare(&rep(&x, samples), &rep(&y, samples), &options).unwrap();
        let null = report.null.expect("null asked for");
        let ci = report.ci.expect("interval asked for");
        let rows = [
            (report.metrics.cka_biased, null.cka_biased, ci.cka_biased),
            (
                report.metrics.cka_unbiased,
                null.cka_unbiased,
                ci.cka_unbiased,
            ),
            (report.metrics.cknna, null.cknna, ci.cknna),
            (report.metrics.mutual_knn, null.mutual_knn, ci.mutual_knn),
        ];
        for (value, null, [lo, hi]) in rows {
            assert!(
                value > null.p95 && null.p_value <= 1.0 / 51.0 + 1e-12,
                "{value} vs {null:?}"
            );
            assert!(
                lo < hi && lo < value + 0.05 && value - 0.05 < hi,
                "{value} outside [{lo}, {hi}]"
            );
        }
        let json = serde_json::to_value(&report).unwrap();
        for key in ["n", "k", "metrics", "null", "ci", "preprocessing"] {
            assert!(json.get(key).is_some(), "missing {key}");
        }
        assert_eq!(json["metrics"].as_object().unwrap().len(), 4);
        assert_eq!(json["ci"]["cknna"].as_array().unwrap().len(), 2);
        assert_eq!(json["preprocessing"]["kind"], "none");
        // Reproducible from the seed.
        assert_eq!(
            compare(&rep(&x, samples), &rep(&y, samples), &options).unwrap(),
            report
        );
    }

    #[test]
    fn the_null_relabels_neighbour_lists_exactly_as_a_fresh_search_on_shuffled_data() {
        let mut rng = ChaCha8Rng::seed_from_u64(13);
        let samples = 300;
        let (x, y) = (
            gaussian(samples * 4, &mut rng),
            gaussian(samples * 3, &mut rng),
        );
        let mut permutation: Vec<usize> = (0..samples).collect();
        permutation.shuffle(&mut rng);
        let shuffled = select_rows(&y, 3, &permutation);
        let (x_side, y_side) = (
            Side::new(&x, samples, 4, Neighbours::new(&x, samples, 4, 7)),
            Side::new(&y, samples, 3, Neighbours::new(&y, samples, 3, 7)),
        );
        let relabelled = metrics_between(&x_side, &y_side.permuted(&permutation), 7);
        let fresh = alignment_metrics(&rep(&x, samples), &rep(&shuffled, samples), 7).unwrap();
        assert_eq!(
            y_side.permuted(&permutation).neighbours,
            Neighbours::new(&shuffled, samples, 3, 7)
        );
        let pairs = [
            (relabelled.cka_biased, fresh.cka_biased),
            (relabelled.cka_unbiased, fresh.cka_unbiased),
            (relabelled.cknna, fresh.cknna),
            (relabelled.mutual_knn, fresh.mutual_knn),
        ];
        for (a, b) in pairs {
            assert!((a - b).abs() < 1e-12, "{relabelled:?} vs {fresh:?}");
        }
    }

    #[test]
    fn the_subsample_interval_has_about_the_width_of_the_sampling_spread() {
        // Spread of CKA over independent data sets from one distribution, against the mean half-width of the
        // jackknife-histogram interval computed from single data sets.
        let (samples, features) = (120, 4);
        let data_set = |seed: u64| {
            let mut rng = ChaCha8Rng::seed_from_u64(seed);
            let x = gaussian(samples * features, &mut rng);
            let y: Vec<f64> = gaussian(samples * features, &mut rng)
                .iter()
                .zip(&x)
                .map(|(e, s)| e + 0.7 * s)
                .collect();
            (x, y)
        };
        let values: Vec<f64> = (0..300)
            .map(|seed| {
                let (x, y) = data_set(1000 + seed);
                cka(
                    &rep(&x, samples),
                    &rep(&y, samples),
                    HsicEstimator::Unbiased,
                )
                .unwrap()
            })
            .collect();
        let mean = values.iter().sum::<f64>() / values.len() as f64;
        let spread = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>()
            / (values.len() - 1) as f64)
            .sqrt();
        let options = CompareOptions {
            null_draws: 0,
            ci_draws: 100,
            ..CompareOptions::default()
        };
        let half_widths: Vec<f64> = (0..20)
            .map(|seed| {
                let (x, y) = data_set(5000 + seed);
                let report = compare(&rep(&x, samples), &rep(&y, samples), &options).unwrap();
                let [lo, hi] = report.ci.unwrap().cka_unbiased;
                (hi - lo) / 2.0
            })
            .collect();
        let half_width = half_widths.iter().sum::<f64>() / half_widths.len() as f64;
        let ratio = half_width / (1.96 * spread);
        assert!(
            (0.7..1.4).contains(&ratio),
            "half-width {half_width} vs 1.96·sd {}",
            1.96 * spread
        );
    }

    #[test]
    fn preprocessing_clips_at_the_mean_row_quantile_and_normalises_rows() {
        // Rows |x| sorted: (1, 2, 3, 10) and (1, 1, 1, 1). q = 0.5: row medians 2.5 and 1 -> clip at 1.75.
        let data = [1.0, -10.0, 2.0, 3.0, 1.0, 1.0, -1.0, 1.0];
        let x = Representation::new("x", &data, 2, 4).unwrap();
        let out = preprocess(&x, Preprocessing::ClipAndNormalise { quantile: 0.5 }).unwrap();
        let first = [1.0, -1.75, 1.75, 1.75];
        let norm = first.iter().map(|v: &f64| v * v).sum::<f64>().sqrt();
        for (got, want) in out[..4].iter().zip(first.iter().map(|v| v / norm)) {
            assert!((got - want).abs() < 1e-15);
        }
        assert!(
            out[4..]
                .iter()
                .zip([0.5, 0.5, -0.5, 0.5])
                .all(|(got, want)| (got - want).abs() < 1e-15)
        );
        assert_eq!(preprocess(&x, Preprocessing::None).unwrap(), data.to_vec());
    }

    #[test]
    fn cka_matrix_has_ones_on_the_diagonal_of_a_self_comparison() {
        let mut rng = ChaCha8Rng::seed_from_u64(12);
        let layers: Vec<Vec<f64>> = (0..3)
            .map(|layer| gaussian(25 * (layer + 2), &mut rng))
            .collect();
        let reps: Vec<Representation> = layers.iter().map(|data| rep(data, 25)).collect();
        let matrix = cka_matrix(&reps, &reps, HsicEstimator::Unbiased).unwrap();
        for i in 0..3 {
            assert!((matrix[i * 4] - 1.0).abs() < 1e-12);
            for j in 0..3 {
                let direct = cka(&reps[i], &reps[j], HsicEstimator::Unbiased).unwrap();
                assert!((matrix[i * 3 + j] - direct).abs() < 1e-12);
            }
        }
    }

    #[test]
    fn errors_name_the_problem() {
        let nan = [1.0, 2.0, f64::NAN, 4.0];
        let error = Representation::new("a.safetensors:t", &nan, 2, 2).unwrap_err();
        assert!(
            matches!(&error, AlignmentError::NonFinite { name, sample: 1, feature: 0, value }
                if name == "a.safetensors:t" && value.is_nan()),
            "{error}"
        );
        assert!(matches!(
            Representation::new("x", &[1.0; 5], 2, 2),
            Err(AlignmentError::Shape { .. })
        ));
        let (five, six) = ([0.5; 10], [0.5; 12]);
        let (x, y) = (rep(&five, 5), rep(&six, 6));
        assert!(matches!(
            cka(&x, &y, HsicEstimator::Biased),
            Err(AlignmentError::SampleCountMismatch { .. })
        ));
        assert!(matches!(
            cknna(&x, &x, 5),
            Err(AlignmentError::NeighbourCount { k: 5, samples: 5 })
        ));
        let three = [1.0, 2.0, 3.0];
        assert!(matches!(
            mutual_knn(&rep(&three, 3), &rep(&three, 3), 1),
            Err(AlignmentError::TooFewSamples { .. })
        ));
    }
}
