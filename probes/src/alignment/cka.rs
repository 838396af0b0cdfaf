//! Linear CKA with the biased and the unbiased HSIC (Kornblith et al. 2019; Song et al. 2012), from centred
//! rows without forming the Gram matrices.

use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use weatherlens_models::fused::matmul::View;

use super::{
    AlignmentError, GRAM_BLOCK_VALUES, Representation, check_pair, check_sample_count, multiply,
    select_rows,
};

/// Which HSIC estimator a CKA uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HsicEstimator {
    /// tr(K H L H), H = I − 11ᵀ/n (Gretton et al. 2005; the CKA of Kornblith et al. 2019).
    Biased,
    /// Song et al. 2012 eq. 5 (unbiased for any n ≥ 4).
    Unbiased,
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

/// The sums the unbiased HSIC is built from, for kernels K̃, L̃ with zero diagonals.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct KernelSums {
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
    pub(super) fn from_entries(
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
    pub(super) fn hsic_unbiased(&self, samples: usize) -> f64 {
        let n = samples as f64;
        (self.trace + self.sum_k * self.sum_l / ((n - 1.0) * (n - 2.0))
            - 2.0 / (n - 2.0) * self.sum_kl)
            / (n * (n - 3.0))
    }
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

/// Summary of a centred linear kernel Kc = Xc Xcᵀ that the HSIC estimators need besides the cross trace.
#[derive(Debug, Clone)]
pub(super) struct KernelStats {
    /// diag(Kc): ‖x_i − x̄‖², one per sample.
    pub(super) squared_norms: Vec<f64>,
    /// tr(Kc Kc) = ‖Xcᵀ Xc‖²_F.
    pub(super) self_trace: f64,
}

/// A representation with its columns centred (x_i − x̄).
pub(super) struct Centred {
    /// [samples, features] row-major.
    pub(super) data: Vec<f64>,
    pub(super) samples: usize,
    pub(super) features: usize,
    pub(super) stats: KernelStats,
}

impl Centred {
    /// data: [samples, features] row-major.
    pub(super) fn new(data: &[f64], samples: usize, features: usize) -> Self {
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
    pub(super) fn permuted(&self, permutation: &[usize]) -> Self {
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
pub(super) fn cross_trace(x: &Centred, y: &Centred) -> f64 {
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
pub(super) fn cka_centred(
    cross: f64,
    x: &KernelStats,
    y: &KernelStats,
    estimator: HsicEstimator,
) -> f64 {
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
