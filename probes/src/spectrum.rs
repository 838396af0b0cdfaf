//! Spherical-harmonic spectra of fields on the mesh, and the spectral centroid.
//!
//! A latent channel of X_i (or of v_i) is a field on the mesh nodes. It is carried to a Gaussian grid by the
//! barycentric mesh2grid rule (linear inside each finest-level triangle, exact for fields linear in position),
//! analysed with the spherical-harmonic transform, and its power summed over channels:
//! `E(l) = Σ_channels E_c(l)`. The centroid is the variance-weighted mean total wavenumber
//! `l̄ = Σ_{l≥1} l·E(l) / Σ_{l≥1} E(l)`; l = 0 (each channel's global mean) carries no spatial variance and is
//! left out of both sums.

use weatherlens_models::graph::{GraphError, MeshToGridInterpolation};
use weatherlens_models::grid::{GridError, LatLonGrid};
use weatherlens_models::mesh::Multimesh;
use weatherlens_models::sht::{Sht, power_spectrum};

#[derive(Debug, thiserror::Error)]
pub enum SpectrumError {
    #[error(transparent)]
    Grid(#[from] GridError),
    #[error(transparent)]
    Graph(#[from] GraphError),
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
