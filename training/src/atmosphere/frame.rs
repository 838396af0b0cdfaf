//! The dataset channels of the built-in atmosphere and the conversion between a model state and one frame
//! `[channel, lat, lon]` on a regular grid, both ways (the physics baseline starts from frames).

use weatherlens_models::sht::{
    Complex64, RegularGridAnalysis, RegularGridSynthesis, change_truncation,
};

use super::dynamics::{ShallowWaterModel, SpectralState};
use crate::dataset::Channel;

/// Number of channels in a frame.
pub const CHANNEL_COUNT: usize = 4;

/// The channels, in frame order: z500 (free-surface geopotential `g·(depth + bottom height)`), t500 (the
/// tracer), u500, v500. "500" marks them as the mid-troposphere stand-ins they are.
pub fn channels() -> Vec<Channel> {
    let channel = |name: &str, variable: &str, units: &str| Channel {
        name: name.to_string(),
        variable: variable.to_string(),
        level: Some(500.0),
        units: units.to_string(),
    };
    vec![
        channel("z500", "z", "m**2 s**-2"),
        channel("t500", "t", "K"),
        channel("u500", "u", "m s**-1"),
        channel("v500", "v", "m s**-1"),
    ]
}

/// The state on the output grid.
///
/// -> [channel, lat, lon] in the order of [`channels`], f32
pub fn frame_from_state(
    model: &ShallowWaterModel,
    output: &RegularGridSynthesis,
    state: &SpectralState,
) -> Vec<f32> {
    let sht = model.sht();
    let z = output.scalar(&model.free_surface_geopotential(state));
    let t = output.scalar(&state.tracer);
    let psi = sht.inverse_laplacian(&state.vorticity);
    let chi = sht.inverse_laplacian(&state.divergence);
    let (u, v) = output.vector(Some(&psi), Some(&chi));
    [z, t, u, v].iter().flatten().map(|&x| x as f32).collect()
}

/// A model state at the model's truncation from one frame on `analysis`'s grid (fitted at the analysis
/// truncation, then truncated or zero-padded to the model's).
///
/// frame: [channel, lat, lon] in the order of [`channels`]; its length must be 4 × lat × lon (checked by callers)
pub fn state_from_frame(
    model: &ShallowWaterModel,
    analysis: &RegularGridAnalysis,
    frame: &[f32],
) -> SpectralState {
    let points = analysis.grid().n_lat() * analysis.grid().n_lon();
    let field = |channel: usize| -> Vec<f64> {
        frame[channel * points..(channel + 1) * points]
            .iter()
            .map(|&x| x as f64)
            .collect()
    };
    let (from, to) = (analysis.truncation(), model.sht().truncation());
    let fit = |coeffs: Vec<Complex64>| change_truncation(&coeffs, from, to);
    let free_surface = fit(analysis.scalar(&field(0)));
    let mut geopotential: Vec<Complex64> = free_surface
        .iter()
        .zip(model.topography())
        .map(|(z, topography)| z - topography)
        .collect();
    geopotential[0] -= model.reference_geopotential();
    let (vorticity, divergence) = analysis.vector(&field(2), &field(3));
    SpectralState {
        vorticity: fit(vorticity),
        divergence: fit(divergence),
        geopotential,
        tracer: fit(analysis.scalar(&field(1))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::atmosphere::config::AtmosphereConfig;
    use crate::atmosphere::forcing::{forced_model, initial_state};
    use weatherlens_models::grid::{LatLonGrid, LatitudeOrder, PoleRows};

    #[test]
    fn a_frame_converts_back_to_the_state_it_came_from() {
        // A T21 state written on the 5.625° grid (which resolves up to T31) is recovered up to f32 rounding.
        let config = AtmosphereConfig {
            truncation: 21,
            time_step_s: 1800.0,
            ..AtmosphereConfig::default()
        };
        let model = forced_model(&config).unwrap();
        let state = initial_state(&model, &config);
        let grid =
            LatLonGrid::equiangular(32, 64, PoleRows::Excluded, LatitudeOrder::Descending).unwrap();
        let frame = frame_from_state(&model, &model.sht().synthesis_to(&grid).unwrap(), &state);
        assert_eq!(frame.len(), CHANNEL_COUNT * 32 * 64);
        let analysis = RegularGridAnalysis::new(
            &grid,
            RegularGridAnalysis::max_truncation(&grid),
            model.sht().radius(),
        )
        .unwrap();
        let back = state_from_frame(&model, &analysis, &frame);
        let relative = |a: &[Complex64], b: &[Complex64]| {
            let scale = a.iter().map(|c| c.norm()).fold(0.0, f64::max);
            a.iter()
                .zip(b)
                .map(|(x, y)| (x - y).norm())
                .fold(0.0, f64::max)
                / scale
        };
        assert!(relative(&state.vorticity, &back.vorticity) < 1e-5);
        assert!(relative(&state.geopotential, &back.geopotential) < 1e-5);
        assert!(relative(&state.tracer, &back.tracer) < 1e-6);
        let divergence_error = state
            .divergence
            .iter()
            .zip(&back.divergence)
            .map(|(x, y)| (x - y).norm())
            .fold(0.0, f64::max);
        assert!(
            divergence_error < 1e-5 * state.vorticity.iter().map(|c| c.norm()).fold(0.0, f64::max)
        );
    }
}
