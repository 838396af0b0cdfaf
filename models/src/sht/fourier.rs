//! The longitude half of the transforms: real FFTs between grid rows and Fourier coefficients `F_m`.

use rayon::prelude::*;
use rustfft::Fft;

use super::Complex64;

/// Fourier coefficients `F_m = (1/n_lon) Σ_k f(λ_k) e^{−imλ_k}`, `λ_k = lon0 + 2πk/n_lon`, for `m = 0..=m_max`.
/// Two real rows share one complex FFT. Requires `2 m_max < n_lon` (otherwise m and n_lon − m alias).
///
/// grid: [rows, n_lon] -> [rows, m_max + 1]
pub(super) fn fourier_analysis(
    fft: &dyn Fft<f64>,
    grid: &[f64],
    m_max: usize,
    lon0: f64,
) -> Vec<Complex64> {
    let n_lon = fft.len();
    let rows = grid.len() / n_lon;
    let stride = m_max + 1;
    let scale = 1.0 / n_lon as f64;
    let shifts: Vec<Complex64> = (0..=m_max)
        .map(|m| Complex64::from_polar(scale, -(m as f64) * lon0))
        .collect();
    let mut out = vec![Complex64::ZERO; rows * stride];
    out.par_chunks_mut(2 * stride)
        .zip(grid.par_chunks(2 * n_lon))
        .with_min_len(4)
        .for_each_init(
            || {
                (
                    vec![Complex64::ZERO; n_lon],
                    vec![Complex64::ZERO; fft.get_inplace_scratch_len()],
                )
            },
            |(buffer, scratch), (out_pair, row_pair)| {
                let second = row_pair.len() == 2 * n_lon;
                for k in 0..n_lon {
                    buffer[k] =
                        Complex64::new(row_pair[k], if second { row_pair[n_lon + k] } else { 0.0 });
                }
                fft.process_with_scratch(buffer, scratch);
                for m in 0..=m_max {
                    let z = buffer[m];
                    let mirror = buffer[(n_lon - m) % n_lon].conj();
                    out_pair[m] = (z + mirror) * 0.5 * shifts[m];
                    if second {
                        out_pair[stride + m] = (z - mirror) * Complex64::new(0.0, -0.5) * shifts[m];
                    }
                }
            },
        );
    out
}

/// Real rows `f(λ_k) = Σ_{|m| ≤ m_max} F_m e^{imλ_k}`, `λ_k = lon0 + 2πk/n_lon`, exact for any `n_lon`
/// (wavenumbers beyond `n_lon / 2` fold onto the bins they alias to). Two rows share one complex FFT.
///
/// fourier: [m (m_max + 1), rows] -> [rows, n_lon]
pub(super) fn fourier_synthesis(
    inverse: &dyn Fft<f64>,
    fourier: &[Complex64],
    m_max: usize,
    lon0: f64,
) -> Vec<f64> {
    let n_lon = inverse.len();
    let rows = fourier.len() / (m_max + 1);
    let shifts: Vec<Complex64> = (0..=m_max)
        .map(|m| Complex64::from_polar(1.0, m as f64 * lon0))
        .collect();
    let mut out = vec![0.0; rows * n_lon];
    out.par_chunks_mut(2 * n_lon)
        .enumerate()
        .with_min_len(4)
        .for_each_init(
            || {
                (
                    vec![Complex64::ZERO; n_lon],
                    vec![Complex64::ZERO; inverse.get_inplace_scratch_len()],
                )
            },
            |(buffer, scratch), (pair, out_pair)| {
                let first_row = 2 * pair;
                let second = out_pair.len() == 2 * n_lon;
                buffer.fill(Complex64::ZERO);
                for m in 0..=m_max {
                    let first = fourier[m * rows + first_row] * shifts[m];
                    let other = if second {
                        fourier[m * rows + first_row + 1] * shifts[m]
                    } else {
                        Complex64::ZERO
                    };
                    if m == 0 {
                        buffer[0] += Complex64::new(first.re, other.re);
                    } else {
                        let i = Complex64::I;
                        buffer[m % n_lon] += first + i * other;
                        buffer[(n_lon - m % n_lon) % n_lon] += first.conj() + i * other.conj();
                    }
                }
                inverse.process_with_scratch(buffer, scratch);
                for k in 0..n_lon {
                    out_pair[k] = buffer[k].re;
                    if second {
                        out_pair[n_lon + k] = buffer[k].im;
                    }
                }
            },
        );
    out
}
