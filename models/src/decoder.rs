//! Decoder: one mesh2grid interaction step brings the processed mesh latent back to the grid, then a head
//! without LayerNorm maps each grid latent to the output channels.

use burn::prelude::*;

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
    pub fn new(
        latent_size: usize,
        output_channels: usize,
        placement: NormPlacement,
        device: &Device,
    ) -> Self {
        Self {
            mesh2grid_edge_embed: Mlp::new(
                EDGE_FEATURES,
                latent_size,
                latent_size,
                placement,
                device,
            ),
            mesh2grid: InteractionNetwork::new(latent_size, placement, device),
            head: Mlp::new(
                latent_size,
                latent_size,
                output_channels,
                NormPlacement::None,
                device,
            ),
        }
    }

    /// mesh: [batch, mesh_nodes, latent], grid: [batch, grid_points, latent] ->
    /// [batch, grid_points, output_channels]
    pub fn forward(&self, graph: &GraphTensors, mesh: Tensor<3>, grid: Tensor<3>) -> Tensor<3> {
        let [batch, _, _] = grid.dims();
        let edges = broadcast(
            self.mesh2grid_edge_embed
                .forward(graph.mesh2grid_edge_features.clone()),
            batch,
        );
        let (grid_delta, _) =
            self.mesh2grid
                .increments(&graph.mesh2grid, mesh, grid.clone(), edges);
        self.head.forward(grid + grid_delta)
    }
}
