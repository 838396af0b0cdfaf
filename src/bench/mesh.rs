//! Time to build the multimesh and the grid <-> mesh graphs, stage by stage.

use std::time::Instant;

use serde::Serialize;
use weatherlens_models::graph::{
    GRID2MESH_RADIUS_FACTOR, MeshToGridInterpolation, ModelGraph, connectivity,
};
use weatherlens_models::grid::LatLonGrid;
use weatherlens_models::mesh::Multimesh;

use super::BenchError;

/// Wall-clock milliseconds of each stage and the sizes produced (`bench mesh --json`).
#[derive(Debug, Clone, Serialize)]
pub struct MeshBenchmark {
    pub mesh_level: u32,
    pub n_lat: usize,
    pub n_lon: usize,
    pub grid_points: usize,
    pub mesh_nodes: usize,
    pub mesh_edges: usize,
    pub grid2mesh_edges: usize,
    pub mesh2grid_edges: usize,
    pub mesh_nodes_without_grid_senders: usize,
    pub multimesh_ms: f64,
    pub grid2mesh_ms: f64,
    pub mesh2grid_ms: f64,
    /// The whole [`ModelGraph::build`] (the stages above plus the node and edge features).
    pub total_ms: f64,
}

/// Times the multimesh, the grid2mesh radius search and the mesh2grid triangle search on their own, then the
/// whole graph build.
pub fn graph_build(grid: &LatLonGrid, mesh_level: u32) -> Result<MeshBenchmark, BenchError> {
    let ms = |start: Instant| start.elapsed().as_secs_f64() * 1e3;
    let start = Instant::now();
    let multimesh = Multimesh::new(mesh_level)?;
    let multimesh_ms = ms(start);
    let start = Instant::now();
    connectivity::grid2mesh_edges(&multimesh, &grid.positions(), GRID2MESH_RADIUS_FACTOR)?;
    let grid2mesh_ms = ms(start);
    let start = Instant::now();
    MeshToGridInterpolation::new(multimesh.finest_mesh(), grid)?;
    let mesh2grid_ms = ms(start);
    let start = Instant::now();
    let graph = ModelGraph::build(grid, mesh_level)?;
    let total_ms = ms(start);
    Ok(MeshBenchmark {
        mesh_level,
        n_lat: grid.n_lat(),
        n_lon: grid.n_lon(),
        grid_points: graph.num_grid_points(),
        mesh_nodes: graph.num_mesh_nodes(),
        mesh_edges: graph.mesh_edges().num_edges(),
        grid2mesh_edges: graph.grid2mesh().num_edges(),
        mesh2grid_edges: graph.mesh2grid().num_edges(),
        mesh_nodes_without_grid_senders: graph.mesh_nodes_without_grid_senders(),
        multimesh_ms,
        grid2mesh_ms,
        mesh2grid_ms,
        total_ms,
    })
}
