//! The fused kernels on plain f32 buffers: row-major `[rows, width]` blocks, split into fixed chunks of rows
//! that rayon runs in parallel. Reductions over rows (bias and LayerNorm gradients) sum per-chunk partials in
//! chunk order, so every result is bit-identical from run to run whatever the thread schedule.

use std::mem::MaybeUninit;

use rayon::prelude::*;

/// Rows per parallel task: large enough to amortise scheduling, small enough to balance two to sixteen cores.
const ROWS_PER_TASK: usize = 64;

/// `out[b, r, :] += source[b, index[r], :]` for out `[batch, index.len(), width]`, source `[batch, source_rows,
/// width]`.
pub fn gather_add(out: &mut [f32], source: &[f32], index: &[usize], source_rows: usize, width: usize) {
    let rows = index.len();
    out.par_chunks_mut(width * ROWS_PER_TASK)
        .enumerate()
        .for_each(|(chunk, block)| {
            for (i, row) in block.chunks_exact_mut(width).enumerate() {
                let global = chunk * ROWS_PER_TASK + i;
                let (b, r) = (global / rows, global % rows);
                let from = &source[(b * source_rows + index[r]) * width..][..width];
                row.iter_mut().zip(from).for_each(|(o, s)| *o += s);
            }
        });
}

/// `source[b, index[r], :]` for r in index: [batch, index.len(), width].
pub fn gather(source: &[f32], index: &[usize], source_rows: usize, width: usize) -> Vec<f32> {
    let rows = index.len();
    let batch = source.len() / (source_rows * width).max(1);
    uninit_rows(batch * rows, width, |first, block| {
        for (i, row) in block.chunks_exact_mut(width).enumerate() {
            let (b, r) = ((first + i) / rows, (first + i) % rows);
            let from = &source[(b * source_rows + index[r]) * width..][..width];
            row.iter_mut().zip(from).for_each(|(o, s)| {
                o.write(*s);
            });
        }
    })
}

/// `out[b, n, :] = Σ_{k in offsets[n]..offsets[n+1]} values[b, order[k], :]`: the rows of `values` grouped by
/// segment (a CSR of the index), summed in a fixed order. out: `[batch, offsets.len() - 1, width]`.
pub fn segment_sum(
    values: &[f32],
    order: &[usize],
    offsets: &[usize],
    value_rows: usize,
    width: usize,
) -> Vec<f32> {
    let segments = offsets.len() - 1;
    let batch = values.len() / (value_rows * width).max(1);
    let row_of = |b: usize, k: usize| &values[(b * value_rows + k) * width..][..width];
    uninit_rows(batch * segments, width, |first, block| {
        for (i, row) in block.chunks_exact_mut(width).enumerate() {
            let (b, n) = ((first + i) / segments, (first + i) % segments);
            match &order[offsets[n]..offsets[n + 1]] {
                [] => row.iter_mut().for_each(|o| {
                    o.write(0.0);
                }),
                [head, tail @ ..] => {
                    let row = write_row(row, row_of(b, *head));
                    for &k in tail {
                        row.iter_mut().zip(row_of(b, k)).for_each(|(o, v)| *o += v);
                    }
                }
            }
        }
    })
}

/// `u = z + bias` in place and `y = silu(u) = u·σ(u)`; returns y.
pub fn bias_silu_forward(u: &mut [f32], bias: &[f32]) -> Vec<f32> {
    let (width, len) = (bias.len(), u.len());
    let mut y = Vec::with_capacity(len);
    u.par_chunks_mut(width * ROWS_PER_TASK)
        .zip(y.spare_capacity_mut()[..len].par_chunks_mut(width * ROWS_PER_TASK))
        .for_each(|(u, y)| {
            for (u, y) in u.chunks_exact_mut(width).zip(y.chunks_exact_mut(width)) {
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

/// Given u (the SiLU input) and the output gradient g, turns g into `∂L/∂u = g·σ(u)·(1 + u·(1 − σ(u)))` in
/// place and returns `∂L/∂bias = Σ_rows ∂L/∂u`.
pub fn bias_silu_backward(u: &[f32], grad: &mut [f32], width: usize) -> Vec<f32> {
    let partials: Vec<Vec<f32>> = grad
        .par_chunks_mut(width * ROWS_PER_TASK)
        .zip(u.par_chunks(width * ROWS_PER_TASK))
        .map(|(g, u)| {
            let mut bias = vec![0.0f32; width];
            for (g, u) in g.chunks_exact_mut(width).zip(u.chunks_exact(width)) {
                for ((g, u), acc) in g.iter_mut().zip(u).zip(bias.iter_mut()) {
                    let s = sigmoid(*u);
                    *g *= s * (1.0 + u * (1.0 - s));
                    *acc += *g;
                }
            }
            bias
        })
        .collect();
    sum_partials(partials, width)
}

/// LayerNorm over the last axis with biased variance (burn's and PyTorch's definition). Turns x into
/// `x̂ = (x − mean)·rstd` in place and returns `(y = x̂·gamma + beta, rstd per row)`.
pub fn layer_norm_forward(
    x: &mut [f32],
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
                let mean = x.iter().sum::<f32>() / width as f32;
                let var = x.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / width as f32;
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

/// The LayerNorm backward from the saved x̂ and rstd: turns g into
/// `∂L/∂x = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂))` with `ĝ = g·gamma` in place, and returns `(∂L/∂gamma,
/// ∂L/∂beta)`.
pub fn layer_norm_backward(
    xhat: &[f32],
    rstd: &[f32],
    gamma: &[f32],
    grad: &mut [f32],
) -> (Vec<f32>, Vec<f32>) {
    let width = gamma.len();
    let partials: Vec<Vec<f32>> = grad
        .par_chunks_mut(width * ROWS_PER_TASK)
        .zip(xhat.par_chunks(width * ROWS_PER_TASK))
        .zip(rstd.par_chunks(ROWS_PER_TASK))
        .map(|((g, xhat), rstd)| {
            // [gamma gradient | beta gradient] of this chunk
            let mut acc = vec![0.0f32; 2 * width];
            for ((g, xhat), r) in g
                .chunks_exact_mut(width)
                .zip(xhat.chunks_exact(width))
                .zip(rstd)
            {
                let (mut mean_g, mut mean_gx) = (0.0f32, 0.0f32);
                let (dgamma, dbeta) = acc.split_at_mut(width);
                for (((g, x), gm), (dg, db)) in g
                    .iter()
                    .zip(xhat)
                    .zip(gamma)
                    .zip(dgamma.iter_mut().zip(dbeta.iter_mut()))
                {
                    let ghat = g * gm;
                    mean_g += ghat;
                    mean_gx += ghat * x;
                    *dg += g * x;
                    *db += g;
                }
                mean_g /= width as f32;
                mean_gx /= width as f32;
                for ((g, x), gm) in g.iter_mut().zip(xhat).zip(gamma) {
                    *g = r * (*g * gm - mean_g - x * mean_gx);
                }
            }
            acc
        })
        .collect();
    let both = sum_partials(partials, 2 * width);
    (both[..width].to_vec(), both[width..].to_vec())
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

/// Copies `from` into an uninitialised row and returns it initialised.
fn write_row<'a>(row: &'a mut [MaybeUninit<f32>], from: &[f32]) -> &'a mut [f32] {
    row.iter_mut().zip(from).for_each(|(o, v)| {
        o.write(*v);
    });
    // SAFETY: every element of `row` was just written (row and from have the same length, width).
    unsafe { &mut *(row as *mut [MaybeUninit<f32>] as *mut [f32]) }
}

/// Sums per-chunk partial vectors in chunk order (deterministic).
fn sum_partials(partials: Vec<Vec<f32>>, width: usize) -> Vec<f32> {
    partials.into_iter().fold(vec![0.0f32; width], |mut acc, p| {
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
    fn gather_and_segment_sum_by_hand() {
        // batch 2, source rows 3, width 2; index picks rows 2, 0, 2
        let source = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0];
        let mut out = vec![1.0f32; 12];
        gather_add(&mut out, &source, &[2, 0, 2], 3, 2);
        assert_eq!(
            out,
            [6.0, 7.0, 2.0, 3.0, 6.0, 7.0, 51.0, 61.0, 11.0, 21.0, 51.0, 61.0]
        );
        assert_eq!(
            gather(&source, &[2, 0, 2], 3, 2),
            [5.0, 6.0, 1.0, 2.0, 5.0, 6.0, 50.0, 60.0, 10.0, 20.0, 50.0, 60.0]
        );
        // segments: 0 <- rows {1}, 1 <- {}, 2 <- rows {0, 2}
        let sums = segment_sum(&source, &[1, 0, 2], &[0, 1, 1, 3], 3, 2);
        assert_eq!(
            sums,
            [3.0, 4.0, 0.0, 0.0, 6.0, 8.0, 30.0, 40.0, 0.0, 0.0, 60.0, 80.0]
        );
    }

    #[test]
    fn layer_norm_of_a_known_row() {
        // x = [1, 2, 3, 4]: mean 2.5, biased variance 1.25
        let mut x = vec![1.0f32, 2.0, 3.0, 4.0];
        let (y, rstd) = layer_norm_forward(&mut x, &[2.0; 4], &[1.0; 4], 0.0);
        let r = 1.0 / 1.25f32.sqrt();
        assert!((rstd[0] - r).abs() < 1e-6);
        for (k, v) in y.iter().enumerate() {
            assert!((v - (2.0 * (k as f32 + 1.0 - 2.5) * r + 1.0)).abs() < 1e-6);
        }
    }
}
