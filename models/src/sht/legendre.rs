//! Gauss–Legendre quadrature, the fully normalised associated Legendre functions and their latitude
//! derivatives (tabulated), and the Legendre halves of synthesis and analysis, shared by the Gaussian-grid
//! transform and the regular-grid fit.

use std::f64::consts::PI;

use rayon::prelude::*;

use super::{Complex64, coefficient_count, coefficient_index};

/// Gauss–Legendre nodes `μ_j = sin φ_j` (descending, north first) and weights (summing to 2), by Newton iteration
/// on `P_n` from the asymptotic first guess `cos(π (j + 3/4) / (n + 1/2))` (Abramowitz & Stegun 22.16.6).
/// The southern half mirrors the northern one exactly, which the transforms' equatorial symmetry relies on.
pub fn gauss_legendre(n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut nodes = vec![0.0; n];
    let mut weights = vec![0.0; n];
    for j in 0..n.div_ceil(2) {
        let mut x = (PI * (j as f64 + 0.75) / (n as f64 + 0.5)).cos();
        for _ in 0..100 {
            let (p, dp) = legendre_polynomial(n, x);
            let step = p / dp;
            x -= step;
            if step.abs() < 1e-15 {
                break;
            }
        }
        let (_, dp) = legendre_polynomial(n, x);
        let weight = 2.0 / ((1.0 - x * x) * dp * dp);
        nodes[j] = x;
        weights[j] = weight;
        nodes[n - 1 - j] = -x;
        weights[n - 1 - j] = weight;
    }
    if n % 2 == 1 {
        nodes[n / 2] = 0.0;
    }
    (nodes, weights)
}

/// `P_n(x)` and `P_n'(x)` (unnormalised Legendre polynomial) by the three-term recurrence.
fn legendre_polynomial(n: usize, x: f64) -> (f64, f64) {
    let (mut previous, mut current) = (1.0, x);
    if n == 0 {
        return (1.0, 0.0);
    }
    for k in 2..=n {
        let k = k as f64;
        let next = ((2.0 * k - 1.0) * x * current - (k - 1.0) * previous) / k;
        previous = current;
        current = next;
    }
    let derivative = n as f64 * (x * current - previous) / (x * x - 1.0);
    (current, derivative)
}

pub(super) fn epsilon(l: usize, m: usize) -> f64 {
    let (l, m) = (l as f64, m as f64);
    ((l * l - m * m) / (4.0 * l * l - 1.0)).sqrt()
}

/// Fully normalised `P̄_lm(μ)` (see the module docs) for `0 ≤ m ≤ l ≤ truncation`, in coefficient layout.
///
/// sin_lat: μ in [-1, 1] -> [coefficient_count(truncation)]
pub fn associated_legendre(truncation: usize, sin_lat: f64) -> Vec<f64> {
    legendre_and_derivative(truncation, sin_lat).0
}

/// `(P̄_lm, H_lm = (1−μ²) dP̄_lm/dμ)` at one μ for `l ≤ truncation`, both in coefficient layout.
pub(super) fn legendre_and_derivative(truncation: usize, sin_lat: f64) -> (Vec<f64>, Vec<f64>) {
    let count = coefficient_count(truncation);
    let mut p = vec![0.0; count];
    let mut h = vec![0.0; count];
    let cos_lat = (1.0 - sin_lat * sin_lat).max(0.0).sqrt();
    // column[k] = P̄_{m+k, m}, k = 0..=truncation + 1 - m (one degree beyond the truncation, for H).
    let mut column = vec![0.0; truncation + 2];
    let mut sectoral = 1.0;
    for m in 0..=truncation {
        if m > 0 {
            sectoral *= ((2 * m + 1) as f64 / (2 * m) as f64).sqrt() * cos_lat;
        }
        column[0] = sectoral;
        column[1] = ((2 * m + 3) as f64).sqrt() * sin_lat * sectoral;
        for l in m + 2..=truncation + 1 {
            let k = l - m;
            column[k] =
                (sin_lat * column[k - 1] - epsilon(l - 1, m) * column[k - 2]) / epsilon(l, m);
        }
        for l in m..=truncation {
            let k = l - m;
            let index = coefficient_index(truncation, l, m);
            p[index] = column[k];
            let below = if k > 0 { column[k - 1] } else { 0.0 };
            h[index] = -(l as f64) * epsilon(l + 1, m) * column[k + 1]
                + (l + 1) as f64 * epsilon(l, m) * below;
        }
    }
    (p, h)
}

/// Which latitude function a Legendre sum uses.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(super) enum Basis {
    /// `P̄_lm`: even in μ when `l + m` is even.
    Value,
    /// `H_lm = (1−μ²) dP̄_lm/dμ`: odd in μ when `l + m` is even.
    Derivative,
}

impl Basis {
    pub(super) fn is_even(self, l: usize, m: usize) -> bool {
        (l + m).is_multiple_of(2) == (self == Basis::Value)
    }
}

/// `P̄_lm` and `H_lm` at a set of latitudes, row per coefficient: `p[index * n_points + point]`.
#[derive(Debug, Clone)]
pub(super) struct LegendreTable {
    truncation: usize,
    n_points: usize,
    p: Vec<f64>,
    h: Vec<f64>,
}

impl LegendreTable {
    pub(super) fn new(truncation: usize, sin_lat: &[f64]) -> Self {
        let n_points = sin_lat.len();
        let count = coefficient_count(truncation);
        let mut p = vec![0.0; count * n_points];
        let mut h = vec![0.0; count * n_points];
        let columns: Vec<(Vec<f64>, Vec<f64>)> = sin_lat
            .par_iter()
            .map(|&mu| legendre_and_derivative(truncation, mu))
            .collect();
        for (point, (p_point, h_point)) in columns.iter().enumerate() {
            for index in 0..count {
                p[index * n_points + point] = p_point[index];
                h[index * n_points + point] = h_point[index];
            }
        }
        LegendreTable {
            truncation,
            n_points,
            p,
            h,
        }
    }

    pub(super) fn row(&self, basis: Basis, l: usize, m: usize) -> &[f64] {
        let start = coefficient_index(self.truncation, l, m) * self.n_points;
        let table = match basis {
            Basis::Value => &self.p,
            Basis::Derivative => &self.h,
        };
        &table[start..start + self.n_points]
    }
}

/// One sum `Σ_l scale · (i m)^{lon_derivative} · c_lm · basis_lm(μ)` of a Legendre synthesis.
pub(super) struct SynthesisTerm<'a> {
    pub(super) coeffs: &'a [Complex64],
    pub(super) basis: Basis,
    pub(super) lon_derivative: bool,
    pub(super) scale: f64,
}

/// One sum `Σ_j weight_j · scale · (i m)^{lon_derivative} · F_m(μ_j) · basis_lm(μ_j)` of a Legendre analysis.
pub(super) struct AnalysisTerm<'a> {
    /// Fourier coefficients [rows, truncation + 1].
    pub(super) fourier: &'a [Complex64],
    pub(super) basis: Basis,
    pub(super) lon_derivative: bool,
    pub(super) scale: f64,
}

pub(super) fn lon_factor(lon_derivative: bool, m: usize, scale: f64) -> Complex64 {
    if lon_derivative {
        Complex64::new(0.0, m as f64 * scale)
    } else {
        Complex64::new(scale, 0.0)
    }
}

/// Legendre synthesis `F_m(μ)` at the table's points, per m. With `mirror`, the table holds the northern half of a
/// symmetric set and the southern rows follow from parity (row `2 n_points − 1 − j` is `−μ_j`).
///
/// -> [m (truncation + 1), rows] with rows = n_points, or 2 n_points when mirrored.
pub(super) fn legendre_synthesis(
    table: &LegendreTable,
    terms: &[SynthesisTerm],
    mirror: bool,
) -> Vec<Complex64> {
    let truncation = table.truncation;
    let n_points = table.n_points;
    let rows = if mirror { 2 * n_points } else { n_points };
    let mut out = vec![Complex64::ZERO; (truncation + 1) * rows];
    out.par_chunks_mut(rows).enumerate().for_each(|(m, out_m)| {
        let mut even = vec![Complex64::ZERO; n_points];
        let mut odd = vec![Complex64::ZERO; n_points];
        for term in terms {
            let factor = lon_factor(term.lon_derivative, m, term.scale);
            for l in m..=truncation {
                let c = term.coeffs[coefficient_index(truncation, l, m)] * factor;
                if c == Complex64::ZERO {
                    continue;
                }
                let target = if term.basis.is_even(l, m) {
                    &mut even
                } else {
                    &mut odd
                };
                for (acc, &value) in target.iter_mut().zip(table.row(term.basis, l, m)) {
                    *acc += c * value;
                }
            }
        }
        for j in 0..n_points {
            out_m[j] = even[j] + odd[j];
            if mirror {
                out_m[rows - 1 - j] = even[j] - odd[j];
            }
        }
    });
    out
}

/// Legendre analysis over a mirrored table: `a_lm = Σ_terms Σ_j w_j (...)` summed over both hemispheres.
///
/// weights: [n_points] quadrature weight of the northern row j (the southern mirror row has the same weight)
/// -> [coefficient_count(truncation)]
pub(super) fn legendre_analysis(
    table: &LegendreTable,
    terms: &[AnalysisTerm],
    weights: &[f64],
) -> Vec<Complex64> {
    let truncation = table.truncation;
    let n_points = table.n_points;
    let rows = 2 * n_points;
    let stride = truncation + 1;
    let mut out = vec![Complex64::ZERO; coefficient_count(truncation)];
    let mut per_m = Vec::with_capacity(truncation + 1);
    let mut rest = out.as_mut_slice();
    for m in 0..=truncation {
        let (chunk, tail) = rest.split_at_mut(truncation + 1 - m);
        per_m.push(chunk);
        rest = tail;
    }
    per_m.into_par_iter().enumerate().for_each(|(m, out_m)| {
        let mut even = vec![Complex64::ZERO; n_points];
        let mut odd = vec![Complex64::ZERO; n_points];
        for term in terms {
            for j in 0..n_points {
                let north = term.fourier[j * stride + m];
                let south = term.fourier[(rows - 1 - j) * stride + m];
                even[j] = (north + south) * weights[j];
                odd[j] = (north - south) * weights[j];
            }
            let factor = lon_factor(term.lon_derivative, m, term.scale);
            for l in m..=truncation {
                let source = if term.basis.is_even(l, m) {
                    &even
                } else {
                    &odd
                };
                let sum: Complex64 = table
                    .row(term.basis, l, m)
                    .iter()
                    .zip(source)
                    .map(|(&value, &f)| f * value)
                    .sum();
                out_m[l - m] += factor * sum;
            }
        }
    });
    out
}
