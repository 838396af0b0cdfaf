//! The three graphs of a GraphCast-style model, built once from geometry: grid2mesh (encoder),
//! the multimesh (processor) and mesh2grid (decoder), with GraphCast's node and edge features.
//!
//! Rules (GraphCast, Lam et al. 2023, section 3.1 and `graphcast.py`):
//! - grid2mesh: a grid point sends to every mesh node within chord distance
//!   [`GRID2MESH_RADIUS_FACTOR`] × the longest edge of the finest mesh level.
//! - mesh2grid: a grid point receives from the 3 vertices of the finest-level triangle containing it.
//! - node features: [sin(lat), cos(lon), sin(lon)].
//! - edge features: [|d|, d_x, d_y, d_z] with d = R_receiver (x_sender − x_receiver), R_receiver the
//!   rotation carrying the receiver to (lat 0, lon 0) ([`rotation_to_reference`]), all four divided by
//!   the longest |d| of that graph.
//!
//! Every edge list is sorted by receiver, then sender, so segment sums over receivers are
//! deterministic.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use kiddo::{ImmutableKdTree, SquaredEuclidean};
use rayon::prelude::*;
use thiserror::Error;

use crate::grid::LatLonGrid;
use crate::mesh::{MeshError, Multimesh, TriangularMesh};
use crate::sphere::{
    Mat3, Vec3, add, chord_distance, dot, mat_vec, norm, normalize, rotation_to_reference, sub,
    triple_product,
};

/// grid2mesh radius as a fraction of the finest mesh's longest edge (GraphCast, `graphcast.py`:
/// `radius_query_fraction_edge_length = 0.6`).
pub const GRID2MESH_RADIUS_FACTOR: f64 = 0.6;

/// Features per node: [sin(lat), cos(lon), sin(lon)].
pub const NODE_FEATURES: usize = 3;

/// Features per edge: [length, d_x, d_y, d_z].
pub const EDGE_FEATURES: usize = 4;

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

/// Directed edges from one node set to another, with GraphCast edge features.
#[derive(Debug, Clone)]
pub struct EdgeSet {
    senders: Vec<u32>,
    receivers: Vec<u32>,
    features: Vec<f32>,
    max_edge_length: f64,
}

impl EdgeSet {
    /// Computes the features of edges `senders[k] -> receivers[k]`.
    ///
    /// sender_positions: [senders, 3]; receiver_positions, receiver_rotations: [receivers] (rotation
    /// of each receiver node to the reference point).
    fn new(
        senders: Vec<u32>,
        receivers: Vec<u32>,
        sender_positions: &[Vec3],
        receiver_positions: &[Vec3],
        receiver_rotations: &[Mat3],
    ) -> Self {
        let displacements: Vec<Vec3> = senders
            .par_iter()
            .zip(receivers.par_iter())
            .map(|(&s, &r)| {
                let d = sub(sender_positions[s as usize], receiver_positions[r as usize]);
                mat_vec(&receiver_rotations[r as usize], d)
            })
            .collect();
        let max_edge_length = displacements.iter().map(|&d| norm(d)).fold(0.0, f64::max);
        // A graph whose edges all have zero length (a grid point on a mesh node, alone) keeps raw
        // features rather than dividing by zero.
        let scale = if max_edge_length > 0.0 {
            1.0 / max_edge_length
        } else {
            1.0
        };
        let features = displacements
            .iter()
            .flat_map(|&d| [norm(d), d[0], d[1], d[2]].map(|x| (x * scale) as f32))
            .collect();
        Self {
            senders,
            receivers,
            features,
            max_edge_length,
        }
    }

    pub fn num_edges(&self) -> usize {
        self.senders.len()
    }

    /// [edges] sender node of each edge (index into the sender node set).
    pub fn senders(&self) -> &[u32] {
        &self.senders
    }

    /// [edges] receiver node of each edge (index into the receiver node set), non-decreasing.
    pub fn receivers(&self) -> &[u32] {
        &self.receivers
    }

    /// [edges, 4] row-major: [length, d_x, d_y, d_z] / max length; d_x is the radial (up) component
    /// at the receiver, d_y the eastward and d_z the northward one.
    pub fn features(&self) -> &[f32] {
        &self.features
    }

    /// The longest edge (chord on the unit sphere) that the features were divided by.
    pub fn max_edge_length(&self) -> f64 {
        self.max_edge_length
    }
}

/// Linear interpolation from mesh nodes to grid points: each grid point takes a weighted sum of the 3
/// vertices of the mesh triangle containing it.
///
/// Barycentric definition: the grid point's direction p is projected along the ray from the centre
/// onto the plane of the flat triangle (a, b, c), q = t·p; the weights are q's planar barycentric
/// coordinates, computed as w_a ∝ det[p, b, c], w_b ∝ det[a, p, c], w_c ∝ det[a, b, p] normalised to
/// sum 1 (Cramer's rule for p = λ_a a + λ_b b + λ_c c, scaled by 1/t). The weights are ≥ 0 exactly
/// when p lies in the spherical triangle, and they reproduce any linear function of position at q.
#[derive(Debug, Clone)]
pub struct MeshToGridInterpolation {
    num_mesh_nodes: usize,
    mesh_nodes: Vec<u32>,
    weights: Vec<f64>,
}

impl MeshToGridInterpolation {
    /// Finds each grid point's containing triangle of `mesh` and its weights.
    ///
    /// Candidate triangles come from a k-d tree of triangle centres queried within the largest
    /// centre-to-vertex chord: a spherical triangle lies inside the cap around its centre through its
    /// farthest vertex, so the containing triangle is always a candidate. A point on an edge or vertex
    /// shared by several triangles is contained by each of them (some weight is 0, up to rounding);
    /// the candidate with the largest smallest weight is taken, ties going to the lower face index,
    /// and rounding-level negative weights are clipped to 0 before renormalising. Interpolation is
    /// the same whichever of the sharing triangles is used, since it depends only on the shared
    /// vertices there.
    pub fn new(mesh: &TriangularMesh, grid: &LatLonGrid) -> Result<Self, GraphError> {
        let vertex = |i: u32| mesh.vertices[i as usize];
        let centres: Vec<Vec3> = mesh
            .faces
            .iter()
            .map(|&[a, b, c]| normalize(add(add(vertex(a), vertex(b)), vertex(c))))
            .collect();
        let cap_radius = mesh
            .faces
            .iter()
            .zip(&centres)
            .flat_map(|(face, &centre)| face.map(|v| chord_distance(centre, vertex(v))))
            .fold(0.0, f64::max);
        // Slack well above rounding so a point exactly on the cap's rim is still found.
        let search_radius = cap_radius * (1.0 + 1e-9);
        let tree = build_kd_tree(&centres)?;
        let per_point: Vec<([u32; 3], [f64; 3])> = grid
            .positions()
            .par_iter()
            .map(|&p| {
                let candidates = tree
                    .query(&p)
                    .within::<SquaredEuclidean<f64>>(search_radius * search_radius)
                    .unsorted()
                    .execute();
                let best = best_face(mesh, p, candidates.iter().map(|found| found.item as usize))
                    .filter(|&(_, weights)| min3(weights) > -1e-9)
                    // Unreachable in exact arithmetic; an exhaustive search keeps a miss from
                    // silently producing a wrong operator.
                    .or_else(|| best_face(mesh, p, 0..mesh.faces.len()));
                // `best` is None only if no face faces p, impossible on a closed mesh.
                best.map(|(face, weights)| sorted_by_node(mesh.faces[face], clip(weights)))
                    .unwrap_or(([0; 3], [1.0, 0.0, 0.0]))
            })
            .collect();
        Ok(Self {
            num_mesh_nodes: mesh.vertices.len(),
            mesh_nodes: per_point.iter().flat_map(|(nodes, _)| *nodes).collect(),
            weights: per_point.iter().flat_map(|(_, weights)| *weights).collect(),
        })
    }

    pub fn num_grid_points(&self) -> usize {
        self.mesh_nodes.len() / 3
    }

    pub fn num_mesh_nodes(&self) -> usize {
        self.num_mesh_nodes
    }

    /// [grid_points, 3] the containing triangle's vertices for each grid point, ascending.
    pub fn mesh_nodes(&self) -> &[u32] {
        &self.mesh_nodes
    }

    /// [grid_points, 3] barycentric weights aligned with [`Self::mesh_nodes`]; each ≥ 0, rows sum to 1.
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    /// mesh_field: [mesh_nodes, channels] row-major -> [grid_points, channels].
    pub fn interpolate<T: Copy + Into<f64>>(
        &self,
        mesh_field: &[T],
        channels: usize,
    ) -> Result<Vec<f64>, GraphError> {
        if mesh_field.len() != self.num_mesh_nodes * channels {
            return Err(GraphError::FieldShape {
                len: mesh_field.len(),
                mesh_nodes: self.num_mesh_nodes,
                channels,
            });
        }
        let mut out = vec![0.0; self.num_grid_points() * channels];
        for (point, row) in out.chunks_exact_mut(channels.max(1)).enumerate() {
            for k in 3 * point..3 * point + 3 {
                let node = self.mesh_nodes[k] as usize;
                let weight = self.weights[k];
                let values = &mesh_field[node * channels..(node + 1) * channels];
                for (o, &v) in row.iter_mut().zip(values) {
                    *o += weight * v.into();
                }
            }
        }
        Ok(out)
    }
}

/// Normalised barycentric weights of direction `p` in face `face` of `mesh` (see
/// [`MeshToGridInterpolation`]); negative outside the spherical triangle.
fn barycentric_weights(mesh: &TriangularMesh, face: usize, p: Vec3) -> [f64; 3] {
    let [a, b, c] = mesh.faces[face].map(|i| mesh.vertices[i as usize]);
    let lambda = [
        triple_product(p, b, c),
        triple_product(a, p, c),
        triple_product(a, b, p),
    ];
    let total = lambda[0] + lambda[1] + lambda[2];
    lambda.map(|l| l / total)
}

/// The candidate face whose smallest weight for `p` is largest (ties: lowest face index).
fn best_face(
    mesh: &TriangularMesh,
    p: Vec3,
    candidates: impl Iterator<Item = usize>,
) -> Option<(usize, [f64; 3])> {
    candidates
        .filter(|&face| {
            // Faces on the far side of the sphere cannot contain p (and make the weights' total 0).
            let [a, b, c] = mesh.faces[face].map(|i| mesh.vertices[i as usize]);
            dot(add(add(a, b), c), p) > 0.0
        })
        .map(|face| (face, barycentric_weights(mesh, face, p)))
        .max_by(|(face_x, x), (face_y, y)| {
            min3(*x)
                .total_cmp(&min3(*y))
                .then_with(|| face_y.cmp(face_x))
        })
}

fn min3(x: [f64; 3]) -> f64 {
    x[0].min(x[1]).min(x[2])
}

/// Clips rounding-level negative weights to 0 and renormalises to sum 1.
fn clip(weights: [f64; 3]) -> [f64; 3] {
    let clipped = weights.map(|w| w.max(0.0));
    let total = clipped[0] + clipped[1] + clipped[2];
    clipped.map(|w| w / total)
}

/// Orders a triangle's nodes ascending, carrying the weights along.
fn sorted_by_node(nodes: [u32; 3], weights: [f64; 3]) -> ([u32; 3], [f64; 3]) {
    let mut order = [0, 1, 2];
    order.sort_by_key(|&k| nodes[k]);
    (order.map(|k| nodes[k]), order.map(|k| weights[k]))
}

fn build_kd_tree(points: &[Vec3]) -> Result<ImmutableKdTree<f64, 3>, GraphError> {
    ImmutableKdTree::new_from_slice(points).map_err(|e| GraphError::KdTree {
        points: points.len(),
        message: format!("{e:?}"),
    })
}

/// grid2mesh edges (sender grid point, receiver mesh node) by GraphCast's radius rule, sorted by
/// receiver then sender.
fn radius_edges(
    multimesh: &Multimesh,
    grid_positions: &[Vec3],
) -> Result<(Vec<u32>, Vec<u32>), GraphError> {
    let radius = GRID2MESH_RADIUS_FACTOR * multimesh.finest_max_edge_length();
    let tree = build_kd_tree(multimesh.positions())?;
    let mut keys: Vec<u64> = grid_positions
        .par_iter()
        .enumerate()
        .flat_map_iter(|(grid_point, p)| {
            tree.query(p)
                .within::<SquaredEuclidean<f64>>(radius * radius)
                .unsorted()
                .execute()
                .into_iter()
                .map(move |found| (u64::from(found.item) << 32) | grid_point as u64)
        })
        .collect();
    keys.par_sort_unstable();
    Ok((
        keys.iter().map(|&k| k as u32).collect(),
        keys.iter().map(|&k| (k >> 32) as u32).collect(),
    ))
}

/// [nodes, 3] row-major: [sin(lat), cos(lon), sin(lon)] from degrees.
fn node_features(lat_lon: impl Iterator<Item = (f64, f64)>) -> Vec<f32> {
    lat_lon
        .flat_map(|(lat, lon)| {
            let (sin_lon, cos_lon) = lon.to_radians().sin_cos();
            [lat.to_radians().sin(), cos_lon, sin_lon].map(|x| x as f32)
        })
        .collect()
}

/// Wall-clock time of each stage of [`ModelGraph::build`], and the sizes it produced.
#[derive(Debug, Clone)]
pub struct GraphBuildReport {
    pub multimesh: Duration,
    pub grid2mesh: Duration,
    pub mesh2grid: Duration,
    pub features: Duration,
    pub total: Duration,
    pub mesh_level: u32,
    pub grid_points: usize,
    pub mesh_nodes: usize,
    pub mesh_edges: usize,
    pub grid2mesh_edges: usize,
    pub mesh2grid_edges: usize,
    pub mesh_nodes_without_grid_senders: usize,
}

/// Builds the graphs for `grid` at `mesh_level` and reports how long each stage took (for the CLI's
/// `bench`); the graph itself is dropped.
pub fn bench_build(grid: &LatLonGrid, mesh_level: u32) -> Result<GraphBuildReport, GraphError> {
    ModelGraph::build_timed(grid, mesh_level).map(|(_, report)| report)
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
        Self::build_timed(grid, mesh_level).map(|(graph, _)| graph)
    }

    fn build_timed(
        grid: &LatLonGrid,
        mesh_level: u32,
    ) -> Result<(Self, GraphBuildReport), GraphError> {
        let start = Instant::now();
        let multimesh = Multimesh::new(mesh_level)?;
        let multimesh_time = start.elapsed();

        let stage = Instant::now();
        let grid_positions = grid.positions();
        let (g2m_senders, g2m_receivers) = radius_edges(&multimesh, &grid_positions)?;
        let grid2mesh_time = stage.elapsed();

        let stage = Instant::now();
        let interpolation = MeshToGridInterpolation::new(multimesh.finest_mesh(), grid)?;
        let m2g_senders = interpolation.mesh_nodes().to_vec();
        let m2g_receivers = (0..grid.num_points() as u32)
            .flat_map(|point| [point; 3])
            .collect();
        let mesh2grid_time = stage.elapsed();

        let stage = Instant::now();
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
        let graph = Self {
            grid_node_features: node_features(grid_lat_lon()),
            mesh_node_features: node_features(mesh_lat_lon()),
            grid: grid.clone(),
            multimesh,
            mesh_edges,
            grid2mesh,
            mesh2grid,
            interpolation,
        };
        let features_time = stage.elapsed();

        let report = GraphBuildReport {
            multimesh: multimesh_time,
            grid2mesh: grid2mesh_time,
            mesh2grid: mesh2grid_time,
            features: features_time,
            total: start.elapsed(),
            mesh_level,
            grid_points: graph.num_grid_points(),
            mesh_nodes: graph.num_mesh_nodes(),
            mesh_edges: graph.mesh_edges.num_edges(),
            grid2mesh_edges: graph.grid2mesh.num_edges(),
            mesh2grid_edges: graph.mesh2grid.num_edges(),
            mesh_nodes_without_grid_senders: graph.mesh_nodes_without_grid_senders(),
        };
        Ok((graph, report))
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

/// Identity of a graph: the grid's coordinates bit for bit, and the mesh level.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct GraphKey {
    lat_bits: Vec<u64>,
    lon_bits: Vec<u64>,
    mesh_level: u32,
}

/// Graphs built so far, one per (grid, mesh level); pass one cache to everything that needs graphs
/// so each is built once. Concurrent requests for the same key wait for a single build; different
/// keys build in parallel.
#[derive(Debug, Default)]
pub struct GraphCache {
    graphs: Mutex<HashMap<GraphKey, GraphSlot>>,
}

/// One key's graph, or `None` until its first build succeeds; the slot's own lock makes concurrent
/// requests for the key wait for that build instead of repeating it.
type GraphSlot = Arc<Mutex<Option<Arc<ModelGraph>>>>;

impl GraphCache {
    pub fn new() -> Self {
        Self::default()
    }

    /// The graph for (`grid`, `mesh_level`), built on first request.
    pub fn get_or_build(
        &self,
        grid: &LatLonGrid,
        mesh_level: u32,
    ) -> Result<Arc<ModelGraph>, GraphError> {
        let key = GraphKey {
            lat_bits: grid.lat().iter().map(|x| x.to_bits()).collect(),
            lon_bits: grid.lon().iter().map(|x| x.to_bits()).collect(),
            mesh_level,
        };
        let slot = {
            let mut graphs = self.graphs.lock().unwrap_or_else(PoisonError::into_inner);
            Arc::clone(graphs.entry(key).or_default())
        };
        let mut slot = slot.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(graph) = slot.as_ref() {
            return Ok(Arc::clone(graph));
        }
        let graph = Arc::new(ModelGraph::build(grid, mesh_level)?);
        *slot = Some(Arc::clone(&graph));
        Ok(graph)
    }

    /// Number of graphs built and kept.
    pub fn len(&self) -> usize {
        let graphs = self.graphs.lock().unwrap_or_else(PoisonError::into_inner);
        graphs
            .values()
            .filter(|slot| {
                slot.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .is_some()
            })
            .count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::grid::{LatitudeOrder, PoleRows};
    use crate::sphere::{cross, lat_lon_to_unit, scale};

    fn grid_5625() -> LatLonGrid {
        LatLonGrid::equiangular(32, 64, PoleRows::Excluded, LatitudeOrder::Ascending).unwrap()
    }

    fn grid_1deg() -> LatLonGrid {
        LatLonGrid::equiangular(181, 360, PoleRows::Included, LatitudeOrder::Descending).unwrap()
    }

    /// The point where the ray through `p` meets the plane of triangle (a, b, c), computed directly.
    fn ray_plane_point(p: Vec3, [a, b, c]: [Vec3; 3]) -> Vec3 {
        let normal = cross(sub(b, a), sub(c, a));
        scale(p, dot(normal, a) / dot(normal, p))
    }

    #[test]
    fn grid2mesh_matches_all_pairs_radius_search() {
        let grid = grid_5625();
        let mm = Multimesh::new(2).unwrap();
        let positions = grid.positions();
        let (senders, receivers) = radius_edges(&mm, &positions).unwrap();
        let radius = 0.6 * mm.finest_max_edge_length();
        let mut expected = Vec::new();
        for (node, &m) in mm.positions().iter().enumerate() {
            for (point, &g) in positions.iter().enumerate() {
                if chord_distance(m, g) <= radius {
                    expected.push((node as u32, point as u32));
                }
            }
        }
        let found: Vec<(u32, u32)> = receivers.into_iter().zip(senders).collect();
        assert_eq!(found, expected);
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

    /// Sign-test containment counts by brute force over all faces: every point lies in exactly one
    /// triangle's interior, or on a shared edge/vertex (weight ~0) of 2..=6 triangles. Checks the
    /// operator chose the interior triangle, or one of the touching ones, and returns how many
    /// points were on an edge or vertex.
    fn check_containment_brute_force(mesh: &TriangularMesh, grid: &LatLonGrid) -> usize {
        const TOL: f64 = 1e-12;
        let interp = MeshToGridInterpolation::new(mesh, grid).unwrap();
        let mut on_boundary = 0;
        for point in 0..grid.num_points() {
            let p = grid.position(point);
            let weights: Vec<(usize, [f64; 3])> = (0..mesh.faces.len())
                .filter(|&f| {
                    let [a, b, c] = mesh.faces[f].map(|i| mesh.vertices[i as usize]);
                    dot(add(add(a, b), c), p) > 0.0
                })
                .map(|f| (f, barycentric_weights(mesh, f, p)))
                .collect();
            let strict: Vec<usize> = weights
                .iter()
                .filter(|(_, w)| min3(*w) > TOL)
                .map(|(f, _)| *f)
                .collect();
            let touching: Vec<(usize, [f64; 3])> = weights
                .iter()
                .filter(|(_, w)| min3(*w) >= -TOL)
                .copied()
                .collect();
            assert!(strict.len() <= 1, "point {point} inside {strict:?}");
            if strict.is_empty() {
                on_boundary += 1;
                assert!(
                    (2..=6).contains(&touching.len()),
                    "point {point}: {touching:?}"
                );
                assert!(touching.iter().all(|(_, w)| min3(*w).abs() <= TOL));
            } else {
                assert_eq!(touching.len(), 1, "point {point}");
            }
            let mut chosen_nodes = [0, 1, 2].map(|k| interp.mesh_nodes()[3 * point + k]);
            chosen_nodes.sort_unstable();
            let chosen_is_touching = touching.iter().any(|(f, _)| {
                let mut nodes = mesh.faces[*f];
                nodes.sort_unstable();
                nodes == chosen_nodes
            });
            assert!(chosen_is_touching, "point {point}: chose {chosen_nodes:?}");
            let chosen = &interp.weights()[3 * point..3 * point + 3];
            assert!(chosen.iter().all(|&w| w >= 0.0));
            assert!((chosen.iter().sum::<f64>() - 1.0).abs() < 1e-14);
        }
        on_boundary
    }

    #[test]
    fn every_grid_point_lies_in_one_triangle() {
        // GraphCast's icosahedron (a face centred on each pole) has mirror planes through the poles
        // at meridians 0°, 60°, ..., 300° that contain mesh edges, so grid points on those meridians
        // lie on shared edges: the boundary branch is exercised by real grids, not only by the
        // constructed points of the next test.
        let meshes = TriangularMesh::hierarchy(4);
        for mesh in &meshes {
            assert!(check_containment_brute_force(mesh, &grid_5625()) > 0);
        }
        // Pole rows and 1° spacing; level 2 keeps the brute force small.
        assert!(check_containment_brute_force(&meshes[2], &grid_1deg()) > 0);
    }

    #[test]
    fn points_on_edges_and_vertices_are_handled() {
        // A grid point exactly on a mesh vertex (shared by 5 or 6 triangles) and one on an edge
        // (shared by 2); the interpolated position must be the point itself.
        let mesh = &TriangularMesh::hierarchy(2)[2];
        let vertex = mesh.vertices[5];
        let [a, b, _] = mesh.faces[7].map(|i| mesh.vertices[i as usize]);
        let on_edge = normalize(add(scale(a, 0.3), scale(b, 0.7)));
        for p in [vertex, on_edge] {
            let (lat, lon) = crate::sphere::unit_to_lat_lon(p);
            let grid = LatLonGrid::from_coordinates(vec![lat], vec![lon]).unwrap();
            assert_eq!(check_containment_brute_force(mesh, &grid), 1);
            let interp = MeshToGridInterpolation::new(mesh, &grid).unwrap();
            let w = interp.weights();
            let q: Vec3 = (0..3).fold([0.0; 3], |acc, k| {
                add(
                    acc,
                    scale(mesh.vertices[interp.mesh_nodes()[k] as usize], w[k]),
                )
            });
            assert!(chord_distance(normalize(q), p) < 1e-12);
        }
    }

    #[test]
    fn barycentric_weights_reproduce_linear_functions() {
        let g = [0.3, -1.7, 2.2];
        let h = 0.45;
        let f = |x: Vec3| dot(g, x) + h;
        for (grid, level) in [(grid_5625(), 4), (grid_1deg(), 5)] {
            let mesh = &TriangularMesh::hierarchy(level)[level as usize];
            let interp = MeshToGridInterpolation::new(mesh, &grid).unwrap();
            // Two channels: f and 2f.
            let field: Vec<f64> = mesh
                .vertices
                .iter()
                .flat_map(|&v| [f(v), 2.0 * f(v)])
                .collect();
            let on_grid = interp.interpolate(&field, 2).unwrap();
            for point in 0..grid.num_points() {
                let nodes = &interp.mesh_nodes()[3 * point..3 * point + 3];
                let weights = &interp.weights()[3 * point..3 * point + 3];
                assert!(nodes[0] < nodes[1] && nodes[1] < nodes[2]);
                assert!(weights.iter().all(|&w| w >= 0.0));
                assert!((weights.iter().sum::<f64>() - 1.0).abs() < 1e-14);
                let corners = [0, 1, 2].map(|k| mesh.vertices[nodes[k] as usize]);
                let q = ray_plane_point(grid.position(point), corners);
                assert!((on_grid[2 * point] - f(q)).abs() < 1e-12, "point {point}");
                assert!((on_grid[2 * point + 1] - 2.0 * f(q)).abs() < 2e-12);
            }
        }
    }

    #[test]
    fn interpolate_rejects_wrong_shape() {
        let mesh = TriangularMesh::icosahedron();
        let interp = MeshToGridInterpolation::new(&mesh, &grid_5625()).unwrap();
        assert!(matches!(
            interp.interpolate(&[0.0f32; 11], 1),
            Err(GraphError::FieldShape {
                len: 11,
                mesh_nodes: 12,
                channels: 1
            })
        ));
        // f32 input works too: a constant field stays constant.
        let ones = interp.interpolate(&[1.0f32; 24], 2).unwrap();
        assert!(ones.iter().all(|&x| (x - 1.0).abs() < 1e-15));
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
    fn node_features_known_values() {
        let grid = LatLonGrid::from_coordinates(vec![30.0], vec![0.0, 90.0]).unwrap();
        let graph = ModelGraph::build(&grid, 0).unwrap();
        let expected = [0.5, 1.0, 0.0, 0.5, 0.0, 1.0];
        for (x, e) in graph.grid_node_features().iter().zip(expected) {
            assert!((x - e).abs() < 1e-7);
        }
        let f = graph.mesh_node_features();
        for node in 0..graph.num_mesh_nodes() {
            let p = graph.multimesh().positions()[node];
            // sin(lat) = z; (cos lon, sin lon) = (x, y) / horizontal length.
            let horizontal = p[0].hypot(p[1]);
            assert!((f64::from(f[3 * node]) - p[2]).abs() < 1e-6);
            assert!((f64::from(f[3 * node + 1]) - p[0] / horizontal).abs() < 1e-6);
            assert!((f64::from(f[3 * node + 2]) - p[1] / horizontal).abs() < 1e-6);
        }
    }

    /// Compares each edge's features with values computed another way: the local frame at the
    /// receiver r is up = r, east = (−sin lon, cos lon, 0), north = up × east; for unit vectors the
    /// radial component (s − r)·r equals −chord²/2.
    ///
    /// senders: [sender nodes] positions; receivers, receiver_lon: [receiver nodes].
    fn check_edge_features(
        edges: &EdgeSet,
        senders: &[Vec3],
        receivers: &[Vec3],
        receiver_lon: &[f64],
    ) {
        let max = edges.max_edge_length();
        let mut longest = 0.0f64;
        for k in 0..edges.num_edges() {
            let receiver = edges.receivers()[k] as usize;
            let s = senders[edges.senders()[k] as usize];
            let r = receivers[receiver];
            let feature = [0, 1, 2, 3].map(|i| f64::from(edges.features()[4 * k + i]));
            let chord = chord_distance(s, r);
            longest = longest.max(chord);
            let lon = receiver_lon[receiver].to_radians();
            let east = [-lon.sin(), lon.cos(), 0.0];
            let north = cross(r, east);
            let d = sub(s, r);
            let expected = [chord, -chord * chord / 2.0, dot(d, east), dot(d, north)];
            for i in 0..4 {
                assert!(
                    (feature[i] - expected[i] / max).abs() < 1e-6,
                    "edge {k}: {feature:?}"
                );
            }
        }
        assert!((longest - max).abs() < 1e-15);
    }

    #[test]
    fn edge_features_are_receiver_frame_displacements() {
        let grid = grid_5625();
        let graph = ModelGraph::build(&grid, 2).unwrap();
        let mesh_positions = graph.multimesh().positions();
        let mesh_lon = graph.multimesh().node_lon();
        let grid_positions = grid.positions();
        let grid_lon: Vec<f64> = (0..grid.num_points()).map(|k| grid.lat_lon(k).1).collect();
        check_edge_features(graph.mesh_edges(), mesh_positions, mesh_positions, mesh_lon);
        check_edge_features(graph.grid2mesh(), &grid_positions, mesh_positions, mesh_lon);
        check_edge_features(
            graph.mesh2grid(),
            mesh_positions,
            &grid_positions,
            &grid_lon,
        );
    }

    #[test]
    fn rotated_receiver_sits_at_reference_point() {
        let grid = grid_5625();
        let graph = ModelGraph::build(&grid, 1).unwrap();
        let mm = graph.multimesh();
        for (node, &p) in mm.positions().iter().enumerate() {
            let r = rotation_to_reference(mm.node_lat()[node], mm.node_lon()[node]);
            let rotated = mat_vec(&r, p);
            assert!(chord_distance(rotated, crate::sphere::REFERENCE_POINT) < 1e-14);
        }
        let p = lat_lon_to_unit(-87.1875, 5.625);
        let rotated = mat_vec(&rotation_to_reference(-87.1875, 5.625), p);
        assert!(chord_distance(rotated, crate::sphere::REFERENCE_POINT) < 1e-14);
    }

    #[test]
    fn mesh_level_above_maximum_is_an_error() {
        assert!(matches!(
            ModelGraph::build(&grid_5625(), 99),
            Err(GraphError::Mesh(MeshError::LevelTooHigh { level: 99, .. }))
        ));
    }

    #[test]
    fn cache_builds_each_graph_once() {
        let cache = GraphCache::new();
        assert!(cache.is_empty());
        let grid = grid_5625();
        let first = cache.get_or_build(&grid, 2).unwrap();
        let again = cache.get_or_build(&grid.clone(), 2).unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        let other_level = cache.get_or_build(&grid, 1).unwrap();
        assert!(!Arc::ptr_eq(&first, &other_level));
        let other_grid =
            LatLonGrid::equiangular(32, 64, PoleRows::Excluded, LatitudeOrder::Descending).unwrap();
        let flipped = cache.get_or_build(&other_grid, 2).unwrap();
        assert!(!Arc::ptr_eq(&first, &flipped));
        assert_eq!(cache.len(), 3);
        assert!(cache.get_or_build(&grid, 99).is_err());
        assert_eq!(cache.len(), 3);
    }
}
