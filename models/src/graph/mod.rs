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
pub mod graphcast;
pub mod interpolation;

use thiserror::Error;

pub use connectivity::GRID2MESH_RADIUS_FACTOR;
pub use features::{EDGE_FEATURES, EdgeSet, NODE_FEATURES};
pub use interpolation::MeshToGridInterpolation;

use crate::config::{GraphRules, ModelConfig};
use crate::grid::LatLonGrid;
use crate::mesh::{MeshError, Multimesh};
use crate::sphere::{Mat3, Vec3, rotation_to_reference};

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

/// The positions and (lat, lon) that node and edge features are computed from, and the node features
/// themselves (GraphCast computes them from f32 coordinates, WeatherLens's rules in f64).
pub(crate) struct FeatureGeometry {
    mesh_positions: Vec<Vec3>,
    mesh_lat_lon: Vec<(f64, f64)>,
    mesh_node_features: Vec<f32>,
    grid_positions: Vec<Vec3>,
    grid_lat_lon: Vec<(f64, f64)>,
    grid_node_features: Vec<f32>,
}

impl FeatureGeometry {
    /// From (position, (lat, lon), node features) of every mesh node and every grid point.
    pub(crate) fn from_points(
        mesh: impl Iterator<Item = (Vec3, (f64, f64), [f32; NODE_FEATURES])>,
        grid: impl Iterator<Item = (Vec3, (f64, f64), [f32; NODE_FEATURES])>,
    ) -> Self {
        let split = |points: Vec<(Vec3, (f64, f64), [f32; NODE_FEATURES])>| {
            let positions = points.iter().map(|p| p.0).collect();
            let lat_lon = points.iter().map(|p| p.1).collect();
            let features = points.iter().flat_map(|p| p.2).collect();
            (positions, lat_lon, features)
        };
        let (mesh_positions, mesh_lat_lon, mesh_node_features) = split(mesh.collect());
        let (grid_positions, grid_lat_lon, grid_node_features) = split(grid.collect());
        Self {
            mesh_positions,
            mesh_lat_lon,
            mesh_node_features,
            grid_positions,
            grid_lat_lon,
            grid_node_features,
        }
    }
}

impl ModelGraph {
    /// Builds the multimesh of `mesh_level` and the graphs linking it to `grid` by WeatherLens's rules (f64
    /// geometry, GraphCast's radius fraction 0.6, mesh2grid by the containing triangle).
    pub fn build(grid: &LatLonGrid, mesh_level: u32) -> Result<Self, GraphError> {
        Self::weatherlens(grid, mesh_level, GRID2MESH_RADIUS_FACTOR, None)
    }

    /// The graphs of a model configured by `config`: its mesh level, radius fraction, mesh2grid
    /// normalisation and graph rules.
    pub fn for_model(grid: &LatLonGrid, config: &ModelConfig) -> Result<Self, GraphError> {
        let (level, fraction, normalisation) = (
            config.mesh_level,
            config.grid2mesh_radius_fraction,
            config.mesh2grid_edge_normalisation,
        );
        match config.graph {
            GraphRules::Weatherlens => Self::weatherlens(grid, level, fraction, normalisation),
            GraphRules::Graphcast => graphcast::build(grid, level, fraction, normalisation),
        }
    }

    fn weatherlens(
        grid: &LatLonGrid,
        mesh_level: u32,
        fraction: f64,
        mesh2grid_normalisation: Option<f64>,
    ) -> Result<Self, GraphError> {
        let multimesh = Multimesh::new(mesh_level)?;
        let grid_positions = grid.positions();
        let grid2mesh = connectivity::grid2mesh_edges(&multimesh, &grid_positions, fraction)?;
        let interpolation = MeshToGridInterpolation::new(multimesh.finest_mesh(), grid)?;
        let mesh2grid_senders = interpolation.mesh_nodes().to_vec();
        let point = |position: Vec3, (lat, lon): (f64, f64)| {
            let (sin_lon, cos_lon) = lon.to_radians().sin_cos();
            let features = [lat.to_radians().sin(), cos_lon, sin_lon].map(|x| x as f32);
            (position, (lat, lon), features)
        };
        let geometry = FeatureGeometry::from_points(
            multimesh
                .positions()
                .iter()
                .zip(multimesh.node_lat().iter().zip(multimesh.node_lon()))
                .map(|(&p, (&lat, &lon))| point(p, (lat, lon))),
            (0..grid.num_points()).map(|k| point(grid_positions[k], grid.lat_lon(k))),
        );
        Ok(Self::assemble(
            grid,
            multimesh,
            &geometry,
            grid2mesh,
            mesh2grid_senders,
            mesh2grid_normalisation,
            interpolation,
        ))
    }

    /// The graph from its connectivity: grid2mesh (senders = grid points, receivers = mesh nodes) and the 3
    /// mesh2grid senders of every grid point in order; features from `geometry`; `interpolation` is the
    /// barycentric mesh -> grid operator analyses use (the containing triangle's, whatever the rules).
    pub(crate) fn assemble(
        grid: &LatLonGrid,
        multimesh: Multimesh,
        geometry: &FeatureGeometry,
        (grid2mesh_senders, grid2mesh_receivers): (Vec<u32>, Vec<u32>),
        mesh2grid_senders: Vec<u32>,
        mesh2grid_normalisation: Option<f64>,
        interpolation: MeshToGridInterpolation,
    ) -> Self {
        let rotations = |lat_lon: &[(f64, f64)]| -> Vec<Mat3> {
            lat_lon
                .iter()
                .map(|&(lat, lon)| rotation_to_reference(lat, lon))
                .collect()
        };
        let (mesh_rotations, grid_rotations) = (
            rotations(&geometry.mesh_lat_lon),
            rotations(&geometry.grid_lat_lon),
        );
        let (mesh, points) = (&geometry.mesh_positions, &geometry.grid_positions);
        let mesh_edges = EdgeSet::new(
            multimesh.senders().to_vec(),
            multimesh.receivers().to_vec(),
            mesh,
            mesh,
            &mesh_rotations,
            None,
        );
        let grid2mesh = EdgeSet::new(
            grid2mesh_senders,
            grid2mesh_receivers,
            points,
            mesh,
            &mesh_rotations,
            None,
        );
        let mesh2grid_receivers = (0..grid.num_points() as u32)
            .flat_map(|point| [point; 3])
            .collect();
        let mesh2grid = EdgeSet::new(
            mesh2grid_senders,
            mesh2grid_receivers,
            mesh,
            points,
            &grid_rotations,
            mesh2grid_normalisation,
        );
        Self {
            grid_node_features: geometry.grid_node_features.clone(),
            mesh_node_features: geometry.mesh_node_features.clone(),
            grid: grid.clone(),
            multimesh,
            mesh_edges,
            grid2mesh,
            mesh2grid,
            interpolation,
        }
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
