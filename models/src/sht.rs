//! Spherical-harmonic transform (SHT) with triangular truncation T_N.
//!
//! Why it exists: the built-in shallow-water atmosphere is spectral, the physics baseline re-analyses gridded
//! fields, and the probes need power spectra by total wavenumber. All three share this one transform.
//!
//! Conventions (used by every function here):
//! - A real field is `f(φ, λ) = Σ_{l ≤ N} Σ_{|m| ≤ l} a_lm Y_lm`, `Y_lm = P̄_lm(sin φ) e^{imλ}`, with
//!   `a_{l,-m} = conj(a_lm)`, so only `m ≥ 0` is stored. No Condon–Shortley phase.
//! - `P̄_lm` is fully normalised so that the area mean of `|Y_lm|²` is 1: `∫_{-1}^{1} P̄_lm² dμ = 2`.
//!   Then `a_00` is the area mean of `f`, and Parseval reads `mean(f²) = Σ_l E(l)` with
//!   `E(l) = |a_l0|² + 2 Σ_{m>0} |a_lm|²` ([`power_spectrum`]).
//! - Coefficients are stored m-major: all `l` for `m = 0`, then `m = 1`, ... ([`coefficient_index`]).
//! - Gaussian grids are `[lat, lon]` row-major, latitude north → south, longitude `2πk / n_lon` from 0 eastward.
//! - `P̄_lm` comes from the forward-column recurrence: the sectoral seed `P̄_mm = sqrt((2m+1)/(2m)) cos φ P̄_{m-1,m-1}`,
//!   then `P̄_lm = (μ P̄_{l-1,m} − ε_{l-1,m} P̄_{l-2,m}) / ε_lm`, `ε_lm = sqrt((l²−m²)/(4l²−1))`
//!   (Holmes & Featherstone 2002, J. Geodesy 76:279, eqs. 11–13, without their extended-range scaling: the
//!   sectoral seed `cos^m φ` stays above f64's underflow for the truncations used here, up to about T300).
//! - Derivatives in latitude use `H_lm = (1−μ²) dP̄_lm/dμ = −l ε_{l+1,m} P̄_{l+1,m} + (l+1) ε_lm P̄_{l−1,m}`
//!   (Hack & Jakob 1992, NCAR/TN-343, eq. 4.3.6). Vector fields are handled in the `U = u cos φ, V = v cos φ`
//!   form; divergence and curl are Gaussian quadratures after integrating the `∂/∂μ` term by parts.

use std::f64::consts::PI;
use std::sync::Arc;

use rayon::prelude::*;
pub use rustfft::num_complex::Complex64;
use rustfft::{Fft, FftPlanner};

/// Errors from building transforms or grids; each names the offending size or coordinate.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ShtError {
    #[error("the Gaussian grid needs an even number of latitudes, got {n_lat}")]
    OddLatitudeCount { n_lat: usize },
    #[error("truncation T{truncation} needs at least {needed} latitudes, got {got}")]
    TooFewLatitudes {
        truncation: usize,
        needed: usize,
        got: usize,
    },
    #[error("truncation T{truncation} needs at least {needed} longitudes, got {got}")]
    TooFewLongitudes {
        truncation: usize,
        needed: usize,
        got: usize,
    },
    #[error("latitude {lat_deg}° is not strictly between -90° and 90°")]
    LatitudeOutOfRange { lat_deg: f64 },
    #[error("latitudes must be distinct, {lat_deg}° appears twice")]
    RepeatedLatitude { lat_deg: f64 },
    #[error(
        "longitudes must be equally spaced around the whole circle; longitude {index} is {got}°, expected {expected}°"
    )]
    IrregularLongitudes {
        index: usize,
        got: f64,
        expected: f64,
    },
    #[error("a grid needs at least one latitude and one longitude")]
    EmptyGrid,
}

/// Number of stored coefficients `a_lm`, `0 ≤ m ≤ l ≤ truncation`.
pub fn coefficient_count(truncation: usize) -> usize {
    (truncation + 1) * (truncation + 2) / 2
}

/// Position of `a_lm` in the m-major layout. Requires `m ≤ l ≤ truncation`.
pub fn coefficient_index(truncation: usize, l: usize, m: usize) -> usize {
    debug_assert!(m <= l && l <= truncation);
    m * (2 * truncation + 3 - m) / 2 + (l - m)
}

/// Copies coefficients into another truncation: drops `l > to`, pads with zeros when `to > from`.
///
/// coeffs: [coefficient_count(from)] -> [coefficient_count(to)]
pub fn change_truncation(coeffs: &[Complex64], from: usize, to: usize) -> Vec<Complex64> {
    assert_eq!(
        coeffs.len(),
        coefficient_count(from),
        "coefficient count does not match T{from}"
    );
    let mut out = vec![Complex64::ZERO; coefficient_count(to)];
    let kept = from.min(to);
    for m in 0..=kept {
        for l in m..=kept {
            out[coefficient_index(to, l, m)] = coeffs[coefficient_index(from, l, m)];
        }
    }
    out
}

/// Power by total wavenumber: `E(l) = |a_l0|² + 2 Σ_{m>0} |a_lm|²`, so that `Σ_l E(l)` is the area mean of `f²`.
///
/// coeffs: [coefficient_count(truncation)] -> [truncation + 1]
pub fn power_spectrum(truncation: usize, coeffs: &[Complex64]) -> Vec<f64> {
    assert_eq!(
        coeffs.len(),
        coefficient_count(truncation),
        "coefficient count does not match T{truncation}"
    );
    let mut power = vec![0.0; truncation + 1];
    for m in 0..=truncation {
        let multiplicity = if m == 0 { 1.0 } else { 2.0 };
        for (l, power_l) in power.iter_mut().enumerate().skip(m) {
            *power_l += multiplicity * coeffs[coefficient_index(truncation, l, m)].norm_sqr();
        }
    }
    power
}

/// Kinetic energy per unit mass by total wavenumber on a sphere of radius `radius`:
/// `KE(l) = radius² / (l(l+1)) · (E_ζ(l) + E_δ(l)) / 2`, which sums to the area mean of `(u² + v²) / 2`.
///
/// vorticity, divergence: [coefficient_count(truncation)] -> [truncation + 1] (KE(0) = 0)
pub fn kinetic_energy_spectrum(
    truncation: usize,
    radius: f64,
    vorticity: &[Complex64],
    divergence: &[Complex64],
) -> Vec<f64> {
    let rotational = power_spectrum(truncation, vorticity);
    let divergent = power_spectrum(truncation, divergence);
    (0..=truncation)
        .map(|l| {
            if l == 0 {
                0.0
            } else {
                radius * radius / (l * (l + 1)) as f64 * 0.5 * (rotational[l] + divergent[l])
            }
        })
        .collect()
}

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

/// Grid size free of aliasing for quadratic products at truncation N (the "3N + 1" rule):
/// `n_lon ≥ 3N + 1` rounded up to a multiple of 4 that is a product of 2, 3 and 5 (fast FFT), `n_lat = n_lon / 2`
/// (even, as [`Sht::new`] requires).
/// Gives the usual 64 × 128 at T42, 32 × 64 at T21, 96 × 192 at T63, 128 × 256 at T85.
pub fn gaussian_grid_size(truncation: usize) -> (usize, usize) {
    let mut n_lon = (3 * truncation + 1).max(4);
    n_lon = n_lon.next_multiple_of(4);
    while !is_smooth_235(n_lon) {
        n_lon += 4;
    }
    (n_lon / 2, n_lon)
}

#[cfg(test)]
mod grid_size_tests {
    use super::*;

    #[test]
    fn alias_free_grids_are_valid_at_every_truncation() {
        for truncation in 1..=120 {
            let (n_lat, n_lon) = gaussian_grid_size(truncation);
            assert!(
                n_lon > 3 * truncation && n_lat % 2 == 0,
                "T{truncation}: {n_lat} x {n_lon}"
            );
            assert!(Sht::new(truncation, n_lat, n_lon).is_ok(), "T{truncation}");
        }
    }
}

fn is_smooth_235(mut n: usize) -> bool {
    for p in [2, 3, 5] {
        while n.is_multiple_of(p) {
            n /= p;
        }
    }
    n == 1
}

fn epsilon(l: usize, m: usize) -> f64 {
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
fn legendre_and_derivative(truncation: usize, sin_lat: f64) -> (Vec<f64>, Vec<f64>) {
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
enum Basis {
    /// `P̄_lm`: even in μ when `l + m` is even.
    Value,
    /// `H_lm = (1−μ²) dP̄_lm/dμ`: odd in μ when `l + m` is even.
    Derivative,
}

impl Basis {
    fn is_even(self, l: usize, m: usize) -> bool {
        (l + m).is_multiple_of(2) == (self == Basis::Value)
    }
}

/// `P̄_lm` and `H_lm` at a set of latitudes, row per coefficient: `p[index * n_points + point]`.
#[derive(Debug, Clone)]
struct LegendreTable {
    truncation: usize,
    n_points: usize,
    p: Vec<f64>,
    h: Vec<f64>,
}

impl LegendreTable {
    fn new(truncation: usize, sin_lat: &[f64]) -> Self {
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

    fn row(&self, basis: Basis, l: usize, m: usize) -> &[f64] {
        let start = coefficient_index(self.truncation, l, m) * self.n_points;
        let table = match basis {
            Basis::Value => &self.p,
            Basis::Derivative => &self.h,
        };
        &table[start..start + self.n_points]
    }
}

/// One sum `Σ_l scale · (i m)^{lon_derivative} · c_lm · basis_lm(μ)` of a Legendre synthesis.
struct SynthesisTerm<'a> {
    coeffs: &'a [Complex64],
    basis: Basis,
    lon_derivative: bool,
    scale: f64,
}

/// One sum `Σ_j weight_j · scale · (i m)^{lon_derivative} · F_m(μ_j) · basis_lm(μ_j)` of a Legendre analysis.
struct AnalysisTerm<'a> {
    /// Fourier coefficients [rows, truncation + 1].
    fourier: &'a [Complex64],
    basis: Basis,
    lon_derivative: bool,
    scale: f64,
}

fn lon_factor(lon_derivative: bool, m: usize, scale: f64) -> Complex64 {
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
fn legendre_synthesis(
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
fn legendre_analysis(
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

/// Fourier coefficients `F_m = (1/n_lon) Σ_k f(λ_k) e^{−imλ_k}`, `λ_k = lon0 + 2πk/n_lon`, for `m = 0..=m_max`.
/// Two real rows share one complex FFT. Requires `2 m_max < n_lon` (otherwise m and n_lon − m alias).
///
/// grid: [rows, n_lon] -> [rows, m_max + 1]
fn fourier_analysis(fft: &dyn Fft<f64>, grid: &[f64], m_max: usize, lon0: f64) -> Vec<Complex64> {
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
fn fourier_synthesis(
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

/// Spherical-harmonic transform at truncation T_N on a Gaussian grid, with the tables precomputed once.
///
/// Exact (to round-off) for band-limited fields when `n_lat ≥ N + 1` and `n_lon ≥ 2N + 1`; products of two T_N
/// fields are alias-free on [`gaussian_grid_size`]. Operators that involve lengths (Laplacian, divergence, winds)
/// use the sphere radius set by [`Sht::with_radius`] (unit sphere by default).
#[derive(Clone)]
pub struct Sht {
    truncation: usize,
    n_lat: usize,
    n_lon: usize,
    radius: f64,
    sin_lat: Vec<f64>,
    cos_lat: Vec<f64>,
    weights: Vec<f64>,
    /// Tables at the northern half of the latitudes; the southern half follows by parity.
    north: LegendreTable,
    forward: Arc<dyn Fft<f64>>,
    inverse: Arc<dyn Fft<f64>>,
}

impl std::fmt::Debug for Sht {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sht")
            .field("truncation", &self.truncation)
            .field("n_lat", &self.n_lat)
            .field("n_lon", &self.n_lon)
            .field("radius", &self.radius)
            .finish()
    }
}

impl Sht {
    /// Transform at truncation T`truncation` on an `n_lat × n_lon` Gaussian grid (unit sphere).
    pub fn new(truncation: usize, n_lat: usize, n_lon: usize) -> Result<Self, ShtError> {
        if !n_lat.is_multiple_of(2) {
            return Err(ShtError::OddLatitudeCount { n_lat });
        }
        if n_lat < truncation + 1 {
            return Err(ShtError::TooFewLatitudes {
                truncation,
                needed: truncation + 1,
                got: n_lat,
            });
        }
        if n_lon < 2 * truncation + 1 {
            return Err(ShtError::TooFewLongitudes {
                truncation,
                needed: 2 * truncation + 1,
                got: n_lon,
            });
        }
        let (sin_lat, gauss_weights) = gauss_legendre(n_lat);
        let cos_lat = sin_lat.iter().map(|mu| (1.0 - mu * mu).sqrt()).collect();
        let north = LegendreTable::new(truncation, &sin_lat[..n_lat / 2]);
        let mut planner = FftPlanner::new();
        Ok(Sht {
            truncation,
            n_lat,
            n_lon,
            radius: 1.0,
            sin_lat,
            cos_lat,
            weights: gauss_weights,
            north,
            forward: planner.plan_fft_forward(n_lon),
            inverse: planner.plan_fft_inverse(n_lon),
        })
    }

    /// Transform on the alias-free grid of [`gaussian_grid_size`].
    pub fn with_alias_free_grid(truncation: usize) -> Self {
        let (n_lat, n_lon) = gaussian_grid_size(truncation);
        Self::new(truncation, n_lat, n_lon).expect("gaussian_grid_size always satisfies Sht::new")
    }

    /// The same transform on a sphere of radius `radius` (metres for Earth).
    pub fn with_radius(mut self, radius: f64) -> Self {
        self.radius = radius;
        self
    }

    pub fn truncation(&self) -> usize {
        self.truncation
    }
    pub fn n_lat(&self) -> usize {
        self.n_lat
    }
    pub fn n_lon(&self) -> usize {
        self.n_lon
    }
    pub fn radius(&self) -> f64 {
        self.radius
    }
    /// Number of stored coefficients at this truncation.
    pub fn coefficient_count(&self) -> usize {
        coefficient_count(self.truncation)
    }
    /// Position of `a_lm` in this transform's coefficient vectors.
    pub fn index(&self, l: usize, m: usize) -> usize {
        coefficient_index(self.truncation, l, m)
    }
    /// `sin φ_j` of the Gaussian latitudes, north to south: [n_lat]
    pub fn sin_lat(&self) -> &[f64] {
        &self.sin_lat
    }
    /// `cos φ_j` of the Gaussian latitudes: [n_lat]
    pub fn cos_lat(&self) -> &[f64] {
        &self.cos_lat
    }
    /// Gaussian latitudes in radians, north to south: [n_lat]
    pub fn latitudes(&self) -> Vec<f64> {
        self.sin_lat.iter().map(|mu| mu.asin()).collect()
    }
    /// Longitudes in radians, `2πk / n_lon`: [n_lon]
    pub fn longitudes(&self) -> Vec<f64> {
        (0..self.n_lon)
            .map(|k| 2.0 * PI * k as f64 / self.n_lon as f64)
            .collect()
    }
    /// Gauss weights (sum 2): [n_lat]
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// Area mean by Gaussian quadrature, exact for band-limited fields up to degree `2 n_lat − 1`.
    ///
    /// grid: [lat, lon]
    pub fn area_mean(&self, grid: &[f64]) -> f64 {
        self.check_grid(grid);
        let total: f64 = grid
            .chunks(self.n_lon)
            .zip(&self.weights)
            .map(|(row, w)| w * row.iter().sum::<f64>())
            .sum();
        total / (2.0 * self.n_lon as f64)
    }

    fn check_grid(&self, grid: &[f64]) {
        assert_eq!(
            grid.len(),
            self.n_lat * self.n_lon,
            "grid must be [n_lat, n_lon] = [{}, {}]",
            self.n_lat,
            self.n_lon
        );
    }

    fn check_coeffs(&self, coeffs: &[Complex64]) {
        assert_eq!(
            coeffs.len(),
            self.coefficient_count(),
            "coefficients must be T{}",
            self.truncation
        );
    }

    /// Half the Gauss weight of each northern latitude, times `extra(j)`.
    fn half_weights(&self, extra: impl Fn(usize) -> f64) -> Vec<f64> {
        (0..self.n_lat / 2)
            .map(|j| 0.5 * self.weights[j] * extra(j))
            .collect()
    }

    fn fourier(&self, grid: &[f64]) -> Vec<Complex64> {
        self.check_grid(grid);
        fourier_analysis(self.forward.as_ref(), grid, self.truncation, 0.0)
    }

    /// Grid -> coefficients `a_lm = (1/4π) ∫ f Y_lm* dΩ` by Gaussian quadrature.
    ///
    /// grid: [lat, lon] -> [coefficient_count]
    pub fn analyse(&self, grid: &[f64]) -> Vec<Complex64> {
        let fourier = self.fourier(grid);
        let term = AnalysisTerm {
            fourier: &fourier,
            basis: Basis::Value,
            lon_derivative: false,
            scale: 1.0,
        };
        legendre_analysis(&self.north, &[term], &self.half_weights(|_| 1.0))
    }

    /// Coefficients -> grid values.
    ///
    /// coeffs: [coefficient_count] -> [lat, lon]
    pub fn synthesise(&self, coeffs: &[Complex64]) -> Vec<f64> {
        self.check_coeffs(coeffs);
        let term = SynthesisTerm {
            coeffs,
            basis: Basis::Value,
            lon_derivative: false,
            scale: 1.0,
        };
        let fourier = legendre_synthesis(&self.north, &[term], true);
        fourier_synthesis(self.inverse.as_ref(), &fourier, self.truncation, 0.0)
    }

    /// Divergence and vertical curl (`k · ∇ × F`) of a tangent vector field, as coefficients.
    ///
    /// Written for `U = east cos φ`, `V = north cos φ`: `div = (1/(a(1−μ²))) ∂U/∂λ + (1/a) ∂V/∂μ` and
    /// `curl = (1/(a(1−μ²))) ∂V/∂λ − (1/a) ∂U/∂μ`; the `∂/∂μ` terms are integrated by parts onto `H_lm`.
    ///
    /// east, north: [lat, lon] components -> (divergence, curl): [coefficient_count] each
    pub fn divergence_curl(&self, east: &[f64], north: &[f64]) -> (Vec<Complex64>, Vec<Complex64>) {
        let (divergence, curl) = self.vector_analysis(east, north, true);
        (divergence, curl.unwrap_or_default())
    }

    /// Divergence alone (half the Legendre work of [`Sht::divergence_curl`]).
    ///
    /// east, north: [lat, lon] components -> [coefficient_count]
    pub fn divergence(&self, east: &[f64], north: &[f64]) -> Vec<Complex64> {
        self.vector_analysis(east, north, false).0
    }

    fn vector_analysis(
        &self,
        east: &[f64],
        north: &[f64],
        with_curl: bool,
    ) -> (Vec<Complex64>, Option<Vec<Complex64>>) {
        let (fourier_east, fourier_north) =
            rayon::join(|| self.fourier(east), || self.fourier(north));
        // U/(1−μ²) = east / cos φ, so the quadrature weight carries 1/cos φ.
        let weights = self.half_weights(|j| 1.0 / self.cos_lat[j]);
        let inv_a = 1.0 / self.radius;
        let term = |fourier, basis, lon_derivative, scale| AnalysisTerm {
            fourier,
            basis,
            lon_derivative,
            scale,
        };
        let divergence_terms = [
            term(&fourier_east, Basis::Value, true, inv_a),
            term(&fourier_north, Basis::Derivative, false, -inv_a),
        ];
        let curl_terms = [
            term(&fourier_north, Basis::Value, true, inv_a),
            term(&fourier_east, Basis::Derivative, false, inv_a),
        ];
        rayon::join(
            || legendre_analysis(&self.north, &divergence_terms, &weights),
            || with_curl.then(|| legendre_analysis(&self.north, &curl_terms, &weights)),
        )
    }

    /// East and north components of `k × ∇ψ + ∇χ` (the wind of streamfunction ψ and velocity potential χ);
    /// `None` stands for a zero field. With `psi = None` this is the gradient of `chi`.
    ///
    /// psi, chi: [coefficient_count] -> (east, north): [lat, lon] each
    pub fn synthesise_vector(
        &self,
        psi: Option<&[Complex64]>,
        chi: Option<&[Complex64]>,
    ) -> (Vec<f64>, Vec<f64>) {
        let (east_terms, north_terms) = vector_terms(psi, chi, self.radius);
        let (mut east, mut north) = rayon::join(
            || {
                fourier_synthesis(
                    self.inverse.as_ref(),
                    &legendre_synthesis(&self.north, &east_terms, true),
                    self.truncation,
                    0.0,
                )
            },
            || {
                fourier_synthesis(
                    self.inverse.as_ref(),
                    &legendre_synthesis(&self.north, &north_terms, true),
                    self.truncation,
                    0.0,
                )
            },
        );
        for (j, &cos) in self.cos_lat.iter().enumerate() {
            let rows = j * self.n_lon..(j + 1) * self.n_lon;
            east[rows.clone()].iter_mut().for_each(|x| *x /= cos);
            north[rows].iter_mut().for_each(|x| *x /= cos);
        }
        (east, north)
    }

    /// Winds (u, v) of a flow given by its vorticity and divergence.
    ///
    /// vorticity, divergence: [coefficient_count] -> (u, v): [lat, lon] each
    pub fn winds(&self, vorticity: &[Complex64], divergence: &[Complex64]) -> (Vec<f64>, Vec<f64>) {
        let psi = self.inverse_laplacian(vorticity);
        let chi = self.inverse_laplacian(divergence);
        self.synthesise_vector(Some(&psi), Some(&chi))
    }

    /// Gradient (east, north) of a scalar field.
    ///
    /// coeffs: [coefficient_count] -> (east, north): [lat, lon] each
    pub fn gradient(&self, coeffs: &[Complex64]) -> (Vec<f64>, Vec<f64>) {
        self.synthesise_vector(None, Some(coeffs))
    }

    /// Eigenvalue of the Laplacian for degree l: `−l(l+1)/a²`.
    pub fn laplacian_eigenvalue(&self, l: usize) -> f64 {
        -((l * (l + 1)) as f64) / (self.radius * self.radius)
    }

    /// `∇²` in spectral space. coeffs: [coefficient_count] -> [coefficient_count]
    pub fn laplacian(&self, coeffs: &[Complex64]) -> Vec<Complex64> {
        self.scale_by_degree(coeffs, |l| self.laplacian_eigenvalue(l))
    }

    /// `∇⁻²` with the (undetermined) global mean set to zero. coeffs: [coefficient_count] -> [coefficient_count]
    pub fn inverse_laplacian(&self, coeffs: &[Complex64]) -> Vec<Complex64> {
        self.scale_by_degree(coeffs, |l| {
            if l == 0 {
                0.0
            } else {
                1.0 / self.laplacian_eigenvalue(l)
            }
        })
    }

    /// Multiplies every `a_lm` by `factor(l)`. coeffs: [coefficient_count] -> [coefficient_count]
    pub fn scale_by_degree(
        &self,
        coeffs: &[Complex64],
        factor: impl Fn(usize) -> f64,
    ) -> Vec<Complex64> {
        self.check_coeffs(coeffs);
        let factors: Vec<f64> = (0..=self.truncation).map(factor).collect();
        let mut out = coeffs.to_vec();
        for m in 0..=self.truncation {
            for l in m..=self.truncation {
                out[self.index(l, m)] *= factors[l];
            }
        }
        out
    }

    /// Precomputes synthesis from this truncation onto a regular lat-lon grid (e.g. 5.625° output).
    pub fn synthesis_to(&self, grid: &LatLonGrid) -> RegularGridSynthesis {
        RegularGridSynthesis::new(self.truncation, self.radius, grid)
    }
}

/// The east and north synthesis terms of `k × ∇ψ + ∇χ`, multiplied by cos φ (i.e. U and V).
fn vector_terms<'a>(
    psi: Option<&'a [Complex64]>,
    chi: Option<&'a [Complex64]>,
    radius: f64,
) -> (Vec<SynthesisTerm<'a>>, Vec<SynthesisTerm<'a>>) {
    let inv_a = 1.0 / radius;
    let mut east = Vec::new();
    let mut north = Vec::new();
    let term = |coeffs, basis, lon_derivative, scale| SynthesisTerm {
        coeffs,
        basis,
        lon_derivative,
        scale,
    };
    if let Some(chi) = chi {
        east.push(term(chi, Basis::Value, true, inv_a));
        north.push(term(chi, Basis::Derivative, false, inv_a));
    }
    if let Some(psi) = psi {
        east.push(term(psi, Basis::Derivative, false, -inv_a));
        north.push(term(psi, Basis::Value, true, inv_a));
    }
    (east, north)
}

/// A regular lat-lon grid: any distinct latitudes strictly inside the poles, in the order given, and longitudes
/// equally spaced around the whole circle starting anywhere.
#[derive(Debug, Clone, PartialEq)]
pub struct LatLonGrid {
    lat_deg: Vec<f64>,
    lon_deg: Vec<f64>,
}

impl LatLonGrid {
    /// Validates the coordinates (degrees).
    pub fn new(lat_deg: &[f64], lon_deg: &[f64]) -> Result<Self, ShtError> {
        if lat_deg.is_empty() || lon_deg.is_empty() {
            return Err(ShtError::EmptyGrid);
        }
        for (i, &lat) in lat_deg.iter().enumerate() {
            if lat.is_nan() || lat.abs() >= 90.0 {
                return Err(ShtError::LatitudeOutOfRange { lat_deg: lat });
            }
            if lat_deg[..i].iter().any(|&other| (other - lat).abs() < 1e-9) {
                return Err(ShtError::RepeatedLatitude { lat_deg: lat });
            }
        }
        let spacing = 360.0 / lon_deg.len() as f64;
        for (index, &lon) in lon_deg.iter().enumerate() {
            let expected = lon_deg[0] + spacing * index as f64;
            if !lon.is_finite() || (lon - expected).abs() >= 1e-6 {
                return Err(ShtError::IrregularLongitudes {
                    index,
                    got: lon,
                    expected,
                });
            }
        }
        Ok(LatLonGrid {
            lat_deg: lat_deg.to_vec(),
            lon_deg: lon_deg.to_vec(),
        })
    }

    /// The equiangular grid of WeatherBench: `n_lat` cell-centre latitudes `90 − (i + ½)·180/n_lat` (north to
    /// south, poles excluded) and longitudes `360 k / n_lon` from 0. 32 × 64 is the 5.625° grid.
    pub fn equiangular(n_lat: usize, n_lon: usize) -> Result<Self, ShtError> {
        let lat: Vec<f64> = (0..n_lat)
            .map(|i| 90.0 - (i as f64 + 0.5) * 180.0 / n_lat as f64)
            .collect();
        let lon: Vec<f64> = (0..n_lon)
            .map(|k| 360.0 * k as f64 / n_lon as f64)
            .collect();
        Self::new(&lat, &lon)
    }

    /// Latitudes in degrees: [lat]
    pub fn lat_deg(&self) -> &[f64] {
        &self.lat_deg
    }
    /// Longitudes in degrees: [lon]
    pub fn lon_deg(&self) -> &[f64] {
        &self.lon_deg
    }
    pub fn n_lat(&self) -> usize {
        self.lat_deg.len()
    }
    pub fn n_lon(&self) -> usize {
        self.lon_deg.len()
    }
    fn sin_lat(&self) -> Vec<f64> {
        self.lat_deg
            .iter()
            .map(|lat| lat.to_radians().sin())
            .collect()
    }
    fn cos_lat(&self) -> Vec<f64> {
        self.lat_deg
            .iter()
            .map(|lat| lat.to_radians().cos())
            .collect()
    }
    fn lon0(&self) -> f64 {
        self.lon_deg[0].to_radians()
    }
}

/// Synthesis of T_N coefficients directly at the points of a [`LatLonGrid`] (no interpolation: the series is
/// evaluated there, so the values are exact for the band-limited field).
#[derive(Clone)]
pub struct RegularGridSynthesis {
    truncation: usize,
    radius: f64,
    grid: LatLonGrid,
    cos_lat: Vec<f64>,
    table: LegendreTable,
    inverse: Arc<dyn Fft<f64>>,
}

impl RegularGridSynthesis {
    fn new(truncation: usize, radius: f64, grid: &LatLonGrid) -> Self {
        let table = LegendreTable::new(truncation, &grid.sin_lat());
        let inverse = FftPlanner::new().plan_fft_inverse(grid.n_lon());
        RegularGridSynthesis {
            truncation,
            radius,
            grid: grid.clone(),
            cos_lat: grid.cos_lat(),
            table,
            inverse,
        }
    }

    pub fn grid(&self) -> &LatLonGrid {
        &self.grid
    }

    fn evaluate(&self, terms: &[SynthesisTerm]) -> Vec<f64> {
        let fourier = legendre_synthesis(&self.table, terms, false);
        fourier_synthesis(
            self.inverse.as_ref(),
            &fourier,
            self.truncation,
            self.grid.lon0(),
        )
    }

    /// coeffs: [coefficient_count(truncation)] -> [lat, lon] of the target grid
    pub fn scalar(&self, coeffs: &[Complex64]) -> Vec<f64> {
        assert_eq!(
            coeffs.len(),
            coefficient_count(self.truncation),
            "coefficients must be T{}",
            self.truncation
        );
        self.evaluate(&[SynthesisTerm {
            coeffs,
            basis: Basis::Value,
            lon_derivative: false,
            scale: 1.0,
        }])
    }

    /// East and north components of `k × ∇ψ + ∇χ` at the grid points (see [`Sht::synthesise_vector`]).
    ///
    /// psi, chi: [coefficient_count] -> (east, north): [lat, lon] each
    pub fn vector(
        &self,
        psi: Option<&[Complex64]>,
        chi: Option<&[Complex64]>,
    ) -> (Vec<f64>, Vec<f64>) {
        let (east_terms, north_terms) = vector_terms(psi, chi, self.radius);
        let (mut east, mut north) = (self.evaluate(&east_terms), self.evaluate(&north_terms));
        let n_lon = self.grid.n_lon();
        for (j, &cos) in self.cos_lat.iter().enumerate() {
            east[j * n_lon..(j + 1) * n_lon]
                .iter_mut()
                .for_each(|x| *x /= cos);
            north[j * n_lon..(j + 1) * n_lon]
                .iter_mut()
                .for_each(|x| *x /= cos);
        }
        (east, north)
    }
}

/// Analysis of fields given on a [`LatLonGrid`] (e.g. the 5.625° output of a dataset) at truncation T_N.
///
/// Method: an FFT in longitude, then for each m a least-squares fit of `F_m(μ_j)` by `P̄_lm`, `m ≤ l ≤ N`, at the
/// grid's latitudes (Householder QR, pseudo-inverse precomputed). Because the basis functions of one m are
/// `(1−μ²)^{m/2}` times polynomials of degree `≤ N − m`, the fit has full rank whenever `N < n_lat`, and it
/// recovers any field band-limited to T_N exactly (to round-off), which quadrature on the equiangular
/// latitudes cannot (Fejér's rule there is exact only to degree `n_lat − 1` in μ, i.e. about T15 on 32
/// latitudes). For a field with content beyond T_N the fit is a discrete least-squares projection: the
/// degrees above N leak into the kept ones, so choose N as large as the grid allows
/// ([`RegularGridAnalysis::max_truncation`]) and truncate afterwards with [`change_truncation`].
#[derive(Clone)]
pub struct RegularGridAnalysis {
    truncation: usize,
    grid: LatLonGrid,
    cos_lat: Vec<f64>,
    /// Per m: [(N − m + 1), n_lat] rows of the pseudo-inverse.
    pseudo_inverse: Vec<Vec<f64>>,
    forward: Arc<dyn Fft<f64>>,
    /// Gaussian transform at the same truncation, for divergence and curl of analysed vector fields.
    gaussian: Sht,
}

impl RegularGridAnalysis {
    /// Largest truncation this grid resolves: `min(n_lat − 1, (n_lon − 1) / 2)` (T31 on 32 × 64).
    pub fn max_truncation(grid: &LatLonGrid) -> usize {
        (grid.n_lat() - 1).min((grid.n_lon() - 1) / 2)
    }

    /// Precomputes the fit for `grid` at `truncation` on a sphere of radius `radius`.
    pub fn new(grid: &LatLonGrid, truncation: usize, radius: f64) -> Result<Self, ShtError> {
        if truncation >= grid.n_lat() {
            return Err(ShtError::TooFewLatitudes {
                truncation,
                needed: truncation + 1,
                got: grid.n_lat(),
            });
        }
        if 2 * truncation >= grid.n_lon() {
            return Err(ShtError::TooFewLongitudes {
                truncation,
                needed: 2 * truncation + 1,
                got: grid.n_lon(),
            });
        }
        let sin_lat = grid.sin_lat();
        let values: Vec<Vec<f64>> = sin_lat
            .iter()
            .map(|&mu| associated_legendre(truncation, mu))
            .collect();
        let pseudo_inverse = (0..=truncation)
            .map(|m| {
                let columns: Vec<Vec<f64>> = (m..=truncation)
                    .map(|l| {
                        values
                            .iter()
                            .map(|v| v[coefficient_index(truncation, l, m)])
                            .collect()
                    })
                    .collect();
                least_squares_pseudo_inverse(columns)
            })
            .collect();
        Ok(RegularGridAnalysis {
            truncation,
            grid: grid.clone(),
            cos_lat: grid.cos_lat(),
            pseudo_inverse,
            forward: FftPlanner::new().plan_fft_forward(grid.n_lon()),
            gaussian: Sht::with_alias_free_grid(truncation).with_radius(radius),
        })
    }

    pub fn truncation(&self) -> usize {
        self.truncation
    }

    pub fn grid(&self) -> &LatLonGrid {
        &self.grid
    }

    /// field: [lat, lon] of the grid -> [coefficient_count(truncation)]
    pub fn scalar(&self, field: &[f64]) -> Vec<Complex64> {
        let n_lat = self.grid.n_lat();
        assert_eq!(
            field.len(),
            n_lat * self.grid.n_lon(),
            "field must be [lat, lon] of the grid"
        );
        let stride = self.truncation + 1;
        let fourier = fourier_analysis(
            self.forward.as_ref(),
            field,
            self.truncation,
            self.grid.lon0(),
        );
        let mut out = vec![Complex64::ZERO; coefficient_count(self.truncation)];
        for (m, pinv) in self.pseudo_inverse.iter().enumerate() {
            for l in m..=self.truncation {
                let row = &pinv[(l - m) * n_lat..(l - m + 1) * n_lat];
                out[coefficient_index(self.truncation, l, m)] = row
                    .iter()
                    .enumerate()
                    .map(|(j, &p)| fourier[j * stride + m] * p)
                    .sum();
            }
        }
        out
    }

    /// Vorticity and divergence of a wind field given on the grid.
    ///
    /// `u cos φ` and `v cos φ` are smooth scalars (degree ≤ N + 1 for a T_N flow), so they are fitted, evaluated on
    /// a Gaussian grid and differentiated there with [`Sht::divergence_curl`]. Exact for flows whose `u cos φ`,
    /// `v cos φ` are band-limited to T_N (i.e. T_{N−1} streamfunction and velocity potential).
    ///
    /// east, north: [lat, lon] of the grid -> (vorticity, divergence): [coefficient_count(truncation)] each
    pub fn vector(&self, east: &[f64], north: &[f64]) -> (Vec<Complex64>, Vec<Complex64>) {
        let n_lon = self.grid.n_lon();
        let weighted = |field: &[f64]| -> Vec<f64> {
            field
                .iter()
                .enumerate()
                .map(|(i, &x)| x * self.cos_lat[i / n_lon])
                .collect()
        };
        let u_cos = self.gaussian.synthesise(&self.scalar(&weighted(east)));
        let v_cos = self.gaussian.synthesise(&self.scalar(&weighted(north)));
        let g_lon = self.gaussian.n_lon();
        let unweight = |field: Vec<f64>| -> Vec<f64> {
            field
                .iter()
                .enumerate()
                .map(|(i, &x)| x / self.gaussian.cos_lat[i / g_lon])
                .collect()
        };
        let (divergence, vorticity) = self
            .gaussian
            .divergence_curl(&unweight(u_cos), &unweight(v_cos));
        (vorticity, divergence)
    }
}

/// Pseudo-inverse `R⁻¹ Qᵀ` of the tall matrix whose columns are given (each of length n), by Householder QR.
///
/// columns: k columns of length n (k ≤ n) -> [k, n] row-major
fn least_squares_pseudo_inverse(mut columns: Vec<Vec<f64>>) -> Vec<f64> {
    let k = columns.len();
    let n = columns.first().map_or(0, Vec::len);
    // Householder vectors v_i (stored) so that H_{k-1} ... H_0 A = R.
    let mut reflectors: Vec<Vec<f64>> = Vec::with_capacity(k);
    for i in 0..k {
        let norm = columns[i][i..].iter().map(|x| x * x).sum::<f64>().sqrt();
        let alpha = if columns[i][i] > 0.0 { -norm } else { norm };
        let mut v = vec![0.0; n];
        v[i..].copy_from_slice(&columns[i][i..]);
        v[i] -= alpha;
        let v_norm_sq: f64 = v.iter().map(|x| x * x).sum();
        if v_norm_sq > 0.0 {
            for column in columns.iter_mut().skip(i) {
                let dot: f64 = v.iter().zip(column.iter()).map(|(a, b)| a * b).sum();
                let factor = 2.0 * dot / v_norm_sq;
                column
                    .iter_mut()
                    .zip(&v)
                    .for_each(|(c, vi)| *c -= factor * vi);
            }
        }
        reflectors.push(v);
    }
    // Qᵀ e_j for each unit vector, then back-substitute R x = (Qᵀ e_j)[..k].
    let mut out = vec![0.0; k * n];
    for j in 0..n {
        let mut y = vec![0.0; n];
        y[j] = 1.0;
        for v in &reflectors {
            let v_norm_sq: f64 = v.iter().map(|x| x * x).sum();
            if v_norm_sq > 0.0 {
                let factor = 2.0 * v.iter().zip(&y).map(|(a, b)| a * b).sum::<f64>() / v_norm_sq;
                y.iter_mut().zip(v).for_each(|(yi, vi)| *yi -= factor * vi);
            }
        }
        for row in (0..k).rev() {
            let tail: f64 = (row + 1..k).map(|c| columns[c][row] * out[c * n + j]).sum();
            out[row * n + j] = (y[row] - tail) / columns[row][row];
        }
    }
    out
}

/// Timing of one analysis and one synthesis, for the CLI's `bench` command.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ShtBenchmark {
    pub truncation: usize,
    pub n_lat: usize,
    pub n_lon: usize,
    /// Median wall time of one grid -> coefficients transform, milliseconds.
    pub analysis_ms: f64,
    /// Median wall time of one coefficients -> grid transform, milliseconds.
    pub synthesis_ms: f64,
    pub repeats: usize,
}

/// Times analysis and synthesis of a smooth field on the alias-free grid of `truncation` (median of `repeats`).
pub fn benchmark(truncation: usize, repeats: usize) -> ShtBenchmark {
    let sht = Sht::with_alias_free_grid(truncation);
    let grid: Vec<f64> = (0..sht.n_lat() * sht.n_lon())
        .map(|i| ((i % sht.n_lon()) as f64 * 0.1).sin() * sht.sin_lat()[i / sht.n_lon()])
        .collect();
    let repeats = repeats.max(1);
    let median = |mut times: Vec<f64>| {
        times.sort_by(f64::total_cmp);
        times[times.len() / 2]
    };
    let mut coeffs = sht.analyse(&grid);
    let analysis = (0..repeats)
        .map(|_| {
            let start = std::time::Instant::now();
            coeffs = sht.analyse(std::hint::black_box(&grid));
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    let synthesis = (0..repeats)
        .map(|_| {
            let start = std::time::Instant::now();
            std::hint::black_box(sht.synthesise(std::hint::black_box(&coeffs)));
            start.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ShtBenchmark {
        truncation,
        n_lat: sht.n_lat(),
        n_lon: sht.n_lon(),
        analysis_ms: median(analysis),
        synthesis_ms: median(synthesis),
        repeats,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    /// Random coefficients of a real field (m = 0 real), each component uniform in [-1, 1].
    fn random_coefficients(truncation: usize, seed: u64) -> Vec<Complex64> {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let mut coeffs = vec![Complex64::ZERO; coefficient_count(truncation)];
        for m in 0..=truncation {
            for l in m..=truncation {
                let im = if m == 0 {
                    0.0
                } else {
                    rng.random_range(-1.0..1.0)
                };
                coeffs[coefficient_index(truncation, l, m)] =
                    Complex64::new(rng.random_range(-1.0..1.0), im);
            }
        }
        coeffs
    }

    fn max_abs_difference(a: &[Complex64], b: &[Complex64]) -> f64 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).norm())
            .fold(0.0, f64::max)
    }

    /// `P̄_53(μ) cos 3λ` from the closed form `P_5^3 = (1−μ²)^{3/2} (945 μ² − 105)/2` and the normalisation
    /// `sqrt((2l+1)(l−m)!/(l+m)!) = sqrt(11·2/8!)`, independent of the recurrence.
    fn y53_cos(lat: f64, lon: f64) -> f64 {
        let mu = lat.sin();
        let p53 = (1.0 - mu * mu).powf(1.5) * (945.0 * mu * mu - 105.0) / 2.0;
        (22.0f64 / 40320.0).sqrt() * p53 * (3.0 * lon).cos()
    }

    #[test]
    fn gauss_legendre_integrates_polynomials_exactly() {
        let (nodes, weights) = gauss_legendre(16);
        assert!((weights.iter().sum::<f64>() - 2.0).abs() < 1e-14);
        assert!(
            nodes.windows(2).all(|w| w[0] > w[1]),
            "nodes descend from north to south"
        );
        for k in 0..16 {
            // ∫_{-1}^{1} μ^{2k} dμ = 2/(2k+1), exact for degree ≤ 2n − 1 = 31.
            let quadrature: f64 = nodes
                .iter()
                .zip(&weights)
                .map(|(x, w)| w * x.powi(2 * k))
                .sum();
            assert!(
                (quadrature - 2.0 / (2 * k + 1) as f64).abs() < 1e-14,
                "degree {}",
                2 * k
            );
        }
    }

    #[test]
    fn legendre_functions_match_closed_forms() {
        let mu: f64 = 0.3;
        let cos = (1.0 - mu * mu).sqrt();
        let p = associated_legendre(3, mu);
        let at = |l, m| p[coefficient_index(3, l, m)];
        assert!((at(0, 0) - 1.0).abs() < 1e-15);
        assert!((at(1, 0) - 3f64.sqrt() * mu).abs() < 1e-15);
        assert!((at(1, 1) - 1.5f64.sqrt() * cos).abs() < 1e-15);
        assert!((at(2, 0) - 5f64.sqrt() * (3.0 * mu * mu - 1.0) / 2.0).abs() < 1e-15);
        assert!((at(2, 1) - 7.5f64.sqrt() * mu * cos).abs() < 1e-15);
        assert!((at(2, 2) - (15.0f64 / 8.0).sqrt() * cos * cos).abs() < 1e-15);
    }

    #[test]
    fn legendre_functions_are_orthonormal_under_gaussian_quadrature() {
        let truncation = 42;
        let (nodes, weights) = gauss_legendre(64);
        let values: Vec<Vec<f64>> = nodes
            .iter()
            .map(|&mu| associated_legendre(truncation, mu))
            .collect();
        for m in [0, 1, 7, 30, 42] {
            for l in m..=truncation {
                for l2 in [l, (l + 1).min(truncation), (l + 2).min(truncation)] {
                    let integral: f64 = values
                        .iter()
                        .zip(&weights)
                        .map(|(v, w)| {
                            w * v[coefficient_index(truncation, l, m)]
                                * v[coefficient_index(truncation, l2, m)]
                        })
                        .sum();
                    let expected = if l == l2 { 2.0 } else { 0.0 };
                    assert!(
                        (integral - expected).abs() < 1e-12,
                        "l={l} l2={l2} m={m}: {integral}"
                    );
                }
            }
        }
    }

    #[test]
    fn grid_sizes_follow_the_three_n_plus_one_rule() {
        assert_eq!(gaussian_grid_size(21), (32, 64));
        assert_eq!(gaussian_grid_size(42), (64, 128));
        assert_eq!(gaussian_grid_size(63), (96, 192));
        assert_eq!(gaussian_grid_size(85), (128, 256));
    }

    #[test]
    fn synthesis_then_analysis_round_trips() {
        for truncation in [42, 85] {
            let sht = Sht::with_alias_free_grid(truncation);
            let coeffs = random_coefficients(truncation, 1);
            let back = sht.analyse(&sht.synthesise(&coeffs));
            let error = max_abs_difference(&coeffs, &back);
            assert!(error < 1e-10, "T{truncation}: {error}");
        }
        // The minimal grid (n_lat = N + 1 rounded to even, n_lon = 2N + 1) is still exact.
        let sht = Sht::new(20, 22, 41).unwrap();
        let coeffs = random_coefficients(20, 2);
        assert!(max_abs_difference(&coeffs, &sht.analyse(&sht.synthesise(&coeffs))) < 1e-11);
    }

    #[test]
    fn sampled_harmonic_has_all_its_power_at_its_degree() {
        let sht = Sht::with_alias_free_grid(21);
        let (lat, lon) = (sht.latitudes(), sht.longitudes());
        let grid: Vec<f64> = lat
            .iter()
            .flat_map(|&la| lon.iter().map(move |&lo| y53_cos(la, lo)))
            .collect();
        let coeffs = sht.analyse(&grid);
        assert!((coeffs[sht.index(5, 3)] - Complex64::new(0.5, 0.0)).norm() < 1e-13);
        let power = power_spectrum(21, &coeffs);
        for (l, &e) in power.iter().enumerate() {
            // cos 3λ = (e^{3iλ} + e^{-3iλ})/2, so E(5) = 2 · (1/2)² = 1/2 = mean(P̄² cos²).
            let expected = if l == 5 { 0.5 } else { 0.0 };
            assert!((e - expected).abs() < 1e-13, "E({l}) = {e}");
        }
    }

    #[test]
    fn parseval_holds_with_the_area_mean_of_the_square() {
        let truncation = 42;
        let sht = Sht::with_alias_free_grid(truncation);
        let coeffs = random_coefficients(truncation, 3);
        let grid = sht.synthesise(&coeffs);
        let squares: Vec<f64> = grid.iter().map(|x| x * x).collect();
        let total: f64 = power_spectrum(truncation, &coeffs).iter().sum();
        let mean_square = sht.area_mean(&squares);
        assert!(
            (total - mean_square).abs() < 1e-11 * mean_square,
            "{total} vs {mean_square}"
        );
    }

    #[test]
    fn zonal_field_has_only_m_zero() {
        let sht = Sht::with_alias_free_grid(42);
        let grid: Vec<f64> = sht
            .sin_lat()
            .iter()
            .flat_map(|&mu| std::iter::repeat_n(mu.exp() + mu.powi(3), sht.n_lon()))
            .collect();
        let coeffs = sht.analyse(&grid);
        for m in 1..=42 {
            for l in m..=42 {
                assert!(
                    coeffs[sht.index(l, m)].norm() < 1e-15,
                    "a_{l},{m} = {}",
                    coeffs[sht.index(l, m)]
                );
            }
        }
        // a_00 is the area mean: ∫ (e^μ + μ³) dμ / 2 = sinh(1).
        assert!((coeffs[0].re - 1f64.sinh()).abs() < 1e-14);
    }

    #[test]
    fn solid_body_rotation_has_the_known_vorticity_and_winds() {
        let (radius, speed) = (6.37122e6, 40.0);
        let sht = Sht::with_alias_free_grid(10).with_radius(radius);
        // u = U cos φ, v = 0  <=>  ψ = −U a sin φ = −U a P̄_10 / √3, and ζ = 2U sin φ / a.
        let mut psi = vec![Complex64::ZERO; sht.coefficient_count()];
        psi[sht.index(1, 0)] = Complex64::new(-speed * radius / 3f64.sqrt(), 0.0);
        let (u, v) = sht.synthesise_vector(Some(&psi), None);
        for (i, (&u, &v)) in u.iter().zip(&v).enumerate() {
            assert!((u - speed * sht.cos_lat()[i / sht.n_lon()]).abs() < 1e-12 * speed);
            assert!(v.abs() < 1e-12 * speed);
        }
        let (divergence, vorticity) = sht.divergence_curl(&u, &v);
        let expected = 2.0 * speed / radius / 3f64.sqrt();
        assert!((vorticity[sht.index(1, 0)].re - expected).abs() < 1e-12 * expected);
        let others = vorticity
            .iter()
            .enumerate()
            .filter(|&(i, _)| i != sht.index(1, 0));
        assert!(
            others
                .chain(divergence.iter().enumerate())
                .all(|(_, c)| c.norm() < 1e-12 * expected)
        );
    }

    #[test]
    fn winds_then_divergence_and_curl_round_trip() {
        let truncation = 42;
        let sht = Sht::with_alias_free_grid(truncation).with_radius(2.0);
        let mut vorticity = random_coefficients(truncation, 4);
        let mut divergence = random_coefficients(truncation, 5);
        vorticity[0] = Complex64::ZERO;
        divergence[0] = Complex64::ZERO;
        let (u, v) = sht.winds(&vorticity, &divergence);
        let (divergence_back, vorticity_back) = sht.divergence_curl(&u, &v);
        assert!(max_abs_difference(&vorticity, &vorticity_back) < 1e-10);
        assert!(max_abs_difference(&divergence, &divergence_back) < 1e-10);
    }

    #[test]
    fn gradient_of_a_harmonic_matches_its_derivatives() {
        let sht = Sht::with_alias_free_grid(12);
        let mut coeffs = vec![Complex64::ZERO; sht.coefficient_count()];
        coeffs[sht.index(5, 3)] = Complex64::new(0.5, 0.0);
        let (east, north) = sht.gradient(&coeffs);
        let (lat, lon) = (sht.latitudes(), sht.longitudes());
        let step = 1e-6;
        for (j, &la) in lat.iter().enumerate() {
            for (k, &lo) in lon.iter().enumerate() {
                let d_lon =
                    (y53_cos(la, lo + step) - y53_cos(la, lo - step)) / (2.0 * step) / la.cos();
                let d_lat = (y53_cos(la + step, lo) - y53_cos(la - step, lo)) / (2.0 * step);
                assert!((east[j * sht.n_lon() + k] - d_lon).abs() < 1e-7);
                assert!((north[j * sht.n_lon() + k] - d_lat).abs() < 1e-7);
            }
        }
    }

    #[test]
    fn regular_grid_synthesis_evaluates_the_series_at_the_points() {
        let sht = Sht::with_alias_free_grid(12);
        let mut coeffs = vec![Complex64::ZERO; sht.coefficient_count()];
        coeffs[sht.index(5, 3)] = Complex64::new(0.5, 0.0);
        let grid = LatLonGrid::new(&[60.0, -10.0, 3.5], &[2.5, 92.5, 182.5, 272.5]).unwrap();
        let values = sht.synthesis_to(&grid).scalar(&coeffs);
        for (j, &la) in grid.lat_deg().iter().enumerate() {
            for (k, &lo) in grid.lon_deg().iter().enumerate() {
                let expected = y53_cos(la.to_radians(), lo.to_radians());
                assert!((values[j * 4 + k] - expected).abs() < 1e-13, "{la} {lo}");
            }
        }
    }

    #[test]
    fn regular_grid_analysis_recovers_band_limited_fields() {
        let grid = LatLonGrid::equiangular(32, 64).unwrap();
        assert_eq!(RegularGridAnalysis::max_truncation(&grid), 31);
        let coeffs = random_coefficients(21, 6);
        let values = Sht::with_alias_free_grid(21)
            .synthesis_to(&grid)
            .scalar(&coeffs);
        for fit in [21, 31] {
            let analysis = RegularGridAnalysis::new(&grid, fit, 1.0).unwrap();
            let back = change_truncation(&analysis.scalar(&values), fit, 21);
            let error = max_abs_difference(&coeffs, &back);
            assert!(error < 1e-10, "fit T{fit}: {error}");
        }
    }

    #[test]
    fn regular_grid_vector_analysis_recovers_vorticity_and_divergence() {
        let (radius, truncation) = (6.37122e6, 21);
        let grid = LatLonGrid::equiangular(32, 64).unwrap();
        let sht = Sht::with_alias_free_grid(truncation).with_radius(radius);
        let scale = 1e-5;
        let mut vorticity: Vec<Complex64> = random_coefficients(truncation, 7)
            .iter()
            .map(|c| c * scale)
            .collect();
        let mut divergence: Vec<Complex64> = random_coefficients(truncation, 8)
            .iter()
            .map(|c| c * scale)
            .collect();
        vorticity[0] = Complex64::ZERO;
        divergence[0] = Complex64::ZERO;
        let psi = sht.inverse_laplacian(&vorticity);
        let chi = sht.inverse_laplacian(&divergence);
        let (u, v) = sht.synthesis_to(&grid).vector(Some(&psi), Some(&chi));
        // u cos φ of a T21 flow has degree 22, so fit at T31 and keep T21.
        let analysis = RegularGridAnalysis::new(&grid, 31, radius).unwrap();
        let (vorticity_back, divergence_back) = analysis.vector(&u, &v);
        let vorticity_back = change_truncation(&vorticity_back, 31, truncation);
        let divergence_back = change_truncation(&divergence_back, 31, truncation);
        assert!(max_abs_difference(&vorticity, &vorticity_back) < 1e-9 * scale);
        assert!(max_abs_difference(&divergence, &divergence_back) < 1e-9 * scale);
    }

    #[test]
    fn invalid_grids_are_rejected() {
        assert_eq!(
            Sht::new(42, 63, 128).unwrap_err(),
            ShtError::OddLatitudeCount { n_lat: 63 }
        );
        assert!(matches!(
            Sht::new(42, 40, 128),
            Err(ShtError::TooFewLatitudes { .. })
        ));
        assert!(matches!(
            Sht::new(42, 64, 80),
            Err(ShtError::TooFewLongitudes { .. })
        ));
        assert!(matches!(
            LatLonGrid::new(&[90.0, 0.0], &[0.0, 180.0]),
            Err(ShtError::LatitudeOutOfRange { .. })
        ));
        assert!(matches!(
            LatLonGrid::new(&[10.0], &[0.0, 100.0]),
            Err(ShtError::IrregularLongitudes { .. })
        ));
        let grid = LatLonGrid::equiangular(32, 64).unwrap();
        assert!(matches!(
            RegularGridAnalysis::new(&grid, 32, 1.0),
            Err(ShtError::TooFewLatitudes { .. })
        ));
    }
}
