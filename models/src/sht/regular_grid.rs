//! Spherical harmonics on a regular lat-lon grid such as a dataset's 5.625° grid: synthesis evaluated at the
//! grid's points ([`RegularGridSynthesis`]) and a per-m least-squares analysis ([`RegularGridAnalysis`]).
//! The grid's latitudes must lie strictly inside the poles and its longitudes be equally spaced around the
//! whole circle.

use std::sync::Arc;

use rustfft::{Fft, FftPlanner};

use super::fourier::{fourier_analysis, fourier_synthesis};
use super::legendre::{
    Basis, LegendreTable, SynthesisTerm, associated_legendre, legendre_synthesis,
};
use super::transform::{Sht, vector_terms};
use super::{Complex64, ShtError, coefficient_count, coefficient_index};
use crate::grid::LatLonGrid;

/// Synthesis of T_N coefficients directly at the points of a [`LatLonGrid`] (no interpolation: the series is
/// evaluated there, so the values are exact for the band-limited field).
#[derive(Clone)]
pub struct RegularGridSynthesis {
    truncation: usize,
    radius: f64,
    grid: LatLonGrid,
    rows: Rows,
    table: LegendreTable,
    inverse: Arc<dyn Fft<f64>>,
}

impl RegularGridSynthesis {
    pub(super) fn new(truncation: usize, radius: f64, grid: &LatLonGrid) -> Result<Self, ShtError> {
        let rows = Rows::of(grid)?;
        let table = LegendreTable::new(truncation, &rows.sin_lat);
        let inverse = FftPlanner::new().plan_fft_inverse(grid.n_lon());
        Ok(RegularGridSynthesis {
            truncation,
            radius,
            grid: grid.clone(),
            rows,
            table,
            inverse,
        })
    }

    pub fn grid(&self) -> &LatLonGrid {
        &self.grid
    }

    pub(super) fn evaluate(&self, terms: &[SynthesisTerm]) -> Vec<f64> {
        let fourier = legendre_synthesis(&self.table, terms, false);
        fourier_synthesis(
            self.inverse.as_ref(),
            &fourier,
            self.truncation,
            self.rows.lon0,
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
        for (j, &cos) in self.rows.cos_lat.iter().enumerate() {
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
    rows: Rows,
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
        let rows = Rows::of(grid)?;
        let values: Vec<Vec<f64>> = rows
            .sin_lat
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
            rows,
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
            self.rows.lon0,
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
                .map(|(i, &x)| x * self.rows.cos_lat[i / n_lon])
                .collect()
        };
        let u_cos = self.gaussian.synthesise(&self.scalar(&weighted(east)));
        let v_cos = self.gaussian.synthesise(&self.scalar(&weighted(north)));
        let g_lon = self.gaussian.n_lon();
        let unweight = |field: Vec<f64>| -> Vec<f64> {
            field
                .iter()
                .enumerate()
                .map(|(i, &x)| x / self.gaussian.cos_lat()[i / g_lon])
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
pub(super) fn least_squares_pseudo_inverse(mut columns: Vec<Vec<f64>>) -> Vec<f64> {
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

/// What the transforms need of a grid's rows, after checking that the grid suits them.
#[derive(Debug, Clone)]
struct Rows {
    sin_lat: Vec<f64>,
    cos_lat: Vec<f64>,
    /// The first longitude, radians.
    lon0: f64,
}

impl Rows {
    /// Latitudes strictly inside the poles (cos φ divides vector components) and longitudes equally spaced
    /// around the whole circle (the FFT's sampling), or the error naming the first that is not.
    fn of(grid: &LatLonGrid) -> Result<Self, ShtError> {
        if let Some(&lat) = grid.lat().iter().find(|lat| lat.abs() >= 90.0) {
            return Err(ShtError::LatitudeOutOfRange { lat_deg: lat });
        }
        let lon = grid.lon();
        let spacing = 360.0 / lon.len() as f64;
        for (index, &got) in lon.iter().enumerate() {
            let expected = lon[0] + spacing * index as f64;
            if (got - expected).abs() >= 1e-6 {
                return Err(ShtError::IrregularLongitudes {
                    index,
                    got,
                    expected,
                });
            }
        }
        let radians = |lat: &f64| lat.to_radians();
        Ok(Rows {
            sin_lat: grid.lat().iter().map(|lat| radians(lat).sin()).collect(),
            cos_lat: grid.lat().iter().map(|lat| radians(lat).cos()).collect(),
            lon0: lon[0].to_radians(),
        })
    }
}
