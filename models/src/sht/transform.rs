//! The spherical-harmonic transform on a Gaussian grid ([`Sht`]) and its alias-free grid sizes.

use std::f64::consts::PI;
use std::sync::Arc;

use rustfft::{Fft, FftPlanner};

use super::fourier::{fourier_analysis, fourier_synthesis};
use super::legendre::{
    AnalysisTerm, Basis, LegendreTable, SynthesisTerm, gauss_legendre, legendre_analysis,
    legendre_synthesis,
};
use super::regular_grid::RegularGridSynthesis;
use super::{Complex64, ShtError, coefficient_count, coefficient_index};
use crate::grid::LatLonGrid;

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

pub(super) fn is_smooth_235(mut n: usize) -> bool {
    for p in [2, 3, 5] {
        while n.is_multiple_of(p) {
            n /= p;
        }
    }
    n == 1
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

    pub(super) fn check_grid(&self, grid: &[f64]) {
        assert_eq!(
            grid.len(),
            self.n_lat * self.n_lon,
            "grid must be [n_lat, n_lon] = [{}, {}]",
            self.n_lat,
            self.n_lon
        );
    }

    pub(super) fn check_coeffs(&self, coeffs: &[Complex64]) {
        assert_eq!(
            coeffs.len(),
            self.coefficient_count(),
            "coefficients must be T{}",
            self.truncation
        );
    }

    /// Half the Gauss weight of each northern latitude, times `extra(j)`.
    pub(super) fn half_weights(&self, extra: impl Fn(usize) -> f64) -> Vec<f64> {
        (0..self.n_lat / 2)
            .map(|j| 0.5 * self.weights[j] * extra(j))
            .collect()
    }

    pub(super) fn fourier(&self, grid: &[f64]) -> Vec<Complex64> {
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

    pub(super) fn vector_analysis(
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
    ///
    /// # Errors
    /// [`ShtError::LatitudeOutOfRange`] for a pole row, [`ShtError::IrregularLongitudes`] for longitudes not
    /// equally spaced around the whole circle.
    pub fn synthesis_to(&self, grid: &LatLonGrid) -> Result<RegularGridSynthesis, ShtError> {
        RegularGridSynthesis::new(self.truncation, self.radius, grid)
    }
}

/// The east and north synthesis terms of `k × ∇ψ + ∇χ`, multiplied by cos φ (i.e. U and V).
pub(super) fn vector_terms<'a>(
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
