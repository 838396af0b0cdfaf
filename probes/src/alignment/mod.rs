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

mod cka;
mod compare;
mod controls;
mod knn;
mod representation;
#[cfg(test)]
mod tests;

pub use cka::{HsicEstimator, cka, cka_matrix, hsic_biased, hsic_unbiased};
pub use compare::{AlignmentReport, CompareOptions, NullSummary, compare};
pub use controls::{
    ControlledPair, ControlledReport, Controls, Excess, ExcessVerdict, MIN_ROWS_PER_NEIGHBOUR,
    compare_panel,
};
pub use knn::{cknna, mutual_knn};
pub use representation::{Preprocessing, Representation, preprocess};

use serde::Serialize;
use weatherlens_models::fused::matmul::{self, View};

use cka::{Centred, cka_centred, cross_trace};
use knn::{MaskedKernels, Neighbours};

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

pub(crate) fn check_pair(x: &Representation, y: &Representation) -> Result<(), AlignmentError> {
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

pub(crate) fn check_neighbour_count(k: usize, samples: usize) -> Result<(), AlignmentError> {
    if k == 0 || k >= samples {
        return Err(AlignmentError::NeighbourCount { k, samples });
    }
    Ok(())
}

/// The four metrics between two prepared sides.
pub(crate) fn metrics_between(x: &Side, y: &Side, k: usize) -> MetricSet<f64> {
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
pub(crate) struct Side {
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

/// rows of data ([samples, features]) at `indices`, in that order: [indices.len(), features].
pub(crate) fn select_rows(data: &[f64], features: usize, indices: &[usize]) -> Vec<f64> {
    indices
        .iter()
        .flat_map(|&row| &data[row * features..(row + 1) * features])
        .copied()
        .collect()
}

/// `out = lhs · rhs` through the shared gemm wrapper.
pub(crate) fn multiply(lhs: View<f64>, rhs: View<f64>, out: &mut [f64], parallel: bool) {
    matmul::multiply(lhs, rhs, out, false, parallel);
}

pub(crate) fn check_sample_count(samples: usize) -> Result<(), AlignmentError> {
    if samples < 4 {
        return Err(AlignmentError::TooFewSamples { samples });
    }
    Ok(())
}
