//! The physics baseline ("NWP model"): the same forced shallow-water equations at a coarser truncation,
//! started from a frame of the truth and integrated forward, as an operational model is started from an
//! analysis. Scored against the truth like WeatherBench's IFS T42/T63 baselines.

use weatherlens_models::grid::LatLonGrid;
use weatherlens_models::sht::RegularGridAnalysis;

use super::AtmosphereError;
use super::config::AtmosphereConfig;
use super::dynamics::ShallowWaterModel;
use super::forcing::forced_model;
use super::frame::{CHANNEL_COUNT, frame_from_state, state_from_frame};
use super::simulate::advance_checked;

/// A coarse copy of the atmosphere that forecasts from frames.
#[derive(Debug, Clone)]
pub struct PhysicsBaseline {
    model: ShallowWaterModel,
    steps_per_snapshot: usize,
}

impl PhysicsBaseline {
    /// The model the config describes (typically [`AtmosphereConfig::physics_baseline`] of the truth's config:
    /// same forcing, truncation T31), without the random stirring: an NWP model does not know the future
    /// noise, so a forecast is a deterministic function of its initial frame.
    pub fn new(config: &AtmosphereConfig) -> Result<Self, AtmosphereError> {
        Ok(PhysicsBaseline {
            model: forced_model(config)?.without_stirring(),
            steps_per_snapshot: config.steps_per_snapshot(),
        })
    }

    pub fn truncation(&self) -> usize {
        self.model.sht().truncation()
    }

    /// Forecasts `lead_steps_6h` frames (+6 h, +12 h, ...) from `initial`.
    ///
    /// The frame's fields are fitted at the largest truncation the grid resolves (z -> layer geopotential minus
    /// the model's topography, t -> tracer, u and v -> vorticity and divergence), truncated to the model's, and
    /// integrated; each output frame is the model state evaluated on the same grid.
    ///
    /// initial: [channel, lat, lon] with channels z500, t500, u500, v500 (see [`super::channels`]);
    /// lat, lon: the frame's coordinates in degrees (any latitude order, equally spaced longitudes)
    /// -> lead_steps_6h frames, each [channel, lat, lon]
    pub fn forecast(
        &self,
        initial: &[f32],
        lat: &[f64],
        lon: &[f64],
        lead_steps_6h: usize,
    ) -> Result<Vec<Vec<f32>>, AtmosphereError> {
        let grid = LatLonGrid::from_coordinates(lat.to_vec(), lon.to_vec())?;
        let expected = CHANNEL_COUNT * lat.len() * lon.len();
        if initial.len() != expected {
            return Err(AtmosphereError::FrameSize {
                got: initial.len(),
                expected,
                channels: CHANNEL_COUNT,
                n_lat: lat.len(),
                n_lon: lon.len(),
            });
        }
        let analysis = RegularGridAnalysis::new(
            &grid,
            RegularGridAnalysis::max_truncation(&grid),
            self.model.sht().radius(),
        )?;
        let output = self.model.sht().synthesis_to(&grid)?;
        let mut run = self
            .model
            .start(state_from_frame(&self.model, &analysis, initial));
        let mut frames = Vec::with_capacity(lead_steps_6h);
        for _ in 0..lead_steps_6h {
            advance_checked(&self.model, &mut run, self.steps_per_snapshot)?;
            frames.push(frame_from_state(&self.model, &output, run.state()));
        }
        Ok(frames)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::atmosphere::simulate;
    use weatherlens_models::sht::ShtError;

    /// Root-mean-square difference over one channel, weighted by cos(latitude) as WeatherBench does.
    fn weighted_rmse(a: &[f32], b: &[f32], lat: &[f64], channel: usize) -> f64 {
        let points = a.len() / CHANNEL_COUNT;
        let n_lon = points / lat.len();
        let (mut sum, mut weight) = (0.0, 0.0);
        for i in channel * points..(channel + 1) * points {
            let w = lat[(i - channel * points) / n_lon].to_radians().cos();
            sum += w * (a[i] as f64 - b[i] as f64).powi(2);
            weight += w;
        }
        (sum / weight).sqrt()
    }

    #[test]
    fn baseline_beats_persistence_at_six_hours() {
        let truth_config = AtmosphereConfig {
            spin_up_days: 40.0,
            ..AtmosphereConfig::default()
        };
        let truth = simulate(&truth_config, 2.0).unwrap();
        let baseline = PhysicsBaseline::new(&truth_config.physics_baseline()).unwrap();
        assert_eq!(baseline.truncation(), 31);
        for start in [0, 4] {
            let forecast = baseline
                .forecast(truth.frame(start), &truth.lat, &truth.lon, 1)
                .unwrap();
            for channel in 0..CHANNEL_COUNT {
                let model_error =
                    weighted_rmse(&forecast[0], truth.frame(start + 1), &truth.lat, channel);
                let persistence_error = weighted_rmse(
                    truth.frame(start),
                    truth.frame(start + 1),
                    &truth.lat,
                    channel,
                );
                assert!(
                    model_error < persistence_error,
                    "channel {channel} from frame {start}: model {model_error} vs persistence {persistence_error}"
                );
            }
        }
    }

    #[test]
    fn mismatched_frames_are_rejected() {
        let config = AtmosphereConfig::default().physics_baseline();
        let baseline = PhysicsBaseline::new(&config).unwrap();
        let lat: Vec<f64> = (0..32).map(|i| 87.1875 - 5.625 * i as f64).collect();
        let lon: Vec<f64> = (0..64).map(|k| 5.625 * k as f64).collect();
        let result = baseline.forecast(&[0.0; 10], &lat, &lon, 1);
        assert!(matches!(
            result,
            Err(AtmosphereError::FrameSize { expected: 8192, .. })
        ));
        // 63 of 64 longitudes do not go round the circle: the transform cannot take them.
        let result = baseline.forecast(&vec![0.0; 63 * 32 * 4], &lat, &lon[..63], 1);
        assert!(
            matches!(
                result,
                Err(AtmosphereError::Transform(
                    ShtError::IrregularLongitudes { .. }
                ))
            ),
            "{result:?}"
        );
    }
}
