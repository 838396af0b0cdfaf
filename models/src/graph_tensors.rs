//! The static graph of a model (built once from geometry by [`crate::graph::ModelGraph`]) as device tensors,
//! handed to every forward pass: the model stays a pure function of (graph, input).

use burn::prelude::*;

use crate::config::AttentionScope;
use crate::fused::Kernels;
use crate::graph::{EDGE_FEATURES, ModelGraph, NODE_FEATURES};
use crate::interaction::EdgeIndex;
use crate::processor::MeshContext;

pub struct GraphTensors {
    /// grid_node_features: [grid_points, 3]
    pub grid_node_features: Tensor<2>,
    /// mesh_node_features: [mesh_nodes, 3]
    pub mesh_node_features: Tensor<2>,
    /// grid -> mesh edges (radius rule)
    pub grid2mesh: EdgeIndex,
    /// grid2mesh_edge_features: [grid2mesh_edges, 4]
    pub grid2mesh_edge_features: Tensor<2>,
    /// mesh -> mesh edges of the multimesh
    pub mesh: EdgeIndex,
    /// mesh_edge_features: [mesh_edges, 4]
    pub mesh_edge_features: Tensor<2>,
    /// mesh -> grid edges (containing triangle)
    pub mesh2grid: EdgeIndex,
    /// mesh2grid_edge_features: [mesh2grid_edges, 4]
    pub mesh2grid_edge_features: Tensor<2>,
    /// Neighbourhood attention's edges: the mesh edges plus a self loop per node; only for that processor.
    pub attention_edges: Option<EdgeIndex>,
    /// Which implementation every forward pass over this graph runs (a run-time choice, not a model
    /// property).
    pub kernels: Kernels,
}

impl GraphTensors {
    /// Upload `graph` to `device`. `attention` = `Some(Neighbours)` adds the edges neighbourhood attention
    /// runs over; `kernels` chooses the implementation of the forward passes that use this graph.
    pub fn new(
        graph: &ModelGraph,
        attention: Option<AttentionScope>,
        kernels: Kernels,
        device: &Device,
    ) -> Self {
        let grid_points = graph.num_grid_points();
        let mesh_nodes = graph.num_mesh_nodes();
        let mesh = graph.mesh_edges();
        let matrix = |values: &[f32], rows: usize, cols: usize| {
            Tensor::<2>::from_data(TensorData::new(values.to_vec(), [rows, cols]), device)
        };
        let attention_edges = match attention {
            Some(AttentionScope::Neighbours) => {
                let self_loops = 0..mesh_nodes as u32;
                let senders: Vec<u32> = mesh
                    .senders()
                    .iter()
                    .copied()
                    .chain(self_loops.clone())
                    .collect();
                let receivers: Vec<u32> =
                    mesh.receivers().iter().copied().chain(self_loops).collect();
                Some(EdgeIndex::new(
                    &senders, &receivers, mesh_nodes, mesh_nodes, device,
                ))
            }
            Some(AttentionScope::Global) | None => None,
        };
        let g2m = graph.grid2mesh();
        let m2g = graph.mesh2grid();
        Self {
            grid_node_features: matrix(graph.grid_node_features(), grid_points, NODE_FEATURES),
            mesh_node_features: matrix(graph.mesh_node_features(), mesh_nodes, NODE_FEATURES),
            grid2mesh: EdgeIndex::new(
                g2m.senders(),
                g2m.receivers(),
                grid_points,
                mesh_nodes,
                device,
            ),
            grid2mesh_edge_features: matrix(g2m.features(), g2m.num_edges(), EDGE_FEATURES),
            mesh: EdgeIndex::new(
                mesh.senders(),
                mesh.receivers(),
                mesh_nodes,
                mesh_nodes,
                device,
            ),
            mesh_edge_features: matrix(mesh.features(), mesh.num_edges(), EDGE_FEATURES),
            mesh2grid: EdgeIndex::new(
                m2g.senders(),
                m2g.receivers(),
                mesh_nodes,
                grid_points,
                device,
            ),
            mesh2grid_edge_features: matrix(m2g.features(), m2g.num_edges(), EDGE_FEATURES),
            attention_edges,
            kernels,
        }
    }

    pub fn mesh_context(&self) -> MeshContext<'_> {
        MeshContext {
            edges: &self.mesh,
            attention_edges: self.attention_edges.as_ref(),
            kernels: self.kernels,
        }
    }
}
