use super::*;
use crate::grid::{LatLonGrid, LatitudeOrder, PoleRows};
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

/// WeatherBench's 5.625° grid: 32 × 64, poles excluded, north to south.
fn weatherbench_grid() -> LatLonGrid {
    LatLonGrid::equiangular(32, 64, PoleRows::Excluded, LatitudeOrder::Descending).unwrap()
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
            let d_lon = (y53_cos(la, lo + step) - y53_cos(la, lo - step)) / (2.0 * step) / la.cos();
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
    let grid = LatLonGrid::from_coordinates(vec![60.0, 3.5, -10.0], vec![2.5, 92.5, 182.5, 272.5])
        .unwrap();
    let values = sht.synthesis_to(&grid).unwrap().scalar(&coeffs);
    for (j, &la) in grid.lat().iter().enumerate() {
        for (k, &lo) in grid.lon().iter().enumerate() {
            let expected = y53_cos(la.to_radians(), lo.to_radians());
            assert!((values[j * 4 + k] - expected).abs() < 1e-13, "{la} {lo}");
        }
    }
}

#[test]
fn regular_grid_analysis_recovers_band_limited_fields() {
    let grid = weatherbench_grid();
    assert_eq!(RegularGridAnalysis::max_truncation(&grid), 31);
    let coeffs = random_coefficients(21, 6);
    let values = Sht::with_alias_free_grid(21)
        .synthesis_to(&grid)
        .unwrap()
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
    let grid = weatherbench_grid();
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
    let (u, v) = sht
        .synthesis_to(&grid)
        .unwrap()
        .vector(Some(&psi), Some(&chi));
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
    let sht = Sht::with_alias_free_grid(4);
    let poles = LatLonGrid::from_coordinates(vec![90.0, 0.0], vec![0.0, 180.0]).unwrap();
    assert!(matches!(
        sht.synthesis_to(&poles),
        Err(ShtError::LatitudeOutOfRange { .. })
    ));
    let part = LatLonGrid::from_coordinates(vec![10.0], vec![0.0, 100.0]).unwrap();
    assert!(matches!(
        RegularGridAnalysis::new(&part, 0, 1.0),
        Err(ShtError::IrregularLongitudes { .. })
    ));
    let grid = weatherbench_grid();
    assert!(matches!(
        RegularGridAnalysis::new(&grid, 32, 1.0),
        Err(ShtError::TooFewLatitudes { .. })
    ));
}
