//! Williamson et al. (1992, J. Comput. Phys. 102, 211–224) shallow-water test cases 2 and 6: analytic states
//! whose evolution is known, used to check [`super::dynamics`].

use std::f64::consts::PI;

use weatherlens_models::sht::Sht;

use super::dynamics::SpectralState;
use super::{EARTH_RADIUS_M, EARTH_ROTATION_RATE, GRAVITY, SECONDS_PER_DAY};

/// Case 2 wind speed `u0 = 2πa / 12 days`, m s⁻¹ (Williamson et al. 1992, case 2).
pub fn steady_flow_speed() -> f64 {
    2.0 * PI * EARTH_RADIUS_M / (12.0 * SECONDS_PER_DAY)
}
/// Case 2 `g h0`, m² s⁻² (Williamson et al. 1992, case 2).
pub const STEADY_FLOW_GH0: f64 = 2.94e4;
/// Case 6 `ω = K`, s⁻¹ (Williamson et al. 1992, case 6).
pub const ROSSBY_HAURWITZ_OMEGA: f64 = 7.848e-6;
/// Case 6 `h0`, m (Williamson et al. 1992, case 6).
pub const ROSSBY_HAURWITZ_H0: f64 = 8000.0;
/// Case 6 zonal wavenumber R.
pub const ROSSBY_HAURWITZ_WAVENUMBER: usize = 4;

/// Values of `f(lat, lon)` (radians) on the transform's Gaussian grid: [lat, lon]
pub fn gaussian_grid_values(sht: &Sht, f: impl Fn(f64, f64) -> f64) -> Vec<f64> {
    let longitudes = sht.longitudes();
    sht.latitudes()
        .iter()
        .flat_map(|&lat| longitudes.iter().map(move |&lon| (lat, lon)))
        .map(|(la, lo)| f(la, lo))
        .collect()
}

/// Case 2 with α = 0: solid-body rotation `u = u0 cos φ` in geostrophic balance with
/// `gh = g h0 − (aΩu0 + u0²/2) sin² φ` (case 2). The exact solution is the initial state for all time.
/// Returns the state (tracer zero) about reference geopotential `g h0`, which is also the returned Φ̄.
pub fn steady_zonal_flow(sht: &Sht) -> (SpectralState, f64) {
    let u0 = steady_flow_speed();
    let a = EARTH_RADIUS_M;
    let mut state = SpectralState::zeros(sht.truncation());
    state.vorticity = sht.analyse(&gaussian_grid_values(sht, |lat, _| {
        2.0 * u0 / a * lat.sin()
    }));
    state.geopotential = sht.analyse(&gaussian_grid_values(sht, |lat, _| {
        -(a * EARTH_ROTATION_RATE * u0 + 0.5 * u0 * u0) * lat.sin().powi(2)
    }));
    (state, STEADY_FLOW_GH0)
}

/// Case 6: the wavenumber-4 Rossby–Haurwitz wave on a layer of base depth `h0` (Williamson's
/// is [`ROSSBY_HAURWITZ_H0`]; a much deeper layer approaches the non-divergent limit), with a tracer equal to
/// `sin φ` (any field works; it is only advected). Returns the state about the reference geopotential
/// Φ̄ = max of `gh`.
pub fn rossby_haurwitz_wave(sht: &Sht, h0: f64) -> (SpectralState, f64) {
    let (omega, k, r) = (
        ROSSBY_HAURWITZ_OMEGA,
        ROSSBY_HAURWITZ_OMEGA,
        ROSSBY_HAURWITZ_WAVENUMBER as f64,
    );
    let (a, big_omega) = (EARTH_RADIUS_M, EARTH_ROTATION_RATE);
    let vorticity = |lat: f64, lon: f64| {
        2.0 * omega * lat.sin()
            - k * lat.sin() * lat.cos().powf(r) * (r * r + 3.0 * r + 2.0) * (r * lon).cos()
    };
    let geopotential = |lat: f64, lon: f64| {
        let c = lat.cos();
        let big_a = 0.5 * omega * (2.0 * big_omega + omega) * c * c
            + 0.25
                * k
                * k
                * c.powf(2.0 * r)
                * ((r + 1.0) * c * c + (2.0 * r * r - r - 2.0) - 2.0 * r * r / (c * c));
        let big_b = 2.0 * (big_omega + omega) * k / ((r + 1.0) * (r + 2.0))
            * c.powf(r)
            * ((r * r + 2.0 * r + 2.0) - (r + 1.0).powi(2) * c * c);
        let big_c = 0.25 * k * k * c.powf(2.0 * r) * ((r + 1.0) * c * c - (r + 2.0));
        GRAVITY * h0 + a * a * (big_a + big_b * (r * lon).cos() + big_c * (2.0 * r * lon).cos())
    };
    let geopotential_grid = gaussian_grid_values(sht, geopotential);
    let reference = geopotential_grid.iter().copied().fold(f64::MIN, f64::max);
    let mut state = SpectralState::zeros(sht.truncation());
    state.vorticity = sht.analyse(&gaussian_grid_values(sht, vorticity));
    state.geopotential = sht.analyse(
        &geopotential_grid
            .iter()
            .map(|g| g - reference)
            .collect::<Vec<_>>(),
    );
    state.tracer = sht.analyse(&gaussian_grid_values(sht, |lat, _| lat.sin()));
    (state, reference)
}

/// Eastward angular speed of the Rossby–Haurwitz pattern in the non-divergent case,
/// `ν = (R(3+R)ω − 2Ω) / ((1+R)(2+R))`, rad s⁻¹ (Williamson et al. 1992, case 6).
pub fn rossby_haurwitz_angular_speed() -> f64 {
    let r = ROSSBY_HAURWITZ_WAVENUMBER as f64;
    (r * (3.0 + r) * ROSSBY_HAURWITZ_OMEGA - 2.0 * EARTH_ROTATION_RATE) / ((1.0 + r) * (2.0 + r))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::atmosphere::dynamics::ShallowWaterModel;

    fn inviscid_model(truncation: usize, reference: f64, time_step: f64) -> ShallowWaterModel {
        let sht = Sht::with_alias_free_grid(truncation).with_radius(EARTH_RADIUS_M);
        ShallowWaterModel::new(sht, EARTH_ROTATION_RATE, reference, time_step, 0.05)
    }

    #[test]
    fn steady_zonal_flow_stays_at_its_initial_state() {
        let model = inviscid_model(42, STEADY_FLOW_GH0, 1200.0);
        let (initial, reference) = steady_zonal_flow(model.sht());
        let model = inviscid_model(42, reference, 1200.0);
        let mut run = model.start(initial.clone());
        model.advance(&mut run, 5 * 72);
        let height = |state: &SpectralState| -> Vec<f64> {
            model
                .sht()
                .synthesise(&state.geopotential)
                .iter()
                .map(|phi| (phi + reference) / GRAVITY)
                .collect()
        };
        let (start, end) = (height(&initial), height(run.state()));
        let max_height = start.iter().copied().fold(0.0, f64::max);
        let max_error = start
            .iter()
            .zip(&end)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        // Every field of case 2 is exactly representable (degree ≤ 2), so only round-off remains.
        assert!(
            max_error / max_height < 1e-10,
            "relative height error {}",
            max_error / max_height
        );
        let (u0, v0) = model.sht().winds(&initial.vorticity, &initial.divergence);
        let (u1, v1) = model
            .sht()
            .winds(&run.state().vorticity, &run.state().divergence);
        let wind_error = u0
            .iter()
            .zip(&u1)
            .chain(v0.iter().zip(&v1))
            .map(|(a, b)| (a - b).abs())
            .fold(0.0, f64::max);
        assert!(
            wind_error < 1e-9 * steady_flow_speed(),
            "wind error {wind_error}"
        );
    }

    /// Eastward angular speed of the wavenumber-4 pattern, from the phase of ζ_{5,4} (∝ e^{−iRνt} for a pattern
    /// cos(R(λ − νt))), sampled every 6 h over `days` and unwrapped.
    fn measured_rossby_haurwitz_speed(h0: f64, days: usize) -> f64 {
        let sht = Sht::with_alias_free_grid(42).with_radius(EARTH_RADIUS_M);
        let (initial, reference) = rossby_haurwitz_wave(&sht, h0);
        let model = inviscid_model(42, reference, 900.0);
        let index = sht.index(ROSSBY_HAURWITZ_WAVENUMBER + 1, ROSSBY_HAURWITZ_WAVENUMBER);
        let mut run = model.start(initial.clone());
        let (mut phase, mut unwrapped) = (initial.vorticity[index].arg(), 0.0);
        for _ in 0..4 * days {
            model.advance(&mut run, 24);
            let new_phase = run.state().vorticity[index].arg();
            let change = new_phase - phase;
            unwrapped += change - 2.0 * PI * (change / (2.0 * PI)).round();
            phase = new_phase;
        }
        -unwrapped / (ROSSBY_HAURWITZ_WAVENUMBER as f64 * run.elapsed_s)
    }

    #[test]
    fn rossby_haurwitz_wave_moves_east_at_the_non_divergent_speed_in_a_deep_layer() {
        // ν is exact for the non-divergent equations, which the shallow-water equations approach as the layer
        // deepens; at ten times Williamson's depth the free surface's slowing is about 1 %.
        let predicted = rossby_haurwitz_angular_speed();
        let measured = measured_rossby_haurwitz_speed(10.0 * ROSSBY_HAURWITZ_H0, 3);
        let relative = (measured - predicted).abs() / predicted;
        assert!(
            relative < 0.02,
            "measured {measured:e} rad/s, predicted {predicted:e}, off by {relative:.4}"
        );
    }

    #[test]
    fn rossby_haurwitz_wave_at_williamson_depth_is_slowed_by_divergence() {
        // With h0 = 8000 m the free surface slows the wave (about 6 % at T42, T85 and for time steps 300–900 s
        // alike, so it is the equations, not the discretisation); check eastward and within 10 % of ν.
        let predicted = rossby_haurwitz_angular_speed();
        let measured = measured_rossby_haurwitz_speed(ROSSBY_HAURWITZ_H0, 3);
        assert!(
            measured < predicted && measured > 0.9 * predicted,
            "measured {measured:e}, ν = {predicted:e}"
        );
    }

    #[test]
    fn mass_is_conserved_without_forcing() {
        let sht = Sht::with_alias_free_grid(42).with_radius(EARTH_RADIUS_M);
        let (initial, reference) = rossby_haurwitz_wave(&sht, ROSSBY_HAURWITZ_H0);
        let model = inviscid_model(42, reference, 900.0);
        let mean_depth = |state: &SpectralState| {
            let depth: Vec<f64> = sht
                .synthesise(&state.geopotential)
                .iter()
                .map(|phi| (phi + reference) / GRAVITY)
                .collect();
            sht.area_mean(&depth)
        };
        let mut run = model.start(initial.clone());
        model.advance(&mut run, 2 * 96);
        let (before, after) = (mean_depth(&initial), mean_depth(run.state()));
        assert!(
            (after - before).abs() < 1e-12 * before,
            "mean depth {before} -> {after}"
        );
        assert!(
            run.state().vorticity != initial.vorticity,
            "the flow evolved"
        );
    }
}
