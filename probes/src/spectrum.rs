//! Spherical-harmonic spectra of fields on any node set, and the spectral centroid.
//!
//! A latent channel of X_i (or of v_i) is a field on the recorded nodes, at the positions the recording gives
//! (never assumed from the node count or order). [`NodeSpectrum`] picks the transform from the positions:
//!
//! - **WeatherLens's icosahedral mesh, in any order** (every node within 10⁻⁴° of a distinct node of the mesh of
//!   that size): the values are put in mesh order, carried to a Gaussian grid by the barycentric mesh2grid rule
//!   (linear inside each finest-level triangle, exact for fields linear in position) and analysed with the SHT
//!   ([`MeshSpectrum`]), truncation [`mesh_truncation`];
//! - **a full regular lat/lon grid, in any order** (the nodes are exactly every pair of n_lat latitudes strictly
//!   inside the poles and n_lon equally spaced longitudes): the grid fit of the SHT ([`RegularGridAnalysis`],
//!   exact for band-limited fields) at its largest truncation min(n_lat − 1, (n_lon − 1)/2);
//! - **any other point set** (patch centres, scattered points, a mesh of another kind): a least-squares fit of
//!   the real spherical harmonics of degree ≤ T through the SHT's fully normalised Legendre functions, T =
//!   min(⌊√(N/2)⌋ − 1, 31) (about two points per coefficient), exact for fields band-limited to T.
//!
//! Except for the mesh, a node set must cover the sphere: a set whose largest gap (the distance from the worst
//! covered point of a T31 Gaussian grid to its nearest node) exceeds [`MAX_GAP_SPACINGS`] mean node spacings
//! (√(4π/N)) is refused, as is a least-squares system without full rank.
//!
//! Power is summed over channels: `E(l) = Σ_channels E_c(l)`. The centroid is the variance-weighted mean total
//! wavenumber `l̄ = Σ_{l≥1} l·E(l) / Σ_{l≥1} E(l)`; l = 0 (each channel's global mean) carries no spatial
//! variance and is left out of both sums.

use serde::Serialize;
use weatherlens_models::fused::matmul::{self, View};
use weatherlens_models::graph::{GraphError, MeshToGridInterpolation};
use weatherlens_models::grid::{GridError, LatLonGrid};
use weatherlens_models::mesh::{MeshError, Multimesh};
use weatherlens_models::sht::{
    RegularGridAnalysis, Sht, ShtError, associated_legendre, coefficient_index, power_spectrum,
};

use crate::locations::{LocationError, NodeSet, positions};

/// A node set whose largest gap exceeds this many mean node spacings does not cover the sphere.
pub const MAX_GAP_SPACINGS: f64 = 3.0;
/// Largest degree of the least-squares fit (its normal matrix is (T+1)² squared).
pub const MAX_LEAST_SQUARES_TRUNCATION: usize = 31;
/// A recorded node counts as a mesh node when it lies this close to it (degrees).
const MESH_MATCH_DEG: f64 = 1e-4;
/// Relative size below which a Cholesky pivot of the least-squares normal matrix means "not full rank".
const PIVOT_FLOOR: f64 = 1e-10;

#[derive(Debug, thiserror::Error)]
pub enum SpectrumError {
    #[error(transparent)]
    Grid(#[from] GridError),
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error(transparent)]
    Sht(#[from] ShtError),
    #[error(transparent)]
    Mesh(#[from] MeshError),
    #[error("node positions: {0}")]
    Positions(#[from] LocationError),
    #[error("no node positions: a spectrum needs each node's latitude and longitude")]
    NoPositions,
    #[error(
        "the {nodes} nodes do not cover the sphere: a point lies {gap_deg:.1}° from the nearest node, more than \
         {MAX_GAP_SPACINGS} × the mean spacing of {spacing_deg:.1}° (a regional subset has no global spectrum)"
    )]
    PartialCover {
        nodes: usize,
        gap_deg: f64,
        spacing_deg: f64,
    },
    #[error(
        "the {nodes} node positions do not determine the spherical harmonics up to degree {truncation} (the \
         least-squares system is singular: repeated or clustered positions)"
    )]
    Singular { nodes: usize, truncation: usize },
}

/// Which transform a [`NodeSpectrum`] uses, reported beside every centroid.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum SpectrumMethod {
    /// WeatherLens's icosahedral mesh of this level (nodes in any order), barycentric to a Gaussian grid.
    Mesh { level: u32 },
    /// A full regular lat/lon grid (points in any order), the SHT's grid fit.
    Grid { n_lat: usize, n_lon: usize },
    /// Least squares on the real spherical harmonics at the given positions.
    LeastSquares,
}

enum Transform {
    Mesh {
        spectrum: MeshSpectrum,
        /// Mesh node k holds recorded node `order[k]`.
        order: Vec<usize>,
    },
    Grid {
        analysis: RegularGridAnalysis,
        /// Grid point k ([lat, lon] row-major) holds recorded node `order[k]`.
        order: Vec<usize>,
    },
    LeastSquares {
        /// [coefficients, nodes]: (AᵀA)⁻¹Aᵀ of the real-harmonic basis A [nodes, coefficients].
        pseudo_inverse: Vec<f64>,
        /// Degree l of each coefficient.
        degree: Vec<usize>,
    },
}

/// Spectra of fields given at arbitrary node positions (see the module docs for how the transform is chosen).
pub struct NodeSpectrum {
    transform: Transform,
    truncation: usize,
    nodes: usize,
    method: SpectrumMethod,
}

impl NodeSpectrum {
    /// For fields at the nodes (lat, lon) in degrees.
    pub fn new(lat: &[f64], lon: &[f64]) -> Result<Self, SpectrumError> {
        let nodes = lat.len();
        if nodes == 0 {
            return Err(SpectrumError::NoPositions);
        }
        positions("nodes", lat, lon)?;
        if let Some((level, order)) = mesh_order(lat, lon)? {
            let mesh = Multimesh::new(level)?;
            let truncation = mesh_truncation(nodes);
            return Ok(Self {
                transform: Transform::Mesh {
                    spectrum: MeshSpectrum::new(&mesh, truncation)?,
                    order,
                },
                truncation,
                nodes,
                method: SpectrumMethod::Mesh { level },
            });
        }
        check_cover(lat, lon)?;
        if let Some((grid, order)) = grid_order(lat, lon) {
            let truncation = RegularGridAnalysis::max_truncation(&grid);
            if truncation >= 1 {
                let (n_lat, n_lon) = (grid.n_lat(), grid.n_lon());
                return Ok(Self {
                    transform: Transform::Grid {
                        analysis: RegularGridAnalysis::new(&grid, truncation, 1.0)?,
                        order,
                    },
                    truncation,
                    nodes,
                    method: SpectrumMethod::Grid { n_lat, n_lon },
                });
            }
        }
        let truncation = (((nodes as f64 / 2.0).sqrt().floor() as usize).saturating_sub(1))
            .clamp(1, MAX_LEAST_SQUARES_TRUNCATION);
        let (pseudo_inverse, degree) = least_squares(lat, lon, truncation)?;
        Ok(Self {
            transform: Transform::LeastSquares {
                pseudo_inverse,
                degree,
            },
            truncation,
            nodes,
            method: SpectrumMethod::LeastSquares,
        })
    }

    pub fn truncation(&self) -> usize {
        self.truncation
    }

    pub fn method(&self) -> SpectrumMethod {
        self.method
    }

    /// Power by total wavenumber summed over channels.
    ///
    /// fields: [nodes, channels] row-major, nodes in the recorded order -> E: [truncation + 1]
    pub fn power(&self, fields: &[f64], channels: usize) -> Result<Vec<f64>, SpectrumError> {
        assert_eq!(
            fields.len(),
            self.nodes * channels,
            "fields must be [nodes, channels]"
        );
        let reordered = |order: &[usize]| -> Vec<f64> {
            order
                .iter()
                .flat_map(|&n| &fields[n * channels..(n + 1) * channels])
                .copied()
                .collect()
        };
        match &self.transform {
            Transform::Mesh { spectrum, order } => {
                let values: Vec<f32> = reordered(order).iter().map(|&v| v as f32).collect();
                spectrum.power(&values, channels)
            }
            Transform::Grid { analysis, order } => {
                let values = reordered(order);
                let points = order.len();
                let mut total = vec![0.0; self.truncation + 1];
                let mut column = vec![0.0; points];
                for c in 0..channels {
                    for (p, value) in column.iter_mut().enumerate() {
                        *value = values[p * channels + c];
                    }
                    let spectrum = power_spectrum(self.truncation, &analysis.scalar(&column));
                    total.iter_mut().zip(spectrum).for_each(|(t, e)| *t += e);
                }
                Ok(total)
            }
            Transform::LeastSquares {
                pseudo_inverse,
                degree,
            } => {
                let mut coefficients = vec![0.0; degree.len() * channels];
                matmul::multiply(
                    View::row_major(pseudo_inverse, degree.len(), self.nodes),
                    View::row_major(fields, self.nodes, channels),
                    &mut coefficients,
                    false,
                    true,
                );
                let mut total = vec![0.0; self.truncation + 1];
                for (row, &l) in degree.iter().enumerate() {
                    total[l] += coefficients[row * channels..(row + 1) * channels]
                        .iter()
                        .map(|c| c * c)
                        .sum::<f64>();
                }
                Ok(total)
            }
        }
    }
}

/// When (lat, lon) are the nodes of WeatherLens's icosahedral mesh of some level in any order: the level and,
/// for each mesh node, the recorded node at it.
fn mesh_order(lat: &[f64], lon: &[f64]) -> Result<Option<(u32, Vec<usize>)>, SpectrumError> {
    let nodes = lat.len();
    let Some(level) = (0..=8u32).find(|&level| 10 * 4usize.pow(level) + 2 == nodes) else {
        return Ok(None);
    };
    let mesh = Multimesh::new(level)?;
    let recorded = NodeSet::new("recorded nodes", lat, lon)?;
    let mut order = Vec::with_capacity(nodes);
    let mut taken = vec![false; nodes];
    for &p in mesh.positions() {
        let near = recorded.nearest_to(p);
        if near.distance_deg > MESH_MATCH_DEG || taken[near.node] {
            return Ok(None);
        }
        taken[near.node] = true;
        order.push(near.node);
    }
    Ok(Some((level, order)))
}

/// When (lat, lon) are exactly every pair of a set of latitudes strictly inside the poles and a set of equally
/// spaced longitudes around the circle: the grid (latitudes north to south, longitudes ascending from the
/// smallest in [0, 360)) and, for each grid point, the recorded node at it.
fn grid_order(lat: &[f64], lon: &[f64]) -> Option<(LatLonGrid, Vec<usize>)> {
    let key = |v: f64| (v * 1e7).round() as i64;
    let wrap = |v: f64| v.rem_euclid(360.0);
    let mut lats: Vec<i64> = lat.iter().map(|&v| key(v)).collect();
    let mut lons: Vec<i64> = lon.iter().map(|&v| key(wrap(v)) % key(360.0)).collect();
    lats.sort_unstable_by(|a, b| b.cmp(a));
    lats.dedup();
    lons.sort_unstable();
    lons.dedup();
    let (n_lat, n_lon) = (lats.len(), lons.len());
    if n_lat * n_lon != lat.len() || n_lon < 3 || lats.iter().any(|&l| l.abs() >= key(90.0)) {
        return None;
    }
    let spacing = 360.0 / n_lon as f64;
    let lon_values: Vec<f64> = lons.iter().map(|&l| l as f64 / 1e7).collect();
    if lon_values
        .iter()
        .enumerate()
        .any(|(j, &l)| (l - lon_values[0] - spacing * j as f64).abs() > 1e-6)
    {
        return None;
    }
    let mut order = vec![usize::MAX; lat.len()];
    for n in 0..lat.len() {
        let i = lats.binary_search_by(|probe| key(lat[n]).cmp(probe)).ok()?;
        let j = lons.binary_search(&(key(wrap(lon[n])) % key(360.0))).ok()?;
        let slot = &mut order[i * n_lon + j];
        if *slot != usize::MAX {
            return None;
        }
        *slot = n;
    }
    let grid =
        LatLonGrid::from_coordinates(lats.iter().map(|&l| l as f64 / 1e7).collect(), lon_values)
            .ok()?;
    Some((grid, order))
}

/// Refuses node sets with a gap wider than [`MAX_GAP_SPACINGS`] mean spacings.
fn check_cover(lat: &[f64], lon: &[f64]) -> Result<(), SpectrumError> {
    let nodes = NodeSet::new("nodes", lat, lon)?;
    let probe = Sht::with_alias_free_grid(31);
    let probe_lat: Vec<f64> = probe.latitudes().iter().map(|r| r.to_degrees()).collect();
    let probe_lon: Vec<f64> = probe.longitudes().iter().map(|r| r.to_degrees()).collect();
    let (all_lat, all_lon): (Vec<f64>, Vec<f64>) = probe_lat
        .iter()
        .flat_map(|&la| probe_lon.iter().map(move |&lo| (la, lo)))
        .unzip();
    let gap_deg = nodes
        .nearest(&all_lat, &all_lon)?
        .iter()
        .map(|n| n.distance_deg)
        .fold(0.0, f64::max);
    let spacing_deg = (4.0 * std::f64::consts::PI / lat.len() as f64)
        .sqrt()
        .to_degrees();
    if gap_deg > MAX_GAP_SPACINGS * spacing_deg {
        return Err(SpectrumError::PartialCover {
            nodes: lat.len(),
            gap_deg,
            spacing_deg,
        });
    }
    Ok(())
}

/// The least-squares operator of the real harmonics of degree ≤ `truncation` at the points, normalised so that
/// each basis function has unit area mean square (then E(l) is the sum of the squared coefficients of degree l,
/// as [`power_spectrum`] gives): P̄_l0, and √2·P̄_lm·cos mλ, √2·P̄_lm·sin mλ for m > 0.
///
/// -> ([coefficients, nodes] pseudo-inverse, degree of each coefficient)
fn least_squares(
    lat: &[f64],
    lon: &[f64],
    truncation: usize,
) -> Result<(Vec<f64>, Vec<usize>), SpectrumError> {
    let nodes = lat.len();
    let mut degree = Vec::new();
    let mut basis: Vec<(usize, usize, bool)> = Vec::new();
    for l in 0..=truncation {
        for m in 0..=l {
            basis.push((l, m, true));
            degree.push(l);
            if m > 0 {
                basis.push((l, m, false));
                degree.push(l);
            }
        }
    }
    let count = basis.len();
    // A: [nodes, count].
    let mut a = vec![0.0; nodes * count];
    a.chunks_mut(count).enumerate().for_each(|(n, row)| {
        let p = associated_legendre(truncation, lat[n].to_radians().sin());
        let lambda = lon[n].to_radians();
        for (column, &(l, m, cosine)) in basis.iter().enumerate() {
            let legendre = p[coefficient_index(truncation, l, m)];
            row[column] = match (m, cosine) {
                (0, _) => legendre,
                (_, true) => std::f64::consts::SQRT_2 * legendre * (m as f64 * lambda).cos(),
                (_, false) => std::f64::consts::SQRT_2 * legendre * (m as f64 * lambda).sin(),
            };
        }
    });
    // G = AᵀA [count, count], then its Cholesky factor.
    let mut gram = vec![0.0; count * count];
    matmul::multiply(
        View::row_major(&a, nodes, count).transposed(),
        View::row_major(&a, nodes, count),
        &mut gram,
        false,
        true,
    );
    let largest = (0..count).map(|i| gram[i * count + i]).fold(0.0, f64::max);
    // In-place lower Cholesky: G = L Lᵀ.
    for j in 0..count {
        let mut diagonal = gram[j * count + j];
        for k in 0..j {
            diagonal -= gram[j * count + k] * gram[j * count + k];
        }
        if diagonal <= PIVOT_FLOOR * largest {
            return Err(SpectrumError::Singular { nodes, truncation });
        }
        let pivot = diagonal.sqrt();
        gram[j * count + j] = pivot;
        for i in j + 1..count {
            let mut value = gram[i * count + j];
            for k in 0..j {
                value -= gram[i * count + k] * gram[j * count + k];
            }
            gram[i * count + j] = value / pivot;
        }
    }
    // Solve L Lᵀ X = Aᵀ for X [count, nodes], column by column of Aᵀ (a node's row of A).
    let mut pseudo_inverse = vec![0.0; count * nodes];
    let columns: Vec<Vec<f64>> = {
        use rayon::prelude::*;
        (0..nodes)
            .into_par_iter()
            .map(|n| {
                let mut y: Vec<f64> = a[n * count..(n + 1) * count].to_vec();
                for i in 0..count {
                    let mut value = y[i];
                    for k in 0..i {
                        value -= gram[i * count + k] * y[k];
                    }
                    y[i] = value / gram[i * count + i];
                }
                for i in (0..count).rev() {
                    let mut value = y[i];
                    for k in i + 1..count {
                        value -= gram[k * count + i] * y[k];
                    }
                    y[i] = value / gram[i * count + i];
                }
                y
            })
            .collect()
    };
    for (n, column) in columns.iter().enumerate() {
        for (row, value) in column.iter().enumerate() {
            pseudo_inverse[row * nodes + n] = *value;
        }
    }
    Ok((pseudo_inverse, degree))
}

/// The truncation a mesh of `nodes` nodes resolves: about as many coefficients, (T+1)² ≈ nodes.
pub fn mesh_truncation(nodes: usize) -> usize {
    ((nodes as f64).sqrt().floor() as usize)
        .saturating_sub(1)
        .max(1)
}

/// Spectra of mesh fields: mesh -> Gaussian grid (barycentric) -> SHT.
pub struct MeshSpectrum {
    sht: Sht,
    to_grid: MeshToGridInterpolation,
}

impl MeshSpectrum {
    /// For fields on `mesh` at truncation `truncation` (e.g. [`mesh_truncation`] of its node count).
    pub fn new(mesh: &Multimesh, truncation: usize) -> Result<Self, SpectrumError> {
        let sht = Sht::with_alias_free_grid(truncation);
        let lat: Vec<f64> = sht.latitudes().iter().map(|r| r.to_degrees()).collect();
        let lon: Vec<f64> = sht.longitudes().iter().map(|r| r.to_degrees()).collect();
        let grid = LatLonGrid::from_coordinates(lat, lon)?;
        let to_grid = MeshToGridInterpolation::new(mesh.finest_mesh(), &grid)?;
        Ok(Self { sht, to_grid })
    }

    pub fn truncation(&self) -> usize {
        self.sht.truncation()
    }

    /// Power by total wavenumber summed over channels.
    ///
    /// fields: [mesh_nodes, channels] row-major -> E: [truncation + 1]
    pub fn power(&self, fields: &[f32], channels: usize) -> Result<Vec<f64>, SpectrumError> {
        let on_grid = self.to_grid.interpolate(fields, channels)?;
        let points = on_grid.len() / channels.max(1);
        let mut total = vec![0.0; self.truncation() + 1];
        let mut column = vec![0.0; points];
        for c in 0..channels {
            for (p, value) in column.iter_mut().enumerate() {
                *value = on_grid[p * channels + c];
            }
            let spectrum = power_spectrum(self.truncation(), &self.sht.analyse(&column));
            for (t, e) in total.iter_mut().zip(spectrum) {
                *t += e;
            }
        }
        Ok(total)
    }
}

/// `Σ_{l≥1} l·E(l) / Σ_{l≥1} E(l)`; NaN for a field with no variance.
pub fn centroid(power: &[f64]) -> f64 {
    let (weighted, total) = power
        .iter()
        .enumerate()
        .skip(1)
        .fold((0.0, 0.0), |(w, t), (l, &e)| (w + l as f64 * e, t + e));
    if total > 0.0 {
        weighted / total
    } else {
        f64::NAN
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use weatherlens_models::grid::{LatitudeOrder, PoleRows};

    fn sample(mesh: &Multimesh, f: impl Fn(f64, f64) -> f64) -> Vec<f32> {
        mesh.node_lat()
            .iter()
            .zip(mesh.node_lon())
            .map(|(&lat, &lon)| f(lat.to_radians(), lon.to_radians()) as f32)
            .collect()
    }

    #[test]
    fn centroid_by_hand() {
        assert_eq!(centroid(&[5.0, 1.0, 0.0, 3.0]), (1.0 + 9.0) / 4.0);
        assert!(centroid(&[2.0, 0.0]).is_nan());
    }

    #[test]
    fn sampled_harmonics_have_their_degree_as_centroid() {
        let mesh = Multimesh::new(4).unwrap();
        let spectrum = MeshSpectrum::new(&mesh, mesh_truncation(mesh.num_nodes())).unwrap();
        assert_eq!(spectrum.truncation(), 49);
        // Real parts of Y_lm up to normalisation, written out independently of the SHT's recurrences.
        type Field = Box<dyn Fn(f64, f64) -> f64>;
        let cases: [(usize, Field); 4] = [
            (1, Box::new(|lat: f64, _| lat.sin())),
            (
                2,
                Box::new(|lat: f64, lon: f64| lat.cos() * lat.sin() * lon.cos()),
            ),
            (
                3,
                Box::new(|lat: f64, lon: f64| lat.cos().powi(3) * (3.0 * lon).cos()),
            ),
            (
                5,
                Box::new(|lat: f64, _| {
                    let x = lat.sin();
                    (63.0 * x.powi(5) - 70.0 * x.powi(3) + 15.0 * x) / 8.0
                }),
            ),
        ];
        for (l, f) in cases {
            let power = spectrum.power(&sample(&mesh, f), 1).unwrap();
            let c = centroid(&power);
            // Linear interpolation inside mesh triangles leaks a little power to high l.
            assert!(
                (c - l as f64).abs() < 0.03 * l as f64 + 0.05,
                "l = {l}: centroid {c}"
            );
            let at_l = power[l] / power.iter().skip(1).sum::<f64>();
            assert!(at_l > 0.99, "l = {l}: only {at_l} of the variance at l");
        }
    }

    #[test]
    fn two_harmonics_give_the_hand_computed_centroid() {
        // f = P_2(sin φ) + cos³φ cos 3λ. Area means of the squares: 1/5 for P_2 (∫P_l² dμ / 2 = 1/(2l+1))
        // and (1/2)·(1/2)∫(1−μ²)³ dμ = 8/35 for the l = 3 term. Centroid = (2/5 + 3·8/35) / (1/5 + 8/35).
        let mesh = Multimesh::new(4).unwrap();
        let spectrum = MeshSpectrum::new(&mesh, 49).unwrap();
        let field = sample(&mesh, |lat, lon| {
            let x = lat.sin();
            (3.0 * x * x - 1.0) / 2.0 + lat.cos().powi(3) * (3.0 * lon).cos()
        });
        let power = spectrum.power(&field, 1).unwrap();
        let expected = (2.0 / 5.0 + 3.0 * 8.0 / 35.0) / (1.0 / 5.0 + 8.0 / 35.0);
        let c = centroid(&power);
        assert!((c - expected).abs() < 0.03, "{c} vs {expected}");
        // Parseval: total power is the area mean of f², 1/5 + 8/35 = 0.428571.
        let total: f64 = power.iter().sum();
        assert!((total - 15.0 / 35.0).abs() < 0.01, "{total}");
    }

    /// A field of (lat, lon) in radians.
    type Harmonic = Box<dyn Fn(f64, f64) -> f64>;

    /// Real parts of Y_lm up to normalisation, written out independently of the SHT's recurrences.
    fn harmonics() -> Vec<(usize, Harmonic)> {
        vec![
            (1, Box::new(|lat: f64, _| lat.sin())),
            (
                2,
                Box::new(|lat: f64, lon: f64| lat.cos() * lat.sin() * lon.cos()),
            ),
            (
                3,
                Box::new(|lat: f64, lon: f64| lat.cos().powi(3) * (3.0 * lon).cos()),
            ),
            (
                5,
                Box::new(|lat: f64, _| {
                    let x = lat.sin();
                    (63.0 * x.powi(5) - 70.0 * x.powi(3) + 15.0 * x) / 8.0
                }),
            ),
        ]
    }

    /// A seeded permutation of 0..n.
    fn shuffled(n: usize, seed: u64) -> Vec<usize> {
        use rand::seq::SliceRandom;
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut crate::stats::stream_rng(seed, 0));
        order
    }

    fn centroid_at(lat: &[f64], lon: &[f64], f: &dyn Fn(f64, f64) -> f64) -> (f64, NodeSpectrum) {
        let spectrum = NodeSpectrum::new(lat, lon).unwrap();
        let field: Vec<f64> = lat
            .iter()
            .zip(lon)
            .map(|(&la, &lo)| f(la.to_radians(), lo.to_radians()))
            .collect();
        (centroid(&spectrum.power(&field, 1).unwrap()), spectrum)
    }

    #[test]
    fn a_harmonic_in_a_shuffled_mesh_order_has_its_degree_as_centroid() {
        // The recorded positions decide, not the node count: a level-4 mesh in a shuffled order is recognised
        // and put back in mesh order (before, a degree-1 field in another order came out near 12).
        let mesh = Multimesh::new(4).unwrap();
        let order = shuffled(mesh.num_nodes(), 3);
        let lat: Vec<f64> = order.iter().map(|&n| mesh.node_lat()[n]).collect();
        // Longitudes in the −180..180 convention.
        let lon: Vec<f64> = order
            .iter()
            .map(|&n| {
                let lon = mesh.node_lon()[n];
                if lon > 180.0 { lon - 360.0 } else { lon }
            })
            .collect();
        for (l, f) in harmonics() {
            let (c, spectrum) = centroid_at(&lat, &lon, &f);
            assert_eq!(spectrum.method(), SpectrumMethod::Mesh { level: 4 });
            assert!(
                (c - l as f64).abs() < 0.03 * l as f64 + 0.05,
                "l = {l}: centroid {c}"
            );
        }
    }

    #[test]
    fn a_harmonic_on_a_shuffled_lat_lon_grid_has_its_degree_as_centroid() {
        // WeatherBench's 5.625° grid (32 x 64, rows at ±87.1875), points in a shuffled order, longitudes in
        // -180..180: the grid fit recovers band-limited fields exactly.
        let grid =
            LatLonGrid::equiangular(32, 64, PoleRows::Excluded, LatitudeOrder::Ascending).unwrap();
        let order = shuffled(grid.num_points(), 5);
        let lat: Vec<f64> = order.iter().map(|&p| grid.lat_lon(p).0).collect();
        let lon: Vec<f64> = order
            .iter()
            .map(|&p| {
                let lon = grid.lat_lon(p).1;
                if lon >= 180.0 { lon - 360.0 } else { lon }
            })
            .collect();
        for (l, f) in harmonics() {
            let (c, spectrum) = centroid_at(&lat, &lon, &f);
            assert_eq!(
                spectrum.method(),
                SpectrumMethod::Grid {
                    n_lat: 32,
                    n_lon: 64
                }
            );
            assert_eq!(spectrum.truncation(), 31);
            assert!((c - l as f64).abs() < 1e-9, "l = {l}: centroid {c}");
        }
    }

    #[test]
    fn a_harmonic_at_scattered_points_has_its_degree_as_centroid() {
        // 1,000 points of a Fibonacci lattice (no mesh, no grid): least squares to T = ⌊√500⌋ − 1 = 21 recovers a
        // band-limited field exactly, whatever the order.
        let n = 1000;
        let golden = std::f64::consts::PI * (3.0 - 5f64.sqrt());
        let lat: Vec<f64> = (0..n)
            .map(|k| {
                (1.0 - 2.0 * (k as f64 + 0.5) / n as f64)
                    .asin()
                    .to_degrees()
            })
            .collect();
        let lon: Vec<f64> = (0..n)
            .map(|k| (golden * k as f64).to_degrees().rem_euclid(360.0))
            .collect();
        for (l, f) in harmonics() {
            let (c, spectrum) = centroid_at(&lat, &lon, &f);
            assert_eq!(spectrum.method(), SpectrumMethod::LeastSquares);
            assert_eq!(spectrum.truncation(), 21);
            assert!((c - l as f64).abs() < 1e-8, "l = {l}: centroid {c}");
        }
        // Parseval holds for the fitted coefficients: P_2 has area mean square 1/5.
        let (_, spectrum) = centroid_at(&lat, &lon, &|_, _| 0.0);
        let field: Vec<f64> = lat
            .iter()
            .map(|&la| {
                let x = la.to_radians().sin();
                (3.0 * x * x - 1.0) / 2.0
            })
            .collect();
        let total: f64 = spectrum.power(&field, 1).unwrap().iter().sum();
        assert!((total - 0.2).abs() < 1e-9, "{total}");
    }

    #[test]
    fn node_sets_that_do_not_cover_the_sphere_are_refused() {
        // The tropics of a 5.625° grid.
        let grid =
            LatLonGrid::equiangular(32, 64, PoleRows::Excluded, LatitudeOrder::Ascending).unwrap();
        let (lat, lon): (Vec<f64>, Vec<f64>) = (0..grid.num_points())
            .map(|p| grid.lat_lon(p))
            .filter(|(lat, _)| lat.abs() < 20.0)
            .unzip();
        let err = NodeSpectrum::new(&lat, &lon).err().unwrap().to_string();
        assert!(err.contains("do not cover the sphere"), "{err}");
        assert!(matches!(
            NodeSpectrum::new(&[], &[]),
            Err(SpectrumError::NoPositions)
        ));
        let err = NodeSpectrum::new(&[0.0, 95.0], &[0.0, 0.0])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("node positions"), "{err}");
    }

    #[test]
    fn channels_add_their_power() {
        let mesh = Multimesh::new(3).unwrap();
        let spectrum = MeshSpectrum::new(&mesh, 24).unwrap();
        let a = sample(&mesh, |lat, _| lat.sin());
        let b = sample(&mesh, |lat, lon| lat.cos() * lon.sin());
        let both: Vec<f32> = a.iter().zip(&b).flat_map(|(&x, &y)| [x, y]).collect();
        let pa = spectrum.power(&a, 1).unwrap();
        let pb = spectrum.power(&b, 1).unwrap();
        let pab = spectrum.power(&both, 2).unwrap();
        for l in 0..pab.len() {
            assert!((pab[l] - pa[l] - pb[l]).abs() < 1e-12);
        }
    }
}
