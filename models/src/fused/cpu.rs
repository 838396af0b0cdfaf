//! The fused kernels on plain f32 buffers: row-major `[rows, width]` blocks, split into fixed chunks of rows
//! that rayon runs in parallel. Reductions over rows (bias and LayerNorm gradients) sum per-chunk partials in
//! chunk order, so every result is bit-identical from run to run whatever the thread schedule.

use std::mem::MaybeUninit;

use rayon::prelude::*;

/// Rows per parallel task: large enough to amortise scheduling, small enough to balance two to sixteen cores.
const ROWS_PER_TASK: usize = 64;

/// Rows of a node table picked by an edge index: row r of the gathered block is `source[b, index[r], :]`.
#[derive(Clone, Copy)]
pub struct Gathered<'a> {
    /// [batch, source_rows, width]
    pub source: &'a [f32],
    /// [rows] indices below `source_rows`
    pub index: &'a [usize],
    pub source_rows: usize,
}

impl Gathered<'_> {
    /// Row `r` of batch element `b`.
    fn row(&self, b: usize, r: usize, width: usize) -> &[f32] {
        &self.source[(b * self.source_rows + self.index[r]) * width..][..width]
    }
}

/// `source[b, index[r], :]` for r in index: [batch, index.len(), width].
pub fn gather(rows: Gathered, width: usize) -> Vec<f32> {
    let n = rows.index.len();
    let batch = rows.source.len() / (rows.source_rows * width).max(1);
    uninit_rows(batch * n, width, |first, block| {
        for (i, out) in block.chunks_exact_mut(width).enumerate() {
            write_row(out, rows.row((first + i) / n, (first + i) % n, width));
        }
    })
}

/// `out[b, n, :] = Σ_j Σ_{k in offsets[n]..offsets[n+1]} values_j[b, order[k], :]`: the rows of the `values`
/// blocks (each [batch, value_rows, width]) grouped by segment (a CSR of the index) and summed in a fixed
/// order. out: `[batch, offsets.len() - 1, width]`.
pub fn segment_sum(
    values: &[&[f32]],
    order: &[usize],
    offsets: &[usize],
    value_rows: usize,
    width: usize,
) -> Vec<f32> {
    let segments = offsets.len() - 1;
    let batch = values[0].len() / (value_rows * width).max(1);
    uninit_rows(batch * segments, width, |first, block| {
        for (i, out) in block.chunks_exact_mut(width).enumerate() {
            let (b, n) = ((first + i) / segments, (first + i) % segments);
            let out = fill_row(out, 0.0);
            for &k in &order[offsets[n]..offsets[n + 1]] {
                for v in values {
                    let from = &v[(b * value_rows + k) * width..][..width];
                    out.iter_mut().zip(from).for_each(|(o, v)| *o += v);
                }
            }
        }
    })
}

/// `u = z + Σ_j gathered_j + bias` in place (z: [batch, rows, width]) and `y = silu(u) = u·σ(u)`; returns y.
pub fn bias_silu_forward(u: &mut [f32], bias: &[f32], gathered: &[Gathered]) -> Vec<f32> {
    let (width, len) = (bias.len(), u.len());
    let rows = gathered.first().map_or(1, |g| g.index.len());
    let mut y = Vec::with_capacity(len);
    u.par_chunks_mut(width * ROWS_PER_TASK)
        .zip(y.spare_capacity_mut()[..len].par_chunks_mut(width * ROWS_PER_TASK))
        .enumerate()
        .for_each(|(chunk, (u, y))| {
            for (i, (u, y)) in u
                .chunks_exact_mut(width)
                .zip(y.chunks_exact_mut(width))
                .enumerate()
            {
                let row = chunk * ROWS_PER_TASK + i;
                for g in gathered {
                    let from = g.row(row / rows, row % rows, width);
                    u.iter_mut().zip(from).for_each(|(u, v)| *u += v);
                }
                for ((u, y), b) in u.iter_mut().zip(y.iter_mut()).zip(bias) {
                    *u += b;
                    y.write(*u * sigmoid(*u));
                }
            }
        });
    // SAFETY: the chunks above cover all `len` elements and write every one.
    unsafe { y.set_len(len) };
    y
}

/// From u (the SiLU input) and the output gradient g: `∂L/∂u = g·σ(u)·(1 + u·(1 − σ(u)))` and
/// `∂L/∂bias = Σ_rows ∂L/∂u`.
pub fn bias_silu_backward(u: &[f32], grad: &[f32], width: usize) -> (Vec<f32>, Vec<f32>) {
    let len = u.len();
    let mut out = Vec::with_capacity(len);
    let partials: Vec<Vec<f32>> = out.spare_capacity_mut()[..len]
        .par_chunks_mut(width * ROWS_PER_TASK)
        .zip(grad.par_chunks(width * ROWS_PER_TASK))
        .zip(u.par_chunks(width * ROWS_PER_TASK))
        .map(|((out, g), u)| {
            let mut bias = vec![0.0f32; width];
            for ((out, g), u) in out
                .chunks_exact_mut(width)
                .zip(g.chunks_exact(width))
                .zip(u.chunks_exact(width))
            {
                for (((o, g), u), acc) in out.iter_mut().zip(g).zip(u).zip(bias.iter_mut()) {
                    let s = sigmoid(*u);
                    let du = g * s * (1.0 + u * (1.0 - s));
                    o.write(du);
                    *acc += du;
                }
            }
            bias
        })
        .collect();
    // SAFETY: the chunks above cover all `len` elements and write every one.
    unsafe { out.set_len(len) };
    (out, sum_partials(partials, width))
}

/// LayerNorm over the last axis of `x + bias`, with biased variance (burn's and PyTorch's definition). Turns x
/// into `x̂ = (x + bias − mean)·rstd` in place and returns `(y = x̂·gamma + beta, rstd per row)`.
pub fn layer_norm_forward(
    x: &mut [f32],
    bias: &[f32],
    gamma: &[f32],
    beta: &[f32],
    epsilon: f32,
) -> (Vec<f32>, Vec<f32>) {
    let (width, len) = (gamma.len(), x.len());
    let rows = len / width;
    let mut y = Vec::with_capacity(len);
    let mut rstd = vec![0.0f32; rows];
    x.par_chunks_mut(width * ROWS_PER_TASK)
        .zip(y.spare_capacity_mut()[..len].par_chunks_mut(width * ROWS_PER_TASK))
        .zip(rstd.par_chunks_mut(ROWS_PER_TASK))
        .for_each(|((x, y), rstd)| {
            for ((x, y), r) in x
                .chunks_exact_mut(width)
                .zip(y.chunks_exact_mut(width))
                .zip(rstd.iter_mut())
            {
                x.iter_mut().zip(bias).for_each(|(x, b)| *x += b);
                let mean = lane_sum(x, |v| v) / width as f32;
                let var = lane_sum(x, |v| (v - mean) * (v - mean)) / width as f32;
                *r = 1.0 / (var + epsilon).sqrt();
                for (((x, y), g), b) in x.iter_mut().zip(y.iter_mut()).zip(gamma).zip(beta) {
                    *x = (*x - mean) * *r;
                    y.write(*x * g + b);
                }
            }
        });
    // SAFETY: the chunks above cover all `len` elements and write every one.
    unsafe { y.set_len(len) };
    (y, rstd)
}

/// The LayerNorm backward from the saved x̂ and rstd: `∂L/∂x = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂))` with
/// `ĝ = g·gamma`; `∂L/∂bias = Σ_rows ∂L/∂x`, `∂L/∂gamma = Σ_rows g·x̂`, `∂L/∂beta = Σ_rows g`.
/// Returns (∂L/∂x, ∂L/∂bias, ∂L/∂gamma, ∂L/∂beta).
pub fn layer_norm_backward(
    xhat: &[f32],
    rstd: &[f32],
    gamma: &[f32],
    grad: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>, Vec<f32>) {
    let (width, len) = (gamma.len(), xhat.len());
    let mut out = Vec::with_capacity(len);
    let partials: Vec<Vec<f32>> = out.spare_capacity_mut()[..len]
        .par_chunks_mut(width * ROWS_PER_TASK)
        .zip(grad.par_chunks(width * ROWS_PER_TASK))
        .zip(xhat.par_chunks(width * ROWS_PER_TASK))
        .zip(rstd.par_chunks(ROWS_PER_TASK))
        .map(|(((out, g), xhat), rstd)| {
            // [gamma gradient | beta gradient | bias gradient] of this chunk
            let mut acc = vec![0.0f32; 3 * width];
            let mut ghat = vec![0.0f32; width];
            for (((out, g), xhat), r) in out
                .chunks_exact_mut(width)
                .zip(g.chunks_exact(width))
                .zip(xhat.chunks_exact(width))
                .zip(rstd)
            {
                let (dgamma, rest) = acc.split_at_mut(width);
                let (dbeta, dbias) = rest.split_at_mut(width);
                for ((((gh, g), x), gm), (dg, db)) in ghat
                    .iter_mut()
                    .zip(g)
                    .zip(xhat)
                    .zip(gamma)
                    .zip(dgamma.iter_mut().zip(dbeta.iter_mut()))
                {
                    *gh = g * gm;
                    *dg += g * x;
                    *db += g;
                }
                let mean_g = lane_sum(&ghat, |v| v) / width as f32;
                let mean_gx = lane_dot(&ghat, xhat) / width as f32;
                for (((o, gh), x), db) in out.iter_mut().zip(&ghat).zip(xhat).zip(dbias.iter_mut())
                {
                    let dx = r * (gh - mean_g - x * mean_gx);
                    o.write(dx);
                    *db += dx;
                }
            }
            acc
        })
        .collect();
    // SAFETY: the chunks above cover all `len` elements and write every one.
    unsafe { out.set_len(len) };
    let all = sum_partials(partials, 3 * width);
    let (dgamma, rest) = all.split_at(width);
    let (dbeta, dbias) = rest.split_at(width);
    (out, dbias.to_vec(), dgamma.to_vec(), dbeta.to_vec())
}

/// `Σ f(x_i)` in eight interleaved partial sums, which the compiler can keep in one vector register (a single
/// running sum is a serial chain it may not reorder).
#[inline(always)]
fn lane_sum(xs: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut acc = [0.0f32; 8];
    let chunks = xs.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().map(|&v| f(v)).sum();
    for c in chunks {
        for (a, &v) in acc.iter_mut().zip(c) {
            *a += f(v);
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// `Σ a_i·b_i` in eight interleaved partial sums (see [`lane_sum`]).
#[inline(always)]
fn lane_dot(a: &[f32], b: &[f32]) -> f32 {
    let mut acc = [0.0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| x * y)
        .sum();
    for (x, y) in ca.zip(cb) {
        for ((acc, x), y) in acc.iter_mut().zip(x).zip(y) {
            *acc += x * y;
        }
    }
    acc.iter().sum::<f32>() + tail
}

/// A `[rows, width]` buffer filled in parallel chunks by `fill(first_row, chunk)`, which must write every
/// element of its chunk; the buffer is never zeroed first (that would be one more pass over memory).
fn uninit_rows(
    rows: usize,
    width: usize,
    fill: impl Fn(usize, &mut [MaybeUninit<f32>]) + Sync,
) -> Vec<f32> {
    let len = rows * width;
    let mut out = Vec::with_capacity(len);
    out.spare_capacity_mut()[..len]
        .par_chunks_mut(width * ROWS_PER_TASK)
        .enumerate()
        .for_each(|(chunk, block)| fill(chunk * ROWS_PER_TASK, block));
    // SAFETY: the chunks cover all `len` elements and `fill` writes each element of its chunk.
    unsafe { out.set_len(len) };
    out
}

/// Copies `from` into an uninitialised row of the same length.
fn write_row(row: &mut [MaybeUninit<f32>], from: &[f32]) {
    row.iter_mut().zip(from).for_each(|(o, v)| {
        o.write(*v);
    });
}

/// Sets every element of an uninitialised row to `value` and returns it initialised.
fn fill_row(row: &mut [MaybeUninit<f32>], value: f32) -> &mut [f32] {
    row.iter_mut().for_each(|o| {
        o.write(value);
    });
    // SAFETY: every element of `row` was just written.
    unsafe { &mut *(row as *mut [MaybeUninit<f32>] as *mut [f32]) }
}

/// Sums per-chunk partial vectors in chunk order (deterministic).
fn sum_partials(partials: Vec<Vec<f32>>, width: usize) -> Vec<f32> {
    partials
        .into_iter()
        .fold(vec![0.0f32; width], |mut acc, p| {
            acc.iter_mut().zip(p).for_each(|(a, v)| *a += v);
            acc
        })
}

/// The logistic function through [`exp`].
#[inline(always)]
fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// e^x to about 2 ulp, written in arithmetic the compiler vectorises (the libm call does not): x = n·ln2 + r
/// with |r| ≤ ln2/2, e^r by its degree-6 Taylor polynomial (error < 2e-7), 2^n by building the float's
/// exponent bits. Inputs are clamped to [-87, 88], the normal range; NaN stays NaN.
#[inline(always)]
fn exp(x: f32) -> f32 {
    // Adding 1.5·2^23 rounds to an integer in the mantissa: t's bits are 0x4B40_0000 + n.
    const ROUND: f32 = 12_582_912.0;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let x = x.clamp(-87.0, 88.0);
    let t = x * std::f32::consts::LOG2_E + ROUND;
    let n = t - ROUND;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0 + r * (1.0 / 24.0 + r * (1.0 / 120.0 + r * (1.0 / 720.0))))));
    let two_to_n = f32::from_bits(t.to_bits().wrapping_sub(0x4B40_0000 - 127) << 23);
    p * two_to_n
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_is_accurate_over_the_normal_range() {
        let mut worst = (0.0f64, 0.0f32);
        for i in 0..175_000 {
            let x = (-87.0 + i as f64 * 1e-3) as f32;
            let want = (x as f64).exp();
            let err = ((exp(x) as f64) - want).abs() / want;
            if err > worst.0 {
                worst = (err, x);
            }
        }
        assert!(worst.0 < 3e-7, "worst relative error {worst:?}");
        assert!(exp(f32::NAN).is_nan());
        assert_eq!(sigmoid(200.0), 1.0);
        assert!(sigmoid(-200.0) < 1e-37);
    }

    #[test]
    fn gather_segment_sum_and_gathered_silu_by_hand() {
        // batch 2, source rows 3, width 2; index picks rows 2, 0, 2
        let source = [
            1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0,
        ];
        let picked = Gathered {
            source: &source,
            index: &[2, 0, 2],
            source_rows: 3,
        };
        assert_eq!(
            gather(picked, 2),
            [
                5.0, 6.0, 1.0, 2.0, 5.0, 6.0, 50.0, 60.0, 10.0, 20.0, 50.0, 60.0
            ]
        );
        // u = 1 + picked + picked + bias (0.5, -0.5)
        let mut u = vec![1.0f32; 12];
        let y = bias_silu_forward(&mut u, &[0.5, -0.5], &[picked, picked]);
        assert_eq!(
            u,
            [
                11.5, 12.5, 3.5, 4.5, 11.5, 12.5, 101.5, 120.5, 21.5, 40.5, 101.5, 120.5
            ]
        );
        for (y, u) in y.iter().zip(&u) {
            assert!((y - u / (1.0 + (-u).exp())).abs() < 1e-5);
        }
        // segments: 0 <- rows {1}, 1 <- {}, 2 <- rows {0, 2}; two blocks summed
        let sums = segment_sum(&[&source, &source], &[1, 0, 2], &[0, 1, 1, 3], 3, 2);
        assert_eq!(
            sums,
            [
                6.0, 8.0, 0.0, 0.0, 12.0, 16.0, 60.0, 80.0, 0.0, 0.0, 120.0, 160.0
            ]
        );
    }

    #[test]
    fn layer_norm_of_a_known_row() {
        // x = [1, 2, 3, 4]: mean 2.5, biased variance 1.25
        let mut x = vec![1.0f32, 2.0, 3.0, 4.0];
        let (y, rstd) = layer_norm_forward(&mut x, &[0.0; 4], &[2.0; 4], &[1.0; 4], 0.0);
        let r = 1.0 / 1.25f32.sqrt();
        assert!((rstd[0] - r).abs() < 1e-6);
        for (k, v) in y.iter().enumerate() {
            assert!((v - (2.0 * (k as f32 + 1.0 - 2.5) * r + 1.0)).abs() < 1e-6);
        }
    }
}
