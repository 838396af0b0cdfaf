//! Decoder: one mesh2grid interaction step brings the processed mesh latent back to the grid, then a head
//! without LayerNorm maps each grid latent to the output channels.

use burn::prelude::*;

use crate::config::ModelConfig;
use crate::encoder::broadcast;
use crate::graph::EDGE_FEATURES;
use crate::graph_tensors::GraphTensors;
use crate::interaction::InteractionNetwork;
use crate::mlp::{Mlp, NormPlacement};

#[derive(Module, Debug)]
pub struct Decoder {
    mesh2grid_edge_embed: Mlp,
    mesh2grid: InteractionNetwork,
    head: Mlp,
}

impl Decoder {
    /// A decoder to `output_channels` grid channels, sized and wired by `config`.
    pub fn new(config: &ModelConfig, output_channels: usize, device: &Device) -> Self {
        let (latent, norm) = (config.latent_size, config.norm);
        Self {
            mesh2grid_edge_embed: Mlp::new(EDGE_FEATURES, latent, latent, norm, device),
            mesh2grid: InteractionNetwork::new(latent, norm, config.aggregation, device),
            head: Mlp::new(latent, latent, output_channels, NormPlacement::None, device),
        }
    }

    /// mesh: [batch, mesh_nodes, latent], grid: [batch, grid_points, latent] ->
    /// [batch, grid_points, output_channels]
    pub fn forward(&self, graph: &GraphTensors, mesh: Tensor<3>, grid: Tensor<3>) -> Tensor<3> {
        let [batch, _, _] = grid.dims();
        let kernels = graph.kernels;
        let edges = broadcast(
            self.mesh2grid_edge_embed
                .forward(graph.mesh2grid_edge_features.clone(), kernels),
            batch,
        );
        let (grid_delta, _) =
            self.mesh2grid
                .increments(&graph.mesh2grid, mesh, grid.clone(), edges, kernels);
        self.head.forward(grid + grid_delta, kernels)
    }
}
