//! The three graphs of a GraphCast-style model, built once from geometry: grid2mesh (encoder), the multimesh
//! (processor) and mesh2grid (decoder), with GraphCast's node and edge features.
//!
//! - [`connectivity`]: grid2mesh by GraphCast's radius rule.
//! - [`interpolation`]: mesh2grid, each grid point receiving from the 3 vertices of the finest-level
//!   triangle containing it, and the barycentric interpolation over those edges.
//! - [`features`]: node features [sin(lat), cos(lon), sin(lon)] and receiver-frame edge displacements.
//!
//! Every edge list is sorted by receiver, then sender, so segment sums over receivers are deterministic.

pub mod connectivity;
pub mod features;
pub mod interpolation;

use thiserror::Error;

pub use connectivity::GRID2MESH_RADIUS_FACTOR;
pub use features::{EDGE_FEATURES, EdgeSet, NODE_FEATURES};
pub use interpolation::MeshToGridInterpolation;

use crate::grid::LatLonGrid;
use crate::mesh::{MeshError, Multimesh};
use crate::sphere::{Mat3, rotation_to_reference};

/// Failures a caller can cause when building graphs or applying the interpolation operator.
#[derive(Debug, Error)]
pub enum GraphError {
    #[error(transparent)]
    Mesh(#[from] MeshError),
    #[error("mesh field has {len} values; expected {mesh_nodes} mesh nodes x {channels} channels")]
    FieldShape {
        len: usize,
        mesh_nodes: usize,
        channels: usize,
    },
    #[error("building the k-d tree over {points} points failed: {message}")]
    KdTree { points: usize, message: String },
}

/// Everything geometric a GraphCast-style model needs: the grid, the multimesh, the three edge sets
/// with features, node features, and the mesh-to-grid interpolation operator. Node sets: grid points
/// in the grid's flat order, mesh nodes in the multimesh's order.
#[derive(Debug, Clone)]
pub struct ModelGraph {
    grid: LatLonGrid,
    multimesh: Multimesh,
    grid_node_features: Vec<f32>,
    mesh_node_features: Vec<f32>,
    mesh_edges: EdgeSet,
    grid2mesh: EdgeSet,
    mesh2grid: EdgeSet,
    interpolation: MeshToGridInterpolation,
}

impl ModelGraph {
    /// Builds the multimesh of `mesh_level` and the graphs linking it to `grid`.
    pub fn build(grid: &LatLonGrid, mesh_level: u32) -> Result<Self, GraphError> {
        let multimesh = Multimesh::new(mesh_level)?;
        let grid_positions = grid.positions();
        let (g2m_senders, g2m_receivers) =
            connectivity::grid2mesh_edges(&multimesh, &grid_positions)?;
        let interpolation = MeshToGridInterpolation::new(multimesh.finest_mesh(), grid)?;
        let m2g_senders = interpolation.mesh_nodes().to_vec();
        let m2g_receivers = (0..grid.num_points() as u32)
            .flat_map(|point| [point; 3])
            .collect();
        let mesh_lat_lon = || {
            multimesh
                .node_lat()
                .iter()
                .copied()
                .zip(multimesh.node_lon().iter().copied())
        };
        let grid_lat_lon = || (0..grid.num_points()).map(|k| grid.lat_lon(k));
        let mesh_rotations: Vec<Mat3> = mesh_lat_lon()
            .map(|(lat, lon)| rotation_to_reference(lat, lon))
            .collect();
        let grid_rotations: Vec<Mat3> = grid_lat_lon()
            .map(|(lat, lon)| rotation_to_reference(lat, lon))
            .collect();
        let mesh_positions = multimesh.positions();
        let mesh_edges = EdgeSet::new(
            multimesh.senders().to_vec(),
            multimesh.receivers().to_vec(),
            mesh_positions,
            mesh_positions,
            &mesh_rotations,
        );
        let grid2mesh = EdgeSet::new(
            g2m_senders,
            g2m_receivers,
            &grid_positions,
            mesh_positions,
            &mesh_rotations,
        );
        let mesh2grid = EdgeSet::new(
            m2g_senders,
            m2g_receivers,
            mesh_positions,
            &grid_positions,
            &grid_rotations,
        );
        Ok(Self {
            grid_node_features: features::node_features(grid_lat_lon()),
            mesh_node_features: features::node_features(mesh_lat_lon()),
            grid: grid.clone(),
            multimesh,
            mesh_edges,
            grid2mesh,
            mesh2grid,
            interpolation,
        })
    }

    pub fn grid(&self) -> &LatLonGrid {
        &self.grid
    }

    pub fn multimesh(&self) -> &Multimesh {
        &self.multimesh
    }

    pub fn mesh_level(&self) -> u32 {
        self.multimesh.level()
    }

    pub fn num_grid_points(&self) -> usize {
        self.grid.num_points()
    }

    pub fn num_mesh_nodes(&self) -> usize {
        self.multimesh.num_nodes()
    }

    /// [grid_points, 3] row-major: [sin(lat), cos(lon), sin(lon)].
    pub fn grid_node_features(&self) -> &[f32] {
        &self.grid_node_features
    }

    /// [mesh_nodes, 3] row-major: [sin(lat), cos(lon), sin(lon)].
    pub fn mesh_node_features(&self) -> &[f32] {
        &self.mesh_node_features
    }

    /// Multimesh edges, mesh node -> mesh node; features [mesh_edges, 4].
    pub fn mesh_edges(&self) -> &EdgeSet {
        &self.mesh_edges
    }

    /// Encoder edges, grid point -> mesh node; features [grid2mesh_edges, 4].
    pub fn grid2mesh(&self) -> &EdgeSet {
        &self.grid2mesh
    }

    /// Decoder edges, mesh node -> grid point, 3 per grid point (edges 3k..3k+3 go into point k, in
    /// the order of [`MeshToGridInterpolation::mesh_nodes`]); features [mesh2grid_edges, 4].
    pub fn mesh2grid(&self) -> &EdgeSet {
        &self.mesh2grid
    }

    /// Barycentric mesh -> grid interpolation over the mesh2grid edges.
    pub fn interpolation(&self) -> &MeshToGridInterpolation {
        &self.interpolation
    }

    /// Mesh nodes no grid point sends to: non-zero when the grid is too coarse for the mesh level
    /// (the radius 0.6 × longest edge must exceed about half a grid cell's diagonal). Such nodes still
    /// get information through the multimesh.
    pub fn mesh_nodes_without_grid_senders(&self) -> usize {
        let mut has_sender = vec![false; self.num_mesh_nodes()];
        for &r in self.grid2mesh.receivers() {
            has_sender[r as usize] = true;
        }
        has_sender.iter().filter(|&&x| !x).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::{LatitudeOrder, PoleRows};

    fn grid_5625() -> LatLonGrid {
        LatLonGrid::equiangular(32, 64, PoleRows::Excluded, LatitudeOrder::Ascending).unwrap()
    }

    fn grid_1deg() -> LatLonGrid {
        LatLonGrid::equiangular(181, 360, PoleRows::Included, LatitudeOrder::Descending).unwrap()
    }

    #[test]
    fn every_mesh_node_receives_from_the_5625_grid_up_to_level_3() {
        // Coverage needs 0.6 × longest edge ≥ the largest node-to-nearest-grid-point distance,
        // about half a cell diagonal (3.98° at the equator for 5.625°): level 3 edges are ~8°,
        // level 4 edges ~4° give a radius of ~2.6°, so level 4 leaves nodes uncovered.
        let grid = grid_5625();
        for level in 0..=3 {
            let graph = ModelGraph::build(&grid, level).unwrap();
            assert_eq!(graph.mesh_nodes_without_grid_senders(), 0, "level {level}");
        }
        let graph = ModelGraph::build(&grid, 4).unwrap();
        assert!(graph.mesh_nodes_without_grid_senders() > 0);
    }

    #[test]
    fn every_mesh_node_receives_from_the_1deg_grid_at_level_5() {
        let graph = ModelGraph::build(&grid_1deg(), 5).unwrap();
        assert_eq!(graph.mesh_nodes_without_grid_senders(), 0);
        assert_eq!(graph.num_mesh_nodes(), 10242);
        assert_eq!(graph.mesh_edges().num_edges(), 81900);
        assert_eq!(graph.mesh2grid().num_edges(), 3 * 65160);
    }

    #[test]
    fn model_graph_sizes_and_sorting() {
        let grid = grid_5625();
        let graph = ModelGraph::build(&grid, 3).unwrap();
        assert_eq!(graph.num_grid_points(), 2048);
        assert_eq!(graph.num_mesh_nodes(), 642);
        assert_eq!(graph.mesh_edges().num_edges(), 60 * (4usize.pow(4) - 1) / 3);
        assert_eq!(graph.mesh2grid().num_edges(), 3 * 2048);
        assert_eq!(graph.grid_node_features().len(), 2048 * NODE_FEATURES);
        assert_eq!(graph.mesh_node_features().len(), 642 * NODE_FEATURES);
        for edges in [graph.mesh_edges(), graph.grid2mesh(), graph.mesh2grid()] {
            assert_eq!(edges.features().len(), edges.num_edges() * EDGE_FEATURES);
            assert_eq!(edges.senders().len(), edges.receivers().len());
            let pairs: Vec<(u32, u32)> = edges
                .receivers()
                .iter()
                .copied()
                .zip(edges.senders().iter().copied())
                .collect();
            assert!(pairs.windows(2).all(|w| w[0] < w[1]));
        }
        assert!(
            graph
                .grid2mesh()
                .senders()
                .iter()
                .all(|&s| (s as usize) < 2048)
        );
        assert!(
            graph
                .grid2mesh()
                .receivers()
                .iter()
                .all(|&r| (r as usize) < 642)
        );
    }

    #[test]
    fn mesh_level_above_maximum_is_an_error() {
        assert!(matches!(
            ModelGraph::build(&grid_5625(), 99),
            Err(GraphError::Mesh(MeshError::LevelTooHigh { level: 99, .. }))
        ));
    }
}
