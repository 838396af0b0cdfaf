//! A model together with everything needed to run it on physical fields: its graph, the normalisation, and
//! the conversions between data frames ([channel, lat, lon]) and model tensors ([batch, grid_points, channel]).
//!
//! Normalised state `s = (x − mean) / std`. The model predicts the residual normalised by the std of 6-hour
//! differences (GraphCast), so one step is `x' = x + diff_std · r`, i.e. `s' = s + (diff_std / std) · r`; a
//! channel whose differences have zero spread uses its std instead of diff_std (never dividing by 0, see
//! [`crate::normalise::ChannelNormalisation::increment_scale`]).
//!
//! Static channels (land-sea mask, orography: [`crate::normalise::ChannelNormalisation::is_static`]) are inputs
//! only: the model's input is [previous dynamic channels, current dynamic channels, static channels] and its
//! output the dynamic channels' residuals; a step carries static channels over unchanged, and their zero
//! `diff_std` is never divided by (their residual scale is 1 and their residual 0).

use burn::prelude::*;
use weatherlens_models::config::{ModelConfig, ProcessorKind};
use weatherlens_models::fused::Kernels;
use weatherlens_models::graph::ModelGraph;
use weatherlens_models::graph_tensors::GraphTensors;
use weatherlens_models::hooks::Hooks;
use weatherlens_models::model::WeatherModel;

use crate::normalise::NormalisationStats;

pub struct Emulator {
    pub model: WeatherModel,
    pub graph: GraphTensors,
    pub stats: NormalisationStats,
    /// mean, std, increment scale / std (1 for static channels): [1, 1, channels]
    mean: Tensor<3>,
    std: Tensor<3>,
    /// diff_std / std, [1, 1, channels]: the change of the normalised state per unit of the model's
    /// normalised residual output.
    residual_to_state: Tensor<3>,
    grid_points: usize,
    channels: usize,
    /// How channels split into predicted and static ones; `None` when every channel is predicted.
    split: Option<ChannelSplit>,
}

/// Indices of the predicted (dynamic) and static channels.
struct ChannelSplit {
    dynamic: Tensor<1, Int>,
    statics: Tensor<1, Int>,
    /// For each channel, its index among the dynamic ones (0 for a static channel, masked out).
    expand: Tensor<1, Int>,
    /// [1, 1, channels]: 1 for a predicted channel, 0 for a static one.
    mask: Tensor<3>,
}

impl Emulator {
    pub fn new(
        model: WeatherModel,
        config: &ModelConfig,
        graph: &ModelGraph,
        stats: NormalisationStats,
        kernels: Kernels,
        device: &Device,
    ) -> Self {
        let attention =
            (config.processor == ProcessorKind::Transformer).then_some(config.attention);
        let channels = stats.channels.len();
        let per_channel = |values: Vec<f32>| {
            Tensor::<3>::from_data(TensorData::new(values, [1, 1, channels]), device)
        };
        let is_static = stats.static_flags();
        let scale: Vec<f32> = stats
            .increment_scales()
            .iter()
            .zip(stats.stds())
            .zip(&is_static)
            .map(|((d, s), &fixed)| if fixed { 1.0 } else { d / s })
            .collect();
        let split = is_static.contains(&true).then(|| {
            let int = |values: Vec<i64>| {
                let len = values.len();
                Tensor::<1, Int>::from_data(TensorData::new(values, [len]), device)
            };
            let indices = |wanted: bool| {
                (0..channels as i64)
                    .filter(|&c| is_static[c as usize] == wanted)
                    .collect::<Vec<_>>()
            };
            let mut next = 0_i64;
            let expand: Vec<i64> = is_static
                .iter()
                .map(|&fixed| {
                    if fixed {
                        0
                    } else {
                        next += 1;
                        next - 1
                    }
                })
                .collect();
            ChannelSplit {
                dynamic: int(indices(false)),
                statics: int(indices(true)),
                expand: int(expand),
                mask: per_channel(
                    is_static
                        .iter()
                        .map(|&fixed| if fixed { 0.0 } else { 1.0 })
                        .collect(),
                ),
            }
        });
        Self {
            mean: per_channel(stats.means()),
            std: per_channel(stats.stds()),
            residual_to_state: per_channel(scale),
            graph: GraphTensors::new(graph, attention, kernels, device),
            grid_points: graph.num_grid_points(),
            channels,
            split,
            model,
            stats,
        }
    }

    pub fn channels(&self) -> usize {
        self.channels
    }

    /// Channels of [`Self::model_input`]: 2 × dynamic + static.
    pub fn model_input_channels(&self) -> usize {
        let statics = self
            .split
            .as_ref()
            .map_or(0, |split| split.statics.dims()[0]);
        2 * self.channels - statics
    }

    pub fn grid_points(&self) -> usize {
        self.grid_points
    }

    pub fn device(&self) -> Device {
        self.mean.device()
    }

    /// Physical frames -> normalised states.
    ///
    /// frames: [count, channel, lat, lon] -> [count, grid_points, channel]
    pub fn states(&self, frames: &[f32], count: usize) -> Tensor<3> {
        let x = Tensor::<3>::from_data(
            TensorData::new(frames.to_vec(), [count, self.channels, self.grid_points]),
            &self.device(),
        )
        .swap_dims(1, 2);
        (x - self.mean.clone()) / self.std.clone()
    }

    /// Normalised states -> physical frames.
    ///
    /// states: [count, grid_points, channel] -> [count, channel, lat, lon]
    pub fn frames(&self, states: Tensor<3>) -> Vec<f32> {
        (states * self.std.clone() + self.mean.clone())
            .swap_dims(1, 2)
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .expect("converted to f32 above")
    }

    /// The model's input for one step: [previous dynamic channels, current dynamic channels, static channels]
    /// (previous and current side by side when no channel is static).
    ///
    /// previous, current: [batch, grid_points, channel] -> [batch, grid_points, 2 × dynamic + static]
    pub fn model_input(&self, previous: Tensor<3>, current: Tensor<3>) -> Tensor<3> {
        match &self.split {
            None => Tensor::cat(vec![previous, current], 2),
            Some(split) => Tensor::cat(
                vec![
                    previous.select(2, split.dynamic.clone()),
                    current.clone().select(2, split.dynamic.clone()),
                    current.select(2, split.statics.clone()),
                ],
                2,
            ),
        }
    }

    /// One 6-hour step: (s_{t−Δ}, s_t) -> s_{t+Δ}; static channels are carried over unchanged.
    ///
    /// previous, current: [batch, grid_points, channel] -> [batch, grid_points, channel]
    pub fn step(&self, previous: Tensor<3>, current: Tensor<3>, hooks: &Hooks) -> Tensor<3> {
        let input = self.model_input(previous, current.clone());
        let residual = self.model.forward(&self.graph, input, hooks);
        let residual = match &self.split {
            None => residual,
            Some(split) => residual.select(2, split.expand.clone()) * split.mask.clone(),
        };
        current + residual * self.residual_to_state.clone()
    }

    /// Express a state error in units of the residual's std (GraphCast's loss scale): `(s − s_true) / (diff_std / std)`.
    ///
    /// [batch, grid_points, channel] -> same
    pub fn in_residual_units(&self, state_error: Tensor<3>) -> Tensor<3> {
        state_error / self.residual_to_state.clone()
    }

    /// Autoregressive forecast of `lead_steps` steps from two physical frames per case.
    ///
    /// inputs: [batch, 2, channel, lat, lon] -> `lead_steps` × [batch, channel, lat, lon]
    pub fn forecast(&self, inputs: &[f32], batch: usize, lead_steps: usize) -> Vec<Vec<f32>> {
        let both = self.states(inputs, 2 * batch);
        let [_, points, channels] = both.dims();
        let both = both.reshape([batch, 2, points, channels]);
        let mut previous = both
            .clone()
            .slice([0..batch, 0..1])
            .reshape([batch, points, channels]);
        let mut current = both
            .slice([0..batch, 1..2])
            .reshape([batch, points, channels]);
        let mut out = Vec::with_capacity(lead_steps);
        for _ in 0..lead_steps {
            let next = self.step(previous, current.clone(), &Hooks::none());
            out.push(self.frames(next.clone()));
            previous = current;
            current = next;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use weatherlens_models::grid::LatLonGrid;

    use super::*;
    use crate::config::RunConfig;
    use crate::normalise::{ChannelNormalisation, Period};
    use crate::trainer::build_model_for;

    const CONFIG: &str = r#"
name = "static"
seed = 5
[data]
source = "synthetic"
path = "data/x"
[data.windows]
train = { start = "2000-01-01", end = "2000-02-01" }
val = { start = "2000-02-01", end = "2000-02-10" }
test = { start = "2000-02-10", end = "2000-03-01" }
[model]
mesh_level = 1
latent_size = 8
num_layers = 1
[training]
steps = 1
"#;

    fn channel(
        name: &str,
        mean: f64,
        std: f64,
        diff_std: f64,
        is_static: bool,
    ) -> ChannelNormalisation {
        ChannelNormalisation {
            name: name.to_string(),
            mean,
            std,
            diff_std,
            is_static,
        }
    }

    #[test]
    fn static_channels_are_inputs_carried_over_and_zero_spread_is_never_divided_by() {
        let device = Device::flex();
        let config = RunConfig::parse(CONFIG, Path::new("static.toml")).unwrap();
        let grid =
            LatLonGrid::from_coordinates(vec![45.0, -45.0], vec![0.0, 90.0, 180.0, 270.0]).unwrap();
        let graph = ModelGraph::build(&grid, 1).unwrap();
        // t2m predicted; lsm static with std 0.5; orography static and constant everywhere (std 0);
        // u predicted with zero spread of its differences.
        let stats = NormalisationStats {
            channels: vec![
                channel("t2m", 280.0, 10.0, 1.0, false),
                channel("lsm", 0.5, 0.5, 0.0, true),
                channel("orography", 100.0, 0.0, 0.0, true),
                channel("u", 0.0, 5.0, 0.0, false),
            ],
            diff_hours: 6,
            period: Period {
                start: "2000-01-01T00:00:00Z".into(),
                end: "2000-01-02T00:00:00Z".into(),
                count: 5,
            },
        };
        stats.validate().unwrap();
        let model = build_model_for(&config, &stats, &device);
        let emulator = Emulator::new(model, &config.model, &graph, stats, Kernels::Fused, &device);
        let points = 8;
        // Two frames [time, channel, point]: every channel varies in space; static ones equal at both times.
        let mut frames = Vec::new();
        for t in 0..2 {
            for c in 0..4 {
                for p in 0..points {
                    frames.push(match c {
                        0 => 280.0 + t as f32 + p as f32,
                        1 => (p % 2) as f32,
                        2 => 100.0,
                        _ => 3.0 * t as f32 - p as f32,
                    });
                }
            }
        }
        let both = emulator.states(&frames, 2);
        let values: Vec<f32> = both
            .clone()
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap();
        assert!(values.iter().all(|v| v.is_finite()), "{values:?}");
        let previous = both.clone().slice([0..1, 0..points, 0..4]);
        let current = both.slice([1..2, 0..points, 0..4]);
        // [previous t2m, u; current t2m, u; lsm, orography]
        let input = emulator.model_input(previous.clone(), current.clone());
        assert_eq!(input.dims(), [1, points, 6]);
        let input: Vec<f32> = input
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap();
        let now: Vec<f32> = current
            .clone()
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap();
        for p in 0..points {
            assert_eq!(input[p * 6 + 2], now[p * 4], "current t2m");
            assert_eq!(input[p * 6 + 4], now[p * 4 + 1], "lsm");
            assert_eq!(input[p * 6 + 5], now[p * 4 + 2], "orography");
        }
        let next = emulator.step(previous, current, &Hooks::none());
        let next: Vec<f32> = next
            .into_data()
            .convert::<f32>()
            .try_into_vec::<f32>()
            .unwrap();
        let mut moved = 0;
        for p in 0..points {
            assert_eq!(next[p * 4 + 1], now[p * 4 + 1], "lsm is carried over");
            assert_eq!(next[p * 4 + 2], now[p * 4 + 2], "orography is carried over");
            assert!(next[p * 4].is_finite() && next[p * 4 + 3].is_finite());
            moved += usize::from(next[p * 4] != now[p * 4])
                + usize::from(next[p * 4 + 3] != now[p * 4 + 3]);
        }
        assert!(moved > 0, "the predicted channels are stepped");
        // The forecast in physical units keeps the static fields exactly.
        let forecast = emulator.forecast(&frames, 1, 2);
        for step in &forecast {
            assert_eq!(
                step[points..3 * points],
                frames[4 * points + points..4 * points + 3 * points]
            );
        }
    }
}
