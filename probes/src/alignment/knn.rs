//! Mutual k-nearest neighbours and CKNNA (Huh et al. 2024, `platonic-rep/metrics.py`): each row's k largest
//! inner products, found tile by tile without holding the Gram matrix, and the HSIC of the masked kernels.

use rayon::prelude::*;
use weatherlens_models::fused::matmul::View;

use super::cka::KernelSums;
use super::{AlignmentError, Representation, TILE, check_neighbour_count, check_pair, multiply};

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

/// Each sample's k largest inner products with the other samples (self excluded, ties to the lower index).
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Neighbours {
    pub(super) k: usize,
    /// [samples, k], ascending within a row.
    pub(super) indices: Vec<usize>,
    /// [samples, k]: K_ij for the j in `indices`.
    pub(super) values: Vec<f64>,
}

/// Each sample's `depth` best candidates in rank order (larger inner product first, ties to the lower index,
/// self excluded). A depth beyond k lets a subsample find its k nearest neighbours without a new search.
pub(super) struct RankedNeighbours {
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
    pub(super) fn search(data: &[f64], samples: usize, features: usize, depth: usize) -> Self {
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
    pub(super) fn nearest(&self, k: usize) -> Neighbours {
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
    pub(super) fn within_subsample(
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
    pub(super) fn new(data: &[f64], samples: usize, features: usize, k: usize) -> Self {
        RankedNeighbours::search(data, samples, features, k).nearest(k)
    }

    /// From each row's k (index, value) pairs in any order.
    pub(super) fn from_rows<R: Iterator<Item = (usize, f64)>>(
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

    pub(super) fn samples(&self) -> usize {
        self.indices.len() / self.k
    }

    /// The lists of Y' with Y'_i = `Y[permutation[i]]`: N_Y'(i) = permutation⁻¹(N_Y(`permutation[i]`)), same values.
    pub(super) fn permuted(&self, permutation: &[usize]) -> Self {
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
pub(super) struct RowCandidates {
    k: usize,
    kept: Vec<(f64, usize)>,
    /// The k-th best after the last cut (−∞ before the first): a newcomer must rank before it.
    bar: (f64, usize),
}

impl RowCandidates {
    pub(super) fn new(k: usize) -> Self {
        Self {
            k,
            kept: Vec::with_capacity(2 * k + 16),
            bar: (f64::NEG_INFINITY, 0),
        }
    }

    #[inline]
    pub(super) fn offer(&mut self, value: f64, index: usize) {
        if value < self.bar.0 || (value == self.bar.0 && index > self.bar.1) {
            return;
        }
        self.kept.push((value, index));
        if self.kept.len() == self.kept.capacity() {
            self.cut();
        }
    }

    pub(super) fn cut(&mut self) {
        if self.kept.len() > self.k {
            self.kept.select_nth_unstable_by(self.k - 1, rank_order);
            self.kept.truncate(self.k);
            self.bar = self.kept[self.k - 1];
        }
    }

    /// The k best, best first.
    pub(super) fn into_ranked(mut self) -> Vec<(f64, usize)> {
        self.cut();
        self.kept.sort_unstable_by(rank_order);
        self.kept
    }
}

/// Larger value first, ties to the lower index. −0 and +0 tie (unlike f64::total_cmp).
pub(super) fn ranks_before(a: (f64, usize), b: (f64, usize)) -> bool {
    a.0 > b.0 || (a.0 == b.0 && a.1 < b.1)
}

pub(super) fn rank_order(a: &(f64, usize), b: &(f64, usize)) -> std::cmp::Ordering {
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
pub(super) fn tile_rounds(blocks: usize) -> Vec<Vec<(usize, usize)>> {
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
pub(super) struct MaskedKernels {
    /// [samples + 1]
    row_starts: Vec<usize>,
    columns: Vec<usize>,
    /// K_ij at the kept entries.
    k_values: Vec<f64>,
    /// L_ij at the kept entries.
    l_values: Vec<f64>,
}

impl MaskedKernels {
    pub(super) fn intersect(x: &Neighbours, y: &Neighbours) -> Self {
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

    pub(super) fn samples(&self) -> usize {
        self.row_starts.len() - 1
    }

    /// (1/n) Σ_i |M(i)| / k.
    pub(super) fn mutual_knn(&self, k: usize) -> f64 {
        self.columns.len() as f64 / (self.samples() * k) as f64
    }

    /// (M ⊙ L)_ij, zero off the mask.
    pub(super) fn l_at(&self, i: usize, j: usize) -> f64 {
        let row = self.row_starts[i]..self.row_starts[i + 1];
        self.columns[row.clone()]
            .binary_search(&j)
            .map_or(0.0, |offset| self.l_values[row.start + offset])
    }

    /// HSIC_u(M ⊙ K, M ⊙ L) (Song et al. 2012 eq. 5 with A = M ⊙ K, B = M ⊙ L): tr(AB) = Σ_ij A_ij B_ji,
    /// 1ᵀAB1 = Σ_j (Σ_i A_ij)(Σ_m B_jm).
    pub(super) fn hsic_unbiased(&self) -> f64 {
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
