//! Encoder: embeds grid inputs and the static graph features, then one grid2mesh interaction step moves
//! information from the lat-lon grid onto the mesh.

use burn::prelude::*;

use crate::graph::{EDGE_FEATURES, NODE_FEATURES};
use crate::graph_tensors::GraphTensors;
use crate::interaction::InteractionNetwork;
use crate::mlp::{Mlp, NormPlacement};

/// The encoder's outputs, all latent-sized.
pub struct Encoded {
    /// grid: [batch, grid_points, latent]
    pub grid: Tensor<3>,
    /// mesh: [batch, mesh_nodes, latent], the processor's X_0
    pub mesh: Tensor<3>,
    /// mesh_edges: [batch, mesh_edges, latent], the processor's initial edge latents (message-passing
    /// processors only)
    pub mesh_edges: Option<Tensor<3>>,
}

#[derive(Module, Debug)]
pub struct Encoder {
    grid_embed: Mlp,
    mesh_embed: Mlp,
    grid2mesh_edge_embed: Mlp,
    /// Only for processors that pass messages along mesh edges; an unused embedder would get no gradient.
    mesh_edge_embed: Option<Mlp>,
    grid2mesh: InteractionNetwork,
    /// GraphCast also updates the grid nodes, with an MLP of their own latent.
    grid_update: Mlp,
}

impl Encoder {
    pub fn new(
        input_channels: usize,
        latent_size: usize,
        placement: NormPlacement,
        embed_mesh_edges: bool,
        device: &Device,
    ) -> Self {
        let embed = |inputs| Mlp::new(inputs, latent_size, latent_size, placement, device);
        Self {
            grid_embed: embed(input_channels + NODE_FEATURES),
            mesh_embed: embed(NODE_FEATURES),
            grid2mesh_edge_embed: embed(EDGE_FEATURES),
            mesh_edge_embed: embed_mesh_edges.then(|| embed(EDGE_FEATURES)),
            grid2mesh: InteractionNetwork::new(latent_size, placement, device),
            grid_update: embed(latent_size),
        }
    }

    /// input: [batch, grid_points, input_channels] (normalised) -> [`Encoded`]
    pub fn forward(&self, graph: &GraphTensors, input: Tensor<3>) -> Encoded {
        let [batch, _, _] = input.dims();
        let grid_static = broadcast(graph.grid_node_features.clone(), batch);
        let grid = self
            .grid_embed
            .forward(Tensor::cat(vec![input, grid_static], 2));
        let mesh = broadcast(
            self.mesh_embed.forward(graph.mesh_node_features.clone()),
            batch,
        );
        let g2m_edges = broadcast(
            self.grid2mesh_edge_embed
                .forward(graph.grid2mesh_edge_features.clone()),
            batch,
        );
        let mesh_edges = self
            .mesh_edge_embed
            .as_ref()
            .map(|embed| broadcast(embed.forward(graph.mesh_edge_features.clone()), batch));
        let (mesh_delta, _) =
            self.grid2mesh
                .increments(&graph.grid2mesh, grid.clone(), mesh.clone(), g2m_edges);
        Encoded {
            mesh: mesh + mesh_delta,
            grid: grid.clone() + self.grid_update.forward(grid),
            mesh_edges,
        }
    }
}

/// Repeat a per-node (or per-edge) tensor over the batch: [items, features] -> [batch, items, features].
pub(crate) fn broadcast(t: Tensor<2>, batch: usize) -> Tensor<3> {
    let [items, features] = t.dims();
    t.unsqueeze::<3>().expand([batch, items, features])
}
