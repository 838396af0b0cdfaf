//! Encoder: embeds grid inputs and the static graph features, then one grid2mesh interaction step moves
//! information from the lat-lon grid onto the mesh.

use burn::prelude::*;

use crate::config::ModelConfig;
use crate::graph::{EDGE_FEATURES, NODE_FEATURES};
use crate::graph_tensors::GraphTensors;
use crate::interaction::InteractionNetwork;
use crate::mlp::Mlp;

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
    /// An encoder for grid inputs of `input_channels` channels, sized and wired by `config`.
    pub fn new(config: &ModelConfig, input_channels: usize, device: &Device) -> Self {
        let (latent, norm) = (config.latent_size, config.norm);
        let embed = |inputs| Mlp::new(inputs, latent, latent, norm, device);
        Self {
            grid_embed: embed(input_channels + NODE_FEATURES),
            mesh_embed: embed(NODE_FEATURES),
            grid2mesh_edge_embed: embed(EDGE_FEATURES),
            mesh_edge_embed: config
                .processor
                .passes_messages_on_edges()
                .then(|| embed(EDGE_FEATURES)),
            grid2mesh: InteractionNetwork::new(latent, norm, config.aggregation, device),
            grid_update: embed(latent),
        }
    }

    /// input: [batch, grid_points, input_channels] (normalised) -> [`Encoded`]
    pub fn forward(&self, graph: &GraphTensors, input: Tensor<3>) -> Encoded {
        let [batch, _, _] = input.dims();
        let kernels = graph.kernels;
        let embed = |mlp: &Mlp, features: &Tensor<2>| {
            broadcast(mlp.forward(features.clone(), kernels), batch)
        };
        let grid_static = broadcast(graph.grid_node_features.clone(), batch);
        let grid = self
            .grid_embed
            .forward(Tensor::cat(vec![input, grid_static], 2), kernels);
        let mesh = embed(&self.mesh_embed, &graph.mesh_node_features);
        let g2m_edges = embed(&self.grid2mesh_edge_embed, &graph.grid2mesh_edge_features);
        let mesh_edges = self
            .mesh_edge_embed
            .as_ref()
            .map(|mlp| embed(mlp, &graph.mesh_edge_features));
        let (mesh_delta, _) = self.grid2mesh.increments(
            &graph.grid2mesh,
            grid.clone(),
            mesh.clone(),
            g2m_edges,
            kernels,
        );
        Encoded {
            mesh: mesh + mesh_delta,
            grid: grid.clone() + self.grid_update.forward(grid, kernels),
            mesh_edges,
        }
    }
}

/// Repeat a per-node (or per-edge) tensor over the batch: [items, features] -> [batch, items, features].
pub(crate) fn broadcast(t: Tensor<2>, batch: usize) -> Tensor<3> {
    let [items, features] = t.dims();
    t.unsqueeze::<3>().expand([batch, items, features])
}
