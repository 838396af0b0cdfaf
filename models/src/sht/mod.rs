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

mod fourier;
mod legendre;
mod regular_grid;
#[cfg(test)]
mod tests;
mod transform;

pub use legendre::{associated_legendre, gauss_legendre};
pub use regular_grid::{RegularGridAnalysis, RegularGridSynthesis};
pub use rustfft::num_complex::Complex64;
pub use transform::{Sht, gaussian_grid_size};

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
    #[error(
        "longitudes must be equally spaced around the whole circle; longitude {index} is {got}°, expected {expected}°"
    )]
    IrregularLongitudes {
        index: usize,
        got: f64,
        expected: f64,
    },
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
