//! A model together with everything needed to run it on physical fields: its graph, the normalisation, and
//! the conversions between data frames ([channel, lat, lon]) and model tensors ([batch, grid_points, channel]).
//!
//! Normalised state `s = (x − mean) / std`. The model predicts the residual normalised by the std of 6-hour
//! differences (GraphCast), so one step is `x' = x + diff_std · r`, i.e. `s' = s + (diff_std / std) · r`.

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
    /// mean, std: [1, 1, channels]
    mean: Tensor<3>,
    std: Tensor<3>,
    /// diff_std / std, [1, 1, channels]: the change of the normalised state per unit of the model's
    /// normalised residual output.
    residual_to_state: Tensor<3>,
    grid_points: usize,
    channels: usize,
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
        let scale: Vec<f32> = stats
            .diff_stds()
            .iter()
            .zip(stats.stds())
            .map(|(d, s)| d / s)
            .collect();
        Self {
            mean: per_channel(stats.means()),
            std: per_channel(stats.stds()),
            residual_to_state: per_channel(scale),
            graph: GraphTensors::new(graph, attention, kernels, device),
            grid_points: graph.num_grid_points(),
            channels,
            model,
            stats,
        }
    }

    pub fn channels(&self) -> usize {
        self.channels
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

    /// The model's input for one step: the two normalised states side by side along channels.
    ///
    /// previous, current: [batch, grid_points, channel] -> [batch, grid_points, 2·channel]
    pub fn input(&self, previous: Tensor<3>, current: Tensor<3>) -> Tensor<3> {
        Tensor::cat(vec![previous, current], 2)
    }

    /// One 6-hour step: (s_{t−Δ}, s_t) -> s_{t+Δ}.
    ///
    /// previous, current: [batch, grid_points, channel] -> [batch, grid_points, channel]
    pub fn step(&self, previous: Tensor<3>, current: Tensor<3>, hooks: &Hooks) -> Tensor<3> {
        let input = self.input(previous, current.clone());
        let residual = self.model.forward(&self.graph, input, hooks);
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
